/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "audit.h"
#include "fileio.h"
#include "spawn.h"
#include "tests.h"

static char dir[] = "/tmp/test-audit-XXXXXX";

/* 2026-11-22T01:40:00.123456Z */
#define TIME_USEC UINT64_C(1795311600123456)

static char *tpath(const char *name) {
        char *p = path_join(dir, name);
        ASSERT_TRUE(p);
        return p;
}

static char *tpath_old(const char *name) {
        char *p = NULL;
        ASSERT_TRUE(asprintf(&p, "%s/%s.1", dir, name) > 0);
        return p;
}

static AuditRecord request_record(void) {
        return (AuditRecord) {
                .time_usec = TIME_USEC,
                .uid = 0,
                .pid = 4242,
                .method = "POST",
                .path = "/v1/stage",
                .request_json = "{\"source\": \"/var/tmp/b.hullb\"}",
                .status = 202,
                .result = "accepted",
                .op_id = 7,
        };
}

static char *read_file(const char *path, size_t *ret_size) {
        char *data = NULL;
        size_t size = 0;
        ASSERT_OK(read_full_file(path, 64 * 1024 * 1024, &data, &size));
        if (ret_size)
                *ret_size = size;
        return data;
}

static void append_raw(const char *path, const char *data, size_t len) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(loop_write(fd, data, len));
}

static size_t count_lines(const char *data, size_t size) {
        size_t n = 0;
        for (size_t i = 0; i < size; i++)
                n += data[i] == '\n';
        return n;
}

/* The file's lines, each parsed (NULL for one that does not parse). */
static json_t *parse_lines(const char *path) {
        size_t size;
        _cleanup_free_ char *data = read_file(path, &size);
        json_t *a = json_array();

        ASSERT_TRUE(size == 0 || data[size - 1] == '\n');
        for (char *p = data, *nl; p < data + size; p = nl + 1) {
                nl = memchr(p, '\n', (size_t) (data + size - p));
                ASSERT_TRUE(nl);
                json_t *j = json_loadb(p, (size_t) (nl - p), JSON_REJECT_DUPLICATES, NULL);
                json_array_append_new(a, json_is_object(j) ? j : json_null());
                if (!json_is_object(j))
                        json_decref(j);
        }
        return a;
}

static json_int_t seq_of(json_t *record) {
        json_t *s = json_object_get(record, "seq");
        ASSERT_TRUE(json_is_integer(s));
        return json_integer_value(s);
}

