/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pure parts of hull-initrd: the command line keys it adds, initrd.conf,
 * the dm-verity superblock and table, uevent records, the ISO 9660 label,
 * the file system probe, GPT partition UUIDs and the DM_TABLE_LOAD request. */
#include <linux/dm-ioctl.h>
#include <stdint.h>
#include <stdio.h>

#include "dm.h"
#include "init-cmdline.h"
#include "initrd-conf.h"
#include "initrd-util.h"
#include "tests.h"

#define HASH64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* ---- command line ------------------------------------------------------- */

static void test_cmdline_initrd_keys(void) {
        HullCmdline c = HULL_CMDLINE_INIT;

        ASSERT_EQ(c.rootwait, HULL_DEFAULT_ROOTWAIT);
        ASSERT_OK(hull_cmdline_parse("root=PARTLABEL=hull-root-a ro hull.slot=a rootfstype=erofs "
                                     "init=/usr/lib/hull/hull-init root=/dev/mapper/hull-root "
                                     "hull.verity.roothash=" HASH64 " hull.verity.hashoffset=104857600 "
                                     "hull.rootwait=5 rootflags=noatime -- init=/bad", &c));
        ASSERT_STREQ(c.root, "/dev/mapper/hull-root"); /* the later one wins */
        ASSERT_STREQ(c.rootfstype, "erofs");
        ASSERT_STREQ(c.kernel_init, "/usr/lib/hull/hull-init");
        ASSERT_STREQ(c.root_flags, "noatime");
        ASSERT_TRUE(c.has_verity_hashoffset);
        ASSERT_EQ(c.verity_hashoffset, 104857600);
        ASSERT_EQ(c.rootwait, 5);
        ASSERT_TRUE(c.live == NULL);
        ASSERT_OK(hull_cmdline_check_initrd(&c));
        hull_cmdline_done(&c);

        c = (HullCmdline) HULL_CMDLINE_INIT;
        ASSERT_OK(hull_cmdline_parse("hull.live=HULL-INSTALL init=/usr/lib/hull/hull-install", &c));
        ASSERT_STREQ(c.live, "HULL-INSTALL");
        ASSERT_OK(hull_cmdline_check_initrd(&c));
        hull_cmdline_done(&c);

        c = (HullCmdline) HULL_CMDLINE_INIT;
        ASSERT_OK(hull_cmdline_parse("root=PARTUUID=0FC63DAF-8483-4772-8E79-3D69D8477DE4", &c));
        ASSERT_OK(hull_cmdline_check_initrd(&c));
        uint8_t u[16];
        ASSERT_OK(hull_parse_guid("0FC63DAF-8483-4772-8E79-3d69d8477de4", u));
        ASSERT_EQ(u[0], 0x0f);
        ASSERT_EQ(u[15], 0xe4);
        ASSERT_ERROR(hull_parse_guid("0FC63DAF-8483-4772-8E79-3D69D8477DE", u), EINVAL);
        ASSERT_ERROR(hull_parse_guid("0FC63DAF+8483-4772-8E79-3D69D8477DE4", u), EINVAL);
        ASSERT_ERROR(hull_parse_guid("0FC63DAF-8483-4772-8E79-3D69D8477DEG", u), EINVAL);
        hull_cmdline_done(&c);
}

/* A bad value of a key hull-init never read leaves hull-init's parse as it
 * was, and hull-initrd refuses it naming the key. */
static void check_initrd_refuses(const char *line, const char *key) {
        HullCmdline c = HULL_CMDLINE_INIT;

        ASSERT_OK(hull_cmdline_parse(line, &c));
        ASSERT_ERROR(hull_cmdline_check_initrd(&c), EINVAL);
        ASSERT_STREQ(c.invalid_key, key);
        hull_cmdline_done(&c);
}

