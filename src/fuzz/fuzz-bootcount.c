/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The slot state machine under arbitrary sequences of operations: each
 * input byte is one transition (install, mark-good, mark-bad, prefer, a
 * GRUB boot) on a slot. After every step the invariants the agent relies on
 * must hold; any violation aborts:
 *   - the state stays in range and survives the GRUB environment round trip;
 *   - install makes the slot bootable and preferred, and never changes
 *     whether the other slot is bootable;
 *   - prefer only succeeds on a good slot and makes it preferred;
 *   - mark-good fails with -ESTALE exactly when the slot has priority 0;
 *   - a GRUB boot picks a bootable slot, or is degraded when there is none,
 *     and takes a try only from a slot that is not good. */
#include <stdlib.h>

#include "bootcount.h"
#include "fuzz.h"

static bool preferred(const BootState *s, Slot x) {
        return s->slot[x].priority > s->slot[slot_other(x)].priority;
}

static void check_roundtrip(const BootState *s) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        BootState back;

        for (Slot x = 0; x < _SLOT_MAX; x++)
                if (s->slot[x].priority > BOOT_PRIORITY_MAX || s->slot[x].tries > BOOT_TRIES_MAX)
                        abort();
        if (grubenv_new(&e) < 0)
                abort();
        if (boot_state_to_env(s, e) < 0 || boot_state_from_env(e, &back) < 0)
                abort();
        for (Slot x = 0; x < _SLOT_MAX; x++)
                if (back.slot[x].priority != s->slot[x].priority || back.slot[x].tries != s->slot[x].tries ||
                    back.slot[x].good != s->slot[x].good)
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* What hull-build writes: a good, b empty. */
        BootState s = { .slot = { [SLOT_A] = { .priority = 10, .good = true } } };

        for (size_t i = 0; i < size && i < 4096; i++) {
                Slot x = (data[i] & 1) ? SLOT_B : SLOT_A, o = slot_other(x);
                unsigned arg = (data[i] >> 4) % 11; /* tries 0..10: out of range included */
                BootState before = s;
                bool other_bootable = slot_bootable(&s.slot[o]);
                int r;

                switch ((data[i] >> 1) & 7) {
                case 0:
                case 1:
                        r = boot_state_install(&s, x, arg);
                        if ((arg < 1 || arg > BOOT_TRIES_MAX) != (r < 0))
                                abort();
                        if (r < 0)
                                break;
                        if (!slot_bootable(&s.slot[x]) || !preferred(&s, x) || s.slot[x].good ||
                            slot_bootable(&s.slot[o]) != other_bootable)
                                abort();
                        break;
                case 2:
                        r = boot_state_mark_good(&s, x);
                        if ((before.slot[x].priority == 0) != (r == -ESTALE))
                                abort();
                        if (r >= 0 && (!s.slot[x].good || s.slot[x].priority != before.slot[x].priority))
                                abort();
                        break;
                case 3:
                        if (boot_state_mark_bad(&s, x) < 0 || slot_bootable(&s.slot[x]) || s.slot[x].priority != 0)
                                abort();
                        break;
                case 4:
                        r = boot_state_prefer(&s, x);
                        if ((r >= 0) != (before.slot[x].good && before.slot[x].priority > 0 && r >= 0))
                                abort();
                        if (!before.slot[x].good && r >= 0)
                                abort();
                        if (r >= 0 && (!preferred(&s, x) || slot_bootable(&s.slot[o]) != other_bootable))
                                abort();
                        break;
                default: {
                        bool degraded = false;
                        bool any = slot_bootable(&s.slot[SLOT_A]) || slot_bootable(&s.slot[SLOT_B]);
                        Slot b = boot_state_select(&s, &degraded);
                        if (b != SLOT_A && b != SLOT_B)
                                abort();
                        if (degraded == any)
                                abort();
                        if (!degraded && !slot_bootable(&before.slot[b]))
                                abort();
                        /* A try is taken only from a slot that is not good. */
                        unsigned taken = before.slot[b].tries - s.slot[b].tries;
                        if (taken != (!degraded && !before.slot[b].good ? 1u : 0u))
                                abort();
                        break;
                }
                }
                check_roundtrip(&s);
        }
        return 0;
}
