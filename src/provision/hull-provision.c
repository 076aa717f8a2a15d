/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hull-provision: apply the machine config once, on first boot, before the
 * services that read it start (man/hull-provision.8, docs/PROVISION.md).
 *
 * The order is the point of this program:
 *   1. applied.json on persist exists -> say so, exit 0 (never twice);
 *   2. find the config (installer copy, HULL-CONFIG disk, kernel command
 *      line, fw_cfg);
 *   3. parse it;
 *   4. check everything against the system (files, sysctls, units, users,
 *      data disks) -- a config that asks for something impossible stops
 *      here, with nothing changed;
 *   5. apply, and write applied.json last. */
#include <blkid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "datadisk.h"
#include "fetch.h"
#include "fileio.h"
#include "log.h"
#include "nodeconfig.h"
#include "provision.h"
#include "spawn.h"
#include "strutil.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(blkid_probe, blkid_free_probe);

#define CONFIG_LABEL "HULL-CONFIG"
#define CONFIG_FILE_NAME "hull-config.json"
#define FW_CFG_ENTRY "opt/dev.hull/config"
#define PROVISION_DIR "hull/provision"
#define APPLIED_MAX (64 * 1024)
#define CMDLINE_MAX (64 * 1024)
/* Users get no password ("*": no password can match), so SSH keys are the
 * only way in; unlike "!" this is not a locked account for sshd. */
#define NO_PASSWORD "*"

static const char *arg_root = "/";
static const char *arg_persist = "/persist";
static const char *arg_proc_sys = NULL;
static const char *arg_config = NULL;
static const char *arg_cmdline = "/proc/cmdline";
static const char *arg_fw_cfg = "/sys/firmware/qemu_fw_cfg";
static char **arg_config_devices = NULL;
static int arg_disk_wait = 0;
static bool arg_no_systemd = false;
static bool arg_dry_run = false;
/* After the first boot a config is only looked at to say it was ignored:
 * not worth a network fetch (and its retries) on every boot. */
static bool skip_fetch = false;

/* On tmpfs: the check unit's ConditionPathExists=! names it. */
#define PROVISIONED_MARKER_DIR "/run/hull"

/* ---- small helpers ---- */

static char *root_path(const char *p) {
        return path_join(arg_root, p);
}

static bool root_is_host(void) {
        return streq(arg_root, "/");
}

static bool systemd_running(void) {
        return !arg_no_systemd && root_is_host() && access("/run/systemd/system", F_OK) >= 0;
}

static void sha256_hex(const void *data, size_t len, char ret[65]) {
        unsigned char md[32];
        unsigned int n = 0;
        (void) EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
        hex_encode(md, sizeof(md), ret);
}

static int find_program_path(const char *name, char **ret) {
        static const char *const dirs[] = { "/usr/sbin", "/usr/bin", "/sbin", "/bin" };
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *p = path_join(dirs[i], name);
                if (!p)
                        return -ENOMEM;
                if (access(p, X_OK) >= 0) {
                        *ret = TAKE_PTR(p);
                        return 0;
                }
        }
        return -ENOENT;
}

/* ---- step 1: applied before? ---- */

static char *applied_path(void) {
        return path_join(arg_persist, PROVISION_DIR "/applied.json");
}

typedef struct Found {
        char *data;
        size_t size;
        char *source;   /* for humans and applied.json */
} Found;

static void found_done(Found *f) {
        free(f->data);
        free(f->source);
        *f = (Found) {};
}

/* ---- step 2: finding the config ---- */

/* source: how to name it to humans, e.g. "<path> (copied by the installer)". */
static int read_config_file(const char *path, Found *ret, const char *prefix, const char *suffix) {
        _cleanup_free_ char *data = NULL;
        size_t size;
        int r = read_full_file(path, PROVISION_SIZE_MAX, &data, &size);
        if (r < 0)
                return r;
        if (asprintf(&ret->source, "%s%s%s", prefix, path, suffix) < 0)
                return -ENOMEM;
        ret->data = TAKE_PTR(data);
        ret->size = size;
        return 0;
}

static int probe_label(const char *dev, char **ret_type) {
        _cleanup_close_ int fd = open(dev, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return 0; /* an empty CD drive: ENOMEDIUM */
        _cleanup_(blkid_free_probep) blkid_probe pr = blkid_new_probe();
        if (!pr)
                return -ENOMEM;
        if (blkid_probe_set_device(pr, fd, 0, 0) < 0)
                return 0;
        (void) blkid_probe_enable_superblocks(pr, 1);
        (void) blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL);
        if (blkid_do_safeprobe(pr) != 0)
                return 0;
        const char *label = NULL, *type = NULL;
        if (blkid_probe_lookup_value(pr, "LABEL", &label, NULL) < 0 || !label || !streq(label, CONFIG_LABEL))
                return 0;
        if (blkid_probe_lookup_value(pr, "TYPE", &type, NULL) < 0 || !type)
                return 0;
        *ret_type = strdup(type);
        return *ret_type ? 1 : -ENOMEM;
}

/* Block devices to look at for the HULL-CONFIG label: the ones given
 * (tests), or every one the kernel has. By scanning them ourselves rather
 * than through udev's by-label links, which may not exist yet this early. */
static int list_block_devices(char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        if (arg_config_devices) {
                for (char **d = arg_config_devices; *d; d++)
                        if (!(l = strv_append(l, *d)))
                                return -ENOMEM;
                *ret = TAKE_PTR(l);
                return 0;
        }
        DIR *d = opendir("/sys/class/block");
        struct dirent *de;
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *dev = NULL;
                if (de->d_name[0] == '.' || string_has_prefix(de->d_name, "ram") ||
                    string_has_prefix(de->d_name, "zram"))
                        continue;
                if (asprintf(&dev, "/dev/%s", de->d_name) < 0 || !(l = strv_append(l, dev))) {
                        closedir(d);
                        return -ENOMEM;
                }
        }
        closedir(d);
        *ret = TAKE_PTR(l);
        return 0;
}

