/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "bundle.h"
#include "chunkindex.h"
#include "delta.h"
#include "fileio.h"
#include "strutil.h"

/* Missing chunks are fetched a window at a time (8 MiB of them, however
 * many chunks the node has in between): the window's ranges go out in as
 * few requests as the server allows, land in memory, are checked and
 * handed on in bundle order. Bounded, so a stage worker's memory does not
 * grow with the update. */
#define WINDOW_BYTES (8U << 20)
#define WINDOW_CHUNKS 65536
/* Ranges closer than this are fetched as one: a request per 4 KiB gap
 * costs more than the gap. */
#define COALESCE_GAP 4096
/* How much of the slot is written between two checkpoints. */
#define CHECKPOINT_EVERY (64ULL << 20)
#define CHECKPOINT_FORMAT 1
#define ZEROS_SIZE 65536

static const uint8_t zeros[ZEROS_SIZE];


typedef struct Delta {
        const DeltaOptions *o;
        DeltaStats stats;
        UpdateSink sink;
        void *sink_userdata;
        char **error;
        bool multi;             /* the server takes several ranges per request */

        uint8_t *head;
        size_t head_size;
        uint64_t area;
        char head_sha[65];      /* names the bundle in the checkpoint */
        Manifest *m;
        uint8_t *index_data;
        size_t index_size;
        ChunkIndex *index;

        int src_fd[8];
        uint64_t src_size[8];
        const char *src_name[8], *src_path[8];
        size_t n_src;
        ChunkStore *store;

        int target_fd;          /* the slot, read for resuming and synced for checkpoints */
        uint64_t resume_upto;   /* rootfs bytes the checkpoint vouches for */
        uint64_t last_checkpoint;

        uint64_t pos;           /* bundle bytes handed on */
} Delta;

static void delta_done(Delta *d) {
        free(d->head);
        manifest_free(d->m);
        free(d->index_data);
        chunk_index_free(d->index);
        for (size_t i = 0; i < d->n_src; i++)
                safe_close(d->src_fd[i]);
        chunk_store_free(d->store);
        safe_close(d->target_fd);
}

_printf_(2, 3) static void notice(Delta *d, const char *fmt, ...) {
        va_list ap;
        char *m = NULL;

        if (!d->o->notice)
                return;
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) >= 0)
                d->o->notice(m, d->o->userdata);
        va_end(ap);
        free(m);
}

static int emit(Delta *d, const void *data, size_t len) {
        int r = d->sink(data, len, d->sink_userdata);
        if (r < 0)
                return r;
        d->pos += len;
        return 0;
}

