/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "strutil.h"
#include "yaml-json.h"

typedef struct Converter {
        yaml_parser_t parser;
        const char *data;
        size_t len;
        char *error;
} Converter;

/* json_decrefp() comes with jansson >= 2.9. */

_printf_(4, 5) static int fail_at(Converter *c, size_t line, size_t column, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        int k = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        free(c->error);
        c->error = NULL;
        if (asprintf(&c->error, "%zu:%zu: %s", line + 1, column + 1, msg) < 0) {
                c->error = NULL;
                return -ENOMEM;
        }
        return -EBADMSG;
}

#define fail_event(c, ev, ...) fail_at((c), (ev)->start_mark.line, (ev)->start_mark.column, __VA_ARGS__)

/* libyaml leaves problem_mark unset for reader errors (bad UTF-8, NUL in the
 * stream) and only reports a byte offset; turn that into a line and column
 * too, so that every error has the same shape. */
static void offset_to_mark(const char *data, size_t len, size_t offset, size_t *ret_line, size_t *ret_column) {
        size_t line = 0, column = 0;

        for (size_t i = 0; i < MIN(offset, len); i++) {
                if (data[i] == '\n') {
                        line++;
                        column = 0;
                } else
                        column++;
        }
        *ret_line = line;
        *ret_column = column;
}

static int fail_parser(Converter *c) {
        const yaml_parser_t *p = &c->parser;
        size_t line = p->problem_mark.line, column = p->problem_mark.column;

        if (p->error == YAML_MEMORY_ERROR)
                return -ENOMEM;
        if (p->error == YAML_READER_ERROR)
                offset_to_mark(c->data, c->len, p->problem_offset, &line, &column);
        /* The context ("while parsing a flow sequence") and where it began
         * is often where the mistake is: an unclosed bracket shows up as a
         * problem lines later. */
        if (p->context)
                return fail_at(c, line, column, "%s (%s that starts at %zu:%zu)", p->problem ?: "YAML syntax error",
                               p->context, p->context_mark.line + 1, p->context_mark.column + 1);
        return fail_at(c, line, column, "%s", p->problem ?: "YAML syntax error");
}

static int next_event(Converter *c, yaml_event_t *ret) {
        if (!yaml_parser_parse(&c->parser, ret))
                return fail_parser(c);
        return 0;
}

/* Anchors and aliases could make a small document expand into a huge one
 * ("billion laughs") and tags would ask for types we do not have: neither
 * has a use in a config document, so both are refused outright. */
static int check_plain_node(Converter *c, const yaml_event_t *ev) {
        const yaml_char_t *anchor = NULL, *tag = NULL;

        switch (ev->type) {
        case YAML_ALIAS_EVENT:
                return fail_event(c, ev, "YAML aliases are not supported");
        case YAML_SCALAR_EVENT:
                anchor = ev->data.scalar.anchor;
                tag = ev->data.scalar.tag;
                break;
        case YAML_SEQUENCE_START_EVENT:
                anchor = ev->data.sequence_start.anchor;
                tag = ev->data.sequence_start.tag;
                break;
        case YAML_MAPPING_START_EVENT:
                anchor = ev->data.mapping_start.anchor;
                tag = ev->data.mapping_start.tag;
                break;
        default:
                return fail_event(c, ev, "unexpected YAML event");
        }
        if (anchor)
                return fail_event(c, ev, "YAML anchors are not supported ('&%s')", (const char *) anchor);
        if (tag)
                return fail_event(c, ev, "YAML tags are not supported ('%s')", (const char *) tag);
        return 0;
}

/* Strict: "-?[0-9]+" and nothing else, so that "+1", "1_000", "0x10" and
 * "1e3" stay strings instead of being read the way some YAML 1.1 parser
 * would. */
static bool looks_like_integer(const char *s) {
        if (*s == '-')
                s++;
        if (!*s)
                return false;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return false;
        return true;
}

/* jansson only accepts valid UTF-8. libyaml validates its input and its
 * escapes, so this should never trigger; checking here keeps a broken
 * string from being misreported as out of memory. */
