/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "manifest.h"

/* The chunk index of a bundle (docs/DELTA.md): every payload cut into
 * content-defined chunks, each with its SHA-256, so that a node can take
 * the chunks it already has from its own disks and download only the rest
 * with HTTP Range requests. The index travels as the bundle payload
 * CHUNK_INDEX_PAYLOAD; the signed manifest pins its digest, so every chunk
 * hash in it is as trustworthy as the manifest.
 *
 * Chunks are cut on block boundaries only, and whether a block ends a chunk
 * depends on that block's bytes alone. File systems (erofs, ext4) place
 * file data on block boundaries, so a file that moved by some blocks keeps
 * its chunks, and one changed block changes one chunk. */

#define CHUNK_INDEX_PAYLOAD "chunk-index"
#define CHUNK_INDEX_MAGIC "HULLCIDX"
#define CHUNK_INDEX_VERSION 1
#define CHUNK_INDEX_SIZE_MAX (64U << 20)

typedef struct ChunkParams {
        uint32_t block_size;   /* 4096 */
        uint32_t avg_blocks;   /* a block ends a chunk with probability 1/avg_blocks */
        uint32_t max_blocks;   /* ... and always after this many */
} ChunkParams;

extern const ChunkParams chunk_params_default;

typedef struct Chunk {
        uint64_t offset;       /* in the payload */
        uint32_t size;
        uint8_t sha256[32];
} Chunk;

typedef struct ChunkList {
        char *name;            /* payload name */
        uint64_t size;
        Chunk *chunks;
        size_t n_chunks;
} ChunkList;

typedef struct ChunkIndex {
        ChunkParams params;
        ChunkList *payloads;
        size_t n_payloads;
} ChunkIndex;

ChunkIndex *chunk_index_free(ChunkIndex *x);
DEFINE_TRIVIAL_CLEANUP_FUNC(ChunkIndex *, chunk_index_free);

/* Called for each chunk, in order. Return < 0 to stop; that is returned. */
typedef int (*ChunkCallback)(const Chunk *c, void *userdata);

/* Cut [0, size) of fd into chunks. -ENODATA if the file is shorter. */
int chunk_fd(int fd, uint64_t size, const ChunkParams *p, ChunkCallback cb, void *userdata) _warn_unused_result_;

/* An empty index with the given parameters (NULL: the default). */
int chunk_index_new(const ChunkParams *p, ChunkIndex **ret) _warn_unused_result_;
/* Chunk the whole regular file 'path' as payload 'name'. */
int chunk_index_add_file(ChunkIndex *x, const char *name, const char *path) _warn_unused_result_;

/* The binary form (docs/DELTA.md). */
int chunk_index_format(const ChunkIndex *x, uint8_t **ret, size_t *ret_size) _warn_unused_result_;
int chunk_index_write_file(const ChunkIndex *x, const char *path) _warn_unused_result_;
/* Strict: -EPROTONOSUPPORT for another version, -EBADMSG for anything
 * malformed (sizes that do not add up, a chunk larger than the maximum, an
 * unsafe or repeated name, trailing bytes), -E2BIG beyond CHUNK_INDEX_SIZE_MAX. */
int chunk_index_parse(const void *data, size_t size, ChunkIndex **ret) _warn_unused_result_;

const ChunkList *chunk_index_find(const ChunkIndex *x, const char *name);

/* The index and the manifest describe the same payloads: every payload but
 * the index itself is in the index with the same size, and nothing else
 * is. -EBADMSG with a message otherwise. */
int chunk_index_check_manifest(const ChunkIndex *x, const Manifest *m, char **ret_error) _warn_unused_result_;

/* A lookup table from chunk digest to where that chunk is on this machine. */
typedef struct ChunkLocation {
        unsigned source;       /* caller's number for the file or device */
        uint64_t offset;
        uint32_t size;
} ChunkLocation;

typedef struct ChunkStore ChunkStore;

int chunk_store_new(ChunkStore **ret) _warn_unused_result_;
ChunkStore *chunk_store_free(ChunkStore *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(ChunkStore *, chunk_store_free);
/* Chunk [0, size) of fd and remember where each chunk is. The first
 * location of a digest wins. */
int chunk_store_scan(ChunkStore *s, unsigned source, int fd, uint64_t size, const ChunkParams *p) _warn_unused_result_;
int chunk_store_add(ChunkStore *s, const uint8_t sha256[static 32], const ChunkLocation *l) _warn_unused_result_;
const ChunkLocation *chunk_store_find(const ChunkStore *s, const uint8_t sha256[static 32]);
size_t chunk_store_size(const ChunkStore *s);
