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

/* Where a Kubernetes node image's kubelet comes from (docs/SPEC.md,
 * "kubernetes"). From a repository it is an ordinary package (packages:
 * kubelet); these are the local-file forms, for air-gapped builds. */
typedef enum KubeletSource {
        KUBELET_SOURCE_NONE,      /* no kubelet from a file (a package, or none at all) */
        KUBELET_SOURCE_BINARY,    /* a static binary, installed as /usr/bin/kubelet */
        KUBELET_SOURCE_DEB,       /* a .deb, installed with apt (its dependencies from the suite) */
        _KUBELET_SOURCE_MAX,
        _KUBELET_SOURCE_INVALID = -EINVAL,
} KubeletSource;

typedef struct SpecKubernetes {
        bool enabled;              /* the spec has a 'kubernetes' section: ship the node wiring */
        KubeletSource kubelet_source;
        char *kubelet_path;        /* relative to the spec's directory, or absolute */
        char *kubelet_sha256;      /* lower-case hex, required with a file */
        char *sandbox_image;       /* containerd's sandbox (pause) image */
} SpecKubernetes;

/* An OCI or docker image archive imported into containerd's k8s.io
 * namespace on the node's first boot with it. */
typedef struct SpecImage {
        char *source;              /* relative to the spec's directory, or absolute */
        char *sha256;              /* optional pin of the archive, lower-case hex */
} SpecImage;

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

        SpecKubernetes kubernetes;
        SpecImage *images;
        size_t n_images;

        char **units_enable;       /* strv, in the order written; NULL if none */
        char **units_mask;

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
const char *kubelet_source_to_string(KubeletSource s);
const char *hook_stage_to_string(HookStage s);
HookStage hook_stage_from_string(const char *s);

/* Defaults, documented in docs/SPEC.md. */
#define SPEC_DEFAULT_ESP_SIZE (256ULL << 20)
#define SPEC_DEFAULT_ROOT_SIZE (1ULL << 30)
#define SPEC_DEFAULT_PERSIST_SIZE (512ULL << 20)
#define SPEC_DEFAULT_MIRROR "http://deb.debian.org/debian"
/* kubeadm v1.32's sandbox image. */
#define SPEC_DEFAULT_SANDBOX_IMAGE "registry.k8s.io/pause:3.10"
#define SPEC_IMAGES_MAX 64
#define SPEC_UNITS_MAX 256
