/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include "chunkindex.h"
#include "fileio.h"
#include "tests.h"

static char dir[] = "/tmp/test-chunkindex-XXXXXX";

/* Pseudo-random but repeatable bytes. */
static void fill(uint8_t *b, size_t n, uint64_t seed) {
        uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
        for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b[i] = (uint8_t) x;
        }
}

static char *write_tmp(const char *name, const uint8_t *b, size_t n) {
        char *p = path_join(dir, name);
        ASSERT_TRUE(p);
        ASSERT_OK(write_file_atomic(p, b, n, 0644));
        return p;
}

static ChunkIndex *index_of(const char *path) {
        ChunkIndex *x = NULL;
        ASSERT_OK(chunk_index_new(NULL, &x));
        ASSERT_OK(chunk_index_add_file(x, "rootfs", path));
        return x;
}

/* Chunks of 'b' that also occur in 'a', in bytes. */
static uint64_t shared_bytes(const ChunkList *a, const ChunkList *b) {
        ChunkStore *s = NULL;
        uint64_t n = 0;
        ASSERT_OK(chunk_store_new(&s));
        for (size_t i = 0; i < a->n_chunks; i++)
                ASSERT_OK(chunk_store_add(s, a->chunks[i].sha256, &(ChunkLocation) { 0, a->chunks[i].offset, a->chunks[i].size }));
        for (size_t i = 0; i < b->n_chunks; i++)
                if (chunk_store_find(s, b->chunks[i].sha256))
                        n += b->chunks[i].size;
        chunk_store_free(s);
        return n;
}

static void test_chunks_cover_and_bound(void) {
        size_t n = 8 * 1024 * 1024 + 1234; /* not a multiple of the block */
        _cleanup_free_ uint8_t *b = malloc(n);
        ASSERT_TRUE(b);
        fill(b, n, 1);
        _cleanup_free_ char *p = write_tmp("a", b, n);
        _cleanup_(chunk_index_freep) ChunkIndex *x = index_of(p);
        const ChunkList *l = chunk_index_find(x, "rootfs");
        ASSERT_TRUE(l);
        ASSERT_EQ(l->size, n);
        uint64_t off = 0;
        for (size_t i = 0; i < l->n_chunks; i++) {
                ASSERT_EQ(l->chunks[i].offset, off);
                ASSERT_TRUE(l->chunks[i].size <= chunk_params_default.max_blocks * 4096);
                if (i + 1 < l->n_chunks)
                        ASSERT_EQ(l->chunks[i].size % 4096, 0);
                off += l->chunks[i].size;
        }
        ASSERT_EQ(off, n);
        /* For random data the average is near avg_blocks blocks (a little
         * less: the maximum cuts the long tail). */
        uint64_t avg = n / l->n_chunks, want = (uint64_t) chunk_params_default.avg_blocks * 4096;
        ASSERT_TRUE(avg > want / 2 && avg < want * 2);
        fprintf(stderr, "%zu chunks, %llu bytes on average\n", l->n_chunks, (unsigned long long) avg);
}

/* The point of content-defined chunks: blocks inserted near the start,
 * one changed block in the middle, and almost every chunk is still there. */
static void test_shift_keeps_chunks(void) {
        size_t n = 8 * 1024 * 1024, ins = 5 * 4096;
        _cleanup_free_ uint8_t *a = malloc(n), *b = malloc(n + ins);
        ASSERT_TRUE(a && b);
        fill(a, n, 2);
        memcpy(b, a, 1 << 20);
        fill(b + (1 << 20), ins, 3);
        memcpy(b + (1 << 20) + ins, a + (1 << 20), n - (1 << 20));
        b[(4 << 20) + 100] ^= 0x55;
        _cleanup_free_ char *pa = write_tmp("old", a, n), *pb = write_tmp("new", b, n + ins);
        _cleanup_(chunk_index_freep) ChunkIndex *xa = index_of(pa), *xb = index_of(pb);
        uint64_t shared = shared_bytes(chunk_index_find(xa, "rootfs"), chunk_index_find(xb, "rootfs"));
        uint64_t missing = n + ins - shared;
        fprintf(stderr, "missing %llu of %zu bytes\n", (unsigned long long) missing, n + ins);
        /* The inserted 20 KiB, plus at most about two chunks around each change. */
        ASSERT_TRUE(missing >= ins);
        ASSERT_TRUE(missing <= ins + 4 * chunk_params_default.max_blocks * 4096);
}

static void test_round_trip_and_store(void) {
        size_t n = 300000;
        _cleanup_free_ uint8_t *b = malloc(n), *f1 = NULL, *f2 = NULL;
        size_t s1, s2;
        ASSERT_TRUE(b);
        fill(b, n, 4);
        _cleanup_free_ char *p = write_tmp("rt", b, n), *k = write_tmp("k", b, 5000);
        _cleanup_(chunk_index_freep) ChunkIndex *x = index_of(p), *y = NULL;
        ASSERT_OK(chunk_index_add_file(x, "kernel", k));
        ASSERT_ERROR(chunk_index_add_file(x, "kernel", k), EEXIST);
        ASSERT_ERROR(chunk_index_add_file(x, "../x", k), EINVAL);
        ASSERT_OK(chunk_index_format(x, &f1, &s1));
        ASSERT_OK(chunk_index_parse(f1, s1, &y));
        ASSERT_OK(chunk_index_format(y, &f2, &s2));
        ASSERT_EQ(s1, s2);
        ASSERT_TRUE(memcmp(f1, f2, s1) == 0);
        /* 5000 bytes: one chunk, or 4096 + 904 if the first block ends one. */
        ASSERT_TRUE(chunk_index_find(y, "kernel")->n_chunks <= 2);
        ASSERT_EQ(chunk_index_find(y, "kernel")->size, 5000);

        /* Scanning the same file finds every chunk where it is. */
        _cleanup_(chunk_store_freep) ChunkStore *s = NULL;
        _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(chunk_store_new(&s));
        ASSERT_OK(chunk_store_scan(s, 7, fd, n, &y->params));
        const ChunkList *l = chunk_index_find(y, "rootfs");
        for (size_t i = 0; i < l->n_chunks; i++) {
                const ChunkLocation *loc = chunk_store_find(s, l->chunks[i].sha256);
                ASSERT_TRUE(loc);
                ASSERT_EQ(loc->source, 7);
                ASSERT_EQ(loc->offset, l->chunks[i].offset);
                ASSERT_EQ(loc->size, l->chunks[i].size);
        }
        ASSERT_ERROR(chunk_store_scan(s, 7, fd, n + 4096, &y->params), ENODATA);
}

