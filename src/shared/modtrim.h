/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Kernel module and firmware trimming (docs/SPEC.md, "kernel.modules"):
 * decides, from a kernel's module index files (modules.dep, modules.softdep,
 * modules.alias, modules.builtin) and the spec's profile and allow/deny
 * globs, which modules an image keeps, and which firmware files go with the
 * dropped ones. Pure: it reads text handed to it and touches no file;
 * hull-build deletes what it drops and runs depmod (src/build/build-modules.c).
 *
 * Globs match a module's path below lib/modules/KVER/kernel/ without the
 * ".ko" suffix and its compression (".ko.xz", ".ko.zst", ".ko.gz"): fs/xfs/xfs,
 * drivers/gpu/drm/amd/amdgpu/amdgpu. A firmware glob matches the path below
 * /usr/lib/firmware without a ".xz" or ".zst" suffix. "**" matches any run of
 * characters including '/', "*" any run without '/', "?" one character other
 * than '/'; everything else matches itself and a glob matches the whole path. */

#define MODTRIM_PATTERNS_MAX 256
#define MODTRIM_PATTERN_LEN_MAX 255
/* modules.alias of a distribution kernel is about 1.5 MiB. */
#define MODTRIM_TEXT_MAX (64U << 20)
#define MODTRIM_MODULES_MAX 65536
#define MODTRIM_LINE_MAX 65536

typedef enum ModTrimProfile {
        MODTRIM_PROFILE_SERVER, /* default: hardware a server never has */
        MODTRIM_PROFILE_VM,     /* server plus bare-metal-only HBAs and NICs */
        MODTRIM_PROFILE_ALL,    /* keep everything */
        _MODTRIM_PROFILE_MAX,
        _MODTRIM_PROFILE_INVALID = -EINVAL,
} ModTrimProfile;

const char *modtrim_profile_to_string(ModTrimProfile p);
ModTrimProfile modtrim_profile_from_string(const char *s);

/* One deny rule of a profile: the glob, and globs it does not apply to. */
typedef struct ModTrimProfileRule {
        const char *deny;
        const char *const *except; /* NULL-terminated, or NULL */
} ModTrimProfileRule;

/* The profile's rules (its own and those of the profiles it extends), with
 * *ret_n set; NULL with 0 for 'all'. */
const ModTrimProfileRule *modtrim_profile_rules(ModTrimProfile p, size_t *ret_n);

/* The modules Hull needs whatever the spec says (by module name; a name
 * ending in '*' is a prefix), each with the reason shown in errors. */
typedef struct ModTrimRequired {
        const char *name;
        const char *why;
} ModTrimRequired;
const ModTrimRequired *modtrim_required(size_t *ret_n);

/* Whole-path glob match, semantics above. */
bool modtrim_glob_match(const char *pattern, const char *path);
/* NULL if p is a valid spec glob, else why not ("must not start with '/'"). */
const char *modtrim_pattern_check(const char *p);

/* A module's path (as in modules.dep) as globs see it: without "kernel/" and
 * the suffix. NULL if the path is not below kernel/ or has no module suffix. */
char *modtrim_match_path(const char *path);

typedef struct ModTrimModule {
        char *path;   /* as in modules.dep: kernel/fs/xfs/xfs.ko */
        char *name;   /* kernel's module name, '-' as '_': xfs */
        size_t *deps; /* indexes into ModTrim.modules */
        size_t n_deps;
        char **softdeps;     /* names or aliases from modules.softdep */
        char **softdeps_pre; /* those after "pre:", which modprobe loads first; NULL if none */
        char **firmware;     /* modinfo firmware= names, set by the caller; may be NULL */
        uint64_t size;       /* set by the caller, for the report */

        /* Set by modtrim_resolve(). */
        bool keep;
        bool required;    /* in Hull's required set or its dependency closure */
        char *reason;     /* the rule that dropped it, or why it is kept */
        size_t user_deny; /* index into the spec's deny list + 1, 0 if none matched */
} ModTrimModule;

typedef struct ModTrimAlias {
        char *pattern; /* an fnmatch(3) pattern, as modprobe matches it */
        size_t module;
} ModTrimAlias;

