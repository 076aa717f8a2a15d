/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* A streaming HTTPS reader for update bundles. Bundles are hundreds of MiB
 * and go straight into a disk partition, so nothing is buffered: each chunk
 * is handed to a sink as it arrives, and a dropped connection is resumed
 * with a Range request instead of starting over. */

typedef struct FetchOptions {
        const char *url;                /* https:// only; http:// only with allow_http (tests) */
        const char *ca_file;            /* PEM bundle of trusted CAs; NULL: the system store */
        const char *client_cert;        /* mTLS: PEM certificate and key, both or neither */
        const char *client_key;
        uint64_t offset;                /* first byte wanted (Range request) */
        unsigned max_retries;           /* reconnects in a row without progress (see below); 0: none */
        unsigned connect_timeout_sec;   /* 0: 30 */
        unsigned stall_timeout_sec;     /* < 1 byte/s for this long is a dropped connection; 0: 60 */
        bool allow_http;
        const volatile int *cancel;     /* if non-NULL and it becomes non-zero: -ECANCELED */
        /* Extra request header lines ("Authorization: Bearer ..."), NULL-
         * terminated; NULL: none. libcurl sends a custom Authorization
         * header only to the original host, never after a redirect to
         * another one (blob storage). */
        const char *const *headers;
} FetchOptions;

/* Called with each chunk in order. Return < 0 to abort; fetch_stream()
 * returns that error as it is. */
typedef int (*FetchSink)(const void *data, size_t len, void *userdata);

/* Called after each (re)connect, before its first byte reaches the sink,
 * with the size of the whole resource if the server told it (Content-Range
 * total, or Content-Length plus the start of the response), 0 if not. */
typedef void (*FetchSizeCallback)(uint64_t total, void *userdata);

/* Call once per program, before any thread is started: libcurl's global
 * setup (OpenSSL, resolver) is not thread-safe. 0 or -EIO. */
int fetch_global_init(void) _warn_unused_result_;

/* Stream o->url from o->offset to its end into sink(). The sink sees every
 * byte exactly once and in order, also across reconnects: a dropped or
 * stalled connection, a refused connect, a resolver failure, HTTP 408, 429
 * or 5xx is retried after 0.5 s, 1 s, 2 s, ... (at most 10 s) with
 * "Range: bytes=<next>-". A 206 answer must start exactly there; a 200 answer
 * (a server that ignores Range) has its already-delivered prefix skipped. The
 * retry count starts again whenever a connection delivered at least 1 MiB of
 * new bytes, so a long download survives any number of spread-out drops, but
 * not a server that stays unreachable or trickles a few bytes per
 * connection. Redirects are followed (at most 5), only to the allowed
 * protocols. Peer and host name are always verified, TLS >= 1.2. An offset
 * at the very end of the file (416 with that size) is success with no bytes.
 *
 * Returns 0 at the end of the resource, or:
 *   -EINVAL     bad URL or options (scheme, half an mTLS pair, unreadable
 *               CA/cert/key file)
 *   -EPROTO     TLS failure: certificate not trusted, handshake refused (e.g.
 *               no client certificate), or a redirect to a protocol that is not
 *               allowed. Never retried, with one exception: under TLS 1.3 the
 *               server's alert for a refused client certificate can be lost to
 *               a connection reset, so a connection the server closes right
 *               after asking for a certificate is retried like a network
 *               failure, and reported as -EPROTO if it keeps happening.
 *   -ENOENT     HTTP 404 or 410
 *   -EACCES     HTTP 401 or 403
 *   -ESTALE     a response's total size (or strong ETag) differs from the
 *               first one: the file changed on the server
 *   -ENODATA    the server kept closing before the end and the retries ran out
 *   -ECOMM      any other HTTP error, a bad Content-Range, or a network error
 *               that persisted through all retries
 *   -ECANCELED  *o->cancel became non-zero
 *   -ENOMEM
 *   or the sink's error.
 * On failure, if ret_error is non-NULL and *ret_error is NULL, *ret_error is
 * set to a message (free() it) naming the URL and what the server or curl
 * said. A sink's error comes back without a message: the caller knows best
 * what its own sink failed at. Bytes already given to the sink stay given. */
int fetch_stream(const FetchOptions *o, FetchSink sink, FetchSizeCallback size_cb, void *userdata,
                 char **ret_error) _warn_unused_result_;

/* A byte range [start, start + length) of a resource. */
typedef struct FetchRange {
        uint64_t start, length;
} FetchRange;

/* Bytes of range 'i' at 'offset' within it. Each byte of each range comes
 * exactly once and, within a range, in order; ranges may interleave. */
typedef int (*FetchRangeSink)(size_t i, uint64_t offset, const void *data, size_t len, void *userdata);

/* Fetch several ranges of o->url (o->offset is ignored). With 'multi', up
 * to FETCH_RANGES_PER_REQUEST ranges go into one request ("Range: bytes=
 * a-b,c-d,...") and the multipart/byteranges answer is taken apart; a
 * server may also answer with one range that covers several. Without it,
 * one request per range. A dropped connection is retried like
 * fetch_stream() for the bytes still missing. 'total' is the size the
 * resource must have (0: not checked): a Content-Range that says otherwise
 * is -ESTALE.
 *
 * Returns 0 when every byte arrived, -ERANGE if the server answered with
 * the whole resource (it ignores Range, or does not serve several ranges
 * at once: retry without 'multi'), or the errors of fetch_stream(). */
#define FETCH_RANGES_PER_REQUEST 64
int fetch_ranges(const FetchOptions *o, const FetchRange *ranges, size_t n, bool multi, uint64_t total,
                 FetchRangeSink sink, void *userdata, char **ret_error) _warn_unused_result_;
