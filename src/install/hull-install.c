/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hull-install: write a Hull disk from the installer medium (man/hull-install.8).
 *
 * On the installer it runs as PID 1 (init=/usr/lib/hull/hull-install) from the
 * live root, which the initramfs hook hull-live set up as a read-only loop
 * device on the medium's root image: the very bytes that become slot A. It
 * takes its settings from the kernel command line, writes the disk, and
 * reboots into slot A; on any error it says why on the console and powers
 * off, so that a machine does not boot the installer again and again.
 *
 * Run by hand (not PID 1) it takes the same settings as options and neither
 * reboots nor powers off: that is how the loop-device test drives it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "install.h"
#include "provision.h"
#include "strutil.h"

#define LIVE_DIR "/run/hull-live"
#define MEDIA_DIR LIVE_DIR "/media/hull"
#define FAIL_DELAY_SEC 30

static bool pid1 = false;
static const char *arg_media = MEDIA_DIR;
static const char *arg_root_device = NULL; /* where root A's bytes come from; default: the medium's root image */
static const char *arg_medium = NULL;      /* block device of the medium, never a target */
static InstallSettings settings = {};
static struct timespec t0;

static double elapsed(void) {
        struct timespec now;
        (void) clock_gettime(CLOCK_MONOTONIC, &now);
        return (double) (now.tv_sec - t0.tv_sec) + (double) (now.tv_nsec - t0.tv_nsec) / 1e9;
}

