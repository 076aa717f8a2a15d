/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pure parts of datadisk.c: systemd's path escaping, the mount unit's
 * text, and the keep/format/wipe/refuse decision from probe results. The
 * probing and formatting themselves run on loop devices in
 * tests/integration/test-datadisk.sh. */
#include <stdlib.h>
#include <string.h>

#include "datadisk.h"
#include "tests.h"

#define MIB (UINT64_C(1) << 20)

static void expect_escape(const char *path, const char *expected) {
        _cleanup_free_ char *s = NULL;
        ASSERT_OK(unit_name_path_escape(path, &s));
        ASSERT_STREQ(s, expected);
}

static void test_escape(void) {
        /* Compared with systemd-escape --path (systemd 252). */
        expect_escape("/", "-");
        expect_escape("/srv/data", "srv-data");
        expect_escape("/var/lib/ceph", "var-lib-ceph");
        expect_escape("/srv/my-db", "srv-my\\x2ddb");
        expect_escape("/srv/my db", "srv-my\\x20db");
        expect_escape("/srv/.hidden", "srv-.hidden");
        expect_escape("/.hidden/x", "\\x2ehidden-x");
        expect_escape("/a_b:c.d", "a_b:c.d");
        expect_escape("/a\\b", "a\\x5cb");
        expect_escape("/caf\xc3\xa9", "caf\\xc3\\xa9");

        char *s = NULL;
        ASSERT_ERROR(unit_name_path_escape("srv/data", &s), EINVAL);
        ASSERT_ERROR(unit_name_path_escape("/srv//data", &s), EINVAL);
        ASSERT_ERROR(unit_name_path_escape("/srv/data/", &s), EINVAL);
        ASSERT_ERROR(unit_name_path_escape("/srv/./data", &s), EINVAL);
        ASSERT_ERROR(unit_name_path_escape("/srv/../etc", &s), EINVAL);
        ASSERT_ERROR(unit_name_path_escape("", &s), EINVAL);
        ASSERT_ERROR(unit_name_path_escape(NULL, &s), EINVAL);
        ASSERT_TRUE(s == NULL);
}

static void test_unit_text(void) {
        _cleanup_free_ char *t = NULL, *t2 = NULL;
        ASSERT_OK(datadisk_unit_text("1234-abcd", "/var/lib/data", "xfs", "noatime,nodev", &t));
        ASSERT_TRUE(strstr(t, "\n[Mount]\nWhat=/dev/disk/by-uuid/1234-abcd\nWhere=/var/lib/data\nType=xfs\n"
                              "Options=noatime,nodev\n"));
        ASSERT_TRUE(strstr(t, "\n[Install]\nWantedBy=local-fs.target\n"));
        ASSERT_TRUE(strstr(t, "Before=local-fs.target\n"));
        ASSERT_TRUE(!strstr(t, "nofail"));
        ASSERT_OK(datadisk_unit_text("u", "/d", "ext4", NULL, &t2));
        ASSERT_TRUE(strstr(t2, "Options=defaults\n"));
}

static const DataDiskSpec ext4_part = {
        .device = "/dev/vdb", .partition = true, .filesystem = "ext4", .label = "data", .mount = "/var/lib/data",
};

static DataDiskProbe blank_disk(uint64_t size) {
        return (DataDiskProbe) { .size = size, .head_zero = true, .tail_zero = true };
}

static int decide(const DataDiskSpec *s, const DataDiskProbe *p, DataDiskAction *a, char **err) {
        free(*err);
        *err = NULL;
        return datadisk_decide(s, p, a, err);
}

