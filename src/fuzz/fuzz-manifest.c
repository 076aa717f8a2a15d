/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* manifest_parse() on arbitrary bytes. Whatever parses must format, the
 * formatted text must parse again, and formatting that must give the same
 * bytes: the canonical form is what gets signed, so it has to be a fixed
 * point. Any violation aborts. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(manifest_freep) Manifest *m = NULL, *m2 = NULL;
        _cleanup_free_ char *f1 = NULL, *f2 = NULL;
        int r;

        r = manifest_parse(data ? (const char *) data : "", size, &m);
        if (r < 0) {
                if (m)
                        abort(); /* ret is written only on success */
                if (r != -EBADMSG && r != -EPROTONOSUPPORT && r != -E2BIG && r != -ENOMEM)
                        abort();
                return 0;
        }

        if (manifest_format(m, &f1) < 0)
                abort();
        /* Canonical output is compact, so never longer than the input. */
        if (strlen(f1) > size)
                abort();
        if (manifest_parse(f1, strlen(f1), &m2) < 0)
                abort();
        if (manifest_format(m2, &f2) < 0)
                abort();
        if (!streq(f1, f2))
                abort();

        /* The parsed structures agree on what matters for installing. */
        if (m->n_payloads != m2->n_payloads)
                abort();
        for (size_t i = 0; i < m->n_payloads; i++)
                if (!streq(m->payloads[i].name, m2->payloads[i].name) ||
                    m->payloads[i].offset != m2->payloads[i].offset ||
                    m->payloads[i].size != m2->payloads[i].size ||
                    memcmp(m->payloads[i].sha256, m2->payloads[i].sha256, 32) != 0)
                        abort();
        return 0;
}
