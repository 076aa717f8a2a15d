/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hull-initrd: /init of the initramfs that hull-build writes with
 * boot.initramfs: hull (man/hull-initrd.8, docs/BUILDER.md).
 *
 * Loads the storage drivers the machine has, finds the slot's root
 * partition, opens it as dm-verity without veritysetup, mounts it read-only
 * on /sysroot, switches root and executes init= (hull-init). No shell, no
 * udev, no shared library: statically linked, it is the only program of the
 * initramfs. Like hull-init it never returns as PID 1 and never hangs:
 * every failure ends in one console message and a reboot (a power-off with
 * hull.live=). */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/loop.h>
#include <linux/magic.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dm.h"
#include "early.h"
#include "fileio.h"
#include "init-cmdline.h"
#include "initrd-conf.h"
#include "initrd-util.h"
#include "log.h"
#include "strutil.h"

#ifndef HULL_VERSION
#define HULL_VERSION "unknown"
#endif

#define PROGRAM "hull-initrd"
#define CMDLINE_MAX (64U * 1024U)
#define SYSROOT "/sysroot"
#define LIVE_DIR "/run/hull-live"
#define LIVE_MEDIA LIVE_DIR "/media"
#define LIVE_INITRD_DIR "/hull-media/hull"
#define DEFAULT_INIT "/usr/lib/hull/hull-init"
#define VERITY_NAME "hull-root"
/* Root still missing after this long: load every storage candidate, in
 * case a controller's modalias matched none of the build's globs. */
#define LOAD_ALL_AFTER_MS 2000U

static HullCmdline cmdline = HULL_CMDLINE_INIT;
static InitrdConf conf = {};
static char *cmdline_text = NULL;
static int uevent_fd = -EBADF;

/* ---- the fatal path ----------------------------------------------------- */

static _noreturn_ _printf_(1, 2) void fatal(const char *fmt, ...) {
        char msg[1536];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        early_fatal(PROGRAM, cmdline.live ? EARLY_FATAL_POWEROFF : EARLY_FATAL_REBOOT, cmdline.fatal_delay, msg);
}

static uint64_t now_ms(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000U + (uint64_t) ts.tv_nsec / 1000000U;
}

/* ---- step 1: API file systems and the command line ---------------------- */

static void mount_api(void) {
        static const struct {
                const char *what, *where, *type, *options;
                unsigned long flags;
        } mounts[] = {
                { "proc",     "/proc", "proc",     NULL,        MS_NOSUID | MS_NODEV | MS_NOEXEC },
                { "sysfs",    "/sys",  "sysfs",    NULL,        MS_NOSUID | MS_NODEV | MS_NOEXEC },
                { "devtmpfs", "/dev",  "devtmpfs", "mode=0755", MS_NOSUID                        },
                { "tmpfs",    "/run",  "tmpfs",    "mode=0755", MS_NOSUID | MS_NODEV             },
        };

        for (size_t i = 0; i < ELEMENTSOF(mounts); i++) {
                (void) mkdir(mounts[i].where, 0755);
                /* EBUSY: the kernel mounted devtmpfs itself (DEVTMPFS_MOUNT). */
                if (mount(mounts[i].what, mounts[i].where, mounts[i].type, mounts[i].flags, mounts[i].options) < 0 &&
                    errno != EBUSY)
                        fatal("cannot mount %s on %s: %s", mounts[i].type, mounts[i].where, strerror(errno));
        }
}

static void read_cmdline(void) {
        int r;

        r = read_full_file("/proc/cmdline", CMDLINE_MAX, &cmdline_text, NULL);
        if (r < 0)
                fatal("cannot read the kernel command line from /proc/cmdline: %s", strerror(-r));
        r = hull_cmdline_parse(cmdline_text, &cmdline);
        if (r >= 0)
                r = hull_cmdline_check_initrd(&cmdline);
        if (r == -EINVAL && cmdline.invalid_key)
                fatal("the kernel command line has an invalid or missing value for %s= (see hull-initrd(8))",
                      cmdline.invalid_key);
        if (r < 0)
                fatal("cannot parse the kernel command line: %s", strerror(-r));
}

static void read_conf(const char *path) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        unsigned line = 0;
        int r;

        r = read_full_file(path, INITRD_CONF_MAX, &text, &size);
        if (r < 0)
                fatal("cannot read %s: %s", path, strerror(-r));
        r = initrd_conf_parse(text, size, &conf, &line);
        if (r < 0)
                fatal("%s is malformed at line %u: %s", path, line, strerror(-r));
        log_info("%s: kernel %s, %zu modules%s%s", path, conf.kver, conf.n_modules,
                 conf.build_id ? ", build " : "", conf.build_id ?: "");
}

/* ---- step 2: modules ---------------------------------------------------- */

/* "name.param=value" words of the command line for this module, as modprobe
 * would pass them ('-' and '_' are the same in module names). */
