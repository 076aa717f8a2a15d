/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pure parts of hull-init: the kernel command line, the dm-verity table,
 * boot.json and boot-history, the layout file; and /var seeding in a
 * temporary directory. */
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "init-cmdline.h"
#include "mount-setup.h"
#include "seed-var.h"
#include "tests.h"

#define HASH64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_next_word(void) {
        const char *p = "  root=PARTLABEL=hull-root-a\tro  a=\"b c\" \"d=e f\" x=\"\" \n";
        char *w;

        ASSERT_EQ(cmdline_next_word(&p, &w), 1);
        ASSERT_STREQ(w, "root=PARTLABEL=hull-root-a");
        free(w);
        ASSERT_EQ(cmdline_next_word(&p, &w), 1);
        ASSERT_STREQ(w, "ro");
        free(w);
        ASSERT_EQ(cmdline_next_word(&p, &w), 1);
        ASSERT_STREQ(w, "a=b c");
        free(w);
        ASSERT_EQ(cmdline_next_word(&p, &w), 1);
        ASSERT_STREQ(w, "d=e f");
        free(w);
        ASSERT_EQ(cmdline_next_word(&p, &w), 1);
        ASSERT_STREQ(w, "x=");
        free(w);
        ASSERT_EQ(cmdline_next_word(&p, &w), 0);
        ASSERT_EQ(cmdline_next_word(&p, &w), 0);

        /* An unterminated quote runs to the end of the line. */
        p = "a=\"b c";
        ASSERT_EQ(cmdline_next_word(&p, &w), 1);
        ASSERT_STREQ(w, "a=b c");
        free(w);
        ASSERT_EQ(cmdline_next_word(&p, &w), 0);

        p = "";
        ASSERT_EQ(cmdline_next_word(&p, &w), 0);
}

static void test_parse_full(void) {
        HullCmdline c = HULL_CMDLINE_INIT;

        ASSERT_OK(hull_cmdline_parse(
                "BOOT_IMAGE=/vmlinuz root=PARTLABEL=hull-root-a ro rootfstype=erofs hull.slot=a "
                "init=/usr/lib/hull/hull-init console=ttyS0,115200 hull.verity.roothash=" HASH64 " "
                "hull.boot=degraded\n", &c));
        ASSERT_STREQ(c.slot, "a");
        ASSERT_TRUE(c.degraded);
        ASSERT_STREQ(c.verity_roothash, HASH64);
        ASSERT_TRUE(c.persist == NULL);
        ASSERT_TRUE(c.init == NULL);
        ASSERT_EQ(c.fatal_delay, HULL_DEFAULT_FATAL_DELAY);
        hull_cmdline_done(&c);
        ASSERT_TRUE(c.slot == NULL);
}

static void test_parse_defaults(void) {
        HullCmdline c = HULL_CMDLINE_INIT;

        ASSERT_OK(hull_cmdline_parse("root=/dev/vda2 quiet", &c));
        ASSERT_TRUE(c.slot == NULL);
        ASSERT_TRUE(!c.degraded);
        ASSERT_TRUE(c.verity_roothash == NULL);
        ASSERT_EQ(c.fatal_delay, 10);
        hull_cmdline_done(&c);
}

static void test_parse_quoted(void) {
        HullCmdline c = HULL_CMDLINE_INIT;

        ASSERT_OK(hull_cmdline_parse("hull.init=\"/usr/lib/my init\" \"hull.persist=PARTLABEL=my persist\" "
                                     "hull.slot=\"b\"", &c));
        ASSERT_STREQ(c.init, "/usr/lib/my init");
        ASSERT_STREQ(c.persist, "PARTLABEL=my persist");
        ASSERT_STREQ(c.slot, "b");
        hull_cmdline_done(&c);
}

static void test_parse_override_and_dashes(void) {
        HullCmdline c = HULL_CMDLINE_INIT;

        /* The last value wins; after "--" everything is init's. */
        ASSERT_OK(hull_cmdline_parse("hull.slot=a hull.boot=degraded hull.slot=b hull.boot=normal "
                                     "hull.fatal_delay=0 -- hull.slot=c hull.verity.roothash=zz", &c));
        ASSERT_STREQ(c.slot, "b");
        ASSERT_TRUE(!c.degraded);
        ASSERT_EQ(c.fatal_delay, 0);
        ASSERT_TRUE(c.verity_roothash == NULL);
        hull_cmdline_done(&c);
}

