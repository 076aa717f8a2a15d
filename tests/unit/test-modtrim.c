/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdint.h>
#include <stdlib.h>

#include "fileio.h"
#include "modtrim.h"
#include "strutil.h"
#include "tests.h"

static void test_glob(void) {
        ASSERT_TRUE(modtrim_glob_match("fs/btrfs/**", "fs/btrfs/btrfs"));
        ASSERT_TRUE(modtrim_glob_match("drivers/gpu/**", "drivers/gpu/drm/amd/amdgpu/amdgpu"));
        ASSERT_TRUE(!modtrim_glob_match("drivers/gpu/**", "drivers/gpux/a"));
        ASSERT_TRUE(!modtrim_glob_match("drivers/gpu/**", "drivers/gpu"));
        /* '*' stays within one directory. */
        ASSERT_TRUE(modtrim_glob_match("lib/test_*", "lib/test_bpf"));
        ASSERT_TRUE(!modtrim_glob_match("lib/test_*", "lib/test_x/y"));
        ASSERT_TRUE(modtrim_glob_match("drivers/*/foo", "drivers/net/foo"));
        ASSERT_TRUE(!modtrim_glob_match("drivers/*/foo", "drivers/net/x/foo"));
        ASSERT_TRUE(modtrim_glob_match("drivers/**/foo", "drivers/net/x/foo"));
        ASSERT_TRUE(modtrim_glob_match("**", "a/b/c"));
        ASSERT_TRUE(modtrim_glob_match("**/xfs", "fs/xfs/xfs"));
        /* An odd run of stars is "**" and then "*". */
        ASSERT_TRUE(modtrim_glob_match("a/***", "a/b/c"));
        /* '?' is one character, never '/'. */
        ASSERT_TRUE(modtrim_glob_match("fs/nls/nls_cp???", "fs/nls/nls_cp437"));
        ASSERT_TRUE(!modtrim_glob_match("fs/nls/nls_cp???", "fs/nls/nls_cp43"));
        ASSERT_TRUE(!modtrim_glob_match("a?b", "a/b"));
        /* Whole path only. */
        ASSERT_TRUE(!modtrim_glob_match("fs/xfs", "fs/xfs/xfs"));
        ASSERT_TRUE(!modtrim_glob_match("xfs", "fs/xfs/xfs"));
        ASSERT_TRUE(modtrim_glob_match("", ""));
        ASSERT_TRUE(!modtrim_glob_match("", "a"));
        /* No exponential backtracking: this would take ages recursively. */
        char pat[256] = "", path[200];
        for (int i = 0; i < 40; i++)
                (void) strcat(pat, "*a");
        (void) strcat(pat, "b");
        memset(path, 'a', sizeof(path) - 1);
        path[sizeof(path) - 1] = '\0';
        ASSERT_TRUE(!modtrim_glob_match(pat, path));

        ASSERT_TRUE(modtrim_pattern_check("drivers/gpu/**") == NULL);
        ASSERT_TRUE(modtrim_pattern_check("intel-ucode/06-8f-0?") == NULL);
        ASSERT_TRUE(modtrim_pattern_check("") != NULL);
        ASSERT_TRUE(modtrim_pattern_check("/fs/x") != NULL);
        ASSERT_TRUE(modtrim_pattern_check("fs/x/") != NULL);
        ASSERT_TRUE(modtrim_pattern_check("fs//x") != NULL);
        ASSERT_TRUE(modtrim_pattern_check("fs/../x") != NULL);
        ASSERT_TRUE(modtrim_pattern_check("./x") != NULL);
        ASSERT_TRUE(modtrim_pattern_check("fs/[ab]") != NULL);
        ASSERT_TRUE(modtrim_pattern_check("a b") != NULL);

        char *p = modtrim_match_path("kernel/fs/xfs/xfs.ko");
        ASSERT_STREQ(p, "fs/xfs/xfs");
        free(p);
        p = modtrim_match_path("kernel/drivers/md/dm-mod.ko.zst");
        ASSERT_STREQ(p, "drivers/md/dm-mod");
        free(p);
        p = modtrim_match_path("kernel/lib/x.ko.xz");
        ASSERT_STREQ(p, "lib/x");
        free(p);
        ASSERT_TRUE(modtrim_match_path("updates/dkms/x.ko") == NULL);
        ASSERT_TRUE(modtrim_match_path("kernel/fs/x.o") == NULL);

        ASSERT_EQ(modtrim_profile_from_string("server"), MODTRIM_PROFILE_SERVER);
        ASSERT_EQ(modtrim_profile_from_string("vm"), MODTRIM_PROFILE_VM);
        ASSERT_EQ(modtrim_profile_from_string("all"), MODTRIM_PROFILE_ALL);
        ASSERT_EQ(modtrim_profile_from_string("desktop"), _MODTRIM_PROFILE_INVALID);
        ASSERT_EQ(modtrim_profile_from_string(NULL), _MODTRIM_PROFILE_INVALID);
}

