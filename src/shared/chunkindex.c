/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "chunkindex.h"
#include "fileio.h"
#include "strutil.h"

/* 8 KiB on average, 32 KiB at most. Smaller chunks waste less around each
 * change (erofs rewrites many small pieces of metadata when files move);
 * each costs 36 bytes of index: 0.4 % of what it describes, downloaded
 * only when the index changed (docs/DELTA.md, bench/README.md). */
const ChunkParams chunk_params_default = {
        .block_size = 4096,
        .avg_blocks = 2,
        .max_blocks = 8,
};

#define HEADER_SIZE 32
#define ENTRY_SIZE 36
#define NAME_MAX_LEN 64
#define PAYLOADS_MAX 64
#define READ_CHUNK (1U << 20)

static void put_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

static void put_be64(uint8_t *p, uint64_t v) {
        put_be32(p, (uint32_t) (v >> 32));
        put_be32(p + 4, (uint32_t) v);
}

static uint32_t get_be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p) {
        return (uint64_t) get_be32(p) << 32 | get_be32(p + 4);
}

static bool params_valid(const ChunkParams *p) {
        /* Bounded so that a chunk always fits in 32 bits and one read buffer. */
        return p->block_size >= 512 && p->block_size <= 65536 && (p->block_size & (p->block_size - 1)) == 0 &&
               p->avg_blocks >= 1 && p->max_blocks >= 1 && p->avg_blocks <= p->max_blocks &&
               (uint64_t) p->max_blocks * p->block_size <= READ_CHUNK;
}

/* Whether a block ends a chunk: a cheap mix of its 64-bit words. It needs
 * no strength (the chunk digests are SHA-256); it only has to spread. Part
 * of the format: changing it changes every index. */
static bool block_ends_chunk(const uint8_t *b, size_t len, const ChunkParams *p) {
        uint64_t h = 0x243f6a8885a308d3ULL;

        for (size_t i = 0; i + 8 <= len; i += 8) {
                uint64_t w;
                memcpy(&w, b + i, 8);
                w = le64toh(w);
                h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
                h ^= h >> 32;
        }
        return (h >> 16) % p->avg_blocks == 0;
}

typedef struct Chunker {
        const ChunkParams *p;
        EVP_MD_CTX *ctx;
        Chunk cur;
        uint32_t blocks;
        ChunkCallback cb;
        void *userdata;
} Chunker;

