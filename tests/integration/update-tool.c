/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test driver for the update library on real devices, with an I/O seam for
 * fault injection. Not installed.
 *
 *   update-tool make-bundle KEY.pem OUT VERSION ARCH ROOTFS KERNEL INITRD [COMPONENTS.json]
 *     (HULL_CHUNK_INDEX=1: with a chunk index, as hull-build writes bundles)
 *   update-tool [--esp DIR --slot-a DEV --slot-b DEV --booted a|b --keys DIR] CMD ...
 *     stage BUNDLE [--sha256 HEX] [--version V] [--key-id ID]
 *     stage-delta URL [--source [PAYLOAD=]PATH]... [--checkpoint FILE] [--index-cache FILE]
 *                  [--ca FILE] [--sha256 HEX]
 *                  delta download over http(s); prints "notice: ..." and
 *                  "stats size=N fetched=N reused=N resumed=N ranges=N full=0|1"
 *     activate [TRIES] | mark-good | rollback | reconcile | status
 *     grub-boot     run GRUB's selection (bootcount model) and print the slot
 *
 * HULL_FAULT selects a fault for stage writes: "eio@N" / "enospc@N" (the
 * N-th write fails), "short" (every write writes at most 4097 bytes),
 * "fsync-eio", "slow" (20 ms per write, to widen SIGKILL windows). Exits with
 * the errno of a failure and prints "error: <errno name>: <message>". */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bundle.h"
#include "chunkindex.h"
#include "delta.h"
#include "fileio.h"
#include "grubenv.h"
#include "strutil.h"
#include "update.h"

static unsigned writes;

static ssize_t fault_pwrite(int fd, const void *buf, size_t n, off_t off, void *userdata) {
        const char *f = userdata;
        unsigned at;

        writes++;
        if (string_has_prefix(f, "eio@") && safe_atou(f + 4, &at) >= 0 && writes == at) {
                errno = EIO;
                return -1;
        }
        if (string_has_prefix(f, "enospc@") && safe_atou(f + 7, &at) >= 0 && writes >= at) {
                errno = ENOSPC;
                return -1;
        }
        if (streq(f, "short") && n > 4097)
                n = 4097;
        if (streq(f, "slow"))
                (void) nanosleep(&(struct timespec) { .tv_nsec = 20 * 1000000 }, NULL);
        return pwrite(fd, buf, n, off);
}

static int fault_fsync(int fd, void *userdata) {
        if (streq((const char *) userdata, "fsync-eio")) {
                errno = EIO;
                return -1;
        }
        return fsync(fd);
}

static int done(int r, const char *msg) {
        if (r >= 0)
                return 0;
        printf("error: %s: %s\n", strerrorname_np(-r) ?: "?", msg ?: strerror(-r));
        return -r;
}

static void progress(StagePhase p, uint64_t done_bytes, uint64_t total, void *userdata) {
        static StagePhase last = -1;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if (p != last)
                fprintf(stderr, "phase %s at %.3f\n", stage_phase_to_string(p), ts.tv_sec + ts.tv_nsec / 1e9);
        last = p;
}

static void notice(const char *m, void *userdata) {
        printf("notice: %s\n", m);
}

