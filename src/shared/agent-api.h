/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

/* Request bodies and error documents of the hull-agent API
 * (docs/AGENT-API.md). The parsers are strict on purpose: the caller is
 * root or close to it and a typo must never silently change what happens
 * to the boot slots, so unknown fields, wrong types and values outside the
 * documented range are all refused before anything is done.
 *
 * Every api_parse_*() function:
 *   - takes the raw body; len 0 (body may then be NULL) is the same as "{}";
 *   - returns -E2BIG for a body over API_BODY_MAX bytes, -EBADMSG for
 *     anything else that is wrong with it (malformed JSON, a duplicate key,
 *     not an object, an unknown field, a wrong type or value), -ENOMEM;
 *   - writes *ret only on success, and on -EBADMSG/-E2BIG sets *ret_error
 *     (if ret_error is non-NULL) to an allocated message for humans that
 *     starts with the field name in quotes ("'tries' must be ..."), or with
 *     "unknown field" or "request body" when no single field is to blame.
 *     The message may be left NULL if allocating it fails. */

#define API_BODY_MAX (1024 * 1024)
#define API_URL_MAX 4096
#define API_PATH_MAX 4095          /* PATH_MAX minus the NUL */
#define API_VERSION_MAX 64
#define API_COMMAND_ARGS_MAX 64
#define API_COMMAND_ARG_MAX 4096

typedef struct StageRequest {
        /* An absolute, normalised local path (no "." or ".." components, no
         * "//", no trailing slash), or an https:// URL: ASCII only, at most
         * API_URL_MAX bytes, no whitespace or control characters, a non-empty
         * host and no user:password@ part (it would end up in the audit log).
         * The scheme is stored in lower case, so a prefix test for
         * "https://" is enough to tell the two apart. Plain http:// is
         * refused. Never NULL after a successful parse. */
        char *source;
        char *sha256;      /* 64 hex digits, stored lower-case; NULL: not checked */
        char *version;     /* [A-Za-z0-9._+~-], 1..API_VERSION_MAX, starting with a
                            * letter or digit (as in a manifest); NULL: any */
        char *key_id;      /* 16 hex digits, stored lower-case; NULL: any trusted key */
        /* TLS options, absolute paths as 'source'; only with an https://
         * source; client_cert and client_key come together or not at all. */
        char *ca_file;
        char *client_cert;
        char *client_key;
} StageRequest;

typedef struct ActivateRequest {
        unsigned tries;    /* 1..BOOT_TRIES_MAX; 0 when not given: the image's default */
        bool reboot;       /* default true */
} ActivateRequest;

typedef struct RollbackRequest {
        bool reboot;       /* default true */
} RollbackRequest;

typedef struct MarkGoodRequest {
        bool force;        /* default false: run the health checks first */
} MarkGoodRequest;

typedef struct DebugRequest {
        /* NULL-terminated, 1..API_COMMAND_ARGS_MAX non-empty strings of at
         * most API_COMMAND_ARG_MAX bytes each; NULL when not given (a login
         * shell). */
        char **command;
} DebugRequest;

#define API_HOOK_NAME_MAX 64
#define API_HOOK_TASK_MAX 253
#define API_HOOK_TIMEOUT_DEFAULT 300
#define API_HOOK_TIMEOUT_MAX 86400

/* POST /v1/hook: run the executable NAME from a hooks directory. */
typedef struct HookRequest {
        /* [A-Za-z0-9][A-Za-z0-9._-]*, 1..API_HOOK_NAME_MAX bytes: a plain
         * file name, so it can never leave the hooks directories (no "/",
         * no leading dot, hence no "." or ".."). Never NULL after a
         * successful parse. */
        char *name;
        /* "pre-drain", "post-boot" or "manual" (the default); never NULL. */
        char *stage;
        unsigned timeout_sec;  /* 1..API_HOOK_TIMEOUT_MAX, default API_HOOK_TIMEOUT_DEFAULT */
        /* What the caller is doing (hull-node: "POOL/OS-OBJECT/VERSION"):
         * 1..API_HOOK_TASK_MAX bytes without control characters; NULL when
         * not given. */
        char *task;
} HookRequest;

/* true for a valid hook name (see HookRequest.name). */
bool api_hook_name_is_valid(const char *name);

/* Free the members and zero the struct; safe on a zeroed struct and on one
 * that has already been done. */
void stage_request_done(StageRequest *r);
void debug_request_done(DebugRequest *r);
void hook_request_done(HookRequest *r);

