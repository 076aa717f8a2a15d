/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* /metrics (Prometheus text format 0.0.4) and /healthz on a TCP port,
 * served by libmicrohttpd's own thread so that a slow scrape never holds
 * up the control loop. */

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "operator.h"
#include "strutil.h"

/* /healthz fails when the control loop has not come round for this long:
 * a wedged loop is the one thing a liveness probe can fix by restarting. */
#define HEALTHZ_STALL_SECONDS 120

struct MetricsServer {
        struct MHD_Daemon *daemon;
        OperatorMetrics *metrics;
};

static int64_t mono_seconds(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec;
}

char *metrics_render(OperatorMetrics *m) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        const char *k;
        json_t *v;

        if (!f)
                return NULL;
        pthread_mutex_lock(&m->lock);
        fprintf(f,
                "# HELP hull_operator_leader Whether this replica holds the leader lease.\n"
                "# TYPE hull_operator_leader gauge\nhull_operator_leader %d\n"
                "# HELP hull_operator_reconciles_total Reconcile passes.\n"
                "# TYPE hull_operator_reconciles_total counter\nhull_operator_reconciles_total %" PRIu64 "\n"
                "# HELP hull_operator_reconcile_errors_total Reconcile passes that hit an error.\n"
                "# TYPE hull_operator_reconcile_errors_total counter\nhull_operator_reconcile_errors_total %" PRIu64 "\n"
                "# HELP hull_operator_reconcile_seconds_total Time spent reconciling.\n"
                "# TYPE hull_operator_reconcile_seconds_total counter\nhull_operator_reconcile_seconds_total %.6f\n"
                "# HELP hull_operator_nodes_chosen_total Nodes handed a task.\n"
                "# TYPE hull_operator_nodes_chosen_total counter\nhull_operator_nodes_chosen_total %" PRIu64 "\n"
                "# HELP hull_operator_nodes_quarantined_total Nodes quarantined after the node timeout.\n"
                "# TYPE hull_operator_nodes_quarantined_total counter\nhull_operator_nodes_quarantined_total %" PRIu64 "\n"
                "# HELP hull_operator_api_writes_total Writes sent to the API server.\n"
                "# TYPE hull_operator_api_writes_total counter\nhull_operator_api_writes_total %" PRIu64 "\n"
                "# HELP hull_operator_informer_relists_total Relists after 410 Gone, all informers.\n"
                "# TYPE hull_operator_informer_relists_total counter\nhull_operator_informer_relists_total %u\n",
                m->leader ? 1 : 0, m->reconciles, m->reconcile_errors, m->reconcile_seconds_sum, m->nodes_chosen,
                m->nodes_quarantined, m->api_writes, m->relists);
        fputs("# HELP hull_os_nodes Nodes of an OS object by rollout state.\n# TYPE hull_os_nodes gauge\n", f);
        json_object_foreach(m->os_counts, k, v) {
                const char *state;
                json_t *n;
                json_object_foreach(v, state, n)
                        fprintf(f, "hull_os_nodes{os=\"%s\",state=\"%s\"} %" JSON_INTEGER_FORMAT "\n", k, state,
                                json_integer_value(n));
        }
        pthread_mutex_unlock(&m->lock);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size,
                              void **con_cls) {
        MetricsServer *s = cls;
        struct MHD_Response *resp;
        unsigned code = MHD_HTTP_OK;
        enum MHD_Result ret;
        char *body = NULL;

        if (!streq(method, "GET") && !streq(method, "HEAD"))
                code = MHD_HTTP_METHOD_NOT_ALLOWED, body = strdup("method not allowed\n");
        else if (streq(url, "/metrics"))
                body = metrics_render(s->metrics);
        else if (streq(url, "/healthz") || streq(url, "/readyz")) {
                pthread_mutex_lock(&s->metrics->lock);
                int64_t last = s->metrics->last_loop;
                pthread_mutex_unlock(&s->metrics->lock);
                if (mono_seconds() - last > HEALTHZ_STALL_SECONDS)
                        code = MHD_HTTP_SERVICE_UNAVAILABLE, body = strdup("control loop stalled\n");
                else
                        body = strdup("ok\n");
        } else
                code = MHD_HTTP_NOT_FOUND, body = strdup("not found\n");
        if (!body)
                return MHD_NO;
        resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
                free(body);
                return MHD_NO;
        }
        (void) MHD_add_response_header(resp, "Content-Type",
                                       streq(url, "/metrics") ? "text/plain; version=0.0.4" : "text/plain");
        ret = MHD_queue_response(conn, code, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* address: "PORT", ":PORT" or "IPv4:PORT". */
int metrics_server_start(const char *address, OperatorMetrics *m, MetricsServer **ret) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
        const char *colon = strrchr(address, ':');
        unsigned port;

        if (colon && colon != address) {
                _cleanup_free_ char *host = strndup(address, colon - address);
                if (!host)
                        return -ENOMEM;
                if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
                        return -EINVAL;
        }
        if (safe_atou(colon ? colon + 1 : address, &port) < 0 || port > 65535)
                return -EINVAL;
        sa.sin_port = htons(port);
        MetricsServer *s = calloc(1, sizeof(MetricsServer));
        if (!s)
                return -ENOMEM;
        s->metrics = m;
        s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, answer, s,
                                     MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_CONNECTION_LIMIT, 16,
                                     MHD_OPTION_CONNECTION_TIMEOUT, 10, MHD_OPTION_END);
        if (!s->daemon) {
                free(s);
                return -EADDRINUSE;
        }
        *ret = s;
        return 0;
}

MetricsServer *metrics_server_stop(MetricsServer *s) {
        if (!s)
                return NULL;
        MHD_stop_daemon(s->daemon);
        free(s);
        return NULL;
}
