/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bootcount.h"
#include "bundle.h"
#include "components.h"
#include "macro.h"
#include "sign.h"

/* The A/B update operations on one node (docs/AGENT.md): stage a bundle
 * into the inactive slot, activate it, mark the booted slot good, roll back,
 * and notice a fallback GRUB made. Everything the boot depends on is in the
 * GRUB environment on the ESP, read-modify-written from the file each time
 * (GRUB changes it too). The running slot and persist are never written.
 *
 * Errors besides the usual ones (-ENOMEM, -EIO, -ENOSPC, ...):
 *   -EBADMSG  malformed bundle, or a payload that does not match its signed digest
 *   -EKEYREJECTED, -ENOKEY, -EPROTONOSUPPORT  as bundle_open()
 *   -ENODATA  the bundle ended early (truncated download)
 *   -EXDEV    the bundle is for another architecture
 *   -EFBIG    a payload does not fit its slot or the ESP
 *   -EDOM     the bundle's version is not the one asked for
 *   -EKEYREVOKED  signed by a trusted key, but not the one asked for
 *   -EUCLEAN  the bundle file's SHA-256 is not the one asked for
 *   -EILSEQ   what was read back from the slot differs from what was written
 *   -EBUSY    the inactive slot's device is in use (mounted)
 *   -ENOMEDIUM  the operation needs a slot in another state (nothing
 *               staged, other slot not good, ...)
 * Every error also comes with a message in *ret_error. */

#define UPDATE_E_TOO_LARGE EFBIG
#define UPDATE_E_WRONG_ARCH EXDEV

/* I/O seam: the stage path writes and syncs through these, so tests can
 * inject EIO, ENOSPC and short writes. NULL members use libc. */
typedef struct UpdateIO {
        ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t offset, void *userdata);
        int (*fsync)(int fd, void *userdata);
        void *userdata;
} UpdateIO;

typedef struct UpdateTarget {
        const char *esp_dir;                  /* mounted ESP */
        const char *env_path;                 /* NULL: <esp_dir>/EFI/hull/grubenv */
        const char *slot_device[_SLOT_MAX];   /* hull-root-a, hull-root-b */
        Slot booted;
        const char *arch;                     /* bundles must match, e.g. "x86_64" */
        const Keyring *keyring;               /* trusted keys of the running image */
        const UpdateIO *io;                   /* NULL: libc */
} UpdateTarget;

typedef enum SlotStatus {
        SLOT_STATUS_EMPTY,
        SLOT_STATUS_STAGED,
        SLOT_STATUS_BAD,
        SLOT_STATUS_TRYING,
        SLOT_STATUS_EXHAUSTED,
        SLOT_STATUS_GOOD,
        _SLOT_STATUS_MAX,
} SlotStatus;

const char *slot_status_to_string(SlotStatus s);

typedef struct SlotInfo {
        SlotStatus status;
        char version[65];
        unsigned priority, tries;
        bool good, booted;
} SlotInfo;

/* GRUB environment variables besides the bootcount ones (GRUB ignores them). */
#define ENV_NEW_TRIES "hull_new_tries"   /* tries a new slot gets by default */
#define ENV_CMDLINE "hull_cmdline"       /* extra kernel arguments for both slots (node config) */

int update_read_slots(const UpdateTarget *t, SlotInfo ret[static _SLOT_MAX]) _warn_unused_result_;

typedef enum StagePhase {
        STAGE_PHASE_HEADER,     /* fetching and verifying the head */
        STAGE_PHASE_WRITING,    /* streaming payloads */
        STAGE_PHASE_READBACK,   /* reading the slot back */
        STAGE_PHASE_FINISHING,  /* kernel files in place, environment */
        _STAGE_PHASE_MAX,
} StagePhase;

const char *stage_phase_to_string(StagePhase p);

typedef void (*StageProgress)(StagePhase phase, uint64_t done, uint64_t total, void *userdata);

/* The bytes of a bundle, in order. A pump calls sink() with each chunk and
 * returns 0 at the end, or the first error (its own or the sink's). */
typedef int (*UpdateSink)(const void *data, size_t len, void *sink_userdata);
typedef int (*UpdatePump)(UpdateSink sink, void *sink_userdata, void *pump_userdata, char **ret_error);

/* A pump over a local file: pump_userdata is the path. */
int update_pump_file(UpdateSink sink, void *sink_userdata, void *pump_userdata, char **ret_error);

typedef struct StageOptions {
        const char *expect_version;     /* NULL: any */
        const char *expect_key_id;      /* NULL: any trusted key */
        const uint8_t *expect_sha256;   /* NULL: not checked; 32 bytes */
        StageProgress progress;
        void *userdata;
} StageOptions;

typedef struct StageResult {
        Slot slot;
        char version[65];
        Components components;  /* from the verified manifest; empty if it records none */
} StageResult;

void stage_result_done(StageResult *r);

/* Stage a bundle into the inactive slot. Before the first byte is written
 * the head is verified (signature, architecture, sizes, expectations): a
 * refusal there changes nothing at all. Then the inactive slot is marked
 * bad in the environment (saved and synced) and only then written; any
 * later failure leaves it bad, so GRUB never boots a half-written slot and
 * the running slot's boot entry is untouched. On success the slot is
 * STAGED: written, synced, read back and compared, with its kernel, initrd,
 * version and arguments recorded, but priority 0 until activated. */
int update_stage(const UpdateTarget *t, const StageOptions *o, UpdatePump pump, void *pump_userdata,
                 StageResult *ret, char **ret_error) _warn_unused_result_;

/* Give the staged slot top priority with 'tries' attempts (0: the
 * environment's hull_new_tries, else BOOT_TRIES_DEFAULT). -ENOMEDIUM if the
 * inactive slot is not STAGED. */
int update_activate(const UpdateTarget *t, unsigned tries, Slot *ret_slot, char **ret_error) _warn_unused_result_;

/* Mark the booted slot good. Returns 0 if it was already good, 1 if it was
 * marked now; -ESTALE if it was marked bad meanwhile. */
int update_mark_good(const UpdateTarget *t, char **ret_error) _warn_unused_result_;

/* Prefer the other slot, which must be GOOD (-ENOMEDIUM otherwise). */
int update_rollback(const UpdateTarget *t, Slot *ret_slot, char **ret_error) _warn_unused_result_;

/* At start-up: if the other slot has a higher priority than the booted one
 * but is not bootable any more, GRUB fell back because it used up its tries
 * without being marked good. Mark it bad and return 1 with its version;
 * 0 if nothing happened. */
int update_reconcile_boot(const UpdateTarget *t, char ret_failed_version[static 65], char **ret_error) _warn_unused_result_;

/* Whether hull_cmdline = args would fit the environment block, without
 * writing anything: -ENOSPC (with a message) if not. */
int update_check_cmdline(const UpdateTarget *t, const char *args, char **ret_error) _warn_unused_result_;
/* Set hull_cmdline (the node config's kernel arguments). */
int update_set_cmdline(const UpdateTarget *t, const char *args, char **ret_error) _warn_unused_result_;
