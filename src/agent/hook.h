/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"
#include "sha256.h"

/* Node hooks (docs/AGENT.md, "Hooks"): executables the agent runs by name
 * on request, e.g. before hull-node drains the node. */

#define HOOK_DIR_ETC "/etc/hull/hooks.d"
#define HOOK_DIR_USR "/usr/lib/hull/hooks.d"
/* What the operation keeps of the output: its last bytes. */
#define HOOK_OUTPUT_MAX 4096
/* Between SIGTERM and SIGKILL when a hook runs out of time. */
#define HOOK_KILL_GRACE_SEC 10
#define HOOK_PATH_ENV "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Looks NAME up in dirs (NULL-terminated, the first that has it wins).
 * 0 and the path to execute; -ENOENT if no directory has it; -EPERM if the
 * first one found is not safe to run as root (not a regular file, not
 * executable, not owned by root, writable by group or others, or in such
 * a directory), with *ret_error saying which and why; another negative
 * errno with a message if a directory cannot be read. A symbolic link is
 * followed, and the file it leads to and that file's directory are held to
 * the same rules. */
int hook_find(char *const *dirs, const char *name, char **ret_path, char **ret_error) _warn_unused_result_;

/* Everything a hook wrote to stdout and stderr: the last HOOK_OUTPUT_MAX
 * bytes, the total and its SHA-256. */
typedef struct HookOutput {
        char tail[HOOK_OUTPUT_MAX];
        size_t len;
        uint64_t total;
        Sha256 sha;
} HookOutput;

void hook_output_init(HookOutput *o);
void hook_output_add(HookOutput *o, const char *data, size_t len);
/* The tail as valid UTF-8 for JSON, preceded by a line that says how many
 * bytes were dropped when there were more. NULL only on OOM. */
char *hook_output_text(const HookOutput *o);
/* The last non-empty line of the tail, trimmed, cut at max bytes, valid
 * UTF-8; "" if none. NULL only on OOM. */
char *hook_output_last_line(const HookOutput *o, size_t max);

typedef struct HookRun {
        const char *path;
        const char *name, *stage, *task, *os_version; /* task may be NULL */
        unsigned timeout_sec;
        unsigned kill_grace_sec;
        /* Called from the running thread: once with the output empty when
         * the hook has started (pid set), then with new output at most once
         * a second (a quiet hook's last lines within about 1.25 s), and once
         * at the end. */
        void (*progress)(void *userdata, pid_t pid, const HookOutput *out);
        void *userdata;
        /* Set from elsewhere to stop the hook (SIGKILL to its group). */
        const volatile int *cancel;
} HookRun;

typedef struct HookResult {
        bool exited;           /* exit_code is valid */
        int exit_code;
        int signal;            /* what killed it, 0 if it exited */
        bool timed_out;
        bool killed;           /* the grace time passed too: SIGKILL */
        bool cancelled;        /* *cancel was set */
        uint64_t duration_usec;
} HookResult;

/* Runs the hook in a new session (its own process group) with a fixed
 * environment, stdin /dev/null, stdout and stderr into 'out', cwd / and no
 * other file descriptor, and waits for it; on timeout the group gets
 * SIGTERM and kill_grace_sec later SIGKILL. Whatever the hook leaves
 * running in its group is killed when it exits. The hook dies with the
 * calling thread (PR_SET_PDEATHSIG). A negative errno if it could not be
 * started (a failed exec shows as exit status 127 with a message in the
 * output). */
int hook_run(const HookRun *run, HookOutput *out, HookResult *ret) _warn_unused_result_;
