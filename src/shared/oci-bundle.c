/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "bundle.h"
#include "oci-bundle.h"
#include "sign.h"
#include "strutil.h"

#define HEAD_FIXED 24
#define HEAD_MAX (HEAD_FIXED + MANIFEST_SIZE_MAX + SIGNATURE_SIZE)
#define HEAD_MIN (HEAD_FIXED + 1 + SIGNATURE_SIZE)
#define OCI_MANIFEST_MAX (1024 * 1024)


static uint32_t be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

int oci_bundle_head_parse(const void *data, size_t len, size_t *ret_head_size, Manifest **ret, char **ret_error) {
        const uint8_t *h = data;
        uint32_t mlen;
        int r;

        if (len < HEAD_FIXED)
                return error_set(ret_error, -ENODATA, "the bundle head is shorter than its %d-byte header", HEAD_FIXED);
        if (memcmp(h, BUNDLE_MAGIC, 8) != 0)
                return error_set(ret_error, -EBADMSG, "not a Hull bundle (no HULLBNDL magic)");
        if (be32(h + 8) != BUNDLE_FORMAT)
                return error_set(ret_error, -EPROTONOSUPPORT, "bundle format %" PRIu32 " is not supported (this reads %d)",
                                 be32(h + 8), BUNDLE_FORMAT);
        mlen = be32(h + 12);
        if (mlen == 0 || mlen > MANIFEST_SIZE_MAX || be32(h + 16) != SIGNATURE_SIZE || be32(h + 20) != 0)
                return error_set(ret_error, -EBADMSG, "the bundle header is malformed");
        size_t head = HEAD_FIXED + (size_t) mlen + SIGNATURE_SIZE;
        if (len < head)
                return error_set(ret_error, -ENODATA, "the bundle head is truncated (%zu of %zu bytes)", len, head);
        r = manifest_parse((const char *) h + HEAD_FIXED, mlen, ret);
        if (r < 0)
                return error_set(ret_error, r, "the bundle's manifest is %s",
                                 r == -EPROTONOSUPPORT ? "of an unsupported format" : "malformed");
        *ret_head_size = head;
        return 0;
}

static void digest_of(const uint8_t sha[static 32], char ret[static OCI_DIGEST_SIZE]) {
        memcpy(ret, "sha256:", 7);
        hex_encode(sha, 32, ret + 7);
}

int oci_bundle_manifest_make(const Manifest *m, const char *head_digest, uint64_t head_size, char **ret) {
        _cleanup_(json_decrefp) json_t *root = NULL, *layers = json_array(), *ann = json_object();
        int r = 0;

        if (!layers || !ann)
                return -ENOMEM;
        r |= json_array_append_new(layers, json_pack("{s:s, s:s, s:I}", "mediaType", OCI_HULL_HEAD_TYPE, "digest",
                                                     head_digest, "size", (json_int_t) head_size));
        for (size_t i = 0; i < m->n_payloads; i++) {
                char d[OCI_DIGEST_SIZE];
                digest_of(m->payloads[i].sha256, d);
                r |= json_array_append_new(layers, json_pack("{s:s, s:s, s:I, s:{s:s}}", "mediaType",
                                                             OCI_HULL_PAYLOAD_TYPE, "digest", d, "size",
                                                             (json_int_t) m->payloads[i].size, "annotations",
                                                             OCI_HULL_ANNOTATION_PAYLOAD, m->payloads[i].name));
        }
        r |= json_object_set_new(ann, "org.opencontainers.image.title", json_string(m->name));
        r |= json_object_set_new(ann, "org.opencontainers.image.version", json_string(m->version));
        /* The signed manifest's created, the build's SOURCE_DATE_EPOCH, not
         * the time of the push: the same bundle gives the same manifest
         * (and digest) whenever and wherever it is pushed. */
        r |= json_object_set_new(ann, OCI_ANNOTATION_CREATED, json_string(m->created));
        r |= json_object_set_new(ann, OCI_HULL_ANNOTATION_ARCH, json_string(m->arch));
        if (r != 0)
                return -ENOMEM;
        root = json_pack("{s:i, s:s, s:s, s:{s:s, s:s, s:i}, s:O, s:O}", "schemaVersion", 2, "mediaType",
                         OCI_MEDIA_TYPE_MANIFEST, "artifactType", OCI_HULL_ARTIFACT_TYPE, "config", "mediaType",
                         OCI_MEDIA_TYPE_EMPTY, "digest", OCI_EMPTY_DIGEST, "size", 2, "layers", layers, "annotations",
                         ann);
        if (!root)
                return -ENOMEM;
        *ret = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        return *ret ? 0 : -ENOMEM;
}

