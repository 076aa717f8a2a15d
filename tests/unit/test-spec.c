/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "spec.h"
#include "tests.h"

static const char full_spec[] =
        "format: 1\n"
        "name: hull-demo\n"
        "version: 1.2.0\n"
        "arch: x86_64\n"
        "distribution:\n"
        "  backend: debian\n"
        "  suite: bookworm\n"
        "  mirror: http://deb.debian.org/debian\n"
        "  components: [main, contrib]\n"
        "packages:\n"
        "  - containerd\n"
        "  - runc\n"
        "files:\n"
        "  - source: files/motd\n"
        "    path: /etc/motd\n"
        "    mode: \"0640\"\n"
        "    owner: root\n"
        "    group: adm\n"
        "hooks:\n"
        "  post-bootstrap: [hooks/a.sh]\n"
        "  pre-seal:\n"
        "    - hooks/b.sh\n"
        "rootfs:\n"
        "  type: ext4\n"
        "  verity: true\n"
        "partitions:\n"
        "  esp: 128M\n"
        "  root: 2G\n"
        "  persist: 1G\n"
        "kernel:\n"
        "  cmdline: [\"console=ttyS0,115200\", quiet]\n"
        "boot:\n"
        "  tries: 5\n"
        "  initramfs: initramfs-tools\n"
        "  timeout: 0\n";

static void test_full(void) {
        _cleanup_(spec_freep) Spec *s = NULL;
        SpecError e;

        ASSERT_OK(spec_parse(full_spec, strlen(full_spec), "/specs", &s, &e));
        ASSERT_STREQ(s->name, "hull-demo");
        ASSERT_STREQ(s->version, "1.2.0");
        ASSERT_STREQ(s->arch, "x86_64");
        ASSERT_STREQ(s->backend, "debian");
        ASSERT_STREQ(s->suite, "bookworm");
        ASSERT_STREQ(s->components[1], "contrib");
        ASSERT_STREQ(s->packages[0], "containerd");
        ASSERT_STREQ(s->packages[1], "runc");
        ASSERT_TRUE(s->packages[2] == NULL);
        ASSERT_EQ(s->n_files, 1);
        ASSERT_STREQ(s->files[0].source, "files/motd");
        ASSERT_STREQ(s->files[0].path, "/etc/motd");
        ASSERT_EQ(s->files[0].mode, 0640);
        ASSERT_STREQ(s->files[0].group, "adm");
        ASSERT_STREQ(s->hooks[HOOK_POST_BOOTSTRAP][0], "hooks/a.sh");
        ASSERT_TRUE(s->hooks[HOOK_POST_PACKAGES] == NULL);
        ASSERT_STREQ(s->hooks[HOOK_PRE_SEAL][0], "hooks/b.sh");
        ASSERT_EQ(s->rootfs_type, ROOTFS_EXT4);
        ASSERT_TRUE(s->verity);
        ASSERT_EQ(s->esp_size, 128ULL << 20);
        ASSERT_EQ(s->root_size, 2ULL << 30);
        ASSERT_EQ(s->persist_size, 1ULL << 30);
        ASSERT_STREQ(s->cmdline[0], "console=ttyS0,115200");
        ASSERT_STREQ(s->cmdline[1], "quiet");
        ASSERT_EQ(s->boot_tries, 5);
        ASSERT_EQ(s->boot_timeout, 0);
        ASSERT_EQ(s->boot_initramfs, BOOT_INITRAMFS_TOOLS);
        ASSERT_STREQ(s->base_dir, "/specs");
}

static void test_defaults(void) {
        static const char y[] = "name: x\nversion: '1'\ndistribution: {suite: bookworm}\n";
        _cleanup_(spec_freep) Spec *s = NULL;

        ASSERT_OK(spec_parse(y, strlen(y), NULL, &s, NULL));
        ASSERT_STREQ(s->backend, "debian");
        ASSERT_STREQ(s->mirror, SPEC_DEFAULT_MIRROR);
        ASSERT_STREQ(s->variant, "minbase");
        ASSERT_STREQ(s->components[0], "main");
        ASSERT_EQ(s->rootfs_type, ROOTFS_EROFS);
        ASSERT_TRUE(!s->verity);
        ASSERT_EQ(s->esp_size, SPEC_DEFAULT_ESP_SIZE);
        ASSERT_EQ(s->root_size, SPEC_DEFAULT_ROOT_SIZE);
        ASSERT_EQ(s->boot_tries, 3);
        ASSERT_EQ(s->boot_initramfs, BOOT_INITRAMFS_HULL);
        ASSERT_EQ(s->n_files, 0);
        ASSERT_TRUE(s->packages == NULL);
}

/* Each bad spec must fail with -EINVAL, a line number where one makes sense
 * and a message that mentions the offending key. */
