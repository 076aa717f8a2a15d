/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* A small Kubernetes REST client over libcurl that keeps objects as raw JSON
 * (jansson), so that fields this code does not know survive a
 * GET -> modify -> PUT. It speaks only the documented protocol: list with
 * limit/continue, watch from a resourceVersion with bookmarks and relist on
 * 410, merge and JSON patch, the status subresource, the Eviction API, Events
 * and Leases. See docs/KUBE-CLIENT.md.
 *
 * A KubeClient holds one curl handle (one reused connection) and is not
 * thread-safe: every thread that talks to the API server gets its own, made
 * with kube_client_new() from a shared, immutable KubeConfig. */

/* Largest response body buffered, and largest single watch event line. A
 * list of 5,000 nodes is about 20 MiB; more than this is a broken or hostile
 * server. */
#define KUBE_BODY_MAX (256U * 1024U * 1024U)
#define KUBE_WATCH_LINE_MAX (16U * 1024U * 1024U)

/* 410 Gone ("too old resource version", the caller relists) has no errno of
 * its own; the client returns -EXPIRED, which is EKEYEXPIRED under a name
 * that says what it means here. */
#ifndef EXPIRED
#define EXPIRED EKEYEXPIRED
#endif

typedef struct KubeConfig {
        char *server;           /* "https://10.0.0.1:443", no trailing slash */
        char *token;            /* bearer token, or NULL */
        char *token_file;       /* re-read every 60 s and after a 401 (in-cluster) */
        char *ca_file;          /* PEM file, or NULL */
        void *ca_data;          /* PEM bytes (kubeconfig certificate-authority-data) */
        size_t ca_size;
        void *cert_data;        /* client certificate PEM, or NULL */
        size_t cert_size;
        void *key_data;         /* client key PEM, or NULL */
        size_t key_size;
        char *cert_file;
        char *key_file;
        bool insecure;          /* insecure-skip-tls-verify */
        char *namespace;        /* default namespace of the context / the pod */
        char *user_agent;       /* default User-Agent of every client made from it */
        unsigned refcount;
} KubeConfig;

KubeConfig *kube_config_ref(KubeConfig *c);
/* Sets the User-Agent of every client made from c afterwards, including the
 * informers' and the leader elector's own clients, so that the API server's
 * audit log (and RBAC checks) can tell the programs apart. Call before
 * starting anything that uses c. */
int kube_config_set_user_agent(KubeConfig *c, const char *ua);
KubeConfig *kube_config_unref(KubeConfig *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeConfig *, kube_config_unref);

/* In-cluster: KUBERNETES_SERVICE_HOST/PORT (IPv6 bracketed), the service
 * account token, CA and namespace under dir (NULL: the standard
 * /var/run/secrets/kubernetes.io/serviceaccount). -ENOENT when not in a
 * cluster. */
int kube_config_in_cluster(const char *dir, KubeConfig **ret, char **ret_error) _warn_unused_result_;

/* kubeconfig: path NULL means $KUBECONFIG (':'-separated, merged as kubectl
 * does: first file that sets a value wins) or ~/.kube/config; context NULL
 * means current-context. Supports server, certificate-authority(-data),
 * client-certificate(-data), client-key(-data), token, tokenFile,
 * insecure-skip-tls-verify, namespace. -ENOENT if no file, -EBADMSG with a
 * message for a malformed one or a missing context/cluster/user. */
int kube_config_load(const char *path, const char *context, KubeConfig **ret,
                     char **ret_error) _warn_unused_result_;

/* In-cluster when KUBERNETES_SERVICE_HOST is set and path is NULL, the
 * kubeconfig otherwise. */
int kube_config_auto(const char *path, const char *context, KubeConfig **ret,
                     char **ret_error) _warn_unused_result_;

typedef struct KubeClient KubeClient;

/* Call once per program before any thread starts (curl_global_init). */
int kube_global_init(void) _warn_unused_result_;

int kube_client_new(KubeConfig *config, KubeClient **ret) _warn_unused_result_;
KubeClient *kube_client_free(KubeClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeClient *, kube_client_free);

/* Bound on one ordinary (non-watch) request, in milliseconds. Default 15000.
 * A controller never waits longer than this on a single slow call. */
