/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Kernel module and firmware trimming in the seal stage (docs/SPEC.md,
 * "kernel.modules"; docs/BUILDER.md): modtrim.c decides, this file reads the
 * module tree, deletes what was dropped, runs depmod so that modules.dep
 * and friends describe what is left, and writes the report. It runs before
 * the initramfs is made, so the initramfs takes its modules from the
 * trimmed tree. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build.h"
#include "fileio.h"
#include "log.h"
#include "modtrim.h"
#include "strutil.h"

#define MODULES_DIR "usr/lib/modules"
#define FIRMWARE_DIR "usr/lib/firmware"
#define MODULES_REPORT_IN_IMAGE "usr/share/hull/modules-dropped.txt"
#define FIRMWARE_FILES_MAX 100000
#define MODINFO_FILE_MAX (256U << 20)

static int read_optional(const char *dir, const char *name, char **ret) {
        _cleanup_free_ char *p = path_join(dir, name);
        size_t sz;
        if (!p)
                return -ENOMEM;
        int r = read_full_file(p, MODTRIM_TEXT_MAX, ret, &sz);
        if (r == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Cannot read '%s': %m", p);
        return 0;
}

/* Module names from the image's modules-load.d(5) files: they are loaded
 * at every boot, so they must stay. A file in /etc of the same name as one
 * in /usr/lib replaces it; both are read here, which only keeps more. */
static int read_load_names(BuildContext *c, char ***ret) {
        static const char *const dirs[] = { "etc/modules-load.d", "usr/lib/modules-load.d", "run/modules-load.d" };
        _cleanup_strv_free_ char **names = NULL;

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *dir = path_join(c->root, dirs[i]);
                struct dirent *de;
                if (!dir)
                        return -ENOMEM;
                DIR *d = opendir(dir);
                if (!d)
                        continue;
                while ((de = readdir(d))) {
                        size_t l = strlen(de->d_name);
                        if (l < 6 || !streq(de->d_name + l - 5, ".conf"))
                                continue;
                        _cleanup_free_ char *p = path_join(dir, de->d_name), *data = NULL;
                        size_t sz;
                        if (!p) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        /* A link to /dev/null masks a file: reading it gives nothing. */
                        int r = read_full_file(p, 1 << 20, &data, &sz);
                        if (r < 0)
                                continue;
                        for (char *line = data; line && *line;) {
                                char *nl = strchr(line, '\n');
                                if (nl)
                                        *nl = '\0';
                                line += strspn(line, " \t");
                                line[strcspn(line, " \t\r")] = '\0';
                                if (*line && *line != '#' && *line != ';' && !strv_contains(names, line)) {
                                        char **n = strv_append(names, line);
                                        if (!n) {
                                                closedir(d);
                                                return -ENOMEM;
                                        }
                                        names = n;
                                }
                                line = nl ? nl + 1 : NULL;
                        }
                }
                closedir(d);
        }
        *ret = TAKE_PTR(names);
        return 0;
}

/* A symlink's target as a path below the firmware directory, or NULL if it
 * leaves it. */
static char *resolve_link(const char *rel, const char *target) {
        _cleanup_free_ char *joined = NULL;
        char *out, *o;

        if (target[0] == '/') {
                if (!string_has_prefix(target, "/" FIRMWARE_DIR "/") && !string_has_prefix(target, "/lib/firmware/"))
                        return NULL;
                joined = strdup(target + (string_has_prefix(target, "/lib/") ? strlen("/lib/firmware/")
                                                                             : strlen("/" FIRMWARE_DIR "/")));
        } else {
                const char *slash = strrchr(rel, '/');
                if (asprintf(&joined, "%.*s%s", slash ? (int) (slash - rel + 1) : 0, rel, target) < 0)
                        return NULL;
        }
        if (!joined)
                return NULL;
        out = o = calloc(strlen(joined) + 1, 1);
        if (!out)
                return NULL;
        for (char *s = joined; s && *s;) {
                size_t l = strcspn(s, "/");
                if (l == 2 && s[0] == '.' && s[1] == '.') {
                        if (o == out) {
                                free(out);
                                return NULL;
                        }
                        o--;
                        while (o > out && o[-1] != '/')
                                o--;
                        *o = '\0';
                } else if (l > 0 && !(l == 1 && s[0] == '.')) {
                        memcpy(o, s, l);
                        o += l;
                        *o++ = '/';
                        *o = '\0';
                }
                s = s[l] ? s + l + 1 : NULL;
        }
        if (o > out)
                o[-1] = '\0';
        return out;
}

