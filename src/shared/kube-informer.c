/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The informer: client-go's reflector in a thread. LIST, then WATCH from the
 * list's resourceVersion; a clean end of the stream re-watches from the last
 * RV seen, a 410 (either form) relists and reports what vanished meanwhile
 * as DELETED, errors back off. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kube-internal.h"
#include "kube.h"

/* A watch that ends this quickly without an event is a failure, or a
 * server that closes at once would be hammered in a loop. */
#define WATCH_MIN_USEC 1000000ULL
/* A backoff run this long ago is forgotten (client-go's reset of 2 min). */
#define BACKOFF_RESET_USEC (120ULL * 1000000ULL)

struct KubeInformer {
        KubeConfig *config;
        KubeClient *client;
        char *path, *label_selector, *field_selector;
        unsigned page_size;
        int notify_fd;
        KubeWatchFn on_event;
        void *userdata;
        json_t *(*transform)(json_t *obj, void *userdata);

        pthread_t thread;
        bool thread_started;
        KubeSleeper sleeper;

        pthread_mutex_t lock; /* guards everything below */
        json_t *cache;        /* key -> object */
        bool synced;
        unsigned lists, watches, relists;
};

static char *object_key(json_t *obj) {
        const char *name = kube_name(obj), *ns = kube_namespace(obj);
        char *k;

        if (!name)
                return NULL;
        if (!ns)
                return strdup(name);
        if (asprintf(&k, "%s/%s", ns, name) < 0)
                return NULL;
        return k;
}

static void informer_emit(KubeInformer *i, KubeEventType t, json_t *obj) {
        if (i->on_event)
                (void) i->on_event(t, obj, i->userdata);
}

/* ---- list ---- */

/* A new reference to what the cache keeps of obj. */
static json_t *informer_transform(KubeInformer *i, json_t *obj) {
        return i->transform ? i->transform(obj, i->userdata) : json_incref(obj);
}

typedef struct ListState {
        KubeInformer *i;
        json_t *fresh;
} ListState;

static int list_item(json_t *item, void *userdata) {
        ListState *l = userdata;
        _cleanup_free_ char *k = object_key(item);

        if (!k)
                return -EBADMSG;
        json_t *keep = informer_transform(l->i, item);
        if (!keep)
                return -ENOMEM;
        return json_object_set_new(l->fresh, k, keep) < 0 ? -ENOMEM : 0;
}

static void list_reset(void *userdata) {
        ListState *l = userdata;
        json_object_clear(l->fresh);
}

/* Replaces the cache with the result of a list, reporting the differences:
 * ADDED/MODIFIED for what is new or changed, DELETED for what is gone. */
static int informer_list(KubeInformer *i, char **ret_rv, bool relist) {
        _cleanup_(json_decrefp) json_t *fresh = json_object(), *old = NULL, *events = json_array();
        _cleanup_free_ char *rv = NULL;
        KubeListOptions lo = {
                .label_selector = i->label_selector,
                .field_selector = i->field_selector,
                .limit = i->page_size,
        };
        const char *k;
        json_t *v;
        int r;

        if (!fresh || !events)
                return -ENOMEM;
        ListState ls = { .i = i, .fresh = fresh };
        r = kube_list(i->client, i->path, &lo, list_item, list_reset, &ls, &rv, NULL);
        if (r < 0)
                return r;

        (void) pthread_mutex_lock(&i->lock);
        old = i->cache;
        i->cache = json_incref(fresh);
        i->synced = true;
        i->lists++;
        if (relist)
                i->relists++;
        (void) pthread_mutex_unlock(&i->lock);

        /* Differences are reported outside the lock. */
        json_object_foreach(fresh, k, v) {
                json_t *was = json_object_get(old, k);
                if (!was)
                        informer_emit(i, KUBE_ADDED, v);
                else if (!json_equal(was, v))
                        informer_emit(i, KUBE_MODIFIED, v);
        }
        json_object_foreach(old, k, v)
                if (!json_object_get(fresh, k))
                        informer_emit(i, KUBE_DELETED, v); /* deleted while we were away */
        kube_notify(i->notify_fd);
        *ret_rv = TAKE_PTR(rv);
        return 0;
}

/* ---- watch ---- */

typedef struct WatchState {
        KubeInformer *i;
        unsigned events;
} WatchState;

static int informer_event(KubeEventType type, json_t *obj, void *userdata) {
        WatchState *w = userdata;
        KubeInformer *i = w->i;
        _cleanup_free_ char *k = object_key(obj);
        _cleanup_(json_decrefp) json_t *keep = NULL;
        json_t *last = NULL;

        if (!k)
                return 0; /* not an object we can key: ignore it */
        w->events++;
        keep = informer_transform(i, obj);
        if (!keep)
                return -ENOMEM;
        (void) pthread_mutex_lock(&i->lock);
        if (type == KUBE_DELETED) {
                last = json_incref(json_object_get(i->cache, k));
                (void) json_object_del(i->cache, k);
        } else if (json_object_set(i->cache, k, keep) < 0) {
                (void) pthread_mutex_unlock(&i->lock);
                return -ENOMEM;
        }
        (void) pthread_mutex_unlock(&i->lock);
        informer_emit(i, type, keep);
        json_decref(last);
        kube_notify(i->notify_fd);
        return 0;
}