static void test_decide(void) {
        _cleanup_free_ char *err = NULL;
        DataDiskAction a = _DATADISK_ACTION_MAX;
        DataDiskSpec s = ext4_part;
        DataDiskProbe p = blank_disk(64 * MIB);

        /* Blank: format. */
        ASSERT_OK(decide(&s, &p, &a, &err));
        ASSERT_EQ(a, DATADISK_FORMAT);
        ASSERT_STREQ(datadisk_action_to_string(a), "format");

        /* Ours already (one partition, right type and label): keep, also
         * when mounted, and whatever wipe says. */
        p = blank_disk(64 * MIB);
        p.pttype = (char *) "gpt";
        p.n_partitions = 1;
        p.part_fstype = (char *) "ext4";
        p.part_fslabel = (char *) "data";
        p.head_zero = false;
        p.mounted = true;
        ASSERT_OK(decide(&s, &p, &a, &err));
        ASSERT_EQ(a, DATADISK_KEEP);
        s.wipe = true;
        ASSERT_OK(decide(&s, &p, &a, &err));
        ASSERT_EQ(a, DATADISK_KEEP);
        s.wipe = false;

        /* Same partition, another label: someone else's. */
        p.mounted = false;
        p.part_fslabel = (char *) "other";
        ASSERT_ERROR(decide(&s, &p, &a, &err), EEXIST);
        ASSERT_STREQ(err, "/dev/vdb holds a gpt partition table with 1 partition(s), the first holding \"ext4\" "
                          "(label \"other\"); refusing to format it. Set wipe: true to destroy it");
        s.wipe = true;
        ASSERT_OK(decide(&s, &p, &a, &err));
        ASSERT_EQ(a, DATADISK_WIPE_AND_FORMAT);
        s.wipe = false;

        /* Two partitions: never a keep, even if the first matches. */
        p.part_fslabel = (char *) "data";
        p.n_partitions = 2;
        ASSERT_ERROR(decide(&s, &p, &a, &err), EEXIST);
        ASSERT_TRUE(strstr(err, "2 partition(s)"));

        /* xfs asked for, ext4 there. */
        p.n_partitions = 1;
        s.filesystem = "xfs";
        p.size = 400 * MIB;
        ASSERT_ERROR(decide(&s, &p, &a, &err), EEXIST);
        s.filesystem = "ext4";

        /* partition: false wants the file system on the device itself. */
        s.partition = false;
        ASSERT_ERROR(decide(&s, &p, &a, &err), EEXIST);
        p = blank_disk(64 * MIB);
        p.fstype = (char *) "ext4";
        p.fslabel = (char *) "data";
        p.head_zero = false;
        ASSERT_OK(decide(&s, &p, &a, &err));
        ASSERT_EQ(a, DATADISK_KEEP);
        s.partition = true;
        ASSERT_ERROR(decide(&s, &p, &a, &err), EEXIST);
        ASSERT_STREQ(err, "/dev/vdb holds a \"ext4\" signature (label \"data\"); refusing to format it. Set wipe: true "
                          "to destroy it");

        /* Signatures of other kinds, and bytes nobody recognises. */
        p = blank_disk(64 * MIB);
        p.fstype = (char *) "LVM2_member";
        ASSERT_ERROR(decide(&s, &p, &a, &err), EEXIST);
        ASSERT_TRUE(strstr(err, "\"LVM2_member\" signature"));
        p = blank_disk(64 * MIB);
        p.ambivalent = true;
        ASSERT_ERROR(decide(&s, &p, &a, &err), EEXIST);
        ASSERT_TRUE(strstr(err, "several conflicting signatures"));
        p = blank_disk(64 * MIB);
        p.head_zero = false;
        ASSERT_ERROR(decide(&s, &p, &a, &err), EEXIST);
        ASSERT_TRUE(strstr(err, "unrecognised data in its first MiB"));
        p = blank_disk(64 * MIB);
        p.tail_zero = false;
        ASSERT_ERROR(decide(&s, &p, &a, &err), EEXIST);
        ASSERT_TRUE(strstr(err, "last MiB"));
        p = blank_disk(64 * MIB);
        p.data_at_partition_start = true;
        ASSERT_ERROR(decide(&s, &p, &a, &err), EEXIST);
        ASSERT_TRUE(strstr(err, "at 1 MiB"));
        s.wipe = true;
        ASSERT_OK(decide(&s, &p, &a, &err));
        ASSERT_EQ(a, DATADISK_WIPE_AND_FORMAT);
        s.wipe = false;

        /* Never the boot disk, not even with wipe. */
        p = blank_disk(64 * MIB);
        p.pttype = (char *) "gpt";
        p.n_partitions = 4;
        p.boot_partition = (char *) "hull-persist";
        s.wipe = true;
        ASSERT_ERROR(decide(&s, &p, &a, &err), EPERM);
        ASSERT_STREQ(err, "/dev/vdb is Hull's boot disk (it holds the partition hull-persist); refusing to use it");
        s.wipe = false;

        /* Mounted or held, and not ours: busy, even with wipe. */
        p = blank_disk(64 * MIB);
        p.fstype = (char *) "ext4";
        p.mounted = true;
        s.wipe = true;
        ASSERT_ERROR(decide(&s, &p, &a, &err), EBUSY);
        ASSERT_TRUE(strstr(err, "is mounted"));
        p.mounted = false;
        p.busy = true;
        ASSERT_ERROR(decide(&s, &p, &a, &err), EBUSY);
        ASSERT_TRUE(strstr(err, "holders"));
        s.wipe = false;

        /* Too small: ext4 16 MiB (+2 for the GPT), xfs 320 MiB. */
        p = blank_disk(17 * MIB);
        ASSERT_ERROR(decide(&s, &p, &a, &err), ENOSPC);
        ASSERT_STREQ(err, "/dev/vdb is too small for ext4: 17 MiB, at least 18 MiB");
        p.size = 18 * MIB;
        ASSERT_OK(decide(&s, &p, &a, &err));
        s.partition = false;
        p.size = 16 * MIB;
        ASSERT_OK(decide(&s, &p, &a, &err));
        s.filesystem = "xfs";
        p.size = 319 * MIB;
        ASSERT_ERROR(decide(&s, &p, &a, &err), ENOSPC);
        s.filesystem = "ext4";
        s.partition = true;

        /* A partition where a whole disk is needed. */
        p = blank_disk(64 * MIB);
        p.is_partition = true;
        ASSERT_ERROR(decide(&s, &p, &a, &err), EINVAL);
        ASSERT_TRUE(strstr(err, "is a partition"));
        s.partition = false;
        ASSERT_OK(decide(&s, &p, &a, &err));
        ASSERT_EQ(a, DATADISK_FORMAT);

        ASSERT_TRUE(datadisk_action_to_string(_DATADISK_ACTION_MAX) == NULL);
        ASSERT_ERROR(datadisk_decide(NULL, &p, &a, NULL), EINVAL);
}

