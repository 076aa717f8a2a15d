/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dm.h"
#include "init-cmdline.h"
#include "macro.h"

/* The work of hull-init between the initramfs and systemd (man/hull-init.8,
 * docs/PERSIST.md): keep the root read-only, check its dm-verity root hash,
 * mount the persist partition, lay it out, seed /var, put /etc, /var, /home,
 * /root and /tmp in place, and record the boot for hull-agent.
 *
 * Every step works on paths below MountSetup.root, so that the test mode
 * (--setup-only --root=DIR) runs exactly the code that runs at boot. On
 * failure a step returns -errno and leaves one sentence describing it in
 * MountSetup.error; hull-init turns that into the console message. */

#define PERSIST_LAYOUT_VERSION 1U
#define PERSIST_LAYOUT_FILE ".hull-layout"
#define BOOT_HISTORY_FILE "hull/boot-history"
#define BOOT_HISTORY_MAX (64U * 1024U)

typedef struct MountSetup {
        /* Inputs. */
        const char *root;               /* "/" at boot, DIR in test mode */
        const char *run_dir;            /* "/run" at boot */
        const char *persist_override;   /* --persist=, wins over hull.persist= */
        bool test_mode;                 /* --setup-only: allows a directory as persist */
        HullCmdline cmdline;

        /* Filled in by the steps. */
        char *persist_device;           /* what was mounted at /persist */
        char *persist_fstype;           /* "ext4", or "bind" for a directory */
        bool first_boot;                /* no layout file was found */
        char *boot_id;
        uint64_t realtime;              /* CLOCK_REALTIME seconds at the boot record */

        /* The first failure, as one sentence without the final full stop. */
        char *error;
} MountSetup;

#define MOUNT_SETUP_INIT { .root = "/", .run_dir = "/run", .cmdline = HULL_CMDLINE_INIT }

void mount_setup_done(MountSetup *m);

/* Step 1, at boot only: mount /proc, /sys, /dev and /run unless the initramfs
 * already handed them over. */
int mount_api_filesystems(MountSetup *m) _warn_unused_result_;

/* Test mode without --run-dir: mount a tmpfs on ROOT/run, as the initramfs
 * does at boot, unless something is mounted there already. */
int mount_setup_test_run_dir(MountSetup *m) _warn_unused_result_;

/* Steps 2 to 8, in order; stops at the first failure. */
/* /etc/machine-id: kept if valid, else a new random one (after the /etc
 * overlay, so that it lands on persist). Never fails the boot. */
int mount_setup_machine_id(MountSetup *m);
bool machine_id_is_valid(const char *s, size_t len);
void machine_id_format(const uint8_t id[static 16], char ret[static 34]);
int mount_setup_run(MountSetup *m) _warn_unused_result_;

/* The steps one by one. */
int mount_setup_root_readonly(MountSetup *m) _warn_unused_result_;
int mount_setup_verify_verity(MountSetup *m) _warn_unused_result_;
int mount_setup_persist(MountSetup *m) _warn_unused_result_;
int mount_setup_layout(MountSetup *m) _warn_unused_result_;
int mount_setup_seed_var(MountSetup *m) _warn_unused_result_;
int mount_setup_mounts(MountSetup *m) _warn_unused_result_;
int mount_setup_record_boot(MountSetup *m) _warn_unused_result_;

/* Pure helpers, exposed for unit tests. */

/* Parse a dm-verity table line ("<version> <data dev> <hash dev> <data block
 * size> <hash block size> <#blocks> <hash start> <algorithm> <root hash>
 * <salt> [<#opt> <opt>...]"). Returns the root hash (allocated) and whether
 * an option makes the kernel ignore corruption. -EBADMSG if it is not one. */
int verity_table_parse(const char *params, char **ret_root_hash, bool *ret_ignores_corruption)
        _warn_unused_result_;

/* The contents of boot.json for the state in m (docs/PERSIST.md). */
int boot_json_format(const MountSetup *m, char **ret) _warn_unused_result_;

/* One line of boot-history, with its trailing newline. */
int boot_history_format(const MountSetup *m, char **ret) _warn_unused_result_;

/* The contents of .hull-layout: -EBADMSG unless it is a version number and
 * a newline. */
int persist_layout_parse(const char *s, unsigned *ret_version) _warn_unused_result_;