/* A small kernel: what ext4 and xfs (required) need, a GPU driver (and
 * a DKMS module outside kernel/ that needs drm), a NIC that needs a LED
 * helper, a platform driver with a soft dependency through an alias,
 * netfilter, sound, btrfs, two NICs for the vm profile. */
static const char dep[] =
        "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko kernel/lib/crc16.ko\n"
        "kernel/fs/jbd2/jbd2.ko:\n"
        "kernel/fs/mbcache.ko:\n"
        "kernel/crypto/crc32c_generic.ko:\n"
        "kernel/arch/x86/crypto/crc32c-intel.ko:\n"
        "kernel/lib/libcrc32c.ko:\n"
        "kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko\n"
        "kernel/fs/btrfs/btrfs.ko: kernel/lib/libcrc32c.ko\n"
        "kernel/drivers/gpu/drm/drm.ko:\n"
        "kernel/drivers/gpu/drm/amd/amdgpu/amdgpu.ko: kernel/drivers/gpu/drm/drm.ko "
        "kernel/drivers/i2c/algos/i2c-algo-bit.ko\n"
        "kernel/drivers/i2c/algos/i2c-algo-bit.ko:\n"
        "kernel/drivers/gpu/drm/ast/ast.ko: kernel/drivers/gpu/drm/drm.ko kernel/drivers/i2c/algos/i2c-algo-bit.ko\n"
        "updates/dkms/nvidia.ko: kernel/drivers/gpu/drm/drm.ko\n"
        "kernel/drivers/net/ethernet/foo/foo.ko: kernel/drivers/leds/led-class.ko\n"
        "kernel/drivers/leds/led-class.ko:\n"
        "kernel/drivers/leds/leds-gpio.ko:\n"
        "kernel/drivers/leds/leds-other.ko:\n"
        "kernel/drivers/platform/x86/apu.ko:\n"
        "kernel/net/netfilter/x_tables.ko:\n"
        "kernel/net/netfilter/xt_conntrack.ko: kernel/net/netfilter/x_tables.ko\n"
        "kernel/sound/core/snd.ko:\n"
        "kernel/drivers/net/ethernet/realtek/r8169.ko:\n"
        "kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko:\n"
        "kernel/drivers/infiniband/core/ib_core.ko:\n";

static const char softdep[] = "# Soft dependencies extracted from modules themselves.\n"
                              "softdep ext4 pre: crypto-crc32c\n"
                              "softdep libcrc32c pre: crc32c\n"
                              "softdep apu pre: platform:leds-gpio\n"
                              "softdep cifs gcm\n"
                              "softdep xfs pre: crc16 post: no-such-thing\n";

static const char alias[] = "# Aliases extracted from modules themselves.\n"
                            "alias crypto-crc32c crc32c_intel\n"
                            "alias crypto-crc32c crc32c_generic\n"
                            "alias crc32c crc32c_generic\n"
                            "alias platform:leds-gpio leds_gpio\n"
                            "alias pci:v00001002d*sv*sd*bc03sc*i* amdgpu\n"
                            "alias fs-crc16 crc16\n";

static const char builtin[] = "kernel/lib/crc16.ko\nkernel/fs/nls/nls_base.ko\n";

static ModTrim *load(void) {
        ModTrim *t = NULL;
        char *err = NULL;
        int r = modtrim_load(&(ModTrimSources) { dep, softdep, alias, builtin }, &t, &err);
        if (r < 0) {
                fprintf(stderr, "modtrim_load: %d %s\n", r, err ?: "");
                abort();
        }
        free(err);
        return t;
}

static const ModTrimModule *mod(const ModTrim *t, const char *name) {
        int k = modtrim_find(t, name);
        if (k < 0) {
                fprintf(stderr, "no module %s\n", name);
                abort();
        }
        return &t->modules[k];
}

