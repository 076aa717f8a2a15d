/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "macro.h"

/* The installer's library half (docs/INSTALL.md): which disk to write, the
 * refusal rules, the layout for that disk, and writing the pieces of an image
 * onto it. hull-install (PID 1 of the installer medium) and `hull-build
 * installer` are thin programs on top. Functions here never log; where a human
 * needs to know why, they return a message next to the errno. */

/* ---- the installer's settings ------------------------------------------- */

typedef struct InstallSettings {
        char *disk;          /* "auto" or a /dev path */
        char *root_size;     /* NULL: the spec's size; "max"; or a size such as "100G" */
        bool force;          /* overwrite a disk that holds data */
} InstallSettings;

void install_settings_done(InstallSettings *s);

/* Read hull.install.disk=, hull.install.root-size= and hull.install.force=
 * from a kernel command line (defaults: disk auto, spec's root size, no
 * force). -EINVAL with a message for a bad value; unknown hull.install.* keys
 * are refused too, since a typo must not silently install with defaults. */
int install_settings_from_cmdline(const char *cmdline, InstallSettings *ret, char **ret_error) _warn_unused_result_;

/* ---- the medium's description (hull/install.json) ----------------------- */

typedef struct InstallMedia {
        char *name, *version;
        uint64_t esp_size;        /* ESP partition size of the image */
        uint64_t root_size;       /* root partition size the spec asked for */
        uint64_t persist_min;     /* smallest persist partition to accept */
        uint64_t root_image_size; /* bytes of root A to copy (file system + dm-verity tree) */
        uint64_t esp_image_size;  /* bytes of the ESP image once decompressed */
        char *esp_image;          /* file name next to install.json */
        char *root_image;         /* file name next to install.json */
        char *config;             /* file name of the machine config, or NULL */
} InstallMedia;

void install_media_done(InstallMedia *m);
int install_media_parse(const char *json, size_t len, InstallMedia *ret, char **ret_error) _warn_unused_result_;
int install_media_format(const InstallMedia *m, char **ret) _warn_unused_result_;

/* ---- choosing the disk -------------------------------------------------- */

typedef struct InstallCandidate {
        const char *name;   /* kernel name, "vda" */
        uint64_t size;      /* bytes */
        bool removable;
        bool read_only;
        bool is_medium;     /* holds the installer medium */
        const char *hull_partition; /* a partition named hull-* on it (an installed Hull), or NULL */
} InstallCandidate;

/* Loop, RAM, optical, device-mapper, md, zram, nbd and floppy devices are never
 * installation targets on their own. */
bool install_disk_name_is_virtual(const char *name);

/* want: "auto" or "/dev/NAME". auto picks the only disk that is not virtual,
 * removable, read-only, empty or the medium: -ENODEV if there is none,
 * -ENOTUNIQ if there are several (the message lists them; the user picks with
 * hull.install.disk=). An explicit disk must exist (-ENOENT) and must not be
 * the medium (-EBUSY) or read-only (-EROFS); virtual and removable disks are
 * allowed when named. */
int install_pick_disk(const InstallCandidate *c, size_t n, const char *want, size_t *ret_index, char **ret_error)
        _warn_unused_result_;

/* Partitions are found by GPT name (docs/DISK-FORMAT.md), so a second disk
 * with Hull's partitions in the machine would make booting ambiguous: -EEXIST
 * if a disk other than the target (the medium and virtual disks such as loop
 * devices aside: firmware does not boot those) has one. Force does not
 * override this; the other disk must be wiped or removed. */
int install_check_other_disks(const InstallCandidate *c, size_t n, size_t target, char **ret_error) _warn_unused_result_;

/* The refusal rule: a disk where libblkid found a partition table or a file
 * system ("what" says which) is refused unless forced (-EEXIST). */
int install_check_data(const char *disk, const char *what, bool force, char **ret_error) _warn_unused_result_;

/* The layout for a disk: ESP as the image has it, both roots the spec's size
 * (or root_size: "max" = as large as the disk allows, or a size), persist the
 * rest but at least persist_min. -ENOSPC with the minimum disk size in the
 * message if the disk cannot hold it or a root would be smaller than the root
 * image; -EINVAL for a bad root_size. */
int install_plan_layout(uint64_t disk_size, const InstallMedia *m, const char *root_size, DiskLayout *ret,
                        char **ret_error) _warn_unused_result_;

/* ---- reading and writing ------------------------------------------------ */

/* The partitions of a Hull disk image (read with libfdisk, by GPT partition
 * name). -EBADMSG if one of the four is missing. */
int install_read_image_layout(const char *image, DiskLayout *ret) _warn_unused_result_;

/* Does the device hold a partition table or a file system signature?
 * *ret_what: "gpt partition table", "ext4 file system", ... or NULL. */
int install_probe_data(const char *device, char **ret_what) _warn_unused_result_;

/* zstd helpers for the ESP image on the medium. */
int install_compress_range(int in_fd, uint64_t offset, uint64_t size, int out_fd, int level) _warn_unused_result_;
/* Decompress all of in_fd to out_fd at offset; -EFBIG if it would exceed
 * max bytes, -EBADMSG for a corrupt stream. *ret_size: bytes written. */
int install_decompress_to(int in_fd, int out_fd, uint64_t offset, uint64_t max, uint64_t *ret_size) _warn_unused_result_;

/* Copy size bytes from in_fd (at in_offset) to out_fd (at out_offset).
 * -ENODATA if the source ends early. */
int install_copy_range(int in_fd, uint64_t in_offset, int out_fd, uint64_t out_offset, uint64_t size) _warn_unused_result_;

typedef enum InstallStep {
        INSTALL_STEP_GPT,
        INSTALL_STEP_ESP,
        INSTALL_STEP_ROOT_A,
        INSTALL_STEP_ROOT_B,
        INSTALL_STEP_PERSIST,
        INSTALL_STEP_SYNC,
        _INSTALL_STEP_MAX,
} InstallStep;

typedef struct InstallWrite {
        const char *device;       /* disk (block device or image file) */
        const DiskLayout *layout;
        int esp_fd;               /* zstd-compressed ESP image */
        uint64_t esp_max;
        int root_fd;              /* root A content (file or the live root's loop device) */
        uint64_t root_size;
        const char *config;       /* machine config bytes or NULL */
        size_t config_len;
        const char *tmp_dir;      /* writable scratch directory (tmpfs) */
        void (*progress)(InstallStep step, const char *what, void *userdata);
        void *userdata;
} InstallWrite;

/* Write the whole disk: GPT, ESP, root A, a blank root B (first MiB zeroed),
 * persist as ext4 labelled hull-persist (mkfs.ext4) holding
 * hull/provision/config.json (0600, directory 0700) when a config is given,
 * then fsync and ask the kernel to re-read the partition table. */
int install_write_disk(const InstallWrite *w, char **ret_error) _warn_unused_result_;