typedef struct FirmwareList {
        ModTrimFirmware *v;
        size_t n, cap;
} FirmwareList;

static int list_firmware(const char *root, const char *rel, unsigned depth, FirmwareList *l) {
        _cleanup_free_ char *dir = rel ? path_join(root, rel) : strdup(root);
        struct dirent *de;
        int r = 0;

        if (!dir)
                return -ENOMEM;
        if (depth > 16)
                return -ELOOP;
        DIR *d = opendir(dir);
        if (!d)
                return errno == ENOENT && !rel ? 0 : -errno;
        while (r >= 0 && (de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                _cleanup_free_ char *sub = NULL, *full = NULL;
                struct stat st;
                if (asprintf(&sub, "%s%s%s", rel ?: "", rel ? "/" : "", de->d_name) < 0 ||
                        !(full = path_join(root, sub))) {
                        r = -ENOMEM;
                        break;
                }
                if (lstat(full, &st) < 0) {
                        r = -errno;
                        break;
                }
                if (S_ISDIR(st.st_mode)) {
                        r = list_firmware(root, sub, depth + 1, l);
                        continue;
                }
                if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
                        continue;
                if (l->n >= FIRMWARE_FILES_MAX) {
                        r = -E2BIG;
                        break;
                }
                if (l->n == l->cap) {
                        size_t nc = l->cap ? l->cap * 2 : 256;
                        ModTrimFirmware *nv = realloc(l->v, nc * sizeof(ModTrimFirmware));
                        if (!nv) {
                                r = -ENOMEM;
                                break;
                        }
                        l->v = nv;
                        l->cap = nc;
                }
                ModTrimFirmware *f = &l->v[l->n];
                *f = (ModTrimFirmware) { .size = S_ISREG(st.st_mode) ? (uint64_t) st.st_size : 0 };
                if (S_ISLNK(st.st_mode)) {
                        char target[4096];
                        ssize_t k = readlink(full, target, sizeof(target) - 1);
                        if (k > 0) {
                                target[k] = '\0';
                                f->link_target = resolve_link(sub, target);
                        }
                }
                f->path = TAKE_PTR(sub);
                l->n++;
        }
        closedir(d);
        return r;
}

/* The firmware= names of every module; modules the builder cannot read
 * (compressed ones) name none, so their firmware counts as named by no
 * module and stays. */
static int read_modinfo(BuildContext *c, ModTrim *t, const char *moddir) {
        for (size_t i = 0; i < t->n_modules; i++) {
                ModTrimModule *m = &t->modules[i];
                size_t l = strlen(m->path), sz;
                if (l < 3 || !streq(m->path + l - 3, ".ko"))
                        continue;
                _cleanup_free_ char *p = path_join(moddir, m->path), *data = NULL;
                if (!p)
                        return -ENOMEM;
                int r = read_full_file(p, MODINFO_FILE_MAX, &data, &sz);
                if (r < 0)
                        return log_error_errno(r, "Cannot read module '%s': %m", p);
                r = modtrim_modinfo_firmware(data, sz, &m->firmware);
                if (r == -EBADMSG) {
                        build_progress(c, "kernel.modules: cannot read the .modinfo of %s, ignoring", m->path);
                        continue;
                }
                if (r < 0)
                        return log_error_errno(r, "Cannot read the .modinfo of '%s': %m", p);
        }
        return 0;
}

/* Removes the now empty directories from rel's parent up to (not
 * including) base. */
static void prune_dirs(const char *base, const char *rel) {
        _cleanup_free_ char *p = path_join(base, rel);
        if (!p)
                return;
        for (char *s = strrchr(p, '/'); s && (size_t) (s - p) > strlen(base); s = strrchr(p, '/')) {
                *s = '\0';
                if (rmdir(p) < 0)
                        break;
        }
}

typedef struct ReportLine {
        char *path;
        uint64_t size;
        const char *rule;
} ReportLine;

static int cmp_line(const void *a, const void *b) {
        return strcmp(((const ReportLine *) a)->path, ((const ReportLine *) b)->path);
}

/* Globs of the spec that match nothing are worth a line: a typo, or a
 * kernel that moved the driver. */
static void report_unmatched(BuildContext *c, ModTrim *t, char **globs, const char *field) {
        for (size_t i = 0; globs && globs[i]; i++) {
                bool hit = false;
                for (size_t k = 0; k < t->n_modules && !hit; k++) {
                        _cleanup_free_ char *mp = modtrim_match_path(t->modules[k].path);
                        hit = mp && modtrim_glob_match(globs[i], mp);
                }
                if (!hit)
                        build_progress(c, "%s[%zu]: '%s' matches no module of this kernel", field, i, globs[i]);
        }
}

int build_trim_modules(BuildContext *c) {
        _cleanup_free_ char *kver = NULL, *moddir = NULL, *fwdir = NULL, *dep = NULL, *softdep = NULL, *alias = NULL,
                            *builtin = NULL, *err = NULL, *report = NULL, *report_path = NULL;
        _cleanup_(modtrim_freep) ModTrim *t = NULL;
        _cleanup_strv_free_ char **load = NULL;
        FirmwareList fw = {};
        ReportLine *lines = NULL;
        size_t n_lines = 0;
        char b1[32], b2[32];
        int r;

        r = build_find_kernel(c, &kver);
        if (r <= 0) {
                if (r == 0)
                        build_progress(c, "kernel.modules: the image has no kernel modules");
                return r;
        }
        if (asprintf(&moddir, "%s/" MODULES_DIR "/%s", c->root, kver) < 0 ||
                !(fwdir = path_join(c->root, FIRMWARE_DIR)))
                return -ENOMEM;

        if ((r = read_optional(moddir, "modules.dep", &dep)) < 0 ||
                (r = read_optional(moddir, "modules.softdep", &softdep)) < 0 ||
                (r = read_optional(moddir, "modules.alias", &alias)) < 0 ||
                (r = read_optional(moddir, "modules.builtin", &builtin)) < 0)
                return r;
        if (!dep)
                return log_error_errno(ENOENT, "Kernel %s has no modules.dep (was depmod run?)", kver);
        r = modtrim_load(&(ModTrimSources) { dep, softdep, alias, builtin }, &t, &err);
        if (r < 0)
                return log_error_errno(r, "Cannot read the module index of kernel %s: %s", kver, err ?: "%m");

        r = read_load_names(c, &load);
        if (r < 0)
                return r;
        ModTrimRules rules = {
                .profile = c->spec->modules_profile,
                .allow = c->spec->modules_allow,
                .deny = c->spec->modules_deny,
                .load = load,
        };
        r = modtrim_resolve(t, &rules, &err);
        if (r == -EPERM)
                return log_error_errno(r, "%s", err);
        if (r < 0)
                return log_error_errno(r, "Cannot decide which kernel modules to keep: %m");
        report_unmatched(c, t, c->spec->modules_allow, "kernel.modules.allow");
        report_unmatched(c, t, c->spec->modules_deny, "kernel.modules.deny");

        r = list_firmware(fwdir, NULL, 0, &fw);
        if (r < 0) {
                log_error_errno(r, "Cannot list '%s': %m", fwdir);
                goto out;
        }
        if (fw.n > 0) {
                r = read_modinfo(c, t, moddir);
                if (r >= 0)
                        r = modtrim_firmware_resolve(t, fw.v, fw.n, c->spec->firmware_allow, c->spec->firmware_deny);
                if (r < 0)
                        goto out;
        }

        /* Delete, and collect the report. */
        lines = calloc(t->n_modules + fw.n + 1, sizeof(ReportLine));
        if (!lines) {
                r = -ENOMEM;
                goto out;
        }
        c->modules_kept = c->modules_dropped = c->firmware_dropped = 0;
        c->modules_dropped_size = c->firmware_dropped_size = 0;
        for (size_t i = 0; i < t->n_modules; i++) {
                ModTrimModule *m = &t->modules[i];
                _cleanup_free_ char *p = path_join(moddir, m->path);
                struct stat st;
                if (!p) {
                        r = -ENOMEM;
                        goto out;
                }
                if (stat(p, &st) < 0) {
                        r = log_error_errno(errno, "Module '%s' of modules.dep is missing: %m", p);
                        goto out;
                }
                m->size = (uint64_t) st.st_size;
                if (m->keep) {
                        c->modules_kept++;
                        continue;
                }
                if (unlink(p) < 0) {
                        r = log_error_errno(errno, "Cannot remove '%s': %m", p);
                        goto out;
                }
                prune_dirs(moddir, m->path);
                c->modules_dropped++;
                c->modules_dropped_size += m->size;
                if (asprintf(&lines[n_lines].path, "/" MODULES_DIR "/%s/%s", kver, m->path) < 0) {
                        r = -ENOMEM;
                        goto out;
                }
                lines[n_lines].size = m->size;
                lines[n_lines++].rule = m->reason;
        }
        for (size_t i = 0; i < fw.n; i++) {
                ModTrimFirmware *f = &fw.v[i];
                if (f->keep)
                        continue;
                _cleanup_free_ char *p = path_join(fwdir, f->path);
                if (!p) {
                        r = -ENOMEM;
                        goto out;
                }
                if (unlink(p) < 0) {
                        r = log_error_errno(errno, "Cannot remove '%s': %m", p);
                        goto out;
                }
                prune_dirs(fwdir, f->path);
                c->firmware_dropped++;
                c->firmware_dropped_size += f->size;
                if (asprintf(&lines[n_lines].path, "/" FIRMWARE_DIR "/%s", f->path) < 0) {
                        r = -ENOMEM;
                        goto out;
                }
                lines[n_lines].size = f->size;
                lines[n_lines++].rule = f->reason;
        }
        qsort(lines, n_lines, sizeof(ReportLine), cmp_line);

        /* modules.dep, .alias, .softdep etc. must describe the tree as it
         * is now: modprobe and the initramfs builder read them. */
        if (c->modules_dropped > 0) {
                char *argv[] = { (char *) "depmod", (char *) "-a", kver, NULL };
                r = build_chroot_run(c, argv, NULL);
                if (r != 0) {
                        r = log_error_errno(r < 0 ? r : EPROTO, "depmod failed for kernel %s", kver);
                        goto out;
                }
        }

        size_t cap = 512, used = 0;
        report = malloc(cap);
        if (!report) {
                r = -ENOMEM;
                goto out;
        }
        used = (size_t) snprintf(report, cap,
                "# Kernel modules and firmware hull-build left out of %s %s (docs/SPEC.md, "
                "\"kernel.modules\").\n# path\tbytes\trule\n",
                c->spec->name, c->spec->version);
        for (size_t i = 0; i < n_lines; i++) {
                size_t need = strlen(lines[i].path) + strlen(lines[i].rule) + 32;
                if (used + need >= cap) {
                        size_t nc = MAX(cap * 2, used + need + 1);
                        char *nr = realloc(report, nc);
                        if (!nr) {
                                r = -ENOMEM;
                                goto out;
                        }
                        report = nr;
                        cap = nc;
                }
                used += (size_t) snprintf(report + used, cap - used, "%s\t%llu\t%s\n", lines[i].path,
                        (unsigned long long) lines[i].size, lines[i].rule);
        }
        if (asprintf(&report_path, "%s/%s-%s.modules.txt", c->output_dir, c->spec->name, c->spec->version) < 0) {
                r = -ENOMEM;
                goto out;
        }
        r = write_file_atomic(report_path, report, used, 0644);
        if (r < 0) {
                log_error_errno(r, "Cannot write '%s': %m", report_path);
                goto out;
        }
        r = build_write_in_root(c, MODULES_REPORT_IN_IMAGE, report, 0644);
        if (r < 0)
                goto out;
        free(c->modules_report);
        c->modules_report = TAKE_PTR(report_path);

        build_progress(c, "kernel.modules: kept %u, dropped %u (%s); firmware: dropped %u (%s); list in %s",
                c->modules_kept, c->modules_dropped, format_bytes(b1, sizeof(b1), c->modules_dropped_size),
                c->firmware_dropped, format_bytes(b2, sizeof(b2), c->firmware_dropped_size), c->modules_report);
        r = 0;
out:
        for (size_t i = 0; lines && i < n_lines; i++)
                free(lines[i].path);
        free(lines);
        modtrim_firmware_done(fw.v, fw.n);
        free(fw.v);
        return r;
}
