/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test driver for oci.h and oci-bundle.h. Not installed.
 *
 *   oci-tool [--auth F] [--ca F] [--plain-http] [--retries N] CMD ...
 *     pull oci://HOST/REPO@sha256:D OUT   rebuild the bundle's bytes into OUT
 *                                         (written to OUT.part, renamed at the end)
 *     resolve HOST/REPO:TAG               print the manifest digest
 *     get-manifest HOST/REPO:TAG|@D       print the manifest
 *     put-manifest HOST/REPO:TAG FILE     push FILE as an OCI manifest, print its digest
 *     blob-url oci://HOST/REPO@sha256:D NAME   print a payload's blob URL and
 *                                         whether an Authorization header is needed
 *
 * Exits 0, or with the errno of a failure after printing
 * "error: <errno name>: <message>". */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fetch.h"
#include "fileio.h"
#include "oci-bundle.h"
#include "oci.h"
#include "strutil.h"

static int fd_sink(const void *data, size_t len, void *userdata) {
        int fd = *(int *) userdata;
        const char *p = data;

        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

static int fail(int r, const char *msg) {
        printf("error: %s: %s\n", strerrorname_np(-r) ?: "?", msg ?: strerror(-r));
        return -r < 256 ? -r : 1;
}

int main(int argc, char **argv) {
        OciClientOptions o = {};
        _cleanup_(oci_ref_done) OciRef ref = {};
        _cleanup_(oci_client_freep) OciClient *c = NULL;
        _cleanup_free_ char *err = NULL;
        int i = 1, r;

        for (; i + 1 < argc && string_has_prefix(argv[i], "--"); i++) {
                if (streq(argv[i], "--auth"))
                        o.auth_file = argv[++i];
                else if (streq(argv[i], "--ca"))
                        o.ca_file = argv[++i];
                else if (streq(argv[i], "--plain-http"))
                        o.plain_http = true;
                else if (streq(argv[i], "--retries")) {
                        if (safe_atou(argv[++i], &o.max_retries) < 0)
                                return 2;
                } else
                        return 2;
        }
        if (argc - i < 2)
                return 2;
        const char *cmd = argv[i], *refs = argv[i + 1];

        r = oci_url_is_oci(refs) ? oci_url_parse(refs, &ref, &err) : oci_ref_parse(refs, &ref, &err);
        if (r < 0)
                return fail(r, err);
        if (fetch_global_init() < 0)
                return 1;
        r = oci_client_new(ref.registry, ref.repository, &o, &c, &err);
        if (r < 0)
                return fail(r, err);

        if (streq(cmd, "pull") && argc - i == 3) {
                _cleanup_(oci_bundle_freep) OciBundle *b = NULL;
                _cleanup_free_ char *part = NULL;
                const char *out = argv[i + 2];

                if (!oci_ref_is_pinned(&ref))
                        return fail(-EINVAL, "the reference is not pinned by digest");
                r = oci_bundle_resolve(c, ref.digest, &b, &err);
                if (r < 0)
                        return fail(r, err);
                if (asprintf(&part, "%s.part", out) < 0)
                        return 1;
                int fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (fd < 0)
                        return fail(-errno, "cannot create the output");
                r = oci_bundle_stream(b, c, NULL, fd_sink, &fd, &err);
                if (r >= 0 && fsync(fd) < 0)
                        r = -errno;
                (void) close(fd);
                if (r >= 0 && rename(part, out) < 0)
                        r = -errno;
                if (r < 0) {
                        (void) unlink(part);
                        return fail(r, err);
                }
                printf("pulled %s\n", ref.digest);
                return 0;
        }
        if (streq(cmd, "resolve")) {
                char d[OCI_DIGEST_SIZE];
                r = oci_manifest_resolve(c, ref.digest ?: ref.tag ?: "latest", d, &err);
                if (r < 0)
                        return fail(r, err);
                printf("%s\n", d);
                return 0;
        }
        if (streq(cmd, "get-manifest")) {
                _cleanup_free_ char *body = NULL;
                char d[OCI_DIGEST_SIZE];
                size_t size;
                r = oci_manifest_get(c, ref.digest ?: ref.tag ?: "latest", &body, &size, d, NULL, &err);
                if (r < 0)
                        return fail(r, err);
                fwrite(body, 1, size, stdout);
                return 0;
        }
        if (streq(cmd, "put-manifest") && argc - i == 3) {
                _cleanup_free_ char *body = NULL;
                char d[OCI_DIGEST_SIZE];
                size_t size;
                r = read_full_file(argv[i + 2], 4 * 1024 * 1024, &body, &size);
                if (r < 0)
                        return fail(r, "cannot read the manifest file");
                r = oci_manifest_put(c, ref.tag ?: "latest", OCI_MEDIA_TYPE_MANIFEST, body, size, d, &err);
                if (r < 0)
                        return fail(r, err);
                printf("%s\n", d);
                return 0;
        }
        if (streq(cmd, "blob-url") && argc - i == 3) {
                _cleanup_(oci_bundle_freep) OciBundle *b = NULL;
                _cleanup_free_ char *url = NULL, *auth = NULL;
                if (!oci_ref_is_pinned(&ref))
                        return fail(-EINVAL, "the reference is not pinned by digest");
                r = oci_bundle_resolve(c, ref.digest, &b, &err);
                if (r < 0)
                        return fail(r, err);
                r = oci_bundle_payload_url(b, c, argv[i + 2], &url);
                if (r < 0)
                        return fail(r, "no such payload");
                r = oci_client_auth_header(c, &auth);
                if (r < 0)
                        return fail(r, NULL);
                printf("%s\n%s\n", url, auth ? "authorization" : "anonymous");
                return 0;
        }
        return 2;
}
