/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <blkid.h>
#include <libfdisk.h>

#include "datadisk.h"
#include "fileio.h"
#include "spawn.h"
#include "strutil.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(blkid_probe, blkid_free_probe);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct fdisk_context *, fdisk_unref_context);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct fdisk_script *, fdisk_unref_script);

#define MIB (UINT64_C(1) << 20)
/* Where our one partition starts (sfdisk's and everyone's default). */
#define PARTITION_START MIB
/* Below these sizes mkfs refuses or makes something useless; mkfs.xfs
 * (xfsprogs 6.x) wants 300 MB. */
#define MIN_SIZE_EXT4 (16 * MIB)
#define MIN_SIZE_XFS (320 * MIB)
#define LABEL_MAX_EXT4 16
#define LABEL_MAX_XFS 12
#define OPTIONS_MAX 1024
#define TOOL_TIMEOUT_SEC 600
#define TOOL_OUTPUT_MAX 4096
/* GPT type "Linux filesystem data". */
#define GPT_TYPE_LINUX_FS "0FC63DAF-8483-4772-8E79-3D69D8477DE4"

/* GPT partition names of Hull's own boot disk (layout.h): a data disk is
 * never one of them, wipe or not. */
static const char *const boot_partition_names[] = { "hull-esp", "hull-root-a", "hull-root-b", "hull-persist" };

/* Mount points a data disk may not take: they hold the system or the
 * node's state, and mounting over them would hide it. Exact matches, and
 * for the second list anything below as well. */
static const char *const reserved_mounts[] = { "/", "/var", "/home", "/root", "/tmp", "/run", "/persist" };
static const char *const reserved_trees[] = { "/usr", "/etc", "/boot", "/proc", "/sys", "/dev", "/persist/hull",
                                               "/persist/etc", "/bin", "/sbin", "/lib", "/lib64" };

static const char *const action_names[_DATADISK_ACTION_MAX] = {
        [DATADISK_KEEP] = "keep",
        [DATADISK_FORMAT] = "format",
        [DATADISK_WIPE_AND_FORMAT] = "wipe-and-format",
};

const char *datadisk_action_to_string(DataDiskAction a) {
        return a >= 0 && a < _DATADISK_ACTION_MAX ? action_names[a] : NULL;
}

void datadisk_probe_done(DataDiskProbe *p) {
        if (!p)
                return;
        free(p->pttype);
        free(p->fstype);
        free(p->fslabel);
        free(p->fsuuid);
        free(p->part_fstype);
        free(p->part_fslabel);
        free(p->part_fsuuid);
        free(p->part_node);
        free(p->boot_partition);
        *p = (DataDiskProbe) {};
}

void datadisk_plan_done(DataDiskPlan *p) {
        if (!p)
                return;
        free(p->device);
        free(p->filesystem);
        free(p->label);
        free(p->mount);
        free(p->options);
        free(p->partition_node);
        free(p->uuid);
        free(p->unit_name);
        free(p->what);
        *p = (DataDiskPlan) {};
}

void datadisk_result_done(DataDiskResult *r) {
        if (!r)
                return;
        free(r->uuid);
        free(r->unit_name);
        *r = (DataDiskResult) {};
}

/* ---- unit names ---- */

static bool unit_char_ok(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' || c == '_' ||
               c == '.';
}

static bool path_normalised(const char *p) {
        if (!p || p[0] != '/')
                return false;
        if (streq(p, "/"))
                return true;
        if (p[strlen(p) - 1] == '/')
                return false;
        for (const char *c = p; *c;) {
                /* c points at a '/' */
                const char *e = strchrnul(c + 1, '/');
                size_t n = (size_t) (e - c - 1);
                if (n == 0 || (n == 1 && c[1] == '.') || (n == 2 && c[1] == '.' && c[2] == '.'))
                        return false;
                c = e;
        }
        return true;
}

int unit_name_path_escape(const char *path, char **ret) {
        if (!ret || !path_normalised(path))
                return -EINVAL;
        if (streq(path, "/")) {
                char *s = strdup("-");
                if (!s)
                        return -ENOMEM;
                *ret = s;
                return 0;
        }
        /* As systemd's unit_name_path_escape(): drop the leading slash,
         * slashes become '-', a leading '.' and every byte outside
         * [A-Za-z0-9:_.] (so '-' and '\' too) become \xNN. */
        const char *p = path + 1;
        char *s = malloc(strlen(p) * 4 + 1), *o = s;
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; p[i]; i++) {
                unsigned char c = (unsigned char) p[i];
                if (c == '/')
                        *o++ = '-';
                else if ((i == 0 && c == '.') || !unit_char_ok((char) c)) {
                        static const char hex[] = "0123456789abcdef";
                        *o++ = '\\';
                        *o++ = 'x';
                        *o++ = hex[c >> 4];
                        *o++ = hex[c & 15];
                } else
                        *o++ = (char) c;
        }
        *o = '\0';
        *ret = s;
        return 0;
}

