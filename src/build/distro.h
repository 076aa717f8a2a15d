/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "build.h"

/* A distribution backend turns the distribution part of a spec into an
 * image tree and knows that distribution's boot layout (docs/BUILDER.md,
 * "Distribution backends"). Debian is the only one today; an rpm-based
 * backend would implement the same operations with dnf --installroot and
 * dracut. */
typedef struct DistroBackend {
        const char *name;
        /* Packages every bootable Hull image needs from this distribution. */
        const char *const *base_packages;

        /* Produce a tarball of the base system at 'tarball' (bootstrap). */
        int (*bootstrap)(BuildContext *c, const char *tarball);
        /* Install packages into c->root (packages stage). */
        int (*install)(BuildContext *c, char * const *packages);
        /* Make the initramfs able to mount a Hull root (erofs, dm-verity) and
         * regenerate it; set c->kernel_version, kernel_path, initrd_path. */
        int (*prepare_boot)(BuildContext *c);
        /* Write the installed package list (name version per line) to
         * c->root/usr/share/hull/packages.txt and set c->package_count. */
        int (*record_packages)(BuildContext *c);
        /* Remove the package manager and its caches from the tree. */
        int (*remove_package_manager)(BuildContext *c);
        /* The date of the newest installed package (seconds since the epoch),
         * read from what the packages put in c->root: the build's
         * SOURCE_DATE_EPOCH when none is given, so that the same package
         * versions give the same date (docs/BUILDER.md, "Reproducible
         * images"). Logs what failed. */
        int (*package_epoch)(BuildContext *c, uint64_t *ret);
} DistroBackend;

const DistroBackend *distro_backend_find(const char *name);
