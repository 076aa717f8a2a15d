/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

/* Device-mapper through /dev/mapper/control, without libdevmapper: the one
 * read-only single-target device hull-initrd creates for the dm-verity root
 * and the status hull-init checks (include/uapi/linux/dm-ioctl.h). */

/* Walk the result buffer of a DM_TABLE_STATUS ioctl with DM_STATUS_TABLE_FLAG
 * (the struct dm_ioctl and what follows it) and return the type and the
 * parameters (both allocated) of the device's only target. -EMEDIUMTYPE if
 * the device has no target or several, -EBADMSG for a malformed buffer. */
int dm_status_single_target(const void *buf, size_t size, char **ret_type, char **ret_params)
        _warn_unused_result_;

/* Fill buf (at least sizeof(struct dm_ioctl) + spec + params, 8-aligned) with
 * a DM_TABLE_LOAD request for one read-only target of length sectors; the
 * size used in *ret_size. Pure, for the unit test. -E2BIG if it does not fit,
 * -EINVAL for a name or type too long. */
int dm_table_load_request(void *buf, size_t size, const char *name, const char *type, uint64_t sectors,
                          const char *params, size_t *ret_size) _warn_unused_result_;

/* Create NAME (with UUID) as one read-only target, resume it, and make
 * /dev/mapper/NAME. Whatever fails, no half-made device is left behind.
 * *ret_dev is its device number. */
int dm_create_readonly(const char *name, const char *uuid, const char *type, uint64_t sectors, const char *params,
                       dev_t *ret_dev) _warn_unused_result_;

/* The status line of NAME's only target (DM_TABLE_STATUS without the table
 * flag): "V" or "C" for dm-verity. Allocated. */
int dm_target_status(const char *name, char **ret_type, char **ret_status) _warn_unused_result_;

/* The table line of NAME's only target. Allocated. */
int dm_target_table(const char *name, char **ret_type, char **ret_params) _warn_unused_result_;

/* DM_DEV_REMOVE, and unlink /dev/mapper/NAME. */
int dm_remove(const char *name) _warn_unused_result_;
