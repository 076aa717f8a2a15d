/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "agent-api.h"
#include "agent.h"
#include "debug-exec.h"
#include "hook.h"
#include "stage-worker.h"
#include "fileio.h"
#include "log.h"
#include "spawn.h"
#include "strutil.h"

/* Between two passes of the health checks. */
#define HEALTH_RETRY_SEC 5

static void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static json_t *json_time(uint64_t usec) {
        char buf[32];
        time_t t = (time_t) (usec / 1000000u);
        struct tm tm;

        if (usec == 0)
                return json_null();
        gmtime_r(&t, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
        return json_string(buf);
}

static json_t *json_str_or_null(const char *s) {
        return isempty(s) ? json_null() : json_string(s);
}

static char *dump(json_t *j) {
        char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        return s;
}

unsigned agent_error(unsigned status, const char *code, int err, char **ret_body, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        if (api_format_error(code, msg ?: "out of memory", err, ret_body) < 0)
                *ret_body = NULL;
        return status;
}

/* ---- operations ---- */

static json_t *operation_json(const Operation *op) {
        if (op->id == 0)
                return json_null();
        json_t *err = json_null();
        if (op->error_errno < 0 || op->error_message) {
                char name[API_ERRNO_NAME_MAX];
                const char *code = op->error_code[0] ? op->error_code : api_error_code_from_errno(op->error_errno);
                err = json_pack("{s:s, s:s, s:s}", "code", code, "message",
                                op->error_message ?: strerror(-op->error_errno), "errno",
                                api_errno_name(op->error_errno, name));
        }
        json_t *transfer = op->have_transfer
                ? json_pack("{s:I, s:I, s:I, s:I, s:b}", "bundle", (json_int_t) op->bundle_bytes, "fetched",
                            (json_int_t) op->fetched_bytes, "reused", (json_int_t) op->reused_bytes, "resumed",
                            (json_int_t) op->resumed_bytes, "full", op->full_download)
                : json_null();
        json_t *j = json_pack("{s:I, s:s, s:s, s:o, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
                              (json_int_t) op->id, "type", op->type, "state", op->state, "phase",
                              json_str_or_null(op->phase), "done", (json_int_t) op->done, "total",
                              (json_int_t) op->total, "started", json_time(op->started), "finished",
                              json_time(op->finished), "error", err ?: json_null(), "version",
                              json_str_or_null(op->version), "slot",
                              op->slot >= 0 ? json_string(slot_to_string((Slot) op->slot)) : json_null(), "notice",
                              json_str_or_null(op->notice), "transfer", transfer ?: json_null());
        if (j && streq(op->type, "hook")) {
                json_t *h = json_pack("{s:s, s:s, s:o, s:s}", "name", op->hook_name, "stage", op->hook_stage,
                                      "exit_code", op->have_exit_code ? json_integer(op->exit_code) : json_null(),
                                      "output", op->hook_output ?: "");
                if (!h || json_object_set_new(j, "hook", h) < 0) {
                        json_decref(j);
                        return NULL;
                }
        }
        return j;
}

static char *state_path(Agent *a, const char *name) {
        return path_join(a->opt.state_dir, name);
}

/* Called with the lock held. */
static void save_state(Agent *a) {
        _cleanup_(json_decrefp) json_t *j = json_pack("{s:I, s:o}", "next_op", (json_int_t) a->next_op_id,
                                                      "last_operation", operation_json(&a->op));
        _cleanup_free_ char *s = j ? dump(j) : NULL, *p = state_path(a, "state.json");
        if (!s || !p)
                return;
        int r = write_file_atomic(p, s, strlen(s), 0600);
        if (r < 0)
                log_warning_errno(r, "Failed to save %s: %m", p);
}

static void load_state(Agent *a) {
        _cleanup_free_ char *p = state_path(a, "state.json"), *data = NULL;
        _cleanup_(json_decrefp) json_t *j = NULL;
        size_t len;

        if (!p || read_full_file(p, 1 << 20, &data, &len) < 0)
                return;
        j = json_loadb(data, len, 0, NULL);
        json_int_t next = json_integer_value(json_object_get(j, "next_op"));
        a->next_op_id = next > 0 ? (uint64_t) next : 1;
        json_t *op = json_object_get(j, "last_operation");
        if (!json_is_object(op))
                return;
        a->op.id = (uint64_t) json_integer_value(json_object_get(op, "id"));
        snprintf(a->op.type, sizeof(a->op.type), "%s", json_string_value(json_object_get(op, "type")) ?: "");
        /* An operation that was running when the agent died did not finish. */
        const char *state = json_string_value(json_object_get(op, "state")) ?: "";
        snprintf(a->op.state, sizeof(a->op.state), "%s", streq(state, "running") ? "failed" : state);
        snprintf(a->op.phase, sizeof(a->op.phase), "%s", json_string_value(json_object_get(op, "phase")) ?: "");
        snprintf(a->op.version, sizeof(a->op.version), "%s", json_string_value(json_object_get(op, "version")) ?: "");
        const char *slot = json_string_value(json_object_get(op, "slot"));
        a->op.slot = slot ? slot_from_string(slot) : -1;
        snprintf(a->op.notice, sizeof(a->op.notice), "%s", json_string_value(json_object_get(op, "notice")) ?: "");
        json_t *tr = json_object_get(op, "transfer");
        if (json_is_object(tr)) {
                a->op.have_transfer = true;
                a->op.bundle_bytes = (uint64_t) json_integer_value(json_object_get(tr, "bundle"));
                a->op.fetched_bytes = (uint64_t) json_integer_value(json_object_get(tr, "fetched"));
                a->op.reused_bytes = (uint64_t) json_integer_value(json_object_get(tr, "reused"));
                a->op.resumed_bytes = (uint64_t) json_integer_value(json_object_get(tr, "resumed"));
                a->op.full_download = json_is_true(json_object_get(tr, "full"));
        }
        json_t *hook = json_object_get(op, "hook");
        if (streq(a->op.type, "hook") && json_is_object(hook)) {
                snprintf(a->op.hook_name, sizeof(a->op.hook_name), "%s",
                         json_string_value(json_object_get(hook, "name")) ?: "");
                snprintf(a->op.hook_stage, sizeof(a->op.hook_stage), "%s",
                         json_string_value(json_object_get(hook, "stage")) ?: "");
                json_t *code = json_object_get(hook, "exit_code");
                a->op.have_exit_code = json_is_integer(code);
                a->op.exit_code = (int) json_integer_value(code);
                const char *out = json_string_value(json_object_get(hook, "output"));
                a->op.hook_output = out ? strdup(out) : NULL;
        }
        json_t *err = json_object_get(op, "error");
        if (json_is_object(err)) {
                /* The errno itself is only needed for the code, which is kept. */
                a->op.error_errno = -EIO;
                snprintf(a->op.error_code, sizeof(a->op.error_code), "%s",
                         json_string_value(json_object_get(err, "code")) ?: "internal");
                const char *m = json_string_value(json_object_get(err, "message"));
                a->op.error_message = m ? strdup(m) : NULL;
        } else if (streq(state, "running") && streq(a->op.type, "hook")) {
                a->op.error_errno = -EINTR;
                snprintf(a->op.error_code, sizeof(a->op.error_code), "interrupted");
                a->op.error_message = strdup("the agent stopped (crash, kill or power loss) while this hook ran; the "
                                             "hook was killed with it and may not have finished its work: run it "
                                             "again (its output up to about a second before is kept)");
        } else if (streq(state, "running")) {
                a->op.error_errno = -EINTR;
                snprintf(a->op.error_code, sizeof(a->op.error_code), "interrupted");
                a->op.error_message = strdup("the agent stopped (crash, kill or power loss) while this operation ran; "
                                             "the slot it was writing stays marked bad; staging the same bundle again "
                                             "resumes a download where it stopped");
        }
}

/* Starts a new operation record; lock held. */
static void op_begin(Agent *a, const char *type) {
        free(a->op.error_message);
        free(a->op.hook_output);
        free(a->op.audit_detail);
        a->op = (Operation) { .id = a->next_op_id++, .started = now_usec(), .slot = -1 };
        snprintf(a->op.type, sizeof(a->op.type), "%s", type);
        snprintf(a->op.state, sizeof(a->op.state), "running");
        save_state(a);
}

static void audit_outcome(Agent *a) {
        if (!a->audit)
                return;
        AuditRecord rec = {
                .time_usec = now_usec(),
                .method = "-",
                .path = a->op.type,
                .result = a->op.state,
                .error = a->op.error_message,
                .op_id = a->op.id,
                .detail_json = a->op.audit_detail,
        };
        int r = audit_log_append(a->audit, &rec);
        if (r < 0)
                log_error_errno(r, "Failed to append to the audit log: %m");
}

/* Lock held. Takes ownership of 'msg'. */
static void op_end(Agent *a, int r, char *msg) {
        a->op.finished = now_usec();
        snprintf(a->op.state, sizeof(a->op.state), "%s", r < 0 ? "failed" : "succeeded");
        a->op.error_errno = r < 0 ? r : 0;
        free(a->op.error_message);
        a->op.error_message = r < 0 ? msg : NULL;
        if (r >= 0)
                free(msg);
        save_state(a);
        /* A request that finishes at once is audited with its response;
         * background work gets a record of its own when it ends. */
        if (a->op.background)
                audit_outcome(a);
        if (r < 0)
                log_error("Operation %" PRIu64 " (%s) failed: %s", a->op.id, a->op.type,
                          a->op.error_message ?: strerror(-r));
        else
                log_info("Operation %" PRIu64 " (%s) succeeded.", a->op.id, a->op.type);
}

static unsigned operation_response(Agent *a, unsigned status, char **ret_body) {
        _cleanup_(json_decrefp) json_t *j = operation_json(&a->op);
        *ret_body = dump(j);
        return status;
}

static void reap_worker(Agent *a) {
        if (a->worker_joinable && !a->busy) {
                (void) pthread_join(a->worker, NULL);
                a->worker_joinable = false;
        }
}

/* Lock held. */
static int start_worker(Agent *a, void *(*fn)(void *), void *arg) {
        reap_worker(a);
        a->busy = true;
        int r = -pthread_create(&a->worker, NULL, fn, arg);
        if (r < 0) {
                a->busy = false;
                return r;
        }
        a->worker_joinable = true;
        return 0;
}

/* ---- what the slots hold ---- */

static char *slot_record_path(Agent *a, Slot s) {
        return state_path(a, s == SLOT_A ? "slot-a.json" : "slot-b.json");
}

static void slot_record_done(SlotRecord *r) {
        components_done(&r->components);
        *r = (SlotRecord) {};
}

void agent_slot_record_clear(Agent *a, Slot s) {
        _cleanup_free_ char *p = slot_record_path(a, s);

        slot_record_done(&a->slot_record[s]);
        if (!p)
                return;
        if (unlink(p) < 0) {
                if (errno != ENOENT)
                        log_warning_errno(errno, "Failed to remove %s, ignoring: %m", p);
                return;
        }
        int r = fsync_parent_directory(p);
        if (r < 0)
                log_warning_errno(r, "Failed to sync the directory of %s, ignoring: %m", p);
}

void agent_slot_record_save(Agent *a, Slot s, const char *version, const Components *c) {
        _cleanup_free_ char *p = slot_record_path(a, s), *data = NULL;
        SlotRecord rec = { .known = true };
        int r;

        snprintf(rec.version, sizeof(rec.version), "%s", version);
        r = components_copy(c, &rec.components);
        if (r < 0) {
                log_oom();
                return;
        }
        slot_record_done(&a->slot_record[s]);
        a->slot_record[s] = rec;

        _cleanup_(json_decrefp) json_t *j = json_pack("{s:s, s:o}", "version", version, "components",
                                                      components_to_json(c));
        data = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        r = !p || !data ? -ENOMEM : write_file_atomic(p, data, strlen(data), 0600);
        if (r < 0)
                log_warning_errno(r, "Failed to save what slot %s holds to %s, ignoring: %m", slot_to_string(s),
                                  p ?: "persist");
}

/* The record from persist; a missing one is no record, a malformed one is
 * one warning and no record. */
static void slot_record_load(Agent *a, Slot s) {
        _cleanup_free_ char *p = slot_record_path(a, s), *data = NULL, *err = NULL;
        _cleanup_(json_decrefp) json_t *j = NULL;
        json_error_t jerr;
        SlotRecord rec = { .known = true };
        size_t len;
        int r;

        if (!p)
                return;
        r = read_full_file(p, COMPONENTS_FILE_MAX, &data, &len);
        if (r == -ENOENT)
                return;
        if (r < 0) {
                log_warning_errno(r, "Cannot read %s, ignoring what it says slot %s holds: %m", p, slot_to_string(s));
                return;
        }
        j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
        const char *version = json_string_value(json_object_get(j, "version"));
        json_t *comp = json_object_get(j, "components");
        if (!j)
                (void) asprintf(&err, "not JSON: %s", jerr.text);
        else if (!json_is_object(j) || json_object_size(j) != 2 || !version || !comp ||
                 strlen(version) >= sizeof(rec.version))
                err = strdup("not an object of \"version\" and \"components\"");
        else if (components_from_json(comp, &rec.components, &err) >= 0) {
                snprintf(rec.version, sizeof(rec.version), "%s", version);
                a->slot_record[s] = rec;
                return;
        }
        log_warning("Ignoring %s, which is to say what slot %s holds: %s", p, slot_to_string(s),
                    err ?: "out of memory");
}

/* The booted image's own record of its components. Read once: a malformed
 * file is worth one warning, not one per status call. true if the file was
 * valid or absent (an image without components), false if it says nothing. */
static bool read_running_components(Agent *a) {
        _cleanup_free_ char *data = NULL, *err = NULL;
        const char *p = a->opt.components_file;
        size_t len;
        int r;

        if (!p)
                return false;
        r = read_full_file(p, COMPONENTS_FILE_MAX, &data, &len);
        if (r == -ENOENT) {
                log_debug("%s does not exist: the image records no component versions.", p);
                return true;
        }
        if (r >= 0)
                r = components_parse(data, len, &a->running_components, &err);
        if (r < 0) {
                log_warning("Ignoring %s, the running image's component versions: %s; the status reports none "
                            "for slot %s", p, err ?: strerror(-r), slot_to_string(a->target.booted));
                return false;
        }
        return true;
}

static bool components_equal(const Components *x, const Components *y) {
        for (size_t i = 0; i < _COMPONENT_MAX; i++) {
                const char *p = x->version[i], *q = y->version[i];
                if (p != q && (!p || !q || !streq(p, q)))
                        return false;
        }
        return true;
}

/* Lock held. */
static void slot_components_init(Agent *a) {
        SlotInfo slots[_SLOT_MAX];
        Slot booted = a->target.booted;

        bool known = read_running_components(a);
        for (Slot s = 0; s < _SLOT_MAX; s++)
                slot_record_load(a, s);
        if (update_read_slots(&a->target, slots) < 0 || isempty(slots[booted].version))
                return;
        /* Remember what the booted slot holds for when it is the other one
         * (after an upgrade: the image a rollback returns to). A malformed
         * file says nothing either way; the record stays as it is. */
        const SlotRecord *rec = &a->slot_record[booted];
        if (known && (!rec->known || !streq(rec->version, slots[booted].version) ||
                     !components_equal(&rec->components, &a->running_components)))
                agent_slot_record_save(a, booted, slots[booted].version, &a->running_components);
}

/* What the status reports for slot s; NULL: nothing. Lock held. */
static const Components *slot_components(Agent *a, Slot s, const SlotInfo *info) {
        if (s == a->target.booted)
                return &a->running_components;
        const SlotRecord *rec = &a->slot_record[s];
        if (!rec->known || info->status == SLOT_STATUS_EMPTY || info->status == SLOT_STATUS_BAD ||
            !streq(rec->version, info->version))
                return NULL;
        return &rec->components;
}

/* ---- status ---- */

unsigned agent_get_status(Agent *a, char **ret_body) {
        SlotInfo slots[_SLOT_MAX];
        int r = update_read_slots(&a->target, slots);
        if (r < 0)
                return agent_error(500, "internal", r, ret_body, "cannot read the boot environment: %s", strerror(-r));

        pthread_mutex_lock(&a->lock);
        json_t *js = json_object();
        for (Slot s = 0; s < _SLOT_MAX; s++) {
                json_t *o = json_pack("{s:s, s:o, s:i, s:i, s:b, s:b, s:s}", "state",
                                      slot_status_to_string(slots[s].status), "version",
                                      json_str_or_null(slots[s].version), "priority", (int) slots[s].priority,
                                      "tries", (int) slots[s].tries, "good", slots[s].good, "booted",
                                      slots[s].booted, "device", a->target.slot_device[s]);
                const Components *c = slot_components(a, s, &slots[s]);
                if (o && !components_is_empty(c))
                        json_object_set_new(o, "components", components_to_json(c));
                json_object_set_new(js, slot_to_string(s), o);
        }
        _cleanup_(json_decrefp) json_t *j = json_pack(
                "{s:s, s:{s:s, s:s, s:s}, s:{s:s, s:b, s:s, s:b}, s:o, s:{s:s, s:o}, s:{s:I}, s:b, s:o}", "api", "v1",
                "os", "name", a->os_name, "version", a->os_version, "pretty_name", a->pretty_name, "boot", "slot",
                slot_to_string(a->target.booted), "degraded", a->degraded, "boot_id", a->boot_id, "first_boot",
                a->first_boot, "slots", js, "health", "state", a->health, "message",
                json_str_or_null(a->health_message), "config", "generation",
                (json_int_t) (a->config ? a->config->generation : 0), "reboot_required", a->reboot_required,
                "operation", operation_json(&a->op));
        pthread_mutex_unlock(&a->lock);
        if (!j)
                return agent_error(500, "internal", -ENOMEM, ret_body, "cannot format the status");
        *ret_body = dump(j);
        return 200;
}

unsigned agent_get_operation(Agent *a, char **ret_body) {
        pthread_mutex_lock(&a->lock);
        unsigned s = operation_response(a, 200, ret_body);
        pthread_mutex_unlock(&a->lock);
        return s;
}

unsigned agent_get_audit(Agent *a, size_t limit, char **ret_body) {
        _cleanup_free_ char *p = state_path(a, "audit.log");
        int r = p ? audit_log_tail(p, limit, ret_body) : -ENOMEM;
        if (r == -ENOENT) {
                *ret_body = strdup("[]");
                return 200;
        }
        if (r < 0)
                return agent_error(500, "internal", r, ret_body, "cannot read the audit log: %s", strerror(-r));
        return 200;
}

/* ---- stage ---- */

typedef struct StageJob {
        Agent *agent;
        StageRequest req;
} StageJob;

static void *stage_thread(void *p) {
        StageJob *j = p;
        Agent *a = j->agent;
        char *err = NULL, version[65] = "";

        Components comp = {};
        Slot slot = slot_other(a->target.booted);

        log_info("Staging %s into slot %s.", j->req.source, slot_to_string(slot));
        int r = stage_worker_run(a, &j->req, slot, version, &comp, &err);

        pthread_mutex_lock(&a->lock);
        if (r >= 0) {
                snprintf(a->op.version, sizeof(a->op.version), "%s", version);
                /* Before the operation shows as done, so that nobody sees a
                 * staged slot without what it holds (short of a crash
                 * in between, which leaves no record: nothing reported). */
                agent_slot_record_save(a, slot, version, &comp);
        }
        components_done(&comp);
        op_end(a, r, err);
        a->busy = false;
        pthread_mutex_unlock(&a->lock);
        stage_request_done(&j->req);
        free(j);
        return NULL;
}

static unsigned busy_error(Agent *a, char **ret_body) {
        return agent_error(409, "busy", -EBUSY, ret_body, "operation %" PRIu64 " (%s) is still running", a->op.id,
                           a->op.type);
}

unsigned agent_post_stage(Agent *a, const char *body, size_t len, char **ret_body) {
        _cleanup_free_ char *err = NULL;
        StageJob *j = calloc(1, sizeof(StageJob));
        int r;

        if (!j)
                return agent_error(500, "internal", -ENOMEM, ret_body, "out of memory");
        j->agent = a;
        r = api_parse_stage(body, len, &j->req, &err);
        if (r < 0) {
                free(j);
                return agent_error(r == -E2BIG ? 413 : 400, r == -E2BIG ? "too_large" : "bad_request", r, ret_body,
                                   "%s", err ?: "malformed request");
        }
        pthread_mutex_lock(&a->lock);
        if (a->busy) {
                unsigned s = busy_error(a, ret_body);
                pthread_mutex_unlock(&a->lock);
                stage_request_done(&j->req);
                free(j);
                return s;
        }
        op_begin(a, "stage");
        a->op.background = true;
        a->op.slot = slot_other(a->target.booted);
        snprintf(a->op.phase, sizeof(a->op.phase), "%s", stage_phase_to_string(STAGE_PHASE_HEADER));
        if (j->req.version)
                snprintf(a->op.version, sizeof(a->op.version), "%s", j->req.version);
        r = start_worker(a, stage_thread, j);
        if (r < 0) {
                op_end(a, r, strdup("cannot start the worker thread"));
                stage_request_done(&j->req);
                free(j);
        }
        unsigned s = operation_response(a, r < 0 ? 500 : 202, ret_body);
        pthread_mutex_unlock(&a->lock);
        return s;
}

/* ---- activate, rollback ---- */

static unsigned slot_change(Agent *a, const char *type, bool reboot, unsigned arg,
                            int (*fn)(Agent *, unsigned, Slot *, char **), char **ret_body) {
        char *err = NULL;
        Slot slot = SLOT_INVALID;

        pthread_mutex_lock(&a->lock);
        if (a->busy) {
                unsigned s = busy_error(a, ret_body);
                pthread_mutex_unlock(&a->lock);
                return s;
        }
        op_begin(a, type);
        int r = fn(a, arg, &slot, &err);
        a->op.slot = slot;
        if (r >= 0) {
                SlotInfo slots[_SLOT_MAX];
                if (update_read_slots(&a->target, slots) >= 0 && slot >= 0)
                        snprintf(a->op.version, sizeof(a->op.version), "%s", slots[slot].version);
                a->reboot_required = true;
        }
        unsigned status = 200;
        if (r < 0)
                status = agent_error(r == -ENOMEDIUM ? 409 : 500, r == -ENOMEDIUM ? "conflict" : "internal", r,
                                     ret_body, "%s", err ?: strerror(-r));
        op_end(a, r, err);
        if (r >= 0) {
                _cleanup_(json_decrefp) json_t *j = json_pack("{s:o, s:b, s:b}", "operation", operation_json(&a->op),
                                                              "reboot_required", true, "rebooting", reboot);
                *ret_body = dump(j);
                if (reboot) {
                        log_info("Rebooting into slot %s (%s).", slot_to_string(slot), a->op.version);
                        agent_request_reboot(a);
                }
        }
        pthread_mutex_unlock(&a->lock);
        return status;
}

static int do_activate(Agent *a, unsigned tries, Slot *slot, char **err) {
        return update_activate(&a->target, tries, slot, err);
}

static int do_rollback(Agent *a, unsigned unused, Slot *slot, char **err) {
        return update_rollback(&a->target, slot, err);
}

unsigned agent_post_activate(Agent *a, const char *body, size_t len, char **ret_body) {
        _cleanup_free_ char *err = NULL;
        ActivateRequest req;
        int r = api_parse_activate(body, len, &req, &err);
        if (r < 0)
                return agent_error(400, "bad_request", r, ret_body, "%s", err ?: "malformed request");
        return slot_change(a, "activate", req.reboot, req.tries, do_activate, ret_body);
}

unsigned agent_post_rollback(Agent *a, const char *body, size_t len, char **ret_body) {
        _cleanup_free_ char *err = NULL;
        RollbackRequest req;
        int r = api_parse_rollback(body, len, &req, &err);
        if (r < 0)
                return agent_error(400, "bad_request", r, ret_body, "%s", err ?: "malformed request");
        return slot_change(a, "rollback", req.reboot, 0, do_rollback, ret_body);
}

/* A plain reboot, for node config that only takes effect at boot (kernel
 * arguments): hull-node drains the node first, so the reboot is asked for
 * explicitly rather than done by the config call itself. */
unsigned agent_post_reboot(Agent *a, const char *body, size_t len, char **ret_body) {
        _cleanup_free_ char *err = NULL;
        int r = api_parse_reboot(body, len, &err);
        if (r < 0)
                return agent_error(400, "bad_request", r, ret_body, "%s", err ?: "malformed request");

        pthread_mutex_lock(&a->lock);
        if (a->busy) {
                unsigned s = busy_error(a, ret_body);
                pthread_mutex_unlock(&a->lock);
                return s;
        }
        op_begin(a, "reboot");
        op_end(a, 0, NULL);
        _cleanup_(json_decrefp) json_t *j = json_pack("{s:o, s:b}", "operation", operation_json(&a->op),
                                                      "rebooting", true);
        *ret_body = dump(j);
        log_info("Rebooting on request.");
        agent_request_reboot(a);
        pthread_mutex_unlock(&a->lock);
        return 200;
}

/* ---- health and mark-good ---- */

static void set_health(Agent *a, const char *state, char *msg) {
        pthread_mutex_lock(&a->lock);
        snprintf(a->health, sizeof(a->health), "%s", state);
        free(a->health_message);
        a->health_message = msg;
        pthread_mutex_unlock(&a->lock);
}

static int run_check(const char *path, unsigned timeout, char **ret_msg) {
        char *argv[] = { (char *) path, NULL };
        SpawnOptions so = { .output_fd = -1, .timeout_sec = timeout };
        int r = spawn_run(argv, &so);
        if (r == 0)
                return 0;
        if (r == -ETIME)
                (void) asprintf(ret_msg, "health check %s did not finish within %us", path, timeout);
        else if (r < 0)
                (void) asprintf(ret_msg, "health check %s could not be run: %s", path, strerror(-r));
        else
                (void) asprintf(ret_msg, "health check %s failed with status %d", path, r);
        return r < 0 ? r : -EPROTO;
}

static int check_systemd(Agent *a, unsigned timeout, char **ret_msg) {
        /* is-system-running --wait returns once start-up is over, whatever
         * the outcome; then the default target must be active. A unit
         * failing elsewhere does not make the node unhealthy by itself;
         * images that care add a check to health.d. */
        char *wait_argv[] = { "systemctl", "is-system-running", "--wait", NULL };
        char *target_argv[] = { "systemctl", "--quiet", "is-active", "default.target", NULL };
        SpawnOptions so = { .output_fd = -1, .timeout_sec = timeout };
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        so.output_fd = null;
        int r = spawn_run(wait_argv, &so);
        if (r == -ETIME) {
                safe_close(null);
                (void) asprintf(ret_msg, "systemd did not finish starting up within %us", timeout);
                return r;
        }
        r = spawn_run(target_argv, &so);
        safe_close(null);
        if (r != 0) {
                (void) asprintf(ret_msg, "systemd's default target is not active");
                return -EPROTO;
        }
        return 0;
}

static int health_dir_entries(Agent *a, char ***ret) {
        char **l = NULL;
        /* Later directories override earlier ones by file name, like
         * systemd's /usr/lib vs /etc. */
        for (char **d = a->opt.health_dirs; d && *d; d++) {
                _cleanup_(closedirp) DIR *dir = opendir(*d);
                struct dirent *de;
                if (!dir)
                        continue;
                while ((de = readdir(dir))) {
                        if (de->d_name[0] == '.')
                                continue;
                        _cleanup_free_ char *p = path_join(*d, de->d_name);
                        struct stat st;
                        if (!p)
                                return -ENOMEM;
                        if (stat(p, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 0111))
                                continue;
                        bool replaced = false;
                        for (char **e = l; e && *e; e++)
                                if (streq(strrchr(*e, '/') + 1, de->d_name)) {
                                        free(*e);
                                        *e = TAKE_PTR(p);
                                        replaced = true;
                                        break;
                                }
                        if (!replaced && !(l = strv_append(l, p)))
                                return -ENOMEM;
                }
        }
        /* Run in name order, like run-parts. */
        size_t n = strv_length(l);
        for (size_t i = 1; i < n; i++)
                for (size_t k = i; k > 0 && strcmp(strrchr(l[k - 1], '/'), strrchr(l[k], '/')) > 0; k--) {
                        char *t = l[k];
                        l[k] = l[k - 1];
                        l[k - 1] = t;
                }
        *ret = l;
        return 0;
}

/* One pass over every check. */
static int health_pass(Agent *a, unsigned timeout, char **ret_msg) {
        _cleanup_(strv_freep) char **checks = NULL;
        int r;

        if (a->opt.systemd_check) {
                r = check_systemd(a, timeout, ret_msg);
                if (r < 0)
                        return r;
        }
        r = health_dir_entries(a, &checks);
        if (r < 0)
                return r;
        for (char **c = checks; c && *c; c++) {
                r = run_check(*c, a->opt.check_timeout_sec, ret_msg);
                if (r < 0)
                        return r;
        }
        return 0;
}

typedef struct HealthJob {
        Agent *agent;
        bool automatic; /* after boot: reboot when it never becomes healthy */
} HealthJob;

static void *health_thread(void *p) {
        HealthJob *job = p;
        Agent *a = job->agent;
        uint64_t deadline = now_usec() + (uint64_t) a->opt.health_timeout_sec * 1000000u;
        char *msg = NULL;
        int r;

        set_health(a, "checking", NULL);
        for (unsigned pass = 1;; pass++) {
                free(msg);
                msg = NULL;
                uint64_t now = now_usec();
                unsigned left = now < deadline ? (unsigned) ((deadline - now) / 1000000u) + 1 : 1;
                pthread_mutex_lock(&a->lock);
                snprintf(a->op.phase, sizeof(a->op.phase), "checks-pass-%u", pass);
                pthread_mutex_unlock(&a->lock);
                r = health_pass(a, left, &msg);
                if (r >= 0 || now_usec() >= deadline || a->stopping)
                        break;
                log_info("Health checks not passing yet (%s); retrying in %ds.", msg ?: "?", HEALTH_RETRY_SEC);
                for (int i = 0; i < HEALTH_RETRY_SEC && !a->stopping; i++)
                        sleep(1);
        }

        char *err = NULL;
        if (r >= 0) {
                set_health(a, "healthy", NULL);
                r = update_mark_good(&a->target, &err);
                if (r > 0)
                        log_info("Slot %s is healthy and marked good.", slot_to_string(a->target.booted));
        } else {
                set_health(a, "unhealthy", msg ? strdup(msg) : NULL);
                err = msg;
                msg = NULL;
                if (!err)
                        (void) asprintf(&err, "the health checks did not pass within %us", a->opt.health_timeout_sec);
        }

        pthread_mutex_lock(&a->lock);
        if (r < 0 && r != -ESTALE)
                snprintf(a->op.error_code, sizeof(a->op.error_code), "unhealthy");
        op_end(a, r < 0 ? r : 0, err);
        a->busy = false;
        bool reboot = r < 0 && job->automatic && a->opt.reboot_on_unhealthy && !a->stopping;
        if (reboot) {
                log_error("Slot %s did not become healthy; rebooting so that the boot counter can fall back.",
                          slot_to_string(a->target.booted));
                agent_request_reboot(a);
        }
        pthread_mutex_unlock(&a->lock);
        free(msg);
        free(job);
        return NULL;
}

/* Lock held. */
static int start_health(Agent *a, bool automatic) {
        HealthJob *job = calloc(1, sizeof(HealthJob));
        if (!job)
                return -ENOMEM;
        job->agent = a;
        job->automatic = automatic;
        op_begin(a, "mark-good");
        a->op.background = true;
        a->op.slot = a->target.booted;
        snprintf(a->op.version, sizeof(a->op.version), "%s", a->os_version);
        int r = start_worker(a, health_thread, job);
        if (r < 0) {
                op_end(a, r, strdup("cannot start the worker thread"));
                free(job);
        }
        return r;
}

unsigned agent_post_mark_good(Agent *a, const char *body, size_t len, char **ret_body) {
        _cleanup_free_ char *err = NULL;
        MarkGoodRequest req;
        int r = api_parse_mark_good(body, len, &req, &err);
        if (r < 0)
                return agent_error(400, "bad_request", r, ret_body, "%s", err ?: "malformed request");

        pthread_mutex_lock(&a->lock);
        if (a->busy) {
                unsigned s = busy_error(a, ret_body);
                pthread_mutex_unlock(&a->lock);
                return s;
        }
        unsigned status;
        if (req.force) {
                char *e = NULL;
                op_begin(a, "mark-good");
                a->op.slot = a->target.booted;
                snprintf(a->op.version, sizeof(a->op.version), "%s", a->os_version);
                r = update_mark_good(&a->target, &e);
                if (r < 0)
                        status = agent_error(r == -ESTALE ? 409 : 500, r == -ESTALE ? "conflict" : "internal", r,
                                             ret_body, "%s", e ?: strerror(-r));
                op_end(a, r < 0 ? r : 0, e);
                if (r >= 0)
                        status = operation_response(a, 200, ret_body);
        } else {
                r = start_health(a, false);
                status = r < 0 ? agent_error(500, "internal", r, ret_body, "cannot start the health checks")
                               : operation_response(a, 202, ret_body);
        }
        pthread_mutex_unlock(&a->lock);
        return status;
}

/* ---- config ---- */

unsigned agent_get_config(Agent *a, char **ret_body) {
        pthread_mutex_lock(&a->lock);
        int r = node_config_format(a->config, ret_body);
        pthread_mutex_unlock(&a->lock);
        if (r < 0)
                return agent_error(500, "internal", r, ret_body, "cannot format the config");
        return 200;
}

unsigned agent_post_config(Agent *a, const char *body, size_t len, char **ret_body) {
        _cleanup_(node_config_freep) NodeConfig *c = NULL;
        _cleanup_free_ char *err = NULL, *args = NULL, *path = NULL;
        NodeConfigApplyResult res = {};
        int r;

        r = node_config_parse(body, len, &c, &err);
        if (r < 0)
                return agent_error(r == -E2BIG ? 413 : 422, r == -E2BIG ? "too_large" : "invalid_config", r, ret_body,
                                   "%s", err ?: "malformed config");

        pthread_mutex_lock(&a->lock);
        if (a->busy) {
                unsigned s = busy_error(a, ret_body);
                pthread_mutex_unlock(&a->lock);
                return s;
        }
        NodeConfigApplyOptions o = {
                .root = a->opt.config_root,
                .proc_sys = a->opt.proc_sys,
                .run_systemctl = a->opt.live,
                .live = a->opt.live,
        };
        unsigned status;
        /* Everything that can be refused is checked before anything changes:
         * the document (above), the kernel arguments' room in the GRUB
         * environment (here), the running system (inside apply). */
        args = node_config_kernel_args_string(c);
        r = args ? update_check_cmdline(&a->target, args, &err) : -ENOMEM;
        if (r == -ENOSPC)
                r = -EINVAL; /* an invalid config, not a full disk */
        if (r >= 0)
                r = node_config_apply(a->config, c, &o, &res, &err);
        if (r >= 0 && res.changed)
                r = update_set_cmdline(&a->target, args, &err);
        if (r >= 0 && res.changed) {
                path = state_path(a, "config.json");
                r = path ? node_config_save(c, path) : -ENOMEM;
                if (r < 0 && !err)
                        (void) asprintf(&err, "cannot save the config on persist: %s", strerror(-r));
        }
        if (r < 0) {
                const char *code = r == -ESTALE ? "stale_generation" : r == -ENOENT || r == -EINVAL ? "invalid_config"
                                                                                                  : "internal";
                status = agent_error(r == -ESTALE ? 409 : streq(code, "invalid_config") ? 422 : 500, code, r, ret_body,
                                     "%s", err ?: strerror(-r));
        } else {
                if (res.changed) {
                        log_info("Applied config generation %" PRIu64 ".", c->generation);
                        node_config_free(a->config);
                        a->config = TAKE_PTR(c);
                }
                if (res.reboot_required)
                        a->reboot_required = true;
                _cleanup_(json_decrefp) json_t *j =
                        json_pack("{s:I, s:b, s:b}", "generation", (json_int_t) a->config->generation, "changed",
                                  res.changed, "reboot_required", res.reboot_required);
                *ret_body = dump(j);
                status = 200;
        }
        pthread_mutex_unlock(&a->lock);
        return status;
}

/* What both forms of debug check first: the request, the node config's
 * switch and the toolbox. 0 or an error status with its body. */
static unsigned debug_check(Agent *a, const char *body, size_t len, DebugRequest *req, char **ret_body) {
        _cleanup_free_ char *err = NULL;
        struct stat st;
        int r = api_parse_debug(body, len, req, &err);
        if (r < 0)
                return agent_error(400, "bad_request", r, ret_body, "%s", err ?: "malformed request");
        pthread_mutex_lock(&a->lock);
        bool enabled = a->config && a->config->debug_enabled;
        pthread_mutex_unlock(&a->lock);
        if (!enabled)
                return agent_error(403, "forbidden", -EPERM, ret_body,
                                   "the admin container is disabled; enable it with \"debug\": {\"enabled\": true} in the node config");
        if (stat(a->opt.toolbox, &st) < 0 || !S_ISDIR(st.st_mode))
                return agent_error(409, "conflict", -ENOENT, ret_body,
                                   "there is no toolbox at %s: put a root file system with the tools there "
                                   "(docs/AGENT.md, \"Admin container\")", a->opt.toolbox);
        return 0;
}

unsigned agent_debug_session_prepare(Agent *a, const char *body, size_t len, char ***ret_command, char **ret_body) {
        _cleanup_(debug_request_done) DebugRequest req = {};
        unsigned status = debug_check(a, body, len, &req, ret_body);
        if (status != 0)
                return status;
        if (!req.command) {
                /* A login shell: bash if the toolbox has it. */
                _cleanup_free_ char *bash = path_join(a->opt.toolbox, "bin/bash");
                char *shell = strdup(bash && access(bash, X_OK) == 0 ? "/bin/bash" : "/bin/sh"), *dash_l = strdup("-l");
                char **cmd = calloc(3, sizeof(char *));
                if (!shell || !dash_l || !cmd) {
                        free(shell);
                        free(dash_l);
                        free(cmd);
                        return agent_error(500, "internal", -ENOMEM, ret_body, "out of memory");
                }
                cmd[0] = shell;
                cmd[1] = dash_l;
                *ret_command = cmd;
        } else
                *ret_command = TAKE_PTR(req.command);
        return 0;
}

void agent_debug_session_ended(Agent *a, uid_t uid, const char *command, int exit_status) {
        char msg[64];
        snprintf(msg, sizeof(msg), "exit status %d", exit_status);
        log_notice("Admin container session of uid %d (%s) ended with status %d.", (int) uid, command, exit_status);
        if (!a->audit)
                return;
        AuditRecord rec = {
                .time_usec = now_usec(),
                .uid = uid,
                .method = "-",
                .path = "debug-session",
                .result = exit_status == 0 ? "succeeded" : "failed",
                .error = exit_status == 0 ? NULL : msg,
        };
        int r = audit_log_append(a->audit, &rec);
        if (r < 0)
                log_error_errno(r, "Failed to append to the audit log: %m");
}

unsigned agent_post_debug(Agent *a, const char *body, size_t len, uid_t uid, char **ret_body) {
        _cleanup_(debug_request_done) DebugRequest req = {};
        DebugResult res = {};
        unsigned status = debug_check(a, body, len, &req, ret_body);
        if (status != 0)
                return status;
        if (!req.command)
                return agent_error(400, "bad_request", -EINVAL, ret_body,
                                   "command: required for a one-shot command; open an interactive shell with "
                                   "\"Upgrade: hull-tty\" (hullctl debug without a command)");
        log_notice("Admin container: uid %d runs '%s'.", (int) uid, req.command[0]);
        int r = debug_exec_run(a->self_exe, a->opt.toolbox, req.command, a->opt.debug_timeout_sec, &res);
        if (r < 0)
                return agent_error(500, "internal", r, ret_body, "cannot start the admin container: %s", strerror(-r));
        _cleanup_(json_decrefp) json_t *j =
                json_pack("{s:i, s:b, s:b, s:s}", "exit_status", res.exit_status, "timed_out", res.timed_out,
                          "truncated", res.truncated, "output", res.output);
        if (!j) {
                /* Binary output: not valid UTF-8 for JSON; send it sanitised. */
                _cleanup_free_ char *clean = api_utf8_sanitize(res.output, DEBUG_OUTPUT_MAX);
                j = json_pack("{s:i, s:b, s:b, s:s}", "exit_status", res.exit_status, "timed_out", res.timed_out,
                              "truncated", res.truncated, "output", clean ?: "");
        }
        free(res.output);
        *ret_body = j ? dump(j) : NULL;
        return 200;
}

/* ---- hooks ---- */

typedef struct HookJob {
        Agent *agent;
        HookRequest req;
        char *path;
} HookJob;

static void hook_job_free(HookJob *j) {
        hook_request_done(&j->req);
        free(j->path);
        free(j);
}

static void hook_progress(void *userdata, pid_t pid, const HookOutput *out) {
        Agent *a = userdata;
        char *text = hook_output_text(out);

        pthread_mutex_lock(&a->lock);
        a->hook_pid = pid;
        if (text) {
                free(a->op.hook_output);
                a->op.hook_output = text;
                /* hook_run() calls this at most once a second: the output
                 * so far survives a crash, and the interrupted operation
                 * the next start reports shows it. */
                save_state(a);
        }
        pthread_mutex_unlock(&a->lock);
}

static const char *signal_name(int sig, char buf[static 16]) {
        const char *n = sigabbrev_np(sig);
        if (n)
                snprintf(buf, 16, "SIG%s", n);
        else
                snprintf(buf, 16, "signal %d", sig);
        return buf;
}

static void *hook_thread(void *p) {
        HookJob *j = p;
        Agent *a = j->agent;
        HookOutput *out = malloc(sizeof(HookOutput));
        HookResult res = {};
        char sig[16], hex[65];
        uint8_t digest[32];
        char *msg = NULL;
        int r;

        log_info("Running hook %s (%s, stage %s, timeout %us).", j->req.name, j->path, j->req.stage,
                 j->req.timeout_sec);
        HookRun run = {
                .path = j->path,
                .name = j->req.name,
                .stage = j->req.stage,
                .task = j->req.task,
                .os_version = a->os_version,
                .timeout_sec = j->req.timeout_sec,
                .kill_grace_sec = a->opt.hook_kill_grace_sec,
                .progress = hook_progress,
                .userdata = a,
                .cancel = &a->stopping,
        };
        r = out ? hook_run(&run, out, &res) : -ENOMEM;

        _cleanup_free_ char *last = r >= 0 ? hook_output_last_line(out, 512) : NULL;
        const char *sep = !isempty(last) ? ": " : "";
        if (r < 0)
                (void) asprintf(&msg, "hook %s could not be started: %s", j->req.name, strerror(-r));
        else if (res.cancelled) {
                r = -ECANCELED;
                (void) asprintf(&msg, "the agent was stopping: hook %s was killed", j->req.name);
        } else if (res.timed_out) {
                r = -ETIMEDOUT;
                (void) asprintf(&msg, "hook %s did not finish within its timeout of %u s; its process group was "
                                "sent SIGTERM%s%s%s", j->req.name, j->req.timeout_sec,
                                res.killed ? ", then SIGKILL" : "", sep, last ?: "");
        } else if (!res.exited) {
                r = -EPROTO;
                (void) asprintf(&msg, "hook %s was killed by %s%s%s", j->req.name, signal_name(res.signal, sig), sep,
                                last ?: "");
        } else if (res.exit_code != 0) {
                r = -EPROTO;
                (void) asprintf(&msg, "hook %s exited with status %d%s%s", j->req.name, res.exit_code, sep,
                                last ?: "");
        }

        /* The audit record's facts, including a digest of everything the
         * hook wrote (the operation keeps only the tail). */
        _cleanup_(json_decrefp) json_t *detail = NULL;
        if (out) {
                sha256_final(&out->sha, digest);
                sha256_hex(digest, hex);
                detail = json_pack("{s:s, s:s, s:o, s:o, s:o, s:b, s:I, s:I, s:s}", "name", j->req.name, "stage",
                                   j->req.stage, "task", json_str_or_null(j->req.task), "exit_code",
                                   res.exited ? json_integer(res.exit_code) : json_null(), "signal",
                                   res.signal ? json_string(signal_name(res.signal, sig)) : json_null(), "timed_out",
                                   res.timed_out, "duration_ms", (json_int_t) (res.duration_usec / 1000u),
                                   "output_bytes", (json_int_t) out->total, "output_sha256", hex);
        }

        pthread_mutex_lock(&a->lock);
        a->hook_pid = 0;
        a->op.have_exit_code = res.exited; /* false if it never started */
        a->op.exit_code = res.exit_code;
        if (r == -EPROTO)
                snprintf(a->op.error_code, sizeof(a->op.error_code), "hook_failed");
        else if (r == -ETIMEDOUT)
                snprintf(a->op.error_code, sizeof(a->op.error_code), "hook_timeout");
        free(a->op.audit_detail);
        a->op.audit_detail = detail ? json_dumps(detail, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        op_end(a, r < 0 ? r : 0, msg);
        a->busy = false;
        pthread_mutex_unlock(&a->lock);
        free(out);
        hook_job_free(j);
        return NULL;
}

static char *hook_dirs_text(char **dirs) {
        char *s = NULL;
        size_t n = strv_length(dirs);
        for (size_t i = 0; i < n; i++) {
                char *t = NULL;
                if (asprintf(&t, "%s%s%s", s ?: "", i == 0 ? "" : i + 1 == n ? " or " : ", ", dirs[i]) < 0) {
                        free(s);
                        return NULL;
                }
                free(s);
                s = t;
        }
        return s ?: strdup("(no hook directories)");
}

unsigned agent_post_hook(Agent *a, const char *body, size_t len, char **ret_body) {
        _cleanup_free_ char *err = NULL;
        HookJob *j = calloc(1, sizeof(HookJob));
        int r;

        if (!j)
                return agent_error(500, "internal", -ENOMEM, ret_body, "out of memory");
        j->agent = a;
        r = api_parse_hook(body, len, &j->req, &err);
        if (r < 0) {
                hook_job_free(j);
                return agent_error(r == -E2BIG ? 413 : 400, r == -E2BIG ? "too_large" : "bad_request", r, ret_body,
                                   "%s", err ?: "malformed request");
        }
        r = hook_find(a->opt.hook_dirs, j->req.name, &j->path, &err);
        if (r < 0) {
                unsigned s;
                if (r == -ENOENT) {
                        _cleanup_free_ char *dirs = hook_dirs_text(a->opt.hook_dirs);
                        s = agent_error(404, "not_found", r, ret_body, "there is no hook named %s in %s",
                                        j->req.name, dirs ?: "the hook directories");
                } else if (r == -EPERM)
                        s = agent_error(422, "hook_refused", r, ret_body, "%s", err ?: "refusing to run the hook");
                else
                        s = agent_error(500, "internal", r, ret_body, "%s", err ?: strerror(-r));
                hook_job_free(j);
                return s;
        }

        pthread_mutex_lock(&a->lock);
        if (a->busy) {
                unsigned s = busy_error(a, ret_body);
                pthread_mutex_unlock(&a->lock);
                hook_job_free(j);
                return s;
        }
        op_begin(a, "hook");
        a->op.background = true;
        snprintf(a->op.hook_name, sizeof(a->op.hook_name), "%s", j->req.name);
        snprintf(a->op.hook_stage, sizeof(a->op.hook_stage), "%s", j->req.stage);
        a->op.hook_output = strdup("");
        save_state(a); /* with the name: an interrupted hook must say which */
        r = start_worker(a, hook_thread, j);
        if (r < 0) {
                op_end(a, r, strdup("cannot start the worker thread"));
                hook_job_free(j);
        }
        unsigned s = operation_response(a, r < 0 ? 500 : 202, ret_body);
        pthread_mutex_unlock(&a->lock);
        return s;
}

/* ---- life cycle ---- */

void agent_request_reboot(Agent *a) {
        uint64_t one = 1;
        a->reboot_pending = true;
        if (a->wake_fd >= 0)
                (void) !write(a->wake_fd, &one, sizeof(one));
}

void agent_boot_tasks(Agent *a) {
        char failed[65] = "", *err = NULL;

        pthread_mutex_lock(&a->lock);
        slot_components_init(a);
        pthread_mutex_unlock(&a->lock);

        int r = update_reconcile_boot(&a->target, failed, &err);

        pthread_mutex_lock(&a->lock);
        if (r > 0) {
                /* Recorded as an operation of its own so that it shows in
                 * status and the audit log; nobody asked for it. */
                op_begin(a, "fallback");
                a->op.background = true;
                a->op.slot = slot_other(a->target.booted);
                snprintf(a->op.version, sizeof(a->op.version), "%s", failed);
                char *msg = NULL;
                (void) asprintf(&msg,
                                "slot %s (version %s) did not become healthy within its boot tries; the node fell "
                                "back to slot %s (version %s) and marked slot %s bad",
                                slot_to_string(slot_other(a->target.booted)), failed[0] ? failed : "?",
                                slot_to_string(a->target.booted), a->os_version,
                                slot_to_string(slot_other(a->target.booted)));
                snprintf(a->op.error_code, sizeof(a->op.error_code), "boot_failed");
                agent_slot_record_clear(a, slot_other(a->target.booted));
                op_end(a, -ECANCELED, msg);
        } else if (r < 0)
                log_error("Checking for a fallback failed: %s", err ?: strerror(-r));
        free(err);

        SlotInfo slots[_SLOT_MAX];
        r = update_read_slots(&a->target, slots);
        if (r >= 0 && slots[a->target.booted].status == SLOT_STATUS_GOOD)
                snprintf(a->health, sizeof(a->health), "healthy");
        else if (r >= 0 && a->opt.auto_mark_good && !a->degraded) {
                log_info("Slot %s is not confirmed yet; running the health checks.", slot_to_string(a->target.booted));
                (void) start_health(a, true);
        }
        pthread_mutex_unlock(&a->lock);
}

static int count_keys(const char *dir) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        struct dirent *de;
        int n = 0;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                size_t l = strlen(de->d_name);
                if (l > 4 && streq(de->d_name + l - 4, ".pem"))
                        n++;
        }
        return n;
}

