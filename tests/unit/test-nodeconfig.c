/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "fileio.h"
#include "nodeconfig.h"
#include "spawn.h"
#include "strutil.h"
#include "tests.h"

/* "server ...\n" */
#define CHRONY_B64 "c2VydmVyIC4uLgo="

/* The canonical form of valid_json(): sorted keys, compact, contents in
 * base64, defaults left out. */
static const char canonical[] =
        "{\"debug\":{\"enabled\":true},"
        "\"files\":[{\"content_base64\":\"" CHRONY_B64 "\",\"mode\":\"0644\","
        "\"path\":\"/etc/chrony/sources.d/hull.sources\"},"
        "{\"content_base64\":\"dmVyc2lvbiA9IDIK\",\"mode\":\"0600\",\"path\":\"/etc/containerd/config.toml\"}],"
        "\"generation\":4,"
        "\"kernel_args\":[\"systemd.unified_cgroup_hierarchy=1\",\"mitigations=auto\"],"
        "\"sysctl\":{\"net.ipv4.ip_forward\":\"1\",\"vm.max_map_count\":\"262144\"},"
        "\"units\":{\"disable\":[\"getty@tty1.service\"],\"enable\":[\"chrony.service\",\"containerd.service\"]}}";

/* Deliberately not in canonical order anywhere. */
static json_t *valid_json(void) {
        json_t *j = json_pack("{s:I, s:{s:i, s:s}, s:[s, s], s:[{s:s, s:s, s:s}, {s:s, s:s}],"
                              " s:{s:[s, s], s:[s]}, s:{s:b}}",
                              "generation", (json_int_t) 4,
                              "sysctl", "vm.max_map_count", 262144, "net.ipv4.ip_forward", "1",
                              "kernel_args", "systemd.unified_cgroup_hierarchy=1", "mitigations=auto",
                              "files",
                              "path", "/etc/containerd/config.toml", "content", "version = 2\n", "mode", "600",
                              "path", "/etc/chrony/sources.d/hull.sources", "content_base64", CHRONY_B64,
                              "units", "enable", "containerd.service", "chrony.service",
                              "disable", "getty@tty1.service",
                              "debug", "enabled", 1);
        ASSERT_TRUE(j);
        return j;
}

static int parse_str_err(const char *s, size_t len, char **ret_error) {
        _cleanup_(node_config_freep) NodeConfig *c = NULL;
        int r = node_config_parse(s, len, &c, ret_error);
        ASSERT_TRUE(r < 0 ? c == NULL : c != NULL);
        return r;
}

/* Parses j (consuming it) and, if substr is non-NULL, checks that the
 * error message contains it. */
static int parse_json_expect(json_t *j, const char *substr) {
        _cleanup_free_ char *s = json_dumps(j, JSON_INDENT(2)), *err = NULL;
        ASSERT_TRUE(s);
        json_decref(j);
        int r = parse_str_err(s, strlen(s), &err);
        if (r == -EBADMSG || r == -E2BIG)
                ASSERT_TRUE(err != NULL);
        if (r >= 0)
                ASSERT_TRUE(err == NULL);
        if (substr) {
                if (!err || !strstr(err, substr)) {
                        fprintf(stderr, "message \"%s\" does not contain \"%s\"\n", err ?: "(null)", substr);
                        abort();
                }
        }
        return r;
}

static int parse_json(json_t *j) {
        return parse_json_expect(j, NULL);
}

static void expect_bad(json_t *j, const char *substr) {
        ASSERT_ERROR(parse_json_expect(j, substr), EBADMSG);
}

static json_t *file_at(json_t *j, size_t i) {
        return json_array_get(json_object_get(j, "files"), i);
}

static void test_valid(void) {
        _cleanup_(node_config_freep) NodeConfig *c = NULL, *c2 = NULL;
        _cleanup_free_ char *pretty = NULL, *out = NULL, *out2 = NULL, *args = NULL;
        json_t *j = valid_json();

        pretty = json_dumps(j, JSON_INDENT(4));
        json_decref(j);
        ASSERT_OK(node_config_parse(pretty, strlen(pretty), &c, NULL));

        ASSERT_EQ(c->generation, 4);
        ASSERT_EQ(c->n_sysctl, 2);
        ASSERT_STREQ(c->sysctl[0].key, "net.ipv4.ip_forward");
        ASSERT_STREQ(c->sysctl[0].value, "1");
        ASSERT_STREQ(c->sysctl[1].key, "vm.max_map_count");
        ASSERT_STREQ(c->sysctl[1].value, "262144"); /* from a JSON integer */
        ASSERT_EQ(strv_length(c->kernel_args), 2);
        ASSERT_STREQ(c->kernel_args[0], "systemd.unified_cgroup_hierarchy=1"); /* order kept */
        ASSERT_STREQ(c->kernel_args[1], "mitigations=auto");
        ASSERT_EQ(c->n_files, 2);
        ASSERT_STREQ(c->files[0].path, "/etc/chrony/sources.d/hull.sources"); /* sorted */
        ASSERT_EQ(c->files[0].size, 11);
        ASSERT_TRUE(memcmp(c->files[0].content, "server ...\n", 11) == 0);
        ASSERT_EQ(c->files[0].mode, 0644); /* default */
        ASSERT_STREQ(c->files[1].path, "/etc/containerd/config.toml");
        ASSERT_EQ(c->files[1].size, 12);
        ASSERT_TRUE(memcmp(c->files[1].content, "version = 2\n", 12) == 0);
        ASSERT_EQ(c->files[1].mode, 0600);
        ASSERT_EQ(strv_length(c->units_enable), 2);
        ASSERT_STREQ(c->units_enable[0], "chrony.service"); /* sorted */
        ASSERT_STREQ(c->units_enable[1], "containerd.service");
        ASSERT_EQ(strv_length(c->units_disable), 1);
        ASSERT_STREQ(c->units_disable[0], "getty@tty1.service");
        ASSERT_TRUE(c->debug_enabled);

        args = node_config_kernel_args_string(c);
        ASSERT_STREQ(args, "systemd.unified_cgroup_hierarchy=1 mitigations=auto");

        /* Canonical, a fixed point, and equal after the round trip. */
        ASSERT_OK(node_config_format(c, &out));
        ASSERT_STREQ(out, canonical);
        ASSERT_OK(node_config_parse(out, strlen(out), &c2, NULL));
        ASSERT_TRUE(node_config_equal(c, c2));
        ASSERT_OK(node_config_format(c2, &out2));
        ASSERT_STREQ(out, out2);

        /* The example from docs/CONFIG.md. */
        static const char doc[] =
                "{\n"
                "  \"generation\": 4,\n"
                "  \"sysctl\": {\"net.ipv4.ip_forward\": \"1\", \"vm.max_map_count\": \"262144\"},\n"
                "  \"kernel_args\": [\"systemd.unified_cgroup_hierarchy=1\", \"mitigations=auto\"],\n"
                "  \"files\": [\n"
                "    {\"path\": \"/etc/containerd/config.toml\", \"content\": \"version = 2\\n\",\n"
                "     \"mode\": \"0644\"},\n"
                "    {\"path\": \"/etc/chrony/sources.d/hull.sources\", \"content_base64\": \"c2VydmVyIC4uLgo=\",\n"
                "     \"mode\": \"0644\"}\n"
                "  ],\n"
                "  \"units\": {\"enable\": [\"chrony.service\"], \"disable\": [\"getty@tty1.service\"]},\n"
                "  \"debug\": {\"enabled\": false}\n"
                "}\n";
        ASSERT_OK(parse_str_err(doc, strlen(doc), NULL));
}

static void test_minimal(void) {
        _cleanup_(node_config_freep) NodeConfig *c = NULL, *c2 = NULL;
        _cleanup_free_ char *out = NULL, *out2 = NULL, *args = NULL;
        static const char doc[] =
                "{\"generation\":1,\"sysctl\":{},\"kernel_args\":[],\"files\":[],"
                "\"units\":{\"enable\":[]},\"debug\":{}}";

        ASSERT_OK(node_config_parse(doc, strlen(doc), &c, NULL));
        ASSERT_EQ(c->generation, 1);
        ASSERT_TRUE(c->n_sysctl == 0 && c->n_files == 0 && !c->debug_enabled);
        ASSERT_TRUE(c->kernel_args == NULL && c->units_enable == NULL && c->units_disable == NULL);
        args = node_config_kernel_args_string(c);
        ASSERT_STREQ(args, "");

        /* Empty sections and defaults disappear from the canonical form. */
        ASSERT_OK(node_config_format(c, &out));
        ASSERT_STREQ(out, "{\"generation\":1}");
        ASSERT_OK(node_config_parse(out, strlen(out), &c2, NULL));
        ASSERT_TRUE(node_config_equal(c, c2));

        /* Explicit defaults are the same config. */
        node_config_free(c2);
        c2 = NULL;
        static const char doc2[] = "{\"generation\":1,\"debug\":{\"enabled\":false},\"units\":{}}";
        ASSERT_OK(node_config_parse(doc2, strlen(doc2), &c2, NULL));
        ASSERT_TRUE(node_config_equal(c, c2));
        ASSERT_OK(node_config_format(c2, &out2));
        ASSERT_STREQ(out2, "{\"generation\":1}");
}

