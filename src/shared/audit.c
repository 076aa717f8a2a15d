/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "agent-api.h"
#include "audit.h"
#include "fileio.h"

#define METHOD_MAX 64
#define PATH_MAX_LEN 1024
#define RESULT_MAX 64
#define ERROR_MAX 4096
/* Files are read backwards in chunks of this size. */
#define SCAN_CHUNK (64 * 1024)

struct AuditLog {
        pthread_mutex_t lock;
        char *path;
        char *path_old; /* path.1 */
        int fd;         /* O_RDWR|O_APPEND: read for the last byte, written to */
        uint64_t rotate_size;
        uint64_t next_seq;
};

/* ---- reading ---- */

/* Called for each line, last first; returns false to stop. */
typedef bool (*LineFunc)(const char *line, size_t len, void *userdata);

static int pread_full(int fd, void *buf, size_t len, off_t offset, size_t *ret) {
        size_t done = 0;

        while (done < len) {
                ssize_t n = pread(fd, (char *) buf + done, len - done, offset + (off_t) done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                done += (size_t) n;
        }
        *ret = done;
        return 0;
}

/* Reads fd from the end, a chunk at a time, so that finding the last
 * records of a log of megabytes costs one chunk and not the whole file.
 * Lines longer than AUDIT_LINE_MAX are skipped (we never write them), which
 * also bounds the buffer. A final line without its "\n" is passed too: it
 * may be torn, which the callback notices when it does not parse. */
static int scan_lines_backwards(int fd, LineFunc f, void *userdata) {
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t carry = 0; /* bytes at buf[0..carry) of a line whose start is not read yet */
        bool skipping = false;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size == 0)
                return 0;
        buf = malloc(SCAN_CHUNK + AUDIT_LINE_MAX);
        if (!buf)
                return -ENOMEM;

        for (off_t pos = st.st_size; pos > 0;) {
                size_t k = (size_t) MIN(pos, (off_t) SCAN_CHUNK), got;
                int r;

                pos -= (off_t) k;
                memmove(buf + k, buf, carry);
                r = pread_full(fd, buf, k, pos, &got);
                if (r < 0)
                        return r;
                if (got != k)
                        return 0; /* truncated under us: what we have seen is all there is */

                size_t end = k + carry;
                /* buf[k..end) is the carried part, known to hold no "\n". */
                for (size_t i = k; i > 0; i--) {
                        if (buf[i - 1] != '\n')
                                continue;
                        if (skipping)
                                skipping = false;
                        else if (!f(buf + i, end - i, userdata))
                                return 0;
                        end = i - 1;
                }
                if (end > AUDIT_LINE_MAX) {
                        skipping = true;
                        carry = 0;
                } else
                        carry = end;
        }
        if (!skipping && carry > 0)
                (void) f(buf, carry, userdata);
        return 0;
}

/* A record is a JSON object with a non-negative integer "seq"; anything
 * else (a torn line, zeros left by a crash) is not one. */
static json_t *parse_record(const char *line, size_t len) {
        if (len == 0 || len > AUDIT_LINE_MAX)
                return NULL;
        json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
        json_t *seq = json_object_get(j, "seq");
        if (!json_is_object(j) || !json_is_integer(seq) || json_integer_value(seq) < 0) {
                json_decref(j);
                return NULL;
        }
        return j;
}

static int open_for_reading(const char *path) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        return fd < 0 ? -errno : fd;
}

typedef struct LastSeq {
        bool found;
        uint64_t seq;
} LastSeq;

static bool last_seq_line(const char *line, size_t len, void *userdata) {
        LastSeq *s = userdata;
        json_t *j = parse_record(line, len);

        if (!j)
                return true;
        s->found = true;
        s->seq = (uint64_t) json_integer_value(json_object_get(j, "seq"));
        json_decref(j);
        return false;
}

static int last_seq_of(int fd, LastSeq *ret) {
        *ret = (LastSeq) {};
        return fd < 0 ? 0 : scan_lines_backwards(fd, last_seq_line, ret);
}

/* ---- formatting ---- */