static void put32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

static void test_parse_refuses(void) {
        size_t n = 3 * 4096 + 10;
        _cleanup_free_ uint8_t *b = malloc(n), *f = NULL;
        size_t s;
        fill(b, n, 5);
        _cleanup_free_ char *p = write_tmp("small", b, n);
        _cleanup_(chunk_index_freep) ChunkIndex *x = index_of(p);
        ChunkIndex *y = NULL;
        ASSERT_OK(chunk_index_format(x, &f, &s));
        _cleanup_free_ uint8_t *c = malloc(s + 1);
        /* header 32, name len 1 + "rootfs" 6, size 8, count 4: first entry at 51 */
        size_t entry = 32 + 1 + 6 + 8 + 4;
        size_t count_at = entry - 4;

#define MUTATE(what, expect)                                    \
        do {                                                    \
                memcpy(c, f, s);                                \
                size_t len = s;                                 \
                what;                                           \
                ASSERT_ERROR(chunk_index_parse(c, len, &y), expect); \
                ASSERT_TRUE(!y);                                \
        } while (0)

        MUTATE(c[0] = 'X', EBADMSG);                         /* magic */
        MUTATE(put32(c + 8, 2), EPROTONOSUPPORT);            /* version */
        MUTATE(put32(c + 12, 1000), EBADMSG);                /* block size not a power of two */
        MUTATE(put32(c + 16, 0), EBADMSG);                   /* avg 0 */
        MUTATE(put32(c + 20, 100000), EBADMSG);              /* max beyond a read */
        MUTATE(put32(c + 24, 0), EBADMSG);                   /* no payloads */
        MUTATE(put32(c + 24, 2), EBADMSG);                   /* more payloads than present */
        MUTATE(put32(c + 28, 1), EBADMSG);                   /* reserved */
        MUTATE(c[32] = 0, EBADMSG);                          /* empty name */
        MUTATE(c[33] = '.', EBADMSG);                        /* unsafe name */
        MUTATE(len = s - 1, EBADMSG);                        /* truncated */
        MUTATE((c[s] = 0, len = s + 1), EBADMSG);            /* trailing byte */
        MUTATE(put32(c + count_at, 0), EBADMSG);             /* no chunks */
        MUTATE(put32(c + count_at, 0xffffffffU), EBADMSG);   /* more chunks than bytes */
        MUTATE(put32(c + entry, 0), EBADMSG);                /* empty chunk */
        MUTATE(put32(c + entry, 4095), EBADMSG);             /* not whole blocks, not last */
        MUTATE(put32(c + entry, (chunk_params_default.max_blocks + 1) * 4096), EBADMSG); /* beyond the maximum */
        MUTATE(c[entry - 5] ^= 1, EBADMSG);                  /* payload size != sum */
        ASSERT_ERROR(chunk_index_parse(f, CHUNK_INDEX_SIZE_MAX + 1, &y), E2BIG);
        ASSERT_OK(chunk_index_parse(f, s, &y));
        chunk_index_free(y);
}

static void test_check_manifest(void) {
        size_t n = 9000;
        _cleanup_free_ uint8_t *b = malloc(n);
        fill(b, n, 6);
        _cleanup_free_ char *p = write_tmp("m", b, n);
        _cleanup_(chunk_index_freep) ChunkIndex *x = index_of(p);
        ManifestPayload pl[3] = {
                { .name = (char *) "rootfs", .size = n },
                { .name = (char *) CHUNK_INDEX_PAYLOAD, .size = 100 },
                { .name = (char *) "kernel", .size = 5 },
        };
        Manifest m = { .payloads = pl, .n_payloads = 2 };
        char *err = NULL;
        ASSERT_OK(chunk_index_check_manifest(x, &m, &err));
        pl[0].size = n + 1;
        ASSERT_ERROR(chunk_index_check_manifest(x, &m, &err), EBADMSG);
        ASSERT_TRUE(err && strstr(err, "rootfs"));
        free(err);
        err = NULL;
        pl[0].size = n;
        m.n_payloads = 3;
        ASSERT_ERROR(chunk_index_check_manifest(x, &m, &err), EBADMSG);
        ASSERT_TRUE(err && strstr(err, "'kernel'"));
        free(err);
        err = NULL;
        m.payloads = pl + 1;
        m.n_payloads = 1;
        ASSERT_ERROR(chunk_index_check_manifest(x, &m, &err), EBADMSG);
        free(err);
}

int main(void) {
        ASSERT_TRUE(mkdtemp(dir));
        TEST_RUN(test_chunks_cover_and_bound);
        TEST_RUN(test_shift_keeps_chunks);
        TEST_RUN(test_round_trip_and_store);
        TEST_RUN(test_parse_refuses);
        TEST_RUN(test_check_manifest);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        return system(cmd) == 0 ? 0 : 1;
}
