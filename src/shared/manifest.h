/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* The signed manifest at the head of an update bundle (docs/BUNDLE.md): JSON,
 * at most MANIFEST_SIZE_MAX bytes. Unknown top-level fields are rejected so
 * that a newer, incompatible manifest is never half-understood; "format"
 * gates compatibility. */

#define MANIFEST_FORMAT 1
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
} Manifest;

/* An empty manifest with format = MANIFEST_FORMAT, for the builder to fill. */
int manifest_new(Manifest **ret) _warn_unused_result_;
Manifest *manifest_free(Manifest *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manifest *, manifest_free);

/* -EBADMSG for malformed JSON, a missing or mistyped field, an unknown field,
 * a bad digest or overlapping payloads; -EPROTONOSUPPORT for a format other
 * than MANIFEST_FORMAT; -E2BIG if longer than MANIFEST_SIZE_MAX. */
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
int manifest_add_payload(Manifest *m, const char *name, uint64_t size, const uint8_t sha256[static 32]) _warn_unused_result_;
