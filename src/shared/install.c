/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libfdisk.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <blkid.h>

#include "fileio.h"
#include "gpt.h"
#include "install.h"
#include "spawn.h"
#include "strutil.h"

#define COPY_CHUNK (1U << 20)

/* ---- settings from the kernel command line ------------------------------ */

void install_settings_done(InstallSettings *s) {
        if (!s)
                return;
        s->disk = mfree(s->disk);
        s->root_size = mfree(s->root_size);
}

static bool disk_path_ok(const char *v) {
        return string_has_prefix(v, "/dev/") && strlen(v) > 5 && strlen(v) < 128 && !strstr(v, "..") &&
               string_is_safe_token(v + 5, "/-_.:+");
}

int install_settings_from_cmdline(const char *cmdline, InstallSettings *ret, char **ret_error) {
        _cleanup_free_ char *copy = strdup(cmdline ?: "");
        InstallSettings s = {};
        char q[STRING_QUOTE_SIZE], *save = NULL;
        int r = 0;

        if (!copy)
                return -ENOMEM;
        for (char *w = strtok_r(copy, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) {
                if (!string_has_prefix(w, "hull.install."))
                        continue;
                char *key = w + strlen("hull.install."), *eq = strchr(key, '=');
                const char *v = eq ? eq + 1 : "";
                if (eq)
                        *eq = '\0';
                if (streq(key, "disk")) {
                        if (!streq(v, "auto") && !disk_path_ok(v)) {
                                r = error_set(ret_error, -EINVAL, "hull.install.disk=%s: expected auto or /dev/NAME",
                                              string_quote(q, v));
                                break;
                        }
                        free(s.disk);
                        if (!(s.disk = strdup(v))) {
                                r = -ENOMEM;
                                break;
                        }
                } else if (streq(key, "root-size")) {
                        uint64_t sz;
                        if (!streq(v, "max") && (parse_size(v, &sz) < 0 || sz == 0)) {
                                r = error_set(ret_error, -EINVAL,
                                              "hull.install.root-size=%s: expected max or a size such as 100G",
                                              string_quote(q, v));
                                break;
                        }
                        free(s.root_size);
                        if (!(s.root_size = strdup(v))) {
                                r = -ENOMEM;
                                break;
                        }
                } else if (streq(key, "force")) {
                        if (streq(v, "1") || streq(v, "yes") || streq(v, "true"))
                                s.force = true;
                        else if (streq(v, "0") || streq(v, "no") || streq(v, "false"))
                                s.force = false;
                        else {
                                r = error_set(ret_error, -EINVAL, "hull.install.force=%s: expected 1 or 0",
                                              string_quote(q, v));
                                break;
                        }
                } else {
                        r = error_set(ret_error, -EINVAL,
                                      "unknown option hull.install.%s (known: disk, root-size, force)", string_quote(q, key));
                        break;
                }
        }
        if (r >= 0 && !s.disk && !(s.disk = strdup("auto")))
                r = -ENOMEM;
        if (r < 0) {
                install_settings_done(&s);
                return r;
        }
        *ret = s;
        return 0;
}

/* ---- install.json ------------------------------------------------------- */

void install_media_done(InstallMedia *m) {
        if (!m)
                return;
        free(m->name);
        free(m->version);
        free(m->esp_image);
        free(m->root_image);
        free(m->config);
        *m = (InstallMedia) {};
}

static const char *const media_fields[] = {
        "config", "esp_image", "esp_image_size", "esp_size", "hull_install", "name",
        "persist_min", "root_image", "root_image_size", "root_size", "version",
};

static int media_string(json_t *o, const char *key, bool optional, bool file_name, char **ret, char **ret_error) {
        json_t *v = json_object_get(o, key);
        const char *s;

        if (!v && optional)
                return 0;
        if (!v || !json_is_string(v))
                return error_set(ret_error, -EBADMSG, "install.json: \"%s\" must be a string", key);
        s = json_string_value(v);
        if (strlen(s) != json_string_length(v) || strlen(s) == 0 || strlen(s) > 128 ||
            !string_is_safe_token(s, "-_.+~") || (file_name && s[0] == '.'))
                return error_set(ret_error, -EBADMSG, "install.json: \"%s\" is empty, too long or has unsafe characters",
                                 key);
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int media_size(json_t *o, const char *key, uint64_t *ret, char **ret_error) {
        json_t *v = json_object_get(o, key);
        if (!v || !json_is_integer(v) || json_integer_value(v) <= 0)
                return error_set(ret_error, -EBADMSG, "install.json: \"%s\" must be a positive integer", key);
        *ret = (uint64_t) json_integer_value(v);
        return 0;
}

int install_media_parse(const char *json, size_t len, InstallMedia *ret, char **ret_error) {
        json_t *root, *v;
        json_error_t e;
        const char *key;
        InstallMedia m = {};
        int r = 0;

        root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &e);
        if (!root)
                return error_set(ret_error, -EBADMSG, "install.json: %s (line %d)", e.text, e.line);
        if (!json_is_object(root)) {
                json_decref(root);
                return error_set(ret_error, -EBADMSG, "install.json: not a JSON object");
        }
        json_object_foreach(root, key, v) {
                bool known = false;
                for (size_t i = 0; i < ELEMENTSOF(media_fields); i++)
                        known = known || streq(key, media_fields[i]);
                if (!known) {
                        char q[STRING_QUOTE_SIZE];
                        r = error_set(ret_error, -EBADMSG, "install.json: unknown field %s", string_quote(q, key));
                        goto fail;
                }
        }
        v = json_object_get(root, "hull_install");
        if (!v || !json_is_integer(v) || json_integer_value(v) != 1) {
                r = error_set(ret_error, -EBADMSG, "install.json: \"hull_install\" must be 1 (made by another hull-build?)");
                goto fail;
        }
        if ((r = media_string(root, "name", false, false, &m.name, ret_error)) < 0 ||
            (r = media_string(root, "version", false, false, &m.version, ret_error)) < 0 ||
            (r = media_string(root, "esp_image", false, true, &m.esp_image, ret_error)) < 0 ||
            (r = media_string(root, "root_image", false, true, &m.root_image, ret_error)) < 0 ||
            (r = media_string(root, "config", true, true, &m.config, ret_error)) < 0 ||
            (r = media_size(root, "esp_size", &m.esp_size, ret_error)) < 0 ||
            (r = media_size(root, "root_size", &m.root_size, ret_error)) < 0 ||
            (r = media_size(root, "persist_min", &m.persist_min, ret_error)) < 0 ||
            (r = media_size(root, "root_image_size", &m.root_image_size, ret_error)) < 0 ||
            (r = media_size(root, "esp_image_size", &m.esp_image_size, ret_error)) < 0)
                goto fail;
        if (m.esp_image_size > m.esp_size || m.root_image_size > m.root_size) {
                r = error_set(ret_error, -EBADMSG, "install.json: an image is larger than its partition");
                goto fail;
        }
        json_decref(root);
        *ret = m;
        return 0;
fail:
        json_decref(root);
        install_media_done(&m);
        return r;
}

int install_media_format(const InstallMedia *m, char **ret) {
        json_t *o = json_pack("{s:i,s:s,s:s,s:I,s:I,s:I,s:s,s:I,s:s,s:I}", "hull_install", 1, "name", m->name, "version",
                              m->version, "esp_size", (json_int_t) m->esp_size, "root_size", (json_int_t) m->root_size,
                              "persist_min", (json_int_t) m->persist_min, "root_image", m->root_image, "root_image_size",
                              (json_int_t) m->root_image_size, "esp_image", m->esp_image, "esp_image_size",
                              (json_int_t) m->esp_image_size);
        if (!o)
                return -ENOMEM;
        if (m->config && json_object_set_new(o, "config", json_string(m->config)) < 0) {
                json_decref(o);
                return -ENOMEM;
        }
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(o);
        if (!s)
                return -ENOMEM;
        /* A file ends in a newline. */
        char *n = NULL;
        if (asprintf(&n, "%s\n", s) < 0)
                n = NULL;
        free(s);
        if (!n)
                return -ENOMEM;
        *ret = n;
        return 0;
}

/* ---- choosing the disk -------------------------------------------------- */

bool install_disk_name_is_virtual(const char *name) {
        static const char *const prefixes[] = { "loop", "ram", "sr", "dm-", "md", "zram", "nbd", "fd", NULL };
        for (const char *const *p = prefixes; *p; p++)
                if (string_has_prefix(name, *p))
                        return true;
        return false;
}

static bool candidate_eligible(const InstallCandidate *c) {
        return !install_disk_name_is_virtual(c->name) && !c->removable && !c->read_only && !c->is_medium && c->size > 0;
}

static const char *candidate_reason(const InstallCandidate *c) {
        if (c->is_medium)
                return "the installer medium";
        if (install_disk_name_is_virtual(c->name))
                return "virtual";
        if (c->removable)
                return "removable";
        if (c->read_only)
                return "read-only";
        if (c->size == 0)
                return "no medium";
        return NULL;
}

/* "vda (4.0 GiB), sdb (16 GiB, removable)"; eligible_only: just the candidates. */
static char *list_disks(const InstallCandidate *c, size_t n, bool eligible_only) {
        char *s = strdup("");
        for (size_t i = 0; s && i < n; i++) {
                char b[32], *t;
                const char *why = candidate_reason(&c[i]);
                if (eligible_only && !candidate_eligible(&c[i]))
                        continue;
                if (asprintf(&t, "%s%s/dev/%s (%s%s%s)", s, s[0] ? ", " : "", c[i].name, format_bytes(b, sizeof(b), c[i].size),
                             why && !eligible_only ? ", " : "", why && !eligible_only ? why : "") < 0)
                        t = NULL;
                free(s);
                s = t;
        }
        return s;
}

int install_pick_disk(const InstallCandidate *c, size_t n, const char *want, size_t *ret_index, char **ret_error) {
        _cleanup_free_ char *all = list_disks(c, n, false);
        char q[STRING_QUOTE_SIZE];

        if (!all)
                return -ENOMEM;
        if (isempty(want) || streq(want, "auto")) {
                size_t found = SIZE_MAX, count = 0;
                for (size_t i = 0; i < n; i++)
                        if (candidate_eligible(&c[i])) {
                                found = i;
                                count++;
                        }
                if (count == 0)
                        return error_set(ret_error, -ENODEV, "no disk to install onto (seen: %s); name one with hull.install.disk=/dev/NAME",
                                         all[0] ? all : "none");
                if (count > 1) {
                        _cleanup_free_ char *cands = list_disks(c, n, true);
                        return error_set(ret_error, -ENOTUNIQ,
                                         "%zu disks could be the target: %s; choose one with hull.install.disk=/dev/NAME",
                                         count, cands ?: "?");
                }
                *ret_index = found;
                return 0;
        }

        if (!string_has_prefix(want, "/dev/"))
                return error_set(ret_error, -EINVAL, "hull.install.disk=%s: expected auto or /dev/NAME", string_quote(q, want));
        for (size_t i = 0; i < n; i++) {
                if (!streq(c[i].name, want + 5))
                        continue;
                if (c[i].is_medium)
                        return error_set(ret_error, -EBUSY, "%s holds the installer medium; refusing to install onto it", want);
                if (c[i].read_only)
                        return error_set(ret_error, -EROFS, "%s is read-only", want);
                if (c[i].size == 0)
                        return error_set(ret_error, -ENOMEDIUM, "%s has no medium (size 0)", want);
                *ret_index = i;
                return 0;
        }
        return error_set(ret_error, -ENOENT, "disk %s not found (seen: %s)", string_quote(q, want), all[0] ? all : "none");
}

int install_check_other_disks(const InstallCandidate *c, size_t n, size_t target, char **ret_error) {
        for (size_t i = 0; i < n; i++)
                if (i != target && !c[i].is_medium && !install_disk_name_is_virtual(c[i].name) && c[i].hull_partition)
                        return error_set(ret_error, -EEXIST,
                                         "/dev/%s holds another Hull installation (partition %s); with two, the machine "
                                         "could boot either, since Hull finds its partitions by name. Wipe or remove "
                                         "/dev/%s first",
                                         c[i].name, c[i].hull_partition, c[i].name);
        return 0;
}

int install_check_data(const char *disk, const char *what, bool force, char **ret_error) {
        if (!what || force)
                return 0;
        return error_set(ret_error, -EEXIST,
                         "%s holds data (%s); refusing to overwrite it. Wipe it, or boot the installer with "
                         "hull.install.force=1 to overwrite it",
                         disk, what);
}

/* ---- layout ------------------------------------------------------------- */

int install_plan_layout(uint64_t disk_size, const InstallMedia *m, const char *root_size, DiskLayout *ret,
                        char **ret_error) {
        uint64_t root_max, need_root = ALIGN_TO(m->root_image_size, LAYOUT_ALIGN), want_root;
        char b1[32], b2[32], b3[32], q[STRING_QUOTE_SIZE];
        DiskLayout l;
        int r;

        if (!root_size)
                want_root = root_max = ALIGN_TO(m->root_size, LAYOUT_ALIGN);
        else if (streq(root_size, "max"))
                want_root = need_root, root_max = 0;
        else {
                if (parse_size(root_size, &root_max) < 0 || root_max == 0)
                        return error_set(ret_error, -EINVAL, "root size %s: expected max or a size such as 100G",
                                         string_quote(q, root_size));
                root_max = ALIGN_TO(root_max, LAYOUT_ALIGN);
                if (root_max < need_root)
                        return error_set(ret_error, -EINVAL, "root size %s is smaller than the root image (%s)",
                                         format_bytes(b1, sizeof(b1), root_max), format_bytes(b2, sizeof(b2), need_root));
                want_root = root_max;
        }
        want_root = MAX(want_root, need_root);

        /* The smallest disk that holds what was asked. */
        uint64_t esp = ALIGN_TO(m->esp_size, LAYOUT_ALIGN), persist = ALIGN_TO(m->persist_min, LAYOUT_ALIGN);
        uint64_t minimum = LAYOUT_HEAD + esp + 2 * want_root + persist + LAYOUT_TAIL;

        r = layout_for_disk(disk_size, esp, root_max, persist, &l);
        if (r == -ENOSPC || (r >= 0 && l.part[PART_ROOT_A].size < want_root))
                return error_set(ret_error, -ENOSPC,
                                 "the disk (%s) is too small: it needs at least %s for two %s root partitions, the ESP "
                                 "and %s of persist%s",
                                 format_bytes(b1, sizeof(b1), disk_size), format_bytes(b2, sizeof(b2), minimum),
                                 format_bytes(b3, sizeof(b3), want_root), format_bytes(q, sizeof(q), persist),
                                 root_size ? "" : " (hull.install.root-size=max sizes the roots to the disk)");
        if (r < 0)
                return error_set(ret_error, r, "cannot lay out the disk: %s", strerror(-r));
        *ret = l;
        return 0;
}

/* ---- reading the image -------------------------------------------------- */

DEFINE_TRIVIAL_CLEANUP_FUNC(struct fdisk_context *, fdisk_unref_context);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct fdisk_table *, fdisk_unref_table);

