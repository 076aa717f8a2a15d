/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

/* hull-agent's append-only audit log (docs/AGENT-API.md, "Audit log"):
 * JSON Lines, one record per mutating call and one per operation outcome,
 * each line written with one write() and fdatasync()ed before the caller
 * answers, so that what the log says happened did happen as far as the disk
 * is concerned. A line is always exactly one record: every string is made
 * valid UTF-8 and JSON escapes every control character, newline included.
 *
 *   {"time":"2026-11-22T01:40:00.123456Z","seq":12,"uid":0,"pid":4242,
 *    "method":"POST","path":"/v1/stage","request":{...},"status":202,
 *    "result":"accepted","error":null,"op":7}
 *
 * An outcome record may end in "detail":{...} (AuditRecord.detail_json).
 * Keys come in this order. "request" is the body embedded as JSON if it is
 * a JSON object (duplicate keys make it not one) of at most
 * AUDIT_REQUEST_EMBED_MAX bytes; any other non-empty body is recorded as a
 * string under "request_raw" in its place, cut at AUDIT_REQUEST_RAW_MAX
 * bytes; no body at all is "request":null. "status" and "op" are null when
 * 0. "seq" grows by one per record across restarts and rotations.
 *
 * A power cut can tear the last line; such a line is skipped by every
 * reader, and the next record starts on a line of its own. */

#define AUDIT_ROTATE_SIZE_DEFAULT (8 * 1024 * 1024)
#define AUDIT_REQUEST_EMBED_MAX (64 * 1024)
#define AUDIT_REQUEST_RAW_MAX 4096
#define AUDIT_DETAIL_MAX 4096
/* No record is longer than this (a longer request is recorded raw and cut);
 * readers treat longer lines as corrupt. */
#define AUDIT_LINE_MAX (256 * 1024)

typedef struct AuditRecord {
        uint64_t time_usec;       /* CLOCK_REALTIME; 0: now */
        uid_t uid;
        pid_t pid;                /* 0: the agent itself (an operation's outcome) */
        const char *method;       /* NULL for null; cut at 64 bytes */
        const char *path;         /* NULL for null; cut at 1 KiB */
        const char *request_json; /* the raw body, or NULL */
        unsigned status;          /* HTTP status; 0 for outcome records */
        const char *result;       /* accepted, ok, refused, failed, succeeded; cut at 64 bytes */
        const char *error;        /* message or NULL; cut at 4 KiB */
        uint64_t op_id;           /* 0: none */
        /* A JSON object with facts about an outcome (a hook's exit status,
         * duration, output digest), recorded as "detail" after "op"; left
         * out when NULL or not a JSON object. At most AUDIT_DETAIL_MAX
         * bytes. */
        const char *detail_json;
} AuditRecord;

typedef struct AuditLog AuditLog;

/* Opens (creating with mode 0600) the log at path, appending. 'seq'
 * continues from the last valid record of path, or of path.1 if path holds
 * none (just rotated); corrupt lines at the end are ignored. rotate_size 0
 * means AUDIT_ROTATE_SIZE_DEFAULT. */
int audit_log_open(const char *path, uint64_t rotate_size, AuditLog **ret) _warn_unused_result_;

/* Appends one record; safe to call from several threads. If the record would
 * take the file past rotate_size, the file is first renamed to path.1
 * (replacing the previous one) and a new one started. Errors of write() and
 * fdatasync() (-EIO, -ENOSPC, ...) are passed up; a failed write leaves no
 * partial line behind as far as ftruncate() can undo it, and does not use
 * up a seq. If only fdatasync() fails, the record is in the file (and has
 * its seq) but may not survive a power cut. */
int audit_log_append(AuditLog *l, const AuditRecord *r) _warn_unused_result_;

/* The next record's seq. */
uint64_t audit_log_next_seq(AuditLog *l);

/* The last n valid records of path, and of path.1 if path has fewer, oldest
 * first, as a compact JSON array. A missing file reads as empty. Corrupt or
 * torn lines are skipped. */
int audit_log_tail(const char *path, size_t n, char **ret_json_array) _warn_unused_result_;

AuditLog *audit_log_free(AuditLog *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(AuditLog *, audit_log_free);
