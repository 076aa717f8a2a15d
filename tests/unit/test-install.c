/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <unistd.h>

#include "fileio.h"
#include "install.h"
#include "macro.h"
#include "tests.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static void test_settings(void) {
        InstallSettings s;
        char *err = NULL;

        ASSERT_OK(install_settings_from_cmdline("console=ttyS0 init=/usr/lib/hull/hull-install quiet", &s, &err));
        ASSERT_STREQ(s.disk, "auto");
        ASSERT_TRUE(!s.root_size);
        ASSERT_TRUE(!s.force);
        install_settings_done(&s);

        ASSERT_OK(install_settings_from_cmdline("hull.install.disk=/dev/nvme0n1 hull.install.root-size=100G "
                                                "hull.install.force=1\n", &s, &err));
        ASSERT_STREQ(s.disk, "/dev/nvme0n1");
        ASSERT_STREQ(s.root_size, "100G");
        ASSERT_TRUE(s.force);
        install_settings_done(&s);

        /* The last one wins, as for kernel parameters. */
        ASSERT_OK(install_settings_from_cmdline("hull.install.force=1 hull.install.force=no hull.install.root-size=max", &s, &err));
        ASSERT_TRUE(!s.force);
        ASSERT_STREQ(s.root_size, "max");
        install_settings_done(&s);

        static const char *const bad[] = {
                "hull.install.disk=vda",          "hull.install.disk=/dev/",     "hull.install.disk=/dev/../etc/passwd",
                "hull.install.disk=/dev/v$da",    "hull.install.root-size=big",  "hull.install.root-size=0",
                "hull.install.root-size=",        "hull.install.force=maybe",    "hull.install.forced=1",
                "hull.install.disk",              "hull.install.=1",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                ASSERT_ERROR(install_settings_from_cmdline(bad[i], &s, &err), EINVAL);
                ASSERT_TRUE(err && strstr(err, "hull.install."));
                err = mfree(err);
        }
}

static const char media_json[] =
        "{\"hull_install\": 1, \"name\": \"hull-e2e\", \"version\": \"1.0.0\", \"esp_size\": 268435456,"
        " \"root_size\": 1073741824, \"persist_min\": 268435456, \"root_image\": \"root.img\","
        " \"root_image_size\": 343642112, \"esp_image\": \"esp.img.zst\", \"esp_image_size\": 268435456,"
        " \"config\": \"config.json\"}";

static void test_media(void) {
        InstallMedia m, m2;
        char *err = NULL, *s = NULL;

        ASSERT_OK(install_media_parse(media_json, strlen(media_json), &m, &err));
        ASSERT_STREQ(m.name, "hull-e2e");
        ASSERT_EQ(m.root_image_size, 343642112);
        ASSERT_STREQ(m.config, "config.json");
        ASSERT_OK(install_media_format(&m, &s));
        ASSERT_OK(install_media_parse(s, strlen(s), &m2, &err));
        ASSERT_STREQ(m2.version, "1.0.0");
        ASSERT_EQ(m2.esp_size, m.esp_size);
        ASSERT_EQ(m2.persist_min, m.persist_min);
        ASSERT_STREQ(m2.esp_image, "esp.img.zst");
        free(s);
        install_media_done(&m);
        install_media_done(&m2);

        static const char *const bad[] = {
                "", "[]", "{}", "{\"hull_install\": 2}",
                /* a path instead of a file name */
                "{\"hull_install\": 1, \"name\": \"a\", \"version\": \"1\", \"esp_size\": 10, \"root_size\": 10, "
                "\"persist_min\": 1, \"root_image\": \"../x\", \"root_image_size\": 1, \"esp_image\": \"e\", \"esp_image_size\": 1}",
                "{\"hull_install\": 1, \"name\": \"a\", \"version\": \"1\", \"esp_size\": 10, \"root_size\": 10, "
                "\"persist_min\": 1, \"root_image\": \".hidden\", \"root_image_size\": 1, \"esp_image\": \"e\", \"esp_image_size\": 1}",
                /* a root image larger than its partition */
                "{\"hull_install\": 1, \"name\": \"a\", \"version\": \"1\", \"esp_size\": 10, \"root_size\": 10, "
                "\"persist_min\": 1, \"root_image\": \"r\", \"root_image_size\": 11, \"esp_image\": \"e\", \"esp_image_size\": 1}",
                /* an unknown field */
                "{\"hull_install\": 1, \"name\": \"a\", \"version\": \"1\", \"esp_size\": 10, \"root_size\": 10, \"x\": 1, "
                "\"persist_min\": 1, \"root_image\": \"r\", \"root_image_size\": 1, \"esp_image\": \"e\", \"esp_image_size\": 1}",
                /* a negative size */
                "{\"hull_install\": 1, \"name\": \"a\", \"version\": \"1\", \"esp_size\": -10, \"root_size\": 10, "
                "\"persist_min\": 1, \"root_image\": \"r\", \"root_image_size\": 1, \"esp_image\": \"e\", \"esp_image_size\": 1}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                ASSERT_ERROR(install_media_parse(bad[i], strlen(bad[i]), &m, &err), EBADMSG);
                ASSERT_TRUE(err && strstr(err, "install.json"));
                err = mfree(err);
        }
}

