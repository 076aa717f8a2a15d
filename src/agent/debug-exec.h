/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#define DEBUG_OUTPUT_MAX (1024 * 1024)

typedef struct DebugResult {
        int exit_status;      /* 128+signal if killed */
        bool timed_out;
        bool truncated;       /* output beyond DEBUG_OUTPUT_MAX was dropped */
        char *output;         /* stdout and stderr, interleaved */
} DebugResult;

/* In the child ("hull-agent --debug-exec TOOLBOX CMD..."): enter the admin
 * container and exec the command. Returns only on failure. */
int debug_exec_child(const char *toolbox, char **argv);

/* In the daemon: run the command in the admin container built from the
 * toolbox directory, with a time limit. -ENOENT/-ENOTDIR if there is no
 * toolbox. */
int debug_exec_run(const char *self_exe, const char *toolbox, char **command, unsigned timeout_sec,
                   DebugResult *ret);

/* An interactive session: the command runs in the admin container on a
 * new pseudo-terminal, and everything is relayed between it and 'sock'
 * (the upgraded HTTP connection) until the command ends. Then the exit
 * status is sent as the escape sequence ESC ] hull-exit;N BEL, which
 * hullctl strips. 'extra' holds bytes the client already sent. */
#define DEBUG_EXIT_MARKER "\033]hull-exit;"
int debug_session_run(const char *self_exe, const char *toolbox, char **command, const char *term, unsigned rows,
                      unsigned cols, int sock, const char *extra, size_t extra_len, int *ret_exit_status);
