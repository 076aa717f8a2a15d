/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent-client.h"
#include "components.h"
#include "kube.h"
#include "macro.h"
#include "osspec.h"
#include "rollout.h"

/* hull-node: the per-node controller (docs/OPERATOR.md, "hull-node"). It
 * keeps no state of its own that matters: the task is the Node's
 * hull.dev/task annotation, progress is the OSNode status, and the host's
 * truth is the agent's /v1/status. A restart (which is what a reboot looks
 * like from inside the pod) picks up from there. */

#define NODE_ANNOTATION_TASK "hull.dev/task"
#define NODE_ANNOTATION_CORDONED "hull.dev/cordoned"
#define OSNODE_PATH "/apis/hull.dev/v1alpha1/osnodes"
/* OSNode status.lastError.message is at most 4096 characters (CRD). */
#define OSNODE_ERROR_MAX 2048

typedef enum TaskOperation {
        TASK_UPGRADE,
        TASK_ROLLBACK,
        TASK_CONFIG,
} TaskOperation;

typedef struct Task {
        char *id;
        char *os;
        TaskOperation operation;
        char *version;
        char *image_url;
        char *image_sha256;
        char *image_key_id;
        json_t *config;                 /* node config document, or NULL */
        int64_t config_generation;
        int64_t drain_timeout;          /* seconds */
        int64_t grace_period;           /* -1: the pod's own */
        bool delete_empty_dir_data;
        bool force;
        OsHooks hooks;                  /* hooks.preDrain, hooks.postBoot */
        OsVerify verify;                /* the post-boot gate (upgrades) */
} Task;

void task_done(Task *t);
/* Parses the hull.dev/task annotation. -EINVAL with a message. */
int task_parse(const char *annotation, Task *ret, char **ret_error);

/* What the agent says about the host, reduced to what hull-node needs. */
typedef struct AgentView {
        bool reachable;
        char *version;                  /* running OS version */
        char *boot_id;
        char *booted_slot;
        bool booted_good;
        char *other_slot;
        char *other_state;              /* empty, staged, bad, trying, exhausted, good */
        char *other_version;
        /* What the agent says the images hold (docs/AGENT-API.md, slot
         * "components"); empty when it says nothing or something invalid. */
        Components booted_components;
        Components other_components;
        int64_t config_generation;
        bool reboot_required;
        char *health;                   /* pending, checking, healthy, unhealthy */
        /* Last operation. */
        int64_t op_id;
        char *op_type;
        char *op_state;                 /* running, succeeded, failed */
        char *op_version;
        char *op_error;                 /* "code: message" or NULL */
        char *op_hook_name;             /* a hook operation: its name, exit code, output */
        char *op_hook_output;
        char *op_notice;                /* e.g. a server without Range: a full download */
        /* What the stage downloaded (docs/DELTA.md); op_bundle 0: not said. */
        uint64_t op_bundle, op_fetched;
        bool op_full;
} AgentView;

void agent_view_done(AgentView *v);
int agent_view_fetch(AgentClient *c, AgentView *ret);

typedef struct DrainState DrainState;

typedef struct NodeCtx {
        const char *node_name;
        const char *identity;           /* for Events: reportingInstance */
        KubeClient *kube;
        AgentClient *agent;
        KubeInformer *node_informer;
        KubeInformer *osnode_informer;
        DrainState *drain;              /* only while draining */
        json_t *osnode_mine;            /* our last OSNode status write, until the cache has it */
        int64_t next_drain_step;        /* monotonic seconds */
        int64_t now;                    /* wall clock, seconds, for this pass */
        bool busy;                      /* working on a task: poll more often */
        unsigned reboot_retry;          /* seconds in Rebooting, still up, before asking again; 0: never */
        /* Passed on in stage requests; paths on the host, where the agent runs. */
        const char *image_ca_file;
        const char *image_client_cert;
        const char *image_client_key;
} NodeCtx;

/* One level-triggered pass: compare task, OSNode status and agent status,
 * and take the next step. Never blocks longer than one API call. */
int node_reconcile(NodeCtx *ctx);

/* Ensure the OSNode object exists (created empty; its status written by
 * node_reconcile()). */
int node_ensure_osnode(NodeCtx *ctx);

/* Drain (drain.c): one step each call. Returns 1 when the node is drained,
 * 0 when work remains, -ETIMEDOUT past the deadline, -EPERM for a pod that
 * may not be evicted under the task's rules; *ret_error says which pods. */
DrainState *drain_state_new(int64_t deadline);
DrainState *drain_state_free(DrainState *d);
int drain_step(NodeCtx *ctx, DrainState *d, const Task *t, char **ret_error);