int datadisk_unit_text(const char *uuid, const char *mount, const char *fstype, const char *options, char **ret) {
        char *s;

        if (!uuid || !mount || !fstype || !ret)
                return -EINVAL;
        /* By UUID: device names move between boots, the file system's UUID
         * does not. nofail is deliberately absent: a node whose data disk
         * is gone should not start the services that write to it. */
        if (asprintf(&s,
                     "# Written by hull-provision from the machine config: a data disk.\n"
                     "[Unit]\n"
                     "Description=Hull data disk %s\n"
                     "Documentation=man:hull-provision(8)\n"
                     "Before=local-fs.target\n"
                     "\n"
                     "[Mount]\n"
                     "What=/dev/disk/by-uuid/%s\n"
                     "Where=%s\n"
                     "Type=%s\n"
                     "Options=%s\n"
                     "\n"
                     "[Install]\n"
                     "WantedBy=local-fs.target\n",
                     mount, uuid, mount, fstype, isempty(options) ? "defaults" : options) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* ---- checking the spec ---- */

static bool label_ok(const char *l) {
        for (const char *c = l; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' ||
                      *c == '.' || *c == '-'))
                        return false;
        return true;
}

static bool options_ok(const char *o) {
        /* One line of comma-separated options for a unit file and mount -o. */
        for (const char *c = o; *c; c++)
                if (*c <= ' ' || *c > '~' || *c == '\\' || *c == '"' || *c == '\'')
                        return false;
        return true;
}

static bool path_is_or_below(const char *p, const char *dir) {
        size_t n = strlen(dir);
        return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

static int spec_check(const DataDiskSpec *s, char **error) {
        char q[STRING_QUOTE_SIZE];

        if (isempty(s->device) || s->device[0] != '/')
                return error_set(error, -EINVAL, "device: must be an absolute path such as /dev/vdb");
        if (isempty(s->filesystem) || !(streq(s->filesystem, "ext4") || streq(s->filesystem, "xfs")))
                return error_set(error, -EINVAL, "filesystem: %s is not supported (ext4 or xfs)",
                                 string_quote(q, s->filesystem ?: ""));
        size_t max = streq(s->filesystem, "xfs") ? LABEL_MAX_XFS : LABEL_MAX_EXT4;
        if (isempty(s->label) || strlen(s->label) > max || !label_ok(s->label))
                return error_set(error, -EINVAL, "label: %s must be 1 to %zu characters of A-Z a-z 0-9 _ . - for %s",
                                 string_quote(q, s->label ?: ""), max, s->filesystem);
        if (isempty(s->mount) || !path_normalised(s->mount) || strlen(s->mount) > PATH_MAX / 2)
                return error_set(error, -EINVAL, "mount: %s must be an absolute, normalised path",
                                 string_quote(q, s->mount ?: ""));
        for (size_t i = 0; i < ELEMENTSOF(reserved_mounts); i++)
                if (streq(s->mount, reserved_mounts[i]))
                        return error_set(error, -EINVAL, "mount: %s would hide the system's own directory", s->mount);
        for (size_t i = 0; i < ELEMENTSOF(reserved_trees); i++)
                if (path_is_or_below(s->mount, reserved_trees[i]))
                        return error_set(error, -EINVAL, "mount: %s is in %s, which belongs to the system", s->mount,
                                         reserved_trees[i]);
        if (s->options && (strlen(s->options) > OPTIONS_MAX || !options_ok(s->options)))
                return error_set(error, -EINVAL, "options: %s must be comma-separated mount options without spaces or quotes",
                                 string_quote(q, s->options));
        return 0;
}

/* ---- the decision ---- */

static const char *describe(const DataDiskProbe *p, char *buf, size_t l) {
        char q1[STRING_QUOTE_SIZE], q2[STRING_QUOTE_SIZE];

        if (p->ambivalent)
                snprintf(buf, l, "several conflicting signatures");
        else if (p->pttype && p->n_partitions > 0 && p->part_fstype)
                snprintf(buf, l, "a %s partition table with %zu partition(s), the first holding %s (label %s)", p->pttype,
                         p->n_partitions, string_quote(q1, p->part_fstype), string_quote(q2, p->part_fslabel ?: ""));
        else if (p->pttype)
                snprintf(buf, l, "a %s partition table with %zu partition(s)", p->pttype, p->n_partitions);
        else if (p->fstype)
                snprintf(buf, l, "a %s signature (label %s)", string_quote(q1, p->fstype),
                         string_quote(q2, p->fslabel ?: ""));
        else if (p->data_at_partition_start)
                snprintf(buf, l, "a file system signature at 1 MiB (an old partition's, without its table)");
        else if (!p->head_zero)
                snprintf(buf, l, "unrecognised data in its first MiB");
        else if (!p->tail_zero)
                snprintf(buf, l, "unrecognised data in its last MiB");
        else
                snprintf(buf, l, "nothing");
        return buf;
}

static bool blank(const DataDiskProbe *p) {
        return !p->ambivalent && !p->pttype && !p->fstype && p->n_partitions == 0 && p->head_zero && p->tail_zero &&
               !p->data_at_partition_start;
}

static bool keep(const DataDiskSpec *s, const DataDiskProbe *p) {
        if (p->ambivalent)
                return false;
        if (s->partition)
                return p->pttype && p->n_partitions == 1 && !p->fstype && p->part_fstype &&
                       streq(p->part_fstype, s->filesystem) && p->part_fslabel && streq(p->part_fslabel, s->label);
        return !p->pttype && p->fstype && streq(p->fstype, s->filesystem) && p->fslabel && streq(p->fslabel, s->label);
}

int datadisk_decide(const DataDiskSpec *s, const DataDiskProbe *p, DataDiskAction *ret, char **ret_error) {
        char what[512];

        if (!s || !p || !ret || isempty(s->filesystem) || isempty(s->device))
                return -EINVAL;

        /* Never, whatever the config says. */
        if (p->boot_partition)
                return error_set(ret_error, -EPERM, "%s is Hull's boot disk (it holds the partition %s); refusing to use it",
                                 s->device, p->boot_partition);
        if (s->partition && p->is_partition)
                return error_set(ret_error, -EINVAL,
                                 "%s is a partition; with partition: true the device must be a whole disk (or set partition: false)",
                                 s->device);

        if (keep(s, p)) {
                *ret = DATADISK_KEEP;
                return 0;
        }

        uint64_t min = streq(s->filesystem, "xfs") ? MIN_SIZE_XFS : MIN_SIZE_EXT4;
        if (s->partition)
                min += 2 * MIB; /* the GPT at both ends */
        if (p->size < min)
                return error_set(ret_error, -ENOSPC, "%s is too small for %s: %" PRIu64 " MiB, at least %" PRIu64 " MiB",
                                 s->device, s->filesystem, p->size / MIB, (min + MIB - 1) / MIB);
        if (p->mounted || p->busy)
                return error_set(ret_error, -EBUSY, "%s is %s; refusing to format it", s->device,
                                 p->mounted ? "mounted" : "in use (it has holders)");

        if (blank(p)) {
                *ret = DATADISK_FORMAT;
                return 0;
        }
        if (s->wipe) {
                *ret = DATADISK_WIPE_AND_FORMAT;
                return 0;
        }
        return error_set(ret_error, -EEXIST,
                         "%s holds %s; refusing to format it. Set wipe: true to destroy it", s->device,
                         describe(p, what, sizeof(what)));
}

/* ---- probing ---- */

static int sys_dir_of(const char *sysfs, dev_t devnum, char **ret) {
        _cleanup_free_ char *link = NULL;
        char *r;

        if (asprintf(&link, "%s/dev/block/%u:%u", sysfs, major(devnum), minor(devnum)) < 0)
                return -ENOMEM;
        r = realpath(link, NULL);
        if (!r)
                return -errno;
        *ret = r;
        return 0;
}

static bool dir_has_entries(const char *path) {
        DIR *d = opendir(path);
        struct dirent *de;
        bool found = false;

        if (!d)
                return false;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.') {
                        found = true;
                        break;
                }
        closedir(d);
        return found;
}

/* The /dev node of partition 'partno' of the disk at sysdir, from sysfs: the
 * kernel's own name (sda1, nvme0n1p1, loop3p1). */
static int partition_node(const char *sysdir, int partno, char **ret_node, char **ret_sysdir) {
        DIR *d = opendir(sysdir);
        struct dirent *de;
        int r = -ENOENT;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *f = NULL, *buf = NULL;
                unsigned n;
                if (de->d_name[0] == '.')
                        continue;
                if (asprintf(&f, "%s/%s/partition", sysdir, de->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                if (read_full_file(f, 64, &buf, NULL) < 0)
                        continue;
                buf[strcspn(buf, "\n")] = '\0';
                if (safe_atou(buf, &n) < 0 || (int) n != partno)
                        continue;
                char *node = NULL, *sd = NULL;
                if (asprintf(&node, "/dev/%s", de->d_name) < 0 || asprintf(&sd, "%s/%s", sysdir, de->d_name) < 0) {
                        free(node);
                        r = -ENOMEM;
                        break;
                }
                *ret_node = node;
                if (ret_sysdir)
                        *ret_sysdir = sd;
                else
                        free(sd);
                r = 0;
                break;
        }
        closedir(d);
        return r;
}

/* Is the device, or a partition of it, mounted? By device number, from
 * mountinfo: names in there can be anything (a by-uuid link, a mapper). */
static int mounted_check(const char *mountinfo, const char *sysfs, const char *sysdir, bool *ret) {
        _cleanup_fclose_ FILE *f = fopen(mountinfo, "re");
        _cleanup_free_ char *line = NULL;
        size_t n = 0;

        if (!f)
                return -errno;
        *ret = false;
        while (getline(&line, &n, f) > 0) {
                unsigned maj, min;
                _cleanup_free_ char *sd = NULL;
                if (sscanf(line, "%*u %*u %u:%u", &maj, &min) != 2 || maj == 0)
                        continue;
                if (sys_dir_of(sysfs, makedev(maj, min), &sd) < 0)
                        continue;
                char *slash = strrchr(sd, '/');
                if (streq(sd, sysdir) || (slash && (size_t) (slash - sd) == strlen(sysdir) &&
                                          strncmp(sd, sysdir, strlen(sysdir)) == 0)) {
                        *ret = true;
                        return 0;
                }
        }
        return 0;
}

static int holders_check(const char *sysdir, bool *ret) {
        _cleanup_free_ char *h = NULL;
        DIR *d;
        struct dirent *de;

        if (asprintf(&h, "%s/holders", sysdir) < 0)
                return -ENOMEM;
        if (dir_has_entries(h)) {
                *ret = true;
                return 0;
        }
        d = opendir(sysdir);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *part = NULL, *ph = NULL;
                struct stat st;
                if (de->d_name[0] == '.')
                        continue;
                if (asprintf(&part, "%s/%s/partition", sysdir, de->d_name) < 0 ||
                    asprintf(&ph, "%s/%s/holders", sysdir, de->d_name) < 0) {
                        closedir(d);
                        return -ENOMEM;
                }
                if (stat(part, &st) >= 0 && dir_has_entries(ph)) {
                        *ret = true;
                        break;
                }
        }
        closedir(d);
        return 0;
}

static int dup_value(blkid_probe pr, const char *name, char **ret) {
        const char *v = NULL;
        if (blkid_probe_lookup_value(pr, name, &v, NULL) < 0 || !v || !*v)
                return 0;
        *ret = strdup(v);
        return *ret ? 0 : -ENOMEM;
}

/* Superblocks (file systems, RAID members, swap, LUKS...) of fd from
 * offset on. Returns 1 if something was found, 0 if not, -EUCLEAN if
 * several signatures conflict. */
static int probe_superblocks(int fd, uint64_t offset, uint64_t size, char **ret_type, char **ret_label, char **ret_uuid) {
        _cleanup_(blkid_free_probep) blkid_probe pr = blkid_new_probe();
        if (!pr)
                return -ENOMEM;
        if (blkid_probe_set_device(pr, fd, (blkid_loff_t) offset, (blkid_loff_t) size) < 0)
                return -EIO;
        (void) blkid_probe_enable_partitions(pr, 0);
        (void) blkid_probe_enable_superblocks(pr, 1);
        (void) blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID);
        int r = blkid_do_safeprobe(pr);
        if (r == -2)
                return -EUCLEAN;
        if (r < 0)
                return -EIO;
        if (r == 1)
                return 0;
        if (ret_type && dup_value(pr, "TYPE", ret_type) < 0)
                return -ENOMEM;
        if (ret_label && dup_value(pr, "LABEL", ret_label) < 0)
                return -ENOMEM;
        if (ret_uuid && dup_value(pr, "UUID", ret_uuid) < 0)
                return -ENOMEM;
        return 1;
}

