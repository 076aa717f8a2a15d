/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hull-operator: the cluster controller (man/hull-operator.8). Watches
 * Nodes, OS and OSNode objects and, while it holds the leader Lease, plans
 * which nodes get the next task. All state is in the API server; what it
 * holds in memory is a cache, so it can be killed and restarted anywhere. */

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "operator.h"
#include "strutil.h"

#ifndef HULL_VERSION
#define HULL_VERSION "unknown"
#endif

static const char *arg_kubeconfig = NULL;
static const char *arg_context = NULL;
static const char *arg_namespace = NULL;
static const char *arg_lease = "hull-operator";
static const char *arg_identity = NULL;
static const char *arg_metrics = ":8080";
static unsigned arg_resync = 30;
static unsigned arg_min_interval_ms = 200;
static unsigned arg_lease_seconds = 15, arg_renew_seconds = 10, arg_retry_seconds = 2;

static void help(void) {
        printf("hull-operator — plans Hull OS rollouts across the cluster\n\n"
               "Usage: hull-operator [options]\n\n"
               "  --kubeconfig PATH         use a kubeconfig instead of the in-cluster service account\n"
               "  --context NAME            kubeconfig context\n"
               "  --namespace NS            namespace of the leader Lease (default: the pod's, else hull-system)\n"
               "  --lease-name NAME         leader Lease name (default hull-operator)\n"
               "  --identity ID             leader identity (default: $POD_NAME, else hostname_pid)\n"
               "  --lease-timing L,R,P      lease duration, renew deadline, retry period in seconds\n"
               "                            (default 15,10,2)\n"
               "  --metrics-address ADDR    /metrics and /healthz on [IPv4]:PORT (default :8080; \"off\")\n"
               "  --resync SEC              reconcile at least this often (default 30)\n"
               "  --min-interval-ms MS      at most one reconcile per MS under a burst of events (default 200)\n"
               "  -v, --verbose\n"
               "  --version\n\n"
               "See hull-operator(8), docs/OPERATOR.md and docs/CRD.md.\n");
}

