/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Drain as `kubectl drain` does it (k8s.io/kubectl/pkg/drain): list the
 * node's pods, leave DaemonSet and mirror pods alone, refuse what may not be
 * evicted under the task's rules, and evict the rest through the Eviction
 * API so that PodDisruptionBudgets hold, retrying a 429 after its
 * Retry-After. It is done in steps, one list per call, so that the control
 * loop stays responsive and a restart resumes it from the pods that are
 * left. */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node.h"

/* How long a pod that is already being deleted may take before it no
 * longer holds the drain up (kubectl's skipWaitForDeleteTimeout is 0 by
 * default, i.e. it waits; we bound it by the drain timeout instead, but a
 * pod stuck terminating for this long is not ours to wait for). */
#define DRAIN_DELETING_GRACE 300

typedef struct PendingPod {
        char *key;              /* namespace/name */
        char *uid;
        int64_t next_try;       /* wall clock seconds */
        bool evicted;
        char *why;              /* why the last eviction did not go through, for the timeout's message */
} PendingPod;

struct DrainState {
        int64_t deadline;
        PendingPod *pods;
        size_t n_pods;
};

DrainState *drain_state_new(int64_t deadline) {
        DrainState *d = calloc(1, sizeof(DrainState));
        if (!d)
                return NULL;
        d->deadline = deadline;
        return d;
}

DrainState *drain_state_free(DrainState *d) {
        if (!d)
                return NULL;
        for (size_t i = 0; i < d->n_pods; i++) {
                free(d->pods[i].key);
                free(d->pods[i].uid);
                free(d->pods[i].why);
        }
        free(d->pods);
        free(d);
        return NULL;
}

static PendingPod *drain_find(DrainState *d, const char *key, const char *uid) {
        for (size_t i = 0; i < d->n_pods; i++)
                if (streq(d->pods[i].key, key)) {
                        /* A pod recreated under the same name is a new pod. */
                        if (uid && d->pods[i].uid && !streq(d->pods[i].uid, uid)) {
                                free(d->pods[i].uid);
                                d->pods[i].uid = strdup(uid);
                                d->pods[i].evicted = false;
                                d->pods[i].next_try = 0;
                                d->pods[i].why = mfree(d->pods[i].why);
                        }
                        return &d->pods[i];
                }
        PendingPod *n = realloc(d->pods, (d->n_pods + 1) * sizeof(PendingPod));
        if (!n)
                return NULL;
        d->pods = n;
        PendingPod *p = &d->pods[d->n_pods];
        *p = (PendingPod) { .key = strdup(key), .uid = uid ? strdup(uid) : NULL };
        if (!p->key)
                return NULL;
        d->n_pods++;
        return p;
}

static bool pod_is_daemonset(json_t *pod) {
        json_t *refs = json_object_get(json_object_get(pod, "metadata"), "ownerReferences"), *r;
        size_t i;
        json_array_foreach(refs, i, r)
                if (json_is_true(json_object_get(r, "controller")) &&
                    json_is_string(json_object_get(r, "kind")) &&
                    streq(json_string_value(json_object_get(r, "kind")), "DaemonSet"))
                        return true;
        return false;
}

static bool pod_has_controller(json_t *pod) {
        json_t *refs = json_object_get(json_object_get(pod, "metadata"), "ownerReferences"), *r;
        size_t i;
        json_array_foreach(refs, i, r)
                if (json_is_true(json_object_get(r, "controller")))
                        return true;
        return false;
}

static bool pod_has_empty_dir(json_t *pod) {
        json_t *vols = json_object_get(json_object_get(pod, "spec"), "volumes"), *v;
        size_t i;
        json_array_foreach(vols, i, v)
                if (json_object_get(v, "emptyDir"))
                        return true;
        return false;
}

static bool pod_is_finished(json_t *pod) {
        const char *phase = json_string_value(json_object_get(json_object_get(pod, "status"), "phase"));
        return phase && (streq(phase, "Succeeded") || streq(phase, "Failed"));
}

typedef struct ListCtx {
        json_t *pods;
} ListCtx;

static int collect_pod(json_t *item, void *userdata) {
        ListCtx *l = userdata;
        return json_array_append(l->pods, item) < 0 ? -ENOMEM : 0;
}

static void reset_pods(void *userdata) {
        ListCtx *l = userdata;
        json_array_clear(l->pods);
}

static int append_msg(char **buf, const char *fmt, ...) _printf_(2, 3);
static int append_msg(char **buf, const char *fmt, ...) {
        char *n = NULL, *line = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&line, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        r = asprintf(&n, "%s%s%s", *buf ?: "", *buf ? "; " : "", line);
        free(line);
        if (r < 0)
                return -ENOMEM;
        free(*buf);
        *buf = n;
        return 0;
}

