/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Extra data disks (Ceph, databases): partition, format and mount a block
 * device described by the provisioning config, without ever destroying data
 * the config did not explicitly give up.
 *
 * Two steps, so that a caller can check every disk (and everything else it
 * is about to do) before it changes anything:
 *   datadisk_plan()  looks at the device and decides; it writes nothing;
 *   datadisk_apply() carries out a plan.
 *
 * The decision:
 *   KEEP             the expected file system with the expected label is
 *                    already there (on the disk's only partition, or on the
 *                    device itself with partition = false): nothing is
 *                    formatted, only the mount unit is (re)written.
 *   FORMAT           the device is blank: no partition table, no signature
 *                    libblkid knows, first and last MiB all zero.
 *   WIPE_AND_FORMAT  anything else, and the config says wipe = true.
 *   otherwise        -EEXIST, "the device holds ...; refusing to format it".
 * This is why a second run with wipe = true formats nothing: the disk it
 * formatted the first time is a KEEP. */

/* A disk as the config describes it. The strings are borrowed. */
typedef struct DataDiskSpec {
        const char *device;      /* "/dev/vdb", "/dev/disk/by-id/..."; symlinks are followed */
        bool partition;          /* one GPT partition over the disk (true) or the bare device */
        const char *filesystem;  /* "ext4" or "xfs" */
        const char *label;       /* file system label: ext4 <= 16, xfs <= 12 bytes; [A-Za-z0-9_.-] */
        const char *mount;       /* absolute mount point */
        const char *options;     /* mount options, NULL or "" for "defaults" */
        bool wipe;               /* may destroy what is on the device */
} DataDiskSpec;

typedef struct DataDiskOptions {
        const char *root;        /* mount units go below it; NULL: "/" */
        /* A late device (a disk hot-plugged or slow to appear) is waited
         * for this long; 0 means the default, 30 s. Negative: no wait. */
        int wait_sec;
        /* Mount the file system now (below root) in datadisk_apply(). */
        bool live;
        /* Where mounts are read from; NULL: /proc/self/mountinfo (tests). */
        const char *mountinfo;
        /* Where block devices are described; NULL: /sys (tests). */
        const char *sysfs;
} DataDiskOptions;

#define DATADISK_WAIT_SEC_DEFAULT 30
/* The GPT partition name of a data partition: "hull-data-<label>". */
#define DATADISK_PARTITION_PREFIX "hull-data-"

typedef enum DataDiskAction {
        DATADISK_KEEP,
        DATADISK_FORMAT,
        DATADISK_WIPE_AND_FORMAT,
        _DATADISK_ACTION_MAX,
} DataDiskAction;

const char *datadisk_action_to_string(DataDiskAction a);

/* What libblkid and a look at the raw bytes found on a device: the input of
 * the decision, separated from probing so that the rules are unit-tested. */
typedef struct DataDiskProbe {
        uint64_t size;                  /* bytes */
        bool is_partition;              /* the device is itself a partition */
        bool mounted;                   /* it or one of its partitions is mounted */
        bool busy;                      /* has holders (dm, md, ...) */
        bool ambivalent;                /* several signatures at once */
        char *pttype;                   /* "gpt", "dos" or NULL */
        char *fstype;                   /* on the device itself, NULL if none */
        char *fslabel;
        char *fsuuid;
        size_t n_partitions;
        char *part_fstype;              /* of the first partition, if any */
        char *part_fslabel;
        char *part_fsuuid;
        char *part_node;                /* "/dev/loop3p1" */
        char *boot_partition;           /* a Hull boot partition's name, if one is on the device */
        bool head_zero;                 /* first MiB all zero */
        bool tail_zero;                 /* last MiB all zero */
        bool data_at_partition_start;   /* a signature where our partition would start */
} DataDiskProbe;

void datadisk_probe_done(DataDiskProbe *p);

/* The decision from a probe. Returns 0 and the action, or a negative errno
 * and a message: -EEXIST (data on the device and wipe is false), -EBUSY
 * (mounted or held, and not a KEEP), -EPERM (a Hull boot disk: never, even
 * with wipe), -ENOSPC (too small), -EINVAL (a partition where a whole disk
 * is needed). */
int datadisk_decide(const DataDiskSpec *s, const DataDiskProbe *p, DataDiskAction *ret, char **ret_error)
        _warn_unused_result_;

typedef struct DataDiskPlan {
        DataDiskAction action;
        char *device;        /* resolved: "/dev/loop3" */
        char *filesystem, *label, *mount, *options;
        bool partition;
        char *partition_node; /* KEEP with partition: the existing one */
        char *uuid;           /* KEEP: the file system's UUID */
        char *unit_name;      /* "srv-data.mount" */
        char *what;           /* human: what the device holds now */
} DataDiskPlan;

void datadisk_plan_done(DataDiskPlan *p);

/* Check the spec (-EINVAL, message naming the field), find the device
 * (waiting for it, -ENOENT when it never appears, -ENOTBLK if it is not a
 * block device), probe it and decide (see datadisk_decide()). Also checks
 * that the mount point can exist: it does, or its nearest existing parent
 * is a writable directory (-EROFS: Hull's root is read-only). Changes
 * nothing. On failure *ret_error (if non-NULL) gets a message. */
int datadisk_plan(const DataDiskSpec *s, const DataDiskOptions *o, DataDiskPlan *ret, char **ret_error)
        _warn_unused_result_;

typedef struct DataDiskResult {
        bool formatted;
        bool unit_written;   /* the mount unit was created or changed */
        bool mounted;        /* mounted by this call */
        char *uuid;          /* the file system's UUID */
        char *unit_name;
} DataDiskResult;

void datadisk_result_done(DataDiskResult *r);

/* Carry out a plan: wipefs -a (WIPE_AND_FORMAT only), sfdisk (one GPT
 * partition named hull-data-<label>, type Linux filesystem), wait for the
 * partition's node, mkfs, then the mount unit
 * <root>/etc/systemd/system/<unit>, enabled with a local-fs.target.wants
 * symlink, and with o->live a mount(8) of it below root. A KEEP only writes
 * the unit if it differs and mounts if nothing is mounted there. */
int datadisk_apply(const DataDiskPlan *p, const DataDiskOptions *o, DataDiskResult *ret, char **ret_error)
        _warn_unused_result_;

/* systemd's path escaping (systemd-escape --path): "/srv/my data" ->
 * "srv-my\x20data". The path must be absolute and normalised (no "//",
 * ".", ".." or trailing slash). -EINVAL otherwise. */
int unit_name_path_escape(const char *path, char **ret) _warn_unused_result_;

/* The mount unit's text. */
int datadisk_unit_text(const char *uuid, const char *mount, const char *fstype, const char *options, char **ret)
        _warn_unused_result_;
