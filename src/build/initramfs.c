/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The initramfs of boot.initramfs: hull. The module index is modtrim's
 * (src/shared/modtrim.h), the one the trimming of kernel.modules reads. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cpio.h"
#include "fileio.h"
#include "initramfs.h"
#include "spawn.h"
#include "strutil.h"

/* The storage classes of the design (docs/BUILDER.md): virtio, nvme, ahci,
 * scsi HBAs, hyperv, vmware, xen, usb. */
char * const initramfs_default_storage[] = {
        "virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod",
        "nvme",
        "ahci", "ata_piix",
        "megaraid_sas", "mpt3sas", "smartpqi", "hpsa",
        "hv_storvsc",
        "vmw_pvscsi",
        "xen-blkfront",
        "usb-storage", "uas", "xhci_pci", "ehci_pci",
        NULL,
};

/* hull.live=: the installer ISO on a CD or USB stick, or the PXE root.img
 * on a loop device. */
char * const initramfs_default_live[] = {
        "loop", "isofs", "sr_mod", "cdrom", "usb-storage", "uas", "xhci_pci", "ehci_pci", NULL,
};

/* Modalias prefixes of the buses hull-initrd scans for storage devices. */
static const char *const alias_buses[] = { "pci:", "virtio:", "scsi:", "usb:", "xen:", "vmbus:" };

static int grow(void **array, size_t n, size_t elem) {
        /* Double at powers of two: amortised appends without a capacity field. */
        if (n == 0 || (n & (n - 1)) == 0) {
                void *a = realloc(*array, (n == 0 ? 1 : 2 * n) * elem);
                if (!a)
                        return -ENOMEM;
                *array = a;
        }
        return 0;
}

/* ---- planning ----------------------------------------------------------- */

typedef struct Planner {
        const ModTrim *t;
        InitramfsPlan *plan;
        size_t *plan_of;        /* index module -> plan index + 1, 0 if not yet */
        bool *visiting;
        char **error;
} Planner;

static int add_module(Planner *pl, size_t mi, InitramfsClass class, size_t *ret);

static int add_dep_index(size_t **deps, size_t *n, size_t d) {
        for (size_t i = 0; i < *n; i++)
                if ((*deps)[i] == d)
                        return 0;
        if (grow((void **) deps, *n, sizeof(size_t)) < 0)
                return -ENOMEM;
        (*deps)[(*n)++] = d;
        return 0;
}

static int add_module(Planner *pl, size_t mi, InitramfsClass class, size_t *ret) {
        const ModTrimModule *im = &pl->t->modules[mi];
        _cleanup_free_ size_t *deps = NULL, *softs = NULL;
        size_t n_deps = 0, n_softs = 0, d;
        int r;

        if (pl->plan_of[mi]) {
                InitramfsModule *e = &pl->plan->modules[pl->plan_of[mi] - 1];
                if (class < e->class)
                        e->class = class;
                *ret = pl->plan_of[mi] - 1;
                return 0;
        }
        if (pl->visiting[mi])
                return error_set(pl->error, -ELOOP, "module %s depends on itself", im->name);
        pl->visiting[mi] = true;

        /* softdep pre: first (libcrc32c needs a crc32c driver it cannot ask
         * for: there is no modprobe to serve request_module()). */
        for (char **p = im->softdeps_pre; p && *p; p++) {
                _cleanup_free_ size_t *found = NULL;
                size_t n;
                if ((r = modtrim_lookup(pl->t, *p, &found, &n, NULL)) < 0)
                        return r;
                for (size_t k = 0; k < n; k++)
                        if ((r = add_module(pl, found[k], INITRAMFS_DEP, &d)) < 0 ||
                            (r = add_dep_index(&softs, &n_softs, d)) < 0)
                                return r;
        }
        /* modules.dep lists the whole closure; visiting each keeps every
         * dependency ahead of its users whatever the line's order. */
        for (size_t j = 0; j < im->n_deps; j++)
                if ((r = add_module(pl, im->deps[j], INITRAMFS_DEP, &d)) < 0 ||
                    (r = add_dep_index(&deps, &n_deps, d)) < 0)
                        return r;

        InitramfsPlan *p = pl->plan;
        if (grow((void **) &p->modules, p->n_modules, sizeof(InitramfsModule)) < 0)
                return -ENOMEM;
        InitramfsModule *e = &p->modules[p->n_modules];
        *e = (InitramfsModule) { .name = strdup(im->name), .path = strdup(im->path), .class = class,
                                 .deps = TAKE_PTR(deps), .n_deps = n_deps, .softs = TAKE_PTR(softs),
                                 .n_softs = n_softs };
        p->n_modules++;
        if (!e->name || !e->path)
                return -ENOMEM;
        pl->plan_of[mi] = p->n_modules;
        pl->visiting[mi] = false;
        *ret = p->n_modules - 1;
        return 0;
}