static int read_is_zero(int fd, uint64_t offset, uint64_t len, bool *ret) {
        _cleanup_free_ uint8_t *buf = malloc(MIB);
        if (!buf)
                return -ENOMEM;
        *ret = true;
        while (len > 0) {
                size_t n = (size_t) MIN(len, MIB);
                ssize_t k = pread(fd, buf, n, (off_t) offset);
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                for (ssize_t i = 0; i < k; i++)
                        if (buf[i]) {
                                *ret = false;
                                return 0;
                        }
                offset += (uint64_t) k;
                len -= (uint64_t) k;
        }
        return 0;
}

static int probe_device(const char *node, const char *sysfs, const char *mountinfo, DataDiskProbe *ret, char **error) {
        _cleanup_(datadisk_probe_done) DataDiskProbe p = {};
        _cleanup_free_ char *sysdir = NULL, *partfile = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        fd = open(node, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return error_set(error, -errno, "%s: cannot open: %s", node, strerror(errno));
        if (fstat(fd, &st) < 0)
                return -errno;
        if (ioctl(fd, BLKGETSIZE64, &p.size) < 0)
                return error_set(error, -errno, "%s: cannot read its size: %s", node, strerror(errno));

        r = sys_dir_of(sysfs, st.st_rdev, &sysdir);
        if (r < 0)
                return error_set(error, r, "%s: not found in %s/dev/block: %s", node, sysfs, strerror(-r));
        if (asprintf(&partfile, "%s/partition", sysdir) < 0)
                return -ENOMEM;
        p.is_partition = access(partfile, F_OK) >= 0;

        r = mounted_check(mountinfo, sysfs, sysdir, &p.mounted);
        if (r < 0)
                return error_set(error, r, "cannot read %s: %s", mountinfo, strerror(-r));
        r = holders_check(sysdir, &p.busy);
        if (r < 0)
                return r;

        /* Partition table and whole-device signatures in one safe probe:
         * libblkid ignores file systems that lie inside a partition. */
        _cleanup_(blkid_free_probep) blkid_probe pr = blkid_new_probe();
        if (!pr)
                return -ENOMEM;
        if (blkid_probe_set_device(pr, fd, 0, 0) < 0)
                return error_set(error, -EIO, "%s: libblkid cannot probe it", node);
        (void) blkid_probe_enable_superblocks(pr, 1);
        (void) blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID);
        (void) blkid_probe_enable_partitions(pr, 1);
        (void) blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
        r = blkid_do_safeprobe(pr);
        if (r == -2)
                p.ambivalent = true;
        else if (r < 0)
                return error_set(error, -EIO, "%s: libblkid failed to probe it", node);
        else if (r == 0) {
                if (dup_value(pr, "TYPE", &p.fstype) < 0 || dup_value(pr, "LABEL", &p.fslabel) < 0 ||
                    dup_value(pr, "UUID", &p.fsuuid) < 0 || dup_value(pr, "PTTYPE", &p.pttype) < 0)
                        return -ENOMEM;
                /* The device may itself be a partition of the boot disk. */
                const char *name = NULL;
                if (blkid_probe_lookup_value(pr, "PART_ENTRY_NAME", &name, NULL) >= 0 && name)
                        for (size_t i = 0; i < ELEMENTSOF(boot_partition_names); i++)
                                if (streq(name, boot_partition_names[i]) && !(p.boot_partition = strdup(name)))
                                        return -ENOMEM;
        }

        if (p.pttype) {
                blkid_partlist ls = blkid_probe_get_partitions(pr);
                int n = ls ? blkid_partlist_numof_partitions(ls) : 0;
                p.n_partitions = n > 0 ? (size_t) n : 0;
                for (int i = 0; i < n; i++) {
                        blkid_partition part = blkid_partlist_get_partition(ls, i);
                        const char *name = part ? blkid_partition_get_name(part) : NULL;
                        for (size_t j = 0; name && !p.boot_partition && j < ELEMENTSOF(boot_partition_names); j++)
                                if (streq(name, boot_partition_names[j]) && !(p.boot_partition = strdup(name)))
                                        return -ENOMEM;
                }
                if (n > 0) {
                        blkid_partition first = blkid_partlist_get_partition(ls, 0);
                        int partno = first ? blkid_partition_get_partno(first) : 1;
                        /* The kernel may not have read the table (a loop
                         * device without partscan): then there is no node
                         * to look into, and the partition stays unknown. */
                        if (partition_node(sysdir, partno, &p.part_node, NULL) >= 0) {
                                _cleanup_close_ int pfd = open(p.part_node, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
                                if (pfd >= 0) {
                                        r = probe_superblocks(pfd, 0, 0, &p.part_fstype, &p.part_fslabel, &p.part_fsuuid);
                                        if (r == -EUCLEAN)
                                                p.ambivalent = true;
                                        else if (r < 0 && r != -EIO)
                                                return r;
                                }
                        }
                }
        }

        uint64_t edge = MIN(p.size, MIB);
        r = read_is_zero(fd, 0, edge, &p.head_zero);
        if (r >= 0)
                r = read_is_zero(fd, p.size - edge, edge, &p.tail_zero);
        if (r < 0)
                return error_set(error, r, "%s: cannot read it: %s", node, strerror(-r));
        if (!p.pttype && !p.fstype && p.size > PARTITION_START) {
                r = probe_superblocks(fd, PARTITION_START, p.size - PARTITION_START, NULL, NULL, NULL);
                p.data_at_partition_start = r != 0;
        }

        *ret = p;
        p = (DataDiskProbe) {};
        return 0;
}

static int wait_for_device(const char *path, int wait_sec) {
        struct timespec start, now;
        (void) clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
                if (access(path, F_OK) >= 0)
                        return 0;
                if (errno != ENOENT)
                        return -errno;
                (void) clock_gettime(CLOCK_MONOTONIC, &now);
                /* In nanoseconds: whole seconds alone end the wait up to a
                 * second early (1.4 s for "waited 2 s" was seen). */
                int64_t waited_ns = (int64_t) (now.tv_sec - start.tv_sec) * 1000000000 + (now.tv_nsec - start.tv_nsec);
                if (wait_sec <= 0 || waited_ns >= (int64_t) wait_sec * 1000000000)
                        return -ENOENT;
                (void) usleep(200 * 1000);
        }
}

