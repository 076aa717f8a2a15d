/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "fuzz.h"
#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(spec_freep) Spec *s = NULL;
        SpecError e;

        int r = spec_parse((const char *) data, size, "/fuzz", &s, &e);
        if (r < 0) {
                /* Every rejection must explain itself. */
                if (r == -EINVAL && e.message[0] == '\0')
                        abort();
                return 0;
        }
        /* Whatever parses must satisfy the documented invariants. */
        if (!s->name || !s->version || !s->suite || !s->backend || !s->mirror || s->boot_tries < 1 ||
            s->boot_tries > 9 || s->root_size < (64ULL << 20))
                abort();
        for (size_t i = 0; i < s->n_files; i++)
                if (!s->files[i].source || !s->files[i].path || s->files[i].path[0] != '/')
                        abort();
        return 0;
}
