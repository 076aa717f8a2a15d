/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <libfdisk.h>
#include <sys/stat.h>

#include "gpt.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct fdisk_context *, fdisk_unref_context);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct fdisk_partition *, fdisk_unref_partition);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct fdisk_parttype *, fdisk_unref_parttype);

static int add_partition(struct fdisk_context *ctx, size_t partno, const Partition *p) {
        _cleanup_(fdisk_unref_partitionp) struct fdisk_partition *pa = fdisk_new_partition();
        _cleanup_(fdisk_unref_parttypep) struct fdisk_parttype *t = NULL;
        struct fdisk_label *lb = fdisk_get_label(ctx, "gpt");
        int r;

        if (!pa || !lb)
                return -ENOMEM;
        t = fdisk_label_parse_parttype(lb, p->type_uuid);
        if (!t)
                return -EINVAL;
        if ((r = fdisk_partition_set_type(pa, t)) < 0 ||
            (r = fdisk_partition_set_start(pa, p->offset / LAYOUT_SECTOR)) < 0 ||
            (r = fdisk_partition_set_size(pa, p->size / LAYOUT_SECTOR)) < 0 ||
            (r = fdisk_partition_set_partno(pa, partno)) < 0 || (r = fdisk_partition_set_name(pa, p->label)) < 0)
                return r;
        if (p->uuid && (r = fdisk_partition_set_uuid(pa, p->uuid)) < 0)
                return r;
        return fdisk_add_partition(ctx, pa, NULL);
}

int gpt_write_layout(const char *device, const DiskLayout *l) {
        _cleanup_(fdisk_unref_contextp) struct fdisk_context *ctx = fdisk_new_context();
        struct stat st;
        int r;

        if (!ctx)
                return -ENOMEM;
        if (stat(device, &st) < 0)
                return -errno;
        if (S_ISREG(st.st_mode) && (uint64_t) st.st_size < l->disk_size)
                return -ENOSPC;

        r = fdisk_assign_device(ctx, device, 0);
        if (r < 0)
                return r;
        if (fdisk_get_sector_size(ctx) != LAYOUT_SECTOR) {
                (void) fdisk_deassign_device(ctx, 1);
                return -EOPNOTSUPP;
        }
        if (fdisk_get_nsectors(ctx) * LAYOUT_SECTOR < l->disk_size) {
                (void) fdisk_deassign_device(ctx, 1);
                return -ENOSPC;
        }
        r = fdisk_create_disklabel(ctx, "gpt");
        if (r >= 0 && l->disk_guid)
                r = fdisk_set_disklabel_id_from_string(ctx, l->disk_guid);
        for (size_t i = 0; r >= 0 && i < _PART_MAX; i++)
                r = add_partition(ctx, i, &l->part[i]);
        if (r >= 0)
                r = fdisk_write_disklabel(ctx);
        /* Deassigning syncs and, for block devices, asks the kernel to re-read
         * the table. */
        int q = fdisk_deassign_device(ctx, 0);
        return r < 0 ? r : q;
}