static char *module_params(const char *name) {
        _cleanup_free_ char *out = strdup("");
        const char *p = cmdline_text;
        size_t nl = strlen(name);

        if (!out)
                return NULL;
        for (;;) {
                _cleanup_free_ char *w = NULL;
                int r = cmdline_next_word(&p, &w);
                if (r <= 0)
                        break;
                if (streq(w, "--"))
                        break;
                bool same = strlen(w) > nl + 1 && w[nl] == '.';
                for (size_t i = 0; same && i < nl; i++) {
                        char a = w[i] == '-' ? '_' : w[i], b = name[i] == '-' ? '_' : name[i];
                        same = a == b;
                }
                if (!same)
                        continue;
                char *n;
                if (asprintf(&n, "%s%s%s", out, out[0] ? " " : "", w + nl + 1) < 0)
                        return NULL;
                free(out);
                out = n;
        }
        return TAKE_PTR(out);
}

static int module_load(size_t i, unsigned depth) {
        InitrdModule *m = &conf.modules[i];
        _cleanup_free_ char *path = NULL, *params = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (m->loaded)
                return 0;
        if (m->failed)
                return m->error;
        /* Deps point to earlier lines only, so this ends; the bound is a
         * second guard. */
        if (depth > INITRD_CONF_MAX_MODULES)
                return -ELOOP;
        /* Soft dependencies: alternatives, any of which may fail. */
        for (size_t d = 0; d < m->n_softs; d++)
                (void) module_load(m->softs[d], depth + 1);
        for (size_t d = 0; d < m->n_deps; d++) {
                r = module_load(m->deps[d], depth + 1);
                if (r < 0) {
                        m->failed = true;
                        m->error = r;
                        log_error("Not loading %s: its dependency %s failed", m->name,
                                  conf.modules[m->deps[d]].name);
                        return r;
                }
        }

        if (asprintf(&path, "/usr/lib/modules/%s/%s", conf.kver, m->path) < 0 || !(params = module_params(m->name)))
                return -ENOMEM;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                r = -errno;
        else
                r = syscall(SYS_finit_module, fd, params, 0) < 0 ? -errno : 0;
        if (r == -EEXIST)
                r = 0; /* built in after all, or loaded by a dependency */
        if (r < 0) {
                m->failed = true;
                m->error = r;
                log_error_errno(r, "Cannot load module %s (%s): %m", m->name, path);
                return r;
        }
        m->loaded = true;
        log_info("Loaded module %s%s%s", m->name, params[0] ? " " : "", params);
        return 0;
}

static void load_class(InitrdModuleClass class, bool required) {
        for (size_t i = 0; i < conf.n_modules; i++) {
                if (conf.modules[i].class != class)
                        continue;
                int r = module_load(i, 0);
                if (r < 0 && required)
                        fatal("cannot load module %s (/usr/lib/modules/%s/%s): %s", conf.modules[i].name, conf.kver,
                              conf.modules[i].path, strerror(-r));
        }
}

/* The modalias of every device on the buses storage controllers sit on. */
static char **read_modaliases(void) {
        static const char *const buses[] = { "pci", "virtio", "scsi", "usb", "xen", "vmbus" };
        char **l = calloc(1, sizeof(char *));

        for (size_t b = 0; l && b < ELEMENTSOF(buses); b++) {
                char dir[64];
                (void) snprintf(dir, sizeof(dir), "/sys/bus/%s/devices", buses[b]);
                DIR *d = opendir(dir);
                if (!d)
                        continue; /* the bus driver is not loaded (yet) */
                for (struct dirent *de; (de = readdir(d));) {
                        if (de->d_name[0] == '.')
                                continue;
                        _cleanup_free_ char *p = NULL, *text = NULL;
                        if (asprintf(&p, "%s/%s/modalias", dir, de->d_name) < 0 ||
                            read_full_file(p, 4096, &text, NULL) < 0)
                                continue;
                        text[strcspn(text, "\n")] = '\0';
                        char **n = strv_append(l, text);
                        if (!n) {
                                strv_free(l);
                                l = NULL;
                                break;
                        }
                        l = n;
                }
                closedir(d);
        }
        return l;
}

/* Load the storage candidates whose globs match a present device. Returns
 * how many were newly loaded. */
static unsigned load_matching_storage(void) {
        _cleanup_strv_free_ char **aliases = read_modaliases();
        unsigned n = 0;

        if (!aliases)
                return 0;
        for (size_t i = 0; i < conf.n_modules; i++) {
                InitrdModule *m = &conf.modules[i];
                if (m->class != INITRD_MODULE_STORAGE || m->loaded || m->failed)
                        continue;
                for (char **a = aliases; *a; a++)
                        if (initrd_module_matches(m, *a)) {
                                log_info("Device %s wants %s", *a, m->name);
                                if (module_load(i, 0) >= 0)
                                        n++;
                                break;
                        }
        }
        return n;
}

/* ---- step 3: the root device -------------------------------------------- */

typedef struct BlockDev {
        BlockUevent u;
        char sysname[64];
} BlockDev;

