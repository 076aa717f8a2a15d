/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distro.h"
#include "fileio.h"
#include "log.h"
#include "spawn.h"
#include "strutil.h"

/* Debian backend: mmdebstrap for the base system, apt-get inside the tree for
 * packages, initramfs-tools for the initramfs. */

static const char *const debian_base_packages[] = {
        "linux-image-amd64", "systemd", "systemd-sysv", "udev", "initramfs-tools", "zstd", "kmod", "e2fsprogs",
        /* veritysetup: small, and having it in every base layer lets images
         * with and without dm-verity share the bootstrap cache. */
        "cryptsetup-bin",
        /* Runtime libraries of hull-agent and hullctl. */
        "libmicrohttpd12", "libcurl4", "libjansson4", "libyaml-0-2", "libssl3", "libfdisk1", "ca-certificates", NULL,
};

static int join_list(const char *const *a, const char *const *b, char **ret) {
        _cleanup_free_ char *s = strdup("");
        const char *const *lists[] = { a, b };

        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(lists); i++)
                for (const char *const *l = lists[i]; l && *l; l++) {
                        char *n;
                        if (asprintf(&n, "%s%s%s", s, *s ? "," : "", *l) < 0)
                                return -ENOMEM;
                        free(s);
                        s = n;
                }
        *ret = TAKE_PTR(s);
        return 0;
}

static int debian_bootstrap(BuildContext *c, const char *tarball) {
        _cleanup_free_ char *include = NULL, *include_arg = NULL, *variant_arg = NULL, *components_arg = NULL;
        int r;

        r = join_list(debian_base_packages, NULL, &include);
        if (r < 0)
                return r;
        _cleanup_free_ char *components = NULL;
        r = join_list((const char *const *) c->spec->components, NULL, &components);
        if (r < 0)
                return r;
        if (asprintf(&include_arg, "--include=%s", include) < 0 ||
            asprintf(&variant_arg, "--variant=%s", c->spec->variant) < 0 ||
            asprintf(&components_arg, "--components=%s", components) < 0)
                return -ENOMEM;

        char *argv[] = {
                (char *) "mmdebstrap", (char *) "--mode=root", (char *) "--format=tar", (char *) "--architectures=amd64",
                variant_arg, components_arg, include_arg,
                /* Docs and locales are dead weight on a node that nobody logs in to. */
                (char *) "--dpkgopt=path-exclude=/usr/share/doc/*",
                (char *) "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                (char *) "--dpkgopt=path-exclude=/usr/share/man/*",
                (char *) "--dpkgopt=path-exclude=/usr/share/locale/*",
                (char *) "--dpkgopt=path-exclude=/usr/share/info/*",
                c->spec->suite, (char *) tarball, c->spec->mirror, NULL,
        };
        r = build_host_run(c, argv);
        if (r < 0)
                return r;
        if (r != 0)
                return log_error_errno(EPROTO, "mmdebstrap failed with exit status %d (suite '%s', mirror '%s')", r,
                                       c->spec->suite, c->spec->mirror);
        return 0;
}

static int debian_install(BuildContext *c, char * const *packages) {
        char *env[] = { (char *) "DEBIAN_FRONTEND=noninteractive", (char *) "LC_ALL=C.UTF-8", NULL };
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_free_ char *policy = path_join(c->root, "usr/sbin/policy-rc.d");
        int r;

        if (!policy)
                return -ENOMEM;
        if (strv_length(packages) == 0)
                return 0;

        /* Nothing may start services inside the build tree. */
        r = write_file_atomic(policy, "#!/bin/sh\nexit 101\n", 19, 0755);
        if (r < 0)
                return log_error_errno(r, "Failed to write '%s': %m", policy);

        /* apt needs name resolution inside the tree; lend it the host's
         * resolver configuration for the duration of the install. */
        _cleanup_free_ char *resolv = path_join(c->root, "etc/resolv.conf"), *host_resolv = NULL;
        bool lent_resolv = false;
        size_t resolv_size;
        if (!resolv)
                return -ENOMEM;
        if (access(resolv, F_OK) < 0 && read_full_file("/etc/resolv.conf", 1 << 16, &host_resolv, &resolv_size) >= 0) {
                (void) unlink(resolv); /* a dangling symlink */
                lent_resolv = write_file_atomic(resolv, host_resolv, resolv_size, 0644) >= 0;
        }

        char *update[] = { (char *) "apt-get", (char *) "update", (char *) "-q", NULL };
        r = build_chroot_run(c, update, env);
        if (r != 0) {
                (void) unlink(policy);
                if (lent_resolv)
                        (void) unlink(resolv);
                return log_error_errno(r < 0 ? r : EPROTO, "apt-get update failed%s", r > 0 ? " (see the log)" : ": %m");
        }

        static const char *const head[] = { "apt-get", "install", "-y", "-q", "--no-install-recommends", NULL };
        for (const char *const *h = head; *h; h++)
                if (!(argv = strv_append(argv, *h)))
                        return -ENOMEM;
        for (char * const *p = packages; *p; p++)
                if (!(argv = strv_append(argv, *p)))
                        return -ENOMEM;

        r = build_chroot_run(c, argv, env);
        (void) unlink(policy);
        if (lent_resolv)
                (void) unlink(resolv);
        if (r != 0)
                return log_error_errno(r < 0 ? r : EPROTO,
                                       "apt-get could not install the packages (is every name in 'packages' a package in "
                                       "suite '%s'?)",
                                       c->spec->suite);

        char *clean[] = { (char *) "apt-get", (char *) "clean", NULL };
        (void) build_chroot_run(c, clean, env);
        return 0;
}

static int find_kernel_version(BuildContext *c) {
        _cleanup_free_ char *moddir = path_join(c->root, "lib/modules");
        DIR *d;
        struct dirent *de;
        char *found = NULL;

        if (!moddir)
                return -ENOMEM;
        d = opendir(moddir);
        if (!d)
                return log_error_errno(errno, "The image has no kernel modules at '%s': %m", moddir);
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                if (found) {
                        free(found);
                        closedir(d);
                        return log_error_errno(EEXIST, "The image contains more than one kernel; keep exactly one");
                }
                found = strdup(de->d_name);
                if (!found) {
                        closedir(d);
                        return -ENOMEM;
                }
        }
        closedir(d);
        if (!found)
                return log_error_errno(ENOENT, "The image contains no kernel (is linux-image-amd64 installed?)");
        c->kernel_version = found;
        return 0;
}