void kube_client_set_timeout(KubeClient *c, long timeout_ms);
/* Sent as User-Agent, e.g. "hull-operator/0.1.0". */
int kube_client_set_user_agent(KubeClient *c, const char *ua);
/* While *cancel is non-zero every request of this client (lists, watches,
 * writes) returns -ECANCELED within about 100 ms. NULL: none. The informer
 * and the leader elector use it to stop promptly. */
void kube_client_set_cancel(KubeClient *c, const volatile int *cancel);

/* The outcome of a request that reached the server. For a non-2xx answer,
 * the body is parsed as a metav1.Status: reason ("Conflict", "Expired",
 * "TooManyRequests", ...), message, details.causes[0].reason, and the
 * Retry-After header in seconds (0 if absent). */
typedef struct KubeResponse {
        long status;            /* HTTP status, 0 if no answer */
        json_t *body;           /* parsed body, or NULL */
        char *reason;
        char *message;
        char *cause;
        unsigned retry_after;
} KubeResponse;

void kube_response_done(KubeResponse *r);

/* Maps an HTTP status onto -errno: 2xx 0, 400 -EINVAL, 401/403 -EACCES,
 * 404 -ENOENT, 409 -ESTALE (reason Conflict) or -EEXIST (AlreadyExists),
 * 410 -EXPIRED (the caller relists), 415 -EOPNOTSUPP, 422 -EINVAL,
 * 429 -EAGAIN, 5xx -EAGAIN, anything else -EPROTO. */
int kube_errno_from_status(long status, const char *reason);

/* One request. path is absolute ("/api/v1/nodes/n1"); query is already
 * encoded, or NULL; body NULL means none; content_type NULL means
 * application/json. Returns the mapped errno (kube_errno_from_status()) for
 * an answer, -ETIMEDOUT / -ECONNREFUSED / -EIO / -EPROTO (TLS) when there is
 * none, -E2BIG over KUBE_BODY_MAX. *ret is filled whenever it is non-NULL
 * (also on error), and must be released with kube_response_done(). A 401 is
 * retried once after re-reading the token file. */
int kube_request(KubeClient *c, const char *method, const char *path, const char *query,
                 const char *content_type, json_t *body, KubeResponse *ret) _warn_unused_result_;

/* Convenience wrappers; *ret_obj gets the returned object (may be NULL if
 * not wanted). On error, *ret_error (if non-NULL) gets
 * "<status> <reason>: <message>" (free() it). */
int kube_get(KubeClient *c, const char *path, json_t **ret_obj, char **ret_error) _warn_unused_result_;
int kube_create(KubeClient *c, const char *collection_path, json_t *obj, json_t **ret_obj,
                char **ret_error) _warn_unused_result_;
int kube_replace(KubeClient *c, const char *path, json_t *obj, json_t **ret_obj,
                 char **ret_error) _warn_unused_result_;
/* application/merge-patch+json (RFC 7386). */
int kube_merge_patch(KubeClient *c, const char *path, json_t *patch, json_t **ret_obj,
                     char **ret_error) _warn_unused_result_;
/* application/json-patch+json (RFC 6902); ops is an array. */
int kube_json_patch(KubeClient *c, const char *path, json_t *ops, json_t **ret_obj,
                    char **ret_error) _warn_unused_result_;
int kube_delete(KubeClient *c, const char *path, char **ret_error) _warn_unused_result_;

/* Read-modify-write with optimistic concurrency: GET path, call mutate()
 * on the object (return 0 to PUT it, 1 for "nothing to change", < 0 to
 * abort with that error), PUT it with the resourceVersion it was read with,
 * and on 409 start over from a fresh GET (at most 10 times, then -ESTALE).
 * path may end in "/status" to write the status subresource (the GET then
 * goes to the object itself). */
typedef int (*KubeMutateFn)(json_t *obj, void *userdata);
int kube_update_retry(KubeClient *c, const char *path, KubeMutateFn mutate, void *userdata,
                      json_t **ret_obj, char **ret_error) _warn_unused_result_;

/* Percent-encodes s for a query value. NULL on OOM. */
char *kube_escape(const char *s);

typedef struct KubeListOptions {
        const char *label_selector;
        const char *field_selector;
        unsigned limit;         /* page size; 0: 500 */
} KubeListOptions;

/* LIST path page by page (limit/continue). item() is called once per item
 * (borrowed reference); returning < 0 stops with that error. On success
 * *ret_resource_version (if non-NULL) is the list's metadata.resourceVersion
 * from the first page, which is where a watch must start. An expired
 * continue token (410) restarts the list from the beginning once, after
 * calling reset() (if non-NULL) so that the caller can drop what it got. */
