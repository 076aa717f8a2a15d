/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Lease leader election, following client-go's leaderelection package
 * (tryAcquireOrRenew, renew, release) step by step, so that a Hull operator
 * and a client-go program could even share a Lease. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kube-internal.h"
#include "kube.h"

struct KubeLeader {
        KubeConfig *config;
        KubeClient *client;
        char *ns, *name, *identity, *path, *collection;
        uint64_t lease_usec, renew_deadline_usec, retry_usec;
        unsigned lease_seconds;
        int notify_fd;

        pthread_t thread;
        bool thread_started;
        KubeSleeper sleeper;

        /* Only the thread touches these. */
        json_t *observed;          /* the last Lease object read or written */
        json_t *observed_spec;     /* its spec, to notice a change of record */
        uint64_t observed_usec;    /* local monotonic time it was observed */

        pthread_mutex_t lock;      /* guards leading and lost */
        bool leading, lost;
};

static void set_leading(KubeLeader *l, bool leading, bool lost) {
        bool changed;

        (void) pthread_mutex_lock(&l->lock);
        changed = l->leading != leading || (lost && !l->lost);
        l->leading = leading;
        if (lost)
                l->lost = true;
        (void) pthread_mutex_unlock(&l->lock);
        if (changed)
                kube_notify(l->notify_fd);
}

bool kube_leader_is_leader(KubeLeader *l) {
        bool v;
        (void) pthread_mutex_lock(&l->lock);
        v = l->leading;
        (void) pthread_mutex_unlock(&l->lock);
        return v;
}

bool kube_leader_lost(KubeLeader *l) {
        bool v;
        (void) pthread_mutex_lock(&l->lock);
        v = l->lost;
        (void) pthread_mutex_unlock(&l->lock);
        return v;
}