#define ASSERT_MOD(t, name, keep_, reason_)                                                                            \
        do {                                                                                                           \
                const ModTrimModule *_m = mod(t, name);                                                                \
                if (_m->keep != (keep_) || !_m->reason || strcmp(_m->reason, reason_) != 0) {                          \
                        fprintf(stderr, "%s:%d: %s: keep=%d reason='%s', wanted keep=%d '%s'\n", __FILE__, __LINE__,   \
                                name, _m->keep, _m->reason ?: "", (int) (keep_), reason_);                             \
                        abort();                                                                                       \
                }                                                                                                      \
        } while (0)

static void test_load(void) {
        _cleanup_(modtrim_freep) ModTrim *t = load();

        ASSERT_EQ(t->n_modules, 24);
        ASSERT_EQ(t->n_builtin, 2);
        /* Names as the kernel has them: '-' is '_'; lookups take either. */
        ASSERT_STREQ(mod(t, "crc32c-intel")->name, "crc32c_intel");
        ASSERT_STREQ(mod(t, "i2c_algo_bit")->path, "kernel/drivers/i2c/algos/i2c-algo-bit.ko");
        ASSERT_EQ(modtrim_find(t, "crc16"), -ENOENT);
        ASSERT_TRUE(modtrim_is_builtin(t, "crc16"));
        ASSERT_TRUE(modtrim_is_builtin(t, "nls-base"));
        ASSERT_TRUE(!modtrim_is_builtin(t, "ext4"));
        /* ext4's dependency on built-in crc16 is no edge. */
        ASSERT_EQ(mod(t, "ext4")->n_deps, 2);
        /* Aliases of built-in modules are kept apart; five others remain. */
        ASSERT_EQ(t->n_aliases, 5);
        ASSERT_EQ(t->n_builtin_aliases, 1);
        ASSERT_STREQ(t->builtin_aliases[0], "fs-crc16");
        ASSERT_STREQ(mod(t, "xfs")->softdeps[0], "crc16");
        ASSERT_STREQ(mod(t, "xfs")->softdeps[1], "no-such-thing");
        /* The "pre:" names also on their own. */
        ASSERT_STREQ(mod(t, "xfs")->softdeps_pre[0], "crc16");
        ASSERT_TRUE(mod(t, "xfs")->softdeps_pre[1] == NULL);
        ASSERT_TRUE(mod(t, "ext4")->softdeps_pre && streq(mod(t, "ext4")->softdeps_pre[0], "crypto-crc32c"));
        ASSERT_TRUE(mod(t, "btrfs")->softdeps_pre == NULL);

        /* Words before pre: and after post: are soft dependencies, not
         * "pre:" ones; lines add up. */
        ModTrim *s = NULL;
        ASSERT_OK(modtrim_load(&(ModTrimSources) { "kernel/fs/cifs.ko:\n",
                                       "softdep cifs gcm pre: a b post: c pre: d\nsoftdep cifs pre: e\n" },
                &s, NULL));
        char **all = s->modules[0].softdeps, **pre = s->modules[0].softdeps_pre;
        ASSERT_EQ(strv_length(all), 6);
        ASSERT_STREQ(all[0], "gcm");
        ASSERT_EQ(strv_length(pre), 4);
        ASSERT_TRUE(streq(pre[0], "a") && streq(pre[1], "b") && streq(pre[2], "d") && streq(pre[3], "e"));
        s = modtrim_free(s);
}

static void expect_lookup(const ModTrim *t, const char *name, const char *want, bool want_builtin) {
        _cleanup_free_ size_t *v = NULL;
        _cleanup_free_ char *got = strdup("");
        size_t n = 99;
        bool is_builtin = !want_builtin;

        ASSERT_OK(modtrim_lookup(t, name, &v, &n, &is_builtin));
        ASSERT_TRUE((n == 0) == (v == NULL));
        for (size_t i = 0; i < n; i++) {
                char *g = NULL;
                ASSERT_TRUE(asprintf(&g, "%s%s%s", got, i ? " " : "", t->modules[v[i]].name) >= 0);
                free(got);
                got = g;
        }
        if (!streq(got, want) || is_builtin != want_builtin) {
                fprintf(stderr, "lookup %s: '%s' builtin=%d, wanted '%s' builtin=%d\n", name, got, is_builtin, want,
                        want_builtin);
                abort();
        }
}

