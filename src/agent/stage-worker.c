/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "delta.h"
#include "fileio.h"
#include "log.h"
#include "oci-bundle.h"
#include "oci.h"
#include "stage-worker.h"
#include "strutil.h"

/* Staging runs in a child process, "hull-agent --stage-worker JOB": the
 * bundle parser, OpenSSL and libcurl only ever run there. The daemon stays
 * small while idle (none of those libraries' pages are touched in it), and
 * a crash or a hang while parsing untrusted input costs one operation, not
 * the node's management API. The child reports on its stdout, one line
 * each:
 *   P <phase> <done> <total>    progress
 *   C <components JSON>         what the staged image holds (components.h),
 *                               from the verified manifest; before V, and
 *                               only if the manifest records any
 *   N <message>                 a notice: the stage does something other
 *                               than asked for (a full download, ...)
 *   S <bundle> <fetched> <reused> <resumed> <full>
 *                               bytes of a download (delta.h), before V or E
 *   V <version>                 success (exit status 0)
 *   E <errno> <message>         failure (exit status 1)
 *
 * An https:// bundle is fetched through delta_pump(): the chunks that the
 * running slot and its kernel and initrd already hold are read from there,
 * the rest is downloaded with Range requests, and a checkpoint on persist
 * lets the next stage of the same bundle continue where this one stopped. */

/* ---- child ---- */

typedef struct WorkerJob {
        const char *source, *ca_file, *client_cert, *client_key, *registry_auth;
} WorkerJob;

static void child_notice(const char *message, void *userdata) {
        printf("N ");
        for (const char *c = message; *c; c++)
                putchar(*c == '\n' || *c == '\r' ? ' ' : *c);
        putchar('\n');
        fflush(stdout);
}

static void child_progress(StagePhase phase, uint64_t done, uint64_t total, void *userdata) {
        printf("P %s %" PRIu64 " %" PRIu64 "\n", stage_phase_to_string(phase), done, total);
        fflush(stdout);
}

/* oci://HOST/REPO@sha256:D (docs/OCI.md): the OCI manifest must hash to
 * D and list exactly the head and payloads the head's manifest names; the
 * bundle's bytes are taken from the blobs and go through the same
 * verifying parser as a download (signature first, then every digest). */
static int open_oci(const WorkerJob *j, OciRef *ref, OciClient **ret_client, OciBundle **ret_bundle, char **ret_error) {
        int r = fetch_global_init();
        if (r < 0)
                return r;
        r = oci_url_parse(j->source, ref, ret_error);
        if (r < 0)
                return r;
        if (!oci_ref_is_pinned(ref))
                return error_set(ret_error, -EINVAL, "%s is not pinned by digest", j->source);
        /* A missing credentials file means anonymous access. */
        OciClientOptions o = { .auth_file = j->registry_auth, .ca_file = j->ca_file, .max_retries = 5 };
        r = oci_client_new(ref->registry, ref->repository, &o, ret_client, ret_error);
        if (r < 0)
                return r;
        return oci_bundle_resolve(*ret_client, ref->digest, ret_bundle, ret_error);
}

static void child_notice(const char *message, void *userdata);

/* A download through the delta pump (delta.h): the booted slot and its
 * kernel files hold most chunks. */
static int stage_delta(const UpdateTarget *t, const StageOptions *so, const WorkerJob *w, const Keyring *kr,
                       const char *checkpoint, const char *index_cache, OciBundle *ob, OciClient *oc,
                       StageResult *res, char **err) {
        _cleanup_free_ char *kernel = NULL, *initrd = NULL;
        const char *booted = slot_to_string(t->booted);
        if (asprintf(&kernel, "%s/EFI/hull/%s/vmlinuz", t->esp_dir, booted) < 0 ||
            asprintf(&initrd, "%s/EFI/hull/%s/initrd.img", t->esp_dir, booted) < 0)
                return -ENOMEM;
        const DeltaSource sources[] = {
                { t->slot_device[t->booted], "rootfs" },
                { kernel, "kernel" },
                { initrd, "initrd" },
        };
        DeltaStats st = {};
        DeltaOptions d = {
                .fetch = {
                        .url = w->source,
                        .ca_file = w->ca_file,
                        .client_cert = w->client_cert,
                        .client_key = w->client_key,
                        .max_retries = 8,
                },
                .oci = ob,
                .oci_client = oc,
                .keyring = kr,
                .sources = sources,
                .n_sources = ELEMENTSOF(sources),
                .index_cache = index_cache,
                .target_device = t->slot_device[slot_other(t->booted)],
                .checkpoint = checkpoint,
                .notice = child_notice,
                .stats = &st,
        };
        int r = update_stage(t, so, delta_pump, &d, res, err);
        printf("S %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %d\n", st.bundle_size, st.fetched, st.reused, st.resumed,
               st.full);
        return r;
}

static const char *jstr(json_t *j, const char *k) {
        return json_string_value(json_object_get(j, k));
}