static int append_line_if_missing(const char *path, const char *line) {
        _cleanup_free_ char *data = NULL, *n = NULL;
        size_t sz = 0;
        int r = read_full_file(path, 1 << 20, &data, &sz);
        if (r < 0 && r != -ENOENT)
                return r;
        if (data) {
                for (char *p = data; p && *p;) {
                        char *nl = strchr(p, '\n');
                        size_t l = nl ? (size_t) (nl - p) : strlen(p);
                        if (l == strlen(line) && strncmp(p, line, l) == 0)
                                return 0;
                        p = nl ? nl + 1 : NULL;
                }
        }
        if (asprintf(&n, "%s%s%s\n", data ?: "", (sz > 0 && data[sz - 1] != '\n') ? "\n" : "", line) < 0)
                return -ENOMEM;
        return write_file_atomic(path, n, strlen(n), 0644);
}

static int debian_prepare_boot(BuildContext *c) {
        _cleanup_free_ char *modules = path_join(c->root, "etc/initramfs-tools/modules");
        int r;

        if (!modules)
                return -ENOMEM;
        /* The initramfs must be able to mount the slot's file system and
         * hull-init needs overlayfs for /etc before udev could load it. */
        static const char *const mods[] = { "erofs", "ext4", "overlay", "virtio_blk", "virtio_pci", NULL };
        for (const char *const *m = mods; *m; m++) {
                r = append_line_if_missing(modules, *m);
                if (r < 0)
                        return log_error_errno(r, "Failed to update '%s': %m", modules);
        }
        if (c->spec->verity) {
                r = append_line_if_missing(modules, "dm-verity");
                if (r < 0)
                        return r;
                r = build_install_data(c, "initramfs/hull-verity.local-top",
                                      "etc/initramfs-tools/scripts/local-top/hull-verity", 0755);
                if (r < 0)
                        return r;
                r = build_install_data(c, "initramfs/hull-verity.hook", "etc/initramfs-tools/hooks/hull-verity", 0755);
                if (r < 0)
                        return r;
        }

        /* Every image can be an installer's live root (docs/INSTALL.md); the
         * hook does nothing unless hull.live= is on the command line. */
        r = build_install_data(c, "initramfs/hull-live.local-top", "etc/initramfs-tools/scripts/local-top/hull-live", 0755);
        if (r >= 0)
                r = build_install_data(c, "initramfs/hull-live.hook", "etc/initramfs-tools/hooks/hull-live", 0755);
        if (r < 0)
                return r;

        r = find_kernel_version(c);
        if (r < 0)
                return r;

        char *argv[] = { (char *) "update-initramfs", (char *) "-u", (char *) "-k", c->kernel_version, NULL };
        r = build_chroot_run(c, argv, NULL);
        if (r != 0)
                return log_error_errno(r < 0 ? r : EPROTO, "update-initramfs failed for kernel %s", c->kernel_version);

        if (asprintf(&c->kernel_path, "%s/boot/vmlinuz-%s", c->root, c->kernel_version) < 0 ||
            asprintf(&c->initrd_path, "%s/boot/initrd.img-%s", c->root, c->kernel_version) < 0)
                return -ENOMEM;
        if (access(c->kernel_path, R_OK) < 0 || access(c->initrd_path, R_OK) < 0)
                return log_error_errno(errno, "Kernel or initramfs missing in /boot for %s: %m", c->kernel_version);
        return 0;
}