int install_read_image_layout(const char *image, DiskLayout *ret) {
        _cleanup_(fdisk_unref_contextp) struct fdisk_context *ctx = fdisk_new_context();
        _cleanup_(fdisk_unref_tablep) struct fdisk_table *tb = NULL;
        static const char *const labels[_PART_MAX] = {
                [PART_ESP] = LABEL_ESP, [PART_ROOT_A] = LABEL_ROOT_A,
                [PART_ROOT_B] = LABEL_ROOT_B, [PART_PERSIST] = LABEL_PERSIST,
        };
        static const char *const types[_PART_MAX] = {
                [PART_ESP] = GPT_TYPE_ESP, [PART_ROOT_A] = GPT_TYPE_ROOT_X86_64,
                [PART_ROOT_B] = GPT_TYPE_ROOT_X86_64, [PART_PERSIST] = GPT_TYPE_VAR,
        };
        DiskLayout l = {};
        bool seen[_PART_MAX] = {};
        int r;

        if (!ctx)
                return -ENOMEM;
        r = fdisk_assign_device(ctx, image, 1);
        if (r < 0)
                return r;
        if (!fdisk_is_labeltype(ctx, FDISK_DISKLABEL_GPT)) {
                (void) fdisk_deassign_device(ctx, 1);
                return -EBADMSG;
        }
        uint64_t ss = fdisk_get_sector_size(ctx);
        l.disk_size = fdisk_get_nsectors(ctx) * ss;
        r = fdisk_get_partitions(ctx, &tb);
        for (size_t i = 0; r >= 0 && i < fdisk_table_get_nents(tb); i++) {
                struct fdisk_partition *pa = fdisk_table_get_partition(tb, i);
                const char *name = pa ? fdisk_partition_get_name(pa) : NULL;
                if (!name || !fdisk_partition_has_start(pa) || !fdisk_partition_has_size(pa))
                        continue;
                for (int p = 0; p < _PART_MAX; p++)
                        if (streq(name, labels[p])) {
                                l.part[p] = (Partition) {
                                        .label = labels[p],
                                        .type_uuid = types[p],
                                        .offset = fdisk_partition_get_start(pa) * ss,
                                        .size = fdisk_partition_get_size(pa) * ss,
                                };
                                seen[p] = true;
                        }
        }
        (void) fdisk_deassign_device(ctx, 1);
        if (r < 0)
                return r;
        for (int p = 0; p < _PART_MAX; p++)
                if (!seen[p])
                        return -EBADMSG;
        *ret = l;
        return 0;
}

