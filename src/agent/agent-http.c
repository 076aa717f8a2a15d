/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <systemd/sd-daemon.h>

#include "agent-api.h"
#include "agent.h"
#include "debug-exec.h"
#include "fileio.h"
#include "log.h"
#include "spawn.h"
#include "strutil.h"

/* The HTTP side: libmicrohttpd on a Unix socket we create ourselves (MHD
 * only knows TCP, but serves any listening stream socket handed to it).
 * Staging and health checks run on the worker thread; a connection thread
 * only blocks for an admin-container command. */

#define CONNECTION_LIMIT 32
#define CONNECTION_TIMEOUT_SEC 30

typedef struct Request {
        char *body;
        size_t size;
        bool too_large;
        bool allowed;
        uid_t uid;
        pid_t pid;
} Request;

static gid_t socket_gid = 0;

static bool peer_allowed(int fd, struct ucred *cred) {
        socklen_t l = sizeof(*cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &l) < 0)
                return false;
        if (cred->uid == 0)
                return true;
        if (socket_gid == 0)
                return false;
        if (cred->gid == socket_gid)
                return true;
        /* Supplementary groups of the peer, as of connect(). A peer in more
         * than 1024 groups gets ERANGE and is refused. */
        gid_t groups[1024];
        l = sizeof(groups);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &l) < 0)
                return false;
        for (size_t i = 0; i < l / sizeof(gid_t); i++)
                if (groups[i] == socket_gid)
                        return true;
        return false;
}

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, char *body) {
        const char *b = body ?: "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\",\"errno\":\"ENOMEM\"}}";
        size_t len = strlen(b);
        /* MHD copies the buffer, so the body can go right away. */
        struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *) b, MHD_RESPMEM_MUST_COPY);
        free(body);
        if (!r)
                return MHD_NO;
        (void) MHD_add_response_header(r, "Content-Type", "application/json");
        enum MHD_Result ret = MHD_queue_response(c, status, r);
        MHD_destroy_response(r);
        return ret;
}

