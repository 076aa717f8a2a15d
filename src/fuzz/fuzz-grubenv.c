/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "grubenv.h"

/* Whatever parses must survive format -> parse unchanged, and formatting must
 * then be stable: the variables alone determine the bytes we write. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL, *f = NULL;
        char a[GRUBENV_SIZE], b[GRUBENV_SIZE];
        int r;

        r = grubenv_parse((const char *) data, size, &e);
        if (r < 0) {
                /* Rejections are malformed input, nothing else. */
                if (r != -EBADMSG && r != -ENOMEM)
                        abort();
                return 0;
        }
        if (size != GRUBENV_SIZE)
                abort();

        r = grubenv_format(e, a);
        if (r == -E2BIG)
                return 0; /* GRUB's block without our comment line can hold more */
        if (r < 0)
                abort();
        if (grubenv_parse(a, sizeof(a), &f) < 0)
                abort();

        if (grubenv_count(e) != grubenv_count(f))
                abort();
        for (size_t i = 0; i < grubenv_count(e); i++) {
                const char *ke, *ve, *kf, *vf;
                if (grubenv_get_at(e, i, &ke, &ve) < 0 || grubenv_get_at(f, i, &kf, &vf) < 0)
                        abort();
                if (!streq(ke, kf) || !streq(ve, vf))
                        abort();
                if (grubenv_get(f, ke) != vf)
                        abort(); /* keys are unique */
        }

        if (grubenv_format(f, b) < 0 || memcmp(a, b, GRUBENV_SIZE) != 0)
                abort();
        return 0;
}