static void expect_error(const char *yaml, unsigned line, const char *needle) {
        _cleanup_(spec_freep) Spec *s = NULL;
        SpecError e;

        int r = spec_parse(yaml, strlen(yaml), NULL, &s, &e);
        if (r != -EINVAL || !strstr(e.message, needle) || (line > 0 && e.line != line)) {
                fprintf(stderr, "spec:\n%s\n-> r=%d line=%u message='%s' (wanted line %u, '%s')\n", yaml, r, e.line,
                        e.message, line, needle);
                abort();
        }
        ASSERT_TRUE(s == NULL);
}

#define BASE "name: x\nversion: '1'\ndistribution: {suite: bookworm}\n"

static void test_errors(void) {
        expect_error("", 0, "empty");
        expect_error("name: [unclosed\n", 0, "line");
        expect_error("- a\n- b\n", 1, "mapping");
        expect_error("version: 1\ndistribution: {suite: bookworm}\n", 1, "no 'name'");
        expect_error("name: x\ndistribution: {suite: bookworm}\n", 1, "no 'version'");
        expect_error("name: x\nversion: 1\n", 1, "distribution.suite");
        expect_error(BASE "pakages: [a]\n", 4, "unknown key 'pakages'");
        expect_error(BASE "name: y\n", 4, "duplicate key 'name'");
        expect_error(BASE "packages: vim\n", 4, "'packages' must be a list");
        expect_error(BASE "packages: ['vim; rm -rf /']\n", 4, "invalid characters");
        expect_error(BASE "rootfs: {type: btrfs}\n", 4, "erofs or ext4");
        expect_error(BASE "rootfs: {verity: maybe}\n", 4, "true or false");
        expect_error(BASE "partitions: {root: lots}\n", 4, "size such as");
        expect_error(BASE "partitions: {root: 1000000}\n", 4, "whole number of MiB");
        expect_error(BASE "partitions: {root: 16M}\n", 4, "'partitions.root' must be at least 64M");
        expect_error(BASE "boot: {initramfs: dracut}\n", 4,
                     "'boot.initramfs' must be hull or initramfs-tools, not 'dracut'");
        expect_error(BASE "boot: {initramfs: [hull]}\n", 4, "boot.initramfs");
        expect_error(BASE "partitions: {esp: 16M}\n", 4, "'partitions.esp' must be at least 64M");
        expect_error(BASE "partitions:\n  persist: 16M\n", 5, "'partitions.persist' must be at least 32M");
        expect_error(BASE "boot: {tries: 0}\n", 4, "from 1 to 9");
        expect_error(BASE "boot: {tries: 10}\n", 4, "from 1 to 9");
        expect_error(BASE "files: [{source: a}]\n", 4, "missing 'path'");
        expect_error(BASE "files: [{path: /etc/a}]\n", 4, "missing 'source'");
        expect_error(BASE "files: [{source: a, path: etc/a}]\n", 4, "absolute path");
        expect_error(BASE "files: [{source: a, path: /etc/../../x}]\n", 4, "absolute path");
        expect_error(BASE "files: [{source: a, path: /etc/a, mode: '0999'}]\n", 4, "octal mode");
        expect_error(BASE "files: [{source: a, path: /etc/a, colour: red}]\n", 4, "unknown key 'colour'");
        expect_error(BASE "hooks: {after-everything: [x]}\n", 4, "unknown key 'after-everything'");
        expect_error(BASE "kernel: {cmdline: ['quiet \"$(x)\"']}\n", 4, "invalid characters");
        expect_error(BASE "arch: riscv64\n", 4, "not supported");
        expect_error("name: x\nversion: 1\ndistribution: {suite: bookworm, backend: fedora}\n", 3,
                     "unknown distribution backend");
        expect_error("name: x\nversion: 1\ndistribution: {suite: bookworm, mirror: 'ftp://x'}\n", 3, "URL");
        expect_error(BASE "format: 2\n", 4, "format 2");
        expect_error("name: x\nversion: '..'\ndistribution: {suite: bookworm}\n", 2, "start with a letter");
        expect_error("name: -x\nversion: '1'\ndistribution: {suite: bookworm}\n", 1, "start with a letter");
        expect_error("a: &x 1\nb: *x\n", 0, "aliases");
        expect_error("---\nname: x\n---\nname: y\n", 0, "single YAML document");
}

/* ---- repositories ---- */

#define REPO(extra) BASE "repositories:\n  - name: k8s\n    uris: [https://pkgs.k8s.io/core:/stable:/v1.32/deb/]\n" \
        "    suites: [/]\n    signed_by: keys/k8s.asc\n" extra