static void test_pick(void) {
        char *err = NULL;
        size_t i = 99;

        /* QEMU with the ISO on a CD: the CD, the live root's loop device and one disk. */
        const InstallCandidate qemu[] = {
                { "loop0", 343 * MiB, false, true, true },
                { "sr0", 400 * MiB, true, true, true },
                { "vda", 4 * GiB, false, false, false },
        };
        ASSERT_OK(install_pick_disk(qemu, ELEMENTSOF(qemu), "auto", &i, &err));
        ASSERT_EQ(i, 2);
        ASSERT_OK(install_pick_disk(qemu, ELEMENTSOF(qemu), "/dev/vda", &i, &err));
        ASSERT_EQ(i, 2);
        ASSERT_ERROR(install_pick_disk(qemu, ELEMENTSOF(qemu), "/dev/sr0", &i, &err), EBUSY);
        ASSERT_TRUE(strstr(err, "installer medium"));
        ASSERT_ERROR(install_pick_disk(qemu, ELEMENTSOF(qemu), "/dev/vdb", &i, &err), ENOENT);
        ASSERT_TRUE(strstr(err, "/dev/vda (4.0 GiB)"));

        /* A server: two NVMe disks and the USB stick the installer came from. */
        const InstallCandidate server[] = {
                { "nvme0n1", 960 * GiB, false, false, false },
                { "nvme1n1", 960 * GiB, false, false, false },
                { "sda", 16 * GiB, true, false, true },
                { "ram0", 16 * MiB, false, false, false },
        };
        ASSERT_ERROR(install_pick_disk(server, ELEMENTSOF(server), "auto", &i, &err), ENOTUNIQ);
        ASSERT_TRUE(strstr(err, "nvme0n1") && strstr(err, "nvme1n1") && !strstr(err, "sda") && !strstr(err, "ram0"));
        ASSERT_TRUE(strstr(err, "hull.install.disk="));
        ASSERT_OK(install_pick_disk(server, ELEMENTSOF(server), "/dev/nvme1n1", &i, &err));
        ASSERT_EQ(i, 1);
        ASSERT_ERROR(install_pick_disk(server, ELEMENTSOF(server), "/dev/sda", &i, &err), EBUSY);

        /* Nothing to install onto: removable, empty and virtual disks only. */
        const InstallCandidate none[] = {
                { "sdb", 32 * GiB, true, false, false },
                { "sdc", 0, false, false, false },
                { "loop3", 1 * GiB, false, false, false },
                { "dm-0", 1 * GiB, false, false, false },
        };
        ASSERT_ERROR(install_pick_disk(none, ELEMENTSOF(none), "auto", &i, &err), ENODEV);
        ASSERT_TRUE(strstr(err, "removable") && strstr(err, "no medium") && strstr(err, "virtual"));
        ASSERT_ERROR(install_pick_disk(none, 0, "auto", &i, &err), ENODEV);
        ASSERT_TRUE(strstr(err, "seen: none"));
        /* Named explicitly, a loop device or a removable disk is fine (tests, USB targets). */
        ASSERT_OK(install_pick_disk(none, ELEMENTSOF(none), "/dev/loop3", &i, &err));
        ASSERT_EQ(i, 2);
        ASSERT_OK(install_pick_disk(none, ELEMENTSOF(none), "/dev/sdb", &i, &err));
        ASSERT_EQ(i, 0);
        ASSERT_ERROR(install_pick_disk(none, ELEMENTSOF(none), "/dev/sdc", &i, &err), ENOMEDIUM);
        ASSERT_ERROR(install_pick_disk(qemu, ELEMENTSOF(qemu), "vda", &i, &err), EINVAL);

        const InstallCandidate ro[] = { { "vda", 4 * GiB, false, true, false } };
        ASSERT_ERROR(install_pick_disk(ro, 1, "auto", &i, &err), ENODEV);
        ASSERT_ERROR(install_pick_disk(ro, 1, "/dev/vda", &i, &err), EROFS);
        free(err);

        ASSERT_TRUE(install_disk_name_is_virtual("zram0"));
        ASSERT_TRUE(install_disk_name_is_virtual("md127"));
        ASSERT_TRUE(!install_disk_name_is_virtual("vda"));
        ASSERT_TRUE(!install_disk_name_is_virtual("nvme0n1"));
}