static int find_tool(const char *name, char **ret) {
        static const char *const dirs[] = { "/usr/sbin", "/sbin", "/usr/bin", "/bin" };
        const char *path = getenv("PATH");
        _cleanup_free_ char *copy = path ? strdup(path) : NULL;

        for (char *save = NULL, *d = copy ? strtok_r(copy, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
                _cleanup_free_ char *f = path_join(d, name);
                if (f && access(f, X_OK) >= 0) {
                        *ret = TAKE_PTR(f);
                        return 0;
                }
        }
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *f = path_join(dirs[i], name);
                if (f && access(f, X_OK) >= 0) {
                        *ret = TAKE_PTR(f);
                        return 0;
                }
        }
        return -ENOENT;
}

/* The mount point exists as a directory, or can be made: its nearest
 * existing ancestor is a directory on a writable file system. */
static int mount_point_check(const char *root, const char *mount, char **error) {
        _cleanup_free_ char *p = path_join(root, mount);
        struct stat st;
        struct statvfs sv;

        if (!p)
                return -ENOMEM;
        if (stat(p, &st) >= 0) {
                if (!S_ISDIR(st.st_mode))
                        return error_set(error, -ENOTDIR, "mount: %s exists and is not a directory", mount);
                return 0;
        }
        for (;;) {
                char *slash = strrchr(p, '/');
                if (!slash || slash == p)
                        break;
                *slash = '\0';
                if (stat(p, &st) >= 0)
                        break;
        }
        if (!S_ISDIR(st.st_mode))
                return error_set(error, -ENOTDIR, "mount: %s cannot be created: a parent is not a directory", mount);
        if (statvfs(p, &sv) >= 0 && (sv.f_flag & ST_RDONLY))
                return error_set(error, -EROFS,
                                 "mount: %s does not exist and cannot be created on the read-only root; "
                                 "use a mount point below /var or /persist, or one the image has",
                                 mount);
        return 0;
}

