/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hull-node: the per-node Kubernetes controller (man/hull-node.8). Runs as a
 * DaemonSet pod with the host's agent socket mounted; watches its own Node
 * and OSNode and, when the operator hands the node a task, stages, cordons,
 * drains, reboots through the agent and reports every phase. */

#include <errno.h>
#include <getopt.h>
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
#include "node.h"
#include "strutil.h"

#ifndef HULL_VERSION
#define HULL_VERSION "unknown"
#endif

static const char *arg_node = NULL;
static const char *arg_kubeconfig = NULL;
static const char *arg_context = NULL;
static const char *arg_socket = AGENT_DEFAULT_SOCKET;
static unsigned arg_poll_busy_ms = 1000;
static unsigned arg_poll_idle_ms = 30000;
static const char *arg_image_ca = NULL;
static const char *arg_image_cert = NULL;
static const char *arg_image_key = NULL;
static unsigned arg_reboot_retry = 300;

static void help(void) {
        printf("hull-node — per-node controller of Hull OS updates\n\n"
               "Usage: hull-node [options]\n\n"
               "  --node NAME          this node (default: $NODE_NAME)\n"
               "  --agent-socket PATH  hull-agent's socket (default %s)\n"
               "  --kubeconfig PATH    use a kubeconfig instead of the in-cluster service account\n"
               "  --context NAME       kubeconfig context (default: current-context)\n"
               "  --poll-ms BUSY,IDLE  how often to look at the agent while working / idle\n"
               "                       (default 1000,30000)\n"
               "  --image-ca-file F    CA bundle the agent uses to verify the image server\n"
               "                       (a path on the host; default: the host's CA store)\n"
               "  --image-client-cert F --image-client-key F\n"
               "                       client certificate for the image server (host paths)\n"
               "  --reboot-retry SEC   ask the agent again when the node is still up SEC\n"
               "                       seconds into Rebooting (default 300; 0: never)\n"
               "  -v, --verbose        debug logging\n"
               "  --version\n\n"
               "See hull-node(8) and docs/OPERATOR.md.\n", AGENT_DEFAULT_SOCKET);
}

