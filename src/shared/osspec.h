/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

/* The spec of an OS object (hull.dev/v1alpha1, docs/CRD.md), parsed and
 * validated completely before the operator acts on it, so that a bad custom
 * resource that slipped past the CRD schema is reported (Degraded) and never
 * half-applied. The JSON stays the source of truth; these structs borrow
 * nothing from it (all strings are copies). */

typedef enum OsOperation {
        OS_OPERATION_UPGRADE,
        OS_OPERATION_ROLLBACK,
        OS_OPERATION_CONFIG,
} OsOperation;

const char *os_operation_to_string(OsOperation o);
/* "upgrade" -> OS_OPERATION_UPGRADE ...; -EINVAL for anything else. */
int os_operation_from_string(const char *s);

/* An IntOrString as Kubernetes uses it for maxUnavailable: a count (>= 0) or
 * a percentage "0%".."100%" of a total. */
typedef struct OsIntOrPercent {
        bool percent;
        int64_t value;
} OsIntOrPercent;

/* A percentage rounds up for batch sizes and maxUnavailable (as Deployments
 * round maxSurge), but never gives more than total; a count is capped at
 * total. maxUnavailable resolves to at least 1 when total > 0, so that a
 * rollout can always move. */
int64_t os_int_or_percent_resolve(const OsIntOrPercent *v, int64_t total, bool at_least_one);

typedef enum OsPause {
        OS_PAUSE_NONE,          /* go on to the next batch at once */
        OS_PAUSE_MANUAL,        /* wait until spec.strategy.approvedBatches >= this batch's index + 1 */
        OS_PAUSE_DURATION,      /* wait pause_seconds after the batch completed */
} OsPause;

typedef struct OsBatch {
        OsIntOrPercent nodes;   /* size of this batch (not cumulative) */
        OsPause pause;          /* the gate *after* this batch */
        int64_t pause_seconds;
} OsBatch;

typedef struct OsWindow {
        bool set;
        uint8_t days;           /* bit 0 = Sunday ... bit 6 = Saturday; 0x7f: every day */
        int start_minute;       /* minutes after local midnight, 0..1439 */
        int end_minute;         /* may be < start: the window crosses midnight */
        char *time_zone;        /* IANA name, e.g. "Europe/Berlin"; "UTC" default */
} OsWindow;

typedef struct OsDrain {
        int64_t timeout_seconds;        /* default 600 */
        int64_t grace_period_seconds;   /* -1: the pod's own */
        bool delete_empty_dir_data;     /* default false: refuse pods with emptyDir */
        bool force;                     /* also pods without a controller; default false */
} OsDrain;

typedef struct OsImage {
        char *url;
        char *sha256;           /* 64 lowercase hex digits */
        char *key_id;           /* 16 hex digits, the signing key */
        char *kubelet_version;  /* the image's kubelet ("v1.33.0", kube-version.h), from its bundle
                                 * manifest; NULL: the image has no kubelet (no skew check) */
        bool has_created;       /* spec.image.created given */
        int64_t created;        /* when the image was published (unix seconds), as whoever set the
                                 * image declared it: the minImageAgeSeconds gate counts from it */
} OsImage;

/* spec.hooks (docs/CRD.md, "Hooks"): what hull-node does before it drains
 * a node and after the node booted a new image. A hook either runs an
 * executable on the node through hull-agent (POST /v1/hook, looked up in
 * /etc/hull/hooks.d, then /usr/lib/hull/hooks.d) or waits until the Node
 * carries a label or annotation that another controller sets. */
typedef enum OsHookKind {
        OS_HOOK_EXEC,
        OS_HOOK_WAIT_LABEL,
        OS_HOOK_WAIT_ANNOTATION,
} OsHookKind;

#define OS_HOOKS_MAX 8
#define OS_HOOK_TIMEOUT_DEFAULT 300
#define OS_HOOK_TIMEOUT_MAX 86400

typedef struct OsHook {
        OsHookKind kind;
        char *name;             /* exec: the hook's file name; wait: the label or annotation key */
        char *value;            /* wait: the value wanted; NULL: any value */
        int64_t timeout_seconds;
} OsHook;

typedef struct OsHooks {
        OsHook *pre_drain;
        size_t n_pre_drain;
        OsHook *post_boot;
        size_t n_post_boot;
} OsHooks;

/* spec.verify: the post-boot gate of an upgrade. The node is Done only when
 * its Node is Ready (reported by the kubelet of the new boot) and the pods
 * chosen on it are Ready within timeout_seconds; else hull-node rolls it
 * back. */