static void say(const char *fmt, ...) _printf_(1, 2);
static void say(const char *fmt, ...) {
        va_list ap;
        printf("hull-install: ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        fflush(stdout);
}

static void on_progress(InstallStep step, const char *what, void *userdata) {
        say("[%5.1fs] (%d/%d) %s", elapsed(), (int) step + 1, (int) _INSTALL_STEP_MAX, what);
}

static char *read_line_file(const char *path) {
        _cleanup_free_ char *s = NULL;
        if (read_full_file(path, 4096, &s, NULL) < 0)
                return NULL;
        s[strcspn(s, "\r\n")] = '\0';
        return s[0] ? TAKE_PTR(s) : NULL;
}

static int read_u64_file(const char *path, uint64_t *ret) {
        _cleanup_free_ char *s = read_line_file(path);
        return s ? safe_atou64(s, ret) : -ENOENT;
}

/* "sdb1" -> is it sdb itself or one of its partitions? */
static bool disk_contains(const char *disk, const char *dev) {
        _cleanup_free_ char *p = NULL;
        if (!dev)
                return false;
        if (streq(disk, dev))
                return true;
        if (asprintf(&p, "/sys/block/%s/%s", disk, dev) < 0)
                return false;
        return access(p, F_OK) == 0;
}

static const char *dev_basename(const char *path) {
        const char *s = path ? strrchr(path, '/') : NULL;
        return s ? s + 1 : path;
}

typedef struct Disks {
        InstallCandidate *c;
        char **names;
        char *names_hull[256];
        size_t n;
} Disks;

static void disks_done(Disks *d) {
        for (size_t i = 0; i < d->n; i++) {
                free(d->names[i]);
                free(d->names_hull[i]);
        }
        free(d->names);
        free(d->c);
}

/* The name of a partition called hull-* on the disk, from the kernel's
 * uevent of each partition (PARTNAME=), or NULL. */
static const char *find_hull_partition(const char *disk, char **store) {
        _cleanup_free_ char *dir = NULL;
        DIR *dd;
        struct dirent *de;

        if (asprintf(&dir, "/sys/block/%s", disk) < 0 || !(dd = opendir(dir)))
                return NULL;
        while (!*store && (de = readdir(dd))) {
                _cleanup_free_ char *ue = NULL, *text = NULL;
                if (!string_has_prefix(de->d_name, disk) || asprintf(&ue, "%s/%s/uevent", dir, de->d_name) < 0 ||
                    read_full_file(ue, 16384, &text, NULL) < 0)
                        continue;
                char *p = strstr(text, "PARTNAME=hull-");
                if (p && (p == text || p[-1] == '\n')) {
                        p += strlen("PARTNAME=");
                        *store = strndup(p, strcspn(p, "\n"));
                }
        }
        closedir(dd);
        return *store;
}

static int list_disks(Disks *d) {
        _cleanup_free_ char *medium_real = arg_medium ? realpath(arg_medium, NULL) : NULL;
        _cleanup_free_ char *root_real = arg_root_device ? realpath(arg_root_device, NULL) : NULL;
        DIR *dir = opendir("/sys/block");
        struct dirent *de;

        if (!dir)
                return -errno;
        while ((de = readdir(dir))) {
                char p[PATH_MAX];
                uint64_t sectors = 0, v = 0;

                if (de->d_name[0] == '.' || d->n >= ELEMENTSOF(d->names_hull))
                        continue;
                InstallCandidate *nc = realloc(d->c, (d->n + 1) * sizeof(*nc));
                char **nn = nc ? realloc(d->names, (d->n + 1) * sizeof(*nn)) : NULL;
                if (nc)
                        d->c = nc;
                if (nn)
                        d->names = nn;
                if (!nc || !nn || !(d->names[d->n] = strdup(de->d_name))) {
                        closedir(dir);
                        return -ENOMEM;
                }
                InstallCandidate *c = &d->c[d->n];
                *c = (InstallCandidate) { .name = d->names[d->n] };
                (void) snprintf(p, sizeof(p), "/sys/block/%s/size", de->d_name);
                if (read_u64_file(p, &sectors) >= 0)
                        c->size = sectors * 512;
                (void) snprintf(p, sizeof(p), "/sys/block/%s/removable", de->d_name);
                c->removable = read_u64_file(p, &v) >= 0 && v != 0;
                (void) snprintf(p, sizeof(p), "/sys/block/%s/ro", de->d_name);
                c->read_only = read_u64_file(p, &v) >= 0 && v != 0;
                c->hull_partition = find_hull_partition(de->d_name, &d->names_hull[d->n]);
                /* The medium, and whatever backs the live root, are never targets. */
                c->is_medium = disk_contains(de->d_name, dev_basename(medium_real)) ||
                               disk_contains(de->d_name, dev_basename(root_real));
                d->n++;
        }
        closedir(dir);
        return 0;
}

static int run(void) {
        _cleanup_free_ char *json = NULL, *err = NULL, *what = NULL, *config = NULL, *esp_path = NULL;
        _cleanup_free_ char *root_path = NULL, *cfg_path = NULL, *json_path = NULL, *disk = NULL, *tmp = NULL;
        _cleanup_(install_media_done) InstallMedia m = {};
        _cleanup_(disks_done) Disks d = {};
        size_t json_len = 0, config_len = 0, idx = 0;
        DiskLayout l;
        char b1[32], b2[32], b3[32], b4[32];
        int r;

        if (asprintf(&json_path, "%s/install.json", arg_media) < 0)
                return -ENOMEM;
        r = read_full_file(json_path, 64 << 10, &json, &json_len);
        if (r < 0) {
                say("cannot read %s: %s (is the installer medium there?)", json_path, strerror(-r));
                return r;
        }
        r = install_media_parse(json, json_len, &m, &err);
        if (r < 0) {
                say("%s", err ?: strerror(-r));
                return r;
        }
        say("installing %s %s", m.name, m.version);

        if (m.config) {
                _cleanup_(provision_freep) ProvisionConfig *pc = NULL;
                if (asprintf(&cfg_path, "%s/%s", arg_media, m.config) < 0)
                        return -ENOMEM;
                r = read_full_file(cfg_path, PROVISION_SIZE_MAX, &config, &config_len);
                if (r < 0) {
                        say("cannot read the machine config %s: %s", cfg_path, strerror(-r));
                        return r;
                }
                /* Checked when the medium was made; checked again, since a
                 * config that first boot would refuse must not get installed. */
                r = provision_parse(config, config_len, &pc, &err);
                if (r < 0) {
                        say("the machine config %s is invalid: %s", cfg_path, err ?: strerror(-r));
                        return r;
                }
                say("machine config: %s (%zu bytes)", cfg_path, config_len);
        } else
                say("no machine config on the medium; the node gets its config at first boot");

        r = list_disks(&d);
        if (r < 0) {
                say("cannot list disks in /sys/block: %s", strerror(-r));
                return r;
        }
        r = install_pick_disk(d.c, d.n, settings.disk, &idx, &err);
        if (r < 0) {
                say("%s", err ?: strerror(-r));
                return r;
        }
        if (asprintf(&disk, "/dev/%s", d.c[idx].name) < 0)
                return -ENOMEM;
        r = install_check_other_disks(d.c, d.n, idx, &err);
        if (r < 0) {
                say("%s", err);
                return r;
        }
        say("target disk: %s (%s)", disk, format_bytes(b1, sizeof(b1), d.c[idx].size));

        r = install_probe_data(disk, &what);
        if (r < 0) {
                say("cannot read %s: %s", disk, strerror(-r));
                return r;
        }
        r = install_check_data(disk, what, settings.force, &err);
        if (r < 0) {
                say("%s", err);
                return r;
        }
        if (what)
                say("%s holds data (%s); overwriting it because hull.install.force=1", disk, what);

        /* A disk that is mounted or otherwise in use is refused whatever force says. */
        _cleanup_close_ int excl = open(disk, O_RDONLY | O_EXCL | O_CLOEXEC);
        if (excl < 0) {
                say("cannot open %s exclusively: %s%s", disk, strerror(errno),
                    errno == EBUSY ? " (it is in use: mounted, or part of a RAID or device-mapper device)" : "");
                return -errno;
        }
        excl = safe_close(excl);

        r = install_plan_layout(d.c[idx].size, &m, settings.root_size, &l, &err);
        if (r < 0) {
                say("%s", err ?: strerror(-r));
                return r;
        }
        say("layout: ESP %s, root A %s, root B %s, persist %s",
            format_bytes(b1, sizeof(b1), l.part[PART_ESP].size), format_bytes(b2, sizeof(b2), l.part[PART_ROOT_A].size),
            format_bytes(b3, sizeof(b3), l.part[PART_ROOT_B].size), format_bytes(b4, sizeof(b4), l.part[PART_PERSIST].size));

        if (asprintf(&esp_path, "%s/%s", arg_media, m.esp_image) < 0)
                return -ENOMEM;
        if (!arg_root_device && asprintf(&root_path, "%s/%s", arg_media, m.root_image) < 0)
                return -ENOMEM;
        const char *root_src = arg_root_device ?: root_path;
        _cleanup_close_ int esp_fd = open(esp_path, O_RDONLY | O_CLOEXEC);
        if (esp_fd < 0) {
                say("cannot open the ESP image %s: %s", esp_path, strerror(errno));
                return -errno;
        }
        _cleanup_close_ int root_fd = open(root_src, O_RDONLY | O_CLOEXEC);
        if (root_fd < 0) {
                say("cannot open the root image %s: %s", root_src, strerror(errno));
                return -errno;
        }

        if (pid1) {
                /* The live root is read-only; scratch space for mkfs' seed. */
                tmp = strdup(LIVE_DIR "/tmp");
                if (!tmp)
                        return -ENOMEM;
                (void) mkdir(tmp, 0700);
        } else {
                tmp = strdup("/tmp/hull-install-XXXXXX");
                if (!tmp || !mkdtemp(tmp))
                        return -errno;
        }

        InstallWrite w = {
                .device = disk,
                .layout = &l,
                .esp_fd = esp_fd,
                .esp_max = m.esp_image_size,
                .root_fd = root_fd,
                .root_size = m.root_image_size,
                .config = config,
                .config_len = config_len,
                .tmp_dir = tmp,
                .progress = on_progress,
        };
        say("writing %s: everything on it is replaced", disk);
        r = install_write_disk(&w, &err);
        if (!pid1) {
                char *rm[] = { (char *) "rm", (char *) "-rf", tmp, NULL };
                pid_t p = fork();
                if (p == 0) {
                        execvp(rm[0], rm);
                        _exit(127);
                }
                if (p > 0)
                        (void) waitpid(p, NULL, 0);
        }
        if (r < 0) {
                say("%s; the disk is only partly written and will not boot", err ?: strerror(-r));
                return r;
        }
        sync();
        say("installed %s %s on %s in %.0f s; %s", m.name, m.version, disk, elapsed(),
            pid1 ? "rebooting into slot A" : "done");
        return 0;
}

static void help(void) {
        printf("hull-install — write a Hull disk from the installer medium\n\n"
               "As PID 1 on the installer it reads hull.install.disk=, hull.install.root-size= and\n"
               "hull.install.force= from the kernel command line. By hand:\n\n"
               "  hull-install [--media DIR] [--disk auto|/dev/NAME] [--root-size SIZE|max] [--force]\n"
               "               [--root-device DEV] [--medium DEV]\n\n"
               "See hull-install(8) and docs/INSTALL.md.\n");
}

static int parse_args(int argc, char **argv) {
        enum { ARG_MEDIA = 0x100, ARG_DISK, ARG_ROOT_SIZE, ARG_FORCE, ARG_ROOT_DEVICE, ARG_MEDIUM };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "media", required_argument, NULL, ARG_MEDIA },
                { "disk", required_argument, NULL, ARG_DISK },
                { "root-size", required_argument, NULL, ARG_ROOT_SIZE },
                { "force", no_argument, NULL, ARG_FORCE },
                { "root-device", required_argument, NULL, ARG_ROOT_DEVICE },
                { "medium", required_argument, NULL, ARG_MEDIUM },
                {},
        };
        _cleanup_free_ char *line = NULL, *err = NULL;
        int c, r;

        /* Options become a command line for the same parser as PID 1 uses. */
        line = strdup("");
        if (!line)
                return -ENOMEM;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                char *n = NULL;
                switch (c) {
                case 'h':
                        help();
                        exit(EXIT_SUCCESS);
                case ARG_MEDIA:
                        arg_media = optarg;
                        continue;
                case ARG_ROOT_DEVICE:
                        arg_root_device = optarg;
                        continue;
                case ARG_MEDIUM:
                        arg_medium = optarg;
                        continue;
                case ARG_DISK:
                        r = asprintf(&n, "%s hull.install.disk=%s", line, optarg);
                        break;
                case ARG_ROOT_SIZE:
                        r = asprintf(&n, "%s hull.install.root-size=%s", line, optarg);
                        break;
                case ARG_FORCE:
                        r = asprintf(&n, "%s hull.install.force=1", line);
                        break;
                default:
                        return -EINVAL;
                }
                if (r < 0)
                        return -ENOMEM;
                free(line);
                line = n;
        }
        if (optind < argc) {
                fprintf(stderr, "hull-install: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        r = install_settings_from_cmdline(line, &settings, &err);
        if (r < 0)
                fprintf(stderr, "hull-install: %s\n", err ?: strerror(-r));
        return r;
}

static int settings_from_kernel(void) {
        _cleanup_free_ char *cmdline = NULL, *err = NULL;
        int r = read_full_file("/proc/cmdline", 64 << 10, &cmdline, NULL);
        if (r < 0) {
                say("cannot read /proc/cmdline: %s", strerror(-r));
                return r;
        }
        r = install_settings_from_cmdline(cmdline, &settings, &err);
        if (r < 0) {
                say("%s", err ?: strerror(-r));
                return r;
        }
        /* Written by the initramfs hook (data/initramfs/hull-live.local-top). */
        arg_root_device = read_line_file(LIVE_DIR "/root-device");
        arg_medium = read_line_file(LIVE_DIR "/medium-device");
        return 0;
}

int main(int argc, char **argv) {
        int r;

        (void) clock_gettime(CLOCK_MONOTONIC, &t0);
        pid1 = getpid() == 1;
        if (pid1) {
                (void) setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 1);
                setvbuf(stdout, NULL, _IOLBF, 0);
                say("Hull installer (hull-install %s)", HULL_VERSION);
                r = settings_from_kernel();
        } else
                r = parse_args(argc, argv);
        if (r >= 0)
                r = run();
        install_settings_done(&settings);

        if (!pid1)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        sync();
        if (r >= 0) {
                (void) reboot(RB_AUTOBOOT);
                say("reboot failed: %s", strerror(errno));
        } else {
                say("INSTALLATION FAILED; nothing else will happen. Powering off in %d s.", FAIL_DELAY_SEC);
                sleep(FAIL_DELAY_SEC);
                (void) reboot(RB_POWER_OFF);
                say("power off failed: %s", strerror(errno));
        }
        /* PID 1 must not exit. */
        for (;;)
                pause();
}
