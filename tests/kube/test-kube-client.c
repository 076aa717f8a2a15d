/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Kubernetes client against the API-server double (tests/kube/
 * apiserver.py) over TLS with a bearer token; run by test-kube-client.sh.
 *
 *   test-kube-client KUBECONFIG SERVER_TOKEN_FILE CLIENT_TOKEN_FILE */
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "kube-internal.h"
#include "kube.h"
#include "tests.h"

static KubeConfig *config;
static KubeClient *client;
static const char *server_token_file, *client_token_file;

#define WAIT_UNTIL(cond, seconds)                                                                 \
        do {                                                                                      \
                uint64_t _deadline = kube_now_usec() + (uint64_t) (seconds) * 1000000ULL;         \
                while (!(cond)) {                                                                 \
                        if (kube_now_usec() > _deadline) {                                        \
                                fprintf(stderr, "%s:%d: timed out waiting for %s\n", __FILE__,    \
                                        __LINE__, #cond);                                         \
                                abort();                                                          \
                        }                                                                         \
                        usleep(20000);                                                            \
                }                                                                                 \
        } while (0)

static json_t *parse(const char *s) {
        json_error_t e;
        json_t *j = json_loads(s, 0, &e);
        if (!j) {
                fprintf(stderr, "bad test JSON: %s: %s\n", s, e.text);
                abort();
        }
        return j;
}

/* A test-only control endpoint of the double. */
static json_t *control(const char *method, const char *path, const char *body) {
        _cleanup_(json_decrefp) json_t *b = body ? parse(body) : NULL;
        KubeResponse r;
        ASSERT_OK(kube_request(client, method, path, NULL, NULL, b, &r));
        json_t *out = TAKE_PTR(r.body);
        kube_response_done(&r);
        return out;
}

static void reset_faults(void) {
        json_decref(control("POST", "/_double/reset", NULL));
}

/* The requests the double saw since seq `since` matching method + path. */
static unsigned count_requests(unsigned long since, const char *method, const char *path, long status) {
        _cleanup_(json_decrefp) json_t *all = NULL;
        _cleanup_free_ char *q = NULL;
        KubeResponse r;
        unsigned n = 0;
        size_t i;
        json_t *e;

        ASSERT_TRUE(asprintf(&q, "since=%lu", since) > 0);
        ASSERT_OK(kube_request(client, "GET", "/_double/requests", q, NULL, NULL, &r));
        all = TAKE_PTR(r.body);
        kube_response_done(&r);
        json_array_foreach(json_object_get(all, "requests"), i, e) {
                if (!streq(json_string_value(json_object_get(e, "method")), method) ||
                    !streq(json_string_value(json_object_get(e, "path")), path))
                        continue;
                if (status && json_integer_value(json_object_get(e, "status")) != status)
                        continue;
                n++;
        }
        return n;
}

/* The double logs a request after answering it, so the count is polled
 * until it reaches n, then checked again after a moment for extras. */
static void expect_requests(unsigned long since, const char *method, const char *path, long status, unsigned n) {
        WAIT_UNTIL(count_requests(since, method, path, status) >= n, 5);
        usleep(100000);
        unsigned got = count_requests(since, method, path, status);
        if (got != n) {
                fprintf(stderr, "%s %s (status %ld): %u requests, expected %u\n", method, path, status, got, n);
                abort();
        }
}

static unsigned long request_seq(void) {
        _cleanup_(json_decrefp) json_t *all = NULL;
        KubeResponse r;
        ASSERT_OK(kube_request(client, "GET", "/_double/requests", "since=999999999", NULL, NULL, &r));
        all = TAKE_PTR(r.body);
        kube_response_done(&r);
        return (unsigned long) json_integer_value(json_object_get(all, "last"));
}

static void create_namespace(const char *name) {
        _cleanup_(json_decrefp) json_t *ns = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind", "Namespace",
                                                      "metadata", "name", name);
        int r = kube_create(client, "/api/v1/namespaces", ns, NULL, NULL);
        ASSERT_TRUE(r >= 0 || r == -EEXIST);
}

static void create_pod(const char *ns, const char *name, const char *labels_json) {
        _cleanup_(json_decrefp) json_t *pod = json_pack(
                "{s:s,s:s,s:{s:s,s:s,s:o},s:{s:s,s:[{s:s,s:s}]}}", "apiVersion", "v1", "kind", "Pod", "metadata",
                "name", name, "namespace", ns, "labels", parse(labels_json ?: "{}"), "spec", "nodeName", "node-a",
                "containers", "name", "c", "image", "busybox");
        _cleanup_free_ char *coll = NULL, *error = NULL;
        ASSERT_TRUE(asprintf(&coll, "/api/v1/namespaces/%s/pods", ns) > 0);
        int r = kube_create(client, coll, pod, NULL, &error);
        if (r < 0)
                fprintf(stderr, "create pod %s/%s: %s\n", ns, name, error ?: "-");
        ASSERT_OK(r);
}