static void audit_request(Agent *a, const Request *rq, const char *method, const char *url, unsigned status,
                          const char *body) {
        if (!a->audit)
                return;
        /* The error message of the response, if any, goes into the record. */
        _cleanup_(json_decrefp) json_t *j = body ? json_loads(body, 0, NULL) : NULL;
        const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        json_int_t op = json_integer_value(json_object_get(j, "id"));
        if (!op)
                op = json_integer_value(json_object_get(json_object_get(j, "operation"), "id"));
        AuditRecord rec = {
                .time_usec = 0,
                .uid = rq->uid,
                .pid = rq->pid,
                .method = method,
                .path = url,
                .request_json = rq->body ?: "",
                .status = status,
                .result = status == 403 ? "refused" : status >= 400 ? "failed" : status == 202 || status == 101 ? "accepted" : "ok",
                .error = msg,
                .op_id = op > 0 ? (uint64_t) op : 0,
        };
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rec.time_usec = (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
        int r = audit_log_append(a->audit, &rec);
        if (r < 0)
                log_error_errno(r, "Failed to append to the audit log: %m");
}

static unsigned route(Agent *a, struct MHD_Connection *c, const char *method, const char *url, Request *rq,
                      char **body) {
        bool get = streq(method, "GET"), post = streq(method, "POST");
        const char *b = rq->body ?: "";

        static const char *const gets[] = { "/v1/status", "/v1/operation", "/v1/config", "/v1/audit" };
        static const char *const posts[] = { "/v1/stage", "/v1/activate", "/v1/mark-good",
                                             "/v1/rollback", "/v1/config", "/v1/debug",
                                             "/v1/reboot", "/v1/hook" };
        bool known_get = false, known_post = false;
        for (size_t i = 0; i < ELEMENTSOF(gets); i++)
                known_get = known_get || streq(url, gets[i]);
        for (size_t i = 0; i < ELEMENTSOF(posts); i++)
                known_post = known_post || streq(url, posts[i]);

        if (!known_get && !known_post)
                return agent_error(404, "not_found", -ENOENT, body, "no such endpoint: %s %s (the API is described in docs/AGENT-API.md)",
                                   method, url);
        if ((get && !known_get) || (post && !known_post) || (!get && !post))
                return agent_error(405, "method_not_allowed", -EOPNOTSUPP, body, "%s is not allowed on %s", method,
                                   url);
        if (rq->too_large)
                return agent_error(413, "too_large", -E2BIG, body, "the request body is larger than %d bytes",
                                   API_BODY_MAX);

        if (get) {
                if (streq(url, "/v1/status"))
                        return agent_get_status(a, body);
                if (streq(url, "/v1/operation"))
                        return agent_get_operation(a, body);
                if (streq(url, "/v1/config"))
                        return agent_get_config(a, body);
                const char *l = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
                unsigned limit = 50;
                if (l && (safe_atou(l, &limit) < 0 || limit < 1 || limit > 1000))
                        return agent_error(400, "bad_request", -EINVAL, body, "limit must be 1 to 1000");
                return agent_get_audit(a, limit, body);
        }
        if (streq(url, "/v1/stage"))
                return agent_post_stage(a, b, rq->size, body);
        if (streq(url, "/v1/activate"))
                return agent_post_activate(a, b, rq->size, body);
        if (streq(url, "/v1/mark-good"))
                return agent_post_mark_good(a, b, rq->size, body);
        if (streq(url, "/v1/rollback"))
                return agent_post_rollback(a, b, rq->size, body);
        if (streq(url, "/v1/config"))
                return agent_post_config(a, b, rq->size, body);
        if (streq(url, "/v1/reboot"))
                return agent_post_reboot(a, b, rq->size, body);
        if (streq(url, "/v1/hook"))
                return agent_post_hook(a, b, rq->size, body);
        return agent_post_debug(a, b, rq->size, rq->uid, body);
}

typedef struct Session {
        Agent *agent;
        char **command;
        char term[64];
        unsigned rows, cols;
        uid_t uid;
} Session;

static void on_upgraded(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra_in, size_t extra_in_size,
                        MHD_socket sock, struct MHD_UpgradeResponseHandle *urh) {
        Session *s = cls;
        int status = 255;

        /* Thread-per-connection: blocking here holds up only this client. */
        int r = debug_session_run(s->agent->self_exe, s->agent->opt.toolbox, s->command, s->term, s->rows, s->cols,
                                  sock, extra_in, extra_in_size, &status);
        if (r < 0)
                log_error_errno(r, "The admin container session failed: %m");
        agent_debug_session_ended(s->agent, s->uid, s->command[0], r < 0 ? 255 : status);
        (void) MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        strv_free(s->command);
        free(s);
}

/* POST /v1/debug with "Connection: Upgrade" and "Upgrade: hull-tty": the
 * connection becomes the terminal of a shell in the admin container. */
static enum MHD_Result start_session(Agent *a, struct MHD_Connection *c, Request *rq, unsigned *ret_status,
                                     char **ret_body) {
        char **command = NULL;
        unsigned status = agent_debug_session_prepare(a, rq->body ?: "", rq->size, &command, ret_body);
        if (status != 0) {
                *ret_status = status;
                return MHD_NO; /* answer with the error */
        }
        Session *s = calloc(1, sizeof(Session));
        if (!s) {
                strv_free(command);
                *ret_status = agent_error(500, "internal", -ENOMEM, ret_body, "out of memory");
                return MHD_NO;
        }
        s->agent = a;
        s->command = command;
        s->uid = rq->uid;
        const char *term = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Hull-Term");
        snprintf(s->term, sizeof(s->term), "%s", term ?: "");
        const char *size = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Hull-Tty-Size");
        if (size && sscanf(size, "%ux%u", &s->rows, &s->cols) != 2)
                s->rows = s->cols = 0;
        struct MHD_Response *resp = MHD_create_response_for_upgrade(on_upgraded, s);
        if (!resp) {
                strv_free(command);
                free(s);
                *ret_status = agent_error(500, "internal", -ENOMEM, ret_body, "out of memory");
                return MHD_NO;
        }
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "hull-tty");
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
        MHD_destroy_response(resp);
        *ret_status = MHD_HTTP_SWITCHING_PROTOCOLS;
        return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        Agent *a = cls;
        Request *rq = *con_cls;

        if (!rq) {
                /* First call: headers only. Decide on access before reading
                 * a byte of the body. */
                rq = calloc(1, sizeof(Request));
                if (!rq)
                        return MHD_NO;
                const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
                struct ucred cred = { .pid = 0, .uid = (uid_t) -1, .gid = (gid_t) -1 };
                rq->allowed = ci && peer_allowed(ci->connect_fd, &cred);
                rq->uid = cred.uid;
                rq->pid = cred.pid;
                *con_cls = rq;
                return MHD_YES;
        }

        if (*upload_data_size > 0) {
                if (rq->allowed && !rq->too_large) {
                        if (rq->size + *upload_data_size > API_BODY_MAX) {
                                rq->too_large = true;
                        } else {
                                char *n = realloc(rq->body, rq->size + *upload_data_size + 1);
                                if (!n)
                                        return MHD_NO;
                                memcpy(n + rq->size, upload_data, *upload_data_size);
                                rq->size += *upload_data_size;
                                n[rq->size] = 0;
                                rq->body = n;
                        }
                }
                *upload_data_size = 0;
                return MHD_YES;
        }

        char *body = NULL;
        unsigned status;
        const char *upgrade = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_UPGRADE);
        if (rq->allowed && !rq->too_large && upgrade && streq(upgrade, "hull-tty") && streq(method, "POST") &&
            streq(url, "/v1/debug")) {
                enum MHD_Result ret = start_session(a, c, rq, &status, &body);
                if (status == MHD_HTTP_SWITCHING_PROTOCOLS) {
                        audit_request(a, rq, method, url, status, NULL);
                        return ret;
                }
                audit_request(a, rq, method, url, status, body);
                return respond(c, status, body);
        }
        if (!rq->allowed)
                status = agent_error(403, "forbidden", -EACCES, &body,
                                     "uid %d may not use hull-agent: only root%s%s may", (int) rq->uid,
                                     a->opt.socket_group ? " and members of group " : "",
                                     a->opt.socket_group ?: "");
        else
                status = route(a, c, method, url, rq, &body);
        if (!streq(method, "GET"))
                audit_request(a, rq, method, url, status, body);
        return respond(c, status, body);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
        Request *rq = *con_cls;
        if (rq) {
                free(rq->body);
                free(rq);
                *con_cls = NULL;
        }
}