int datadisk_plan(const DataDiskSpec *s, const DataDiskOptions *o, DataDiskPlan *ret, char **ret_error) {
        _cleanup_(datadisk_plan_done) DataDiskPlan plan = {};
        _cleanup_(datadisk_probe_done) DataDiskProbe p = {};
        _cleanup_free_ char *error = NULL;
        const char *root = o && !isempty(o->root) ? o->root : "/";
        const char *sysfs = o && o->sysfs ? o->sysfs : "/sys";
        const char *mountinfo = o && o->mountinfo ? o->mountinfo : "/proc/self/mountinfo";
        int wait_sec = o && o->wait_sec != 0 ? o->wait_sec : DATADISK_WAIT_SEC_DEFAULT;
        char what[512];
        struct stat st;
        int r;

        if (!s || !ret)
                return -EINVAL;
        r = spec_check(s, &error);
        if (r < 0)
                goto fail;

        r = wait_for_device(s->device, wait_sec);
        if (r == -ENOENT) {
                r = error_set(&error, r, "%s does not exist (waited %d s for it)", s->device, MAX(wait_sec, 0));
                goto fail;
        }
        if (r < 0) {
                r = error_set(&error, r, "%s: %s", s->device, strerror(-r));
                goto fail;
        }
        plan.device = realpath(s->device, NULL);
        if (!plan.device) {
                r = error_set(&error, -errno, "%s: cannot resolve it: %s", s->device, strerror(errno));
                goto fail;
        }
        if (stat(plan.device, &st) < 0 || !S_ISBLK(st.st_mode)) {
                r = error_set(&error, -ENOTBLK, "%s is not a block device", s->device);
                goto fail;
        }

        r = probe_device(plan.device, sysfs, mountinfo, &p, &error);
        if (r < 0)
                goto fail;
        r = datadisk_decide(s, &p, &plan.action, &error);
        if (r < 0)
                goto fail;

        if (plan.action != DATADISK_KEEP) {
                _cleanup_free_ char *mkfs_name = NULL, *tool = NULL;
                if (asprintf(&mkfs_name, "mkfs.%s", s->filesystem) < 0)
                        return -ENOMEM;
                if (find_tool(mkfs_name, &tool) < 0) {
                        r = error_set(&error, -ENOEXEC,
                                      "filesystem: %s needs %s, which this image does not have (add %s to the image "
                                      "spec's packages)",
                                      s->filesystem, mkfs_name, streq(s->filesystem, "xfs") ? "xfsprogs" : "e2fsprogs");
                        goto fail;
                }
        }
        r = mount_point_check(root, s->mount, &error);
        if (r < 0)
                goto fail;

        plan.partition = s->partition;
        if (!(plan.filesystem = strdup(s->filesystem)) || !(plan.label = strdup(s->label)) ||
            !(plan.mount = strdup(s->mount)) || !(plan.options = strdup(isempty(s->options) ? "defaults" : s->options)) ||
            !(plan.what = strdup(describe(&p, what, sizeof(what)))))
                return -ENOMEM;
        r = unit_name_path_escape(s->mount, &plan.unit_name);
        if (r < 0)
                return r;
        {
                char *u;
                if (asprintf(&u, "%s.mount", plan.unit_name) < 0)
                        return -ENOMEM;
                free(plan.unit_name);
                plan.unit_name = u;
        }
        if (plan.action == DATADISK_KEEP) {
                const char *uuid = s->partition ? p.part_fsuuid : p.fsuuid;
                if (!uuid) {
                        r = error_set(&error, -EBADMSG, "%s: the existing %s file system has no UUID", s->device, s->filesystem);
                        goto fail;
                }
                if (!(plan.uuid = strdup(uuid)))
                        return -ENOMEM;
                if (s->partition && !(plan.partition_node = strdup(p.part_node)))
                        return -ENOMEM;
        }
        *ret = plan;
        plan = (DataDiskPlan) {};
        return 0;

fail:
        if (ret_error && error)
                *ret_error = TAKE_PTR(error);
        return r;
}