static void delete_pod(const char *ns, const char *name) {
        _cleanup_free_ char *p = NULL;
        ASSERT_TRUE(asprintf(&p, "/api/v1/namespaces/%s/pods/%s", ns, name) > 0);
        ASSERT_OK(kube_delete(client, p, NULL));
}

/* ---- CRUD ---- */

static void test_crud(void) {
        _cleanup_(json_decrefp) json_t *node = parse(
                "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"crud-1\",\"labels\":{\"a\":\"1\"},"
                "\"annotations\":{\"x.example/unknown\":\"kept\"}},\"spec\":{\"providerID\":\"test://crud-1\","
                "\"taints\":[{\"key\":\"k\",\"effect\":\"NoSchedule\"}]}}");
        _cleanup_(json_decrefp) json_t *created = NULL, *got = NULL, *replaced = NULL, *patched = NULL,
                                       *jpatched = NULL, *stale = NULL, *dup = NULL;
        _cleanup_free_ char *error = NULL;
        char rv0[64];

        ASSERT_OK(kube_create(client, "/api/v1/nodes", node, &created, &error));
        ASSERT_STREQ(kube_name(created), "crud-1");
        ASSERT_TRUE(kube_resource_version(created));
        (void) snprintf(rv0, sizeof(rv0), "%s", kube_resource_version(created));

        /* Duplicate: 409 AlreadyExists with its Status. */
        ASSERT_ERROR(kube_create(client, "/api/v1/nodes", node, &dup, &error), EEXIST);
        ASSERT_TRUE(error && strstr(error, "409 AlreadyExists"));

        ASSERT_OK(kube_get(client, "/api/v1/nodes/crud-1", &got, NULL));
        ASSERT_STREQ(kube_label(got, "a"), "1");
        stale = json_deep_copy(got);

        /* Fields this code knows nothing about survive GET -> modify -> PUT. */
        json_object_set_new(json_object_get(json_object_get(got, "metadata"), "labels"), "b", json_string("2"));
        ASSERT_OK(kube_replace(client, "/api/v1/nodes/crud-1", got, &replaced, NULL));
        ASSERT_STREQ(kube_label(replaced, "b"), "2");
        ASSERT_STREQ(kube_annotation(replaced, "x.example/unknown"), "kept");
        ASSERT_STREQ(json_string_value(json_object_get(json_object_get(replaced, "spec"), "providerID")),
                     "test://crud-1");
        ASSERT_EQ(json_array_size(json_object_get(json_object_get(replaced, "spec"), "taints")), 1);
        ASSERT_TRUE(!streq(kube_resource_version(replaced), rv0));

        /* A PUT with the RV read before that write: 409 Conflict. */
        json_object_set_new(json_object_get(json_object_get(stale, "metadata"), "labels"), "c", json_string("3"));
        error = mfree(error);
        ASSERT_ERROR(kube_replace(client, "/api/v1/nodes/crud-1", stale, NULL, &error), ESTALE);
        ASSERT_TRUE(error && strstr(error, "409 Conflict"));

        /* Merge patch: null deletes the key. */
        _cleanup_(json_decrefp) json_t *mp = parse("{\"metadata\":{\"labels\":{\"a\":null,\"m\":\"yes\"}},"
                                                   "\"spec\":{\"unschedulable\":true}}");
        ASSERT_OK(kube_merge_patch(client, "/api/v1/nodes/crud-1", mp, &patched, NULL));
        ASSERT_TRUE(kube_label(patched, "a") == NULL);
        ASSERT_STREQ(kube_label(patched, "m"), "yes");
        ASSERT_TRUE(json_is_true(json_object_get(json_object_get(patched, "spec"), "unschedulable")));

        /* JSON patch guarded by a test of the RV; a failing test: 422. */
        _cleanup_free_ char *ops_text = NULL;
        ASSERT_TRUE(asprintf(&ops_text,
                             "[{\"op\":\"test\",\"path\":\"/metadata/resourceVersion\",\"value\":\"%s\"},"
                             "{\"op\":\"add\",\"path\":\"/metadata/annotations/j\",\"value\":\"p\"}]",
                             kube_resource_version(patched)) > 0);
        _cleanup_(json_decrefp) json_t *ops = parse(ops_text);
        ASSERT_OK(kube_json_patch(client, "/api/v1/nodes/crud-1", ops, &jpatched, NULL));
        ASSERT_STREQ(kube_annotation(jpatched, "j"), "p");
        ASSERT_ERROR(kube_json_patch(client, "/api/v1/nodes/crud-1", ops, NULL, NULL), EINVAL);

        ASSERT_OK(kube_delete(client, "/api/v1/nodes/crud-1", NULL));
        error = mfree(error);
        ASSERT_ERROR(kube_get(client, "/api/v1/nodes/crud-1", NULL, &error), ENOENT);
        ASSERT_TRUE(error && strstr(error, "404 NotFound"));
        ASSERT_ERROR(kube_delete(client, "/api/v1/nodes/crud-1", NULL), ENOENT);

        /* The full response on an error: the Status fields. */
        KubeResponse r;
        ASSERT_ERROR(kube_request(client, "GET", "/api/v1/nodes/crud-1", NULL, NULL, NULL, &r), ENOENT);
        ASSERT_EQ(r.status, 404);
        ASSERT_STREQ(r.reason, "NotFound");
        ASSERT_TRUE(r.message && strstr(r.message, "crud-1"));
        kube_response_done(&r);
}