static void test_format(void) {
        _cleanup_free_ char *p = tpath("format.log"), *data = NULL;
        _cleanup_(audit_log_freep) AuditLog *l = NULL;
        struct stat st;

        ASSERT_OK(audit_log_open(p, 0, &l));
        ASSERT_EQ(audit_log_next_seq(l), 1);
        ASSERT_TRUE(stat(p, &st) == 0);
        ASSERT_EQ(st.st_mode & 07777, 0600);

        AuditRecord rec = request_record();
        ASSERT_OK(audit_log_append(l, &rec));

        /* The outcome of the operation, later. */
        rec = (AuditRecord) {
                .time_usec = TIME_USEC + 61000001,
                .method = "-",
                .path = "stage",
                .result = "failed",
                .error = "the bundle's signature does not verify",
                .op_id = 7,
        };
        ASSERT_OK(audit_log_append(l, &rec));

        /* A body that is not a JSON object, and none at all. */
        rec = request_record();
        rec.request_json = "[1, 2]";
        rec.status = 400;
        rec.result = "failed";
        rec.error = "request body must be a JSON object";
        rec.op_id = 0;
        ASSERT_OK(audit_log_append(l, &rec));
        rec.request_json = "";
        rec.method = NULL;
        rec.result = NULL;
        rec.error = NULL;
        ASSERT_OK(audit_log_append(l, &rec));
        rec.request_json = NULL;
        rec.uid = 1000;
        rec.pid = 1;
        ASSERT_OK(audit_log_append(l, &rec));
        ASSERT_EQ(audit_log_next_seq(l), 6);

        data = read_file(p, NULL);
        ASSERT_STREQ(data,
                     "{\"time\":\"2026-11-22T01:40:00.123456Z\",\"seq\":1,\"uid\":0,\"pid\":4242,\"method\":\"POST\","
                     "\"path\":\"/v1/stage\",\"request\":{\"source\":\"/var/tmp/b.hullb\"},\"status\":202,"
                     "\"result\":\"accepted\",\"error\":null,\"op\":7}\n"
                     "{\"time\":\"2026-11-22T01:41:01.123457Z\",\"seq\":2,\"uid\":0,\"pid\":0,\"method\":\"-\","
                     "\"path\":\"stage\",\"request\":null,\"status\":null,\"result\":\"failed\","
                     "\"error\":\"the bundle's signature does not verify\",\"op\":7}\n"
                     "{\"time\":\"2026-11-22T01:40:00.123456Z\",\"seq\":3,\"uid\":0,\"pid\":4242,\"method\":\"POST\","
                     "\"path\":\"/v1/stage\",\"request_raw\":\"[1, 2]\",\"status\":400,\"result\":\"failed\","
                     "\"error\":\"request body must be a JSON object\",\"op\":null}\n"
                     "{\"time\":\"2026-11-22T01:40:00.123456Z\",\"seq\":4,\"uid\":0,\"pid\":4242,\"method\":null,"
                     "\"path\":\"/v1/stage\",\"request\":null,\"status\":400,\"result\":null,\"error\":null,"
                     "\"op\":null}\n"
                     "{\"time\":\"2026-11-22T01:40:00.123456Z\",\"seq\":5,\"uid\":1000,\"pid\":1,\"method\":null,"
                     "\"path\":\"/v1/stage\",\"request\":null,\"status\":400,\"result\":null,\"error\":null,"
                     "\"op\":null}\n");

        /* time 0 is now. */
        rec = request_record();
        rec.time_usec = 0;
        ASSERT_OK(audit_log_append(l, &rec));
        _cleanup_(json_decrefp) json_t *lines = parse_lines(p);
        const char *t = json_string_value(json_object_get(json_array_get(lines, 5), "time"));
        ASSERT_TRUE(t && strlen(t) == 27 && t[26] == 'Z' && strncmp(t, "20", 2) == 0);

        ASSERT_ERROR(audit_log_append(l, NULL), EINVAL);
        ASSERT_ERROR(audit_log_append(NULL, &rec), EINVAL);
}

static void test_detail(void) {
        _cleanup_free_ char *p = tpath("detail.log"), *data = NULL;
        _cleanup_(audit_log_freep) AuditLog *l = NULL;

        ASSERT_OK(audit_log_open(p, 0, &l));
        AuditRecord rec = {
                .time_usec = TIME_USEC,
                .method = "-",
                .path = "hook",
                .result = "failed",
                .error = "hook x exited with status 3",
                .op_id = 9,
                .detail_json = "{\"name\":\"x\",\"exit_code\":3}",
        };
        ASSERT_OK(audit_log_append(l, &rec));
        /* Not an object, malformed, duplicate keys, too long: left out. */
        const char *bad[] = { "[1]", "{", "{\"a\":1,\"a\":2}", "\"s\"" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                rec.detail_json = bad[i];
                ASSERT_OK(audit_log_append(l, &rec));
        }
        char *big = malloc(AUDIT_DETAIL_MAX + 16);
        ASSERT_TRUE(big);
        memset(big, ' ', AUDIT_DETAIL_MAX + 15);
        memcpy(big, "{\"a\":1}", 7);
        big[AUDIT_DETAIL_MAX + 15] = '\0';
        rec.detail_json = big;
        ASSERT_OK(audit_log_append(l, &rec));
        free(big);

        _cleanup_(json_decrefp) json_t *lines = parse_lines(p);
        ASSERT_EQ(json_array_size(lines), 6);
        data = json_dumps(json_array_get(lines, 0), JSON_COMPACT | JSON_PRESERVE_ORDER);
        ASSERT_STREQ(data, "{\"time\":\"2026-11-22T01:40:00.123456Z\",\"seq\":1,\"uid\":0,\"pid\":0,\"method\":\"-\","
                           "\"path\":\"hook\",\"request\":null,\"status\":null,\"result\":\"failed\","
                           "\"error\":\"hook x exited with status 3\",\"op\":9,\"detail\":{\"name\":\"x\",\"exit_code\":3}}");
        for (size_t i = 1; i < 6; i++)
                ASSERT_TRUE(json_object_get(json_array_get(lines, i), "detail") == NULL);
}

