/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

/* Write all of buf, retrying on short writes and EINTR. */
int loop_write(int fd, const void *buf, size_t len) _warn_unused_result_;

/* Read up to len bytes, retrying until EOF; returns the number read. */
ssize_t loop_read(int fd, void *buf, size_t len) _warn_unused_result_;

/* Read a whole file into a NUL-terminated buffer. Files larger than max
 * bytes are refused with -E2BIG so that no input can make us allocate
 * without bound. */
int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size) _warn_unused_result_;
int read_full_fd(int fd, size_t max, char **ret, size_t *ret_size) _warn_unused_result_;

/* Replace path atomically: write a temporary file next to it, fsync it,
 * rename() it over the target and fsync the directory. A crash at any point
 * leaves either the old or the new contents, never a mix. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode) _warn_unused_result_;

int fsync_parent_directory(const char *path) _warn_unused_result_;

/* mkdir -p, with the given mode for directories it creates. */
int mkdir_p(const char *path, mode_t mode) _warn_unused_result_;

/* Returns an allocated "a/b", collapsing a duplicate slash; NULL on OOM. */
char *path_join(const char *a, const char *b);

/* Copy the whole of src into out_fd starting at byte 'offset', skipping
 * holes in src so that sparse images stay sparse. */
int copy_file_to_offset(const char *src, int out_fd, uint64_t offset) _warn_unused_result_;