static void test_cmdline_initrd_invalid(void) {
        check_initrd_refuses("hull.verity.hashoffset=12", "hull.verity.hashoffset");
        check_initrd_refuses("hull.verity.hashoffset=0", "hull.verity.hashoffset");
        check_initrd_refuses("hull.verity.hashoffset=4096x", "hull.verity.hashoffset");
        check_initrd_refuses("hull.verity.hashoffset", "hull.verity.hashoffset");
        check_initrd_refuses("hull.rootwait=-1", "hull.rootwait");
        check_initrd_refuses("hull.rootwait=3601", "hull.rootwait");
        check_initrd_refuses("hull.live=a/b", "hull.live");
        check_initrd_refuses("hull.live=", "hull.live");
        check_initrd_refuses("hull.live=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", "hull.live");
        check_initrd_refuses("init=sbin/init", "init");
        check_initrd_refuses("root=LABEL=x", "root");
        check_initrd_refuses("root=/dev/", "root");
        check_initrd_refuses("root=/dev/../etc/x", "root");
        check_initrd_refuses("root=PARTLABEL=", "root");
        check_initrd_refuses("root=PARTUUID=xyz", "root");
        check_initrd_refuses("rootfstype=ext4,ro", "rootfstype");
        check_initrd_refuses("hull.verity.roothash=" HASH64 " hull.verity.hashoffset=4096", "hull.slot");
        check_initrd_refuses("hull.verity.roothash=" HASH64 " hull.slot=a", "hull.verity.hashoffset");
        /* The first bad initrd key is the one named. */
        check_initrd_refuses("hull.rootwait=x hull.live=/", "hull.rootwait");

        /* hull-init's own refusals still win and still come from the parse. */
        HullCmdline c = HULL_CMDLINE_INIT;
        ASSERT_ERROR(hull_cmdline_parse("hull.rootwait=x hull.slot=a/b", &c), EINVAL);
        ASSERT_STREQ(c.invalid_key, "hull.slot");
        hull_cmdline_done(&c);
}

/* ---- initrd.conf -------------------------------------------------------- */

static const char conf_good[] =
        "hull-initrd-conf 1\n"
        "# generated\n"
        "kver 6.1.0-50-amd64\n"
        "rootfstype erofs\n"
        "build-id demo-1.0\n"
        "\n"
        "module dep kernel/lib/libcrc32c.ko\n"
        "module required kernel/fs/erofs/erofs.ko dep=kernel/lib/libcrc32c.ko soft=kernel/lib/libcrc32c.ko\n"
        "module dep kernel/drivers/virtio/virtio_ring.ko\n"
        "module storage kernel/drivers/block/virtio_blk.ko dep=kernel/drivers/virtio/virtio_ring.ko "
        "alias=virtio:d00000002v*\n"
        "module storage kernel/drivers/ata/ahci.ko alias=pci:v*d*sv*sd*bc01sc06i01* "
        "alias=pci:v00008086d00002922sv*sd*bc*sc*i*\n"
        "module live kernel/fs/isofs/isofs.ko\n";

static void test_conf_good(void) {
        InitrdConf c = {};
        unsigned line = 0;

        ASSERT_OK(initrd_conf_parse(conf_good, strlen(conf_good), &c, &line));
        ASSERT_STREQ(c.kver, "6.1.0-50-amd64");
        ASSERT_STREQ(c.rootfstype, "erofs");
        ASSERT_STREQ(c.build_id, "demo-1.0");
        ASSERT_EQ(c.n_modules, 6);
        ASSERT_EQ(c.modules[0].class, INITRD_MODULE_DEP);
        ASSERT_STREQ(c.modules[1].name, "erofs");
        ASSERT_EQ(c.modules[1].class, INITRD_MODULE_REQUIRED);
        ASSERT_EQ(c.modules[1].n_deps, 1);
        ASSERT_EQ(c.modules[1].deps[0], 0);
        ASSERT_EQ(c.modules[1].n_softs, 1);
        ASSERT_EQ(c.modules[1].softs[0], 0);
        ASSERT_STREQ(c.modules[3].name, "virtio_blk");
        ASSERT_EQ(c.modules[3].deps[0], 2);
        ASSERT_EQ(c.modules[5].class, INITRD_MODULE_LIVE);
        ASSERT_STREQ(initrd_module_class_to_string(c.modules[3].class), "storage");

        /* Modalias matching with modprobe's globs. */
        ASSERT_TRUE(initrd_module_matches(&c.modules[3], "virtio:d00000002v00001AF4"));
        ASSERT_TRUE(!initrd_module_matches(&c.modules[3], "virtio:d00000001v00001AF4"));
        ASSERT_TRUE(initrd_module_matches(&c.modules[4], "pci:v00001B36d0000000Dsv00001AF4sd00001100bc01sc06i01"));
        ASSERT_TRUE(initrd_module_matches(&c.modules[4], "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"));
        ASSERT_TRUE(!initrd_module_matches(&c.modules[4], "pci:v00001AF4d00001041sv00001AF4sd00001100bc01sc00i00"));
        ASSERT_TRUE(!initrd_module_matches(&c.modules[1], "anything")); /* no aliases */
        initrd_conf_done(&c);

        /* No trailing newline is fine too. */
        const char *min = "hull-initrd-conf 1\nkver 6.1";
        ASSERT_OK(initrd_conf_parse(min, strlen(min), &c, NULL));
        ASSERT_EQ(c.n_modules, 0);
        initrd_conf_done(&c);
}