static json_t *json_sanitized(const char *s, size_t max) {
        if (!s)
                return json_null();
        _cleanup_free_ char *c = api_utf8_sanitize(s, max);
        return c ? json_string(c) : NULL;
}

static json_t *json_time(uint64_t usec) {
        time_t t = (time_t) (usec / 1000000);
        struct tm tm;
        char buf[64], out[80];

        if (!gmtime_r(&t, &tm) || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
                return json_null();
        (void) snprintf(out, sizeof(out), "%s.%06" PRIu64 "Z", buf, usec % 1000000);
        return json_string(out);
}

static uint64_t now_usec(void) {
        struct timespec ts;
        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static json_t *json_u64_or_null(uint64_t v) {
        /* 0 means "none" for status and op; values beyond JSON's int64 do
         * not occur, and are clamped rather than turned negative. */
        if (v == 0)
                return json_null();
        return json_integer((json_int_t) MIN(v, (uint64_t) INT64_MAX));
}

static int add(json_t *obj, const char *key, json_t *v) {
        /* json_object_set_new() consumes v even when it fails, and fails for
         * v == NULL: an allocation failure further in ends up here. */
        return json_object_set_new(obj, key, v) < 0 ? -ENOMEM : 0;
}

/* The record as one line with its "\n", preceded by one byte of room
 * (buf[0]) for a "\n" that ends a torn line before it. */
static int format_record(const AuditRecord *rec, uint64_t seq, bool raw, char **ret, size_t *ret_len) {
        _cleanup_(json_decrefp) json_t *j = json_object(), *request = NULL;
        const char *body = rec->request_json;
        int r;

        if (!j)
                return -ENOMEM;
        if (!raw && !isempty(body) && strnlen(body, AUDIT_REQUEST_EMBED_MAX + 1) <= AUDIT_REQUEST_EMBED_MAX) {
                request = json_loads(body, JSON_REJECT_DUPLICATES, NULL);
                if (request && !json_is_object(request)) {
                        json_decref(request);
                        request = NULL;
                }
        }

        if ((r = add(j, "time", json_time(rec->time_usec ?: now_usec()))) < 0 ||
            (r = add(j, "seq", json_integer((json_int_t) MIN(seq, (uint64_t) INT64_MAX)))) < 0 ||
            (r = add(j, "uid", json_integer((json_int_t) rec->uid))) < 0 ||
            (r = add(j, "pid", json_integer((json_int_t) rec->pid))) < 0 ||
            (r = add(j, "method", json_sanitized(rec->method, METHOD_MAX))) < 0 ||
            (r = add(j, "path", json_sanitized(rec->path, PATH_MAX_LEN))) < 0)
                return r;
        if (request)
                r = add(j, "request", TAKE_PTR(request));
        else if (!isempty(body))
                r = add(j, "request_raw", json_sanitized(body, AUDIT_REQUEST_RAW_MAX));
        else
                r = add(j, "request", json_null());
        if (r < 0)
                return r;
        if ((r = add(j, "status", json_u64_or_null(rec->status))) < 0 ||
            (r = add(j, "result", json_sanitized(rec->result, RESULT_MAX))) < 0 ||
            (r = add(j, "error", json_sanitized(rec->error, ERROR_MAX))) < 0 ||
            (r = add(j, "op", json_u64_or_null(rec->op_id))) < 0)
                return r;
        if (!isempty(rec->detail_json) && strnlen(rec->detail_json, AUDIT_DETAIL_MAX + 1) <= AUDIT_DETAIL_MAX) {
                json_t *detail = json_loads(rec->detail_json, JSON_REJECT_DUPLICATES, NULL);
                if (json_is_object(detail)) {
                        if ((r = add(j, "detail", detail)) < 0)
                                return r;
                } else
                        json_decref(detail);
        }

        /* Compact output escapes every control character, so the record
         * cannot contain a newline of its own. */
        _cleanup_free_ char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!s)
                return -ENOMEM;
        size_t l = strlen(s);
        if (l + 1 > AUDIT_LINE_MAX)
                return raw ? -E2BIG : format_record(rec, seq, true, ret, ret_len);

        char *line = malloc(l + 3);
        if (!line)
                return -ENOMEM;
        line[0] = '\n';
        memcpy(line + 1, s, l);
        line[l + 1] = '\n';
        line[l + 2] = '\0';
        *ret = line;
        *ret_len = l + 2;
        return 0;
}

/* ---- writing ---- */

static int open_for_append(const char *path) {
        int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
        return fd < 0 ? -errno : fd;
}

AuditLog *audit_log_free(AuditLog *l) {
        if (!l)
                return NULL;
        safe_close(l->fd);
        pthread_mutex_destroy(&l->lock);
        free(l->path);
        free(l->path_old);
        free(l);
        return NULL;
}

int audit_log_open(const char *path, uint64_t rotate_size, AuditLog **ret) {
        _cleanup_(audit_log_freep) AuditLog *l = NULL;
        LastSeq last;
        int r;

        if (isempty(path) || !ret)
                return -EINVAL;

        l = calloc(1, sizeof(AuditLog));
        if (!l)
                return -ENOMEM;
        l->fd = -EBADF;
        if (pthread_mutex_init(&l->lock, NULL) != 0) {
                free(TAKE_PTR(l));
                return -ENOMEM;
        }
        l->path = strdup(path);
        if (!l->path || asprintf(&l->path_old, "%s.1", path) < 0) {
                l->path_old = NULL;
                return -ENOMEM;
        }
        l->rotate_size = rotate_size ?: AUDIT_ROTATE_SIZE_DEFAULT;

        l->fd = open_for_append(path);
        if (l->fd < 0)
                return l->fd;
        /* The file may be new: make its directory entry durable, or the first
         * record could vanish with it even though it was fdatasync()ed. */
        r = fsync_parent_directory(path);
        if (r < 0)
                return r;

        r = last_seq_of(l->fd, &last);
        if (r < 0)
                return r;
        if (!last.found) {
                /* Nothing valid since the last rotation (or ever): continue
                 * from the rotated file, so that seq never restarts. */
                _cleanup_close_ int old = open_for_reading(l->path_old);
                if (old < 0 && old != -ENOENT)
                        return old;
                r = last_seq_of(old, &last);
                if (r < 0)
                        return r;
        }
        l->next_seq = last.found ? (last.seq < INT64_MAX ? last.seq + 1 : (uint64_t) INT64_MAX) : 1;

        *ret = TAKE_PTR(l);
        return 0;
}

uint64_t audit_log_next_seq(AuditLog *l) {
        pthread_mutex_lock(&l->lock);
        uint64_t s = l->next_seq;
        pthread_mutex_unlock(&l->lock);
        return s;
}

static int rotate_locked(AuditLog *l) {
        int r;

        /* rename() replaces the previous .1 in one step: there is never a
         * moment without either file. */
        if (rename(l->path, l->path_old) < 0 && errno != ENOENT)
                return -errno;
        /* From here on l->fd is path.1 (or an unlinked file if somebody
         * removed the log); records go to a new file in any case. */
        l->fd = safe_close(l->fd);
        l->fd = open_for_append(l->path);
        if (l->fd < 0)
                return l->fd; /* audit_log_append() tries again next time */
        r = fsync_parent_directory(l->path);
        return r;
}

static int append_locked(AuditLog *l, const AuditRecord *rec) {
        _cleanup_free_ char *line = NULL;
        struct stat st;
        size_t len;
        int r;

        if (l->fd < 0) {
                l->fd = open_for_append(l->path);
                if (l->fd < 0)
                        return l->fd;
        }

        r = format_record(rec, l->next_seq, false, &line, &len);
        if (r < 0)
                return r;

        if (fstat(l->fd, &st) < 0)
                return -errno;
        /* Only regular files have a size to rotate at or to cut back to; a
         * device (tests use /dev/full) is written to as it is. */
        bool regular = S_ISREG(st.st_mode);
        uint64_t size = regular ? (uint64_t) st.st_size : 0;
        bool torn = false;

        if (size > 0) {
                char c;
                size_t got;
                r = pread_full(l->fd, &c, 1, (off_t) size - 1, &got);
                if (r < 0)
                        return r;
                torn = got == 1 && c != '\n';
        }

        if (size > 0 && size + len - 1 > l->rotate_size) {
                r = rotate_locked(l);
                if (r < 0)
                        return r;
                size = 0;
                torn = false;
        }

        /* A torn last line (a crash in the middle of a write, a failed
         * ftruncate() below) is ended first, in the same write(), so that it
         * stays one corrupt line and does not swallow this record. */
        const char *p = torn ? line : line + 1;
        size_t n = torn ? len : len - 1, done = 0;

        while (done < n) {
                ssize_t k = write(l->fd, p + done, n - done);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        r = k < 0 ? -errno : -EIO;
                        /* Take back a partial line; if that fails too, the
                         * next append sees it as torn and ends it. */
                        if (done > 0 && regular)
                                (void) ftruncate(l->fd, (off_t) size);
                        return r;
                }
                /* A short write (a signal, the disk filling up) goes on
                 * where it stopped; only we write to this file. */
                done += (size_t) k;
        }

        l->next_seq++;

        /* EINVAL: the file is something that cannot be synced (a device). */
        if (fdatasync(l->fd) < 0 && errno != EINVAL)
                return -errno;
        return 0;
}