static void test_lookup(void) {
        _cleanup_(modtrim_freep) ModTrim *t = load();

        /* A module name wins over aliases; '-' and '_' alike. */
        expect_lookup(t, "crc32c-intel", "crc32c_intel", false);
        /* Every module an alias matches, once each, in modules.alias order. */
        expect_lookup(t, "crypto-crc32c", "crc32c_intel crc32c_generic", false);
        expect_lookup(t, "crc32c", "crc32c_generic", false);
        expect_lookup(t, "platform:leds-gpio", "leds_gpio", false);
        expect_lookup(t, "pci:v00001002d00006798sv00001002sd00003001bc03sc00i00", "amdgpu", false);
        /* Built in, by name or through an alias: nothing to load, not missing. */
        expect_lookup(t, "crc16", "", true);
        expect_lookup(t, "nls-base", "", true);
        expect_lookup(t, "fs-crc16", "", true);
        expect_lookup(t, "no-such-thing", "", false);
        /* The builtin flag may be left out. */
        _cleanup_free_ size_t *v = NULL;
        size_t n = 0;
        ASSERT_OK(modtrim_lookup(t, "crypto-crc32c", &v, &n, NULL));
        ASSERT_EQ(n, 2);
}

static void test_resolve_server(void) {
        _cleanup_(modtrim_freep) ModTrim *t = load();
        ModTrimRules rules = { .profile = MODTRIM_PROFILE_SERVER };

        ASSERT_OK(modtrim_resolve(t, &rules, NULL));
        ASSERT_MOD(t, "amdgpu", false, "profile server: drivers/gpu/**");
        ASSERT_MOD(t, "ast", false, "profile server: drivers/gpu/**");
        ASSERT_MOD(t, "snd", false, "profile server: sound/**");
        /* The DKMS module is outside kernel/ and keeps what it needs. */
        ASSERT_MOD(t, "nvidia", true, "kept: outside kernel/");
        ASSERT_MOD(t, "drm", true, "needed by nvidia");
        /* i2c is no profile's business. */
        ASSERT_MOD(t, "i2c-algo-bit", true, "kept");
        /* The dependency closure of a kept NIC overrides the profile's LED rule. */
        ASSERT_MOD(t, "foo", true, "kept");
        ASSERT_MOD(t, "led_class", true, "needed by foo");
        ASSERT_MOD(t, "leds_other", false, "profile server: drivers/leds/**");
        /* A soft dependency through an alias. */
        ASSERT_MOD(t, "leds_gpio", true, "soft dependency of apu");
        /* Required: ext4 and what it needs, incl. its soft dependency
         * crypto-crc32c, an alias of two modules. */
        ASSERT_MOD(t, "ext4", true, "kept: required (Hull's initramfs and boot need it)");
        ASSERT_MOD(t, "jbd2", true, "needed by ext4 (required)");
        ASSERT_TRUE(mod(t, "crc32c_intel")->required && mod(t, "crc32c_generic")->required);
        ASSERT_TRUE(mod(t, "libcrc32c")->required);
        ASSERT_MOD(t, "xt_conntrack", true, "kept: required (Kubernetes networking needs it)");
        ASSERT_MOD(t, "x_tables", true, "needed by xt_conntrack (required)");
        ASSERT_TRUE(!mod(t, "btrfs")->required);
        ASSERT_MOD(t, "btrfs", true, "kept");
        /* Only the vm profile drops these. */
        ASSERT_MOD(t, "r8169", true, "kept");
        ASSERT_MOD(t, "ib_core", true, "kept");

        /* Resolving again with other rules starts afresh. */
        rules.profile = MODTRIM_PROFILE_VM;
        ASSERT_OK(modtrim_resolve(t, &rules, NULL));
        ASSERT_MOD(t, "r8169", false, "profile vm: drivers/net/ethernet/**");
        ASSERT_MOD(t, "e1000e", true, "kept");
        ASSERT_MOD(t, "ib_core", false, "profile vm: drivers/infiniband/**");
        ASSERT_MOD(t, "foo", false, "profile vm: drivers/net/ethernet/**");
        ASSERT_MOD(t, "led_class", false, "profile vm: drivers/leds/**");

        rules.profile = MODTRIM_PROFILE_ALL;
        ASSERT_OK(modtrim_resolve(t, &rules, NULL));
        for (size_t i = 0; i < t->n_modules; i++)
                ASSERT_TRUE(t->modules[i].keep);
}

