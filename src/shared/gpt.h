/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "layout.h"
#include "macro.h"

/* Write a fresh GPT describing 'l' to a disk image file or block device
 * (libfdisk). Anything previously in the partition table is replaced; the
 * partitions' contents are not touched. -ENOSPC if the device is smaller than
 * the layout. */
int gpt_write_layout(const char *device, const DiskLayout *l) _warn_unused_result_;