/* Every block device the kernel knows now. */
static size_t list_block_devices(BlockDev *out, size_t max) {
        DIR *d = opendir("/sys/class/block");
        size_t n = 0;

        if (!d)
                return 0;
        for (struct dirent *de; n < max && (de = readdir(d));) {
                _cleanup_free_ char *p = NULL, *text = NULL;
                size_t size;
                if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof(out[n].sysname))
                        continue;
                if (asprintf(&p, "/sys/class/block/%s/uevent", de->d_name) < 0 ||
                    read_full_file(p, 16384, &text, &size) < 0)
                        continue;
                if (block_uevent_parse(text, size, &out[n].u) < 0)
                        continue;
                (void) snprintf(out[n].sysname, sizeof(out[n].sysname), "%s", de->d_name);
                n++;
        }
        closedir(d);
        return n;
}

static int read_at(const char *dev, uint64_t offset, void *buf, size_t size) {
        _cleanup_close_ int fd = open(dev, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        ssize_t l = pread(fd, buf, size, (off_t) offset);
        if (l < 0)
                return -errno;
        return (size_t) l == size ? 0 : -EIO;
}

/* The PARTUUID of a partition: its entry in the parent disk's GPT. */
static int partition_uuid(const BlockDev *b, uint8_t ret[static 16]) {
        _cleanup_free_ char *link = NULL, *target = NULL, *bs_text = NULL, *entries = NULL;
        char disk_dev[96], header[4096];
        unsigned bs = 512;
        uint64_t lba;
        uint32_t count, esize;
        int r;

        if (!streq(b->u.devtype, "partition") || b->u.partn == 0)
                return -ENOENT;
        /* /sys/class/block/vda1 -> ../../devices/.../vda/vda1: the parent
         * directory is the disk. */
        if (asprintf(&link, "/sys/class/block/%s/..", b->sysname) < 0)
                return -ENOMEM;
        target = realpath(link, NULL);
        if (!target)
                return -errno;
        const char *disk = strrchr(target, '/');
        if (!disk)
                return -ENOENT;
        disk++;
        _cleanup_free_ char *bs_path = NULL;
        if (asprintf(&bs_path, "/sys/class/block/%s/queue/logical_block_size", disk) >= 0 &&
            read_full_file(bs_path, 64, &bs_text, NULL) >= 0) {
                bs_text[strcspn(bs_text, "\n")] = '\0';
                if (safe_atou(bs_text, &bs) < 0 || bs < 512 || bs > sizeof(header))
                        bs = 512;
        }
        (void) snprintf(disk_dev, sizeof(disk_dev), "/dev/%s", disk);
        r = read_at(disk_dev, bs, header, bs);
        if (r < 0)
                return r;
        r = gpt_header_entries(header, bs, &lba, &count, &esize);
        if (r < 0)
                return r;
        if (b->u.partn > count)
                return -ENOENT;
        size_t esz = (size_t) b->u.partn * esize;
        entries = malloc(esz);
        if (!entries)
                return -ENOMEM;
        r = read_at(disk_dev, lba * bs, entries, esz);
        if (r < 0)
                return r;
        return gpt_partition_uuid(header, bs, entries, esz, b->u.partn, ret);
}

typedef enum RootKind {
        ROOT_PARTNAME,
        ROOT_PARTUUID,
        ROOT_PATH,
        ROOT_LIVE_LABEL,
} RootKind;

typedef struct RootSpec {
        RootKind kind;
        char what[128];         /* for messages: "PARTLABEL=hull-root-a" */
        const char *value;      /* the name, UUID text, path or label */
        uint8_t uuid[16];
} RootSpec;

/* 1 and the device path if exactly one device matches, 0 if none (yet),
 * -ENOTUNIQ (with both names) if several do. */
static int find_root(const RootSpec *s, char *ret, size_t ret_size, char *dup, size_t dup_size) {
        BlockDev devs[256];
        size_t n;
        int found = 0;

        if (s->kind == ROOT_PATH) {
                struct stat st;
                if (stat(s->value, &st) < 0 || !S_ISBLK(st.st_mode))
                        return 0;
                (void) snprintf(ret, ret_size, "%s", s->value);
                return 1;
        }

        n = list_block_devices(devs, ELEMENTSOF(devs));
        for (size_t i = 0; i < n; i++) {
                bool match = false;
                switch (s->kind) {
                case ROOT_PARTNAME:
                        match = streq(devs[i].u.partname, s->value);
                        break;
                case ROOT_PARTUUID: {
                        uint8_t u[16];
                        match = partition_uuid(&devs[i], u) >= 0 && memcmp(u, s->uuid, 16) == 0;
                        break;
                }
                case ROOT_LIVE_LABEL: {
                        char buf[ISO9660_PVD_SIZE], dev[96], label[33];
                        /* Loop and device-mapper devices are never the medium. */
                        if (string_has_prefix(devs[i].sysname, "loop") || string_has_prefix(devs[i].sysname, "dm-") ||
                            string_has_prefix(devs[i].sysname, "ram"))
                                break;
                        (void) snprintf(dev, sizeof(dev), "/dev/%.63s", devs[i].u.devname);
                        match = read_at(dev, ISO9660_PVD_OFFSET, buf, sizeof(buf)) >= 0 &&
                                iso9660_volume_id(buf, sizeof(buf), label) >= 0 && streq(label, s->value);
                        break;
                }
                case ROOT_PATH:
                        break;
                }
                if (!match)
                        continue;
                if (found) {
                        /* The medium: the first one found, like blkid -l. */
                        if (s->kind == ROOT_LIVE_LABEL)
                                break;
                        (void) snprintf(dup, dup_size, "/dev/%.63s", devs[i].u.devname);
                        return -ENOTUNIQ;
                }
                (void) snprintf(ret, ret_size, "/dev/%.63s", devs[i].u.devname);
                found = 1;
        }
        return found;
}

static void open_uevent_socket(void) {
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1 /* the kernel's */ };

        uevent_fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
        if (uevent_fd >= 0 && bind(uevent_fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                uevent_fd = safe_close(uevent_fd);
        if (uevent_fd < 0)
                log_warning("Cannot listen for uevents (%m), checking for the root device every 100 ms instead");
}

/* Sleep until a uevent arrives or timeout_ms pass; what the event says does
 * not matter, the caller looks at sysfs again. */
/* Whether a uevent came (always true without the socket: then it only
 * sleeps up to 100 ms, and the caller looks again). */
static bool wait_uevent(uint64_t timeout_ms) {
        char buf[8192];
        bool got = false;

        if (uevent_fd < 0) {
                struct timespec ts = { .tv_nsec = (long) MIN(timeout_ms, 100U) * 1000000L };
                (void) nanosleep(&ts, NULL);
                return true;
        }
        struct pollfd p = { .fd = uevent_fd, .events = POLLIN };
        (void) poll(&p, 1, (int) MIN(timeout_ms, (uint64_t) 60000));
        while (recv(uevent_fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
                got = true;
        return got;
}

/* Until nothing more matches: a bus driver (virtio_pci) makes the devices
 * (virtio0) that the next driver (virtio_blk) is for. */
static void load_present_storage(void) {
        while (load_matching_storage() > 0)
                ;
}

/* What udev's settle gives the installer, which runs without udev: the
 * drivers of every disk present, and time for devices that probe
 * asynchronously (NVMe, USB) to show up: until no uevent for quiet_ms. */
static void settle_storage(uint64_t quiet_ms, uint64_t max_ms) {
        uint64_t deadline = now_ms() + max_ms;

        for (;;) {
                load_present_storage();
                uint64_t now = now_ms();
                if (now >= deadline || !wait_uevent(MIN(quiet_ms, deadline - now)))
                        break;
        }
        load_present_storage();
}

static void fatal_no_root(const RootSpec *s, uint64_t waited_ms) {
        char drivers[512] = "", devices[768] = "";
        BlockDev devs[64];
        size_t n = list_block_devices(devs, ELEMENTSOF(devs)), dl = 0, bl = 0;

        for (size_t i = 0; i < conf.n_modules; i++) {
                const InitrdModule *m = &conf.modules[i];
                if ((m->class == INITRD_MODULE_STORAGE || m->class == INITRD_MODULE_LIVE) && (m->loaded || m->failed) &&
                    dl < sizeof(drivers))
                        dl += (size_t) snprintf(drivers + dl, sizeof(drivers) - dl, "%s%s%s", dl ? " " : "", m->name,
                                                !m->failed ? ""
                                                : m->error == -ENODEV ? " (no such device)"
                                                                      : " (failed)");
        }
        for (size_t i = 0; i < n && bl < sizeof(devices); i++)
                bl += (size_t) snprintf(devices + bl, sizeof(devices) - bl, "%s%s%s%s%s", bl ? " " : "",
                                        devs[i].u.devname, devs[i].u.partname[0] ? " (" : "", devs[i].u.partname,
                                        devs[i].u.partname[0] ? ")" : "");
        fatal("no %s %s after %" PRIu64 " s (drivers: %s; block devices: %s)",
              s->kind == ROOT_LIVE_LABEL ? "installer medium labelled" : "root device", s->what,
              (waited_ms + 500) / 1000, drivers[0] ? drivers : "none", devices[0] ? devices : "none");
}

/* Load storage drivers as their devices show up and wait for the root. */
static void wait_for_root(const RootSpec *s, char *ret, size_t ret_size) {
        uint64_t start = now_ms(), deadline = start + (uint64_t) cmdline.rootwait * 1000U;
        bool loaded_all = false;
        char dup[96];

        log_info("Waiting up to %u s for %s", cmdline.rootwait, s->what);
        for (;;) {
                /* Every present disk gets its driver, not only the root's. */
                load_present_storage();
                int r = find_root(s, ret, ret_size, dup, sizeof(dup));
                if (r == -ENOTUNIQ)
                        fatal("both %s and %s are %s: a machine must have one Hull disk only (docs/DISK-FORMAT.md)",
                              ret, dup, s->what);
                if (r > 0) {
                        log_info("Found %s: %s after %" PRIu64 " ms", s->what, ret, now_ms() - start);
                        return;
                }
                uint64_t now = now_ms();
                if (!loaded_all && now >= start + LOAD_ALL_AFTER_MS) {
                        log_info("No %s after %u ms, loading every storage driver", s->what, LOAD_ALL_AFTER_MS);
                        load_class(INITRD_MODULE_STORAGE, false);
                        loaded_all = true;
                        continue;
                }
                if (now >= deadline)
                        fatal_no_root(s, now - start);
                uint64_t until = loaded_all ? deadline : MIN(deadline, start + LOAD_ALL_AFTER_MS);
                wait_uevent(until - now);
        }
}

/* ---- step 4: dm-verity -------------------------------------------------- */

static int devnum_of(const char *dev, unsigned *ret_major, unsigned *ret_minor) {
        struct stat st;
        if (stat(dev, &st) < 0)
                return -errno;
        if (!S_ISBLK(st.st_mode))
                return -ENOTBLK;
        *ret_major = major(st.st_rdev);
        *ret_minor = minor(st.st_rdev);
        return 0;
}

/* Read and check the superblock, and the table for it: shared by the boot
 * and --verity-table/--verity-open. On error *ret_error says what failed. */
static int verity_prepare(const char *dev, uint64_t hash_offset, const char *root_hash, char **ret_params,
                          uint64_t *ret_sectors, char *error, size_t error_size) {
        uint8_t buf[VERITY_SB_SIZE];
        VeritySuperblock sb;
        const char *why = NULL;
        unsigned maj = 0, min = 0;
        int r;

        r = devnum_of(dev, &maj, &min);
        if (r < 0) {
                (void) snprintf(error, error_size, "cannot stat %s: %s", dev, strerror(-r));
                return r;
        }
        r = read_at(dev, hash_offset, buf, sizeof(buf));
        if (r < 0) {
                (void) snprintf(error, error_size, "cannot read the dm-verity superblock of %s at %" PRIu64 ": %s", dev,
                                hash_offset, strerror(-r));
                return r;
        }
        r = verity_sb_parse(buf, sizeof(buf), hash_offset, &sb, &why);
        if (r < 0) {
                (void) snprintf(error, error_size, "the dm-verity superblock of %s at %" PRIu64 " is not usable: %s",
                                dev, hash_offset, why);
                return r;
        }
        r = verity_table_params(maj, min, &sb, root_hash, ret_params);
        if (r < 0) {
                (void) snprintf(error, error_size, "out of memory");
                return r;
        }
        *ret_sectors = sb.data_blocks * (VERITY_BLOCK_SIZE / 512);
        return 0;
}

static int verity_open(const char *dev, const char *name, const char *uuid, uint64_t hash_offset,
                       const char *root_hash, char *error, size_t error_size) {
        _cleanup_free_ char *params = NULL, *type = NULL, *status = NULL;
        uint64_t sectors;
        int r;

        r = verity_prepare(dev, hash_offset, root_hash, &params, &sectors, error, error_size);
        if (r < 0)
                return r;
        log_info("dm-verity table of %s: 0 %" PRIu64 " verity %s", name, sectors, params);
        r = dm_create_readonly(name, uuid, "verity", sectors, params, NULL);
        if (r < 0) {
                (void) snprintf(error, error_size, "dm-verity refused %s (root hash %s): cannot create %s: %s", dev,
                                root_hash, name, strerror(-r));
                return r;
        }
        r = dm_target_status(name, &type, &status);
        if (r < 0 || !streq(type, "verity") || !streq(status, "V")) {
                (void) snprintf(error, error_size, "dm-verity refused %s (root hash %s): status %s", dev, root_hash,
                                r < 0 ? strerror(-r) : status);
                return r < 0 ? r : -EBADMSG;
        }
        return 0;
}

/* After a failed mount: did dm-verity see a block that does not match? */
static bool verity_corrupted(void) {
        _cleanup_free_ char *type = NULL, *status = NULL;
        return dm_target_status(VERITY_NAME, &type, &status) >= 0 && streq(status, "C");
}

/* ---- step 5: mounting --------------------------------------------------- */

static const char *root_fstype(const char *dev) {
        static char probed[16];
        uint8_t buf[FS_PROBE_SIZE];

        if (cmdline.rootfstype)
                return cmdline.rootfstype;
        if (read_at(dev, 0, buf, sizeof(buf)) >= 0) {
                const char *t = fs_probe(buf, sizeof(buf));
                if (t) {
                        (void) snprintf(probed, sizeof(probed), "%s", t);
                        return probed;
                }
        }
        return conf.rootfstype;
}

static void mount_root(const char *dev, const char *what) {
        const char *fstype = root_fstype(dev);

        if (!fstype)
                fatal("cannot tell the file system of the root device %s (%s): no rootfstype= and no erofs or ext4 "
                      "superblock", dev, what);
        (void) mkdir(SYSROOT, 0755);
        if (mount(dev, SYSROOT, fstype, MS_RDONLY, cmdline.root_flags) < 0) {
                int e = errno;
                if (cmdline.verity_roothash && !cmdline.live && verity_corrupted())
                        fatal("dm-verity refused %s (root hash %s): the slot is corrupt or was tampered with", what,
                              cmdline.verity_roothash);
                fatal("cannot mount the root device %s (%s) as %s on " SYSROOT ": %s", dev, what, fstype, strerror(e));
        }
        log_info("Mounted %s (%s) read-only on " SYSROOT " as %s", dev, what, fstype);
}

/* ---- live media (hull.live=) -------------------------------------------- */

static void write_run_file(const char *path, const char *value) {
        _cleanup_free_ char *s = NULL;
        if (asprintf(&s, "%s\n", value) < 0)
                fatal("out of memory");
        int r = write_file_atomic(path, s, strlen(s), 0644);
        if (r < 0)
                fatal("cannot write %s: %s", path, strerror(-r));
}

static void copy_live_initrd_files(void) {
        DIR *d = opendir(LIVE_INITRD_DIR);
        if (!d)
                fatal("cannot open " LIVE_INITRD_DIR ": %s", strerror(errno));
        if (mount("hull-live", LIVE_MEDIA, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=50%") < 0)
                fatal("cannot mount a tmpfs on " LIVE_MEDIA ": %s", strerror(errno));
        if (mkdir(LIVE_MEDIA "/hull", 0755) < 0)
                fatal("cannot create " LIVE_MEDIA "/hull: %s", strerror(errno));
        /* The initramfs' own files go when the root is switched: copy the
         * small ones to a tmpfs that moves along with /run. The root image
         * stays; the loop device keeps it alive. */
        for (struct dirent *de; (de = readdir(d));) {
                if (de->d_name[0] == '.' || streq(de->d_name, "root.img"))
                        continue;
                _cleanup_free_ char *src = NULL, *dst = NULL, *data = NULL;
                size_t size;
                if (asprintf(&src, LIVE_INITRD_DIR "/%s", de->d_name) < 0 ||
                    asprintf(&dst, LIVE_MEDIA "/hull/%s", de->d_name) < 0)
                        fatal("out of memory");
                int r = read_full_file(src, 1U << 30, &data, &size);
                if (r >= 0)
                        r = write_file_atomic(dst, data, size, 0644);
                if (r < 0)
                        fatal("cannot copy %s: %s", src, strerror(-r));
        }
        closedir(d);
}

static void attach_loop(const char *img, char *ret, size_t ret_size) {
        _cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        _cleanup_close_ int file = open(img, O_RDONLY | O_CLOEXEC);
        if (ctl < 0)
                fatal("cannot open /dev/loop-control: %s", strerror(errno));
        if (file < 0)
                fatal("the installer medium has no root image (%s): %s", img, strerror(errno));

        for (unsigned attempt = 0;; attempt++) {
                int n = ioctl(ctl, LOOP_CTL_GET_FREE);
                if (n < 0)
                        fatal("cannot get a free loop device: %s", strerror(errno));
                (void) snprintf(ret, ret_size, "/dev/loop%d", n);
                _cleanup_close_ int fd = open(ret, O_RDWR | O_CLOEXEC);
                if (fd < 0)
                        fatal("cannot open %s: %s", ret, strerror(errno));
                struct loop_config lc = { .fd = (uint32_t) file, .info.lo_flags = LO_FLAGS_READ_ONLY };
                (void) snprintf((char *) lc.info.lo_file_name, sizeof(lc.info.lo_file_name), "%.63s", img);
                if (ioctl(fd, LOOP_CONFIGURE, &lc) >= 0)
                        break;
                /* Someone else took it between GET_FREE and CONFIGURE. */
                if (errno != EBUSY || attempt >= 8)
                        fatal("cannot attach %s to %s: %s", img, ret, strerror(errno));
        }
        log_info("Live root %s from %s", ret, img);
}

/* Returns the root device, a read-only loop over the medium's root.img. */
static void setup_live(char *root, size_t root_size) {
        char img[256];

        if (mkdir(LIVE_DIR, 0755) < 0 || mkdir(LIVE_MEDIA, 0755) < 0)
                fatal("cannot create " LIVE_MEDIA ": %s", strerror(errno));
        load_class(INITRD_MODULE_LIVE, false);

        if (streq(cmdline.live, "initrd")) {
                struct stat st;
                if (stat(LIVE_INITRD_DIR "/install.json", &st) < 0)
                        fatal("hull.live=initrd but the initramfs has no " LIVE_INITRD_DIR
                              "/install.json (was the media initrd loaded?)");
                copy_live_initrd_files();
                (void) snprintf(img, sizeof(img), LIVE_INITRD_DIR "/root.img");
        } else {
                RootSpec s = { .kind = ROOT_LIVE_LABEL, .value = cmdline.live };
                char dev[96];
                (void) snprintf(s.what, sizeof(s.what), "%s", cmdline.live);
                wait_for_root(&s, dev, sizeof(dev));
                if (mount(dev, LIVE_MEDIA, "iso9660", MS_RDONLY, NULL) < 0)
                        fatal("cannot mount the installer medium %s: %s", dev, strerror(errno));
                write_run_file(LIVE_DIR "/medium-device", dev);
                (void) snprintf(img, sizeof(img), LIVE_MEDIA "/hull/root.img");
        }
        /* The installer runs without udev and must see the disk it
         * installs onto. */
        settle_storage(500, 10000);
        attach_loop(img, root, root_size);
        write_run_file(LIVE_DIR "/root-device", root);
}

/* ---- step 6: switch_root ------------------------------------------------ */

static void remove_tree(int dfd, dev_t dev) {
        DIR *d = fdopendir(dfd);
        if (!d) {
                (void) close(dfd);
                return;
        }
        for (struct dirent *de; (de = readdir(d));) {
                struct stat st;
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev)
                        continue; /* another file system: a mount point, never ours to clean */
                if (S_ISDIR(st.st_mode)) {
                        int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub >= 0)
                                remove_tree(sub, dev);
                        (void) unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
                } else
                        (void) unlinkat(dirfd(d), de->d_name, 0);
        }
        closedir(d);
}

static void switch_root(void) {
        static const char *const moves[] = { "/dev", "/proc", "/sys", "/run" };
        struct stat st;
        struct statfs sfs;

        for (size_t i = 0; i < ELEMENTSOF(moves); i++) {
                char target[sizeof(SYSROOT) + 8];
                (void) snprintf(target, sizeof(target), SYSROOT "%s", moves[i]);
                if (stat(target, &st) < 0 || !S_ISDIR(st.st_mode))
                        fatal("the root file system has no %s directory to move %s to", moves[i], moves[i]);
                if (mount(moves[i], target, NULL, MS_MOVE, NULL) < 0)
                        fatal("cannot move %s to %s: %s", moves[i], target, strerror(errno));
        }

        int old = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (chdir(SYSROOT) < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0)
                fatal("cannot switch the root to " SYSROOT ": %s", strerror(errno));

        /* Free the initramfs' memory without delaying init: a child does it
         * (the next PID 1 reaps it). Only on the initramfs itself. */
        if (old >= 0 && fstat(old, &st) >= 0 && fstatfs(old, &sfs) >= 0 &&
            (sfs.f_type == RAMFS_MAGIC || sfs.f_type == TMPFS_MAGIC)) {
                pid_t pid = fork();
                if (pid == 0) {
                        remove_tree(old, st.st_dev);
                        _exit(EXIT_SUCCESS);
                }
                if (pid < 0)
                        log_warning("Cannot fork to free the initramfs, ignoring: %m");
        }
        (void) safe_close(old);
}

/* ---- the boot ----------------------------------------------------------- */

static void root_spec_from_cmdline(RootSpec *s) {
        if (cmdline.verity_roothash || (!cmdline.root && cmdline.slot)) {
                /* The slot's partition; root= names the dm-verity device
                 * (/dev/mapper/hull-root) then, which we make ourselves. */
                if (!cmdline.slot)
                        fatal("no hull.slot= on the kernel command line");
                (void) snprintf(s->what, sizeof(s->what), "PARTLABEL=hull-root-%s", cmdline.slot);
                s->kind = ROOT_PARTNAME;
                s->value = s->what + strlen("PARTLABEL=");
                return;
        }
        if (!cmdline.root)
                fatal("no root= and no hull.slot= on the kernel command line");
        (void) snprintf(s->what, sizeof(s->what), "%s", cmdline.root);
        if (string_has_prefix(cmdline.root, "PARTLABEL=")) {
                s->kind = ROOT_PARTNAME;
                s->value = s->what + strlen("PARTLABEL=");
        } else if (string_has_prefix(cmdline.root, "PARTUUID=")) {
                s->kind = ROOT_PARTUUID;
                s->value = s->what + strlen("PARTUUID=");
                if (hull_parse_guid(s->value, s->uuid) < 0)
                        fatal("the kernel command line has an invalid value for root=");
        } else {
                s->kind = ROOT_PATH;
                s->value = s->what;
        }
}

static _noreturn_ void run_boot(int argc, char *argv[]) {
        char root[128], error[1024];
        const char *what;
        RootSpec spec = {};
        int r;

        mount_api();
        if (log_open_kmsg() >= 0)
                log_set_target(LOG_TARGET_KMSG);
        log_info("hull-initrd %s", HULL_VERSION);
        read_cmdline();
        read_conf(INITRD_CONF_PATH);

        /* Before any module: a device that appears while we load the
         * rest must still wake us. */
        open_uevent_socket();
        load_class(INITRD_MODULE_REQUIRED, true);

        if (cmdline.live) {
                setup_live(root, sizeof(root));
                what = "live root";
        } else {
                root_spec_from_cmdline(&spec);
                wait_for_root(&spec, root, sizeof(root));
                what = spec.what;
                if (cmdline.verity_roothash) {
                        char uuid[64];
                        (void) snprintf(uuid, sizeof(uuid), "HULL-VERITY-%s", cmdline.slot);
                        r = verity_open(root, VERITY_NAME, uuid, cmdline.verity_hashoffset, cmdline.verity_roothash,
                                        error, sizeof(error));
                        if (r < 0)
                                fatal("%s", error);
                        log_info("Opened %s as /dev/mapper/" VERITY_NAME " (root hash %s)", root,
                                 cmdline.verity_roothash);
                        (void) snprintf(root, sizeof(root), "/dev/mapper/" VERITY_NAME);
                }
        }
        uevent_fd = safe_close(uevent_fd);

        mount_root(root, what);

        /* Not checked before switching: an absolute symlink (/sbin/init)
         * only resolves in the new root. execv() says what is wrong. */
        const char *init = cmdline.kernel_init ?: DEFAULT_INIT;
        switch_root();

        char **args = calloc((size_t) argc + 1, sizeof(char *));
        if (!args)
                fatal("out of memory");
        args[0] = (char *) init;
        for (int i = 1; i < argc; i++)
                args[i] = argv[i];
        log_info("Starting %s", init);
        execv(init, args);
        fatal("cannot execute %s: %s", init, strerror(errno));
}

/* ---- debug modes, outside of PID 1 -------------------------------------- */

static void help(void) {
        printf("%s [OPTIONS...]\n\n"
               "/init of a Hull initramfs: loads storage drivers, opens the root slot with\n"
               "dm-verity, mounts it and executes init= (hull-init). Runs as PID 1 only.\n\n"
               "Debug modes, for use outside of PID 1:\n"
               "  --check-conf FILE                       Parse an initrd.conf and list it\n"
               "  --verity-table DEV OFFSET HASH          Print the dm-verity table for DEV\n"
               "  --verity-open DEV OFFSET HASH NAME      Create /dev/mapper/NAME as hull-initrd\n"
               "                                          does at boot and print its table\n"
               "  -h --help                               Show this help\n"
               "     --version                            Show the version\n\n"
               "See hull-initrd(8).\n",
               program_invocation_short_name);
}

static int parse_verity_args(char **a, uint64_t *ret_offset) {
        if (safe_atou64(a[1], ret_offset) < 0 || *ret_offset == 0 || *ret_offset % VERITY_BLOCK_SIZE != 0)
                return log_error_errno(EINVAL, "Hash offset '%s' is not a positive multiple of 4096", a[1]);
        if (!hull_roothash_is_valid(a[2]))
                return log_error_errno(EINVAL, "Root hash '%s' is not hex", a[2]);
        return 0;
}

static int run_debug(int argc, char *argv[]) {
        char error[1024];
        uint64_t offset, sectors;
        int r;

        if (argc == 2 && (streq(argv[1], "-h") || streq(argv[1], "--help"))) {
                help();
                return 0;
        }
        if (argc == 2 && streq(argv[1], "--version")) {
                printf("hull-initrd %s\n", HULL_VERSION);
                return 0;
        }
        if (argc == 3 && streq(argv[1], "--check-conf")) {
                _cleanup_free_ char *text = NULL;
                size_t size;
                unsigned line = 0;
                r = read_full_file(argv[2], INITRD_CONF_MAX, &text, &size);
                if (r < 0)
                        return log_error_errno(r, "Cannot read '%s': %m", argv[2]);
                r = initrd_conf_parse(text, size, &conf, &line);
                if (r < 0)
                        return log_error_errno(r, "'%s' is malformed at line %u: %m", argv[2], line);
                printf("kver %s\n", conf.kver);
                for (size_t i = 0; i < conf.n_modules; i++)
                        printf("%s %s %zu deps %zu aliases\n", initrd_module_class_to_string(conf.modules[i].class),
                               conf.modules[i].name, conf.modules[i].n_deps, strv_length(conf.modules[i].aliases));
                initrd_conf_done(&conf);
                return 0;
        }
        if (argc == 5 && streq(argv[1], "--verity-table")) {
                _cleanup_free_ char *params = NULL;
                if ((r = parse_verity_args(argv + 2, &offset)) < 0)
                        return r;
                r = verity_prepare(argv[2], offset, argv[4], &params, &sectors, error, sizeof(error));
                if (r < 0)
                        return log_error_errno(r, "%s", error);
                printf("0 %" PRIu64 " verity %s\n", sectors, params);
                return 0;
        }
        if (argc == 6 && streq(argv[1], "--verity-open")) {
                _cleanup_free_ char *type = NULL, *params = NULL;
                if ((r = parse_verity_args(argv + 2, &offset)) < 0)
                        return r;
                r = verity_open(argv[2], argv[5], NULL, offset, argv[4], error, sizeof(error));
                if (r < 0)
                        return log_error_errno(r, "%s", error);
                r = dm_target_table(argv[5], &type, &params);
                if (r < 0)
                        return log_error_errno(r, "Cannot read the table of '%s': %m", argv[5]);
                printf("/dev/mapper/%s %s %s\n", argv[5], type, params);
                return 0;
        }
        log_error("Refusing to run: not started as PID 1. hull-initrd is /init of a Hull initramfs; "
                  "see --help for the debug modes");
        return -EPERM;
}

int main(int argc, char *argv[]) {
        log_set_prefix(PROGRAM);
        if (getpid() == 1)
                run_boot(argc, argv);
        return run_debug(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
