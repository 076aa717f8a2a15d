/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The hull-node state machine (docs/OPERATOR.md, "hull-node"):
 *
 *   upgrade:  Staging -> [PreDrain] -> Draining -> Rebooting -> Verifying -> Gating -> Done
 *                                                                          `-> RollingBack -> RolledBack
 *   rollback:            [PreDrain] -> Draining -> Rebooting -> Verifying -> Gating -> Done
 *   config:   apply; if it needs a reboot: [PreDrain] -> Draining -> Rebooting -> Verifying -> Gating; Done
 *
 * PreDrain runs spec.hooks.preDrain on the cordoned node; Gating waits for
 * the Node and its pods to be Ready (spec.verify) and runs
 * spec.hooks.postBoot; an upgrade that fails there goes back to its old
 * slot (RollingBack).
 *
 * Staging comes before the cordon, while the node still serves, so the
 * downtime is only the drain and the reboot. Every phase is written to the
 * OSNode status *before* the step that starts it, so a restart (a reboot is
 * one) resumes at the right place. Whatever fails, the node is uncordoned
 * when it runs a good image, which is always the case before the reboot and
 * after a fallback. */

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "node.h"
#include "oci.h"
#include "strutil.h"

void task_done(Task *t) {
        if (!t)
                return;
        free(t->id);
        free(t->os);
        free(t->version);
        free(t->image_url);
        free(t->image_sha256);
        free(t->image_key_id);
        json_decref(t->config);
        os_hooks_done(&t->hooks);
        os_verify_done(&t->verify);
        *t = (Task) {};
}

static int dup_string(json_t *o, const char *key, bool required, char **ret) {
        json_t *v = json_object_get(o, key);
        if (!v || json_is_null(v)) {
                if (required)
                        return -EINVAL;
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v))
                return -EINVAL;
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : -ENOMEM;
}

static int get_int(json_t *o, const char *key, int64_t def, int64_t *ret) {
        json_t *v = json_object_get(o, key);
        if (!v || json_is_null(v)) {
                *ret = def;
                return 0;
        }
        if (!json_is_integer(v))
                return -EINVAL;
        *ret = json_integer_value(v);
        return 0;
}

int task_parse(const char *annotation, Task *ret, char **ret_error) {
        _cleanup_(task_done) Task t = {};
        json_error_t jerr;
        json_t *j = json_loads(annotation, JSON_REJECT_DUPLICATES, &jerr);
        const char *what = NULL;
        int r;

        if (!j || !json_is_object(j)) {
                json_decref(j);
                if (ret_error)
                        (void) asprintf(ret_error, "annotation %s is not a JSON object: %s",
                                        NODE_ANNOTATION_TASK, j ? "wrong type" : jerr.text);
                return -EINVAL;
        }
        const char *op = json_string_value(json_object_get(j, "operation"));
        json_t *image = json_object_get(j, "image"), *drain = json_object_get(j, "drain");
        int64_t b;

        if ((r = dup_string(j, "id", true, &t.id)) < 0)
                what = "id";
        else if ((r = dup_string(j, "os", false, &t.os)) < 0)
                what = "os";
        else if (!op || (!streq(op, "upgrade") && !streq(op, "rollback") && !streq(op, "config")))
                what = "operation", r = -EINVAL;
        else if ((r = dup_string(j, "version", !streq(op, "config"), &t.version)) < 0)
                what = "version";
        else if ((r = dup_string(image, "url", streq(op, "upgrade"), &t.image_url)) < 0)
                what = "image.url";
        else if ((r = dup_string(image, "sha256", false, &t.image_sha256)) < 0)
                what = "image.sha256";
        else if ((r = dup_string(image, "keyId", false, &t.image_key_id)) < 0)
                what = "image.keyId";
        else if ((r = get_int(drain, "timeoutSeconds", 600, &t.drain_timeout)) < 0 || t.drain_timeout < 0)
                what = "drain.timeoutSeconds", r = -EINVAL;
        else if ((r = get_int(drain, "gracePeriodSeconds", -1, &t.grace_period)) < 0 || t.grace_period < -1)
                what = "drain.gracePeriodSeconds", r = -EINVAL;
        else if ((r = get_int(drain, "deleteEmptyDirData", 0, &b)) < 0 && !json_is_boolean(
                         json_object_get(drain, "deleteEmptyDirData")))
                what = "drain.deleteEmptyDirData";
        if (what) {
                json_decref(j);
                if (ret_error)
                        (void) asprintf(ret_error, "annotation %s: bad or missing \"%s\"", NODE_ANNOTATION_TASK,
                                        what);
                return r == -ENOMEM ? -ENOMEM : -EINVAL;
        }
        t.delete_empty_dir_data = json_is_true(json_object_get(drain, "deleteEmptyDirData"));
        t.force = json_is_true(json_object_get(drain, "force"));
        t.operation = streq(op, "upgrade") ? TASK_UPGRADE : streq(op, "rollback") ? TASK_ROLLBACK : TASK_CONFIG;
        json_t *config = json_object_get(j, "config");
        if (config && !json_is_null(config)) {
                if (!json_is_object(config) || !json_is_integer(json_object_get(config, "generation"))) {
                        json_decref(j);
                        if (ret_error)
                                (void) asprintf(ret_error, "annotation %s: \"config\" must be an object with "
                                                "an integer generation", NODE_ANNOTATION_TASK);
                        return -EINVAL;
                }
                t.config = json_incref(config);
                t.config_generation = json_integer_value(json_object_get(config, "generation"));
        } else if (t.operation == TASK_CONFIG) {
                json_decref(j);
                if (ret_error)
                        (void) asprintf(ret_error, "annotation %s: operation config without \"config\"",
                                        NODE_ANNOTATION_TASK);
                return -EINVAL;
        }
        _cleanup_free_ char *herr = NULL;
        if (os_hooks_parse(json_object_get(j, "hooks"), "hooks", &t.hooks, &herr) < 0 ||
            os_verify_parse(json_object_get(j, "verify"), "verify", &t.verify, &herr) < 0) {
                json_decref(j);
                if (ret_error)
                        (void) asprintf(ret_error, "annotation %s: %s", NODE_ANNOTATION_TASK, herr ?: "out of memory");
                return herr ? -EINVAL : -ENOMEM;
        }
        json_decref(j);
        *ret = t;
        t = (Task) {};
        return 0;
}

void agent_view_done(AgentView *v) {
        if (!v)
                return;
        free(v->version);
        free(v->boot_id);
        free(v->booted_slot);
        free(v->other_slot);
        free(v->other_state);
        free(v->other_version);
        components_done(&v->booted_components);
        components_done(&v->other_components);
        free(v->health);
        free(v->op_type);
        free(v->op_state);
        free(v->op_version);
        free(v->op_error);
        free(v->op_notice);
        free(v->op_hook_name);
        free(v->op_hook_output);
        *v = (AgentView) {};
}

static char *sdup(json_t *v) {
        return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

/* A slot's "components", checked by the same rules as everywhere else:
 * an agent that sends something else gets nothing passed on to the cluster
 * (where it could get the whole status write refused), and one warning per
 * distinct problem rather than one per pass. */
static void view_components(json_t *slot, const char *name, char **last_error, Components *ret) {
        _cleanup_free_ char *err = NULL;
        json_t *c = json_object_get(slot, "components");

        components_done(ret);
        if (!c)
                return;
        if (components_from_json(c, ret, &err) >= 0)
                return;
        if (!*last_error || !err || !streq(*last_error, err))
                log_warning("The agent reports invalid components for slot %s, ignoring them: %s", name,
                            err ?: "out of memory");
        free(*last_error);
        *last_error = TAKE_PTR(err);
}

int agent_view_fetch(AgentClient *c, AgentView *ret) {
        /* hull-node runs one reconcile loop: no lock needed. */
        static char *last_error_booted = NULL, *last_error_other = NULL;
        _cleanup_(agent_response_done) AgentResponse resp = {};
        AgentView v = {};
        int r;

        r = agent_client_call(c, "GET", "/v1/status", NULL, &resp);
        if (r < 0) {
                if (agent_client_unreachable(c)) {
                        *ret = (AgentView) { .reachable = false };
                        return 0;
                }
                return r;
        }
        if (resp.status != 200 || !json_is_object(resp.body))
                return -EPROTO;
        json_t *b = resp.body, *boot = json_object_get(b, "boot"), *slots = json_object_get(b, "slots");
        v.reachable = true;
        v.version = sdup(json_object_get(json_object_get(b, "os"), "version"));
        v.boot_id = sdup(json_object_get(boot, "boot_id"));
        v.booted_slot = sdup(json_object_get(boot, "slot"));
        const char *key;
        json_t *s;
        json_object_foreach(slots, key, s) {
                if (v.booted_slot && streq(key, v.booted_slot)) {
                        v.booted_good = json_is_true(json_object_get(s, "good"));
                        view_components(s, key, &last_error_booted, &v.booted_components);
                } else {
                        free(v.other_slot);
                        free(v.other_state);
                        free(v.other_version);
                        v.other_slot = strdup(key);
                        v.other_state = sdup(json_object_get(s, "state"));
                        v.other_version = sdup(json_object_get(s, "version"));
                        view_components(s, key, &last_error_other, &v.other_components);
                }
        }
        json_t *gen = json_object_get(json_object_get(b, "config"), "generation");
        v.config_generation = json_is_integer(gen) ? json_integer_value(gen) : 0;
        v.reboot_required = json_is_true(json_object_get(b, "reboot_required"));
        v.health = sdup(json_object_get(json_object_get(b, "health"), "state"));
        json_t *op = json_object_get(b, "operation");
        if (json_is_object(op)) {
                json_t *id = json_object_get(op, "id"), *e = json_object_get(op, "error");
                v.op_id = json_is_integer(id) ? json_integer_value(id) : 0;
                v.op_type = sdup(json_object_get(op, "type"));
                v.op_state = sdup(json_object_get(op, "state"));
                v.op_version = sdup(json_object_get(op, "version"));
                v.op_notice = sdup(json_object_get(op, "notice"));
                json_t *hook = json_object_get(op, "hook");
                v.op_hook_name = sdup(json_object_get(hook, "name"));
                v.op_hook_output = sdup(json_object_get(hook, "output"));
                json_t *tr = json_object_get(op, "transfer");
                json_int_t bundle = json_integer_value(json_object_get(tr, "bundle")),
                           fetched = json_integer_value(json_object_get(tr, "fetched"));
                if (bundle > 0 && fetched >= 0 && fetched <= bundle) {
                        v.op_bundle = (uint64_t) bundle;
                        v.op_fetched = (uint64_t) fetched;
                        v.op_full = json_is_true(json_object_get(tr, "full"));
                }
                if (json_is_object(e)) {
                        const char *code = json_string_value(json_object_get(e, "code"));
                        const char *msg = json_string_value(json_object_get(e, "message"));
                        if (asprintf(&v.op_error, "%s: %s", code ?: "error", msg ?: "(no message)") < 0)
                                v.op_error = NULL;
                }
        }
        *ret = v;
        return 0;
}

/* ---- Kubernetes side ---- */

static const char *osnode_status_str(json_t *osnode, const char *key) {
        return json_string_value(json_object_get(json_object_get(osnode, "status"), key));
}

typedef struct StatusUpdate {
        const char *phase;              /* NULL: unchanged */
        const char *task;               /* NULL: unchanged */
        const char *error;              /* non-NULL: set lastError */
        bool clear_error;
        const char *boot_id;            /* the boot before the reboot we cause */
        const char *os;
        bool restart_phase;             /* a new phaseTime even when the phase stays */
        json_t *hook;                   /* non-NULL: status.hook (the patch takes the reference) */
        bool reboot_time;               /* set status.rebootTime to now */
        const char *gate;               /* non-NULL: status.gate, what the post-boot gate waits for */
        bool clear_gate;
        bool clear_task;                /* remove status.task, status.os and status.hook (a retry) */
        json_t *retry;                  /* non-NULL: status.retry (the patch takes the reference) */
} StatusUpdate;

/* status.components and status.staged.components as merge-patch values:
 * every known key, null for a component the image does not have, so that
 * the patch also removes one the previous image had; null for none at all,
 * which removes the object. */
static json_t *components_patch(const Components *c) {
        if (components_is_empty(c))
                return json_null();
        json_t *o = json_object();
        for (Component k = 0; o && k < _COMPONENT_MAX; k++)
                if (json_object_set_new(o, component_to_string(k),
                                        c->version[k] ? json_string(c->version[k]) : json_null()) < 0) {
                        json_decref(o);
                        return NULL;
                }
        return o;
}

/* status.staged: the image waiting in the other slot to be booted (staged,
 * or activated and not booted yet); null (removed) when there is none. */
static json_t *staged_patch(const AgentView *a) {
        if (!a->other_slot || !a->other_version || !a->other_state ||
            !(streq(a->other_state, "staged") || streq(a->other_state, "trying")))
                return json_null();
        return json_pack("{s:s, s:s, s:o*}", "slot", a->other_slot, "version", a->other_version, "components",
                         components_patch(&a->other_components));
}

/* Whether applying the merge patch (RFC 7386) to cur would change it. */
static bool merge_patch_changes(json_t *cur, json_t *patch) {
        const char *k;
        json_t *v;

        if (!json_is_object(patch))
                return !json_equal(cur, patch);
        if (!json_is_object(cur))
                return true;
        json_object_foreach(patch, k, v) {
                json_t *old = json_object_get(cur, k);
                if (json_is_null(v) ? old != NULL : !old || merge_patch_changes(old, v))
                        return true;
        }
        return false;
}

static int osnode_write(NodeCtx *ctx, json_t *osnode, const AgentView *a, const StatusUpdate *u) {
        _cleanup_free_ char *path = NULL, *err = NULL;
        char now[32];
        json_t *status = json_object();
        int r;

        if (!status) {
                json_decref(u->hook);
                json_decref(u->retry);
                return -ENOMEM;
        }
        kube_format_time(ctx->now, now);
        if (u->phase) {
                json_object_set_new(status, "phase", json_string(u->phase));
                const char *old = osnode_status_str(osnode, "phase");
                if (!old || !streq(old, u->phase) || u->restart_phase)
                        json_object_set_new(status, "phaseTime", json_string(now));
        }
        if (u->task)
                json_object_set_new(status, "task", json_string(u->task));
        else if (u->clear_task) {
                json_object_set_new(status, "task", json_null());
                json_object_set_new(status, "os", json_null());
                json_object_set_new(status, "hook", json_null());
        }
        if (u->retry)
                json_object_set_new(status, "retry", u->retry);
        if (u->os)
                json_object_set_new(status, "os", json_string(u->os));
        if (u->boot_id)
                json_object_set_new(status, "rebootFrom", json_string(u->boot_id));
        if (u->reboot_time)
                json_object_set_new(status, "rebootTime", json_string(now));
        if (u->hook)
                json_object_set_new(status, "hook", u->hook);
        if (u->gate)
                json_object_set_new(status, "gate", json_string(u->gate));
        else if (u->clear_gate)
                json_object_set_new(status, "gate", json_null());
        if (u->error) {
                /* The CRD caps the message (a drain can list many pods):
                 * cut it rather than have the whole status refused. */
                _cleanup_free_ char *msg = NULL;
                size_t l = strlen(u->error);
                if (l > OSNODE_ERROR_MAX) {
                        l = OSNODE_ERROR_MAX;
                        while (l > 0 && ((unsigned char) u->error[l] & 0xc0) == 0x80)
                                l--;    /* not inside a UTF-8 sequence */
                        if (asprintf(&msg, "%.*s...", (int) l, u->error) < 0)
                                msg = NULL;
                }
                json_object_set_new(status, "lastError",
                                    json_pack("{s:s, s:s}", "message", msg ?: u->error, "time", now));
        }
        else if (u->clear_error)
                json_object_set_new(status, "lastError", json_null());
        if (a && a->reachable) {
                if (a->version)
                        json_object_set_new(status, "version", json_string(a->version));
                if (a->booted_slot)
                        json_object_set_new(status, "slot", json_string(a->booted_slot));
                if (a->boot_id)
                        json_object_set_new(status, "bootId", json_string(a->boot_id));
                json_object_set_new(status, "configGeneration", json_integer(a->config_generation));
                json_t *comp = components_patch(&a->booted_components), *staged = staged_patch(a);
                if (!comp || !staged) {
                        json_decref(comp);
                        json_decref(staged);
                        json_decref(status);
                        return -ENOMEM;
                }
                json_object_set_new(status, "components", comp);
                json_object_set_new(status, "staged", staged);
        }
        /* Skip a write that changes nothing: status reports happen on every
         * pass, and 5,000 nodes writing unchanged status is load for no
         * information. */
        json_t *cur = json_object_get(osnode, "status");
        bool changed = !cur || u->restart_phase;
        const char *k;
        json_t *v;
        json_object_foreach(status, k, v) {
                if (streq(k, "phaseTime"))
                        continue;
                json_t *old = json_object_get(cur, k);
                if (json_is_null(v) ? (old && !json_is_null(old)) : merge_patch_changes(old, v))
                        changed = true;
        }
        if (!changed) {
                json_decref(status);
                return 0;
        }
        json_object_set_new(status, "updatedTime", json_string(now));
        json_t *patch = json_pack("{s:o}", "status", status);
        if (!patch)
                return -ENOMEM;
        if (asprintf(&path, "%s/%s/status", OSNODE_PATH, ctx->node_name) < 0) {
                json_decref(patch);
                return -ENOMEM;
        }
        json_t *written = NULL;
        r = kube_merge_patch(ctx->kube, path, patch, &written, &err);
        json_decref(patch);
        if (r < 0)
                return log_warning_errno(r, "Failed to update OSNode '%s' status: %s", ctx->node_name,
                                         err ?: "(no message)");
        /* The next pass may come before the watch brings this write back;
         * acting on the older phase would repeat a step (activate twice,
         * or record the new boot's ID as the one to leave). hull-node is
         * the only writer of this status, so what it wrote last is the
         * truth until the cache shows the same resourceVersion. */
        json_decref(ctx->osnode_mine);
        ctx->osnode_mine = written;
        return 0;
}

int node_ensure_osnode(NodeCtx *ctx) {
        _cleanup_free_ char *path = NULL, *err = NULL;
        json_t *obj = NULL;
        int r;

        if (asprintf(&path, "%s/%s", OSNODE_PATH, ctx->node_name) < 0)
                return -ENOMEM;
        r = kube_get(ctx->kube, path, &obj, &err);
        json_decref(obj);
        if (r != -ENOENT)
                return r < 0 ? log_error_errno(r, "Failed to read OSNode '%s': %s", ctx->node_name,
                                               err ?: "(no message)") : 0;
        free(err);
        err = NULL;
        json_t *n = json_pack("{s:s, s:s, s:{s:s}, s:{}}", "apiVersion", "hull.dev/v1alpha1", "kind", "OSNode",
                              "metadata", "name", ctx->node_name, "spec");
        if (!n)
                return -ENOMEM;
        r = kube_create(ctx->kube, OSNODE_PATH, n, NULL, &err);
        json_decref(n);
        if (r < 0 && r != -EEXIST)
                return log_error_errno(r, "Failed to create OSNode '%s': %s", ctx->node_name,
                                       err ?: "(no message)");
        log_info("Created OSNode '%s'", ctx->node_name);
        return 0;
}

static void node_event(NodeCtx *ctx, json_t *node, const char *type, const char *reason, const char *fmt, ...)
        _printf_(5, 6);
static void node_event(NodeCtx *ctx, json_t *node, const char *type, const char *reason, const char *fmt, ...) {
        _cleanup_free_ char *note = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&note, fmt, ap) < 0)
                note = NULL;
        va_end(ap);
        log_full(streq(type, "Warning") ? LOG_WARNING : LOG_INFO, "%s: %s", reason, note ?: "");
        json_t *ref = json_pack("{s:s, s:s, s:{s:s, s:s*}}", "apiVersion", "v1", "kind", "Node", "metadata", "name",
                                ctx->node_name, "uid",
                                json_string_value(json_object_get(json_object_get(node, "metadata"), "uid")));
        if (!ref)
                return;
        (void) kube_event(ctx->kube, ref, type, reason, reason, "hull.dev/hull-node", ctx->identity,
                          note ?: reason);
        json_decref(ref);
}

/* "Staged": with what the download cost when the agent says so, so that
 * a rollout's events show whether nodes got deltas or whole bundles, and
 * with the agent's notice (a server that ignores Range) as a Warning. */
static void stage_event(NodeCtx *ctx, json_t *node, const AgentView *a, const Task *t) {
        char f[32], b[32];
        bool ours = a->op_type && streq(a->op_type, "stage") && a->op_version && streq(a->op_version, t->version);

        if (ours && a->op_bundle > 0)
                node_event(ctx, node, "Normal", "Staged", "%s staged into slot %s: downloaded %s of %s (%s)", t->version,
                           a->other_slot ?: "?", format_bytes(f, sizeof(f), a->op_fetched),
                           format_bytes(b, sizeof(b), a->op_bundle), a->op_full ? "the whole bundle" : "a delta");
        else
                node_event(ctx, node, "Normal", "Staged", "%s staged into slot %s", t->version, a->other_slot ?: "?");
        if (ours && a->op_notice)
                node_event(ctx, node, "Warning", "StageNotice", "%s", a->op_notice);
}

/* Cordon only if nobody else has; remember that we did, so that only our
 * own cordon is ever lifted. */
static int node_cordon(NodeCtx *ctx, json_t *node) {
        _cleanup_free_ char *path = NULL, *err = NULL;
        int r;

        if (kube_annotation(node, NODE_ANNOTATION_CORDONED))
                return 0;
        if (json_is_true(json_object_get(json_object_get(node, "spec"), "unschedulable")))
                return 0;
        if (asprintf(&path, "/api/v1/nodes/%s", ctx->node_name) < 0)
                return -ENOMEM;
        json_t *patch = json_pack("{s:{s:b}, s:{s:{s:s}}}", "spec", "unschedulable", 1, "metadata",
                                  "annotations", NODE_ANNOTATION_CORDONED, "true");
        if (!patch)
                return -ENOMEM;
        r = kube_merge_patch(ctx->kube, path, patch, NULL, &err);
        json_decref(patch);
        if (r < 0)
                return log_warning_errno(r, "Failed to cordon node '%s': %s", ctx->node_name, err ?: "");
        node_event(ctx, node, "Normal", "Cordoned", "cordoned for the OS update");
        return 0;
}

/* Lift our cordon (if any) and, if asked, drop the task annotation, in one
 * patch so that the operator never sees a finished node still cordoned. */
static int node_release(NodeCtx *ctx, json_t *node, bool clear_task) {
        _cleanup_free_ char *path = NULL, *err = NULL;
        bool ours = kube_annotation(node, NODE_ANNOTATION_CORDONED) != NULL;
        int r;

        if (!ours && !(clear_task && kube_annotation(node, NODE_ANNOTATION_TASK)))
                return 0;
        if (asprintf(&path, "/api/v1/nodes/%s", ctx->node_name) < 0)
                return -ENOMEM;
        json_t *annotations = json_object();
        json_t *patch = json_pack("{s:{s:o}}", "metadata", "annotations", annotations);
        if (!patch)
                return -ENOMEM;
        if (ours) {
                json_object_set_new(annotations, NODE_ANNOTATION_CORDONED, json_null());
                json_object_set_new(patch, "spec", json_pack("{s:n}", "unschedulable"));
        }
        if (clear_task)
                json_object_set_new(annotations, NODE_ANNOTATION_TASK, json_null());
        r = kube_merge_patch(ctx->kube, path, patch, NULL, &err);
        json_decref(patch);
        if (r < 0)
                return log_warning_errno(r, "Failed to uncordon node '%s': %s", ctx->node_name, err ?: "");
        if (ours)
                node_event(ctx, node, "Normal", "Uncordoned", "uncordoned");
        return 0;
}

static int agent_post(NodeCtx *ctx, const char *path, json_t *body, long *ret_status, char **ret_error) {
        _cleanup_(agent_response_done) AgentResponse resp = {};
        int r = agent_client_call(ctx->agent, "POST", path, body, &resp);
        if (r < 0) {
                if (ret_error)
                        *ret_error = strdup(agent_client_error(ctx->agent) ?: strerror(-r));
                return r;
        }
        *ret_status = resp.status;
        if (resp.status >= 300 && ret_error) {
                const char *code = NULL, *msg = NULL;
                agent_response_error(&resp, &code, &msg);
                if (asprintf(ret_error, "%s %s: %s: %s", "agent", path, code ?: "error", msg ?: "(no message)") < 0)
                        *ret_error = NULL;
        }
        if (resp.status >= 300) {
                const char *code = NULL;
                agent_response_error(&resp, &code, NULL);
                return code && streq(code, "busy") ? -EBUSY : code && streq(code, "conflict") ? -ESTALE : -EIO;
        }
        return 0;
}

static int fail_task(NodeCtx *ctx, json_t *node, json_t *osnode, const AgentView *a, const Task *t,
                     const char *phase, const char *message) {
        /* The node runs a good image at every point a failure can be seen
         * (before the reboot, or after GRUB fell back), so lifting our cordon
         * is safe; the task annotation stays so the operator counts the
         * failure against the budget. The phase is written first: a crash
         * in between leaves Failed and our cordon, which the next start
         * lifts, never a working phase on an uncordoned node. */
        StatusUpdate u = { .phase = phase, .task = t->id, .error = message, .os = t->os };
        int r = osnode_write(ctx, osnode, a, &u);
        if (r < 0)
                return r;
        node_event(ctx, node, "Warning", streq(phase, "RolledBack") ? "RolledBack" : "UpdateFailed",
                   "task %s: %s", t->id, message);
        return node_release(ctx, node, false);
}

static int set_phase(NodeCtx *ctx, json_t *osnode, const AgentView *a, const Task *t, const char *phase,
                     const char *boot_id) {
        StatusUpdate u = { .phase = phase, .task = t->id, .boot_id = boot_id, .os = t->os, .clear_error = true,
                           .clear_gate = true, .reboot_time = boot_id != NULL };
        return osnode_write(ctx, osnode, a, &u);
}

static bool target_reached(const Task *t, const AgentView *a) {
        bool version_ok = t->operation == TASK_CONFIG || (a->version && t->version && streq(a->version, t->version));
        bool config_ok = !t->config || a->config_generation >= t->config_generation;
        return version_ok && config_ok && a->booted_good;
}

static int step_done(NodeCtx *ctx, json_t *node, json_t *osnode, const AgentView *a, const Task *t) {
        /* Uncordon and drop the task first, then say Done: the operator
         * counts a node as finished (and may close its batch) only once it
         * serves again. A crash in between leaves a working phase without a
         * task, which the next start turns into Idle (node_reconcile()). */
        int r = node_release(ctx, node, true);
        if (r < 0)
                return r;
        node_event(ctx, node, "Normal", "Updated", "task %s done: running %s, config generation %" PRIi64,
                   t->id, a->version ?: "?", a->config_generation);
        return set_phase(ctx, osnode, a, t, "Done", NULL);
}

static int start_drain(NodeCtx *ctx, json_t *node, json_t *osnode, const AgentView *a, const Task *t) {
        int r = node_cordon(ctx, node);
        if (r < 0)
                return r;
        ctx->drain = drain_state_free(ctx->drain);
        /* Cordoned first, so that nothing new lands while the hooks run
         * (e.g. storage set to noout); a failing hook lifts it again. */
        return set_phase(ctx, osnode, a, t, t->hooks.n_pre_drain > 0 ? "PreDrain" : "Draining", NULL);
}

/* Apply the task's node config, if it has one the host does not. Returns 1
 * when applied (or nothing to do), 0 to come back later (agent busy), < 0
 * on a refusal. */
static int apply_config(NodeCtx *ctx, const Task *t, const AgentView *a, char **ret_error) {
        long status = 0;
        if (!t->config || a->config_generation >= t->config_generation)
                return 1;
        int r = agent_post(ctx, "/v1/config", t->config, &status, ret_error);
        if (r == -EBUSY) {
                free(*ret_error);
                *ret_error = NULL;
                return 0;
        }
        return r < 0 ? r : 1;
}

static int64_t osnode_phase_time(json_t *osnode, int64_t def) {
        int64_t t;
        const char *s = osnode_status_str(osnode, "phaseTime");
        return s && kube_parse_time(s, &t) >= 0 ? t : def;
}

/* What makes the agent reboot for this task. */
static const char *reboot_request(const Task *t) {
        return t->operation == TASK_UPGRADE ? "/v1/activate" : t->operation == TASK_ROLLBACK ? "/v1/rollback"
                                                                                               : "/v1/reboot";
}

/* How long after the first request a node still up on the same boot is
 * asked again when the agent does not even know a reboot is due (the request
 * never reached it, it was busy, or it restarted). */
#define REBOOT_UNSEEN_SEC 30

/* Still up on the boot before the reboot, long after asking for it: the
 * request may never have reached the agent (it was restarting: taken as
 * "going down"; or busy), or the reboot it started was lost. Waiting on is
 * waiting for good, with the node drained, so ask again: a plain reboot when
 * the agent says one is due (the boot target is set), else the original
 * request; if that finds the slot change already made (409), a plain reboot.
 * A reboot can do no harm here: the node is drained, and Verifying checks
 * what came up. */
static int reboot_again(NodeCtx *ctx, json_t *node, json_t *osnode, const AgentView *a, const Task *t) {
        _cleanup_free_ char *err = NULL;
        long status = 0;

        if (ctx->reboot_retry == 0)
                return 0;
        unsigned wait = a->reboot_required ? ctx->reboot_retry : MIN(ctx->reboot_retry, (unsigned) REBOOT_UNSEEN_SEC);
        if (ctx->now < osnode_phase_time(osnode, ctx->now) + wait)
                return 0;
        if (a->op_state && streq(a->op_state, "running"))
                return 0;
        const char *path = a->reboot_required ? "/v1/reboot" : reboot_request(t);
        log_warning("Still running boot %s %u s after asking for the reboot; asking again (%s)", a->boot_id, wait,
                    path);
        node_event(ctx, node, "Warning", "RebootRetry", "still up %u s after asking for the reboot; asking again (%s)",
                   wait, path);
        /* A fresh phase time first: the next try is a full wait from now. */
        int r = osnode_write(ctx, osnode, a,
                             &(StatusUpdate) { .phase = "Rebooting", .task = t->id, .boot_id = a->boot_id,
                                               .os = t->os, .clear_error = true, .restart_phase = true });
        if (r < 0)
                return r;
        r = agent_post(ctx, path, NULL, &status, &err);
        if (r == -ESTALE && !streq(path, "/v1/reboot")) {
                log_info("The agent says %s; rebooting into what the boot loader has", err ?: "conflict");
                err = mfree(err);
                r = agent_post(ctx, "/v1/reboot", NULL, &status, &err);
        }
        if (r < 0 && r != -EBUSY && !agent_client_unreachable(ctx->agent))
                return fail_task(ctx, node, osnode, a, t, "Failed", err ?: "the agent refused the reboot");
        return 0;
}

/* ---- hooks (spec.hooks) ----
 *
 * status.hook is the hook this task ran last: {task, stage, index, hook,
 * state, startTime, finishTime, operation, output}. Hooks of a stage run
 * one after the other; index says how far the stage got, so a restarted
 * hull-node goes on with the next one and polls, never starts again, one
 * that is running. */

#define HOOK_OUTPUT_MAX 4096

static json_t *osnode_hook(json_t *osnode, const Task *t, const char *stage) {
        json_t *h = json_object_get(json_object_get(osnode, "status"), "hook");
        const char *task = json_string_value(json_object_get(h, "task"));
        const char *st = json_string_value(json_object_get(h, "stage"));
        return task && st && streq(task, t->id) && streq(st, stage) ? h : NULL;
}

static json_t *hook_record(const Task *t, const char *stage, size_t index, const OsHook *h, const char *state,
                           const char *start, const char *finish, int64_t op, const char *output) {
        _cleanup_free_ char *desc = os_hook_describe(h);
        _cleanup_free_ char *out = NULL;
        if (!desc)
                return NULL;
        if (output && strlen(output) > HOOK_OUTPUT_MAX) {
                /* The tail says why it failed; keep it, whole UTF-8 sequences only. */
                const char *p = output + strlen(output) - HOOK_OUTPUT_MAX;
                while (((unsigned char) *p & 0xc0) == 0x80)
                        p++;
                if (asprintf(&out, "...%s", p) < 0)
                        return NULL;
        }
        return json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s*, s:I, s:s*}", "task", t->id, "stage", stage, "index",
                         (json_int_t) index, "hook", desc, "state", state, "startTime", start, "finishTime", finish,
                         "operation", (json_int_t) MAX(op, (int64_t) 0), "output", out ?: output);
}

/* Whether the Node has the label or annotation the hook waits for. */
static bool node_has(json_t *node, const OsHook *h) {
        json_t *map = json_object_get(json_object_get(node, "metadata"),
                                      h->kind == OS_HOOK_WAIT_LABEL ? "labels" : "annotations");
        const char *v = json_string_value(json_object_get(map, h->name));
        return v && (!h->value || streq(v, h->value));
}

/* One step of the hooks of a stage ("preDrain", "postBoot"). 1: all done;
 * 0: come back; -EIO with *ret_error: a hook failed (the caller fails or
 * rolls back the task). */
static int hooks_step(NodeCtx *ctx, json_t *node, json_t *osnode, const AgentView *a, const Task *t,
                      const char *stage, const OsHook *list, size_t n, char **ret_error) {
        json_t *cur = osnode_hook(osnode, t, stage);
        const char *state = json_string_value(json_object_get(cur, "state"));
        json_int_t index = cur ? json_integer_value(json_object_get(cur, "index")) : -1;
        char now[32];
        int r;

        kube_format_time(ctx->now, now);
        if (cur && (index < 0 || (size_t) index >= n))
                return 1;       /* the spec changed under a running task: nothing more to run */
        if (cur && state && streq(state, "Running")) {
                const OsHook *h = &list[index];
                const char *start = json_string_value(json_object_get(cur, "startTime"));
                int64_t started = ctx->now, op = json_integer_value(json_object_get(cur, "operation"));
                _cleanup_free_ char *desc = os_hook_describe(h);
                if (!desc)
                        return -ENOMEM;
                if (start)
                        (void) kube_parse_time(start, &started);
                if (h->kind != OS_HOOK_EXEC) {
                        if (node_has(node, h)) {
                                node_event(ctx, node, "Normal", "HookSucceeded", "%s hook %s: the node has it", stage,
                                           desc);
                                return osnode_write(ctx, osnode, a, &(StatusUpdate) {
                                        .hook = hook_record(t, stage, index, h, "Succeeded", start ?: now, now, 0, NULL) });
                        }
                        if (ctx->now < started + h->timeout_seconds)
                                return 0;
                        if (asprintf(ret_error, "%s hook %s: timed out after %" PRIi64 " s", stage, desc,
                                     h->timeout_seconds) < 0)
                                return -ENOMEM;
                        (void) osnode_write(ctx, osnode, a, &(StatusUpdate) {
                                .hook = hook_record(t, stage, index, h, "Failed", start ?: now, now, 0, NULL) });
                        return -EIO;
                }
                if (!a->reachable)
                        return 0;
                bool ours = a->op_id == op && a->op_type && streq(a->op_type, "hook");
                if (ours && a->op_state && streq(a->op_state, "running")) {
                        /* The agent enforces the timeout; this is for an
                         * agent that never answers the operation's end. */
                        if (ctx->now < started + h->timeout_seconds + 60)
                                return 0;
                } else if (ours && a->op_state && streq(a->op_state, "succeeded")) {
                        node_event(ctx, node, "Normal", "HookSucceeded", "%s hook %s succeeded", stage, desc);
                        return osnode_write(ctx, osnode, a, &(StatusUpdate) {
                                .hook = hook_record(t, stage, index, h, "Succeeded", start ?: now, now, op,
                                                    a->op_hook_output) });
                }
                if (asprintf(ret_error, "%s hook %s failed: %s%s%s", stage, desc,
                             ours ? a->op_error ?: "failed" : "the agent no longer knows the operation (it restarted?)",
                             ours && a->op_hook_output && *a->op_hook_output ? "; output: " : "",
                             ours && a->op_hook_output ? a->op_hook_output : "") < 0)
                        return -ENOMEM;
                (void) osnode_write(ctx, osnode, a, &(StatusUpdate) {
                        .hook = hook_record(t, stage, index, h, "Failed", start ?: now, now, op,
                                            ours ? a->op_hook_output : NULL) });
                return -EIO;
        }
        if (cur && state && !streq(state, "Succeeded"))
                return -EIO;    /* Failed: the caller acted on it already, or is about to */

        size_t next = cur ? (size_t) index + 1 : 0;
        if (next >= n)
                return 1;
        const OsHook *h = &list[next];
        _cleanup_free_ char *desc = os_hook_describe(h);
        if (!desc)
                return -ENOMEM;
        int64_t op = 0;
        if (h->kind == OS_HOOK_EXEC) {
                _cleanup_(agent_response_done) AgentResponse resp = {};
                if (!a->reachable)
                        return 0;
                json_t *body = json_pack("{s:s, s:s, s:I, s:s}", "name", h->name, "stage",
                                         streq(stage, "preDrain") ? "pre-drain" : "post-boot", "timeout_seconds",
                                         (json_int_t) h->timeout_seconds, "task", t->id);
                if (!body)
                        return -ENOMEM;
                r = agent_client_call(ctx->agent, "POST", "/v1/hook", body, &resp);
                json_decref(body);
                if (r < 0)
                        return 0;       /* unreachable: come back */
                if (resp.status >= 300) {
                        const char *code = NULL, *msg = NULL;
                        agent_response_error(&resp, &code, &msg);
                        if (code && streq(code, "busy"))
                                return 0;
                        if (asprintf(ret_error, "%s hook %s: the agent refused it: %s: %s", stage, desc,
                                     code ?: "error", msg ?: "(no message)") < 0)
                                return -ENOMEM;
                        (void) osnode_write(ctx, osnode, a, &(StatusUpdate) {
                                .hook = hook_record(t, stage, next, h, "Failed", now, now, 0, NULL) });
                        return -EIO;
                }
                json_t *id = json_object_get(resp.body, "id");
                if (!json_is_integer(id))
                        id = json_object_get(json_object_get(resp.body, "operation"), "id");
                op = json_is_integer(id) ? json_integer_value(id) : 0;
        }
        node_event(ctx, node, "Normal", "Hook", "%s hook %zu/%zu: %s (timeout %" PRIi64 " s)", stage, next + 1, n,
                   desc, h->timeout_seconds);
        r = osnode_write(ctx, osnode, a, &(StatusUpdate) {
                .hook = hook_record(t, stage, next, h, "Running", now, NULL, op, NULL) });
        return r < 0 ? r : 0;
}

/* ---- the post-boot gate (spec.verify) ---- */

/* A boot ID as the agent gives it (32 hex digits) or the kubelet reports
 * it in nodeInfo.bootID (a UUID with dashes): compared without dashes. */
static bool boot_id_equal(const char *a, const char *b) {
        for (;; a++, b++) {
                while (*a == '-')
                        a++;
                while (*b == '-')
                        b++;
                if (tolower((unsigned char) *a) != tolower((unsigned char) *b))
                        return false;
                if (!*a)
                        return true;
        }
}

static int64_t time_field(json_t *o, const char *key) {
        int64_t t;
        const char *s = json_string_value(json_object_get(o, key));
        return s && kube_parse_time(s, &t) >= 0 ? t : -1;
}

/* The Node is Ready as reported by the kubelet of this boot: its
 * nodeInfo.bootID is the agent's, or (a kubelet that reports none) its
 * heartbeat is newer than the reboot. A Ready condition left over from
 * before the reboot does not count. */
static bool node_ready_now(json_t *node, const AgentView *a, int64_t since, char **why) {
        json_t *c = kube_condition(node, "Ready");
        const char *st = json_string_value(json_object_get(c, "status"));
        const char *boot = json_string_value(json_object_get(json_object_get(json_object_get(node, "status"),
                                                                             "nodeInfo"), "bootID"));
        if (boot && a->boot_id && !boot_id_equal(boot, a->boot_id))
                return asprintf(why, "the kubelet has not reported since the reboot (Node bootID %s)", boot), false;
        if (!boot && time_field(c, "lastHeartbeatTime") < since)
                return asprintf(why, "the kubelet has not reported since the reboot"), false;
        if (!st || !streq(st, "True"))
                return asprintf(why, "Node not Ready (%s: %s)", json_string_value(json_object_get(c, "reason")) ?: "no reason",
                                json_string_value(json_object_get(c, "message")) ?: ""), false;
        return true;
}

typedef struct PodCheck {
        const char *selector;   /* NULL: DaemonSet pods */
        int64_t since;
        size_t total, ready;
        char *not_ready;        /* "ns/name (reason), ..." */
} PodCheck;

static bool owned_by_daemonset(json_t *pod) {
        size_t i;
        json_t *o;
        json_array_foreach(json_object_get(json_object_get(pod, "metadata"), "ownerReferences"), i, o) {
                const char *k = json_string_value(json_object_get(o, "kind"));
                if (json_is_true(json_object_get(o, "controller")) && k && streq(k, "DaemonSet"))
                        return true;
        }
        return false;
}

static int check_pod(json_t *pod, void *userdata) {
        PodCheck *pc = userdata;
        json_t *meta = json_object_get(pod, "metadata");
        const char *phase = json_string_value(json_object_get(json_object_get(pod, "status"), "phase"));

        if (json_object_get(meta, "deletionTimestamp") || (phase && (streq(phase, "Succeeded") || streq(phase, "Failed"))))
                return 0;       /* going away, or done: not what runs here now */
        if (!pc->selector && !owned_by_daemonset(pod))
                return 0;
        pc->total++;
        json_t *c = kube_condition(pod, "Ready");
        const char *st = json_string_value(json_object_get(c, "status"));
        /* Ready before the reboot and not yet updated by the kubelet of
         * this boot is not Ready. */
        if (st && streq(st, "True") && time_field(c, "lastTransitionTime") >= pc->since) {
                pc->ready++;
                return 0;
        }
        if (pc->not_ready && strlen(pc->not_ready) > 512)
                return 0;
        _cleanup_free_ char *item = NULL;
        if (asprintf(&item, "%s%s/%s (%s)", pc->not_ready ? ", " : "",
                     json_string_value(json_object_get(meta, "namespace")) ?: "?",
                     json_string_value(json_object_get(meta, "name")) ?: "?",
                     st && streq(st, "True") ? "Ready since before the reboot"
                                             : json_string_value(json_object_get(c, "reason")) ?: phase ?: "not Ready") < 0)
                return -ENOMEM;
        char *n = NULL;
        if (asprintf(&n, "%s%s", pc->not_ready ?: "", item) < 0)
                return -ENOMEM;
        free(pc->not_ready);
        pc->not_ready = n;
        return 0;
}

static void reset_pod_check(void *userdata) {
        PodCheck *pc = userdata;
        pc->total = pc->ready = 0;
        pc->not_ready = mfree(pc->not_ready);
}

/* 1: the gate holds (Node and pods Ready); 0: not yet, *why says what is
 * missing; < 0: the check itself failed (API error: come back). */
static int gate_check(NodeCtx *ctx, json_t *node, const AgentView *a, const Task *t, int64_t since, char **why) {
        _cleanup_free_ char *fs = NULL, *err = NULL;
        PodCheck pc = { .selector = t->verify.pod_selector, .since = since };
        int r;

        if (!node_ready_now(node, a, since, why))
                return 0;
        if (asprintf(&fs, "spec.nodeName=%s", ctx->node_name) < 0)
                return -ENOMEM;
        KubeListOptions o = { .field_selector = fs, .label_selector = pc.selector };
        r = kube_list(ctx->kube, "/api/v1/pods", &o, check_pod, reset_pod_check, &pc, NULL, &err);
        if (r < 0) {
                free(pc.not_ready);
                return log_warning_errno(r, "Failed to list the pods on node '%s': %s", ctx->node_name, err ?: "");
        }
        if (pc.ready < pc.total) {
                r = asprintf(why, "%zu of %zu %s Ready: not Ready: %s", pc.ready, pc.total,
                             pc.selector ? "selected pods" : "DaemonSet pods", pc.not_ready ?: "?");
                free(pc.not_ready);
                return r < 0 ? -ENOMEM : 0;
        }
        free(pc.not_ready);
        return 1;
}

/* The gate failed (or a post-boot hook): an upgrade goes back to the slot
 * it came from, which is still good, through the agent's rollback and a
 * reboot; the reason stays in lastError until RolledBack. Other tasks have
 * nothing to go back to: Failed. */
static int gate_failed(NodeCtx *ctx, json_t *node, json_t *osnode, const AgentView *a, const Task *t,
                       const char *reason) {
        _cleanup_free_ char *err = NULL, *msg = NULL;
        long status = 0;
        int r;

        if (t->operation != TASK_UPGRADE)
                return fail_task(ctx, node, osnode, a, t, "Failed", reason);
        if (asprintf(&msg, "post-boot gate failed on %s: %s", t->version, reason) < 0)
                return -ENOMEM;
        node_event(ctx, node, "Warning", "GateFailed", "%s; rolling back", msg);
        r = osnode_write(ctx, osnode, a, &(StatusUpdate) { .phase = "RollingBack", .task = t->id, .os = t->os,
                                                           .error = msg, .boot_id = a->boot_id, .reboot_time = true });
        if (r < 0)
                return r;
        r = agent_post(ctx, "/v1/rollback", NULL, &status, &err);
        if (r == -EBUSY || (r < 0 && agent_client_unreachable(ctx->agent)))
                return 0;       /* RollingBack asks again */
        if (r < 0) {
                _cleanup_free_ char *m = NULL;
                if (asprintf(&m, "%s; cannot roll back: %s", msg, err ?: "the agent refused") < 0)
                        return -ENOMEM;
                return fail_task(ctx, node, osnode, a, t, "Failed", m);
        }
        return 0;
}

/* A person's retry (hullctl cluster retry), asked through OSNode
 * spec.retry: {task, requestedAt}. Each request is answered once, in
 * status.retry with the same requestedAt. Only a node whose last task is
 * that one and ended Failed or RolledBack is reset: the task annotation
 * goes first, then the status becomes Idle without a task, so that the
 * operator counts the node as pending and gives it the task again when
 * the rollout's limits allow, never this node on its own. A crash in
 * between leaves the annotation gone and the status still Failed: the
 * next pass finishes the reset. Returns 1 when it wrote something (the
 * pass ends there), 0 when there was nothing to answer. */
static int node_retry(NodeCtx *ctx, json_t *node, json_t *spec_src, json_t *osnode, const AgentView *a) {
        json_t *req = json_object_get(json_object_get(spec_src, "spec"), "retry");
        const char *task = json_string_value(json_object_get(req, "task"));
        const char *at = json_string_value(json_object_get(req, "requestedAt"));
        json_t *answered = json_object_get(json_object_get(osnode, "status"), "retry");
        const char *answered_at = json_string_value(json_object_get(answered, "requestedAt"));
        const char *cur = osnode_status_str(osnode, "task"), *phase = osnode_status_str(osnode, "phase");
        const char *error = json_string_value(json_object_get(json_object_get(json_object_get(osnode, "status"),
                                                                               "lastError"), "message"));
        _cleanup_free_ char *message = NULL;
        char now[32];
        int r;

        if (!task || !at || (answered_at && streq(answered_at, at)))
                return 0;
        kube_format_time(ctx->now, now);
        bool failed = cur && streq(cur, task) && phase && (streq(phase, "Failed") || streq(phase, "RolledBack"));
        if (!failed) {
                if (asprintf(&message, "not retried: the node did not fail task %s (its last task is %s, phase %s)",
                             task, cur ?: "none", phase ?: "none") < 0)
                        return -ENOMEM;
                StatusUpdate u = { .retry = json_pack("{s:s, s:s, s:s, s:s, s:s}", "task", task, "requestedAt", at,
                                                      "result", "Refused", "message", message, "time", now) };
                if (!u.retry)
                        return -ENOMEM;
                node_event(ctx, node, "Warning", "RetryRefused", "%s", message);
                r = osnode_write(ctx, osnode, a, &u);
                return r < 0 ? r : 1;
        }

        const char *ann = kube_annotation(node, NODE_ANNOTATION_TASK);
        if (ann) {
                _cleanup_(task_done) Task t = {};
                _cleanup_free_ char *perr = NULL;
                /* Only the failed task's annotation: one for a newer task is
                 * the operator's, and that task has not run yet. */
                if (task_parse(ann, &t, &perr) < 0 || streq(t.id, task)) {
                        r = node_release(ctx, node, true);
                        if (r < 0)
                                return r;
                }
        }
        if (asprintf(&message, "task %s (%s) reset for a retry; the operator gives it again when the rollout allows",
                     task, phase) < 0)
                return -ENOMEM;
        StatusUpdate u = { .phase = "Idle", .clear_task = true, .clear_error = true, .clear_gate = true,
                           .retry = json_pack("{s:s, s:s, s:s, s:s, s:s}", "task", task, "requestedAt", at,
                                              "result", "Reset", "message", message, "time", now) };
        if (!u.retry)
                return -ENOMEM;
        r = osnode_write(ctx, osnode, a, &u);
        if (r < 0)
                return r;
        /* The Event keeps the failure the reset clears from lastError. */
        node_event(ctx, node, "Normal", "RetryRequested", "%s; it had failed with: %s", message, error ?: "no message");
        return 1;
}

static int run_task(NodeCtx *ctx, json_t *node, json_t *osnode, const AgentView *a, const Task *t) {
        const char *cur_task = osnode_status_str(osnode, "task");
        const char *phase = (cur_task && streq(cur_task, t->id)) ? osnode_status_str(osnode, "phase") : NULL;
        _cleanup_free_ char *err = NULL;
        long status = 0;
        int r;

        ctx->busy = true;
        if (phase && (streq(phase, "Done") || streq(phase, "Failed") || streq(phase, "RolledBack"))) {
                ctx->busy = false;
                if (streq(phase, "Done"))       /* crashed between the status write and the release */
                        return node_release(ctx, node, true);
                return node_release(ctx, node, false);
        }

        if (!phase || streq(phase, "Idle")) {
                if (!a->reachable)
                        return 0;
                if (target_reached(t, a))
                        return step_done(ctx, node, osnode, a, t);
                if (t->operation == TASK_UPGRADE) {
                        if (a->other_state && streq(a->other_state, "staged") && a->other_version &&
                            streq(a->other_version, t->version))
                                return start_drain(ctx, node, osnode, a, t);
                        r = apply_config(ctx, t, a, &err);
                        if (r <= 0)
                                return r < 0 ? fail_task(ctx, node, osnode, a, t, "Failed", err ?: "config refused") : 0;
                        /* "s*": an unset option is left out; the agent refuses
                         * null for a string field. A registry (oci://) gets
                         * the CA but no client certificate: it authenticates
                         * with the node's registry-auth.json (docs/OCI.md). */
                        bool oci = oci_url_is_oci(t->image_url);
                        json_t *body = json_pack("{s:s, s:s, s:s*, s:s*, s:s*, s:s*, s:s*}", "source", t->image_url,
                                                 "version", t->version, "sha256", t->image_sha256, "key_id",
                                                 t->image_key_id, "ca_file", ctx->image_ca_file, "client_cert",
                                                 oci ? NULL : ctx->image_client_cert, "client_key",
                                                 oci ? NULL : ctx->image_client_key);
                        if (!body)
                                return -ENOMEM;
                        r = agent_post(ctx, "/v1/stage", body, &status, &err);
                        json_decref(body);
                        if (r == -EBUSY)
                                return 0;       /* another operation first: come back */
                        if (r < 0)
                                return fail_task(ctx, node, osnode, a, t, "Failed", err ?: "stage refused");
                        node_event(ctx, node, "Normal", "Staging", "staging %s from %s", t->version, t->image_url);
                        return set_phase(ctx, osnode, a, t, "Staging", NULL);
                }
                if (t->operation == TASK_ROLLBACK) {
                        if (!a->other_state || !streq(a->other_state, "good") || !a->other_version ||
                            !streq(a->other_version, t->version)) {
                                _cleanup_free_ char *m = NULL;
                                if (asprintf(&m, "cannot roll back to %s: the other slot holds %s (%s)", t->version,
                                             a->other_version ?: "nothing", a->other_state ?: "unknown") < 0)
                                        return -ENOMEM;
                                return fail_task(ctx, node, osnode, a, t, "Failed", m);
                        }
                        return start_drain(ctx, node, osnode, a, t);
                }
                /* config */
                r = apply_config(ctx, t, a, &err);
                if (r <= 0)
                        return r < 0 ? fail_task(ctx, node, osnode, a, t, "Failed", err ?: "config refused") : 0;
                AgentView fresh = {};
                if (agent_view_fetch(ctx->agent, &fresh) < 0 || !fresh.reachable) {
                        agent_view_done(&fresh);
                        return 0;
                }
                if (fresh.reboot_required)
                        r = start_drain(ctx, node, osnode, &fresh, t);
                else
                        r = step_done(ctx, node, osnode, &fresh, t);
                agent_view_done(&fresh);
                return r;
        }

        if (streq(phase, "Staging")) {
                if (!a->reachable)
                        return 0;
                if (a->other_state && streq(a->other_state, "staged") && a->other_version &&
                    streq(a->other_version, t->version)) {
                        stage_event(ctx, node, a, t);
                        return start_drain(ctx, node, osnode, a, t);
                }
                if (a->op_type && streq(a->op_type, "stage") && a->op_state && streq(a->op_state, "failed") &&
                    a->op_version && streq(a->op_version, t->version))
                        return fail_task(ctx, node, osnode, a, t, "Failed", a->op_error ?: "staging failed");
                if (a->op_state && streq(a->op_state, "running"))
                        return 0;
                /* Not staged and nothing running (the agent restarted and
                 * the stage was interrupted): start over. */
                return set_phase(ctx, osnode, a, t, "Idle", NULL);
        }

        if (streq(phase, "PreDrain")) {
                r = hooks_step(ctx, node, osnode, a, t, "preDrain", t->hooks.pre_drain, t->hooks.n_pre_drain, &err);
                if (r == -EIO)
                        return fail_task(ctx, node, osnode, a, t, "Failed",
                                         err ?: "a pre-drain hook failed (status.hook has its output)");
                if (r <= 0)
                        return r;
                return set_phase(ctx, osnode, a, t, "Draining", NULL);
        }

        if (streq(phase, "Draining")) {
                if (!ctx->drain) {
                        ctx->drain = drain_state_new(osnode_phase_time(osnode, ctx->now) + t->drain_timeout);
                        if (!ctx->drain)
                                return -ENOMEM;
                }
                r = drain_step(ctx, ctx->drain, t, &err);
                if (r == 0)
                        return 0;
                if (r < 0 && r != -ETIMEDOUT && r != -EPERM) {
                        log_warning_errno(r, "Drain step failed, retrying: %s", err ?: "");
                        return 0;
                }
                ctx->drain = drain_state_free(ctx->drain);
                if (r < 0)
                        return fail_task(ctx, node, osnode, a, t, "Failed", err ?: "drain failed");
                if (!a->reachable || !a->boot_id)
                        return 0;
                node_event(ctx, node, "Normal", "Drained", "node drained");
                /* Write Rebooting with the current boot ID first: if the
                 * reboot takes us down right after the call, the next start
                 * knows what it was waiting for. */
                r = set_phase(ctx, osnode, a, t, "Rebooting", a->boot_id);
                if (r < 0)
                        return r;
                r = agent_post(ctx, reboot_request(t), NULL, &status, &err);
                if (r == -EBUSY) {
                        /* Not a refusal: Rebooting asks again once it is idle. */
                        log_info("The agent is busy; asking for the reboot again shortly");
                        return 0;
                }
                if (r < 0 && !agent_client_unreachable(ctx->agent))
                        return fail_task(ctx, node, osnode, a, t, "Failed", err ?: "the agent refused the reboot");
                node_event(ctx, node, "Normal", "Rebooting", "rebooting into %s", t->version ?: "the new config");
                return 0;
        }

        if (streq(phase, "Rebooting")) {
                const char *before = osnode_status_str(osnode, "rebootFrom");
                if (!a->reachable || !a->boot_id)
                        return 0;
                if (before && streq(before, a->boot_id))
                        return reboot_again(ctx, node, osnode, a, t);
                return set_phase(ctx, osnode, a, t, "Verifying", NULL);
        }

        if (streq(phase, "Verifying")) {
                if (!a->reachable)
                        return 0;
                if (target_reached(t, a))
                        /* Up and marked good: now the workloads (spec.verify)
                         * and the post-boot hooks decide. */
                        return set_phase(ctx, osnode, a, t, "Gating", NULL);
                if (t->operation != TASK_CONFIG && a->version && t->version && !streq(a->version, t->version)) {
                        _cleanup_free_ char *m = NULL;
                        if (asprintf(&m, "booted back into %s instead of %s%s%s", a->version, t->version,
                                     a->op_error ? ": " : "", a->op_error ?: "") < 0)
                                return -ENOMEM;
                        return fail_task(ctx, node, osnode, a, t,
                                         t->operation == TASK_UPGRADE ? "RolledBack" : "Failed", m);
                }
                /* The new image is up and the agent's health checks are
                 * running; if they fail the agent reboots and GRUB falls
                 * back, which shows up above on the next boot. */
                return osnode_write(ctx, osnode, a, &(StatusUpdate) {});
        }

        if (streq(phase, "Gating")) {
                _cleanup_free_ char *why = NULL, *reason = NULL;
                if (!a->reachable)
                        return 0;
                if (!target_reached(t, a))
                        return set_phase(ctx, osnode, a, t, "Verifying", NULL);   /* fell back, or not good */
                int64_t start = osnode_phase_time(osnode, ctx->now);
                int64_t since = time_field(json_object_get(osnode, "status"), "rebootTime");
                if (since < 0)
                        since = start;
                if (!osnode_hook(osnode, t, "postBoot")) {
                        r = gate_check(ctx, node, a, t, since, &why);
                        if (r < 0)
                                return 0;       /* the API failed us: look again */
                        if (r == 0) {
                                if (ctx->now < start + t->verify.timeout_seconds)
                                        return osnode_write(ctx, osnode, a, &(StatusUpdate) { .gate = why ?: "waiting" });
                                if (asprintf(&reason, "not Ready within %" PRIi64 " s (spec.verify.timeoutSeconds): %s",
                                             t->verify.timeout_seconds, why ?: "?") < 0)
                                        return -ENOMEM;
                                return gate_failed(ctx, node, osnode, a, t, reason);
                        }
                }
                r = hooks_step(ctx, node, osnode, a, t, "postBoot", t->hooks.post_boot, t->hooks.n_post_boot, &err);
                if (r == -EIO)
                        return gate_failed(ctx, node, osnode, a, t, err ?: "a post-boot hook failed (status.hook has its output)");
                if (r <= 0)
                        return r;
                return step_done(ctx, node, osnode, a, t);
        }

        if (streq(phase, "RollingBack")) {
                const char *before = osnode_status_str(osnode, "rebootFrom");
                const char *reason = json_string_value(json_object_get(
                        json_object_get(json_object_get(osnode, "status"), "lastError"), "message"));
                _cleanup_free_ char *m = NULL;
                if (!a->reachable || !a->boot_id)
                        return 0;
                if (before && streq(before, a->boot_id)) {
                        /* Still up: the request did not reach the agent (busy,
                         * restarting). Ask again, at most every 30 s. */
                        if ((a->op_state && streq(a->op_state, "running")) ||
                            ctx->now < osnode_phase_time(osnode, ctx->now) + REBOOT_UNSEEN_SEC)
                                return 0;
                        r = osnode_write(ctx, osnode, a, &(StatusUpdate) { .phase = "RollingBack", .task = t->id,
                                                                           .os = t->os, .restart_phase = true });
                        if (r < 0)
                                return r;
                        r = agent_post(ctx, a->reboot_required ? "/v1/reboot" : "/v1/rollback", NULL, &status, &err);
                        if (r == -ESTALE) {     /* already switched: just the reboot */
                                err = mfree(err);
                                r = agent_post(ctx, "/v1/reboot", NULL, &status, &err);
                        }
                        if (r < 0 && r != -EBUSY && !agent_client_unreachable(ctx->agent)) {
                                if (asprintf(&m, "%s; cannot roll back: %s", reason ?: "post-boot gate failed",
                                             err ?: "the agent refused") < 0)
                                        return -ENOMEM;
                                return fail_task(ctx, node, osnode, a, t, "Failed", m);
                        }
                        return 0;
                }
                if (a->version && t->version && streq(a->version, t->version)) {
                        if (asprintf(&m, "%s; the rollback did not take: the node booted %s again", reason ?: "post-boot gate failed",
                                     a->version) < 0)
                                return -ENOMEM;
                        return fail_task(ctx, node, osnode, a, t, "Failed", m);
                }
                if (!a->booted_good)
                        return osnode_write(ctx, osnode, a, &(StatusUpdate) {});        /* health checks run */
                if (asprintf(&m, "rolled back to %s: %s", a->version ?: "?", reason ?: "post-boot gate failed") < 0)
                        return -ENOMEM;
                return fail_task(ctx, node, osnode, a, t, "RolledBack", m);
        }

        log_warning("OSNode '%s' has unknown phase '%s', starting the task over", ctx->node_name, phase);
        return set_phase(ctx, osnode, a, t, "Idle", NULL);
}

int node_reconcile(NodeCtx *ctx) {
        _cleanup_(agent_view_done) AgentView a = {};
        _cleanup_(task_done) Task t = {};
        _cleanup_free_ char *err = NULL;
        json_t *node, *osnode;
        int r;

        ctx->now = time(NULL);
        ctx->busy = false;
        node = kube_informer_get(ctx->node_informer, ctx->node_name);
        osnode = kube_informer_get(ctx->osnode_informer, ctx->node_name);
        /* The spec is written by people (spec.retry), the status only by
         * us: requests are read from the watch, which has every spec write,
         * even while our own last status write is newer than it. */
        _cleanup_(json_decrefp) json_t *spec_src = json_incref(osnode);
        if (ctx->osnode_mine) {
                const char *mine = kube_resource_version(ctx->osnode_mine);
                const char *cached = osnode ? kube_resource_version(osnode) : NULL;
                if (!osnode || !mine || (cached && streq(cached, mine)))
                        {
                        json_decref(ctx->osnode_mine);
                        ctx->osnode_mine = NULL;
                }
                else {
                        json_decref(osnode);
                        osnode = json_incref(ctx->osnode_mine);
                }
        }
        if (!node || !osnode) {
                json_decref(node);
                json_decref(osnode);
                /* Someone deleted our OSNode: make it again (its status
                 * is rewritten from the agent on the next pass). */
                return node ? node_ensure_osnode(ctx) : 0;
        }
        r = agent_view_fetch(ctx->agent, &a);
        if (r < 0)
                log_warning_errno(r, "Failed to read the agent's status: %s", agent_client_error(ctx->agent) ?: "");

        r = node_retry(ctx, node, spec_src, osnode, &a);
        if (r != 0) {
                json_decref(node);
                json_decref(osnode);
                return r < 0 ? r : 0;
        }

        const char *ann = kube_annotation(node, NODE_ANNOTATION_TASK);
        if (!ann) {
                /* No task. Lift a cordon of ours that a crash left behind,
                 * and report what the host runs. */
                ctx->drain = drain_state_free(ctx->drain);
                (void) node_release(ctx, node, false);
                /* A working phase without a task: the task was withdrawn
                 * (its OS object deleted, the node deselected). Nothing is
                 * in flight any more that we started, so say Idle. */
                const char *phase = osnode_status_str(osnode, "phase");
                bool working = phase && (streq(phase, "Staging") || streq(phase, "PreDrain") ||
                                         streq(phase, "Draining") || streq(phase, "Rebooting") ||
                                         streq(phase, "Verifying") || streq(phase, "Gating") ||
                                         streq(phase, "RollingBack"));
                StatusUpdate u = { .phase = !phase || working ? "Idle" : NULL };
                r = osnode_write(ctx, osnode, &a, &u);
        } else if (task_parse(ann, &t, &err) < 0) {
                /* The operator wrote something we cannot read: report it and
                 * touch nothing. */
                (void) node_release(ctx, node, false);
                StatusUpdate u = { .phase = "Failed", .error = err };
                r = osnode_write(ctx, osnode, &a, &u);
        } else
                r = run_task(ctx, node, osnode, &a, &t);

        json_decref(node);
        json_decref(osnode);
        return r;
}
