/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent-api.h"
#include "fileio.h"
#include "hook.h"
#include "strutil.h"

/* ---- finding ---- */

/* Why st (of what) may not be run or trusted by root; NULL if it may. */
static const char *unsafe_reason(const struct stat *st, bool dir, char *buf, size_t size) {
        if (dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode))
                return dir ? "is not a directory" : "is not a regular file";
        if (st->st_uid != 0) {
                snprintf(buf, size, "is owned by uid %u, not root", (unsigned) st->st_uid);
                return buf;
        }
        if (st->st_mode & (S_IWGRP | S_IWOTH)) {
                /* Anyone who can change it could run anything as root. */
                snprintf(buf, size, "is writable by %s (mode %04o)",
                         (st->st_mode & S_IWOTH) ? "others" : "its group", (unsigned) (st->st_mode & 07777));
                return buf;
        }
        if (!dir && !(st->st_mode & 0111)) {
                snprintf(buf, size, "is not executable (mode %04o)", (unsigned) (st->st_mode & 07777));
                return buf;
        }
        return NULL;
}

static int check(const char *path, bool dir, char **ret_error) {
        char buf[96];
        struct stat st;

        if (stat(path, &st) < 0)
                return error_set(ret_error, -errno, "cannot check %s: %s", path, strerror(errno));
        const char *why = unsafe_reason(&st, dir, buf, sizeof(buf));
        if (why)
                return error_set(ret_error, -EPERM, "refusing to run hook: %s%s %s", dir ? "directory " : "", path,
                                 why);
        return 0;
}

static int check_hook(const char *dir, const char *path, char **ret_path, char **ret_error) {
        _cleanup_free_ char *real = NULL;
        int r;

        r = check(dir, true, ret_error);
        if (r < 0)
                return r;
        real = realpath(path, NULL);
        if (!real)
                return error_set(ret_error, errno == ENOENT ? -EPERM : -errno,
                                 "refusing to run hook: %s cannot be resolved: %s", path, strerror(errno));
        if (!streq(real, path)) {
                /* A symbolic link: what it leads to counts. */
                _cleanup_free_ char *parent = strdup(real);
                if (!parent)
                        return -ENOMEM;
                char *slash = strrchr(parent, '/');
                if (slash)
                        slash[slash == parent ? 1 : 0] = '\0';
                r = check(parent, true, ret_error);
                if (r < 0)
                        return r;
        }
        r = check(real, false, ret_error);
        if (r < 0)
                return r;
        *ret_path = TAKE_PTR(real);
        return 0;
}

int hook_find(char *const *dirs, const char *name, char **ret_path, char **ret_error) {
        if (!api_hook_name_is_valid(name))
                return -EINVAL;
        for (char *const *d = dirs; d && *d; d++) {
                _cleanup_free_ char *p = path_join(*d, name);
                struct stat st;
                if (!p)
                        return -ENOMEM;
                if (lstat(p, &st) < 0) {
                        if (errno == ENOENT || errno == ENOTDIR)
                                continue;
                        return error_set(ret_error, -errno, "cannot look for hook %s: %s", p, strerror(errno));
                }
                /* Found: an unsafe file here is refused rather than skipped,
                 * since whoever put it here meant it to be the one. */
                return check_hook(*d, p, ret_path, ret_error);
        }
        return -ENOENT;
}

/* ---- output ---- */

void hook_output_init(HookOutput *o) {
        o->len = 0;
        o->total = 0;
        sha256_init(&o->sha);
}

void hook_output_add(HookOutput *o, const char *data, size_t len) {
        sha256_update(&o->sha, data, len);
        o->total += len;
        if (len >= HOOK_OUTPUT_MAX) {
                memcpy(o->tail, data + len - HOOK_OUTPUT_MAX, HOOK_OUTPUT_MAX);
                o->len = HOOK_OUTPUT_MAX;
                return;
        }
        if (o->len + len > HOOK_OUTPUT_MAX) {
                size_t drop = o->len + len - HOOK_OUTPUT_MAX;
                memmove(o->tail, o->tail + drop, o->len - drop);
                o->len -= drop;
        }
        memcpy(o->tail + o->len, data, len);
        o->len += len;
}