#define OS_VERIFY_TIMEOUT_DEFAULT 600
#define OS_VERIFY_TIMEOUT_MIN 10
typedef struct OsVerify {
        int64_t timeout_seconds;
        char *pod_selector;     /* label selector string from spec.verify.podSelector (kube.h syntax);
                                 * NULL: the node's DaemonSet pods */
} OsVerify;

void os_hooks_done(OsHooks *h);
void os_verify_done(OsVerify *v);
/* Parse spec.hooks / spec.verify (or the same objects in a node's task
 * annotation, which carries them as the spec has them); NULL or JSON null is
 * absent: no hooks, the default gate. path names the object in messages
 * ("spec.hooks"). -EINVAL with a message naming the field. */
int os_hooks_parse(json_t *hooks, const char *path, OsHooks *ret, char **ret_error) _warn_unused_result_;
int os_verify_parse(json_t *verify, const char *path, OsVerify *ret, char **ret_error) _warn_unused_result_;
/* "exec ceph-noout", "wait for label example.com/ok=true": for messages. */
char *os_hook_describe(const OsHook *h);

typedef struct OsSpec {
        char *node_selector;    /* label selector string made from spec.nodeSelector (matchLabels map):
                                 * "k1=v1,k2=v2" sorted by key; "" (never NULL) selects every node */
        char *version;
        OsImage image;          /* required for upgrade */
        OsOperation operation;
        OsIntOrPercent max_unavailable;   /* default 1 */
        OsBatch *batches;       /* empty: one batch of everything */
        size_t n_batches;
        int64_t approved_batches;         /* manual gates passed so far */
        bool paused;
        int64_t failure_budget; /* stop after this many failed nodes; default 1; 0: never stop */
        int64_t node_timeout_seconds;     /* default 3600 */
        /* The promotion gate (spec.strategy.after): an upgrade starts only
         * once the OS object after_os is Complete at the same version for
         * after_soak_seconds. NULL: no gate. */
        char *after_os;
        int64_t after_soak_seconds;       /* default 0 */
        int64_t min_image_age_seconds;    /* an upgrade starts image.created + this; 0: no gate */
        OsWindow window;
        OsDrain drain;
        json_t *config;         /* spec.config (node config document, docs/CONFIG.md), or NULL;
                                 * a deep copy, validated by node_config_parse(); required for config */
        int64_t config_generation;      /* spec.config.generation, 0 without a config */
        OsHooks hooks;
        OsVerify verify;
        json_t *hooks_json;     /* spec.hooks and spec.verify as given (deep copies, or NULL), */
        json_t *verify_json;    /* for the task annotation: hull-node parses them again */
} OsSpec;

void os_spec_done(OsSpec *s);

/* Parse and validate spec (the "spec" member of an OS object), applying the
 * CRD's defaults to absent fields (a JSON null counts as absent); unknown
 * fields are errors. Returns 0, or
 * -EINVAL with a message naming the field ("spec.strategy.maxUnavailable:
 * \"120%\": must be a count from 0 to 1000000000 or a percentage from 0% to
 * 100%") in *ret_error (free() it). What the CRD checks with a CEL rule is
 * refused here with the rule's message (CEL_MSG_* in osspec.c), so a cluster
 * without CEL refuses the same specs. Nothing is filled on error. */
int os_spec_parse(json_t *spec, OsSpec *ret, char **ret_error) _warn_unused_result_;

/* What os_spec_parse() cannot see: the object's own name. Refuses
 * spec.strategy.after.os naming the object itself (the CRD refuses it with a
 * CEL rule at the root, CEL_MSG_AFTER_SELF in osspec.c). 0 or -EINVAL with
 * the message in *ret_error (free() it). */
int os_spec_check_name(const OsSpec *s, const char *name, char **ret_error) _warn_unused_result_;

/* The id of the task this spec asks nodes to reach (hull.dev/task "id"):
 * "<os>/<operation>/<version>", plus "/config-<generation>" with a node
 * config, or "<os>/config/<generation>". NULL when out of memory. */
char *os_task_id(const char *os, const OsSpec *s);

/* A zone name the window can use: "UTC", or a TZif file below
 * /usr/share/zoneinfo named without "..", "//" or a leading "/". */
bool os_time_zone_is_valid(const char *name);

/* Whether t (unix seconds) lies inside the window, in its time zone. An
 * unset window is always open. -EINVAL for an unknown time zone. When
 * ret_next_open is non-NULL and the window is closed, it gets the next
 * opening time (for a requeue). Wall-clock semantics, windows crossing
 * midnight and DST: docs/CRD.md. Named zones are read from their TZif file
 * (tzfile.h); the environment is never touched, so any thread may call it
 * (libcurl reads the environment on other threads). */
int os_window_open(const OsWindow *w, int64_t t, bool *ret_open, int64_t *ret_next_open) _warn_unused_result_;