static void test_generation(void) {
        json_t *j;

        j = valid_json();
        json_object_del(j, "generation");
        expect_bad(j, "generation: required");

        json_t *bad[] = {
                json_integer(0), json_integer(-1), json_real(4.0), json_string("4"), json_true(), json_null(),
                json_array(),
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                j = valid_json();
                json_object_set_new(j, "generation", bad[i]);
                expect_bad(j, "generation: must be an integer >= 1");
        }

        j = valid_json();
        json_object_set_new(j, "generation", json_integer(INT64_MAX));
        ASSERT_OK(parse_json(j));

        /* Beyond int64: the JSON parser refuses the number. */
        static const char huge[] = "{\"generation\":99999999999999999999999}";
        _cleanup_free_ char *err = NULL;
        ASSERT_ERROR(parse_str_err(huge, strlen(huge), &err), EBADMSG);
        ASSERT_TRUE(err && strstr(err, "invalid JSON"));
}

static void test_unknown_keys(void) {
        json_t *j;

        j = valid_json();
        json_object_set_new(j, "sysctls", json_object());
        expect_bad(j, "unknown key \"sysctls\" (known keys: debug, files, generation, kernel_args, sysctl, units)");

        j = valid_json();
        json_object_set_new(file_at(j, 1), "owner", json_string("root"));
        expect_bad(j, "files[1]: unknown key \"owner\"");

        j = valid_json();
        json_object_set_new(json_object_get(j, "units"), "mask", json_array());
        expect_bad(j, "units: unknown key \"mask\"");

        j = valid_json();
        json_object_set_new(json_object_get(j, "debug"), "ssh", json_true());
        expect_bad(j, "debug: unknown key \"ssh\"");

        /* Keys are case-sensitive; odd bytes in a key are escaped in the
         * message. */
        j = valid_json();
        json_object_set_new(j, "Generation", json_integer(1));
        expect_bad(j, "unknown key \"Generation\"");
        j = valid_json();
        json_object_set_new(j, "a\nb\xc3\xa4", json_integer(1));
        expect_bad(j, "unknown key \"a\\x0ab\\xc3\\xa4\"");
}

static void test_sysctl(void) {
        static const char *const good_keys[] = {
                "net.ipv4.ip_forward", "vm.swappiness", "kernel.pid_max", "net.ipv4.conf.all.rp_filter",
                "net.ipv6.conf.eth0-1.accept_ra", "a", "fs.inotify.max_user_watches",
        };
        static const struct {
                const char *key, *msg;
        } bad_keys[] = {
                { "", "key must not be empty" },
                { ".net.ipv4", "empty segment" },
                { "net.ipv4.", "empty segment" },
                { "net..ipv4", "empty segment" },
                { "net/ipv4/ip_forward", "may only contain" },
                { "Net.ipv4", "may only contain" },
                { "net.ipv4.ip forward", "may only contain" },
                { "net.*.x", "may only contain" },
                { "-net.ipv4.ip_forward", "must not start with '-'" },
                { "net.ipv4\n", "may only contain" },
        };
        static const struct {
                const char *value, *msg;
        } bad_values[] = {
                { "", "must not be empty" },
                { "1\n", "printable ASCII" },
                { "1\t2", "printable ASCII" },
                { "caf\xc3\xa9", "printable ASCII" },
                { " 1", "must not start or end with a space" },
                { "1 ", "must not start or end with a space" },
        };
        json_t *j;

        for (size_t i = 0; i < ELEMENTSOF(good_keys); i++) {
                j = valid_json();
                json_object_set_new(json_object_get(j, "sysctl"), good_keys[i], json_string("1"));
                ASSERT_OK(parse_json(j));
        }
        for (size_t i = 0; i < ELEMENTSOF(bad_keys); i++) {
                j = valid_json();
                json_object_set_new(json_object_get(j, "sysctl"), bad_keys[i].key, json_string("1"));
                expect_bad(j, bad_keys[i].msg);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad_values); i++) {
                j = valid_json();
                json_object_set_new(json_object_get(j, "sysctl"), "vm.swappiness", json_string(bad_values[i].value));
                expect_bad(j, bad_values[i].msg);
        }
        j = valid_json();
        json_object_set_new(json_object_get(j, "sysctl"), "vm.swappiness", json_string("x"));
        ASSERT_OK(parse_json(j));
        j = valid_json();
        json_object_set_new(json_object_get(j, "sysctl"), "net.ipv4.ip_local_port_range", json_string("32768 60999"));
        ASSERT_OK(parse_json(j));

        /* The message names the key. */
        j = valid_json();
        json_object_set_new(json_object_get(j, "sysctl"), "vm.swappiness", json_string(""));
        expect_bad(j, "sysctl[\"vm.swappiness\"]: value must not be empty");

        /* Integers become strings, negative ones too; nothing else does. */
        _cleanup_(node_config_freep) NodeConfig *c = NULL;
        static const char ints[] = "{\"generation\":1,\"sysctl\":{\"a.b\":-1,\"a.c\":0}}";
        ASSERT_OK(node_config_parse(ints, strlen(ints), &c, NULL));
        ASSERT_STREQ(c->sysctl[0].value, "-1");
        ASSERT_STREQ(c->sysctl[1].value, "0");
        json_t *bad_types[] = { json_real(1.5), json_true(), json_null(), json_array(), json_object() };
        for (size_t i = 0; i < ELEMENTSOF(bad_types); i++) {
                j = valid_json();
                json_object_set_new(json_object_get(j, "sysctl"), "vm.swappiness", bad_types[i]);
                expect_bad(j, "sysctl[\"vm.swappiness\"]: value must be a string or an integer");
        }
        j = valid_json();
        json_object_set_new(j, "sysctl", json_array());
        expect_bad(j, "sysctl: must be an object");

        /* Lengths. */
        char key[300], value[5000];
        memset(key, 'k', sizeof(key));
        key[255] = '\0';
        j = valid_json();
        json_object_set_new(json_object_get(j, "sysctl"), key, json_string("1"));
        ASSERT_OK(parse_json(j));
        key[255] = 'k';
        key[256] = '\0';
        j = valid_json();
        json_object_set_new(json_object_get(j, "sysctl"), key, json_string("1"));
        expect_bad(j, "key longer than 255 characters");
        memset(value, 'v', sizeof(value));
        value[4096] = '\0';
        j = valid_json();
        json_object_set_new(json_object_get(j, "sysctl"), "kernel.x", json_string(value));
        ASSERT_OK(parse_json(j));
        value[4096] = 'v';
        value[4097] = '\0';
        j = valid_json();
        json_object_set_new(json_object_get(j, "sysctl"), "kernel.x", json_string(value));
        expect_bad(j, "value longer than 4096 bytes");

        /* Count. */
        j = valid_json();
        json_object_clear(json_object_get(j, "sysctl"));
        for (int i = 0; i < NODE_CONFIG_SYSCTL_MAX; i++) {
                (void) snprintf(key, sizeof(key), "k.n%d", i);
                json_object_set_new(json_object_get(j, "sysctl"), key, json_integer(i));
        }
        json_incref(j);
        ASSERT_OK(parse_json(j));
        json_object_set_new(json_object_get(j, "sysctl"), "k.one_more", json_integer(1));
        expect_bad(j, "sysctl: more than 256 entries");

        /* The same key twice is refused by the JSON parser. */
        static const char dup[] = "{\"generation\":1,\"sysctl\":{\"a.b\":\"1\",\"a.b\":\"2\"}}";
        ASSERT_ERROR(parse_str_err(dup, strlen(dup), NULL), EBADMSG);
}

