/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "grubenv.h"
#include "spawn.h"
#include "tests.h"

#define GRUB_EDITENV "/usr/bin/grub-editenv"
#define PREFIX GRUBENV_HEADER GRUBENV_MESSAGE
#define PREFIX_LEN (sizeof(PREFIX) - 1)

static char dir[] = "/tmp/test-grubenv-XXXXXX";

/* Values that exercise GRUB's escaping: backslash and newline anywhere,
 * including at the ends, plus characters that are special elsewhere. */
static const char * const tricky[][2] = {
        { "plain", "value" },
        { "empty", "" },
        { "space", "with  spaces " },
        { "backslash", "a\\b" },
        { "newline", "x\ny" },
        { "ends", "\\\n" },
        { "starts", "\n\\x" },
        { "double", "\\\\\n\n" },
        { "hash", "#not a comment" },
        { "eq", "a=b=c" },
        { "high", "\xc3\xa4\xff\x01\t\r" },
        { "Mixed_Case_9", "$var ${x} 'q' \"dq\" ;" },
};

/* A block made of 'body' after the header, '#'-padded to GRUBENV_SIZE. */
static void make_block(char buf[static GRUBENV_SIZE], const char *body) {
        size_t hl = strlen(GRUBENV_HEADER), bl = strlen(body);
        ASSERT_TRUE(hl + bl <= GRUBENV_SIZE);
        memset(buf, '#', GRUBENV_SIZE);
        memcpy(buf, GRUBENV_HEADER, hl);
        memcpy(buf + hl, body, bl);
}

static int parse_body(const char *body, GrubEnv **ret) {
        char buf[GRUBENV_SIZE];
        make_block(buf, body);
        return grubenv_parse(buf, sizeof(buf), ret);
}

static void assert_env_equal(const GrubEnv *a, const GrubEnv *b) {
        ASSERT_EQ(grubenv_count(a), grubenv_count(b));
        for (size_t i = 0; i < grubenv_count(a); i++) {
                const char *ka, *va, *kb, *vb;
                ASSERT_OK(grubenv_get_at(a, i, &ka, &va));
                ASSERT_OK(grubenv_get_at(b, i, &kb, &vb));
                ASSERT_STREQ(ka, kb);
                ASSERT_STREQ(va, vb);
        }
}

static void test_basic(void) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        const char *k, *v;

        ASSERT_OK(grubenv_new(&e));
        ASSERT_EQ(grubenv_count(e), 0);
        ASSERT_TRUE(grubenv_get(e, "a") == NULL);
        ASSERT_OK(grubenv_set(e, "a", "1"));
        ASSERT_OK(grubenv_set(e, "b", "2"));
        ASSERT_OK(grubenv_set(e, "c", "3"));
        ASSERT_STREQ(grubenv_get(e, "b"), "2");
        /* Replacing keeps the position, as GRUB's in-place update does. */
        ASSERT_OK(grubenv_set(e, "a", "one"));
        ASSERT_OK(grubenv_get_at(e, 0, &k, &v));
        ASSERT_STREQ(k, "a");
        ASSERT_STREQ(v, "one");
        ASSERT_ERROR(grubenv_get_at(e, 3, &k, &v), ERANGE);
        ASSERT_EQ(grubenv_unset(e, "b"), 1);
        ASSERT_EQ(grubenv_unset(e, "b"), 0);
        ASSERT_EQ(grubenv_count(e), 2);
        ASSERT_OK(grubenv_get_at(e, 1, &k, &v));
        ASSERT_STREQ(k, "c");
        ASSERT_STREQ(v, "3");
        ASSERT_TRUE(grubenv_get(e, "b") == NULL);
}

static void test_bad_keys(void) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        static const char * const bad[] = { "", "a-b", "a=b", "a b", "a.b", "\xc3\xa4", "a\n", "#x" };

        ASSERT_OK(grubenv_new(&e));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                ASSERT_ERROR(grubenv_set(e, bad[i], "v"), EINVAL);
                ASSERT_ERROR(grubenv_unset(e, bad[i]), EINVAL);
        }
        ASSERT_ERROR(grubenv_set(e, NULL, "v"), EINVAL);
        ASSERT_ERROR(grubenv_set(e, "k", NULL), EINVAL);
        ASSERT_OK(grubenv_set(e, "Az_09", "v"));
        ASSERT_EQ(grubenv_count(e), 1);
}

