/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

/* The newc ("070701") cpio format the kernel unpacks as an initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst): a 110-byte
 * ASCII header, the name with its NUL, padding to 4 bytes, the data,
 * padding to 4 bytes; "TRAILER!!!" ends the archive. Owner root, one link
 * (two for directories), check field 0: what makes an archive reproducible
 * is left to the caller (inode numbers, mtime, order). */

typedef struct CpioHeader {
        const char *name;       /* without a leading "/" */
        mode_t mode;            /* type and permission bits */
        uint64_t size;          /* file data (or symlink target) length */
        unsigned ino;
        uint64_t mtime;
        unsigned rdev_major, rdev_minor; /* device nodes */
} CpioHeader;

/* Header and name (with padding); the caller writes size bytes of data and
 * then cpio_write_pad(fd, size). -EFBIG for sizes or times beyond 32 bits. */
int cpio_write_header(int fd, const CpioHeader *h) _warn_unused_result_;
int cpio_write_pad(int fd, uint64_t size) _warn_unused_result_;
int cpio_write_trailer(int fd) _warn_unused_result_;
