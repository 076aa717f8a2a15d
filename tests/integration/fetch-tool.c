/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test driver for fetch_stream(). Not installed.
 *
 *   fetch-tool URL OUT [--ca F] [--cert F --key F] [--offset N] [--retries N]
 *              [--allow-http] [--stall-timeout SEC] [--connect-timeout SEC]
 *              [--cancel-after BYTES]
 *
 * Writes the stream to OUT (created or truncated), prints "size N" on stderr
 * for every size callback and "bytes N" at the end. --cancel-after sets the
 * cancel flag once that many bytes arrived, to test cancellation. Exits 0,
 * or with the errno of a failure (1 if that does not fit an exit code) after
 * printing "error: <errno name>: <message>". */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fetch.h"
#include "strutil.h"

typedef struct Tool {
        int fd;
        uint64_t bytes;
        uint64_t cancel_after;  /* 0: never */
        volatile int cancel;
} Tool;

static int sink(const void *data, size_t len, void *userdata) {
        Tool *t = userdata;
        const char *p = data;

        while (len > 0) {
                ssize_t n = write(t->fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t) n;
                t->bytes += (uint64_t) n;
        }
        if (t->cancel_after > 0 && t->bytes >= t->cancel_after)
                t->cancel = 1;
        return 0;
}

static void size_cb(uint64_t total, void *userdata) {
        fprintf(stderr, "size %" PRIu64 "\n", total);
}

static int usage(void) {
        fprintf(stderr, "usage: fetch-tool URL OUT [--ca F] [--cert F --key F] [--offset N] [--retries N] "
                        "[--allow-http] [--stall-timeout SEC] [--connect-timeout SEC] [--cancel-after BYTES]\n");
        return EXIT_FAILURE;
}

int main(int argc, char **argv) {
        FetchOptions o = {};
        Tool t = { .fd = -EBADF };
        _cleanup_free_ char *error = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (argc < 3)
                return usage();
        o.url = argv[1];
        for (int i = 3; i < argc; i++) {
                const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
                bool ok = true;

                if (streq(a, "--allow-http")) {
                        o.allow_http = true;
                        continue;
                }
                if (!v)
                        return usage();
                i++;
                if (streq(a, "--ca"))
                        o.ca_file = v;
                else if (streq(a, "--cert"))
                        o.client_cert = v;
                else if (streq(a, "--key"))
                        o.client_key = v;
                else if (streq(a, "--offset"))
                        ok = safe_atou64(v, &o.offset) >= 0;
                else if (streq(a, "--retries"))
                        ok = safe_atou(v, &o.max_retries) >= 0;
                else if (streq(a, "--stall-timeout"))
                        ok = safe_atou(v, &o.stall_timeout_sec) >= 0;
                else if (streq(a, "--connect-timeout"))
                        ok = safe_atou(v, &o.connect_timeout_sec) >= 0;
                else if (streq(a, "--cancel-after"))
                        ok = safe_atou64(v, &t.cancel_after) >= 0;
                else
                        return usage();
                if (!ok) {
                        fprintf(stderr, "bad value for %s: %s\n", a, v);
                        return EXIT_FAILURE;
                }
        }
        o.cancel = &t.cancel;

        fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
                fprintf(stderr, "cannot open %s: %m\n", argv[2]);
                return EXIT_FAILURE;
        }
        t.fd = fd;

        r = fetch_global_init();
        if (r < 0) {
                fprintf(stderr, "cannot initialise libcurl\n");
                return EXIT_FAILURE;
        }
        r = fetch_stream(&o, sink, size_cb, &t, &error);
        fprintf(stderr, "bytes %" PRIu64 "\n", t.bytes);
        if (r < 0) {
                printf("error: %s: %s\n", strerrorname_np(-r) ?: "?", error ?: strerror(-r));
                return -r < 256 ? -r : EXIT_FAILURE;
        }
        if (fsync(fd) < 0 && errno != EINVAL) {
                fprintf(stderr, "cannot sync %s: %m\n", argv[2]);
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
