/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hull-init: PID 1 between the initramfs and systemd (man/hull-init.8).
 *
 * Runs before anything has read /etc, so it uses no NSS, no locale and no
 * configuration file: only the kernel command line. It must never return
 * as PID 1 and never hang: every failure ends in a message on the console
 * and a reboot, so that the boot loader can fall back to the other slot. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "early.h"
#include "fileio.h"
#include "log.h"
#include "mount-setup.h"

#ifndef HULL_VERSION
#define HULL_VERSION "unknown"
#endif

#define CMDLINE_MAX (64U * 1024U)

static bool arg_setup_only = false;
static const char *arg_root = NULL;
static const char *arg_persist = NULL;
static const char *arg_cmdline = NULL;
static const char *arg_run_dir = NULL;

static _noreturn_ void fatal_reboot(unsigned delay, const char *error) {
        early_fatal("hull-init", EARLY_FATAL_REBOOT, delay, error);
}

static const char *cmdline_error(const MountSetup *m, int r, char *buf, size_t size) {
        if (r == -EINVAL && m->cmdline.invalid_key)
                (void) snprintf(buf, size, "the kernel command line has an invalid value for %s= (see hull-init(8))",
                                m->cmdline.invalid_key);
        else
                (void) snprintf(buf, size, "cannot parse the kernel command line: %s", strerror(-r));
        return buf;
}

static _noreturn_ void run_boot(int argc, char *argv[]) {
        MountSetup m = MOUNT_SETUP_INIT;
        _cleanup_free_ char *line = NULL;
        char buf[256];
        int r;

        r = mount_api_filesystems(&m);
        if (r < 0)
                fatal_reboot(m.cmdline.fatal_delay, m.error);

        /* No log daemon runs yet: the kernel's log is where messages keep. */
        if (log_open_kmsg() >= 0)
                log_set_target(LOG_TARGET_KMSG);

        r = read_full_file("/proc/cmdline", CMDLINE_MAX, &line, NULL);
        if (r < 0) {
                (void) snprintf(buf, sizeof(buf), "cannot read the kernel command line from /proc/cmdline: %s",
                                strerror(-r));
                fatal_reboot(m.cmdline.fatal_delay, buf);
        }
        r = hull_cmdline_parse(line, &m.cmdline);
        if (r < 0)
                fatal_reboot(m.cmdline.fatal_delay, cmdline_error(&m, r, buf, sizeof(buf)));

        r = mount_setup_run(&m);
        if (r < 0)
                fatal_reboot(m.cmdline.fatal_delay, m.error);

        /* Hand over: systemd becomes PID 1 with the arguments the kernel gave us. */
        const char *init = m.cmdline.init ?: HULL_DEFAULT_INIT;
        char **args = calloc((size_t) argc + 1, sizeof(char *));
        if (!args)
                fatal_reboot(m.cmdline.fatal_delay, "out of memory");
        args[0] = (char *) init;
        for (int i = 1; i < argc; i++)
                args[i] = argv[i];

        log_info("Starting %s", init);
        execv(init, args);

        char *msg = NULL;
        if (asprintf(&msg, "cannot execute %s: %s", init, strerror(errno)) < 0)
                msg = NULL;
        fatal_reboot(m.cmdline.fatal_delay, msg ?: "cannot execute init");
}

/* ---- test mode ---------------------------------------------------------- */

static void help(void) {
        printf("%s [OPTIONS...]\n\n"
               "Early-boot init of a Hull node: prepares the read-only root, the persist\n"
               "partition, /etc, /var, /home, /root and /tmp, then executes systemd.\n"
               "The kernel starts it as PID 1 (init=/usr/lib/hull/hull-init).\n\n"
               "Test mode, for use outside of PID 1:\n"
               "  --setup-only          Prepare DIR as if it were the root, then exit\n"
               "  --root=DIR            The root file system to prepare (required)\n"
               "  --persist=DEV|SPEC    Persist device, PARTLABEL=... etc., or a directory\n"
               "  --cmdline=STRING      Kernel command line to use instead of /proc/cmdline\n"
               "  --run-dir=DIR         Directory to use as /run (default: DIR/run)\n\n"
               "  -h --help             Show this help\n"
               "     --version          Show the version\n\n"
               "See hull-init(8).\n",
               program_invocation_short_name);
}