static int make_socket(Agent *a) {
        const char *path = a->opt.socket_path;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;

        if (strlen(path) >= sizeof(sa.sun_path))
                return log_error_errno(ENAMETOOLONG, "Socket path %s is too long.", path);
        strcpy(sa.sun_path, path);

        if (a->opt.socket_group) {
                /* A missing group must not take the node's management API
                 * down (nor fail a new slot's health checks and with them
                 * an update): serve root only, and say so. */
                struct group *g = getgrnam(a->opt.socket_group);
                if (g)
                        socket_gid = g->gr_gid;
                else
                        log_warning("Socket group '%s' does not exist; only root may use the API.",
                                    a->opt.socket_group);
        }

        _cleanup_free_ char *dir = strdup(path);
        if (!dir)
                return log_oom();
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
                *slash = 0;
                int r = mkdir_p(dir, 0755);
                if (r < 0)
                        return log_error_errno(r, "Failed to create %s: %m", dir);
        }

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(errno, "socket() failed: %m");
        (void) unlink(path); /* a stale socket from a previous run */
        /* Created with no access for anyone but root, then opened up to the
         * group: no window in which anyone else can connect. */
        mode_t old = umask(0177);
        int r = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
        umask(old);
        if (r < 0)
                return log_error_errno(errno, "Failed to bind %s: %m", path);
        if (socket_gid != 0 && (chown(path, 0, socket_gid) < 0 || chmod(path, 0660) < 0))
                return log_error_errno(errno, "Failed to give group '%s' access to %s: %m", a->opt.socket_group, path);
        if (listen(fd, 64) < 0)
                return log_error_errno(errno, "listen() failed: %m");
        return TAKE_FD(fd);
}