static int chunker_emit(Chunker *k) {
        unsigned len = 0;

        if (k->cur.size == 0)
                return 0;
        if (EVP_DigestFinal_ex(k->ctx, k->cur.sha256, &len) != 1 || len != 32)
                return -EIO;
        int r = k->cb(&k->cur, k->userdata);
        if (r < 0)
                return r;
        k->cur.offset += k->cur.size;
        k->cur.size = 0;
        k->blocks = 0;
        return EVP_DigestInit_ex(k->ctx, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
}

/* One block (or the short last one) at a time. */
static int chunker_block(Chunker *k, const uint8_t *b, size_t len) {
        if (EVP_DigestUpdate(k->ctx, b, len) != 1)
                return -EIO;
        k->cur.size += (uint32_t) len;
        k->blocks++;
        if (len < k->p->block_size || k->blocks >= k->p->max_blocks || block_ends_chunk(b, len, k->p))
                return chunker_emit(k);
        return 0;
}

int chunk_fd(int fd, uint64_t size, const ChunkParams *p, ChunkCallback cb, void *userdata) {
        _cleanup_free_ uint8_t *buf = NULL;
        Chunker k = { .p = p ?: &chunk_params_default, .cb = cb, .userdata = userdata };
        uint64_t off = 0;
        int r = 0;

        if (fd < 0 || !cb || !params_valid(k.p))
                return -EINVAL;
        buf = malloc(READ_CHUNK);
        k.ctx = EVP_MD_CTX_new();
        if (!buf || !k.ctx) {
                EVP_MD_CTX_free(k.ctx);
                return -ENOMEM;
        }
        if (EVP_DigestInit_ex(k.ctx, EVP_sha256(), NULL) != 1) {
                r = -EIO;
                goto out;
        }
        /* The buffer is a multiple of the block size, so blocks never
         * straddle two reads. */
        while (off < size) {
                size_t want = (size_t) MIN((uint64_t) READ_CHUNK, size - off), got = 0;
                while (got < want) {
                        ssize_t n = pread(fd, buf + got, want - got, (off_t) (off + got));
                        if (n < 0) {
                                if (errno == EINTR)
                                        continue;
                                r = -errno;
                                goto out;
                        }
                        if (n == 0) {
                                r = -ENODATA;
                                goto out;
                        }
                        got += (size_t) n;
                }
                for (size_t i = 0; i < want; i += k.p->block_size) {
                        r = chunker_block(&k, buf + i, MIN((size_t) k.p->block_size, want - i));
                        if (r < 0)
                                goto out;
                }
                off += want;
        }
        r = chunker_emit(&k);
out:
        EVP_MD_CTX_free(k.ctx);
        return r;
}

ChunkIndex *chunk_index_free(ChunkIndex *x) {
        if (!x)
                return NULL;
        for (size_t i = 0; i < x->n_payloads; i++) {
                free(x->payloads[i].name);
                free(x->payloads[i].chunks);
        }
        free(x->payloads);
        free(x);
        return NULL;
}

int chunk_index_new(const ChunkParams *p, ChunkIndex **ret) {
        p = p ?: &chunk_params_default;
        if (!params_valid(p))
                return -EINVAL;
        ChunkIndex *x = calloc(1, sizeof(*x));
        if (!x)
                return -ENOMEM;
        x->params = *p;
        *ret = x;
        return 0;
}

const ChunkList *chunk_index_find(const ChunkIndex *x, const char *name) {
        for (size_t i = 0; x && i < x->n_payloads; i++)
                if (streq(x->payloads[i].name, name))
                        return &x->payloads[i];
        return NULL;
}

static int list_append(const Chunk *c, void *userdata) {
        ChunkList *l = userdata;
        /* Capacity 64, then doubled whenever it is full. */
        if (l->n_chunks == 0 || (l->n_chunks >= 64 && (l->n_chunks & (l->n_chunks - 1)) == 0)) {
                size_t cap = l->n_chunks == 0 ? 64 : l->n_chunks * 2;
                Chunk *n = reallocarray(l->chunks, cap, sizeof(Chunk));
                if (!n)
                        return -ENOMEM;
                l->chunks = n;
        }
        l->chunks[l->n_chunks++] = *c;
        return 0;
}

static bool name_ok(const char *s) {
        return manifest_token_ok(s, NAME_MAX_LEN);
}

static int add_list(ChunkIndex *x, ChunkList *l) {
        if (x->n_payloads >= PAYLOADS_MAX)
                return -E2BIG;
        ChunkList *n = reallocarray(x->payloads, x->n_payloads + 1, sizeof(ChunkList));
        if (!n)
                return -ENOMEM;
        x->payloads = n;
        x->payloads[x->n_payloads++] = *l;
        return 0;
}

int chunk_index_add_file(ChunkIndex *x, const char *name, const char *path) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        if (!x || !name_ok(name) || !path)
                return -EINVAL;
        if (chunk_index_find(x, name))
                return -EEXIST;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;

        ChunkList l = { .size = (uint64_t) st.st_size };
        r = chunk_fd(fd, l.size, &x->params, list_append, &l);
        if (r >= 0 && !(l.name = strdup(name)))
                r = -ENOMEM;
        if (r >= 0)
                r = add_list(x, &l);
        if (r < 0) {
                free(l.name);
                free(l.chunks);
        }
        return r;
}