static void test_kernel_args(void) {
        static const char *const good[] = {
                "quiet", "console=ttyS0,115200n8", "isolcpus=1-3,5", "mitigations=auto,nosmt", "rd.luks=0",
                "hugepagesz=1G", "a=b=c", "rootdelay=5", "initrd_something", "panic_on_warn=1", "hull",
                "systemd.unit=multi-user.target", "dyndbg=+p", "x=~!@%^*()[]?:/.", "roothash=abc",
        };
        static const struct {
                const char *arg, *msg;
        } bad[] = {
                { "", "must not be empty" },
                { "a b", "one token" },
                { "a\tb", "one token" },
                { "a\nb", "one token" },
                { "\"quoted\"", "one token" },
                { "it's", "one token" },
                { "a\\b", "one token" },
                { "a;reboot", "one token" },
                { "$root", "one token" },
                { "${x}", "one token" },
                { "a#b", "one token" },
                { "a|b", "one token" },
                { "a&b", "one token" },
                { "a>b", "one token" },
                { "`x`", "one token" },
                { "caf\xc3\xa9", "one token" },
                { "--", "\"--\" is not allowed" },
                { "root=/dev/sda1", "set by Hull" },
                { "init=/bin/sh", "set by Hull" },
                { "rootfstype=ext4", "set by Hull" },
                { "panic=0", "set by Hull" },
                { "root", "set by Hull" },
                { "hull.slot=a", "hull.* arguments" },
                { "hull.", "hull.* arguments" },
        };
        json_t *j;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                j = valid_json();
                json_array_append_new(json_object_get(j, "kernel_args"), json_string(good[i]));
                ASSERT_OK(parse_json(j));
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                j = valid_json();
                json_array_append_new(json_object_get(j, "kernel_args"), json_string(bad[i].arg));
                expect_bad(j, bad[i].msg);
        }
        j = valid_json();
        json_array_append_new(json_object_get(j, "kernel_args"), json_string("init=/bin/sh"));
        expect_bad(j, "kernel_args[2]: \"init=/bin/sh\" is set by Hull");
        j = valid_json();
        json_array_append_new(json_object_get(j, "kernel_args"), json_integer(1));
        expect_bad(j, "kernel_args[2]: must be a string");
        j = valid_json();
        json_object_set_new(j, "kernel_args", json_string("quiet"));
        expect_bad(j, "kernel_args: must be an array");

        /* Duplicates are allowed (console= may be given twice). */
        j = valid_json();
        json_array_append_new(json_object_get(j, "kernel_args"), json_string("mitigations=auto"));
        ASSERT_OK(parse_json(j));

        char arg[300];
        memset(arg, 'a', sizeof(arg));
        arg[256] = '\0';
        j = valid_json();
        json_array_append_new(json_object_get(j, "kernel_args"), json_string(arg));
        ASSERT_OK(parse_json(j));
        arg[256] = 'a';
        arg[257] = '\0';
        j = valid_json();
        json_array_append_new(json_object_get(j, "kernel_args"), json_string(arg));
        expect_bad(j, "longer than 256 characters");

        j = valid_json();
        json_array_clear(json_object_get(j, "kernel_args"));
        for (int i = 0; i < NODE_CONFIG_KERNEL_ARGS_MAX; i++)
                json_array_append_new(json_object_get(j, "kernel_args"), json_string("quiet"));
        json_incref(j);
        ASSERT_OK(parse_json(j));
        json_array_append_new(json_object_get(j, "kernel_args"), json_string("quiet"));
        expect_bad(j, "kernel_args: more than 64 entries");
}

static void test_file_paths(void) {
        static const char *const good[] = {
                "/etc/a", "/etc/fstab", "/etc/os-release", "/etc/hostname", "/etc/.hidden", "/etc/a/...",
                "/etc/systemd/system/getty@.service", "/etc/c++/x_y-z.conf", "/etc/A/B",
        };
        static const struct {
                const char *path, *msg;
        } bad[] = {
                { "", "must be an absolute path" },
                { "etc/a", "must be an absolute path" },
                { "/etc", "must be under /etc" },
                { "/etc/", "must be normalised" },
                { "/etc/a/", "must be normalised" },
                { "/etc//a", "must be normalised" },
                { "/etc/./a", "must be normalised" },
                { "/etc/a/.", "must be normalised" },
                { "/etc/../root/.ssh/authorized_keys", "must be normalised" },
                { "/etc/a/..", "must be normalised" },
                { "/etcetera/a", "must be under /etc" },
                { "/usr/lib/os-release", "must be under /etc" },
                { "/var/lib/x", "must be under /etc" },
                { "/", "must be under /etc" },
                { "/etc/a b", "may only contain" },
                { "/etc/a:b", "may only contain" },
                { "/etc/a\\b", "may only contain" },
                { "/etc/caf\xc3\xa9", "may only contain" },
                { "/etc/a\nb", "may only contain" },
                { "/etc/sysctl.d/90-hull.conf", "reserved" },
        };
        json_t *j;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                j = valid_json();
                json_object_set_new(file_at(j, 0), "path", json_string(good[i]));
                ASSERT_OK(parse_json(j));
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                j = valid_json();
                json_object_set_new(file_at(j, 1), "path", json_string(bad[i].path));
                expect_bad(j, bad[i].msg);
        }
        /* The exact message from the brief. */
        j = valid_json();
        json_object_set_new(file_at(j, 1), "path", json_string("/usr/bin/x"));
        expect_bad(j, "files[1].path: must be under /etc");

        char path[300] = "/etc/";
        memset(path + 5, 'p', 250);
        path[255] = '\0';
        j = valid_json();
        json_object_set_new(file_at(j, 0), "path", json_string(path));
        ASSERT_OK(parse_json(j));
        path[255] = 'p';
        path[256] = '\0';
        j = valid_json();
        json_object_set_new(file_at(j, 0), "path", json_string(path));
        expect_bad(j, "longer than 255 characters");

        /* Duplicates, and a path that another one needs as a directory. */
        j = valid_json();
        json_object_set_new(file_at(j, 1), "path", json_string("/etc/containerd/config.toml"));
        expect_bad(j, "files[1].path: \"/etc/containerd/config.toml\" is already listed as files[0]");
        j = valid_json();
        json_object_set_new(file_at(j, 1), "path", json_string("/etc/containerd/config.toml/x"));
        expect_bad(j, "cannot be both a file and a directory");
        j = valid_json();
        json_object_set_new(file_at(j, 1), "path", json_string("/etc/containerd"));
        expect_bad(j, "cannot be both a file and a directory");
        j = valid_json();
        json_object_set_new(file_at(j, 1), "path", json_string("/etc/containerd/config.toml.d/x"));
        ASSERT_OK(parse_json(j));

        /* Types and presence. */
        j = valid_json();
        json_object_del(file_at(j, 0), "path");
        expect_bad(j, "files[0].path: required");
        j = valid_json();
        json_object_set_new(file_at(j, 0), "path", json_integer(1));
        expect_bad(j, "files[0].path: must be a string");
        j = valid_json();
        json_array_append_new(json_object_get(j, "files"), json_string("/etc/x"));
        expect_bad(j, "files[2]: must be an object");
        j = valid_json();
        json_object_set_new(j, "files", json_object());
        expect_bad(j, "files: must be an array");

        /* Count. */
        j = valid_json();
        json_array_clear(json_object_get(j, "files"));
        for (int i = 0; i < NODE_CONFIG_FILES_MAX; i++) {
                (void) snprintf(path, sizeof(path), "/etc/f%d", i);
                json_array_append_new(json_object_get(j, "files"),
                                      json_pack("{s:s, s:s}", "path", path, "content", ""));
        }
        json_incref(j);
        ASSERT_OK(parse_json(j));
        json_array_append_new(json_object_get(j, "files"), json_pack("{s:s, s:s}", "path", "/etc/g", "content", ""));
        expect_bad(j, "files: more than 128 entries");
}

static int parse_b64(const char *b64, NodeConfig **ret) {
        json_t *j = json_pack("{s:i, s:[{s:s, s:s}]}", "generation", 1, "files", "path", "/etc/x",
                              "content_base64", b64);
        _cleanup_free_ char *s = json_dumps(j, 0);
        json_decref(j);
        return node_config_parse(s, strlen(s), ret, NULL);
}

