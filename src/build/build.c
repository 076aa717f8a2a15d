/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "bootcount.h"
#include "build.h"
#include "bundle.h"
#include "chunkindex.h"
#include "distro.h"
#include "fileio.h"
#include "gpt.h"
#include "grubenv.h"
#include "kubernetes.h"
#include "log.h"
#include "manifest.h"
#include "spawn.h"
#include "strutil.h"

static struct timespec build_start;

static double elapsed(void) {
        struct timespec now;
        (void) clock_gettime(CLOCK_MONOTONIC, &now);
        return (double) (now.tv_sec - build_start.tv_sec) + (double) (now.tv_nsec - build_start.tv_nsec) / 1e9;
}

void build_progress(BuildContext *c, const char *fmt, ...) {
        char buf[512];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        fprintf(stderr, "[%6.1fs] %-9s %s\n", elapsed(), c->stage ?: "", buf);
        if (c->log_fd >= 0)
                (void) dprintf(c->log_fd, "==> [%s] %s\n", c->stage ?: "", buf);
}

/* Show what a long-running tool is doing: every few seconds, the last line it
 * wrote to the build log. */
static void show_log_tail(BuildContext *c) {
        char buf[4096];
        struct stat st;

        if (c->log_fd < 0 || fstat(c->log_fd, &st) < 0 || st.st_size == 0)
                return;
        off_t from = st.st_size > (off_t) sizeof(buf) - 1 ? st.st_size - (off_t) sizeof(buf) + 1 : 0;
        ssize_t n = pread(c->log_fd, buf, sizeof(buf) - 1, from);
        if (n <= 0)
                return;
        buf[n] = '\0';
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                buf[--n] = '\0';
        char *last = strrchr(buf, '\n');
        last = last ? last + 1 : buf;
        /* Tools that redraw a status line leave \r and escape sequences. */
        for (char *p; (p = strchr(last, '\r')) && p[1];)
                last = p + 1;
        for (char *p; (p = strstr(last, "\x1b[K")) && p[3];)
                last = p + 3;
        for (char *p = last; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = ' ';
        if (*last)
                fprintf(stderr, "[%6.1fs] %-9s   ... %.100s\n", elapsed(), c->stage ?: "", last);
}

static int wait_with_progress(BuildContext *c, pid_t pid) {
        int status;
        unsigned ticks = 0;

        for (;;) {
                pid_t p = waitpid(pid, &status, WNOHANG);
                if (p < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (p == pid)
                        break;
                (void) usleep(200 * 1000);
                if (++ticks % 50 == 0) /* every 10 s */
                        show_log_tail(c);
        }
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static _noreturn_ void exec_child(BuildContext *c, char * const *argv, char * const *env) {
        if (c->log_fd >= 0) {
                (void) dup2(c->log_fd, STDOUT_FILENO);
                (void) dup2(c->log_fd, STDERR_FILENO);
        }
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null >= 0)
                (void) dup2(null, STDIN_FILENO);
        for (char * const *e = env; e && *e; e++)
                (void) putenv(*e);
        (void) signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        dprintf(STDERR_FILENO, "Failed to execute '%s': %s\n", argv[0], strerror(errno));
        _exit(127);
}

static void log_command(BuildContext *c, const char *where, char * const *argv) {
        if (c->log_fd < 0)
                return;
        (void) dprintf(c->log_fd, "+ %s", where);
        for (char * const *a = argv; *a; a++)
                (void) dprintf(c->log_fd, " %s", *a);
        (void) dprintf(c->log_fd, "\n");
}

static int host_run_env(BuildContext *c, char * const *argv, char * const *env) {
        log_command(c, "", argv);
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                exec_child(c, argv, env);
        return wait_with_progress(c, pid);
}

int build_host_run(BuildContext *c, char * const *argv) {
        return host_run_env(c, argv, NULL);
}

static int mount_in_root(const char *root, const char *what, const char *where, const char *type, unsigned long flags) {
        _cleanup_free_ char *p = path_join(root, where);
        if (!p)
                return -ENOMEM;
        (void) mkdir(p, 0755);
        return mount(what, p, type, flags, NULL) < 0 ? -errno : 0;
}

int build_chroot_run(BuildContext *c, char * const *argv, char * const *env) {
        log_command(c, "chroot", argv);
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* A private mount namespace: the API file systems mounted
                 * here vanish with this process, whatever the tool does. */
                if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
                    mount_in_root(c->root, "proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0 ||
                    mount_in_root(c->root, "sysfs", "sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY) < 0 ||
                    mount_in_root(c->root, "/dev", "dev", NULL, MS_BIND | MS_REC) < 0 ||
                    mount_in_root(c->root, "tmpfs", "run", "tmpfs", MS_NOSUID | MS_NODEV) < 0) {
                        dprintf(c->log_fd, "Failed to set up the build chroot: %s\n", strerror(errno));
                        _exit(127);
                }
                for (char **b = c->chroot_binds; b && b[0] && b[1]; b += 2) {
                        _cleanup_free_ char *where = path_join(c->root, b[1]);
                        if (!where || mkdir_p(where, 0755) < 0 || mount(b[0], where, NULL, MS_BIND | MS_REC, NULL) < 0 ||
                            mount(NULL, where, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0) {
                                dprintf(c->log_fd, "Failed to bind-mount '%s' into the build chroot: %s\n", b[0],
                                        strerror(errno));
                                _exit(127);
                        }
                }
                if (chroot(c->root) < 0 || chdir("/") < 0) {
                        dprintf(c->log_fd, "Failed to chroot into '%s': %s\n", c->root, strerror(errno));
                        _exit(127);
                }
                (void) setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
                (void) setenv("HOME", "/root", 1);
                exec_child(c, argv, env);
        }
        return wait_with_progress(c, pid);
}

int build_cache_key(const char *const *parts, char ret[static 65]) {
        uint8_t md[32];
        unsigned mdlen = 0;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        int ok;

        if (!ctx)
                return -ENOMEM;
        ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        /* Length-prefixed, so that ("ab","c") and ("a","bc") differ. */
        for (const char *const *p = parts; ok && *p; p++) {
                uint64_t l = strlen(*p);
                ok = EVP_DigestUpdate(ctx, &l, sizeof(l)) && EVP_DigestUpdate(ctx, *p, l);
        }
        ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen);
        EVP_MD_CTX_free(ctx);
        if (!ok || mdlen != 32)
                return -EIO;
        hex_encode(md, 32, ret);
        return 0;
}

static int tar_extract(BuildContext *c, const char *tarball) {
        char *argv[] = { (char *) "tar", (char *) "--numeric-owner", (char *) "--xattrs", (char *) "--xattrs-include=*",
                         (char *) "-xpf", (char *) tarball, (char *) "-C", c->root, NULL };
        int r = build_host_run(c, argv);
        return r == 0 ? 0 : log_error_errno(r < 0 ? r : EPROTO, "Failed to unpack '%s'", tarball);
}

static int tar_create(BuildContext *c, const char *tarball) {
        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s.tmp", tarball) < 0)
                return -ENOMEM;
        char *argv[] = { (char *) "tar", (char *) "--numeric-owner", (char *) "--xattrs", (char *) "--xattrs-include=*",
                         (char *) "-cf", tmp, (char *) "-C", c->root, (char *) ".", NULL };
        int r = build_host_run(c, argv);
        if (r != 0) {
                (void) unlink(tmp);
                return log_error_errno(r < 0 ? r : EPROTO, "Failed to write cache '%s'", tarball);
        }
        if (rename(tmp, tarball) < 0)
                return log_error_errno(errno, "Failed to store cache '%s': %m", tarball);
        return 0;
}

int build_resolve_source(BuildContext *c, const char *rel, char **ret) {
        char *p = rel[0] == '/' ? strdup(rel) : path_join(c->spec->base_dir, rel);
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

/* Append file contents to a cache key, so that editing a hook invalidates the
 * layers it ran in. */
static int hook_digests(BuildContext *c, HookStage st, char ***parts) {
        for (char **h = c->spec->hooks[st]; h && *h; h++) {
                _cleanup_free_ char *path = NULL, *data = NULL;
                size_t sz;
                int r = build_resolve_source(c, *h, &path);
                if (r < 0)
                        return r;
                r = read_full_file(path, 16 << 20, &data, &sz);
                if (r < 0)
                        return log_error_errno(r, "Failed to read %s hook '%s': %m", hook_stage_to_string(st), path);
                if (!(*parts = strv_append(*parts, *h)) || !(*parts = strv_append(*parts, data)))
                        return -ENOMEM;
        }
        return 0;
}

static int run_hooks(BuildContext *c, HookStage st) {
        char **hooks = c->spec->hooks[st];
        int r;

        for (size_t i = 0; hooks && hooks[i]; i++) {
                _cleanup_free_ char *src = NULL, *data = NULL, *dest = path_join(c->root, "tmp/hull-hook");
                _cleanup_free_ char *e_stage = NULL, *e_name = NULL, *e_version = NULL;
                size_t sz;

                if (!dest)
                        return -ENOMEM;
                r = build_resolve_source(c, hooks[i], &src);
                if (r < 0)
                        return r;
                r = read_full_file(src, 16 << 20, &data, &sz);
                if (r < 0)
                        return log_error_errno(r, "Failed to read %s hook '%s': %m", hook_stage_to_string(st), src);
                r = write_file_atomic(dest, data, sz, 0755);
                if (r < 0)
                        return log_error_errno(r, "Failed to copy hook into the image: %m");

                build_progress(c, "running %s hook %s", hook_stage_to_string(st), hooks[i]);
                if (asprintf(&e_stage, "HULL_STAGE=%s", hook_stage_to_string(st)) < 0 ||
                    asprintf(&e_name, "HULL_IMAGE_NAME=%s", c->spec->name) < 0 ||
                    asprintf(&e_version, "HULL_IMAGE_VERSION=%s", c->spec->version) < 0)
                        return -ENOMEM;
                char *env[] = { e_stage, e_name, e_version, (char *) "DEBIAN_FRONTEND=noninteractive", NULL };
                char *argv[] = { (char *) "/tmp/hull-hook", NULL };
                r = build_chroot_run(c, argv, env);
                (void) unlink(dest);
                if (r != 0)
                        return log_error_errno(r < 0 ? r : EPROTO, "%s hook '%s' failed%s%d", hook_stage_to_string(st),
                                               hooks[i], r > 0 ? " with exit status " : "", r > 0 ? r : 0);
        }
        return 0;
}

/* The packages layer depends on every repository entry and on its key: a
 * new key or another URI must rebuild it, not reuse what the old one let in.
 * Only specs with repositories get these parts, so other layers keep their
 * cache keys. */
static int repository_digests(BuildContext *c, char ***parts) {
        for (size_t i = 0; i < c->spec->n_repositories; i++) {
                const SpecRepository *r = &c->spec->repositories[i];
                char *const *lists[] = { r->uris, r->suites, r->components };
                char pin[32], key_hash[65];
                uint8_t md[32];
                unsigned mdlen = 0;

                if (!r->key_data)
                        return log_error_errno(ENOKEY, "Repository '%s': its key '%s' was not loaded", r->name,
                                               r->signed_by);
                if (!EVP_Digest(r->key_data, r->key_size, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
                        return -EIO;
                hex_encode(md, 32, key_hash);
                (void) snprintf(pin, sizeof(pin), "%s%d", r->has_pin ? "pin=" : "nopin", r->has_pin ? r->pin : 0);
                if (!(*parts = strv_append(*parts, "repository")) || !(*parts = strv_append(*parts, r->name)))
                        return -ENOMEM;
                for (size_t l = 0; l < ELEMENTSOF(lists); l++) {
                        char n[32];
                        (void) snprintf(n, sizeof(n), "%zu", strv_length(lists[l]));
                        if (!(*parts = strv_append(*parts, n)))
                                return -ENOMEM;
                        for (char *const *x = lists[l]; x && *x; x++)
                                if (!(*parts = strv_append(*parts, *x)))
                                        return -ENOMEM;
                }
                if (!(*parts = strv_append(*parts, pin)) || !(*parts = strv_append(*parts, key_hash)) ||
                    !(*parts = strv_append(*parts, r->key_armored ? "armored" : "binary")))
                        return -ENOMEM;
        }
        return 0;
}

static int stage_bootstrap_and_packages(BuildContext *c, const DistroBackend *be) {
        _cleanup_strv_free_ char **parts = NULL;
        _cleanup_free_ char *boot_tar = NULL, *pkg_tar = NULL;
        char boot_key[65], pkg_key[65];
        int r;

        /* Layer 1: the base system. */
        const char *fields[] = { "hull-bootstrap-v2", c->spec->backend, c->spec->suite, c->spec->mirror, c->spec->variant, c->spec->arch };
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                if (!(parts = strv_append(parts, fields[i])))
                        return -ENOMEM;
        for (char **p = c->spec->components; p && *p; p++)
                if (!(parts = strv_append(parts, *p)))
                        return -ENOMEM;
        for (const char *const *p = be->base_packages; *p; p++)
                if (!(parts = strv_append(parts, *p)))
                        return -ENOMEM;
        r = build_cache_key((const char *const *) parts, boot_key);
        if (r < 0)
                return r;

        /* Layer 2: post-bootstrap hooks and the spec's packages. */
        strv_free(parts);
        parts = NULL;
        if (!(parts = strv_append(parts, "hull-packages-v1")) || !(parts = strv_append(parts, boot_key)))
                return -ENOMEM;
        for (char **p = c->spec->packages; p && *p; p++)
                if (!(parts = strv_append(parts, *p)))
                        return -ENOMEM;
        if (c->spec->kubernetes.enabled)
                for (const char *const *p = build_kubernetes_packages; *p; p++)
                        if (!(parts = strv_append(parts, *p)))
                                return -ENOMEM;
        /* veritysetup, for the initramfs: only images with dm-verity carry
         * it (and its six libraries), and they still share the base layer. */
        if (c->spec->verity && !(parts = strv_append(parts, "cryptsetup-bin")))
                return -ENOMEM;
        if (c->spec->kubernetes.kubelet_source == KUBELET_SOURCE_DEB &&
            (!(parts = strv_append(parts, "kubelet-deb")) || !(parts = strv_append(parts, c->spec->kubernetes.kubelet_sha256))))
                return -ENOMEM;
        r = hook_digests(c, HOOK_POST_BOOTSTRAP, &parts);
        if (r < 0)
                return r;
        r = repository_digests(c, &parts);
        if (r < 0)
                return r;
        r = build_cache_key((const char *const *) parts, pkg_key);
        if (r < 0)
                return r;

        if (asprintf(&boot_tar, "%s/bootstrap-%.16s.tar", c->cache_dir, boot_key) < 0 ||
            asprintf(&pkg_tar, "%s/packages-%.16s.tar", c->cache_dir, pkg_key) < 0)
                return -ENOMEM;

        c->stage = "bootstrap";
        if (!c->no_cache && access(pkg_tar, R_OK) == 0) {
                build_progress(c, "reusing cached base and packages layer %s", pkg_tar);
                c->stage = "packages";
                return tar_extract(c, pkg_tar);
        }

        if (!c->no_cache && access(boot_tar, R_OK) == 0)
                build_progress(c, "reusing cached base system %s", boot_tar);
        else {
                _cleanup_free_ char *tmp = NULL;
                if (asprintf(&tmp, "%s.tmp", boot_tar) < 0)
                        return -ENOMEM;
                build_progress(c, "%s %s from %s with %s (this downloads packages)", be->name, c->spec->suite,
                               c->spec->mirror, "mmdebstrap");
                r = be->bootstrap(c, tmp);
                if (r < 0) {
                        (void) unlink(tmp);
                        return r;
                }
                if (rename(tmp, boot_tar) < 0)
                        return log_error_errno(errno, "Failed to store '%s': %m", boot_tar);
        }
        r = tar_extract(c, boot_tar);
        if (r < 0)
                return r;
        r = run_hooks(c, HOOK_POST_BOOTSTRAP);
        if (r < 0)
                return r;

        c->stage = "packages";
        _cleanup_strv_free_ char **install = NULL;
        _cleanup_free_ char *deb = NULL;
        for (char **p = c->spec->packages; p && *p; p++)
                if (!(install = strv_append(install, *p)))
                        return -ENOMEM;
        if (c->spec->kubernetes.enabled)
                for (const char *const *p = build_kubernetes_packages; *p; p++)
                        if (!strv_contains(install, *p) && !(install = strv_append(install, *p)))
                                return -ENOMEM;
        if (c->spec->verity && !strv_contains(install, "cryptsetup-bin") &&
            !(install = strv_append(install, "cryptsetup-bin")))
                return -ENOMEM;
        r = build_kubernetes_stage_deb(c, &deb);
        if (r < 0)
                return r;
        if (deb) {
                /* apt installs a local .deb given as a path, with its dependencies from the suite. */
                _cleanup_free_ char *arg = NULL;
                if (asprintf(&arg, "/%s", deb) < 0 || !(install = strv_append(install, arg)))
                        return -ENOMEM;
        }
        build_progress(c, "installing %zu package(s)", strv_length(install));
        r = be->install(c, install);
        if (deb) {
                _cleanup_free_ char *p = path_join(c->root, deb);
                if (p)
                        (void) unlink(p);
        }
        if (r < 0)
                return r;
        if (c->no_cache)
                return 0;
        build_progress(c, "saving layer to cache");
        return tar_create(c, pkg_tar);
}

int build_root_path(BuildContext *c, const char *rel, char **ret) {
        _cleanup_free_ char *p = path_join(c->root, rel), *dir = NULL;
        int r;

        if (!p || !(dir = strdup(p)))
                return -ENOMEM;
        *strrchr(dir, '/') = '\0';
        r = mkdir_p(dir, 0755);
        if (r < 0)
                return log_error_errno(r, "Failed to create '%s': %m", dir);
        *ret = TAKE_PTR(p);
        return 0;
}

static int write_replacing(const char *p, const char *rel, const void *data, size_t size, mode_t mode) {
        (void) unlink(p); /* may be a symlink into the host-side tree */
        int r = write_file_atomic(p, data, size, mode);
        return r < 0 ? log_error_errno(r, "Failed to write '%s' in the image: %m", rel) : 0;
}

int build_write_in_root(BuildContext *c, const char *rel, const char *content, mode_t mode) {
        _cleanup_free_ char *p = NULL;
        int r = build_root_path(c, rel, &p);
        return r < 0 ? r : write_replacing(p, rel, content, strlen(content), mode);
}

int build_copy_into_root(BuildContext *c, const char *src, const char *rel, mode_t mode) {
        _cleanup_free_ char *data = NULL, *p = NULL;
        size_t sz;
        int r = read_full_file(src, 256 << 20, &data, &sz);
        if (r < 0)
                return log_error_errno(r, "Failed to read '%s': %m", src);
        r = build_root_path(c, rel, &p);
        return r < 0 ? r : write_replacing(p, rel, data, sz, mode);
}

int build_install_data(BuildContext *c, const char *data_rel, const char *rel, mode_t mode) {
        _cleanup_free_ char *src = path_join(c->data_dir, data_rel);
        if (!src)
                return -ENOMEM;
        return build_copy_into_root(c, src, rel, mode);
}

/* The one kernel's version: the one directory below /usr/lib/modules. 1
 * and *ret_kver when there is one, 0 when there is none, an error when there
 * are several. */
int build_find_kernel(BuildContext *c, char **ret_kver) {
        _cleanup_free_ char *dir = path_join(c->root, "usr/lib/modules");
        char *found = NULL;
        struct dirent *de;
        DIR *d;

        if (!dir)
                return -ENOMEM;
        d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : log_error_errno(errno, "Cannot open '%s': %m", dir);
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                if (found) {
                        free(found);
                        closedir(d);
                        return log_error_errno(EEXIST, "The image contains more than one kernel; keep exactly one");
                }
                if (!(found = strdup(de->d_name))) {
                        closedir(d);
                        return -ENOMEM;
                }
        }
        closedir(d);
        *ret_kver = found;
        return found ? 1 : 0;
}

/* programs_dir is a ':'-separated search path (the build tree keeps each
 * program in its own directory). */
int build_find_program(BuildContext *c, const char *name, char **ret) {
        _cleanup_free_ char *dirs = strdup(c->programs_dir);
        char *save = NULL;

        if (!dirs)
                return -ENOMEM;
        for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
                _cleanup_free_ char *p = path_join(d, name);
                if (!p)
                        return -ENOMEM;
                if (access(p, X_OK) == 0) {
                        *ret = TAKE_PTR(p);
                        return 0;
                }
        }
        return -ENOENT;
}

/* Units Hull enables in every image that has them, on top of what the spec
 * enables (docs/SPEC.md, "units"). */
static const char *const hull_enabled_units[] = {
        "hull-agent.service", "hull-ready.service", "hull-boot-report.service", "hull-provision-check.service",
        /* the local console stays a way in when the network is gone */
        "getty@.service",
        "remote-fs.target",
        /* networking, from the provisioning config's networks or ip= */
        "systemd-networkd.service", "systemd-network-generator.service", "systemd-resolved.service",
        /* time, without which certificates and bundles' signatures fail */
        "systemd-timesyncd.service",
        "systemd-pstore.service", "fstrim.timer",
};

static const char *const kubernetes_enabled_units[] = {
        "containerd.service",
        "kubelet.service",
};

static bool unit_file_in_root(BuildContext *c, const char *unit) {
        static const char *const dirs[] = { "usr/lib/systemd/system", "etc/systemd/system" };
        _cleanup_free_ char *tmpl = NULL;
        const char *at = strchr(unit, '@'), *dot = strrchr(unit, '.');

        /* an instance is there when its template is */
        if (at && dot && at + 1 < dot && asprintf(&tmpl, "%.*s%s", (int) (at - unit + 1), unit, dot) < 0)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *d = path_join(c->root, dirs[i]), *p = NULL;
                if (!d || !(p = path_join(d, tmpl ?: unit)))
                        return false;
                if (access(p, F_OK) == 0)
                        return true;
        }
        return false;
}

static int systemctl_in_root(BuildContext *c, const char *verb, const char *unit) {
        _cleanup_free_ char *root_arg = NULL;
        if (asprintf(&root_arg, "--root=%s", c->root) < 0)
                return -ENOMEM;
        char *argv[] = { (char *) "systemctl", root_arg, (char *) "--quiet", (char *) verb, (char *) unit, NULL };
        return build_host_run(c, argv);
}

/* What no node needs, also when a package enabled it statically (a
 * symlink in /usr/lib, which preset-all does not touch): masked, whether
 * the image has the unit or not, so that a package added later cannot
 * bring it back. tty1's getty and logind's reserved VT are made
 * conditional instead: a server with a display keeps its login prompt. */
static int stage_default_off_units(BuildContext *c) {
        _cleanup_free_ char *present = NULL;
        size_t present_size = 0;
        int r;

        FILE *f = open_memstream(&present, &present_size);
        if (!f)
                return -ENOMEM;
        for (const char *const *u = spec_default_off_units; *u; u++) {
                if (strv_contains(c->spec->units_keep, *u))
                        continue;
                if (unit_file_in_root(c, *u))
                        fprintf(f, " %s", *u);
                if (streq(*u, "getty@tty1.service"))
                        r = build_write_in_root(c, "usr/lib/systemd/system/getty@tty1.service.d/hull-headless.conf",
                                                "# Hull (hull-build): a login prompt on tty1 only where there is a "
                                                "display.\n# units.keep: [getty@tty1.service] in the spec drops "
                                                "this (docs/SPEC.md).\n[Unit]\nConditionPathExists=/dev/fb0\n",
                                                0644);
                else if (streq(*u, "autovt@tty6.service"))
                        r = build_write_in_root(c, "usr/lib/systemd/logind.conf.d/10-hull.conf",
                                                "# Hull (hull-build): no getty held in reserve on tty6; one still "
                                                "starts on a switch to a VT.\n# units.keep: [autovt@tty6.service] in "
                                                "the spec drops this (docs/SPEC.md).\n[Login]\nReserveVT=0\n",
                                                0644);
                else {
                        r = systemctl_in_root(c, "mask", *u);
                        if (r > 0)
                                r = log_error_errno(EPROTO, "systemctl cannot mask '%s' in the image", *u);
                }
                if (r < 0) {
                        fclose(f);
                        return r;
                }
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        build_progress(c, "units: turned off what a node never needs (units.keep leaves one on):%s",
                       isempty(present) ? " nothing of it is installed" : present);
        return 0;
}

/* Which units run on a node is decided here, not by what packages enabled
 * when they were installed, nor by systemd's first-boot presets (Debian's
 * default is "enable", which would start the CNI DHCP daemon,
 * systemd-sysext, apt timers in an image without apt...). One preset file,
 * read before Debian's, lists what Hull and the spec enable and ends in
 * "disable *"; preset-all applies it to the tree now, and systemd's own
 * first-boot pass (enable-only) then finds nothing more to enable. */
static int stage_units(BuildContext *c) {
        _cleanup_free_ char *text = NULL;
        size_t text_size = 0;
        int r;

        FILE *f = open_memstream(&text, &text_size);
        if (!f)
                return -ENOMEM;
        fputs("# Hull (hull-build): the units that run on a node. Read before the distribution's presets;\n"
              "# whatever is not enabled here stays off, also on a node's first boot (docs/SPEC.md, units).\n",
              f);
        for (size_t i = 0; i < ELEMENTSOF(hull_enabled_units); i++)
                fprintf(f, "enable %s\n", hull_enabled_units[i]);
        if (c->spec->kubernetes.enabled)
                for (size_t i = 0; i < ELEMENTSOF(kubernetes_enabled_units); i++)
                        fprintf(f, "enable %s\n", kubernetes_enabled_units[i]);
        if (c->spec->n_images > 0)
                fputs("enable hull-images.service\n", f);
        if (c->spec->units_enable)
                fputs("# the spec's units.enable\n", f);
        for (char **u = c->spec->units_enable; u && *u; u++) {
                const char *at = strchr(*u, '@'), *dot = strrchr(*u, '.');
                if (at && dot && at + 1 < dot) /* an instance: "enable TEMPLATE INSTANCE" */
                        fprintf(f, "enable %.*s%s %.*s\n", (int) (at - *u + 1), *u, dot, (int) (dot - at - 1), at + 1);
                else
                        fprintf(f, "enable %s\n", *u);
        }
        fputs("# off unless a node's provisioning config turns it on (ssh.enabled)\n"
              "disable ssh.service\n"
              "disable ssh.socket\n"
              "disable *\n",
              f);
        if (fclose(f) != 0 || !text)
                return -ENOMEM;
        r = build_write_in_root(c, "usr/lib/systemd/system-preset/10-hull.preset", text, 0644);
        if (r < 0)
                return r;

        _cleanup_free_ char *root_arg = NULL;
        if (asprintf(&root_arg, "--root=%s", c->root) < 0)
                return -ENOMEM;
        char *preset[] = { (char *) "systemctl", root_arg, (char *) "--quiet", (char *) "--preset-mode=full",
                           (char *) "preset-all", NULL };
        r = build_host_run(c, preset);
        if (r != 0)
                return log_error_errno(r < 0 ? r : EPROTO, "systemctl preset-all failed in the image (see the log)");

        for (char **u = c->spec->units_enable; u && *u; u++) {
                if (!unit_file_in_root(c, *u))
                        return log_error_errno(ENOENT, "units.enable: the image has no unit '%s' (no package or file "
                                                       "of the spec installs it)",
                                               *u);
                r = systemctl_in_root(c, "enable", *u);
                if (r != 0)
                        return log_error_errno(r < 0 ? r : EPROTO,
                                               "units.enable: systemctl cannot enable '%s' (does it have an [Install] "
                                               "section?)",
                                               *u);
        }
        for (char **u = c->spec->units_mask; u && *u; u++) {
                r = systemctl_in_root(c, "mask", *u);
                if (r != 0)
                        return log_error_errno(r < 0 ? r : EPROTO, "units.mask: systemctl cannot mask '%s'", *u);
        }
        r = stage_default_off_units(c);
        if (r < 0)
                return r;
        build_progress(c, "units: %zu enabled by the spec, %zu masked, everything else off unless Hull enables it",
                       strv_length(c->spec->units_enable), strv_length(c->spec->units_mask));
        return 0;
}

static int stage_customise(BuildContext *c) {
        int r;

        c->stage = "customise";
        r = run_hooks(c, HOOK_POST_PACKAGES);
        if (r < 0)
                return r;

        for (size_t i = 0; i < c->spec->n_files; i++) {
                const SpecFile *f = &c->spec->files[i];
                _cleanup_free_ char *src = NULL;
                struct stat st;

                r = build_resolve_source(c, f->source, &src);
                if (r < 0)
                        return r;
                if (stat(src, &st) < 0)
                        return log_error_errno(errno, "files: cannot read source '%s' for '%s': %m", src, f->path);
                if (!S_ISREG(st.st_mode))
                        return log_error_errno(EISDIR, "files: source '%s' for '%s' is not a regular file", src, f->path);
                r = build_copy_into_root(c, src, f->path + 1, f->mode);
                if (r < 0)
                        return r;
                if (f->owner || f->group) {
                        _cleanup_free_ char *spec = NULL;
                        if (asprintf(&spec, "%s:%s", f->owner ?: "root", f->group ?: "") < 0)
                                return -ENOMEM;
                        if (!f->group)
                                spec[strlen(spec) - 1] = '\0';
                        char *argv[] = { (char *) "chown", spec, f->path, NULL };
                        r = build_chroot_run(c, argv, NULL);
                        if (r != 0)
                                return log_error_errno(r < 0 ? r : EINVAL,
                                                       "files: cannot set owner '%s' on '%s' (does the user or group exist in the image?)",
                                                       spec, f->path);
                }
        }
        build_progress(c, "copied %zu file(s) from the spec", c->spec->n_files);

        /* Hull's own programs: early boot, the node agent and its CLI. */
        static const struct {
                const char *name, *dest;
        } programs[] = {
                { "hull-init", "usr/lib/hull/hull-init" },
                { "hull-agent", "usr/lib/hull/hull-agent" },
                { "hullctl", "usr/bin/hullctl" },
                /* First boot: applies the machine config (docs/PROVISION.md). */
                { "hull-provision", "usr/lib/hull/hull-provision" },
                /* The installer: the image's own root, booted from an installer medium, writes itself. */
                { "hull-install", "usr/lib/hull/hull-install" },
        };
        for (size_t i = 0; i < ELEMENTSOF(programs); i++) {
                _cleanup_free_ char *src = NULL;
                r = build_find_program(c, programs[i].name, &src);
                if (r < 0)
                        return log_error_errno(r, "Cannot find Hull's program '%s' in %s (use --programs-dir): %m",
                                               programs[i].name, c->programs_dir);
                r = build_copy_into_root(c, src, programs[i].dest, 0755);
                if (r < 0)
                        return r;
        }
        r = build_install_data(c, "hull-agent.service", "usr/lib/systemd/system/hull-agent.service", 0644);
        if (r < 0)
                return r;
        _cleanup_free_ char *health = path_join(c->root, "usr/lib/hull/health.d"),
                            *check = path_join(c->data_dir, "health.d/50-containerd");
        if (!health || !check)
                return -ENOMEM;
        r = mkdir_p(health, 0755);
        if (r < 0)
                return r;
        /* The default checks; images add their own next to them. */
        r = build_copy_into_root(c, check, "usr/lib/hull/health.d/50-containerd", 0755);
        if (r < 0)
                return r;
        r = build_install_data(c, "hull-ready.service", "usr/lib/systemd/system/hull-ready.service", 0644);
        if (r >= 0)
                r = build_install_data(c, "hull-ready", "usr/lib/hull/hull-ready", 0755);
        if (r >= 0)
                r = build_install_data(c, "hull-boot-report.service", "usr/lib/systemd/system/hull-boot-report.service",
                                       0644);
        if (r >= 0)
                r = build_install_data(c, "hull-boot-report", "usr/lib/hull/hull-boot-report", 0755);
        if (r < 0)
                return r;
        _cleanup_free_ char *wants = path_join(c->root, "etc/systemd/system/multi-user.target.wants");
        if (!wants)
                return -ENOMEM;
        r = mkdir_p(wants, 0755);
        if (r < 0)
                return r;
        static const char *const enable[] = { "hull-ready.service", "hull-agent.service", "hull-boot-report.service",
                                              "hull-provision-check.service" };
        for (size_t i = 0; i < ELEMENTSOF(enable); i++) {
                _cleanup_free_ char *link = path_join(wants, enable[i]), *target = NULL;
                if (!link || asprintf(&target, "/usr/lib/systemd/system/%s", enable[i]) < 0)
                        return -ENOMEM;
                (void) unlink(link);
                if (symlink(target, link) < 0)
                        return log_error_errno(errno, "Failed to enable %s: %m", enable[i]);
        }

        /* sshd stays off unless a node's provisioning config turns it on
         * (ssh.enabled, docs/PROVISION.md): openssh-server's package
         * enables it on installation; stage_units() disables it by preset
         * too. A pre-seal hook may still turn it on for every node,
         * deliberately. */
        static const char *const sshd_links[] = { "etc/systemd/system/multi-user.target.wants/ssh.service",
                                                  "etc/systemd/system/sockets.target.wants/ssh.socket",
                                                  /* an alias counts as enabled for systemctl */
                                                  "etc/systemd/system/sshd.service" };
        for (size_t i = 0; i < ELEMENTSOF(sshd_links); i++) {
                _cleanup_free_ char *l = path_join(c->root, sshd_links[i]);
                if (!l)
                        return -ENOMEM;
                if (unlink(l) >= 0)
                        build_progress(c, "sshd off by default: %s disabled (ssh.enabled in the provisioning config turns it on)",
                                       strrchr(sshd_links[i], '/') + 1);
        }

        /* Hull's groups, in the image's own /etc/group (hull-agent's
         * socket group must exist when it starts) and as sysusers.d, the
         * image's systemd-sysusers making them again should /etc lose them. */
        r = build_install_data(c, "hull.sysusers", "usr/lib/sysusers.d/hull.conf", 0644);
        if (r < 0)
                return r;
        char *sysusers_argv[] = { (char *) "systemd-sysusers", (char *) "/usr/lib/sysusers.d/hull.conf", NULL };
        r = build_chroot_run(c, sysusers_argv, NULL);
        if (r != 0)
                return log_error_errno(r < 0 ? r : EPROTO, "systemd-sysusers failed in the image%s",
                                       r > 0 ? " (see the log)" : ": %m");

        /* hull-provision.service is required by sysinit.target, in the
         * image's own unit directory: a config that fails stops first boot
         * (docs/PROVISION.md), and no /etc change can unhook it. */
        _cleanup_free_ char *requires = path_join(c->root, "usr/lib/systemd/system/sysinit.target.requires"),
                            *prov_link = NULL;
        if (!requires || asprintf(&prov_link, "%s/hull-provision.service", requires) < 0)
                return -ENOMEM;
        r = build_install_data(c, "hull-provision.service", "usr/lib/systemd/system/hull-provision.service", 0644);
        if (r >= 0)
                r = build_install_data(c, "hull-provision-check.service",
                                       "usr/lib/systemd/system/hull-provision-check.service", 0644);
        if (r >= 0)
                r = mkdir_p(requires, 0755);
        if (r < 0)
                return r;
        (void) unlink(prov_link);
        if (symlink("../hull-provision.service", prov_link) < 0)
                return log_error_errno(errno, "Failed to enable hull-provision.service: %m");

        /* Trusted update keys: the build key and any extra ones. */
        _cleanup_free_ char *keydir = path_join(c->root, "usr/share/hull/keys"), *keyfile = NULL;
        if (!keydir)
                return -ENOMEM;
        r = mkdir_p(keydir, 0755);
        if (r < 0)
                return r;
        if (asprintf(&keyfile, "%s/%s.pem", keydir, key_id(c->key)) < 0)
                return -ENOMEM;
        r = key_save_public(c->key, keyfile);
        if (r < 0 && r != -EEXIST)
                return log_error_errno(r, "Failed to install the public key into the image: %m");
        for (char **k = c->trusted_keys; k && *k; k++) {
                _cleanup_(key_freep) HullKey *pk = NULL;
                _cleanup_free_ char *dest = NULL;
                r = key_load_public(*k, &pk);
                if (r < 0)
                        return log_error_errno(r, "Failed to load trusted key '%s': %m", *k);
                if (asprintf(&dest, "usr/share/hull/keys/%s.pem", key_id(pk)) < 0)
                        return -ENOMEM;
                r = build_copy_into_root(c, *k, dest, 0644);
                if (r < 0)
                        return r;
        }

        /* Identity of the image, for the agent and for humans. */
        _cleanup_free_ char *osrel = NULL;
        if (asprintf(&osrel,
                     "PRETTY_NAME=\"Hull %s %s (Debian %s)\"\n"
                     "NAME=\"Hull\"\n"
                     "ID=hull\n"
                     "ID_LIKE=debian\n"
                     "VERSION_ID=\"%s\"\n"
                     "IMAGE_ID=%s\n"
                     "IMAGE_VERSION=%s\n"
                     "VARIANT_ID=%s\n",
                     c->spec->name, c->spec->version, c->spec->suite, c->spec->version, c->spec->name, c->spec->version,
                     rootfs_type_to_string(c->spec->rootfs_type)) < 0)
                return -ENOMEM;
        r = build_write_in_root(c, "usr/lib/os-release", osrel, 0644);
        if (r < 0)
                return r;

        /* The read-only root needs its mount points in place; hull-init
         * cannot create them at boot. */
        _cleanup_free_ char *persist = path_join(c->root, "persist");
        if (!persist)
                return -ENOMEM;
        r = mkdir_p(persist, 0755);
        if (r < 0)
                return r;

        r = build_write_in_root(c, "etc/fstab", "# Hull: the root, /persist, /etc, /var, /home and /root are mounted by hull-init.\n",
                          0644);
        if (r < 0)
                return r;
        _cleanup_free_ char *issue = NULL;
        if (asprintf(&issue, "Hull %s %s \\n \\l\n\n", c->spec->name, c->spec->version) < 0)
                return -ENOMEM;
        r = build_write_in_root(c, "etc/issue", issue, 0644);
        if (r < 0)
                return r;
        /* No host name in the image: every node would share it (and
         * register as one Node). hull-provision writes the configured one,
         * or makes one unique to the machine (docs/PROVISION.md). */
        _cleanup_free_ char *hostname = path_join(c->root, "etc/hostname");
        if (!hostname)
                return -ENOMEM;
        if (unlink(hostname) < 0 && errno != ENOENT)
                return log_error_errno(errno, "Failed to remove the build's /etc/hostname: %m");
        r = build_write_in_root(c, "etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", 0644);
        if (r < 0)
                return r;

        /* Never the build host's resolver: a copy left in the tree would
         * send every node's lookups to the build network. Images with
         * systemd-resolved get its file (build_kubernetes_wire() picks which). */
        _cleanup_free_ char *resolv = path_join(c->root, "etc/resolv.conf");
        struct stat rst;
        if (!resolv)
                return -ENOMEM;
        if (lstat(resolv, &rst) >= 0 && !S_ISLNK(rst.st_mode)) {
                r = build_write_in_root(c, "etc/resolv.conf",
                                        "# Hull: no resolver is configured in this image (add systemd-resolved, or a\n"
                                        "# provisioning config's files entry for /etc/resolv.conf).\n",
                                        0644);
                if (r < 0)
                        return r;
        }

        r = build_kubernetes_wire(c);
        if (r >= 0)
                r = build_images_install(c);
        if (r >= 0)
                r = stage_units(c);
        return r;
}

static int make_cmdline(BuildContext *c) {
        _cleanup_free_ char *s = NULL;

        /* panic=10: a kernel or initramfs that cannot mount the root reboots
         * instead of hanging, which lets GRUB's counting fall back. */
        if (asprintf(&s, "rootfstype=%s init=/usr/lib/hull/hull-init panic=10", rootfs_type_to_string(c->spec->rootfs_type)) < 0)
                return -ENOMEM;
        for (char **a = c->spec->cmdline; a && *a; a++) {
                char *n;
                if (asprintf(&n, "%s %s", s, *a) < 0)
                        return -ENOMEM;
                free(s);
                s = n;
        }
        if (c->verity_root_hash) {
                char *n;
                if (asprintf(&n, "%s root=/dev/mapper/hull-root hull.verity.roothash=%s hull.verity.hashoffset=%llu", s,
                             c->verity_root_hash, (unsigned long long) c->rootfs_fs_size) < 0)
                        return -ENOMEM;
                free(s);
                s = n;
        }
        c->cmdline = TAKE_PTR(s);
        return 0;
}

/* ---- reproducible images (docs/BUILDER.md, "Reproducible images") ------- */

/* SOURCE_DATE_EPOCH from the environment, checked before minutes of
 * bootstrap; an empty value counts as unset, as for other tools. */
static int epoch_from_environment(BuildContext *c) {
        const char *sde = getenv("SOURCE_DATE_EPOCH");
        uint64_t v;

        if (isempty(sde))
                return 0;
        /* The manifest's "created" has a four-digit year. */
        if (safe_atou64(sde, &v) < 0 || v > UINT64_C(253402300799))
                return log_error_errno(EINVAL,
                                       "SOURCE_DATE_EPOCH='%s' is not a number of seconds since 1970-01-01 (before the "
                                       "year 10000)",
                                       sde);
        c->source_date_epoch = v;
        c->source_date_epoch_given = true;
        return 0;
}

/* Without SOURCE_DATE_EPOCH the build dates itself by its newest package,
 * and exports the date to everything it runs after this point (hooks,
 * update-initramfs, mkfs), as if it had been given. */
static int pick_epoch(BuildContext *c, const DistroBackend *be) {
        char when[32], num[32];
        int r;

        c->stage = "customise";
        if (!c->source_date_epoch_given) {
                r = be->package_epoch(c, &c->source_date_epoch);
                if (r < 0)
                        return r;
        }
        (void) snprintf(num, sizeof(num), "%llu", (unsigned long long) c->source_date_epoch);
        if (setenv("SOURCE_DATE_EPOCH", num, 1) < 0)
                return -errno;
        time_t t = (time_t) c->source_date_epoch;
        (void) strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
        build_progress(c, "SOURCE_DATE_EPOCH=%s (%s), %s", num, when,
                       c->source_date_epoch_given ? "from the environment" : "the newest package's date");
        return 0;
}

/* Every time newer than the build's date becomes that date, so files made
 * during the build (by maintainer scripts, hooks, hull-build itself) look
 * the same in every build; older ones, the packages' files, keep theirs.
 * atime follows mtime, for ext4, which stores it. Takes ownership of dfd. */
static int clamp_times_at(int dfd, time_t epoch, unsigned depth) {
        DIR *d = fdopendir(dfd);
        struct dirent *de;
        int r = 0;

        if (!d) {
                r = -errno;
                (void) safe_close(dfd);
                return r;
        }
        while (r >= 0 && (de = readdir(d))) {
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = -errno;
                        break;
                }
                if (S_ISDIR(st.st_mode)) {
                        int sub = depth < 256 ? openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                                              : -ELOOP;
                        if (sub < 0) {
                                r = sub == -ELOOP ? -ELOOP : -errno;
                                break;
                        }
                        r = clamp_times_at(sub, epoch, depth + 1);
                        if (r < 0)
                                break;
                }
                struct timespec ts = st.st_mtim;
                if (ts.tv_sec > epoch || (ts.tv_sec == epoch && ts.tv_nsec > 0))
                        ts = (struct timespec) { .tv_sec = epoch };
                struct timespec times[2] = { ts, ts };
                if (utimensat(dirfd(d), de->d_name, times, AT_SYMLINK_NOFOLLOW) < 0)
                        r = -errno;
        }
        closedir(d);
        return r;
}

/* /etc/shadow's third field is the day of the last password change, which
 * useradd and systemd-sysusers set to the day they ran: clamp it like the
 * mtimes. "0" (change at next login) and empty fields stay. */
static int clamp_shadow(BuildContext *c, const char *rel) {
        _cleanup_free_ char *path = path_join(c->root, rel), *data = NULL, *out = NULL;
        size_t sz, out_size = 0;
        struct stat st;
        unsigned long long today = c->source_date_epoch / 86400;
        bool changed = false;
        int r;

        if (!path)
                return -ENOMEM;
        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : log_error_errno(errno, "Failed to read '%s': %m", path);
        if (!S_ISREG(st.st_mode))
                return 0;
        r = read_full_file(path, 16 << 20, &data, &sz);
        if (r < 0)
                return log_error_errno(r, "Failed to read '%s': %m", path);
        FILE *f = open_memstream(&out, &out_size);
        if (!f)
                return -ENOMEM;
        for (char *line = data, *next; line && line < data + sz; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                char *f1 = strchr(line, ':'), *f2 = f1 ? strchr(f1 + 1, ':') : NULL, *f3 = f2 ? strchr(f2 + 1, ':') : NULL;
                uint64_t day;
                if (f3) {
                        _cleanup_free_ char *field = strndup(f2 + 1, (size_t) (f3 - f2 - 1));
                        if (!field) {
                                fclose(f);
                                return -ENOMEM;
                        }
                        if (safe_atou64(field, &day) >= 0 && day > today) {
                                fprintf(f, "%.*s%llu%s\n", (int) (f2 + 1 - line), line, today, f3);
                                changed = true;
                                continue;
                        }
                }
                fprintf(f, "%s\n", line);
        }
        if (fclose(f) != 0 || !out)
                return -ENOMEM;
        if (!changed)
                return 0;
        r = write_file_atomic(path, out, out_size, st.st_mode & 07777);
        if (r < 0)
                return log_error_errno(r, "Failed to write '%s': %m", path);
        if (chown(path, st.st_uid, st.st_gid) < 0)
                return log_error_errno(errno, "Failed to restore the owner of '%s': %m", path);
        return 0;
}

/* What differs between two builds of the same inputs, removed or fixed
 * before the file system is made. */
static int normalise_tree(BuildContext *c) {
        /* ldconfig's cache of what it scanned: inode numbers and ctimes of
         * this build's tree (ld.so.cache itself is sorted and stays). */
        static const char *const volatile_files[] = { "var/cache/ldconfig/aux-cache", NULL };
        int r;

        for (const char *const *p = volatile_files; *p; p++) {
                _cleanup_free_ char *f = path_join(c->root, *p);
                if (!f)
                        return -ENOMEM;
                if (unlink(f) < 0 && errno != ENOENT)
                        return log_error_errno(errno, "Failed to remove '%s': %m", f);
        }
        if ((r = clamp_shadow(c, "etc/shadow")) < 0 || (r = clamp_shadow(c, "etc/shadow-")) < 0)
                return r;

        int fd = open(c->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(errno, "Failed to open '%s': %m", c->root);
        r = clamp_times_at(fd, (time_t) c->source_date_epoch, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to clamp the times in the image tree to SOURCE_DATE_EPOCH: %m");
        struct timespec root_ts[2] = { { .tv_sec = (time_t) c->source_date_epoch }, { .tv_sec = (time_t) c->source_date_epoch } };
        if (utimensat(AT_FDCWD, c->root, root_ts, 0) < 0)
                return log_error_errno(errno, "Failed to set the time of '%s': %m", c->root);
        return 0;
}

/* A SHA-256 over the sealed tree: names in sorted order, contents, modes,
 * owners, xattrs, link targets and (clamped) mtimes, as a POSIX tar stream
 * without atime, ctime or the PID that GNU tar puts in extended header names.
 * The same tree gives the same digest; the UUIDs and the verity salt below
 * are derived from it, so they change exactly when the content does. */
static int tree_digest(BuildContext *c) {
        char *argv[] = { (char *) "tar", (char *) "--create", (char *) "--file=-", (char *) "--directory", c->root,
                         (char *) "--sort=name", (char *) "--format=posix",
                         (char *) "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
                         (char *) "--numeric-owner", (char *) "--xattrs", (char *) "--xattrs-include=*",
                         (char *) "--one-file-system",
                         /* O_NOATIME: reading must not undo the clamped atimes ext4 stores */
                         (char *) "--atime-preserve=system", (char *) ".", NULL };
        _cleanup_free_ uint8_t *buf = malloc(1 << 20);
        uint8_t md[32];
        unsigned mdlen = 0;
        int pfd[2], status, r = 0;

        if (!buf)
                return -ENOMEM;
        log_command(c, "", argv);
        if (pipe2(pfd, O_CLOEXEC) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0) {
                r = -errno;
                (void) safe_close(pfd[0]);
                (void) safe_close(pfd[1]);
                return r;
        }
        if (pid == 0) {
                if (dup2(pfd[1], STDOUT_FILENO) < 0)
                        _exit(127);
                if (c->log_fd >= 0)
                        (void) dup2(c->log_fd, STDERR_FILENO);
                int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (null >= 0)
                        (void) dup2(null, STDIN_FILENO);
                (void) signal(SIGPIPE, SIG_DFL);
                execvp(argv[0], argv);
                _exit(127);
        }
        (void) safe_close(pfd[1]);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        for (;;) {
                ssize_t n = read(pfd[0], buf, 1 << 20);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        break;
                }
                if (n == 0)
                        break;
                ok = ok && EVP_DigestUpdate(ctx, buf, (size_t) n);
        }
        (void) safe_close(pfd[0]);
        ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == 32;
        EVP_MD_CTX_free(ctx);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (r < 0)
                return r;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return log_error_errno(EPROTO, "tar could not read the image tree to digest it (see the log)");
        if (!ok)
                return -EIO;
        hex_encode(md, 32, c->tree_digest);
        return 0;
}

/* A value for one purpose ("rootfs-uuid", ...) derived from the tree digest:
 * 64 hex digits. */
static int derive_hex(BuildContext *c, const char *purpose, char ret[static 65]) {
        const char *parts[] = { "hull-build-derived-v1", purpose, c->tree_digest, NULL };
        return build_cache_key(parts, ret);
}

/* A UUID (RFC 9562 version 8, "custom") derived from the tree digest. */
static int derive_uuid(BuildContext *c, const char *purpose, char ret[static 37]) {
        char h[65];
        int r = derive_hex(c, purpose, h);
        if (r < 0)
                return r;
        h[12] = '8';
        h[16] = "89ab"[(h[16] >= 'a' ? h[16] - 'a' + 10 : h[16] - '0') & 3];
        (void) snprintf(ret, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
        return 0;
}

static int dir_usage(BuildContext *c, uint64_t *ret) {
        _cleanup_free_ char *out = NULL;
        char *argv[] = { (char *) "du", (char *) "-sxb", c->root, NULL };
        int r = spawn_capture(argv, &(SpawnOptions) { .output_fd = c->log_fd }, 4096, &out);
        if (r != 0)
                return r < 0 ? r : -EIO;
        char *sp = strpbrk(out, " \t");
        if (sp)
                *sp = '\0';
        return safe_atou64(out, ret);
}

static int make_rootfs(BuildContext *c) {
        char sz1[32], sz2[32];
        struct stat st;
        int r;

        if (asprintf(&c->rootfs_image, "%s/%s-%s.rootfs.%s", c->output_dir, c->spec->name, c->spec->version,
                     rootfs_type_to_string(c->spec->rootfs_type)) < 0)
                return -ENOMEM;
        (void) unlink(c->rootfs_image);

        build_progress(c, "digesting the tree (file system UUID, verity salt)");
        r = tree_digest(c);
        if (r < 0)
                return log_error_errno(r, "Failed to digest the image tree: %m");
        char uuid[37], hash_seed[37];
        _cleanup_free_ char *hash_seed_arg = NULL, *sde_env = NULL, *fake_time_env = NULL;
        if ((r = derive_uuid(c, "rootfs-uuid", uuid)) < 0 || (r = derive_uuid(c, "rootfs-hash-seed", hash_seed)) < 0)
                return r;
        if (asprintf(&hash_seed_arg, "hash_seed=%s", hash_seed) < 0 ||
            asprintf(&sde_env, "SOURCE_DATE_EPOCH=%llu", (unsigned long long) c->source_date_epoch) < 0 ||
            asprintf(&fake_time_env, "E2FSPROGS_FAKE_TIME=%llu", (unsigned long long) c->source_date_epoch) < 0)
                return -ENOMEM;
        char *env[] = { sde_env, fake_time_env, NULL };
        build_progress(c, "tree digest %.16s..., file system UUID %s", c->tree_digest, uuid);

        uint64_t usage = 0;
        r = dir_usage(c, &usage);
        if (r < 0)
                return log_error_errno(r, "Failed to measure the image tree: %m");
        /* Refuse early when even the uncompressed tree cannot fit in ext4's case. */
        if (c->spec->rootfs_type == ROOTFS_EXT4) {
                uint64_t want = ALIGN_TO(usage + usage / 4 + (32ULL << 20), 1ULL << 20);
                if (want > c->layout.part[PART_ROOT_A].size)
                        return log_error_errno(ENOSPC,
                                               "The root file system needs about %s but partitions.root is %s; raise "
                                               "partitions.root in the spec or remove packages",
                                               format_bytes(sz1, sizeof(sz1), want),
                                               format_bytes(sz2, sizeof(sz2), c->layout.part[PART_ROOT_A].size));
                _cleanup_free_ char *size_arg = NULL;
                if (asprintf(&size_arg, "%lluk", (unsigned long long) (want / 1024)) < 0)
                        return -ENOMEM;
                /* UUID and directory hash seed from the tree; the times
                 * mke2fs sets itself from E2FSPROGS_FAKE_TIME. */
                char *argv[] = { (char *) "mkfs.ext4", (char *) "-q", (char *) "-F", (char *) "-L", (char *) "hull-root",
                                 (char *) "-b", (char *) "4096", (char *) "-m", (char *) "0", (char *) "-O",
                                 (char *) "^has_journal", (char *) "-U", uuid, (char *) "-E", hash_seed_arg,
                                 (char *) "-d", c->root, c->rootfs_image, size_arg, NULL };
                r = host_run_env(c, argv, env);
        } else {
                /* With SOURCE_DATE_EPOCH, mkfs.erofs clamps mtimes to it,
                 * dates the superblock with it and writes extended inodes
                 * (which keep every file's own mtime). */
                char *argv[] = { (char *) "mkfs.erofs", (char *) "--quiet", (char *) "-zlz4hc", (char *) "-U", uuid,
                                 c->rootfs_image, c->root, NULL };
                r = host_run_env(c, argv, env);
        }
        if (r != 0)
                return log_error_errno(r < 0 ? r : EPROTO, "mkfs for the %s root file system failed",
                                       rootfs_type_to_string(c->spec->rootfs_type));

        if (stat(c->rootfs_image, &st) < 0)
                return -errno;
        c->rootfs_fs_size = ALIGN_TO((uint64_t) st.st_size, 4096);
        if ((uint64_t) st.st_size != c->rootfs_fs_size && truncate(c->rootfs_image, (off_t) c->rootfs_fs_size) < 0)
                return -errno;

        if (c->spec->verity) {
                _cleanup_free_ char *out = NULL, *off_arg = NULL, *salt_arg = NULL, *uuid_arg = NULL;
                char salt[65], vuuid[37];
                /* veritysetup picks a random salt and UUID; these come from
                 * the tree, so the hash tree and root hash are the same for
                 * the same tree and differ for every other one. */
                if ((r = derive_hex(c, "verity-salt", salt)) < 0 || (r = derive_uuid(c, "verity-uuid", vuuid)) < 0)
                        return r;
                if (asprintf(&off_arg, "--hash-offset=%llu", (unsigned long long) c->rootfs_fs_size) < 0 ||
                    asprintf(&salt_arg, "--salt=%s", salt) < 0 || asprintf(&uuid_arg, "--uuid=%s", vuuid) < 0)
                        return -ENOMEM;
                char *argv[] = { (char *) "veritysetup", (char *) "format", off_arg, (char *) "--data-block-size=4096",
                                 (char *) "--hash-block-size=4096", salt_arg, uuid_arg, c->rootfs_image, c->rootfs_image,
                                 NULL };
                r = spawn_capture(argv, &(SpawnOptions) { .output_fd = c->log_fd }, 1 << 16, &out);
                if (r != 0)
                        return log_error_errno(r < 0 ? r : EPROTO, "veritysetup format failed");
                char *h = strstr(out, "Root hash:");
                if (!h)
                        return log_error_errno(EBADMSG, "veritysetup printed no root hash");
                h += strlen("Root hash:");
                h += strspn(h, " \t");
                size_t n = strspn(h, "0123456789abcdef");
                if (n != 64)
                        return log_error_errno(EBADMSG, "Unexpected root hash from veritysetup");
                c->verity_root_hash = strndup(h, n);
                if (!c->verity_root_hash)
                        return -ENOMEM;
                if (stat(c->rootfs_image, &st) < 0)
                        return -errno;
        }

        r = layout_check_root_fits(&c->layout, c->rootfs_fs_size, (uint64_t) st.st_size - c->rootfs_fs_size);
        if (r < 0)
                return log_error_errno(r,
                                       "The root file system image is %s but partitions.root is only %s; raise "
                                       "partitions.root in the spec or remove packages",
                                       format_bytes(sz1, sizeof(sz1), (uint64_t) st.st_size),
                                       format_bytes(sz2, sizeof(sz2), c->layout.part[PART_ROOT_A].size));
        build_progress(c, "%s root file system: %s%s", rootfs_type_to_string(c->spec->rootfs_type),
                       format_bytes(sz1, sizeof(sz1), (uint64_t) st.st_size), c->spec->verity ? " with dm-verity" : "");
        return 0;
}

/* The kernel and the initramfs boot from the ESP; a copy in the slot
 * would only be read by nobody, and cost every slot and bundle their size
 * (about 37 MiB that do not compress). /boot keeps config-KVER, which
 * kubeadm's preflight and other tools read for the kernel's options. */
static int move_boot_files_out(BuildContext *c) {
        _cleanup_free_ char *kernel = NULL, *initrd = NULL;
        int r;

        if (asprintf(&kernel, "%s/vmlinuz", c->work_dir) < 0 || asprintf(&initrd, "%s/initrd.img", c->work_dir) < 0)
                return -ENOMEM;
        if (rename(c->kernel_path, kernel) < 0)
                return log_error_errno(errno, "Cannot move the kernel out of the image tree: %m");
        if (rename(c->initrd_path, initrd) < 0)
                return log_error_errno(errno, "Cannot move the initramfs out of the image tree: %m");
        free(c->kernel_path);
        c->kernel_path = TAKE_PTR(kernel);
        free(c->initrd_path);
        c->initrd_path = TAKE_PTR(initrd);

        /* Debian's links to them, and what they would dangle on */
        static const char *const links[] = { "vmlinuz", "vmlinuz.old", "initrd.img", "initrd.img.old",
                                             "boot/vmlinuz", "boot/vmlinuz.old", "boot/initrd.img",
                                             "boot/initrd.img.old", NULL };
        for (const char *const *l = links; *l; l++) {
                _cleanup_free_ char *p = path_join(c->root, *l);
                if (!p)
                        return -ENOMEM;
                if (unlink(p) < 0 && errno != ENOENT)
                        return log_error_errno(errno, "Cannot remove '/%s' from the image tree: %m", *l);
        }
        /* another kernel's files, if a package put two in */
        _cleanup_free_ char *boot = path_join(c->root, "boot");
        DIR *d = boot ? opendir(boot) : NULL;
        struct dirent *de;
        if (!d)
                return boot ? 0 : -ENOMEM;
        r = 0;
        while (r == 0 && (de = readdir(d))) {
                if (strncmp(de->d_name, "vmlinuz-", 8) != 0 && strncmp(de->d_name, "initrd.img-", 11) != 0)
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) < 0)
                        r = log_error_errno(errno, "Cannot remove '/boot/%s' from the image tree: %m", de->d_name);
        }
        closedir(d);
        return r;
}

static int stage_seal(BuildContext *c, const DistroBackend *be) {
        int r;

        c->stage = "seal";
        r = run_hooks(c, HOOK_PRE_SEAL);
        if (r < 0)
                return r;
        /* Before the initramfs: it copies modules from the trimmed tree. */
        r = build_trim_modules(c);
        if (r < 0)
                return r;
        build_progress(c, "building the initramfs");
        r = be->prepare_boot(c);
        if (r < 0)
                return r;
        r = be->record_packages(c);
        if (r < 0)
                return r;
        r = build_record_components(c);
        if (r < 0)
                return r;
        r = move_boot_files_out(c);
        if (r < 0)
                return r;
        build_progress(c, "%u packages installed; removing the package manager", c->package_count);
        r = be->remove_package_manager(c);
        if (r < 0)
                return r;

        /* Per-machine identity must be created on each node, not baked in. */
        static const char *const per_machine[] = { "etc/machine-id", "var/lib/dbus/machine-id", "etc/ssh/ssh_host_rsa_key",
                                                   "etc/ssh/ssh_host_ecdsa_key", "etc/ssh/ssh_host_ed25519_key",
                                                   "etc/ssh/ssh_host_rsa_key.pub", "etc/ssh/ssh_host_ecdsa_key.pub",
                                                   "etc/ssh/ssh_host_ed25519_key.pub", NULL };
        for (const char *const *p = per_machine; *p; p++) {
                _cleanup_free_ char *f = path_join(c->root, *p);
                if (!f)
                        return -ENOMEM;
                (void) unlink(f);
        }
        r = build_write_in_root(c, "etc/machine-id", "uninitialized\n", 0444);
        if (r < 0)
                return r;

        r = normalise_tree(c);
        if (r < 0)
                return r;
        return make_rootfs(c);
}

/* The ESP image is filled with mtools, so no loop device or mount is needed. */
static int make_esp(BuildContext *c, const char *esp) {
        _cleanup_free_ char *stub = NULL, *efi = NULL, *cfg_path = NULL, *env_path = NULL, *cfg = NULL, *kib = NULL;
        _cleanup_free_ char *stub_arg = NULL;
        _cleanup_(grubenv_freep) GrubEnv *env = NULL;
        BootState bs = {};
        int r;

        if (asprintf(&stub, "%s/grub-stub.cfg", c->work_dir) < 0 || asprintf(&efi, "%s/BOOTX64.EFI", c->work_dir) < 0 ||
            asprintf(&cfg_path, "%s/grub.cfg", c->work_dir) < 0 || asprintf(&env_path, "%s/grubenv", c->work_dir) < 0 ||
            asprintf(&kib, "%llu", (unsigned long long) (c->layout.part[PART_ESP].size / 1024)) < 0)
                return -ENOMEM;

        /* The embedded stub only finds the ESP it was started from and hands
         * over to the A/B script there, so that script can be replaced
         * without rebuilding the EFI binary. */
        static const char stub_cfg[] =
                "# Hull GRUB stub (embedded in BOOTX64.EFI by hull-build)\n"
                "insmod part_gpt\ninsmod fat\ninsmod regexp\n"
                "serial --unit=0 --speed=115200\n"
                "terminal_input console serial\nterminal_output console serial\n"
                "set espdev=\"\"\n"
                "regexp --set=1:espdev '^(\\([^)]*\\))' \"$cmdpath\"\n"
                "if [ -z \"$espdev\" ]; then\n"
                "  search --no-floppy --label --set=espdev0 HULL-ESP\n"
                "  set espdev=\"($espdev0)\"\n"
                "fi\n"
                "set esp=\"$espdev\"\n"
                "export esp\n"
                "configfile \"${esp}/EFI/hull/grub.cfg\"\n"
                "echo \"hull: cannot load ${esp}/EFI/hull/grub.cfg\"\n"
                "sleep 10\nreboot\n";
        r = write_file_atomic(stub, stub_cfg, strlen(stub_cfg), 0644);
        if (r < 0)
                return r;
        if (asprintf(&stub_arg, "boot/grub/grub.cfg=%s", stub) < 0)
                return -ENOMEM;
        char *mk[] = { (char *) "grub-mkstandalone", (char *) "-O", (char *) "x86_64-efi",
                       (char *) "--modules=part_gpt fat ext2 normal configfile loadenv test echo linux search search_label "
                                "all_video gzio efi_gop serial terminal regexp sleep reboot",
                       (char *) "--locales=", (char *) "--themes=", (char *) "--fonts=", (char *) "-o", efi, stub_arg, NULL };
        r = build_host_run(c, mk);
        if (r != 0)
                return log_error_errno(r < 0 ? r : EPROTO, "grub-mkstandalone failed");

        GrubCfgOptions o = {
                .env_path = "/EFI/hull/grubenv",
                .boot_dir = "/EFI/hull",
                .root_label_prefix = "hull-root-",
                .title = "Hull",
                .timeout = c->spec->boot_timeout,
        };
        r = bootcount_generate_grub_cfg(&o, &cfg);
        if (r < 0)
                return log_error_errno(r, "Failed to generate grub.cfg: %m");
        r = write_file_atomic(cfg_path, cfg, strlen(cfg), 0644);
        if (r < 0)
                return r;

        /* A fresh disk boots slot A, known good; B is empty. */
        bs.slot[SLOT_A] = (SlotState) { .priority = 10, .tries = 0, .good = true };
        r = grubenv_new(&env);
        if (r >= 0)
                r = boot_state_to_env(&bs, env);
        if (r >= 0)
                r = grubenv_set(env, "hull_a_args", c->cmdline);
        if (r >= 0)
                r = grubenv_set(env, "hull_a_version", c->spec->version);
        if (r >= 0)
                r = grubenv_set(env, "hull_cmdline", "");
        /* boot.tries: what the agent gives a newly staged slot. */
        _cleanup_free_ char *tries = NULL;
        if (r >= 0 && asprintf(&tries, "%u", c->spec->boot_tries) < 0)
                r = -ENOMEM;
        if (r >= 0)
                r = grubenv_set(env, "hull_new_tries", tries);
        if (r >= 0)
                r = grubenv_save(env, env_path);
        if (r < 0)
                return log_error_errno(r, "Failed to write the GRUB environment (kernel.cmdline too long?): %m");

        /* The ESP's tree is laid out in a directory first, its times set
         * to the build's date, and copied in one mcopy that keeps them:
         * mmd and mcopy would otherwise stamp every entry with the clock. */
        static const char *const dirs[] = { "EFI/BOOT", "EFI/hull/a", "EFI/hull/b", NULL };
        static const struct {
                const char *dest;
                size_t src; /* index into srcs[] */
        } files[] = {
                { "EFI/BOOT/BOOTX64.EFI", 0 }, { "EFI/hull/grub.cfg", 1 }, { "EFI/hull/grubenv", 2 },
                { "EFI/hull/a/vmlinuz", 3 },   { "EFI/hull/a/initrd.img", 4 },
        };
        const char *srcs[] = { efi, cfg_path, env_path, c->kernel_path, c->initrd_path };
        _cleanup_free_ char *tree = NULL, *tree_efi = NULL;
        if (asprintf(&tree, "%s/esp-tree", c->work_dir) < 0 || !(tree_efi = path_join(tree, "EFI")))
                return -ENOMEM;
        for (const char *const *d = dirs; *d; d++) {
                _cleanup_free_ char *p = path_join(tree, *d);
                if (!p)
                        return -ENOMEM;
                if ((r = mkdir_p(p, 0755)) < 0)
                        return log_error_errno(r, "Failed to create '%s': %m", p);
        }
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *p = path_join(tree, files[i].dest), *data = NULL;
                size_t sz;
                if (!p)
                        return -ENOMEM;
                r = read_full_file(srcs[files[i].src], 256 << 20, &data, &sz);
                if (r >= 0)
                        r = write_file_atomic(p, data, sz, 0644);
                if (r < 0)
                        return log_error_errno(r, "Failed to copy '%s' for the ESP: %m", srcs[files[i].src]);
        }
        int tfd = open(tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (tfd < 0)
                return log_error_errno(errno, "Failed to open '%s': %m", tree);
        r = clamp_times_at(tfd, (time_t) c->source_date_epoch, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to set the times of the ESP's files: %m");

        /* --invariant: no clock in the boot sector or the label's entry;
         * -i: a volume ID from the tree digest instead of its constant. */
        char volid[65];
        r = derive_hex(c, "esp-volume-id", volid);
        if (r < 0)
                return r;
        volid[8] = '\0';
        (void) unlink(esp);
        char *mkfs[] = { (char *) "mkfs.vfat", (char *) "--invariant", (char *) "-i", volid, (char *) "-F", (char *) "32",
                         (char *) "-n", (char *) "HULL-ESP", (char *) "-C", (char *) esp, kib, NULL };
        r = build_host_run(c, mkfs);
        if (r != 0)
                return log_error_errno(r < 0 ? r : EPROTO, "mkfs.vfat for the ESP failed");
        char *copy[] = { (char *) "mcopy", (char *) "-s", (char *) "-m", (char *) "-i", (char *) esp, tree_efi, (char *) "::/",
                         NULL };
        r = build_host_run(c, copy);
        if (r != 0)
                return log_error_errno(r < 0 ? r : EIO, "Failed to copy the boot files to the ESP (mcopy)");
        return 0;
}

static int file_size(const char *p, uint64_t *ret) {
        struct stat st;
        if (stat(p, &st) < 0)
                return -errno;
        *ret = (uint64_t) st.st_size;
        return 0;
}

static int make_bundle(BuildContext *c, char **ret_path) {
        _cleanup_(manifest_freep) Manifest *m = NULL;
        _cleanup_free_ char *path = NULL;
        char created[32];
        /* The build's date, not the clock's: the same inputs give the same manifest. */
        time_t when = (time_t) c->source_date_epoch;

        int r = manifest_new(&m);
        if (r < 0)
                return r;
        (void) strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", gmtime(&when));

        if (!(m->name = strdup(c->spec->name)) || !(m->version = strdup(c->spec->version)) ||
            !(m->arch = strdup(c->spec->arch)) || !(m->created = strdup(created)) ||
            !(m->rootfs_type = strdup(rootfs_type_to_string(c->spec->rootfs_type))) || !(m->cmdline = strdup(c->cmdline)))
                return -ENOMEM;
        if (c->verity_root_hash) {
                if (!(m->verity_root_hash = strdup(c->verity_root_hash)))
                        return -ENOMEM;
                m->verity_hash_offset = c->rootfs_fs_size;
        }
        r = manifest_set_components(m, &c->components);
        if (r < 0)
                return log_error_errno(r, "Invalid component versions for the manifest: %m");
        if (asprintf(&path, "%s/%s-%s.hullb", c->output_dir, c->spec->name, c->spec->version) < 0)
                return -ENOMEM;

        _cleanup_free_ char *index_path = NULL;
        if (asprintf(&index_path, "%s/chunk-index", c->work_dir) < 0)
                return -ENOMEM;
        BundleInput in[] = {
                { "rootfs", c->rootfs_image },
                { "kernel", c->kernel_path },
                { "initrd", c->initrd_path },
                { CHUNK_INDEX_PAYLOAD, index_path },
        };
        /* Nodes fetch only the chunks they lack (docs/DELTA.md). */
        _cleanup_(chunk_index_freep) ChunkIndex *x = NULL;
        r = chunk_index_new(NULL, &x);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(in) - 1; i++)
                r = chunk_index_add_file(x, in[i].name, in[i].path);
        if (r >= 0)
                r = chunk_index_write_file(x, index_path);
        if (r < 0)
                return log_error_errno(r, "Failed to write the bundle's chunk index: %m");
        r = bundle_create(path, m, in, ELEMENTSOF(in), c->key);
        if (r < 0)
                return log_error_errno(r, "Failed to write the update bundle '%s': %m", path);
        *ret_path = TAKE_PTR(path);
        return 0;
}

static int stage_assemble(BuildContext *c, char **ret_bundle, char **ret_disk) {
        _cleanup_free_ char *esp = NULL, *persist = NULL, *disk = NULL, *tmp = NULL, *bundle = NULL, *kib = NULL;
        uint64_t ksz = 0, isz = 0;
        char b1[32], b2[32];
        int r;

        c->stage = "assemble";
        r = make_cmdline(c);
        if (r < 0)
                return r;

        if ((r = file_size(c->kernel_path, &ksz)) < 0 || (r = file_size(c->initrd_path, &isz)) < 0)
                return log_error_errno(r, "Cannot stat the kernel or initramfs: %m");
        /* Both slots' kernels and initramfs must fit, plus GRUB. */
        if (2 * (ksz + isz) + (8ULL << 20) > c->layout.part[PART_ESP].size)
                return log_error_errno(ENOSPC,
                                       "partitions.esp (%s) is too small for two kernels and initramfs images of %s each; "
                                       "raise partitions.esp in the spec",
                                       format_bytes(b1, sizeof(b1), c->layout.part[PART_ESP].size),
                                       format_bytes(b2, sizeof(b2), ksz + isz));

        if (asprintf(&esp, "%s/esp.img", c->work_dir) < 0 || asprintf(&persist, "%s/persist.img", c->work_dir) < 0 ||
            asprintf(&disk, "%s/%s-%s.img", c->output_dir, c->spec->name, c->spec->version) < 0 ||
            asprintf(&tmp, "%s.tmp", disk) < 0)
                return -ENOMEM;

        build_progress(c, "EFI system partition with GRUB (A/B boot counting)");
        r = make_esp(c, esp);
        if (r < 0)
                return r;

        build_progress(c, "persist partition");
        (void) unlink(persist);
        _cleanup_close_ int pfd = open(persist, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (pfd < 0 || ftruncate(pfd, (off_t) c->layout.part[PART_PERSIST].size) < 0)
                return log_error_errno(errno, "Failed to create '%s': %m", persist);
        pfd = safe_close(pfd);
        char persist_uuid[37], persist_seed[37];
        _cleanup_free_ char *persist_opts = NULL, *fake_time = NULL;
        if ((r = derive_uuid(c, "persist-uuid", persist_uuid)) < 0 || (r = derive_uuid(c, "persist-hash-seed", persist_seed)) < 0)
                return r;
        if (asprintf(&persist_opts, "lazy_itable_init=0,hash_seed=%s", persist_seed) < 0 ||
            asprintf(&fake_time, "E2FSPROGS_FAKE_TIME=%llu", (unsigned long long) c->source_date_epoch) < 0)
                return -ENOMEM;
        char *persist_env[] = { fake_time, NULL };
        char *mkfs[] = { (char *) "mkfs.ext4", (char *) "-q", (char *) "-F", (char *) "-L", (char *) "hull-persist",
                         (char *) "-U", persist_uuid, (char *) "-E", persist_opts, persist, NULL };
        r = host_run_env(c, mkfs, persist_env);
        if (r != 0)
                return log_error_errno(r < 0 ? r : EPROTO, "mkfs.ext4 for the persist partition failed");

        build_progress(c, "disk image %s (%s)", disk, format_bytes(b1, sizeof(b1), c->layout.disk_size));
        (void) unlink(tmp);
        _cleanup_close_ int dfd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (dfd < 0 || ftruncate(dfd, (off_t) c->layout.disk_size) < 0)
                return log_error_errno(errno, "Failed to create '%s': %m", tmp);
        /* GUIDs from the tree digest, not random ones. */
        char disk_guid[37], part_guid[_PART_MAX][37];
        if ((r = derive_uuid(c, "disk-guid", disk_guid)) < 0)
                return r;
        c->layout.disk_guid = disk_guid;
        for (PartitionRole p = 0; p < _PART_MAX; p++) {
                _cleanup_free_ char *purpose = NULL;
                if (asprintf(&purpose, "partition-guid-%s", partition_role_to_string(p)) < 0)
                        return -ENOMEM;
                if ((r = derive_uuid(c, purpose, part_guid[p])) < 0)
                        return r;
                c->layout.part[p].uuid = part_guid[p];
        }
        r = gpt_write_layout(tmp, &c->layout);
        c->layout.disk_guid = NULL;
        for (PartitionRole p = 0; p < _PART_MAX; p++)
                c->layout.part[p].uuid = NULL;
        if (r < 0)
                return log_error_errno(r, "Failed to write the GPT to '%s': %m", tmp);
        if ((r = copy_file_to_offset(esp, dfd, c->layout.part[PART_ESP].offset)) < 0 ||
            (r = copy_file_to_offset(c->rootfs_image, dfd, c->layout.part[PART_ROOT_A].offset)) < 0 ||
            (r = copy_file_to_offset(persist, dfd, c->layout.part[PART_PERSIST].offset)) < 0)
                return log_error_errno(r, "Failed to write partitions into '%s': %m", tmp);
        if (fsync(dfd) < 0)
                return log_error_errno(errno, "Failed to sync '%s': %m", tmp);
        if (rename(tmp, disk) < 0)
                return log_error_errno(errno, "Failed to move '%s' into place: %m", disk);

        build_progress(c, "signing the update bundle with key %s", key_id(c->key));
        r = make_bundle(c, &bundle);
        if (r < 0)
                return r;
        *ret_bundle = TAKE_PTR(bundle);
        *ret_disk = TAKE_PTR(disk);
        return 0;
}

static int write_build_info(BuildContext *c, const char *bundle, const char *disk, double seconds) {
        _cleanup_free_ char *path = NULL, *json = NULL, *components = NULL;
        uint64_t rootfs = 0, bsize = 0, kernel = 0, initrd = 0;
        int r;

        (void) file_size(c->rootfs_image, &rootfs);
        (void) file_size(bundle, &bsize);
        (void) file_size(c->kernel_path, &kernel);
        (void) file_size(c->initrd_path, &initrd);
        r = components_format(&c->components, &components);
        if (r < 0)
                return r;
        components[strcspn(components, "\n")] = '\0';
        if (asprintf(&path, "%s/%s-%s.json", c->output_dir, c->spec->name, c->spec->version) < 0 ||
            asprintf(&json,
                     "{\n  \"name\": \"%s\",\n  \"version\": \"%s\",\n  \"rootfs_type\": \"%s\",\n"
                     "  \"rootfs\": \"%s\",\n  \"rootfs_size\": %llu,\n  \"bundle\": \"%s\",\n  \"bundle_size\": %llu,\n"
                     "  \"disk\": \"%s\",\n  \"disk_size\": %llu,\n  \"kernel_version\": \"%s\",\n"
                     "  \"kernel_size\": %llu,\n  \"initrd_size\": %llu,\n  \"packages\": %u,\n"
                     "  \"verity_root_hash\": %s%s%s,\n  \"key_id\": \"%s\",\n  \"cmdline\": \"%s\",\n"
                     "  \"components\": %s,\n  \"modules_kept\": %u,\n  \"modules_dropped\": %u,\n"
                     "  \"modules_dropped_size\": %llu,\n  \"firmware_dropped\": %u,\n"
                     "  \"firmware_dropped_size\": %llu,\n  \"modules_report\": %s%s%s,\n"
                     "  \"build_seconds\": %.1f\n}\n",
                     c->spec->name, c->spec->version, rootfs_type_to_string(c->spec->rootfs_type), c->rootfs_image,
                     (unsigned long long) rootfs, bundle, (unsigned long long) bsize, disk,
                     (unsigned long long) c->layout.disk_size, c->kernel_version, (unsigned long long) kernel,
                     (unsigned long long) initrd, c->package_count, c->verity_root_hash ? "\"" : "",
                     c->verity_root_hash ?: "null", c->verity_root_hash ? "\"" : "", key_id(c->key), c->cmdline,
                     components, c->modules_kept, c->modules_dropped, (unsigned long long) c->modules_dropped_size,
                     c->firmware_dropped, (unsigned long long) c->firmware_dropped_size, c->modules_report ? "\"" : "",
                     c->modules_report ?: "null", c->modules_report ? "\"" : "", seconds) < 0)
                return -ENOMEM;
        return write_file_atomic(path, json, strlen(json), 0644);
}

static bool stopping_after(BuildContext *c, const char *stage) {
        return c->stop_after && streq(c->stop_after, stage);
}

int build_run(BuildContext *c) {
        const DistroBackend *be;
        _cleanup_free_ char *bundle = NULL, *disk = NULL;
        char b1[32];
        int r;

        (void) clock_gettime(CLOCK_MONOTONIC, &build_start);
        c->log_fd = -EBADF;

        be = distro_backend_find(c->spec->backend);
        if (!be)
                return log_error_errno(EOPNOTSUPP, "No distribution backend '%s'", c->spec->backend);

        r = layout_compute(c->spec->esp_size, c->spec->root_size, c->spec->persist_size, &c->layout);
        if (r < 0)
                return log_error_errno(r, "Invalid partition sizes: %m");
        r = epoch_from_environment(c);
        if (r < 0)
                return r;

        if ((r = mkdir_p(c->output_dir, 0755)) < 0)
                return log_error_errno(r, "Failed to create output directory '%s': %m", c->output_dir);
        if ((r = mkdir_p(c->cache_dir, 0755)) < 0)
                return log_error_errno(r, "Failed to create cache directory '%s': %m", c->cache_dir);

        if (asprintf(&c->log_path, "%s/build.log", c->output_dir) < 0 ||
            asprintf(&c->work_dir, "%s/.work-XXXXXX", c->output_dir) < 0)
                return -ENOMEM;
        c->log_fd = open(c->log_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_APPEND, 0644);
        if (c->log_fd < 0)
                return log_error_errno(errno, "Failed to open build log '%s': %m", c->log_path);
        if (!mkdtemp(c->work_dir))
                return log_error_errno(errno, "Failed to create work directory: %m");
        c->root = path_join(c->work_dir, "root");
        if (!c->root)
                return -ENOMEM;
        if (mkdir(c->root, 0755) < 0)
                return -errno;

        fprintf(stderr, "Building %s %s (%s %s, %s root%s); log: %s\n", c->spec->name, c->spec->version, c->spec->backend,
                c->spec->suite, rootfs_type_to_string(c->spec->rootfs_type), c->spec->verity ? " with dm-verity" : "",
                c->log_path);

        /* Pinned local files are checked before minutes of bootstrap. */
        c->stage = "setup";
        r = build_kubernetes_check_sources(c);
        if (r >= 0)
                r = stage_bootstrap_and_packages(c, be);
        if (r >= 0 && !stopping_after(c, "packages"))
                r = pick_epoch(c, be);
        if (r >= 0 && !stopping_after(c, "packages"))
                r = stage_customise(c);
        if (r >= 0 && !stopping_after(c, "packages") && !stopping_after(c, "customise"))
                r = stage_seal(c, be);
        if (r >= 0 && c->stop_after) {
                /* For looking at (and testing) the tree a stage left. */
                c->keep_work = true;
                build_progress(c, "stopped after stage '%s' as asked; the tree is in %s", c->stop_after, c->root);
                return 0;
        }
        if (r >= 0)
                r = stage_assemble(c, &bundle, &disk);
        if (r < 0) {
                /* Leave no half-made output behind that could be mistaken for an image. */
                if (c->rootfs_image)
                        (void) unlink(c->rootfs_image);
                _cleanup_free_ char *disk_tmp = NULL;
                if (asprintf(&disk_tmp, "%s/%s-%s.img.tmp", c->output_dir, c->spec->name, c->spec->version) >= 0)
                        (void) unlink(disk_tmp);
                struct stat lst;
                if (fstat(c->log_fd, &lst) >= 0 && lst.st_size == 0)
                        /* nothing ran yet: the error above is all there is */
                        fprintf(stderr, "hull-build: stage '%s' failed; nothing was built\n", c->stage ?: "setup");
                else {
                        fprintf(stderr, "\nhull-build: stage '%s' failed. Last lines of %s:\n", c->stage ?: "setup",
                                c->log_path);
                        char *tail[] = { (char *) "tail", (char *) "-n", (char *) "15", c->log_path, NULL };
                        (void) spawn_run(tail, &(SpawnOptions) { .output_fd = STDERR_FILENO });
                }
                return r;
        }

        double secs = elapsed();
        r = write_build_info(c, bundle, disk, secs);
        if (r < 0)
                return log_error_errno(r, "Failed to write build info: %m");

        c->stage = "done";
        build_progress(c, "%s %s built in %.0f s, %u packages", c->spec->name, c->spec->version, secs, c->package_count);
        fprintf(stderr, "  disk image:    %s\n  update bundle: %s\n  root image:    %s (%s)\n", disk, bundle,
                c->rootfs_image, format_bytes(b1, sizeof(b1), c->rootfs_fs_size));
        return 0;
}

void build_context_done(BuildContext *c) {
        if (c->work_dir && !c->keep_work) {
                char *argv[] = { (char *) "rm", (char *) "-rf", (char *) "--one-file-system", c->work_dir, NULL };
                (void) spawn_run(argv, &(SpawnOptions) { .output_fd = -1 });
        }
        c->log_fd = safe_close(c->log_fd);
        free(c->work_dir);
        free(c->root);
        free(c->log_path);
        free(c->kernel_version);
        free(c->rootfs_image);
        free(c->verity_root_hash);
        free(c->cmdline);
        free(c->kernel_path);
        free(c->initrd_path);
        free(c->modules_report);
        strv_free(c->chroot_binds);
        components_done(&c->components);
}
