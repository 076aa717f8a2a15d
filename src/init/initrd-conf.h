/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

/* /usr/lib/hull/initrd.conf, written by hull-build into the initramfs and
 * read by hull-initrd (docs/BUILDER.md, "The hull initramfs"). Lines:
 *
 *   hull-initrd-conf 1                      first line, the format version
 *   kver 6.1.0-50-amd64                     modules are below /usr/lib/modules/KVER/
 *   rootfstype erofs                        optional: the image's root fs
 *   build-id TOKEN                          optional: for the log
 *   module CLASS PATH [dep=PATH]... [soft=PATH]... [alias=GLOB]...
 *
 * CLASS is "required" (loaded at start, failure is fatal), "storage" (loaded
 * when a present device's modalias matches one of its alias= globs, or all
 * at once when the root is late), "live" (loaded with hull.live=), or "dep"
 * (only loaded as another module's dep=). PATH is relative to the KVER
 * directory and ends in ".ko"; dep= names a module of an earlier line,
 * to be loaded first; soft= too, but its failure does not matter (a
 * modules.softdep "pre:": crc32c-intel fails with ENODEV on a CPU without
 * SSE4.2, crc32c_generic then serves libcrc32c). Empty lines and lines starting with '#' are ignored;
 * fields are separated by single spaces. */

#define INITRD_CONF_PATH "/usr/lib/hull/initrd.conf"
#define INITRD_CONF_MAX (4U * 1024U * 1024U)
#define INITRD_CONF_MAX_MODULES 4096U

typedef enum InitrdModuleClass {
        INITRD_MODULE_REQUIRED,
        INITRD_MODULE_STORAGE,
        INITRD_MODULE_LIVE,
        INITRD_MODULE_DEP,
        _INITRD_MODULE_CLASS_MAX,
} InitrdModuleClass;

typedef struct InitrdModule {
        InitrdModuleClass class;
        char *path;             /* "kernel/drivers/block/virtio_blk.ko" */
        char *name;             /* "virtio_blk" */
        size_t *deps;           /* indices of earlier modules */
        size_t n_deps;
        size_t *softs;          /* the same, failures ignored */
        size_t n_softs;
        char **aliases;         /* NULL-terminated, may be NULL */

        /* State for hull-initrd. */
        bool loaded;
        bool failed;
        int error;
} InitrdModule;

typedef struct InitrdConf {
        char *kver;
        char *rootfstype;
        char *build_id;
        InitrdModule *modules;
        size_t n_modules;
} InitrdConf;

/* Parse the whole file. -EBADMSG on anything malformed, with *ret_line (if
 * not NULL) set to the 1-based line number; -ENOMEM. *ret is only written
 * on success. */
int initrd_conf_parse(const char *text, size_t size, InitrdConf *ret, unsigned *ret_line) _warn_unused_result_;
void initrd_conf_done(InitrdConf *c);

const char *initrd_module_class_to_string(InitrdModuleClass c);

/* Whether one of the module's alias= globs matches the modalias string (the
 * contents of a /sys/bus/.../modalias file, without the newline), with the
 * shell-glob rules of fnmatch(3) as modprobe uses them. */
bool initrd_module_matches(const InitrdModule *m, const char *modalias);

/* A module path as accepted in initrd.conf: relative, without "." or ".."
 * components, in [A-Za-z0-9_.+-/], ending in ".ko". */
bool initrd_module_path_is_valid(const char *p);