/* The tail as a C string; a cut through a character at its start is
 * skipped rather than shown as U+FFFD. A NUL byte becomes U+FFFD (it has
 * no place in a JSON string, and must not end the text early). */
static char *tail_string(const HookOutput *o) {
        char copy[HOOK_OUTPUT_MAX + 1];
        size_t start = 0;

        if (o->total > o->len)
                while (start < o->len && start < 3 && ((unsigned char) o->tail[start] & 0xC0) == 0x80)
                        start++;
        size_t n = o->len - start;
        memcpy(copy, o->tail + start, n);
        for (size_t i = 0; i < n; i++)
                if (copy[i] == '\0')
                        copy[i] = (char) 0xFF; /* never valid UTF-8 */
        copy[n] = '\0';
        return api_utf8_sanitize(copy, HOOK_OUTPUT_MAX);
}

char *hook_output_text(const HookOutput *o) {
        _cleanup_free_ char *t = tail_string(o);
        char *s = NULL;

        if (!t)
                return NULL;
        if (o->total <= o->len)
                return TAKE_PTR(t);
        if (asprintf(&s, "[hull-agent: output truncated, the first %llu of %llu bytes are not shown]\n%s",
                     (unsigned long long) (o->total - o->len), (unsigned long long) o->total, t) < 0)
                return NULL;
        return s;
}

char *hook_output_last_line(const HookOutput *o, size_t max) {
        _cleanup_free_ char *t = tail_string(o);
        if (!t)
                return NULL;
        char *end = t + strlen(t);
        for (;;) {
                while (end > t && strchr(" \t\r\n", end[-1]))
                        end--;
                *end = '\0';
                char *nl = strrchr(t, '\n');
                char *line = nl ? nl + 1 : t;
                line += strspn(line, " \t\r");
                if (*line || !nl)
                        return api_utf8_sanitize(line, max);
                end = nl;
        }
}

/* ---- running ---- */

static uint64_t mono_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void close_from(int first) {
#ifdef SYS_close_range
        if (syscall(SYS_close_range, (unsigned) first, ~0U, 0) == 0)
                return;
#endif
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = first; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
                (void) close((int) fd);
}

static _noreturn_ void child(const HookRun *run, char **argv, char **envp, int out_fd, pid_t parent) {
        static const char msg[] = "hull-agent: cannot execute the hook\n";
        sigset_t none;

        /* Only async-signal-safe calls until exec: the agent has threads. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(127);
        if (setsid() < 0)
                _exit(127);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
            dup2(out_fd, STDERR_FILENO) < 0)
                _exit(127);
        close_from(3);
        /* hull-agent's unit protects it from the OOM killer; its hooks are
         * ordinary programs. */
        int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (oom >= 0) {
                (void) !write(oom, "0", 1);
                (void) close(oom);
        }
        if (chdir("/") < 0)
                _exit(127);
        (void) signal(SIGPIPE, SIG_DFL);
        (void) sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        execve(run->path, argv, envp);
        (void) !write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void) !write(STDERR_FILENO, strerror(errno), strlen(strerror(errno)));
        _exit(127);
}

static void read_some(int fd, HookOutput *out, bool *eof) {
        char buf[16384];
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n > 0) {
                        hook_output_add(out, buf, (size_t) n);
                        continue;
                }
                if (n == 0)
                        *eof = true;
                else if (errno == EINTR)
                        continue;
                else if (errno != EAGAIN)
                        *eof = true;
                return;
        }
}