int agent_init(Agent *a, const AgentOptions *o) {
        _cleanup_free_ char *cfg = NULL, *audit = NULL;
        _cleanup_free_ char *err = NULL;
        int r;

        a->opt = *o;
        a->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (a->wake_fd < 0)
                return log_error_errno(errno, "Failed to create an eventfd: %m");
        pthread_mutex_init(&a->lock, NULL);
        a->op.slot = -1;
        a->next_op_id = 1;
        snprintf(a->health, sizeof(a->health), "pending");

        r = mkdir_p(o->state_dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Failed to create the state directory %s: %m", o->state_dir);
        audit = path_join(o->state_dir, "audit.log");
        cfg = path_join(o->state_dir, "config.json");
        if (!audit || !cfg)
                return log_oom();
        r = audit_log_open(audit, 0, &a->audit);
        if (r < 0)
                return log_error_errno(r, "Failed to open the audit log %s: %m", audit);
        r = node_config_load(cfg, &a->config, &err);
        if (r < 0)
                return log_error_errno(r, "Failed to load the applied node config %s: %s", cfg, err ?: strerror(-r));
        load_state(a);

        /* The keys are loaded by each stage worker (the daemon itself never
         * runs OpenSSL); here only make sure there are some. */
        r = count_keys(o->keys_dir);
        if (r < 0)
                return log_error_errno(r, "Cannot read the trusted update keys in %s: %m", o->keys_dir);
        if (r == 0)
                log_warning("No trusted update keys in %s: every bundle will be refused.", o->keys_dir);
        ssize_t l = readlink("/proc/self/exe", a->self_exe, sizeof(a->self_exe) - 1);
        if (l < 0)
                return log_error_errno(errno, "Cannot find my own executable: %m");
        a->self_exe[l] = 0;

        struct utsname u;
        if (uname(&u) < 0)
                return log_error_errno(errno, "uname() failed: %m");
        snprintf(a->arch, sizeof(a->arch), "%s", u.machine);
        a->target.arch = a->arch;
        return 0;
}

void agent_done(Agent *a) {
        a->stopping = 1;
        pthread_mutex_lock(&a->lock);
        bool join = a->worker_joinable;
        if (a->worker_pid > 0)
                (void) kill(a->worker_pid, SIGKILL);
        /* The hook thread sees 'stopping' and kills the hook's group. */
        pthread_mutex_unlock(&a->lock);
        if (join)
                (void) pthread_join(a->worker, NULL);
        audit_log_free(a->audit);
        node_config_free(a->config);
        keyring_free(a->keyring);
        free(a->op.error_message);
        free(a->op.hook_output);
        free(a->op.audit_detail);
        free(a->health_message);
        components_done(&a->running_components);
        for (Slot s = 0; s < _SLOT_MAX; s++)
                slot_record_done(&a->slot_record[s]);
        free(a->esp_dir);
        free(a->slot_device[0]);
        free(a->slot_device[1]);
        safe_close(a->wake_fd);
        pthread_mutex_destroy(&a->lock);
}