int chunk_index_format(const ChunkIndex *x, uint8_t **ret, size_t *ret_size) {
        size_t size = HEADER_SIZE;

        if (!x || !ret || !ret_size)
                return -EINVAL;
        for (size_t i = 0; i < x->n_payloads; i++)
                size += 1 + strlen(x->payloads[i].name) + 8 + 4 + x->payloads[i].n_chunks * ENTRY_SIZE;
        if (size > CHUNK_INDEX_SIZE_MAX)
                return -E2BIG;
        uint8_t *b = calloc(1, size), *p = b;
        if (!b)
                return -ENOMEM;
        memcpy(p, CHUNK_INDEX_MAGIC, 8);
        put_be32(p + 8, CHUNK_INDEX_VERSION);
        put_be32(p + 12, x->params.block_size);
        put_be32(p + 16, x->params.avg_blocks);
        put_be32(p + 20, x->params.max_blocks);
        put_be32(p + 24, (uint32_t) x->n_payloads);
        p += HEADER_SIZE;
        for (size_t i = 0; i < x->n_payloads; i++) {
                const ChunkList *l = &x->payloads[i];
                size_t nl = strlen(l->name);
                *p++ = (uint8_t) nl;
                memcpy(p, l->name, nl);
                p += nl;
                put_be64(p, l->size);
                put_be32(p + 8, (uint32_t) l->n_chunks);
                p += 12;
                for (size_t j = 0; j < l->n_chunks; j++) {
                        put_be32(p, l->chunks[j].size);
                        memcpy(p + 4, l->chunks[j].sha256, 32);
                        p += ENTRY_SIZE;
                }
        }
        *ret = b;
        *ret_size = size;
        return 0;
}

int chunk_index_write_file(const ChunkIndex *x, const char *path) {
        _cleanup_free_ uint8_t *b = NULL;
        size_t n;
        int r = chunk_index_format(x, &b, &n);
        if (r < 0)
                return r;
        return write_file_atomic(path, b, n, 0644);
}

int chunk_index_parse(const void *data, size_t size, ChunkIndex **ret) {
        _cleanup_(chunk_index_freep) ChunkIndex *x = NULL;
        const uint8_t *p = data, *end = (const uint8_t *) data + size;
        ChunkParams params;
        int r;

        if (!data || !ret)
                return -EINVAL;
        if (size > CHUNK_INDEX_SIZE_MAX)
                return -E2BIG;
        if (size < HEADER_SIZE || memcmp(p, CHUNK_INDEX_MAGIC, 8) != 0)
                return -EBADMSG;
        if (get_be32(p + 8) != CHUNK_INDEX_VERSION)
                return -EPROTONOSUPPORT;
        params = (ChunkParams) { get_be32(p + 12), get_be32(p + 16), get_be32(p + 20) };
        uint32_t n = get_be32(p + 24);
        if (!params_valid(&params) || n == 0 || n > PAYLOADS_MAX || get_be32(p + 28) != 0)
                return -EBADMSG;
        r = chunk_index_new(&params, &x);
        if (r < 0)
                return r;
        p += HEADER_SIZE;
        uint64_t max_chunk = (uint64_t) params.max_blocks * params.block_size;

        for (uint32_t i = 0; i < n; i++) {
                char name[NAME_MAX_LEN + 1];
                if (end - p < 1)
                        return -EBADMSG;
                size_t nl = *p++;
                if (nl == 0 || nl > NAME_MAX_LEN || (size_t) (end - p) < nl + 12)
                        return -EBADMSG;
                memcpy(name, p, nl);
                name[nl] = '\0';
                p += nl;
                if (!name_ok(name) || memchr(name, 0, nl) || chunk_index_find(x, name))
                        return -EBADMSG;
                uint64_t psize = get_be64(p);
                uint32_t nc = get_be32(p + 8);
                p += 12;
                /* Bound the count before allocating anything for it. */
                if (psize == 0 || psize > INT64_MAX || nc == 0 || (size_t) (end - p) / ENTRY_SIZE < nc)
                        return -EBADMSG;

                ChunkList l = { .size = psize, .n_chunks = nc };
                l.chunks = calloc(nc, sizeof(Chunk));
                l.name = strdup(name);
                if (!l.chunks || !l.name) {
                        free(l.chunks);
                        free(l.name);
                        return -ENOMEM;
                }
                uint64_t off = 0;
                r = 0;
                for (uint32_t j = 0; j < nc; j++) {
                        Chunk *c = &l.chunks[j];
                        c->size = get_be32(p);
                        memcpy(c->sha256, p + 4, 32);
                        c->offset = off;
                        p += ENTRY_SIZE;
                        /* Every chunk but the last is whole blocks; none is
                         * empty or beyond the maximum. */
                        bool last = j + 1 == nc;
                        if (c->size == 0 || c->size > max_chunk || c->size > psize - off ||
                            (!last && c->size % params.block_size != 0)) {
                                r = -EBADMSG;
                                break;
                        }
                        off += c->size;
                }
                if (r >= 0 && off != psize)
                        r = -EBADMSG;
                if (r >= 0)
                        r = add_list(x, &l);
                if (r < 0) {
                        free(l.chunks);
                        free(l.name);
                        return r == -E2BIG ? -EBADMSG : r;
                }
        }
        if (p != end)
                return -EBADMSG;
        *ret = TAKE_PTR(x);
        return 0;
}

