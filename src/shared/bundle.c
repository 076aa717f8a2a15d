/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "bundle.h"
#include "fileio.h"

/* Byte layout of the fixed header; see bundle.h and docs/BUNDLE.md. */
#define HEADER_SIZE 24
#define HDR_MAGIC 0
#define HDR_VERSION 8
#define HDR_MANIFEST_LEN 12
#define HDR_SIGNATURE_LEN 16
#define HDR_RESERVED 20

/* Payloads are streamed through one buffer of this size: a multi-GiB rootfs
 * never has to fit in memory. */
#define STREAM_BUFFER_SIZE (1024 * 1024)

struct Bundle {
        int fd;
        Manifest *manifest;
        uint64_t payload_area; /* file offset of the payload area */
};

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);
/* json_decrefp() comes with jansson >= 2.9. */

static void put_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

static uint32_t get_be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | (uint32_t) p[3];
}

static uint64_t payload_area_offset(size_t manifest_len) {
        return ALIGN_TO((uint64_t) HEADER_SIZE + manifest_len + SIGNATURE_SIZE, (uint64_t) BUNDLE_ALIGN);
}

/* pread() until len bytes or end of file; returns the number of bytes read. */
static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t offset) {
        uint8_t *p = buf;
        size_t done = 0;

        while (done < len) {
                ssize_t n = pread(fd, p + done, len - done, (off_t) (offset + done));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                done += (size_t) n;
        }
        return (ssize_t) done;
}

static int sha256_init(EVP_MD_CTX **ret) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
                EVP_MD_CTX_free(ctx);
                return -EIO;
        }
        *ret = ctx;
        return 0;
}

static int sha256_final(EVP_MD_CTX *ctx, uint8_t ret[static 32]) {
        unsigned len = 0;
        uint8_t md[EVP_MAX_MD_SIZE];

        if (EVP_DigestFinal_ex(ctx, md, &len) != 1 || len != 32)
                return -EIO;
        memcpy(ret, md, 32);
        return 0;
}

/* ---- writing ---- */

typedef struct InputFds {
        int *fds;
        size_t n;
} InputFds;

static void input_fds_done(InputFds *f) {
        for (size_t i = 0; i < f->n; i++)
                safe_close(f->fds[i]);
        free(f->fds);
}

/* Undo what bundle_create() added, so that a failed call leaves the manifest
 * as it was handed in and the call can be retried. */
static void manifest_drop_payloads(Manifest *m) {
        for (size_t i = 0; i < m->n_payloads; i++)
                free(m->payloads[i].name);
        free(m->payloads);
        m->payloads = NULL;
        m->n_payloads = 0;
}

/* Copy exactly 'size' bytes of in_fd to out_fd at 'offset', hashing them. */
static int copy_payload(int in_fd, uint64_t size, int out_fd, uint64_t offset, uint8_t *buf,
                        uint8_t ret_sha256[static 32]) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        uint64_t done = 0;
        int r;

        r = sha256_init(&ctx);
        if (r < 0)
                return r;
        if (lseek(out_fd, (off_t) offset, SEEK_SET) < 0)
                return -errno;

        while (done < size) {
                ssize_t n = loop_read(in_fd, buf, (size_t) MIN((uint64_t) STREAM_BUFFER_SIZE, size - done));
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        return -ESTALE; /* shrank since fstat() */
                if (EVP_DigestUpdate(ctx, buf, (size_t) n) != 1)
                        return -EIO;
                r = loop_write(out_fd, buf, (size_t) n);
                if (r < 0)
                        return r;
                done += (uint64_t) n;
        }

        /* The size is already part of the manifest layout: a file that grew
         * meanwhile is an input changing under our feet, not a snapshot. */
        ssize_t n = loop_read(in_fd, buf, 1);
        if (n < 0)
                return (int) n;
        if (n > 0)
                return -ESTALE;

        return sha256_final(ctx, ret_sha256);
}