static void test_file_contents(void) {
        static const struct {
                const char *b64, *decoded;
        } good[] = {
                { "", "" },
                { "QQ==", "A" },
                { "QUI=", "AB" },
                { "QUJD", "ABC" },
                { "QUJD\nREVG\n", "ABCDEF" },    /* as base64(1) wraps it */
                { " QUJD\r\nRA== ", "ABCD" },
        };
        static const char *const bad[] = {
                "QQ", "QQ=", "Q===", "====", "QUJD=", "QQ==QQ==", "QU=D", "QUJ*", "QUJD-_==", "Q R",
                "QR==", /* non-zero unused bits: not the canonical spelling of "A" */
                "QUJ=", "\xc3\xa9QQ=",
        };
        json_t *j;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                _cleanup_(node_config_freep) NodeConfig *c = NULL;
                ASSERT_OK(parse_b64(good[i].b64, &c));
                ASSERT_EQ(c->files[0].size, strlen(good[i].decoded));
                ASSERT_TRUE(c->files[0].content != NULL);
                ASSERT_TRUE(memcmp(c->files[0].content, good[i].decoded, c->files[0].size) == 0);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                NodeConfig *c = NULL;
                ASSERT_ERROR(parse_b64(bad[i], &c), EBADMSG);
                ASSERT_TRUE(c == NULL);
        }
        j = valid_json();
        json_object_set_new(file_at(j, 1), "content_base64", json_string("!!!!"));
        expect_bad(j, "files[1].content_base64: not valid base64");

        /* Binary content survives the round trip. */
        {
                _cleanup_(node_config_freep) NodeConfig *c = NULL, *c2 = NULL;
                _cleanup_free_ char *out = NULL;
                ASSERT_OK(parse_b64("AAEC/w==", &c));
                ASSERT_EQ(c->files[0].size, 4);
                ASSERT_EQ(c->files[0].content[3], 0xff);
                ASSERT_OK(node_config_format(c, &out));
                ASSERT_TRUE(strstr(out, "\"AAEC/w==\""));
                ASSERT_OK(node_config_parse(out, strlen(out), &c2, NULL));
                ASSERT_TRUE(node_config_equal(c, c2));
        }

        /* Exactly one of content and content_base64. */
        j = valid_json();
        json_object_set_new(file_at(j, 0), "content_base64", json_string("QQ=="));
        expect_bad(j, "files[0]: exactly one of content and content_base64 is required");
        j = valid_json();
        json_object_del(file_at(j, 1), "content_base64");
        expect_bad(j, "files[1]: exactly one of content and content_base64 is required");
        j = valid_json();
        json_object_set_new(file_at(j, 0), "content", json_integer(1));
        expect_bad(j, "files[0].content: must be a string");
        j = valid_json();
        json_object_set_new(file_at(j, 1), "content_base64", json_null());
        expect_bad(j, "files[1].content_base64: must be a string");

        /* UTF-8 content is kept byte for byte. */
        {
                _cleanup_(node_config_freep) NodeConfig *c = NULL;
                static const char doc[] =
                        "{\"generation\":1,\"files\":[{\"path\":\"/etc/motd\","
                        "\"content\":\"Gr\\u00fc\\u00dfe \xe2\x9c\x93\\n\"}]}";
                ASSERT_OK(node_config_parse(doc, strlen(doc), &c, NULL));
                ASSERT_EQ(c->files[0].size, strlen("Gr\xc3\xbc\xc3\x9f" "e \xe2\x9c\x93\n"));
                ASSERT_TRUE(memcmp(c->files[0].content, "Gr\xc3\xbc\xc3\x9f" "e \xe2\x9c\x93\n",
                                   c->files[0].size) == 0);
        }
        /* NUL needs content_base64; invalid UTF-8 is no JSON. */
        static const char nul[] = "{\"generation\":1,\"files\":[{\"path\":\"/etc/x\",\"content\":\"a\\u0000b\"}]}";
        ASSERT_ERROR(parse_str_err(nul, strlen(nul), NULL), EBADMSG);
        static const char latin1[] = "{\"generation\":1,\"files\":[{\"path\":\"/etc/x\",\"content\":\"\xe9\"}]}";
        ASSERT_ERROR(parse_str_err(latin1, strlen(latin1), NULL), EBADMSG);

        /* Sizes: 256 KiB either way, one byte more is refused. */
        _cleanup_free_ char *big = malloc(NODE_CONFIG_FILE_SIZE_MAX + 2);
        _cleanup_free_ uint8_t *raw = calloc(1, NODE_CONFIG_FILE_SIZE_MAX + 3);
        _cleanup_free_ char *b64 = malloc((NODE_CONFIG_FILE_SIZE_MAX + 3) / 3 * 4 + 8);
        ASSERT_TRUE(big && raw && b64);
        memset(big, 'x', NODE_CONFIG_FILE_SIZE_MAX + 1);
        big[NODE_CONFIG_FILE_SIZE_MAX] = '\0';
        j = valid_json();
        json_object_set_new(file_at(j, 0), "content", json_string(big));
        ASSERT_OK(parse_json(j));
        big[NODE_CONFIG_FILE_SIZE_MAX] = 'x';
        big[NODE_CONFIG_FILE_SIZE_MAX + 1] = '\0';
        j = valid_json();
        json_object_set_new(file_at(j, 0), "content", json_string(big));
        expect_bad(j, "files[0].content: larger than 256 KiB");

        for (size_t extra = 0; extra < 3; extra++) {
                size_t n = NODE_CONFIG_FILE_SIZE_MAX + extra;
                static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                size_t k = 0;
                for (size_t i = 0; i < n; i += 3) {
                        uint32_t v = (uint32_t) raw[i] << 16 | (uint32_t) raw[i + 1] << 8 | raw[i + 2];
                        b64[k++] = alphabet[(v >> 18) & 63];
                        b64[k++] = alphabet[(v >> 12) & 63];
                        b64[k++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
                        b64[k++] = i + 2 < n ? alphabet[v & 63] : '=';
                }
                b64[k] = '\0';
                j = valid_json();
                json_object_set_new(file_at(j, 1), "content_base64", json_string(b64));
                if (extra == 0)
                        ASSERT_OK(parse_json(j));
                else
                        expect_bad(j, "files[1].content_base64: larger than 256 KiB once decoded");
        }
}

static void test_file_modes(void) {
        static const struct {
                const char *mode;
                mode_t expect;
        } good[] = {
                { "0644", 0644 }, { "644", 0644 }, { "0600", 0600 }, { "0000", 0 }, { "000", 0 },
                { "0777", 0777 }, { "0755", 0755 }, { "0400", 0400 },
        };
        static const struct {
                const char *mode, *msg;
        } bad[] = {
                { "4755", "setuid, setgid and sticky bits are not allowed" },
                { "2755", "setuid, setgid and sticky bits are not allowed" },
                { "1777", "setuid, setgid and sticky bits are not allowed" },
                { "0648", "must be an octal string" },
                { "64", "must be an octal string" },
                { "00644", "must be an octal string" },
                { "", "must be an octal string" },
                { "rw-r--r--", "must be an octal string" },
                { " 644", "must be an octal string" },
                { "0x1a4", "must be an octal string" },
                { "+644", "must be an octal string" },
        };
        json_t *j;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                _cleanup_(node_config_freep) NodeConfig *c = NULL;
                json_t *d = json_pack("{s:i, s:[{s:s, s:s, s:s}]}", "generation", 1, "files", "path", "/etc/x",
                                      "content", "", "mode", good[i].mode);
                _cleanup_free_ char *s = json_dumps(d, 0), *out = NULL;
                json_decref(d);
                ASSERT_OK(node_config_parse(s, strlen(s), &c, NULL));
                ASSERT_EQ(c->files[0].mode, good[i].expect);
                ASSERT_OK(node_config_format(c, &out));
                char want[32];
                (void) snprintf(want, sizeof(want), "\"mode\":\"%04o\"", (unsigned) good[i].expect);
                ASSERT_TRUE(strstr(out, want));
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                j = valid_json();
                json_object_set_new(file_at(j, 1), "mode", json_string(bad[i].mode));
                expect_bad(j, bad[i].msg);
        }
        /* A number would be read as decimal by half the world. */
        j = valid_json();
        json_object_set_new(file_at(j, 1), "mode", json_integer(644));
        expect_bad(j, "files[1].mode: must be an octal string such as \"0644\"");
}

static void test_units(void) {
        static const char *const good[] = {
                "chrony.service", "containerd.socket", "fstrim.timer", "systemd-ask-password-console.path",
                "multi-user.target", "var-lib-containerd.mount", "getty@tty1.service", "getty@.service",
                "serial-getty@ttyS0.service", "mnt-a\\x2db.mount", "foo:bar.service", "a.b.c.service",
        };
        static const struct {
                const char *unit, *msg;
        } bad[] = {
                { "", "must not be empty" },
                { "chrony", "must end in" },
                { "chrony.swap", "must end in" },
                { "chrony.device", "must end in" },
                { "chrony.slice", "must end in" },
                { "chrony.service.d", "must end in" },
                { ".service", "must not start with" },
                { "-chrony.service", "must not start with" },
                { "@tty1.service", "must not start with" },
                { "a@b@c.service", "at most one '@'" },
                { "../chrony.service", "may only contain" },
                { "chrony service", "may only contain" },
                { "chrony;reboot.service", "may only contain" },
                { "/etc/chrony.service", "may only contain" },
                { "caf\xc3\xa9.service", "may only contain" },
        };
        json_t *j;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                j = valid_json();
                json_object_set_new(j, "units", json_pack("{s:[s]}", "enable", good[i]));
                ASSERT_OK(parse_json(j));
                j = valid_json();
                json_object_set_new(j, "units", json_pack("{s:[s]}", "disable", good[i]));
                ASSERT_OK(parse_json(j));
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                j = valid_json();
                json_array_append_new(json_object_get(json_object_get(j, "units"), "enable"), json_string(bad[i].unit));
                expect_bad(j, bad[i].msg);
                j = valid_json();
                json_array_append_new(json_object_get(json_object_get(j, "units"), "disable"),
                                      json_string(bad[i].unit));
                expect_bad(j, bad[i].msg);
        }
        j = valid_json();
        json_array_append_new(json_object_get(json_object_get(j, "units"), "disable"), json_string("sshd"));
        expect_bad(j, "units.disable[1]: \"sshd\" must end in");

        char unit[300];
        memset(unit, 'u', sizeof(unit));
        memcpy(unit + 255 - 8, ".service", 9);
        j = valid_json();
        json_array_append_new(json_object_get(json_object_get(j, "units"), "enable"), json_string(unit));
        ASSERT_OK(parse_json(j));
        memcpy(unit + 256 - 8, ".service", 9);
        j = valid_json();
        json_array_append_new(json_object_get(json_object_get(j, "units"), "enable"), json_string(unit));
        expect_bad(j, "longer than 255 characters");

        /* Both enabled and disabled; twice in one list. */
        j = valid_json();
        json_array_append_new(json_object_get(json_object_get(j, "units"), "disable"), json_string("chrony.service"));
        expect_bad(j, "units: \"chrony.service\" is both enabled and disabled");
        j = valid_json();
        json_array_append_new(json_object_get(json_object_get(j, "units"), "enable"), json_string("chrony.service"));
        expect_bad(j, "units.enable: \"chrony.service\" is listed twice");

        /* Types. */
        j = valid_json();
        json_object_set_new(j, "units", json_array());
        expect_bad(j, "units: must be an object");
        j = valid_json();
        json_object_set_new(json_object_get(j, "units"), "enable", json_string("chrony.service"));
        expect_bad(j, "units.enable: must be an array");
        j = valid_json();
        json_array_append_new(json_object_get(json_object_get(j, "units"), "disable"), json_true());
        expect_bad(j, "units.disable[1]: must be a string");

        /* Count. */
        j = valid_json();
        json_array_clear(json_object_get(json_object_get(j, "units"), "enable"));
        for (int i = 0; i < NODE_CONFIG_UNITS_MAX; i++) {
                (void) snprintf(unit, sizeof(unit), "u%d.service", i);
                json_array_append_new(json_object_get(json_object_get(j, "units"), "enable"), json_string(unit));
        }
        json_incref(j);
        ASSERT_OK(parse_json(j));
        json_array_append_new(json_object_get(json_object_get(j, "units"), "enable"), json_string("more.service"));
        expect_bad(j, "units.enable: more than 128 entries");
}