static void test_parse_ignores(void) {
        HullCmdline c = HULL_CMDLINE_INIT;

        /* Unknown hull.* keys, keys that only start alike, other prefixes. */
        ASSERT_OK(hull_cmdline_parse("hull.future=1 hull.slots=x hull.slot.x=y hullslot=z hull hull.", &c));
        ASSERT_TRUE(c.slot == NULL);
        hull_cmdline_done(&c);
}

static void test_parse_roothash(void) {
        HullCmdline c = HULL_CMDLINE_INIT;

        ASSERT_OK(hull_cmdline_parse("hull.verity.roothash=ABCDEF0123", &c));
        ASSERT_STREQ(c.verity_roothash, "abcdef0123");
        hull_cmdline_done(&c);

        static const char *const bad[] = {
                "hull.verity.roothash",
                "hull.verity.roothash=",
                "hull.verity.roothash=xyz",
                "hull.verity.roothash=abc",          /* odd length */
                "hull.verity.roothash=\"ab cd\"",
                "hull.verity.roothash=" HASH64 HASH64 "00",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                HullCmdline b = HULL_CMDLINE_INIT;
                ASSERT_ERROR(hull_cmdline_parse(bad[i], &b), EINVAL);
                ASSERT_STREQ(b.invalid_key, "hull.verity.roothash");
                ASSERT_TRUE(b.verity_roothash == NULL);
                hull_cmdline_done(&b);
        }
}

