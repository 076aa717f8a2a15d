/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "initrd-conf.h"

/* initrd.conf is read by hull-initrd as PID 1: whatever it holds, the parse
 * ends with a clean refusal or a consistent list (every dep= points to an
 * earlier module, only storage modules carry aliases, paths are valid). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        InitrdConf c = {};
        unsigned line = 0;
        int r;

        r = initrd_conf_parse((const char *) data, size, &c, &line);
        if (r < 0) {
                if (r != -EBADMSG && r != -ENOMEM && r != -E2BIG)
                        abort();
                if (r == -EBADMSG && line == 0)
                        abort();
                return 0;
        }
        if (!c.kver)
                abort();
        for (size_t i = 0; i < c.n_modules; i++) {
                const InitrdModule *m = &c.modules[i];
                if (!initrd_module_path_is_valid(m->path) || !initrd_module_class_to_string(m->class) || !m->name)
                        abort();
                for (size_t d = 0; d < m->n_deps; d++)
                        if (m->deps[d] >= i)
                                abort();
                for (size_t d = 0; d < m->n_softs; d++)
                        if (m->softs[d] >= i)
                                abort();
                if (m->aliases && m->class != INITRD_MODULE_STORAGE)
                        abort();
                (void) initrd_module_matches(m, "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00");
        }
        initrd_conf_done(&c);
        return 0;
}