/* ---- one connection, kept ---- */

static void test_connection_reuse(void) {
        _cleanup_(kube_client_freep) KubeClient *c = NULL;
        _cleanup_(json_decrefp) json_t *p = parse("{\"metadata\":{\"labels\":{\"r\":\"1\"}}}");

        ASSERT_OK(kube_client_new(config, &c));
        for (unsigned i = 0; i < 10; i++) {
                ASSERT_OK(kube_get(c, "/api/v1/namespaces/default", NULL, NULL));
                ASSERT_ERROR(kube_get(c, "/api/v1/namespaces/default/pods/none", NULL, NULL), ENOENT);
                ASSERT_OK(kube_merge_patch(c, "/api/v1/namespaces/default", p, NULL, NULL));
        }
        ASSERT_EQ(kube_client_connects(c), 1);
}

/* ---- kube_update_retry winning a race ---- */

typedef struct Race {
        unsigned calls;
        KubeClient *other;
} Race;

static int race_mutate(json_t *obj, void *userdata) {
        Race *race = userdata;

        race->calls++;
        if (race->calls == 1) {
                /* Someone else writes between our GET and our PUT. */
                _cleanup_(json_decrefp) json_t *p = parse("{\"metadata\":{\"labels\":{\"other\":\"won\"}}}");
                ASSERT_OK(kube_merge_patch(race->other, "/api/v1/nodes/race-1", p, NULL, NULL));
        }
        json_t *labels = json_object_get(json_object_get(obj, "metadata"), "labels");
        json_object_set_new(labels, "mine", json_string("too"));
        return 0;
}

static int noop_mutate(json_t *obj, void *userdata) {
        return 1;
}

static void test_update_retry(void) {
        _cleanup_(json_decrefp) json_t *node = parse(
                "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"race-1\",\"labels\":{}}}");
        _cleanup_(json_decrefp) json_t *final = NULL, *same = NULL;
        _cleanup_(kube_client_freep) KubeClient *other = NULL;
        Race race = {};

        ASSERT_OK(kube_client_new(config, &other));
        race.other = other;
        ASSERT_OK(kube_create(client, "/api/v1/nodes", node, NULL, NULL));
        unsigned long seq = request_seq();
        ASSERT_OK(kube_update_retry(client, "/api/v1/nodes/race-1", race_mutate, &race, &final, NULL));
        ASSERT_EQ(race.calls, 2);
        ASSERT_STREQ(kube_label(final, "other"), "won");
        ASSERT_STREQ(kube_label(final, "mine"), "too");
        expect_requests(seq, "PUT", "/api/v1/nodes/race-1", 409, 1);
        expect_requests(seq, "PUT", "/api/v1/nodes/race-1", 200, 1);
        expect_requests(seq, "GET", "/api/v1/nodes/race-1", 200, 2);

        /* Nothing to change: no PUT. */
        seq = request_seq();
        ASSERT_OK(kube_update_retry(client, "/api/v1/nodes/race-1", noop_mutate, NULL, &same, NULL));
        ASSERT_STREQ(kube_resource_version(same), kube_resource_version(final));
        expect_requests(seq, "PUT", "/api/v1/nodes/race-1", 0, 0);
        ASSERT_OK(kube_delete(client, "/api/v1/nodes/race-1", NULL));
}

/* ---- list ---- */

typedef struct Collected {
        json_t *names;
        unsigned resets;
        char max_rv[64];
} Collected;

static int collect(json_t *item, void *userdata) {
        Collected *c = userdata;
        const char *rv = kube_resource_version(item);
        json_array_append_new(c->names, json_string(kube_name(item)));
        if (rv && (strlen(rv) > strlen(c->max_rv) || (strlen(rv) == strlen(c->max_rv) && strcmp(rv, c->max_rv) > 0)))
                (void) snprintf(c->max_rv, sizeof(c->max_rv), "%s", rv);
        return 0;
}

static void collect_reset(void *userdata) {
        Collected *c = userdata;
        json_array_clear(c->names);
        c->resets++;
}