static int parse_args(int argc, char **argv) {
        enum { ARG_NODE = 0x100, ARG_SOCKET, ARG_KUBECONFIG, ARG_CONTEXT, ARG_POLL, ARG_VERSION, ARG_IMAGE_CA,
               ARG_IMAGE_CERT, ARG_IMAGE_KEY, ARG_REBOOT_RETRY };
        static const struct option opts[] = {
                { "node", required_argument, NULL, ARG_NODE },
                { "agent-socket", required_argument, NULL, ARG_SOCKET },
                { "kubeconfig", required_argument, NULL, ARG_KUBECONFIG },
                { "context", required_argument, NULL, ARG_CONTEXT },
                { "poll-ms", required_argument, NULL, ARG_POLL },
                { "image-ca-file", required_argument, NULL, ARG_IMAGE_CA },
                { "image-client-cert", required_argument, NULL, ARG_IMAGE_CERT },
                { "image-client-key", required_argument, NULL, ARG_IMAGE_KEY },
                { "reboot-retry", required_argument, NULL, ARG_REBOOT_RETRY },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "hv", opts, NULL)) >= 0)
                switch (c) {
                case ARG_NODE:
                        arg_node = optarg;
                        break;
                case ARG_SOCKET:
                        arg_socket = optarg;
                        break;
                case ARG_KUBECONFIG:
                        arg_kubeconfig = optarg;
                        break;
                case ARG_CONTEXT:
                        arg_context = optarg;
                        break;
                case ARG_POLL:
                        if (sscanf(optarg, "%u,%u", &arg_poll_busy_ms, &arg_poll_idle_ms) != 2 ||
                            arg_poll_busy_ms < 10 || arg_poll_idle_ms < arg_poll_busy_ms) {
                                log_error("--poll-ms wants BUSY,IDLE in milliseconds (BUSY >= 10, IDLE >= BUSY), "
                                          "not '%s'", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_IMAGE_CA:
                        arg_image_ca = optarg;
                        break;
                case ARG_IMAGE_CERT:
                        arg_image_cert = optarg;
                        break;
                case ARG_IMAGE_KEY:
                        arg_image_key = optarg;
                        break;
                case ARG_REBOOT_RETRY:
                        if (safe_atou(optarg, &arg_reboot_retry) < 0 || arg_reboot_retry > 86400) {
                                log_error("--reboot-retry wants 0 to 86400 seconds, not '%s'", optarg);
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
                        printf("hull-node %s\n", HULL_VERSION);
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                log_error("Unexpected argument '%s'; see --help", argv[optind]);
                return -EINVAL;
        }
        if (!arg_image_cert != !arg_image_key) {
                log_error("--image-client-cert and --image-client-key go together");
                return -EINVAL;
        }
        if (!arg_node)
                arg_node = getenv("NODE_NAME");
        if (isempty(arg_node)) {
                log_error("No node name: pass --node or set NODE_NAME (the DaemonSet sets it from "
                          "spec.nodeName)");
                return -EINVAL;
        }
        return 1;
}

static void drain_eventfd(int fd) {
        uint64_t v;
        (void) !read(fd, &v, sizeof(v));
}

int main(int argc, char **argv) {
        _cleanup_(kube_config_unrefp) KubeConfig *config = NULL;
        _cleanup_(kube_client_freep) KubeClient *kube = NULL;
        _cleanup_(agent_client_freep) AgentClient *agent = NULL;
        _cleanup_(kube_informer_stopp) KubeInformer *ni = NULL, *oi = NULL;
        _cleanup_free_ char *err = NULL, *selector = NULL, *identity = NULL;
        _cleanup_close_ int efd = -EBADF, sfd = -EBADF;
        sigset_t mask;
        int r;

        log_set_prefix("hull-node");
        r = parse_args(argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : 0;

        r = kube_global_init();
        if (r < 0)
                return log_error_errno(r, "Failed to initialise libcurl: %m"), 1;
        r = kube_config_auto(arg_kubeconfig, arg_context, &config, &err);
        if (r < 0)
                return log_error_errno(r, "Failed to load the Kubernetes client configuration: %s",
                                       err ?: "(no message)"), 1;
        r = kube_config_set_user_agent(config, "hull-node/" HULL_VERSION);
        if (r < 0)
                return log_oom(), 1;
        r = kube_client_new(config, &kube);
        if (r < 0)
                return log_error_errno(r, "Failed to create the Kubernetes client: %m"), 1;
        r = agent_client_new(arg_socket, &agent);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the agent client: %m"), 1;
        agent_client_set_timeout(agent, 30);

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m"), 1;
        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (sfd < 0 || efd < 0)
                return log_error_errno(errno, "Failed to create signalfd/eventfd: %m"), 1;

        if (asprintf(&selector, "metadata.name=%s", arg_node) < 0 ||
            asprintf(&identity, "%s/%d", arg_node, (int) getpid()) < 0)
                return log_oom(), 1;

        NodeCtx ctx = { .node_name = arg_node, .identity = identity, .kube = kube, .agent = agent,
                        .image_ca_file = arg_image_ca, .image_client_cert = arg_image_cert,
                        .image_client_key = arg_image_key, .reboot_retry = arg_reboot_retry };
        /* The OSNode must exist before its informer can see it; retry until
         * the API server answers (the pod may start before the network). */
        for (unsigned delay = 1;; delay = MIN(delay * 2, 30U)) {
                r = node_ensure_osnode(&ctx);
                if (r >= 0)
                        break;
                struct pollfd p = { .fd = sfd, .events = POLLIN };
                if (poll(&p, 1, (int) delay * 1000) > 0)
                        return 0;
        }

        KubeInformerOptions no = { .path = "/api/v1/nodes", .field_selector = selector, .notify_fd = efd };
        KubeInformerOptions oo = { .path = OSNODE_PATH, .field_selector = selector, .notify_fd = efd };
        r = kube_informer_start(config, &no, &ni);
        if (r >= 0)
                r = kube_informer_start(config, &oo, &oi);
        if (r < 0)
                return log_error_errno(r, "Failed to start watching node '%s': %m", arg_node), 1;
        ctx.node_informer = ni;
        ctx.osnode_informer = oi;
        log_info("Managing node '%s' through %s", arg_node, arg_socket);

        for (;;) {
                struct pollfd p[2] = { { .fd = sfd, .events = POLLIN }, { .fd = efd, .events = POLLIN } };
                int timeout = ctx.busy ? (int) arg_poll_busy_ms : (int) arg_poll_idle_ms;

                if (!kube_informer_synced(ni) || !kube_informer_synced(oi))
                        timeout = 200;
                r = poll(p, 2, timeout);
                if (r < 0 && errno != EINTR)
                        return log_error_errno(errno, "poll() failed: %m"), 1;
                if (p[0].revents & POLLIN) {
                        log_info("Stopping; the task (if any) resumes from the OSNode status on the next start");
                        break;
                }
                if (p[1].revents & POLLIN)
                        drain_eventfd(efd);
                if (!kube_informer_synced(ni) || !kube_informer_synced(oi))
                        continue;
                r = node_reconcile(&ctx);
                if (r < 0)
                        log_warning_errno(r, "Reconcile failed, retrying: %m");
        }
        ctx.drain = drain_state_free(ctx.drain);
        json_decref(ctx.osnode_mine);
        return 0;
}
