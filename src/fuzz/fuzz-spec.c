/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

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
        for (size_t i = 0; i < s->n_repositories; i++) {
                const SpecRepository *repo = &s->repositories[i];
                /* Every value goes into an apt deb822 file: no line breaks. */
                if (!repo->name || !repo->uris || !repo->uris[0] || !repo->suites || !repo->suites[0] ||
                    !repo->components || !repo->signed_by || strpbrk(repo->name, " \n") || repo->key_data ||
                    (repo->has_pin && (repo->pin == 0 || repo->pin < SPEC_REPOSITORY_PIN_MIN ||
                                       repo->pin > SPEC_REPOSITORY_PIN_MAX)))
                        abort();
                bool flat = repo->suites[0][strlen(repo->suites[0]) - 1] == '/';
                if (flat != (repo->components[0] == NULL))
                        abort();
                for (char **u = repo->uris; *u; u++)
                        if (strpbrk(*u, " \t\n\"'#"))
                                abort();
        }
        return 0;
}
