/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"
#include "modtrim.h"

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

/* ---- repositories: extra apt repositories (docs/SPEC.md) ---------------- */

#define SPEC_REPOSITORY_NAME_MAX 64
#define SPEC_REPOSITORY_KEY_SIZE_MAX (1024 * 1024)
/* apt_preferences(5): below 0 never installs, 1000 and more may downgrade;
 * 0 is undefined there, so it is refused. */
#define SPEC_REPOSITORY_PIN_MIN (-1000)
#define SPEC_REPOSITORY_PIN_MAX 1001

/* One deb822 source: packages of the packages stage may come from it. */
typedef struct SpecRepository {
        char *name;          /* [a-z0-9][a-z0-9.-]*, unique: names files and errors */
        char **uris;         /* http://, https:// or file:/// */
        char **suites;       /* a flat repository has one suite ending in '/' */
        char **components;   /* empty (never NULL) for a flat repository */
        char *signed_by;     /* OpenPGP public key file, relative to base_dir or absolute */
        bool has_pin;
        int pin;             /* apt pin priority, if has_pin */
        unsigned line, column;         /* of the entry */
        unsigned key_line, key_column; /* of signed_by, for key file errors */

        /* Read by spec_load() (spec_load_repository_keys()); NULL after spec_parse(). */
        char *key_data;
        size_t key_size;
        bool key_armored;    /* ASCII-armored (apt wants .asc) or binary (.gpg) */
} SpecRepository;

/* What hull-build turns off on every node unless the spec's units.keep
 * names it (docs/SPEC.md, "units"): NULL-terminated. */
extern const char *const spec_default_off_units[];

/* boot.initramfs: who writes the initramfs (docs/BUILDER.md). */
typedef enum BootInitramfs {
        BOOT_INITRAMFS_TOOLS,   /* Debian's update-initramfs (the default) */
        BOOT_INITRAMFS_HULL,    /* hull-build, with hull-initrd as /init */
        _BOOT_INITRAMFS_MAX,
        _BOOT_INITRAMFS_INVALID = -EINVAL,
} BootInitramfs;

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

        SpecRepository *repositories;
        size_t n_repositories;

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
        char **units_keep;         /* names from spec_default_off_units to leave alone */

        char **cmdline;
        /* kernel.modules and kernel.firmware (docs/SPEC.md): globs checked
         * by modtrim_pattern_check(); NULL when not given. */
        ModTrimProfile modules_profile;
        char **modules_allow;
        char **modules_deny;
        char **firmware_allow;
        char **firmware_deny;
        unsigned boot_tries;
        unsigned boot_timeout;
        BootInitramfs boot_initramfs;

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
/* spec_parse() of the file, then spec_load_repository_keys(). */
int spec_load(const char *path, Spec **ret, SpecError *error) _warn_unused_result_;
/* Read every repository's signed_by key file into key_data, checking it is an
 * OpenPGP public key (armored or binary). -EINVAL with *error (at signed_by)
 * if one is missing, unreadable, too large or not a public key. */
int spec_load_repository_keys(Spec *s, SpecError *error) _warn_unused_result_;
/* What apt's "Pin: origin" matches for a repository URI: its host name, or ""
 * for file: URIs. */
int spec_repository_uri_origin(const char *uri, char **ret) _warn_unused_result_;
Spec *spec_free(Spec *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Spec *, spec_free);

const char *rootfs_type_to_string(RootfsType t);
const char *boot_initramfs_to_string(BootInitramfs t);
BootInitramfs boot_initramfs_from_string(const char *s);
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
