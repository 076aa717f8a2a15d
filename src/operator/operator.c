/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kube-version.h"
#include "log.h"
#include "operator.h"
#include "osspec.h"
#include "rollout.h"
#include "strutil.h"

/* An expectation older than this is dropped even if never seen: the watch
 * may have coalesced our write with a later change (a real Node changes
 * often), and after this long the cache is the better truth. */
#define EXPECTATION_TTL 60

static int64_t mono_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec;
}

/* Checked before every write that hands out work: a pass over a big fleet
 * against a slow API server can outlast the lease, and a replica that is no
 * longer leader must not choose one more node (another replica may be
 * choosing already). */
static bool still_leading(Operator *o) {
        return !o->leader || kube_leader_is_leader(o->leader);
}

/* The counters are read by the metrics thread under the lock. */
static void count(Operator *o, uint64_t *counter) {
        pthread_mutex_lock(&o->metrics->lock);
        (*counter)++;
        pthread_mutex_unlock(&o->metrics->lock);
}

static void expectation_free(Expectation *e) {
        free(e->node);
        free(e->task);
        free(e->rv);
}

void operator_done(Operator *o) {
        for (size_t i = 0; i < o->n_expect; i++)
                expectation_free(&o->expect[i]);
        free(o->expect);
        o->expect = NULL;
        o->n_expect = 0;
        json_decref(o->last_hold);
        o->last_hold = NULL;
        free(o->apiserver_version);
        o->apiserver_version = NULL;
}

static Expectation *expectation_find(Operator *o, const char *node) {
        for (size_t i = 0; i < o->n_expect; i++)
                if (streq(o->expect[i].node, node))
                        return &o->expect[i];
        return NULL;
}

static int expectation_add(Operator *o, const char *node, const char *task, const char *rv) {
        Expectation *e = expectation_find(o, node);
        if (!e) {
                Expectation *n = realloc(o->expect, (o->n_expect + 1) * sizeof(Expectation));
                if (!n)
                        return -ENOMEM;
                o->expect = n;
                e = &o->expect[o->n_expect++];
                *e = (Expectation) {};
        } else
                expectation_free(e);
        *e = (Expectation) { .node = strdup(node), .task = strdup(task), .rv = rv ? strdup(rv) : NULL,
                             .since = mono_now() };
        return e->node && e->task ? 0 : -ENOMEM;
}

/* Drop expectations the cache has caught up with: it shows our write (same
 * resourceVersion, or our annotation), or the node is gone, or too old. */
static void expectations_settle(Operator *o, json_t *nodes) {
        int64_t now = mono_now();
        size_t j = 0;
        for (size_t i = 0; i < o->n_expect; i++) {
                Expectation *e = &o->expect[i];
                json_t *n = json_object_get(nodes, e->node);
                const char *ann = n ? kube_annotation(n, ANNOTATION_TASK) : NULL;
                const char *rv = n ? kube_resource_version(n) : NULL;
                bool seen = !n || (ann && streq(ann, e->task)) || (rv && e->rv && streq(rv, e->rv)) ||
                            now - e->since > EXPECTATION_TTL;
                if (seen)
                        expectation_free(e);
                else
                        o->expect[j++] = *e;
        }
        o->n_expect = j;
}

static bool node_ready(json_t *node) {
        const char *status = json_string_value(json_object_get(kube_condition(node, "Ready"), "status"));
        return status && streq(status, "True");
}

static bool label_true(json_t *obj, const char *key) {
        const char *v = kube_label(obj, key);
        return v && streq(v, "true");
}

typedef struct OsEntry {
        const char *name;
        json_t *obj;
        OsSpec spec;
        bool valid;
        char *error;
        char *task_id;
        size_t *nodes;                  /* node indices */
        size_t n_nodes;
        json_t *conflicts;              /* array of node names */
        int64_t conflicts_down;         /* of those, NotReady, cordoned or with a task */
} OsEntry;

static void os_entry_done(OsEntry *e) {
        if (e->valid)
                os_spec_done(&e->spec);
        free(e->error);
        free(e->task_id);
        free(e->nodes);
        json_decref(e->conflicts);
}

