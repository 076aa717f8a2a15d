/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "layout.h"

static const char *const role_table[_PART_MAX] = {
        [PART_ESP] = "esp",
        [PART_ROOT_A] = "root-a",
        [PART_ROOT_B] = "root-b",
        [PART_PERSIST] = "persist",
};

const char *partition_role_to_string(PartitionRole r) {
        return r >= 0 && r < _PART_MAX ? role_table[r] : NULL;
}

static int align_up(uint64_t v, uint64_t *ret) {
        if (v > UINT64_MAX - (LAYOUT_ALIGN - 1))
                return -EOVERFLOW;
        *ret = ALIGN_TO(v, LAYOUT_ALIGN);
        return 0;
}

int layout_compute(uint64_t esp, uint64_t root, uint64_t persist, DiskLayout *ret) {
        static const struct {
                const char *label, *type;
        } meta[_PART_MAX] = {
                [PART_ESP] = { LABEL_ESP, GPT_TYPE_ESP },
                [PART_ROOT_A] = { LABEL_ROOT_A, GPT_TYPE_ROOT_X86_64 },
                [PART_ROOT_B] = { LABEL_ROOT_B, GPT_TYPE_ROOT_X86_64 },
                [PART_PERSIST] = { LABEL_PERSIST, GPT_TYPE_VAR },
        };
        uint64_t sizes[_PART_MAX] = { esp, root, root, persist };
        DiskLayout l = {};
        uint64_t off = LAYOUT_HEAD;

        for (int i = 0; i < _PART_MAX; i++) {
                uint64_t sz;

                if (sizes[i] == 0)
                        return -EINVAL;
                if (align_up(sizes[i], &sz) < 0)
                        return -EOVERFLOW;
                if (off > UINT64_MAX - sz)
                        return -EOVERFLOW;
                l.part[i] = (Partition) {
                        .label = meta[i].label,
                        .type_uuid = meta[i].type,
                        .offset = off,
                        .size = sz,
                };
                off += sz;
        }
        if (off > UINT64_MAX - LAYOUT_TAIL)
                return -EOVERFLOW;
        l.disk_size = off + LAYOUT_TAIL;
        *ret = l;
        return 0;
}

int layout_for_disk(uint64_t disk_size, uint64_t esp, uint64_t root_max, uint64_t persist_min, DiskLayout *ret) {
        uint64_t usable, fixed, root;
        int r;

        /* Only whole MiB of the disk are used. */
        disk_size -= disk_size % LAYOUT_ALIGN;
        if (disk_size < LAYOUT_HEAD + LAYOUT_TAIL)
                return -ENOSPC;
        usable = disk_size - LAYOUT_HEAD - LAYOUT_TAIL;

        if (align_up(esp, &esp) < 0 || align_up(persist_min, &persist_min) < 0 ||
            (root_max > 0 && align_up(root_max, &root_max) < 0))
                return -EOVERFLOW;
        if (esp == 0 || persist_min == 0)
                return -EINVAL;
        if (esp > usable || persist_min > usable - esp)
                return -ENOSPC;
        fixed = esp + persist_min;

        root = (usable - fixed) / 2;
        root -= root % LAYOUT_ALIGN;
        if (root_max > 0 && root > root_max)
                root = root_max;
        if (root < LAYOUT_ALIGN)
                return -ENOSPC;

        r = layout_compute(esp, root, usable - esp - 2 * root, ret);
        if (r < 0)
                return r;
        /* Persist takes the remainder, so the layout ends exactly at the disk's end. */
        ret->disk_size = disk_size;
        return 0;
}

int layout_check_root_fits(const DiskLayout *l, uint64_t image_size, uint64_t hash_size) {
        uint64_t cap = l->part[PART_ROOT_A].size;

        if (image_size > cap || hash_size > cap - image_size)
                return -ENOSPC;
        return 0;
}