static void *informer_thread(void *userdata) {
        KubeInformer *i = userdata;
        _cleanup_free_ char *rv = NULL;
        bool need_list = true, relist = false;
        unsigned failures = 0;
        uint64_t last_failure = 0;

        while (!i->sleeper.stop) {
                int r;

                if (failures > 0) {
                        if (kube_now_usec() - last_failure > BACKOFF_RESET_USEC)
                                failures = 0;
                        else if (kube_sleeper_wait(&i->sleeper, kube_backoff_usec(failures - 1, kube_random_u64())))
                                break;
                }

                if (need_list) {
                        free(rv);
                        rv = NULL;
                        r = informer_list(i, &rv, relist);
                        if (r == -ECANCELED)
                                break;
                        if (r < 0) {
                                failures++;
                                last_failure = kube_now_usec();
                                continue;
                        }
                        need_list = false;
                        relist = false;
                }

                WatchState w = { .i = i };
                KubeWatchOptions wo = {
                        .label_selector = i->label_selector,
                        .field_selector = i->field_selector,
                        .resource_version = rv,
                        .cancel = &i->sleeper.stop,
                };
                uint64_t start = kube_now_usec();

                (void) pthread_mutex_lock(&i->lock);
                i->watches++;
                (void) pthread_mutex_unlock(&i->lock);
                r = kube_watch(i->client, i->path, &wo, informer_event, &w, &rv, NULL);
                if (r == -ECANCELED)
                        break;
                if (r == -EXPIRED) {
                        /* Our RV fell out of the server's window: relist at
                         * once; what vanished meanwhile is reported then. */
                        need_list = relist = true;
                        failures = 0;
                        continue;
                }
                if (r >= 0 && (w.events > 0 || kube_now_usec() - start >= WATCH_MIN_USEC)) {
                        /* A clean end (timeoutSeconds): watch again from the
                         * last RV, no relist. */
                        failures = 0;
                        continue;
                }
                /* An error, or a stream that ended at once with nothing:
                 * back off, then watch again from the same RV. */
                failures++;
                last_failure = kube_now_usec();
        }
        return NULL;
}

static KubeInformer *informer_free(KubeInformer *i) {
        if (!i)
                return NULL;
        kube_client_free(i->client);
        kube_config_unref(i->config);
        json_decref(i->cache);
        free(i->path);
        free(i->label_selector);
        free(i->field_selector);
        kube_sleeper_done(&i->sleeper);
        (void) pthread_mutex_destroy(&i->lock);
        free(i);
        return NULL;
}

static char *strdup_opt(const char *s, bool *oom) {
        char *d;
        if (isempty(s))
                return NULL;
        d = strdup(s);
        if (!d)
                *oom = true;
        return d;
}

int kube_informer_start(KubeConfig *config, const KubeInformerOptions *o, KubeInformer **ret) {
        KubeInformer *i;
        bool oom = false;
        int r;

        if (!config || !o || isempty(o->path) || o->path[0] != '/' || !ret)
                return -EINVAL;
        i = calloc(1, sizeof(*i));
        if (!i)
                return -ENOMEM;
        r = kube_sleeper_init(&i->sleeper);
        if (r < 0) {
                free(i);
                return r;
        }
        r = -pthread_mutex_init(&i->lock, NULL);
        if (r < 0) {
                kube_sleeper_done(&i->sleeper);
                free(i);
                return r;
        }
        i->config = kube_config_ref(config);
        i->notify_fd = o->notify_fd;
        i->page_size = o->page_size;
        i->on_event = o->on_event;
        i->transform = o->transform;
        i->userdata = o->userdata;
        i->path = strdup_opt(o->path, &oom);
        i->label_selector = strdup_opt(o->label_selector, &oom);
        i->field_selector = strdup_opt(o->field_selector, &oom);
        i->cache = json_object();
        if (oom || !i->cache) {
                informer_free(i);
                return -ENOMEM;
        }
        r = kube_client_new(config, &i->client);
        if (r < 0) {
                informer_free(i);
                return r;
        }
        kube_client_set_cancel(i->client, &i->sleeper.stop);
        r = -pthread_create(&i->thread, NULL, informer_thread, i);
        if (r < 0) {
                informer_free(i);
                return r;
        }
        i->thread_started = true;
        *ret = i;
        return 0;
}

KubeInformer *kube_informer_stop(KubeInformer *i) {
        if (!i)
                return NULL;
        /* The flag aborts a blocked list or watch within ~100 ms and wakes a
         * backoff sleep at once. */
        kube_sleeper_stop(&i->sleeper);
        if (i->thread_started)
                (void) pthread_join(i->thread, NULL);
        return informer_free(i);
}

bool kube_informer_synced(KubeInformer *i) {
        bool s;
        (void) pthread_mutex_lock(&i->lock);
        s = i->synced;
        (void) pthread_mutex_unlock(&i->lock);
        return s;
}

json_t *kube_informer_get(KubeInformer *i, const char *key) {
        json_t *o;
        (void) pthread_mutex_lock(&i->lock);
        o = json_incref(json_object_get(i->cache, key));
        (void) pthread_mutex_unlock(&i->lock);
        return o;
}

json_t *kube_informer_snapshot(KubeInformer *i) {
        json_t *s;
        /* A shallow copy: the objects are shared and never modified, the
         * informer replaces them rather than changing them in place. */
        (void) pthread_mutex_lock(&i->lock);
        s = json_copy(i->cache);
        (void) pthread_mutex_unlock(&i->lock);
        return s;
}

void kube_informer_stats(KubeInformer *i, unsigned *ret_lists, unsigned *ret_watches, unsigned *ret_relists) {
        (void) pthread_mutex_lock(&i->lock);
        if (ret_lists)
                *ret_lists = i->lists;
        if (ret_watches)
                *ret_watches = i->watches;
        if (ret_relists)
                *ret_relists = i->relists;
        (void) pthread_mutex_unlock(&i->lock);
}