static bool utf8_is_valid(const unsigned char *s, size_t len) {
        size_t i = 0;

        while (i < len) {
                unsigned char b = s[i];
                size_t n;
                uint32_t cp;

                if (b < 0x80) {
                        i++;
                        continue;
                } else if ((b & 0xe0) == 0xc0) {
                        n = 1;
                        cp = b & 0x1f;
                } else if ((b & 0xf0) == 0xe0) {
                        n = 2;
                        cp = b & 0x0f;
                } else if ((b & 0xf8) == 0xf0) {
                        n = 3;
                        cp = b & 0x07;
                } else
                        return false;
                if (len - i <= n)
                        return false;
                for (size_t k = 1; k <= n; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (s[i + k] & 0x3f);
                }
                /* Overlong forms, surrogates and values past U+10FFFF. */
                if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
                    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                        return false;
                i += n + 1;
        }
        return true;
}

static int convert_scalar(Converter *c, const yaml_event_t *ev, json_t **ret) {
        const char *v = (const char *) ev->data.scalar.value;
        size_t l = ev->data.scalar.length;
        json_t *j;

        if (strlen(v) != l)
                return fail_event(c, ev, "NUL byte in YAML scalar");
        if (!utf8_is_valid((const unsigned char *) v, l))
                return fail_event(c, ev, "invalid UTF-8 in YAML scalar");

        if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                j = json_stringn(v, l);
        else if (l == 0 || streq(v, "null") || streq(v, "~"))
                j = json_null();
        else if (streq(v, "true"))
                j = json_true();
        else if (streq(v, "false"))
                j = json_false();
        else if (looks_like_integer(v)) {
                const char *digits = v[0] == '-' ? v + 1 : v;
                if (digits[0] == '0' && digits[1] != '\0')
                        return fail_event(c, ev, "number '%s' has a leading zero; write it without, or quote it to mean a string", v);
                errno = 0;
                char *end;
                long long n = strtoll(v, &end, 10);
                if (errno == ERANGE || *end != '\0')
                        return fail_event(c, ev, "number '%s' is out of range", v);
                j = json_integer((json_int_t) n);
        } else
                j = json_stringn(v, l);
        if (!j)
                return -ENOMEM;
        *ret = j;
        return 0;
}

static int convert_node(Converter *c, const yaml_event_t *ev, unsigned depth, json_t **ret);

static int convert_collection(Converter *c, const yaml_event_t *start, unsigned depth, json_t **ret) {
        bool seq = start->type == YAML_SEQUENCE_START_EVENT;
        yaml_event_type_t end = seq ? YAML_SEQUENCE_END_EVENT : YAML_MAPPING_END_EVENT;
        _cleanup_(json_decrefp) json_t *j = seq ? json_array() : json_object();
        int r;

        if (!j)
                return -ENOMEM;
        if (depth >= YAML_JSON_DEPTH_MAX)
                return fail_event(c, start, "YAML nesting deeper than %d levels", YAML_JSON_DEPTH_MAX);

        for (;;) {
                yaml_event_t ev;

                r = next_event(c, &ev);
                if (r < 0)
                        return r;
                if (ev.type == end) {
                        yaml_event_delete(&ev);
                        break;
                }

                if (seq) {
                        json_t *item = NULL;
                        r = convert_node(c, &ev, depth + 1, &item);
                        yaml_event_delete(&ev);
                        if (r < 0)
                                return r;
                        if (json_array_append_new(j, item) < 0)
                                return -ENOMEM;
                        continue;
                }

                /* Keys are taken verbatim as strings: "1", "true" and "null"
                 * as keys mean those words, as they would in JSON. */
                r = check_plain_node(c, &ev);
                if (r >= 0 && ev.type != YAML_SCALAR_EVENT)
                        r = fail_event(c, &ev, "mapping keys must be scalars");
                if (r >= 0 && strlen((const char *) ev.data.scalar.value) != ev.data.scalar.length)
                        r = fail_event(c, &ev, "NUL byte in YAML mapping key");
                if (r >= 0 && !utf8_is_valid(ev.data.scalar.value, ev.data.scalar.length))
                        r = fail_event(c, &ev, "invalid UTF-8 in YAML mapping key");
                if (r >= 0 && json_object_get(j, (const char *) ev.data.scalar.value))
                        r = fail_event(c, &ev, "duplicate key '%s'", (const char *) ev.data.scalar.value);
                if (r < 0) {
                        yaml_event_delete(&ev);
                        return r;
                }

                _cleanup_free_ char *key = strdup((const char *) ev.data.scalar.value);
                yaml_event_delete(&ev);
                if (!key)
                        return -ENOMEM;

                yaml_event_t value_ev;
                json_t *value = NULL;
                r = next_event(c, &value_ev);
                if (r < 0)
                        return r;
                r = convert_node(c, &value_ev, depth + 1, &value);
                yaml_event_delete(&value_ev);
                if (r < 0)
                        return r;
                if (json_object_set_new(j, key, value) < 0)
                        return -ENOMEM;
        }

        *ret = TAKE_PTR(j);
        return 0;
}