int stage_worker_main(const char *job) {
        _cleanup_(json_decrefp) json_t *j = json_loads(job, 0, NULL);
        _cleanup_(keyring_freep) Keyring *kr = NULL;
        _cleanup_free_ char *err = NULL;
        uint8_t sha[32];
        _cleanup_(stage_result_done) StageResult res = {};
        int r;

        if (!j || !jstr(j, "source") || !jstr(j, "esp") || !jstr(j, "keys") || !jstr(j, "booted")) {
                printf("E %d the stage job is malformed\n", EINVAL);
                return EXIT_FAILURE;
        }
        UpdateTarget t = {
                .esp_dir = jstr(j, "esp"),
                .slot_device = { jstr(j, "slot_a"), jstr(j, "slot_b") },
                .booted = slot_from_string(jstr(j, "booted")),
                .arch = jstr(j, "arch"),
        };
        WorkerJob w = {
                .source = jstr(j, "source"),
                .ca_file = jstr(j, "ca_file"),
                .client_cert = jstr(j, "client_cert"),
                .client_key = jstr(j, "client_key"),
                .registry_auth = jstr(j, "registry_auth"),
        };
        StageOptions so = {
                .expect_version = jstr(j, "version"),
                .expect_key_id = jstr(j, "key_id"),
                .progress = child_progress,
        };
        bool oci = oci_url_is_oci(w.source);
        /* An oci:// source's sha256 is its OCI manifest's digest (checked by
         * the API to equal the reference's), not the bundle file's. */
        if (!oci && jstr(j, "sha256") && hex_decode(jstr(j, "sha256"), sha, sizeof(sha)) >= 0)
                so.expect_sha256 = sha;

        r = keyring_load_dir(jstr(j, "keys"), &kr);
        if (r < 0) {
                printf("E %d cannot load the trusted update keys from %s: %s\n", -r, jstr(j, "keys"), strerror(-r));
                return EXIT_FAILURE;
        }
        t.keyring = kr;

        bool url = string_has_prefix(w.source, "https://") || string_has_prefix(w.source, "http://");
        const char *checkpoint = jstr(j, "checkpoint");
        if (oci || url) {
                _cleanup_(oci_ref_done) OciRef ref = {};
                _cleanup_(oci_client_freep) OciClient *c = NULL;
                _cleanup_(oci_bundle_freep) OciBundle *b = NULL;
                r = oci ? open_oci(&w, &ref, &c, &b, &err) : 0;
                if (r >= 0)
                        r = stage_delta(&t, &so, &w, kr, checkpoint, jstr(j, "index_cache"), b, c, &res, &err);
                /* The registry's "too many requests" is a failed download
                 * here (the API's "busy" means the agent's own operation),
                 * and a credential helper in the node's file is a
                 * credentials problem. */
                if (oci && r == -EBUSY)
                        r = -ECOMM;
                else if (oci && r == -EOPNOTSUPP)
                        r = -EACCES;
        } else {
                /* A local bundle overwrites the slot without checkpoints:
                 * an earlier one no longer describes it. */
                (void) delta_checkpoint_remove(checkpoint);
                r = update_stage(&t, &so, update_pump_file, (void *) w.source, &res, &err);
        }
        if (r >= 0)
                (void) delta_checkpoint_remove(checkpoint);
        if (r < 0) {
                /* One line: the message must not break the protocol. */
                for (char *c = err; c && *c; c++)
                        if (*c == '\n' || *c == '\r')
                                *c = ' ';
                printf("E %d %s\n", -r, err ?: strerror(-r));
                return EXIT_FAILURE;
        }
        if (!components_is_empty(&res.components)) {
                _cleanup_free_ char *c = NULL;
                r = components_format(&res.components, &c);
                if (r < 0) {
                        printf("E %d cannot format the staged image's components\n", -r);
                        return EXIT_FAILURE;
                }
                printf("C %s", c);      /* one line, with its newline */
        }
        printf("V %s\n", res.version);
        return EXIT_SUCCESS;
}

/* ---- parent ---- */

static int make_job(Agent *a, const StageRequest *req, char **ret) {
        _cleanup_free_ char *checkpoint = a->opt.state_dir ? path_join(a->opt.state_dir, "stage-checkpoint.json") : NULL,
                            *index_cache = a->opt.state_dir ? path_join(a->opt.state_dir, "chunk-index") : NULL;
        _cleanup_(json_decrefp) json_t *j = json_pack(
                "{s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?}", "source", req->source,
                "sha256", req->sha256, "version", req->version, "key_id", req->key_id, "ca_file", req->ca_file,
                "client_cert", req->client_cert, "client_key", req->client_key, "esp", a->target.esp_dir, "slot_a",
                a->target.slot_device[SLOT_A], "slot_b", a->target.slot_device[SLOT_B], "booted",
                slot_to_string(a->target.booted), "keys", a->opt.keys_dir, "arch", a->target.arch, "checkpoint", checkpoint,
                "registry_auth", a->opt.registry_auth, "index_cache", index_cache);
        if (!j)
                return -ENOMEM;
        *ret = json_dumps(j, JSON_COMPACT);
        return *ret ? 0 : -ENOMEM;
}