static void test_format_exact(void) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        char buf[GRUBENV_SIZE], expect[GRUBENV_SIZE];

        ASSERT_OK(grubenv_new(&e));
        ASSERT_OK(grubenv_format(e, buf));
        make_block(expect, GRUBENV_MESSAGE);
        ASSERT_TRUE(memcmp(buf, expect, GRUBENV_SIZE) == 0);

        /* '\' and newline get a backslash in front; nothing else changes. */
        ASSERT_OK(grubenv_set(e, "k", "a\\b\nc d#"));
        ASSERT_OK(grubenv_set(e, "e", ""));
        ASSERT_OK(grubenv_format(e, buf));
        make_block(expect, GRUBENV_MESSAGE "k=a\\\\b\\\nc d#\ne=\n");
        ASSERT_TRUE(memcmp(buf, expect, GRUBENV_SIZE) == 0);
}

static void test_round_trip(void) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL, *p = NULL;
        char buf[GRUBENV_SIZE], buf2[GRUBENV_SIZE];

        ASSERT_OK(grubenv_new(&e));
        for (size_t i = 0; i < ELEMENTSOF(tricky); i++)
                ASSERT_OK(grubenv_set(e, tricky[i][0], tricky[i][1]));
        ASSERT_OK(grubenv_format(e, buf));
        ASSERT_TRUE(memcmp(buf, PREFIX, PREFIX_LEN) == 0);
        ASSERT_EQ(buf[GRUBENV_SIZE - 1], '#');
        ASSERT_OK(grubenv_parse(buf, sizeof(buf), &p));
        assert_env_equal(e, p);
        for (size_t i = 0; i < ELEMENTSOF(tricky); i++)
                ASSERT_STREQ(grubenv_get(p, tricky[i][0]), tricky[i][1]);
        /* Formatting is a function of the variables: stable across a cycle. */
        ASSERT_OK(grubenv_format(p, buf2));
        ASSERT_TRUE(memcmp(buf, buf2, GRUBENV_SIZE) == 0);
}

static void test_parse_escapes(void) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;

        /* As in GRUB, a backslash takes any next byte literally. */
        ASSERT_OK(parse_body("a=\\x\\\\\\\ny\nb=\\#\\=\n", &e));
        ASSERT_STREQ(grubenv_get(e, "a"), "x\\\ny");
        ASSERT_STREQ(grubenv_get(e, "b"), "#=");
        grubenv_free(e);
        e = NULL;

        /* Comments (also with escaped newlines) are skipped, anywhere. */
        ASSERT_OK(parse_body("# c1\na=1\n#c2 \\\n still c2\nb=2\n###\n", &e));
        ASSERT_EQ(grubenv_count(e), 2);
        ASSERT_STREQ(grubenv_get(e, "a"), "1");
        ASSERT_STREQ(grubenv_get(e, "b"), "2");
}

static void test_full_block(void) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL, *p = NULL;
        char buf[GRUBENV_SIZE];
        size_t room = GRUBENV_SIZE - PREFIX_LEN - strlen("k=\n");
        _cleanup_free_ char *v = malloc(room + 2);

        ASSERT_TRUE(v);
        ASSERT_OK(grubenv_new(&e));

        /* Exactly full: no padding at all, still valid. */
        memset(v, 'x', room);
        v[room] = '\0';
        ASSERT_OK(grubenv_set(e, "k", v));
        ASSERT_OK(grubenv_format(e, buf));
        ASSERT_EQ(buf[GRUBENV_SIZE - 1], '\n');
        ASSERT_OK(grubenv_parse(buf, sizeof(buf), &p));
        assert_env_equal(e, p);

        /* One byte more can never fit. */
        memset(v, 'x', room + 1);
        v[room + 1] = '\0';
        ASSERT_ERROR(grubenv_set(e, "k", v), E2BIG);
        ASSERT_STREQ(grubenv_get(e, "k"), v + 1); /* unchanged */

        /* Escaping counts: half as many backslashes take the same room. */
        memset(v, '\\', room / 2 + 1);
        v[room / 2 + 1] = '\0';
        ASSERT_ERROR(grubenv_set(e, "k", v), E2BIG);

        /* Each fits on its own, together they do not: format refuses. */
        memset(v, 'y', room / 2);
        v[room / 2] = '\0';
        ASSERT_OK(grubenv_set(e, "k", v));
        ASSERT_OK(grubenv_set(e, "j", v));
        ASSERT_ERROR(grubenv_format(e, buf), E2BIG);
        ASSERT_ERROR(grubenv_save(e, "/nonexistent/grubenv"), E2BIG);

        /* Many small variables are bounded too. */
        grubenv_free(e);
        e = NULL;
        ASSERT_OK(grubenv_new(&e));
        int r = 0;
        size_t n;
        for (n = 0; n < 10000; n++) {
                char key[16];
                (void) snprintf(key, sizeof(key), "k%zu", n);
                r = grubenv_set(e, key, "");
                if (r < 0)
                        break;
        }
        ASSERT_EQ(r, -E2BIG);
        ASSERT_TRUE(n < GRUBENV_SIZE / 3 + 1);
        ASSERT_ERROR(grubenv_format(e, buf), E2BIG);
}

