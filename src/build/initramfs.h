/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "modtrim.h"

/* The initramfs of boot.initramfs: hull (docs/BUILDER.md): hull-initrd as
 * /init, /dev/console, the kernel modules early boot needs, copied
 * byte-identical from the image, and /usr/lib/hull/initrd.conf that lists
 * them in load order (format in src/init/initrd-conf.h). */

typedef enum InitramfsClass {
        /* Same order as hull-initrd's classes; a module named in two lists
         * keeps the lowest value. */
        INITRAMFS_REQUIRED,
        INITRAMFS_STORAGE,
        INITRAMFS_LIVE,
        INITRAMFS_DEP,
} InitramfsClass;

typedef struct InitramfsModule {
        char *name;             /* "virtio_blk" ('-' as '_') */
        char *path;             /* "kernel/drivers/block/virtio_blk.ko", relative to the KVER directory */
        InitramfsClass class;
        size_t *deps;           /* indices of earlier modules: modules.dep */
        size_t n_deps;
        size_t *softs;          /* modules.softdep pre:, resolved (may fail to load) */
        size_t n_softs;
        char **aliases;         /* storage only: the modules.alias globs of device buses */
} InitramfsModule;

typedef struct InitramfsPlan {
        InitramfsModule *modules; /* load order: every dep before its user */
        size_t n_modules;
        char **missing;          /* storage or live names this kernel does not have */
} InitramfsPlan;

/* The load list for the given names (module names or aliases such as
 * "crypto-crc32c") from a kernel's module index (modtrim_load(); its
 * keep/drop state is not looked at): each name's dependency closure from
 * modules.dep, modules.softdep "pre:" names resolved through modules.alias
 * first, built-in modules skipped, post-order. A required name the kernel
 * has neither as module nor built in is -ENOENT (message in *ret_error); a
 * storage or live one is listed in plan->missing. */
int initramfs_plan(const ModTrim *t, char * const *required, char * const *storage, char * const *live,
                   InitramfsPlan *ret, char **ret_error) _warn_unused_result_;
void initramfs_plan_done(InitramfsPlan *p);

/* The text of initrd.conf for the plan. */
int initramfs_conf_format(const InitramfsPlan *p, const char *kver, const char *rootfstype, const char *build_id,
                          char **ret) _warn_unused_result_;

typedef struct InitramfsOptions {
        const char *root;               /* the image tree: modules come from ROOT/usr/lib/modules/KVER */
        const char *kver;
        const char *initrd_binary;      /* the static hull-initrd, becomes /init */
        const char *rootfstype;         /* "erofs" or "ext4" */
        const char *build_id;           /* NAME-VERSION, for hull-initrd's log; may be NULL */
        bool verity;
        uint64_t mtime;                 /* every entry's mtime: SOURCE_DATE_EPOCH */
        char * const *storage;          /* NULL: initramfs_default_storage */
        const char *zstd;               /* the compressor, NULL: "zstd" from PATH */
} InitramfsOptions;

extern char * const initramfs_default_storage[];
extern char * const initramfs_default_live[];

/* Write the uncompressed newc archive to fd: sorted paths, parents first,
 * inodes 1, 2, ..., owner root, one mtime. Deterministic for the same
 * inputs. */
int initramfs_write_cpio(int fd, const InitramfsOptions *o, const InitramfsPlan *p, const char *conf_text,
                         char **ret_error) _warn_unused_result_;

/* All of it: read the index, plan, write OUT (zstd -19 -T1 of the archive)
 * atomically. *ret_plan_summary (may be NULL) gets "N modules, M MiB" and
 * the missing names for the build log. */
int initramfs_build(const InitramfsOptions *o, const char *out, char **ret_summary, char **ret_error)
        _warn_unused_result_;