static int read_from_label(Found *ret, char **error) {
        _cleanup_strv_free_ char **devs = NULL;
        _cleanup_free_ char *dev = NULL, *type = NULL;
        int r;

        r = list_block_devices(&devs);
        if (r < 0)
                return error_set(error, r, "cannot list block devices: %s", strerror(-r));
        for (char **d = devs; d && *d; d++) {
                _cleanup_free_ char *t = NULL;
                r = probe_label(*d, &t);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                if (dev)
                        /* Two candidates: applying the wrong one is worse than
                         * stopping. */
                        return error_set(error, -ENOTUNIQ, "two file systems are labelled %s (%s and %s); remove one",
                                         CONFIG_LABEL, dev, *d);
                dev = strdup(*d);
                type = TAKE_PTR(t);
                if (!dev)
                        return -ENOMEM;
        }
        if (!dev)
                return 0;

        /* Read-only, on a private directory, and gone again before anything
         * else runs: the config disk is not part of the node. */
        char dir[] = "/run/hull-provision.XXXXXX";
        if (!mkdtemp(dir))
                return error_set(error, -errno, "cannot create a mount point in /run: %s", strerror(errno));
        if (mount(dev, dir, type, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
                r = -errno;
                (void) rmdir(dir);
                return error_set(error, r, "cannot mount the %s file system on %s (%s): %s", CONFIG_LABEL, dev, type,
                                 strerror(-r));
        }
        _cleanup_free_ char *file = path_join(dir, CONFIG_FILE_NAME), *data = NULL;
        size_t size = 0;
        r = file ? read_full_file(file, PROVISION_SIZE_MAX, &data, &size) : -ENOMEM;
        (void) umount2(dir, MNT_DETACH);
        (void) rmdir(dir);
        if (r == -ENOENT)
                return error_set(error, r, "%s (labelled %s) has no %s at its root", dev, CONFIG_LABEL, CONFIG_FILE_NAME);
        if (r == -E2BIG)
                return error_set(error, r, "%s on %s is larger than %d bytes", CONFIG_FILE_NAME, dev, PROVISION_SIZE_MAX);
        if (r < 0)
                return error_set(error, r, "cannot read %s on %s: %s", CONFIG_FILE_NAME, dev, strerror(-r));
        if (asprintf(&ret->source, "%s on %s (label %s)", CONFIG_FILE_NAME, dev, CONFIG_LABEL) < 0)
                return -ENOMEM;
        ret->data = TAKE_PTR(data);
        ret->size = size;
        return 1;
}

static int cmdline_value(const char *key, char **ret) {
        _cleanup_free_ char *line = NULL, *value = NULL;
        size_t klen = strlen(key);
        int r = read_full_file(arg_cmdline, CMDLINE_MAX, &line, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        /* Words separated by white space; the last one wins, as in the
         * kernel. Quotes are not needed for paths and URLs. */
        for (char *p = line; *p;) {
                p += strspn(p, " \t\n");
                size_t n = strcspn(p, " \t\n");
                if (n > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
                        free(value);
                        value = strndup(p + klen + 1, n - klen - 1);
                        if (!value)
                                return -ENOMEM;
                }
                p += n;
        }
        if (!value)
                return 0;
        *ret = TAKE_PTR(value);
        return 1;
}

typedef struct Buffer {
        char *data;
        size_t size;
} Buffer;

static int buffer_sink(const void *data, size_t len, void *userdata) {
        Buffer *b = userdata;
        if (b->size + len > PROVISION_SIZE_MAX)
                return -E2BIG;
        char *n = realloc(b->data, b->size + len + 1);
        if (!n)
                return -ENOMEM;
        memcpy(n + b->size, data, len);
        b->size += len;
        n[b->size] = '\0';
        b->data = n;
        return 0;
}

static int read_from_cmdline(Found *ret, char **error) {
        _cleanup_free_ char *value = NULL;
        char q[STRING_QUOTE_SIZE];
        int r = cmdline_value("hull.config", &value);
        if (r < 0)
                return error_set(error, r, "cannot read %s: %s", arg_cmdline, strerror(-r));
        if (r == 0)
                return 0;

        const char *path = NULL;
        if (value[0] == '/')
                path = value;
        else if (string_has_prefix(value, "file:///"))
                path = value + strlen("file://");
        if (path) {
                /* The path is on the node's own file systems (the image,
                 * or /persist). */
                _cleanup_free_ char *p = path_join(arg_root, path);
                if (!p)
                        return -ENOMEM;
                r = read_config_file(p, ret, "kernel command line hull.config=", "");
                if (r < 0)
                        return error_set(error, r, "hull.config=%s: %s", string_quote(q, value),
                                         r == -E2BIG ? "larger than 1 MiB" : strerror(-r));
                return 1;
        }
        if (string_has_prefix(value, "https://") || string_has_prefix(value, "http://")) {
                if (skip_fetch)
                        return 0;
                /* hull-provision runs before systemd-networkd: the network is
                 * only there if the initramfs brought it up (ip=dhcp or
                 * ip=<static> on the kernel command line). Retried for a
                 * while, then a clear error. */
                Buffer b = {};
                _cleanup_free_ char *ferr = NULL;
                FetchOptions fo = {
                        .url = value,
                        .max_retries = 5,
                        .connect_timeout_sec = 10,
                        .stall_timeout_sec = 30,
                        .allow_http = string_has_prefix(value, "http://"),
                };
                r = fetch_global_init();
                if (r >= 0)
                        r = fetch_stream(&fo, buffer_sink, NULL, &b, &ferr);
                if (r < 0) {
                        free(b.data);
                        return error_set(error, r,
                                         "hull.config=%s: cannot fetch it: %s. hull-provision runs before the "
                                         "network is configured: add ip=dhcp (or a static ip=) to the kernel "
                                         "command line so that the initramfs brings it up",
                                         string_quote(q, value), ferr ?: strerror(-r));
                }
                if (asprintf(&ret->source, "kernel command line hull.config=%s", value) < 0) {
                        free(b.data);
                        return -ENOMEM;
                }
                ret->data = b.data ?: strdup("");
                ret->size = b.size;
                return ret->data ? 1 : -ENOMEM;
        }
        return error_set(error, -EINVAL, "hull.config=%s: not an absolute path, file://, http:// or https:// URL",
                         string_quote(q, value));
}

static int read_from_fw_cfg(Found *ret, char **error) {
        _cleanup_free_ char *by_name = path_join(arg_fw_cfg, "by_name"), *raw = NULL;
        int r;

        if (!by_name || asprintf(&raw, "%s/" FW_CFG_ENTRY "/raw", by_name) < 0)
                return -ENOMEM;
        if (access(by_name, F_OK) < 0 && streq(arg_fw_cfg, "/sys/firmware/qemu_fw_cfg")) {
                /* Not built in: the module (only QEMU has the device; on
                 * anything else loading it fails, which is fine). */
                char *argv[] = { (char *) "modprobe", (char *) "-q", (char *) "qemu_fw_cfg", NULL };
                (void) spawn_run(argv, &(SpawnOptions) { .output_fd = -1, .timeout_sec = 30 });
        }
        r = read_config_file(raw, ret, "QEMU fw_cfg ", "");
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return error_set(error, r, "cannot read the fw_cfg entry %s: %s", FW_CFG_ENTRY,
                                 r == -E2BIG ? "larger than 1 MiB" : strerror(-r));
        free(ret->source);
        ret->source = strdup("QEMU fw_cfg " FW_CFG_ENTRY);
        return ret->source ? 1 : -ENOMEM;
}

/* The contract's order; the first found wins. Returns 1 with *ret, 0 for
 * no config anywhere. */
static int find_config(Found *ret, char **error) {
        int r;

        if (arg_config) {
                r = read_config_file(arg_config, ret, "", " (--config)");
                if (r < 0)
                        return error_set(error, r, "%s: %s", arg_config, r == -E2BIG ? "larger than 1 MiB" : strerror(-r));
                return 1;
        }
        _cleanup_free_ char *installed = path_join(arg_persist, PROVISION_DIR "/config.json");
        if (!installed)
                return -ENOMEM;
        r = read_config_file(installed, ret, "", " (copied by the installer)");
        if (r >= 0)
                return 1;
        if (r != -ENOENT)
                return error_set(error, r, "%s: %s", installed, r == -E2BIG ? "larger than 1 MiB" : strerror(-r));
        r = read_from_label(ret, error);
        if (r != 0)
                return r;
        r = read_from_cmdline(ret, error);
        if (r != 0)
                return r;
        return read_from_fw_cfg(ret, error);
}

/* ---- users ---- */

typedef struct PasswdEntry {
        char *name, *home, *shell;
        unsigned uid, gid;
} PasswdEntry;

static void passwd_entry_done(PasswdEntry *e) {
        free(e->name);
        free(e->home);
        free(e->shell);
        *e = (PasswdEntry) {};
}

/* Look a name up in <root>/etc/passwd or /etc/group directly: the files
 * of the system being provisioned, never NSS of the one running us. */
static int db_lookup(const char *file, const char *name, PasswdEntry *ret) {
        _cleanup_free_ char *path = root_path(file);
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        size_t n = 0;

        if (!path)
                return -ENOMEM;
        f = fopen(path, "re");
        if (!f)
                return errno == ENOENT ? 0 : -errno;
        while (getline(&line, &n, f) > 0) {
                char *fields[7] = {};
                size_t k = 0;
                line[strcspn(line, "\n")] = '\0';
                for (char *p = line; k < ELEMENTSOF(fields); k++) {
                        fields[k] = p;
                        p = strchr(p, ':');
                        if (!p) {
                                k++;
                                break;
                        }
                        *p++ = '\0';
                }
                if (k < 3 || !streq(fields[0], name))
                        continue;
                if (ret) {
                        *ret = (PasswdEntry) {};
                        if (safe_atou(fields[2], &ret->uid) < 0)
                                return -EBADMSG;
                        if (k >= 7) {
                                if (safe_atou(fields[3], &ret->gid) < 0)
                                        return -EBADMSG;
                                ret->home = strdup(fields[5]);
                                ret->shell = strdup(fields[6]);
                        }
                        ret->name = strdup(name);
                        if (!ret->name || (k >= 7 && (!ret->home || !ret->shell))) {
                                passwd_entry_done(ret);
                                return -ENOMEM;
                        }
                }
                return 1;
        }
        return 0;
}

static int home_of(const char *name, char **ret) {
        return asprintf(ret, "/home/%s", name) < 0 ? -ENOMEM : 0;
}

/* An existing user is "ours" when a previous, interrupted first boot made
 * it: a regular uid and the home we give. Anything else is the image's. */
static bool user_is_ours(const PasswdEntry *e) {
        _cleanup_free_ char *home = NULL;
        return e->uid >= 1000 && e->uid < 60000 && home_of(e->name, &home) >= 0 && e->home && streq(e->home, home);
}

static int check_users(const ProvisionConfig *c, char **error) {
        _cleanup_free_ char *useradd = NULL;
        char q[STRING_QUOTE_SIZE];
        int r;

        if (c->n_users == 0)
                return 0;
        if (find_program_path("useradd", &useradd) < 0)
                return error_set(error, -ENOEXEC, "users: this image has no useradd");
        for (size_t i = 0; i < c->n_users; i++) {
                const ProvisionUser *u = c->users + i;
                _cleanup_(passwd_entry_done) PasswdEntry e = {};
                r = db_lookup("/etc/passwd", u->name, &e);
                if (r < 0)
                        return error_set(error, r, "users[%zu]: cannot read /etc/passwd: %s", i, strerror(-r));
                if (r > 0 && !user_is_ours(&e))
                        return error_set(error, -EEXIST, "users[%zu].name: %s is already an account of the image (uid %u)",
                                         i, string_quote(q, u->name), e.uid);
                if (r == 0) {
                        r = db_lookup("/etc/group", u->name, NULL);
                        if (r < 0)
                                return r;
                        if (r > 0)
                                return error_set(error, -EEXIST,
                                                 "users[%zu].name: %s is already a group of the image; the user's own group "
                                                 "would clash",
                                                 i, string_quote(q, u->name));
                }
                for (char **g = u->groups; g && *g; g++) {
                        if (streq(*g, PROVISION_ADMIN_GROUP))
                                continue;       /* checked below, with its own message */
                        r = db_lookup("/etc/group", *g, NULL);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                return error_set(error, -ENOENT, "users[%zu].groups: the group %s does not exist in the image",
                                                 i, string_quote(q, *g));
                }
                if (u->shell) {
                        _cleanup_free_ char *sh = root_path(u->shell);
                        if (!sh)
                                return -ENOMEM;
                        if (access(sh, X_OK) < 0)
                                return error_set(error, -ENOENT, "users[%zu].shell: %s does not exist in the image", i,
                                                 string_quote(q, u->shell));
                }
        }
        r = db_lookup("/etc/group", PROVISION_ADMIN_GROUP, NULL);
        if (r < 0)
                return r;
        if (r == 0)
                return error_set(error, -ENOENT,
                                 "users: the image has no group " PROVISION_ADMIN_GROUP " (the admin users' group, made by "
                                 "hull-build); rebuild the image with this version of Hull");
        _cleanup_free_ char *home = root_path("/home");
        struct stat st;
        if (!home)
                return -ENOMEM;
        if (stat(home, &st) < 0 || !S_ISDIR(st.st_mode))
                return error_set(error, -ENOENT, "users: %s is not a directory", home);
        return 0;
}

/* ssh.service itself is checked as a unit; what the generated drop-ins run
 * must be there too (openssh-server brings both). */
static int check_ssh(const ProvisionConfig *c, char **error) {
        static const char *const tools[] = { "/usr/bin/ssh-keygen", "/usr/sbin/sshd" };
        if (!c->ssh_enabled)
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(tools); i++) {
                _cleanup_free_ char *p = root_path(tools[i]);
                if (!p)
                        return -ENOMEM;
                if (access(p, X_OK) < 0)
                        return error_set(error, -ENOENT, "ssh.enabled: the image has no %s (install openssh-server)",
                                         tools[i]);
        }
        return 0;
}

static int join_strv(char **l, const char *sep, char **ret) {
        size_t len = 1;
        for (char **i = l; i && *i; i++)
                len += strlen(*i) + strlen(sep);
        char *s = malloc(len), *p = s;
        if (!s)
                return -ENOMEM;
        *p = '\0';
        for (char **i = l; i && *i; i++)
                p = stpcpy(stpcpy(p, i == l ? "" : sep), *i);
        *ret = s;
        return 0;
}

static int apply_user(const ProvisionUser *u, size_t i, char **error) {
        _cleanup_(passwd_entry_done) PasswdEntry e = {};
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_free_ char *home = NULL, *groups = NULL;
        int r;

        if (home_of(u->name, &home) < 0)
                return -ENOMEM;
        r = db_lookup("/etc/passwd", u->name, &e);
        if (r < 0)
                return r;
        if (r == 0) {
                const char *head[] = { "useradd", "--create-home", "--home-dir", home, "--password", NO_PASSWORD,
                                       "--user-group", NULL };
                for (const char **h = head; *h; h++)
                        if (!(argv = strv_append(argv, *h)))
                                return -ENOMEM;
                /* --prefix: the files of a tree other than ours, without
                 * chroot (which would need the tools inside it). */
                if (!root_is_host() && (!(argv = strv_append(argv, "--prefix")) || !(argv = strv_append(argv, arg_root))))
                        return -ENOMEM;
                if (u->gecos && (!(argv = strv_append(argv, "--comment")) || !(argv = strv_append(argv, u->gecos))))
                        return -ENOMEM;
                if (u->shell && (!(argv = strv_append(argv, "--shell")) || !(argv = strv_append(argv, u->shell))))
                        return -ENOMEM;
                /* Every provisioned user is an admin user: the group opens
                 * hull-agent's socket (hullctl debug) and sshd. */
                _cleanup_strv_free_ char **all = NULL;
                bool admin = false;
                for (char **g = u->groups; g && *g; g++) {
                        admin = admin || streq(*g, PROVISION_ADMIN_GROUP);
                        if (!(all = strv_append(all, *g)))
                                return -ENOMEM;
                }
                if ((!admin && !(all = strv_append(all, PROVISION_ADMIN_GROUP))) || join_strv(all, ",", &groups) < 0 ||
                    !(argv = strv_append(argv, "--groups")) || !(argv = strv_append(argv, groups)))
                        return -ENOMEM;
                if (!(argv = strv_append(argv, "--")) || !(argv = strv_append(argv, u->name)))
                        return -ENOMEM;
                _cleanup_free_ char *out = NULL;
                _cleanup_close_ int fd = memfd_create("useradd", MFD_CLOEXEC);
                r = spawn_run(argv, &(SpawnOptions) { .output_fd = fd, .timeout_sec = 60 });
                if (r != 0) {
                        if (fd >= 0 && lseek(fd, 0, SEEK_SET) == 0 && read_full_fd(fd, 2048, &out, NULL) >= 0)
                                out[strcspn(out, "\n")] = '\0';
                        return error_set(error, r < 0 ? r : -EIO, "users[%zu]: useradd failed (%d)%s%s", i, r,
                                         isempty(out) ? "" : ": ", out ?: "");
                }
                passwd_entry_done(&e);
                r = db_lookup("/etc/passwd", u->name, &e);
                if (r <= 0)
                        return error_set(error, r < 0 ? r : -EIO, "users[%zu]: not in /etc/passwd after useradd", i);
        }

        /* The keys, owned by the user, 0600 in a 0700 .ssh. */
        _cleanup_free_ char *dir = NULL, *file = NULL, *keys = NULL, *abs_home = root_path(home);
        if (!abs_home || asprintf(&dir, "%s/.ssh", abs_home) < 0 || asprintf(&file, "%s/authorized_keys", dir) < 0)
                return -ENOMEM;
        if (!u->ssh_authorized_keys)
                return 0;
        r = provision_authorized_keys(u, &keys);
        if (r < 0)
                return r;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return error_set(error, -errno, "users[%zu]: cannot create %s: %s", i, dir, strerror(errno));
        r = write_file_atomic(file, keys, strlen(keys), 0600);
        if (r < 0)
                return error_set(error, r, "users[%zu]: cannot write %s: %s", i, file, strerror(-r));
        if (chown(dir, e.uid, e.gid) < 0 || chmod(dir, 0700) < 0 || chown(file, e.uid, e.gid) < 0)
                return error_set(error, -errno, "users[%zu]: cannot give %s to the user: %s", i, dir, strerror(errno));
        return 0;
}

/* ---- disks ---- */

static int disk_spec(const ProvisionDisk *d, DataDiskSpec *ret, char **ret_options) {
        _cleanup_free_ char *options = NULL;
        if (d->options && join_strv(d->options, ",", &options) < 0)
                return -ENOMEM;
        *ret = (DataDiskSpec) {
                .device = d->device,
                .partition = d->partition,
                .filesystem = provision_fs_to_string(d->filesystem),
                .label = d->label,
                .mount = d->mount,
                .options = options,
                .wipe = d->wipe,
        };
        *ret_options = TAKE_PTR(options);
        return 0;
}

/* ---- the record ---- */

static int image_version(char **ret) {
        _cleanup_free_ char *path = root_path("/usr/lib/os-release"), *text = NULL;
        if (!path)
                return -ENOMEM;
        if (read_full_file(path, 64 * 1024, &text, NULL) < 0)
                return 0;
        for (char *l = text; l && *l;) {
                char *e = strchrnul(l, '\n');
                if (string_has_prefix(l, "IMAGE_VERSION=")) {
                        const char *v = l + strlen("IMAGE_VERSION=");
                        size_t n = (size_t) (e - v);
                        if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
                                v++;
                                n -= 2;
                        }
                        *ret = strndup(v, n);
                        return *ret ? 1 : -ENOMEM;
                }
                l = *e ? e + 1 : e;
        }
        return 0;
}

