/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "agent.h"
#include "debug-exec.h"
#include "hook.h"
#include "stage-worker.h"
#include "fileio.h"
#include "log.h"
#include "oci.h"
#include "strutil.h"

static void closedirp_agent(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

static void help(void) {
        printf("hull-agent — the Hull node daemon: A/B updates, rollback and configuration\n\n"
               "Usage: hull-agent [options]\n\n"
               "  --socket PATH            API socket (default /run/hull/agent.sock)\n"
               "  --socket-group GROUP     also allow members of GROUP (default: root only)\n"
               "  --state-dir DIR          state, config and audit log (default /persist/hull/agent)\n"
               "  --health-timeout SEC     time for a new boot to become healthy (default 300)\n"
               "  --check-timeout SEC      time limit of one health check (default 60)\n"
               "  --health-dir DIR         health check directory (repeatable; default\n"
               "                           /usr/lib/hull/health.d and /etc/hull/health.d)\n"
               "  --no-auto-mark-good      do not check health and mark good after boot\n"
               "  --no-reboot-on-unhealthy do not reboot when the checks never pass\n"
               "  --reboot-command CMD     how to reboot (default \"systemctl reboot\")\n"
               "  --reboot-retry SEC       run it again while still up SEC seconds after a\n"
               "                           reboot was asked for (default 120; 0: never)\n"
               "  --registry-auth FILE     registry credentials for oci:// sources, docker\n"
               "                           config.json format (default /etc/hull/registry-auth.json;\n"
               "                           missing: anonymous)\n"
               "  --toolbox DIR            the admin container's root file system\n"
               "                           (default /persist/hull/toolbox)\n"
               "  --hooks-dir DIR          where POST /v1/hook looks for hooks (repeatable, first\n"
               "                           match wins; default " HOOK_DIR_ETC " then\n"
               "                           " HOOK_DIR_USR ")\n"
               "  --hook-kill-grace SEC    between SIGTERM and SIGKILL when a hook times out\n"
               "                           (default 10)\n"
               "Outside a Hull node (tests):\n"
               "  --esp DIR --slot-a DEV --slot-b DEV --booted-slot a|b --keys DIR\n"
               "  --boot-json FILE --os-release FILE --config-root DIR --proc-sys DIR\n"
               "  --components-file FILE   the running image's components.json\n"
               "                           (default " COMPONENTS_FILE ")\n"
               "  --no-systemd-check       skip waiting for systemd's default target\n"
               "  --offline                manage units with symlinks instead of systemctl\n\n"
               "API: docs/AGENT-API.md; see hull-agent(8).\n");
}

enum {
        ARG_SOCKET = 0x100,
        ARG_SOCKET_GROUP,
        ARG_STATE_DIR,
        ARG_HEALTH_TIMEOUT,
        ARG_CHECK_TIMEOUT,
        ARG_HEALTH_DIR,
        ARG_NO_AUTO,
        ARG_NO_REBOOT_UNHEALTHY,
        ARG_REBOOT_COMMAND,
        ARG_REBOOT_RETRY,
        ARG_ESP,
        ARG_SLOT_A,
        ARG_SLOT_B,
        ARG_BOOTED,
        ARG_KEYS,
        ARG_REGISTRY_AUTH,
        ARG_BOOT_JSON,
        ARG_OS_RELEASE,
        ARG_COMPONENTS_FILE,
        ARG_CONFIG_ROOT,
        ARG_PROC_SYS,
        ARG_NO_SYSTEMD,
        ARG_OFFLINE,
        ARG_TOOLBOX,
        ARG_HOOKS_DIR,
        ARG_HOOK_KILL_GRACE,
        ARG_VERSION,
};

static int parse_args(int argc, char **argv, AgentOptions *o) {
        static const struct option opts[] = {
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "socket-group", required_argument, NULL, ARG_SOCKET_GROUP },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "health-timeout", required_argument, NULL, ARG_HEALTH_TIMEOUT },
                { "check-timeout", required_argument, NULL, ARG_CHECK_TIMEOUT },
                { "health-dir", required_argument, NULL, ARG_HEALTH_DIR },
                { "no-auto-mark-good", no_argument, NULL, ARG_NO_AUTO },
                { "no-reboot-on-unhealthy", no_argument, NULL, ARG_NO_REBOOT_UNHEALTHY },
                { "reboot-command", required_argument, NULL, ARG_REBOOT_COMMAND },
                { "reboot-retry", required_argument, NULL, ARG_REBOOT_RETRY },
                { "esp", required_argument, NULL, ARG_ESP },
                { "slot-a", required_argument, NULL, ARG_SLOT_A },
                { "slot-b", required_argument, NULL, ARG_SLOT_B },
                { "booted-slot", required_argument, NULL, ARG_BOOTED },
                { "keys", required_argument, NULL, ARG_KEYS },
                { "registry-auth", required_argument, NULL, ARG_REGISTRY_AUTH },
                { "boot-json", required_argument, NULL, ARG_BOOT_JSON },
                { "os-release", required_argument, NULL, ARG_OS_RELEASE },
                { "components-file", required_argument, NULL, ARG_COMPONENTS_FILE },
                { "config-root", required_argument, NULL, ARG_CONFIG_ROOT },
                { "proc-sys", required_argument, NULL, ARG_PROC_SYS },
                { "no-systemd-check", no_argument, NULL, ARG_NO_SYSTEMD },
                { "offline", no_argument, NULL, ARG_OFFLINE },
                { "toolbox", required_argument, NULL, ARG_TOOLBOX },
                { "hooks-dir", required_argument, NULL, ARG_HOOKS_DIR },
                { "hook-kill-grace", required_argument, NULL, ARG_HOOK_KILL_GRACE },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (c) {
                case ARG_SOCKET: o->socket_path = optarg; break;
                case ARG_SOCKET_GROUP: o->socket_group = optarg; break;
                case ARG_STATE_DIR: o->state_dir = optarg; break;
                case ARG_HEALTH_TIMEOUT:
                case ARG_CHECK_TIMEOUT: {
                        unsigned v;
                        if (safe_atou(optarg, &v) < 0 || v < 1 || v > 86400)
                                return log_error_errno(EINVAL, "--%s must be 1 to 86400 seconds, not '%s'.",
                                                       c == ARG_HEALTH_TIMEOUT ? "health-timeout" : "check-timeout",
                                                       optarg);
                        if (c == ARG_HEALTH_TIMEOUT)
                                o->health_timeout_sec = v;
                        else
                                o->check_timeout_sec = v;
                        break;
                }
                case ARG_HEALTH_DIR: {
                        static bool replaced = false;
                        if (!replaced) {
                                o->health_dirs = NULL; /* the defaults are static */
                                replaced = true;
                        }
                        if (!(o->health_dirs = strv_append(o->health_dirs, optarg)))
                                return log_oom();
                        break;
                }
                case ARG_NO_AUTO: o->auto_mark_good = false; break;
                case ARG_NO_REBOOT_UNHEALTHY: o->reboot_on_unhealthy = false; break;
                case ARG_REBOOT_COMMAND: o->reboot_command = optarg; break;
                case ARG_REBOOT_RETRY:
                        if (safe_atou(optarg, &o->reboot_retry_sec) < 0 || o->reboot_retry_sec > 86400)
                                return log_error_errno(EINVAL, "--reboot-retry must be 0 to 86400 seconds, not '%s'.",
                                                       optarg);
                        break;
                case ARG_ESP: o->esp_dir = optarg; break;
                case ARG_SLOT_A: o->slot_device[SLOT_A] = optarg; break;
                case ARG_SLOT_B: o->slot_device[SLOT_B] = optarg; break;
                case ARG_BOOTED:
                        if (slot_from_string(optarg) < 0)
                                return log_error_errno(EINVAL, "--booted-slot must be a or b, not '%s'.", optarg);
                        o->booted_slot = optarg;
                        break;
                case ARG_KEYS: o->keys_dir = optarg; break;
                case ARG_REGISTRY_AUTH: o->registry_auth = optarg; break;
                case ARG_BOOT_JSON: o->boot_json = optarg; break;
                case ARG_OS_RELEASE: o->os_release = optarg; break;
                case ARG_COMPONENTS_FILE: o->components_file = optarg; break;
                case ARG_CONFIG_ROOT: o->config_root = optarg; break;
                case ARG_PROC_SYS: o->proc_sys = optarg; break;
                case ARG_NO_SYSTEMD: o->systemd_check = false; break;
                case ARG_OFFLINE: o->live = false; break;
                case ARG_TOOLBOX: o->toolbox = optarg; break;
                case ARG_HOOKS_DIR: {
                        static bool replaced = false;
                        if (!replaced) {
                                o->hook_dirs = NULL; /* the defaults are static */
                                replaced = true;
                        }
                        if (optarg[0] != '/')
                                return log_error_errno(EINVAL, "--hooks-dir must be an absolute path, not '%s'.",
                                                       optarg);
                        if (!(o->hook_dirs = strv_append(o->hook_dirs, optarg)))
                                return log_oom();
                        break;
                }
                case ARG_HOOK_KILL_GRACE:
                        if (safe_atou(optarg, &o->hook_kill_grace_sec) < 0 || o->hook_kill_grace_sec > 3600)
                                return log_error_errno(EINVAL, "--hook-kill-grace must be 0 to 3600 seconds, not '%s'.",
                                                       optarg);
                        break;
                case 'h': help(); exit(EXIT_SUCCESS);
                case ARG_VERSION: printf("hull-agent %s\n", HULL_VERSION); exit(EXIT_SUCCESS);
                default: return -EINVAL;
                }
        }
        if (optind < argc)
                return log_error_errno(EINVAL, "Unexpected argument '%s'; see --help.", argv[optind]);
        return 0;
}