static void test_resolve_spec_rules(void) {
        _cleanup_(modtrim_freep) ModTrim *t = load();
        char *allow[] = { (char *) "drivers/gpu/drm/amd/**", NULL };
        char *deny[] = { (char *) "fs/btrfs/**", (char *) "drivers/i2c/**", NULL };
        ModTrimRules rules = { .profile = MODTRIM_PROFILE_SERVER, .allow = allow, .deny = deny };

        ASSERT_OK(modtrim_resolve(t, &rules, NULL));
        /* Allow beats the profile's deny and the spec's own. */
        ASSERT_MOD(t, "amdgpu", true, "kept: allow drivers/gpu/drm/amd/**");
        ASSERT_MOD(t, "i2c_algo_bit", true, "needed by amdgpu");
        ASSERT_MOD(t, "ast", false, "profile server: drivers/gpu/**");
        ASSERT_MOD(t, "btrfs", false, "deny fs/btrfs/**");
        /* btrfs is gone, but xfs (required) still needs libcrc32c. */
        ASSERT_MOD(t, "libcrc32c", true, "needed by xfs (required)");

        /* Without the allow, i2c-algo-bit is denied and nothing needs it. */
        rules.allow = NULL;
        ASSERT_OK(modtrim_resolve(t, &rules, NULL));
        ASSERT_MOD(t, "i2c_algo_bit", false, "deny drivers/i2c/**");

        /* A module named in modules-load.d is required like Hull's own. */
        char *load_names[] = { (char *) "btrfs", NULL };
        char *err = NULL;
        rules.load = load_names;
        ASSERT_ERROR(modtrim_resolve(t, &rules, &err), EPERM);
        ASSERT_TRUE(strstr(err, "kernel.modules.deny[0]: 'fs/btrfs/**' matches kernel/fs/btrfs/btrfs.ko") != NULL);
        ASSERT_TRUE(strstr(err, "btrfs is in modules-load.d") != NULL);
        free(err);
}

static void test_resolve_required_denied(void) {
        _cleanup_(modtrim_freep) ModTrim *t = load();
        char *err = NULL;

        char *deny1[] = { (char *) "fs/btrfs/**", (char *) "fs/jbd2/**", NULL };
        ModTrimRules rules = { .profile = MODTRIM_PROFILE_SERVER, .deny = deny1 };
        ASSERT_ERROR(modtrim_resolve(t, &rules, &err), EPERM);
        ASSERT_TRUE(strstr(err, "kernel.modules.deny[1]: 'fs/jbd2/**' matches kernel/fs/jbd2/jbd2.ko, which the "
                                "image needs (needed by ext4 (required))") != NULL);

        /* Directly required. */
        char *deny2[] = { (char *) "fs/**", NULL };
        rules.deny = deny2;
        ASSERT_ERROR(modtrim_resolve(t, &rules, &err), EPERM);
        ASSERT_TRUE(strstr(err, "kernel.modules.deny[0]: 'fs/**'") != NULL);

        /* A soft dependency of a required module, through an alias. */
        char *deny3[] = { (char *) "arch/**", NULL };
        rules.deny = deny3;
        ASSERT_ERROR(modtrim_resolve(t, &rules, &err), EPERM);
        ASSERT_TRUE(strstr(err, "crc32c-intel.ko") != NULL);
        ASSERT_TRUE(strstr(err, "soft dependency of") != NULL);

        /* The netfilter families are required by prefix. */
        char *deny4[] = { (char *) "net/netfilter/xt_*", NULL };
        rules.deny = deny4;
        ASSERT_ERROR(modtrim_resolve(t, &rules, &err), EPERM);
        ASSERT_TRUE(strstr(err, "Kubernetes networking") != NULL);

        /* An allow for what a broad deny would take makes it acceptable. */
        char *allow[] = { (char *) "arch/x86/crypto/crc32c-intel", NULL };
        rules.deny = deny3;
        rules.allow = allow;
        ASSERT_OK(modtrim_resolve(t, &rules, NULL));
        ASSERT_TRUE(mod(t, "crc32c_intel")->keep && mod(t, "crc32c_intel")->required);
        ASSERT_MOD(t, "crc32c_intel", true, "soft dependency of ext4 (required)");
        free(err);
}