static int write_applied(const Found *f, const char *sha) {
        _cleanup_(json_decrefp) json_t *doc = json_object();
        _cleanup_free_ char *path = applied_path(), *dir = path_join(arg_persist, PROVISION_DIR), *version = NULL,
                            *text = NULL;
        char when[64];
        time_t now = time(NULL);
        struct tm tm;
        int r;

        if (!doc || !path || !dir)
                return -ENOMEM;
        r = image_version(&version);
        if (r < 0)
                return r;
        if (!gmtime_r(&now, &tm) || strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                return -EINVAL;
        if (json_object_set_new(doc, "time", json_string(when)) < 0 ||
            json_object_set_new(doc, "source", f ? json_string(f->source) : json_string("none")) < 0 ||
            json_object_set_new(doc, "sha256", sha ? json_string(sha) : json_null()) < 0 ||
            json_object_set_new(doc, "image_version", version ? json_string(version) : json_null()) < 0)
                return -ENOMEM;
        char *s = json_dumps(doc, JSON_SORT_KEYS | JSON_INDENT(2));
        if (!s)
                return -ENOMEM;
        if (asprintf(&text, "%s\n", s) < 0) {
                free(s);
                return -ENOMEM;
        }
        free(s);
        r = mkdir_p(dir, 0700);
        if (r < 0)
                return r;
        if (chmod(dir, 0700) < 0)
                return -errno;
        r = write_file_atomic(path, text, strlen(text), 0600);
        if (r < 0)
                return r;
        /* hull-provision-check.service starts after us in the same boot and
         * would report "provisioned on ..." about the run that just did it;
         * this marker (gone at the next boot) is its condition to skip. */
        if (systemd_running() && !arg_dry_run) {
                /* Without it the check only says "provisioned on" once
                 * more: not worth failing the first boot for. */
                r = mkdir_p(PROVISIONED_MARKER_DIR, 0755);
                if (r >= 0)
                        r = write_file_atomic(PROVISIONED_MARKER_DIR "/provisioned-this-boot", "", 0, 0644);
                if (r < 0)
                        log_warning_errno(r, "Cannot write %s/provisioned-this-boot, ignoring: %m", PROVISIONED_MARKER_DIR);
        }
        return 0;
}

/* ---- main steps ---- */

static int already_applied(void) {
        _cleanup_free_ char *path = applied_path(), *text = NULL;
        int r;

        if (!path)
                return log_oom();
        r = read_full_file(path, APPLIED_MAX, &text, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0) {
                /* Something is there: never apply again, even if it cannot
                 * be read. */
                log_error_errno(r, "Cannot read %s, so not provisioning again: %m", path);
                return 1;
        }

        _cleanup_(json_decrefp) json_t *doc = json_loads(text, 0, NULL);
        const char *when = NULL, *source = NULL, *sha = NULL;
        if (doc)
                (void) json_unpack(doc, "{s?s, s?s, s?s}", "time", &when, "source", &source, "sha256", &sha);
        printf("hull-provision: provisioned on %s from %s\n", when ?: "(unknown time)", source ?: "(unknown source)");

        /* A config offered again is ignored, but say so when it differs:
         * someone may expect it to take effect. Nothing found or an error
         * finding it only matters on first boot. */
        _cleanup_(found_done) Found f = {};
        _cleanup_free_ char *error = NULL;
        skip_fetch = true;
        if (find_config(&f, &error) > 0) {
                char now_sha[65];
                sha256_hex(f.data, f.size, now_sha);
                if (!sha || !streq(sha, now_sha))
                        printf("hull-provision: the config from %s differs from the one applied and was ignored: "
                               "a config applies on first boot only\n",
                               f.source);
        }
        fflush(stdout);
        return 1;
}

static void print_plan(const Found *f, const char *sha, const ProvisionConfig *c, const NodeConfig *n,
                       const DataDiskPlan *plans) {
        printf("config: %s (sha256 %s)\n", f->source, sha);
        if (c->hostname)
                printf("hostname: %s\n", c->hostname);
        for (size_t i = 0; i < n->n_files; i++)
                printf("file: %s (%04o, %zu bytes)\n", n->files[i].path, (unsigned) n->files[i].mode, n->files[i].size);
        for (size_t i = 0; i < n->n_sysctl; i++)
                printf("sysctl: %s = %s\n", n->sysctl[i].key, n->sysctl[i].value);
        for (char **u = n->units_enable; u && *u; u++)
                printf("enable: %s\n", *u);
        for (char **u = n->units_disable; u && *u; u++)
                printf("disable: %s\n", *u);
        for (size_t i = 0; i < c->n_users; i++)
                printf("user: %s (%zu key(s))\n", c->users[i].name, strv_length(c->users[i].ssh_authorized_keys));
        for (size_t i = 0; i < c->n_disks; i++)
                printf("disk: %s -> %s: %s (%s, holds %s), unit %s\n", c->disks[i].device, plans[i].device,
                       datadisk_action_to_string(plans[i].action), plans[i].filesystem, plans[i].what, plans[i].unit_name);
}

static int fail(const char *what, const char *source, int r, const char *message) {
        /* The one line a person at the console needs; systemd copies
         * stderr there (StandardError=journal+console). */
        fprintf(stderr, "hull-provision: first boot stopped: %s%s%s%s: %s\n", what, source ? " (" : "", source ?: "",
                source ? ")" : "", message ?: strerror(-r));
        fflush(stderr);
        return r;
}

/* ---- a host name when the config names none ---- */

/* The MAC address of the first physical interface by name (one with a
 * device behind it and a permanent address), for a node whose machine ID
 * is not there yet. Only on the host itself: --root has no interfaces of
 * its own. */
static int cmp_name(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int primary_mac(char **ret) {
        _cleanup_strv_free_ char **names = NULL;
        DIR *d;
        struct dirent *de;

        if (!root_is_host())
                return -ENOENT;
        d = opendir("/sys/class/net");
        if (!d)
                return -errno;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' && !streq(de->d_name, "lo") && !(names = strv_append(names, de->d_name))) {
                        closedir(d);
                        return -ENOMEM;
                }
        closedir(d);
        if (names)
                qsort(names, strv_length(names), sizeof(char *), cmp_name);
        for (char **n = names; n && *n; n++) {
                _cleanup_free_ char *dev = NULL, *type = NULL, *addr = NULL, *tpath = NULL, *apath = NULL;
                if (asprintf(&dev, "/sys/class/net/%s/device", *n) < 0 ||
                    asprintf(&tpath, "/sys/class/net/%s/addr_assign_type", *n) < 0 ||
                    asprintf(&apath, "/sys/class/net/%s/address", *n) < 0)
                        return -ENOMEM;
                if (access(dev, F_OK) < 0 || read_full_file(tpath, 64, &type, NULL) < 0 || !streq(type, "0\n") ||
                    read_full_file(apath, 64, &addr, NULL) < 0)
                        continue;
                addr[strcspn(addr, "\n")] = '\0';
                *ret = TAKE_PTR(addr);
                return 0;
        }
        return -ENOENT;
}

/* hull-init wrote /etc/machine-id over the image's "uninitialized" before
 * systemd started (or, if it could not, systemd set one up before any unit
 * runs). Either way it is the ID this node runs with now. */
static int default_hostname(char **ret, const char **ret_from) {
        _cleanup_free_ char *path = root_path("/etc/machine-id"), *id = NULL, *mac = NULL;
        int r;

        if (!path)
                return -ENOMEM;
        r = read_full_file(path, 128, &id, NULL);
        if (r == -ENOMEM)
                return r;
        r = provision_default_hostname(id, NULL, ret); /* no file, or not an ID: -ENOENT */
        if (r != -ENOENT) {
                *ret_from = "the machine ID";
                return r;
        }
        r = primary_mac(&mac);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return -ENOENT;
        *ret_from = "the MAC address of the first network interface";
        return provision_default_hostname(NULL, mac, ret);
}

static bool config_has_file(const NodeConfig *n, const char *path) {
        for (size_t i = 0; n && i < n->n_files; i++)
                if (streq(n->files[i].path, path))
                        return true;
        return false;
}

/* A node that joins a cluster needs a name of its own (it is its Node
 * name), and so does any other: the image carries none. 1 if c->hostname
 * was set, 0 if the config manages /etc/hostname itself or no name can be
 * made, -ENOMEM. */
static int fill_hostname(ProvisionConfig *c) {
        const char *from = NULL;
        char *name = NULL;
        int r;

        if (c->hostname || config_has_file(c->node, "/etc/hostname") || config_has_file(c->node, "/etc/hosts"))
                return 0;
        r = default_hostname(&name, &from);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        c->hostname = name;
        printf("hull-provision: no hostname in the config: this node is %s (from %s)\n", name, from);
        return 1;
}

/* No config at all: the node still gets a name of its own, through the
 * same files a config's hostname writes. */
static int name_unconfigured_node(void) {
        _cleanup_(provision_freep) ProvisionConfig *c = NULL;
        _cleanup_(node_config_freep) NodeConfig *n = NULL;
        _cleanup_free_ char *error = NULL;
        NodeConfigApplyResult nr;
        int r;

        r = provision_parse("{\"hull_config\":1}", strlen("{\"hull_config\":1}"), &c, NULL);
        if (r < 0)
                return r;
        r = fill_hostname(c);
        if (r <= 0) {
                if (r == 0)
                        printf("hull-provision: no machine ID and no network interface to name this node after: "
                               "it keeps the image's host name\n");
                return r;
        }
        if (arg_dry_run) {
                printf("hostname: %s\n", c->hostname);
                return 0;
        }
        r = provision_render(c, &n, &error);
        if (r >= 0) {
                NodeConfigApplyOptions no = { .root = arg_root, .proc_sys = arg_proc_sys };
                r = node_config_apply(NULL, n, &no, &nr, &error);
        }
        if (r < 0)
                return fail("cannot write the host name", NULL, r, error);
        if (root_is_host() && sethostname(c->hostname, strlen(c->hostname)) < 0)
                log_warning_errno(errno, "Cannot set the host name now (it is in /etc/hostname for the next boot): %m");
        return 0;
}

static int provision(void) {
        _cleanup_(found_done) Found f = {};
        _cleanup_(provision_freep) ProvisionConfig *c = NULL;
        _cleanup_(node_config_freep) NodeConfig *n = NULL;
        _cleanup_free_ char *error = NULL;
        DataDiskPlan *plans = NULL;
        char **disk_options = NULL, **start = NULL;
        char sha[65];
        int r;

        r = already_applied();
        if (r != 0)
                return r < 0 ? r : 0;

        r = find_config(&f, &error);
        if (r < 0)
                return fail("cannot read the machine config", NULL, r, error);
        if (r == 0) {
                printf("hull-provision: no machine config found (no installer copy, no %s disk, no hull.config=, "
                       "no fw_cfg %s): first boot goes on with the image as it is\n",
                       CONFIG_LABEL, FW_CFG_ENTRY);
                r = name_unconfigured_node();
                if (r < 0)
                        return r;
                if (arg_dry_run)
                        return 0;
                r = write_applied(NULL, NULL);
                if (r < 0)
                        return fail("cannot record the first boot", NULL, r, NULL);
                return 0;
        }
        sha256_hex(f.data, f.size, sha);
        printf("hull-provision: config from %s (sha256 %s)\n", f.source, sha);

        r = provision_parse(f.data, f.size, &c, &error);
        if (r < 0)
                return fail("the machine config is invalid", f.source, r, error);
        r = fill_hostname(c);
        if (r < 0)
                return fail("cannot name this node", f.source, r, NULL);
        if (!c->hostname && c->kubernetes && !config_has_file(c->node, "/etc/hostname"))
                /* Every such node would register as the same Node. */
                return fail("the machine config cannot be applied", f.source, -ENOENT,
                            "kubernetes: the config names no hostname and none can be made (no machine ID in "
                            "/etc/machine-id, no network interface with a MAC address): set hostname");
        r = provision_render(c, &n, &error);
        if (r < 0)
                return fail("the machine config cannot be rendered", f.source, r, error);

        /* ---- check everything ---- */
        bool systemd = systemd_running() && !arg_dry_run;
        NodeConfigApplyOptions no = {
                .root = arg_root,
                .proc_sys = arg_proc_sys,
                .run_systemctl = systemd,
                .check_only = true,
        };
        NodeConfigApplyResult nr;
        r = node_config_apply(NULL, n, &no, &nr, &error);
        if (r < 0)
                return fail("the machine config cannot be applied", f.source, r, error);
        r = check_users(c, &error);
        if (r >= 0)
                r = check_ssh(c, &error);
        if (r < 0)
                return fail("the machine config cannot be applied", f.source, r, error);

        DataDiskOptions dopt = { .root = arg_root, .wait_sec = arg_disk_wait, .live = true };
        plans = calloc(MAX(c->n_disks, (size_t) 1), sizeof(DataDiskPlan));
        disk_options = calloc(MAX(c->n_disks, (size_t) 1) + 1, sizeof(char *));
        if (!plans || !disk_options) {
                r = log_oom();
                goto finish;
        }
        for (size_t i = 0; i < c->n_disks; i++) {
                DataDiskSpec s;
                _cleanup_free_ char *e = NULL, *msg = NULL;
                r = disk_spec(c->disks + i, &s, &disk_options[i]);
                if (r < 0)
                        goto finish;
                /* Two names for one disk (a by-id link and /dev/vdb): the
                 * parser sees different strings. */
                _cleanup_free_ char *real = realpath(s.device, NULL);
                for (size_t j = 0; real && j < i; j++)
                        if (streq(plans[j].device, real)) {
                                if (asprintf(&msg, "disks[%zu] and disks[%zu] are the same device %s", j, i, real) < 0)
                                        msg = NULL;
                                r = fail("the machine config cannot be applied", f.source, -EINVAL, msg);
                                goto finish;
                        }
                r = datadisk_plan(&s, &dopt, plans + i, &e);
                if (r < 0) {
                        if (asprintf(&msg, "disks[%zu]: %s", i, e ?: strerror(-r)) < 0)
                                msg = NULL;
                        r = fail("the machine config cannot be applied", f.source, r, msg);
                        goto finish;
                }
        }

        if (arg_dry_run) {
                print_plan(&f, sha, c, n, plans);
                r = 0;
                goto finish;
        }

        /* ---- apply ---- */
        no.check_only = false;
        r = node_config_apply(NULL, n, &no, &nr, &error);
        if (r < 0) {
                r = fail("applying the machine config failed", f.source, r, error);
                goto finish;
        }
        if (c->hostname && root_is_host() && sethostname(c->hostname, strlen(c->hostname)) < 0)
                log_warning_errno(errno, "Cannot set the host name now (it is in /etc/hostname for the next boot): %m");

        for (size_t i = 0; i < c->n_users; i++) {
                r = apply_user(c->users + i, i, &error);
                if (r < 0) {
                        r = fail("applying the machine config failed", f.source, r, error);
                        goto finish;
                }
        }

        for (char **u = n->units_enable; u && *u; u++)
                if (!(start = strv_append(start, *u))) {
                        r = log_oom();
                        goto finish;
                }
        for (size_t i = 0; i < c->n_disks; i++) {
                DataDiskResult res = {};
                _cleanup_free_ char *e = NULL, *msg = NULL;
                r = datadisk_apply(plans + i, &dopt, &res, &e);
                if (r < 0) {
                        if (asprintf(&msg, "disks[%zu]: %s", i, e ?: strerror(-r)) < 0)
                                msg = NULL;
                        r = fail("applying the machine config failed", f.source, r, msg);
                        goto finish;
                }
                printf("hull-provision: %s: %s, %s on %s (UUID %s)\n", c->disks[i].device,
                       res.formatted ? "formatted" : "kept as it was", plans[i].filesystem, plans[i].mount, res.uuid);
                if (!(start = strv_append(start, res.unit_name))) {
                        datadisk_result_done(&res);
                        r = log_oom();
                        goto finish;
                }
                datadisk_result_done(&res);
        }

        if (systemd) {
                /* The boot transaction was computed before these units were
                 * enabled: load them and queue their start jobs. No
                 * waiting: they are ordered after us. */
                char *reload[] = { (char *) "systemctl", (char *) "daemon-reload", NULL };
                r = spawn_run(reload, &(SpawnOptions) { .output_fd = STDERR_FILENO, .timeout_sec = 120 });
                if (r != 0)
                        log_warning("systemctl daemon-reload failed (%d), ignoring", r);
                _cleanup_strv_free_ char **argv = NULL;
                if (!(argv = strv_append(argv, "systemctl")) || !(argv = strv_append(argv, "start")) ||
                    !(argv = strv_append(argv, "--no-block"))) {
                        r = log_oom();
                        goto finish;
                }
                for (char **u = start; u && *u; u++)
                        if (!(argv = strv_append(argv, *u))) {
                                r = log_oom();
                                goto finish;
                        }
                if (start) {
                        r = spawn_run(argv, &(SpawnOptions) { .output_fd = STDERR_FILENO, .timeout_sec = 120 });
                        if (r != 0)
                                log_warning("systemctl start --no-block failed (%d), ignoring", r);
                }
        }

        /* Last: from here on this node is provisioned. */
        r = write_applied(&f, sha);
        if (r < 0) {
                r = fail("cannot record the first boot", f.source, r, NULL);
                goto finish;
        }
        printf("hull-provision: applied: %zu file(s), %zu sysctl(s), %zu unit(s), %zu user(s), %zu disk(s)\n", n->n_files,
               n->n_sysctl, strv_length(n->units_enable) + strv_length(n->units_disable), c->n_users, c->n_disks);
        r = 0;

finish:
        for (size_t i = 0; plans && i < c->n_disks; i++)
                datadisk_plan_done(plans + i);
        free(plans);
        strv_free(disk_options);
        strv_free(start);
        return r;
}

static void help(void) {
        printf("Usage: hull-provision [OPTIONS]\n\n"
               "Apply the machine config once, on first boot (hull-provision.service).\n\n"
               "  --root DIR          apply below DIR instead of /\n"
               "  --persist DIR       the persist file system (default /persist)\n"
               "  --proc-sys DIR      where sysctls are written (default /proc/sys)\n"
               "  --config FILE       use this config, skip discovery\n"
               "  --config-device DEV look for the %s label only on DEV (repeatable)\n"
               "  --cmdline FILE      the kernel command line (default /proc/cmdline)\n"
               "  --fw-cfg DIR        QEMU fw_cfg in sysfs (default /sys/firmware/qemu_fw_cfg)\n"
               "  --disk-wait SEC     wait this long for data disks (default 30)\n"
               "  --no-systemd        do not talk to systemd\n"
               "  --dry-run           check and print the plan, change nothing\n"
               "  -h --help           this text\n",
               CONFIG_LABEL);
}

static int parse_argv(int argc, char **argv) {
        enum {
                ARG_ROOT = 0x100,
                ARG_PERSIST,
                ARG_PROC_SYS,
                ARG_CONFIG,
                ARG_CONFIG_DEVICE,
                ARG_CMDLINE,
                ARG_FW_CFG,
                ARG_DISK_WAIT,
                ARG_NO_SYSTEMD,
                ARG_DRY_RUN,
        };
        static const struct option opts[] = {
                { "root", required_argument, NULL, ARG_ROOT },
                { "persist", required_argument, NULL, ARG_PERSIST },
                { "proc-sys", required_argument, NULL, ARG_PROC_SYS },
                { "config", required_argument, NULL, ARG_CONFIG },
                { "config-device", required_argument, NULL, ARG_CONFIG_DEVICE },
                { "cmdline", required_argument, NULL, ARG_CMDLINE },
                { "fw-cfg", required_argument, NULL, ARG_FW_CFG },
                { "disk-wait", required_argument, NULL, ARG_DISK_WAIT },
                { "no-systemd", no_argument, NULL, ARG_NO_SYSTEMD },
                { "dry-run", no_argument, NULL, ARG_DRY_RUN },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        unsigned u;
        int c;

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
                switch (c) {
                case ARG_ROOT: arg_root = optarg; break;
                case ARG_PERSIST: arg_persist = optarg; break;
                case ARG_PROC_SYS: arg_proc_sys = optarg; break;
                case ARG_CONFIG: arg_config = optarg; break;
                case ARG_CONFIG_DEVICE:
                        if (!(arg_config_devices = strv_append(arg_config_devices, optarg)))
                                return log_oom();
                        break;
                case ARG_CMDLINE: arg_cmdline = optarg; break;
                case ARG_FW_CFG: arg_fw_cfg = optarg; break;
                case ARG_DISK_WAIT:
                        if (safe_atou(optarg, &u) < 0 || u > 3600)
                                return log_error_errno(EINVAL, "--disk-wait: not a number of seconds <= 3600: %s", optarg);
                        arg_disk_wait = u == 0 ? -1 : (int) u;
                        break;
                case ARG_NO_SYSTEMD: arg_no_systemd = true; break;
                case ARG_DRY_RUN: arg_dry_run = true; break;
                case 'h': help(); return 0;
                default: return -EINVAL;
                }
        if (optind < argc)
                return log_error_errno(EINVAL, "Unexpected argument: %s", argv[optind]);
        if (arg_root[0] != '/' || arg_persist[0] != '/')
                return log_error_errno(EINVAL, "--root and --persist must be absolute paths");
        return 1;
}

int main(int argc, char **argv) {
        int r;

        log_set_prefix("hull-provision");
        /* One line per step on the console: keep stdout in order with
         * stderr. */
        setvbuf(stdout, NULL, _IOLBF, 0);
        r = parse_argv(argc, argv);
        if (r <= 0) {
                strv_free(arg_config_devices);
                return r < 0 ? 2 : 0;
        }
        r = provision();
        strv_free(arg_config_devices);
        return r < 0 ? 1 : 0;
}