static void test_list_pagination(void) {
        Collected col = { .names = json_array() };
        _cleanup_free_ char *rv = NULL;
        char name[32];

        create_namespace("pag");
        for (unsigned i = 0; i < 7; i++) {
                (void) snprintf(name, sizeof(name), "p%u", i);
                create_pod("pag", name, i == 6 ? "{\"set\":\"maybe\"}" : "{\"set\":\"yes\"}");
        }
        create_pod("pag", "other", "{\"set\":\"no\"}");
        /* A write elsewhere after the pods: the list RV is newer than every
         * item's, and the watch must start there. */
        create_namespace("pag-later");

        unsigned long seq = request_seq();
        KubeListOptions lo = { .label_selector = "set in (yes, maybe)", .limit = 2 };
        ASSERT_OK(kube_list(client, "/api/v1/namespaces/pag/pods", &lo, collect, collect_reset, &col, &rv, NULL));
        ASSERT_EQ(json_array_size(col.names), 7);
        ASSERT_EQ(col.resets, 0);
        expect_requests(seq, "GET", "/api/v1/namespaces/pag/pods", 200, 4);
        ASSERT_TRUE(rv && !streq(rv, col.max_rv));

        /* The field selector, percent-encoded. */
        json_array_clear(col.names);
        KubeListOptions fo = { .field_selector = "metadata.name=p3,spec.nodeName=node-a" };
        ASSERT_OK(kube_list(client, "/api/v1/namespaces/pag/pods", &fo, collect, NULL, &col, NULL, NULL));
        ASSERT_EQ(json_array_size(col.names), 1);
        ASSERT_STREQ(json_string_value(json_array_get(col.names, 0)), "p3");

        /* An unsupported field selector: 400 as -EINVAL with the message. */
        _cleanup_free_ char *error = NULL;
        KubeListOptions bo = { .field_selector = "spec.nope=1" };
        ASSERT_ERROR(kube_list(client, "/api/v1/namespaces/pag/pods", &bo, collect, NULL, &col, NULL, &error),
                     EINVAL);
        ASSERT_TRUE(error && strstr(error, "400"));
        json_decref(col.names);
}

/* ---- watch ---- */

typedef struct Log {
        pthread_mutex_t lock;
        char text[8192];
} Log;

static int log_event(KubeEventType type, json_t *obj, void *userdata) {
        Log *l = userdata;
        pthread_mutex_lock(&l->lock);
        size_t n = strlen(l->text);
        (void) snprintf(l->text + n, sizeof(l->text) - n, "%s %s;", kube_event_type_to_string(type),
                        kube_name(obj) ?: "-");
        pthread_mutex_unlock(&l->lock);
        return 0;
}

static bool log_has(Log *l, const char *s) {
        pthread_mutex_lock(&l->lock);
        bool b = strstr(l->text, s) != NULL;
        pthread_mutex_unlock(&l->lock);
        return b;
}

static void *set_later(void *arg) {
        usleep(300000);
        *(volatile int *) arg = 1;
        return NULL;
}

static void test_watch(void) {
        Log log = { .lock = PTHREAD_MUTEX_INITIALIZER };
        _cleanup_free_ char *rv = NULL, *rv2 = NULL, *error = NULL;
        Collected col = { .names = json_array() };

        create_namespace("w");
        ASSERT_OK(kube_list(client, "/api/v1/namespaces/w/pods", NULL, collect, NULL, &col, &rv, NULL));
        json_decref(col.names);
        create_pod("w", "w1", NULL);
        _cleanup_(json_decrefp) json_t *mp = parse("{\"metadata\":{\"labels\":{\"x\":\"y\"}}}");
        ASSERT_OK(kube_merge_patch(client, "/api/v1/namespaces/w/pods/w1", mp, NULL, NULL));
        delete_pod("w", "w1");

        /* History from the list's RV replays in order; the server ends
         * the stream at timeoutSeconds and the watch returns 0. */
        rv2 = strdup(rv);
        KubeWatchOptions wo = { .resource_version = rv, .timeout_seconds = 1 };
        ASSERT_OK(kube_watch(client, "/api/v1/namespaces/w/pods", &wo, log_event, &log, &rv2, NULL));
        WAIT_UNTIL(log_has(&log, "ADDED w1;MODIFIED w1;"), 1);
        ASSERT_TRUE(log_has(&log, "DELETED w1;"));
        ASSERT_TRUE(!streq(rv2, rv));

        /* Too old an RV: 410 in both forms. */
        json_decref(control("POST", "/_double/compact", NULL));
        json_decref(control("POST", "/_double/watch-expiry-mode", "{\"mode\":\"http410\"}"));
        ASSERT_ERROR(kube_watch(client, "/api/v1/namespaces/w/pods", &wo, log_event, &log, NULL, &error), EXPIRED);
        ASSERT_TRUE(error && strstr(error, "410"));
        error = mfree(error);
        json_decref(control("POST", "/_double/watch-expiry-mode", "{\"mode\":\"error-event\"}"));
        unsigned long seq = request_seq();
        ASSERT_ERROR(kube_watch(client, "/api/v1/namespaces/w/pods", &wo, log_event, &log, NULL, &error), EXPIRED);
        ASSERT_TRUE(error && strstr(error, "410 Expired"));
        expect_requests(seq, "GET", "/api/v1/namespaces/w/pods", 200, 1); /* really the 200 form */
        json_decref(control("POST", "/_double/watch-expiry-mode", "{\"mode\":\"http410\"}"));

        /* A cancel flag set from another thread ends a blocked watch. */
        static volatile int cancel;
        cancel = 0;
        pthread_t t;
        ASSERT_EQ(pthread_create(&t, NULL, set_later, (void *) &cancel), 0);
        KubeWatchOptions co = { .resource_version = rv2, .timeout_seconds = 60, .cancel = &cancel };
        uint64_t start = kube_now_usec();
        ASSERT_ERROR(kube_watch(client, "/api/v1/namespaces/w/pods", &co, log_event, &log, NULL, NULL), ECANCELED);
        ASSERT_TRUE(kube_now_usec() - start < 2000000);
        pthread_join(t, NULL);
        /* The client still works afterwards. */
        ASSERT_OK(kube_get(client, "/api/v1/namespaces/w", NULL, NULL));
}