int api_parse_stage(const char *body, size_t len, StageRequest *ret, char **ret_error) _warn_unused_result_;
int api_parse_activate(const char *body, size_t len, ActivateRequest *ret, char **ret_error) _warn_unused_result_;
int api_parse_rollback(const char *body, size_t len, RollbackRequest *ret, char **ret_error) _warn_unused_result_;
/* POST /v1/reboot takes no fields: only an empty body or {}. */
int api_parse_reboot(const char *body, size_t len, char **ret_error) _warn_unused_result_;
int api_parse_mark_good(const char *body, size_t len, MarkGoodRequest *ret, char **ret_error) _warn_unused_result_;
int api_parse_debug(const char *body, size_t len, DebugRequest *ret, char **ret_error) _warn_unused_result_;
int api_parse_hook(const char *body, size_t len, HookRequest *ret, char **ret_error) _warn_unused_result_;

/* ---- errors ---- */

typedef struct ApiError {
        unsigned status;   /* HTTP status for a call that fails synchronously with this errno */
        const char *code;  /* the stable "code" of the error document */
} ApiError;

/* What an errno (either sign) from an operation (update.h, fetch.h, the
 * system) means to an API client. The codes for stage errors are the ones
 * docs/AGENT-API.md lists under "stage"; an operation's "error" uses the
 * code only, a call that fails synchronously both. Errors about the request
 * itself (forbidden, not_found, method_not_allowed) are decided by the HTTP
 * layer from the route and the peer, never from an errno, and are not here;
 * neither are codes without an errno (unhealthy, boot_failed).
 *
 *   EBADMSG          422 bad_bundle         malformed bundle, or a payload not matching its digest
 *   EKEYREJECTED     422 bad_signature      the signature does not verify
 *   ENOKEY           422 unknown_key        signed by a key not in the running image's keyring
 *   EPROTONOSUPPORT  422 unsupported_format bundle or manifest format we do not know
 *   EXDEV            422 wrong_arch         bundle for another architecture (update.h's UPDATE_E_WRONG_ARCH)
 *   EFBIG            422 too_large          a payload does not fit its slot or the ESP
 *   EDOM             422 version_mismatch   the manifest's version is not the requested one
 *   EKEYREVOKED      422 key_mismatch       signed by a trusted key, but not the requested one
 *   EUCLEAN          422 digest_mismatch    the bundle file's SHA-256 is not the requested one
 *   ENODATA          422 truncated          the bundle ended early
 *   ECOMM, ECONNREFUSED, ECONNRESET, ECONNABORTED, EHOSTUNREACH, EHOSTDOWN,
 *   ENETUNREACH, ENETDOWN, ETIMEDOUT, EPROTO (TLS)
 *                    502 download_failed    the source could not be fetched
 *   ENOENT, EACCES   502 download_failed    the source does not exist or is refused
 *                                           (HTTP 404/410, 401/403, or a local file)
 *   EILSEQ           500 readback_mismatch  the slot read back differs from what was written
 *   EIO              500 io_error
 *   ENOSPC, EDQUOT   507 no_space
 *   EBUSY            409 busy               another operation is running, or the slot is in use
 *   ENOMEDIUM        409 conflict           the slots are not in a state that allows it
 *   ESTALE           409 conflict           something changed meanwhile: a slot's state,
 *                                           the file on the server (the config handler
 *                                           reports its own ESTALE as stale_generation)
 *   E2BIG            413 too_large          request body over API_BODY_MAX
 *   EINVAL           400 bad_request        e.g. an unreadable ca_file
 *   ECANCELED        503 cancelled          the agent was stopping
 *   EINTR            500 interrupted        the agent died while the operation ran
 *   anything else    500 internal
 */
ApiError api_error_from_errno(int err);
/* api_error_from_errno(err).code; never NULL. */
const char *api_error_code_from_errno(int err);

#define API_ERRNO_NAME_MAX 16
/* "EKEYREJECTED" for the errnos listed above plus a few common ones (ENOMEM,
 * EPERM, EEXIST, EAGAIN, EOPNOTSUPP, ...), else "E<number>" formatted into buf.
 * err may have either sign; 0 gives "0". */
const char *api_errno_name(int err, char buf[static API_ERRNO_NAME_MAX]);

/* {"error":{"code":"...","message":"...","errno":"EKEYREJECTED"}} as
 * compact JSON; "errno" is left out for err == 0 (err may have either sign).
 * code NULL means "internal", message NULL means strerror(err). The message
 * is passed through api_utf8_sanitize() (and cut at 64 KiB) first, so
 * anything (a curl error, a file name) may go in. */
int api_format_error(const char *code, const char *message, int err, char **ret) _warn_unused_result_;

/* A copy of at most max bytes of s, cut back to a character boundary, in
 * which every byte sequence that is not well-formed UTF-8 (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF) is replaced by
 * U+FFFD, so that jansson accepts it. NULL only on OOM. (A string helper;
 * it lives here because the API's error documents and the audit log are
 * its users.) */
char *api_utf8_sanitize(const char *s, size_t max);