static void test_bad_blocks(void) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        char buf[GRUBENV_SIZE + 1];

        make_block(buf, "a=1\n");
        buf[GRUBENV_SIZE] = '#';
        /* Wrong sizes. */
        ASSERT_ERROR(grubenv_parse(buf, GRUBENV_SIZE - 1, &e), EBADMSG);
        ASSERT_ERROR(grubenv_parse(buf, GRUBENV_SIZE + 1, &e), EBADMSG);
        ASSERT_ERROR(grubenv_parse(buf, 0, &e), EBADMSG);
        ASSERT_ERROR(grubenv_parse(NULL, 0, &e), EBADMSG);
        ASSERT_OK(grubenv_parse(buf, GRUBENV_SIZE, &e));
        grubenv_free(e);
        e = NULL;

        /* Bad header. */
        buf[2] = 'g';
        ASSERT_ERROR(grubenv_parse(buf, GRUBENV_SIZE, &e), EBADMSG);
        memset(buf, '#', GRUBENV_SIZE);
        ASSERT_ERROR(grubenv_parse(buf, GRUBENV_SIZE, &e), EBADMSG);
        memset(buf, 0, GRUBENV_SIZE);
        ASSERT_ERROR(grubenv_parse(buf, GRUBENV_SIZE, &e), EBADMSG);

        /* NUL in a value or in the padding. */
        make_block(buf, "a=1\n");
        buf[strlen(GRUBENV_HEADER) + 2] = '\0';
        ASSERT_ERROR(grubenv_parse(buf, GRUBENV_SIZE, &e), EBADMSG);
        make_block(buf, "a=1\n");
        buf[GRUBENV_SIZE - 1] = '\0';
        ASSERT_ERROR(grubenv_parse(buf, GRUBENV_SIZE, &e), EBADMSG);

        static const char * const bad[] = {
                "a-b=1\n",          /* bad key */
                "a.b=1\n",
                "=1\n",             /* empty key */
                "a b=1\n",
                "noequals\n",       /* no '=' */
                "\n",               /* empty line */
                "a=1\nb",           /* unterminated line, no newline at all */
                "a=1\\\n",          /* newline escaped: line runs into padding */
                "a=1\\",            /* backslash right before padding */
                "a=1\na=2\n",       /* duplicate */
                "a=1\n#comment",    /* GRUB's save_env could not find free space */
                "a=1\n# c \\\n",    /* comment running into the padding */
                "a\xff=1\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int r = parse_body(bad[i], &e);
                if (r != -EBADMSG)
                        fprintf(stderr, "case %zu accepted unexpectedly (%d)\n", i, r);
                ASSERT_ERROR(r, EBADMSG);
                ASSERT_TRUE(e == NULL);
        }
}

static void test_load_save(void) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL, *l = NULL;
        _cleanup_free_ char *p = path_join(dir, "grubenv"), *q = path_join(dir, "short"), *data = NULL;
        size_t size;
        struct stat st;

        ASSERT_OK(grubenv_new(&e));
        for (size_t i = 0; i < ELEMENTSOF(tricky); i++)
                ASSERT_OK(grubenv_set(e, tricky[i][0], tricky[i][1]));
        ASSERT_OK(grubenv_save(e, p));
        ASSERT_OK(stat(p, &st));
        ASSERT_EQ(st.st_size, GRUBENV_SIZE);
        ASSERT_OK(grubenv_load(p, &l));
        assert_env_equal(e, l);

        /* Overwrite: the result is the new contents, nothing left behind. */
        ASSERT_OK(grubenv_unset(e, "plain"));
        ASSERT_OK(grubenv_save(e, p));
        grubenv_free(l);
        l = NULL;
        ASSERT_OK(grubenv_load(p, &l));
        assert_env_equal(e, l);
        ASSERT_TRUE(grubenv_get(l, "plain") == NULL);

        /* A truncated or oversized file is malformed, a missing one missing. */
        ASSERT_OK(read_full_file(p, GRUBENV_SIZE, &data, &size));
        ASSERT_OK(write_file_atomic(q, data, size - 1, 0644));
        ASSERT_ERROR(grubenv_load(q, &l), EBADMSG);
        _cleanup_free_ char *big = calloc(1, 2 * GRUBENV_SIZE);
        ASSERT_TRUE(big);
        memcpy(big, data, size);
        ASSERT_OK(write_file_atomic(q, big, 2 * GRUBENV_SIZE, 0644));
        ASSERT_ERROR(grubenv_load(q, &l), EBADMSG);
        _cleanup_free_ char *missing = path_join(dir, "missing");
        ASSERT_ERROR(grubenv_load(missing, &l), ENOENT);
}