static void read_os_release(Agent *a) {
        _cleanup_free_ char *data = NULL;
        struct {
                const char *key;
                char *dest;
                size_t size;
        } keys[] = {
                { "IMAGE_ID=", a->os_name, sizeof(a->os_name) },
                { "IMAGE_VERSION=", a->os_version, sizeof(a->os_version) },
                { "PRETTY_NAME=", a->pretty_name, sizeof(a->pretty_name) },
        };

        snprintf(a->os_name, sizeof(a->os_name), "unknown");
        snprintf(a->os_version, sizeof(a->os_version), "unknown");
        if (read_full_file(a->opt.os_release, 64 * 1024, &data, NULL) < 0)
                return;
        char *save = NULL;
        for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                        if (string_has_prefix(line, keys[i].key)) {
                                char *v = line + strlen(keys[i].key);
                                size_t l = strlen(v);
                                if (l >= 2 && (v[0] == '"' || v[0] == '\'') && v[l - 1] == v[0]) {
                                        v[l - 1] = 0;
                                        v++;
                                }
                                snprintf(keys[i].dest, keys[i].size, "%s", v);
                        }
}

/* The facts hull-init recorded at boot. */
static int read_boot_json(Agent *a, char **ret_persist_device) {
        _cleanup_free_ char *data = NULL;
        size_t len;
        int r = read_full_file(a->opt.boot_json, 64 * 1024, &data, &len);
        if (r < 0)
                return log_error_errno(r, "Failed to read %s (written by hull-init at boot): %m", a->opt.boot_json);
        _cleanup_(json_decrefp) json_t *j = json_loadb(data, len, 0, NULL);
        if (!j)
                return log_error_errno(EBADMSG, "%s is not valid JSON.", a->opt.boot_json);
        const char *slot = json_string_value(json_object_get(j, "slot"));
        if (!a->opt.booted_slot) {
                if (!slot || slot_from_string(slot) < 0)
                        return log_error_errno(EBADMSG, "%s does not name the booted slot.", a->opt.boot_json);
                a->target.booted = slot_from_string(slot);
        }
        a->degraded = json_is_true(json_object_get(j, "degraded"));
        a->first_boot = json_is_true(json_object_get(j, "first_boot"));
        snprintf(a->boot_id, sizeof(a->boot_id), "%s", json_string_value(json_object_get(j, "boot_id")) ?: "");
        const char *pd = json_string_value(json_object_get(j, "persist_device"));
        *ret_persist_device = pd ? strdup(pd) : NULL;
        return 0;
}