int install_probe_data(const char *device, char **ret_what) {
        blkid_probe pr = blkid_new_probe_from_filename(device);
        const char *v = NULL;
        char *what = NULL;
        int r;

        if (!pr)
                return errno > 0 ? -errno : -EIO;
        (void) blkid_probe_enable_superblocks(pr, 1);
        (void) blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
        (void) blkid_probe_enable_partitions(pr, 1);
        (void) blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);
        r = blkid_do_safeprobe(pr);
        if (r == -2)
                what = strdup("several conflicting signatures");
        else if (r == 0 && blkid_probe_lookup_value(pr, "PTTYPE", &v, NULL) == 0 && v) {
                if (asprintf(&what, "%s partition table", v) < 0)
                        what = NULL;
        } else if (r == 0 && blkid_probe_lookup_value(pr, "TYPE", &v, NULL) == 0 && v) {
                if (asprintf(&what, "%s signature", v) < 0)
                        what = NULL;
        } else if (r == 0)
                what = strdup("an unidentified signature");
        blkid_free_probe(pr);
        if (r == -1)
                return -EIO;
        if (r != 1 && !what)
                return -ENOMEM;
        *ret_what = what;
        return 0;
}

/* ---- copying ------------------------------------------------------------ */

int install_copy_range(int in_fd, uint64_t in_offset, int out_fd, uint64_t out_offset, uint64_t size) {
        _cleanup_free_ char *buf = malloc(COPY_CHUNK);
        if (!buf)
                return -ENOMEM;
        (void) posix_fadvise(in_fd, (off_t) in_offset, (off_t) size, POSIX_FADV_SEQUENTIAL);
        while (size > 0) {
                size_t want = (size_t) MIN(size, (uint64_t) COPY_CHUNK), got = 0;
                while (got < want) {
                        ssize_t n = pread(in_fd, buf + got, want - got, (off_t) (in_offset + got));
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                return -errno;
                        if (n == 0)
                                return -ENODATA;
                        got += (size_t) n;
                }
                for (size_t done = 0; done < want;) {
                        ssize_t n = pwrite(out_fd, buf + done, want - done, (off_t) (out_offset + done));
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                return -errno;
                        done += (size_t) n;
                }
                in_offset += want;
                out_offset += want;
                size -= want;
        }
        return 0;
}