static void expect_load_error(const char *d, const char *s, const char *a, const char *b, int err, const char *needle) {
        ModTrim *t = NULL;
        char *msg = NULL;
        int r = modtrim_load(&(ModTrimSources) { d, s, a, b }, &t, &msg);
        if (r != -err || !msg || !strstr(msg, needle) || t) {
                fprintf(stderr, "expected -%d '%s', got %d '%s'\n", err, needle, r, msg ?: "");
                abort();
        }
        free(msg);
}

static void test_malformed(void) {
        expect_load_error(
                "kernel/a.ko\n", NULL, NULL, NULL, EBADMSG, "modules.dep:1: expected 'module.ko: dependencies'");
        expect_load_error("kernel/a.ko:\nkernel/b.txt:\n", NULL, NULL, NULL, EBADMSG,
                "modules.dep:2: 'kernel/b.txt' is not a module path");
        expect_load_error("kernel/../a.ko:\n", NULL, NULL, NULL, EBADMSG, "not a module path");
        expect_load_error("/kernel/a.ko:\n", NULL, NULL, NULL, EBADMSG, "not a module path");
        expect_load_error(":\n", NULL, NULL, NULL, EBADMSG, "modules.dep:1");
        expect_load_error("kernel/a.ko:\nkernel/a.ko:\n", NULL, NULL, NULL, EBADMSG, "kernel/a.ko is listed twice");
        expect_load_error("kernel/a.ko: kernel/b.ko\n", NULL, NULL, NULL, EBADMSG,
                "modules.dep:1: kernel/a.ko needs \"kernel/b.ko\", which is not in modules.dep");
        /* ...unless b is built in. */
        ModTrim *t = NULL;
        ASSERT_OK(
                modtrim_load(&(ModTrimSources) { "kernel/a.ko: kernel/b.ko\n", NULL, NULL, "kernel/b.ko\n" }, &t, NULL));
        ASSERT_EQ(t->modules[0].n_deps, 0);
        t = modtrim_free(t);

        expect_load_error("kernel/a.ko:\n", "softdep\n", NULL, NULL, EBADMSG, "modules.softdep:1: expected");
        expect_load_error("kernel/a.ko:\n", "softdep pre: b\n", NULL, NULL, EBADMSG, "modules.softdep:1");
        expect_load_error("kernel/a.ko:\n", "options a x=1\n", NULL, NULL, EBADMSG, "modules.softdep:1");
        expect_load_error(
                "kernel/a.ko:\n", NULL, "alias x\n", NULL, EBADMSG, "modules.alias:1: expected 'alias PATTERN MODULE'");
        expect_load_error("kernel/a.ko:\n", NULL, "# c\nalias x a b\n", NULL, EBADMSG, "modules.alias:2");
        expect_load_error("kernel/a.ko:\n", NULL, "blias x a\n", NULL, EBADMSG, "modules.alias:1");
        expect_load_error("kernel/a.ko:\n", NULL, NULL, "kernel/b.ko kernel/c.ko\n", EBADMSG, "modules.builtin:1");
        expect_load_error("kernel/a.ko:\n", NULL, NULL, "b\n", EBADMSG, "modules.builtin:1");

        /* An overlong line. */
        size_t n = MODTRIM_LINE_MAX + 16;
        char *big = malloc(n + 1);
        ASSERT_TRUE(big != NULL);
        memcpy(big, "kernel/a.ko:", 12);
        memset(big + 12, ' ', n - 12);
        big[n] = '\0';
        expect_load_error(big, NULL, NULL, NULL, E2BIG, "modules.dep:1: line too long");
        free(big);

        /* An empty modules.dep is a kernel without loadable modules. */
        ASSERT_OK(modtrim_load(&(ModTrimSources) { "" }, &t, NULL));
        ASSERT_EQ(t->n_modules, 0);
        ASSERT_OK(modtrim_resolve(t, &(ModTrimRules) {}, NULL));
        t = modtrim_free(t);
        ASSERT_ERROR(modtrim_load(&(ModTrimSources) {}, &t, NULL), EINVAL);
}