static void test_debug(void) {
        json_t *j;

        j = valid_json();
        json_object_set_new(json_object_get(j, "debug"), "enabled", json_string("yes"));
        expect_bad(j, "debug.enabled: must be true or false");
        j = valid_json();
        json_object_set_new(json_object_get(j, "debug"), "enabled", json_integer(1));
        expect_bad(j, "debug.enabled: must be true or false");
        j = valid_json();
        json_object_set_new(j, "debug", json_true());
        expect_bad(j, "debug: must be an object");
}

static void test_malformed(void) {
        static const char *const bad[] = {
                "", "null", "[]", "\"config\"", "1", "{", "{\"generation\":1", "{\"generation\":1}}",
                "{\"generation\":1} trailing", "{'generation':1}", "{\"generation\":1,}", "{\"generation\":01}",
                "{\"generation\":1,\"generation\":1}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *err = NULL;
                ASSERT_ERROR(parse_str_err(bad[i], strlen(bad[i]), &err), EBADMSG);
                ASSERT_TRUE(err && strncmp(err, "document: ", 10) == 0);
        }

        /* Only 'len' bytes count. */
        static const char doc[] = "{\"generation\":1}";
        ASSERT_ERROR(parse_str_err(doc, sizeof(doc) - 2, NULL), EBADMSG);
        ASSERT_OK(parse_str_err(doc, sizeof(doc) - 1, NULL));
        /* NUL bytes in the input. */
        ASSERT_ERROR(parse_str_err("{\"generation\":1}\0", 17, NULL), EBADMSG);

        /* Messages stay printable whatever the input. */
        _cleanup_free_ char *err = NULL;
        ASSERT_ERROR(parse_str_err("{\"a\x01\xff\":1}", 9, &err), EBADMSG);
        for (const char *p = err; *p; p++)
                ASSERT_TRUE(*p >= 0x20 && *p < 0x7f);

        /* The size bound comes first, whatever the content. */
        _cleanup_free_ char *big = malloc(NODE_CONFIG_SIZE_MAX + 2);
        ASSERT_TRUE(big);
        memset(big, ' ', NODE_CONFIG_SIZE_MAX + 1);
        memcpy(big, doc, sizeof(doc) - 1);
        free(err);
        err = NULL;
        ASSERT_ERROR(parse_str_err(big, NODE_CONFIG_SIZE_MAX + 1, &err), E2BIG);
        ASSERT_TRUE(err && strstr(err, "larger than 1 MiB"));
        ASSERT_OK(parse_str_err(big, NODE_CONFIG_SIZE_MAX, NULL));

        /* Under 1 MiB as given, over it once the contents are base64: the
         * agent could not read back what it stores, so it is refused. */
        json_t *j = json_pack("{s:i, s:[]}", "generation", 1, "files");
        memset(big, 'x', NODE_CONFIG_FILE_SIZE_MAX);
        big[NODE_CONFIG_FILE_SIZE_MAX] = '\0';
        for (int i = 0; i < 3; i++) {
                char path[32];
                (void) snprintf(path, sizeof(path), "/etc/big%d", i);
                json_array_append_new(json_object_get(j, "files"),
                                      json_pack("{s:s, s:s}", "path", path, "content", big));
        }
        _cleanup_free_ char *s = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        ASSERT_TRUE(strlen(s) < NODE_CONFIG_SIZE_MAX);
        free(err);
        err = NULL;
        ASSERT_ERROR(parse_str_err(s, strlen(s), &err), E2BIG);
        ASSERT_TRUE(err && strstr(err, "base64"));

        /* Errors leave *ret_error alone on success and *ret alone on failure. */
        NodeConfig *c = (NodeConfig *) 0x1;
        char *e = (char *) 0x1;
        ASSERT_ERROR(node_config_parse("{}", 2, &c, NULL), EBADMSG);
        ASSERT_TRUE(c == (NodeConfig *) 0x1);
        c = NULL;
        ASSERT_OK(node_config_parse(doc, strlen(doc), &c, &e));
        ASSERT_TRUE(e == (char *) 0x1);
        node_config_free(c);
}

static NodeConfig *parse_or_die(const char *s) {
        NodeConfig *c = NULL;
        _cleanup_free_ char *err = NULL;
        int r = node_config_parse(s, strlen(s), &c, &err);
        if (r < 0) {
                fprintf(stderr, "parse failed: %s: %s\n", strerror(-r), err ?: "");
                abort();
        }
        return c;
}

static void test_format_and_equal(void) {
        _cleanup_(node_config_freep) NodeConfig *empty = NULL, *a = NULL, *b = NULL;
        _cleanup_free_ char *out = NULL, *args = NULL;

        /* Generation 0 formats (the agent reports it before the first
         * config) but does not parse. */
        ASSERT_OK(node_config_new_empty(&empty));
        ASSERT_EQ(empty->generation, 0);
        ASSERT_OK(node_config_format(empty, &out));
        ASSERT_STREQ(out, "{\"generation\":0}");
        ASSERT_ERROR(parse_str_err(out, strlen(out), NULL), EBADMSG);
        args = node_config_kernel_args_string(empty);
        ASSERT_STREQ(args, "");

        /* Equality looks at everything. */
        a = parse_or_die(canonical);
        b = parse_or_die(canonical);
        ASSERT_TRUE(node_config_equal(a, b));
        ASSERT_TRUE(node_config_equal(NULL, NULL));
        ASSERT_TRUE(!node_config_equal(a, NULL));
        ASSERT_TRUE(!node_config_equal(a, empty));
        b->generation++;
        ASSERT_TRUE(!node_config_equal(a, b));
        b->generation--;
        b->debug_enabled = false;
        ASSERT_TRUE(!node_config_equal(a, b));
        b->debug_enabled = true;
        b->files[0].content[0] ^= 1;
        ASSERT_TRUE(!node_config_equal(a, b));
        b->files[0].content[0] ^= 1;
        b->files[1].mode = 0640;
        ASSERT_TRUE(!node_config_equal(a, b));
        b->files[1].mode = 0600;
        b->sysctl[1].value[0] = '3';
        ASSERT_TRUE(!node_config_equal(a, b));
        b->sysctl[1].value[0] = '2';
        b->kernel_args[1][0] = 'M';
        ASSERT_TRUE(!node_config_equal(a, b));
        b->kernel_args[1][0] = 'm';
        ASSERT_TRUE(node_config_equal(a, b));
        /* NULL and empty strv are the same. */
        char **none = calloc(1, sizeof(char *));
        ASSERT_TRUE(none);
        strv_free(empty->kernel_args);
        empty->kernel_args = none;
        _cleanup_(node_config_freep) NodeConfig *empty2 = NULL;
        ASSERT_OK(node_config_new_empty(&empty2));
        ASSERT_TRUE(node_config_equal(empty, empty2));

        /* A hand-built config breaking a rule is refused, never written. */
        free(out);
        out = NULL;
        b->files[0].mode = 04755;
        ASSERT_ERROR(node_config_format(b, &out), EINVAL);
        b->files[0].mode = 0644;
        char *p = b->files[0].path;
        b->files[0].path = b->files[1].path;
        b->files[1].path = p; /* unsorted */
        ASSERT_ERROR(node_config_format(b, &out), EINVAL);
        b->files[1].path = b->files[0].path;
        b->files[0].path = p;
        free(b->units_disable[0]);
        b->units_disable[0] = strdup("chrony.service"); /* also enabled */
        ASSERT_ERROR(node_config_format(b, &out), EINVAL);
        free(b->units_disable[0]);
        b->units_disable[0] = strdup("getty@tty1.service");
        free(b->kernel_args[0]);
        b->kernel_args[0] = strdup("root=/dev/sda");
        ASSERT_ERROR(node_config_format(b, &out), EINVAL);
        free(b->kernel_args[0]);
        b->kernel_args[0] = strdup("systemd.unified_cgroup_hierarchy=1");
        free(b->files[0].path);
        b->files[0].path = strdup("/etc/../x");
        ASSERT_ERROR(node_config_format(b, &out), EINVAL);
        free(b->files[0].path);
        b->files[0].path = strdup("/etc/chrony/sources.d/hull.sources");
        ASSERT_TRUE(out == NULL);
        ASSERT_OK(node_config_format(b, &out));
        ASSERT_STREQ(out, canonical);
}