/* ---- applying ---- */

static int run_tool(char * const *argv, char **error) {
        _cleanup_close_ int out = memfd_create("datadisk-tool", MFD_CLOEXEC);
        int r;

        if (out < 0)
                return -errno;
        r = spawn_run(argv, &(SpawnOptions) { .output_fd = out, .timeout_sec = TOOL_TIMEOUT_SEC });
        if (r == 0)
                return 0;
        _cleanup_free_ char *text = NULL;
        off_t size = lseek(out, 0, SEEK_END);
        off_t from = size > TOOL_OUTPUT_MAX ? size - TOOL_OUTPUT_MAX : 0;
        if (lseek(out, from, SEEK_SET) >= 0 && read_full_fd(out, TOOL_OUTPUT_MAX, &text, NULL) >= 0) {
                size_t l = strlen(text);
                while (l > 0 && (text[l - 1] == '\n' || text[l - 1] == ' '))
                        text[--l] = '\0';
        }
        if (r < 0)
                return error_set(error, r, "%s: cannot run it: %s", argv[0], strerror(-r));
        return error_set(error, -EIO, "%s failed with exit status %d%s%s", argv[0], r, isempty(text) ? "" : ": ",
                         text ?: "");
}

static int partition_disk(const char *device, const char *label, char **error) {
        _cleanup_(fdisk_unref_contextp) struct fdisk_context *cxt = fdisk_new_context();
        _cleanup_(fdisk_unref_scriptp) struct fdisk_script *sc = NULL;
        _cleanup_free_ char *script = NULL;
        int r;

        if (!cxt)
                return -ENOMEM;
        /* sfdisk's own script language, through its library: one GPT
         * partition from 1 MiB to the end of the disk. */
        if (asprintf(&script, "label: gpt\nstart=2048, type=%s, name=\"%s%s\"\n", GPT_TYPE_LINUX_FS,
                     DATADISK_PARTITION_PREFIX, label) < 0)
                return -ENOMEM;
        r = fdisk_assign_device(cxt, device, 0);
        if (r < 0)
                return error_set(error, r, "%s: cannot open it for partitioning: %s", device, strerror(-r));
        sc = fdisk_new_script(cxt);
        if (!sc)
                return -ENOMEM;
        _cleanup_fclose_ FILE *f = fmemopen(script, strlen(script), "r");
        if (!f)
                return -errno;
        r = fdisk_script_read_file(sc, f);
        if (r < 0)
                return error_set(error, r, "%s: bad partition script: %s", device, strerror(-r));
        r = fdisk_apply_script(cxt, sc);
        if (r < 0)
                return error_set(error, r, "%s: cannot create the partition: %s", device, strerror(-r));
        r = fdisk_write_disklabel(cxt);
        if (r < 0)
                return error_set(error, r, "%s: cannot write the partition table: %s", device, strerror(-r));
        /* BLKRRPART: the kernel learns about the partition. Failure is
         * handled by waiting and partx below. */
        (void) fdisk_reread_partition_table(cxt);
        r = fdisk_deassign_device(cxt, 0);
        if (r < 0)
                return error_set(error, r, "%s: cannot sync it: %s", device, strerror(-r));
        return 0;
}

