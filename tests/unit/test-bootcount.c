/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bootcount.h"
#include "fileio.h"
#include "grubenv.h"
#include "spawn.h"
#include "strutil.h"
#include "tests.h"

static const unsigned prios[] = { 0, 1, 2, BOOT_PRIORITY_MAX - 1, BOOT_PRIORITY_MAX };

/* Iterates 'st' over every SlotState with a priority from prios[], every
 * tries value and both good values. */
#define FOREACH_SLOT_STATE(st)                                                               \
        for (size_t st##_p = 0; st##_p < ELEMENTSOF(prios); st##_p++)                       \
                for (unsigned st##_t = 0; st##_t <= BOOT_TRIES_MAX; st##_t++)               \
                        for (unsigned st##_g = 0; st##_g <= 1; st##_g++)                    \
                                for (SlotState st = { prios[st##_p], st##_t, st##_g }, *st##_once = &st; \
                                     st##_once; st##_once = NULL)

static BootState initial_state(void) {
        /* What hull-build writes: A holds the image and is good, B is empty. */
        return (BootState) { .slot = { [SLOT_A] = { 10, 0, true }, [SLOT_B] = { 0, 0, false } } };
}

static bool state_eq(const BootState *a, const BootState *b) {
        for (Slot i = 0; i < _SLOT_MAX; i++)
                if (a->slot[i].priority != b->slot[i].priority || a->slot[i].tries != b->slot[i].tries ||
                    a->slot[i].good != b->slot[i].good)
                        return false;
        return true;
}

static void test_slot_strings(void) {
        ASSERT_STREQ(slot_to_string(SLOT_A), "a");
        ASSERT_STREQ(slot_to_string(SLOT_B), "b");
        ASSERT_TRUE(slot_to_string(SLOT_INVALID) == NULL);
        ASSERT_TRUE(slot_to_string(_SLOT_MAX) == NULL);
        ASSERT_EQ(slot_from_string("a"), SLOT_A);
        ASSERT_EQ(slot_from_string("A"), SLOT_A);
        ASSERT_EQ(slot_from_string("b"), SLOT_B);
        ASSERT_EQ(slot_from_string("B"), SLOT_B);
        ASSERT_EQ(slot_from_string("c"), SLOT_INVALID);
        ASSERT_EQ(slot_from_string(""), SLOT_INVALID);
        ASSERT_EQ(slot_from_string("ab"), SLOT_INVALID);
        ASSERT_EQ(slot_from_string(NULL), SLOT_INVALID);
        ASSERT_EQ(slot_other(SLOT_A), SLOT_B);
        ASSERT_EQ(slot_other(SLOT_B), SLOT_A);
        ASSERT_EQ(slot_other(SLOT_INVALID), SLOT_INVALID);
}

static void test_install_and_fall_back(void) {
        BootState s = initial_state();
        bool degraded;

        ASSERT_EQ(boot_state_select(&s, &degraded), SLOT_A);
        ASSERT_TRUE(!degraded);
        ASSERT_OK(boot_state_install(&s, SLOT_B, 3));
        ASSERT_TRUE(s.slot[SLOT_B].priority > s.slot[SLOT_A].priority);
        ASSERT_EQ(s.slot[SLOT_B].tries, 3);
        ASSERT_TRUE(!s.slot[SLOT_B].good);
        ASSERT_TRUE(slot_bootable(&s.slot[SLOT_A]));

        /* Three attempts at B, each using up one try before the kernel runs. */
        for (unsigned left = 3; left > 0; left--) {
                ASSERT_EQ(boot_state_select(&s, &degraded), SLOT_B);
                ASSERT_TRUE(!degraded);
                ASSERT_EQ(s.slot[SLOT_B].tries, left - 1);
        }
        /* B never got marked good: back to A, which is not counted. */
        for (unsigned i = 0; i < 3; i++) {
                ASSERT_EQ(boot_state_select(&s, &degraded), SLOT_A);
                ASSERT_TRUE(!degraded);
                ASSERT_EQ(s.slot[SLOT_B].tries, 0);
                ASSERT_EQ(s.slot[SLOT_A].tries, 0);
                ASSERT_TRUE(s.slot[SLOT_A].good);
        }
        /* The agent notices it runs A although B is preferred: rollback. */
        ASSERT_OK(boot_state_mark_bad(&s, SLOT_B));
        ASSERT_EQ(s.slot[SLOT_B].priority, 0);
        ASSERT_EQ(boot_state_select(&s, NULL), SLOT_A);
}

static void test_mark_good(void) {
        BootState s = initial_state();

        ASSERT_OK(boot_state_install(&s, SLOT_B, 3));
        ASSERT_EQ(boot_state_select(&s, NULL), SLOT_B);
        ASSERT_OK(boot_state_mark_good(&s, SLOT_B));
        for (unsigned i = 0; i < 20; i++) {
                bool degraded;
                ASSERT_EQ(boot_state_select(&s, &degraded), SLOT_B);
                ASSERT_TRUE(!degraded);
                ASSERT_EQ(s.slot[SLOT_B].tries, 2); /* counting stopped */
        }

        /* The last try is enough: the slot runs with tries 0 and can still
         * be marked good, which makes it bootable again. */
        s = initial_state();
        ASSERT_OK(boot_state_install(&s, SLOT_B, 1));
        ASSERT_EQ(boot_state_select(&s, NULL), SLOT_B);
        ASSERT_EQ(s.slot[SLOT_B].tries, 0);
        ASSERT_TRUE(!slot_bootable(&s.slot[SLOT_B]));
        ASSERT_OK(boot_state_mark_good(&s, SLOT_B));
        ASSERT_TRUE(slot_bootable(&s.slot[SLOT_B]));
        ASSERT_EQ(boot_state_select(&s, NULL), SLOT_B);

        /* Marked bad meanwhile: refuse to resurrect it. */
        ASSERT_OK(boot_state_mark_bad(&s, SLOT_B));
        ASSERT_ERROR(boot_state_mark_good(&s, SLOT_B), ESTALE);
        ASSERT_ERROR(boot_state_mark_good(&s, SLOT_INVALID), EINVAL);
}

static void test_mark_bad(void) {
        BootState s = initial_state();

        ASSERT_OK(boot_state_install(&s, SLOT_B, 5));
        ASSERT_OK(boot_state_mark_good(&s, SLOT_B));
        ASSERT_OK(boot_state_mark_bad(&s, SLOT_B));
        ASSERT_EQ(s.slot[SLOT_B].priority, 0);
        ASSERT_EQ(s.slot[SLOT_B].tries, 0);
        ASSERT_TRUE(!s.slot[SLOT_B].good);
        ASSERT_EQ(boot_state_select(&s, NULL), SLOT_A);
        ASSERT_ERROR(boot_state_prefer(&s, SLOT_B), ENOMEDIUM);

        /* Both bad: boot A anyway, degraded, and count nothing. */
        ASSERT_OK(boot_state_mark_bad(&s, SLOT_A));
        BootState before = s;
        bool degraded = false;
        ASSERT_EQ(boot_state_select(&s, &degraded), SLOT_A);
        ASSERT_TRUE(degraded);
        ASSERT_TRUE(state_eq(&s, &before));
        ASSERT_ERROR(boot_state_mark_bad(&s, SLOT_INVALID), EINVAL);

        /* Reinstalling is the way back. */
        ASSERT_OK(boot_state_install(&s, SLOT_B, 2));
        ASSERT_EQ(boot_state_select(&s, &degraded), SLOT_B);
        ASSERT_TRUE(!degraded);
}

static void test_prefer(void) {
        BootState s = initial_state();

        ASSERT_OK(boot_state_install(&s, SLOT_B, 3));
        ASSERT_ERROR(boot_state_prefer(&s, SLOT_B), ENOMEDIUM);
        ASSERT_EQ(boot_state_select(&s, NULL), SLOT_B);
        ASSERT_OK(boot_state_mark_good(&s, SLOT_B));
        /* Both good; go back to A on purpose. */
        ASSERT_OK(boot_state_prefer(&s, SLOT_A));
        ASSERT_TRUE(s.slot[SLOT_A].priority > s.slot[SLOT_B].priority);
        ASSERT_EQ(boot_state_select(&s, NULL), SLOT_A);
        unsigned pa = s.slot[SLOT_A].priority;
        ASSERT_OK(boot_state_prefer(&s, SLOT_A)); /* already preferred: no change */
        ASSERT_EQ(s.slot[SLOT_A].priority, pa);
        ASSERT_OK(boot_state_prefer(&s, SLOT_B));
        ASSERT_EQ(boot_state_select(&s, NULL), SLOT_B);
        ASSERT_TRUE(s.slot[SLOT_A].good && s.slot[SLOT_B].good);
        ASSERT_ERROR(boot_state_prefer(&s, SLOT_INVALID), EINVAL);
}

static void test_priority_saturates(void) {
        BootState s = initial_state();

        /* Many more updates than priorities: the new slot always wins, the
         * old one stays a bootable fallback, nothing exceeds the maximum. */
        for (unsigned i = 0; i < 3 * BOOT_PRIORITY_MAX; i++) {
                Slot n = i % 2 == 0 ? SLOT_B : SLOT_A;
                ASSERT_OK(boot_state_install(&s, n, BOOT_TRIES_DEFAULT));
                ASSERT_TRUE(s.slot[n].priority > s.slot[slot_other(n)].priority);
                ASSERT_TRUE(s.slot[n].priority <= BOOT_PRIORITY_MAX);
                ASSERT_TRUE(slot_bootable(&s.slot[slot_other(n)]));
                ASSERT_EQ(boot_state_select(&s, NULL), n);
                ASSERT_OK(boot_state_mark_good(&s, n));
        }
        ASSERT_EQ(s.slot[SLOT_A].priority + s.slot[SLOT_B].priority, 2 * BOOT_PRIORITY_MAX - 1);
}

static void test_invalid_transitions(void) {
        BootState s = initial_state();

        ASSERT_ERROR(boot_state_install(&s, SLOT_B, 0), EINVAL);
        ASSERT_ERROR(boot_state_install(&s, SLOT_B, BOOT_TRIES_MAX + 1), EINVAL);
        ASSERT_ERROR(boot_state_install(&s, SLOT_INVALID, 1), EINVAL);
        ASSERT_ERROR(boot_state_install(&s, _SLOT_MAX, 1), EINVAL);
        ASSERT_OK(boot_state_install(&s, SLOT_B, BOOT_TRIES_MAX));
        s.slot[SLOT_A].priority = BOOT_PRIORITY_MAX + 1;
        ASSERT_ERROR(boot_state_install(&s, SLOT_B, 1), EINVAL);
        ASSERT_ERROR(boot_state_mark_good(&s, SLOT_B), EINVAL);
        ASSERT_ERROR(boot_state_prefer(&s, SLOT_B), EINVAL);
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        ASSERT_OK(grubenv_new(&e));
        ASSERT_ERROR(boot_state_to_env(&s, e), EINVAL);
        ASSERT_EQ(grubenv_count(e), 0);
}

static void test_env_round_trip(void) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        BootState s, t;

        /* Nothing set reads as all zero. */
        ASSERT_OK(grubenv_new(&e));
        ASSERT_OK(boot_state_from_env(e, &s));
        ASSERT_TRUE(state_eq(&s, &(BootState) {}));

        ASSERT_OK(grubenv_set(e, "unrelated", "x"));
        ASSERT_OK(grubenv_set(e, "hull_a_args", "quiet"));
        s = initial_state();
        ASSERT_OK(boot_state_install(&s, SLOT_B, 3));
        ASSERT_OK(boot_state_to_env(&s, e));
        ASSERT_STREQ(grubenv_get(e, "hull_a_prio"), "10");
        ASSERT_STREQ(grubenv_get(e, "hull_a_tries"), "0");
        ASSERT_STREQ(grubenv_get(e, "hull_a_good"), "1");
        ASSERT_STREQ(grubenv_get(e, "hull_b_prio"), "11");
        ASSERT_STREQ(grubenv_get(e, "hull_b_tries"), "3");
        ASSERT_STREQ(grubenv_get(e, "hull_b_good"), "0");
        ASSERT_STREQ(grubenv_get(e, "unrelated"), "x");
        ASSERT_EQ(grubenv_count(e), 8);

        /* Through the on-disk format as well. */
        char buf[GRUBENV_SIZE];
        _cleanup_(grubenv_freep) GrubEnv *p = NULL;
        ASSERT_OK(grubenv_format(e, buf));
        ASSERT_OK(grubenv_parse(buf, sizeof(buf), &p));
        ASSERT_OK(boot_state_from_env(p, &t));
        ASSERT_TRUE(state_eq(&s, &t));

        /* Every state survives the trip. */
        FOREACH_SLOT_STATE(a)
                FOREACH_SLOT_STATE(b) {
                        BootState x = { .slot = { a, b } }, y;
                        ASSERT_OK(boot_state_to_env(&x, e));
                        ASSERT_OK(boot_state_from_env(e, &y));
                        ASSERT_TRUE(state_eq(&x, &y));
                }
}

static void test_env_invalid(void) {
        static const struct {
                const char *key, *value;
        } bad[] = {
                { "hull_a_prio", "" },     { "hull_a_prio", "-1" },   { "hull_a_prio", "+1" },
                { "hull_a_prio", "01" },   { "hull_a_prio", " 1" },   { "hull_a_prio", "1 " },
                { "hull_a_prio", "100" },  { "hull_a_prio", "0x1" },  { "hull_a_prio", "abc" },
                { "hull_b_prio", "99999999999999999999" },
                { "hull_b_tries", "10" },  { "hull_b_tries", "00" },  { "hull_b_tries", "1\n" },
                { "hull_a_good", "2" },    { "hull_a_good", "yes" },  { "hull_b_good", "true" },
        };
        BootState s = initial_state(), untouched = s;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(grubenv_freep) GrubEnv *e = NULL;
                ASSERT_OK(grubenv_new(&e));
                ASSERT_OK(boot_state_to_env(&s, e));
                ASSERT_OK(grubenv_set(e, bad[i].key, bad[i].value));
                ASSERT_ERROR(boot_state_from_env(e, &s), EBADMSG);
                ASSERT_TRUE(state_eq(&s, &untouched)); /* not written on failure */
        }

        /* The edges of the ranges are fine. */
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        ASSERT_OK(grubenv_new(&e));
        ASSERT_OK(grubenv_set(e, "hull_a_prio", "99"));
        ASSERT_OK(grubenv_set(e, "hull_a_tries", "9"));
        ASSERT_OK(grubenv_set(e, "hull_b_prio", "0"));
        ASSERT_OK(boot_state_from_env(e, &s));
        ASSERT_EQ(s.slot[SLOT_A].priority, 99);
        ASSERT_EQ(s.slot[SLOT_A].tries, 9);
}

/* Every state over small ranges: the invariants of boot_state_select(). */
static void test_select_exhaustive(void) {
        unsigned n = 0;

        FOREACH_SLOT_STATE(a)
                FOREACH_SLOT_STATE(b) {
                        BootState before = { .slot = { a, b } }, s = before;
                        bool ba = slot_bootable(&a), bb = slot_bootable(&b), degraded;
                        Slot c = boot_state_select(&s, &degraded);
                        Slot o = slot_other(c);
                        n++;

                        ASSERT_TRUE(c == SLOT_A || c == SLOT_B);
                        /* The other slot is never touched. */
                        ASSERT_TRUE(s.slot[o].priority == before.slot[o].priority &&
                                    s.slot[o].tries == before.slot[o].tries && s.slot[o].good == before.slot[o].good);
                        ASSERT_EQ(s.slot[c].priority, before.slot[c].priority);
                        ASSERT_EQ(s.slot[c].good, before.slot[c].good);

                        if (ba || bb) {
                                /* Something bootable, e.g. a good slot with a
                                 * priority: never degraded, never a slot that
                                 * is not bootable, the best priority wins. */
                                ASSERT_TRUE(!degraded);
                                ASSERT_TRUE(slot_bootable(&before.slot[c]));
                                if (slot_bootable(&before.slot[o])) {
                                        ASSERT_TRUE(before.slot[c].priority >= before.slot[o].priority);
                                        if (before.slot[c].priority == before.slot[o].priority)
                                                ASSERT_EQ(c, SLOT_A);
                                }
                                /* One try used iff not good; no underflow. */
                                if (before.slot[c].good)
                                        ASSERT_EQ(s.slot[c].tries, before.slot[c].tries);
                                else {
                                        ASSERT_TRUE(before.slot[c].tries > 0);
                                        ASSERT_EQ(s.slot[c].tries, before.slot[c].tries - 1);
                                }
                        } else {
                                ASSERT_TRUE(degraded);
                                ASSERT_TRUE(state_eq(&s, &before));
                                ASSERT_EQ(c, b.priority > a.priority ? SLOT_B : SLOT_A);
                        }

                        /* Rebooting without anyone marking good ends within the
                         * tries on a fixed point: a good slot or degraded. */
                        unsigned budget = a.tries + b.tries + 1;
                        BootState r = before;
                        for (unsigned i = 0; i < budget; i++)
                                (void) boot_state_select(&r, NULL);
                        BootState fixed = r;
                        (void) boot_state_select(&r, NULL);
                        ASSERT_TRUE(state_eq(&r, &fixed));
                }
        ASSERT_EQ(n, (unsigned) (ELEMENTSOF(prios) * (BOOT_TRIES_MAX + 1) * 2) *
                             (unsigned) (ELEMENTSOF(prios) * (BOOT_TRIES_MAX + 1) * 2));
}

/* Every transition from every state keeps the state valid and does what it
 * promises. */
static void test_transitions_exhaustive(void) {
        FOREACH_SLOT_STATE(a)
                FOREACH_SLOT_STATE(b)
                        for (Slot x = 0; x < _SLOT_MAX; x++) {
                                BootState before = { .slot = { a, b } }, s;
                                Slot o = slot_other(x);

                                for (unsigned t = 1; t <= BOOT_TRIES_MAX; t++) {
                                        s = before;
                                        ASSERT_OK(boot_state_install(&s, x, t));
                                        ASSERT_TRUE(s.slot[x].priority > s.slot[o].priority);
                                        ASSERT_TRUE(s.slot[x].priority <= BOOT_PRIORITY_MAX);
                                        ASSERT_EQ(s.slot[x].tries, t);
                                        ASSERT_TRUE(!s.slot[x].good);
                                        /* The fallback stays as bootable as it was. */
                                        ASSERT_EQ(slot_bootable(&s.slot[o]), slot_bootable(&before.slot[o]));
                                        ASSERT_EQ(s.slot[o].tries, before.slot[o].tries);
                                        ASSERT_EQ(s.slot[o].good, before.slot[o].good);
                                        /* The next boot tries the new image. */
                                        BootState n = s;
                                        ASSERT_EQ(boot_state_select(&n, NULL), x);
                                        ASSERT_EQ(n.slot[x].tries, t - 1);
                                }

                                s = before;
                                int r = boot_state_mark_good(&s, x);
                                if (before.slot[x].priority == 0) {
                                        ASSERT_EQ(r, -ESTALE);
                                        ASSERT_TRUE(state_eq(&s, &before));
                                } else {
                                        ASSERT_OK(r);
                                        ASSERT_TRUE(s.slot[x].good && slot_bootable(&s.slot[x]));
                                        BootState n = s;
                                        bool degraded;
                                        (void) boot_state_select(&n, &degraded);
                                        ASSERT_TRUE(!degraded);
                                }

                                s = before;
                                ASSERT_OK(boot_state_mark_bad(&s, x));
                                ASSERT_TRUE(!slot_bootable(&s.slot[x]));
                                bool degraded;
                                BootState n = s;
                                if (boot_state_select(&n, &degraded) == x)
                                        ASSERT_TRUE(degraded);

                                s = before;
                                r = boot_state_prefer(&s, x);
                                if (!before.slot[x].good) {
                                        ASSERT_EQ(r, -ENOMEDIUM);
                                        ASSERT_TRUE(state_eq(&s, &before));
                                } else {
                                        ASSERT_OK(r);
                                        ASSERT_TRUE(s.slot[x].priority > s.slot[o].priority);
                                        n = s;
                                        ASSERT_EQ(boot_state_select(&n, &degraded), x);
                                        ASSERT_TRUE(!degraded);
                                        ASSERT_TRUE(state_eq(&n, &s)); /* good: not counted */
                                }
                        }
}

/* ---- The generated GRUB script ---- */

static const GrubCfgOptions cfg_options = {
        .env_path = "/EFI/hull/grubenv",
        .boot_dir = "/EFI/hull",
        .root_label_prefix = "hull-root-",
        .title = "Hull",
        .timeout = 3,
};

static void test_grub_cfg_text(void) {
        _cleanup_free_ char *cfg = NULL;

        ASSERT_OK(bootcount_generate_grub_cfg(&cfg_options, &cfg));

        ASSERT_TRUE(strstr(cfg, "# Generated by"));
        ASSERT_TRUE(strstr(cfg, "docs/BOOT-COUNTING.md"));
        ASSERT_TRUE(strstr(cfg, "\nset timeout=3\n"));
        ASSERT_TRUE(strstr(cfg, "\nset default=0\n"));
        ASSERT_TRUE(strstr(cfg, "load_env -f \"${esp}/EFI/hull/grubenv\""));
        ASSERT_TRUE(strstr(cfg, "save_env -f \"${esp}/EFI/hull/grubenv\" hull_a_tries\n"));
        ASSERT_TRUE(strstr(cfg, "save_env -f \"${esp}/EFI/hull/grubenv\" hull_b_tries\n"));
        ASSERT_TRUE(strstr(cfg, "hull.boot=degraded"));
        /* No arithmetic in GRUB: one arm per value, for each slot. */
        for (Slot s = 0; s < _SLOT_MAX; s++)
                for (unsigned t = 1; t <= BOOT_TRIES_MAX; t++) {
                        _cleanup_free_ char *arm = NULL;
                        ASSERT_TRUE(asprintf(&arm, "if [ \"$hull_%1$s_tries\" = %2$u ]; then\n"
                                                   "        set hull_%1$s_tries=%3$u\n",
                                             slot_to_string(s), t, t - 1) >= 0);
                        ASSERT_TRUE(strstr(cfg, arm));
                }
        ASSERT_TRUE(strstr(cfg, "    linux \"${esp}/EFI/hull/a/vmlinuz\" root=PARTLABEL=hull-root-a ro hull.slot=a "
                                "$hull_boot_flags $hull_a_args $hull_cmdline\n"));
        ASSERT_TRUE(strstr(cfg, "    linux \"${esp}/EFI/hull/b/vmlinuz\" root=PARTLABEL=hull-root-b ro hull.slot=b "
                                "$hull_boot_flags $hull_b_args $hull_cmdline\n"));
        ASSERT_TRUE(strstr(cfg, "    initrd \"${esp}/EFI/hull/a/initrd.img\"\n"));
        ASSERT_TRUE(strstr(cfg, "    initrd \"${esp}/EFI/hull/b/initrd.img\"\n"));
        ASSERT_TRUE(strstr(cfg, "menuentry 'Hull (slot a)' {"));
        ASSERT_TRUE(strstr(cfg, "menuentry 'Hull (slot b)' {"));
        ASSERT_TRUE(!strstr(cfg, "$(("));

        /* Other options show up where they belong. */
        free(cfg);
        cfg = NULL;
        ASSERT_OK(bootcount_generate_grub_cfg(
                &(GrubCfgOptions) { .env_path = "/x/env", .boot_dir = "/boot/k", .root_label_prefix = "r_",
                                    .title = "My OS 1.0", .timeout = 0 },
                &cfg));
        ASSERT_TRUE(strstr(cfg, "load_env -f \"${esp}/x/env\""));
        ASSERT_TRUE(strstr(cfg, "linux \"${esp}/boot/k/b/vmlinuz\" root=PARTLABEL=r_b ro hull.slot=b"));
        ASSERT_TRUE(strstr(cfg, "menuentry 'My OS 1.0 (slot a)'"));
        ASSERT_TRUE(strstr(cfg, "\nset timeout=0\n"));

        /* NULL options mean the defaults above. */
        _cleanup_free_ char *d = NULL, *d2 = NULL;
        ASSERT_OK(bootcount_generate_grub_cfg(&(GrubCfgOptions) { .timeout = 3 }, &d));
        ASSERT_OK(bootcount_generate_grub_cfg(&cfg_options, &d2));
        ASSERT_STREQ(d, d2);
}

static void test_grub_cfg_invalid(void) {
        static const GrubCfgOptions bad[] = {
                { .env_path = "relative/env" },
                { .env_path = "/" },
                { .env_path = "/a/" },
                { .env_path = "/a//b" },
                { .env_path = "/a/../b" },
                { .env_path = "/a/./b" },
                { .env_path = "/a b" },
                { .env_path = "/a\"b" },
                { .env_path = "/$x" },
                { .boot_dir = "/a;b" },
                { .boot_dir = "/EFI/hull/" },
                { .root_label_prefix = "a b" },
                { .root_label_prefix = "" },
                { .root_label_prefix = "$x" },
                { .root_label_prefix = "abcdefghijklmnopqrstuvwxyz0123456789" },
                { .title = "it's" },
                { .title = "" },
                { .title = "a\nb" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char *cfg = NULL;
                ASSERT_ERROR(bootcount_generate_grub_cfg(&bad[i], &cfg), EINVAL);
                ASSERT_TRUE(cfg == NULL);
        }
}

static void test_grub_script_check(void) {
        static const char tool[] = "/usr/bin/grub-script-check";
        char dir[] = "/tmp/test-bootcount-XXXXXX";
        _cleanup_free_ char *cfg = NULL, *path = NULL;

        if (access(tool, X_OK) < 0) {
                fprintf(stderr, "%s not available, skipping\n", tool);
                return;
        }
        ASSERT_TRUE(mkdtemp(dir));
        path = path_join(dir, "grub.cfg");
        ASSERT_TRUE(path);
        ASSERT_OK(bootcount_generate_grub_cfg(&cfg_options, &cfg));
        ASSERT_OK(write_file_atomic(path, cfg, strlen(cfg), 0644));
        char *argv[] = { (char *) tool, path, NULL };
        ASSERT_EQ(spawn_run(argv, NULL), 0);

        /* And it does notice a broken script. */
        ASSERT_OK(write_file_atomic(path, "if [ a = b ]; then\n", 19, 0644));
        _cleanup_close_ int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        ASSERT_TRUE(null >= 0);
        ASSERT_TRUE(spawn_run(argv, &(SpawnOptions) { .output_fd = null }) != 0);

        char *rm[] = { (char *) "rm", (char *) "-rf", dir, NULL };
        ASSERT_EQ(spawn_run(rm, NULL), 0);
}

/* ---- A small interpreter for the subset of GRUB script we generate ----
 *
 * It runs the generated script against an env block, so that the script
 * and boot_state_select() can be compared on every state. Anything outside
 * the subset aborts the test: a generator change must come with a matching
 * change here. The semantics follow GRUB 2.06: unquoted empty expansions
 * vanish, unquoted values split at whitespace, -gt compares numbers,
 * load_env loads only whitelisted names, save_env writes the named variables
 * back to the block. */

#define GRUB_ESP "(hd0,gpt1)"
#define WORDS_MAX 32

typedef struct GrubSim {
        GrubEnv *vars;
        GrubEnv *disk;      /* the env file on the ESP; NULL if missing */
        const char *env_file;
        char **entry;       /* body of the first menu entry defined */
        unsigned saves;
} GrubSim;

static const char *sim_get(GrubSim *g, const char *name) {
        return grubenv_get(g->vars, name) ?: "";
}

/* Split a script into statements: one per line or per ';', outside quotes,
 * comments dropped. */
static char **split_statements(const char *script) {
        char **l = NULL;
        const char *p = script;

        while (*p) {
                char q = 0;
                while (*p == ' ')
                        p++;
                if (*p == '#') {
                        /* A comment runs to the end of the line, quotes and
                         * semicolons included. */
                        p += strcspn(p, "\n");
                        continue;
                }
                const char *s = p;
                while (*p && (q || (*p != '\n' && *p != ';'))) {
                        if (q && *p == q)
                                q = 0;
                        else if (!q && (*p == '"' || *p == '\''))
                                q = *p;
                        p++;
                }
                ASSERT_TRUE(q == 0);
                while (*s == ' ')
                        s++;
                size_t n = (size_t) (p - s);
                while (n > 0 && s[n - 1] == ' ')
                        n--;
                if (n > 0) {
                        _cleanup_free_ char *st = strndup(s, n);
                        ASSERT_TRUE(st);
                        l = strv_append(l, st);
                        ASSERT_TRUE(l);
                }
                if (*p)
                        p++;
        }
        return l;
}

static void append(char **buf, size_t *len, const char *s, size_t n) {
        char *b = realloc(*buf, *len + n + 1);
        ASSERT_TRUE(b);
        memcpy(b + *len, s, n);
        *len += n;
        b[*len] = '\0';
        *buf = b;
}

/* Expand a statement into words. */
static size_t expand(GrubSim *g, const char *st, char *words[static WORDS_MAX]) {
        size_t n = 0;
        const char *p = st;

        for (;;) {
                while (*p == ' ')
                        p++;
                if (!*p)
                        break;
                char *w = NULL;
                size_t wl = 0;
                bool quoted = false;
                char q = 0;
                while (*p && (q || *p != ' ')) {
                        if (!q && (*p == '"' || *p == '\'')) {
                                q = *p++;
                                quoted = true;
                                continue;
                        }
                        if (q && *p == q) {
                                q = 0;
                                p++;
                                continue;
                        }
                        if (*p == '$' && q != '\'') {
                                p++;
                                bool brace = *p == '{';
                                p += brace;
                                const char *s = p;
                                while (isalnum((unsigned char) *p) || *p == '_')
                                        p++;
                                ASSERT_TRUE(p > s);
                                _cleanup_free_ char *name = strndup(s, (size_t) (p - s));
                                ASSERT_TRUE(name);
                                if (brace) {
                                        ASSERT_TRUE(*p == '}');
                                        p++;
                                }
                                const char *v = sim_get(g, name);
                                /* The generated script never puts a value
                                 * that may hold spaces next to other text. */
                                if (!q && strchr(v, ' ')) {
                                        ASSERT_TRUE(wl == 0 && (*p == ' ' || *p == '\0'));
                                        _cleanup_free_ char *copy = strdup(v);
                                        ASSERT_TRUE(copy);
                                        for (char *c = copy, *sp; c; c = sp) {
                                                sp = strchr(c, ' ');
                                                if (sp)
                                                        *sp++ = '\0';
                                                if (*c) {
                                                        ASSERT_TRUE(n < WORDS_MAX);
                                                        words[n] = strdup(c);
                                                        ASSERT_TRUE(words[n++]);
                                                }
                                        }
                                        continue;
                                }
                                append(&w, &wl, v, strlen(v));
                                continue;
                        }
                        append(&w, &wl, p, 1);
                        p++;
                }
                if (wl > 0 || quoted) {
                        ASSERT_TRUE(n < WORDS_MAX);
                        words[n] = w ?: strdup("");
                        ASSERT_TRUE(words[n++]);
                } else
                        free(w);
        }
        return n;
}

static void free_words(char **w, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(w[i]);
}

/* GRUB's test reads numbers leniently (strtol with base detection, 0 for
 * garbage). The env holds canonical decimals only (boot_state_from_env()
 * rejects anything else), where a strict parse gives the same result. */
static uint64_t grub_number(const char *s) {
        uint64_t v;
        return safe_atou64(s, &v) < 0 ? 0 : v;
}

static bool sim_test(char **w, size_t n) {
        ASSERT_TRUE(n >= 3 && streq(w[0], "[") && streq(w[n - 1], "]"));
        if (n == 4 && streq(w[1], "-z"))
                return isempty(w[2]);
        ASSERT_EQ(n, 5);
        const char *a = w[1], *op = w[2], *b = w[3];
        if (streq(op, "=") || streq(op, "=="))
                return streq(a, b);
        if (streq(op, "!="))
                return !streq(a, b);
        if (streq(op, "-gt"))
                return grub_number(a) > grub_number(b);
        fprintf(stderr, "unsupported test operator '%s'\n", op);
        abort();
}

typedef struct Frame {
        bool parent, taken, active;
} Frame;

static void sim_run(GrubSim *g, char **sts) {
        Frame stack[16];
        size_t depth = 0;

        for (size_t i = 0; sts[i]; i++) {
                const char *st = sts[i];
                bool active = depth == 0 || stack[depth - 1].active;

                if (streq(st, "then"))
                        continue;
                if (string_has_prefix(st, "then "))
                        st += 5;

                if (string_has_prefix(st, "if ") || string_has_prefix(st, "elif ")) {
                        bool is_if = st[0] == 'i';
                        Frame *f;
                        if (is_if) {
                                ASSERT_TRUE(depth < ELEMENTSOF(stack));
                                f = &stack[depth++];
                                *f = (Frame) { .parent = active };
                        } else {
                                ASSERT_TRUE(depth > 0);
                                f = &stack[depth - 1];
                                f->active = false;
                        }
                        if (f->parent && !f->taken) {
                                char *w[WORDS_MAX];
                                size_t n = expand(g, st + (is_if ? 3 : 5), w);
                                f->active = f->taken = sim_test(w, n);
                                free_words(w, n);
                        }
                        continue;
                }
                if (streq(st, "else")) {
                        ASSERT_TRUE(depth > 0);
                        Frame *f = &stack[depth - 1];
                        f->active = f->parent && !f->taken;
                        f->taken = true;
                        continue;
                }
                if (streq(st, "fi")) {
                        ASSERT_TRUE(depth > 0);
                        depth--;
                        continue;
                }
                if (string_has_prefix(st, "menuentry ")) {
                        ASSERT_TRUE(st[strlen(st) - 1] == '{');
                        char **body = NULL;
                        for (i++; sts[i] && !streq(sts[i], "}"); i++) {
                                body = strv_append(body, sts[i]);
                                ASSERT_TRUE(body);
                        }
                        ASSERT_TRUE(sts[i]);
                        if (active && !g->entry)
                                g->entry = body;
                        else
                                strv_free(body);
                        continue;
                }
                if (!active)
                        continue;

                char *w[WORDS_MAX];
                size_t n = expand(g, st, w);
                ASSERT_TRUE(n > 0);
                if (streq(w[0], "set")) {
                        ASSERT_EQ(n, 2);
                        char *eq = strchr(w[1], '=');
                        ASSERT_TRUE(eq);
                        *eq = '\0';
                        ASSERT_OK(grubenv_set(g->vars, w[1], eq + 1));
                } else if (streq(w[0], "load_env")) {
                        ASSERT_TRUE(n >= 3 && streq(w[1], "-f"));
                        ASSERT_STREQ(w[2], g->env_file);
                        for (size_t j = 3; j < n && g->disk; j++) {
                                const char *v = grubenv_get(g->disk, w[j]);
                                if (v)
                                        ASSERT_OK(grubenv_set(g->vars, w[j], v));
                        }
                } else if (streq(w[0], "save_env")) {
                        ASSERT_TRUE(n >= 4 && streq(w[1], "-f"));
                        ASSERT_STREQ(w[2], g->env_file);
                        ASSERT_TRUE(g->disk);
                        for (size_t j = 3; j < n; j++)
                                ASSERT_OK(grubenv_set(g->disk, w[j], sim_get(g, w[j])));
                        g->saves++;
                } else if (streq(w[0], "search")) {
                        /* Only used when $esp is missing, which the
                         * simulation never does. */
                        abort();
                } else if (!streq(w[0], "echo")) {
                        fprintf(stderr, "unsupported command '%s'\n", w[0]);
                        abort();
                }
                free_words(w, n);
        }
        ASSERT_EQ(depth, 0);
}

/* Boot with the generated script: returns the linux and initrd lines of the
 * entry GRUB would boot (default=0), with variables expanded. */
static void sim_boot(char **sts, GrubEnv *disk, char **ret_linux, char **ret_initrd, unsigned *ret_saves) {
        _cleanup_free_ char *env_file = NULL;
        GrubSim g = { .disk = disk };

        ASSERT_TRUE(asprintf(&env_file, GRUB_ESP "%s", cfg_options.env_path) >= 0);
        g.env_file = env_file;
        ASSERT_OK(grubenv_new(&g.vars));
        ASSERT_OK(grubenv_set(g.vars, "esp", GRUB_ESP));
        sim_run(&g, sts);

        ASSERT_TRUE(g.entry);
        *ret_linux = *ret_initrd = NULL;
        for (size_t i = 0; g.entry[i]; i++) {
                char *w[WORDS_MAX];
                size_t n = expand(&g, g.entry[i], w);
                char *line = NULL;
                size_t len = 0;
                ASSERT_TRUE(n >= 2);
                for (size_t j = 1; j < n; j++) {
                        if (j > 1)
                                append(&line, &len, " ", 1);
                        append(&line, &len, w[j], strlen(w[j]));
                }
                if (streq(w[0], "linux"))
                        *ret_linux = line;
                else if (streq(w[0], "initrd"))
                        *ret_initrd = line;
                else
                        abort();
                free_words(w, n);
        }
        ASSERT_TRUE(*ret_linux && *ret_initrd);
        *ret_saves = g.saves;
        strv_free(g.entry);
        grubenv_free(g.vars);
}

static void expect_boot(char **cfg, GrubEnv *disk, Slot slot, bool degraded, const char *extra) {
        _cleanup_free_ char *lin = NULL, *initrd = NULL, *want_linux = NULL, *want_initrd = NULL;
        const char *s = slot_to_string(slot);
        unsigned saves;

        sim_boot(cfg, disk, &lin, &initrd, &saves);
        ASSERT_TRUE(asprintf(&want_linux,
                             GRUB_ESP "/EFI/hull/%1$s/vmlinuz root=PARTLABEL=hull-root-%1$s ro hull.slot=%1$s%2$s%3$s%4$s",
                             s, degraded ? " hull.boot=degraded" : "", isempty(extra) ? "" : " ", extra ?: "") >= 0);
        ASSERT_TRUE(asprintf(&want_initrd, GRUB_ESP "/EFI/hull/%s/initrd.img", s) >= 0);
        ASSERT_STREQ(lin, want_linux);
        ASSERT_STREQ(initrd, want_initrd);
}

/* Every if has its fi, every { its }, in the right order. */
static void test_grub_cfg_balanced(void) {
        _cleanup_free_ char *cfg = NULL;
        unsigned ifs = 0, fis = 0, elifs = 0, opens = 0, closes = 0;
        int depth = 0;
        bool in_entry = false;

        ASSERT_OK(bootcount_generate_grub_cfg(&cfg_options, &cfg));
        _cleanup_strv_free_ char **sts = split_statements(cfg);
        for (size_t i = 0; sts[i]; i++) {
                const char *st = sts[i];
                if (string_has_prefix(st, "then "))
                        st += 5;
                if (string_has_prefix(st, "if ")) {
                        ifs++;
                        depth++;
                } else if (string_has_prefix(st, "elif ")) {
                        elifs++;
                        ASSERT_TRUE(depth > 0);
                } else if (streq(st, "fi")) {
                        fis++;
                        depth--;
                        ASSERT_TRUE(depth >= 0);
                } else if (st[strlen(st) - 1] == '{') {
                        ASSERT_TRUE(!in_entry);
                        in_entry = true;
                        opens++;
                } else if (streq(st, "}")) {
                        ASSERT_TRUE(in_entry);
                        in_entry = false;
                        closes++;
                }
        }
        ASSERT_EQ(depth, 0);
        ASSERT_TRUE(!in_entry);
        ASSERT_EQ(ifs, fis);
        ASSERT_TRUE(ifs > 10);
        ASSERT_EQ(opens, 2);
        ASSERT_EQ(closes, 2);
        ASSERT_TRUE(elifs >= 2 * (BOOT_TRIES_MAX - 1));
}

static void test_grub_cfg_scenario(void) {
        _cleanup_free_ char *script = NULL;
        _cleanup_(grubenv_freep) GrubEnv *disk = NULL;
        BootState s = initial_state();

        ASSERT_OK(bootcount_generate_grub_cfg(&cfg_options, &script));
        _cleanup_strv_free_ char **cfg = split_statements(script);
        ASSERT_OK(grubenv_new(&disk));
        ASSERT_OK(grubenv_set(disk, "hull_a_args", "quiet  loglevel=3"));
        ASSERT_OK(grubenv_set(disk, "hull_b_args", ""));
        ASSERT_OK(grubenv_set(disk, "hull_cmdline", "console=ttyS0,115200"));
        ASSERT_OK(grubenv_set(disk, "esp", "(evil)")); /* not whitelisted */
        ASSERT_OK(boot_state_to_env(&s, disk));

        expect_boot(cfg, disk, SLOT_A, false, "quiet loglevel=3 console=ttyS0,115200");
        ASSERT_OK(boot_state_install(&s, SLOT_B, 2));
        ASSERT_OK(boot_state_to_env(&s, disk));
        expect_boot(cfg, disk, SLOT_B, false, "console=ttyS0,115200");
        ASSERT_STREQ(grubenv_get(disk, "hull_b_tries"), "1");
        expect_boot(cfg, disk, SLOT_B, false, "console=ttyS0,115200");
        ASSERT_STREQ(grubenv_get(disk, "hull_b_tries"), "0");
        expect_boot(cfg, disk, SLOT_A, false, "quiet loglevel=3 console=ttyS0,115200");
        ASSERT_STREQ(grubenv_get(disk, "hull_b_tries"), "0");

        /* No env file at all: everything reads as 0, A boots degraded. */
        expect_boot(cfg, NULL, SLOT_A, true, NULL);
}

/* The script and the C model agree on every state, also when variables are
 * missing from the file. */
static void test_grub_cfg_matches_model(void) {
        _cleanup_free_ char *script = NULL;
        unsigned n = 0;

        ASSERT_OK(bootcount_generate_grub_cfg(&cfg_options, &script));
        _cleanup_strv_free_ char **cfg = split_statements(script);

        FOREACH_SLOT_STATE(a)
                FOREACH_SLOT_STATE(b) {
                        BootState s = { .slot = { a, b } }, model = s, after;
                        _cleanup_(grubenv_freep) GrubEnv *disk = NULL;
                        bool degraded;
                        unsigned saves;

                        ASSERT_OK(grubenv_new(&disk));
                        ASSERT_OK(boot_state_to_env(&s, disk));
                        /* Drop zero values now and then: missing reads as 0. */
                        if (n % 3 == 1)
                                for (size_t i = 0; i < grubenv_count(disk);) {
                                        const char *k, *v;
                                        ASSERT_OK(grubenv_get_at(disk, i, &k, &v));
                                        if (streq(v, "0")) {
                                                _cleanup_free_ char *key = strdup(k);
                                                ASSERT_EQ(grubenv_unset(disk, key), 1);
                                        } else
                                                i++;
                                }
                        n++;

                        Slot c = boot_state_select(&model, &degraded);

                        _cleanup_free_ char *lin = NULL, *initrd = NULL, *want = NULL;
                        sim_boot(cfg, disk, &lin, &initrd, &saves);
                        ASSERT_TRUE(asprintf(&want, GRUB_ESP "/EFI/hull/%1$s/vmlinuz root=PARTLABEL=hull-root-%1$s "
                                                    "ro hull.slot=%1$s%2$s",
                                             slot_to_string(c), degraded ? " hull.boot=degraded" : "") >= 0);
                        ASSERT_STREQ(lin, want);
                        ASSERT_OK(boot_state_from_env(disk, &after));
                        ASSERT_TRUE(state_eq(&after, &model));
                        /* GRUB writes only when it counts. */
                        ASSERT_EQ(saves, degraded || model.slot[c].good ? 0 : 1);
                }
}

int main(void) {
        TEST_RUN(test_slot_strings);
        TEST_RUN(test_install_and_fall_back);
        TEST_RUN(test_mark_good);
        TEST_RUN(test_mark_bad);
        TEST_RUN(test_prefer);
        TEST_RUN(test_priority_saturates);
        TEST_RUN(test_invalid_transitions);
        TEST_RUN(test_env_round_trip);
        TEST_RUN(test_env_invalid);
        TEST_RUN(test_select_exhaustive);
        TEST_RUN(test_transitions_exhaustive);
        TEST_RUN(test_grub_cfg_text);
        TEST_RUN(test_grub_cfg_invalid);
        TEST_RUN(test_grub_script_check);
        TEST_RUN(test_grub_cfg_balanced);
        TEST_RUN(test_grub_cfg_scenario);
        TEST_RUN(test_grub_cfg_matches_model);
        return 0;
}