static void test_reopen_and_torn(void) {
        _cleanup_free_ char *p = tpath("torn.log");
        AuditLog *l = NULL;
        AuditRecord rec = request_record();

        ASSERT_OK(audit_log_open(p, 0, &l));
        for (int i = 0; i < 3; i++)
                ASSERT_OK(audit_log_append(l, &rec));
        l = audit_log_free(l);

        /* seq goes on across a restart. */
        ASSERT_OK(audit_log_open(p, 0, &l));
        ASSERT_EQ(audit_log_next_seq(l), 4);
        ASSERT_OK(audit_log_append(l, &rec));
        l = audit_log_free(l);

        /* A power cut in the middle of record 5: half a line, no newline. */
        static const char torn[] = "{\"time\":\"2026-11-22T01:40:00.123456Z\",\"seq\":5,\"uid\":0,\"pi";
        append_raw(p, torn, sizeof(torn) - 1);
        ASSERT_OK(audit_log_open(p, 0, &l));
        ASSERT_EQ(audit_log_next_seq(l), 5);
        ASSERT_OK(audit_log_append(l, &rec));
        l = audit_log_free(l);

        /* The torn line stays a line of its own; the new record follows on
         * the next. */
        _cleanup_(json_decrefp) json_t *lines = parse_lines(p);
        ASSERT_EQ(json_array_size(lines), 6);
        ASSERT_TRUE(json_is_null(json_array_get(lines, 4)));
        ASSERT_EQ(seq_of(json_array_get(lines, 5)), 5);

        /* Garbage with a newline, zeros (what some file systems show after a
         * crash), an object without seq: all skipped. */
        append_raw(p, "garbage\n", 8);
        append_raw(p, "{\"seq\":\"9\"}\n{\"no\":\"seq\"}\n", 25);
        append_raw(p, "\0\0\0\0\0\0\0\0", 8);
        ASSERT_OK(audit_log_open(p, 0, &l));
        ASSERT_EQ(audit_log_next_seq(l), 6);
        ASSERT_OK(audit_log_append(l, &rec));
        ASSERT_EQ(audit_log_next_seq(l), 7);
        l = audit_log_free(l);

        _cleanup_free_ char *tail = NULL;
        ASSERT_OK(audit_log_tail(p, 100, &tail));
        _cleanup_(json_decrefp) json_t *a = json_loads(tail, 0, NULL);
        ASSERT_EQ(json_array_size(a), 6);
        for (size_t i = 0; i < 6; i++)
                ASSERT_EQ(seq_of(json_array_get(a, i)), (json_int_t) i + 1);

        /* A file that holds nothing valid starts at 1. */
        _cleanup_free_ char *q = tpath("junk.log");
        ASSERT_OK(write_file_atomic(q, "junk\n{\n", 7, 0600));
        ASSERT_OK(audit_log_open(q, 0, &l));
        ASSERT_EQ(audit_log_next_seq(l), 1);
        l = audit_log_free(l);
}