static int make_bundle(char **argv) {
        _cleanup_(key_freep) HullKey *k = NULL;
        _cleanup_(manifest_freep) Manifest *m = NULL;
        int r = key_load_private(argv[0], &k);
        if (r < 0)
                return done(r, "cannot load the key");
        r = manifest_new(&m);
        if (r < 0)
                return done(r, NULL);
        m->name = strdup("hull-test");
        m->version = strdup(argv[2]);
        m->arch = strdup(argv[3]);
        m->created = strdup("2026-11-22T00:00:00Z");
        m->rootfs_type = strdup("erofs");
        m->cmdline = strdup("rootfstype=erofs init=/usr/lib/hull/hull-init panic=10 console=ttyS0,115200");
        if (argv[7]) {
                /* A components.json as hull-build writes it: a format-2 manifest. */
                _cleanup_free_ char *data = NULL, *err = NULL;
                _cleanup_(components_done) Components c = {};
                size_t len;
                r = read_full_file(argv[7], COMPONENTS_FILE_MAX, &data, &len);
                if (r < 0)
                        return done(r, "cannot read the components file");
                r = components_parse(data, len, &c, &err);
                if (r >= 0)
                        r = manifest_set_components(m, &c);
                if (r < 0)
                        return done(r, err ?: "invalid components");
        }
        _cleanup_free_ char *index = NULL;
        const BundleInput in[] = { { "rootfs", argv[4] }, { "kernel", argv[5] }, { "initrd", argv[6] },
                                   { CHUNK_INDEX_PAYLOAD, NULL } };
        size_t n = 3;
        if (getenv("HULL_CHUNK_INDEX")) {
                _cleanup_(chunk_index_freep) ChunkIndex *x = NULL;
                if (asprintf(&index, "%s.chunk-index", argv[1]) < 0)
                        return done(-ENOMEM, NULL);
                r = chunk_index_new(NULL, &x);
                for (size_t i = 0; r >= 0 && i < 3; i++)
                        r = chunk_index_add_file(x, in[i].name, in[i].path);
                if (r >= 0)
                        r = chunk_index_write_file(x, index);
                if (r < 0)
                        return done(r, "cannot write the chunk index");
                ((BundleInput *) in)[3].path = index;
                n = 4;
        }
        r = bundle_create(argv[1], m, in, n, k);
        if (index)
                (void) unlink(index);
        return done(r, "bundle_create failed");
}

