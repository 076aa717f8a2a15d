/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "debug-exec.h"
#include "fileio.h"
#include "macro.h"
#include "strutil.h"

/* The admin container: one command run with the toolbox's programs and the
 * host's kernel namespaces. Only the mount namespace is new, so `ps`, `ip`,
 * `ss` and friends from the toolbox see the host's processes, network and
 * hostname; the host's file systems appear under /host. The host's root is
 * read-only anyway; /host/etc, /host/var and /host/persist are the real
 * thing, so the admin can fix a node, and every command is in the audit
 * log. */

static int bind_dir(const char *what, const char *where, unsigned long extra) {
        if (mkdir(where, 0755) < 0 && errno != EEXIST)
                return -errno;
        if (mount(what, where, NULL, MS_BIND | MS_REC | extra, NULL) < 0)
                return -errno;
        return 0;
}

int debug_exec_child(const char *toolbox, char **argv) {
        _cleanup_free_ char *host = path_join(toolbox, "host"), *dev = path_join(toolbox, "dev"),
                            *proc = path_join(toolbox, "proc"), *sys = path_join(toolbox, "sys"),
                            *run = path_join(toolbox, "run"), *tmp = path_join(toolbox, "tmp");
        if (!host || !dev || !proc || !sys || !run || !tmp)
                return -ENOMEM;

        if (unshare(CLONE_NEWNS) < 0)
                return -errno;
        /* Nothing mounted here may leak back into the host's namespace. */
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return -errno;
        if (mount(toolbox, toolbox, NULL, MS_BIND | MS_REC, NULL) < 0)
                return -errno;
        int r;
        if ((r = bind_dir("/", host, 0)) < 0 || (r = bind_dir("/dev", dev, 0)) < 0 || (r = bind_dir("/sys", sys, 0)) < 0 ||
            (r = bind_dir("/run", run, 0)) < 0)
                return r;
        if (mkdir(proc, 0555) < 0 && errno != EEXIST)
                return -errno;
        if (mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                return -errno;
        if (mkdir(tmp, 01777) < 0 && errno != EEXIST)
                return -errno;
        if (mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0)
                return -errno;
        if (chdir(toolbox) < 0 || chroot(".") < 0 || chdir("/") < 0)
                return -errno;
        (void) setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
        if (!getenv("HOME"))
                (void) setenv("HOME", "/root", 1);
        (void) setenv("HULL_ADMIN_CONTAINER", "1", 1);
        execvp(argv[0], argv);
        return -errno;
}

/* "SELF --debug-exec TOOLBOX COMMAND...": built before fork(), since the
 * child of a threaded process must not allocate. The strings are borrowed. */
static char **exec_argv(const char *self_exe, const char *toolbox, char **command) {
        size_t n = 0;
        for (char **c = command; c && *c; c++)
                n++;
        char **argv = calloc(n + 4, sizeof(char *));
        if (!argv)
                return NULL;
        argv[0] = (char *) self_exe;
        argv[1] = (char *) "--debug-exec";
        argv[2] = (char *) toolbox;
        for (size_t i = 0; i < n; i++)
                argv[3 + i] = command[i];
        return argv;
}

int debug_exec_run(const char *self_exe, const char *toolbox, char **command, unsigned timeout_sec,
                   DebugResult *ret) {
        _cleanup_free_ char *out = NULL;
        size_t size = 0;
        int p[2], status = 0, r;
        struct stat st;

        if (stat(toolbox, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        char **argv = exec_argv(self_exe, toolbox, command);
        if (!argv)
                return -ENOMEM;

        if (pipe2(p, O_CLOEXEC) < 0) {
                free(argv);
                return -errno;
        }
        sigset_t none;
        sigemptyset(&none);
        pid_t pid = fork();
        if (pid < 0) {
                r = -errno;
                free(argv);
                (void) close(p[0]);
                (void) close(p[1]);
                return r;
        }
        if (pid == 0) {
                /* Only async-signal-safe calls until exec: the agent has threads. */
                int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(p[1], STDOUT_FILENO) < 0 ||
                    dup2(p[1], STDERR_FILENO) < 0)
                        _exit(127);
                (void) sigprocmask(SIG_SETMASK, &none, NULL);
                (void) setpgid(0, 0);
                execv(argv[0], argv);
                _exit(127);
        }
        free(argv);
        (void) close(p[1]);

        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        bool timed_out = false, eof = false;
        while (!eof) {
                struct timespec now;
                clock_gettime(CLOCK_MONOTONIC, &now);
                long left = (long) timeout_sec * 1000 - ((now.tv_sec - start.tv_sec) * 1000 +
                                                         (now.tv_nsec - start.tv_nsec) / 1000000);
                if (left <= 0) {
                        timed_out = true;
                        break;
                }
                struct pollfd pf = { .fd = p[0], .events = POLLIN };
                int k = poll(&pf, 1, (int) left);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        continue;
                char buf[16384];
                ssize_t m = read(p[0], buf, sizeof(buf));
                if (m <= 0) {
                        eof = true;
                        break;
                }
                /* Keep the first DEBUG_OUTPUT_MAX bytes; drain the rest. */
                size_t keep = size < DEBUG_OUTPUT_MAX ? MIN((size_t) m, DEBUG_OUTPUT_MAX - size) : 0;
                if (keep > 0) {
                        char *nb = realloc(out, size + keep + 1);
                        if (!nb) {
                                timed_out = true; /* treat as fatal below */
                                break;
                        }
                        out = nb;
                        memcpy(out + size, buf, keep);
                        size += keep;
                        out[size] = 0;
                }
                ret->truncated = ret->truncated || keep < (size_t) m;
        }
        (void) close(p[0]);
        if (timed_out) {
                (void) kill(-pid, SIGKILL);
                (void) kill(pid, SIGKILL);
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        ret->timed_out = timed_out;
        ret->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        ret->output = out ? TAKE_PTR(out) : strdup("");
        return ret->output ? 0 : -ENOMEM;
}

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

int debug_session_run(const char *self_exe, const char *toolbox, char **command, const char *term, unsigned rows,
                      unsigned cols, int sock, const char *extra, size_t extra_len, int *ret_exit_status) {
        char pts[128], termenv[128];
        struct stat st;
        int r, status = 0;

        if (stat(toolbox, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;

        _cleanup_close_ int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0)
                return -errno;
        if (grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, pts, sizeof(pts)) != 0)
                return -errno;
        if (rows > 0 && cols > 0) {
                struct winsize ws = { .ws_row = (unsigned short) rows, .ws_col = (unsigned short) cols };
                (void) ioctl(master, TIOCSWINSZ, &ws);
        }

        _cleanup_free_ char **argv = exec_argv(self_exe, toolbox, command);
        if (!argv)
                return -ENOMEM;
        snprintf(termenv, sizeof(termenv), "TERM=%s", term && string_is_safe_token(term, "-+.") ? term : "xterm-256color");
        char *envp[] = { termenv, (char *) "HOME=/root", NULL };

        sigset_t none;
        sigemptyset(&none);
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* Async-signal-safe calls only: a new session whose
                 * controlling terminal is the pty. */
                if (setsid() < 0)
                        _exit(127);
                int slave = open(pts, O_RDWR);
                if (slave < 0 || ioctl(slave, TIOCSCTTY, 0) < 0 || dup2(slave, STDIN_FILENO) < 0 ||
                    dup2(slave, STDOUT_FILENO) < 0 || dup2(slave, STDERR_FILENO) < 0)
                        _exit(127);
                (void) sigprocmask(SIG_SETMASK, &none, NULL);
                execve(argv[0], argv, envp);
                _exit(127);
        }

        r = extra_len > 0 ? write_all(master, extra, extra_len) : 0;
        bool sock_open = true;
        char buf[16384];
        while (r >= 0) {
                struct pollfd p[2] = { { .fd = master, .events = POLLIN }, { .fd = sock, .events = sock_open ? POLLIN : 0 } };
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (p[0].revents) {
                        ssize_t k = read(master, buf, sizeof(buf));
                        if (k <= 0)
                                break; /* EIO: every holder of the terminal has gone */
                        if (write_all(sock, buf, (size_t) k) < 0)
                                break; /* the client went away; the shell gets SIGHUP below */
                }
                if (sock_open && p[1].revents) {
                        ssize_t k = read(sock, buf, sizeof(buf));
                        if (k <= 0) {
                                /* The client's input ended: end-of-file for the
                                 * shell, as ^D on a terminal would be. */
                                sock_open = false;
                                (void) write_all(master, "\004", 1);
                                continue;
                        }
                        if (write_all(master, buf, (size_t) k) < 0)
                                break;
                }
        }
        /* Closing the master hangs the terminal up: the session gets SIGHUP. */
        master = safe_close(master);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        *ret_exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        char marker[48];
        int l = snprintf(marker, sizeof(marker), DEBUG_EXIT_MARKER "%d\a", *ret_exit_status);
        (void) write_all(sock, marker, (size_t) l);
        return 0;
}
