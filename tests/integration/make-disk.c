/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test helper: write Hull's GPT layout to a file with the library code the
 * builder uses. usage: make-disk FILE ESP_MIB ROOT_MIB PERSIST_MIB */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gpt.h"
#include "layout.h"
#include "strutil.h"

int main(int argc, char **argv) {
        uint64_t sz[3];
        DiskLayout l;
        int r;

        if (argc != 5)
                return 2;
        for (int i = 0; i < 3; i++)
                if (safe_atou64(argv[i + 2], &sz[i]) < 0)
                        return 2;
        r = layout_compute(sz[0] << 20, sz[1] << 20, sz[2] << 20, &l);
        if (r < 0) {
                fprintf(stderr, "layout: %s\n", strerror(-r));
                return 1;
        }
        int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || ftruncate(fd, (off_t) l.disk_size) < 0) {
                perror(argv[1]);
                return 1;
        }
        close(fd);
        r = gpt_write_layout(argv[1], &l);
        if (r < 0) {
                fprintf(stderr, "gpt: %s\n", strerror(-r));
                return 1;
        }
        for (int i = 0; i < _PART_MAX; i++)
                printf("%s %" PRIu64 " %" PRIu64 " %s\n", l.part[i].label, l.part[i].offset, l.part[i].size,
                       l.part[i].type_uuid);
        return 0;
}