static void test_repositories(void) {
        static const char y[] = BASE
                "repositories:\n"
                "  - name: kubernetes\n"
                "    uris: [https://pkgs.k8s.io/core:/stable:/v1.32/deb/]\n"
                "    suites: [\"/\"]\n"
                "    components: []\n"
                "    signed_by: keys/kubernetes-release.key\n"
                "    pin: 500\n"
                "  - name: internal.tools-2\n"
                "    uris: [http://apt.example.com:8080/debian, 'file:///srv/mirror']\n"
                "    suites: [bookworm, bookworm-updates]\n"
                "    components: [main, updates/main]\n"
                "    signed_by: /etc/keys/internal.gpg\n"
                "    pin: -1\n";
        _cleanup_(spec_freep) Spec *s = NULL;
        SpecError e;

        ASSERT_OK(spec_parse(y, strlen(y), "/specs", &s, &e));
        ASSERT_EQ(s->n_repositories, 2);
        const SpecRepository *k = &s->repositories[0], *i = &s->repositories[1];
        ASSERT_STREQ(k->name, "kubernetes");
        ASSERT_STREQ(k->uris[0], "https://pkgs.k8s.io/core:/stable:/v1.32/deb/");
        ASSERT_TRUE(k->uris[1] == NULL);
        ASSERT_STREQ(k->suites[0], "/");
        ASSERT_TRUE(k->components && k->components[0] == NULL);
        ASSERT_STREQ(k->signed_by, "keys/kubernetes-release.key");
        ASSERT_TRUE(k->has_pin);
        ASSERT_EQ(k->pin, 500);
        ASSERT_EQ(k->line, 5);
        ASSERT_EQ(k->key_line, 9);
        ASSERT_TRUE(k->key_data == NULL); /* only spec_load() reads keys */
        ASSERT_STREQ(i->name, "internal.tools-2");
        ASSERT_STREQ(i->uris[1], "file:///srv/mirror");
        ASSERT_STREQ(i->suites[1], "bookworm-updates");
        ASSERT_STREQ(i->components[1], "updates/main");
        ASSERT_EQ(i->pin, -1);

        /* Components may be left out of a flat repository; pins are optional. */
        spec_free(TAKE_PTR(s));
        static const char flat[] = REPO("");
        ASSERT_OK(spec_parse(flat, strlen(flat), NULL, &s, &e));
        ASSERT_TRUE(!s->repositories[0].has_pin);
        ASSERT_TRUE(s->repositories[0].components[0] == NULL);
        spec_free(TAKE_PTR(s));
        static const char dot[] = BASE "repositories:\n  - {name: a, uris: ['http://h/r'], suites: ['./'], signed_by: k}\n"
                                       "  - {name: b, uris: ['http://h/s'], suites: [stable/], signed_by: k}\n";
        ASSERT_OK(spec_parse(dot, strlen(dot), NULL, &s, &e));
        /* Same pin on one host is fine. */
        spec_free(TAKE_PTR(s));
        static const char same[] = BASE "repositories:\n  - {name: a, uris: ['http://h/r'], suites: [/], signed_by: k, pin: 600}\n"
                                        "  - {name: b, uris: ['http://h/s'], suites: [/], signed_by: k, pin: 600}\n";
        ASSERT_OK(spec_parse(same, strlen(same), NULL, &s, &e));
}