/* ---- applying ---- */

static char root[] = "/tmp/test-nodeconfig-XXXXXX";
static char *proc_sys, *sysroot;

static char *at(const char *base, const char *rel) {
        char *p = path_join(base, rel);
        ASSERT_TRUE(p);
        return p;
}

static void put(const char *base, const char *rel, const char *content, mode_t mode) {
        _cleanup_free_ char *p = at(base, rel);
        _cleanup_free_ char *dir = strndup(p, (size_t) (strrchr(p, '/') - p));
        ASSERT_TRUE(dir);
        ASSERT_OK(mkdir_p(dir, 0755));
        ASSERT_OK(write_file_atomic(p, content, strlen(content), mode));
}

static char *get(const char *base, const char *rel) {
        _cleanup_free_ char *p = at(base, rel);
        char *buf = NULL;
        int r = read_full_file(p, 1 << 20, &buf, NULL);
        return r < 0 ? NULL : buf;
}

static bool exists(const char *base, const char *rel) {
        _cleanup_free_ char *p = at(base, rel);
        struct stat st;
        return lstat(p, &st) >= 0;
}

static char *link_target(const char *base, const char *rel) {
        _cleanup_free_ char *p = at(base, rel);
        char buf[4096];
        ssize_t n = readlink(p, buf, sizeof(buf) - 1);
        if (n < 0)
                return NULL;
        buf[n] = '\0';
        return strdup(buf);
}

static struct stat stat_of(const char *base, const char *rel) {
        _cleanup_free_ char *p = at(base, rel);
        struct stat st;
        ASSERT_OK(lstat(p, &st));
        return st;
}

static void expect_content(const char *base, const char *rel, const char *want) {
        _cleanup_free_ char *got = get(base, rel);
        ASSERT_STREQ(got, want);
}

static int apply_err(const NodeConfig *old, const NodeConfig *new, NodeConfigApplyResult *res, char **err) {
        NodeConfigApplyOptions o = { .root = sysroot, .proc_sys = proc_sys };
        return node_config_apply(old, new, &o, res, err);
}

static void expect_apply_error(const NodeConfig *old, const NodeConfig *new, int error, const char *substr) {
        _cleanup_free_ char *err = NULL;
        NodeConfigApplyResult res = { .changed = true, .reboot_required = true };
        int r = apply_err(old, new, &res, &err);
        if (r != -error || !err || !strstr(err, substr)) {
                fprintf(stderr, "apply returned %d (%s), message \"%s\", expected -%d and \"%s\"\n", r,
                        strerror(-r), err ?: "(null)", error, substr);
                abort();
        }
}

/* Everything below the root and the fake /proc/sys, as "path mode mtime
 * [-> target] content" lines, to show that a refused apply changed nothing. */
static char *snapshot(void) {
        _cleanup_free_ char *out = NULL;
        char *argv[] = { (char *) "sh", (char *) "-c",
                         (char *) "cd \"$0\" && find . -printf '%p %m %T@ %l\\n' | LC_ALL=C sort && "
                                  "find . -type f -exec sha256sum {} + | LC_ALL=C sort",
                         root, NULL };
        ASSERT_EQ(spawn_capture(argv, NULL, 1 << 20, &out), 0);
        return TAKE_PTR(out);
}

static void setup_root(void) {
        ASSERT_TRUE(mkdtemp(root));
        proc_sys = at(root, "proc/sys");
        sysroot = at(root, "sysroot");
        put(proc_sys, "net/ipv4/ip_forward", "0\n", 0644);
        put(proc_sys, "vm/max_map_count", "65530\n", 0644);
        put(proc_sys, "net/ipv4/ip_local_port_range", "32768\t60999\n", 0644);
        put(proc_sys, "kernel/osrelease", "6.1.0\n", 0444);
        put(sysroot, "usr/lib/systemd/system/chrony.service",
            "[Unit]\nDescription=chrony\n\n[Service]\nExecStart=/usr/sbin/chronyd\n# WantedBy=wrong.target\n"
            "\n[Install]\nAlias=chronyd.service\nWantedBy=multi-user.target\n",
            0644);
        put(sysroot, "usr/lib/systemd/system/getty@.service",
            "[Service]\nWantedBy=not-install.target\n[Install]\nWantedBy = getty.target  %i.target\n", 0644);
        put(sysroot, "lib/systemd/system/containerd.service",
            "[Install]\nWantedBy=old.target\nWantedBy=\nWantedBy=multi-user.target basic.target\n", 0644);
        put(sysroot, "usr/lib/systemd/system/static.service", "[Service]\nExecStart=/bin/true\n", 0644);
        put(sysroot, "etc/existing.conf", "keep me\n", 0644);
}

static const char gen1[] =
        "{\"generation\":1,"
        "\"sysctl\":{\"net.ipv4.ip_forward\":1,\"vm.max_map_count\":262144,"
        "\"net.ipv4.ip_local_port_range\":\"32768 60999\"},"
        "\"kernel_args\":[\"mitigations=auto\"],"
        "\"files\":[{\"path\":\"/etc/containerd/config.toml\",\"content\":\"version = 2\\n\"},"
        "{\"path\":\"/etc/hull/secret\",\"content\":\"s3cret\",\"mode\":\"0600\"},"
        "{\"path\":\"/etc/chrony/sources.d/hull.sources\",\"content_base64\":\"" CHRONY_B64 "\",\"mode\":\"0640\"}],"
        "\"units\":{\"enable\":[\"chrony.service\",\"getty@tty1.service\",\"static.service\"]}}";

/* Drops /etc/hull/secret and vm.max_map_count, keeps the other files as
 * they are, disables chrony and enables containerd. Same kernel args. */
static const char gen2[] =
        "{\"generation\":2,"
        "\"sysctl\":{\"net.ipv4.ip_forward\":\"1\"},"
        "\"kernel_args\":[\"mitigations=auto\"],"
        "\"files\":[{\"path\":\"/etc/containerd/config.toml\",\"content\":\"version = 2\\n\"},"
        "{\"path\":\"/etc/chrony/sources.d/hull.sources\",\"content_base64\":\"" CHRONY_B64 "\",\"mode\":\"0644\"}],"
        "\"units\":{\"enable\":[\"containerd.service\"],\"disable\":[\"chrony.service\"]}}";

