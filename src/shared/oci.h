/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* A client for the OCI distribution API (registries), enough to publish and
 * fetch Hull bundles (docs/OCI.md): references, docker config.json
 * credentials, the WWW-Authenticate challenge (Basic, Bearer token flow),
 * manifests and blobs. Nothing here logs; every failure comes back as a
 * negative errno with a message that names the registry and repository. */

#define OCI_URL_PREFIX "oci://"
/* "sha256:" + 64 hex digits + NUL */
#define OCI_DIGEST_SIZE 72
#define OCI_TAG_MAX 128
#define OCI_NAME_MAX 255

#define OCI_MEDIA_TYPE_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define OCI_MEDIA_TYPE_EMPTY "application/vnd.oci.empty.v1+json"
#define OCI_EMPTY_DIGEST "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

#define OCI_AUTH_FILE_NODE "/etc/hull/registry-auth.json"

/* ---- references ---- */

/* HOST[:PORT]/REPO[:TAG][@sha256:HEX], the docker/distribution grammar with
 * two restrictions: the host is required (no implicit docker.io, so the
 * first component must contain '.' or ':' or be "localhost"), and the only
 * digest algorithm is sha256. */
typedef struct OciRef {
        char *registry;    /* "registry.example.com:5000" */
        char *repository;  /* "hull/os" */
        char *tag;         /* NULL: none */
        char *digest;      /* "sha256:<64 lowercase hex>"; NULL: not pinned */
} OciRef;

/* -EINVAL with a message naming the part that is wrong. */
int oci_ref_parse(const char *s, OciRef *ret, char **ret_error) _warn_unused_result_;
/* The same for "oci://REF" (what the agent and the OS object take). */
int oci_url_parse(const char *url, OciRef *ret, char **ret_error) _warn_unused_result_;
void oci_ref_done(OciRef *r);
bool oci_ref_is_pinned(const OciRef *r);
bool oci_url_is_oci(const char *s);
/* "HOST/REPO[:TAG][@DIGEST]"; with pinned_only, "HOST/REPO@DIGEST" (the tag
 * dropped; -EINVAL if there is no digest). */
int oci_ref_format(const OciRef *r, bool pinned_only, char **ret) _warn_unused_result_;

/* ---- credentials ---- */

/* Look 'registry' up in a docker config.json (the "auths" map: "auth" is
 * base64 "user:password", or "username"/"password"; keys may carry a scheme
 * and a path, as docker writes them). Returns 1 with the credentials, 0 if
 * the file has none for the registry (anonymous access), or:
 *   -EOPNOTSUPP  a credential helper ("credsStore", "credHelpers") or an
 *                identity token would be needed
 *   -EBADMSG     the file is not such JSON, or an entry is malformed */
int oci_auth_parse(const char *json, size_t len, const char *registry, char **ret_user, char **ret_password,
                   char **ret_error) _warn_unused_result_;
/* The same for a file; a missing file is -ENOENT. */
int oci_auth_load(const char *path, const char *registry, char **ret_user, char **ret_password,
                  char **ret_error) _warn_unused_result_;

/* ---- the WWW-Authenticate challenge ---- */

typedef enum OciAuthScheme {
        OCI_AUTH_BASIC,
        OCI_AUTH_BEARER,
} OciAuthScheme;

typedef struct OciChallenge {
        OciAuthScheme scheme;
        char *realm;    /* Bearer: the token endpoint (required); Basic: may be NULL */
        char *service;  /* may be NULL */
        char *scope;    /* may be NULL */
} OciChallenge;

/* Parse a WWW-Authenticate value (RFC 9110 11.6.1): a scheme, then
 * comma-separated auth-params, each token=token or token="quoted string"
 * (backslash escapes). Parameters are matched case-insensitively; unknown
 * ones are ignored, a repeated one is refused. Only the first challenge is
 * read; Basic and Bearer are understood (-EOPNOTSUPP for another scheme).
 * -EBADMSG for anything malformed. */
int oci_challenge_parse(const char *header, OciChallenge *ret) _warn_unused_result_;
void oci_challenge_done(OciChallenge *c);

/* ---- the client ---- */

typedef struct OciClientOptions {
        const char *auth_file;          /* docker config.json; NULL: anonymous */
        const char *ca_file;            /* PEM CAs; NULL: the system store */
        bool plain_http;                /* http:// (tests only) */
        unsigned max_retries;           /* for 429 and 5xx; 0: 3 */
        unsigned retry_after_max_sec;   /* longest Retry-After honoured; 0: 60 */
        const volatile int *cancel;     /* non-zero: -ECANCELED */
} OciClientOptions;

typedef struct OciClient OciClient;

/* A client for one repository. Credentials are read now (errors as
 * oci_auth_load(), except that a missing file means anonymous). */
