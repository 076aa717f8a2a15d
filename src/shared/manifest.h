/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "components.h"
#include "macro.h"

/* The signed manifest at the head of an update bundle (docs/BUNDLE.md): JSON,
 * at most MANIFEST_SIZE_MAX bytes. Unknown top-level fields are rejected so
 * that a newer, incompatible manifest is never half-understood; "format"
 * gates compatibility. Format 2 adds the optional "components" object;
 * readers accept 1 and 2, and a manifest is written in the lowest format
 * that can say what it holds (MANIFEST_FORMAT_MIN unless it has
 * components), so bundles without components stay readable by nodes that
 * only know format 1. */

#define MANIFEST_FORMAT_MIN 1
#define MANIFEST_FORMAT 2      /* the newest format this code reads and writes */
#define MANIFEST_FORMAT_COMPONENTS 2
#define MANIFEST_SIZE_MAX (64 * 1024)
#define MANIFEST_PAYLOADS_MAX 64

typedef struct ManifestPayload {
        char *name;        /* "rootfs", "kernel", "initrd" */
        uint64_t offset;   /* from the start of the payload area, 4096-aligned */
        uint64_t size;
        uint8_t sha256[32];
} ManifestPayload;

typedef struct Manifest {
        unsigned format;
        char *name;        /* image name, e.g. "hull-demo" */
        char *version;
        char *arch;        /* "x86_64", "aarch64" */
        char *key_id;      /* 16 hex characters */
        char *created;     /* RFC 3339 UTC */
        char *rootfs_type; /* "erofs" or "ext4" */
        char *cmdline;     /* kernel arguments the image needs; may be NULL */
        char *verity_root_hash;      /* hex; NULL without dm-verity */
        uint64_t verity_hash_offset; /* bytes into the rootfs payload */
        ManifestPayload *payloads;
        size_t n_payloads;
        Components components;       /* format >= 2; all NULL: none recorded */
} Manifest;

/* An empty manifest with format = MANIFEST_FORMAT_MIN, for the builder to
 * fill. */
int manifest_new(Manifest **ret) _warn_unused_result_;
Manifest *manifest_free(Manifest *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manifest *, manifest_free);

/* -EBADMSG for malformed JSON, a missing or mistyped field, an unknown field,
 * a bad digest or overlapping payloads, "components" in a format-1 manifest
 * or an invalid or empty "components" object; -EPROTONOSUPPORT for a format
 * outside MANIFEST_FORMAT_MIN..MANIFEST_FORMAT; -E2BIG if longer than
 * MANIFEST_SIZE_MAX. */
int manifest_parse(const char *data, size_t len, Manifest **ret) _warn_unused_result_;
/* Canonical JSON (sorted keys, compact), the bytes that get signed. The
 * manifest is checked by the same rules as manifest_parse() first, so that
 * nothing is ever signed that a node would refuse: -EINVAL if it breaks one
 * (this includes having no payloads or no key_id yet), -E2BIG if the result
 * would exceed MANIFEST_SIZE_MAX. */
int manifest_format(const Manifest *m, char **ret) _warn_unused_result_;

const ManifestPayload *manifest_find_payload(const Manifest *m, const char *name);
/* Adds a payload entry (copied); offsets are assigned by bundle_create().
 * -EINVAL for an unsafe name or a zero size, -EEXIST for a duplicate name,
 * -E2BIG beyond MANIFEST_PAYLOADS_MAX entries. */
/* Records the image's component versions (copied; components.h); raises
 * m->format to MANIFEST_FORMAT_COMPONENTS when there are any, and clears
 * them when c is empty or NULL. -EINVAL for an invalid value. */
int manifest_set_components(Manifest *m, const Components *c) _warn_unused_result_;
int manifest_add_payload(Manifest *m, const char *name, uint64_t size, const uint8_t sha256[static 32]) _warn_unused_result_;

/* A token: 1 to 'max' characters of [A-Za-z0-9._+~-], the first a letter or
 * digit (names and versions in manifests, payload names). */
bool manifest_token_ok(const char *s, size_t max);
