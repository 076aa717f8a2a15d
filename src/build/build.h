/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "components.h"
#include "layout.h"
#include "sign.h"
#include "spec.h"

/* One image build: the spec, where things go, and the state the stages hand
 * to each other. Stages: bootstrap -> packages -> customise -> seal ->
 * assemble (docs/BUILDER.md). */
typedef struct BuildContext {
        Spec *spec;
        const char *output_dir;
        const char *cache_dir;
        const char *programs_dir;   /* where hull-init etc. are taken from */
        const char *data_dir;       /* initramfs scripts, units */
        const HullKey *key;         /* signing key (private) */
        char **trusted_keys;        /* extra public key files baked into the image */
        bool no_cache;
        bool keep_work;
        /* Stop successfully after this stage ("packages", "customise" or
         * "seal") and keep the work directory; NULL for a whole build. */
        const char *stop_after;

        char *work_dir;             /* scratch, removed at the end */
        char *root;                 /* the image tree, work_dir/root */
        char *log_path;
        int log_fd;
        const char *stage;          /* current stage name, for messages */

        char *kernel_version;
        char *rootfs_image;         /* output: slot image (with verity tree) */
        uint64_t rootfs_fs_size;    /* bytes of file system before the hash tree */
        char *verity_root_hash;
        char *cmdline;              /* per-slot kernel arguments */
        char *kernel_path;
        char *initrd_path;
        DiskLayout layout;
        unsigned package_count;

        /* Reproducible output (docs/BUILDER.md, "Reproducible images"):
         * SOURCE_DATE_EPOCH, from the environment or the newest package's
         * date; and a SHA-256 over the sealed tree, from which the file
         * system UUIDs and the dm-verity salt are derived. */
        uint64_t source_date_epoch;
        bool source_date_epoch_given;
        char tree_digest[65];

        /* Host directories bind-mounted read-only into build_chroot_run():
         * pairs of host path and absolute path under /run inside the tree
         * (/run is a tmpfs private to each run, so nothing is left in the
         * image). Set by the packages stage for file: repositories. */
        char **chroot_binds;

        Components components;      /* kernel, containerd, runc, kubelet versions (seal) */

        /* Kernel module and firmware trimming (seal, build-modules.c). */
        unsigned modules_kept;
        unsigned modules_dropped;
        uint64_t modules_dropped_size;
        unsigned firmware_dropped;
        uint64_t firmware_dropped_size;
        char *modules_report;       /* output: NAME-VERSION.modules.txt */
} BuildContext;

/* Run argv inside the image tree: a private mount namespace with /proc, /sys
 * and /dev, chroot()ed. Output goes to the build log. Returns the exit
 * status, or a negative errno if it could not be started. */
int build_chroot_run(BuildContext *c, char * const *argv, char * const *env);
/* One of Hull's programs in the build tree or HULL_LIBEXECDIR (allocated
 * path); -ENOENT if none is executable. */
int build_find_program(BuildContext *c, const char *name, char **ret) _warn_unused_result_;
int build_find_kernel(BuildContext *c, char **ret_kver) _warn_unused_result_;
/* Run a host command with output to the build log. */
int build_host_run(BuildContext *c, char * const *argv) _warn_unused_result_;
/* Copy a file of Hull's data directory (data/) into the image at rel
 * (relative to the root), creating parent directories; logs what failed. */
int build_install_data(BuildContext *c, const char *data_rel, const char *rel, mode_t mode) _warn_unused_result_;
/* Write 'content' to rel in the image (replacing a symlink there), or copy
 * the host file src there (at most 256 MiB, read whole); both create parent
 * directories and log what failed. */
int build_write_in_root(BuildContext *c, const char *rel, const char *content, mode_t mode) _warn_unused_result_;
int build_copy_into_root(BuildContext *c, const char *src, const char *rel, mode_t mode) _warn_unused_result_;
/* The host path of rel in the image, its parent directories created. */
int build_root_path(BuildContext *c, const char *rel, char **ret) _warn_unused_result_;
/* Resolve a spec-relative path (files, hooks, kubelet, images). */
int build_resolve_source(BuildContext *c, const char *rel, char **ret) _warn_unused_result_;

/* build-components.c: find the image's component versions (docs/BUNDLE.md,
 * "Components") from c->kernel_version, the recorded package list and
 * /usr/bin/kubelet --version, write them to /usr/lib/hull/components.json in
 * the image and keep them in c->components. Logs what failed. */
int build_record_components(BuildContext *c) _warn_unused_result_;

/* build-modules.c: drop the kernel modules and firmware the spec's
 * kernel.modules and kernel.firmware leave out (docs/SPEC.md), run depmod,
 * write the report beside the outputs and into the image. Before the
 * initramfs is made. Logs what failed. */
int build_trim_modules(BuildContext *c) _warn_unused_result_;

int build_run(BuildContext *c) _warn_unused_result_;
void build_context_done(BuildContext *c);

/* Progress line on stderr: "[stage] message". */
void build_progress(BuildContext *c, const char *fmt, ...) _printf_(2, 3);

/* SHA-256 hex over the inputs of a cached layer. */
int build_cache_key(const char *const *parts, char ret[static 65]) _warn_unused_result_;
