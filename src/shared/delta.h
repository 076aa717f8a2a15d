/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "fetch.h"
#include "macro.h"
#include "oci-bundle.h"
#include "oci.h"
#include "sign.h"
#include "update.h"

/* Delta downloads (docs/DELTA.md). delta_pump() is an UpdatePump: it hands
 * update_stage() the exact bytes of the remote bundle, in order, but takes
 * every chunk the node already has from its own disks and downloads only
 * the others, with HTTP Range requests. So the stage path, and everything
 * it verifies (signature, payload digests, read-back), is the same as for
 * a full download; on top, each chunk is checked against the signed chunk
 * index before it is handed on.
 *
 * It falls back to downloading the whole bundle, and says so through
 * 'notice', when the bundle has no chunk index or the server ignores Range
 * requests. */

typedef struct DeltaStats {
        uint64_t bundle_size;   /* to the end of the last payload */
        uint64_t fetched;       /* bytes downloaded (head, index, chunks; all of it after a fallback) */
        uint64_t reused;        /* chunk bytes taken from this machine's disks */
        uint64_t resumed;       /* of those, re-verified in the slot after an interrupted stage */
        uint64_t ranges;        /* byte ranges requested */
        bool full;              /* the whole bundle was downloaded */
} DeltaStats;

typedef void (*DeltaNotice)(const char *message, void *userdata);

/* A file or device on this machine that may hold chunks. If it holds all of
 * payload 'payload' (its first bytes hash to the payload's signed digest),
 * that payload is taken from it whole, without looking at chunks. */
typedef struct DeltaSource {
        const char *path;
        const char *payload;    /* "rootfs", "kernel", "initrd", or NULL */
} DeltaSource;

typedef struct DeltaOptions {
        FetchOptions fetch;             /* the bundle's URL, TLS, headers, retries, cancel */
        OciBundle *oci;                 /* instead of fetch.url: the bundle's blobs in a registry (docs/OCI.md), */
        OciClient *oci_client;          /* resolved by oci_bundle_resolve(); byte ranges go to the payload blobs */
        const Keyring *keyring;         /* to read the head; update_stage() checks it again */
        const DeltaSource *sources;     /* the running slot, its kernel and initrd; missing ones are skipped */
        size_t n_sources;
        const char *index_cache;        /* where the last verified chunk index is kept (persist): an
                                         * unchanged index is not downloaded again; NULL: none */
        const char *target_device;      /* the slot being written, for resuming */
        const char *checkpoint;         /* checkpoint file on persist; NULL: no resume */
        DeltaNotice notice;
        void *userdata;
        DeltaStats *stats;              /* optional */
} DeltaOptions;

/* pump_userdata is a DeltaOptions. Errors: those of fetch_ranges() and
 * fetch_stream(), the bundle's head errors (bundle_open()), -EBADMSG for
 * a chunk index or chunk that does not match what the manifest signs. */
int delta_pump(UpdateSink sink, void *sink_userdata, void *pump_userdata, char **ret_error) _warn_unused_result_;

/* The slot is written; the checkpoint has served (or the stage failed
 * for good). */
int delta_checkpoint_remove(const char *path);
