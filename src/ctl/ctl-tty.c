/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "ctl-tty.h"
#include "fileio.h"
#include "macro.h"

/* Must match the agent (src/agent/debug-exec.h). */
#define EXIT_MARKER "\033]hull-exit;"
#define EXIT_MARKER_MAX (sizeof(EXIT_MARKER) + 8)

static int send_all(int fd, const void *p, size_t n) {
        const char *c = p;
        while (n > 0) {
                ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                c += k;
                n -= (size_t) k;
        }
        return 0;
}

/* Reads the response head; leaves what follows it in *rest. */
static int read_head(int fd, char **ret_head, char **ret_rest, size_t *ret_rest_len) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        for (;;) {
                char *n = realloc(buf, len + 4096 + 1);
                if (!n)
                        return -ENOMEM;
                buf = n;
                ssize_t k = recv(fd, buf + len, 4096, 0);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -EPROTO;
                len += (size_t) k;
                buf[len] = 0;
                char *end = strstr(buf, "\r\n\r\n");
                if (end) {
                        size_t head = (size_t) (end - buf) + 4;
                        *ret_rest_len = len - head;
                        *ret_rest = malloc(*ret_rest_len + 1);
                        if (!*ret_rest)
                                return -ENOMEM;
                        memcpy(*ret_rest, buf + head, *ret_rest_len);
                        (*ret_rest)[*ret_rest_len] = 0;
                        buf[head] = 0;
                        *ret_head = TAKE_PTR(buf);
                        return 0;
                }
                if (len > 64 * 1024)
                        return -E2BIG;
        }
}

/* A terminal that stopped taking output leaves nothing to report to. */
static void write_out(const void *p, size_t n) {
        if (loop_write(STDOUT_FILENO, p, n) < 0)
                return;
}

static struct termios saved;
static bool raw_mode;

static void restore_terminal(void) {
        if (raw_mode)
                (void) tcsetattr(STDIN_FILENO, TCSANOW, &saved);
        raw_mode = false;
}

/* Writes terminal output, holding back a possible start of the exit marker
 * until it is complete. Returns 1 once the marker was seen. */
static int output(char *pending, size_t *pending_len, const char *data, size_t len, int *ret_status) {
        char buf[16384 + EXIT_MARKER_MAX];
        size_t n = *pending_len;
        memcpy(buf, pending, n);
        memcpy(buf + n, data, len);
        n += len;
        buf[n] = 0;

        char *m = memmem(buf, n, EXIT_MARKER, strlen(EXIT_MARKER));
        if (m) {
                write_out(buf, (size_t) (m - buf));
                *ret_status = atoi(m + strlen(EXIT_MARKER));
                *pending_len = 0;
                return 1;
        }
        /* Keep the tail that could be the beginning of the marker. */
        size_t keep = 0;
        for (size_t k = MIN(n, strlen(EXIT_MARKER) - 1); k > 0; k--)
                if (memcmp(buf + n - k, EXIT_MARKER, k) == 0) {
                        keep = k;
                        break;
                }
        write_out(buf, n - keep);
        memcpy(pending, buf + n - keep, keep);
        *pending_len = keep;
        return 0;
}

int ctl_tty_session(const char *socket_path, const char *body_json, AgentResponse *ret, int *ret_exit_status) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_free_ char *head = NULL, *rest = NULL, *req = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t rest_len = 0;
        int r;

        if (strlen(socket_path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, socket_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;

        struct winsize ws = {};
        bool tty = isatty(STDIN_FILENO);
        if (tty)
                (void) ioctl(STDIN_FILENO, TIOCGWINSZ, &ws);
        const char *term = getenv("TERM");
        if (asprintf(&req,
                     "POST /v1/debug HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: hull-tty\r\n"
                     "Hull-Tty-Size: %ux%u\r\nHull-Term: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     ws.ws_row, ws.ws_col, term && !strpbrk(term, "\r\n") ? term : "xterm-256color",
                     strlen(body_json), body_json) < 0)
                return -ENOMEM;
        r = send_all(fd, req, strlen(req));
        if (r < 0)
                return r;
        r = read_head(fd, &head, &rest, &rest_len);
        if (r < 0)
                return r;

        long status = 0;
        if (sscanf(head, "HTTP/1.%*d %ld", &status) != 1)
                return -EPROTO;
        ret->status = status;
        if (status != 101) {
                /* An error document; read the rest of the body. */
                const char *cl = strcasestr(head, "\r\nContent-Length:");
                size_t want = cl ? (size_t) strtoul(cl + 17, NULL, 10) : 0;
                while (rest_len < want && want < 1024 * 1024) {
                        char *n = realloc(rest, want + 1);
                        if (!n)
                                return -ENOMEM;
                        rest = n;
                        ssize_t k = recv(fd, rest + rest_len, want - rest_len, 0);
                        if (k <= 0)
                                break;
                        rest_len += (size_t) k;
                }
                rest[rest_len] = 0;
                ret->body = json_loadb(rest, rest_len, 0, NULL);
                ret->raw = TAKE_PTR(rest);
                ret->raw_size = rest_len;
                return 0;
        }

        if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
                struct termios t = saved;
                cfmakeraw(&t);
                if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0) {
                        raw_mode = true;
                        atexit(restore_terminal);
                }
        }

        char pending[EXIT_MARKER_MAX];
        size_t pending_len = 0;
        int exit_status = 255, done = 0;
        bool in_open = true;
        if (rest_len > 0)
                done = output(pending, &pending_len, rest, rest_len, &exit_status);
        char buf[16384];
        while (!done) {
                struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = STDIN_FILENO, .events = in_open ? POLLIN : 0 } };
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[0].revents) {
                        ssize_t k = recv(fd, buf, sizeof(buf), 0);
                        if (k <= 0)
                                break;
                        done = output(pending, &pending_len, buf, (size_t) k, &exit_status);
                }
                if (in_open && p[1].revents) {
                        ssize_t k = read(STDIN_FILENO, buf, sizeof(buf));
                        if (k <= 0) {
                                in_open = false;
                                (void) shutdown(fd, SHUT_WR);
                                continue;
                        }
                        if (send_all(fd, buf, (size_t) k) < 0)
                                break;
                }
        }
        if (pending_len > 0)
                write_out(pending, pending_len);
        restore_terminal();
        *ret_exit_status = exit_status;
        return 0;
}
