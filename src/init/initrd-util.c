/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "initrd-util.h"
#include "strutil.h"

static uint16_t le16(const uint8_t *p) {
        return (uint16_t) (p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static uint64_t le64(const uint8_t *p) {
        return (uint64_t) le32(p) | (uint64_t) le32(p + 4) << 32;
}

static int reason(const char **ret_reason, int r, const char *why) {
        if (ret_reason)
                *ret_reason = why;
        return r;
}

/* ---- dm-verity ---------------------------------------------------------- */

/* Offsets in cryptsetup's packed struct verity_sb. */
enum {
        VSB_SIGNATURE = 0,
        VSB_VERSION = 8,
        VSB_HASH_TYPE = 12,
        VSB_UUID = 16,
        VSB_ALGORITHM = 32,
        VSB_DATA_BLOCK_SIZE = 64,
        VSB_HASH_BLOCK_SIZE = 68,
        VSB_DATA_BLOCKS = 72,
        VSB_SALT_SIZE = 80,
        VSB_SALT = 88,
};

int verity_sb_parse(const void *buf, size_t size, uint64_t hash_offset, VeritySuperblock *ret,
                    const char **ret_reason) {
        const uint8_t *b = buf;
        VeritySuperblock sb = {};

        if (hash_offset == 0 || hash_offset % VERITY_BLOCK_SIZE != 0)
                return reason(ret_reason, -EINVAL, "the hash offset is not a positive multiple of 4096");
        if (size < VERITY_SB_SIZE || memcmp(b + VSB_SIGNATURE, "verity\0\0", 8) != 0)
                return reason(ret_reason, -EBADMSG, "no dm-verity superblock at the hash offset");
        if (le32(b + VSB_VERSION) != 1)
                return reason(ret_reason, -EPROTONOSUPPORT, "superblock version is not 1");
        if (le32(b + VSB_HASH_TYPE) != 1)
                return reason(ret_reason, -EPROTONOSUPPORT, "hash type is not 1");
        /* The algorithm field is NUL-padded; "sha256" and nothing else. */
        if (memcmp(b + VSB_ALGORITHM, "sha256", 7) != 0)
                return reason(ret_reason, -EPROTONOSUPPORT, "hash algorithm is not sha256");
        if (le32(b + VSB_DATA_BLOCK_SIZE) != VERITY_BLOCK_SIZE || le32(b + VSB_HASH_BLOCK_SIZE) != VERITY_BLOCK_SIZE)
                return reason(ret_reason, -EPROTONOSUPPORT, "data or hash block size is not 4096");
        sb.salt_size = le16(b + VSB_SALT_SIZE);
        if (sb.salt_size > VERITY_MAX_SALT)
                return reason(ret_reason, -ERANGE, "salt longer than 256 bytes");
        sb.data_blocks = le64(b + VSB_DATA_BLOCKS);
        if (sb.data_blocks == 0)
                return reason(ret_reason, -ERANGE, "no data blocks");
        /* The hashes follow the data on the same partition: data that ran
         * into them would be hashed over its own hashes. */
        if (sb.data_blocks > hash_offset / VERITY_BLOCK_SIZE)
                return reason(ret_reason, -ERANGE, "data blocks reach into the hash area");

        memcpy(sb.salt, b + VSB_SALT, sb.salt_size);
        memcpy(sb.uuid, b + VSB_UUID, sizeof(sb.uuid));
        /* cryptsetup's VERITY_hash_offset_block(): the superblock takes the
         * first 512 bytes, hashes start on the next hash block. */
        sb.hash_start = (hash_offset + VERITY_SB_SIZE + VERITY_BLOCK_SIZE - 1) / VERITY_BLOCK_SIZE;

        *ret = sb;
        return 0;
}

int verity_table_params(unsigned major, unsigned minor, const VeritySuperblock *sb, const char *root_hash,
                        char **ret) {
        char salt[2 * VERITY_MAX_SALT + 1];
        char *s;

        if (sb->salt_size > VERITY_MAX_SALT)
                return -ERANGE;
        if (sb->salt_size == 0)
                memcpy(salt, "-", 2);
        else
                hex_encode(sb->salt, sb->salt_size, salt);
        if (asprintf(&s, "1 %u:%u %u:%u %u %u %llu %llu sha256 %s %s", major, minor, major, minor, VERITY_BLOCK_SIZE,
                     VERITY_BLOCK_SIZE, (unsigned long long) sb->data_blocks, (unsigned long long) sb->hash_start,
                     root_hash, salt) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* ---- uevent ------------------------------------------------------------- */

static int copy_value(char *dst, size_t dst_size, const char *v, size_t l) {
        if (l >= dst_size)
                return -EBADMSG;
        memcpy(dst, v, l);
        dst[l] = '\0';
        return 0;
}

static int parse_uint(const char *v, size_t l, unsigned *ret) {
        char buf[16];

        if (l == 0 || l >= sizeof(buf))
                return -EBADMSG;
        memcpy(buf, v, l);
        buf[l] = '\0';
        return safe_atou(buf, ret) < 0 ? -EBADMSG : 0;
}

int block_uevent_parse(const char *text, size_t size, BlockUevent *ret) {
        BlockUevent u = {};
        bool have_major = false, have_minor = false;
        int r = 0;

        for (size_t i = 0; i < size;) {
                size_t e = i;
                while (e < size && text[e] != '\n' && text[e] != '\0')
                        e++;
                const char *rec = text + i, *eq = memchr(rec, '=', e - i);
                if (eq) {
                        size_t kl = (size_t) (eq - rec), vl = e - i - kl - 1;
                        const char *v = eq + 1;
#define KEY(k) (kl == strlen(k) && memcmp(rec, (k), kl) == 0)
                        if (KEY("DEVNAME"))
                                r = copy_value(u.devname, sizeof(u.devname), v, vl);
                        else if (KEY("PARTNAME"))
                                r = copy_value(u.partname, sizeof(u.partname), v, vl);
                        else if (KEY("DEVTYPE"))
                                r = copy_value(u.devtype, sizeof(u.devtype), v, vl);
                        else if (KEY("MAJOR"))
                                r = parse_uint(v, vl, &u.major), have_major = r >= 0;
                        else if (KEY("MINOR"))
                                r = parse_uint(v, vl, &u.minor), have_minor = r >= 0;
                        else if (KEY("PARTN"))
                                r = parse_uint(v, vl, &u.partn);
#undef KEY
                        if (r < 0)
                                return r;
                }
                i = e + 1;
        }

        /* DEVNAME becomes a path below /dev: no way out of it. */
        if (!have_major || !have_minor || u.devname[0] == '\0' || strstr(u.devname, "..") || u.devname[0] == '/')
                return -EBADMSG;
        *ret = u;
        return 0;
}

/* ---- ISO 9660 ----------------------------------------------------------- */

int iso9660_volume_id(const void *buf, size_t size, char ret[static 33]) {
        const uint8_t *b = buf;

        /* Type 1 (primary), "CD001", version 1. */
        if (size < 72 || b[0] != 1 || memcmp(b + 1, "CD001", 5) != 0 || b[6] != 1)
                return -EBADMSG;
        size_t l = 32;
        while (l > 0 && (b[40 + l - 1] == ' ' || b[40 + l - 1] == '\0'))
                l--;
        memcpy(ret, b + 40, l);
        ret[l] = '\0';
        return 0;
}

/* ---- file systems ------------------------------------------------------- */

const char *fs_probe(const void *buf, size_t size) {
        const uint8_t *b = buf;

        if (size >= 1028 && le32(b + 1024) == 0xE0F5E1E2U)
                return "erofs";
        /* ext2/3 carry the same magic; Hull makes only ext4. */
        if (size >= 1082 && le16(b + 1080) == 0xEF53U)
                return "ext4";
        return NULL;
}

/* ---- GPT ---------------------------------------------------------------- */

int gpt_header_entries(const void *header, size_t header_size, uint64_t *ret_lba, uint32_t *ret_count,
                       uint32_t *ret_entry_size) {
        const uint8_t *h = header;

        if (header_size < 92 || memcmp(h, "EFI PART", 8) != 0)
                return -EBADMSG;
        uint32_t count = le32(h + 80), esize = le32(h + 84);
        /* The UEFI spec: 128 * 2^n bytes per entry. */
        if (esize < 128 || (esize & (esize - 1)) != 0 || esize > 4096 || count == 0 || count > 4096)
                return -EBADMSG;
        *ret_lba = le64(h + 72);
        *ret_count = count;
        *ret_entry_size = esize;
        return 0;
}

int gpt_partition_uuid(const void *header, size_t header_size, const void *entries, size_t entries_size,
                       unsigned partn, uint8_t ret[static 16]) {
        static const uint8_t zero[16] = {};
        uint64_t lba;
        uint32_t count, esize;
        int r;

        r = gpt_header_entries(header, header_size, &lba, &count, &esize);
        if (r < 0)
                return r;
        if (partn == 0 || partn > count || (uint64_t) partn * esize > entries_size)
                return -ENOENT;
        const uint8_t *e = (const uint8_t *) entries + (size_t) (partn - 1) * esize;
        if (memcmp(e, zero, 16) == 0) /* type GUID zero: unused entry */
                return -ENOENT;
        const uint8_t *g = e + 16;
        /* Fields 1-3 are little-endian on disk, written big-endian. */
        const uint8_t out[16] = { g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6],
                                  g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15] };
        memcpy(ret, out, 16);
        return 0;
}