static int write_zeros(int fd, uint64_t offset, uint64_t size) {
        _cleanup_free_ char *buf = calloc(1, COPY_CHUNK);
        if (!buf)
                return -ENOMEM;
        while (size > 0) {
                size_t n = (size_t) MIN(size, (uint64_t) COPY_CHUNK);
                ssize_t w = pwrite(fd, buf, n, (off_t) offset);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return w < 0 ? -errno : -EIO;
                offset += (uint64_t) w;
                size -= (uint64_t) w;
        }
        return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(ZSTD_CCtx *, ZSTD_freeCCtx);
DEFINE_TRIVIAL_CLEANUP_FUNC(ZSTD_DCtx *, ZSTD_freeDCtx);

int install_compress_range(int in_fd, uint64_t offset, uint64_t size, int out_fd, int level) {
        _cleanup_(ZSTD_freeCCtxp) ZSTD_CCtx *cc = ZSTD_createCCtx();
        size_t in_cap = ZSTD_CStreamInSize(), out_cap = ZSTD_CStreamOutSize();
        _cleanup_free_ char *in = malloc(in_cap), *out = malloc(out_cap);
        int r;

        if (!cc || !in || !out)
                return -ENOMEM;
        if (ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level)) ||
            ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(cc, size)))
                return -EINVAL;
        (void) ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
        for (;;) {
                size_t n = (size_t) MIN(size, (uint64_t) in_cap);
                ssize_t got = n > 0 ? pread(in_fd, in, n, (off_t) offset) : 0;
                if (got < 0)
                        return -errno;
                if (n > 0 && got == 0)
                        return -ENODATA;
                offset += (uint64_t) got;
                size -= (uint64_t) got;
                ZSTD_EndDirective mode = size == 0 ? ZSTD_e_end : ZSTD_e_continue;
                ZSTD_inBuffer ib = { in, (size_t) got, 0 };
                bool finished;
                do {
                        ZSTD_outBuffer ob = { out, out_cap, 0 };
                        size_t left = ZSTD_compressStream2(cc, &ob, &ib, mode);
                        if (ZSTD_isError(left))
                                return -EIO;
                        if ((r = loop_write(out_fd, out, ob.pos)) < 0)
                                return r;
                        finished = mode == ZSTD_e_end ? left == 0 : ib.pos == ib.size;
                } while (!finished);
                if (mode == ZSTD_e_end)
                        return 0;
        }
}