/* ---- a stalled watch ---- */

static void test_watch_stall(void) {
        Log log = { .lock = PTHREAD_MUTEX_INITIALIZER };
        _cleanup_free_ char *rv = NULL;
        Collected col = { .names = json_array() };

        ASSERT_OK(kube_list(client, "/api/v1/namespaces/default/pods", NULL, collect, NULL, &col, &rv, NULL));
        json_decref(col.names);
        /* The server sits on the watch far past its timeoutSeconds. */
        json_decref(control("POST", "/_double/delay",
                            "{\"method\":\"GET\",\"pathRegex\":\"^/api/v1/namespaces/default/pods$\","
                            "\"seconds\":20,\"count\":1}"));
        KubeWatchOptions wo = { .resource_version = rv, .timeout_seconds = 1 };
        uint64_t start = kube_now_usec();
        ASSERT_ERROR(kube_watch(client, "/api/v1/namespaces/default/pods", &wo, log_event, &log, NULL, NULL),
                     ETIMEDOUT);
        ASSERT_TRUE(kube_now_usec() - start < 10000000);
        reset_faults();
}

/* ---- informer ---- */

static void test_informer(void) {
        Log log = { .lock = PTHREAD_MUTEX_INITIALIZER };
        _cleanup_close_ int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        KubeInformer *inf = NULL;
        unsigned lists, watches, relists, w0;
        uint64_t v;

        create_namespace("inf");
        create_pod("inf", "a", "{\"app\":\"x\"}");
        create_pod("inf", "b", "{\"app\":\"x\"}");
        create_pod("inf", "c", "{\"app\":\"x\"}");
        create_pod("inf", "ignored", "{\"app\":\"y\"}");

        KubeInformerOptions o = {
                .path = "/api/v1/namespaces/inf/pods",
                .label_selector = "app=x",
                .notify_fd = efd,
                .page_size = 2,
                .on_event = log_event,
                .userdata = &log,
        };
        ASSERT_OK(kube_informer_start(config, &o, &inf));
        WAIT_UNTIL(kube_informer_synced(inf), 10);
        ASSERT_TRUE(read(efd, &v, sizeof(v)) == sizeof(v));
        _cleanup_(json_decrefp) json_t *snap = kube_informer_snapshot(inf);
        ASSERT_EQ(json_object_size(snap), 3);
        ASSERT_TRUE(json_object_get(snap, "inf/a") && !json_object_get(snap, "inf/ignored"));

        /* Watch events. */
        create_pod("inf", "d", "{\"app\":\"x\"}");
        WAIT_UNTIL(log_has(&log, "ADDED d;"), 10);
        _cleanup_(json_decrefp) json_t *mp = parse("{\"metadata\":{\"annotations\":{\"m\":\"1\"}}}");
        ASSERT_OK(kube_merge_patch(client, "/api/v1/namespaces/inf/pods/a", mp, NULL, NULL));
        WAIT_UNTIL(log_has(&log, "MODIFIED a;"), 10);
        json_t *a = kube_informer_get(inf, "inf/a");
        ASSERT_STREQ(kube_annotation(a, "m"), "1");
        json_decref(a);
        delete_pod("inf", "b");
        WAIT_UNTIL(log_has(&log, "DELETED b;"), 10);
        WAIT_UNTIL(!kube_informer_get(inf, "inf/b"), 5);

        /* A closed stream: watch again from the last RV, no relist. */
        kube_informer_stats(inf, &lists, &w0, &relists);
        ASSERT_EQ(lists, 1);
        json_decref(control("POST", "/_double/close-watches", NULL));
        create_pod("inf", "e", "{\"app\":\"x\"}");
        WAIT_UNTIL(log_has(&log, "ADDED e;"), 10);
        kube_informer_stats(inf, &lists, &watches, &relists);
        ASSERT_EQ(lists, 1);
        ASSERT_TRUE(watches > w0);

        /* Away long enough to miss events and be compacted: keep the next
         * watch from connecting (503), change things meanwhile, compact.
         * The watch then gets 410, the informer relists and reports what
         * was deleted while it was away. */
        json_decref(control("POST", "/_double/fail",
                            "{\"method\":\"GET\",\"pathRegex\":\"^/api/v1/namespaces/inf/pods$\",\"status\":503,"
                            "\"count\":1}"));
        unsigned long seq = request_seq();
        json_decref(control("POST", "/_double/close-watches", NULL));
        WAIT_UNTIL(count_requests(seq, "GET", "/api/v1/namespaces/inf/pods", 503) == 1, 10);
        delete_pod("inf", "c");
        create_pod("inf", "f", "{\"app\":\"x\"}");
        json_decref(control("POST", "/_double/compact", NULL));
        WAIT_UNTIL(log_has(&log, "DELETED c;") && log_has(&log, "ADDED f;"), 20);
        kube_informer_stats(inf, &lists, &watches, &relists);
        ASSERT_EQ(lists, 2);
        ASSERT_EQ(relists, 1);
        expect_requests(seq, "GET", "/api/v1/namespaces/inf/pods", 410, 1);
        json_decref(snap);
        snap = kube_informer_snapshot(inf);
        ASSERT_EQ(json_object_size(snap), 4); /* a d e f */
        ASSERT_TRUE(!json_object_get(snap, "inf/c") && json_object_get(snap, "inf/f"));

        /* Stopping aborts the blocked watch at once. */
        uint64_t start = kube_now_usec();
        inf = kube_informer_stop(inf);
        ASSERT_TRUE(kube_now_usec() - start < 1000000);
        reset_faults();
}

