/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <limits.h>

#include "macro.h"

/* Seeding of /persist/var from the image's /var (docs/PERSIST.md).
 *
 * Every entry of the source tree that the destination lacks is copied, with
 * its mode, owner, time stamps and, for symbolic links, its target. Nothing
 * that exists in the destination is ever replaced or changed, whatever its
 * type: the destination is the node's data, the source only its default.
 * Directories that exist on both sides are descended into, so that a new
 * directory deep inside /var/lib of a newer image still appears.
 *
 * Each new top-level entry (file or whole directory tree) is first built
 * under the name SEED_TMP_NAME in its destination directory, fsync()ed and
 * then renamed into place, so a crash never leaves a half-copied entry
 * under its real name; the temporary is removed on the next run. Sockets
 * are skipped; hard links are copied as separate files. */

#define SEED_TMP_NAME ".hull-seed.tmp"
#define SEED_MAX_DEPTH 64U

typedef struct SeedResult {
        unsigned copied;        /* top-level entries created in the destination */
        /* On failure: the path, relative to the trees' roots, of the entry
         * that could not be copied ("" for the roots themselves). */
        char failed_path[PATH_MAX];
} SeedResult;

/* Seed the directory dst from the directory src. Both must exist.
 * Returns >= 0 or -errno; *result is filled in either case. */
int seed_tree(const char *src, const char *dst, SeedResult *result) _warn_unused_result_;