static void test_firmware(void) {
        _cleanup_(modtrim_freep) ModTrim *t = load();
        ModTrimRules rules = { .profile = MODTRIM_PROFILE_SERVER };
        ASSERT_OK(modtrim_resolve(t, &rules, NULL));

        /* amdgpu (dropped) and ast (dropped) name a shared file; drm (kept)
         * names another one amdgpu names too. */
        t->modules[modtrim_find(t, "amdgpu")].firmware =
                strv_append(strv_append(strv_append(NULL, "amdgpu/a.bin"), "common.bin"), "shared.bin");
        t->modules[modtrim_find(t, "ast")].firmware = strv_append(NULL, "shared.bin");
        t->modules[modtrim_find(t, "drm")].firmware = strv_append(NULL, "common.bin");

        ModTrimFirmware fw[] = {
                { .path = strdup("amdgpu/a.bin.xz") },
                { .path = strdup("common.bin") },
                { .path = strdup("shared.bin") },
                { .path = strdup("intel-ucode/06-8f-08") },
                { .path = strdup("amdgpu/b.bin") },
                { .path = strdup("vendor/link.bin"), .link_target = strdup("shared.bin") },
                { .path = strdup("amdgpu/c.bin") },
        };
        char *deny[] = { (char *) "amdgpu/**", (char *) "vendor/**", NULL };
        char *allow[] = { (char *) "amdgpu/c.*", NULL };

        ASSERT_OK(modtrim_firmware_resolve(t, fw, 4, NULL, NULL));
        ASSERT_TRUE(!fw[0].keep);
        ASSERT_STREQ(fw[0].reason, "only for dropped modules: amdgpu");
        ASSERT_TRUE(fw[1].keep);
        ASSERT_STREQ(fw[1].reason, "kept: for drm");
        ASSERT_TRUE(!fw[2].keep);
        ASSERT_STREQ(fw[2].reason, "only for dropped modules: amdgpu and 1 more");
        ASSERT_TRUE(fw[3].keep);
        ASSERT_STREQ(fw[3].reason, "kept: named by no module");

        ASSERT_OK(modtrim_firmware_resolve(t, fw, ELEMENTSOF(fw), allow, deny));
        ASSERT_STREQ(fw[0].reason, "deny amdgpu/**");
        ASSERT_TRUE(!fw[4].keep);
        ASSERT_STREQ(fw[4].reason, "deny amdgpu/**");
        ASSERT_TRUE(fw[6].keep);
        ASSERT_STREQ(fw[6].reason, "kept: allow amdgpu/c.*");
        ASSERT_TRUE(!fw[5].keep);

        /* A kept link keeps its target. */
        char *allow2[] = { (char *) "vendor/**", NULL };
        ASSERT_OK(modtrim_firmware_resolve(t, fw, ELEMENTSOF(fw), allow2, NULL));
        ASSERT_TRUE(fw[5].keep);
        ASSERT_TRUE(fw[2].keep);
        ASSERT_STREQ(fw[2].reason, "kept: target of vendor/link.bin");
        modtrim_firmware_done(fw, ELEMENTSOF(fw));
}

/* A minimal ELF64 with the section headers a module has: null,
 * .shstrtab, .modinfo. */
static size_t make_elf(uint8_t *b, size_t cap, const char *modinfo, size_t modinfo_len) {
        static const char shstr[] = "\0.shstrtab\0.modinfo\0";
        size_t shstr_off = 64, mi_off = shstr_off + sizeof(shstr), sh_off = (mi_off + modinfo_len + 7) / 8 * 8;
        size_t total = sh_off + 3 * 64;
        ASSERT_TRUE(total <= cap);
        memset(b, 0, total);
        memcpy(b, "\177ELF\2\1\1", 7);
#define PUT(off, v, n)                                                                                                 \
        do {                                                                                                           \
                uint64_t _v = (v);                                                                                     \
                for (size_t _i = 0; _i < (n); _i++)                                                                    \
                        b[(off) + _i] = (uint8_t) (_v >> (8 * _i));                                                    \
        } while (0)
        PUT(0x28, sh_off, 8);
        PUT(0x3a, 64, 2);
        PUT(0x3c, 3, 2);
        PUT(0x3e, 1, 2);
        memcpy(b + shstr_off, shstr, sizeof(shstr));
        memcpy(b + mi_off, modinfo, modinfo_len);
        /* [1] .shstrtab */
        PUT(sh_off + 64 + 0, 1, 4);
        PUT(sh_off + 64 + 4, 3, 4);
        PUT(sh_off + 64 + 0x18, shstr_off, 8);
        PUT(sh_off + 64 + 0x20, sizeof(shstr), 8);
        /* [2] .modinfo */
        PUT(sh_off + 128 + 0, 11, 4);
        PUT(sh_off + 128 + 4, 1, 4);
        PUT(sh_off + 128 + 0x18, mi_off, 8);
        PUT(sh_off + 128 + 0x20, modinfo_len, 8);
#undef PUT
        return total;
}

