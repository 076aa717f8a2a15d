/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The image's component versions (docs/BUNDLE.md, "Components"): found
 * once the packages are recorded, written into the image for the agent and
 * kept in the build context for the bundle manifest and the build facts. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build.h"
#include "fileio.h"
#include "log.h"
#include "spawn.h"
#include "strutil.h"

#define KUBELET_PATH "usr/bin/kubelet"

/* The kubelet that will run is the file at /usr/bin/kubelet, whoever put it
 * there (a package or the spec); ask it rather than a package database. */
static int kubelet_from_binary(BuildContext *c, Components *comp) {
        _cleanup_free_ char *path = path_join(c->root, KUBELET_PATH), *out = NULL, *v = NULL;
        char q[STRING_QUOTE_SIZE];
        struct stat st;
        int r;

        if (!path)
                return -ENOMEM;
        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : log_error_errno(errno, "Cannot examine '%s': %m", path);

        char *argv[] = { (char *) "/" KUBELET_PATH, (char *) "--version", NULL };
        r = spawn_capture(argv, &(SpawnOptions) { .output_fd = c->log_fd, .root = c->root, .timeout_sec = 60 }, 4096,
                          &out);
        if (r < 0)
                return log_error_errno(r, "Cannot run '/%s --version' in the image: %m", KUBELET_PATH);
        if (r != 0)
                return log_error_errno(EPROTO,
                                       "'/%s --version' failed in the image with exit status %d (is it a binary "
                                       "for this architecture?); the kubelet's version is needed for the bundle "
                                       "manifest",
                                       KUBELET_PATH, r);
        r = kubelet_version_from_output(out, &v);
        if (r < 0)
                return log_error_errno(r, "'/%s --version' printed %s, not 'Kubernetes vX.Y.Z'", KUBELET_PATH,
                                       string_quote(q, out ?: ""));
        return components_set(comp, COMPONENT_KUBELET, v);
}

int build_record_components(BuildContext *c) {
        _cleanup_free_ char *list_path = path_join(c->root, "usr/share/hull/packages.txt");
        _cleanup_free_ char *dir = path_join(c->root, "usr/lib/hull");
        _cleanup_free_ char *list = NULL, *json = NULL, *dest = NULL;
        Components comp = {};
        size_t size;
        int r;

        if (!list_path || !dir)
                return -ENOMEM;
        r = components_set(&comp, COMPONENT_KERNEL, c->kernel_version);
        if (r < 0) {
                components_done(&comp);
                return log_error_errno(r, "The kernel version '%s' is not usable as a component version: %m",
                                       c->kernel_version ?: "");
        }
        r = read_full_file(list_path, 16 << 20, &list, &size);
        if (r >= 0)
                r = components_from_package_list(list, &comp);
        if (r < 0) {
                components_done(&comp);
                return log_error_errno(r, "Cannot read containerd, runc and kubelet versions from '%s': %m",
                                       list_path);
        }
        r = kubelet_from_binary(c, &comp);
        if (r >= 0)
                r = components_format(&comp, &json);
        if (r >= 0 && (r = mkdir_p(dir, 0755)) >= 0) {
                dest = path_join(dir, "components.json");
                r = dest ? write_file_atomic(dest, json, strlen(json), 0644) : -ENOMEM;
                if (r < 0)
                        (void) log_error_errno(r, "Failed to write '%s': %m", dest ?: dir);
        }
        if (r < 0) {
                components_done(&comp);
                return r;
        }

        components_done(&c->components);
        c->components = comp;
        build_progress(c, "components: kernel %s, containerd %s, runc %s, kubelet %s",
                       comp.version[COMPONENT_KERNEL], comp.version[COMPONENT_CONTAINERD] ?: "none",
                       comp.version[COMPONENT_RUNC] ?: "none", comp.version[COMPONENT_KUBELET] ?: "none");
        return 0;
}