static void test_parse_invalid(void) {
        static const struct {
                const char *line, *key;
        } cases[] = {
                { "hull.slot=", "hull.slot" },
                { "hull.slot=a/b", "hull.slot" },
                { "hull.slot=\"a b\"", "hull.slot" },
                { "hull.slot=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "hull.slot" },
                { "hull.init=sbin/init", "hull.init" },
                { "hull.init", "hull.init" },
                { "hull.persist=sda4", "hull.persist" },
                { "hull.persist=PARTLABEL=", "hull.persist" },
                { "hull.persist=FOO=bar", "hull.persist" },
                { "hull.fatal_delay=-1", "hull.fatal_delay" },
                { "hull.fatal_delay=10s", "hull.fatal_delay" },
                { "hull.fatal_delay=3601", "hull.fatal_delay" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                HullCmdline c = HULL_CMDLINE_INIT;
                ASSERT_ERROR(hull_cmdline_parse(cases[i].line, &c), EINVAL);
                ASSERT_STREQ(c.invalid_key, cases[i].key);
                hull_cmdline_done(&c);
        }

        /* The first refused key is reported, but a later fatal_delay still applies. */
        HullCmdline c = HULL_CMDLINE_INIT;
        ASSERT_ERROR(hull_cmdline_parse("hull.slot=a/b hull.init=x hull.fatal_delay=3", &c), EINVAL);
        ASSERT_STREQ(c.invalid_key, "hull.slot");
        ASSERT_EQ(c.fatal_delay, 3);
        hull_cmdline_done(&c);
}

static void test_persist_spec(void) {
        ASSERT_TRUE(hull_persist_spec_is_valid("/dev/vda4"));
        ASSERT_TRUE(hull_persist_spec_is_valid("PARTLABEL=hull-persist"));
        ASSERT_TRUE(hull_persist_spec_is_valid("PARTUUID=4d21b016-b534-45c2-a9fb-5c16e091fd2d"));
        ASSERT_TRUE(hull_persist_spec_is_valid("LABEL=data"));
        ASSERT_TRUE(hull_persist_spec_is_valid("UUID=1234"));
        ASSERT_TRUE(!hull_persist_spec_is_valid("vda4"));
        ASSERT_TRUE(!hull_persist_spec_is_valid("UUID="));
        ASSERT_TRUE(!hull_persist_spec_is_valid(""));
}

static void test_verity_table(void) {
        char *hash = NULL;
        bool ignores = true;

        ASSERT_OK(verity_table_parse("1 253:1 253:2 4096 4096 25600 1 sha256 " HASH64 " "
                                     "5ee1f2a4b8c3d9e0", &hash, &ignores));
        ASSERT_STREQ(hash, HASH64);
        ASSERT_TRUE(!ignores);
        free(hash);

        ASSERT_OK(verity_table_parse("1 7:0 7:1 4096 4096 100 1 sha256 " HASH64 " - 2 "
                                     "restart_on_corruption ignore_zero_blocks", &hash, &ignores));
        ASSERT_TRUE(!ignores);
        free(hash);

        ASSERT_OK(verity_table_parse("1 7:0 7:1 4096 4096 100 1 sha256 " HASH64 " - 1 ignore_corruption",
                                     &hash, &ignores));
        ASSERT_TRUE(ignores);
        free(hash);

        ASSERT_ERROR(verity_table_parse("1 7:0 7:1 4096 4096 100 1 sha256 " HASH64, &hash, &ignores), EBADMSG);
        ASSERT_ERROR(verity_table_parse("0 7:0 7:1 4096 4096 100 1 sha256 nothex -", &hash, &ignores), EBADMSG);
        ASSERT_ERROR(verity_table_parse("", &hash, &ignores), EBADMSG);
}

/* A DM_TABLE_STATUS result as the kernel lays it out. */
static size_t make_status(uint8_t *buf, size_t size, unsigned targets, const char *type, const char *params) {
        struct dm_ioctl io = {
                .data_start = sizeof(struct dm_ioctl),
                .target_count = targets,
        };
        struct dm_target_spec spec = { .length = 1000 };
        size_t used = sizeof(io) + sizeof(spec) + strlen(params) + 1;

        ASSERT_TRUE(used <= size);
        memset(buf, 0, size);
        io.data_size = (uint32_t) used;
        snprintf(spec.target_type, sizeof(spec.target_type), "%s", type);
        spec.next = (uint32_t) (sizeof(spec) + strlen(params) + 1);
        memcpy(buf, &io, sizeof(io));
        memcpy(buf + sizeof(io), &spec, sizeof(spec));
        memcpy(buf + sizeof(io) + sizeof(spec), params, strlen(params) + 1);
        return used;
}

static void test_dm_status(void) {
        uint8_t buf[1024];
        char *type, *params;
        size_t n;

        n = make_status(buf, sizeof(buf), 1, "verity", "1 7:0 7:1 4096 4096 100 1 sha256 " HASH64 " -");
        ASSERT_OK(dm_status_single_target(buf, sizeof(buf), &type, &params));
        ASSERT_STREQ(type, "verity");
        ASSERT_STREQ(params, "1 7:0 7:1 4096 4096 100 1 sha256 " HASH64 " -");
        free(type);
        free(params);

        make_status(buf, sizeof(buf), 1, "linear", "7:0 0");
        ASSERT_OK(dm_status_single_target(buf, sizeof(buf), &type, &params));
        ASSERT_STREQ(type, "linear");
        free(type);
        free(params);

        make_status(buf, sizeof(buf), 2, "verity", "x");
        ASSERT_ERROR(dm_status_single_target(buf, sizeof(buf), &type, &params), EMEDIUMTYPE);
        make_status(buf, sizeof(buf), 0, "verity", "x");
        ASSERT_ERROR(dm_status_single_target(buf, sizeof(buf), &type, &params), EMEDIUMTYPE);

        /* Parameters without their NUL within data_size. */
        n = make_status(buf, sizeof(buf), 1, "verity", "abc");
        ((struct dm_ioctl *) buf)->data_size = (uint32_t) (n - 1);
        ASSERT_ERROR(dm_status_single_target(buf, sizeof(buf), &type, &params), EBADMSG);
        /* Truncated buffers. */
        ASSERT_ERROR(dm_status_single_target(buf, 10, &type, &params), EBADMSG);
        make_status(buf, sizeof(buf), 1, "verity", "abc");
        ASSERT_ERROR(dm_status_single_target(buf, sizeof(struct dm_ioctl) + 4, &type, &params), EBADMSG);
        ((struct dm_ioctl *) buf)->data_start = 4;
        ASSERT_ERROR(dm_status_single_target(buf, sizeof(buf), &type, &params), EBADMSG);
}

static void test_boot_json(void) {
        MountSetup m = MOUNT_SETUP_INIT;
        char *s;

        m.cmdline.slot = strdup("a");
        m.boot_id = strdup("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
        m.persist_device = strdup("/dev/weird\"name\\\n");
        m.first_boot = true;
        m.realtime = 1700000000;
        ASSERT_OK(boot_json_format(&m, &s));
        ASSERT_STREQ(s,
                     "{\n"
                     "  \"slot\": \"a\",\n"
                     "  \"degraded\": false,\n"
                     "  \"verity_roothash\": null,\n"
                     "  \"boot_id\": \"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\",\n"
                     "  \"persist_device\": \"/dev/weird\\\"name\\\\\\n\",\n"
                     "  \"first_boot\": true,\n"
                     "  \"layout_version\": 1,\n"
                     "  \"realtime\": 1700000000\n"
                     "}\n");
        free(s);

        ASSERT_OK(boot_history_format(&m, &s));
        ASSERT_STREQ(s, "1700000000 slot=a boot_id=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 degraded=0 first_boot=1\n");
        free(s);

        free(m.cmdline.slot);
        m.cmdline.slot = NULL;
        m.cmdline.degraded = true;
        m.cmdline.verity_roothash = strdup(HASH64);
        m.first_boot = false;
        ASSERT_OK(boot_json_format(&m, &s));
        ASSERT_TRUE(strstr(s, "\"slot\": null,\n"));
        ASSERT_TRUE(strstr(s, "\"degraded\": true,\n"));
        ASSERT_TRUE(strstr(s, "\"verity_roothash\": \"" HASH64 "\",\n"));
        ASSERT_TRUE(strstr(s, "\"first_boot\": false,\n"));
        free(s);

        ASSERT_OK(boot_history_format(&m, &s));
        ASSERT_STREQ(s, "1700000000 slot=- boot_id=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 degraded=1 first_boot=0\n");
        free(s);

        mount_setup_done(&m);
}

static void test_layout_file(void) {
        unsigned v;

        ASSERT_OK(persist_layout_parse("1\n", &v));
        ASSERT_EQ(v, 1);
        ASSERT_OK(persist_layout_parse("12\n", &v));
        ASSERT_EQ(v, 12);
        ASSERT_ERROR(persist_layout_parse("1", &v), EBADMSG);
        ASSERT_ERROR(persist_layout_parse("0\n", &v), EBADMSG);
        ASSERT_ERROR(persist_layout_parse("\n", &v), EBADMSG);
        ASSERT_ERROR(persist_layout_parse("1\n\n", &v), EBADMSG);
        ASSERT_ERROR(persist_layout_parse("x\n", &v), EBADMSG);
        ASSERT_ERROR(persist_layout_parse("", &v), EBADMSG);
}

static char *tmp_path(const char *base, const char *rel) {
        char *p = path_join(base, rel);
        ASSERT_TRUE(p);
        return p;
}

static void put(const char *base, const char *rel, const char *content) {
        _cleanup_free_ char *p = tmp_path(base, rel);
        _cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(loop_write(fd, content, strlen(content)));
}

static bool has(const char *base, const char *rel, const char *content) {
        _cleanup_free_ char *p = tmp_path(base, rel), *s = NULL;
        if (read_full_file(p, 4096, &s, NULL) < 0)
                return false;
        return streq(s, content);
}

static void mkd(const char *base, const char *rel, mode_t mode) {
        _cleanup_free_ char *p = tmp_path(base, rel);
        ASSERT_TRUE(mkdir(p, mode) >= 0);
        ASSERT_TRUE(chmod(p, mode) >= 0);
}

static void test_seed(void) {
        char dir[] = "/tmp/test-init-seed.XXXXXX";
        SeedResult res;
        struct stat st;

        ASSERT_TRUE(mkdtemp(dir));
        _cleanup_free_ char *src = tmp_path(dir, "src"), *dst = tmp_path(dir, "dst");
        ASSERT_TRUE(mkdir(src, 0755) >= 0);
        ASSERT_TRUE(mkdir(dst, 0755) >= 0);

        mkd(src, "lib", 0755);
        mkd(src, "lib/app", 0750);
        put(src, "lib/app/state", "image");
        mkd(src, "lib/new", 0700);
        put(src, "lib/new/x", "new-x");
        put(src, "top", "image-top");
        _cleanup_free_ char *link = tmp_path(src, "run");
        ASSERT_TRUE(symlink("/run", link) >= 0);
        _cleanup_free_ char *fifo = tmp_path(src, "lib/fifo");
        ASSERT_TRUE(mkfifo(fifo, 0600) >= 0);
        /* Not copied from the source, and cleaned out of the destination. */
        put(src, SEED_TMP_NAME, "never");

        /* The node's data: an existing file, a file where the image has a
         * directory, and the leftover of an interrupted run. */
        mkd(dst, "lib", 0711);
        mkd(dst, "lib/app", 0755);
        put(dst, "lib/app/state", "node");
        put(dst, "top", "node-top");
        mkd(dst, "lib/" SEED_TMP_NAME, 0755);
        put(dst, "lib/" SEED_TMP_NAME "/junk", "junk");

        ASSERT_OK(seed_tree(src, dst, &res));
        ASSERT_STREQ(res.failed_path, "");
        /* run, lib/new, lib/fifo */
        ASSERT_EQ(res.copied, 3);

        ASSERT_TRUE(has(dst, "lib/app/state", "node"));
        ASSERT_TRUE(has(dst, "top", "node-top"));
        ASSERT_TRUE(has(dst, "lib/new/x", "new-x"));
        _cleanup_free_ char *newdir = tmp_path(dst, "lib/new");
        ASSERT_TRUE(stat(newdir, &st) >= 0);
        ASSERT_EQ(st.st_mode & 07777, 0700);
        _cleanup_free_ char *dlib = tmp_path(dst, "lib");
        ASSERT_TRUE(stat(dlib, &st) >= 0);
        ASSERT_EQ(st.st_mode & 07777, 0711);          /* existing: untouched */
        char target[64] = {};
        _cleanup_free_ char *dlink = tmp_path(dst, "run");
        ASSERT_EQ(readlink(dlink, target, sizeof(target) - 1), 4);
        ASSERT_STREQ(target, "/run");
        _cleanup_free_ char *dfifo = tmp_path(dst, "lib/fifo");
        ASSERT_TRUE(lstat(dfifo, &st) >= 0 && S_ISFIFO(st.st_mode));
        _cleanup_free_ char *tmp1 = tmp_path(dst, SEED_TMP_NAME), *tmp2 = tmp_path(dst, "lib/" SEED_TMP_NAME);
        ASSERT_TRUE(access(tmp1, F_OK) < 0 && errno == ENOENT);
        ASSERT_TRUE(access(tmp2, F_OK) < 0 && errno == ENOENT);

        /* Idempotent. */
        ASSERT_OK(seed_tree(src, dst, &res));
        ASSERT_EQ(res.copied, 0);

        /* A missing source is an error naming nothing below the roots. */
        _cleanup_free_ char *none = tmp_path(dir, "none");
        ASSERT_ERROR(seed_tree(none, dst, &res), ENOENT);

        _cleanup_free_ char *cmd = NULL;
        ASSERT_TRUE(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
        ASSERT_EQ(system(cmd), 0);
}

static void test_machine_id(void) {
        static const uint8_t id[16] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0x4f,
                                        0x80, 0x00, 0xff, 0x10, 0x20, 0x30, 0x40, 0x5e };
        char text[34];

        machine_id_format(id, text);
        ASSERT_STREQ(text, "0123456789abcd4f8000ff102030405e\n");
        ASSERT_TRUE(machine_id_is_valid(text, 33));
        /* what an image ships, and what systemd would not accept */
        ASSERT_TRUE(!machine_id_is_valid("uninitialized\n", 14));
        ASSERT_TRUE(!machine_id_is_valid("", 0));
        ASSERT_TRUE(!machine_id_is_valid("00000000000000000000000000000000\n", 33));
        ASSERT_TRUE(!machine_id_is_valid("0123456789ABCD4F8000FF102030405E\n", 33));
        ASSERT_TRUE(!machine_id_is_valid("0123456789abcd4f8000ff102030405e", 32));
        ASSERT_TRUE(!machine_id_is_valid("0123456789abcd4f8000ff102030405e\n\n", 34));
}

int main(void) {
        test_machine_id();
        TEST_RUN(test_next_word);
        TEST_RUN(test_parse_full);
        TEST_RUN(test_parse_defaults);
        TEST_RUN(test_parse_quoted);
        TEST_RUN(test_parse_override_and_dashes);
        TEST_RUN(test_parse_ignores);
        TEST_RUN(test_parse_roothash);
        TEST_RUN(test_parse_invalid);
        TEST_RUN(test_persist_spec);
        TEST_RUN(test_verity_table);
        TEST_RUN(test_dm_status);
        TEST_RUN(test_boot_json);
        TEST_RUN(test_layout_file);
        TEST_RUN(test_seed);
        return 0;
}