static void test_other_hull_disks(void) {
        char *err = NULL;
        const InstallCandidate c[] = {
                { "sr0", 400 * MiB, true, true, true, NULL },
                { "vda", 4 * GiB, false, false, false, "hull-root-a" },
                { "vdb", 4 * GiB, false, false, false, NULL },
                { "sdc", 4 * GiB, true, false, true, "hull-esp" }, /* a Hull medium written to a stick */
                { "loop7", 4 * GiB, false, false, false, "hull-persist" }, /* a disk image being inspected */
        };
        /* Reinstalling over the old Hull disk is fine (forcing is a separate rule). */
        ASSERT_OK(install_check_other_disks(c, ELEMENTSOF(c), 1, &err));
        /* Another disk next to an installed Hull is refused. */
        ASSERT_ERROR(install_check_other_disks(c, ELEMENTSOF(c), 2, &err), EEXIST);
        ASSERT_TRUE(strstr(err, "/dev/vda holds another Hull installation (partition hull-root-a)"));
        free(err);
}

static void test_refuse_data(void) {
        char *err = NULL;
        ASSERT_OK(install_check_data("/dev/vda", NULL, false, &err));
        ASSERT_OK(install_check_data("/dev/vda", "gpt partition table", true, &err));
        ASSERT_ERROR(install_check_data("/dev/vda", "ext4 signature", false, &err), EEXIST);
        ASSERT_TRUE(strstr(err, "/dev/vda holds data (ext4 signature)") && strstr(err, "hull.install.force=1"));
        free(err);
}

static InstallMedia e2e_media(void) {
        return (InstallMedia) {
                .esp_size = 256 * MiB,
                .root_size = 1 * GiB,
                .persist_min = 256 * MiB,
                .root_image_size = 343642112,
                .esp_image_size = 256 * MiB,
        };
}

static void test_plan(void) {
        InstallMedia m = e2e_media();
        DiskLayout l;
        char *err = NULL;

        /* The e2e disk: roots as the spec says, persist the rest. */
        ASSERT_OK(install_plan_layout(4 * GiB, &m, NULL, &l, &err));
        ASSERT_EQ(l.part[PART_ESP].size, 256 * MiB);
        ASSERT_EQ(l.part[PART_ROOT_A].size, 1 * GiB);
        ASSERT_EQ(l.part[PART_ROOT_B].size, 1 * GiB);
        ASSERT_EQ(l.part[PART_PERSIST].size, 4 * GiB - 2 * MiB - 256 * MiB - 2 * GiB);
        ASSERT_EQ(l.part[PART_PERSIST].offset + l.part[PART_PERSIST].size, 4 * GiB - 1 * MiB);

        /* Production: a 1 TB disk, spec roots of 150 GB. */
        m.root_size = 150 * GiB;
        ASSERT_OK(install_plan_layout(1000 * 1000 * 1000 * 1000ULL, &m, NULL, &l, &err));
        ASSERT_EQ(l.part[PART_ROOT_A].size, 150 * GiB);
        ASSERT_OK(install_plan_layout(1000 * 1000 * 1000 * 1000ULL, &m, "200G", &l, &err));
        ASSERT_EQ(l.part[PART_ROOT_B].size, 200 * GiB);
        m.root_size = 1 * GiB;

        /* max: the roots take what ESP and the minimum persist leave. */
        ASSERT_OK(install_plan_layout(4 * GiB, &m, "max", &l, &err));
        ASSERT_EQ(l.part[PART_ROOT_A].size, (4 * GiB - 2 * MiB - 256 * MiB - 256 * MiB) / 2);
        ASSERT_EQ(l.part[PART_PERSIST].size, 256 * MiB);
        ASSERT_OK(install_plan_layout(4 * GiB, &m, "1500M", &l, &err));
        ASSERT_EQ(l.part[PART_ROOT_A].size, 1500 * MiB);

        /* Too small for the spec's roots: refused, with the way out. */
        ASSERT_ERROR(install_plan_layout(2 * GiB, &m, NULL, &l, &err), ENOSPC);
        ASSERT_TRUE(strstr(err, "too small") && strstr(err, "2.5 GiB") && strstr(err, "root-size=max"));
        /* ... but max fits roots of 767 MiB, enough for the 328 MiB image. */
        ASSERT_OK(install_plan_layout(2 * GiB, &m, "max", &l, &err));
        ASSERT_EQ(l.part[PART_ROOT_A].size, 767 * MiB);
        /* An explicit size the disk cannot give. */
        ASSERT_ERROR(install_plan_layout(4 * GiB, &m, "3G", &l, &err), ENOSPC);
        /* Smaller than the image, or nonsense. */
        ASSERT_ERROR(install_plan_layout(4 * GiB, &m, "100M", &l, &err), EINVAL);
        ASSERT_TRUE(strstr(err, "smaller than the root image"));
        ASSERT_ERROR(install_plan_layout(4 * GiB, &m, "lots", &l, &err), EINVAL);
        /* A disk where not even max holds the image. */
        ASSERT_ERROR(install_plan_layout(1 * GiB, &m, "max", &l, &err), ENOSPC);
        ASSERT_ERROR(install_plan_layout(0, &m, NULL, &l, &err), ENOSPC);
        free(err);
}