int audit_log_append(AuditLog *l, const AuditRecord *r) {
        if (!l || !r)
                return -EINVAL;
        pthread_mutex_lock(&l->lock);
        int ret = append_locked(l, r);
        pthread_mutex_unlock(&l->lock);
        return ret;
}

/* ---- tail ---- */

typedef struct Tail {
        json_t *newest_first;
        size_t want;
        bool have_min;
        json_int_t min_seq;  /* lowest seq taken from the current file */
        bool filter;         /* in path.1: take only records older than min_seq */
        int error;
} Tail;

static bool tail_line(const char *line, size_t len, void *userdata) {
        Tail *t = userdata;
        json_t *j = parse_record(line, len);

        if (!j)
                return true;
        json_int_t seq = json_integer_value(json_object_get(j, "seq"));
        /* A rotation between opening the two files would show the same
         * records twice; older ones are all that path.1 may add. */
        if (t->filter && t->have_min && seq >= t->min_seq) {
                json_decref(j);
                return true;
        }
        if (json_array_append_new(t->newest_first, j) < 0) {
                t->error = -ENOMEM;
                return false;
        }
        if (!t->filter && (!t->have_min || seq < t->min_seq)) {
                t->have_min = true;
                t->min_seq = seq;
        }
        return json_array_size(t->newest_first) < t->want;
}