static void test_rotation(void) {
        _cleanup_free_ char *p = tpath("rot.log"), *old = tpath_old("rot.log");
        AuditLog *l = NULL;
        AuditRecord rec = request_record();
        struct stat st;

        /* A record is about 200 bytes: 1 KiB holds a few. */
        ASSERT_OK(audit_log_open(p, 1024, &l));
        for (int i = 0; i < 20; i++) {
                ASSERT_OK(audit_log_append(l, &rec));
                ASSERT_TRUE(stat(p, &st) == 0);
                ASSERT_TRUE(st.st_size <= 1024);
        }
        ASSERT_TRUE(stat(old, &st) == 0);
        ASSERT_TRUE(st.st_size <= 1024);
        ASSERT_EQ(st.st_mode & 07777, 0600);

        /* .1 ends exactly where the current file starts, and the current
         * file ends at 20. */
        _cleanup_(json_decrefp) json_t *cur = parse_lines(p), *prev = parse_lines(old);
        ASSERT_TRUE(json_array_size(cur) > 0 && json_array_size(prev) > 0);
        ASSERT_EQ(seq_of(json_array_get(cur, json_array_size(cur) - 1)), 20);
        ASSERT_EQ(seq_of(json_array_get(prev, json_array_size(prev) - 1)) + 1, seq_of(json_array_get(cur, 0)));
        for (size_t i = 1; i < json_array_size(cur); i++)
                ASSERT_EQ(seq_of(json_array_get(cur, i)), seq_of(json_array_get(cur, i - 1)) + 1);
        for (size_t i = 1; i < json_array_size(prev); i++)
                ASSERT_EQ(seq_of(json_array_get(prev, i)), seq_of(json_array_get(prev, i - 1)) + 1);
        size_t total = json_array_size(cur) + json_array_size(prev);
        json_int_t first = seq_of(json_array_get(prev, 0));

        /* Tail across the two files, oldest first. */
        for (size_t n = 0; n <= total + 5; n++) {
                _cleanup_free_ char *s = NULL;
                ASSERT_OK(audit_log_tail(p, n, &s));
                _cleanup_(json_decrefp) json_t *a = json_loads(s, 0, NULL);
                ASSERT_TRUE(json_is_array(a));
                size_t expect = n < total ? n : total;
                ASSERT_EQ(json_array_size(a), expect);
                for (size_t i = 0; i < expect; i++)
                        ASSERT_EQ(seq_of(json_array_get(a, i)), 20 - (json_int_t) expect + 1 + (json_int_t) i);
        }
        _cleanup_free_ char *all = NULL;
        ASSERT_OK(audit_log_tail(p, 1000, &all));
        _cleanup_(json_decrefp) json_t *alla = json_loads(all, 0, NULL);
        ASSERT_EQ(seq_of(json_array_get(alla, 0)), first);
        l = audit_log_free(l);

        /* Right after a rotation the new file may be empty when the agent
         * restarts: seq goes on from .1. */
        ASSERT_TRUE(rename(p, old) == 0);
        ASSERT_OK(audit_log_open(p, 1024, &l));
        ASSERT_EQ(audit_log_next_seq(l), 21);
        _cleanup_free_ char *empty_tail = NULL;
        ASSERT_OK(audit_log_tail(p, 3, &empty_tail));
        _cleanup_(json_decrefp) json_t *et = json_loads(empty_tail, 0, NULL);
        ASSERT_EQ(json_array_size(et), 3);
        ASSERT_EQ(seq_of(json_array_get(et, 2)), 20);
        l = audit_log_free(l);

        /* The same records in both files (a rotation between the two opens
         * of a reader looks like this) are not shown twice. */
        _cleanup_free_ char *q = tpath("dup.log"), *qold = tpath_old("dup.log");
        ASSERT_OK(audit_log_open(q, 0, &l));
        for (int i = 0; i < 4; i++)
                ASSERT_OK(audit_log_append(l, &rec));
        l = audit_log_free(l);
        ASSERT_TRUE(link(q, qold) == 0);
        _cleanup_free_ char *d = NULL;
        ASSERT_OK(audit_log_tail(q, 100, &d));
        _cleanup_(json_decrefp) json_t *da = json_loads(d, 0, NULL);
        ASSERT_EQ(json_array_size(da), 4);

        /* A record larger than the rotation size still goes in, alone. */
        _cleanup_free_ char *b = tpath("big.log");
        ASSERT_OK(audit_log_open(b, 100, &l));
        ASSERT_OK(audit_log_append(l, &rec));
        ASSERT_OK(audit_log_append(l, &rec));
        _cleanup_(json_decrefp) json_t *bl = parse_lines(b);
        ASSERT_EQ(json_array_size(bl), 1);
        ASSERT_EQ(seq_of(json_array_get(bl, 0)), 2);
        l = audit_log_free(l);

        /* Missing files read as empty. */
        _cleanup_free_ char *none = tpath("none.log"), *s = NULL;
        ASSERT_OK(audit_log_tail(none, 10, &s));
        ASSERT_STREQ(s, "[]");
}

