/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "macro.h"
#include "manifest.h"
#include "sign.h"

/* Update bundle (docs/BUNDLE.md). Layout, all integers big-endian:
 *   offset 0: "HULLBNDL" magic (8 bytes), u32 format version (1),
 *             u32 manifest length M, u32 signature length (64), u32 reserved 0
 *   offset 24: manifest (M bytes of JSON), then the Ed25519 signature
 *   then zero padding to the next 4096 boundary: the payload area, holding
 *   each payload at its manifest offset (4096-aligned).
 * The signature covers the first 24 bytes and the manifest, so the manifest
 * pins every payload's size and SHA-256. The header can be read and verified
 * before a single payload byte, which lets a node reject a bad bundle before
 * it writes anything. */

#define BUNDLE_MAGIC "HULLBNDL"
#define BUNDLE_FORMAT 1
#define BUNDLE_ALIGN 4096

typedef struct BundleInput {
        const char *name;  /* payload name */
        const char *path;  /* file to read */
} BundleInput;

/* Hash the inputs, fill in the manifest's payloads (sizes, digests, offsets)
 * and key_id, sign it and write the bundle atomically to 'path'. The manifest
 * must have no payloads yet (-EINVAL otherwise). Payloads are laid out in
 * input order, each on a 4096 boundary; every input is read exactly once.
 * -ENOKEY if 'key' has no private half; -EINVAL if the manifest breaks a
 * manifest_parse() rule, an input name is unsafe, or an input is not a
 * regular non-empty file; -EEXIST for a duplicate input name; -ESTALE if an
 * input changed size while it was being read. On failure the payloads are
 * removed from the manifest again (key_id stays set) and 'path' is
 * untouched. The bundle is written with mode 0644. */
int bundle_create(const char *path, Manifest *m, const BundleInput *inputs, size_t n_inputs,
                  const HullKey *key) _warn_unused_result_;

/* For readers that fetch a bundle in pieces (delta updates): the size of
 * the head (header, manifest and signature) from its first 24 bytes, and
 * where the payload area starts. -EAGAIN if 'len' < 24; else the header
 * errors of bundle_open(). */
int bundle_head_size(const void *data, size_t len, size_t *ret_size, uint64_t *ret_payload_area) _warn_unused_result_;
/* The checks of bundle_open() on a head in memory, exactly
 * bundle_head_size() bytes; the same errors. */
int bundle_verify_head(const void *head, size_t len, const Keyring *keyring, Manifest **ret) _warn_unused_result_;

typedef struct Bundle Bundle;

/* Read the header and manifest and check the signature against 'keyring'.
 * -EBADMSG: not a bundle, or a malformed header or manifest;
 * -EPROTONOSUPPORT: unknown format version;
 * -ENOKEY: signed by a key not in the keyring;
 * -EKEYREJECTED: the signature does not verify.
 * Payloads are not read yet.
 * Order: header fields (magic -> -EBADMSG, then the version -> -EPROTONOSUPPORT,
 * so a bundle with a tampered version field reports -EPROTONOSUPPORT, then
 * lengths and reserved -> -EBADMSG; a file truncated inside the header,
 * manifest or signature is -EBADMSG), then the signature, tried against every
 * key in the keyring, then the manifest (-EBADMSG, or -EPROTONOSUPPORT for
 * another manifest "format"). When no key verifies, -ENOKEY is returned if
 * the keyring is empty or the manifest's (unverified) key_id names a key
 * that is not in it, -EKEYREJECTED otherwise. A manifest whose key_id is not
 * the id of the key that verified it is -EKEYREJECTED. */
int bundle_open(const char *path, const Keyring *keyring, Bundle **ret) _warn_unused_result_;
Bundle *bundle_free(Bundle *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(Bundle *, bundle_free);

const Manifest *bundle_manifest(const Bundle *b);

/* Called with bytes done so far and the total; may be NULL. */
typedef void (*BundleProgress)(uint64_t done, uint64_t total, void *userdata);

/* Stream one payload to out_fd (or only hash it if out_fd < 0), hashing as
 * it goes. -ENODATA if the bundle is truncated, -EBADMSG if the digest does
 * not match, -ENOENT if there is no such payload.
 * The data is written at out_fd's current position as it is read, before
 * the digest can be known: everything written is untrusted until this
 * returns 0. On any error the caller must treat the target (e.g. the inactive
 * slot) as garbage and never boot or use it. Errors from write() on out_fd
 * are returned as they are (-ENOSPC, -EIO, ...). */
int bundle_extract_payload(Bundle *b, const char *name, int out_fd, BundleProgress cb, void *userdata) _warn_unused_result_;

/* Hash every payload; the first error as above. */
int bundle_verify_payloads(Bundle *b, BundleProgress cb, void *userdata) _warn_unused_result_;

/* A push parser over a bundle arriving as a byte stream (a download), for
 * writing payloads to their destination while the bytes arrive, without a
 * local copy and without seeking. It enforces the same order as
 * bundle_open(): nothing reaches a payload callback before the header,
 * signature and manifest are verified and 'verified' has accepted them. */
typedef struct BundleStreamOps {
        /* Header and manifest verified. Return < 0 to refuse the bundle (e.g.
         * wrong architecture); that error is returned from the feed. */
        int (*verified)(const Manifest *m, void *userdata);
        /* Bytes of payload 'p' at 'offset' within it, in order, untrusted
         * until payload_done() is called for it. */
        int (*payload_data)(const ManifestPayload *p, uint64_t offset, const void *data, size_t len,
                            void *userdata);
        /* All of payload 'p' arrived and its SHA-256 matched the manifest. */
        int (*payload_done)(const ManifestPayload *p, void *userdata);
} BundleStreamOps;

typedef struct BundleStream BundleStream;

int bundle_stream_new(const Keyring *keyring, const BundleStreamOps *ops, void *userdata,
                      BundleStream **ret) _warn_unused_result_;
BundleStream *bundle_stream_free(BundleStream *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(BundleStream *, bundle_stream_free);

/* Feed the next bytes. Errors as bundle_open() for the head, -EBADMSG for a
 * payload whose digest does not match, or whatever a callback returned.
 * After an error the stream is dead: every further call returns it again. */
int bundle_stream_feed(BundleStream *s, const void *data, size_t len) _warn_unused_result_;
/* The input ended. -ENODATA if it ended before the last payload was
 * complete (-EBADMSG if inside the head). Bytes after the last payload are
 * allowed and ignored (only the whole-file digest covers them). */
int bundle_stream_finish(BundleStream *s) _warn_unused_result_;
/* Bytes consumed so far: where a resumed download has to continue. */
uint64_t bundle_stream_position(const BundleStream *s);
/* Offset of the end of the last payload: the size of the bundle as far as
 * it matters; 0 until the head is verified. */
uint64_t bundle_stream_total(const BundleStream *s);
/* NULL until the head is verified. */
const Manifest *bundle_stream_manifest(const BundleStream *s);
/* Do not compute the whole-file digest (it costs a second SHA-256 pass over
 * every byte); call before the first feed. */
void bundle_stream_no_file_digest(BundleStream *s);
/* SHA-256 of every byte fed, available after a successful finish (-ENODATA
 * if switched off). */
int bundle_stream_file_sha256(const BundleStream *s, uint8_t ret[static 32]) _warn_unused_result_;