int install_decompress_to(int in_fd, int out_fd, uint64_t offset, uint64_t max, uint64_t *ret_size) {
        _cleanup_(ZSTD_freeDCtxp) ZSTD_DCtx *dc = ZSTD_createDCtx();
        size_t in_cap = ZSTD_DStreamInSize(), out_cap = ZSTD_DStreamOutSize();
        _cleanup_free_ char *in = malloc(in_cap), *out = malloc(out_cap);
        uint64_t written = 0;
        size_t last = 1;

        if (!dc || !in || !out)
                return -ENOMEM;
        for (;;) {
                ssize_t got = read(in_fd, in, in_cap);
                if (got < 0 && errno == EINTR)
                        continue;
                if (got < 0)
                        return -errno;
                if (got == 0)
                        break;
                ZSTD_inBuffer ib = { in, (size_t) got, 0 };
                while (ib.pos < ib.size) {
                        ZSTD_outBuffer ob = { out, out_cap, 0 };
                        last = ZSTD_decompressStream(dc, &ob, &ib);
                        if (ZSTD_isError(last))
                                return -EBADMSG;
                        if (ob.pos > max - written)
                                return -EFBIG;
                        for (size_t done = 0; done < ob.pos;) {
                                ssize_t w = pwrite(out_fd, out + done, ob.pos - done, (off_t) (offset + written + done));
                                if (w < 0 && errno == EINTR)
                                        continue;
                                if (w < 0)
                                        return -errno;
                                done += (size_t) w;
                        }
                        written += ob.pos;
                }
        }
        /* last == 0: the frame ended where the input did. */
        if (last != 0)
                return -EBADMSG;
        if (ret_size)
                *ret_size = written;
        return 0;
}

