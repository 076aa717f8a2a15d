/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "macro.h"

/* The fatal path shared by the two early-boot programs, hull-initrd (the
 * initramfs' /init) and hull-init (PID 1 in the real root): neither may
 * return as PID 1 or hang. */

typedef enum EarlyFatalAction {
        /* RB_AUTOBOOT: GRUB has counted the try down and falls back to the
         * other slot (docs/BOOT-COUNTING.md). */
        EARLY_FATAL_REBOOT,
        /* RB_POWER_OFF: a live installer must stop rather than boot into
         * itself again. */
        EARLY_FATAL_POWEROFF,
} EarlyFatalAction;

/* Print "PROGRAM: FATAL: ERROR. ..." on /dev/console (or stderr) and, as
 * LOG_CRIT, on /dev/kmsg, wait delay seconds, sync and reboot or power off.
 * If the kernel refuses, exit so that it panics (and reboots with panic=). */
_noreturn_ void early_fatal(const char *program, EarlyFatalAction action, unsigned delay, const char *error);

/* Sleep whole seconds, through EINTR. */
void early_sleep_seconds(unsigned s);