static uint64_t realtime_usec(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

static void observe(KubeLeader *l, json_t *lease) {
        json_t *spec = json_object_get(lease, "spec");

        /* client-go compares the whole record: any change (a renewal by the
         * holder, a new holder) restarts the local clock; the remote
         * renewTime itself is never trusted, clocks differ. */
        if (!l->observed_spec || !json_equal(l->observed_spec, spec)) {
                json_decref(l->observed_spec);
                l->observed_spec = json_deep_copy(spec ? spec : json_null());
                l->observed_usec = kube_now_usec();
        }
        json_decref(l->observed);
        l->observed = json_incref(lease);
}

static void observe_written(KubeLeader *l, json_t *lease) {
        json_decref(l->observed_spec);
        l->observed_spec = NULL;
        observe(l, lease); /* our own write: observed now */
}

/* The spec we want: held by us, renewed now. */
static int desired_spec(KubeLeader *l, json_t *old_spec, bool release, json_t **ret) {
        char now[40];
        const char *holder = json_string_value(json_object_get(old_spec, "holderIdentity"));
        json_int_t transitions = json_integer_value(json_object_get(old_spec, "leaseTransitions"));
        json_t *acquire = json_object_get(old_spec, "acquireTime");
        json_t *spec;

        kube_format_micro_time(realtime_usec(), now);
        spec = json_is_object(old_spec) ? json_deep_copy(old_spec) : json_object();
        if (!spec)
                return -ENOMEM;
        if (release) {
                /* client-go's release: no holder, 1 s, so the next
                 * candidate takes over at its next try. */
                if (json_object_set_new(spec, "holderIdentity", json_string("")) < 0 ||
                    json_object_set_new(spec, "leaseDurationSeconds", json_integer(1)) < 0 ||
                    json_object_set_new(spec, "renewTime", json_string(now)) < 0 ||
                    json_object_set_new(spec, "acquireTime", json_string(now)) < 0) {
                        json_decref(spec);
                        return -ENOMEM;
                }
                *ret = spec;
                return 0;
        }
        bool same = holder && streq(holder, l->identity);
        if (json_object_set_new(spec, "holderIdentity", json_string(l->identity)) < 0 ||
            json_object_set_new(spec, "leaseDurationSeconds", json_integer(l->lease_seconds)) < 0 ||
            json_object_set_new(spec, "renewTime", json_string(now)) < 0 ||
            json_object_set_new(spec, "acquireTime",
                                same && json_is_string(acquire) ? json_incref(acquire) : json_string(now)) < 0 ||
            /* Bumped only when the holder changes. */
            json_object_set_new(spec, "leaseTransitions", json_integer(same ? transitions : transitions + 1)) < 0) {
                json_decref(spec);
                return -ENOMEM;
        }
        *ret = spec;
        return 0;
}

/* PUT the observed lease with a new spec, carrying the observed RV. */
static int write_spec(KubeLeader *l, json_t *spec) {
        _cleanup_(json_decrefp) json_t *obj = json_deep_copy(l->observed), *updated = NULL;
        int r;

        if (!obj)
                return -ENOMEM;
        if (json_object_set(obj, "spec", spec) < 0)
                return -ENOMEM;
        r = kube_replace(l->client, l->path, obj, &updated, NULL);
        if (r < 0)
                return r;
        observe_written(l, updated);
        return 0;
}

static bool lease_valid(KubeLeader *l, uint64_t now) {
        json_int_t d = json_integer_value(json_object_get(l->observed_spec, "leaseDurationSeconds"));
        if (d <= 0)
                d = (json_int_t) l->lease_seconds;
        return l->observed_usec + (uint64_t) d * 1000000ULL > now;
}

/* client-go's IsLeader(): by the record, not by our flag. */
static bool observed_is_us(KubeLeader *l) {
        const char *h = json_string_value(json_object_get(json_object_get(l->observed, "spec"), "holderIdentity"));
        return h && streq(h, l->identity);
}

/* client-go's tryAcquireOrRenew(): true if we hold the lease afterwards. */
static bool try_acquire_or_renew(KubeLeader *l) {
        _cleanup_(json_decrefp) json_t *lease = NULL, *spec = NULL;
        uint64_t now = kube_now_usec();
        const char *holder;
        int r;

        /* Fast path: while leading, renew with the cached object (its RV);
         * on any failure fall back to a GET. */
        if (observed_is_us(l) && lease_valid(l, now)) {
                r = desired_spec(l, json_object_get(l->observed, "spec"), false, &spec);
                if (r >= 0 && write_spec(l, spec) >= 0)
                        return true;
                json_decref(spec);
                spec = NULL;
        }

        r = kube_get(l->client, l->path, &lease, NULL);
        if (r == -ENOENT) {
                _cleanup_(json_decrefp) json_t *obj = NULL, *created = NULL;

                r = desired_spec(l, NULL, false, &spec);
                if (r < 0)
                        return false;
                (void) json_object_set_new(spec, "leaseTransitions", json_integer(0));
                obj = json_pack("{s:s, s:s, s:{s:s, s:s}, s:O}", "apiVersion", "coordination.k8s.io/v1", "kind",
                                "Lease", "metadata", "name", l->name, "namespace", l->ns, "spec", spec);
                if (!obj)
                        return false;
                if (kube_create(l->client, l->collection, obj, &created, NULL) < 0)
                        return false; /* 409: someone else was faster */
                observe_written(l, created);
                return true;
        }
        if (r < 0)
                return false;

        observe(l, lease);
        holder = json_string_value(json_object_get(json_object_get(lease, "spec"), "holderIdentity"));
        if (!isempty(holder) && !streq(holder, l->identity) && lease_valid(l, now))
                return false; /* held by another, and renewed recently by our clock */

        r = desired_spec(l, json_object_get(lease, "spec"), false, &spec);
        if (r < 0)
                return false;
        /* 409 here: another candidate won the race; we re-evaluate on the
         * next try from a fresh GET. */
        return write_spec(l, spec) >= 0;
}

static void release(KubeLeader *l) {
        for (unsigned attempt = 0; attempt < 2; attempt++) {
                _cleanup_(json_decrefp) json_t *spec = NULL;
                int r;

                if (!observed_is_us(l))
                        return;
                if (desired_spec(l, json_object_get(l->observed, "spec"), true, &spec) < 0)
                        return;
                r = write_spec(l, spec);
                if (r != -ESTALE)
                        return;
                /* A renewal cut short by the stop may have been applied
                 * without us seeing its answer: our RV is stale. Read the
                 * lease again and release it if it is still ours. */
                _cleanup_(json_decrefp) json_t *lease = NULL;
                if (kube_get(l->client, l->path, &lease, NULL) < 0)
                        return;
                observe(l, lease);
        }
}

static uint64_t jittered(uint64_t usec) {
        /* wait.JitterUntil with factor 1.2 when acquiring. */
        return usec + kube_random_u64() % (usec * 6 / 5 + 1);
}

static void *leader_thread(void *userdata) {
        KubeLeader *l = userdata;
        uint64_t last_renew = 0;

        /* Acquire. */
        for (;;) {
                if (l->sleeper.stop)
                        return NULL;
                if (try_acquire_or_renew(l))
                        break;
                if (kube_sleeper_wait(&l->sleeper, jittered(l->retry_usec)))
                        return NULL;
        }
        last_renew = kube_now_usec();
        set_leading(l, true, false);

        /* Renew every retry period until no renewal succeeded within the
         * renew deadline. */
        for (;;) {
                if (kube_sleeper_wait(&l->sleeper, l->retry_usec))
                        break;
                if (try_acquire_or_renew(l)) {
                        last_renew = kube_now_usec();
                        continue;
                }
                if (kube_now_usec() - last_renew >= l->renew_deadline_usec) {
                        set_leading(l, false, true);
                        return NULL;
                }
        }

        /* Stopping while leading: hand the lease over. The cancel flag is
         * set, so detach it for this last write. */
        kube_client_set_cancel(l->client, NULL);
        kube_client_set_timeout(l->client, 2000);
        release(l);
        set_leading(l, false, false);
        return NULL;
}

static KubeLeader *leader_free(KubeLeader *l) {
        if (!l)
                return NULL;
        kube_client_free(l->client);
        kube_config_unref(l->config);
        json_decref(l->observed);
        json_decref(l->observed_spec);
        free(l->ns);
        free(l->name);
        free(l->identity);
        free(l->path);
        free(l->collection);
        kube_sleeper_done(&l->sleeper);
        (void) pthread_mutex_destroy(&l->lock);
        free(l);
        return NULL;
}

int kube_leader_start(KubeConfig *config, const KubeLeaderOptions *o, KubeLeader **ret) {
        KubeLeader *l;
        int r;

        if (!config || !o || isempty(o->ns) || isempty(o->name) || isempty(o->identity) || !ret)
                return -EINVAL;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        r = kube_sleeper_init(&l->sleeper);
        if (r < 0) {
                free(l);
                return r;
        }
        r = -pthread_mutex_init(&l->lock, NULL);
        if (r < 0) {
                kube_sleeper_done(&l->sleeper);
                free(l);
                return r;
        }
        l->config = kube_config_ref(config);
        l->lease_seconds = o->lease_seconds ?: 15;
        l->lease_usec = (uint64_t) l->lease_seconds * 1000000ULL;
        l->renew_deadline_usec = (uint64_t) (o->renew_deadline_seconds ?: 10) * 1000000ULL;
        l->retry_usec = (uint64_t) (o->retry_seconds ?: 2) * 1000000ULL;
        l->notify_fd = o->notify_fd;
        if (l->renew_deadline_usec >= l->lease_usec || l->retry_usec >= l->renew_deadline_usec) {
                /* client-go refuses these too: leadership could overlap. */
                leader_free(l);
                return -EINVAL;
        }
        l->ns = strdup(o->ns);
        l->name = strdup(o->name);
        l->identity = strdup(o->identity);
        if (!l->ns || !l->name || !l->identity ||
            asprintf(&l->collection, "/apis/coordination.k8s.io/v1/namespaces/%s/leases", o->ns) < 0 ||
            asprintf(&l->path, "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", o->ns, o->name) < 0) {
                leader_free(l);
                return -ENOMEM;
        }
        r = kube_client_new(config, &l->client);
        if (r < 0) {
                leader_free(l);
                return r;
        }
        /* A renewal must not outlast the renew deadline. */
        kube_client_set_timeout(l->client, (long) MIN(l->renew_deadline_usec / 1000ULL, 15000ULL));
        kube_client_set_cancel(l->client, &l->sleeper.stop);
        r = -pthread_create(&l->thread, NULL, leader_thread, l);
        if (r < 0) {
                leader_free(l);
                return r;
        }
        l->thread_started = true;
        *ret = l;
        return 0;
}

KubeLeader *kube_leader_stop(KubeLeader *l) {
        if (!l)
                return NULL;
        kube_sleeper_stop(&l->sleeper);
        if (l->thread_started)
                (void) pthread_join(l->thread, NULL);
        return leader_free(l);
}