static void test_apply(void) {
        _cleanup_(node_config_freep) NodeConfig *empty = NULL, *c1 = parse_or_die(gen1), *c2 = parse_or_die(gen2);
        NodeConfigApplyResult res = {};
        _cleanup_free_ char *err = NULL;

        setup_root();
        ASSERT_OK(node_config_new_empty(&empty));

        /* Generation 1 from nothing (old may be NULL). */
        ASSERT_OK(apply_err(NULL, c1, &res, &err));
        ASSERT_TRUE(err == NULL);
        ASSERT_TRUE(res.changed && res.reboot_required);

        expect_content(proc_sys, "net/ipv4/ip_forward", "1\n");
        expect_content(proc_sys, "vm/max_map_count", "262144\n");
        /* Already in place (tabs versus spaces): not rewritten. */
        expect_content(proc_sys, "net/ipv4/ip_local_port_range", "32768\t60999\n");
        expect_content(sysroot, "etc/sysctl.d/90-hull.conf",
                       "# managed by hull-agent, generation 1\n"
                       "# Written from the node config; local changes are overwritten.\n"
                       "net.ipv4.ip_forward = 1\n"
                       "net.ipv4.ip_local_port_range = 32768 60999\n"
                       "vm.max_map_count = 262144\n");

        expect_content(sysroot, "etc/containerd/config.toml", "version = 2\n");
        expect_content(sysroot, "etc/hull/secret", "s3cret");
        expect_content(sysroot, "etc/chrony/sources.d/hull.sources", "server ...\n");
        ASSERT_EQ(stat_of(sysroot, "etc/containerd/config.toml").st_mode & 07777, 0644);
        ASSERT_EQ(stat_of(sysroot, "etc/hull/secret").st_mode & 07777, 0600);
        ASSERT_EQ(stat_of(sysroot, "etc/chrony/sources.d/hull.sources").st_mode & 07777, 0640);
        ASSERT_EQ(stat_of(sysroot, "etc/chrony/sources.d").st_mode & 07777, 0755);
        expect_content(sysroot, "etc/existing.conf", "keep me\n");

        /* WantedBy= of [Install] only; instances link to their template;
         * specifiers are skipped; units without [Install] get nothing. */
        _cleanup_free_ char *l1 = link_target(sysroot, "etc/systemd/system/multi-user.target.wants/chrony.service");
        _cleanup_free_ char *l2 = link_target(sysroot, "etc/systemd/system/getty.target.wants/getty@tty1.service");
        ASSERT_STREQ(l1, "/usr/lib/systemd/system/chrony.service");
        ASSERT_STREQ(l2, "/usr/lib/systemd/system/getty@.service");
        ASSERT_TRUE(!exists(sysroot, "etc/systemd/system/wrong.target.wants"));
        ASSERT_TRUE(!exists(sysroot, "etc/systemd/system/not-install.target.wants"));
        ASSERT_TRUE(!exists(sysroot, "etc/systemd/system/%i.target.wants"));

        /* The same generation again touches nothing at all: not even a
         * sysctl that drifted since. */
        put(proc_sys, "net/ipv4/ip_forward", "0\n", 0644);
        _cleanup_free_ char *before = snapshot();
        res = (NodeConfigApplyResult) { .changed = true, .reboot_required = true };
        _cleanup_(node_config_freep) NodeConfig *c1b = parse_or_die(gen1);
        ASSERT_OK(apply_err(c1, c1b, &res, NULL));
        ASSERT_TRUE(!res.changed && !res.reboot_required);
        _cleanup_free_ char *after = snapshot();
        ASSERT_STREQ(before, after);
        put(proc_sys, "net/ipv4/ip_forward", "1\n", 0644);

        /* Same generation with different content; an older generation. */
        c1b->debug_enabled = true;
        expect_apply_error(c1, c1b, ESTALE, "generation 1 is already applied with different content");
        expect_apply_error(c2, c1, ESTALE, "generation 1 is older than the applied generation 2");
        expect_apply_error(c1, empty, ESTALE, "generation 0 is older");

        /* Generation 2. Unchanged files keep their inode and mtime. */
        struct stat toml = stat_of(sysroot, "etc/containerd/config.toml");
        struct stat sources = stat_of(sysroot, "etc/chrony/sources.d/hull.sources");
        ASSERT_OK(apply_err(c1, c2, &res, NULL));
        ASSERT_TRUE(res.changed && !res.reboot_required);
        struct stat toml2 = stat_of(sysroot, "etc/containerd/config.toml");
        ASSERT_EQ(toml.st_ino, toml2.st_ino);
        ASSERT_EQ(toml.st_mtim.tv_sec, toml2.st_mtim.tv_sec);
        ASSERT_EQ(toml.st_mtim.tv_nsec, toml2.st_mtim.tv_nsec);
        /* Only the mode changed: rewritten. */
        ASSERT_EQ(stat_of(sysroot, "etc/chrony/sources.d/hull.sources").st_mode & 07777, 0644);
        ASSERT_TRUE(sources.st_ino != stat_of(sysroot, "etc/chrony/sources.d/hull.sources").st_ino);
        /* Dropped file deleted, its directory left. */
        ASSERT_TRUE(!exists(sysroot, "etc/hull/secret"));
        ASSERT_TRUE(exists(sysroot, "etc/hull"));
        expect_content(sysroot, "etc/existing.conf", "keep me\n");
        /* Dropped sysctl: left at its runtime value, gone from the file. */
        expect_content(proc_sys, "vm/max_map_count", "262144\n");
        expect_content(sysroot, "etc/sysctl.d/90-hull.conf",
                       "# managed by hull-agent, generation 2\n"
                       "# Written from the node config; local changes are overwritten.\n"
                       "net.ipv4.ip_forward = 1\n");
        /* chrony disabled; getty dropped from the list but left enabled;
         * containerd from /lib, with the reset WantedBy=. */
        ASSERT_TRUE(!exists(sysroot, "etc/systemd/system/multi-user.target.wants/chrony.service"));
        ASSERT_TRUE(exists(sysroot, "etc/systemd/system/getty.target.wants/getty@tty1.service"));
        _cleanup_free_ char *l3 = link_target(sysroot, "etc/systemd/system/multi-user.target.wants/containerd.service");
        _cleanup_free_ char *l4 = link_target(sysroot, "etc/systemd/system/basic.target.wants/containerd.service");
        ASSERT_STREQ(l3, "/lib/systemd/system/containerd.service");
        ASSERT_STREQ(l4, "/lib/systemd/system/containerd.service");
        ASSERT_TRUE(!exists(sysroot, "etc/systemd/system/old.target.wants"));

        /* Refusals before any change: unknown and read-only sysctls,
         * missing units (enable or disable), a file over a directory. */
        _cleanup_free_ char *snap = snapshot();
        static const struct {
                const char *doc, *msg;
                int error;
        } refused[] = {
                { "{\"generation\":3,\"sysctl\":{\"net.ipv4.ip_forward\":0,\"net.ipv4.no_such\":1},"
                  "\"files\":[{\"path\":\"/etc/new\",\"content\":\"x\"}]}",
                  "sysctl[\"net.ipv4.no_such\"]: no such kernel parameter", ENOENT },
                { "{\"generation\":3,\"sysctl\":{\"net.ipv4.ip_forward\":0,\"kernel.osrelease\":\"7\"}}",
                  "sysctl[\"kernel.osrelease\"]: not a writable kernel parameter", EINVAL },
                { "{\"generation\":3,\"sysctl\":{\"net.ipv4\":0}}", "sysctl[\"net.ipv4\"]: not a writable", EINVAL },
                { "{\"generation\":3,\"sysctl\":{\"net.ipv4.ip_forward\":0},"
                  "\"files\":[{\"path\":\"/etc/new\",\"content\":\"x\"}],"
                  "\"units\":{\"enable\":[\"chrony.service\",\"nope.service\"]}}",
                  "units.enable: \"nope.service\": no unit file", ENOENT },
                { "{\"generation\":3,\"units\":{\"disable\":[\"nope@x.service\"]}}",
                  "units.disable: \"nope@x.service\": no unit file", ENOENT },
                { "{\"generation\":3,\"files\":[{\"path\":\"/etc/a\",\"content\":\"x\"},"
                  "{\"path\":\"/etc/hull\",\"content\":\"x\"}]}",
                  "files: \"/etc/hull\" is a directory", EINVAL },
        };
        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                _cleanup_(node_config_freep) NodeConfig *c3 = parse_or_die(refused[i].doc);
                expect_apply_error(c2, c3, refused[i].error, refused[i].msg);
                _cleanup_free_ char *now = snapshot();
                ASSERT_STREQ(snap, now);
        }
        /* A unit file the config drops does not count as present. */
        {
                put(sysroot, "etc/systemd/system/gone.service", "[Install]\nWantedBy=multi-user.target\n", 0644);
                _cleanup_(node_config_freep) NodeConfig *a = parse_or_die(
                        "{\"generation\":10,"
                        "\"files\":[{\"path\":\"/etc/systemd/system/gone.service\",\"content\":\"\"}]}");
                _cleanup_(node_config_freep) NodeConfig *b = parse_or_die(
                        "{\"generation\":11,\"units\":{\"enable\":[\"gone.service\"]}}");
                expect_apply_error(a, b, ENOENT, "\"gone.service\": no unit file");
                _cleanup_free_ char *p = at(sysroot, "etc/systemd/system/gone.service");
                ASSERT_OK(unlink(p));
        }

        /* A unit that the config itself provides can be enabled at once;
         * the symlink points into /etc. */
        static const char gen3[] =
                "{\"generation\":3,"
                "\"files\":[{\"path\":\"/etc/systemd/system/hull-test.service\","
                "\"content\":\"[Service]\\nExecStart=/bin/true\\n[Install]\\nWantedBy=multi-user.target\\n\"}],"
                "\"units\":{\"enable\":[\"hull-test.service\"],\"disable\":[\"chrony.service\"]}}";
        _cleanup_(node_config_freep) NodeConfig *c3 = parse_or_die(gen3);
        ASSERT_OK(apply_err(c2, c3, &res, NULL));
        ASSERT_TRUE(res.changed && res.reboot_required); /* kernel args dropped */
        _cleanup_free_ char *l5 = link_target(sysroot, "etc/systemd/system/multi-user.target.wants/hull-test.service");
        ASSERT_STREQ(l5, "/etc/systemd/system/hull-test.service");
        /* No sysctls any more: the file goes. */
        ASSERT_TRUE(!exists(sysroot, "etc/sysctl.d/90-hull.conf"));
        ASSERT_TRUE(!exists(sysroot, "etc/containerd/config.toml"));
        /* Disabling an already disabled unit is fine. */
        ASSERT_TRUE(!exists(sysroot, "etc/systemd/system/multi-user.target.wants/chrony.service"));

        /* A symlink slot that holds something else is refused up front. */
        put(sysroot, "etc/systemd/system/getty.target.wants/getty@tty2.service", "not a link", 0644);
        _cleanup_(node_config_freep) NodeConfig *c4 = parse_or_die(
                "{\"generation\":4,\"units\":{\"enable\":[\"getty@tty2.service\"]}}");
        expect_apply_error(c3, c4, EINVAL, "exists and is not a symlink");
}