static void test_repository_errors(void) {
        expect_error(BASE "repositories: {name: a}\n", 4, "'repositories' must be a list");
        expect_error(BASE "repositories: [k8s]\n", 4, "each entry of 'repositories' must be a mapping");
        expect_error(REPO("    colour: red\n"), 9, "unknown key 'colour' in 'repositories' entry");
        expect_error(REPO("    suites: [x]\n"), 9, "duplicate key 'suites'");
        /* name */
        expect_error(BASE "repositories:\n  - {uris: ['http://h/'], suites: [/], signed_by: k}\n", 5, "missing 'name'");
        expect_error(BASE "repositories:\n  - {name: K8s, uris: ['http://h/'], suites: [/], signed_by: k}\n", 5,
                     "'repositories.name' must be lower-case");
        expect_error(BASE "repositories:\n  - {name: -a, uris: ['http://h/'], suites: [/], signed_by: k}\n", 5,
                     "'repositories.name' must be lower-case");
        expect_error(BASE "repositories:\n  - {name: a_b, uris: ['http://h/'], suites: [/], signed_by: k}\n", 5,
                     "invalid characters");
        expect_error(BASE "repositories:\n  - {name: [a], uris: ['http://h/'], suites: [/], signed_by: k}\n", 5,
                     "'repositories.name' must be a single value");
        expect_error(BASE "repositories:\n  - {name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, "
                          "uris: ['http://h/'], suites: [/], signed_by: k}\n",
                     5, "at most 64 characters");
        expect_error(BASE "repositories:\n  - {name: a, uris: ['http://h/'], suites: [/], signed_by: k}\n"
                          "  - {name: a, uris: ['http://i/'], suites: [/], signed_by: k}\n",
                     6, "duplicate repository name 'a' (also on line 5)");
        /* uris */
        expect_error(BASE "repositories:\n  - {name: a, suites: [/], signed_by: k}\n", 5, "repository 'a' is missing 'uris'");
        expect_error(BASE "repositories:\n  - {name: a, uris: [], suites: [/], signed_by: k}\n", 5, "at least one URI");
        expect_error(BASE "repositories:\n  - {name: a, uris: 'http://h/', suites: [/], signed_by: k}\n", 5,
                     "'repositories.uris' must be a list");
        expect_error(BASE "repositories:\n  - name: a\n    uris: ['ftp://h/']\n    suites: [/]\n    signed_by: k\n",  6,
                     "http://, https:// or file:///");
        expect_error(BASE "repositories:\n  - name: a\n    uris: ['http:///x']\n    suites: [/]\n    signed_by: k\n",  6,
                     "with a host");
        expect_error(BASE "repositories:\n  - name: a\n    uris: ['file://relative/x']\n    suites: [/]\n    signed_by: k\n",
                     6, "http://, https:// or file:///");
        expect_error(BASE "repositories:\n  - name: a\n    uris: ['file:///']\n    suites: [/]\n    signed_by: k\n",  6,
                     "absolute path");
        expect_error(BASE "repositories:\n  - name: a\n    uris: ['http://h/a b']\n    suites: [/]\n    signed_by: k\n",  6,
                     "invalid characters");
        expect_error(BASE "repositories:\n  - name: a\n    uris: ['http://h/\"x']\n    suites: [/]\n    signed_by: k\n",  6,
                     "invalid characters");
        expect_error(BASE "repositories:\n  - name: a\n    uris: ['http://h/../x']\n    suites: [/]\n    signed_by: k\n",  6,
                     "'..' or '//'");
        /* suites and components */
        expect_error(BASE "repositories:\n  - {name: a, uris: ['http://h/'], signed_by: k}\n", 5,
                     "repository 'a' is missing 'suites'");
        expect_error(BASE "repositories:\n  - {name: a, uris: ['http://h/'], suites: [], signed_by: k}\n", 5,
                     "at least one suite");
        expect_error(BASE "repositories:\n  - name: a\n    uris: ['http://h/']\n    suites: [../x/]\n    signed_by: k\n", 7,
                     "must be a suite name");
        expect_error(BASE "repositories:\n  - name: a\n    uris: ['http://h/']\n    suites: [/etc/]\n    signed_by: k\n", 7,
                     "must be a suite name");
        expect_error(BASE "repositories:\n  - name: a\n    uris: ['http://h/']\n    suites: ['bookworm main']\n    signed_by: k\n",
                     7, "invalid characters");
        expect_error(BASE "repositories:\n  - name: a\n    uris: ['http://h/']\n    suites: [/, bookworm]\n"
                          "    components: [main]\n    signed_by: k\n",
                     7, "mixes a flat repository");
        expect_error(REPO("    components: [main]\n"), 9, "repository 'k8s' is flat (suite '/' ends in '/') and must not have 'components'");
        expect_error(BASE "repositories:\n  - {name: a, uris: ['http://h/'], suites: [bookworm], signed_by: k}\n", 5,
                     "repository 'a' needs 'components'");
        expect_error(BASE "repositories:\n  - name: a\n    uris: ['http://h/']\n    suites: [bookworm]\n    components: []\n"
                          "    signed_by: k\n",
                     8, "repository 'a' needs 'components'");
        expect_error(BASE "repositories:\n  - name: a\n    uris: ['http://h/']\n    suites: [bookworm]\n"
                          "    components: [main/]\n    signed_by: k\n",
                     8, "must be a component name");
        expect_error(BASE "repositories:\n  - name: a\n    uris: ['http://h/']\n    suites: [bookworm]\n"
                          "    components: ['main;x']\n    signed_by: k\n",
                     8, "invalid characters");
        /* signed_by */
        expect_error(BASE "repositories:\n  - {name: a, uris: ['http://h/'], suites: [/]}\n", 5,
                     "repository 'a' is missing 'signed_by'");
        expect_error(BASE "repositories:\n  - {name: a, uris: ['http://h/'], suites: [/], signed_by: ''}\n", 5,
                     "'repositories.signed_by' must not be empty");
        expect_error(BASE "repositories:\n  - {name: a, uris: ['http://h/'], suites: [/], signed_by: \"a\\nb\"}\n", 5,
                     "'repositories.signed_by' must be a file name");
        /* pin */
        expect_error(REPO("    pin: 0\n"), 9, "from -1000 to 1001 other than 0, not '0'");
        expect_error(REPO("    pin: 1002\n"), 9, "from -1000 to 1001");
        expect_error(REPO("    pin: -1001\n"), 9, "from -1000 to 1001");
        expect_error(REPO("    pin: high\n"), 9, "apt pin priority");
        expect_error(REPO("    pin: 5x\n"), 9, "apt pin priority");
        expect_error(REPO("    pin: ''\n"), 9, "apt pin priority");
        expect_error(REPO("    pin: 99999999999999999999\n"), 9, "apt pin priority");
        expect_error(REPO("    pin: [1]\n"), 9, "'repositories.pin' must be a single value");
        expect_error(BASE "repositories:\n  - {name: a, uris: ['http://h:80/r'], suites: [/], signed_by: k, pin: 600}\n"
                          "  - {name: b, uris: ['https://u@h/s'], suites: [/], signed_by: k}\n",
                     6, "repositories 'a' and 'b' are on the same host 'h' but have different pins");
        expect_error(BASE "repositories:\n  - {name: a, uris: ['file:///r'], suites: [/], signed_by: k, pin: 600}\n"
                          "  - {name: b, uris: ['file:///s'], suites: [/], signed_by: k, pin: 700}\n",
                     6, "(local files)");
}

