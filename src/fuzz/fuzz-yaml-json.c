/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "yaml-json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(json_decrefp) json_t *j = NULL, *back = NULL;
        _cleanup_free_ char *error = NULL, *text = NULL;
        json_error_t e;

        int r = yaml_to_json((const char *) data, size, &j, &error);
        if (r < 0) {
                /* Every rejection of the input must say where and why. */
                if (r == -EBADMSG && (!error || !strchr(error, ':')))
                        abort();
                if (r != -EBADMSG && r != -ENOMEM)
                        abort();
                return 0;
        }
        if (!j || error)
                abort();

        /* Whatever converts is JSON that jansson reads back as the same
         * value: what hullctl sends is what the agent will parse. */
        text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text)
                abort();
        back = json_loads(text, JSON_DECODE_ANY, &e);
        if (!back || !json_equal(j, back))
                abort();
        return 0;
}
