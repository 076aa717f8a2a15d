/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <blkid.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/dm-ioctl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "mount-setup.h"
#include "seed-var.h"
#include "spawn.h"
#include "strutil.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(blkid_probe, blkid_free_probe);

/* The persist directories (docs/PERSIST.md), parents before children. */
static const struct {
        const char *path;
        mode_t mode;
} persist_dirs[] = {
        { "etc",       0755 },
        { "etc/upper", 0755 },
        { "etc/work",  0700 },
        { "var",       0755 },
        { "home",      0755 },
        { "root",      0700 },
        { "hull",      0700 },
};

void mount_setup_done(MountSetup *m) {
        hull_cmdline_done(&m->cmdline);
        free(m->persist_device);
        free(m->persist_fstype);
        free(m->boot_id);
        free(m->error);
        m->persist_device = m->persist_fstype = m->boot_id = m->error = NULL;
}

/* Remember the first failure as a sentence for the console and return r.
 * %m in the format is the error r. */
static int fail(MountSetup *m, int r, const char *format, ...) _printf_(3, 4);
static int fail(MountSetup *m, int r, const char *format, ...) {
        va_list ap;

        if (r >= 0)
                r = -EIO;
        if (!m->error) {
                char *s;
                errno = -r;
                va_start(ap, format);
                if (vasprintf(&s, format, ap) >= 0)
                        m->error = s;
                va_end(ap);
        }
        return r;
}

static int fail_oom(MountSetup *m) {
        return fail(m, -ENOMEM, "out of memory");
}

/* path below the root we are preparing ("/" at boot). */
static char *rooted(const MountSetup *m, const char *path) {
        return path_join(m->root, path);
}

static char *persist_path(const MountSetup *m, const char *path) {
        _cleanup_free_ char *p = rooted(m, "/persist");
        return p ? path_join(p, path) : NULL;
}

/* > 0 if path is the root of a mount, 0 if not, -errno. */
static int path_is_mount_point(const char *path) {
        struct statx sx;

        if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS, &sx) < 0)
                return -errno;
        if (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
                return !!(sx.stx_attributes & STATX_ATTR_MOUNT_ROOT);

        /* Kernels before 5.8: a device other than the parent's means a mount
         * (a bind mount within one file system goes unnoticed). */
        _cleanup_free_ char *parent = path_join(path, "..");
        struct stat a, b;
        if (!parent)
                return -ENOMEM;
        if (stat(path, &a) < 0 || stat(parent, &b) < 0)
                return -errno;
        return a.st_dev != b.st_dev || a.st_ino == b.st_ino;
}

static bool is_dir(const char *path) {
        struct stat st;
        return stat(path, &st) >= 0 && S_ISDIR(st.st_mode);
}

/* ---- step 1: API file systems ------------------------------------------ */

int mount_api_filesystems(MountSetup *m) {
        static const struct {
                const char *path, *type;
                unsigned long flags;
                const char *options;
                const char *why;
        } api[] = {
                { "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL,
                  "the command line and the boot id are read from it" },
                { "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL,
                  "the dm-verity check and libblkid's scan look at block devices there" },
                { "/dev", "devtmpfs", MS_NOSUID, "mode=0755",
                  "the persist partition, /dev/mapper/control and the console live there" },
                { "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755",
                  "boot.json goes there, and systemd expects a tmpfs" },
        };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(api); i++) {
                r = path_is_mount_point(api[i].path);
                if (r > 0)
                        continue;
                if (r == -ENOENT && mkdir(api[i].path, 0755) < 0)
                        return fail(m, -errno, "%s is missing from the image and cannot be created: %m",
                                    api[i].path);
                /* The initramfs normally moves these into the root for us;
                 * without them nothing below works (the reason is in the table). */
                if (mount(api[i].type, api[i].path, api[i].type, api[i].flags, api[i].options) < 0)
                        return fail(m, -errno, "cannot mount %s on %s (%s): %m",
                                    api[i].type, api[i].path, api[i].why);
        }
        return 0;
}