static void check_conf_bad(const char *text, unsigned want_line) {
        InitrdConf c = {};
        unsigned line = 0;

        ASSERT_ERROR(initrd_conf_parse(text, strlen(text), &c, &line), EBADMSG);
        if (line != want_line) {
                fprintf(stderr, "line %u, expected %u for:\n%s\n", line, want_line, text);
                abort();
        }
        ASSERT_TRUE(c.modules == NULL && c.kver == NULL); /* nothing written */
}

static void test_conf_bad(void) {
        check_conf_bad("", 1);
        check_conf_bad("# only a comment\n", 2);
        check_conf_bad("hull-initrd-conf 2\nkver 6.1\n", 1);
        check_conf_bad("kver 6.1\n", 1);
        check_conf_bad("hull-initrd-conf 1\n", 2);                     /* no kver */
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nkver 6.2\n", 3); /* twice */
        check_conf_bad("hull-initrd-conf 1\nkver 6.1 x\n", 2);
        check_conf_bad("hull-initrd-conf 1\nkver ../x\n", 2);
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nfrobnicate x\n", 3);
        check_conf_bad("hull-initrd-conf 1\nkver  6.1\n", 2);          /* double space */
        check_conf_bad("hull-initrd-conf 1\nkver 6.1 \n", 2);          /* trailing space */
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nmodule required\n", 3);
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nmodule optional a.ko\n", 3);
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nmodule required /abs/a.ko\n", 3);
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nmodule required ../a.ko\n", 3);
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nmodule required a/./b.ko\n", 3);
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nmodule required a//b.ko\n", 3);
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nmodule required a.ko.xz\n", 3);
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nmodule required .ko\n", 3);
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nmodule required a.ko\nmodule dep a.ko\n", 4);
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nmodule required a.ko dep=b.ko\nmodule dep b.ko\n", 3);
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nmodule required a.ko alias=pci:*\n", 3);
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nmodule required a.ko soft=a.ko\n", 3);
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nmodule required a.ko soft=\n", 3);
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nmodule storage a.ko alias=\n", 3);
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nmodule storage a.ko x=y\n", 3);
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nmodule storage a.ko alias=a\tb\n", 3);
        check_conf_bad("hull-initrd-conf 1\nkver 6.1\nmodule storage a.ko alias=\x7f\n", 3);

        char nul[] = "hull-initrd-conf 1\nkver 6.1\0\n";
        InitrdConf c = {};
        ASSERT_ERROR(initrd_conf_parse(nul, sizeof(nul) - 1, &c, NULL), EBADMSG);

        ASSERT_TRUE(initrd_module_path_is_valid("kernel/drivers/md/dm-verity.ko"));
        ASSERT_TRUE(initrd_module_path_is_valid("updates/x+y.ko"));
        ASSERT_TRUE(!initrd_module_path_is_valid("kernel/a b.ko"));
        ASSERT_TRUE(!initrd_module_path_is_valid("kernel/"));
}

/* ---- dm-verity ---------------------------------------------------------- */