/* > 0: exit successfully now; 0: go on; < 0: error (reported). */
static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_SETUP_ONLY,
                ARG_ROOT,
                ARG_PERSIST,
                ARG_CMDLINE,
                ARG_RUN_DIR,
        };
        static const struct option options[] = {
                { "help",       no_argument,       NULL, 'h'            },
                { "version",    no_argument,       NULL, ARG_VERSION    },
                { "setup-only", no_argument,       NULL, ARG_SETUP_ONLY },
                { "root",       required_argument, NULL, ARG_ROOT       },
                { "persist",    required_argument, NULL, ARG_PERSIST    },
                { "cmdline",    required_argument, NULL, ARG_CMDLINE    },
                { "run-dir",    required_argument, NULL, ARG_RUN_DIR    },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 1;
                case ARG_VERSION:
                        printf("hull-init %s\n", HULL_VERSION);
                        return 1;
                case ARG_SETUP_ONLY:
                        arg_setup_only = true;
                        break;
                case ARG_ROOT:
                        arg_root = optarg;
                        break;
                case ARG_PERSIST:
                        arg_persist = optarg;
                        break;
                case ARG_CMDLINE:
                        arg_cmdline = optarg;
                        break;
                case ARG_RUN_DIR:
                        arg_run_dir = optarg;
                        break;
                case '?':
                        return -EINVAL;
                default:
                        return log_error_errno(EINVAL, "Unhandled option %c", c);
                }

        if (optind < argc)
                return log_error_errno(EINVAL, "Unexpected argument '%s'", argv[optind]);

        if (!arg_setup_only)
                return log_error_errno(EPERM,
                                       "Refusing to run: not started as PID 1. hull-init is the early-boot init "
                                       "of a Hull node (kernel command line init=/usr/lib/hull/hull-init); to try "
                                       "the setup on a directory, use --setup-only --root=DIR");
        if (!arg_root)
                return log_error_errno(EINVAL, "--setup-only needs --root=DIR");
        if (arg_root[0] != '/')
                return log_error_errno(EINVAL, "--root= needs an absolute path, not '%s'", arg_root);
        if (strspn(arg_root, "/") == strlen(arg_root))
                return log_error_errno(EINVAL, "--root=/ would reconfigure this machine; use a separate directory");
        if (arg_run_dir && arg_run_dir[0] != '/')
                return log_error_errno(EINVAL, "--run-dir= needs an absolute path, not '%s'", arg_run_dir);
        if (arg_persist && !hull_persist_spec_is_valid(arg_persist))
                return log_error_errno(EINVAL, "--persist= needs an absolute path or PARTLABEL=, PARTUUID=, "
                                       "LABEL=, UUID=, not '%s'", arg_persist);
        return 0;
}

static int run_setup_only(void) {
        MountSetup m = MOUNT_SETUP_INIT;
        _cleanup_free_ char *root = strdup(arg_root), *run_dir = NULL, *line = NULL;
        char buf[256];
        const char *error;
        int r;

        if (!root)
                return log_oom();
        /* "DIR/" and "DIR" alike. */
        for (size_t l = strlen(root); l > 1 && root[l - 1] == '/'; l--)
                root[l - 1] = '\0';
        run_dir = arg_run_dir ? strdup(arg_run_dir) : path_join(root, "/run");
        if (!run_dir)
                return log_oom();

        m.root = root;
        m.run_dir = run_dir;
        m.persist_override = arg_persist;
        m.test_mode = true;

        if (arg_cmdline)
                line = strdup(arg_cmdline);
        else if ((r = read_full_file("/proc/cmdline", CMDLINE_MAX, &line, NULL)) < 0)
                return log_error_errno(r, "Failed to read /proc/cmdline: %m");
        if (!line)
                return log_oom();

        r = hull_cmdline_parse(line, &m.cmdline);
        if (r < 0)
                error = cmdline_error(&m, r, buf, sizeof(buf));
        else {
                r = arg_run_dir ? 0 : mount_setup_test_run_dir(&m);
                if (r >= 0)
                        r = mount_setup_run(&m);
                error = m.error ?: "setup failed";
        }
        if (r < 0) {
                /* The message the console would show, minus the reboot. */
                fprintf(stderr, "hull-init: FATAL: %s. The node cannot boot this slot; --setup-only: "
                        "exiting instead of rebooting.\n", error);
                mount_setup_done(&m);
                return r;
        }

        log_info("Setup of %s complete; --setup-only: not starting %s", root,
                 m.cmdline.init ?: HULL_DEFAULT_INIT);
        mount_setup_done(&m);
        return 0;
}

static bool argv_has(int argc, char *argv[], const char *s) {
        for (int i = 1; i < argc; i++)
                if (streq(argv[i], s))
                        return true;
        return false;
}

int main(int argc, char *argv[]) {
        int r;

        log_set_prefix("hull-init");

        /* As PID 1, the arguments are the kernel's for systemd: do not
         * interpret them, pass them on. --setup-only still wins, so that a
         * test run as PID 1 of a PID namespace never reboots anything. */
        if (getpid() == 1 && !argv_has(argc, argv, "--setup-only"))
                run_boot(argc, argv);

        r = parse_argv(argc, argv);
        if (r != 0)
                return r > 0 ? EXIT_SUCCESS : EXIT_FAILURE;

        r = run_setup_only();
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