static int editenv(const char *file, const char *verb, const char *arg) {
        char *argv[] = { (char *) GRUB_EDITENV, (char *) file, (char *) verb, (char *) arg, NULL };
        return spawn_run(argv, NULL);
}

static void test_grub_editenv_interop(void) {
        _cleanup_free_ char *p = path_join(dir, "editenv"), *q = path_join(dir, "ours"), *data = NULL;
        _cleanup_(grubenv_freep) GrubEnv *e = NULL, *mine = NULL;
        char buf[GRUBENV_SIZE];
        size_t size;

        if (access(GRUB_EDITENV, X_OK) < 0) {
                fprintf(stderr, "%s not available, skipping\n", GRUB_EDITENV);
                return;
        }

        /* GRUB writes, we read. */
        ASSERT_EQ(editenv(p, "create", NULL), 0);
        ASSERT_OK(grubenv_new(&mine));
        for (size_t i = 0; i < ELEMENTSOF(tricky); i++) {
                _cleanup_free_ char *kv = NULL;
                ASSERT_TRUE(asprintf(&kv, "%s=%s", tricky[i][0], tricky[i][1]) >= 0);
                ASSERT_EQ(editenv(p, "set", kv), 0);
                ASSERT_OK(grubenv_set(mine, tricky[i][0], tricky[i][1]));
        }
        ASSERT_OK(grubenv_load(p, &e));
        assert_env_equal(e, mine);

        /* ... and byte for byte what we would have written. */
        ASSERT_OK(read_full_file(p, GRUBENV_SIZE, &data, &size));
        ASSERT_EQ(size, GRUBENV_SIZE);
        ASSERT_OK(grubenv_format(mine, buf));
        ASSERT_TRUE(memcmp(data, buf, GRUBENV_SIZE) == 0);

        /* In-place edits by GRUB (shrinking, growing, deleting) stay readable. */
        ASSERT_EQ(editenv(p, "set", "double=x"), 0);
        ASSERT_EQ(editenv(p, "set", "empty=now\\longer\n"), 0);
        ASSERT_EQ(editenv(p, "unset", "plain"), 0);
        ASSERT_OK(grubenv_set(mine, "double", "x"));
        ASSERT_OK(grubenv_set(mine, "empty", "now\\longer\n"));
        ASSERT_EQ(grubenv_unset(mine, "plain"), 1);
        grubenv_free(e);
        e = NULL;
        ASSERT_OK(grubenv_load(p, &e));
        assert_env_equal(e, mine);

        /* We write, GRUB reads: "list" prints name=value, values unescaped. */
        ASSERT_OK(grubenv_save(mine, q));
        char *argv[] = { (char *) GRUB_EDITENV, q, (char *) "list", NULL };
        _cleanup_free_ char *out = NULL, *expect = NULL;
        size_t expect_size = 0;
        _cleanup_fclose_ FILE *f = open_memstream(&expect, &expect_size);
        ASSERT_TRUE(f);
        for (size_t i = 0; i < grubenv_count(mine); i++) {
                const char *k, *v;
                ASSERT_OK(grubenv_get_at(mine, i, &k, &v));
                fprintf(f, "%s=%s\n", k, v);
        }
        ASSERT_EQ(fclose(TAKE_PTR(f)), 0);
        ASSERT_EQ(spawn_capture(argv, NULL, 64 * 1024, &out), 0);
        ASSERT_STREQ(out, expect);

        /* GRUB can update a block we wrote, in place, and we read it back. */
        ASSERT_EQ(editenv(q, "set", "hull_b_tries=2"), 0);
        ASSERT_OK(grubenv_set(mine, "hull_b_tries", "2"));
        grubenv_free(e);
        e = NULL;
        ASSERT_OK(grubenv_load(q, &e));
        assert_env_equal(e, mine);
}

int main(void) {
        ASSERT_TRUE(mkdtemp(dir) != NULL);
        TEST_RUN(test_basic);
        TEST_RUN(test_bad_keys);
        TEST_RUN(test_format_exact);
        TEST_RUN(test_round_trip);
        TEST_RUN(test_parse_escapes);
        TEST_RUN(test_full_block);
        TEST_RUN(test_bad_blocks);
        TEST_RUN(test_load_save);
        TEST_RUN(test_grub_editenv_interop);
        char *rm[] = { (char *) "rm", (char *) "-rf", dir, NULL };
        ASSERT_EQ(spawn_run(rm, NULL), 0);
        return 0;
}
