/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kube.h"
#include "macro.h"

/* hull-operator's reconcile (docs/OPERATOR.md). Level-triggered: every pass
 * reads the informers' caches, plans every OS object with the pure planner
 * (rollout.h) and writes only the differences. The only state kept between
 * passes is "expectations" (as in the ReplicaSet controller): task
 * annotations written but not yet seen back through the Node watch, so that
 * a pass that runs before the cache has caught up never counts a node it
 * has just chosen as free, and never exceeds maxUnavailable because of it. */

#define OS_PATH "/apis/hull.dev/v1alpha1/oses"
#define OSNODE_PATH "/apis/hull.dev/v1alpha1/osnodes"
#define NODE_PATH "/api/v1/nodes"
#define LABEL_UNMANAGED "hull.dev/unmanaged"
#define LABEL_QUARANTINED "hull.dev/quarantined"
#define ANNOTATION_TASK "hull.dev/task"

/* Counters for /metrics, written by the control loop, read by the HTTP
 * thread under the lock. */
typedef struct OperatorMetrics {
        pthread_mutex_t lock;
        bool leader;
        uint64_t reconciles;
        uint64_t reconcile_errors;
        double reconcile_seconds_sum;
        uint64_t nodes_chosen;
        uint64_t nodes_quarantined;
        uint64_t api_writes;
        int64_t last_loop;              /* monotonic seconds of the last loop iteration */
        json_t *os_counts;              /* { os name: {desired, updated, inProgress, failed, unavailable} } */
        unsigned lists, watches, relists;
} OperatorMetrics;

typedef struct Expectation {
        char *node;
        char *task;                     /* the annotation value we wrote */
        char *rv;                       /* resourceVersion the patch returned */
        int64_t since;                  /* monotonic seconds */
} Expectation;

typedef struct Operator {
        KubeClient *kube;
        KubeInformer *nodes;
        KubeInformer *oses;
        KubeInformer *osnodes;
        KubeLeader *leader;             /* NULL in tests: always leading */
        const char *identity;
        OperatorMetrics *metrics;
        Expectation *expect;
        size_t n_expect;
        json_t *last_hold;              /* { os name: hold string } to send an Event on change only */
        int64_t requeue_at;             /* wall clock; 0: none */
        /* GET /version's gitVersion, for the kubelet version-skew check;
         * read again after APISERVER_VERSION_TTL seconds (monotonic). */
        char *apiserver_version;
        int64_t apiserver_version_at;
} Operator;

#define APISERVER_VERSION_TTL 60

void operator_done(Operator *o);

/* Informer transform for Nodes (KubeInformerOptions.transform). */
json_t *operator_node_transform(json_t *node, void *userdata);

/* One pass over every OS object. */
int operator_reconcile(Operator *o, int64_t now);

/* metrics.c: Prometheus text exposition and /healthz on a TCP port. */
typedef struct MetricsServer MetricsServer;
int metrics_server_start(const char *address, OperatorMetrics *m, MetricsServer **ret);
MetricsServer *metrics_server_stop(MetricsServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(MetricsServer *, metrics_server_stop);
/* Exposed for the unit test. */
char *metrics_render(OperatorMetrics *m);