int main(int argc, char **argv) {
        UpdateTarget t = { .arch = "x86_64", .booted = SLOT_A };
        _cleanup_(keyring_freep) Keyring *kr = NULL;
        const char *keys = NULL, *fault = getenv("HULL_FAULT");
        UpdateIO io = { fault_pwrite, fault_fsync, (void *) fault };
        char *err = NULL;
        int i = 1, r;

        if (argc > 8 && streq(argv[1], "make-bundle"))
                return make_bundle(argv + 2);

        for (; i + 1 < argc && string_has_prefix(argv[i], "--"); i += 2) {
                if (streq(argv[i], "--esp"))
                        t.esp_dir = argv[i + 1];
                else if (streq(argv[i], "--slot-a"))
                        t.slot_device[SLOT_A] = argv[i + 1];
                else if (streq(argv[i], "--slot-b"))
                        t.slot_device[SLOT_B] = argv[i + 1];
                else if (streq(argv[i], "--booted"))
                        t.booted = slot_from_string(argv[i + 1]);
                else if (streq(argv[i], "--keys"))
                        keys = argv[i + 1];
                else if (streq(argv[i], "--arch"))
                        t.arch = argv[i + 1];
                else
                        return 2;
        }
        if (i >= argc || !t.esp_dir)
                return 2;
        const char *cmd = argv[i++];
        if (fault)
                t.io = &io;

        if (streq(cmd, "stage")) {
                StageOptions so = { .progress = progress };
                uint8_t sha[32];
                _cleanup_(stage_result_done) StageResult res = {};
                if (i >= argc || !keys)
                        return 2;
                const char *bundle = argv[i++];
                for (; i + 1 < argc; i += 2) {
                        if (streq(argv[i], "--version"))
                                so.expect_version = argv[i + 1];
                        else if (streq(argv[i], "--key-id"))
                                so.expect_key_id = argv[i + 1];
                        else if (streq(argv[i], "--sha256") && hex_decode(argv[i + 1], sha, 32) >= 0)
                                so.expect_sha256 = sha;
                        else
                                return 2;
                }
                r = keyring_load_dir(keys, &kr);
                if (r < 0)
                        return done(r, "cannot load keys");
                t.keyring = kr;
                r = update_stage(&t, &so, update_pump_file, (void *) bundle, &res, &err);
                if (r >= 0)
                        printf("staged %s into slot %s\n", res.version, slot_to_string(res.slot));
                return done(r, err);
        }
        if (streq(cmd, "stage-delta")) {
                StageOptions so = { .progress = progress };
                _cleanup_(stage_result_done) StageResult res = {};
                DeltaSource sources[16] = {};
                size_t ns = 0;
                uint8_t sha[32];
                DeltaStats st = {};
                DeltaOptions d = {
                        .fetch = { .allow_http = true, .max_retries = 3 },
                        .notice = notice,
                        .stats = &st,
                        .target_device = t.slot_device[slot_other(t.booted)],
                };
                if (i >= argc || !keys)
                        return 2;
                d.fetch.url = argv[i++];
                for (; i + 1 < argc; i += 2) {
                        if (streq(argv[i], "--source") && ns < ELEMENTSOF(sources)) {
                                /* [PAYLOAD=]PATH */
                                char *eq = strchr(argv[i + 1], '=');
                                if (eq) {
                                        *eq = '\0';
                                        sources[ns++] = (DeltaSource) { eq + 1, argv[i + 1] };
                                } else
                                        sources[ns++] = (DeltaSource) { argv[i + 1], NULL };
                        } else if (streq(argv[i], "--index-cache"))
                                d.index_cache = argv[i + 1];
                        else if (streq(argv[i], "--checkpoint"))
                                d.checkpoint = argv[i + 1];
                        else if (streq(argv[i], "--ca"))
                                d.fetch.ca_file = argv[i + 1];
                        else if (streq(argv[i], "--sha256") && hex_decode(argv[i + 1], sha, 32) >= 0)
                                so.expect_sha256 = sha;
                        else
                                return 2;
                }
                d.sources = sources;
                d.n_sources = ns;
                r = keyring_load_dir(keys, &kr);
                if (r < 0)
                        return done(r, "cannot load keys");
                t.keyring = kr;
                d.keyring = kr;
                r = update_stage(&t, &so, delta_pump, &d, &res, &err);
                printf("stats size=%" PRIu64 " fetched=%" PRIu64 " reused=%" PRIu64 " resumed=%" PRIu64 " ranges=%" PRIu64
                       " full=%d\n",
                       st.bundle_size, st.fetched, st.reused, st.resumed, st.ranges, st.full);
                if (r >= 0) {
                        (void) delta_checkpoint_remove(d.checkpoint);
                        printf("staged %s into slot %s\n", res.version, slot_to_string(res.slot));
                }
                return done(r, err);
        }
        if (streq(cmd, "activate")) {
                unsigned tries = 0;
                Slot s;
                if (i < argc && safe_atou(argv[i], &tries) < 0)
                        return 2;
                r = update_activate(&t, tries, &s, &err);
                return done(r, err);
        }
        if (streq(cmd, "mark-good"))
                return done(update_mark_good(&t, &err), err);
        if (streq(cmd, "rollback")) {
                Slot s;
                return done(update_rollback(&t, &s, &err), err);
        }
        if (streq(cmd, "reconcile")) {
                char v[65];
                r = update_reconcile_boot(&t, v, &err);
                if (r > 0)
                        printf("fallback from %s\n", v);
                return done(r, err);
        }
        if (streq(cmd, "status")) {
                SlotInfo s[_SLOT_MAX];
                r = update_read_slots(&t, s);
                if (r < 0)
                        return done(r, NULL);
                for (Slot x = 0; x < _SLOT_MAX; x++)
                        printf("%s %s %s %u %u\n", slot_to_string(x), slot_status_to_string(s[x].status),
                               s[x].version[0] ? s[x].version : "-", s[x].priority, s[x].tries);
                return 0;
        }
        if (streq(cmd, "grub-boot")) {
                _cleanup_(grubenv_freep) GrubEnv *e = NULL;
                _cleanup_free_ char *p = path_join(t.esp_dir, "EFI/hull/grubenv");
                BootState s;
                bool degraded;
                r = grubenv_load(p, &e);
                if (r >= 0)
                        r = boot_state_from_env(e, &s);
                if (r < 0)
                        return done(r, "cannot read the environment");
                Slot x = boot_state_select(&s, &degraded);
                r = boot_state_to_env(&s, e);
                if (r >= 0)
                        r = grubenv_save(e, p);
                if (r < 0)
                        return done(r, "cannot save");
                printf("%s%s\n", slot_to_string(x), degraded ? " degraded" : "");
                return 0;
        }
        return 2;
}
