/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "spawn.h"

static int wait_child_timeout(pid_t pid, unsigned timeout_sec) {
        /* A pidfd turns "exited or timed out" into one poll(), without a
         * SIGCHLD handler or a polling loop. */
        _cleanup_close_ int pfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (pfd < 0)
                return -errno;
        struct pollfd p = { .fd = pfd, .events = POLLIN };
        for (;;) {
                int n = poll(&p, 1, (int) MIN(timeout_sec, 24u * 3600u) * 1000);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0) {
                        (void) kill(-pid, SIGKILL);
                        (void) kill(pid, SIGKILL);
                        (void) waitpid(pid, NULL, 0);
                        return -ETIME;
                }
                return 0;
        }
}

static int wait_child(pid_t pid) {
        int status;

        for (;;) {
                if (waitpid(pid, &status, 0) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                break;
        }
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
        return -EPROTO;
}

static _noreturn_ void child(char * const *argv, const SpawnOptions *o, int out_fd) {
        sigset_t none;
        (void) sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        if (o && o->timeout_sec > 0)
                (void) setpgid(0, 0); /* so a timeout kills what it started too */
        if (out_fd >= 0) {
                if (dup2(out_fd, STDOUT_FILENO) < 0)
                        _exit(127);
        }
        if (o && o->output_fd >= 0) {
                if (out_fd < 0 && dup2(o->output_fd, STDOUT_FILENO) < 0)
                        _exit(127);
                if (dup2(o->output_fd, STDERR_FILENO) < 0)
                        _exit(127);
        }
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null >= 0)
                (void) dup2(null, STDIN_FILENO);

        if (o && o->root) {
                if (chroot(o->root) < 0 || chdir("/") < 0) {
                        dprintf(STDERR_FILENO, "chroot '%s': %s\n", o->root, strerror(errno));
                        _exit(127);
                }
        }
        if (o && o->env)
                for (char * const *e = o->env; *e; e++)
                        (void) putenv(*e);

        (void) signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        dprintf(STDERR_FILENO, "Failed to execute '%s': %s\n", argv[0], strerror(errno));
        _exit(127);
}

int spawn_run(char * const *argv, const SpawnOptions *o) {
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                child(argv, o, -1);
        if (o && o->timeout_sec > 0) {
                int r = wait_child_timeout(pid, o->timeout_sec);
                if (r < 0)
                        return r;
        }
        return wait_child(pid);
}

int spawn_capture(char * const *argv, const SpawnOptions *o, size_t max, char **ret) {
        int p[2];
        _cleanup_free_ char *buf = NULL;
        int r;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0) {
                r = -errno;
                (void) close(p[0]);
                (void) close(p[1]);
                return r;
        }
        if (pid == 0) {
                (void) close(p[0]);
                child(argv, o, p[1]);
        }
        (void) close(p[1]);
        r = read_full_fd(p[0], max, &buf, NULL);
        (void) close(p[0]);
        if (r < 0) {
                (void) kill(pid, SIGKILL);
                (void) wait_child(pid);
                return r;
        }
        r = wait_child(pid);
        if (r == 0)
                *ret = TAKE_PTR(buf);
        return r;
}
