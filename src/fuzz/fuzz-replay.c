/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Standalone driver: feeds every file named on the command line (or every
 * file inside a directory named there) to LLVMFuzzerTestOneInput(). Crashes
 * and sanitizer reports fail the test; there is nothing else to assert. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "fuzz.h"

static int replay_file(const char *path, unsigned *count) {
        _cleanup_free_ char *buf = NULL;
        size_t size;
        int r = read_full_file(path, 16 * 1024 * 1024, &buf, &size);
        if (r < 0) {
                fprintf(stderr, "Failed to read '%s': %s\n", path, strerror(-r));
                return r;
        }
        (void) LLVMFuzzerTestOneInput((const uint8_t *) buf, size);
        (*count)++;
        return 0;
}

int main(int argc, char **argv) {
        unsigned count = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        perror(argv[i]);
                        return EXIT_FAILURE;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (replay_file(argv[i], &count) < 0)
                                return EXIT_FAILURE;
                        continue;
                }
                struct dirent **names;
                int n = scandir(argv[i], &names, NULL, alphasort);
                if (n < 0) {
                        perror(argv[i]);
                        return EXIT_FAILURE;
                }
                for (int j = 0; j < n; j++) {
                        if (names[j]->d_name[0] != '.') {
                                _cleanup_free_ char *p = path_join(argv[i], names[j]->d_name);
                                if (!p || replay_file(p, &count) < 0)
                                        return EXIT_FAILURE;
                        }
                        free(names[j]);
                }
                free(names);
        }
        if (count == 0) {
                fprintf(stderr, "No corpus inputs found\n");
                return EXIT_FAILURE;
        }
        printf("%u inputs replayed\n", count);
        return EXIT_SUCCESS;
}