static char *make_task(const OsEntry *e, int64_t now, int64_t batch) {
        const OsSpec *s = &e->spec;
        char when[32];
        json_t *t = json_pack("{s:s, s:s, s:s, s:s*, s:s, s:I, s:{s:I, s:I, s:b, s:b}}", "id", e->task_id, "os",
                              e->name, "operation", os_operation_to_string(s->operation), "version", s->version,
                              "chosenAt", kube_format_time(now, when), "batch", (json_int_t) batch, "drain",
                              "timeoutSeconds", (json_int_t) s->drain.timeout_seconds, "gracePeriodSeconds",
                              (json_int_t) s->drain.grace_period_seconds, "deleteEmptyDirData",
                              (int) s->drain.delete_empty_dir_data, "force", (int) s->drain.force);
        if (!t)
                return NULL;
        if (s->operation == OS_OPERATION_UPGRADE)
                json_object_set_new(t, "image", json_pack("{s:s*, s:s*, s:s*}", "url", s->image.url, "sha256",
                                                          s->image.sha256, "keyId", s->image.key_id));
        if (s->config)
                json_object_set(t, "config", s->config);
        /* As the spec has them: hull-node parses them with the same
         * os_hooks_parse()/os_verify_parse(). */
        if (s->hooks_json)
                json_object_set(t, "hooks", s->hooks_json);
        if (s->verify_json)
                json_object_set(t, "verify", s->verify_json);
        char *str = json_dumps(t, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(t);
        return str;
}

static int os_event(Operator *o, json_t *os, const char *type, const char *reason, const char *note) {
        json_t *meta = json_object_get(os, "metadata");
        json_t *ref = json_pack("{s:s, s:s, s:{s:s, s:s*}}", "apiVersion", "hull.dev/v1alpha1", "kind", "OS",
                                "metadata", "name", kube_name(os), "uid",
                                json_string_value(json_object_get(meta, "uid")));
        if (!ref)
                return -ENOMEM;
        log_full(streq(type, "Warning") ? LOG_WARNING : LOG_INFO, "OS %s: %s: %s", kube_name(os), reason, note);
        int r = kube_event(o->kube, ref, type, reason, reason, "hull.dev/hull-operator", o->identity, note);
        json_decref(ref);
        return r;
}

static json_t *condition(const char *type, bool status, const char *reason, const char *message, json_t *old,
                         int64_t generation, const char *now) {
        const char *st = status ? "True" : "False";
        const char *when = now;
        json_t *c;
        size_t i;
        json_array_foreach(old, i, c) {
                const char *t = json_string_value(json_object_get(c, "type"));
                const char *s = json_string_value(json_object_get(c, "status"));
                const char *ltt = json_string_value(json_object_get(c, "lastTransitionTime"));
                if (t && streq(t, type) && s && streq(s, st) && ltt)
                        when = ltt;
        }
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "type", type, "status", st, "reason", reason, "message",
                         message ?: "", "lastTransitionTime", when, "observedGeneration", (json_int_t) generation);
}

static int write_status(Operator *o, json_t *os, json_t *status) {
        _cleanup_free_ char *path = NULL, *err = NULL;
        json_t *old = json_object_get(os, "status");

        if ((old && json_equal(old, status)) || !still_leading(o))
                return 0;
        /* Merge patch: keys we no longer set must be deleted explicitly. */
        const char *k;
        json_t *v;
        json_object_foreach(old, k, v)
                if (!json_object_get(status, k))
                        json_object_set_new(status, k, json_null());
        if (asprintf(&path, "%s/%s/status", OS_PATH, kube_name(os)) < 0)
                return -ENOMEM;
        json_t *patch = json_pack("{s:O}", "status", status);
        if (!patch)
                return -ENOMEM;
        int r = kube_merge_patch(o->kube, path, patch, NULL, &err);
        json_decref(patch);
        count(o, &o->metrics->api_writes);
        if (r < 0)
                return log_warning_errno(r, "Failed to update the status of OS '%s': %s", kube_name(os),
                                         err ?: "(no message)");
        return 0;
}