static void write_test_file(const char *dir, const char *name, const void *data, size_t size) {
        _cleanup_free_ char *p = path_join(dir, name);
        ASSERT_TRUE(p);
        ASSERT_OK(write_file_atomic(p, data, size, 0644));
}

static void expect_load_error(const char *path, unsigned line, const char *needle) {
        _cleanup_(spec_freep) Spec *s = NULL;
        SpecError e;
        int r = spec_load(path, &s, &e);
        if (r != -EINVAL || !strstr(e.message, needle) || e.line != line) {
                fprintf(stderr, "%s -> r=%d line=%u message='%s' (wanted line %u, '%s')\n", path, r, e.line, e.message,
                        line, needle);
                abort();
        }
        ASSERT_TRUE(s == NULL);
}

static void test_repository_keys(void) {
        char dir[] = "/tmp/test-spec-XXXXXX";
        ASSERT_TRUE(mkdtemp(dir));
        static const char armored[] = "\n-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBG...\n-----END PGP PUBLIC KEY BLOCK-----\n";
        static const unsigned char binary_old[] = { 0x99, 0x01, 0x0d, 0x04 }; /* old format, tag 6 */
        static const unsigned char binary_new[] = { 0xc6, 0x33, 0x04 };       /* new format, tag 6 */
        static const unsigned char secret[] = { 0x95, 0x01, 0x0d, 0x04 };     /* tag 5: secret key */
        static const char private[] = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQ...\n";
        write_test_file(dir, "a.asc", armored, strlen(armored));
        write_test_file(dir, "old.gpg", binary_old, sizeof(binary_old));
        write_test_file(dir, "new.gpg", binary_new, sizeof(binary_new));
        write_test_file(dir, "secret.gpg", secret, sizeof(secret));
        write_test_file(dir, "private.asc", private, strlen(private));
        write_test_file(dir, "empty", "", 0);
        write_test_file(dir, "text", "hello\n", 6);
        write_test_file(dir, "msg.asc", "-----BEGIN PGP MESSAGE-----\n", 28);

        _cleanup_free_ char *abs = path_join(dir, "new.gpg"), *yaml = NULL;
        ASSERT_TRUE(abs);
        ASSERT_TRUE(asprintf(&yaml,
                             BASE "repositories:\n"
                                  "  - {name: a, uris: ['http://h/a'], suites: [/], signed_by: a.asc}\n"
                                  "  - {name: b, uris: ['http://h/b'], suites: [/], signed_by: old.gpg}\n"
                                  "  - {name: c, uris: ['http://h/c'], suites: [/], signed_by: '%s'}\n",
                             abs) > 0);
        write_test_file(dir, "ok.yaml", yaml, strlen(yaml));
        _cleanup_free_ char *ok = path_join(dir, "ok.yaml");
        _cleanup_(spec_freep) Spec *s = NULL;
        SpecError e;
        ASSERT_OK(spec_load(ok, &s, &e));
        ASSERT_TRUE(s->repositories[0].key_armored);
        ASSERT_EQ(s->repositories[0].key_size, strlen(armored));
        ASSERT_TRUE(memcmp(s->repositories[0].key_data, armored, strlen(armored)) == 0);
        ASSERT_TRUE(!s->repositories[1].key_armored);
        ASSERT_EQ(s->repositories[1].key_size, sizeof(binary_old));
        ASSERT_TRUE(!s->repositories[2].key_armored);

        static const struct {
                const char *key, *needle;
        } bad[] = {
                { "missing.asc", "repository 'k8s': cannot read key file '" },
                { "empty", "is empty" },
                { "text", "is not an OpenPGP public key" },
                { "secret.gpg", "is not an OpenPGP public key" },
                { "private.asc", "is a private key" },
                { "msg.asc", "is armored but not an OpenPGP public key block" },
                { ".", "cannot read key file" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *y = NULL, *p = path_join(dir, "bad.yaml");
                ASSERT_TRUE(asprintf(&y, BASE "repositories:\n  - name: k8s\n    uris: ['http://h/']\n    suites: [/]\n"
                                              "    signed_by: %s\n",
                                     bad[i].key) > 0);
                write_test_file(dir, "bad.yaml", y, strlen(y));
                expect_load_error(p, 8, bad[i].needle);
        }
        /* Too large. */
        _cleanup_free_ char *big = calloc(1, SPEC_REPOSITORY_KEY_SIZE_MAX + 1);
        ASSERT_TRUE(big);
        memcpy(big, armored, strlen(armored));
        write_test_file(dir, "big.asc", big, SPEC_REPOSITORY_KEY_SIZE_MAX + 1);
        _cleanup_free_ char *y = NULL, *p = path_join(dir, "big.yaml");
        ASSERT_TRUE(asprintf(&y, BASE "repositories:\n  - name: k8s\n    uris: ['http://h/']\n    suites: [/]\n"
                                      "    signed_by: big.asc\n") > 0);
        write_test_file(dir, "big.yaml", y, strlen(y));
        expect_load_error(p, 8, "is larger than");

        char *rm[] = { (char *) "rm", (char *) "-rf", dir, NULL };
        pid_t pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                execvp(rm[0], rm);
                _exit(127);
        }
        int status;
        ASSERT_TRUE(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}


#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_kubernetes(void) {
        static const char y[] = BASE
                "kubernetes:\n"
                "  kubelet: {file: bin/kubelet, sha256: " SHA "}\n"
                "  sandbox_image: registry.example.com/k8s/pause:3.10\n"
                "images:\n"
                "  - source: images/pause.tar\n"
                "    sha256: " SHA "\n"
                "  - {source: /srv/hull-node.oci.tar}\n"
                "units:\n"
                "  enable: [containerd.service, getty@ttyS1.service]\n"
                "  mask: [apt-daily.timer]\n"
                "  keep: [e2scrub_all.timer, getty@tty1.service]\n";
        _cleanup_(spec_freep) Spec *s = NULL;
        SpecError e;

        ASSERT_OK(spec_parse(y, strlen(y), "/specs", &s, &e));
        ASSERT_TRUE(s->kubernetes.enabled);
        ASSERT_EQ(s->kubernetes.kubelet_source, KUBELET_SOURCE_BINARY);
        ASSERT_STREQ(s->kubernetes.kubelet_path, "bin/kubelet");
        ASSERT_STREQ(s->kubernetes.kubelet_sha256, SHA);
        ASSERT_STREQ(s->kubernetes.sandbox_image, "registry.example.com/k8s/pause:3.10");
        ASSERT_EQ(s->n_images, 2);
        ASSERT_STREQ(s->images[0].source, "images/pause.tar");
        ASSERT_STREQ(s->images[0].sha256, SHA);
        ASSERT_TRUE(s->images[1].sha256 == NULL);
        ASSERT_STREQ(s->units_enable[1], "getty@ttyS1.service");
        ASSERT_STREQ(s->units_mask[0], "apt-daily.timer");
        ASSERT_STREQ(s->units_keep[1], "getty@tty1.service");
        ASSERT_STREQ(kubelet_source_to_string(KUBELET_SOURCE_DEB), "deb");

        /* An empty section: the wiring without a kubelet, the default sandbox image. */
        static const char y2[] = BASE "kubernetes: {}\n";
        _cleanup_(spec_freep) Spec *s2 = NULL;
        ASSERT_OK(spec_parse(y2, strlen(y2), NULL, &s2, &e));
        ASSERT_TRUE(s2->kubernetes.enabled);
        ASSERT_EQ(s2->kubernetes.kubelet_source, KUBELET_SOURCE_NONE);
        ASSERT_STREQ(s2->kubernetes.sandbox_image, SPEC_DEFAULT_SANDBOX_IMAGE);

        /* No section: not a Kubernetes node. */
        _cleanup_(spec_freep) Spec *s3 = NULL;
        ASSERT_OK(spec_parse(BASE, strlen(BASE), NULL, &s3, &e));
        ASSERT_TRUE(!s3->kubernetes.enabled);
        ASSERT_TRUE(s3->kubernetes.sandbox_image == NULL);

        expect_error(BASE "kubernetes: {kubelet: {file: k}}\n", 4, "needs 'sha256'");
        expect_error(BASE "kubernetes: {kubelet: {sha256: " SHA "}}\n", 4, "needs 'file'");
        expect_error(BASE "kubernetes: {kubelet: {file: k, deb: k.deb, sha256: " SHA "}}\n", 4, "not both");
        expect_error(BASE "kubernetes: {kubelet: {file: k, sha256: ABC}}\n", 4, "64 lower-case hex");
        expect_error(BASE "kubernetes: {kubelet: {package: kubelet}}\n", 4, "ordinary package under 'packages'");
        expect_error(BASE "kubernetes: {kubelet: k}\n", 4, "must be a mapping");
        expect_error(BASE "kubernetes: {sandbox_image: 'pause 3.10'}\n", 4, "invalid characters");
        expect_error(BASE "kubernetes: {sandbox_image: 'registry.k8s.io/pause:'}\n", 4, "image reference");
        expect_error(BASE "kubernetes: {kubeadm: true}\n", 4, "unknown key 'kubeadm' in 'kubernetes'");
        expect_error(BASE "images: [a.tar]\n", 4, "must be a mapping with source");
        expect_error(BASE "images: [{sha256: " SHA "}]\n", 4, "missing 'source'");
        expect_error(BASE "images: [{source: a/x.tar}, {source: b/x.tar}]\n", 4, "file name 'x.tar'");
        expect_error(BASE "images: [{source: 'a/x y.tar'}]\n", 4, "letters, digits");
        expect_error(BASE "images: [{source: a.tar, name: x}]\n", 4, "unknown key 'name'");
        expect_error(BASE "images: {source: a.tar}\n", 4, "must be a list");
        expect_error(BASE "units: {enable: [foo]}\n", 4, "'units.enable': 'foo' must end in .service");
        expect_error(BASE "units: {enable: ['-foo.service']}\n", 4, "must not start with");
        expect_error(BASE "units: {mask: [a.timer, a.timer]}\n", 4, "twice");
        expect_error(BASE "units: {enable: [a.service], mask: [a.service]}\n", 4, "both enabled and masked");
        expect_error(BASE "units: {keep: [containerd.service]}\n", 4,
                     "'units.keep': 'containerd.service' is not one of the units Hull turns off");
        expect_error(BASE "units: {keep: [man-db.timer], mask: [man-db.timer]}\n", 4, "both kept and masked");
        expect_error(BASE "units: {disable: [a.service]}\n", 4, "unknown key 'disable' in 'units'");
}

