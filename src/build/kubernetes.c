/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Kubernetes node wiring of an image (docs/KUBERNETES.md): the kubelet
 * from a local file, its unit on kubeadm's file layout, containerd for the
 * CRI, writable CNI and volume-plugin directories on a read-only root, the
 * modules and sysctls, the resolver, the kubelet's health check, and
 * container image archives preloaded into containerd. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build.h"
#include "fileio.h"
#include "kubernetes.h"
#include "log.h"
#include "sign.h"
#include "strutil.h"

const char *const build_kubernetes_packages[] = {
        "containerd", "runc",
        /* Debian's CNI plugins seed the writable /opt/cni/bin. */
        "containernetworking-plugins",
        /* The resolver the kubelet hands to pods, and time for certificates. */
        "systemd-resolved", "systemd-timesyncd",
        "iproute2", "kmod", "ca-certificates",
        /* The kubelet's health check (health.d/60-kubelet). */
        "curl",
        NULL,
};

#define COPY_CHUNK (1U << 20)

int build_copy_file_sha256(const char *src, const char *dst, mode_t mode, char ret_hex[static 65]) {
        _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_close_ int out = -EBADF;
        _cleanup_free_ uint8_t *buf = malloc(COPY_CHUNK);
        _cleanup_free_ char *tmp = NULL;
        EVP_MD_CTX *ctx = NULL;
        uint8_t md[32];
        unsigned mdlen = 0;
        struct stat st;
        int r = 0;

        if (in < 0)
                return -errno;
        if (fstat(in, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EISDIR;
        if (!buf)
                return -ENOMEM;
        if (asprintf(&tmp, "%s.hull-tmp", dst) < 0)
                return -ENOMEM;
        out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (out < 0)
                return -errno;
        ctx = EVP_MD_CTX_new();
        if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
                r = -ENOMEM;
                goto out;
        }
        for (;;) {
                ssize_t n = read(in, buf, COPY_CHUNK);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        goto out;
                }
                if (n == 0)
                        break;
                if (EVP_DigestUpdate(ctx, buf, (size_t) n) != 1) {
                        r = -EIO;
                        goto out;
                }
                r = loop_write(out, buf, (size_t) n);
                if (r < 0)
                        goto out;
        }
        if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
                r = -EIO;
                goto out;
        }
        if ((fchmod(out, mode) < 0 || fsync(out) < 0 || rename(tmp, dst) < 0)) {
                r = -errno;
                goto out;
        }
        hex_encode(md, 32, ret_hex);
out:
        EVP_MD_CTX_free(ctx);
        if (r < 0)
                (void) unlink(tmp);
        return r;
}

static int check_digest(const char *field, const char *path, const char *want, const char *got) {
        if (want && !streq(want, got))
                return log_error_errno(EBADMSG,
                                       "%s: '%s' has SHA-256 %s, but the spec pins %s (a different or damaged file)",
                                       field, path, got, want);
        return 0;
}

/* Copy a spec's pinned file into the image at rel; a file whose digest is
 * not the pinned one is removed again. */
static int copy_pinned(BuildContext *c, const char *field, const char *src, const char *rel, mode_t mode,
                       const char *want, char got[static 65]) {
        _cleanup_free_ char *dst = NULL;
        int r = build_root_path(c, rel, &dst);

        if (r < 0)
                return r;
        (void) unlink(dst);
        r = build_copy_file_sha256(src, dst, mode, got);
        if (r < 0)
                return log_error_errno(r, "%s: cannot copy '%s' into the image: %m", field, src);
        r = check_digest(field, src, want, got);
        if (r < 0)
                (void) unlink(dst);
        return r;
}