static int status_for_invalid(Operator *o, OsEntry *e, const char *now) {
        json_t *old = json_object_get(json_object_get(e->obj, "status"), "conditions");
        int64_t gen = kube_generation(e->obj);
        json_t *status = json_pack("{s:I, s:[o,o,o,o]}", "observedGeneration", (json_int_t) gen, "conditions",
                                   condition("Degraded", true, "InvalidSpec", e->error, old, gen, now),
                                   condition("Progressing", false, "InvalidSpec", "the spec is not valid; nothing is done",
                                             old, gen, now),
                                   condition("Paused", false, "InvalidSpec", "", old, gen, now),
                                   condition("Complete", false, "InvalidSpec", "", old, gen, now));
        if (!status)
                return -ENOMEM;
        /* Counts are kept as they were: an invalid edit does not make the
         * nodes' state unknown. */
        json_t *os_old = json_object_get(e->obj, "status");
        const char *k;
        json_t *v;
        json_object_foreach(os_old, k, v)
                if (!json_object_get(status, k))
                        json_object_set(status, k, v);
        int r = write_status(o, e->obj, status);
        json_decref(status);
        json_t *h = json_object_get(o->last_hold, e->name);
        if (!h || !streq(json_string_value(h) ?: "", "InvalidSpec")) {
                (void) os_event(o, e->obj, "Warning", "InvalidSpec", e->error);
                json_object_set_new(o->last_hold, e->name, json_string("InvalidSpec"));
        }
        return r;
}

/* The API server's version, as GET /version reports it (gitVersion; from
 * major and minor if gitVersion is missing). Kept for a minute: it changes
 * only when the control plane is upgraded, and a pass must not cost a
 * request per OS object. */
static int apiserver_version(Operator *o, const char **ret, char **ret_error) {
        int64_t now = mono_now();
        if (o->apiserver_version && now - o->apiserver_version_at < APISERVER_VERSION_TTL) {
                *ret = o->apiserver_version;
                return 0;
        }

        json_t *v = NULL;
        int r = kube_get(o->kube, "/version", &v, ret_error);
        if (r < 0)
                return r;
        const char *git = json_string_value(json_object_get(v, "gitVersion"));
        char *s = NULL;
        if (git && kube_version_parse(git, NULL) >= 0)
                s = strdup(git);
        else {
                /* Some distributions put a "+" after the minor ("28+"). */
                const char *major = json_string_value(json_object_get(v, "major"));
                const char *minor = json_string_value(json_object_get(v, "minor"));
                if (!major || !minor || asprintf(&s, "v%s.%.*s.0", major, (int) strspn(minor, "0123456789"), minor) < 0)
                        s = NULL;
                if (s && kube_version_parse(s, NULL) < 0) {
                        free(s);
                        s = NULL;
                }
                if (!s) {
                        json_decref(v);
                        return error_set(ret_error, -EBADMSG, "GET /version returned no Kubernetes version");
                }
        }
        json_decref(v);
        if (!s)
                return -ENOMEM;
        free(o->apiserver_version);
        o->apiserver_version = s;
        o->apiserver_version_at = now;
        *ret = s;
        return 0;
}

/* The kubelet version-skew check of an upgrade (docs/OPERATOR.md, "Version
 * skew"): the image's kubelet, as the spec declares it, against the API
 * server. Sets *ret_refusal, or *ret_unknown when the API server's version
 * cannot be had (never upgrade blindly). No kubelet in the image: no check. */
static int skew_check(Operator *o, OsEntry *e, char **ret_refusal, bool *ret_unknown) {
        _cleanup_free_ char *err = NULL;
        const char *api = NULL;

        if (e->spec.operation != OS_OPERATION_UPGRADE || !e->spec.image.kubelet_version)
                return 0;
        int r = apiserver_version(o, &api, &err);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_warning_errno(r, "OS %s: cannot read the API server version for the version skew check, "
                                  "starting no node until it can: %s", e->name, err ?: "(no message)");
                *ret_unknown = true;
                return 0;
        }
        r = kube_version_skew_check(api, e->spec.image.kubelet_version, e->spec.version, ret_refusal);
        if (r == -ENOMEM)
                return r;
        if (r == -EINVAL) {
                /* The spec's version was checked when it was parsed, so it
                 * is the API server's that does not parse. */
                log_warning("OS %s: %s", e->name, *ret_refusal ?: "unparsable version");
                free(*ret_refusal);
                *ret_refusal = NULL;
                *ret_unknown = true;
        }
        return 0;
}