static int bundle_write(int fd, Manifest *m, const InputFds *in, const HullKey *key) {
        _cleanup_free_ char *placeholder = NULL, *manifest = NULL;
        _cleanup_free_ uint8_t *buf = NULL, *signed_data = NULL;
        uint8_t sig[SIGNATURE_SIZE];
        size_t mlen;
        int r;

        /* The manifest comes first in the file, but holds the digests of
         * what follows. Every field has a fixed length once the sizes are
         * known (digests are always 64 hex characters), so format it once
         * with zero digests to learn its length and thus where the payload
         * area starts, stream the payloads there in a single pass, then
         * format it for real. */
        r = manifest_format(m, &placeholder);
        if (r < 0)
                return r;
        mlen = strlen(placeholder);
        uint64_t area = payload_area_offset(mlen);

        buf = malloc(STREAM_BUFFER_SIZE);
        if (!buf)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_payloads; i++) {
                ManifestPayload *p = m->payloads + i;
                r = copy_payload(in->fds[i], p->size, fd, area + p->offset, buf, p->sha256);
                if (r < 0)
                        return r;
        }

        r = manifest_format(m, &manifest);
        if (r < 0)
                return r;
        if (strlen(manifest) != mlen)
                return -EIO; /* cannot happen, see above */

        signed_data = malloc(HEADER_SIZE + mlen);
        if (!signed_data)
                return -ENOMEM;
        memcpy(signed_data + HDR_MAGIC, BUNDLE_MAGIC, 8);
        put_be32(signed_data + HDR_VERSION, BUNDLE_FORMAT);
        put_be32(signed_data + HDR_MANIFEST_LEN, (uint32_t) mlen);
        put_be32(signed_data + HDR_SIGNATURE_LEN, SIGNATURE_SIZE);
        put_be32(signed_data + HDR_RESERVED, 0);
        memcpy(signed_data + HEADER_SIZE, manifest, mlen);

        r = key_sign(key, signed_data, HEADER_SIZE + mlen, sig);
        if (r < 0)
                return r;

        /* The gap up to the payload area and between payloads is left as a
         * hole and reads as zeros. */
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;
        r = loop_write(fd, signed_data, HEADER_SIZE + mlen);
        if (r < 0)
                return r;
        r = loop_write(fd, sig, sizeof(sig));
        if (r < 0)
                return r;
        /* The file ends with the last payload (sizes are > 0, so that was
         * the last write): no trailing padding. */
        if (fchmod(fd, 0644) < 0)
                return -errno;
        if (fsync(fd) < 0)
                return -errno;
        return 0;
}

int bundle_create(const char *path, Manifest *m, const BundleInput *inputs, size_t n_inputs,
                  const HullKey *key) {
        _cleanup_(input_fds_done) InputFds in = {};
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        static const uint8_t zero[32] = {};
        uint64_t offset = 0;
        int r;

        if (!path || !m || !key || !inputs || n_inputs == 0)
                return -EINVAL;
        if (m->n_payloads > 0 || n_inputs > MANIFEST_PAYLOADS_MAX)
                return -EINVAL;
        if (!key_has_private(key))
                return -ENOKEY;

        in.fds = calloc(n_inputs, sizeof(int));
        if (!in.fds)
                return -ENOMEM;

        for (size_t i = 0; i < n_inputs; i++) {
                struct stat st;

                if (!inputs[i].path) {
                        r = -EINVAL;
                        goto fail;
                }
                in.fds[in.n] = open(inputs[i].path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (in.fds[in.n] < 0) {
                        r = -errno;
                        goto fail;
                }
                in.n++;
                if (fstat(in.fds[i], &st) < 0) {
                        r = -errno;
                        goto fail;
                }
                if (!S_ISREG(st.st_mode)) {
                        r = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
                        goto fail;
                }

                /* Validates the name and refuses duplicates and empty files. */
                r = manifest_add_payload(m, inputs[i].name, (uint64_t) st.st_size, zero);
                if (r < 0)
                        goto fail;

                /* Back to back, each starting on a 4096 boundary. */
                ManifestPayload *p = m->payloads + i;
                if (offset > (uint64_t) INT64_MAX - BUNDLE_ALIGN ||
                    p->size > (uint64_t) INT64_MAX - BUNDLE_ALIGN - offset) {
                        r = -EFBIG;
                        goto fail;
                }
                p->offset = offset;
                offset = ALIGN_TO(offset + p->size, (uint64_t) BUNDLE_ALIGN);
        }

        char *id = strdup(key_id(key));
        if (!id) {
                r = -ENOMEM;
                goto fail;
        }
        free(m->key_id);
        m->key_id = id;

        /* A temporary file next to the target, so that rename() is atomic
         * and a crash never leaves a half-written bundle under its name. */
        if (asprintf(&tmp, "%s.hull-tmp.XXXXXX", path) < 0) {
                tmp = NULL;
                r = -ENOMEM;
                goto fail;
        }
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                goto fail;
        }

        r = bundle_write(fd, m, &in, key);
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                goto fail;
        }
        return fsync_parent_directory(path);