/* Partitions are found on the disk that holds persist, by GPT name, from
 * the kernel's own view (sysfs uevent PARTNAME): no udev, and a second disk
 * with Hull labels (an image being prepared) is never picked by mistake. */
static int find_partition(const char *persist_device, const char *name, char **ret) {
        _cleanup_free_ char *sys = NULL, *disk = NULL;
        char real[PATH_MAX];

        if (!persist_device)
                return -ENODEV;
        const char *base = strrchr(persist_device, '/');
        base = base ? base + 1 : persist_device;
        if (asprintf(&sys, "/sys/class/block/%s/..", base) < 0)
                return -ENOMEM;
        if (!realpath(sys, real))
                return -errno;
        _cleanup_(closedirp_agent) DIR *d = opendir(real);
        if (!d)
                return -errno;
        struct dirent *de;
        while ((de = readdir(d))) {
                _cleanup_free_ char *uevent = NULL, *data = NULL;
                if (de->d_name[0] == '.' || asprintf(&uevent, "%s/%s/uevent", real, de->d_name) < 0)
                        continue;
                if (read_full_file(uevent, 16 * 1024, &data, NULL) < 0)
                        continue;
                char *devname = NULL, *partname = NULL, *save = NULL;
                for (char *l = strtok_r(data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                        if (string_has_prefix(l, "DEVNAME="))
                                devname = l + 8;
                        else if (string_has_prefix(l, "PARTNAME="))
                                partname = l + 9;
                }
                if (devname && partname && streq(partname, name)) {
                        if (asprintf(ret, "/dev/%s", devname) < 0)
                                return -ENOMEM;
                        return 0;
                }
        }
        return -ENOENT;
}

static int mount_esp(Agent *a, const char *persist_device) {
        const char *where = "/run/hull/esp";
        _cleanup_free_ char *dev = NULL;
        struct stat st, parent;

        if (a->opt.esp_dir) {
                a->esp_dir = strdup(a->opt.esp_dir);
                return a->esp_dir ? 0 : log_oom();
        }
        int r = find_partition(persist_device, "hull-esp", &dev);
        if (r < 0)
                return log_error_errno(r, "Cannot find the ESP (partition 'hull-esp' next to %s): %m",
                                       persist_device ?: "persist");
        r = mkdir_p(where, 0700);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s: %m", where);
        /* Already mounted by a previous run of the agent? */
        if (stat(where, &st) == 0 && stat("/run/hull", &parent) == 0 && st.st_dev != parent.st_dev) {
                a->esp_dir = strdup(where);
                return a->esp_dir ? 0 : log_oom();
        }
        if (mount(dev, where, "vfat", MS_NOSUID | MS_NODEV | MS_NOEXEC, "umask=0077,flush") < 0)
                return log_error_errno(errno, "Failed to mount the ESP %s on %s: %m", dev, where);
        a->esp_dir = strdup(where);
        return a->esp_dir ? 0 : log_oom();
}

int main(int argc, char **argv) {
        static char *default_health_dirs[] = { "/usr/lib/hull/health.d", "/etc/hull/health.d", NULL };
        static char *default_hook_dirs[] = { (char *) HOOK_DIR_ETC, (char *) HOOK_DIR_USR, NULL };
        AgentOptions o = {
                .socket_path = "/run/hull/agent.sock",
                .state_dir = "/persist/hull/agent",
                .boot_json = "/run/hull/boot.json",
                .keys_dir = "/usr/share/hull/keys",
                .registry_auth = OCI_AUTH_FILE_NODE,
                .os_release = "/usr/lib/os-release",
                .components_file = COMPONENTS_FILE,
                .reboot_command = "systemctl reboot",
                .reboot_retry_sec = 120,
                .config_root = "/",
                .proc_sys = "/proc/sys",
                .health_dirs = default_health_dirs,
                .health_timeout_sec = 300,
                .check_timeout_sec = 60,
                .systemd_check = true,
                .auto_mark_good = true,
                .reboot_on_unhealthy = true,
                .live = true,
                .toolbox = "/persist/hull/toolbox",
                .debug_timeout_sec = 120,
                .hook_dirs = default_hook_dirs,
                .hook_kill_grace_sec = HOOK_KILL_GRACE_SEC,
        };
        static Agent a;
        _cleanup_free_ char *persist_device = NULL;
        int r;

        log_set_prefix("hull-agent");
        if (argc == 3 && streq(argv[1], "--stage-worker"))
                return stage_worker_main(argv[2]);
        if (argc >= 4 && streq(argv[1], "--debug-exec")) {
                r = debug_exec_child(argv[2], argv + 3);
                fprintf(stderr, "hull-agent: cannot run '%s' in the admin container: %s\n", argv[3], strerror(-r));
                return 127;
        }
        r = parse_args(argc, argv, &o);
        if (r < 0)
                return EXIT_FAILURE;

        r = agent_init(&a, &o);
        if (r < 0)
                goto out;

        read_os_release(&a);
        if (o.booted_slot)
                a.target.booted = slot_from_string(o.booted_slot);
        if (access(o.boot_json, F_OK) == 0 || !o.booted_slot) {
                r = read_boot_json(&a, &persist_device);
                if (r < 0)
                        goto out;
        }
        for (Slot s = 0; s < _SLOT_MAX; s++) {
                if (o.slot_device[s]) {
                        a.slot_device[s] = strdup(o.slot_device[s]);
                        if (!a.slot_device[s]) {
                                r = log_oom();
                                goto out;
                        }
                        continue;
                }
                const char *label = s == SLOT_A ? "hull-root-a" : "hull-root-b";
                r = find_partition(persist_device, label, &a.slot_device[s]);
                if (r < 0) {
                        log_error_errno(r, "Cannot find slot %s (partition '%s' next to %s): %m", slot_to_string(s),
                                        label, persist_device ?: "persist");
                        goto out;
                }
        }
        a.target.slot_device[SLOT_A] = a.slot_device[SLOT_A];
        a.target.slot_device[SLOT_B] = a.slot_device[SLOT_B];
        r = mount_esp(&a, persist_device);
        if (r < 0)
                goto out;
        a.target.esp_dir = a.esp_dir;

        log_info("hull-agent %s: %s %s, booted slot %s (a: %s, b: %s, ESP: %s).", HULL_VERSION, a.os_name,
                 a.os_version, slot_to_string(a.target.booted), a.slot_device[SLOT_A], a.slot_device[SLOT_B],
                 a.esp_dir);
        r = agent_serve(&a);
out:
        agent_done(&a);
        if (o.health_dirs != default_health_dirs)
                strv_free(o.health_dirs);
        if (o.hook_dirs != default_hook_dirs)
                strv_free(o.hook_dirs);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
