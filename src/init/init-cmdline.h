/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

/* The hull.* keys of the kernel command line (man/hull-init.8). Pure code:
 * no file system access, so that unit tests can drive it. */

#define HULL_DEFAULT_INIT "/lib/systemd/systemd"
#define HULL_DEFAULT_PERSIST "PARTLABEL=hull-persist"
#define HULL_DEFAULT_FATAL_DELAY 10U
/* Bounds that keep a typo from holding a node in the fatal path for ever. */
#define HULL_MAX_FATAL_DELAY 3600U
#define HULL_MAX_SLOT_LEN 32U
/* sha256 gives 64 hex digits and sha512 128; anything longer is not a root hash. */
#define HULL_MAX_ROOTHASH_LEN 128U
/* hull-initrd: how long to wait for the root device (RAID HBAs scan slowly). */
#define HULL_DEFAULT_ROOTWAIT 30U
#define HULL_MAX_ROOTWAIT 3600U
#define HULL_MAX_LIVE_LEN 32U

typedef struct HullCmdline {
        char *slot;             /* hull.slot=, NULL if absent */
        bool degraded;          /* hull.boot=degraded */
        char *verity_roothash;  /* hull.verity.roothash=, lower-case hex, NULL if absent */
        char *persist;          /* hull.persist=, NULL if absent */
        char *init;             /* hull.init=, NULL if absent */
        unsigned fatal_delay;   /* hull.fatal_delay=, seconds */

        /* Read by hull-initrd only (man/hull-initrd.8). The plain kernel keys
         * are stored as given: hull-init never looked at them and must not
         * start refusing a command line because of them; hull-initrd checks
         * them with hull_cmdline_check_initrd(). */
        bool has_verity_hashoffset;
        uint64_t verity_hashoffset;     /* hull.verity.hashoffset=, bytes */
        unsigned rootwait;              /* hull.rootwait=, seconds */
        char *live;                     /* hull.live=, NULL if absent */
        char *root;                     /* root= */
        char *rootfstype;               /* rootfstype= */
        char *kernel_init;              /* init= */
        char *root_flags;               /* rootflags= */

        /* Like invalid_key, for the keys only hull-initrd uses: set, but not
         * an error of hull_cmdline_parse(), so that hull-init boots exactly
         * as before whatever these say. */
        const char *invalid_initrd_key;

        /* On -EINVAL from hull_cmdline_parse(): the key whose value was
         * refused, for the error message. Points to a string constant. */
        const char *invalid_key;
} HullCmdline;

#define HULL_CMDLINE_INIT { .fatal_delay = HULL_DEFAULT_FATAL_DELAY, .rootwait = HULL_DEFAULT_ROOTWAIT }

/* Split off the next word of a kernel command line the way the kernel does:
 * words are separated by white space, and double quotes group white space
 * into a word and are removed ("a=\"b c\"" gives a=b c). Advances *p. Returns
 * 1 and an allocated word, 0 at the end of the line, -ENOMEM. */
int cmdline_next_word(const char **p, char **ret) _warn_unused_result_;

/* Parse the hull.* keys of a whole command line into *c (which must have been
 * initialised with HULL_CMDLINE_INIT). Later keys override earlier ones, as
 * with the kernel's own parameters; words after a lone "--" belong to init
 * and are not looked at. Unknown hull.* keys are ignored.
 *
 * -EINVAL, with c->invalid_key set, for a value that must not be guessed at:
 * a root hash that is not hex, a slot name that is not a short token, an
 * init or device path that is not absolute. hull.fatal_delay= values that do
 * not parse are refused too, so that the mistake shows up on the console. */
int hull_cmdline_parse(const char *line, HullCmdline *c) _warn_unused_result_;

void hull_cmdline_done(HullCmdline *c);

/* After hull_cmdline_parse(): -EINVAL, with c->invalid_key set, if a key
 * that only hull-initrd reads has a value it must refuse: a malformed
 * hull.verity.hashoffset=, hull.rootwait= or hull.live=, an init= that is not
 * an absolute path, a root= that is neither /dev/..., PARTLABEL= nor
 * PARTUUID=, a rootfstype= that is not a token; and dm-verity without
 * hull.slot= or hull.verity.hashoffset=. */
int hull_cmdline_check_initrd(HullCmdline *c) _warn_unused_result_;

/* Checks used by the parser, exposed for tests. */
bool hull_slot_name_is_valid(const char *s);
bool hull_roothash_is_valid(const char *s);
/* An absolute device path, or PARTLABEL=, PARTUUID=, LABEL= or UUID= with a value. */
bool hull_persist_spec_is_valid(const char *s);
/* A GUID as written (8-4-4-4-12 hex digits, any case) into its 16 bytes in
 * the order written; -EINVAL otherwise. */
int hull_parse_guid(const char *s, uint8_t ret[static 16]) _warn_unused_result_;