/* What the promotion gate (spec.strategy.after) needs to know of the OS
 * object it names, from the informer cache. Its Complete condition counts
 * only when written for its current generation: right after an edit (say
 * to the version this object waits for) the status still describes the
 * old spec until the operator has been round. */
static void promotion_facts(json_t *oses, const char *name, RolloutPromotion *ret) {
        json_t *os = json_object_get(oses, name);
        json_t *status = json_object_get(os, "status"), *c;
        int64_t gen = kube_generation(os);
        size_t i;

        *ret = (RolloutPromotion) {};
        if (!os || json_object_get(json_object_get(os, "metadata"), "deletionTimestamp"))
                return;
        ret->exists = true;
        ret->version = json_string_value(json_object_get(json_object_get(os, "spec"), "version"));
        ret->desired = json_integer_value(json_object_get(status, "desired"));
        if (json_integer_value(json_object_get(status, "observedGeneration")) != gen)
                return;
        json_array_foreach(json_object_get(status, "conditions"), i, c) {
                const char *type = json_string_value(json_object_get(c, "type"));
                const char *st = json_string_value(json_object_get(c, "status"));
                const char *ltt = json_string_value(json_object_get(c, "lastTransitionTime"));
                int64_t since;
                if (!type || !streq(type, "Complete"))
                        continue;
                if (st && streq(st, "True") && json_integer_value(json_object_get(c, "observedGeneration")) == gen &&
                    ltt && kube_parse_time(ltt, &since) >= 0) {
                        ret->complete = true;
                        ret->complete_since = since;
                }
                break;
        }
}