static int plan_list(Planner *pl, char * const *names, InitramfsClass class) {
        int r;

        for (char * const *n = names; n && *n; n++) {
                _cleanup_free_ size_t *found = NULL;
                size_t k, d;
                bool builtin;
                if ((r = modtrim_lookup(pl->t, *n, &found, &k, &builtin)) < 0)
                        return r;
                if (k == 0 && !builtin) {
                        if (class == INITRAMFS_REQUIRED)
                                return error_set(pl->error, -ENOENT,
                                                 "the kernel has no module %s, neither loadable nor built in", *n);
                        char **l = strv_append(pl->plan->missing, *n);
                        if (!l)
                                return -ENOMEM;
                        pl->plan->missing = l;
                        continue;
                }
                for (size_t i = 0; i < k; i++)
                        if ((r = add_module(pl, found[i], class, &d)) < 0)
                                return r;
        }
        return 0;
}

static int collect_aliases(const ModTrim *t, InitramfsModule *e) {
        for (size_t a = 0; a < t->n_aliases; a++) {
                const char *pattern = t->aliases[a].pattern;
                if (!streq(t->modules[t->aliases[a].module].name, e->name))
                        continue;
                bool bus = false;
                for (size_t b = 0; b < ELEMENTSOF(alias_buses); b++)
                        bus = bus || string_has_prefix(pattern, alias_buses[b]);
                /* initrd.conf separates fields with spaces. */
                if (!bus || strpbrk(pattern, " \t"))
                        continue;
                char **l = strv_append(e->aliases, pattern);
                if (!l)
                        return -ENOMEM;
                e->aliases = l;
        }
        return 0;
}

void initramfs_plan_done(InitramfsPlan *p) {
        for (size_t i = 0; i < p->n_modules; i++) {
                free(p->modules[i].name);
                free(p->modules[i].path);
                free(p->modules[i].deps);
                free(p->modules[i].softs);
                strv_free(p->modules[i].aliases);
        }
        free(p->modules);
        strv_free(p->missing);
        *p = (InitramfsPlan) {};
}

int initramfs_plan(const ModTrim *t, char * const *required, char * const *storage, char * const *live,
                   InitramfsPlan *ret, char **ret_error) {
        _cleanup_free_ size_t *plan_of = calloc(t->n_modules + 1, sizeof(size_t));
        _cleanup_free_ bool *visiting = calloc(t->n_modules + 1, sizeof(bool));
        InitramfsPlan p = {};
        Planner pl = { .t = t, .plan = &p, .plan_of = plan_of, .visiting = visiting, .error = ret_error };
        int r;

        if (!plan_of || !visiting)
                return -ENOMEM;
        if ((r = plan_list(&pl, required, INITRAMFS_REQUIRED)) < 0 || (r = plan_list(&pl, storage, INITRAMFS_STORAGE)) < 0 ||
            (r = plan_list(&pl, live, INITRAMFS_LIVE)) < 0)
                goto fail;
        for (size_t i = 0; i < p.n_modules; i++)
                if (p.modules[i].class == INITRAMFS_STORAGE && (r = collect_aliases(t, &p.modules[i])) < 0)
                        goto fail;
        *ret = p;
        return 0;
fail:
        initramfs_plan_done(&p);
        return r;
}

