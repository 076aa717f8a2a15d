/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reader and writer for GRUB's environment block. The format is GRUB's
 * (grub-core/lib/envblk.c, util/grub-editenv.c in GRUB 2.06); this is an
 * independent implementation of it, described in docs/GRUBENV.md. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "grubenv.h"

#define HEADER_LEN (sizeof(GRUBENV_HEADER) - 1)
#define MESSAGE_LEN (sizeof(GRUBENV_MESSAGE) - 1)
/* Room for variables in a block we write ourselves. */
#define PAYLOAD_MAX (GRUBENV_SIZE - HEADER_LEN - MESSAGE_LEN)
/* The shortest line is "k=\n", so no block can hold more variables. */
#define VARS_MAX ((GRUBENV_SIZE - HEADER_LEN) / 3)

typedef struct GrubEnvVar {
        char *key;
        char *value;
} GrubEnvVar;

struct GrubEnv {
        GrubEnvVar *vars;
        size_t n_vars;
        size_t n_allocated;
};

int grubenv_new(GrubEnv **ret) {
        GrubEnv *e = calloc(1, sizeof(GrubEnv));
        if (!e)
                return -ENOMEM;
        *ret = e;
        return 0;
}

GrubEnv *grubenv_free(GrubEnv *e) {
        if (!e)
                return NULL;
        for (size_t i = 0; i < e->n_vars; i++) {
                free(e->vars[i].key);
                free(e->vars[i].value);
        }
        free(e->vars);
        free(e);
        return NULL;
}