fail:
        manifest_drop_payloads(m);
        return r;
}

/* ---- reading ---- */

Bundle *bundle_free(Bundle *b) {
        if (!b)
                return NULL;
        safe_close(b->fd);
        manifest_free(b->manifest);
        free(b);
        return NULL;
}

const Manifest *bundle_manifest(const Bundle *b) {
        return b ? b->manifest : NULL;
}

/* No trusted key verified the signature. Tell "signed by a key we do not
 * have" (-ENOKEY) from "the signature or the signed bytes are broken"
 * (-EKEYREJECTED) by the key_id the manifest claims. The manifest is
 * untrusted here: this only picks the error code, it never lets anything
 * through. */
static int signature_failure(const Keyring *kr, const char *manifest, size_t len) {
        _cleanup_(json_decrefp) json_t *root = NULL;

        if (keyring_size(kr) == 0)
                return -ENOKEY;

        root = json_loadb(manifest, len, 0, NULL);
        const char *id = json_string_value(json_object_get(root, "key_id"));
        if (id && !keyring_find(kr, id))
                return -ENOKEY;
        return -EKEYREJECTED;
}

/* Checks the fixed header. On success *ret_mlen is the manifest length and
 * the whole head (header, manifest, signature) is HEADER_SIZE + mlen +
 * SIGNATURE_SIZE bytes. */
static int check_header(const uint8_t header[static HEADER_SIZE], uint32_t *ret_mlen) {
        /* The version comes right after the magic because it defines how
         * everything after it is laid out. */
        if (memcmp(header + HDR_MAGIC, BUNDLE_MAGIC, 8) != 0)
                return -EBADMSG;
        if (get_be32(header + HDR_VERSION) != BUNDLE_FORMAT)
                return -EPROTONOSUPPORT;
        uint32_t mlen = get_be32(header + HDR_MANIFEST_LEN);
        if (mlen == 0 || mlen > MANIFEST_SIZE_MAX)
                return -EBADMSG;
        if (get_be32(header + HDR_SIGNATURE_LEN) != SIGNATURE_SIZE)
                return -EBADMSG;
        if (get_be32(header + HDR_RESERVED) != 0)
                return -EBADMSG;
        *ret_mlen = mlen;
        return 0;
}

/* 'head' holds header, manifest and signature (already checked by
 * check_header()). Verifies the signature before a single manifest byte is
 * interpreted, then parses the manifest. Exactly the bytes checked are the
 * bytes parsed. */
static int verify_head(const uint8_t *head, uint32_t mlen, const Keyring *keyring, Manifest **ret) {
        _cleanup_(manifest_freep) Manifest *m = NULL;
        const HullKey *signer = NULL;
        size_t signed_len = HEADER_SIZE + (size_t) mlen;
        int r;

        /* Every trusted key is tried; there are a handful at most. */
        for (size_t i = 0; i < keyring_size(keyring) && !signer; i++) {
                const HullKey *k = keyring_get(keyring, i);
                r = key_verify(k, head, signed_len, head + signed_len);
                if (r >= 0)
                        signer = k;
                else if (r != -EKEYREJECTED)
                        return r;
        }
        if (!signer)
                return signature_failure(keyring, (const char *) head + HEADER_SIZE, mlen);

        r = manifest_parse((const char *) head + HEADER_SIZE, mlen, &m);
        if (r < 0)
                return r;
        /* A trusted key signed a manifest naming another key: a builder bug
         * or a re-signed bundle; either way not what the signer vouched for. */
        if (!streq(m->key_id, key_id(signer)))
                return -EKEYREJECTED;

        uint64_t area = payload_area_offset(mlen);
        for (size_t i = 0; i < m->n_payloads; i++) {
                const ManifestPayload *p = m->payloads + i;
                /* Offsets of the last byte must fit off_t. */
                if (p->offset + p->size > (uint64_t) INT64_MAX - area)
                        return -EBADMSG;
        }
        *ret = TAKE_PTR(m);
        return 0;
}

