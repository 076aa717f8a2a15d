/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "install.h"

/* The installer's two parsers: install.json from the medium, and the
 * hull.install.* keys of a kernel command line. Inputs starting with '{' go
 * to the first, everything else to the second. Whatever install.json parses
 * must survive format -> parse unchanged; a rejection always comes with a
 * message. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1), *err = NULL;
        int r;

        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';

        if (size > 0 && data[0] == '{') {
                InstallMedia m = {}, m2 = {};
                char *out = NULL;
                r = install_media_parse(s, size, &m, &err);
                if (r < 0) {
                        if (r != -EBADMSG && r != -ENOMEM)
                                abort();
                        if (r == -EBADMSG && !err)
                                abort();
                } else {
                        if (install_media_format(&m, &out) < 0 || install_media_parse(out, strlen(out), &m2, &err) < 0)
                                abort();
                        if (strcmp(m.name, m2.name) != 0 || strcmp(m.version, m2.version) != 0 ||
                            m.esp_size != m2.esp_size || m.root_size != m2.root_size || m.persist_min != m2.persist_min ||
                            m.root_image_size != m2.root_image_size || m.esp_image_size != m2.esp_image_size ||
                            strcmp(m.esp_image, m2.esp_image) != 0 || strcmp(m.root_image, m2.root_image) != 0 ||
                            !m.config != !m2.config || (m.config && strcmp(m.config, m2.config) != 0))
                                abort();
                        /* File names never leave the medium's directory. */
                        if (strchr(m.esp_image, '/') || strchr(m.root_image, '/') || (m.config && strchr(m.config, '/')))
                                abort();
                }
                free(out);
                install_media_done(&m);
                install_media_done(&m2);
        } else {
                InstallSettings st = {};
                /* The kernel command line is a C string. */
                if (strlen(s) == size) {
                        r = install_settings_from_cmdline(s, &st, &err);
                        if (r < 0) {
                                if (r != -EINVAL && r != -ENOMEM)
                                        abort();
                                if (r == -EINVAL && !err)
                                        abort();
                        } else if (!st.disk || (strcmp(st.disk, "auto") != 0 && strncmp(st.disk, "/dev/", 5) != 0))
                                abort();
                        install_settings_done(&st);
                }
        }
        free(err);
        free(s);
        return 0;
}