static void test_deep_nesting(void) {
        char buf[400];
        size_t n = 0;
        for (int i = 0; i < 100; i++)
                buf[n++] = '[';
        buf[n] = '\0';
        expect_error(buf, 0, "");
}

static void test_enums(void) {
        ASSERT_STREQ(rootfs_type_to_string(ROOTFS_EROFS), "erofs");
        ASSERT_EQ(rootfs_type_from_string("ext4"), ROOTFS_EXT4);
        ASSERT_EQ(rootfs_type_from_string("xfs"), -EINVAL);
        ASSERT_STREQ(hook_stage_to_string(HOOK_PRE_SEAL), "pre-seal");
        ASSERT_EQ(hook_stage_from_string("post-packages"), HOOK_POST_PACKAGES);
}

static void test_load_missing(void) {
        _cleanup_(spec_freep) Spec *s = NULL;
        ASSERT_ERROR(spec_load("/nonexistent/hull.yaml", &s, NULL), ENOENT);
}

static void test_example_specs(void) {
        /* The examples we ship must always parse. */
        const char *root = getenv("HULL_SOURCE_ROOT");
        if (!root)
                return;
        char path[1024];
        static const char *const examples[] = { "examples/demo/hull.yaml", "examples/k8s-node/hull.yaml" };
        for (size_t i = 0; i < ELEMENTSOF(examples); i++) {
                (void) snprintf(path, sizeof(path), "%s/%s", root, examples[i]);
                _cleanup_(spec_freep) Spec *s = NULL;
                SpecError e;
                int r = spec_load(path, &s, &e);
                if (r < 0)
                        fprintf(stderr, "%s:%u: %s\n", path, e.line, e.message);
                ASSERT_OK(r);
        }
}