static int plan_one(Operator *o, OsEntry *e, json_t *node_list, json_t *osnodes, json_t *oses, int64_t now) {
        _cleanup_(rollout_plan_done) RolloutPlan plan = {};
        _cleanup_free_ RolloutNode *rn = NULL;
        json_t *keep = json_array();            /* parsed task annotations the RolloutNodes borrow from */
        json_t *status_old = json_object_get(e->obj, "status");
        int64_t gen = kube_generation(e->obj);
        _cleanup_free_ char *skew_refusal = NULL;
        bool skew_unknown = false;
        char nowbuf[32];
        int r;

        if (!keep)
                return -ENOMEM;
        r = skew_check(o, e, &skew_refusal, &skew_unknown);
        if (r < 0) {
                json_decref(keep);
                return r;
        }
        kube_format_time(now, nowbuf);
        rn = calloc(e->n_nodes ?: 1, sizeof(RolloutNode));
        if (!rn) {
                json_decref(keep);
                return -ENOMEM;
        }
        for (size_t i = 0; i < e->n_nodes; i++) {
                json_t *node = json_array_get(node_list, e->nodes[i]);
                const char *name = kube_name(node);
                json_t *st = json_object_get(json_object_get(osnodes, name), "status");
                const char *ann = kube_annotation(node, ANNOTATION_TASK);
                Expectation *x = expectation_find(o, name);
                if (x)
                        ann = x->task;

                rn[i] = (RolloutNode) {
                        .name = name,
                        .ready = node_ready(node),
                        .unschedulable = json_is_true(json_object_get(json_object_get(node, "spec"), "unschedulable")),
                        .quarantined = label_true(node, LABEL_QUARANTINED),
                        .phase = NODE_PHASE_IDLE,
                        .phase_task_id = json_string_value(json_object_get(st, "task")),
                        .version = json_string_value(json_object_get(st, "version")),
                        .config_generation = json_integer_value(json_object_get(st, "configGeneration")),
                };
                const char *ph = json_string_value(json_object_get(st, "phase"));
                if (ph && node_phase_from_string(ph) >= 0)
                        rn[i].phase = node_phase_from_string(ph);
                if (ann) {
                        json_t *t = json_loads(ann, 0, NULL);
                        const char *id = json_string_value(json_object_get(t, "id"));
                        int64_t chosen = now;
                        if (json_is_string(json_object_get(t, "chosenAt")))
                                (void) kube_parse_time(json_string_value(json_object_get(t, "chosenAt")), &chosen);
                        /* An annotation we cannot read is still a task in
                         * flight as far as availability goes. */
                        rn[i].task_id = id ?: "(unreadable)";
                        rn[i].task_chosen_at = chosen;
                        if (t)
                                json_array_append_new(keep, t);
                }
        }

        const char *rollout = json_string_value(json_object_get(status_old, "rolloutId"));
        bool same = rollout && streq(rollout, e->task_id);
        int64_t completed_at = 0;
        const char *bct = json_string_value(json_object_get(status_old, "batchCompletedTime"));
        if (same && bct)
                (void) kube_parse_time(bct, &completed_at);
        /* spec.strategy.approvedBatches only ever goes up (hullctl cluster
         * approve adds one); each rollout counts the approvals given since
         * it started, so the last rollout's approvals never open this
         * one's gates. */
        int64_t approval_base = e->spec.approved_batches;
        json_t *ab = json_object_get(status_old, "approvalBase");
        if (same && json_is_integer(ab) && json_integer_value(ab) <= e->spec.approved_batches)
                approval_base = json_integer_value(ab);
        OsSpec spec = e->spec;
        spec.approved_batches -= approval_base;
        RolloutInput in = {
                .spec = &spec,
                .task_id = e->task_id,
                .nodes = rn,
                .n_nodes = e->n_nodes,
                .unavailable_elsewhere = e->conflicts_down,
                .completed_batches = same ? json_integer_value(json_object_get(status_old, "completedBatches")) : 0,
                .batch_completed_at = completed_at,
                .now = now,
                .skew_refusal = skew_refusal,
                .skew_unknown = skew_unknown,
        };
        if (e->spec.after_os)
                promotion_facts(oses, e->spec.after_os, &in.after);
        r = rollout_plan(&in, &plan);
        if (r < 0) {
                json_decref(keep);
                return log_warning_errno(r, "Failed to plan OS '%s': %m", e->name);
        }

        /* Quarantine first: those nodes count as failed in this plan. */
        for (size_t i = 0; i < plan.n_quarantine && still_leading(o); i++) {
                RolloutNode *n = &rn[plan.quarantine[i]];
                _cleanup_free_ char *path = NULL, *err = NULL, *note = NULL;
                if (asprintf(&path, "%s/%s", NODE_PATH, n->name) < 0)
                        break;
                json_t *patch = json_pack("{s:{s:{s:s}}}", "metadata", "labels", LABEL_QUARANTINED, "true");
                r = kube_merge_patch(o->kube, path, patch, NULL, &err);
                json_decref(patch);
                count(o, &o->metrics->api_writes);
                if (r < 0) {
                        log_warning_errno(r, "Failed to quarantine node '%s': %s", n->name, err ?: "");
                        continue;
                }
                count(o, &o->metrics->nodes_quarantined);
                if (asprintf(&note, "node %s did not finish task %s within %" PRIi64 " s: quarantined", n->name,
                             n->task_id, e->spec.node_timeout_seconds) >= 0)
                        (void) os_event(o, e->obj, "Warning", "NodeQuarantined", note);
        }

        _cleanup_free_ char *chosen_names = NULL;
        size_t n_chosen = 0;
        for (size_t i = 0; i < plan.n_choose && still_leading(o); i++) {
                RolloutNode *n = &rn[plan.choose[i]];
                json_t *node = json_array_get(node_list, e->nodes[plan.choose[i]]);
                _cleanup_free_ char *path = NULL, *err = NULL, *task = NULL;
                json_t *ret = NULL;

                task = make_task(e, now, plan.current_batch);
                if (!task || asprintf(&path, "%s/%s", NODE_PATH, n->name) < 0)
                        break;
                /* The resourceVersion makes the patch conditional: if the
                 * node changed since the cache saw it, we decide again on
                 * the next pass instead of acting on a stale picture. */
                json_t *patch = json_pack("{s:{s:s, s:{s:s}}}", "metadata", "resourceVersion",
                                          kube_resource_version(node), "annotations", ANNOTATION_TASK, task);
                r = kube_merge_patch(o->kube, path, patch, &ret, &err);
                json_decref(patch);
                count(o, &o->metrics->api_writes);
                if (r < 0) {
                        log_full_errno(r == -ESTALE ? LOG_DEBUG : LOG_WARNING, r,
                                       "Failed to hand task %s to node '%s': %s", e->task_id, n->name, err ?: "");
                        json_decref(ret);
                        o->requeue_at = now + 1;
                        continue;
                }
                r = expectation_add(o, n->name, task, kube_resource_version(ret));
                json_decref(ret);
                if (r < 0)
                        break;
                count(o, &o->metrics->nodes_chosen);
                n_chosen++;
                char *l = NULL;
                if (asprintf(&l, "%s%s%s", chosen_names ?: "", chosen_names ? ", " : "", n->name) >= 0) {
                        free(chosen_names);
                        chosen_names = l;
                }
        }
        if (n_chosen > 0) {
                _cleanup_free_ char *note = NULL;
                if (asprintf(&note, "batch %" PRIi64 "/%" PRIi64 ": %s %s on %s", plan.current_batch + 1,
                             plan.n_batches, os_operation_to_string(e->spec.operation),
                             e->spec.version ?: "config", chosen_names) >= 0)
                        (void) os_event(o, e->obj, "Normal", "NodesChosen", note);
        }

        /* Status. In-progress counts include what was just chosen. */
        const char *hold = rollout_hold_to_string(plan.hold);
        json_t *oldc = json_object_get(status_old, "conditions");
        bool degraded = plan.hold == ROLLOUT_FAILURE_BUDGET || plan.hold == ROLLOUT_VERSION_SKEW;
        bool paused = plan.hold == ROLLOUT_PAUSED || plan.hold == ROLLOUT_BATCH_GATE_MANUAL;
        bool complete = plan.hold == ROLLOUT_COMPLETE;
        size_t n_conf = json_array_size(e->conflicts);
        _cleanup_free_ char *conf_msg = NULL;
        if (n_conf > 0 &&
            asprintf(&conf_msg, "%zu node(s) are selected by this and another OS object and are left alone: %s%s",
                     n_conf, json_string_value(json_array_get(e->conflicts, 0)), n_conf > 1 ? ", ..." : "") < 0)
                conf_msg = NULL;
        json_t *quarantined = json_array();
        for (size_t i = 0; i < e->n_nodes; i++)
                if (rn[i].quarantined)
                        json_array_append_new(quarantined, json_string(rn[i].name));
        for (size_t i = 0; i < plan.n_quarantine; i++)
                json_array_append_new(quarantined, json_string(rn[plan.quarantine[i]].name));

        char bctbuf[32];
        json_t *status = json_pack(
                "{s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:O, s:[o,o,o,o,o]}", "observedGeneration",
                (json_int_t) gen, "rolloutId", e->task_id, "desired", (json_int_t) plan.desired, "updated",
                (json_int_t) plan.updated, "inProgress", (json_int_t) (plan.in_progress + (int64_t) n_chosen),
                "failed", (json_int_t) plan.failed, "unavailable", (json_int_t) (plan.unavailable + (int64_t) n_chosen),
                "currentBatch", (json_int_t) plan.current_batch, "completedBatches",
                (json_int_t) plan.completed_batches, "quarantinedNodes", quarantined, "conflictingNodes",
                e->conflicts, "conditions",
                condition("Progressing", !complete && !paused && !degraded, hold, plan.message, oldc, gen, nowbuf),
                condition("Paused", paused, paused ? hold : "NotPaused", paused ? plan.message : "", oldc, gen, nowbuf),
                condition("Degraded", degraded, degraded ? hold : "AsExpected", degraded ? plan.message : "", oldc,
                          gen, nowbuf),
                condition("Complete", complete, complete ? hold : "NotComplete", complete ? plan.message : "", oldc,
                          gen, nowbuf),
                condition("Conflict", n_conf > 0, n_conf > 0 ? "OverlappingSelectors" : "NoConflict", conf_msg, oldc,
                          gen, nowbuf));
        if (!status) {
                json_decref(keep);
                return -ENOMEM;
        }
        json_object_set_new(status, "approvalBase", json_integer(approval_base));
        if (plan.batch_completed_at > 0)
                json_object_set_new(status, "batchCompletedTime",
                                    json_string(kube_format_time(plan.batch_completed_at, bctbuf)));
        r = write_status(o, e->obj, status);

        pthread_mutex_lock(&o->metrics->lock);
        json_object_set_new(o->metrics->os_counts, e->name,
                            json_pack("{s:I, s:I, s:I, s:I, s:I}", "desired", (json_int_t) plan.desired, "updated",
                                      (json_int_t) plan.updated, "in_progress",
                                      (json_int_t) (plan.in_progress + (int64_t) n_chosen), "failed",
                                      (json_int_t) plan.failed, "unavailable",
                                      (json_int_t) (plan.unavailable + (int64_t) n_chosen)));
        pthread_mutex_unlock(&o->metrics->lock);
        json_decref(status);

        /* One Event per change of what holds the rollout, not per pass. */
        json_t *h = json_object_get(o->last_hold, e->name);
        if ((!h || !streq(json_string_value(h), hold)) && plan.hold != ROLLOUT_GO && plan.hold != ROLLOUT_WAITING) {
                (void) os_event(o, e->obj, degraded ? "Warning" : "Normal", hold, plan.message ?: hold);
        }
        json_object_set_new(o->last_hold, e->name, json_string(hold));
        if (plan.requeue_at > 0 && (o->requeue_at == 0 || plan.requeue_at < o->requeue_at))
                o->requeue_at = plan.requeue_at;
        json_decref(keep);
        return r;
}