/* ---- writing the disk --------------------------------------------------- */

static void progress(const InstallWrite *w, InstallStep step, const char *what) {
        if (w->progress)
                w->progress(step, what, w->userdata);
}

/* The persist file system, made with mkfs.ext4 right inside the disk at the
 * partition's offset (no partition device node needed, so this works on a
 * disk image, a loop device without partition scanning, and a disk the
 * kernel has not re-read yet), pre-filled from a seed directory. */
static int make_persist(const InstallWrite *w, char **ret_error) {
        const Partition *p = &w->layout->part[PART_PERSIST];
        _cleanup_free_ char *seed = NULL, *hull = NULL, *prov = NULL, *cfg = NULL, *ext = NULL, *size = NULL;
        int r;

        if (asprintf(&seed, "%s/persist-seed", w->tmp_dir) < 0 || asprintf(&hull, "%s/hull", seed) < 0 ||
            asprintf(&prov, "%s/provision", hull) < 0 || asprintf(&cfg, "%s/config.json", prov) < 0 ||
            asprintf(&ext, "offset=%llu,nodiscard", (unsigned long long) p->offset) < 0 ||
            asprintf(&size, "%lluk", (unsigned long long) (p->size / 1024)) < 0)
                return -ENOMEM;
        if (mkdir(seed, 0755) < 0 && errno != EEXIST)
                return error_set(ret_error, -errno, "cannot create %s: %s", seed, strerror(errno));
        if (w->config) {
                if ((mkdir(hull, 0755) < 0 && errno != EEXIST) || (mkdir(prov, 0700) < 0 && errno != EEXIST) ||
                    chmod(prov, 0700) < 0)
                        return error_set(ret_error, -errno, "cannot create %s: %s", prov, strerror(errno));
                r = write_file_atomic(cfg, w->config, w->config_len, 0600);
                if (r < 0)
                        return error_set(ret_error, r, "cannot write %s: %s", cfg, strerror(-r));
        }
        char *argv[] = { (char *) "mkfs.ext4", (char *) "-q", (char *) "-F", (char *) "-L", (char *) LABEL_PERSIST,
                         (char *) "-E", ext, (char *) "-d", seed, (char *) w->device, size, NULL };
        _cleanup_free_ char *out = NULL;
        r = spawn_capture(argv, &(SpawnOptions) { .output_fd = -1 }, 4096, &out);
        if (r != 0)
                return error_set(ret_error, r < 0 ? r : -EIO, "mkfs.ext4 for the persist partition failed (%s%d)",
                                 r < 0 ? "" : "exit status ", r < 0 ? -r : r);
        return 0;
}