int initramfs_conf_format(const InitramfsPlan *p, const char *kver, const char *rootfstype, const char *build_id,
                          char **ret) {
        static const char *const classes[] = { "required", "storage", "live", "dep" };
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return -ENOMEM;
        fprintf(f, "hull-initrd-conf 1\n# Written by hull-build (docs/BUILDER.md); read by hull-initrd.\nkver %s\n", kver);
        if (rootfstype)
                fprintf(f, "rootfstype %s\n", rootfstype);
        if (build_id)
                fprintf(f, "build-id %s\n", build_id);
        for (size_t i = 0; i < p->n_modules; i++) {
                const InitramfsModule *m = &p->modules[i];
                fprintf(f, "module %s %s", classes[m->class], m->path);
                for (size_t d = 0; d < m->n_deps; d++)
                        fprintf(f, " dep=%s", p->modules[m->deps[d]].path);
                for (size_t d = 0; d < m->n_softs; d++)
                        fprintf(f, " soft=%s", p->modules[m->softs[d]].path);
                for (char **a = m->aliases; a && *a; a++)
                        fprintf(f, " alias=%s", *a);
                fputc('\n', f);
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}

/* ---- the archive -------------------------------------------------------- */

typedef struct Entry {
        char *name;
        mode_t mode;
        const char *source;     /* file to copy, or NULL */
        const char *data;       /* inline contents, or NULL */
        uint64_t size;
        unsigned rdev_major, rdev_minor;
} Entry;

typedef struct Entries {
        Entry *e;
        size_t n;
} Entries;

static void entries_done(Entries *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->e[i].name);
        free(l->e);
}

static bool entries_has(const Entries *l, const char *name) {
        for (size_t i = 0; i < l->n; i++)
                if (streq(l->e[i].name, name))
                        return true;
        return false;
}

static int entries_add(Entries *l, Entry e) {
        if (entries_has(l, e.name))
                return S_ISDIR(e.mode) ? 0 : -EEXIST;
        if (grow((void **) &l->e, l->n, sizeof(Entry)) < 0)
                return -ENOMEM;
        l->e[l->n] = e;
        l->e[l->n].name = strdup(e.name);
        if (!l->e[l->n].name)
                return -ENOMEM;
        l->n++;
        return 0;
}

/* Every parent directory of path, then path itself. */
static int entries_add_with_parents(Entries *l, Entry e) {
        _cleanup_free_ char *c = strdup(e.name);
        int r;

        if (!c)
                return -ENOMEM;
        for (char *s = strchr(c, '/'); s; s = strchr(s + 1, '/')) {
                *s = '\0';
                r = entries_add(l, (Entry) { .name = c, .mode = S_IFDIR | 0755 });
                *s = '/';
                if (r < 0)
                        return r;
        }
        return entries_add(l, e);
}

static int entry_cmp(const void *a, const void *b) {
        return strcmp(((const Entry *) a)->name, ((const Entry *) b)->name);
}

static int copy_into(int fd, const char *src, uint64_t size) {
        _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
        char buf[65536];
        uint64_t done = 0;

        if (in < 0)
                return -errno;
        while (done < size) {
                ssize_t l = read(in, buf, (size_t) MIN((uint64_t) sizeof(buf), size - done));
                if (l < 0)
                        return -errno;
                if (l == 0)
                        return -EIO; /* shrank under us */
                int r = loop_write(fd, buf, (size_t) l);
                if (r < 0)
                        return r;
                done += (uint64_t) l;
        }
        return 0;
}

static const char initrd_release[] = "NAME=\"Hull initrd\"\nID=hull-initrd\n";