/* What the operator reads of a Node: name, uid, resourceVersion, labels,
 * Hull's annotations, spec.unschedulable and the Ready condition. A real
 * Node is mostly images, addresses and managedFields (10 KiB and more);
 * keeping only this is what lets 5,000 of them fit in a few MiB. */
json_t *operator_node_transform(json_t *node, void *userdata) {
        json_t *meta = json_object_get(node, "metadata");
        json_t *keep_meta = json_object(), *out = json_pack("{s:o}", "metadata", keep_meta);
        static const char *const meta_keys[] = { "name", "uid", "resourceVersion", "labels", "deletionTimestamp" };
        const char *k;
        json_t *v;

        if (!out)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(meta_keys); i++)
                if ((v = json_object_get(meta, meta_keys[i])))
                        json_object_set(keep_meta, meta_keys[i], v);
        json_t *ann = json_object();
        json_object_foreach(json_object_get(meta, "annotations"), k, v)
                if (string_has_prefix(k, "hull.dev/"))
                        json_object_set(ann, k, v);
        json_object_set_new(keep_meta, "annotations", ann);
        json_t *unsched = json_object_get(json_object_get(node, "spec"), "unschedulable");
        if (unsched)
                json_object_set_new(out, "spec", json_pack("{s:O}", "unschedulable", unsched));
        json_t *c = kube_condition(node, "Ready");
        if (c)
                json_object_set_new(out, "status", json_pack("{s:[{s:s, s:O?}]}", "conditions", "type", "Ready",
                                                             "status", json_object_get(c, "status")));
        return out;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

