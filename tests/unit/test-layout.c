/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <unistd.h>

#include "gpt.h"
#include "layout.h"
#include "tests.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static void check_invariants(const DiskLayout *l) {
        uint64_t prev_end = LAYOUT_HEAD;
        for (int i = 0; i < _PART_MAX; i++) {
                const Partition *p = &l->part[i];
                ASSERT_EQ(p->offset % LAYOUT_ALIGN, 0);
                ASSERT_EQ(p->size % LAYOUT_ALIGN, 0);
                ASSERT_TRUE(p->size > 0);
                ASSERT_EQ(p->offset, prev_end); /* contiguous, in order, no overlap */
                prev_end = p->offset + p->size;
        }
        ASSERT_TRUE(prev_end + LAYOUT_TAIL <= l->disk_size);
        ASSERT_EQ(l->part[PART_ROOT_A].size, l->part[PART_ROOT_B].size);
}

static void test_compute(void) {
        DiskLayout l;
        ASSERT_OK(layout_compute(256 * MiB, 1 * GiB, 512 * MiB, &l));
        check_invariants(&l);
        ASSERT_EQ(l.part[PART_ESP].offset, 1 * MiB);
        ASSERT_EQ(l.part[PART_ROOT_A].offset, 257 * MiB);
        ASSERT_EQ(l.part[PART_ROOT_B].offset, 257 * MiB + 1 * GiB);
        ASSERT_EQ(l.part[PART_PERSIST].offset, 257 * MiB + 2 * GiB);
        ASSERT_EQ(l.disk_size, 1 * MiB + 256 * MiB + 2 * GiB + 512 * MiB + 1 * MiB);
        ASSERT_STREQ(l.part[PART_PERSIST].label, "hull-persist");
        ASSERT_STREQ(l.part[PART_ESP].type_uuid, GPT_TYPE_ESP);
        ASSERT_STREQ(partition_role_to_string(PART_ROOT_B), "root-b");
}

static void test_rounding(void) {
        DiskLayout l;
        ASSERT_OK(layout_compute(64 * MiB + 1, 100 * MiB - 1, 1, &l));
        check_invariants(&l);
        ASSERT_EQ(l.part[PART_ESP].size, 65 * MiB);
        ASSERT_EQ(l.part[PART_ROOT_A].size, 100 * MiB);
        ASSERT_EQ(l.part[PART_PERSIST].size, 1 * MiB);
}

static void test_invalid(void) {
        DiskLayout l;
        ASSERT_ERROR(layout_compute(0, GiB, GiB, &l), EINVAL);
        ASSERT_ERROR(layout_compute(MiB, UINT64_MAX - 5, GiB, &l), EOVERFLOW);
        ASSERT_ERROR(layout_compute(MiB, UINT64_MAX / 2, GiB, &l), EOVERFLOW);
}

static void test_for_disk(void) {
        DiskLayout l;

        /* A production node: 480 GB disk, roots capped at 200 GiB. */
        ASSERT_OK(layout_for_disk(480ULL * 1000 * 1000 * 1000, 512 * MiB, 200 * GiB, 8 * GiB, &l));
        check_invariants(&l);
        ASSERT_EQ(l.part[PART_ROOT_A].size, 200 * GiB);
        ASSERT_TRUE(l.part[PART_PERSIST].size >= 8 * GiB);
        ASSERT_EQ(l.part[PART_PERSIST].offset + l.part[PART_PERSIST].size + LAYOUT_TAIL, l.disk_size);

        /* No cap: roots split what is left after ESP and persist. */
        ASSERT_OK(layout_for_disk(10 * GiB, 256 * MiB, 0, 1 * GiB, &l));
        check_invariants(&l);
        ASSERT_TRUE(l.part[PART_ROOT_A].size * 2 + 256 * MiB + 1 * GiB + 2 * MiB <= 10 * GiB);
        ASSERT_TRUE(l.part[PART_ROOT_A].size >= 4 * GiB);

        ASSERT_ERROR(layout_for_disk(100 * MiB, 256 * MiB, 0, GiB, &l), ENOSPC);
        ASSERT_ERROR(layout_for_disk(258 * MiB + GiB + MiB, 256 * MiB, 0, GiB, &l), ENOSPC);
        ASSERT_ERROR(layout_for_disk(0, 256 * MiB, 0, GiB, &l), ENOSPC);
}

static void test_fits(void) {
        DiskLayout l;
        ASSERT_OK(layout_compute(64 * MiB, 100 * MiB, 64 * MiB, &l));
        ASSERT_OK(layout_check_root_fits(&l, 90 * MiB, 10 * MiB));
        ASSERT_ERROR(layout_check_root_fits(&l, 90 * MiB, 10 * MiB + 1), ENOSPC);
        ASSERT_ERROR(layout_check_root_fits(&l, 101 * MiB, 0), ENOSPC);
        ASSERT_ERROR(layout_check_root_fits(&l, 50 * MiB, UINT64_MAX), ENOSPC);
}

static void test_gpt_too_small(void) {
        char path[] = "/tmp/test-layout-XXXXXX";
        DiskLayout l;
        char buf[4096];
        int fd = mkstemp(path);

        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(ftruncate(fd, 10 * MiB));
        ASSERT_OK(layout_compute(64 * MiB, 200 * MiB, 100 * MiB, &l));
        /* A disk smaller than the layout is refused and left as it was. */
        ASSERT_ERROR(gpt_write_layout(path, &l), ENOSPC);
        ASSERT_EQ(pread(fd, buf, sizeof(buf), 0), (ssize_t) sizeof(buf));
        for (size_t i = 0; i < sizeof(buf); i++)
                ASSERT_EQ(buf[i], 0);
        ASSERT_ERROR(gpt_write_layout("/nonexistent/disk.img", &l), ENOENT);
        close(fd);
        unlink(path);
}

int main(void) {
        TEST_RUN(test_gpt_too_small);
        TEST_RUN(test_compute);
        TEST_RUN(test_rounding);
        TEST_RUN(test_invalid);
        TEST_RUN(test_for_disk);
        TEST_RUN(test_fits);
        return 0;
}
