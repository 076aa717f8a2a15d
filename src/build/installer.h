/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

/* hull-build installer (docs/INSTALL.md): NAME-VER-installer.iso and
 * NAME-VER-pxe/ in output_dir, made from a built disk image. */
typedef struct InstallerOptions {
        const char *image;      /* out/NAME-VER.img; NAME-VER.json must be next to it */
        const char *config;     /* machine config (JSON) or NULL */
        const char *output_dir;
        const char *disk;       /* hull.install.disk= default: "auto" */
        const char *root_size;  /* hull.install.root-size= or NULL (the spec's size) */
        uint64_t persist_min;   /* 0: the image's persist size */
        bool force;             /* hull.install.force=1 */
} InstallerOptions;

int installer_run(const InstallerOptions *o) _warn_unused_result_;
