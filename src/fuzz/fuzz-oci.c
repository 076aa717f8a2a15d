/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* oci.h's parsers on arbitrary bytes: the WWW-Authenticate challenge (what
 * a registry, or anything posing as one, sends), image references (from
 * the OS object and the agent API), a docker config.json, and oci-bundle.h's
 * OCI manifest check and unverified head parser (both fed by a registry).
 * Whatever parses must be consistent: a parsed reference formats and parses
 * back to the same, a Bearer challenge has a realm; any violation aborts. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "manifest.h"
#include "oci-bundle.h"
#include "oci.h"
#include "strutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = NULL, *err = NULL, *f = NULL, *f2 = NULL, *user = NULL, *pass = NULL;
        OciChallenge c = {};
        OciRef ref = {}, ref2 = {};
        int r;

        text = malloc(size + 1);
        if (!text)
                return 0;
        if (size > 0)
                memcpy(text, data, size);
        text[size] = '\0';

        r = oci_challenge_parse(text, &c);
        if (r >= 0) {
                if (c.scheme == OCI_AUTH_BEARER && isempty(c.realm))
                        abort();
                oci_challenge_done(&c);
        } else if ((r != -EBADMSG && r != -EOPNOTSUPP && r != -ENOMEM) || c.realm || c.service || c.scope)
                abort();

        r = oci_ref_parse(text, &ref, &err);
        if (r >= 0) {
                if (!ref.registry || !ref.repository || (ref.digest && !oci_digest_is_valid(ref.digest)))
                        abort();
                if (oci_ref_format(&ref, false, &f) < 0 || oci_ref_parse(f, &ref2, NULL) < 0 ||
                    oci_ref_format(&ref2, false, &f2) < 0 || !streq(f, f2) || !streq(f, text))
                        abort();
                oci_ref_done(&ref2);
                oci_ref_done(&ref);
        } else if ((r != -EINVAL && r != -ENOMEM) || ref.registry || (r == -EINVAL && !err))
                abort();

        r = oci_auth_parse(text, size, "registry.example.com:5000", &user, &pass, NULL);
        if (r == 1 ? (!user || !pass) : (user || pass || (r != 0 && r != -EBADMSG && r != -EOPNOTSUPP && r != -ENOMEM)))
                abort();

        char digest[OCI_DIGEST_SIZE];
        uint64_t head_size;
        r = oci_bundle_manifest_check(text, size, digest, &head_size, NULL);
        if (r >= 0 && !oci_digest_is_valid(digest))
                abort();

        Manifest *m = NULL;
        size_t hs;
        r = oci_bundle_head_parse(data, size, &hs, &m, NULL);
        if (r >= 0) {
                if (hs > size || !m)
                        abort();
                r = oci_bundle_layers_match(text, size, m, NULL);
                if (r < 0 && r != -EBADMSG && r != -ENOMEM)
                        abort();
                manifest_free(m);
        }
        return 0;
}