int bundle_head_size(const void *data, size_t len, size_t *ret_size, uint64_t *ret_payload_area) {
        uint32_t mlen;

        if (len < HEADER_SIZE)
                return -EAGAIN;
        int r = check_header(data, &mlen);
        if (r < 0)
                return r;
        *ret_size = HEADER_SIZE + (size_t) mlen + SIGNATURE_SIZE;
        if (ret_payload_area)
                *ret_payload_area = payload_area_offset(mlen);
        return 0;
}

int bundle_verify_head(const void *head, size_t len, const Keyring *keyring, Manifest **ret) {
        size_t size;
        int r = bundle_head_size(head, len, &size, NULL);
        if (r == -EAGAIN)
                return -EBADMSG;
        if (r < 0)
                return r;
        if (len != size)
                return -EBADMSG;
        return verify_head(head, (uint32_t) (size - HEADER_SIZE - SIGNATURE_SIZE), keyring, ret);
}

int bundle_open(const char *path, const Keyring *keyring, Bundle **ret) {
        _cleanup_(bundle_freep) Bundle *b = NULL;
        _cleanup_(manifest_freep) Manifest *m = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint8_t header[HEADER_SIZE];
        struct stat st;
        uint32_t mlen;
        ssize_t n;
        int r;

        if (!path || !keyring || !ret)
                return -EINVAL;

        /* O_NONBLOCK: a FIFO planted under the bundle's name must not hang
         * the caller in open(); it is refused just below. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
                return -EBADMSG;

        /* 1. The header, field by field. */
        n = pread_full(fd, header, sizeof(header), 0);
        if (n < 0)
                return (int) n;
        if ((size_t) n < sizeof(header))
                return -EBADMSG;
        r = check_header(header, &mlen);
        if (r < 0)
                return r;

        /* 2. The signature over header and manifest, 3. the manifest. */
        data = malloc(HEADER_SIZE + (size_t) mlen + SIGNATURE_SIZE);
        if (!data)
                return -ENOMEM;
        memcpy(data, header, HEADER_SIZE);
        n = pread_full(fd, data + HEADER_SIZE, (size_t) mlen + SIGNATURE_SIZE, HEADER_SIZE);
        if (n < 0)
                return (int) n;
        if ((size_t) n < (size_t) mlen + SIGNATURE_SIZE)
                return -EBADMSG; /* truncated inside the manifest or signature */
        r = verify_head(data, mlen, keyring, &m);
        if (r < 0)
                return r;

        b = calloc(1, sizeof(Bundle));
        if (!b)
                return -ENOMEM;
        b->fd = TAKE_FD(fd);
        b->manifest = TAKE_PTR(m);
        b->payload_area = payload_area_offset(mlen);

        /* 4. Payload digests are checked as they are streamed, by
         * bundle_extract_payload() and bundle_verify_payloads(). */
        *ret = TAKE_PTR(b);
        return 0;
}

static int stream_payload(Bundle *b, const ManifestPayload *p, int out_fd, uint64_t base, uint64_t total,
                          BundleProgress cb, void *userdata) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        uint8_t digest[32];
        uint64_t done = 0, start = b->payload_area + p->offset;
        int r;

        r = sha256_init(&ctx);
        if (r < 0)
                return r;
        buf = malloc(STREAM_BUFFER_SIZE);
        if (!buf)
                return -ENOMEM;

        while (done < p->size) {
                size_t want = (size_t) MIN((uint64_t) STREAM_BUFFER_SIZE, p->size - done);
                ssize_t n = pread(b->fd, buf, want, (off_t) (start + done));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -ENODATA; /* the file ends inside this payload */
                if (EVP_DigestUpdate(ctx, buf, (size_t) n) != 1)
                        return -EIO;
                if (out_fd >= 0) {
                        r = loop_write(out_fd, buf, (size_t) n);
                        if (r < 0)
                                return r;
                }
                done += (uint64_t) n;
                if (cb)
                        cb(base + done, total, userdata);
        }

        r = sha256_final(ctx, digest);
        if (r < 0)
                return r;
        if (CRYPTO_memcmp(digest, p->sha256, sizeof(digest)) != 0)
                return -EBADMSG;
        return 0;
}