int stage_worker_run(Agent *a, const StageRequest *req, Slot slot, char ret_version[static 65],
                     Components *ret_components, char **ret_error) {
        _cleanup_(components_done) Components comp = {};
        bool overwriting = false;
        _cleanup_free_ char *job = NULL, *line = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        int p[2], r, status;
        size_t n = 0;
        pid_t pid;

        r = make_job(a, req, &job);
        if (r < 0)
                return r;
        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;

        /* The daemon has threads: between fork() and execv() the child only
         * makes async-signal-safe calls. */
        char *argv[] = { a->self_exe, (char *) "--stage-worker", job, NULL };
        sigset_t none;
        sigemptyset(&none);
        pid_t parent = getpid();
        pid = fork();
        if (pid < 0) {
                r = -errno;
                (void) close(p[0]);
                (void) close(p[1]);
                return r;
        }
        if (pid == 0) {
                /* The worker must not outlive the agent: a restarted agent
                 * reports the stage as interrupted and may start another.
                 * (The signal comes when the forking thread ends; it waits
                 * for the worker, so that is the agent's death.) */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(127);
                if (dup2(p[1], STDOUT_FILENO) < 0)
                        _exit(127);
                (void) signal(SIGPIPE, SIG_DFL);
                (void) sigprocmask(SIG_SETMASK, &none, NULL);
                execv(argv[0], argv);
                _exit(127);
        }
        (void) close(p[1]);
        pthread_mutex_lock(&a->lock);
        a->worker_pid = pid;
        pthread_mutex_unlock(&a->lock);

        f = fdopen(p[0], "r");
        if (!f) {
                r = -errno;
                (void) close(p[0]);
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return r;
        }
        int err = 0;
        char *msg = NULL;
        while (getline(&line, &n, f) > 0) {
                line[strcspn(line, "\n")] = 0;
                if (line[0] == 'P') {
                        char phase[24];
                        uint64_t done, total;
                        if (sscanf(line, "P %23s %" SCNu64 " %" SCNu64, phase, &done, &total) == 3) {
                                pthread_mutex_lock(&a->lock);
                                /* Past the head the slot is marked bad and
                                 * written: it no longer holds what it did. */
                                if (!overwriting && !streq(phase, stage_phase_to_string(STAGE_PHASE_HEADER))) {
                                        agent_slot_record_clear(a, slot);
                                        overwriting = true;
                                }
                                snprintf(a->op.phase, sizeof(a->op.phase), "%s", phase);
                                a->op.done = done;
                                if (total > 0 || !streq(phase, "writing"))
                                        a->op.total = total;
                                pthread_mutex_unlock(&a->lock);
                        }
                } else if (line[0] == 'C' && line[1] == ' ') {
                        _cleanup_free_ char *e = NULL;
                        components_done(&comp);
                        /* Our own child, but still checked: the status
                         * passes it on to the cluster. */
                        if (components_parse(line + 2, strlen(line + 2), &comp, &e) < 0)
                                log_warning("The stage worker reported invalid components, ignoring: %s",
                                            e ?: "out of memory");
                } else if (line[0] == 'N' && line[1] == ' ') {
                        pthread_mutex_lock(&a->lock);
                        snprintf(a->op.notice, sizeof(a->op.notice), "%s", line + 2);
                        pthread_mutex_unlock(&a->lock);
                        log_notice("Stage: %s", line + 2);
                } else if (line[0] == 'S' && line[1] == ' ') {
                        uint64_t v[4];
                        int full;
                        if (sscanf(line, "S %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %d", &v[0], &v[1], &v[2],
                                   &v[3], &full) == 5) {
                                pthread_mutex_lock(&a->lock);
                                a->op.have_transfer = true;
                                a->op.bundle_bytes = v[0];
                                a->op.fetched_bytes = v[1];
                                a->op.reused_bytes = v[2];
                                a->op.resumed_bytes = v[3];
                                a->op.full_download = full != 0;
                                pthread_mutex_unlock(&a->lock);
                        }
                } else if (line[0] == 'V' && line[1] == ' ') {
                        snprintf(ret_version, 65, "%s", line + 2);
                } else if (line[0] == 'E' && line[1] == ' ') {
                        char *end = NULL;
                        long e = strtol(line + 2, &end, 10);
                        err = e > 0 && e < 4096 ? -(int) e : -EIO;
                        free(msg);
                        msg = strdup(end && *end == ' ' ? end + 1 : "staging failed");
                }
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        pthread_mutex_lock(&a->lock);
        a->worker_pid = 0;
        pthread_mutex_unlock(&a->lock);

        if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && err == 0) {
                *ret_components = comp;
                comp = (Components) {};
                return 0;
        }
        if (err == 0) {
                err = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && a->stopping ? -ECANCELED : -EIO;
                free(msg);
                msg = NULL;
                if (asprintf(&msg, "the staging process %s %d without a result", WIFSIGNALED(status) ? "died of signal" : "exited with",
                             WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status)) < 0)
                        msg = NULL;
        }
        *ret_error = msg;
        return err;
}