static void test_modinfo(void) {
        static const char mi[] =
                "license=GPL\0firmware=amdgpu/a.bin\0alias=pci:x\0firmware=b.bin\0firmware=amdgpu/a.bin\0"
                "firmware=\0description=x";
        uint8_t b[1024];
        char **l = NULL;
        size_t n = make_elf(b, sizeof(b), mi, sizeof(mi) - 1);

        ASSERT_OK(modtrim_modinfo_firmware(b, n, &l));
        ASSERT_EQ(strv_length(l), 2);
        ASSERT_STREQ(l[0], "amdgpu/a.bin");
        ASSERT_STREQ(l[1], "b.bin");
        strv_free(l);

        /* No firmware at all. */
        n = make_elf(b, sizeof(b), "license=GPL", 11);
        ASSERT_OK(modtrim_modinfo_firmware(b, n, &l));
        ASSERT_EQ(strv_length(l), 0);
        strv_free(l);

        /* Truncated: the section headers are cut off. */
        n = make_elf(b, sizeof(b), mi, sizeof(mi) - 1);
        ASSERT_ERROR(modtrim_modinfo_firmware(b, n - 1, &l), EBADMSG);
        /* .modinfo points past the end. */
        b[n - 64 + 0x20 + 7] = 0xff;
        ASSERT_ERROR(modtrim_modinfo_firmware(b, n, &l), EBADMSG);
        ASSERT_ERROR(
                modtrim_modinfo_firmware("not an ELF file at all, just text, long enough to be one...........", 68, &l),
                EBADMSG);
        ASSERT_ERROR(modtrim_modinfo_firmware(b, 10, &l), EBADMSG);
}

/* docs/SPEC.md lists every profile rule and required module: the table the
 * reader sees is the one the code uses. */
static void test_docs(void) {
        const char *root = getenv("HULL_SOURCE_ROOT");
        _cleanup_free_ char *path = NULL, *doc = NULL;
        size_t sz;

        if (!root) {
                fprintf(stderr, "   HULL_SOURCE_ROOT not set, skipping\n");
                return;
        }
        path = path_join(root, "docs/SPEC.md");
        ASSERT_TRUE(path != NULL);
        ASSERT_OK(read_full_file(path, 1 << 22, &doc, &sz));
        for (ModTrimProfile p = 0; p < _MODTRIM_PROFILE_MAX; p++) {
                size_t n = 0;
                const ModTrimProfileRule *r = modtrim_profile_rules(p, &n);
                for (size_t i = 0; i < n; i++) {
                        char want[300];
                        (void) snprintf(want, sizeof(want), "`%s`", r[i].deny);
                        if (!strstr(doc, want)) {
                                fprintf(stderr, "docs/SPEC.md does not list %s\n", want);
                                abort();
                        }
                        for (const char *const *e = r[i].except; e && *e; e++) {
                                (void) snprintf(want, sizeof(want), "`%s`", *e);
                                if (!strstr(doc, want)) {
                                        fprintf(stderr, "docs/SPEC.md does not list %s\n", want);
                                        abort();
                                }
                        }
                }
        }
        size_t n = 0;
        const ModTrimRequired *req = modtrim_required(&n);
        for (size_t i = 0; i < n; i++) {
                char want[128];
                (void) snprintf(want, sizeof(want), "`%s`", req[i].name);
                if (!strstr(doc, want)) {
                        fprintf(stderr, "docs/SPEC.md does not list required module %s\n", want);
                        abort();
                }
        }
}

int main(void) {
        TEST_RUN(test_glob);
        TEST_RUN(test_load);
        TEST_RUN(test_lookup);
        TEST_RUN(test_resolve_server);
        TEST_RUN(test_resolve_spec_rules);
        TEST_RUN(test_resolve_required_denied);
        TEST_RUN(test_malformed);
        TEST_RUN(test_firmware);
        TEST_RUN(test_modinfo);
        TEST_RUN(test_docs);
        return 0;
}