typedef int (*KubeItemFn)(json_t *item, void *userdata);
typedef void (*KubeResetFn)(void *userdata);
int kube_list(KubeClient *c, const char *path, const KubeListOptions *o, KubeItemFn item,
              KubeResetFn reset, void *userdata, char **ret_resource_version,
              char **ret_error) _warn_unused_result_;

typedef enum KubeEventType {
        KUBE_ADDED,
        KUBE_MODIFIED,
        KUBE_DELETED,
        KUBE_BOOKMARK,
        KUBE_ERROR,
} KubeEventType;

const char *kube_event_type_to_string(KubeEventType t);

/* Splits a watch stream into events. The stream is newline-delimited JSON
 * cut at arbitrary chunk boundaries, so the tail of each chunk is kept until
 * its newline arrives. Exposed for unit and fuzz tests. */
typedef struct KubeWatchParser KubeWatchParser;
typedef int (*KubeWatchFn)(KubeEventType type, json_t *object, void *userdata);
KubeWatchParser *kube_watch_parser_new(KubeWatchFn fn, void *userdata);
KubeWatchParser *kube_watch_parser_free(KubeWatchParser *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeWatchParser *, kube_watch_parser_free);
/* -EBADMSG for a line that is not a watch event, -E2BIG for a line over
 * KUBE_WATCH_LINE_MAX, or the callback's error. */
int kube_watch_parser_feed(KubeWatchParser *p, const void *data, size_t len) _warn_unused_result_;

typedef struct KubeWatchOptions {
        const char *label_selector;
        const char *field_selector;
        const char *resource_version;   /* required: where to start */
        unsigned timeout_seconds;       /* 0: random in 300..600 */
        const volatile int *cancel;     /* non-zero: return -ECANCELED promptly */
} KubeWatchOptions;

/* One watch request (allowWatchBookmarks=true). Each ADDED, MODIFIED and
 * DELETED event goes to fn() (the object is borrowed); BOOKMARK only
 * advances the resourceVersion and an ERROR event ends the watch, so neither
 * reaches fn(). Returns 0 when the server ends the stream cleanly, -EXPIRED
 * on HTTP 410 or an ERROR event with code 410, -ECANCELED, a stall (no byte
 * for timeout + 30 s, or the stream still open at 2 x timeout) as
 * -ETIMEDOUT, other errors as kube_request(). *ret_resource_version is the
 * last RV seen (events and bookmarks; also set on error), or unchanged if
 * none was seen. */
int kube_watch(KubeClient *c, const char *path, const KubeWatchOptions *o, KubeWatchFn fn,
               void *userdata, char **ret_resource_version, char **ret_error) _warn_unused_result_;

/* Eviction (policy/v1). 0 evicted (201), -ENOENT pod gone, -EAGAIN with
 * ret->retry_after refused for now (429: a PodDisruptionBudget; 5 s if the
 * server gave no Retry-After), other errors as kube_request(). */
int kube_evict(KubeClient *c, const char *ns, const char *pod, long grace_seconds,
               KubeResponse *ret) _warn_unused_result_;

/* events.k8s.io/v1 Event about `regarding` (an object with apiVersion,
 * kind, metadata.name, metadata.namespace, metadata.uid), best effort:
 * errors are returned but callers ignore them. Events about cluster-scoped
 * objects go to namespace "default". type is "Normal" or "Warning". */
int kube_event(KubeClient *c, json_t *regarding, const char *type, const char *reason,
               const char *action, const char *controller, const char *instance,
               const char *note);

/* Helpers for raw objects. */
const char *kube_name(json_t *obj);
const char *kube_namespace(json_t *obj);
const char *kube_resource_version(json_t *obj);
const char *kube_label(json_t *obj, const char *key);
const char *kube_annotation(json_t *obj, const char *key);
/* The condition of this type in obj's status.conditions (borrowed), or NULL. */
json_t *kube_condition(json_t *obj, const char *type);
int64_t kube_generation(json_t *obj);
/* RFC 3339 in UTC with seconds ("2026-11-30T17:00:00Z"); into buf of >= 21. */
char *kube_format_time(int64_t unix_seconds, char buf[static 32]);
/* -EINVAL if not RFC 3339. */
int kube_parse_time(const char *s, int64_t *ret);

