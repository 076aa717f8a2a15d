/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fetch.h"
#include "macro.h"
#include "manifest.h"
#include "oci.h"

/* A Hull bundle as an OCI artifact (docs/OCI.md): an image-spec 1.1
 * manifest with artifactType OCI_HULL_ARTIFACT_TYPE, the empty config, and
 * as layers first the bundle's head (header, signed manifest, signature:
 * bytes [0, 88+M) of the file), then every payload in manifest order, each
 * with the digest and size the signed manifest gives it. A node rebuilds
 * the bundle's byte stream from them and verifies it exactly like a
 * download of the file. */

#define OCI_HULL_ARTIFACT_TYPE "application/vnd.hull.bundle.v1"
#define OCI_HULL_HEAD_TYPE "application/vnd.hull.bundle.head.v1"
#define OCI_HULL_PAYLOAD_TYPE "application/vnd.hull.bundle.payload.v1"
#define OCI_HULL_ANNOTATION_PAYLOAD "dev.hull.payload.name"
#define OCI_HULL_ANNOTATION_ARCH "dev.hull.arch"
#define OCI_ANNOTATION_CREATED "org.opencontainers.image.created"

/* Parse a bundle head (header, manifest, signature) from the first len
 * bytes of a bundle, WITHOUT checking the signature: for laying a bundle out
 * and for checking that a registry's layers match it, never for trusting
 * it. *ret_head_size is 88+M; -ENODATA if len is shorter than that, -EBADMSG
 * or -EPROTONOSUPPORT as bundle_open(). */
int oci_bundle_head_parse(const void *data, size_t len, size_t *ret_head_size, Manifest **ret,
                          char **ret_error) _warn_unused_result_;

/* The OCI manifest (JSON) for a bundle with this head. */
int oci_bundle_manifest_make(const Manifest *m, const char *head_digest, uint64_t head_size,
                             char **ret) _warn_unused_result_;

/* Check an OCI manifest's shape: artifactType, config, a head layer and
 * payload layers. Returns the head layer's digest and size. -EMEDIUMTYPE
 * for another artifactType (not a Hull bundle), -EBADMSG for anything else
 * wrong, with a message. */
int oci_bundle_manifest_check(const char *json, size_t len, char ret_head_digest[static OCI_DIGEST_SIZE],
                              uint64_t *ret_head_size, char **ret_error) _warn_unused_result_;
/* Check that the payload layers are exactly the signed manifest's payloads
 * (names, order, sizes, digests). -EBADMSG with a message otherwise. */
int oci_bundle_layers_match(const char *json, size_t len, const Manifest *m, char **ret_error) _warn_unused_result_;

typedef void (*OciPushProgress)(const char *what, const char *digest, uint64_t size, bool existed,
                                void *userdata);

/* Push the bundle file at 'path' under 'reference' (a tag, or NULL to push
 * by digest only). The head must parse (the signature is not checked: the
 * nodes do that); payloads must lie inside the file. Blobs the repository
 * already has are not uploaded again; progress() hears about each blob.
 * Returns the manifest's digest. */
int oci_bundle_push(OciClient *c, const char *path, const char *reference, uint64_t chunk_size,
                    OciPushProgress progress, void *userdata, char ret_digest[static OCI_DIGEST_SIZE],
                    char **ret_error) _warn_unused_result_;

typedef struct OciBundle OciBundle;

/* GET the manifest 'digest' (it must hash to it), check its shape, GET the
 * head blob, parse it (unverified) and check that the layers are exactly its
 * payloads. Errors as oci_manifest_get(), plus -EMEDIUMTYPE and -EBADMSG as
 * above. */
int oci_bundle_resolve(OciClient *c, const char *digest, OciBundle **ret, char **ret_error) _warn_unused_result_;
OciBundle *oci_bundle_free(OciBundle *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(OciBundle *, oci_bundle_free);

/* The OCI manifest's annotation 'key' (OCI_ANNOTATION_CREATED, ...), a
 * copy in *ret: as the registry sent it, NOT signed (for people and for what
 * hullctl declares, never for trust). -ENOENT when it has none that is a
 * string. */
int oci_bundle_annotation(const OciBundle *b, const char *key, char **ret) _warn_unused_result_;

/* The head's manifest: as the registry sent it, NOT verified. */
const Manifest *oci_bundle_manifest(const OciBundle *b);
const char *oci_bundle_head_digest(const OciBundle *b);
/* The head's bytes (header, manifest, signature) and their size (88+M). */
const void *oci_bundle_head(const OciBundle *b, size_t *ret_size);
/* Where the payload area starts in the bundle file: align4096(88+M). */
uint64_t oci_bundle_payload_area(const OciBundle *b);
/* The blob URL of the head or of a payload ("rootfs", ...); -ENOENT for an
 * unknown name. Use with oci_client_auth_header(). */
int oci_bundle_head_url(const OciBundle *b, const OciClient *c, char **ret) _warn_unused_result_;
int oci_bundle_payload_url(const OciBundle *b, const OciClient *c, const char *name, char **ret) _warn_unused_result_;

/* Hand the bundle's bytes, exactly as the file has them, to sink(): the
 * head, zeros up to the payload area, then each payload at its offset
 * (zeros in gaps), each payload blob streamed through fetch_stream() with
 * the client's authorization (renewed once after a 401). A payload blob
 * longer than the manifest says is -EBADMSG, a shorter one -ENODATA. */
int oci_bundle_stream(OciBundle *b, OciClient *c, const volatile int *cancel, FetchSink sink, void *userdata,
                      char **ret_error) _warn_unused_result_;