int build_kubernetes_check_sources(BuildContext *c) {
        const SpecKubernetes *k = &c->spec->kubernetes;
        char got[65];
        int r;

        if (k->kubelet_source != KUBELET_SOURCE_NONE) {
                _cleanup_free_ char *src = NULL;
                const char *field = k->kubelet_source == KUBELET_SOURCE_DEB ? "kubernetes.kubelet.deb"
                                                                             : "kubernetes.kubelet.file";
                r = build_resolve_source(c, k->kubelet_path, &src);
                if (r < 0)
                        return r;
                r = sha256_file(src, got);
                if (r < 0)
                        return log_error_errno(r, "%s: cannot read '%s': %m", field, src);
                r = check_digest(field, src, k->kubelet_sha256, got);
                if (r < 0)
                        return r;
                if (k->kubelet_source == KUBELET_SOURCE_BINARY) {
                        char magic[4] = {};
                        _cleanup_close_ int fd = open(src, O_RDONLY | O_CLOEXEC);
                        if (fd < 0 || read(fd, magic, sizeof(magic)) != (ssize_t) sizeof(magic) ||
                            memcmp(magic, "\177ELF", 4) != 0)
                                return log_error_errno(fd < 0 ? errno : ENOEXEC,
                                                       "%s: '%s' is not a kubelet binary (an ELF executable)%s", field,
                                                       src, fd < 0 ? ": %m" : "; a .deb goes under kubernetes.kubelet.deb");
                }
        }
        for (size_t i = 0; i < c->spec->n_images; i++) {
                _cleanup_free_ char *src = NULL;
                r = build_resolve_source(c, c->spec->images[i].source, &src);
                if (r < 0)
                        return r;
                r = sha256_file(src, got);
                if (r < 0)
                        return log_error_errno(r, "images[%zu]: cannot read '%s': %m", i, src);
                r = check_digest("images", src, c->spec->images[i].sha256, got);
                if (r < 0)
                        return r;
        }
        return 0;
}

int build_kubernetes_stage_deb(BuildContext *c, char **ret_in_root) {
        const SpecKubernetes *k = &c->spec->kubernetes;
        _cleanup_free_ char *src = NULL;
        char got[65];
        int r;

        *ret_in_root = NULL;
        if (k->kubelet_source != KUBELET_SOURCE_DEB)
                return 0;
        r = build_resolve_source(c, k->kubelet_path, &src);
        if (r < 0)
                return r;
        /* Copied and checked in one pass: what apt installs is what was pinned. */
        r = copy_pinned(c, "kubernetes.kubelet.deb", src, BUILD_KUBELET_DEB_IN_ROOT, 0644, k->kubelet_sha256, got);
        if (r < 0)
                return r;
        *ret_in_root = strdup(BUILD_KUBELET_DEB_IN_ROOT);
        return *ret_in_root ? 0 : -ENOMEM;
}

static int install_kubelet_binary(BuildContext *c) {
        const SpecKubernetes *k = &c->spec->kubernetes;
        _cleanup_free_ char *src = NULL;
        char got[65];
        int r;

        r = build_resolve_source(c, k->kubelet_path, &src);
        if (r < 0)
                return r;
        r = copy_pinned(c, "kubernetes.kubelet.file", src, "usr/bin/kubelet", 0755, k->kubelet_sha256, got);
        if (r < 0)
                return r;
        build_progress(c, "kubelet from %s (sha256 %.12s...)", src, got);
        return 0;
}

static bool exists_in_root(BuildContext *c, const char *rel) {
        _cleanup_free_ char *p = path_join(c->root, rel);
        return p && access(p, F_OK) == 0;
}

/* rel becomes a symlink to target; an empty directory there is replaced,
 * anything else is an error (a package put files where the node needs a
 * writable directory). */
static int symlink_in_root(BuildContext *c, const char *rel, const char *target) {
        _cleanup_free_ char *p = NULL;
        struct stat st;
        int r = build_root_path(c, rel, &p);

        if (r < 0)
                return r;
        if (lstat(p, &st) >= 0) {
                if (S_ISDIR(st.st_mode)) {
                        if (rmdir(p) < 0)
                                return log_error_errno(errno,
                                                       "/%s must become a link to the writable %s, but the image has "
                                                       "files there: %m",
                                                       rel, target);
                } else if (unlink(p) < 0)
                        return log_error_errno(errno, "Failed to replace /%s: %m", rel);
        }
        if (symlink(target, p) < 0)
                return log_error_errno(errno, "Failed to link /%s to %s: %m", rel, target);
        return 0;
}

