/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cpio.h"
#include "fileio.h"

int cpio_write_header(int fd, const CpioHeader *h) {
        static const char zeros[4] = {};
        char buf[111];
        size_t nl = strlen(h->name) + 1;
        int r;

        if (h->size > 0xffffffffULL || h->mtime > 0xffffffffULL || nl > 0xffffffffULL)
                return -EFBIG;
        (void) snprintf(buf, sizeof(buf), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", h->ino,
                        (unsigned) h->mode, 0, 0, S_ISDIR(h->mode) ? 2 : 1, (unsigned) h->mtime, (unsigned) h->size, 0,
                        0, h->rdev_major, h->rdev_minor, (unsigned) nl, 0);
        if ((r = loop_write(fd, buf, 110)) < 0 || (r = loop_write(fd, h->name, nl)) < 0)
                return r;
        return loop_write(fd, zeros, (4 - (110 + nl) % 4) % 4);
}

int cpio_write_pad(int fd, uint64_t size) {
        static const char zeros[4] = {};
        return loop_write(fd, zeros, (4 - size % 4) % 4);
}

int cpio_write_trailer(int fd) {
        return cpio_write_header(fd, &(CpioHeader) { .name = "TRAILER!!!" });
}