static int debian_record_packages(BuildContext *c) {
        _cleanup_free_ char *out = NULL, *dest = path_join(c->root, "usr/share/hull/packages.txt");
        char *argv[] = { (char *) "chroot", c->root, (char *) "dpkg-query", (char *) "-W", (char *) "-f",
                         (char *) "${Package} ${Version}\\n", NULL };
        int r;

        if (!dest)
                return -ENOMEM;
        r = spawn_capture(argv, &(SpawnOptions) { .output_fd = c->log_fd }, 4 << 20, &out);
        if (r != 0)
                return log_error_errno(r < 0 ? r : EPROTO, "dpkg-query failed inside the image");
        c->package_count = 0;
        for (char *p = out; *p; p++)
                if (*p == '\n')
                        c->package_count++;
        return write_file_atomic(dest, out, strlen(out), 0644);
}

static int debian_remove_package_manager(BuildContext *c) {
        /* No package manager on a node: the image is the unit of change. The
         * package list survives in /usr/share/hull/packages.txt. */
        static const char *const paths[] = {
                "usr/bin/apt", "usr/bin/apt-get", "usr/bin/apt-cache", "usr/bin/apt-config", "usr/bin/apt-mark",
                "usr/bin/apt-cdrom", "usr/bin/apt-key", "usr/lib/apt", "etc/apt", "var/lib/apt", "var/cache/apt",
                "var/cache/debconf", "usr/bin/dpkg", "usr/bin/dpkg-deb", "usr/bin/dpkg-divert", "usr/bin/dpkg-query",
                "usr/bin/dpkg-split", "usr/bin/dpkg-statoverride", "usr/bin/dpkg-trigger", "usr/bin/dpkg-maintscript-helper",
                "usr/bin/dpkg-realpath", "var/lib/dpkg", "etc/dpkg", "usr/share/doc", "usr/share/man", "var/log/apt",
                "var/log/dpkg.log", "var/log/alternatives.log", "var/log/bootstrap.log", NULL,
        };
        _cleanup_strv_free_ char **argv = NULL;

        if (!(argv = strv_append(argv, "rm")) || !(argv = strv_append(argv, "-rf")) ||
            !(argv = strv_append(argv, "--one-file-system")))
                return -ENOMEM;
        for (const char *const *p = paths; *p; p++) {
                _cleanup_free_ char *full = path_join(c->root, *p);
                if (!full || !(argv = strv_append(argv, full)))
                        return -ENOMEM;
        }
        int r = build_host_run(c, argv);
        return r == 0 ? 0 : log_error_errno(r < 0 ? r : EPROTO, "Failed to remove the package manager from the image");
}

static const DistroBackend debian_backend = {
        .name = "debian",
        .base_packages = debian_base_packages,
        .bootstrap = debian_bootstrap,
        .install = debian_install,
        .prepare_boot = debian_prepare_boot,
        .record_packages = debian_record_packages,
        .remove_package_manager = debian_remove_package_manager,
};

const DistroBackend *distro_backend_find(const char *name) {
        if (name && streq(name, "debian"))
                return &debian_backend;
        return NULL;
}