int oci_client_new(const char *registry, const char *repository, const OciClientOptions *o, OciClient **ret,
                   char **ret_error) _warn_unused_result_;
OciClient *oci_client_free(OciClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(OciClient *, oci_client_free);

/* Errors of every request:
 *   -EACCES     401 after authenticating (or no credentials), 403
 *   -ENOENT     404 (the manifest, tag, blob or repository does not exist)
 *   -EBUSY      429 after max_retries retries (Retry-After honoured)
 *   -ECOMM      5xx after max_retries retries with backoff, a network error,
 *               an unexpected status
 *   -EPROTO     TLS failure (certificate not trusted, ...)
 *   -EBADMSG    the registry sent something malformed (a manifest that does
 *               not hash to its digest, a bad token response)
 *   -ECANCELED */

/* HEAD the manifest 'reference' (a tag or a digest): its digest, from
 * Docker-Content-Digest (a registry that leaves it out gets a GET whose
 * body is hashed). */
int oci_manifest_resolve(OciClient *c, const char *reference, char ret_digest[static OCI_DIGEST_SIZE],
                         char **ret_error) _warn_unused_result_;
/* GET the manifest; its body (at most 4 MiB, -E2BIG beyond) is hashed and
 * must match 'reference' if that is a digest (-EBADMSG otherwise), and the
 * registry's Docker-Content-Digest if it sent one. ret_media_type may be
 * NULL. */
int oci_manifest_get(OciClient *c, const char *reference, char **ret_body, size_t *ret_size,
                     char ret_digest[static OCI_DIGEST_SIZE], char **ret_media_type,
                     char **ret_error) _warn_unused_result_;
/* PUT a manifest under 'reference' (a tag, or its own digest). Returns its
 * digest (computed here; the registry's answer must agree). */
int oci_manifest_put(OciClient *c, const char *reference, const char *media_type, const void *body, size_t size,
                     char ret_digest[static OCI_DIGEST_SIZE], char **ret_error) _warn_unused_result_;

/* 1 if the blob exists (with *ret_size if non-NULL), 0 if not. */
int oci_blob_exists(OciClient *c, const char *digest, uint64_t *ret_size, char **ret_error) _warn_unused_result_;
/* GET a small blob into memory (at most max bytes, -E2BIG beyond), hashed
 * against its digest (-EBADMSG). Redirects are followed. */
int oci_blob_get(OciClient *c, const char *digest, size_t max, void **ret_data, size_t *ret_size,
                 char **ret_error) _warn_unused_result_;

#define OCI_CHUNK_SIZE_DEFAULT (16ULL * 1024 * 1024)

/* Upload 'size' bytes of fd from 'offset' as blob 'digest', streaming with
 * pread() (never the whole blob in memory): one PUT if size <= chunk_size,
 * else PATCH requests of chunk_size bytes with Content-Range, then a PUT.
 * The registry checks the digest. Does not check whether the blob exists. */
int oci_blob_upload_fd(OciClient *c, int fd, uint64_t offset, uint64_t size, const char *digest,
                       uint64_t chunk_size, char **ret_error) _warn_unused_result_;
/* The same from memory. */
int oci_blob_upload_data(OciClient *c, const void *data, size_t size, const char *digest,
                         char **ret_error) _warn_unused_result_;

/* For downloads through fetch.c (blob byte ranges, big blobs): the blob's
 * URL, and the "Authorization: ..." header line to send with it (*ret NULL
 * if the registry needs none so far). After a 401 (fetch_stream()'s -EACCES)
 * call oci_client_refresh_auth() once: it authenticates again (a bearer
 * token expired) and returns 0 if there is a new header to try. fetch.c,
 * through libcurl, never sends this header to another host when a redirect
 * leads to blob storage. */
int oci_blob_url(const OciClient *c, const char *digest, char **ret) _warn_unused_result_;
int oci_client_auth_header(const OciClient *c, char **ret) _warn_unused_result_;
int oci_client_refresh_auth(OciClient *c, char **ret_error) _warn_unused_result_;
const char *oci_client_ca_file(const OciClient *c);
bool oci_client_plain_http(const OciClient *c);

/* "sha256:<hex>" of a buffer. */
void oci_digest_data(const void *data, size_t size, char ret[static OCI_DIGEST_SIZE]);
/* Whether s is "sha256:" and 64 lowercase hex digits. */
bool oci_digest_is_valid(const char *s);

/* Where a user's registry credentials are by the docker and podman
 * convention: $REGISTRY_AUTH_FILE, else $DOCKER_CONFIG/config.json, else
 * ~/.docker/config.json if it exists. *ret NULL: none (anonymous). */
int oci_auth_default_path(char **ret) _warn_unused_result_;