/* Keeps metadata only, and counts its calls. */
static json_t *keep_metadata(json_t *obj, void *userdata) {
        unsigned *calls = userdata;
        (*calls)++;
        return json_pack("{s:O}", "metadata", json_object_get(obj, "metadata"));
}

static void test_informer_transform(void) {
        _cleanup_close_ int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        KubeInformer *inf = NULL;
        unsigned calls = 0;

        create_namespace("tr");
        create_pod("tr", "a", "{\"app\":\"x\"}");
        KubeInformerOptions o = { .path = "/api/v1/namespaces/tr/pods", .notify_fd = efd,
                                  .transform = keep_metadata, .userdata = &calls };
        ASSERT_OK(kube_informer_start(config, &o, &inf));
        WAIT_UNTIL(kube_informer_synced(inf), 10);
        json_t *a = kube_informer_get(inf, "tr/a");
        ASSERT_TRUE(a && json_object_get(a, "metadata") && !json_object_get(a, "spec") && !json_object_get(a, "status"));
        json_decref(a);
        /* Watch events go through it too. */
        create_pod("tr", "b", "{\"app\":\"x\"}");
        WAIT_UNTIL((a = kube_informer_get(inf, "tr/b")) != NULL, 10);
        ASSERT_TRUE(!json_object_get(a, "spec"));
        json_decref(a);
        ASSERT_TRUE(calls >= 2);
        inf = kube_informer_stop(inf);
}

/* ---- token rotation ---- */

static void test_token_rotation(void) {
        _cleanup_(kube_client_freep) KubeClient *c = NULL;
        ASSERT_OK(kube_client_new(config, &c));
        ASSERT_OK(kube_get(c, "/api/v1/namespaces/default", NULL, NULL));

        /* The server's token changes and the new one is mounted for the
         * client: its next request gets 401, re-reads its file, retries. */
        ASSERT_OK(write_file_atomic(server_token_file, "token-two\n", 10, 0600));
        ASSERT_OK(write_file_atomic(client_token_file, "token-two\n", 10, 0600));
        unsigned long seq = request_seq();
        ASSERT_OK(kube_get(c, "/api/v1/namespaces/default", NULL, NULL));
        expect_requests(seq, "GET", "/api/v1/namespaces/default", 401, 1);
        expect_requests(seq, "GET", "/api/v1/namespaces/default", 200, 1);

        /* A token nobody accepts: one retry, then -EACCES with the Status. */
        ASSERT_OK(write_file_atomic(server_token_file, "token-three\n", 12, 0600));
        _cleanup_free_ char *error = NULL;
        seq = request_seq();
        ASSERT_ERROR(kube_get(c, "/api/v1/namespaces/default", NULL, &error), EACCES);
        ASSERT_TRUE(error && strstr(error, "401 Unauthorized"));
        expect_requests(seq, "GET", "/api/v1/namespaces/default", 401, 2);

        ASSERT_OK(write_file_atomic(client_token_file, "token-three\n", 12, 0600));
        ASSERT_OK(kube_get(c, "/api/v1/namespaces/default", NULL, NULL));
        /* The shared client follows too. */
        ASSERT_OK(kube_get(client, "/api/v1/namespaces/default", NULL, NULL));
}

/* ---- eviction ---- */

static int make_ready(json_t *pod, void *userdata) {
        json_t *st = json_pack("{s:s,s:[{s:s,s:s}]}", "phase", "Running", "conditions", "type", "Ready", "status",
                               "True");
        json_object_set_new(pod, "status", st);
        return 0;
}

static json_int_t pdb_allowed(void) {
        _cleanup_(json_decrefp) json_t *got = NULL;
        if (kube_get(client, "/apis/policy/v1/namespaces/ev/poddisruptionbudgets/web", &got, NULL) < 0)
                return -1;
        return json_integer_value(json_object_get(json_object_get(got, "status"), "disruptionsAllowed"));
}

