/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static int max_level = LOG_INFO;
static LogTarget target = LOG_TARGET_STDERR;
static const char *prefix = NULL;
static int kmsg_fd = -EBADF;

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

void log_set_target(LogTarget t) {
        target = t;
}

void log_set_prefix(const char *p) {
        prefix = p;
}

int log_open_kmsg(void) {
        if (kmsg_fd >= 0)
                return 0;
        kmsg_fd = open("/dev/kmsg", O_WRONLY | O_NOCTTY | O_CLOEXEC);
        return kmsg_fd >= 0 ? 0 : -errno;
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *format, ...) {
        char buf[2048];
        va_list ap;
        int saved = errno;

        error = error < 0 ? -error : error;

        if (level <= max_level) {
                /* Make %m print the error we were given, not whatever errno happens to be. */
                errno = error;
                va_start(ap, format);
                (void) vsnprintf(buf, sizeof(buf), format, ap);
                va_end(ap);

                if (target == LOG_TARGET_KMSG && kmsg_fd >= 0)
                        (void) dprintf(kmsg_fd, "<%d>%s%s%s\n", level, prefix ?: "", prefix ? ": " : "", buf);
                else if (max_level >= LOG_DEBUG)
                        (void) fprintf(stderr, "%s%s%s (%s:%d %s)\n", prefix ?: "", prefix ? ": " : "", buf, file, line, func);
                else
                        (void) fprintf(stderr, "%s%s%s\n", prefix ?: "", prefix ? ": " : "", buf);
        }

        errno = saved;
        return error == 0 ? -EIO : -error;
}