int mount_setup_test_run_dir(MountSetup *m) {
        int r = path_is_mount_point(m->run_dir);
        if (r < 0)
                return fail(m, r, "cannot examine the run directory %s: %m", m->run_dir);
        if (r > 0)
                return 0;
        /* What the initramfs hands over at boot: a tmpfs on /run. */
        if (mount("tmpfs", m->run_dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
                return fail(m, -errno, "cannot mount a tmpfs on %s: %m", m->run_dir);
        return 0;
}

/* ---- step 2: a read-only root ------------------------------------------- */

static unsigned long mount_flags_from_statvfs(unsigned long f) {
        unsigned long r = 0;

        if (f & ST_NOSUID)
                r |= MS_NOSUID;
        if (f & ST_NODEV)
                r |= MS_NODEV;
        if (f & ST_NOEXEC)
                r |= MS_NOEXEC;
        if (f & ST_NOATIME)
                r |= MS_NOATIME;
        if (f & ST_NODIRATIME)
                r |= MS_NODIRATIME;
        if (f & ST_RELATIME)
                r |= MS_RELATIME;
        return r;
}

int mount_setup_root_readonly(MountSetup *m) {
        struct statvfs sv;
        int r;

        if (statvfs(m->root, &sv) < 0)
                return fail(m, -errno, "cannot examine the root file system %s: %m", m->root);
        if (sv.f_flag & ST_RDONLY) {
                log_debug("Root file system %s is read-only", m->root);
                return 0;
        }

        r = path_is_mount_point(m->root);
        if (r < 0)
                return fail(m, r, "cannot examine the root file system %s: %m", m->root);
        if (r == 0) {
                /* Test mode on a plain directory: give it a mount of its own,
                 * whose per-mount read-only flag we can then set. */
                if (mount(m->root, m->root, NULL, MS_BIND | MS_REC, NULL) < 0)
                        return fail(m, -errno, "cannot bind-mount %s onto itself to make it read-only: %m",
                                    m->root);
        }

        /* The image must never change under a running system: make this
         * mount of it read-only, keeping its other flags. A bind remount
         * changes only the mount, which also works where the file system
         * itself cannot be remounted. */
        if (mount(NULL, m->root, NULL,
                  MS_REMOUNT | MS_BIND | MS_RDONLY | mount_flags_from_statvfs(sv.f_flag), NULL) < 0)
                return fail(m, -errno, "the root file system %s is writable and cannot be made read-only: %m",
                            m->root);

        if (statvfs(m->root, &sv) < 0)
                return fail(m, -errno, "cannot examine the root file system %s: %m", m->root);
        if (!(sv.f_flag & ST_RDONLY))
                return fail(m, -EPERM, "the root file system %s is still writable after remounting it read-only",
                            m->root);

        log_info("Remounted the root file system %s read-only", m->root);
        return 0;
}

/* ---- step 3: dm-verity -------------------------------------------------- */

int verity_table_parse(const char *params, char **ret_root_hash, bool *ret_ignores_corruption) {
        /* Fields: version, data dev, hash dev, data block size, hash block
         * size, data blocks, hash start, algorithm, root hash, salt. */
        enum { FIELD_ROOT_HASH = 8, FIELD_SALT = 9, FIELD_N_OPTS = 10 };
        const char *words[64];
        size_t lens[64], n = 0;

        for (const char *p = params; *p;) {
                while (*p == ' ')
                        p++;
                if (*p == '\0')
                        break;
                if (n >= ELEMENTSOF(words))
                        return -EBADMSG;
                words[n] = p;
                while (*p && *p != ' ')
                        p++;
                lens[n] = (size_t) (p - words[n]);
                n++;
        }
        if (n <= FIELD_SALT)
                return -EBADMSG;

        _cleanup_free_ char *hash = strndup(words[FIELD_ROOT_HASH], lens[FIELD_ROOT_HASH]);
        if (!hash)
                return -ENOMEM;
        if (!hull_roothash_is_valid(hash))
                return -EBADMSG;

        bool ignores = false;
        for (size_t i = FIELD_N_OPTS + 1; i < n; i++)
                if (lens[i] == strlen("ignore_corruption") &&
                    strncmp(words[i], "ignore_corruption", lens[i]) == 0)
                        ignores = true;

        *ret_root_hash = TAKE_PTR(hash);
        *ret_ignores_corruption = ignores;
        return 0;
}

int mount_setup_verify_verity(MountSetup *m) {
        const char *want = m->cmdline.verity_roothash;
        _cleanup_free_ void *buf = NULL;
        size_t size;
        struct stat st;
        char p[64];
        int r;

        if (!want) {
                log_debug("No hull.verity.roothash= on the command line, not checking dm-verity");
                return 0;
        }

        if (stat(m->root, &st) < 0)
                return fail(m, -errno, "cannot examine the root file system %s: %m", m->root);
        unsigned maj = major(st.st_dev), min = minor(st.st_dev);

        (void) snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/dm", maj, min);
        if (access(p, F_OK) < 0) {
                if (errno != ENOENT)
                        return fail(m, -errno, "cannot check whether the root device %u:%u is a dm-verity device (%s): %m",
                                    maj, min, p);
                return fail(m, -EMEDIUMTYPE,
                            "hull.verity.roothash= is set, but the root file system (device %u:%u) "
                            "is not on a device-mapper device, so it is not protected by dm-verity",
                            maj, min);
        }

        _cleanup_close_ int fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return fail(m, -errno, "cannot open /dev/mapper/control to check the dm-verity root hash: %m");

        for (size = 16 * 1024;; size *= 2) {
                if (size > 1024 * 1024)
                        return fail(m, -E2BIG, "the device-mapper table of the root device %u:%u is too large: %m",
                                    maj, min);
                free(buf);
                buf = calloc(1, size);
                if (!buf)
                        return fail_oom(m);

                struct dm_ioctl *io = buf;
                /* Interface 4.0.0: table status has been there since, and the
                 * kernel refuses a minor version newer than its own. */
                io->version[0] = DM_VERSION_MAJOR;
                io->version[1] = 0;
                io->version[2] = 0;
                io->data_size = (uint32_t) size;
                io->data_start = sizeof(struct dm_ioctl);
                io->flags = DM_STATUS_TABLE_FLAG;
                /* The kernel's dev_t encoding (huge_encode_dev). */
                io->dev = (uint64_t) (min & 0xffU) | (uint64_t) maj << 8 | (uint64_t) (min & ~0xffU) << 12;

                if (ioctl(fd, DM_TABLE_STATUS, io) < 0)
                        return fail(m, -errno, "cannot read the device-mapper table of the root device %u:%u: %m",
                                    maj, min);
                if (!(io->flags & DM_BUFFER_FULL_FLAG))
                        break;
        }

        _cleanup_free_ char *type = NULL, *params = NULL, *have = NULL;
        r = dm_status_single_target(buf, size, &type, &params);
        if (r == -EMEDIUMTYPE)
                return fail(m, r, "hull.verity.roothash= is set, but the root device %u:%u is not a single "
                            "dm-verity target", maj, min);
        if (r < 0)
                return fail(m, r, "cannot parse the device-mapper table of the root device %u:%u: %m", maj, min);
        if (!streq(type, "verity"))
                return fail(m, -EMEDIUMTYPE, "hull.verity.roothash= is set, but the root device %u:%u is a "
                            "device-mapper '%s' target, not dm-verity", maj, min, type);

        bool ignores;
        r = verity_table_parse(params, &have, &ignores);
        if (r < 0)
                return fail(m, r, "cannot parse the dm-verity table of the root device %u:%u: %m", maj, min);
        if (strcasecmp(have, want) != 0)
                return fail(m, -EKEYREJECTED, "the dm-verity root hash of the root device %u:%u is %s, "
                            "but hull.verity.roothash= asks for %s", maj, min, have, want);
        if (ignores)
                return fail(m, -EKEYREJECTED, "the dm-verity target of the root device %u:%u ignores corruption, "
                            "so the root hash does not protect it", maj, min);

        log_info("Root file system is dm-verity protected with root hash %s", want);
        return 0;
}

/* ---- step 4: the persist partition ------------------------------------- */

/* Resolve "PARTLABEL=..." and friends with libblkid. */
static int persist_evaluate_tag(MountSetup *m, const char *spec, char **ret) {
        _cleanup_free_ char *dir = path_join(m->run_dir, "hull");
        _cleanup_free_ char *conf = NULL, *cache = NULL, *text = NULL;
        int r;

        if (!dir)
                return -ENOMEM;
        conf = path_join(dir, "blkid.conf");
        cache = path_join(dir, "blkid.tab");
        if (!conf || !cache)
                return -ENOMEM;
        r = mkdir_p(dir, 0755);
        if (r < 0)
                return r;

        /* Left alone, libblkid reads /etc/blkid.conf (the image's: /etc is not
         * ours yet) and trusts udev's /dev/disk/by-* links, which may be
         * missing or stale this early. Give it a configuration of our own:
         * scan the block devices, and keep the cache in /run. */
        if (asprintf(&text, "EVALUATE=scan\nCACHE_FILE=%s\n", cache) < 0)
                return -ENOMEM;
        r = write_file_atomic(conf, text, strlen(text), 0644);
        if (r < 0)
                return r;

        if (setenv("BLKID_CONF", conf, 1) < 0)
                return -errno;
        char *dev = blkid_evaluate_tag(spec, NULL, NULL);
        (void) unsetenv("BLKID_CONF");
        (void) unlink(conf);
        (void) unlink(cache);

        if (!dev)
                return -ENOENT;
        *ret = dev;
        return 0;
}

static int probe_fstype(const char *device, char **ret) {
        const char *type = NULL;

        errno = 0;
        _cleanup_(blkid_free_probep) blkid_probe pr = blkid_new_probe_from_filename(device);
        if (!pr)
                return errno > 0 ? -errno : -EIO;
        (void) blkid_probe_enable_superblocks(pr, 1);
        (void) blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
        int r = blkid_do_safeprobe(pr);
        if (r == 1)
                return -ENOMEDIUM;      /* nothing found */
        if (r == -2)
                return -ENOTUNIQ;       /* several signatures */
        if (r < 0)
                return -EIO;
        if (blkid_probe_lookup_value(pr, "TYPE", &type, NULL) < 0 || isempty(type))
                return -ENOMEDIUM;

        char *t = strdup(type);
        if (!t)
                return -ENOMEM;
        *ret = t;
        return 0;
}

/* A power cut can leave the persist file system unclean, and nothing else
 * checks it: systemd never sees it in fstab. Repair what e2fsck -p can do
 * unattended; if it cannot, still try to mount it and let the kernel decide. */
static void fsck_persist(MountSetup *m, const char *device, const char *fstype) {
        _cleanup_free_ char *fsck = NULL;

        if (!streq(fstype, "ext4") && !streq(fstype, "ext3") && !streq(fstype, "ext2"))
                return;
        fsck = rooted(m, "/sbin/e2fsck");
        if (!fsck)
                return;
        if (access(fsck, X_OK) < 0) {
                log_warning("No e2fsck in the image, not checking the persist partition %s", device);
                return;
        }
        char *argv[] = { fsck, (char *) "-p", (char *) device, NULL };
        char *env[] = { (char *) "E2FSCK_CONFIG=/dev/null", NULL };
        int r = spawn_run(argv, &(SpawnOptions) { .output_fd = -1, .env = env });
        if (r == 1 || r == 2)
                log_notice("e2fsck repaired the persist partition %s", device);
        else if (r != 0)
                log_warning("e2fsck could not check or repair the persist partition %s (status %d), mounting it anyway",
                            device, r);
}

int mount_setup_persist(MountSetup *m) {
        const char *spec = m->persist_override ?: m->cmdline.persist ?: HULL_DEFAULT_PERSIST;
        _cleanup_free_ char *where = rooted(m, "/persist");
        _cleanup_free_ char *device = NULL, *fstype = NULL;
        struct stat st;
        int r;

        if (!where)
                return fail_oom(m);
        if (stat(where, &st) < 0)
                return fail(m, -errno, "the image has no /persist directory to mount the persist partition on (%s): %m",
                            where);
        if (!S_ISDIR(st.st_mode))
                return fail(m, -ENOTDIR, "the image's /persist (%s) is not a directory to mount the persist partition on",
                            where);

        if (spec[0] == '/') {
                device = strdup(spec);
                if (!device)
                        return fail_oom(m);
        } else {
                r = persist_evaluate_tag(m, spec, &device);
                if (r < 0)
                        return fail(m, r, "cannot find the persist partition (%s): %m", spec);
        }

        if (stat(device, &st) < 0)
                return fail(m, -errno, "cannot find the persist partition (%s): %m", device);

        if (S_ISDIR(st.st_mode) && m->test_mode) {
                /* Test mode only: a directory stands in for the partition. */
                if (mount(device, where, NULL, MS_BIND, NULL) < 0)
                        return fail(m, -errno, "cannot bind-mount the persist directory %s on %s: %m",
                                    device, where);
                /* Same flags as the real partition gets. */
                if (mount(NULL, where, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, NULL) < 0)
                        return fail(m, -errno, "cannot set nosuid,nodev on the persist directory %s: %m", where);
                fstype = strdup("bind");
                if (!fstype)
                        return fail_oom(m);
        } else {
                if (!S_ISBLK(st.st_mode))
                        return fail(m, -ENOTBLK, "the persist partition %s is not a block device", device);

                r = probe_fstype(device, &fstype);
                if (r == -ENOMEDIUM)
                        return fail(m, r, "the persist partition %s has no file system (the installer "
                                    "creates it with mkfs.ext4 -L hull-persist)", device);
                if (r < 0)
                        return fail(m, r, "cannot determine the file system type of the persist partition %s: %m",
                                    device);

                fsck_persist(m, device, fstype);

                /* The node's data: everything writable lives here. Set-user-ID
                 * programs and device nodes on it are not honoured, and the
                 * bind mounts of /var, /home and /root inherit that. */
                if (mount(device, where, fstype, MS_NOSUID | MS_NODEV, NULL) < 0)
                        return fail(m, -errno, "cannot mount the persist partition %s (%s) on %s: %m",
                                    device, fstype, where);
        }

        log_info("Mounted the persist partition %s (%s) on %s", device, fstype, where);
        m->persist_device = TAKE_PTR(device);
        m->persist_fstype = TAKE_PTR(fstype);
        return 0;
}

/* ---- step 5: the persist layout ---------------------------------------- */

int persist_layout_parse(const char *s, unsigned *ret_version) {
        char buf[16];
        size_t l = strlen(s);
        unsigned v;

        if (l < 2 || l >= sizeof(buf) || s[l - 1] != '\n')
                return -EBADMSG;
        memcpy(buf, s, l - 1);
        buf[l - 1] = '\0';
        if (safe_atou(buf, &v) < 0 || v == 0)
                return -EBADMSG;
        *ret_version = v;
        return 0;
}

int mount_setup_layout(MountSetup *m) {
        _cleanup_free_ char *dir = rooted(m, "/persist");
        _cleanup_free_ char *file = persist_path(m, PERSIST_LAYOUT_FILE);
        _cleanup_free_ char *text = NULL;
        int r;

        if (!dir || !file)
                return fail_oom(m);
        _cleanup_close_ int pfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd < 0)
                return fail(m, -errno, "cannot open the persist partition at %s: %m", dir);

        r = read_full_file(file, 64, &text, NULL);
        if (r == -ENOENT)
                m->first_boot = true;
        else if (r < 0)
                return fail(m, r, "cannot read the persist layout version %s: %m", file);
        else {
                unsigned v;
                if (persist_layout_parse(text, &v) < 0)
                        return fail(m, -EBADMSG, "the persist layout version file %s is corrupt", file);
                if (v > PERSIST_LAYOUT_VERSION)
                        return fail(m, -EPROTONOSUPPORT, "the persist partition has layout version %u, newer than "
                                    "the version %u this image understands", v, PERSIST_LAYOUT_VERSION);
        }

        /* Every boot, not just the first: a directory that went missing is
         * recreated rather than failing the mounts below. */
        for (size_t i = 0; i < ELEMENTSOF(persist_dirs); i++) {
                struct stat st;

                if (mkdirat(pfd, persist_dirs[i].path, persist_dirs[i].mode) >= 0) {
                        /* The exact mode, whatever the umask. */
                        if (fchmodat(pfd, persist_dirs[i].path, persist_dirs[i].mode, 0) < 0)
                                return fail(m, -errno, "cannot set the mode of %s/%s: %m", dir, persist_dirs[i].path);
                        continue;
                }
                if (errno != EEXIST)
                        return fail(m, -errno, "cannot create %s/%s: %m", dir, persist_dirs[i].path);
                if (fstatat(pfd, persist_dirs[i].path, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return fail(m, -errno, "cannot examine %s/%s: %m", dir, persist_dirs[i].path);
                if (!S_ISDIR(st.st_mode))
                        return fail(m, -ENOTDIR, "%s/%s exists but is not a directory", dir, persist_dirs[i].path);
        }

        if (m->first_boot) {
                char v[16];
                int n = snprintf(v, sizeof(v), "%u\n", PERSIST_LAYOUT_VERSION);
                r = write_file_atomic(file, v, (size_t) n, 0644);
                if (r < 0)
                        return fail(m, r, "cannot write the persist layout version %s: %m", file);
                log_info("First boot: created the persist layout (version %u) in %s", PERSIST_LAYOUT_VERSION, dir);
        }
        return 0;
}

/* ---- step 6: seeding /var ---------------------------------------------- */

int mount_setup_seed_var(MountSetup *m) {
        _cleanup_free_ char *src = rooted(m, "/var");
        _cleanup_free_ char *dst = persist_path(m, "var");
        SeedResult res;
        int r;

        if (!src || !dst)
                return fail_oom(m);
        if (!is_dir(src))
                return fail(m, -ENOTDIR, "the image has no /var directory (%s)", src);

        r = seed_tree(src, dst, &res);
        if (r < 0)
                return fail(m, r, "cannot seed %s from the image's /var (at '%s'): %m", dst, res.failed_path);

        /* Everything seeded and laid out is on disk before anything runs. */
        _cleanup_close_ int fd = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || syncfs(fd) < 0)
                return fail(m, -errno, "cannot sync the persist partition: %m");

        if (res.copied > 0)
                log_info("Seeded %u new entries into %s from the image's /var", res.copied, dst);
        return 0;
}

/* ---- step 7: /etc, /var, /home, /root and /tmp ------------------------- */

static int check_overlay_path(MountSetup *m, const char *p) {
        /* The option string has no escaping we could rely on. */
        if (strpbrk(p, ",:\\"))
                return fail(m, -EINVAL, "cannot mount the /etc overlay: the path %s contains ',', ':' or '\\'", p);
        return 0;
}

static int bind_mount(MountSetup *m, const char *from, const char *to) {
        if (!is_dir(to))
                return fail(m, -ENOTDIR, "the image has no mount point %s for %s", to, from);
        /* The persist directory in place of the image's empty one; it keeps
         * the persist mount's nosuid,nodev. */
        if (mount(from, to, NULL, MS_BIND, NULL) < 0)
                return fail(m, -errno, "cannot bind-mount %s on %s: %m", from, to);
        return 0;
}

int mount_setup_mounts(MountSetup *m) {
        _cleanup_free_ char *etc = rooted(m, "/etc"), *upper = persist_path(m, "etc/upper"),
                            *work = persist_path(m, "etc/work"), *options = NULL;
        _cleanup_free_ char *var = rooted(m, "/var"), *pvar = persist_path(m, "var");
        _cleanup_free_ char *home = rooted(m, "/home"), *phome = persist_path(m, "home");
        _cleanup_free_ char *roothome = rooted(m, "/root"), *proot = persist_path(m, "root");
        _cleanup_free_ char *tmp = rooted(m, "/tmp");
        int r;

        if (!etc || !upper || !work || !var || !pvar || !home || !phome || !roothome || !proot || !tmp)
                return fail_oom(m);

        if (!is_dir(etc))
                return fail(m, -ENOTDIR, "the image has no /etc directory (%s)", etc);
        r = check_overlay_path(m, etc);
        if (r >= 0)
                r = check_overlay_path(m, upper);
        if (r >= 0)
                r = check_overlay_path(m, work);
        if (r < 0)
                return r;

        /* Features that tie the upper layer to one particular lower layer are
         * off, because the lower layer (the image) is replaced by every
         * update while the upper layer stays: the kernel documents offline
         * changes to the lower layers as allowed only without index,
         * metacopy, redirect_dir and xino. */
        if (asprintf(&options, "lowerdir=%s,upperdir=%s,workdir=%s,index=off,metacopy=off,redirect_dir=off,xino=off",
                     etc, upper, work) < 0)
                return fail_oom(m);

        /* /etc: the image's files below, the node's changes above, kept on
         * persist across reboots and updates. Mounted on top of the lower
         * directory itself, before anything has read /etc. */
        if (mount("overlay", etc, "overlay", MS_NOSUID | MS_NODEV, options) < 0)
                return fail(m, -errno, "cannot mount the /etc overlay (%s): %m", options);

        /* /var, /home and /root: the node's data, on persist. */
        r = bind_mount(m, pvar, var);
        if (r < 0)
                return r;
        r = bind_mount(m, phome, home);
        if (r < 0)
                return r;
        r = bind_mount(m, proot, roothome);
        if (r < 0)
                return r;

        /* /tmp: scratch space that must be writable and must not survive a reboot. */
        if (!is_dir(tmp))
                return fail(m, -ENOTDIR, "the image has no mount point %s", tmp);
        if (mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0)
                return fail(m, -errno, "cannot mount a tmpfs on %s: %m", tmp);

        log_info("Mounted the /etc overlay and /var, /home, /root from persist, and /tmp");
        return 0;
}

/* ---- step 8: recording the boot ---------------------------------------- */

static void json_string(FILE *f, const char *s) {
        if (!s) {
                fputs("null", f);
                return;
        }
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                switch (*p) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                default:
                        if (*p < 0x20 || *p == 0x7f)
                                fprintf(f, "\\u%04x", *p);
                        else
                                fputc(*p, f);
                }
        fputc('"', f);
}

int boot_json_format(const MountSetup *m, char **ret) {
        char *buf = NULL;
        size_t size = 0;

        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;

        fputs("{\n  \"slot\": ", f);
        json_string(f, m->cmdline.slot);
        fprintf(f, ",\n  \"degraded\": %s", m->cmdline.degraded ? "true" : "false");
        fputs(",\n  \"verity_roothash\": ", f);
        json_string(f, m->cmdline.verity_roothash);
        fputs(",\n  \"boot_id\": ", f);
        json_string(f, m->boot_id);
        fputs(",\n  \"persist_device\": ", f);
        json_string(f, m->persist_device);
        fprintf(f, ",\n  \"first_boot\": %s", m->first_boot ? "true" : "false");
        fprintf(f, ",\n  \"layout_version\": %u", PERSIST_LAYOUT_VERSION);
        fprintf(f, ",\n  \"realtime\": %" PRIu64 "\n}\n", m->realtime);

        if (ferror(f)) {
                (void) fclose(f);
                free(buf);
                return -ENOMEM;
        }
        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

int boot_history_format(const MountSetup *m, char **ret) {
        char *s;

        if (asprintf(&s, "%" PRIu64 " slot=%s boot_id=%s degraded=%d first_boot=%d\n",
                     m->realtime, m->cmdline.slot ?: "-", m->boot_id ?: "-",
                     (int) m->cmdline.degraded, (int) m->first_boot) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int boot_history_append(MountSetup *m) {
        _cleanup_free_ char *path = persist_path(m, BOOT_HISTORY_FILE);
        _cleanup_free_ char *old = NULL, *line = NULL;
        struct stat st;
        int r;

        if (!path)
                return -ENOMEM;
        if (asprintf(&old, "%s.1", path) < 0)
                return -ENOMEM;
        r = boot_history_format(m, &line);
        if (r < 0)
                return r;

        /* Bounded: beyond the limit the file becomes boot-history.1 (replacing
         * the previous one) and a new one starts. */
        if (stat(path, &st) >= 0 && st.st_size >= (off_t) BOOT_HISTORY_MAX) {
                if (rename(path, old) < 0)
                        return -errno;
        }

        _cleanup_close_ int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        /* One write() of one line: readers see whole lines or a torn last one. */
        r = loop_write(fd, line, strlen(line));
        if (r < 0)
                return r;
        if (fsync(fd) < 0)
                return -errno;
        return fsync_parent_directory(path);
}

static int read_boot_id(char **ret) {
        _cleanup_free_ char *s = NULL;
        int r = read_full_file("/proc/sys/kernel/random/boot_id", 64, &s, NULL);
        if (r < 0)
                return r;
        s[strcspn(s, "\n")] = '\0';
        if (strlen(s) != 36)
                return -EBADMSG;
        for (const char *p = s; *p; p++)
                if (!isxdigit((unsigned char) *p) && *p != '-')
                        return -EBADMSG;
        *ret = TAKE_PTR(s);
        return 0;
}

int mount_setup_record_boot(MountSetup *m) {
        _cleanup_free_ char *dir = path_join(m->run_dir, "hull");
        _cleanup_free_ char *file = NULL, *json = NULL;
        struct timespec ts;
        int r;

        if (!dir)
                return fail_oom(m);
        file = path_join(dir, "boot.json");
        if (!file)
                return fail_oom(m);

        r = read_boot_id(&m->boot_id);
        if (r < 0)
                return fail(m, r, "cannot read the boot id from /proc/sys/kernel/random/boot_id: %m");
        /* May be far off this early (no time sync yet): for people, not for logic. */
        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return fail(m, -errno, "cannot read the clock: %m");
        m->realtime = ts.tv_sec > 0 ? (uint64_t) ts.tv_sec : 0;

        r = mkdir_p(dir, 0755);
        if (r < 0)
                return fail(m, r, "cannot create %s: %m", dir);
        r = boot_json_format(m, &json);
        if (r < 0)
                return fail_oom(m);
        r = write_file_atomic(file, json, strlen(json), 0644);
        if (r < 0)
                return fail(m, r, "cannot write %s: %m", file);

        /* A history for people; losing one line must not stop the boot. */
        r = boot_history_append(m);
        if (r < 0)
                (void) log_warning_errno(r, "Failed to append to /persist/" BOOT_HISTORY_FILE ", ignoring: %m");

        log_info("Recorded the boot in %s (slot %s%s)", file, m->cmdline.slot ?: "unknown",
                 m->cmdline.degraded ? ", degraded" : "");
        return 0;
}

/* ---- all of it --------------------------------------------------------- */

bool machine_id_is_valid(const char *s, size_t len) {
        /* systemd's form: 32 lower-case hex digits, one newline, not all zero */
        if (len != 33 || s[32] != '\n')
                return false;
        bool nonzero = false;
        for (size_t i = 0; i < 32; i++) {
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
                nonzero = nonzero || s[i] != '0';
        }
        return nonzero;
}

void machine_id_format(const uint8_t id[static 16], char ret[static 34]) {
        static const char hex[] = "0123456789abcdef";
        for (size_t i = 0; i < 16; i++) {
                ret[2 * i] = hex[id[i] >> 4];
                ret[2 * i + 1] = hex[id[i] & 15];
        }
        ret[32] = '\n';
        ret[33] = '\0';
}

/* The node's own machine ID, made here and kept on persist through the
 * /etc overlay, instead of by systemd: an image ships "uninitialized",
 * which makes systemd treat the boot as its first and run a full preset
 * pass over every unit (seconds under emulation, and pointless: hull-build
 * applied the presets already), systemd-firstboot and
 * systemd-machine-id-commit. A random version-4 ID, as systemd makes it.
 * Not fatal: without it systemd makes one itself. */
int mount_setup_machine_id(MountSetup *m) {
        _cleanup_free_ char *path = rooted(m, "/etc/machine-id"), *old = NULL;
        size_t len = 0;
        uint8_t id[16];
        char text[34];

        if (!path)
                return fail_oom(m);
        int r = read_full_file(path, 4096, &old, &len);
        if (r >= 0 && machine_id_is_valid(old, len))
                return 0;
        if (getrandom(id, sizeof(id), 0) != (ssize_t) sizeof(id)) {
                log_warning("Cannot make a machine ID (getrandom: %m); systemd will.");
                return 0;
        }
        id[6] = (id[6] & 0x0f) | 0x40;
        id[8] = (id[8] & 0x3f) | 0x80;
        machine_id_format(id, text);
        r = write_file_atomic(path, text, 33, 0444);
        if (r < 0) {
                log_warning("Cannot write %s: %s; systemd will make the machine ID.", path, strerror(-r));
                return 0;
        }
        log_info("Made this node's machine ID %.32s", text);
        return 0;
}

int mount_setup_run(MountSetup *m) {
        int (*const steps[])(MountSetup *) = {
                mount_setup_root_readonly,
                mount_setup_verify_verity,
                mount_setup_persist,
                mount_setup_layout,
                mount_setup_seed_var,
                mount_setup_mounts,
                mount_setup_machine_id,
                mount_setup_record_boot,
        };

        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                int r = steps[i](m);
                if (r < 0) {
                        if (!m->error)
                                (void) fail(m, r, "setup failed: %m");
                        return r;
                }
        }
        return 0;
}