static void test_eviction(void) {
        KubeResponse r;

        create_namespace("ev");
        create_pod("ev", "web-1", "{\"app\":\"web\"}");
        create_pod("ev", "web-2", "{\"app\":\"web\"}");
        ASSERT_OK(kube_update_retry(client, "/api/v1/namespaces/ev/pods/web-1/status", make_ready, NULL, NULL, NULL));
        ASSERT_OK(kube_update_retry(client, "/api/v1/namespaces/ev/pods/web-2/status", make_ready, NULL, NULL, NULL));
        _cleanup_(json_decrefp) json_t *pdb = parse(
                "{\"apiVersion\":\"policy/v1\",\"kind\":\"PodDisruptionBudget\",\"metadata\":{\"name\":\"web\"},"
                "\"spec\":{\"minAvailable\":1,\"selector\":{\"matchLabels\":{\"app\":\"web\"}}}}");
        ASSERT_OK(kube_create(client, "/apis/policy/v1/namespaces/ev/poddisruptionbudgets", pdb, NULL, NULL));
        WAIT_UNTIL(pdb_allowed() == 1, 10);

        ASSERT_OK(kube_evict(client, "ev", "web-1", 0, &r));
        ASSERT_EQ(r.status, 201);
        kube_response_done(&r);

        /* The budget is spent: 429 with the cause and the default 5 s. */
        ASSERT_ERROR(kube_evict(client, "ev", "web-2", 0, &r), EAGAIN);
        ASSERT_EQ(r.status, 429);
        ASSERT_STREQ(r.reason, "TooManyRequests");
        ASSERT_STREQ(r.cause, "DisruptionBudget");
        ASSERT_EQ(r.retry_after, 5);
        kube_response_done(&r);

        /* A Retry-After from the server is passed on. */
        json_decref(control("POST", "/_double/fail",
                            "{\"method\":\"POST\",\"pathRegex\":\"/eviction$\",\"status\":429,\"count\":1,"
                            "\"retryAfter\":7}"));
        ASSERT_ERROR(kube_evict(client, "ev", "web-2", 0, &r), EAGAIN);
        ASSERT_EQ(r.retry_after, 7);
        kube_response_done(&r);

        ASSERT_ERROR(kube_evict(client, "ev", "nonexistent", 0, &r), ENOENT);
        ASSERT_EQ(r.status, 404);
        kube_response_done(&r);

        /* The evicted pod goes away (404 eventually). */
        WAIT_UNTIL(kube_get(client, "/api/v1/namespaces/ev/pods/web-1", NULL, NULL) == -ENOENT, 10);
        reset_faults();
}

/* ---- events ---- */

static void test_events(void) {
        _cleanup_(json_decrefp) json_t *node = parse(
                "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"ev-node\",\"uid\":\"u-1\"}}");
        Collected col = { .names = json_array() };
        bool found = false;

        ASSERT_OK(kube_event(client, node, "Normal", "Upgrading", "Upgrade", "hull.dev/hull-node", "hull-node-ev-node",
                             "upgrading to 2.0"));
        ASSERT_OK(kube_list(client, "/apis/events.k8s.io/v1/namespaces/default/events", NULL, collect, NULL, &col,
                            NULL, NULL));
        size_t i;
        json_t *n;
        json_array_foreach(col.names, i, n) {
                _cleanup_free_ char *p = NULL;
                _cleanup_(json_decrefp) json_t *ev = NULL;
                ASSERT_TRUE(asprintf(&p, "/apis/events.k8s.io/v1/namespaces/default/events/%s",
                                     json_string_value(n)) > 0);
                ASSERT_OK(kube_get(client, p, &ev, NULL));
                json_t *reg = json_object_get(ev, "regarding");
                if (!streq(json_string_value(json_object_get(reg, "name")) ?: "", "ev-node"))
                        continue;
                found = true;
                ASSERT_STREQ(json_string_value(json_object_get(ev, "reason")), "Upgrading");
                ASSERT_STREQ(json_string_value(json_object_get(ev, "action")), "Upgrade");
                ASSERT_STREQ(json_string_value(json_object_get(ev, "note")), "upgrading to 2.0");
                ASSERT_STREQ(json_string_value(json_object_get(ev, "type")), "Normal");
                ASSERT_STREQ(json_string_value(json_object_get(ev, "reportingController")), "hull.dev/hull-node");
                ASSERT_STREQ(json_string_value(json_object_get(ev, "reportingInstance")), "hull-node-ev-node");
                ASSERT_STREQ(json_string_value(json_object_get(reg, "uid")), "u-1");
                ASSERT_STREQ(json_string_value(json_object_get(reg, "kind")), "Node");
                ASSERT_TRUE(json_object_get(reg, "namespace") == NULL);
                ASSERT_TRUE(json_string_value(json_object_get(ev, "eventTime")));
        }
        ASSERT_TRUE(found);
        json_decref(col.names);
}

/* ---- leader election ---- */

