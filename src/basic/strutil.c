/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strutil.h"

int safe_atou64(const char *s, uint64_t *ret) {
        char *end;

        if (!s || !isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (*end != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

int safe_atou(const char *s, unsigned *ret) {
        uint64_t v;
        int r = safe_atou64(s, &v);
        if (r < 0)
                return r;
        if (v > UINT32_MAX)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

int parse_size(const char *s, uint64_t *ret) {
        static const struct {
                char c;
                unsigned shift;
        } units[] = { { 'K', 10 }, { 'M', 20 }, { 'G', 30 }, { 'T', 40 } };
        char *end;

        if (!s || !isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;

        unsigned shift = 0;
        if (*end != '\0') {
                char c = (char) toupper((unsigned char) *end);
                bool found = false;
                for (size_t i = 0; i < ELEMENTSOF(units); i++)
                        if (units[i].c == c) {
                                shift = units[i].shift;
                                found = true;
                        }
                if (!found && c != 'B')
                        return -EINVAL;
                end++;
                if (found && (streq(end, "iB") || streq(end, "B")))
                        end += strlen(end);
                if (*end != '\0')
                        return -EINVAL;
        }
        if (shift > 0 && v > (UINT64_MAX >> shift))
                return -ERANGE;
        *ret = (uint64_t) v << shift;
        return 0;
}

const char *format_bytes(char *buf, size_t l, uint64_t bytes) {
        static const char *suffix[] = { "B", "KiB", "MiB", "GiB", "TiB" };
        double v = (double) bytes;
        size_t i = 0;

        while (v >= 1024.0 && i < ELEMENTSOF(suffix) - 1) {
                v /= 1024.0;
                i++;
        }
        if (i == 0)
                (void) snprintf(buf, l, "%" PRIu64 " B", bytes);
        else
                (void) snprintf(buf, l, "%.1f %s", v, suffix[i]);
        return buf;
}

void hex_encode(const uint8_t *data, size_t len, char *ret) {
        static const char h[] = "0123456789abcdef";
        for (size_t i = 0; i < len; i++) {
                ret[2 * i] = h[data[i] >> 4];
                ret[2 * i + 1] = h[data[i] & 15];
        }
        ret[2 * len] = '\0';
}

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int hex_decode(const char *s, uint8_t *ret, size_t len) {
        if (strlen(s) != 2 * len)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                int a = unhex(s[2 * i]), b = unhex(s[2 * i + 1]);
                if (a < 0 || b < 0)
                        return -EINVAL;
                ret[i] = (uint8_t) (a << 4 | b);
        }
        return 0;
}

bool string_has_prefix(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool string_is_safe_token(const char *s, const char *extra) {
        if (isempty(s))
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char) *p) && !strchr(extra ?: "", *p))
                        return false;
        return true;
}

size_t strv_length(char * const *l) {
        size_t n = 0;
        if (l)
                while (l[n])
                        n++;
        return n;
}

bool strv_contains(char * const *l, const char *s) {
        if (l)
                for (size_t i = 0; l[i]; i++)
                        if (streq(l[i], s))
                                return true;
        return false;
}

char **strv_append(char **l, const char *s) {
        size_t n = strv_length(l);
        char *c = strdup(s);
        if (!c)
                return NULL;
        char **nl = realloc(l, sizeof(char *) * (n + 2));
        if (!nl) {
                free(c);
                return NULL;
        }
        nl[n] = c;
        nl[n + 1] = NULL;
        return nl;
}

int error_set(char **ret_error, int r, const char *fmt, ...) {
        va_list ap;
        char *m;
        int k;

        if (!ret_error)
                return r;
        va_start(ap, fmt);
        k = vasprintf(&m, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        free(*ret_error);
        *ret_error = m;
        return r;
}

int error_set_first(char **ret_error, int r, const char *fmt, ...) {
        va_list ap;
        char *m = NULL;

        if (!ret_error || *ret_error)
                return r;
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        *ret_error = m;
        return r;
}

const char *string_quote(char buf[static STRING_QUOTE_SIZE], const char *s) {
        size_t n = 0;

        buf[n++] = '"';
        for (size_t i = 0; s[i]; i++) {
                unsigned char ch = (unsigned char) s[i];

                if (i >= STRING_QUOTE_CHARS) {
                        memcpy(buf + n, "...", 3);
                        n += 3;
                        break;
                }
                if (ch == '"' || ch == '\\') {
                        buf[n++] = '\\';
                        buf[n++] = (char) ch;
                } else if (ch < 0x20 || ch > 0x7e)
                        n += (size_t) snprintf(buf + n, 5, "\\x%02x", ch);
                else
                        buf[n++] = (char) ch;
        }
        buf[n++] = '"';
        buf[n] = '\0';
        return buf;
}