int initramfs_write_cpio(int fd, const InitramfsOptions *o, const InitramfsPlan *p, const char *conf_text,
                         char **ret_error) {
        static const char *const dirs[] = { "dev", "proc", "sys", "run", "sysroot", "tmp", "etc", "usr/lib/hull" };
        _cleanup_(entries_done) Entries l = {};
        _cleanup_free_ char **paths = calloc(p->n_modules + 1, sizeof(char *));
        struct stat st;
        int r;

        if (!paths)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
                if ((r = entries_add_with_parents(&l, (Entry) { .name = (char *) dirs[i], .mode = S_IFDIR | 0755 })) < 0)
                        return r;
        /* The kernel opens /dev/console before it runs /init. */
        if ((r = entries_add(&l, (Entry) { .name = "dev/console", .mode = S_IFCHR | 0600, .rdev_major = 5,
                                           .rdev_minor = 1 })) < 0)
                return r;
        if (stat(o->initrd_binary, &st) < 0)
                return error_set(ret_error, -errno, "cannot find hull-initrd at '%s': %s", o->initrd_binary, strerror(errno));
        if ((r = entries_add(&l, (Entry) { .name = "init", .mode = S_IFREG | 0755, .source = o->initrd_binary,
                                           .size = (uint64_t) st.st_size })) < 0 ||
            (r = entries_add(&l, (Entry) { .name = "etc/initrd-release", .mode = S_IFREG | 0644, .data = initrd_release,
                                           .size = strlen(initrd_release) })) < 0 ||
            (r = entries_add(&l, (Entry) { .name = "usr/lib/hull/initrd.conf", .mode = S_IFREG | 0644,
                                           .data = conf_text, .size = strlen(conf_text) })) < 0)
                return r;

        for (size_t i = 0; i < p->n_modules; i++) {
                _cleanup_free_ char *name = NULL;
                if (asprintf(&name, "usr/lib/modules/%s/%s", o->kver, p->modules[i].path) < 0 ||
                    asprintf(&paths[i], "%s/%s", o->root, name) < 0)
                        return -ENOMEM;
                if (stat(paths[i], &st) < 0)
                        return error_set(ret_error, -errno, "cannot read module '%s': %s", paths[i], strerror(errno));
                if ((r = entries_add_with_parents(&l, (Entry) { .name = name, .mode = S_IFREG | 0644, .source = paths[i],
                                                                .size = (uint64_t) st.st_size })) < 0)
                        return r;
        }

        /* Bytewise order puts every directory before what it holds. */
        qsort(l.e, l.n, sizeof(Entry), entry_cmp);
        for (size_t i = 0; i < l.n; i++) {
                const Entry *e = &l.e[i];
                r = cpio_write_header(fd, &(CpioHeader) { .name = e->name, .mode = e->mode, .size = e->size,
                                                          .ino = (unsigned) i + 1, .mtime = o->mtime,
                                                          .rdev_major = e->rdev_major, .rdev_minor = e->rdev_minor });
                if (r < 0)
                        return error_set(ret_error, r, "cannot write the initramfs entry '%s': %s", e->name, strerror(-r));
                if (e->source)
                        r = copy_into(fd, e->source, e->size);
                else if (e->data)
                        r = loop_write(fd, e->data, e->size);
                if (r < 0)
                        return error_set(ret_error, r, "cannot copy '%s' into the initramfs: %s",
                                         e->source ?: e->name, strerror(-r));
                if ((r = cpio_write_pad(fd, e->size)) < 0)
                        return r;
        }
        for (size_t i = 0; i < p->n_modules; i++)
                free(paths[i]);
        return cpio_write_trailer(fd);
}

