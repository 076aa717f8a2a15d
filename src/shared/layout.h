/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "macro.h"

/* The Hull disk: GPT with ESP, root A, root B and persist, in that order
 * (docs/DISK-FORMAT.md). All maths is in bytes; partitions start and end on
 * 1 MiB boundaries, which suits 512-byte and 4K-sector disks and SSD erase
 * blocks alike. */

#define LAYOUT_ALIGN (1ULL << 20)
#define LAYOUT_SECTOR 512ULL
/* Primary GPT (LBA 0-33) sits in the first MiB; the backup GPT needs 33
 * sectors at the end, so the last MiB is left free as well. */
#define LAYOUT_HEAD (1ULL << 20)
#define LAYOUT_TAIL (1ULL << 20)

typedef enum PartitionRole {
        PART_ESP,
        PART_ROOT_A,
        PART_ROOT_B,
        PART_PERSIST,
        _PART_MAX,
} PartitionRole;

typedef struct Partition {
        const char *label;    /* GPT partition name */
        const char *type_uuid;
        uint64_t offset;      /* bytes from the start of the disk */
        uint64_t size;        /* bytes */
        const char *uuid;     /* the partition's unique GUID; NULL: a random one */
} Partition;

typedef struct DiskLayout {
        Partition part[_PART_MAX];
        uint64_t disk_size;
        /* The disk GUID; NULL: a random one. hull-build fixes both kinds for
         * reproducible disk images; on a node every disk gets random ones. */
        const char *disk_guid;
} DiskLayout;

/* Well-known GPT type GUIDs: the UEFI ESP, and from the Discoverable
 * Partitions Specification the x86-64 root and the /var partition (persist
 * holds /var among other things). */
#define GPT_TYPE_ESP "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
#define GPT_TYPE_ROOT_X86_64 "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
#define GPT_TYPE_VAR "4D21B016-B534-45C2-A9FB-5C16E091FD2D"

#define LABEL_ESP "hull-esp"
#define LABEL_ROOT_A "hull-root-a"
#define LABEL_ROOT_B "hull-root-b"
#define LABEL_PERSIST "hull-persist"

/* Lay out the four partitions with the given sizes (rounded up to 1 MiB).
 * -EINVAL for a zero size, -EOVERFLOW if the sum does not fit in 64 bits. */
int layout_compute(uint64_t esp, uint64_t root, uint64_t persist, DiskLayout *ret) _warn_unused_result_;

/* Lay out on a disk of a given size: ESP and persist as asked (persist at
 * least as asked), roots as large as possible up to root_max each (0 = no
 * limit), and persist takes what is left. -ENOSPC if the disk is too small. */
int layout_for_disk(uint64_t disk_size, uint64_t esp, uint64_t root_max, uint64_t persist_min,
                    DiskLayout *ret) _warn_unused_result_;

/* Can a root file system image of 'image_size' bytes, plus 'hash_size' bytes
 * of dm-verity hash tree behind it, go into the root partition?
 * -ENOSPC if not. */
int layout_check_root_fits(const DiskLayout *l, uint64_t image_size, uint64_t hash_size) _warn_unused_result_;

const char *partition_role_to_string(PartitionRole r);