int bundle_extract_payload(Bundle *b, const char *name, int out_fd, BundleProgress cb, void *userdata) {
        if (!b || !name)
                return -EINVAL;

        const ManifestPayload *p = manifest_find_payload(b->manifest, name);
        if (!p)
                return -ENOENT;
        return stream_payload(b, p, out_fd, 0, p->size, cb, userdata);
}

int bundle_verify_payloads(Bundle *b, BundleProgress cb, void *userdata) {
        uint64_t total = 0, base = 0;
        int r;

        if (!b)
                return -EINVAL;

        /* No overflow: payloads do not overlap and all end below INT64_MAX. */
        for (size_t i = 0; i < b->manifest->n_payloads; i++)
                total += b->manifest->payloads[i].size;

        for (size_t i = 0; i < b->manifest->n_payloads; i++) {
                const ManifestPayload *p = b->manifest->payloads + i;
                r = stream_payload(b, p, -EBADF, base, total, cb, userdata);
                if (r < 0)
                        return r;
                base += p->size;
        }
        return 0;
}

/* ---- streaming ---- */

struct BundleStream {
        const Keyring *keyring;
        BundleStreamOps ops;
        void *userdata;
        int error;            /* sticky */
        bool finished;

        uint64_t pos;         /* bytes consumed */
        EVP_MD_CTX *file_ctx; /* over everything */
        uint8_t file_sha256[32];

        /* head */
        uint8_t *head;
        size_t head_len, head_want; /* want grows once the header is known */
        uint32_t mlen;

        /* payloads, in file order */
        Manifest *manifest;
        uint64_t area;
        size_t *order;
        size_t cur;               /* index into order */
        EVP_MD_CTX *payload_ctx;
};

BundleStream *bundle_stream_free(BundleStream *s) {
        if (!s)
                return NULL;
        EVP_MD_CTX_free(s->file_ctx);
        EVP_MD_CTX_free(s->payload_ctx);
        free(s->head);
        free(s->order);
        manifest_free(s->manifest);
        free(s);
        return NULL;
}

