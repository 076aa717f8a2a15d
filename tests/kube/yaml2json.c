/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test helper, not installed: print the JSON that yaml_to_json() makes of a
 * YAML file, so that the Python API-server double (tests/kube/apiserver.py,
 * stdlib only, no YAML parser) can load CRDs written in YAML.
 *
 *   yaml2json FILE     ("-" reads standard input)
 *
 * Prints one compact JSON document and a newline on stdout and exits 0; on
 * bad input prints "yaml2json: FILE:LINE:COLUMN: message" on stderr and
 * exits 1. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "yaml-json.h"

#define INPUT_MAX (16u * 1024u * 1024u)

int main(int argc, char **argv) {
        _cleanup_free_ char *data = NULL, *error = NULL, *out = NULL;
        json_t *j = NULL;
        size_t size = 0;
        int r;

        if (argc != 2) {
                fprintf(stderr, "usage: yaml2json FILE\n");
                return EXIT_FAILURE;
        }

        if (strcmp(argv[1], "-") == 0)
                r = read_full_fd(STDIN_FILENO, INPUT_MAX, &data, &size);
        else
                r = read_full_file(argv[1], INPUT_MAX, &data, &size);
        if (r < 0) {
                fprintf(stderr, "yaml2json: %s: %s\n", argv[1], strerror(-r));
                return EXIT_FAILURE;
        }

        r = yaml_to_json(data, size, &j, &error);
        if (r < 0) {
                fprintf(stderr, "yaml2json: %s:%s\n", argv[1], error ? error : strerror(-r));
                return EXIT_FAILURE;
        }

        out = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(j);
        if (!out) {
                fprintf(stderr, "yaml2json: out of memory\n");
                return EXIT_FAILURE;
        }
        if (puts(out) == EOF || fflush(stdout) != 0) {
                fprintf(stderr, "yaml2json: write error: %s\n", strerror(errno));
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
