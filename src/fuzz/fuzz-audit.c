/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* audit_log_append() with arbitrary field contents. The input is split at
 * NUL bytes into method, path, request, result and error (missing ones are
 * NULL); the first byte holds flags, the next 28 bytes the numbers. After
 * each append the log must hold exactly one more line (two if a torn line
 * was planted before it, which the append must end), the new line must be
 * a JSON object with the expected seq, keys in the documented order and the
 * fields as given (sanitised), and audit_log_tail() must return it. The log
 * rotates every few records so that rotation is exercised too. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "agent-api.h"
#include "audit.h"
#include "fileio.h"
#include "fuzz.h"

#define ROTATE_SIZE (16 * 1024)

static char dir[64];
static char *log_path, *old_path;
static AuditLog *audit;

static void cleanup(void) {
        audit = audit_log_free(audit);
        if (log_path)
                (void) unlink(log_path);
        if (old_path)
                (void) unlink(old_path);
        if (dir[0])
                (void) rmdir(dir);
}

static void setup(void) {
        /* fdatasync() per record: on tmpfs that costs nothing. */
        snprintf(dir, sizeof(dir), "%s/fuzz-audit-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(dir))
                abort();
        log_path = path_join(dir, "audit.log");
        if (!log_path || asprintf(&old_path, "%s.1", log_path) < 0)
                abort();
        if (audit_log_open(log_path, ROTATE_SIZE, &audit) < 0)
                abort();
        atexit(cleanup);
}

static char *read_log(size_t *ret_size) {
        char *data = NULL;
        if (read_full_file(log_path, 64 * 1024 * 1024, &data, ret_size) < 0)
                abort();
        return data;
}

static size_t count_lines(const char *data, size_t size) {
        size_t n = 0;
        for (size_t i = 0; i < size; i++)
                n += data[i] == '\n';
        return n;
}

static uint64_t take(const uint8_t **p, size_t *left, size_t n) {
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++) {
                v <<= 8;
                if (*left > 0) {
                        v |= **p;
                        (*p)++;
                        (*left)--;
                }
        }
        return v;
}

static void check_string(json_t *rec, const char *key, const char *given, size_t max) {
        json_t *v = json_object_get(rec, key);
        if (!given) {
                if (!json_is_null(v))
                        abort();
                return;
        }
        _cleanup_free_ char *expect = api_utf8_sanitize(given, max);
        if (!expect || !json_is_string(v) || !streq(json_string_value(v), expect))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *p = data;
        size_t left = size;

        if (!audit)
                setup();

        unsigned flags = (unsigned) take(&p, &left, 1);
        AuditRecord rec = {
                .time_usec = take(&p, &left, 8) % (UINT64_C(253402300799) * 1000000), /* up to 9999 */
                .uid = (uid_t) take(&p, &left, 4),
                .pid = (pid_t) take(&p, &left, 4),
                .status = (unsigned) take(&p, &left, 4),
                .op_id = take(&p, &left, 8),
        };

        /* NUL-separated strings, in a NUL-terminated copy. */
        _cleanup_free_ char *copy = malloc(left + 1);
        if (!copy)
                abort();
        memcpy(copy, p, left);
        copy[left] = '\0';
        const char *fields[5] = {};
        if (left > 0)
                for (size_t i = 0, off = 0; i < ELEMENTSOF(fields) && off <= left; i++) {
                        fields[i] = copy + off;
                        off += strlen(copy + off) + 1;
                }
        rec.method = fields[0];
        rec.path = fields[1];
        rec.request_json = fields[2];
        rec.result = fields[3];
        rec.error = fields[4];

        bool torn = flags & 1;
        if (torn) {
                /* What a power cut in the middle of a write leaves behind. */
                _cleanup_close_ int fd = open(log_path, O_WRONLY | O_APPEND | O_CLOEXEC);
                if (fd < 0 || loop_write(fd, "{\"time\":\"2026-", 14) < 0)
                        abort();
        }

        size_t before_size;
        _cleanup_free_ char *before = read_log(&before_size);
        uint64_t seq = audit_log_next_seq(audit);

        if (audit_log_append(audit, &rec) < 0)
                abort();
        if (audit_log_next_seq(audit) != seq + 1)
                abort();

        size_t after_size;
        _cleanup_free_ char *after = read_log(&after_size);
        const char *added;
        size_t added_size, lines = 1;
        if (after_size >= before_size && memcmp(before, after, before_size) == 0) {
                added = after + before_size;
                added_size = after_size - before_size;
                if (torn) {
                        lines = 2; /* the "\n" ending the torn line, then the record */
                        if (added_size == 0 || added[0] != '\n')
                                abort();
                }
        } else {
                /* Rotated: the new file is this record alone. */
                added = after;
                added_size = after_size;
                struct stat st;
                if (stat(old_path, &st) < 0)
                        abort();
        }
        if (added_size == 0 || added[added_size - 1] != '\n' || count_lines(added, added_size) != lines)
                abort();
        if (memchr(added, '\0', added_size))
                abort();

        const char *line = added + (lines == 2 ? 1 : 0);
        size_t line_size = added_size - (lines == 2 ? 1 : 0) - 1;
        if (line_size >= AUDIT_LINE_MAX)
                abort();
        json_t *j = json_loadb(line, line_size, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(j) || json_integer_value(json_object_get(j, "seq")) != (json_int_t) seq)
                abort();

        /* Keys, in order. */
        static const char *const keys[] = { "time", "seq",    "uid",   "pid", "method", "path",
                                            "request", "status", "result", "error", "op" };
        const char *key;
        json_t *v;
        size_t k = 0;
        json_object_foreach(j, key, v) {
                if (k >= ELEMENTSOF(keys))
                        abort();
                if (!streq(key, keys[k]) && !(k == 6 && streq(key, "request_raw")))
                        abort();
                k++;
        }
        if (k != ELEMENTSOF(keys))
                abort();

        check_string(j, "method", rec.method, 64);
        check_string(j, "path", rec.path, 1024);
        check_string(j, "result", rec.result, 64);
        check_string(j, "error", rec.error, 4096);
        if (json_integer_value(json_object_get(j, "uid")) != (json_int_t) rec.uid ||
            json_integer_value(json_object_get(j, "pid")) != (json_int_t) rec.pid)
                abort();
        if (json_object_get(j, "request_raw") &&
            json_string_length(json_object_get(j, "request_raw")) > 3 * AUDIT_REQUEST_RAW_MAX)
                abort();
        if (json_object_get(j, "request") && !json_is_object(json_object_get(j, "request")) &&
            !json_is_null(json_object_get(j, "request")))
                abort();
        json_decref(j);

        /* The newest record is what tail shows last. */
        _cleanup_free_ char *tail = NULL;
        if (audit_log_tail(log_path, 2, &tail) < 0)
                abort();
        json_t *t = json_loads(tail, 0, NULL);
        size_t n = json_array_size(t);
        if (n < 1 || n > 2 ||
            json_integer_value(json_object_get(json_array_get(t, n - 1), "seq")) != (json_int_t) seq)
                abort();
        json_decref(t);
        return 0;
}
