/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "macro.h"

typedef struct SpawnOptions {
        /* If >= 0, the child's stdout and stderr go here (a build log). */
        int output_fd;
        /* If set, the child runs chroot()ed here with cwd "/". */
        const char *root;
        /* Extra environment entries "K=V", NULL-terminated; added to ours. */
        char * const *env;
        /* If > 0, the child (and its process group) is killed after this
         * many seconds and the call returns -ETIME. */
        unsigned timeout_sec;
} SpawnOptions;

/* Run argv[0] (searched in PATH) and wait for it. Returns a negative errno if
 * it could not be started, otherwise its exit status, or 128+signal if it
 * was killed. The child starts with no signals blocked (a daemon that
 * handles signals through signalfd blocks them all). */
int spawn_run(char * const *argv, const SpawnOptions *o);

/* Same, but captures up to max bytes of stdout into *ret. */
int spawn_capture(char * const *argv, const SpawnOptions *o, size_t max, char **ret) _warn_unused_result_;
