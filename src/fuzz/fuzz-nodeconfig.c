/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* node_config_parse() on arbitrary bytes. Whatever parses must format, the
 * formatted text must parse again into an equal config, and formatting that
 * must give the same bytes: the agent stores the canonical form and compares
 * configs by it, so it has to be a fixed point. Any violation aborts. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "nodeconfig.h"
#include "strutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(node_config_freep) NodeConfig *c = NULL, *c2 = NULL;
        _cleanup_free_ char *f1 = NULL, *f2 = NULL, *err = NULL, *err2 = NULL, *args = NULL;
        int r;

        r = node_config_parse(data ? (const char *) data : "", size, &c, &err);
        if (r < 0) {
                if (c)
                        abort(); /* ret is written only on success */
                if (r != -EBADMSG && r != -E2BIG && r != -ENOMEM)
                        abort();
                /* A refusal always says why, in printable ASCII. */
                if (r != -ENOMEM && !err)
                        abort();
                for (const char *p = err; p && *p; p++)
                        if (*p < 0x20 || *p > 0x7e)
                                abort();
                return 0;
        }
        if (err || c->generation == 0)
                abort();

        if (node_config_format(c, &f1) < 0)
                abort();
        if (node_config_parse(f1, strlen(f1), &c2, &err2) < 0)
                abort();
        if (!node_config_equal(c, c2) || !node_config_equal(c2, c))
                abort();
        if (node_config_format(c2, &f2) < 0)
                abort();
        if (!streq(f1, f2))
                abort();

        /* Sorted and bounded as promised. */
        for (size_t i = 1; i < c->n_sysctl; i++)
                if (strcmp(c->sysctl[i - 1].key, c->sysctl[i].key) >= 0)
                        abort();
        for (size_t i = 1; i < c->n_files; i++)
                if (strcmp(c->files[i - 1].path, c->files[i].path) >= 0)
                        abort();
        for (size_t i = 0; i < c->n_files; i++)
                if (!c->files[i].content || c->files[i].size > NODE_CONFIG_FILE_SIZE_MAX || c->files[i].mode > 0777 ||
                    !string_has_prefix(c->files[i].path, "/etc/"))
                        abort();

        /* The kernel command line: single-space separated tokens, nothing
         * GRUB would interpret. */
        args = node_config_kernel_args_string(c);
        if (!args)
                abort();
        if (strv_length(c->kernel_args) == 0 ? !streq(args, "") : strlen(args) == 0)
                abort();
        for (const char *p = args; *p; p++)
                if (*p < 0x20 || *p > 0x7e || strchr("\"'\\;${}#\t\n", *p) || (p[0] == ' ' && p[1] == ' '))
                        abort();
        return 0;
}
