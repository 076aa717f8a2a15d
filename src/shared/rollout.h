/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "osspec.h"

/* The rollout planner: a pure function from (OS spec, the nodes it selects,
 * what was recorded in the OS status, now) to a decision. It holds no state
 * between calls, so an operator killed at any point and restarted decides
 * the same from what is in the API server. docs/OPERATOR.md describes the
 * rules; every rule is unit-tested in tests/unit/test-rollout.c. */

typedef enum NodePhase {
        NODE_PHASE_IDLE,
        NODE_PHASE_STAGING,
        NODE_PHASE_DRAINING,
        NODE_PHASE_REBOOTING,
        NODE_PHASE_VERIFYING,
        NODE_PHASE_DONE,
        NODE_PHASE_FAILED,
        NODE_PHASE_ROLLED_BACK,
        _NODE_PHASE_MAX,
        _NODE_PHASE_INVALID = -EINVAL,
} NodePhase;

const char *node_phase_to_string(NodePhase p);
NodePhase node_phase_from_string(const char *s);

/* One node as the planner sees it: the Node object and its OSNode status,
 * already reduced by the caller. Strings are borrowed. */
typedef struct RolloutNode {
        const char *name;
        bool ready;                     /* Node condition Ready == True */
        bool unschedulable;             /* cordoned (by anyone) */
        bool quarantined;               /* label hull.dev/quarantined=true */
        /* The hull.dev/task annotation, if the node has one. */
        const char *task_id;            /* NULL: no task */
        int64_t task_chosen_at;         /* unix seconds */
        /* OSNode status, as hull-node reported it. */
        NodePhase phase;
        const char *phase_task_id;      /* the task the phase is about; NULL: none */
        const char *version;            /* running OS version; NULL: unknown */
        int64_t config_generation;      /* applied node config generation */
} RolloutNode;

/* The promotion gate (spec.strategy.after, docs/OPERATOR.md "Promotion"):
 * what the caller read of the OS object named there, from its informer
 * cache. Strings are borrowed. */
typedef struct RolloutPromotion {
        bool exists;                    /* the OS object exists (and is not being deleted) */
        const char *version;            /* its spec.version; NULL: none that is a string */
        bool complete;                  /* its condition Complete is True, written for its current
                                         * metadata.generation (an older one may be about another version) */
        int64_t complete_since;         /* that condition's lastTransitionTime (unix seconds) */
        int64_t desired;                /* its status.desired: a Complete of no nodes proves nothing */
} RolloutPromotion;

typedef struct RolloutInput {
        const OsSpec *spec;
        const char *task_id;            /* this rollout's task id ("<os name>/<generation>") */
        RolloutNode *nodes;             /* the managed nodes the spec selects, without conflicts */
        size_t n_nodes;
        /* Nodes the spec selects but may not touch (another OS selects them
         * too) that are down now: NotReady, cordoned or with a task in
         * flight. Not ours to plan, but a node that is down is down: they
         * count against maxUnavailable. */
        int64_t unavailable_elsewhere;
        /* From the OS status: the last batch seen finished, and when. */
        int64_t completed_batches;      /* batches 0..completed_batches-1 are finished */
        int64_t batch_completed_at;     /* when the last of them finished (unix seconds), 0 if none */
        int64_t now;
        /* The kubelet version-skew check of an upgrade (docs/OPERATOR.md,
         * "Version skew"), made by the caller against the API server: a
         * refusal (the message names both versions) starts no node and
         * holds the rollout as Degraded; "unknown" (the API server's version
         * could not be read) starts no node and looks again after
         * ROLLOUT_SKEW_RETRY_SECONDS. Neither stops nodes in progress. */
        const char *skew_refusal;       /* NULL: allowed, or no check needed */
        bool skew_unknown;
        /* The OS object spec->after_os names; ignored without after_os. */
        RolloutPromotion after;
} RolloutInput;

#define ROLLOUT_SKEW_RETRY_SECONDS 10

typedef enum RolloutNodeState {
        ROLLOUT_NODE_PENDING,           /* not touched yet */
        ROLLOUT_NODE_IN_PROGRESS,       /* task given, not done */
        ROLLOUT_NODE_UPDATED,           /* at the wanted version / config generation */
        ROLLOUT_NODE_FAILED,            /* failed this task, or quarantined */
} RolloutNodeState;

/* How one node counts for this rollout (docs/OPERATOR.md, rule 1). Besides
 * the rules there: a node whose phase is Done for this task but that does
 * not run the target counts as FAILED; for upgrade/rollback with a
 * spec.config the node must also have config_generation >= the spec's. */
RolloutNodeState rollout_node_state(const RolloutInput *in, const RolloutNode *n);

typedef enum RolloutHold {
        ROLLOUT_GO,                     /* choosing nodes */
        ROLLOUT_COMPLETE,
        ROLLOUT_PAUSED,                 /* spec.strategy.paused */
        ROLLOUT_FAILURE_BUDGET,         /* too many failed nodes: halted */
        ROLLOUT_WINDOW_CLOSED,
        ROLLOUT_BATCH_GATE_MANUAL,      /* waiting for approvedBatches */
        ROLLOUT_BATCH_GATE_TIMER,       /* waiting for the pause after a batch */
        ROLLOUT_WAITING,                /* batch or maxUnavailable full: waiting for nodes */
        ROLLOUT_VERSION_SKEW,           /* the image's kubelet breaks the version skew policy: refused */
        ROLLOUT_VERSION_UNKNOWN,        /* the API server's version is not known yet: retrying */
        /* The start gates of an upgrade, checked until a node has been
         * given this rollout's task: */
        ROLLOUT_IMAGE_TOO_NEW,          /* before spec.image.created + minImageAgeSeconds */
        ROLLOUT_WAITING_FOR_PROMOTION,  /* spec.strategy.after: the other OS is not Complete at
                                         * this version for soakSeconds yet */
} RolloutHold;

const char *rollout_hold_to_string(RolloutHold h);

typedef struct RolloutPlan {
        /* Counts for the OS status. */
        int64_t desired, updated, in_progress, failed, unavailable;
        int64_t current_batch;          /* 0-based index of the batch being rolled out (the one
                                         * finishing while its last nodes are in progress) */
        int64_t n_batches;              /* batches after resolving (>= 1) */
        int64_t completed_batches;      /* to record in the status */
        int64_t batch_completed_at;     /* to record in the status */
        RolloutHold hold;
        int64_t requeue_at;             /* when to look again without any event (0: only on events):
                                         * the earliest of the window opening, the end of a batch
                                         * pause and the first node timeout */
        /* Indices into in->nodes. */
        size_t *choose;                 /* give these the task now */
        size_t n_choose;
        size_t *quarantine;             /* past spec.strategy.nodeTimeout: quarantine */
        size_t n_quarantine;
        char *message;                  /* one line for humans, for the Progressing condition */
} RolloutPlan;

void rollout_plan_done(RolloutPlan *p);

/* Never chooses more nodes than keep unavailable <= maxUnavailable, where
 * unavailable counts nodes in progress plus nodes that are NotReady or
 * cordoned for any reason. -ENOMEM or -EINVAL (an unknown time zone). */
int rollout_plan(const RolloutInput *in, RolloutPlan *ret) _warn_unused_result_;