static int wait_partition_node(const char *device, char **ret, char **error) {
        _cleanup_free_ char *sysdir = NULL;
        struct stat st;
        int r;

        if (stat(device, &st) < 0)
                return -errno;
        r = sys_dir_of("/sys", st.st_rdev, &sysdir);
        if (r < 0)
                return r;
        for (int attempt = 0; attempt < 100; attempt++) {
                _cleanup_free_ char *node = NULL;
                if (attempt == 10) {
                        /* The kernel did not pick the table up by itself. */
                        char *partx[] = { (char *) "partx", (char *) "-u", (char *) device, NULL };
                        (void) spawn_run(partx, &(SpawnOptions) { .output_fd = -1, .timeout_sec = 60 });
                        char *partx_a[] = { (char *) "partx", (char *) "-a", (char *) device, NULL };
                        (void) spawn_run(partx_a, &(SpawnOptions) { .output_fd = -1, .timeout_sec = 60 });
                }
                if (attempt == 0 || attempt == 10) {
                        /* Let udev create its links (by-uuid) before mkfs reads
                         * the node; missing udevadm is fine (exit 127). */
                        char *settle[] = { (char *) "udevadm", (char *) "settle", (char *) "--timeout=30", NULL };
                        (void) spawn_run(settle, &(SpawnOptions) { .output_fd = -1, .timeout_sec = 60 });
                }
                if (partition_node(sysdir, 1, &node, NULL) >= 0 && access(node, F_OK) >= 0) {
                        *ret = TAKE_PTR(node);
                        return 0;
                }
                (void) usleep(100 * 1000);
        }
        return error_set(error, -ENOENT, "%s: the new partition did not appear (no /dev node after 10 s)", device);
}