static void test_hostile(void) {
        _cleanup_free_ char *p = tpath("hostile.log");
        _cleanup_(audit_log_freep) AuditLog *l = NULL;

        ASSERT_OK(audit_log_open(p, 0, &l));

        static const char *const strings[] = {
                "PO\nST",
                "/v1/\r\n{\"seq\":999}\n",
                "\x01\x02\x1b[31m\x7f",
                "bad \xff\xfe \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xe2\x82",
                "\xe2\x80\xa8 \xe2\x80\xa9 U+2028/2029",
                "\"}]",
        };
        for (size_t i = 0; i < ELEMENTSOF(strings); i++) {
                AuditRecord rec = {
                        .time_usec = TIME_USEC,
                        .method = strings[i],
                        .path = strings[(i + 1) % ELEMENTSOF(strings)],
                        .request_json = strings[(i + 2) % ELEMENTSOF(strings)],
                        .result = strings[(i + 3) % ELEMENTSOF(strings)],
                        .error = strings[(i + 4) % ELEMENTSOF(strings)],
                        .status = 400,
                };
                ASSERT_OK(audit_log_append(l, &rec));
        }

        /* Requests: an object whose strings hold anything, a duplicate key,
         * huge bodies. */
        AuditRecord rec = request_record();
        rec.request_json = "{\"a\":\"x\\ny\\u0001\\u2028\",\"b\":[1,{\"c\":null}]}";
        ASSERT_OK(audit_log_append(l, &rec));
        rec.request_json = "{\"a\":1,\"a\":2}";
        ASSERT_OK(audit_log_append(l, &rec));

        _cleanup_free_ char *huge = malloc(AUDIT_REQUEST_EMBED_MAX + 100);
        memset(huge, 'x', AUDIT_REQUEST_EMBED_MAX + 99);
        huge[AUDIT_REQUEST_EMBED_MAX + 99] = '\0';
        memcpy(huge, "{\"a\":\"", 6);
        memcpy(huge + AUDIT_REQUEST_EMBED_MAX + 97, "\"}", 2);
        rec.request_json = huge;
        ASSERT_OK(audit_log_append(l, &rec));

        /* Under the embedding limit, but it grows when formatted again
         * (1e-9 prints as 1.0000000000000001e-09): then it goes in raw. */
        _cleanup_free_ char *growing = malloc(AUDIT_REQUEST_EMBED_MAX);
        size_t n = 0;
        n += (size_t) snprintf(growing, 16, "{\"a\":[1e-9");
        while (n + 10 < AUDIT_REQUEST_EMBED_MAX) {
                memcpy(growing + n, ",1e-9", 5);
                n += 5;
        }
        memcpy(growing + n, "]}", 3);
        rec.request_json = growing;
        ASSERT_OK(audit_log_append(l, &rec));

        /* Control characters in a raw body. */
        rec.request_json = "not json\n\r\x01 \xff";
        ASSERT_OK(audit_log_append(l, &rec));

        size_t size;
        _cleanup_free_ char *data = read_file(p, &size);
        size_t records = ELEMENTSOF(strings) + 5;
        ASSERT_EQ(count_lines(data, size), records);
        ASSERT_TRUE(memchr(data, '\0', size) == NULL);

        _cleanup_(json_decrefp) json_t *lines = parse_lines(p);
        ASSERT_EQ(json_array_size(lines), records);
        for (size_t i = 0; i < records; i++) {
                json_t *r = json_array_get(lines, i);
                ASSERT_TRUE(json_is_object(r));
                ASSERT_EQ(seq_of(r), (json_int_t) i + 1);
                ASSERT_TRUE(json_string_length(json_object_get(r, "time")) == 27);
        }
        ASSERT_STREQ(json_string_value(json_object_get(json_array_get(lines, 0), "method")), "PO\nST");
        ASSERT_STREQ(json_string_value(json_object_get(json_array_get(lines, 0), "path")),
                     "/v1/\r\n{\"seq\":999}\n");
        ASSERT_STREQ(json_string_value(json_object_get(json_array_get(lines, 3), "method")),
                     "bad \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
                     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd");

        json_t *obj = json_array_get(lines, ELEMENTSOF(strings));
        ASSERT_STREQ(json_string_value(json_object_get(json_object_get(obj, "request"), "a")), "x\ny\x01\xe2\x80\xa8");
        json_t *dup = json_array_get(lines, ELEMENTSOF(strings) + 1);
        ASSERT_TRUE(!json_object_get(dup, "request"));
        ASSERT_STREQ(json_string_value(json_object_get(dup, "request_raw")), "{\"a\":1,\"a\":2}");

        json_t *big = json_array_get(lines, ELEMENTSOF(strings) + 2);
        ASSERT_EQ(json_string_length(json_object_get(big, "request_raw")), AUDIT_REQUEST_RAW_MAX);
        json_t *grown = json_array_get(lines, ELEMENTSOF(strings) + 3);
        ASSERT_EQ(json_string_length(json_object_get(grown, "request_raw")), AUDIT_REQUEST_RAW_MAX);
        json_t *raw = json_array_get(lines, ELEMENTSOF(strings) + 4);
        ASSERT_STREQ(json_string_value(json_object_get(raw, "request_raw")), "not json\n\r\x01 \xef\xbf\xbd");
        for (char *q = data, *nl; (nl = strchr(q, '\n')); q = nl + 1)
                ASSERT_TRUE((size_t) (nl - q) < AUDIT_LINE_MAX);

        /* Long fields are cut. */
        _cleanup_free_ char *long_error = malloc(100000);
        memset(long_error, 'e', 99999);
        long_error[99999] = '\0';
        rec = request_record();
        rec.error = long_error;
        rec.path = long_error;
        rec.method = long_error;
        rec.result = long_error;
        ASSERT_OK(audit_log_append(l, &rec));
        _cleanup_(json_decrefp) json_t *after = parse_lines(p);
        json_t *last = json_array_get(after, records);
        ASSERT_EQ(json_string_length(json_object_get(last, "error")), 4096);
        ASSERT_EQ(json_string_length(json_object_get(last, "path")), 1024);
        ASSERT_EQ(json_string_length(json_object_get(last, "method")), 64);
        ASSERT_EQ(json_string_length(json_object_get(last, "result")), 64);
}

static void test_enospc(void) {
        /* /dev/full fails every write with ENOSPC; the log may be a symlink
         * to it. */
        _cleanup_free_ char *p = tpath("full.log");
        _cleanup_(audit_log_freep) AuditLog *l = NULL;
        if (access("/dev/full", W_OK) < 0) {
                fprintf(stderr, "no writable /dev/full, skipping\n");
                return;
        }
        ASSERT_TRUE(symlink("/dev/full", p) == 0);
        ASSERT_OK(audit_log_open(p, 0, &l));
        ASSERT_EQ(audit_log_next_seq(l), 1);
        AuditRecord rec = request_record();
        ASSERT_ERROR(audit_log_append(l, &rec), ENOSPC);
        ASSERT_ERROR(audit_log_append(l, &rec), ENOSPC);
        /* A failed write uses up no seq. */
        ASSERT_EQ(audit_log_next_seq(l), 1);

        /* Opening a path in a directory that does not exist fails. */
        _cleanup_free_ char *q = tpath("no/such/dir.log");
        AuditLog *m = NULL;
        ASSERT_ERROR(audit_log_open(q, 0, &m), ENOENT);
        ASSERT_TRUE(m == NULL);
}

typedef struct Writer {
        AuditLog *log;
        int id;
} Writer;

static void *writer(void *p) {
        Writer *w = p;
        char method[16];
        snprintf(method, sizeof(method), "T%d", w->id);
        AuditRecord rec = request_record();
        rec.method = method;
        for (int i = 0; i < 100; i++)
                ASSERT_OK(audit_log_append(w->log, &rec));
        return NULL;
}

static void test_threads(void) {
        _cleanup_free_ char *p = tpath("threads.log");
        _cleanup_(audit_log_freep) AuditLog *l = NULL;
        pthread_t t[4];
        Writer w[4];

        ASSERT_OK(audit_log_open(p, 16 * 1024, &l));
        for (int i = 0; i < 4; i++) {
                w[i] = (Writer) { l, i };
                ASSERT_EQ(pthread_create(&t[i], NULL, writer, &w[i]), 0);
        }
        for (int i = 0; i < 4; i++)
                ASSERT_EQ(pthread_join(t[i], NULL), 0);
        ASSERT_EQ(audit_log_next_seq(l), 401);

        /* Every line whole, seq strictly increasing across both files. */
        _cleanup_free_ char *s = NULL;
        ASSERT_OK(audit_log_tail(p, 1000, &s));
        _cleanup_(json_decrefp) json_t *a = json_loads(s, 0, NULL);
        size_t n = json_array_size(a);
        ASSERT_TRUE(n > 0);
        ASSERT_EQ(seq_of(json_array_get(a, n - 1)), 400);
        for (size_t i = 1; i < n; i++)
                ASSERT_EQ(seq_of(json_array_get(a, i)), seq_of(json_array_get(a, i - 1)) + 1);
}

int main(void) {
        ASSERT_TRUE(mkdtemp(dir) != NULL);

        TEST_RUN(test_format);
        TEST_RUN(test_detail);
        TEST_RUN(test_reopen_and_torn);
        TEST_RUN(test_rotation);
        TEST_RUN(test_hostile);
        TEST_RUN(test_enospc);
        TEST_RUN(test_threads);

        char *rm[] = { (char *) "rm", (char *) "-rf", dir, NULL };
        ASSERT_EQ(spawn_run(rm, NULL), 0);
        return 0;
}