/* Spec errors come before anything touches a device: a path that does not
 * exist is never looked at. */
static void test_plan_spec_errors(void) {
        static const struct {
                DataDiskSpec s;
                const char *msg;
        } cases[] = {
                { { .device = "vdb", .filesystem = "ext4", .label = "d", .mount = "/d" }, "device: must be an absolute path" },
                { { .device = "/dev/x", .filesystem = "btrfs", .label = "d", .mount = "/d" }, "filesystem: \"btrfs\"" },
                { { .device = "/dev/x", .filesystem = "ext4", .label = "", .mount = "/d" }, "label: \"\" must be 1 to 16" },
                { { .device = "/dev/x", .filesystem = "ext4", .label = "12345678901234567", .mount = "/d" }, "label:" },
                { { .device = "/dev/x", .filesystem = "xfs", .label = "1234567890123", .mount = "/d" }, "1 to 12" },
                { { .device = "/dev/x", .filesystem = "ext4", .label = "a b", .mount = "/d" }, "label:" },
                { { .device = "/dev/x", .filesystem = "ext4", .label = "d", .mount = "d" }, "mount: \"d\" must be" },
                { { .device = "/dev/x", .filesystem = "ext4", .label = "d", .mount = "/d/../etc" }, "normalised" },
                { { .device = "/dev/x", .filesystem = "ext4", .label = "d", .mount = "/" }, "would hide" },
                { { .device = "/dev/x", .filesystem = "ext4", .label = "d", .mount = "/var" }, "would hide" },
                { { .device = "/dev/x", .filesystem = "ext4", .label = "d", .mount = "/usr/local" }, "is in /usr" },
                { { .device = "/dev/x", .filesystem = "ext4", .label = "d", .mount = "/persist/hull/x" }, "is in /persist/hull" },
                { { .device = "/dev/x", .filesystem = "ext4", .label = "d", .mount = "/d", .options = "a b" }, "options:" },
                { { .device = "/dev/x", .filesystem = "ext4", .label = "d", .mount = "/d", .options = "x\nWhat=/" }, "options:" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *err = NULL;
                DataDiskPlan plan = {};
                ASSERT_ERROR(datadisk_plan(&cases[i].s, &(DataDiskOptions) { .wait_sec = -1 }, &plan, &err), EINVAL);
                if (!err || !strstr(err, cases[i].msg)) {
                        fprintf(stderr, "case %zu: \"%s\" does not contain \"%s\"\n", i, err ?: "(null)", cases[i].msg);
                        abort();
                }
                ASSERT_TRUE(plan.device == NULL);
        }
        _cleanup_free_ char *err = NULL;
        DataDiskPlan plan = {};
        DataDiskSpec missing = { .device = "/dev/hull-unit-test-missing", .filesystem = "ext4", .label = "d", .mount = "/d" };
        ASSERT_ERROR(datadisk_plan(&missing, &(DataDiskOptions) { .wait_sec = -1 }, &plan, &err), ENOENT);
        ASSERT_STREQ(err, "/dev/hull-unit-test-missing does not exist (waited 0 s for it)");
        free(err);
        err = NULL;
        DataDiskSpec notblk = { .device = "/dev/null", .filesystem = "ext4", .label = "d", .mount = "/d" };
        ASSERT_ERROR(datadisk_plan(&notblk, &(DataDiskOptions) { .wait_sec = -1 }, &plan, &err), ENOTBLK);
        ASSERT_STREQ(err, "/dev/null is not a block device");
}

int main(void) {
        TEST_RUN(test_escape);
        TEST_RUN(test_unit_text);
        TEST_RUN(test_decide);
        TEST_RUN(test_plan_spec_errors);
        return 0;
}