static bool key_char_valid(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static bool key_valid(const char *key) {
        if (isempty(key))
                return false;
        for (const char *p = key; *p; p++)
                if (!key_char_valid(*p))
                        return false;
        return true;
}

/* GRUB writes '\' and newline in values as a backslash followed by the
 * character itself; everything else is written as is. */
static bool needs_escape(char c) {
        return c == '\\' || c == '\n';
}

static size_t escaped_len(const char *value) {
        size_t n = 0;
        for (const char *p = value; *p; p++)
                n += needs_escape(*p) ? 2 : 1;
        return n;
}

static ssize_t find_var(const GrubEnv *e, const char *key) {
        for (size_t i = 0; i < e->n_vars; i++)
                if (streq(e->vars[i].key, key))
                        return (ssize_t) i;
        return -1;
}

/* Appends without validation; takes ownership of key and value on success. */
static int append_var(GrubEnv *e, char *key, char *value) {
        if (e->n_vars >= VARS_MAX)
                return -E2BIG;
        if (e->n_vars == e->n_allocated) {
                size_t n = e->n_allocated == 0 ? 8 : e->n_allocated * 2;
                n = MIN(n, (size_t) VARS_MAX);
                GrubEnvVar *v = realloc(e->vars, n * sizeof(GrubEnvVar));
                if (!v)
                        return -ENOMEM;
                e->vars = v;
                e->n_allocated = n;
        }
        e->vars[e->n_vars++] = (GrubEnvVar) { .key = key, .value = value };
        return 0;
}

const char *grubenv_get(const GrubEnv *e, const char *key) {
        if (!e || !key)
                return NULL;
        ssize_t i = find_var(e, key);
        return i < 0 ? NULL : e->vars[i].value;
}

int grubenv_set(GrubEnv *e, const char *key, const char *value) {
        int r;

        if (!e || !key_valid(key) || !value)
                return -EINVAL;
        /* Refuse what could never be saved, so that memory stays bounded. */
        size_t kl = strlen(key);
        if (kl >= PAYLOAD_MAX || strnlen(value, PAYLOAD_MAX) >= PAYLOAD_MAX ||
            kl + 1 + escaped_len(value) + 1 > PAYLOAD_MAX)
                return -E2BIG;

        _cleanup_free_ char *v = strdup(value);
        if (!v)
                return -ENOMEM;

        ssize_t i = find_var(e, key);
        if (i >= 0) {
                free(e->vars[i].value);
                e->vars[i].value = TAKE_PTR(v);
                return 0;
        }

        _cleanup_free_ char *k = strdup(key);
        if (!k)
                return -ENOMEM;
        r = append_var(e, k, v);
        if (r < 0)
                return r;
        k = v = NULL;
        return 0;
}

int grubenv_unset(GrubEnv *e, const char *key) {
        if (!e || !key_valid(key))
                return -EINVAL;
        ssize_t i = find_var(e, key);
        if (i < 0)
                return 0;
        free(e->vars[i].key);
        free(e->vars[i].value);
        memmove(e->vars + i, e->vars + i + 1, (e->n_vars - (size_t) i - 1) * sizeof(GrubEnvVar));
        e->n_vars--;
        return 1;
}

size_t grubenv_count(const GrubEnv *e) {
        return e ? e->n_vars : 0;
}

int grubenv_get_at(const GrubEnv *e, size_t i, const char **ret_key, const char **ret_value) {
        if (!e || i >= e->n_vars)
                return -ERANGE;
        if (ret_key)
                *ret_key = e->vars[i].key;
        if (ret_value)
                *ret_value = e->vars[i].value;
        return 0;
}

/* Index just past the unescaped '\n' ending the line that starts at p, or
 * 0 if there is none before 'end'. As in GRUB, a backslash takes the next
 * byte literally, even in a comment. */
static size_t line_end(const char *data, size_t p, size_t end) {
        for (; p < end; p++) {
                if (data[p] == '\\')
                        p++;
                else if (data[p] == '\n')
                        return p + 1;
        }
        return 0;
}

int grubenv_parse(const char *data, size_t len, GrubEnv **ret) {
        _cleanup_(grubenv_freep) GrubEnv *e = NULL;
        int r;

        if (!data || len != GRUBENV_SIZE)
                return -EBADMSG;
        if (memcmp(data, GRUBENV_HEADER, HEADER_LEN) != 0)
                return -EBADMSG;
        /* GRUB handles values as C strings; a NUL would truncate silently. */
        if (memchr(data, '\0', len))
                return -EBADMSG;

        /* GRUB's save_env finds the free space by skipping the '#' padding
         * backwards; it must end at a newline, or GRUB refuses to write. The
         * header's own newline stops the scan at the latest. */
        size_t end = len;
        while (end > HEADER_LEN && data[end - 1] == '#')
                end--;
        if (data[end - 1] != '\n')
                return -EBADMSG;

        r = grubenv_new(&e);
        if (r < 0)
                return r;

        size_t p = HEADER_LEN;
        while (p < end) {
                size_t next = line_end(data, p, end);
                if (next == 0)
                        return -EBADMSG; /* line continues into the padding */

                if (data[p] == '#') {
                        p = next; /* comment */
                        continue;
                }

                size_t k = p;
                while (k < next && key_char_valid(data[k]))
                        k++;
                if (k == p || data[k] != '=')
                        return -EBADMSG;

                _cleanup_free_ char *key = strndup(data + p, k - p);
                if (!key)
                        return -ENOMEM;
                if (find_var(e, key) >= 0)
                        return -EBADMSG;

                /* The value is at most next-k-2 bytes once unescaped. */
                _cleanup_free_ char *value = malloc(next - k);
                if (!value)
                        return -ENOMEM;
                size_t o = 0;
                for (size_t i = k + 1; i < next - 1; i++) {
                        if (data[i] == '\\')
                                i++; /* line_end() guarantees i < next - 1 */
                        value[o++] = data[i];
                }
                value[o] = '\0';

                r = append_var(e, key, value);
                if (r < 0)
                        return r;
                key = value = NULL;
                p = next;
        }

        *ret = TAKE_PTR(e);
        return 0;
}

int grubenv_format(const GrubEnv *e, char ret[static GRUBENV_SIZE]) {
        char buf[GRUBENV_SIZE];
        size_t o = 0;

        if (!e)
                return -EINVAL;

        memcpy(buf, GRUBENV_HEADER GRUBENV_MESSAGE, HEADER_LEN + MESSAGE_LEN);
        o = HEADER_LEN + MESSAGE_LEN;

        for (size_t i = 0; i < e->n_vars; i++) {
                const char *key = e->vars[i].key, *value = e->vars[i].value;
                size_t kl = strlen(key);

                if (kl + 1 + escaped_len(value) + 1 > GRUBENV_SIZE - o)
                        return -E2BIG;
                memcpy(buf + o, key, kl);
                o += kl;
                buf[o++] = '=';
                for (const char *c = value; *c; c++) {
                        if (needs_escape(*c))
                                buf[o++] = '\\';
                        buf[o++] = *c;
                }
                buf[o++] = '\n';
        }
        memset(buf + o, '#', GRUBENV_SIZE - o);

        memcpy(ret, buf, GRUBENV_SIZE);
        return 0;
}

int grubenv_load(const char *path, GrubEnv **ret) {
        _cleanup_free_ char *data = NULL;
        size_t size;
        int r;

        if (!path)
                return -EINVAL;
        r = read_full_file(path, GRUBENV_SIZE, &data, &size);
        if (r == -E2BIG)
                return -EBADMSG;
        if (r < 0)
                return r;
        return grubenv_parse(data, size, ret);
}

int grubenv_save(const GrubEnv *e, const char *path) {
        char buf[GRUBENV_SIZE];
        int r;

        if (!e || !path)
                return -EINVAL;
        r = grubenv_format(e, buf);
        if (r < 0)
                return r;
        return write_file_atomic(path, buf, sizeof(buf), 0644);
}