static int read_optional(const char *dir, const char *name, char **ret) {
        _cleanup_free_ char *p = path_join(dir, name);
        if (!p)
                return -ENOMEM;
        int r = read_full_file(p, MODTRIM_TEXT_MAX, ret, NULL);
        if (r == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        return r;
}

int initramfs_build(const InitramfsOptions *o, const char *out, char **ret_summary, char **ret_error) {
        _cleanup_free_ char *moddir = NULL, *dep = NULL, *softdep = NULL, *alias = NULL, *builtin = NULL;
        _cleanup_free_ char *conf = NULL, *cpio = NULL, *tmp = NULL;
        _cleanup_(modtrim_freep) ModTrim *t = NULL;
        _cleanup_(initramfs_plan_done) InitramfsPlan plan = {};
        int r;

        if (asprintf(&moddir, "%s/usr/lib/modules/%s", o->root, o->kver) < 0)
                return -ENOMEM;
        r = read_optional(moddir, "modules.dep", &dep);
        if (r >= 0 && !dep)
                r = -ENOENT;
        if (r < 0)
                return error_set(ret_error, r, "cannot read '%s/modules.dep' (was depmod run?): %s", moddir, strerror(-r));
        if ((r = read_optional(moddir, "modules.softdep", &softdep)) < 0 ||
            (r = read_optional(moddir, "modules.alias", &alias)) < 0 ||
            (r = read_optional(moddir, "modules.builtin", &builtin)) < 0)
                return error_set(ret_error, r, "cannot read the module index in '%s': %s", moddir, strerror(-r));
        r = modtrim_load(&(ModTrimSources) { dep, softdep, alias, builtin }, &t, ret_error);
        if (r < 0)
                return error_set_first(ret_error, r, "cannot parse the module index in '%s'", moddir);

        /* What early boot always needs: the root file system and dm-verity,
         * ext4 for /persist and overlay for /etc (nothing loads modules on
         * demand before udev runs in the real root). */
        char *required[] = { (char *) (o->verity ? "dm_verity" : "ext4"), (char *) o->rootfstype, "ext4", "overlay", NULL };
        r = initramfs_plan(t, required, o->storage ?: initramfs_default_storage, initramfs_default_live, &plan,
                           ret_error);
        if (r < 0)
                return r;
        r = initramfs_conf_format(&plan, o->kver, o->rootfstype, o->build_id, &conf);
        if (r < 0)
                return r;

        if (asprintf(&cpio, "%s.cpio.tmp", out) < 0 || asprintf(&tmp, "%s.tmp", out) < 0)
                return -ENOMEM;
        _cleanup_close_ int fd = open(cpio, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return error_set(ret_error, -errno, "cannot create '%s': %s", cpio, strerror(errno));
        r = initramfs_write_cpio(fd, o, &plan, conf, ret_error);
        fd = safe_close(fd);
        if (r < 0) {
                (void) unlink(cpio);
                return r;
        }

        /* -T1 and no --long: the same bytes for the same archive whatever
         * the build machine (only the zstd version can change them). */
        char *argv[] = { (char *) (o->zstd ?: "zstd"), "-q", "-f", "-19", "-T1", "-o", tmp, cpio, NULL };
        r = spawn_run(argv, &(SpawnOptions) { .output_fd = -1 });
        struct stat st_cpio = {}, st_out = {};
        (void) stat(cpio, &st_cpio);
        (void) unlink(cpio);
        if (r != 0) {
                (void) unlink(tmp);
                return error_set(ret_error, r < 0 ? r : -EPROTO, "zstd failed to compress the initramfs");
        }
        if (rename(tmp, out) < 0) {
                r = -errno;
                (void) unlink(tmp);
                return error_set(ret_error, r, "cannot rename '%s' to '%s': %s", tmp, out, strerror(-r));
        }
        if (ret_summary) {
                char b1[32], b2[32];
                _cleanup_free_ char *missing = strdup("");
                for (char **m = plan.missing; missing && m && *m; m++) {
                        char *n;
                        if (asprintf(&n, "%s %s", missing, *m) < 0)
                                return -ENOMEM;
                        free(missing);
                        missing = n;
                }
                (void) stat(out, &st_out);
                if (!missing || asprintf(ret_summary, "%zu modules, %s archive, %s zstd%s%s", plan.n_modules,
                                         format_bytes(b1, sizeof(b1), (uint64_t) st_cpio.st_size),
                                         format_bytes(b2, sizeof(b2), (uint64_t) st_out.st_size),
                                         missing[0] ? "; not in this kernel:" : "", missing) < 0)
                        return -ENOMEM;
        }
        return 0;
}
