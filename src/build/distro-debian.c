/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "distro.h"
#include "fileio.h"
#include "initramfs.h"
#include "log.h"
#include "spawn.h"
#include "strutil.h"

/* Debian backend: mmdebstrap for the base system, apt-get inside the tree for
 * packages, initramfs-tools for the initramfs. */

static const char *const debian_base_packages[] = {
        "linux-image-amd64", "systemd", "systemd-sysv", "udev", "initramfs-tools", "zstd", "kmod", "e2fsprogs",
        /* in place of usrmerge, which the bootstrap installs and then
         * removes with perl (below) */
        "usr-is-merged",
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
                /* init-system-helpers depends on "usrmerge | usr-is-merged"
                 * and mmdebstrap's essential phase takes the first, which
                 * brings perl: ten packages and 50 MiB that nothing on a node
                 * uses. The tree is merged already; usr-is-merged says so.
                 * What a spec's packages need of perl comes back with them;
                 * that adduser suggests perl does not keep it. */
                (char *) "--customize-hook=chroot \"$1\" sh -ec '"
                         "dpkg -s usrmerge >/dev/null 2>&1 || exit 0; apt-get purge -y -q usrmerge; "
                         "for p in perl perl-modules-5.36 libperl5.36 libfile-find-rule-perl libnumber-compare-perl "
                         "libtext-glob-perl libgdbm-compat4 libgdbm6 libdb5.3; do "
                         "if dpkg -s $p >/dev/null 2>&1; then apt-mark auto -q $p; fi; done; "
                         "apt-get autoremove -y -q --purge -o APT::AutoRemove::SuggestsImportant=false'",
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

/* ---- extra repositories (spec 'repositories:', docs/BUILDER.md) ---------- */

/* They exist in the tree only while the packages stage runs: their sources,
 * keys and pins are written before apt-get update and removed after the
 * install, whether it worked or not. apt checks their signatures as it does
 * Debian's: never trusted=yes, never --allow-unauthenticated. */

#define REPO_FILE_PREFIX "hull-"
#define REPO_BIND_DIR "/run/hull-repositories"

typedef struct RepoState {
        char **written;      /* absolute host paths to remove afterwards */
        bool made_keyrings;  /* etc/apt/keyrings did not exist before */
} RepoState;

static int repo_sources_path(const SpecRepository *r, char **ret) {
        return asprintf(ret, "etc/apt/sources.list.d/" REPO_FILE_PREFIX "%s.sources", r->name) < 0 ? -ENOMEM : 0;
}

static int repo_key_path(const SpecRepository *r, char **ret) {
        /* apt tells the two key formats apart by the extension. */
        return asprintf(ret, "/etc/apt/keyrings/" REPO_FILE_PREFIX "%s.%s", r->name, r->key_armored ? "asc" : "gpg") < 0
                       ? -ENOMEM
                       : 0;
}

static int strv_extend_take(char ***l, char *s) {
        if (!s)
                return -ENOMEM;
        char **n = strv_append(*l, s);
        free(s);
        if (!n)
                return -ENOMEM;
        *l = n;
        return 0;
}

static int repo_write(BuildContext *c, RepoState *st, const char *rel, const void *data, size_t size) {
        _cleanup_free_ char *p = NULL;
        int r = build_root_path(c, rel, &p);

        if (r < 0)
                return r;
        (void) unlink(p);
        /* 0644: apt reads them as the unprivileged _apt user. */
        r = write_file_atomic(p, data, size, 0644);
        if (r < 0)
                return log_error_errno(r, "Failed to write '%s' in the image: %m", rel);
        return strv_extend_take(&st->written, TAKE_PTR(p));
}

/* The URI as apt inside the tree sees it: file: repositories are
 * bind-mounted under /run (private to each chroot run). */
static int repo_uri_in_tree(BuildContext *c, const SpecRepository *r, size_t i, char **ret) {
        const char *u = r->uris[i];
        if (!string_has_prefix(u, "file:")) {
                *ret = strdup(u);
                return *ret ? 0 : -ENOMEM;
        }
        _cleanup_free_ char *where = NULL;
        if (asprintf(&where, REPO_BIND_DIR "/%s-%zu", r->name, i) < 0)
                return -ENOMEM;
        int k = strv_extend_take(&c->chroot_binds, strdup(u + strlen("file://")));
        if (k >= 0)
                k = strv_extend_take(&c->chroot_binds, strdup(where));
        if (k < 0)
                return k;
        return asprintf(ret, "file:%s", where) < 0 ? -ENOMEM : 0;
}

static int repo_install_one(BuildContext *c, RepoState *st, const SpecRepository *r) {
        _cleanup_free_ char *key = NULL, *sources_rel = NULL, *text = NULL, *uris = strdup("");
        _cleanup_free_ char *prefs = strdup(""), *prefs_rel = NULL;
        _cleanup_strv_free_ char **origins = NULL;
        int k;

        if (!uris || !prefs)
                return -ENOMEM;
        if ((k = repo_key_path(r, &key)) < 0 || (k = repo_sources_path(r, &sources_rel)) < 0)
                return k;
        k = repo_write(c, st, key + 1, r->key_data, r->key_size);
        if (k < 0)
                return k;

        for (size_t i = 0; r->uris[i]; i++) {
                _cleanup_free_ char *u = NULL, *n = NULL;
                if ((k = repo_uri_in_tree(c, r, i, &u)) < 0)
                        return k;
                if (asprintf(&n, "%s%s%s", uris, i > 0 ? " " : "", u) < 0)
                        return -ENOMEM;
                free(uris);
                uris = TAKE_PTR(n);
        }
        _cleanup_free_ char *suites = NULL, *components = NULL;
        if ((k = join_list((const char *const *) r->suites, NULL, &suites)) < 0 ||
            (k = join_list((const char *const *) r->components, NULL, &components)) < 0)
                return k;
        for (char *p = suites; *p; p++)
                if (*p == ',')
                        *p = ' ';
        for (char *p = components; *p; p++)
                if (*p == ',')
                        *p = ' ';
        if (asprintf(&text,
                     "# Repository '%s' of image %s, written by hull-build for its packages stage only.\n"
                     "Types: deb\nURIs: %s\nSuites: %s\n%s%s%sSigned-By: %s\n",
                     r->name, c->spec->name, uris, suites, components[0] ? "Components: " : "", components,
                     components[0] ? "\n" : "", key) < 0)
                return -ENOMEM;
        k = repo_write(c, st, sources_rel, text, strlen(text));
        if (k < 0)
                return k;

        if (!r->has_pin)
                return 0;
        /* apt pins by origin, the host of the URI ("" for local files); the
         * spec parser refused differing pins for one host. */
        for (size_t i = 0; r->uris[i]; i++) {
                _cleanup_free_ char *o = NULL, *n = NULL;
                if (spec_repository_uri_origin(r->uris[i], &o) < 0)
                        return -ENOMEM;
                bool seen = false;
                for (char **x = origins; x && *x; x++)
                        seen = seen || streq(*x, o);
                if (seen)
                        continue;
                if (asprintf(&n, "%s%sPackage: *\nPin: origin \"%s\"\nPin-Priority: %d\n", prefs, prefs[0] ? "\n" : "", o,
                             r->pin) < 0)
                        return -ENOMEM;
                free(prefs);
                prefs = TAKE_PTR(n);
                if ((k = strv_extend_take(&origins, TAKE_PTR(o))) < 0)
                        return k;
        }
        if (asprintf(&prefs_rel, "etc/apt/preferences.d/" REPO_FILE_PREFIX "%s", r->name) < 0)
                return -ENOMEM;
        return repo_write(c, st, prefs_rel, prefs, strlen(prefs));
}

static void repo_remove(BuildContext *c, RepoState *st) {
        for (char **p = st->written; p && *p; p++)
                if (unlink(*p) < 0 && errno != ENOENT)
                        log_warning_errno(errno, "Failed to remove '%s' from the image, ignoring: %m", *p);
        strv_free(st->written);
        st->written = NULL;
        if (st->made_keyrings) {
                _cleanup_free_ char *k = path_join(c->root, "etc/apt/keyrings");
                if (k)
                        (void) rmdir(k);
        }
        strv_free(c->chroot_binds);
        c->chroot_binds = NULL;
}

static int repo_install(BuildContext *c, RepoState *st) {
        _cleanup_free_ char *keyrings = path_join(c->root, "etc/apt/keyrings");
        if (!keyrings)
                return -ENOMEM;
        st->made_keyrings = access(keyrings, F_OK) < 0;
        for (size_t i = 0; i < c->spec->n_repositories; i++) {
                int r = repo_install_one(c, st, &c->spec->repositories[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* What apt said about a failure: its first error or warning line ("W: GPG
 * error ... NO_PUBKEY" says more than the "E: ... is not signed" after it). */
static char *log_apt_reason(BuildContext *c, off_t from) {
        struct stat stb;
        if (c->log_fd < 0 || fstat(c->log_fd, &stb) < 0 || stb.st_size <= from)
                return NULL;
        size_t n = (size_t) MIN(stb.st_size - from, (off_t) (256 << 10));
        _cleanup_free_ char *buf = malloc(n + 1);
        if (!buf)
                return NULL;
        ssize_t got = pread(c->log_fd, buf, n, stb.st_size - (off_t) n);
        if (got <= 0)
                return NULL;
        buf[got] = '\0';
        for (char *line = buf; line && *line;) {
                char *nl = strchr(line, '\n');
                if (nl)
                        *nl = '\0';
                if (string_has_prefix(line, "E: ") || string_has_prefix(line, "W: "))
                        return strndup(line + 3, 300);
                line = nl ? nl + 1 : NULL;
        }
        return NULL;
}

static off_t log_offset(BuildContext *c) {
        struct stat stb;
        return c->log_fd >= 0 && fstat(c->log_fd, &stb) >= 0 ? stb.st_size : 0;
}

static int apt_update(BuildContext *c, const char *only_sources, off_t *ret_from) {
        char *env[] = { (char *) "DEBIAN_FRONTEND=noninteractive", (char *) "LC_ALL=C.UTF-8", NULL };
        _cleanup_free_ char *list = NULL;
        /* apt-get update exits 0 when an index cannot be fetched (a warning,
         * old lists used): an unreachable repository must fail the build. */
        char *argv[12] = { (char *) "apt-get", (char *) "update", (char *) "-q", (char *) "-o",
                           (char *) "APT::Update::Error-Mode=any" };
        size_t n = 5;

        if (only_sources) {
                if (asprintf(&list, "Dir::Etc::SourceList=%s", only_sources) < 0)
                        return -ENOMEM;
                argv[n++] = (char *) "-o";
                argv[n++] = list;
                argv[n++] = (char *) "-o";
                argv[n++] = (char *) "Dir::Etc::SourceParts=/nonexistent";
                /* Keep the other sources' lists that the full update fetched. */
                argv[n++] = (char *) "-o";
                argv[n++] = (char *) "APT::Get::List-Cleanup=false";
        }
        argv[n] = NULL;
        if (ret_from)
                *ret_from = log_offset(c);
        return build_chroot_run(c, argv, env);
}

/* The full update failed: find the repository that makes it fail, by
 * updating each alone, so the error names it. 0 if none of them does (the
 * distribution's archive is at fault). */
static int repo_find_failing(BuildContext *c) {
        for (size_t i = 0; i < c->spec->n_repositories; i++) {
                const SpecRepository *r = &c->spec->repositories[i];
                _cleanup_free_ char *rel = NULL, *reason = NULL;
                off_t from;
                int k;

                if ((k = repo_sources_path(r, &rel)) < 0)
                        return k;
                _cleanup_free_ char *abs = path_join("/", rel);
                if (!abs)
                        return -ENOMEM;
                k = apt_update(c, abs, &from);
                if (k == 0)
                        continue;
                reason = log_apt_reason(c, from);
                return log_error_errno(k < 0 ? k : EPROTO,
                                       "Repository '%s' (%s) failed: %s (checked with its key '%s'; see the build log)",
                                       r->name, r->uris[0], reason ?: "apt-get update failed", r->signed_by);
        }
        return 0;
}

static int debian_install(BuildContext *c, char * const *packages) {
        char *env[] = { (char *) "DEBIAN_FRONTEND=noninteractive", (char *) "LC_ALL=C.UTF-8", NULL };
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_free_ char *policy = path_join(c->root, "usr/sbin/policy-rc.d");
        RepoState repos = {};
        off_t from;
        int r;

        if (!policy)
                return -ENOMEM;
        /* With repositories but no packages, still check that they work. */
        if (strv_length(packages) == 0 && c->spec->n_repositories == 0)
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
        if (!resolv) {
                r = -ENOMEM;
                goto finish;
        }
        if (access(resolv, F_OK) < 0 && read_full_file("/etc/resolv.conf", 1 << 16, &host_resolv, &resolv_size) >= 0) {
                (void) unlink(resolv); /* a dangling symlink */
                lent_resolv = write_file_atomic(resolv, host_resolv, resolv_size, 0644) >= 0;
        }

        r = repo_install(c, &repos);
        if (r < 0)
                goto finish;

        r = apt_update(c, NULL, &from);
        if (r != 0) {
                _cleanup_free_ char *reason = log_apt_reason(c, from);
                int q = repo_find_failing(c);
                if (q < 0) {
                        r = q;
                        goto finish;
                }
                r = log_error_errno(r < 0 ? r : EPROTO, "apt-get update failed%s%s%s", r > 0 ? ": " : "",
                                    r > 0 ? reason ?: "see the log" : "", r < 0 ? ": %m" : "");
                goto finish;
        }

        if (strv_length(packages) > 0) {
                static const char *const head[] = { "apt-get", "install", "-y", "-q", "--no-install-recommends", NULL };
                for (const char *const *h = head; *h; h++)
                        if (!(argv = strv_append(argv, *h))) {
                                r = -ENOMEM;
                                goto finish;
                        }
                for (char * const *p = packages; *p; p++)
                        if (!(argv = strv_append(argv, *p))) {
                                r = -ENOMEM;
                                goto finish;
                        }

                r = build_chroot_run(c, argv, env);
                if (r != 0) {
                        r = log_error_errno(r < 0 ? r : EPROTO,
                                            "apt-get could not install the packages (is every name in 'packages' a "
                                            "package in suite '%s'%s?)",
                                            c->spec->suite, c->spec->n_repositories > 0 ? " or a repository" : "");
                        goto finish;
                }
        }

        char *clean[] = { (char *) "apt-get", (char *) "clean", NULL };
        (void) build_chroot_run(c, clean, env);
        r = 0;
finish:
        repo_remove(c, &repos);
        (void) unlink(policy);
        if (lent_resolv)
                (void) unlink(resolv);
        return r;
}

static int find_kernel_version(BuildContext *c) {
        char *kver = NULL;
        int r = build_find_kernel(c, &kver);
        if (r < 0)
                return r;
        if (r == 0)
                return log_error_errno(ENOENT, "The image contains no kernel (is linux-image-amd64 installed?)");
        free(c->kernel_version);
        c->kernel_version = kver;
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

/* Loaded by the initramfs at every boot: what mounts the root, and
 * overlayfs, which hull-init needs for /etc before udev could load it. */
static const char *const initramfs_load[] = { "erofs", "ext4", "overlay", "crc32c_generic", NULL };

/* Carried, and loaded by udev only when the machine has the device: disk
 * drivers for virtual machines (virtio, Hyper-V, VMware, Xen) and common
 * servers (NVMe, AHCI, and the LSI/Broadcom, Microchip and HPE RAID/HBA
 * families). Anything else loads from the root once udev runs there. The
 * installer's live medium adds its own (data/initramfs/hull-live.hook). */
static const char *const initramfs_disk_drivers =
        "virtio_pci virtio_blk virtio_scsi sd_mod nvme ahci ata_piix megaraid_sas mpt3sas smartpqi hpsa "
        "hv_storvsc vmw_pvscsi xen-blkfront";

/* boot.initramfs: hull. hull-build writes the archive itself from the
 * image's own modules; update-initramfs does not run. */
static int debian_hull_initramfs(BuildContext *c) {
        _cleanup_free_ char *initrd = NULL, *build_id = NULL, *summary = NULL, *error = NULL;
        int r;

        r = build_find_program(c, "hull-initrd", &initrd);
        if (r < 0)
                return log_error_errno(r, "Cannot find hull-initrd (boot.initramfs: hull) in the build tree or "
                                       "the Hull library directory: %m");
        if (asprintf(&build_id, "%s-%s", c->spec->name, c->spec->version) < 0 ||
            asprintf(&c->initrd_path, "%s/boot/initrd.img-%s", c->root, c->kernel_version) < 0)
                return -ENOMEM;
        InitramfsOptions o = {
                .root = c->root,
                .kver = c->kernel_version,
                .initrd_binary = initrd,
                .rootfstype = rootfs_type_to_string(c->spec->rootfs_type),
                .build_id = build_id,
                .verity = c->spec->verity,
                .mtime = c->source_date_epoch,
        };
        r = initramfs_build(&o, c->initrd_path, &summary, &error);
        if (r < 0)
                return log_error_errno(r, "Cannot write the initramfs: %s", error ?: strerror(-r));
        build_progress(c, "initramfs (hull-initrd): %s", summary);
        return 0;
}

static int debian_prepare_boot(BuildContext *c) {
        _cleanup_free_ char *modules = path_join(c->root, "etc/initramfs-tools/modules");
        int r;

        if (!modules)
                return -ENOMEM;
        if (c->spec->boot_initramfs == BOOT_INITRAMFS_HULL) {
                r = find_kernel_version(c);
                if (r < 0)
                        return r;
                r = debian_hull_initramfs(c);
                if (r < 0)
                        return r;
                if (asprintf(&c->kernel_path, "%s/boot/vmlinuz-%s", c->root, c->kernel_version) < 0)
                        return -ENOMEM;
                if (access(c->kernel_path, R_OK) < 0)
                        return log_error_errno(errno, "Kernel missing in /boot for %s: %m", c->kernel_version);
                return 0;
        }
        /* MODULES=list: only the modules below (with their dependencies and
         * soft dependencies) instead of Debian's "most", which packs every
         * disk, file system and network driver (124 MiB unpacked) for a
         * machine it knows nothing about. MODULES=dep cannot be used: it
         * guesses from the root device of the machine that runs the build. */
        r = build_write_in_root(c, "etc/initramfs-tools/conf.d/hull.conf",
                                "# Hull (hull-build): a small initramfs (docs/BUILDER.md, \"The initramfs\").\n"
                                "MODULES=list\nBUSYBOX=n\nCOMPRESS=zstd\nCOMPRESSLEVEL=19\nRESUME=none\n",
                                0644);
        if (r < 0)
                return r;
        _cleanup_free_ char *hook = NULL;
        if (asprintf(&hook,
                     "#!/bin/sh\n# Hull (hull-build): the disk drivers the initramfs carries; udev loads those the "
                     "machine needs.\nPREREQ=\"\"\nprereqs() { echo \"$PREREQ\"; }\n"
                     "case \"$1\" in prereqs) prereqs; exit 0 ;; esac\n"
                     ". /usr/share/initramfs-tools/hook-functions\nmanual_add_modules %s\n",
                     initramfs_disk_drivers) < 0)
                return -ENOMEM;
        r = build_write_in_root(c, "etc/initramfs-tools/hooks/hull-disks", hook, 0755);
        if (r < 0)
                return r;
        for (const char *const *m = initramfs_load; *m; m++) {
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

/* Every Debian package ships /usr/share/doc/PKG/copyright (policy 12.5; the
 * bootstrap keeps these files while it drops the rest of the docs), and dpkg
 * unpacks it with the mtime it has in the .deb: the package build's date,
 * clamped by debhelper to the changelog's. Nothing rewrites it afterwards,
 * unlike conffiles or files that maintainer scripts touch, so the newest one
 * dates the newest package and depends only on the versions installed. */
static int debian_package_epoch(BuildContext *c, uint64_t *ret) {
        _cleanup_free_ char *docs = path_join(c->root, "usr/share/doc");
        uint64_t newest = 0;
        unsigned n = 0;
        struct dirent *de;

        if (!docs)
                return -ENOMEM;
        DIR *d = opendir(docs);
        if (!d)
                return log_error_errno(errno, "Cannot date the packages: no '%s' (%m); set SOURCE_DATE_EPOCH", docs);
        while ((de = readdir(d))) {
                struct stat st;
                if (de->d_name[0] == '.')
                        continue;
                /* A doc directory may be a symlink to another package's,
                 * possibly absolute: never follow it out of the tree. */
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
                        continue;
                _cleanup_free_ char *rel = path_join(de->d_name, "copyright");
                if (!rel) {
                        closedir(d);
                        return -ENOMEM;
                }
                if (fstatat(dirfd(d), rel, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                        continue;
                n++;
                if (st.st_mtime > 0 && (uint64_t) st.st_mtime > newest)
                        newest = (uint64_t) st.st_mtime;
        }
        closedir(d);
        if (n == 0 || newest == 0)
                return log_error_errno(ENOENT, "Cannot date the packages: no /usr/share/doc/*/copyright in the image; "
                                               "set SOURCE_DATE_EPOCH");
        *ret = newest;
        return 0;
}

static const DistroBackend debian_backend = {
        .name = "debian",
        .base_packages = debian_base_packages,
        .bootstrap = debian_bootstrap,
        .install = debian_install,
        .prepare_boot = debian_prepare_boot,
        .record_packages = debian_record_packages,
        .remove_package_manager = debian_remove_package_manager,
        .package_epoch = debian_package_epoch,
};

const DistroBackend *distro_backend_find(const char *name) {
        if (name && streq(name, "debian"))
                return &debian_backend;
        return NULL;
}