static int parse_args(int argc, char **argv) {
        enum { ARG_KUBECONFIG = 0x100, ARG_CONTEXT, ARG_NAMESPACE, ARG_LEASE, ARG_IDENTITY, ARG_TIMING,
               ARG_METRICS, ARG_RESYNC, ARG_MIN_INTERVAL, ARG_VERSION };
        static const struct option opts[] = {
                { "kubeconfig", required_argument, NULL, ARG_KUBECONFIG },
                { "context", required_argument, NULL, ARG_CONTEXT },
                { "namespace", required_argument, NULL, ARG_NAMESPACE },
                { "lease-name", required_argument, NULL, ARG_LEASE },
                { "identity", required_argument, NULL, ARG_IDENTITY },
                { "lease-timing", required_argument, NULL, ARG_TIMING },
                { "metrics-address", required_argument, NULL, ARG_METRICS },
                { "resync", required_argument, NULL, ARG_RESYNC },
                { "min-interval-ms", required_argument, NULL, ARG_MIN_INTERVAL },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "hv", opts, NULL)) >= 0)
                switch (c) {
                case ARG_KUBECONFIG:
                        arg_kubeconfig = optarg;
                        break;
                case ARG_CONTEXT:
                        arg_context = optarg;
                        break;
                case ARG_NAMESPACE:
                        arg_namespace = optarg;
                        break;
                case ARG_LEASE:
                        arg_lease = optarg;
                        break;
                case ARG_IDENTITY:
                        arg_identity = optarg;
                        break;
                case ARG_TIMING:
                        if (sscanf(optarg, "%u,%u,%u", &arg_lease_seconds, &arg_renew_seconds, &arg_retry_seconds) != 3 ||
                            arg_retry_seconds == 0 || arg_renew_seconds <= arg_retry_seconds ||
                            arg_lease_seconds <= arg_renew_seconds) {
                                log_error("--lease-timing wants LEASE,RENEW,RETRY seconds with LEASE > RENEW > RETRY > 0, "
                                          "not '%s'", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_METRICS:
                        arg_metrics = optarg;
                        break;
                case ARG_RESYNC:
                        if (safe_atou(optarg, &arg_resync) < 0 || arg_resync == 0) {
                                log_error("--resync wants a positive number of seconds, not '%s'", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_MIN_INTERVAL:
                        if (safe_atou(optarg, &arg_min_interval_ms) < 0) {
                                log_error("--min-interval-ms wants milliseconds, not '%s'", optarg);
                                return -EINVAL;
                        }
                        break;
                case 'v':
                        log_set_max_level(LOG_DEBUG);
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("hull-operator %s\n", HULL_VERSION);
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                log_error("Unexpected argument '%s'; see --help", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

static int64_t mono_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv) {
        _cleanup_(kube_config_unrefp) KubeConfig *config = NULL;
        _cleanup_(kube_client_freep) KubeClient *kube = NULL;
        _cleanup_(kube_informer_stopp) KubeInformer *nodes = NULL, *oses = NULL, *osnodes = NULL;
        _cleanup_(kube_leader_stopp) KubeLeader *leader = NULL;
        _cleanup_(metrics_server_stopp) MetricsServer *ms = NULL;
        _cleanup_free_ char *err = NULL, *identity = NULL;
        _cleanup_close_ int efd = -EBADF, sfd = -EBADF;
        OperatorMetrics metrics = { .lock = PTHREAD_MUTEX_INITIALIZER };
        Operator op = {};
        sigset_t mask;
        int r, exit_status = 0;

        log_set_prefix("hull-operator");
        /* glibc gives every thread that allocates an arena of its own; the
         * informer threads parse whole list pages there and the freed
         * memory stays with each arena. Two arenas bound that at 5,000
         * nodes (bench/operator-fleet.py) for no measurable cost. */
        (void) mallopt(M_ARENA_MAX, 2);
        r = parse_args(argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : 0;

        if (!arg_identity)
                arg_identity = getenv("POD_NAME");
        if (isempty(arg_identity)) {
                char host[256] = "unknown";
                (void) gethostname(host, sizeof(host) - 1);
                if (asprintf(&identity, "%s_%d", host, (int) getpid()) < 0)
                        return log_oom(), 1;
                arg_identity = identity;
        }

        r = kube_global_init();
        if (r < 0)
                return log_error_errno(r, "Failed to initialise libcurl: %m"), 1;
        r = kube_config_auto(arg_kubeconfig, arg_context, &config, &err);
        if (r < 0)
                return log_error_errno(r, "Failed to load the Kubernetes client configuration: %s",
                                       err ?: "(no message)"), 1;
        if (!arg_namespace)
                arg_namespace = config->namespace ?: "hull-system";
        r = kube_config_set_user_agent(config, "hull-operator/" HULL_VERSION);
        if (r < 0)
                return log_oom(), 1;
        r = kube_client_new(config, &kube);
        if (r < 0)
                return log_error_errno(r, "Failed to create the Kubernetes client: %m"), 1;
        /* One slow write must not hold a pass (and the leadership check
         * between writes) for long. */
        kube_client_set_timeout(kube, 10000);

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m"), 1;
        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (sfd < 0 || efd < 0)
                return log_error_errno(errno, "Failed to create signalfd/eventfd: %m"), 1;

        metrics.os_counts = json_object();
        metrics.last_loop = mono_ms() / 1000;
        if (!metrics.os_counts)
                return log_oom(), 1;
        if (!streq(arg_metrics, "off")) {
                r = metrics_server_start(arg_metrics, &metrics, &ms);
                if (r < 0)
                        return log_error_errno(r, "Failed to serve metrics on '%s': %m", arg_metrics), 1;
        }

        /* Informers start before leadership so that a standby replica has a
         * warm cache and takes over within one lease duration. */
        /* Pages of 100 Nodes: a page is parsed whole before the transform
         * trims each Node, so the page size is the transient peak. */
        KubeInformerOptions io = { .notify_fd = efd, .path = NODE_PATH, .transform = operator_node_transform,
                                   .page_size = 100 };
        r = kube_informer_start(config, &io, &nodes);
        io.transform = NULL;
        io.page_size = 0;
        io.path = OS_PATH;
        if (r >= 0)
                r = kube_informer_start(config, &io, &oses);
        io.path = OSNODE_PATH;
        if (r >= 0)
                r = kube_informer_start(config, &io, &osnodes);
        if (r < 0)
                return log_error_errno(r, "Failed to start the informers: %m"), 1;

        KubeLeaderOptions lo = { .ns = arg_namespace, .name = arg_lease, .identity = arg_identity,
                                 .lease_seconds = arg_lease_seconds, .renew_deadline_seconds = arg_renew_seconds,
                                 .retry_seconds = arg_retry_seconds, .notify_fd = efd };
        r = kube_leader_start(config, &lo, &leader);
        if (r < 0)
                return log_error_errno(r, "Failed to start leader election: %m"), 1;
        log_info("Started as '%s'; leader election on Lease %s/%s", arg_identity, arg_namespace, arg_lease);

        op = (Operator) { .kube = kube, .nodes = nodes, .oses = oses, .osnodes = osnodes, .leader = leader,
                          .identity = arg_identity, .metrics = &metrics };
        int64_t last_reconcile = 0, next_resync = 0;
        bool was_leader = false;
        for (;;) {
                struct pollfd p[2] = { { .fd = sfd, .events = POLLIN }, { .fd = efd, .events = POLLIN } };
                int64_t now_ms = mono_ms();
                int timeout = 1000;
                bool ready = kube_leader_is_leader(leader) && kube_informer_synced(nodes) &&
                             kube_informer_synced(oses) && kube_informer_synced(osnodes);

                if (ready) {
                        int64_t due = next_resync;
                        if (op.requeue_at > 0) {
                                int64_t rq = now_ms + (op.requeue_at - time(NULL)) * 1000;
                                due = MIN(due, rq);
                        }
                        timeout = (int) MAX(0, MIN(due - now_ms, 1000));
                }
                r = poll(p, 2, timeout);
                if (r < 0 && errno != EINTR)
                        return log_error_errno(errno, "poll() failed: %m"), 1;
                if (p[0].revents & POLLIN) {
                        log_info("Stopping; releasing the lease");
                        break;
                }
                bool event = p[1].revents & POLLIN;
                if (event) {
                        uint64_t v;
                        (void) !read(efd, &v, sizeof(v));
                }
                now_ms = mono_ms();
                pthread_mutex_lock(&metrics.lock);
                metrics.last_loop = now_ms / 1000;
                metrics.leader = kube_leader_is_leader(leader);
                pthread_mutex_unlock(&metrics.lock);

                if (kube_leader_lost(leader)) {
                        /* As client-go's OnStoppedLeading: another replica may
                         * already act; the only safe thing is to stop. */
                        log_error("Lost the leader lease; exiting so that a fresh start rejoins the election");
                        exit_status = 1;
                        break;
                }
                if (!kube_leader_is_leader(leader) || !kube_informer_synced(nodes) ||
                    !kube_informer_synced(oses) || !kube_informer_synced(osnodes))
                        continue;
                if (!was_leader) {
                        /* The initial lists are done: give back what
                         * parsing them left free. */
                        (void) malloc_trim(0);
                        log_info("Leading; caches synced, reconciling");
                        was_leader = true;
                        next_resync = 0;
                }
                if (!event && now_ms < next_resync &&
                    !(op.requeue_at > 0 && time(NULL) >= op.requeue_at))
                        continue;
                /* Coalesce bursts of watch events into one pass. */
                if (now_ms - last_reconcile < (int64_t) arg_min_interval_ms) {
                        struct pollfd sp = { .fd = sfd, .events = POLLIN };
                        if (poll(&sp, 1, (int) (arg_min_interval_ms - (now_ms - last_reconcile))) > 0)
                                break;
                }

                struct timespec t0, t1;
                clock_gettime(CLOCK_MONOTONIC, &t0);
                r = operator_reconcile(&op, time(NULL));
                clock_gettime(CLOCK_MONOTONIC, &t1);
                last_reconcile = mono_ms();
                next_resync = last_reconcile + (int64_t) arg_resync * 1000;
                pthread_mutex_lock(&metrics.lock);
                metrics.reconciles++;
                if (r < 0)
                        metrics.reconcile_errors++;
                metrics.reconcile_seconds_sum += (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
                unsigned a = 0, b = 0, c = 0, total = 0;
                KubeInformer *all[] = { nodes, oses, osnodes };
                for (size_t i = 0; i < ELEMENTSOF(all); i++) {
                        kube_informer_stats(all[i], &a, &b, &c);
                        total += c;
                }
                metrics.relists = total;
                pthread_mutex_unlock(&metrics.lock);
                if (r < 0)
                        log_warning_errno(r, "Reconcile failed, retrying: %m");
                if (r < 0 && op.requeue_at == 0)
                        op.requeue_at = time(NULL) + 2;
        }
        operator_done(&op);
        json_decref(metrics.os_counts);
        return exit_status;
}
