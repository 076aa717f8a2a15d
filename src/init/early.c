/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "early.h"

static void write_line(int fd, const char *prefix, const char *msg) {
        if (fd >= 0)
                (void) dprintf(fd, "%s%s\n", prefix, msg);
}

void early_sleep_seconds(unsigned s) {
        struct timespec ts = { .tv_sec = s };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

_noreturn_ void early_fatal(const char *program, EarlyFatalAction action, unsigned delay, const char *error) {
        char msg[2048];
        char kmsg_prefix[8];
        bool off = action == EARLY_FATAL_POWEROFF;

        if (off)
                (void) snprintf(msg, sizeof(msg), "%s: FATAL: %s. Powering off in %u s.", program,
                                error ?: "setup failed", delay);
        else
                (void) snprintf(msg, sizeof(msg),
                                "%s: FATAL: %s. The node cannot boot this slot; rebooting in %u s so that "
                                "the boot loader can fall back to the other slot.",
                                program, error ?: "setup failed", delay);

        /* The console for whoever watches the screen or the serial line, the
         * kernel log for whoever reads it after the fact. Separate opens:
         * each /dev/kmsg writer has its own rate limit. */
        int console = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
        write_line(console >= 0 ? console : STDERR_FILENO, "\n", msg);
        int kmsg = open("/dev/kmsg", O_WRONLY | O_NOCTTY | O_CLOEXEC);
        (void) snprintf(kmsg_prefix, sizeof(kmsg_prefix), "<%d>", LOG_CRIT);
        write_line(kmsg, kmsg_prefix, msg);

        early_sleep_seconds(delay);
        sync();
        (void) reboot(off ? RB_POWER_OFF : RB_AUTOBOOT);

        /* Still here: reboot() was refused. Exiting makes the kernel panic;
         * with a panic timeout set that reboots, which beats hanging. */
        (void) snprintf(msg, sizeof(msg),
                        "%s: reboot() failed: %s; exiting, so that the kernel panics and reboots in 10 s",
                        program, strerror(errno));
        write_line(console >= 0 ? console : STDERR_FILENO, "", msg);
        write_line(kmsg, kmsg_prefix, msg);
        int panic = open("/proc/sys/kernel/panic", O_WRONLY | O_CLOEXEC);
        if (panic >= 0)
                (void) !write(panic, "10\n", 3);
        _exit(EXIT_FAILURE);
}
