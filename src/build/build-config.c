/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build-config.h"
#include "fileio.h"
#include "log.h"
#include "provision.h"
#include "strutil.h"

/* The machine config names a node's secrets (bootstrap token, kubeconfig,
 * files under /etc): only its owner reads the generated file. */
#define CONFIG_MODE 0600

static int check(const char *path) {
        _cleanup_(provision_freep) ProvisionConfig *c = NULL;
        _cleanup_free_ char *data = NULL, *error = NULL;
        size_t size;
        int r;

        r = read_full_file(path, PROVISION_SIZE_MAX, &data, &size);
        if (r == -E2BIG)
                return log_error_errno(r, "%s: larger than 1 MiB", path);
        if (r < 0)
                return log_error_errno(r, "Cannot read '%s': %m", path);
        r = provision_parse(data, size, &c, &error);
        if (r == -EBADMSG || r == -E2BIG)
                return log_error_errno(r, "%s: %s", path, error ?: "invalid");
        if (r < 0)
                return log_error_errno(r, "Failed to check '%s': %m", path);
        printf("%s: OK (hull_config %u%s%s)\n", path, c->format, c->hostname ? ", hostname " : "", c->hostname ?: "");
        return 0;
}

static int generate(const char *input, const char *output) {
        _cleanup_free_ char *data = NULL, *error = NULL, *json = NULL, *dir_copy = NULL;
        size_t size;
        int r;

        r = read_full_file(input, PROVISION_SIZE_MAX, &data, &size);
        if (r == -E2BIG)
                return log_error_errno(r, "%s: larger than 1 MiB", input);
        if (r < 0)
                return log_error_errno(r, "Cannot read '%s': %m", input);

        /* Files the document refers to (source:, *_file:) are relative to
         * the document, wherever hull-build runs from. */
        dir_copy = strdup(input);
        if (!dir_copy)
                return log_oom();
        r = provision_generate(data, size, dirname(dir_copy), &json, &error);
        if (r == -EBADMSG || r == -E2BIG)
                return log_error_errno(r, "%s: %s", input, error ?: "invalid");
        if (r < 0)
                return log_error_errno(r, "Failed to convert '%s': %m", input);

        if (!output) {
                fputs(json, stdout);
                if (fflush(stdout) != 0)
                        return log_error_errno(errno, "Failed to write the config: %m");
                return 0;
        }
        /* Atomic: a failed run never leaves a half-written config behind. */
        r = write_file_atomic(output, json, strlen(json), CONFIG_MODE);
        if (r < 0)
                return log_error_errno(r, "Failed to write '%s': %m", output);
        log_info("%s: written from %s", output, input);
        return 0;
}

int cmd_config(int argc, char **argv, const char *output, bool check_only) {
        if (argc != 1)
                return log_error_errno(EINVAL, check_only ? "Usage: hull-build config --check FILE.json" :
                                                            "Usage: hull-build config INPUT.yaml [-o OUT.json]");
        if (check_only) {
                if (output)
                        return log_error_errno(EINVAL, "--check writes nothing; -o does not go with it");
                return check(argv[0]);
        }
        return generate(argv[0], output);
}
