/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <sys/stat.h>

#include "fileio.h"
#include "spawn.h"
#include "tests.h"

static char dir[] = "/tmp/test-fileio-XXXXXX";

static void test_atomic_write(void) {
        _cleanup_free_ char *p = path_join(dir, "f"), *buf = NULL;
        size_t sz;
        struct stat st;

        ASSERT_OK(write_file_atomic(p, "hello", 5, 0640));
        ASSERT_OK(read_full_file(p, 100, &buf, &sz));
        ASSERT_EQ(sz, 5);
        ASSERT_STREQ(buf, "hello");
        ASSERT_OK(stat(p, &st));
        ASSERT_EQ(st.st_mode & 07777, 0640);
        free(buf);
        buf = NULL;
        ASSERT_OK(write_file_atomic(p, "bye", 3, 0600));
        ASSERT_OK(read_full_file(p, 100, &buf, &sz));
        ASSERT_STREQ(buf, "bye");
        /* Bounded reads refuse oversized files instead of growing without limit. */
        free(buf);
        buf = NULL;
        ASSERT_ERROR(read_full_file(p, 2, &buf, &sz), E2BIG);
        ASSERT_ERROR(write_file_atomic("/nonexistent-dir/x", "a", 1, 0644), ENOENT);
}

static void test_mkdir_p(void) {
        _cleanup_free_ char *p = path_join(dir, "a/b/c");
        _cleanup_free_ char *f = path_join(dir, "file");
        _cleanup_free_ char *g = path_join(dir, "file/sub");
        struct stat st;
        ASSERT_OK(mkdir_p(p, 0755));
        ASSERT_OK(stat(p, &st));
        ASSERT_TRUE(S_ISDIR(st.st_mode));
        ASSERT_OK(mkdir_p(p, 0755)); /* idempotent */
        ASSERT_OK(write_file_atomic(f, "", 0, 0644));
        ASSERT_ERROR(mkdir_p(g, 0755), ENOTDIR);
}

static void test_path_join(void) {
        _cleanup_free_ char *a = path_join("/", "etc"), *b = path_join("/x/", "/y"), *c = path_join("a", "b");
        ASSERT_STREQ(a, "/etc");
        ASSERT_STREQ(b, "/x/y");
        ASSERT_STREQ(c, "a/b");
}

static void test_spawn(void) {
        char *ok[] = { (char *) "true", NULL }, *bad[] = { (char *) "false", NULL };
        char *missing[] = { (char *) "/nonexistent/binary", NULL };
        char *echo[] = { (char *) "printf", (char *) "%s", (char *) "out", NULL };
        _cleanup_free_ char *out = NULL;

        ASSERT_EQ(spawn_run(ok, NULL), 0);
        ASSERT_EQ(spawn_run(bad, NULL), 1);
        ASSERT_EQ(spawn_run(missing, &(SpawnOptions) { .output_fd = -1 }), 127);
        ASSERT_EQ(spawn_capture(echo, &(SpawnOptions) { .output_fd = -1 }, 100, &out), 0);
        ASSERT_STREQ(out, "out");
}

int main(void) {
        ASSERT_TRUE(mkdtemp(dir) != NULL);
        TEST_RUN(test_atomic_write);
        TEST_RUN(test_mkdir_p);
        TEST_RUN(test_path_join);
        TEST_RUN(test_spawn);
        char *rm[] = { (char *) "rm", (char *) "-rf", dir, NULL };
        ASSERT_EQ(spawn_run(rm, NULL), 0);
        return 0;
}