int install_write_disk(const InstallWrite *w, char **ret_error) {
        const DiskLayout *l = w->layout;
        struct stat st;
        uint64_t esp_written = 0;
        int r;

        _cleanup_close_ int fd = open(w->device, O_RDWR | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0)
                return error_set(ret_error, -errno, "cannot open %s: %s", w->device, strerror(errno));
        if (w->root_size > l->part[PART_ROOT_A].size)
                return error_set(ret_error, -ENOSPC, "the root image does not fit its partition");
        if (w->esp_max > l->part[PART_ESP].size)
                return error_set(ret_error, -ENOSPC, "the ESP image does not fit its partition");

        /* Old signatures at the very start and end (a previous GPT, an ISO
         * or RAID superblock) would otherwise survive next to the new table. */
        progress(w, INSTALL_STEP_GPT, "writing the partition table");
        if ((r = write_zeros(fd, 0, LAYOUT_HEAD)) < 0 || (r = write_zeros(fd, l->disk_size - LAYOUT_TAIL, LAYOUT_TAIL)) < 0 ||
            fsync(fd) < 0)
                return error_set(ret_error, r < 0 ? r : -errno, "cannot wipe the old partition table on %s: %s", w->device,
                                 strerror(r < 0 ? -r : errno));
        r = gpt_write_layout(w->device, l);
        if (r < 0)
                return error_set(ret_error, r, "cannot write the GPT to %s: %s", w->device, strerror(-r));

        progress(w, INSTALL_STEP_ESP, "writing the EFI system partition");
        r = install_decompress_to(w->esp_fd, fd, l->part[PART_ESP].offset, MIN(w->esp_max, l->part[PART_ESP].size),
                                  &esp_written);
        if (r < 0)
                return error_set(ret_error, r, "cannot write the ESP: %s",
                                 r == -EBADMSG ? "the ESP image on the medium is corrupt" : strerror(-r));

        progress(w, INSTALL_STEP_ROOT_A, "writing root A");
        r = install_copy_range(w->root_fd, 0, fd, l->part[PART_ROOT_A].offset, w->root_size);
        if (r < 0)
                return error_set(ret_error, r, "cannot write root A: %s",
                                 r == -ENODATA ? "the root image on the medium is truncated" : strerror(-r));

        /* Root B stays empty until the first update; no stale file system
         * there may look like a bootable slot. */
        progress(w, INSTALL_STEP_ROOT_B, "blanking root B");
        r = write_zeros(fd, l->part[PART_ROOT_B].offset, LAYOUT_ALIGN);
        if (r >= 0)
                r = write_zeros(fd, l->part[PART_PERSIST].offset, LAYOUT_ALIGN);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0)
                return error_set(ret_error, r, "cannot write to %s: %s", w->device, strerror(-r));

        progress(w, INSTALL_STEP_PERSIST, w->config ? "making persist (ext4) with the machine config" : "making persist (ext4)");
        r = make_persist(w, ret_error);
        if (r < 0)
                return r;

        progress(w, INSTALL_STEP_SYNC, "syncing");
        if (fsync(fd) < 0)
                return error_set(ret_error, -errno, "cannot sync %s: %s", w->device, strerror(errno));
        if (S_ISBLK(st.st_mode))
                (void) ioctl(fd, BLKRRPART, 0); /* fails harmlessly where there is no partition scanning */
        return 0;
}