static void put_le(uint8_t *p, uint64_t v, size_t n) {
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

static void make_sb(uint8_t sb[VERITY_SB_SIZE], uint64_t data_blocks, unsigned salt_size) {
        memset(sb, 0, VERITY_SB_SIZE);
        memcpy(sb, "verity\0\0", 8);
        put_le(sb + 8, 1, 4);
        put_le(sb + 12, 1, 4);
        for (unsigned i = 0; i < 16; i++)
                sb[16 + i] = (uint8_t) (0xa0 + i);
        memcpy(sb + 32, "sha256", 6);
        put_le(sb + 64, 4096, 4);
        put_le(sb + 68, 4096, 4);
        put_le(sb + 72, data_blocks, 8);
        put_le(sb + 80, salt_size, 2);
        for (unsigned i = 0; i < salt_size; i++)
                sb[88 + i] = (uint8_t) i;
}

static void test_verity_sb(void) {
        uint8_t sb[VERITY_SB_SIZE];
        VeritySuperblock v;
        const char *why = NULL;
        char *params;

        make_sb(sb, 25600, 4);
        ASSERT_OK(verity_sb_parse(sb, sizeof(sb), 25600ULL * 4096, &v, &why));
        ASSERT_EQ(v.data_blocks, 25600);
        ASSERT_EQ(v.hash_start, 25601);
        ASSERT_EQ(v.salt_size, 4);
        ASSERT_EQ(v.uuid[0], 0xa0);
        ASSERT_OK(verity_table_params(259, 3, &v, HASH64, &params));
        ASSERT_STREQ(params, "1 259:3 259:3 4096 4096 25600 25601 sha256 " HASH64 " 00010203");
        free(params);

        /* Fewer data blocks than the offset allows: fine (hashes further on). */
        make_sb(sb, 10, 0);
        ASSERT_OK(verity_sb_parse(sb, sizeof(sb), 20 * 4096, &v, NULL));
        ASSERT_EQ(v.hash_start, 21);
        ASSERT_OK(verity_table_params(7, 0, &v, HASH64, &params));
        ASSERT_STREQ(params, "1 7:0 7:0 4096 4096 10 21 sha256 " HASH64 " -");
        free(params);

        make_sb(sb, 10, 256);
        ASSERT_OK(verity_sb_parse(sb, sizeof(sb), 20 * 4096, &v, NULL));
        ASSERT_EQ(v.salt_size, 256);
        ASSERT_EQ(v.salt[255], 255);

#define REFUSE(mutate, offset, err)                                                 \
        do {                                                                         \
                make_sb(sb, 10, 32);                                                 \
                mutate;                                                              \
                why = NULL;                                                          \
                ASSERT_ERROR(verity_sb_parse(sb, sizeof(sb), (offset), &v, &why), err); \
                ASSERT_TRUE(why != NULL);                                            \
        } while (0)
        REFUSE((void) 0, 0, EINVAL);
        REFUSE((void) 0, 4097, EINVAL);
        REFUSE(sb[0] = 'V', 10 * 4096, EBADMSG);
        REFUSE(sb[7] = 1, 10 * 4096, EBADMSG);
        REFUSE(put_le(sb + 8, 2, 4), 10 * 4096, EPROTONOSUPPORT);
        REFUSE(put_le(sb + 12, 0, 4), 10 * 4096, EPROTONOSUPPORT);
        REFUSE(memcpy(sb + 32, "sha1\0\0", 6), 10 * 4096, EPROTONOSUPPORT);
        REFUSE(sb[38] = 'x', 10 * 4096, EPROTONOSUPPORT); /* "sha256x" */
        REFUSE(put_le(sb + 64, 512, 4), 10 * 4096, EPROTONOSUPPORT);
        REFUSE(put_le(sb + 68, 1024, 4), 10 * 4096, EPROTONOSUPPORT);
        REFUSE(put_le(sb + 80, 257, 2), 10 * 4096, ERANGE);
        REFUSE(put_le(sb + 72, 0, 8), 10 * 4096, ERANGE);
        REFUSE((void) 0, 9 * 4096, ERANGE); /* 10 data blocks before a hash area at block 9 */
#undef REFUSE
        make_sb(sb, 10, 32);
        ASSERT_ERROR(verity_sb_parse(sb, VERITY_SB_SIZE - 1, 10 * 4096, &v, NULL), EBADMSG);
}

static void test_dm_request(void) {
        uint8_t buf[1024];
        size_t used = 0;
        const char *params = "1 7:0 7:0 4096 4096 10 11 sha256 " HASH64 " -";

        ASSERT_OK(dm_table_load_request(buf, sizeof(buf), "hull-root", "verity", 80, params, &used));
        ASSERT_EQ(used % 8, 0);
        struct dm_ioctl io;
        struct dm_target_spec spec;
        memcpy(&io, buf, sizeof(io));
        memcpy(&spec, buf + sizeof(io), sizeof(spec));
        ASSERT_EQ(io.version[0], DM_VERSION_MAJOR);
        ASSERT_EQ(io.data_size, used);
        ASSERT_EQ(io.data_start, sizeof(struct dm_ioctl));
        ASSERT_EQ(io.target_count, 1);
        ASSERT_TRUE(io.flags & DM_READONLY_FLAG);
        ASSERT_STREQ(io.name, "hull-root");
        ASSERT_EQ(spec.sector_start, 0);
        ASSERT_EQ(spec.length, 80);
        ASSERT_STREQ(spec.target_type, "verity");
        ASSERT_EQ(spec.next, used - sizeof(io));
        ASSERT_STREQ((const char *) buf + sizeof(io) + sizeof(spec), params);

        /* The status parser reads our own request back. */
        char *type = NULL, *p = NULL;
        ASSERT_OK(dm_status_single_target(buf, used, &type, &p));
        ASSERT_STREQ(type, "verity");
        ASSERT_STREQ(p, params);
        free(type);
        free(p);

        ASSERT_ERROR(dm_table_load_request(buf, 200, "hull-root", "verity", 80, params, &used), E2BIG);
        char longname[200];
        memset(longname, 'x', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        ASSERT_ERROR(dm_table_load_request(buf, sizeof(buf), longname, "verity", 80, params, &used), EINVAL);
        ASSERT_ERROR(dm_table_load_request(buf, sizeof(buf), "x", "verity-with-a-very-long-name", 80, params, &used),
                     EINVAL);
}

/* ---- uevent ------------------------------------------------------------- */

static void test_uevent(void) {
        BlockUevent u;
        const char file[] = "MAJOR=259\nMINOR=3\nDEVNAME=nvme0n1p3\nDEVTYPE=partition\nDISKSEQ=9\nPARTN=3\n"
                            "PARTNAME=hull-root-a\n";
        ASSERT_OK(block_uevent_parse(file, strlen(file), &u));
        ASSERT_EQ(u.major, 259);
        ASSERT_EQ(u.minor, 3);
        ASSERT_EQ(u.partn, 3);
        ASSERT_STREQ(u.devname, "nvme0n1p3");
        ASSERT_STREQ(u.devtype, "partition");
        ASSERT_STREQ(u.partname, "hull-root-a");

        /* A netlink message: NUL-separated, with the "add@..." header. */
        const char nl[] = "add@/devices/pci0000:00/0000:00:04.0/virtio1/block/vda/vda2\0ACTION=add\0"
                          "DEVPATH=/devices/x\0SUBSYSTEM=block\0MAJOR=254\0MINOR=2\0DEVNAME=vda2\0"
                          "DEVTYPE=partition\0PARTN=2\0SEQNUM=1000";
        ASSERT_OK(block_uevent_parse(nl, sizeof(nl) - 1, &u));
        ASSERT_STREQ(u.devname, "vda2");
        ASSERT_STREQ(u.partname, "");
        ASSERT_EQ(u.major, 254);

        const char *bad[] = {
                "MINOR=0\nDEVNAME=sda\n",
                "MAJOR=8\nDEVNAME=sda\n",
                "MAJOR=8\nMINOR=0\n",
                "MAJOR=8\nMINOR=0\nDEVNAME=\n",
                "MAJOR=x\nMINOR=0\nDEVNAME=sda\n",
                "MAJOR=8\nMINOR=0\nDEVNAME=../etc/passwd\n",
                "MAJOR=8\nMINOR=0\nDEVNAME=/sda\n",
                "MAJOR=8\nMINOR=0\nDEVNAME=sda\nPARTN=-1\n",
                "MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=aaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ASSERT_ERROR(block_uevent_parse(bad[i], strlen(bad[i]), &u), EBADMSG);
}

/* ---- ISO 9660, file systems, GPT ---------------------------------------- */

static void test_iso9660(void) {
        uint8_t pvd[ISO9660_PVD_SIZE] = {};
        char label[33];

        pvd[0] = 1;
        memcpy(pvd + 1, "CD001", 5);
        pvd[6] = 1;
        memset(pvd + 40, ' ', 32);
        memcpy(pvd + 40, "HULL-INSTALL", 12);
        ASSERT_OK(iso9660_volume_id(pvd, sizeof(pvd), label));
        ASSERT_STREQ(label, "HULL-INSTALL");

        memset(pvd + 40, 'A', 32);
        ASSERT_OK(iso9660_volume_id(pvd, sizeof(pvd), label));
        ASSERT_EQ(strlen(label), 32);

        pvd[0] = 2; /* a supplementary descriptor */
        ASSERT_ERROR(iso9660_volume_id(pvd, sizeof(pvd), label), EBADMSG);
        pvd[0] = 1;
        pvd[3] = 'X';
        ASSERT_ERROR(iso9660_volume_id(pvd, sizeof(pvd), label), EBADMSG);
        pvd[3] = '0';
        ASSERT_ERROR(iso9660_volume_id(pvd, 71, label), EBADMSG);
}

static void test_fs_probe(void) {
        uint8_t b[FS_PROBE_SIZE] = {};

        ASSERT_TRUE(fs_probe(b, sizeof(b)) == NULL);
        put_le(b + 1024, 0xE0F5E1E2, 4);
        ASSERT_STREQ(fs_probe(b, sizeof(b)), "erofs");
        ASSERT_TRUE(fs_probe(b, 1027) == NULL);
        memset(b, 0, sizeof(b));
        put_le(b + 1080, 0xEF53, 2);
        ASSERT_STREQ(fs_probe(b, sizeof(b)), "ext4");
        ASSERT_TRUE(fs_probe(b, 1081) == NULL);
}

static void test_gpt(void) {
        uint8_t h[512] = {}, e[4 * 128] = {}, u[16];
        uint64_t lba;
        uint32_t count, esize;

        memcpy(h, "EFI PART", 8);
        put_le(h + 72, 2, 8);
        put_le(h + 80, 4, 4);
        put_le(h + 84, 128, 4);
        /* Entry 2: some type, unique GUID 0FC63DAF-8483-4772-8E79-3D69D8477DE4
         * stored mixed-endian. */
        e[128] = 1;
        const uint8_t disk[16] = { 0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47,
                                   0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4 };
        memcpy(e + 128 + 16, disk, 16);

        ASSERT_OK(gpt_header_entries(h, sizeof(h), &lba, &count, &esize));
        ASSERT_EQ(lba, 2);
        ASSERT_EQ(count, 4);
        ASSERT_EQ(esize, 128);
        ASSERT_OK(gpt_partition_uuid(h, sizeof(h), e, sizeof(e), 2, u));
        uint8_t want[16];
        ASSERT_OK(hull_parse_guid("0FC63DAF-8483-4772-8E79-3D69D8477DE4", want));
        ASSERT_TRUE(memcmp(u, want, 16) == 0);

        ASSERT_ERROR(gpt_partition_uuid(h, sizeof(h), e, sizeof(e), 1, u), ENOENT); /* unused */
        ASSERT_ERROR(gpt_partition_uuid(h, sizeof(h), e, sizeof(e), 0, u), ENOENT);
        ASSERT_ERROR(gpt_partition_uuid(h, sizeof(h), e, sizeof(e), 5, u), ENOENT);
        ASSERT_ERROR(gpt_partition_uuid(h, sizeof(h), e, 200, 2, u), ENOENT);
        put_le(h + 84, 100, 4);
        ASSERT_ERROR(gpt_header_entries(h, sizeof(h), &lba, &count, &esize), EBADMSG);
        put_le(h + 84, 128, 4);
        h[0] = 'X';
        ASSERT_ERROR(gpt_partition_uuid(h, sizeof(h), e, sizeof(e), 2, u), EBADMSG);
}

int main(void) {
        test_cmdline_initrd_keys();
        test_cmdline_initrd_invalid();
        test_conf_good();
        test_conf_bad();
        test_verity_sb();
        test_dm_request();
        test_uevent();
        test_iso9660();
        test_fs_probe();
        test_gpt();
        return 0;
}