int chunk_index_check_manifest(const ChunkIndex *x, const Manifest *m, char **ret_error) {
        size_t listed = 0;

        for (size_t i = 0; i < m->n_payloads; i++) {
                const ManifestPayload *p = &m->payloads[i];
                if (streq(p->name, CHUNK_INDEX_PAYLOAD))
                        continue;
                const ChunkList *l = chunk_index_find(x, p->name);
                if (!l)
                        return error_set(ret_error, -EBADMSG, "the chunk index does not list payload '%s'", p->name);
                if (l->size != p->size)
                        return error_set(ret_error, -EBADMSG,
                                         "the chunk index gives payload '%s' %llu bytes, the manifest %llu", p->name,
                                         (unsigned long long) l->size, (unsigned long long) p->size);
                listed++;
        }
        if (listed != x->n_payloads)
                return error_set(ret_error, -EBADMSG, "the chunk index lists payloads the manifest does not have");
        return 0;
}

/* ---- the local store: open addressing on the first 8 digest bytes ---- */

typedef struct StoreEntry {
        uint8_t sha256[32];
        ChunkLocation loc;
        bool used;
} StoreEntry;

struct ChunkStore {
        StoreEntry *e;
        size_t cap, n;
};

int chunk_store_new(ChunkStore **ret) {
        ChunkStore *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->cap = 1024;
        s->e = calloc(s->cap, sizeof(StoreEntry));
        if (!s->e) {
                free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

ChunkStore *chunk_store_free(ChunkStore *s) {
        if (s) {
                free(s->e);
                free(s);
        }
        return NULL;
}

static size_t slot_of(const ChunkStore *s, const uint8_t sha256[static 32]) {
        uint64_t h;
        memcpy(&h, sha256, 8);
        return (size_t) (h & (s->cap - 1));
}

static StoreEntry *lookup(const ChunkStore *s, const uint8_t sha256[static 32]) {
        for (size_t i = slot_of(s, sha256);; i = (i + 1) & (s->cap - 1)) {
                StoreEntry *e = &s->e[i];
                if (!e->used || memcmp(e->sha256, sha256, 32) == 0)
                        return e;
        }
}

static int grow(ChunkStore *s) {
        ChunkStore bigger = { .cap = s->cap * 2 };
        bigger.e = calloc(bigger.cap, sizeof(StoreEntry));
        if (!bigger.e)
                return -ENOMEM;
        for (size_t i = 0; i < s->cap; i++)
                if (s->e[i].used)
                        *lookup(&bigger, s->e[i].sha256) = s->e[i];
        free(s->e);
        s->e = bigger.e;
        s->cap = bigger.cap;
        return 0;
}

int chunk_store_add(ChunkStore *s, const uint8_t sha256[static 32], const ChunkLocation *l) {
        if ((s->n + 1) * 4 > s->cap * 3) {
                int r = grow(s);
                if (r < 0)
                        return r;
        }
        StoreEntry *e = lookup(s, sha256);
        if (e->used)
                return 0;
        memcpy(e->sha256, sha256, 32);
        e->loc = *l;
        e->used = true;
        s->n++;
        return 1;
}

const ChunkLocation *chunk_store_find(const ChunkStore *s, const uint8_t sha256[static 32]) {
        const StoreEntry *e = lookup(s, sha256);
        return e->used ? &e->loc : NULL;
}

size_t chunk_store_size(const ChunkStore *s) {
        return s->n;
}

typedef struct ScanCtx {
        ChunkStore *s;
        unsigned source;
} ScanCtx;

static int scan_cb(const Chunk *c, void *userdata) {
        ScanCtx *k = userdata;
        int r = chunk_store_add(k->s, c->sha256, &(ChunkLocation) { k->source, c->offset, c->size });
        return r < 0 ? r : 0;
}

int chunk_store_scan(ChunkStore *s, unsigned source, int fd, uint64_t size, const ChunkParams *p) {
        ScanCtx k = { s, source };
        return chunk_fd(fd, size, p, scan_cb, &k);
}