static void test_kernel_modules(void) {
        static const char y[] = BASE
                "kernel:\n"
                "  modules:\n"
                "    profile: vm\n"
                "    allow: [drivers/gpu/drm/amd/**, 'net/sched/sch_*']\n"
                "    deny: [fs/btrfs/**]\n"
                "  firmware:\n"
                "    deny: [amdgpu/**]\n"
                "    allow: [intel-ucode/06-?\?-0?]\n";
        _cleanup_(spec_freep) Spec *s = NULL;

        ASSERT_OK(spec_parse(y, strlen(y), NULL, &s, NULL));
        ASSERT_EQ(s->modules_profile, MODTRIM_PROFILE_VM);
        ASSERT_STREQ(s->modules_allow[0], "drivers/gpu/drm/amd/**");
        ASSERT_STREQ(s->modules_allow[1], "net/sched/sch_*");
        ASSERT_TRUE(s->modules_allow[2] == NULL);
        ASSERT_STREQ(s->modules_deny[0], "fs/btrfs/**");
        ASSERT_STREQ(s->firmware_deny[0], "amdgpu/**");
        ASSERT_STREQ(s->firmware_allow[0], "intel-ucode/06-?\?-0?");

        /* Without the section: the server profile, nothing else. */
        _cleanup_(spec_freep) Spec *d = NULL;
        ASSERT_OK(spec_parse(BASE, strlen(BASE), NULL, &d, NULL));
        ASSERT_EQ(d->modules_profile, MODTRIM_PROFILE_SERVER);
        ASSERT_TRUE(!d->modules_allow && !d->modules_deny && !d->firmware_allow && !d->firmware_deny);

        expect_error(BASE "kernel: {modules: {profile: desktop}}\n", 4,
                     "kernel.modules.profile: must be server, vm or all, not 'desktop'");
        expect_error(BASE "kernel: {modules: {profile: [vm]}}\n", 4, "'kernel.modules.profile' must be a single value");
        expect_error(BASE "kernel: {modules: {keep: [a]}}\n", 4, "unknown key 'keep' in 'kernel.modules'");
        expect_error(BASE "kernel: {firmware: {mode: modules}}\n", 4, "unknown key 'mode' in 'kernel.firmware'");
        expect_error(BASE "kernel: {modules: {deny: fs/btrfs/**}}\n", 4, "kernel.modules.deny: must be a list");
        expect_error(BASE "kernel:\n  modules:\n    deny: [fs/a/**, fs/b/**, /fs/c]\n", 6,
                     "kernel.modules.deny[2]: \"/fs/c\" must be relative");
        expect_error(BASE "kernel: {modules: {deny: [fs/../x]}}\n", 4, "kernel.modules.deny[0]: \"fs/../x\" must not contain '.' or '..'");
        expect_error(BASE "kernel: {modules: {deny: ['fs//x']}}\n", 4, "must not contain '//'");
        expect_error(BASE "kernel: {modules: {deny: [fs/]}}\n", 4, "must not end in '/'");
        expect_error(BASE "kernel: {modules: {allow: ['fs/{a,b}']}}\n", 4, "kernel.modules.allow[0]: \"fs/{a,b}\" may only have");
        expect_error(BASE "kernel: {modules: {allow: ['a b']}}\n", 4, "may only have");
        expect_error(BASE "kernel: {modules: {allow: ['']}}\n", 4, "kernel.modules.allow[0]: \"\" must not be empty");
        expect_error(BASE "kernel: {modules: {allow: [[a]]}}\n", 4, "kernel.modules.allow[0]: must be a glob, not a list");
        expect_error(BASE "kernel: {firmware: {deny: [a/**, b, a/**]}}\n", 4,
                     "kernel.firmware.deny[2]: 'a/**' is already listed as kernel.firmware.deny[0]");

        char long_glob[300];
        memset(long_glob, 'a', 256);
        long_glob[256] = '\0';
        char *y2 = NULL;
        ASSERT_TRUE(asprintf(&y2, BASE "kernel: {firmware: {allow: [%s]}}\n", long_glob) > 0);
        expect_error(y2, 4, "kernel.firmware.allow[0]: ");
        expect_error(y2, 4, "longer than 255");
        free(y2);

        /* At most MODTRIM_PATTERNS_MAX globs. */
        size_t cap = 64 + (MODTRIM_PATTERNS_MAX + 1) * 8, o = 0;
        char *big = malloc(cap);
        ASSERT_TRUE(big != NULL);
        o += (size_t) snprintf(big + o, cap - o, BASE "kernel: {modules: {deny: [");
        for (int i = 0; i <= MODTRIM_PATTERNS_MAX; i++)
                o += (size_t) snprintf(big + o, cap - o, "%sd%d", i ? "," : "", i);
        (void) snprintf(big + o, cap - o, "]}}\n");
        expect_error(big, 4, "kernel.modules.deny: lists 257 globs; at most 256");
        free(big);
}

int main(void) {
        TEST_RUN(test_full);
        TEST_RUN(test_kernel_modules);
        TEST_RUN(test_defaults);
        TEST_RUN(test_errors);
        TEST_RUN(test_kubernetes);
        TEST_RUN(test_repositories);
        TEST_RUN(test_repository_errors);
        TEST_RUN(test_repository_keys);
        TEST_RUN(test_deep_nesting);
        TEST_RUN(test_enums);
        TEST_RUN(test_load_missing);
        TEST_RUN(test_example_specs);
        return 0;
}
