/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

/* The image spec: the YAML file a platform team keeps in git and hands to
 * hull-build. The reference is docs/SPEC.md. Parsing is strict: unknown keys
 * are errors (a typo must not silently build a different image). */

#define SPEC_SIZE_MAX (1024 * 1024)

typedef enum RootfsType {
        ROOTFS_EROFS,
        ROOTFS_EXT4,
        _ROOTFS_TYPE_MAX,
        _ROOTFS_TYPE_INVALID = -EINVAL,
} RootfsType;

typedef enum HookStage {
        HOOK_POST_BOOTSTRAP,
        HOOK_POST_PACKAGES,
        HOOK_PRE_SEAL,
        _HOOK_STAGE_MAX,
        _HOOK_STAGE_INVALID = -EINVAL,
} HookStage;

typedef struct SpecFile {
        char *source;   /* relative to the spec's directory, or absolute */
        char *path;     /* absolute destination inside the image */
        mode_t mode;
        uid_t uid;      /* numeric owner (names are resolved by the builder) */
        gid_t gid;
        char *owner;    /* optional user name, resolved inside the image */
        char *group;
} SpecFile;

typedef struct Spec {
        char *name;
        char *version;
        char *arch;        /* "x86_64" */

        char *backend;     /* distribution backend: "debian" */
        char *suite;       /* "bookworm" */
        char *mirror;
        char *variant;     /* mmdebstrap variant, "minbase" */
        char **components;

        char **packages;

        SpecFile *files;
        size_t n_files;

        char **hooks[_HOOK_STAGE_MAX];

        RootfsType rootfs_type;
        bool verity;

        uint64_t esp_size;
        uint64_t root_size;
        uint64_t persist_size;

        char **cmdline;
        unsigned boot_tries;
        unsigned boot_timeout;

        char *base_dir;    /* directory of the spec file; relative paths resolve here */
} Spec;

/* A parse failure carries the location and an explanation, because the
 * person reading it is editing a YAML file, not our code. */
typedef struct SpecError {
        unsigned line;     /* 1-based, 0 if unknown */
        unsigned column;
        char message[512];
} SpecError;

/* -EINVAL with *error filled for any malformed or invalid spec; -E2BIG if
 * larger than SPEC_SIZE_MAX; -ENOMEM. */
int spec_parse(const char *data, size_t len, const char *base_dir, Spec **ret, SpecError *error) _warn_unused_result_;
int spec_load(const char *path, Spec **ret, SpecError *error) _warn_unused_result_;
Spec *spec_free(Spec *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Spec *, spec_free);

const char *rootfs_type_to_string(RootfsType t);
RootfsType rootfs_type_from_string(const char *s);
const char *hook_stage_to_string(HookStage s);
HookStage hook_stage_from_string(const char *s);

/* Defaults, documented in docs/SPEC.md. */
#define SPEC_DEFAULT_ESP_SIZE (256ULL << 20)
#define SPEC_DEFAULT_ROOT_SIZE (1ULL << 30)
#define SPEC_DEFAULT_PERSIST_SIZE (512ULL << 20)
#define SPEC_DEFAULT_MIRROR "http://deb.debian.org/debian"