int bundle_stream_new(const Keyring *keyring, const BundleStreamOps *ops, void *userdata, BundleStream **ret) {
        _cleanup_(bundle_stream_freep) BundleStream *s = NULL;
        int r;

        if (!keyring || !ret)
                return -EINVAL;
        s = calloc(1, sizeof(BundleStream));
        if (!s)
                return -ENOMEM;
        s->keyring = keyring;
        if (ops)
                s->ops = *ops;
        s->userdata = userdata;
        s->head_want = HEADER_SIZE;
        s->head = malloc(HEADER_SIZE);
        if (!s->head)
                return -ENOMEM;
        r = sha256_init(&s->file_ctx);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

static const ManifestPayload *stream_current(const BundleStream *s) {
        return s->cur < s->manifest->n_payloads ? s->manifest->payloads + s->order[s->cur] : NULL;
}

static int stream_head_complete(BundleStream *s) {
        int r = verify_head(s->head, s->mlen, s->keyring, &s->manifest);
        if (r < 0)
                return r;
        s->area = payload_area_offset(s->mlen);

        /* Payloads are written in manifest order by bundle_create(), but
         * nothing requires it: sort by offset so any valid bundle streams. */
        size_t n = s->manifest->n_payloads;
        s->order = calloc(MAX(n, (size_t) 1), sizeof(size_t));
        if (!s->order)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                size_t j = i;
                while (j > 0 && s->manifest->payloads[s->order[j - 1]].offset > s->manifest->payloads[i].offset) {
                        s->order[j] = s->order[j - 1];
                        j--;
                }
                s->order[j] = i;
        }
        if (s->ops.verified) {
                r = s->ops.verified(s->manifest, s->userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int stream_feed(BundleStream *s, const uint8_t *p, size_t len) {
        int r;

        while (len > 0) {
                if (!s->manifest) {
                        size_t take = MIN(len, s->head_want - s->head_len);
                        memcpy(s->head + s->head_len, p, take);
                        s->head_len += take;
                        s->pos += take;
                        p += take;
                        len -= take;
                        if (s->head_len < s->head_want)
                                return 0;
                        if (s->head_want == HEADER_SIZE) {
                                r = check_header(s->head, &s->mlen);
                                if (r < 0)
                                        return r;
                                s->head_want = HEADER_SIZE + (size_t) s->mlen + SIGNATURE_SIZE;
                                uint8_t *n = realloc(s->head, s->head_want);
                                if (!n)
                                        return -ENOMEM;
                                s->head = n;
                                continue;
                        }
                        r = stream_head_complete(s);
                        if (r < 0)
                                return r;
                        continue;
                }

                const ManifestPayload *cur = stream_current(s);
                if (!cur) { /* trailing bytes: consumed, ignored */
                        s->pos += len;
                        return 0;
                }
                uint64_t start = s->area + cur->offset;
                if (s->pos < start) { /* padding before the payload */
                        size_t skip = (size_t) MIN((uint64_t) len, start - s->pos);
                        s->pos += skip;
                        p += skip;
                        len -= skip;
                        continue;
                }
                if (!s->payload_ctx) {
                        r = sha256_init(&s->payload_ctx);
                        if (r < 0)
                                return r;
                }
                uint64_t off = s->pos - start;
                size_t take = (size_t) MIN((uint64_t) len, cur->size - off);
                if (EVP_DigestUpdate(s->payload_ctx, p, take) != 1)
                        return -EIO;
                if (s->ops.payload_data) {
                        r = s->ops.payload_data(cur, off, p, take, s->userdata);
                        if (r < 0)
                                return r;
                }
                s->pos += take;
                p += take;
                len -= take;
                if (off + take == cur->size) {
                        uint8_t digest[32];
                        r = sha256_final(s->payload_ctx, digest);
                        EVP_MD_CTX_free(s->payload_ctx);
                        s->payload_ctx = NULL;
                        if (r < 0)
                                return r;
                        if (CRYPTO_memcmp(digest, cur->sha256, sizeof(digest)) != 0)
                                return -EBADMSG;
                        s->cur++;
                        if (s->ops.payload_done) {
                                r = s->ops.payload_done(cur, s->userdata);
                                if (r < 0)
                                        return r;
                        }
                }
        }
        return 0;
}

int bundle_stream_feed(BundleStream *s, const void *data, size_t len) {
        if (!s || (!data && len > 0))
                return -EINVAL;
        if (s->error < 0)
                return s->error;
        if (s->finished)
                return -EINVAL;
        if (s->file_ctx && EVP_DigestUpdate(s->file_ctx, data, len) != 1)
                return (s->error = -EIO);
        int r = stream_feed(s, data, len);
        if (r < 0)
                s->error = r;
        return r;
}

int bundle_stream_finish(BundleStream *s) {
        if (!s)
                return -EINVAL;
        if (s->error < 0)
                return s->error;
        if (!s->manifest)
                return (s->error = -EBADMSG);
        if (stream_current(s))
                return (s->error = -ENODATA);
        if (s->file_ctx) {
                int r = sha256_final(s->file_ctx, s->file_sha256);
                if (r < 0)
                        return (s->error = r);
        }
        s->finished = true;
        return 0;
}

uint64_t bundle_stream_position(const BundleStream *s) {
        return s ? s->pos : 0;
}

uint64_t bundle_stream_total(const BundleStream *s) {
        uint64_t end = 0;

        if (!s || !s->manifest)
                return 0;
        for (size_t i = 0; i < s->manifest->n_payloads; i++)
                end = MAX(end, s->manifest->payloads[i].offset + s->manifest->payloads[i].size);
        return s->area + end;
}

const Manifest *bundle_stream_manifest(const BundleStream *s) {
        return s ? s->manifest : NULL;
}

void bundle_stream_no_file_digest(BundleStream *s) {
        if (s && s->pos == 0) {
                EVP_MD_CTX_free(s->file_ctx);
                s->file_ctx = NULL;
        }
}

int bundle_stream_file_sha256(const BundleStream *s, uint8_t ret[static 32]) {
        if (!s || !s->finished)
                return -EINVAL;
        if (!s->file_ctx)
                return -ENODATA;
        memcpy(ret, s->file_sha256, 32);
        return 0;
}