typedef struct ModTrim {
        ModTrimModule *modules; /* in modules.dep order */
        size_t n_modules;
        size_t *by_name;       /* indexes sorted by name */
        ModTrimAlias *aliases; /* only those naming a loadable module */
        size_t n_aliases;
        char **builtin; /* names of built-in modules, sorted */
        size_t n_builtin;
        /* The patterns of the modules.alias lines that name a built-in
         * module, in file order: a name one matches needs no module file
         * (modtrim_lookup()). */
        char **builtin_aliases;
        size_t n_builtin_aliases;
} ModTrim;

/* The module index files as text (NUL-terminated; all but dep may be NULL).
 * -EBADMSG with *ret_error naming the file and line for a malformed line or
 * a dependency on a module that is neither listed nor built in; -E2BIG for
 * more than MODTRIM_MODULES_MAX modules or a longer text than
 * MODTRIM_TEXT_MAX. */
typedef struct ModTrimSources {
        const char *dep;
        const char *softdep;
        const char *alias;
        const char *builtin;
} ModTrimSources;
int modtrim_load(const ModTrimSources *src, ModTrim **ret, char **ret_error) _warn_unused_result_;
ModTrim *modtrim_free(ModTrim *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(ModTrim *, modtrim_free);

/* A module by name ('-' and '_' alike): its index, -ENOENT if there is none
 * (also when it is built in: see modtrim_is_builtin()). */
int modtrim_find(const ModTrim *t, const char *name);
bool modtrim_is_builtin(const ModTrim *t, const char *name);

/* The modules a name (a module name or an alias such as "crypto-crc32c")
 * stands for, as modprobe resolves it: the module of that name, else every
 * module with a modules.alias pattern that matches the name (fnmatch(3)),
 * each once, in modules.alias order. *ret gets the indexes (NULL if none;
 * the caller frees it) and *ret_n their number. *ret_builtin (may be NULL)
 * is set when the kernel has the name built in, by name or through an
 * alias: with no module found, that tells a name which needs none from one
 * the kernel lacks. */
int modtrim_lookup(
        const ModTrim *t, const char *name, size_t **ret, size_t *ret_n, bool *ret_builtin) _warn_unused_result_;

typedef struct ModTrimRules {
        ModTrimProfile profile;
        char **allow; /* the spec's globs; NULL or NULL-terminated */
        char **deny;
        char **load; /* names from modules-load.d: required too */
} ModTrimRules;

/* Decide keep/drop for every module: outside kernel/ (DKMS's updates/,
 * extra/) kept; else an allow glob keeps, a deny glob drops, a profile rule
 * drops; then Hull's required set, the load names and the dependency
 * closure (modules.dep and softdeps, names resolved through modules.alias)
 * of every kept module are kept. -EPERM with *ret_error when a deny glob of
 * the spec drops a required module or one a required module needs. Can be
 * called again with other rules. */
int modtrim_resolve(ModTrim *t, const ModTrimRules *rules, char **ret_error) _warn_unused_result_;

typedef struct ModTrimFirmware {
        char *path;        /* below /usr/lib/firmware */
        char *link_target; /* a symlink's target, resolved below /usr/lib/firmware, or NULL */
        uint64_t size;
        bool keep; /* set by modtrim_firmware_resolve() */
        char *reason;
} ModTrimFirmware;

/* Decide for each firmware file: an allow glob keeps, a deny glob drops,
 * a file some module names (modules[].firmware, with or without a .xz/.zst
 * suffix) is dropped when all those modules are; a file no module names is
 * kept. A kept symlink keeps its target. Call after modtrim_resolve(). */
int modtrim_firmware_resolve(
        const ModTrim *t, ModTrimFirmware *fw, size_t n, char **allow, char **deny) _warn_unused_result_;
void modtrim_firmware_done(ModTrimFirmware *fw, size_t n);

/* The firmware= values of a module's .modinfo ELF section (64-bit
 * little-endian ELF, as x86_64 modules are). An ELF without .modinfo gives
 * an empty list; -EBADMSG if it is not such an ELF or is truncated. */
int modtrim_modinfo_firmware(const void *elf, size_t size, char ***ret) _warn_unused_result_;