static int convert_node(Converter *c, const yaml_event_t *ev, unsigned depth, json_t **ret) {
        int r = check_plain_node(c, ev);
        if (r < 0)
                return r;
        if (ev->type == YAML_SCALAR_EVENT)
                return convert_scalar(c, ev, ret);
        return convert_collection(c, ev, depth, ret);
}

static int convert_stream(Converter *c, json_t **ret) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        bool seen_document = false;
        int r;

        for (;;) {
                yaml_event_t ev;

                r = next_event(c, &ev);
                if (r < 0)
                        return r;

                switch (ev.type) {
                case YAML_STREAM_END_EVENT:
                        yaml_event_delete(&ev);
                        if (!seen_document)
                                return fail_at(c, 0, 0, "no YAML document");
                        *ret = TAKE_PTR(root);
                        return 0;

                case YAML_DOCUMENT_START_EVENT:
                        if (seen_document) {
                                r = fail_event(c, &ev, "more than one YAML document");
                                yaml_event_delete(&ev);
                                return r;
                        }
                        seen_document = true;
                        break;

                case YAML_STREAM_START_EVENT:
                case YAML_DOCUMENT_END_EVENT:
                        break;

                default:
                        /* The one node of the document. */
                        r = convert_node(c, &ev, 0, &root);
                        if (r < 0) {
                                yaml_event_delete(&ev);
                                return r;
                        }
                        break;
                }
                yaml_event_delete(&ev);
        }
}

int yaml_to_json(const char *data, size_t len, json_t **ret, char **ret_error) {
        Converter c = { .data = data, .len = len };
        json_t *root = NULL;
        int r;

        if (!yaml_parser_initialize(&c.parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&c.parser, (const unsigned char *) data, len);
        r = convert_stream(&c, &root);
        yaml_parser_delete(&c.parser);

        if (r < 0) {
                if (r == -EBADMSG && ret_error)
                        *ret_error = TAKE_PTR(c.error);
                free(c.error);
                return r;
        }
        free(c.error);
        *ret = root;
        return 0;
}

int json_check_keys(json_t *obj, const char *const *table, size_t n, const char *where, char **error) {
        char q[STRING_QUOTE_SIZE], known[256] = "";
        const char *key;
        json_t *v;

        json_object_foreach(obj, key, v) {
                bool found = false;
                for (size_t i = 0; i < n && !found; i++)
                        found = streq(key, table[i]);
                if (found)
                        continue;
                for (size_t i = 0; i < n; i++) {
                        if (i > 0)
                                (void) strncat(known, ", ", sizeof(known) - strlen(known) - 1);
                        (void) strncat(known, table[i], sizeof(known) - strlen(known) - 1);
                }
                return error_set(error, -EBADMSG, "%s%sunknown key %s (known keys: %s)", where, *where ? ": " : "",
                                 string_quote(q, key), known);
        }
        return 0;
}