static bool size_ok(json_t *v, uint64_t *ret) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return false;
        *ret = (uint64_t) json_integer_value(v);
        return true;
}

int oci_bundle_manifest_check(const char *json, size_t len, char ret_head_digest[static OCI_DIGEST_SIZE],
                              uint64_t *ret_head_size, char **ret_error) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        json_t *config, *layers, *head;
        const char *at, *mt, *d;
        uint64_t size;

        root = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
        if (!root || !json_is_object(root))
                return error_set(ret_error, -EBADMSG, "the OCI manifest is not a JSON object");
        if (json_integer_value(json_object_get(root, "schemaVersion")) != 2 ||
            !json_is_integer(json_object_get(root, "schemaVersion")))
                return error_set(ret_error, -EBADMSG, "the OCI manifest's schemaVersion is not 2");
        mt = json_string_value(json_object_get(root, "mediaType"));
        if (json_object_get(root, "mediaType") && (!mt || !streq(mt, OCI_MEDIA_TYPE_MANIFEST)))
                return error_set(ret_error, -EMEDIUMTYPE, "the OCI manifest's mediaType is %s, not %s",
                                 mt ?: "not a string", OCI_MEDIA_TYPE_MANIFEST);
        at = json_string_value(json_object_get(root, "artifactType"));
        if (!at || !streq(at, OCI_HULL_ARTIFACT_TYPE))
                return error_set(ret_error, -EMEDIUMTYPE, "this is not a Hull bundle: its artifactType is %s, not %s",
                                 at ?: "missing", OCI_HULL_ARTIFACT_TYPE);
        config = json_object_get(root, "config");
        mt = json_string_value(json_object_get(config, "mediaType"));
        d = json_string_value(json_object_get(config, "digest"));
        if (!mt || !streq(mt, OCI_MEDIA_TYPE_EMPTY) || !d || !streq(d, OCI_EMPTY_DIGEST) ||
            !size_ok(json_object_get(config, "size"), &size) || size != 2)
                return error_set(ret_error, -EBADMSG, "the OCI manifest's config is not the empty descriptor");
        layers = json_object_get(root, "layers");
        if (!json_is_array(layers) || json_array_size(layers) < 2 || json_array_size(layers) > MANIFEST_PAYLOADS_MAX + 1)
                return error_set(ret_error, -EBADMSG,
                                 "the OCI manifest's layers are not a head and 1 to %d payloads", MANIFEST_PAYLOADS_MAX);
        head = json_array_get(layers, 0);
        mt = json_string_value(json_object_get(head, "mediaType"));
        d = json_string_value(json_object_get(head, "digest"));
        if (!mt || !streq(mt, OCI_HULL_HEAD_TYPE))
                return error_set(ret_error, -EBADMSG, "the OCI manifest's first layer is not of type %s",
                                 OCI_HULL_HEAD_TYPE);
        if (!oci_digest_is_valid(d) || !size_ok(json_object_get(head, "size"), &size) || size < HEAD_MIN ||
            size > HEAD_MAX)
                return error_set(ret_error, -EBADMSG,
                                 "the OCI manifest's head layer needs a sha256 digest and a size of %d to %d bytes",
                                 HEAD_MIN, HEAD_MAX);
        for (size_t i = 1; i < json_array_size(layers); i++) {
                json_t *l = json_array_get(layers, i);
                const char *lmt = json_string_value(json_object_get(l, "mediaType"));
                const char *name = json_string_value(
                        json_object_get(json_object_get(l, "annotations"), OCI_HULL_ANNOTATION_PAYLOAD));
                uint64_t ls;
                if (!lmt || !streq(lmt, OCI_HULL_PAYLOAD_TYPE) ||
                    !oci_digest_is_valid(json_string_value(json_object_get(l, "digest"))) ||
                    !size_ok(json_object_get(l, "size"), &ls) || ls == 0 || isempty(name))
                        return error_set(ret_error, -EBADMSG,
                                         "the OCI manifest's layer %zu is not a payload (type %s, a sha256 digest, a "
                                         "size and the annotation %s)",
                                         i, OCI_HULL_PAYLOAD_TYPE, OCI_HULL_ANNOTATION_PAYLOAD);
        }
        memcpy(ret_head_digest, d, OCI_DIGEST_SIZE);
        *ret_head_size = size;
        return 0;
}