static int write_containerd_config(BuildContext *c) {
        _cleanup_free_ char *tmpl_path = path_join(c->data_dir, "kubernetes/containerd-config.toml.in"), *tmpl = NULL,
                            *out = NULL;
        size_t sz;
        int r;

        if (!tmpl_path)
                return -ENOMEM;
        r = read_full_file(tmpl_path, 1 << 20, &tmpl, &sz);
        if (r < 0)
                return log_error_errno(r, "Failed to read '%s': %m", tmpl_path);
        char *at = strstr(tmpl, "@SANDBOX_IMAGE@");
        if (!at)
                return log_error_errno(EINVAL, "'%s' has no @SANDBOX_IMAGE@", tmpl_path);
        *at = '\0';
        if (asprintf(&out, "%s%s%s", tmpl, c->spec->kubernetes.sandbox_image, at + strlen("@SANDBOX_IMAGE@")) < 0)
                return -ENOMEM;
        return build_write_in_root(c, "etc/containerd/config.toml", out, 0644);
}

/* Debian's CNI plugins are copied into the writable /opt/cni/bin by
 * systemd-tmpfiles, one 'C' line per plugin: a plugin already there (a CNI
 * installer's own build) is never overwritten, one that is missing comes
 * back on the next boot, and a plugin added by an image update is seeded too. */
static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int write_cni_tmpfiles(BuildContext *c) {
        _cleanup_free_ char *cni = path_join(c->root, "usr/lib/cni"), *text = NULL;
        size_t text_size = 0;
        DIR *d;

        if (!cni)
                return -ENOMEM;
        FILE *f = open_memstream(&text, &text_size);
        if (!f)
                return -ENOMEM;
        fprintf(f,
                   "# Hull (hull-build): the writable directories a Kubernetes node needs on a read-only root\n"
                   "# (docs/KUBERNETES.md). /opt/cni is a link to /var/opt/cni, on persist.\n"
                   "d /var/opt/cni 0755 root root -\n"
                   "d /var/opt/cni/bin 0755 root root -\n"
                   "d /etc/cni 0755 root root -\n"
                   "d /etc/cni/net.d 0755 root root -\n"
                   "d /etc/kubernetes 0755 root root -\n"
                   "d /etc/kubernetes/manifests 0755 root root -\n"
                   "d /var/lib/kubelet 0700 root root -\n"
                   "d /var/lib/kubelet/volumeplugins 0755 root root -\n");
        d = opendir(cni);
        if (!d) {
                (void) fclose(f);
                return log_error_errno(errno, "No CNI plugins in the image (/usr/lib/cni, package "
                                              "containernetworking-plugins): %m");
        }
        _cleanup_strv_free_ char **names = NULL;
        for (struct dirent *de; (de = readdir(d));) {
                if (de->d_name[0] == '.' || !string_is_safe_token(de->d_name, "_.-"))
                        continue;
                char **n = strv_append(names, de->d_name);
                if (!n) {
                        closedir(d);
                        (void) fclose(f);
                        return -ENOMEM;
                }
                names = n;
        }
        closedir(d);
        if (names)
                qsort(names, strv_length(names), sizeof(char *), cmp_str);
        for (char **n = names; n && *n; n++)
                fprintf(f, "C /var/opt/cni/bin/%s - - - - /usr/lib/cni/%s\n", *n, *n);
        if (fclose(f) != 0 || !text)
                return -ENOMEM;
        return build_write_in_root(c, "usr/lib/tmpfiles.d/hull-kubernetes.conf", text, 0644);
}