static int emit_zeros(Delta *d, uint64_t upto) {
        while (d->pos < upto) {
                int r = emit(d, zeros, (size_t) MIN((uint64_t) ZEROS_SIZE, upto - d->pos));
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- fetching ---- */

typedef struct Buffer {
        uint8_t *data;
        const uint64_t *dest;   /* where each range goes in data */
} Buffer;

static int buffer_sink(size_t i, uint64_t offset, const void *data, size_t len, void *userdata) {
        Buffer *b = userdata;
        memcpy(b->data + b->dest[i] + offset, data, len);
        return 0;
}

/* A registry holds the bundle as blobs: the head, and each payload on its
 * own (docs/OCI.md). A range of the bundle is taken from the head blob
 * (which the OCI client already has), zeros (the padding), or ranges of a
 * payload blob, with the registry's credentials; a refused token is
 * renewed once. */
static int oci_blob_ranges(Delta *d, const ManifestPayload *p, const FetchRange *r, size_t n, bool multi,
                           FetchRangeSink sink, void *userdata, char **ret_error) {
        _cleanup_free_ char *url = NULL;
        int k = oci_bundle_payload_url(d->o->oci, d->o->oci_client, p->name, &url);
        if (k < 0)
                return k;
        for (bool refreshed = false;;) {
                _cleanup_free_ char *auth = NULL, *err = NULL;
                k = oci_client_auth_header(d->o->oci_client, &auth);
                if (k < 0)
                        return k;
                const char *headers[] = { auth, NULL };
                FetchOptions fo = d->o->fetch;
                fo.url = url;
                fo.headers = headers;
                fo.ca_file = oci_client_ca_file(d->o->oci_client);
                fo.allow_http = oci_client_plain_http(d->o->oci_client);
                k = fetch_ranges(&fo, r, n, multi, p->size, sink, userdata, &err);
                if (auth)
                        explicit_bzero(auth, strlen(auth));
                if (k == -EACCES && !refreshed) {
                        refreshed = true;
                        k = oci_client_refresh_auth(d->o->oci_client, ret_error);
                        if (k < 0)
                                return k;
                        continue;
                }
                if (k < 0 && ret_error && !*ret_error)
                        *ret_error = TAKE_PTR(err);
                return k;
        }
}

typedef struct Shift {
        Buffer *b;
        const size_t *map;      /* sub-range -> caller's range */
        const uint64_t *skip;   /* where the sub-range starts within the caller's range */
} Shift;

static int shift_sink(size_t i, uint64_t offset, const void *data, size_t len, void *userdata) {
        Shift *s = userdata;
        return buffer_sink(s->map[i], s->skip[i] + offset, data, len, s->b);
}

static int oci_ranges(Delta *d, const FetchRange *r, size_t n, bool multi, Buffer *b, char **ret_error) {
        const OciBundle *ob = d->o->oci;
        const Manifest *m = oci_bundle_manifest(ob);
        size_t head_size;
        const uint8_t *head = oci_bundle_head(ob, &head_size);
        uint64_t area = oci_bundle_payload_area(ob);
        _cleanup_free_ FetchRange *sub = calloc(n, sizeof(FetchRange));
        _cleanup_free_ size_t *map = calloc(n, sizeof(size_t));
        _cleanup_free_ uint64_t *skip = calloc(n, sizeof(uint64_t));
        int k;

        if (!sub || !map || !skip)
                return -ENOMEM;
        /* Payload by payload, each with the parts of the ranges inside it. */
        for (size_t pi = 0; pi <= m->n_payloads; pi++) {
                const ManifestPayload *p = pi < m->n_payloads ? &m->payloads[pi] : NULL;
                size_t ns = 0;
                for (size_t i = 0; i < n; i++) {
                        uint64_t a = r[i].start, e = r[i].start + r[i].length;
                        if (!p) {
                                /* Bytes in no payload: the head, or zeros. */
                                for (uint64_t x = a; x < e; x++) {
                                        bool in_payload = false;
                                        for (size_t q = 0; q < m->n_payloads && !in_payload; q++)
                                                in_payload = x >= area + m->payloads[q].offset &&
                                                             x < area + m->payloads[q].offset + m->payloads[q].size;
                                        if (!in_payload)
                                                b->data[b->dest[i] + (x - a)] = x < head_size ? head[x] : 0;
                                }
                                continue;
                        }
                        uint64_t ps = area + p->offset, pe = ps + p->size;
                        if (e <= ps || a >= pe)
                                continue;
                        uint64_t s0 = MAX(a, ps), s1 = MIN(e, pe);
                        sub[ns] = (FetchRange) { s0 - ps, s1 - s0 };
                        map[ns] = i;
                        skip[ns] = s0 - a;
                        ns++;
                }
                if (ns == 0)
                        continue;
                Shift sh = { b, map, skip };
                k = oci_blob_ranges(d, p, sub, ns, multi, shift_sink, &sh, ret_error);
                if (k < 0)
                        return k;
        }
        return 0;
}

/* Fetch ranges (bundle offsets) into data, range i at dest[i]. -ERANGE if
 * the server ignores Range even for one range at a time. */
static int fetch_into(Delta *d, const FetchRange *r, size_t n, const uint64_t *dest, uint8_t *data) {
        Buffer b = { data, dest };
        int k;

        for (;;) {
                _cleanup_free_ char *err = NULL;
                if (d->o->oci)
                        k = oci_ranges(d, r, n, d->multi, &b, &err);
                else
                        k = fetch_ranges(&d->o->fetch, r, n, d->multi, d->stats.bundle_size, buffer_sink, &b, &err);
                if (k == -ERANGE && d->multi && n > 1) {
                        d->multi = false;
                        notice(d, "the server does not serve several ranges in one request: asking for one range at a time");
                        continue;
                }
                if (k < 0 && k != -ERANGE && d->error && !*d->error)
                        *d->error = TAKE_PTR(err);
                break;
        }
        if (k >= 0) {
                for (size_t i = 0; i < n; i++)
                        d->stats.fetched += r[i].length;
                d->stats.ranges += n;
        }
        return k;
}

static int fetch_one(Delta *d, uint64_t start, uint64_t length, uint8_t *data) {
        const FetchRange r = { start, length };
        const uint64_t dest = 0;
        return fetch_into(d, &r, 1, &dest, data);
}

static int full_sink(const void *data, size_t len, void *userdata) {
        return emit(userdata, data, len);
}

/* What is left, in one download from d->pos: the server ignores Range, or
 * the bundle has no index. fetch_stream() skips what the sink already has
 * when a server answers with the whole file. */
typedef struct Skip {
        Delta *d;
        uint64_t skip;
} Skip;

static int skip_sink(const void *data, size_t len, void *userdata) {
        Skip *k = userdata;
        size_t s = (size_t) MIN((uint64_t) len, k->skip);
        k->skip -= s;
        return s == len ? 0 : emit(k->d, (const uint8_t *) data + s, len - s);
}

static int full_download(Delta *d) {
        FetchOptions fo = d->o->fetch;
        uint64_t start = d->pos;
        int r;

        d->stats.full = true;
        if (d->o->oci) {
                /* From the start; what the slot already has is skipped. */
                Skip k = { d, d->pos };
                r = oci_bundle_stream(d->o->oci, d->o->oci_client, d->o->fetch.cancel, skip_sink, &k, d->error);
                d->stats.fetched += d->pos - start;
                return r;
        }
        fo.offset = d->pos;
        r = fetch_stream(&fo, full_sink, NULL, d, d->error);
        d->stats.fetched += d->pos - start;
        return r;
}

/* ---- head, index, checkpoint ---- */

static int read_head(Delta *d) {
        uint8_t first[4096];
        size_t size;
        int r;

        r = fetch_one(d, 0, sizeof(first), first);
        if (r < 0)
                return r;
        r = bundle_head_size(first, sizeof(first), &size, &d->area);
        if (r < 0)
                return r;
        d->head = malloc(size);
        if (!d->head)
                return -ENOMEM;
        memcpy(d->head, first, MIN(size, sizeof(first)));
        if (size > sizeof(first)) {
                r = fetch_one(d, sizeof(first), size - sizeof(first), d->head + sizeof(first));
                if (r < 0)
                        return r;
        }
        d->head_size = size;
        return 0;
}

static int sha256_hex(const void *data, size_t len, char ret[static 65]) {
        uint8_t md[32];
        unsigned l = 0;
        if (EVP_Digest(data, len, md, &l, EVP_sha256(), NULL) != 1 || l != 32)
                return -EIO;
        hex_encode(md, 32, ret);
        return 0;
}

static bool digest_matches(const void *data, size_t len, const uint8_t want[static 32]) {
        uint8_t md[32];
        unsigned l = 0;
        return EVP_Digest(data, len, md, &l, EVP_sha256(), NULL) == 1 && l == 32 && CRYPTO_memcmp(md, want, 32) == 0;
}

static int read_index(Delta *d, const ManifestPayload *p) {
        bool local = false;
        int r;

        if (p->size > CHUNK_INDEX_SIZE_MAX)
                return error_set_first(d->error, -EBADMSG, "the bundle's chunk index is too large (%" PRIu64 " bytes)", p->size);
        d->index_size = (size_t) p->size;
        /* The index of the last stage is kept: unchanged, it is not
         * downloaded again (checked against the signed digest like one
         * that was). */
        if (d->o->index_cache) {
                _cleanup_free_ char *data = NULL;
                size_t len;
                if (read_full_file(d->o->index_cache, CHUNK_INDEX_SIZE_MAX, &data, &len) >= 0 && len == p->size &&
                    digest_matches(data, len, p->sha256)) {
                        d->index_data = (uint8_t *) TAKE_PTR(data);
                        local = true;
                }
        }
        if (!local) {
                d->index_data = malloc((size_t) p->size);
                if (!d->index_data)
                        return -ENOMEM;
                r = fetch_one(d, d->area + p->offset, p->size, d->index_data);
                if (r < 0)
                        return r;
        }
        if (!digest_matches(d->index_data, d->index_size, p->sha256))
                return error_set_first(d->error, -EBADMSG, "the chunk index does not match its signed digest: the bundle is corrupt or was tampered with");
        if (!local && d->o->index_cache && write_file_atomic(d->o->index_cache, d->index_data, d->index_size, 0644) < 0) {
                /* Only a cache: the next stage downloads the index again. */
        }
        r = chunk_index_parse(d->index_data, d->index_size, &d->index);
        if (r == -EPROTONOSUPPORT)
                return r;
        if (r < 0)
                return error_set_first(d->error, -EBADMSG, "the bundle's chunk index is malformed");
        return chunk_index_check_manifest(d->index, d->m, d->error);
}

static void load_checkpoint(Delta *d) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        const DeltaOptions *o = d->o;

        if (!o->checkpoint || !o->target_device)
                return;
        j = json_load_file(o->checkpoint, JSON_REJECT_DUPLICATES, NULL);
        if (!j)
                return;
        json_t *v = json_object_get(j, "verified");
        const char *bundle = json_string_value(json_object_get(j, "bundle"));
        const char *dev = json_string_value(json_object_get(j, "device"));
        if (json_integer_value(json_object_get(j, "format")) == CHECKPOINT_FORMAT && bundle && dev &&
            json_is_integer(v) && json_integer_value(v) > 0 && streq(bundle, d->head_sha) &&
            streq(dev, o->target_device)) {
                d->resume_upto = (uint64_t) json_integer_value(v);
                d->last_checkpoint = d->resume_upto;
                return;
        }
        /* Another bundle, or another slot: start clean. */
        (void) delta_checkpoint_remove(o->checkpoint);
}

static int save_checkpoint(Delta *d, uint64_t verified) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        _cleanup_free_ char *s = NULL;

        if (!d->o->checkpoint || d->target_fd < 0)
                return 0;
        /* What the checkpoint vouches for must be on the medium first. */
        if (fsync(d->target_fd) < 0)
                return error_set_first(d->error, -errno, "syncing %s failed: %m", d->o->target_device);
        j = json_pack("{s:i, s:s, s:s, s:s, s:I}", "format", CHECKPOINT_FORMAT, "bundle", d->head_sha, "device",
                      d->o->target_device, "payload", "rootfs", "verified", (json_int_t) verified);
        if (!j || !(s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS)))
                return -ENOMEM;
        int r = write_file_atomic(d->o->checkpoint, s, strlen(s), 0600);
        if (r < 0)
                return error_set_first(d->error, r, "cannot write the stage checkpoint %s: %s", d->o->checkpoint, strerror(-r));
        d->last_checkpoint = verified;
        return 0;
}