int oci_bundle_layers_match(const char *json, size_t len, const Manifest *m, char **ret_error) {
        _cleanup_(json_decrefp) json_t *root = json_loadb(json, len, 0, NULL);
        json_t *layers = json_object_get(root, "layers");
        char q[STRING_QUOTE_SIZE];

        if (!json_is_array(layers) || json_array_size(layers) != m->n_payloads + 1)
                return error_set(ret_error, -EBADMSG,
                                 "the OCI manifest has %zu payload layers, the signed manifest %zu payloads",
                                 json_is_array(layers) ? json_array_size(layers) - 1 : 0, m->n_payloads);
        for (size_t i = 0; i < m->n_payloads; i++) {
                const ManifestPayload *p = &m->payloads[i];
                json_t *l = json_array_get(layers, i + 1);
                const char *name = json_string_value(
                        json_object_get(json_object_get(l, "annotations"), OCI_HULL_ANNOTATION_PAYLOAD));
                const char *d = json_string_value(json_object_get(l, "digest"));
                char want[OCI_DIGEST_SIZE];
                uint64_t size = 0;

                digest_of(p->sha256, want);
                if (!name || !streq(name, p->name))
                        return error_set(ret_error, -EBADMSG,
                                         "the OCI manifest's layer %zu is payload %s, the signed manifest has %s there", i + 1,
                                         string_quote(q, name ?: ""), p->name);
                if (!size_ok(json_object_get(l, "size"), &size) || size != p->size)
                        return error_set(ret_error, -EBADMSG,
                                         "the OCI manifest's layer for payload %s has size %" PRIu64
                                         ", the signed manifest says %" PRIu64,
                                         p->name, size, p->size);
                if (!d || !streq(d, want))
                        return error_set(ret_error, -EBADMSG,
                                         "the OCI manifest's layer for payload %s has digest %s, the signed manifest says %s",
                                         p->name, d ?: "(none)", want);
        }
        return 0;
}

/* ---- push ---- */

static int push_blob(OciClient *c, int fd, const void *data, uint64_t offset, uint64_t size, const char *digest,
                     const char *what, uint64_t chunk_size, OciPushProgress progress, void *userdata,
                     char **ret_error) {
        int r = oci_blob_exists(c, digest, NULL, ret_error);
        if (r < 0)
                return r;
        if (r == 0) {
                r = data ? oci_blob_upload_data(c, data, size, digest, ret_error) :
                           oci_blob_upload_fd(c, fd, offset, size, digest, chunk_size, ret_error);
                if (r < 0)
                        return r;
        }
        if (progress)
                progress(what, digest, size, r > 0, userdata);
        return 0;
}

int oci_bundle_push(OciClient *c, const char *path, const char *reference, uint64_t chunk_size,
                    OciPushProgress progress, void *userdata, char ret_digest[static OCI_DIGEST_SIZE],
                    char **ret_error) {
        _cleanup_(manifest_freep) Manifest *m = NULL;
        _cleanup_free_ uint8_t *head = NULL;
        _cleanup_free_ char *json = NULL, *err = NULL;
        _cleanup_close_ int fd = -EBADF;
        char head_digest[OCI_DIGEST_SIZE], digest[OCI_DIGEST_SIZE];
        size_t head_size, have;
        struct stat st;
        ssize_t n;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0)
                return error_set(ret_error, negative_errno(), "cannot open bundle %s: %m", path);
        if (!S_ISREG(st.st_mode))
                return error_set(ret_error, -EINVAL, "bundle %s is not a regular file", path);
        head = malloc(HEAD_MAX);
        if (!head)
                return -ENOMEM;
        n = pread(fd, head, HEAD_MAX, 0);
        if (n < 0)
                return error_set(ret_error, -errno, "cannot read bundle %s: %m", path);
        have = (size_t) n;
        r = oci_bundle_head_parse(head, have, &head_size, &m, &err);
        if (r < 0)
                return error_set(ret_error, r == -ENODATA ? -EBADMSG : r, "%s is not a usable bundle: %s", path,
                                 err ?: strerror(-r));
        uint64_t area = ALIGN_TO((uint64_t) head_size, (uint64_t) BUNDLE_ALIGN);
        for (size_t i = 0; i < m->n_payloads; i++)
                if (area + m->payloads[i].offset + m->payloads[i].size > (uint64_t) st.st_size)
                        return error_set(ret_error, -EBADMSG, "bundle %s is truncated: payload %s ends after the file",
                                         path, m->payloads[i].name);

        oci_digest_data(head, head_size, head_digest);
        r = push_blob(c, -1, "{}", 0, 2, OCI_EMPTY_DIGEST, "config", 0, progress, userdata, ret_error);
        if (r >= 0)
                r = push_blob(c, -1, head, 0, head_size, head_digest, "head", 0, progress, userdata, ret_error);
        for (size_t i = 0; r >= 0 && i < m->n_payloads; i++) {
                char d[OCI_DIGEST_SIZE];
                digest_of(m->payloads[i].sha256, d);
                r = push_blob(c, fd, NULL, area + m->payloads[i].offset, m->payloads[i].size, d, m->payloads[i].name,
                              chunk_size, progress, userdata, ret_error);
        }
        if (r < 0)
                return r;

        r = oci_bundle_manifest_make(m, head_digest, head_size, &json);
        if (r < 0)
                return r;
        oci_digest_data(json, strlen(json), digest);
        r = oci_manifest_put(c, reference ?: digest, OCI_MEDIA_TYPE_MANIFEST, json, strlen(json), ret_digest,
                             ret_error);
        return r;
}

