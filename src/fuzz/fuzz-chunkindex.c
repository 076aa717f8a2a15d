/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* chunk_index_parse() on arbitrary bytes: the index comes from a bundle
 * and is parsed only after its signed digest matched, but a bug here must
 * still never be more than a refusal. Whatever parses must format to the
 * same bytes (the format has one spelling per index), and its chunks must
 * tile each payload exactly. Any violation aborts. */
#include <stdlib.h>
#include <string.h>

#include "chunkindex.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(chunk_index_freep) ChunkIndex *x = NULL;
        _cleanup_free_ uint8_t *f = NULL;
        size_t fs;
        int r;

        r = chunk_index_parse(data ?: (const uint8_t *) "", size, &x);
        if (r < 0) {
                if (x)
                        abort();
                if (r != -EBADMSG && r != -EPROTONOSUPPORT && r != -E2BIG && r != -ENOMEM)
                        abort();
                return 0;
        }
        if (chunk_index_format(x, &f, &fs) < 0 || fs != size || memcmp(f, data, size) != 0)
                abort();
        for (size_t i = 0; i < x->n_payloads; i++) {
                const ChunkList *l = &x->payloads[i];
                uint64_t off = 0;
                for (size_t j = 0; j < l->n_chunks; j++) {
                        if (l->chunks[j].offset != off || l->chunks[j].size == 0)
                                abort();
                        off += l->chunks[j].size;
                }
                if (off != l->size || chunk_index_find(x, l->name) != l)
                        abort();
        }
        return 0;
}