static void test_zstd(void) {
        char src[] = "/tmp/test-install-src-XXXXXX", z[] = "/tmp/test-install-z-XXXXXX", dst[] = "/tmp/test-install-dst-XXXXXX";
        int sfd = mkstemp(src), zfd = mkstemp(z), dfd = mkstemp(dst);
        const size_t n = 3 * 1024 * 1024 + 123;
        char *data = malloc(n), *back = malloc(n);
        uint64_t written = 0;

        ASSERT_TRUE(sfd >= 0 && zfd >= 0 && dfd >= 0 && data && back);
        for (size_t i = 0; i < n; i++)
                data[i] = (char) (i < n / 2 ? 0 : (i * 7919) >> 3);
        ASSERT_OK(loop_write(sfd, data, n));
        /* Compress a range from the middle, as from a partition of a disk image. */
        ASSERT_OK(install_compress_range(sfd, 1000, n - 2000, zfd, 3));
        ASSERT_TRUE(lseek(zfd, 0, SEEK_CUR) < (off_t) (n / 2));
        ASSERT_EQ(lseek(zfd, 0, SEEK_SET), 0);
        ASSERT_OK(install_decompress_to(zfd, dfd, 4096, n, &written));
        ASSERT_EQ(written, n - 2000);
        ASSERT_EQ(pread(dfd, back, n - 2000, 4096), (ssize_t) (n - 2000));
        ASSERT_TRUE(memcmp(back, data + 1000, n - 2000) == 0);
        /* A limit below the size: refused. */
        ASSERT_EQ(lseek(zfd, 0, SEEK_SET), 0);
        ASSERT_ERROR(install_decompress_to(zfd, dfd, 0, n - 3000, NULL), EFBIG);
        /* A truncated stream: refused. */
        off_t zsize = lseek(zfd, 0, SEEK_END);
        ASSERT_OK(ftruncate(zfd, zsize - 10));
        ASSERT_EQ(lseek(zfd, 0, SEEK_SET), 0);
        ASSERT_ERROR(install_decompress_to(zfd, dfd, 0, n, NULL), EBADMSG);
        /* Not zstd at all. */
        ASSERT_EQ(lseek(sfd, 0, SEEK_SET), 0);
        ASSERT_ERROR(install_decompress_to(sfd, dfd, 0, n, NULL), EBADMSG);
        /* A source shorter than asked. */
        ASSERT_ERROR(install_copy_range(sfd, n - 10, dfd, 0, 20), ENODATA);
        ASSERT_ERROR(install_compress_range(sfd, n - 10, 20, zfd, 3), ENODATA);

        unlink(src);
        unlink(z);
        unlink(dst);
        close(sfd);
        close(zfd);
        close(dfd);
        free(data);
        free(back);
}

int main(void) {
        TEST_RUN(test_settings);
        TEST_RUN(test_media);
        TEST_RUN(test_pick);
        TEST_RUN(test_other_hull_disks);
        TEST_RUN(test_refuse_data);
        TEST_RUN(test_plan);
        TEST_RUN(test_zstd);
        return 0;
}