int drain_step(NodeCtx *ctx, DrainState *d, const Task *t, char **ret_error) {
        _cleanup_free_ char *selector = NULL, *err = NULL, *refused = NULL, *waiting = NULL;
        ListCtx l = { .pods = json_array() };
        json_t *pod;
        size_t i, n_left = 0;
        int r;

        if (!l.pods)
                return -ENOMEM;
        if (asprintf(&selector, "spec.nodeName=%s", ctx->node_name) < 0) {
                json_decref(l.pods);
                return -ENOMEM;
        }
        KubeListOptions o = { .field_selector = selector };
        r = kube_list(ctx->kube, "/api/v1/pods", &o, collect_pod, reset_pods, &l, NULL, &err);
        if (r < 0) {
                json_decref(l.pods);
                if (ret_error)
                        *ret_error = TAKE_PTR(err);
                return r;
        }

        /* First pass: refuse the whole drain before evicting anything if a
         * pod may not be evicted, as kubectl does: a half-done drain of a
         * node we then cannot update is the worst outcome. */
        json_array_foreach(l.pods, i, pod) {
                json_t *meta = json_object_get(pod, "metadata");
                const char *name = kube_name(pod), *ns = kube_namespace(pod);
                if (kube_annotation(pod, "kubernetes.io/config.mirror") || pod_is_daemonset(pod) ||
                    json_object_get(meta, "deletionTimestamp") || pod_is_finished(pod))
                        continue;
                if (!t->force && !pod_has_controller(pod))
                        r = append_msg(&refused, "%s/%s is not managed by a controller (drain.force is off)", ns,
                                       name);
                else if (!t->delete_empty_dir_data && pod_has_empty_dir(pod))
                        r = append_msg(&refused, "%s/%s has emptyDir data (drain.deleteEmptyDirData is off)",
                                       ns, name);
                if (r < 0) {
                        json_decref(l.pods);
                        return r;
                }
        }
        if (refused) {
                json_decref(l.pods);
                if (ret_error)
                        *ret_error = TAKE_PTR(refused);
                return -EPERM;
        }

        json_array_foreach(l.pods, i, pod) {
                json_t *meta = json_object_get(pod, "metadata");
                const char *name = kube_name(pod), *ns = kube_namespace(pod);
                const char *uid = json_string_value(json_object_get(meta, "uid"));
                _cleanup_free_ char *key = NULL;

                if (kube_annotation(pod, "kubernetes.io/config.mirror") || pod_is_daemonset(pod))
                        continue;
                if (asprintf(&key, "%s/%s", ns, name) < 0)
                        goto oom;
                json_t *dts = json_object_get(meta, "deletionTimestamp");
                if (dts) {
                        int64_t since = 0;
                        if (kube_parse_time(json_string_value(dts), &since) >= 0 &&
                            ctx->now - since > DRAIN_DELETING_GRACE)
                                continue;       /* stuck terminating: not ours to wait for */
                        n_left++;
                        if (append_msg(&waiting, "%s terminating", key) < 0)
                                goto oom;
                        continue;
                }
                PendingPod *p = drain_find(d, key, uid);
                if (!p)
                        goto oom;
                n_left++;
                if (p->next_try <= ctx->now) {
                        _cleanup_(kube_response_done) KubeResponse resp = {};
                        r = kube_evict(ctx->kube, ns, name, t->grace_period, &resp);
                        p->why = mfree(p->why);
                        if (r >= 0 || r == -ENOENT) {
                                p->evicted = true;
                                p->next_try = ctx->now + 1;
                        } else {
                                p->next_try = ctx->now + (r == -EAGAIN ? (resp.retry_after ?: 5) : 5);
                                p->why = strdup(resp.message ?: r == -EAGAIN ? "eviction refused for now"
                                                                               : strerror(-r));
                                if (!p->why)
                                        goto oom;
                        }
                }
                /* Every pod left is named, also one between two tries:
                 * the timeout may fall on any step. */
                if (append_msg(&waiting, "%s: %s", key, p->why ?: "evicted, not gone yet") < 0)
                        goto oom;
        }
        json_decref(l.pods);

        if (n_left == 0)
                return 1;
        /* drain.timeoutSeconds 0 waits for ever (docs/CRD.md). */
        if (t->drain_timeout > 0 && ctx->now >= d->deadline) {
                if (ret_error) {
                        char *m = NULL;
                        if (asprintf(&m, "drain timed out after %" PRIi64 " s with %zu pod(s) left: %s",
                                     t->drain_timeout, n_left, waiting ?: "(none named)") < 0)
                                return -ENOMEM;
                        *ret_error = m;
                }
                return -ETIMEDOUT;
        }
        return 0;
oom:
        json_decref(l.pods);
        return -ENOMEM;
}
