/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* The pure parts of hull-initrd (man/hull-initrd.8): on-disk formats it reads
 * and the dm-verity table it writes. No file system access, so unit tests
 * drive them with byte buffers. */

/* ---- dm-verity ---------------------------------------------------------- */

/* cryptsetup's on-disk superblock (lib/verity/verity.c struct verity_sb),
 * 512 bytes at --hash-offset, little-endian. */
#define VERITY_SB_SIZE 512U
#define VERITY_BLOCK_SIZE 4096U
#define VERITY_MAX_SALT 256U

typedef struct VeritySuperblock {
        uint64_t data_blocks;           /* 4096-byte blocks of data */
        uint64_t hash_start;            /* first hash block, in 4096-byte blocks */
        size_t salt_size;
        uint8_t salt[VERITY_MAX_SALT];
        uint8_t uuid[16];
} VeritySuperblock;

/* Parse and check the superblock read at hash_offset. Only what hull-build
 * formats is accepted: version 1, hash type 1 (the normal one), sha256,
 * 4096-byte data and hash blocks, a salt of at most 256 bytes, and data
 * that ends at or before the hash area. On failure *ret_reason (if not NULL)
 * says why, for the console:
 *   -EBADMSG        no superblock ("verity\0\0" missing) or size < 512
 *   -EPROTONOSUPPORT a version, hash type, algorithm or block size we refuse
 *   -ERANGE         salt too long, no data blocks, data overlapping the hashes
 *   -EINVAL         hash_offset not a multiple of 4096 */
int verity_sb_parse(const void *buf, size_t size, uint64_t hash_offset, VeritySuperblock *ret,
                    const char **ret_reason) _warn_unused_result_;

/* The dm-verity target parameters, in Documentation/admin-guide/
 * device-mapper/verity.rst order: "1 MAJ:MIN MAJ:MIN 4096 4096 BLOCKS START
 * sha256 ROOTHASH SALT" (salt "-" when empty, as veritysetup does), no
 * optional arguments. The data and hash device are the same partition. */
int verity_table_params(unsigned major, unsigned minor, const VeritySuperblock *sb, const char *root_hash,
                        char **ret) _warn_unused_result_;

/* ---- /sys/class/block/X/uevent ----------------------------------------- */

typedef struct BlockUevent {
        char devname[64];       /* DEVNAME=, "vda1"; "" if absent */
        char partname[128];     /* PARTNAME= (the GPT partition name), "" if absent */
        char devtype[16];       /* DEVTYPE=, "disk" or "partition" */
        unsigned major, minor;
        unsigned partn;         /* PARTN=, 0 if absent */
} BlockUevent;

/* Parse KEY=VALUE records separated by '\n' (a sysfs uevent file) or '\0'
 * (a netlink message). -EBADMSG without MAJOR/MINOR/DEVNAME or with a value
 * that does not fit. */
int block_uevent_parse(const char *text, size_t size, BlockUevent *ret) _warn_unused_result_;

/* ---- ISO 9660 ----------------------------------------------------------- */

#define ISO9660_PVD_OFFSET 32768U
#define ISO9660_PVD_SIZE 2048U

/* The volume id of a primary volume descriptor (bytes 40..71, trailing
 * spaces dropped) into ret (33 bytes). -EBADMSG if buf is not one. */
int iso9660_volume_id(const void *buf, size_t size, char ret[static 33]) _warn_unused_result_;

/* ---- file systems ------------------------------------------------------- */

#define FS_PROBE_SIZE 4096U

/* "erofs" (0xE0F5E1E2 at 1024), "ext4" (0xEF53 at 1080) or NULL, from the
 * first FS_PROBE_SIZE bytes of a device. */
const char *fs_probe(const void *buf, size_t size);

/* ---- GPT ---------------------------------------------------------------- */

/* The unique GUID of partition partn (1-based) from a GPT header (one
 * logical block read at LBA 1) and its entry array (read at the header's
 * entry LBA, at least partn entries long). Bytes in the order written in a
 * PARTUUID= (the on-disk mixed-endian fields turned around). -EBADMSG if
 * the header is not a GPT header, -ENOENT if partn is beyond the entries or
 * unused. */
int gpt_partition_uuid(const void *header, size_t header_size, const void *entries, size_t entries_size,
                       unsigned partn, uint8_t ret[static 16]) _warn_unused_result_;
/* From the header: where the entries start (LBA), how many and how big. */
int gpt_header_entries(const void *header, size_t header_size, uint64_t *ret_lba, uint32_t *ret_count,
                       uint32_t *ret_entry_size) _warn_unused_result_;