int audit_log_tail(const char *path, size_t n, char **ret_json_array) {
        _cleanup_(json_decrefp) json_t *newest_first = json_array(), *out = json_array();
        _cleanup_free_ char *old_path = NULL;
        _cleanup_close_ int fd = -EBADF, old = -EBADF;
        Tail t = { .want = n };
        int r;

        if (isempty(path) || !ret_json_array)
                return -EINVAL;
        if (!newest_first || !out || asprintf(&old_path, "%s.1", path) < 0)
                return -ENOMEM;
        t.newest_first = newest_first;

        /* Both files are opened before either is read, so that a rotation in
         * between cannot make us miss the records in the middle. */
        fd = open_for_reading(path);
        if (fd < 0 && fd != -ENOENT)
                return fd;
        old = open_for_reading(old_path);
        if (old < 0 && old != -ENOENT)
                return old;

        if (n > 0 && fd >= 0) {
                r = scan_lines_backwards(fd, tail_line, &t);
                if (r < 0)
                        return r;
                if (t.error < 0)
                        return t.error;
        }
        if (json_array_size(newest_first) < n && old >= 0) {
                t.filter = true;
                r = scan_lines_backwards(old, tail_line, &t);
                if (r < 0)
                        return r;
                if (t.error < 0)
                        return t.error;
        }

        for (size_t i = json_array_size(newest_first); i > 0; i--)
                if (json_array_append(out, json_array_get(newest_first, i - 1)) < 0)
                        return -ENOMEM;

        char *s = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!s)
                return -ENOMEM;
        *ret_json_array = s;
        return 0;
}