int build_kubernetes_wire(BuildContext *c) {
        int r;

        if (!c->spec->kubernetes.enabled)
                return 0;

        if (c->spec->kubernetes.kubelet_source == KUBELET_SOURCE_BINARY) {
                r = install_kubelet_binary(c);
                if (r < 0)
                        return r;
        }
        bool kubelet = exists_in_root(c, "usr/bin/kubelet");
        if (!kubelet)
                build_progress(c, "no kubelet in the image: kubelet.service stays inert (kubernetes.kubelet or a "
                                  "kubelet package adds one)");

        /* Ours replaces what a kubelet package brings: kubeadm's drop-in
         * reads files under /var/lib/kubelet that nothing writes here. */
        static const char *const package_units[] = { "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
                                                     "etc/systemd/system/kubelet.service.d/10-kubeadm.conf" };
        for (size_t i = 0; i < ELEMENTSOF(package_units); i++) {
                _cleanup_free_ char *p = path_join(c->root, package_units[i]);
                if (!p)
                        return -ENOMEM;
                (void) unlink(p);
        }
        r = build_install_data(c, "kubernetes/kubelet.service", "usr/lib/systemd/system/kubelet.service", 0644);
        if (r < 0)
                return r;
        r = write_containerd_config(c);
        if (r < 0)
                return r;

        /* Writable where CNI installers and the kubelet write: hostPath
         * volumes and the kubelet resolve the links on the host. */
        r = symlink_in_root(c, "opt/cni", "/var/opt/cni");
        if (r < 0)
                return r;
        r = symlink_in_root(c, "usr/libexec/kubernetes/kubelet-plugins/volume/exec", "/var/lib/kubelet/volumeplugins");
        if (r < 0)
                return r;
        r = write_cni_tmpfiles(c);
        if (r < 0)
                return r;

        r = build_install_data(c, "kubernetes/modules-load.conf", "usr/lib/modules-load.d/hull-kubernetes.conf", 0644);
        if (r >= 0)
                r = build_install_data(c, "kubernetes/sysctl.conf", "usr/lib/sysctl.d/50-hull-kubernetes.conf", 0644);
        if (r >= 0)
                r = build_install_data(c, "kubernetes/60-kubelet", "usr/lib/hull/health.d/60-kubelet", 0755);
        if (r < 0)
                return r;

        /* The resolver of the network configuration (DHCP or the
         * provisioning config's networks), with the upstream servers, not
         * resolved's 127.0.0.53 stub: the kubelet hands this file to pods,
         * where the stub does not answer. */
        if (!exists_in_root(c, "usr/lib/systemd/systemd-resolved"))
                return log_error_errno(ENOENT, "kubernetes: the image has no systemd-resolved");
        r = symlink_in_root(c, "etc/resolv.conf", "../run/systemd/resolve/resolv.conf");
        if (r < 0)
                return r;
        build_progress(c, "Kubernetes node wiring: kubelet.service (%s), containerd CRI with the systemd cgroup driver, "
                          "sandbox image %s, writable /opt/cni/bin and /etc/cni/net.d",
                       kubelet ? "kubelet installed" : "no kubelet", c->spec->kubernetes.sandbox_image);
        return 0;
}

int build_images_install(BuildContext *c) {
        _cleanup_free_ char *sums = NULL;
        size_t sums_size = 0;
        int r;

        if (c->spec->n_images == 0)
                return 0;
        if (!exists_in_root(c, "usr/bin/ctr"))
                return log_error_errno(ENOENT, "images: the image has no containerd (ctr) to import them into");
        FILE *f = open_memstream(&sums, &sums_size);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < c->spec->n_images; i++) {
                const SpecImage *img = &c->spec->images[i];
                _cleanup_free_ char *src = NULL, *rel = NULL;
                const char *base = strrchr(img->source, '/') ? strrchr(img->source, '/') + 1 : img->source;
                char got[65];

                r = build_resolve_source(c, img->source, &src);
                if (r >= 0 && asprintf(&rel, "usr/share/hull/images/%s", base) < 0)
                        r = -ENOMEM;
                if (r >= 0)
                        r = copy_pinned(c, "images", src, rel, 0644, img->sha256, got);
                if (r < 0) {
                        (void) fclose(f);
                        return r;
                }
                fprintf(f, "%s  %s\n", got, base);
        }
        if (fclose(f) != 0 || !sums)
                return -ENOMEM;
        r = build_write_in_root(c, "usr/share/hull/images/SHA256SUMS", sums, 0644);
        if (r >= 0)
                r = build_install_data(c, "kubernetes/hull-images.service", "usr/lib/systemd/system/hull-images.service",
                                       0644);
        if (r >= 0)
                r = build_install_data(c, "kubernetes/hull-images-import", "usr/lib/hull/hull-images-import", 0755);
        if (r < 0)
                return r;
        build_progress(c, "%zu container image archive(s) for containerd's k8s.io namespace", c->spec->n_images);
        return 0;
}