static void do_reboot(Agent *a) {
        _cleanup_free_ char *cmd = strdup(a->opt.reboot_command);
        char *argv[16], *save = NULL;
        size_t n = 0;

        if (!cmd)
                return;
        /* strtok_r: the agent's HTTP threads run concurrently. */
        for (char *tok = strtok_r(cmd, " ", &save); tok && n < ELEMENTSOF(argv) - 1; tok = strtok_r(NULL, " ", &save))
                argv[n++] = tok;
        argv[n] = NULL;
        if (n == 0)
                return;
        log_notice("Rebooting: %s", a->opt.reboot_command);
        SpawnOptions so = { .output_fd = -1, .timeout_sec = 60 };
        int r = spawn_run(argv, &so);
        if (r != 0)
                log_error("The reboot command '%s' failed (%d).", a->opt.reboot_command, r);
}

int agent_serve(Agent *a) {
        _cleanup_close_ int lfd = -EBADF, sfd = -EBADF;
        sigset_t mask;

        lfd = make_socket(a);
        if (lfd < 0)
                return lfd;

        /* Signals arrive on a signalfd in this thread; every thread started
         * from here on inherits the blocked mask. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0)
                return log_error_errno(EINVAL, "Failed to block signals.");
        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0)
                return log_error_errno(errno, "signalfd() failed: %m");

        struct MHD_Daemon *d = MHD_start_daemon(
                /* A thread per connection: an admin-container command may run
                 * for minutes without holding up status calls. */
                MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ERROR_LOG |
                        MHD_ALLOW_UPGRADE, 0,
                NULL, NULL, on_request, a,
                MHD_OPTION_LISTEN_SOCKET, lfd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                MHD_OPTION_CONNECTION_LIMIT, (unsigned) CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
                (unsigned) CONNECTION_TIMEOUT_SEC, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) 64 * 1024,
                MHD_OPTION_END);
        if (!d)
                return log_error_errno(EIO, "Failed to start the HTTP server on %s.", a->opt.socket_path);
        lfd = -EBADF; /* MHD owns it now */

        agent_boot_tasks(a);
        log_info("Listening on %s.", a->opt.socket_path);
        (void) sd_notify(0, "READY=1\nSTATUS=Serving the hull-agent API");

        /* When the reboot was last asked for (CLOCK_MONOTONIC, 0: not
         * asked). A reboot that does not happen leaves a drained node in
         * "Rebooting" for good: the command may fail (D-Bus timeout on a
         * loaded host) or the shutdown it queued may have been cancelled, so
         * while this process still runs it asks again. */
        struct timespec asked = {};

        for (;;) {
                struct pollfd p[2] = { { .fd = sfd, .events = POLLIN }, { .fd = a->wake_fd, .events = POLLIN } };
                int timeout_ms = -1;
                if (asked.tv_sec != 0 && a->opt.reboot_retry_sec > 0) {
                        struct timespec now;
                        (void) clock_gettime(CLOCK_MONOTONIC, &now);
                        long long left = (long long) (asked.tv_sec + a->opt.reboot_retry_sec - now.tv_sec) * 1000 -
                                         (now.tv_nsec - asked.tv_nsec) / 1000000;
                        timeout_ms = left > 0 ? (int) left : 0;
                }
                int n = poll(p, 2, timeout_ms);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (n == 0) {
                        log_warning("Still running %u s after the reboot was asked for; asking again.",
                                    a->opt.reboot_retry_sec);
                        do_reboot(a);
                        (void) clock_gettime(CLOCK_MONOTONIC, &asked);
                        continue;
                }
                if (p[0].revents) {
                        struct signalfd_siginfo si;
                        if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                                log_info("Received signal %u, stopping.", si.ssi_signo);
                                break;
                        }
                }
                if (p[1].revents) {
                        uint64_t v;
                        (void) !read(a->wake_fd, &v, sizeof(v));
                        if (a->reboot_pending) {
                                /* Let the response that asked for it go out. */
                                usleep(300 * 1000);
                                a->reboot_pending = false;
                                do_reboot(a);
                                (void) clock_gettime(CLOCK_MONOTONIC, &asked);
                        }
                }
        }
        (void) sd_notify(0, "STOPPING=1");
        a->stopping = 1;
        MHD_stop_daemon(d);
        (void) unlink(a->opt.socket_path);
        return 0;
}