int hook_run(const HookRun *run, HookOutput *out, HookResult *ret) {
        _cleanup_free_ char *e_name = NULL, *e_stage = NULL, *e_task = NULL, *e_version = NULL;
        _cleanup_close_ int rfd = -EBADF, pfd = -EBADF;
        HookResult res = {};
        int p[2], status = 0;

        hook_output_init(out);
        /* Built before fork(): the child of a threaded process must not
         * allocate. */
        if (asprintf(&e_name, "HULL_HOOK_NAME=%s", run->name) < 0 ||
            asprintf(&e_stage, "HULL_HOOK_STAGE=%s", run->stage) < 0 ||
            asprintf(&e_version, "HULL_OS_VERSION=%s", run->os_version ?: "unknown") < 0 ||
            (run->task && asprintf(&e_task, "HULL_HOOK_TASK=%s", run->task) < 0))
                return -ENOMEM;
        char *envp[] = { (char *) HOOK_PATH_ENV, (char *) "LANG=C.UTF-8", e_name, e_stage, e_version, e_task,
                         NULL };
        char *argv[] = { (char *) run->path, NULL };

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        pid_t parent = getpid();
        uint64_t start = mono_usec();
        pid_t pid = fork();
        if (pid < 0) {
                int r = -errno;
                (void) close(p[0]);
                (void) close(p[1]);
                return r;
        }
        if (pid == 0)
                child(run, argv, envp, p[1], parent);
        (void) close(p[1]);
        rfd = p[0];
        (void) fcntl(rfd, F_SETFL, O_NONBLOCK);
        if (run->progress)
                run->progress(run->userdata, pid, out);

        /* A pidfd tells when the hook itself has exited without reaping it,
         * so that its pid, and with it the process group id, cannot be
         * reused before the group has been killed. */
        pfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (pfd < 0) {
                int r = -errno;
                (void) kill(-pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return r;
        }

        uint64_t deadline = start + (uint64_t) run->timeout_sec * 1000000u, kill_at = 0, reported_at = start;
        uint64_t reported = 0;
        bool eof = false, exited = false;
        while (!exited) {
                uint64_t now = mono_usec();
                /* New output at most once a second, and also when the hook
                 * has gone quiet since: the caller saves it each time, so
                 * that what a hook said survives the agent's death. */
                if (run->progress && out->total != reported && now - reported_at >= 1000000u) {
                        run->progress(run->userdata, pid, out);
                        reported = out->total;
                        reported_at = now;
                }
                if (run->cancel && *run->cancel && !res.cancelled) {
                        res.cancelled = true;
                        (void) kill(-pid, SIGKILL);
                }
                if (!res.timed_out && now >= deadline) {
                        res.timed_out = true;
                        kill_at = now + (uint64_t) run->kill_grace_sec * 1000000u;
                        (void) kill(-pid, SIGTERM);
                }
                if (res.timed_out && !res.killed && now >= kill_at) {
                        res.killed = true;
                        (void) kill(-pid, SIGKILL);
                }
                uint64_t until = res.killed ? now + 1000000u : res.timed_out ? kill_at : deadline;
                /* Wake up now and then to notice a cancel. */
                int ms = (int) MIN((until > now ? until - now : 0) / 1000u + 1, (uint64_t) 250);
                struct pollfd pf[2] = { { .fd = pfd, .events = POLLIN }, { .fd = eof ? -1 : rfd, .events = POLLIN } };
                int n = poll(pf, 2, ms);
                if (n < 0 && errno != EINTR)
                        break;
                if (n <= 0)
                        continue;
                if (pf[1].revents)
                        read_some(rfd, out, &eof);
                if (pf[0].revents)
                        exited = true;
        }
        /* What is already in the pipe, then the rest of the group. */
        if (!eof)
                read_some(rfd, out, &eof);
        (void) kill(-pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        res.duration_usec = mono_usec() - start;
        res.exited = WIFEXITED(status);
        res.exit_code = res.exited ? WEXITSTATUS(status) : -1;
        res.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        if (run->progress)
                run->progress(run->userdata, pid, out);
        *ret = res;
        return 0;
}