/* ---- pull ---- */

struct OciBundle {
        char digest[OCI_DIGEST_SIZE];
        char *oci_manifest;
        size_t oci_manifest_size;
        char head_digest[OCI_DIGEST_SIZE];
        uint8_t *head;
        size_t head_size;
        Manifest *manifest;
};

OciBundle *oci_bundle_free(OciBundle *b) {
        if (!b)
                return NULL;
        free(b->oci_manifest);
        free(b->head);
        manifest_free(b->manifest);
        free(b);
        return NULL;
}

int oci_bundle_resolve(OciClient *c, const char *digest, OciBundle **ret, char **ret_error) {
        _cleanup_(oci_bundle_freep) OciBundle *b = NULL;
        _cleanup_free_ char *media = NULL, *err = NULL;
        void *head = NULL;
        uint64_t head_size;
        size_t got, parsed;
        int r;

        if (!oci_digest_is_valid(digest))
                return error_set(ret_error, -EINVAL, "an OCI bundle is fetched by its sha256 digest only");
        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        r = oci_manifest_get(c, digest, &b->oci_manifest, &b->oci_manifest_size, b->digest, &media, ret_error);
        if (r < 0)
                return r;
        if (b->oci_manifest_size > OCI_MANIFEST_MAX)
                return error_set(ret_error, -E2BIG, "the OCI manifest %s is larger than %d bytes", digest, OCI_MANIFEST_MAX);
        r = oci_bundle_manifest_check(b->oci_manifest, b->oci_manifest_size, b->head_digest, &head_size, &err);
        if (r < 0)
                return error_set(ret_error, r, "%s: %s", digest, err ?: strerror(-r));
        r = oci_blob_get(c, b->head_digest, HEAD_MAX, &head, &got, ret_error);
        if (r < 0)
                return r;
        b->head = head;
        b->head_size = got;
        if (got != head_size)
                return error_set(ret_error, -EBADMSG, "%s: the head blob has %zu bytes, the OCI manifest says %" PRIu64,
                                 digest, got, head_size);
        r = oci_bundle_head_parse(b->head, got, &parsed, &b->manifest, &err);
        if (r >= 0 && parsed != got)
                r = error_set(&err, -EBADMSG, "it has %zu bytes after the signature", got - parsed);
        if (r < 0)
                return error_set(ret_error, r == -ENODATA ? -EBADMSG : r, "%s: the bundle head blob is unusable: %s", digest,
                                 err ?: strerror(-r));
        r = oci_bundle_layers_match(b->oci_manifest, b->oci_manifest_size, b->manifest, &err);
        if (r < 0)
                return error_set(ret_error, r, "%s: refused: %s", digest, err);
        *ret = TAKE_PTR(b);
        return 0;
}

int oci_bundle_annotation(const OciBundle *b, const char *key, char **ret) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        const char *v;

        if (!b || !key || !ret)
                return -EINVAL;
        /* oci_bundle_resolve() parsed it already: it is JSON. */
        root = json_loadb(b->oci_manifest, b->oci_manifest_size, 0, NULL);
        if (!root)
                return -ENOMEM;
        v = json_string_value(json_object_get(json_object_get(root, "annotations"), key));
        if (!v)
                return -ENOENT;
        *ret = strdup(v);
        return *ret ? 0 : -ENOMEM;
}

const Manifest *oci_bundle_manifest(const OciBundle *b) {
        return b->manifest;
}

const char *oci_bundle_head_digest(const OciBundle *b) {
        return b->head_digest;
}

const void *oci_bundle_head(const OciBundle *b, size_t *ret_size) {
        if (ret_size)
                *ret_size = b->head_size;
        return b->head;
}

