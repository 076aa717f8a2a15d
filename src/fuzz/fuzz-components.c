/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The parsers of components.h on arbitrary bytes: components_parse() (the
 * image's components.json, read by the agent), and the build-time ones
 * (a package list, kubelet --version output, a Debian version) plus
 * kube_version_parse() and the skew check over what they return. Whatever
 * parses must format and parse back to the same; any violation aborts. */
#include <stdlib.h>
#include <string.h>

#include "components.h"
#include "fuzz.h"
#include "kube-version.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = NULL, *f1 = NULL, *f2 = NULL, *err = NULL;
        Components c = {}, c2 = {};
        int r;

        text = malloc(size + 1);
        if (!text)
                return 0;
        if (size > 0)
                memcpy(text, data, size);
        text[size] = '\0';

        r = components_parse(text, size, &c, &err);
        if (r >= 0) {
                if (components_format(&c, &f1) < 0 || components_parse(f1, strlen(f1), &c2, NULL) < 0 ||
                    components_format(&c2, &f2) < 0 || !streq(f1, f2))
                        abort();
                components_done(&c2);
        } else if ((r != -EBADMSG && r != -E2BIG && r != -ENOMEM) || !components_is_empty(&c))
                abort();
        components_done(&c);

        /* The same bytes as a package list: every value set must be valid. */
        r = components_from_package_list(text, &c);
        for (size_t i = 0; i < _COMPONENT_MAX; i++)
                if (c.version[i] && !component_version_is_valid((Component) i, c.version[i]))
                        abort();
        components_done(&c);

        _cleanup_free_ char *k = NULL, *d = NULL, *msg = NULL;
        if (kubelet_version_from_output(text, &k) >= 0 && kube_version_parse(k, NULL) < 0)
                abort();
        if (debian_upstream_version(text, &d) >= 0 && !component_version_is_valid(COMPONENT_RUNC, d))
                abort();
        /* The skew check never crashes and only says yes to parsable versions. */
        r = kube_version_skew_check("v1.32.4", text, "x", &msg);
        if (r == 0 && kube_version_parse(text, NULL) < 0)
                abort();
        if (r != 0 && r != -ERANGE && r != -EINVAL && r != -ENOMEM)
                abort();
        return 0;
}
