/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "grubenv.h"
#include "macro.h"

/* The A/B boot-counting state machine (docs/BOOT-COUNTING.md). GRUB runs the
 * selection at every boot from the script bootcount_generate_grub_cfg()
 * writes; userspace (hull-build, later hull-agent) changes state only through
 * the transitions below and saves the environment atomically. The C model of
 * the selection, boot_state_select(), mirrors the GRUB script so that the
 * state machine can be tested exhaustively here. */

typedef enum Slot {
        SLOT_A,
        SLOT_B,
        _SLOT_MAX,
        SLOT_INVALID = -EINVAL,
} Slot;

#define BOOT_TRIES_MAX 9
#define BOOT_TRIES_DEFAULT 3
#define BOOT_PRIORITY_MAX 99

const char *slot_to_string(Slot s);          /* "a", "b" */
Slot slot_from_string(const char *s);        /* accepts "a"/"b"/"A"/"B" */
Slot slot_other(Slot s);

typedef struct SlotState {
        unsigned priority;  /* 0 = never boot this slot (empty or bad) */
        unsigned tries;     /* boot attempts left while not yet good */
        bool good;          /* marked good after a healthy boot */
} SlotState;

typedef struct BootState {
        SlotState slot[_SLOT_MAX];
} BootState;

/* Env variable names: hull_<slot>_prio, hull_<slot>_tries, hull_<slot>_good
 * with values 0..99, 0..9 and 0/1. Missing variables read as 0. Invalid
 * values give -EBADMSG; numbers must be canonical decimal (no sign, no
 * leading zero, no spaces) because GRUB compares them as strings.
 * boot_state_to_env() always writes all six (-EINVAL for an out-of-range
 * state) and leaves other variables alone. */
int boot_state_from_env(const GrubEnv *e, BootState *ret) _warn_unused_result_;
int boot_state_to_env(const BootState *s, GrubEnv *e) _warn_unused_result_;

bool slot_bootable(const SlotState *s);

/* What GRUB does at boot: pick the bootable slot with the higher priority
 * (A wins ties); if it is not yet good, consume one try. If no slot is
 * bootable, pick the higher-priority slot without counting and set
 * *ret_degraded. Returns the chosen slot. */
Slot boot_state_select(BootState *s, bool *ret_degraded);

/* A new image was written to 'slot': it gets priority above the other slot,
 * 'tries' attempts (1..BOOT_TRIES_MAX) and good=false. -EINVAL on bad input. */
int boot_state_install(BootState *s, Slot slot, unsigned tries) _warn_unused_result_;
/* The booted slot passed its health checks: good=true. -ESTALE if that slot
 * is not bootable any more (priority 0). */
int boot_state_mark_good(BootState *s, Slot slot) _warn_unused_result_;
/* Never boot this slot again until it is reinstalled: priority 0, tries 0,
 * good=false. */
int boot_state_mark_bad(BootState *s, Slot slot) _warn_unused_result_;
/* Make 'slot' the preferred one again; it must be good (-ENOMEDIUM
 * otherwise). */
int boot_state_prefer(BootState *s, Slot slot) _warn_unused_result_;

/* GRUB configuration implementing boot_state_select(). It expects the ESP's
 * root in $esp and the env file path given; kernels live at
 * $esp/EFI/hull/<slot>/vmlinuz and initrd.img. Per-slot kernel arguments come
 * from hull_<slot>_args and global extra arguments from hull_cmdline.
 *
 * The script is sourced with 'configfile', which only passes exported
 * variables on: the stub must "export esp" (if $esp is empty the script
 * falls back to "search --file <env_path>"). A NULL field takes the default
 * shown in its comment. Paths must be absolute, without trailing slash, "."
 * or ".." components, made of [A-Za-z0-9/._-]; the label prefix of
 * [A-Za-z0-9._-], at most 35 characters (GPT names hold 36); the title
 * printable ASCII without "'", at most 128 characters. -EINVAL otherwise. */
typedef struct GrubCfgOptions {
        const char *env_path;     /* e.g. "/EFI/hull/grubenv" (default) */
        const char *boot_dir;     /* e.g. "/EFI/hull" (default) */
        const char *root_label_prefix; /* e.g. "hull-root-" (default) -> PARTLABEL=hull-root-a */
        const char *title;        /* menu title, e.g. "Hull" (default) */
        unsigned timeout;         /* menu timeout in seconds */
} GrubCfgOptions;

int bootcount_generate_grub_cfg(const GrubCfgOptions *o, char **ret) _warn_unused_result_;