int delta_checkpoint_remove(const char *path) {
        if (!path)
                return 0;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

static int fd_size(int fd, uint64_t *ret) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISBLK(st.st_mode))
                return ioctl(fd, BLKGETSIZE64, ret) < 0 ? -errno : 0;
        if (!S_ISREG(st.st_mode))
                return -ENOTBLK;
        *ret = (uint64_t) st.st_size;
        return 0;
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off) {
        size_t got = 0;
        while (got < len) {
                ssize_t n = pread(fd, (uint8_t *) buf + got, len - got, (off_t) (off + got));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -ENODATA;
                got += (size_t) n;
        }
        return 0;
}

static int open_sources(Delta *d) {
        for (size_t i = 0; i < d->o->n_sources && d->n_src < ELEMENTSOF(d->src_fd); i++) {
                int fd = open(d->o->sources[i].path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        continue; /* e.g. no kernel file yet: nothing to reuse from it */
                if (fd_size(fd, &d->src_size[d->n_src]) < 0) {
                        safe_close(fd);
                        continue;
                }
                d->src_name[d->n_src] = d->o->sources[i].payload;
                d->src_path[d->n_src] = d->o->sources[i].path;
                d->src_fd[d->n_src++] = fd;
        }
        return 0;
}

/* How much of a root slot holds a file system: the slot is a partition
 * (1 GiB, say) and the image in it often a third of that; reading and
 * hashing the rest finds nothing. erofs and ext4 say their size in their
 * superblock; anything else is read whole. A dm-verity hash tree after the
 * file system is not read: it changes with any change of the data. */
static uint32_t get_le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static uint64_t fs_extent(int fd, uint64_t size) {
        uint8_t sb[1024];
        uint64_t fs = 0;

        if (pread_all(fd, sb, sizeof(sb), 1024) < 0)
                return size;
        if (get_le32(sb) == 0xe0f5e1e2U) {
                /* erofs: blkszbits at 12, blocks at 36 */
                unsigned bits = sb[12];
                uint32_t blocks = get_le32(sb + 36);
                if (bits >= 9 && bits <= 16)
                        fs = (uint64_t) blocks << bits;
        } else if ((sb[56] | sb[57] << 8) == 0xef53) {
                /* ext4: s_blocks_count_lo at 4, s_log_block_size at 24 */
                uint32_t blocks = get_le32(sb + 4), log = get_le32(sb + 24);
                if (log <= 6)
                        fs = (uint64_t) blocks << (10 + log);
        }
        return fs > 0 && fs < size ? fs : size;
}

static int scan_sources(Delta *d) {
        int r = chunk_store_new(&d->store);
        if (r < 0)
                return r;
        for (size_t i = 0; i < d->n_src; i++) {
                uint64_t size = d->src_name[i] && streq(d->src_name[i], "rootfs") ? fs_extent(d->src_fd[i], d->src_size[i])
                                                                                     : d->src_size[i];
                r = chunk_store_scan(d->store, (unsigned) i, d->src_fd[i], size - size % d->index->params.block_size,
                                     &d->index->params);
                if (r < 0)
                        return error_set_first(d->error, r, "cannot read %s to find chunks to reuse: %s", d->src_path[i],
                                               strerror(-r));
        }
        return 0;
}

/* Whether the first 'size' bytes of fd hash to 'want'. */
static bool fd_matches(int fd, uint64_t size, const uint8_t want[static 32]) {
        _cleanup_free_ uint8_t *buf = malloc(1U << 20);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint8_t md[32];
        unsigned l = 0;
        bool ok = buf && ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;

        for (uint64_t off = 0; ok && off < size;) {
                size_t n = (size_t) MIN((uint64_t) 1U << 20, size - off);
                ok = pread_all(fd, buf, n, off) >= 0 && EVP_DigestUpdate(ctx, buf, n) == 1;
                off += n;
        }
        ok = ok && EVP_DigestFinal_ex(ctx, md, &l) == 1 && l == 32 && CRYPTO_memcmp(md, want, 32) == 0;
        EVP_MD_CTX_free(ctx);
        return ok;
}

/* A payload this machine holds whole: a no-change rebuild (builds are
 * reproducible) or an unchanged kernel costs no download and no chunk
 * scan. -1 if none. */
static int whole_source(Delta *d, const ManifestPayload *p) {
        for (size_t i = 0; i < d->n_src; i++) {
                if (!d->src_name[i] || !streq(d->src_name[i], p->name) || d->src_size[i] < p->size)
                        continue;
                if (fd_matches(d->src_fd[i], p->size, p->sha256))
                        return (int) i;
        }
        return -1;
}

static int copy_whole(Delta *d, int src, uint64_t size) {
        _cleanup_free_ uint8_t *buf = malloc(1U << 20);
        if (!buf)
                return -ENOMEM;
        for (uint64_t off = 0; off < size;) {
                size_t n = (size_t) MIN((uint64_t) 1U << 20, size - off);
                int r = pread_all(d->src_fd[src], buf, n, off);
                if (r < 0)
                        return error_set_first(d->error, r, "cannot read %s: %s", d->src_path[src], strerror(-r));
                r = emit(d, buf, n);
                if (r < 0)
                        return r;
                off += n;
        }
        d->stats.reused += size;
        return 0;
}

/* ---- payloads ---- */


typedef enum Where { FROM_NET, FROM_SOURCE, FROM_TARGET } Where;

/* A chunk from this machine, read and checked now, right before it is
 * handed on: what was on the disk when the store was built may have
 * changed since. false: fetch it instead. */
static bool read_local(Delta *d, const Chunk *c, Where w, uint8_t *buf) {
        if (w == FROM_TARGET)
                return pread_all(d->target_fd, buf, c->size, c->offset) >= 0 && digest_matches(buf, c->size, c->sha256);
        const ChunkLocation *l = chunk_store_find(d->store, c->sha256);
        return l && l->size == c->size && pread_all(d->src_fd[l->source], buf, c->size, l->offset) >= 0 &&
               digest_matches(buf, c->size, c->sha256);
}

static int do_payload(Delta *d, const ManifestPayload *p) {
        const ChunkList *l = chunk_index_find(d->index, p->name);
        bool rootfs = streq(p->name, "rootfs");
        _cleanup_free_ uint8_t *win = malloc(WINDOW_BYTES), *one = NULL;
        _cleanup_free_ Where *where = calloc(WINDOW_CHUNKS, sizeof(Where));
        _cleanup_free_ uint64_t *at = calloc(WINDOW_CHUNKS, sizeof(uint64_t)), *dest = calloc(WINDOW_CHUNKS, sizeof(uint64_t));
        _cleanup_free_ FetchRange *ranges = calloc(WINDOW_CHUNKS, sizeof(FetchRange));
        uint64_t base = d->area + p->offset;
        int r;

        one = malloc((size_t) d->index->params.max_blocks * d->index->params.block_size);
        if (!win || !where || !at || !dest || !ranges || !one)
                return -ENOMEM;

        for (size_t j = 0; j < l->n_chunks;) {
                size_t n = 0, nr = 0;
                uint64_t used = 0;

                /* Plan the window: where each chunk comes from, and the
                 * coalesced ranges of the ones to fetch. */
                for (; j + n < l->n_chunks && n < WINDOW_CHUNKS; n++) {
                        const Chunk *c = &l->chunks[j + n];
                        if (rootfs && d->target_fd >= 0 && c->offset + c->size <= d->resume_upto)
                                where[n] = FROM_TARGET;
                        else if (chunk_store_find(d->store, c->sha256))
                                where[n] = FROM_SOURCE;
                        else {
                                if (used + c->size > WINDOW_BYTES)
                                        break;
                                where[n] = FROM_NET;
                                uint64_t start = base + c->offset;
                                FetchRange *last = nr > 0 ? &ranges[nr - 1] : NULL;
                                if (last && start >= last->start + last->length &&
                                    start - (last->start + last->length) <= COALESCE_GAP &&
                                    used + (start - (last->start + last->length)) + c->size <= WINDOW_BYTES) {
                                        /* The gap's bytes come too, and are dropped. */
                                        uint64_t gap = start - (last->start + last->length);
                                        used += gap;
                                        last->length += gap + c->size;
                                } else {
                                        ranges[nr] = (FetchRange) { start, c->size };
                                        dest[nr] = used;
                                        nr++;
                                }
                                at[n] = used;
                                used += c->size;
                        }
                }
                if (nr > 0) {
                        r = fetch_into(d, ranges, nr, dest, win);
                        if (r < 0)
                                return r;
                }

                for (size_t k = 0; k < n; k++) {
                        const Chunk *c = &l->chunks[j + k];
                        const uint8_t *data;

                        if (where[k] == FROM_NET) {
                                data = win + at[k];
                                if (!digest_matches(data, c->size, c->sha256))
                                        return error_set_first(d->error, -EBADMSG,
                                                    "chunk %zu of payload '%s' (bytes %" PRIu64 "-%" PRIu64 ") does not match the signed chunk index: the server sent other bytes",
                                                    j + k, p->name, c->offset, c->offset + c->size - 1);
                        } else if (read_local(d, c, where[k], one)) {
                                data = one;
                                d->stats.reused += c->size;
                                if (where[k] == FROM_TARGET)
                                        d->stats.resumed += c->size;
                        } else {
                                r = fetch_one(d, base + c->offset, c->size, one);
                                if (r < 0)
                                        return r;
                                if (!digest_matches(one, c->size, c->sha256))
                                        return error_set_first(d->error, -EBADMSG,
                                                    "chunk %zu of payload '%s' does not match the signed chunk index: the server sent other bytes",
                                                    j + k, p->name);
                                data = one;
                        }
                        r = emit(d, data, c->size);
                        if (r < 0)
                                return r;
                        uint64_t written = c->offset + c->size;
                        if (rootfs && written < p->size && written >= d->last_checkpoint + CHECKPOINT_EVERY) {
                                r = save_checkpoint(d, written);
                                if (r < 0)
                                        return r;
                        }
                }
                j += n;
        }
        if (rootfs)
                return save_checkpoint(d, p->size);
        return 0;
}

static int cmp_offset(const void *a, const void *b) {
        const ManifestPayload *x = *(const ManifestPayload *const *) a, *y = *(const ManifestPayload *const *) b;
        return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int run(Delta *d) {
        const ManifestPayload *idx;
        int r;

        r = read_head(d);
        if (r == -ERANGE) {
                notice(d, "the server ignores HTTP Range requests: downloading the whole bundle");
                return full_download(d);
        }
        if (r < 0)
                return r;
        r = bundle_verify_head(d->head, d->head_size, d->o->keyring, &d->m);
        if (r < 0)
                return r; /* update_stage() explains these */
        r = sha256_hex(d->head, d->head_size, d->head_sha);
        if (r < 0)
                return r;
        for (size_t i = 0; i < d->m->n_payloads; i++)
                d->stats.bundle_size = MAX(d->stats.bundle_size, d->area + d->m->payloads[i].offset + d->m->payloads[i].size);

        idx = manifest_find_payload(d->m, CHUNK_INDEX_PAYLOAD);
        if (!idx) {
                notice(d, "the bundle has no chunk index: downloading all of it");
                return full_download(d);
        }
        r = read_index(d, idx);
        if (r < 0)
                return r;

        r = open_sources(d);
        if (r < 0)
                return r;
        _cleanup_free_ int *whole = calloc(d->m->n_payloads, sizeof(int));
        if (!whole)
                return -ENOMEM;
        bool need_chunks = false;
        for (size_t i = 0; i < d->m->n_payloads; i++) {
                const ManifestPayload *p = &d->m->payloads[i];
                whole[i] = p == idx ? -1 : whole_source(d, p);
                if (p != idx && whole[i] < 0)
                        need_chunks = true;
        }

        if (d->o->target_device) {
                d->target_fd = open(d->o->target_device, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (d->target_fd < 0)
                        return error_set_first(d->error, -errno, "cannot open %s: %m", d->o->target_device);
        }
        load_checkpoint(d);
        if (need_chunks) {
                r = scan_sources(d);
                if (r < 0)
                        return r;
        }

        r = emit(d, d->head, d->head_size);
        if (r < 0)
                return r;
        _cleanup_free_ const ManifestPayload **order = calloc(d->m->n_payloads, sizeof(*order));
        if (!order)
                return -ENOMEM;
        for (size_t i = 0; i < d->m->n_payloads; i++)
                order[i] = &d->m->payloads[i];
        qsort(order, d->m->n_payloads, sizeof(*order), cmp_offset);

        for (size_t i = 0; i < d->m->n_payloads; i++) {
                const ManifestPayload *p = order[i];
                r = emit_zeros(d, d->area + p->offset);
                if (r < 0)
                        return r;
                size_t pi = (size_t) (p - d->m->payloads);
                if (p == idx)
                        r = emit(d, d->index_data, d->index_size);
                else if (whole[pi] >= 0) {
                        r = copy_whole(d, whole[pi], p->size);
                        if (r >= 0 && streq(p->name, "rootfs"))
                                r = save_checkpoint(d, p->size);
                } else
                        r = do_payload(d, p);
                if (r == -ERANGE) {
                        notice(d, "the server stopped answering HTTP Range requests: downloading the rest of the bundle");
                        return full_download(d);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

int delta_pump(UpdateSink sink, void *sink_userdata, void *pump_userdata, char **ret_error) {
        const DeltaOptions *o = pump_userdata;
        Delta d = {
                .o = o, .sink = sink, .sink_userdata = sink_userdata, .error = ret_error, .multi = true,
                .target_fd = -EBADF,
        };

        if (!o || !sink || !o->keyring || (!o->oci != !o->oci_client))
                return -EINVAL;
        int r = fetch_global_init();
        if (r < 0)
                return r;
        r = run(&d);
        if (o->stats)
                *o->stats = d.stats;
        delta_done(&d);
        return r;
}