int operator_reconcile(Operator *o, int64_t now) {
        json_t *nodes = kube_informer_snapshot(o->nodes);
        json_t *oses = kube_informer_snapshot(o->oses);
        json_t *osnodes = kube_informer_snapshot(o->osnodes);
        json_t *node_list = json_array();
        _cleanup_free_ const char **names = NULL;
        OsEntry *e = NULL;
        size_t n_os = 0;
        const char *k;
        json_t *v;
        char nowbuf[32];
        int r = 0;

        if (!nodes || !oses || !osnodes || !node_list) {
                r = -ENOMEM;
                goto finish;
        }
        if (!o->last_hold && !(o->last_hold = json_object())) {
                r = -ENOMEM;
                goto finish;
        }
        kube_format_time(now, nowbuf);
        o->requeue_at = 0;
        expectations_settle(o, nodes);

        /* Nodes in name order: decisions must not depend on hash order. */
        size_t n_names = json_object_size(nodes), ni = 0;
        names = calloc(n_names ?: 1, sizeof(char *));
        if (!names) {
                r = -ENOMEM;
                goto finish;
        }
        json_object_foreach(nodes, k, v)
                names[ni++] = k;
        qsort(names, n_names, sizeof(char *), cmp_str);
        for (size_t i = 0; i < n_names; i++)
                json_array_append(node_list, json_object_get(nodes, names[i]));

        e = calloc(json_object_size(oses) ?: 1, sizeof(OsEntry));
        if (!e) {
                r = -ENOMEM;
                goto finish;
        }
        json_object_foreach(oses, k, v) {
                OsEntry *x = &e[n_os++];
                x->obj = v;
                x->name = kube_name(v);
                x->conflicts = json_array();
                if (json_object_get(json_object_get(v, "metadata"), "deletionTimestamp")) {
                        x->error = strdup("being deleted");
                        continue;
                }
                r = os_spec_parse(json_object_get(v, "spec"), &x->spec, &x->error);
                if (r == -ENOMEM)
                        goto finish;
                if (r >= 0) {
                        r = os_spec_check_name(&x->spec, x->name, &x->error);
                        if (r < 0)
                                os_spec_done(&x->spec);
                }
                x->valid = r >= 0;
                if (x->valid && !(x->task_id = os_task_id(x->name, &x->spec))) {
                        r = -ENOMEM;
                        goto finish;
                }
        }

        /* Assign nodes. A node two valid OS objects select is a conflict:
         * reported on both, acted on by neither. */
        size_t *match = calloc(n_os ?: 1, sizeof(size_t));
        if (!match) {
                r = -ENOMEM;
                goto finish;
        }
        json_array_foreach(node_list, ni, v) {
                size_t n_match = 0;
                if (label_true(v, LABEL_UNMANAGED))
                        continue;
                json_t *labels = json_object_get(json_object_get(v, "metadata"), "labels");
                for (size_t j = 0; j < n_os; j++)
                        if (e[j].valid && kube_selector_matches(e[j].spec.node_selector ?: "", labels) > 0)
                                match[n_match++] = j;
                if (n_match == 1) {
                        OsEntry *x = &e[match[0]];
                        size_t *nn = realloc(x->nodes, (x->n_nodes + 1) * sizeof(size_t));
                        if (!nn) {
                                free(match);
                                r = -ENOMEM;
                                goto finish;
                        }
                        x->nodes = nn;
                        x->nodes[x->n_nodes++] = ni;
                } else {
                        /* Still down for every OS that selects it: a task
                         * given before the conflict arose runs on. */
                        bool down = !node_ready(v) ||
                                    json_is_true(json_object_get(json_object_get(v, "spec"), "unschedulable")) ||
                                    kube_annotation(v, ANNOTATION_TASK) || expectation_find(o, kube_name(v));
                        for (size_t j = 0; j < n_match; j++) {
                                json_array_append_new(e[match[j]].conflicts, json_string(kube_name(v)));
                                e[match[j]].conflicts_down += down;
                        }
                }
        }
        free(match);

        for (size_t j = 0; j < n_os; j++) {
                if (!e[j].valid) {
                        if (e[j].error && !streq(e[j].error, "being deleted"))
                                (void) status_for_invalid(o, &e[j], nowbuf);
                        continue;
                }
                int q = plan_one(o, &e[j], node_list, osnodes, oses, now);
                if (q == -ENOMEM) {
                        r = q;
                        goto finish;
                }
                if (q < 0)
                        r = q;
        }
        /* Forget holds of OS objects that are gone. */
        void *it;
        json_object_foreach_safe(o->last_hold, it, k, v)
                if (!json_object_get(oses, k))
                        json_object_del(o->last_hold, k);
        pthread_mutex_lock(&o->metrics->lock);
        json_object_foreach_safe(o->metrics->os_counts, it, k, v)
                if (!json_object_get(oses, k))
                        json_object_del(o->metrics->os_counts, k);
        pthread_mutex_unlock(&o->metrics->lock);

finish:
        for (size_t j = 0; j < n_os; j++)
                os_entry_done(&e[j]);
        free(e);
        json_decref(node_list);
        json_decref(nodes);
        json_decref(oses);
        json_decref(osnodes);
        return r;
}