static void test_apply_sysctl_rollback(void) {
        _cleanup_(node_config_freep) NodeConfig *old = NULL, *c = NULL;
        _cleanup_free_ char *err = NULL;
        NodeConfigApplyResult res = {};

        if (access("/dev/full", W_OK) < 0) {
                fprintf(stderr, "/dev/full not available, skipping\n");
                return;
        }
        /* Writes go in key order: "net.*" first, then "zz.full" fails with
         * ENOSPC. */
        _cleanup_free_ char *full = at(proc_sys, "zz/full"), *dir = at(proc_sys, "zz");
        ASSERT_OK(mkdir_p(dir, 0755));
        ASSERT_OK(symlink("/dev/full", full));
        put(proc_sys, "net/ipv4/ip_forward", "0\n", 0644);
        put(proc_sys, "vm/max_map_count", "65530\n", 0644);

        old = parse_or_die("{\"generation\":5,\"sysctl\":{\"net.ipv4.ip_forward\":0}}");
        put(sysroot, "etc/sysctl.d/90-hull.conf", "previous\n", 0644);
        c = parse_or_die("{\"generation\":6,\"sysctl\":{\"net.ipv4.ip_forward\":1,\"vm.max_map_count\":262144,"
                         "\"zz.full\":1},\"files\":[{\"path\":\"/etc/after-sysctl\",\"content\":\"x\"}]}");
        ASSERT_ERROR(apply_err(old, c, &res, &err), ENOSPC);
        ASSERT_TRUE(err && strstr(err, "sysctl[\"zz.full\"]: cannot write"));
        expect_content(proc_sys, "net/ipv4/ip_forward", "0\n");
        expect_content(proc_sys, "vm/max_map_count", "65530\n");
        expect_content(sysroot, "etc/sysctl.d/90-hull.conf", "previous\n");
        ASSERT_TRUE(!exists(sysroot, "etc/after-sysctl"));
        ASSERT_OK(unlink(full));
}

static void test_apply_invalid(void) {
        _cleanup_(node_config_freep) NodeConfig *old = parse_or_die("{\"generation\":1}"), *c = parse_or_die(gen2);
        NodeConfigApplyResult res;

        /* A hand-built config with a path outside /etc never gets applied. */
        free(c->files[0].path);
        c->files[0].path = strdup("/etc/../usr/bin/x");
        expect_apply_error(old, c, EINVAL, "the new configuration is invalid");
        free(c->files[0].path);
        c->files[0].path = strdup("/etc/chrony/sources.d/hull.sources");
        free(old->units_enable);
        old->units_enable = calloc(2, sizeof(char *));
        old->units_enable[0] = strdup("../x");
        expect_apply_error(old, c, EINVAL, "the applied configuration is invalid");
        ASSERT_ERROR(node_config_apply(old, NULL, NULL, &res, NULL), EINVAL);
}

static void test_apply_systemctl(void) {
        _cleanup_(node_config_freep) NodeConfig *c = NULL, *d = NULL;
        _cleanup_free_ char *err = NULL, *l = NULL;
        NodeConfigApplyResult res = {};

        if (access("/usr/bin/systemctl", X_OK) < 0 && access("/bin/systemctl", X_OK) < 0) {
                fprintf(stderr, "systemctl not available, skipping\n");
                return;
        }
        /* systemctl --root works offline on a directory tree. */
        NodeConfigApplyOptions o = { .root = sysroot, .proc_sys = proc_sys, .run_systemctl = true };
        c = parse_or_die("{\"generation\":20,\"units\":{\"enable\":[\"chrony.service\"]}}");
        d = parse_or_die("{\"generation\":21,\"units\":{\"disable\":[\"chrony.service\"]}}");
        _cleanup_(node_config_freep) NodeConfig *old = parse_or_die("{\"generation\":19}");
        ASSERT_OK(node_config_apply(old, c, &o, &res, &err));
        l = link_target(sysroot, "etc/systemd/system/multi-user.target.wants/chrony.service");
        ASSERT_STREQ(l, "/usr/lib/systemd/system/chrony.service");
        ASSERT_OK(node_config_apply(c, d, &o, &res, &err));
        ASSERT_TRUE(!exists(sysroot, "etc/systemd/system/multi-user.target.wants/chrony.service"));
}

/* check_only: the checks of node_config_apply() and nothing else (what
 * hull-provision runs before it changes anything on first boot). */
static void test_apply_check_only(void) {
        _cleanup_(node_config_freep) NodeConfig *c1 = parse_or_die(gen1), *bad_unit = NULL, *bad_sysctl = NULL;
        _cleanup_free_ char *err = NULL, *err2 = NULL;
        NodeConfigApplyOptions o = { .root = sysroot, .proc_sys = proc_sys, .check_only = true };
        NodeConfigApplyResult res = {};

        put(proc_sys, "net/ipv4/ip_forward", "0\n", 0644);
        _cleanup_free_ char *start = snapshot();
        ASSERT_OK(node_config_apply(NULL, c1, &o, &res, NULL));
        ASSERT_TRUE(res.changed);
        bad_unit = parse_or_die("{\"generation\":1,\"files\":[{\"path\":\"/etc/new\",\"content\":\"x\"}],"
                                "\"units\":{\"enable\":[\"nosuch.service\"]}}");
        ASSERT_ERROR(node_config_apply(NULL, bad_unit, &o, &res, &err), ENOENT);
        ASSERT_TRUE(err && strstr(err, "nosuch.service"));
        bad_sysctl = parse_or_die("{\"generation\":1,\"sysctl\":{\"net.ipv4.nosuch\":1}}");
        ASSERT_ERROR(node_config_apply(NULL, bad_sysctl, &o, &res, &err2), ENOENT);
        ASSERT_TRUE(err2 && strstr(err2, "no such kernel parameter"));
        _cleanup_free_ char *after = snapshot();
        ASSERT_STREQ(start, after);
}

static void test_load_save(void) {
        _cleanup_(node_config_freep) NodeConfig *c = NULL, *c2 = NULL, *empty = NULL, *e2 = NULL;
        _cleanup_free_ char *path = at(root, "state/config.json"), *dir = at(root, "state"), *text = NULL, *err = NULL;
        struct stat st;

        ASSERT_OK(mkdir_p(dir, 0700));
        ASSERT_OK(node_config_load(path, &empty, NULL));
        ASSERT_EQ(empty->generation, 0);

        c = parse_or_die(gen1);
        ASSERT_OK(node_config_save(c, path));
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_mode & 07777, 0600);
        ASSERT_OK(node_config_load(path, &c2, NULL));
        ASSERT_TRUE(node_config_equal(c, c2));
        text = get(dir, "config.json");
        _cleanup_free_ char *canon = NULL;
        ASSERT_OK(node_config_format(c, &canon));
        ASSERT_STREQ(text, canon);

        /* Generation 0 round-trips through the store. */
        ASSERT_OK(node_config_save(empty, path));
        ASSERT_OK(node_config_load(path, &e2, NULL));
        ASSERT_TRUE(node_config_equal(empty, e2));

        /* A damaged store is reported, with a message. */
        put(dir, "config.json", "{\"generation\":1,\"bogus\":1}", 0600);
        NodeConfig *bad = NULL;
        ASSERT_ERROR(node_config_load(path, &bad, &err), EBADMSG);
        ASSERT_TRUE(bad == NULL && err && strstr(err, "bogus"));
        ASSERT_ERROR(node_config_save(NULL, path), EINVAL);
}

static void cleanup_root(void) {
        char *rm[] = { (char *) "rm", (char *) "-rf", root, NULL };
        ASSERT_EQ(spawn_run(rm, NULL), 0);
        free(proc_sys);
        free(sysroot);
}

int main(void) {
        TEST_RUN(test_valid);
        TEST_RUN(test_minimal);
        TEST_RUN(test_generation);
        TEST_RUN(test_unknown_keys);
        TEST_RUN(test_sysctl);
        TEST_RUN(test_kernel_args);
        TEST_RUN(test_file_paths);
        TEST_RUN(test_file_contents);
        TEST_RUN(test_file_modes);
        TEST_RUN(test_units);
        TEST_RUN(test_debug);
        TEST_RUN(test_malformed);
        TEST_RUN(test_format_and_equal);
        TEST_RUN(test_apply);
        TEST_RUN(test_apply_sysctl_rollback);
        TEST_RUN(test_apply_invalid);
        TEST_RUN(test_apply_systemctl);
        TEST_RUN(test_apply_check_only);
        TEST_RUN(test_load_save);
        cleanup_root();
        return 0;
}