static KubeLeader *start_elector(const char *identity, int fd, unsigned lease, unsigned deadline) {
        KubeLeader *l = NULL;
        KubeLeaderOptions o = {
                .ns = "default",
                .name = "hull-test",
                .identity = identity,
                .lease_seconds = lease,
                .renew_deadline_seconds = deadline,
                .retry_seconds = 1,
                .notify_fd = fd,
        };
        ASSERT_OK(kube_leader_start(config, &o, &l));
        return l;
}

static json_t *lease_spec(void) {
        json_t *l = NULL;
        ASSERT_OK(kube_get(client, "/apis/coordination.k8s.io/v1/namespaces/default/leases/hull-test", &l, NULL));
        json_t *s = json_incref(json_object_get(l, "spec"));
        json_decref(l);
        return s;
}

static void test_leader(void) {
        _cleanup_close_ int fa = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        KubeLeader *a = start_elector("elector-a", fa, 10, 6);
        KubeLeader *b = start_elector("elector-b", -1, 10, 6);
        KubeLeader *leader, *follower;
        uint64_t v;

        WAIT_UNTIL(kube_leader_is_leader(a) || kube_leader_is_leader(b), 15);
        /* Exactly one, and it stays so. */
        for (unsigned i = 0; i < 30; i++) {
                ASSERT_TRUE(kube_leader_is_leader(a) != kube_leader_is_leader(b));
                usleep(100000);
        }
        leader = kube_leader_is_leader(a) ? a : b;
        follower = leader == a ? b : a;
        const char *leader_id = leader == a ? "elector-a" : "elector-b";
        const char *follower_id = leader == a ? "elector-b" : "elector-a";
        json_t *s = lease_spec();
        ASSERT_STREQ(json_string_value(json_object_get(s, "holderIdentity")), leader_id);
        ASSERT_EQ(json_integer_value(json_object_get(s, "leaseDurationSeconds")), 10);
        json_int_t t0 = json_integer_value(json_object_get(s, "leaseTransitions"));
        json_decref(s);
        if (leader == a)
                ASSERT_TRUE(read(fa, &v, sizeof(v)) == sizeof(v));

        /* Renewals keep the holder and do not count as transitions. */
        sleep(2);
        s = lease_spec();
        ASSERT_STREQ(json_string_value(json_object_get(s, "holderIdentity")), leader_id);
        ASSERT_EQ(json_integer_value(json_object_get(s, "leaseTransitions")), t0);
        json_decref(s);

        /* Release hands over well before the 10 s lease would expire. */
        uint64_t start = kube_now_usec();
        if (leader == a)
                a = kube_leader_stop(a);
        else
                b = kube_leader_stop(b);
        WAIT_UNTIL(kube_leader_is_leader(follower), 6);
        ASSERT_TRUE(kube_now_usec() - start < 6000000);
        s = lease_spec();
        ASSERT_STREQ(json_string_value(json_object_get(s, "holderIdentity")), follower_id);
        ASSERT_EQ(json_integer_value(json_object_get(s, "leaseDurationSeconds")), 10);
        ASSERT_EQ(json_integer_value(json_object_get(s, "leaseTransitions")), t0 + 1);
        json_decref(s);
        ASSERT_TRUE(!kube_leader_lost(follower));

        /* Renewals failing past the renew deadline: leadership is lost. */
        json_decref(control("POST", "/_double/fail",
                            "{\"method\":\"PUT\",\"pathRegex\":\"^/apis/coordination.k8s.io/v1/namespaces/default/"
                            "leases/hull-test$\",\"status\":500,\"count\":1000}"));
        WAIT_UNTIL(kube_leader_lost(follower), 15);
        ASSERT_TRUE(!kube_leader_is_leader(follower));
        reset_faults();
        kube_leader_stop(a);
        kube_leader_stop(b);
}

int main(int argc, char **argv) {
        char *error = NULL;

        if (argc != 4) {
                fprintf(stderr, "usage: %s KUBECONFIG SERVER_TOKEN_FILE CLIENT_TOKEN_FILE\n", argv[0]);
                return 2;
        }
        server_token_file = argv[2];
        client_token_file = argv[3];
        ASSERT_OK(kube_global_init());
        int r = kube_config_load(argv[1], NULL, &config, &error);
        if (r < 0)
                fprintf(stderr, "kubeconfig: %s\n", error ?: "-");
        ASSERT_OK(r);
        ASSERT_TRUE(config->ca_data && !config->insecure && config->token_file);
        ASSERT_OK(kube_client_new(config, &client));
        ASSERT_OK(kube_client_set_user_agent(client, "test-kube-client/1"));

        TEST_RUN(test_crud);
        TEST_RUN(test_connection_reuse);
        TEST_RUN(test_update_retry);
        TEST_RUN(test_list_pagination);
        TEST_RUN(test_watch);
        TEST_RUN(test_watch_stall);
        TEST_RUN(test_informer);
        TEST_RUN(test_informer_transform);
        TEST_RUN(test_token_rotation);
        TEST_RUN(test_eviction);
        TEST_RUN(test_events);
        TEST_RUN(test_leader);

        kube_client_free(client);
        kube_config_unref(config);
        return 0;
}