/* Label selector as used in list/watch ("a=b,c!=d,e in (x,y),f notin (z),g,!h").
 * kube_selector_matches() evaluates it against obj's labels; -EINVAL for a
 * malformed selector. Used by the operator to match nodes in its cache, and
 * by tests. */
int kube_selector_matches(const char *selector, json_t *labels) _warn_unused_result_;

/* An informer: list, then watch from the list's resourceVersion, in a thread
 * of its own with its own KubeClient; keeps a cache of the objects by
 * "namespace/name" (or "name"). Relists on 410 and reports objects missing
 * from the new list as deleted; a clean end of stream re-watches from the
 * last RV; errors back off 0.8 s doubling to 30 s with jitter, and a watch
 * that ends within 1 s with no events counts as an error.
 *
 * After every change to the cache it writes to notify_fd (an eventfd the
 * controller polls; may be -1), so a controller can be level-triggered:
 * wake, take a snapshot, reconcile. */
typedef struct KubeInformer KubeInformer;

typedef struct KubeInformerOptions {
        const char *path;               /* collection, e.g. "/api/v1/nodes" */
        const char *label_selector;
        const char *field_selector;
        int notify_fd;
        unsigned page_size;             /* 0: 500 */
        /* Optional, called in the informer's thread after each change to
         * the cache with the new (or, for DELETED, the last known) object:
         * ADDED/MODIFIED/DELETED from the watch, ADDED/MODIFIED for what a
         * (re)list brought, DELETED for cached objects missing from a
         * relist. Must not call back into the informer's stop. */
        KubeWatchFn on_event;
        void *userdata;
        /* Optional, as client-go's SetTransform: called on every object
         * before it is cached; returns a new reference to what to keep
         * (NULL: out of memory). Controllers use it to drop what they
         * never read (a real Node's images and managedFields are most of
         * its size), which is what keeps 5,000 cached Nodes small. */
        json_t *(*transform)(json_t *obj, void *userdata);
} KubeInformerOptions;

int kube_informer_start(KubeConfig *config, const KubeInformerOptions *o,
                        KubeInformer **ret) _warn_unused_result_;
KubeInformer *kube_informer_stop(KubeInformer *i);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeInformer *, kube_informer_stop);

/* True once the first list has completed. */
bool kube_informer_synced(KubeInformer *i);
/* A new reference to the cached object, or NULL. */
json_t *kube_informer_get(KubeInformer *i, const char *key);
/* A JSON object key -> object of the whole cache (new reference; the
 * objects themselves are shared and must not be modified). */
json_t *kube_informer_snapshot(KubeInformer *i);
/* Counters for metrics: lists done, watches started, relists after 410. */
void kube_informer_stats(KubeInformer *i, unsigned *ret_lists, unsigned *ret_watches,
                         unsigned *ret_relists);

/* Lease leader election (coordination.k8s.io/v1) as client-go does it, in a
 * thread of its own: acquire when the lease is free or its holder has not
 * renewed within leaseDurationSeconds of *local* observed time; renew every
 * retry period with a PUT carrying the cached resourceVersion (409: GET and
 * re-evaluate); leaseTransitions bumped only on a change of holder; stop
 * leading when no renewal succeeded within the renew deadline. Release
 * writes leaseDurationSeconds=1 so a successor takes over at once. */
typedef struct KubeLeader KubeLeader;

typedef struct KubeLeaderOptions {
        const char *ns;
        const char *name;
        const char *identity;
        unsigned lease_seconds;         /* 0: 15 */
        unsigned renew_deadline_seconds; /* 0: 10 */
        unsigned retry_seconds;         /* 0: 2 */
        int notify_fd;                  /* written on every change of leadership; may be -1 */
} KubeLeaderOptions;

/* -EINVAL unless lease > renew deadline > retry period (client-go's rule). */
int kube_leader_start(KubeConfig *config, const KubeLeaderOptions *o, KubeLeader **ret) _warn_unused_result_;
bool kube_leader_is_leader(KubeLeader *l);
/* True once leadership was held and then lost: the program must stop
 * acting (client-go's OnStoppedLeading, where controllers exit). */
bool kube_leader_lost(KubeLeader *l);
/* Stops the thread; releases the lease if held. */
KubeLeader *kube_leader_stop(KubeLeader *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeLeader *, kube_leader_stop);