static int wipe(const char *device, char **error) {
        _cleanup_free_ char *sysdir = NULL;
        struct stat st;
        int r;

        if (stat(device, &st) < 0)
                return -errno;
        /* Partitions first: their signatures would survive a new table
         * that puts a partition at the same place. */
        r = sys_dir_of("/sys", st.st_rdev, &sysdir);
        if (r < 0)
                return r;
        for (int partno = 1; partno <= 128; partno++) {
                _cleanup_free_ char *node = NULL;
                if (partition_node(sysdir, partno, &node, NULL) < 0)
                        continue;
                char *argv[] = { (char *) "wipefs", (char *) "-a", node, NULL };
                r = run_tool(argv, error);
                if (r < 0)
                        return r;
        }
        char *argv[] = { (char *) "wipefs", (char *) "-a", (char *) device, NULL };
        r = run_tool(argv, error);
        if (r < 0)
                return r;
        /* Drop the kernel's partitions of the old table. */
        _cleanup_close_ int fd = open(device, O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
                (void) ioctl(fd, BLKRRPART, 0);
        return 0;
}

static int mkfs(const char *node, const char *fstype, const char *label, bool force, char **error) {
        if (streq(fstype, "xfs")) {
                /* Without -f mkfs.xfs refuses a device with a signature: a
                 * last line of defence for FORMAT, lifted for a wipe. */
                char *argv[] = { (char *) "mkfs.xfs", (char *) "-q", (char *) "-L", (char *) label, (char *) node, NULL, NULL };
                if (force) {
                        argv[4] = (char *) "-f";
                        argv[5] = (char *) node;
                }
                return run_tool(argv, error);
        }
        /* -F once: mke2fs asks before formatting a whole disk or over an
         * existing file system; we checked both already. */
        char *argv[] = { (char *) "mkfs.ext4", (char *) "-q", (char *) "-F", (char *) "-L", (char *) label, (char *) node,
                         NULL };
        return run_tool(argv, error);
}

static int fs_uuid(const char *node, char **ret) {
        _cleanup_close_ int fd = open(node, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *uuid = NULL;
        int r;

        if (fd < 0)
                return -errno;
        r = probe_superblocks(fd, 0, 0, NULL, NULL, &uuid);
        if (r < 0)
                return r;
        if (r == 0 || !uuid)
                return -ENODATA;
        *ret = TAKE_PTR(uuid);
        return 0;
}

static int write_unit(const char *root, const DataDiskPlan *p, const char *uuid, bool *ret_changed, char **error) {
        _cleanup_free_ char *text = NULL, *dir = NULL, *path = NULL, *current = NULL, *wants = NULL, *link = NULL,
                            *target = NULL, *cur_target = NULL;
        int r;

        r = datadisk_unit_text(uuid, p->mount, p->filesystem, p->options, &text);
        if (r < 0)
                return r;
        dir = path_join(root, "/etc/systemd/system");
        wants = path_join(root, "/etc/systemd/system/local-fs.target.wants");
        if (!dir || !wants || asprintf(&path, "%s/%s", dir, p->unit_name) < 0 ||
            asprintf(&link, "%s/%s", wants, p->unit_name) < 0 || asprintf(&target, "/etc/systemd/system/%s", p->unit_name) < 0)
                return -ENOMEM;
        *ret_changed = false;
        if (read_full_file(path, strlen(text) + 1, &current, NULL) < 0 || !streq(current, text)) {
                r = mkdir_p(dir, 0755);
                if (r >= 0)
                        r = write_file_atomic(path, text, strlen(text), 0644);
                if (r < 0)
                        return error_set(error, r, "cannot write %s: %s", path, strerror(-r));
                *ret_changed = true;
        }
        char buf[PATH_MAX];
        ssize_t n = readlink(link, buf, sizeof(buf) - 1);
        if (n > 0) {
                buf[n] = '\0';
                if (streq(buf, target))
                        return 0;
        }
        r = mkdir_p(wants, 0755);
        if (r < 0)
                return error_set(error, r, "cannot create %s: %s", wants, strerror(-r));
        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s.tmp", link) < 0)
                return -ENOMEM;
        (void) unlink(tmp);
        if (symlink(target, tmp) < 0 || rename(tmp, link) < 0) {
                r = -errno;
                (void) unlink(tmp);
                return error_set(error, r, "cannot enable %s: %s", p->unit_name, strerror(-r));
        }
        r = fsync_parent_directory(link);
        if (r < 0)
                return error_set(error, r, "cannot sync %s: %s", wants, strerror(-r));
        *ret_changed = true;
        return 0;
}

static int is_mount_point(const char *path, bool *ret) {
        _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
        _cleanup_free_ char *line = NULL, *real = realpath(path, NULL);
        size_t n = 0;

        *ret = false;
        if (!f)
                return -errno;
        if (!real)
                return errno == ENOENT ? 0 : -errno;
        while (getline(&line, &n, f) > 0) {
                char mp[PATH_MAX];
                if (sscanf(line, "%*u %*u %*u:%*u %*s %4095s", mp) != 1)
                        continue;
                /* mountinfo escapes spaces as \040; our paths have none
                 * that would matter (options_ok, label_ok). */
                if (streq(mp, real)) {
                        *ret = true;
                        return 0;
                }
        }
        return 0;
}

int datadisk_apply(const DataDiskPlan *p, const DataDiskOptions *o, DataDiskResult *ret, char **ret_error) {
        _cleanup_(datadisk_result_done) DataDiskResult res = {};
        _cleanup_free_ char *error = NULL, *node = NULL, *where = NULL;
        const char *root = o && !isempty(o->root) ? o->root : "/";
        int r;

        if (!p || !ret || !p->device || !p->unit_name)
                return -EINVAL;

        if (p->action == DATADISK_KEEP) {
                if (!(res.uuid = strdup(p->uuid)))
                        return -ENOMEM;
                node = strdup(p->partition ? p->partition_node : p->device);
                if (!node)
                        return -ENOMEM;
        } else {
                if (p->action == DATADISK_WIPE_AND_FORMAT) {
                        r = wipe(p->device, &error);
                        if (r < 0)
                                goto fail;
                }
                if (p->partition) {
                        r = partition_disk(p->device, p->label, &error);
                        if (r >= 0)
                                r = wait_partition_node(p->device, &node, &error);
                        if (r < 0)
                                goto fail;
                } else if (!(node = strdup(p->device)))
                        return -ENOMEM;
                r = mkfs(node, p->filesystem, p->label, p->action == DATADISK_WIPE_AND_FORMAT, &error);
                if (r < 0)
                        goto fail;
                res.formatted = true;
                r = fs_uuid(node, &res.uuid);
                if (r < 0) {
                        r = error_set(&error, r, "%s: no file system UUID after mkfs: %s", node, strerror(-r));
                        goto fail;
                }
        }

        r = write_unit(root, p, res.uuid, &res.unit_written, &error);
        if (r < 0)
                goto fail;
        if (!(res.unit_name = strdup(p->unit_name)))
                return -ENOMEM;

        if (o && o->live) {
                bool mounted;
                where = path_join(root, p->mount);
                if (!where)
                        return -ENOMEM;
                r = mkdir_p(where, 0755);
                if (r < 0) {
                        r = error_set(&error, r, "cannot create the mount point %s: %s", where, strerror(-r));
                        goto fail;
                }
                r = is_mount_point(where, &mounted);
                if (r < 0)
                        goto fail;
                if (!mounted) {
                        char *argv[] = { (char *) "mount", (char *) "-t", p->filesystem, (char *) "-o", p->options, node,
                                         where, NULL };
                        r = run_tool(argv, &error);
                        if (r < 0)
                                goto fail;
                        res.mounted = true;
                }
        }

        *ret = res;
        res = (DataDiskResult) {};
        return 0;

fail:
        if (ret_error && error)
                *ret_error = TAKE_PTR(error);
        return r;
}