uint64_t oci_bundle_payload_area(const OciBundle *b) {
        return ALIGN_TO((uint64_t) b->head_size, (uint64_t) BUNDLE_ALIGN);
}

int oci_bundle_head_url(const OciBundle *b, const OciClient *c, char **ret) {
        return oci_blob_url(c, b->head_digest, ret);
}

int oci_bundle_payload_url(const OciBundle *b, const OciClient *c, const char *name, char **ret) {
        const ManifestPayload *p = manifest_find_payload(b->manifest, name);
        char d[OCI_DIGEST_SIZE];

        if (!p)
                return -ENOENT;
        digest_of(p->sha256, d);
        return oci_blob_url(c, d, ret);
}

static const uint8_t zeros[64 * 1024];

static int feed_zeros(FetchSink sink, void *userdata, uint64_t n) {
        while (n > 0) {
                size_t k = (size_t) MIN(n, (uint64_t) sizeof(zeros));
                int r = sink(zeros, k, userdata);
                if (r < 0)
                        return r;
                n -= k;
        }
        return 0;
}

typedef struct BlobSink {
        FetchSink sink;
        void *userdata;
        uint64_t got, size;
        bool too_long;
} BlobSink;

static int blob_sink(const void *data, size_t len, void *userdata) {
        BlobSink *s = userdata;
        if (len > s->size - s->got) {
                s->too_long = true;
                return -EBADMSG;
        }
        s->got += len;
        return s->sink(data, len, s->userdata);
}

int oci_bundle_stream(OciBundle *b, OciClient *c, const volatile int *cancel, FetchSink sink, void *userdata,
                      char **ret_error) {
        const Manifest *m = b->manifest;
        size_t order[MANIFEST_PAYLOADS_MAX];
        uint64_t pos;
        int r;

        r = sink(b->head, b->head_size, userdata);
        if (r < 0)
                return r;
        pos = b->head_size;

        /* Payloads in file order (bundle_create() writes them in manifest
         * order, but the format only promises offsets). */
        for (size_t i = 0; i < m->n_payloads; i++) {
                size_t j = i;
                for (; j > 0 && m->payloads[order[j - 1]].offset > m->payloads[i].offset; j--)
                        order[j] = order[j - 1];
                order[j] = i;
        }
        for (size_t k = 0; k < m->n_payloads; k++) {
                const ManifestPayload *p = &m->payloads[order[k]];
                uint64_t at = oci_bundle_payload_area(b) + p->offset;
                _cleanup_free_ char *url = NULL;
                bool refreshed = false;

                if (at < pos)
                        return error_set(ret_error, -EBADMSG, "payload %s overlaps what comes before it", p->name);
                r = feed_zeros(sink, userdata, at - pos);
                if (r < 0)
                        return r;
                r = oci_bundle_payload_url(b, c, p->name, &url);
                if (r < 0)
                        return r;

                BlobSink bs = { .sink = sink, .userdata = userdata, .size = p->size };
                for (;;) {
                        _cleanup_free_ char *auth = NULL, *err = NULL;
                        r = oci_client_auth_header(c, &auth);
                        if (r < 0)
                                return r;
                        const char *headers[] = { auth, NULL };
                        FetchOptions fo = {
                                .url = url,
                                .ca_file = oci_client_ca_file(c),
                                .headers = headers,
                                .offset = bs.got,
                                .max_retries = 8,
                                .allow_http = oci_client_plain_http(c),
                                .cancel = cancel,
                        };
                        r = fetch_stream(&fo, blob_sink, NULL, &bs, &err);
                        if (auth)
                                explicit_bzero(auth, strlen(auth));
                        if (r == -EACCES && !refreshed) {
                                /* A bearer token may have expired during a
                                 * long download: one new one, then resume. */
                                refreshed = true;
                                r = oci_client_refresh_auth(c, ret_error);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        if (bs.too_long)
                                return error_set(ret_error, -EBADMSG,
                                                 "the blob of payload %s is longer than its %" PRIu64 " bytes", p->name,
                                                 p->size);
                        if (r < 0) {
                                if (err)
                                        return error_set(ret_error, r, "payload %s: %s", p->name, err);
                                return r;
                        }
                        break;
                }
                if (bs.got != p->size)
                        return error_set(ret_error, -ENODATA,
                                         "the blob of payload %s ended after %" PRIu64 " of %" PRIu64 " bytes", p->name,
                                         bs.got, p->size);
                pos = at + p->size;
        }
        return 0;
}
