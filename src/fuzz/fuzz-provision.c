/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* provision_parse() on arbitrary bytes. Whatever parses must format; the
 * formatted text must parse again and format to the same bytes (the config
 * is recorded by its hash, so the canonical form has to be a fixed point);
 * and it must render into a node config, since a config that parses but
 * cannot be applied would only fail on the node. Any violation aborts. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "provision.h"
#include "strutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(provision_freep) ProvisionConfig *c = NULL, *c2 = NULL;
        _cleanup_(node_config_freep) NodeConfig *n = NULL, *n2 = NULL;
        _cleanup_free_ char *f1 = NULL, *f2 = NULL, *err = NULL, *err2 = NULL;
        int r;

        r = provision_parse(data ? (const char *) data : "", size, &c, &err);
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
        if (err || c->format != PROVISION_FORMAT || !c->node)
                abort();

        if (provision_format(c, &f1) < 0)
                abort();
        if (!string_has_prefix(f1, "{\"hull_config\":1"))
                abort();
        if (provision_parse(f1, strlen(f1), &c2, &err2) < 0)
                abort();
        if (provision_format(c2, &f2) < 0)
                abort();
        if (!streq(f1, f2))
                abort();

        if (provision_render(c, &n, NULL) < 0 || provision_render(c2, &n2, NULL) < 0)
                abort();
        if (n->generation != 1 || !node_config_equal(n, n2))
                abort();
        for (size_t i = 0; i < n->n_files; i++)
                if (!string_has_prefix(n->files[i].path, "/etc/"))
                        abort();
        /* Static networks have addresses, DHCP ones none. */
        for (size_t i = 0; i < c->n_networks; i++)
                if (c->networks[i].dhcp == (c->networks[i].addresses != NULL))
                        abort();
        return 0;
}
