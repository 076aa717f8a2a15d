/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "fileio.h"
#include "nodeconfig.h"
#include "yaml-json.h"
#include "spawn.h"
#include "strutil.h"

/* json_decrefp() comes with jansson >= 2.9. */

/* How much of a user-supplied string an error message repeats. */

/* Unit files are small; anything bigger is not one we want to parse. */
#define UNIT_FILE_MAX (1024 * 1024)
/* A sysctl value as read back; some are long tables (dev.cdrom.info). */
#define SYSCTL_READ_MAX (64 * 1024)
/* "systemctl enable --now" waits for the start jobs. */
#define SYSTEMCTL_TIMEOUT_SEC 300

#define WHITESPACE " \t\r\n"

static const char *const top_keys[] = { "debug", "files", "generation", "kernel_args", "sysctl", "units" };
static const char *const file_keys[] = { "content", "content_base64", "mode", "path" };
static const char *const units_keys[] = { "disable", "enable" };
static const char *const debug_keys[] = { "enabled" };

static const char *const unit_suffixes[] = { ".service", ".socket", ".timer", ".path", ".target", ".mount" };
static const char *const unit_dirs[] = { "/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system" };

/* Arguments that Hull itself puts on the kernel command line: a node config
 * overriding them would boot the wrong root or break boot counting. */
static const char *const reserved_kernel_args[] = { "root", "init", "rootfstype", "panic" };

/* ---- lifetime ---- */

int node_config_new_empty(NodeConfig **ret) {
        NodeConfig *c;

        if (!ret)
                return -EINVAL;
        c = calloc(1, sizeof(NodeConfig));
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

NodeConfig *node_config_free(NodeConfig *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_sysctl; i++) {
                free(c->sysctl[i].key);
                free(c->sysctl[i].value);
        }
        free(c->sysctl);
        strv_free(c->kernel_args);
        for (size_t i = 0; i < c->n_files; i++) {
                free(c->files[i].path);
                free(c->files[i].content);
        }
        free(c->files);
        strv_free(c->units_enable);
        strv_free(c->units_disable);
        free(c);
        return NULL;
}

/* ---- error messages ---- */

/* Sets *error (if error is non-NULL) and returns r. Only -ENOMEM for the
 * message itself can replace r: the caller must still learn about that. */

/* ---- value rules, shared by parsing, formatting and applying ----
 *
 * Each returns NULL if the value is fine, or why it is not. */

static bool ascii_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool in_set(char c, const char *set) {
        /* strchr() would find the terminating NUL. */
        return c != '\0' && strchr(set, c);
}

static const char *sysctl_key_check(const char *k) {
        size_t l = strnlen(k, NODE_CONFIG_SYSCTL_KEY_MAX + 1);

        if (l == 0)
                return "key must not be empty";
        if (l > NODE_CONFIG_SYSCTL_KEY_MAX)
                return "key longer than 255 characters";
        for (size_t i = 0; i < l; i++)
                if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || in_set(k[i], "_-.")))
                        return "key may only contain a-z, 0-9, '_' and '-', in segments separated by '.'";
        /* An empty segment would name a directory under /proc/sys, not a
         * parameter. */
        if (k[0] == '.' || k[l - 1] == '.' || strstr(k, ".."))
                return "key has an empty segment";
        /* sysctl.d reads a leading '-' as "ignore errors for this key". */
        if (k[0] == '-')
                return "key must not start with '-'";
        return NULL;
}

static const char *sysctl_value_check(const char *v) {
        size_t l = strnlen(v, NODE_CONFIG_SYSCTL_VALUE_MAX + 1);

        if (l == 0)
                return "value must not be empty";
        if (l > NODE_CONFIG_SYSCTL_VALUE_MAX)
                return "value longer than 4096 bytes";
        /* The value becomes one line of a sysctl.d file; no control
         * character may end it early or hide in it. */
        for (size_t i = 0; i < l; i++)
                if (v[i] < 0x20 || v[i] > 0x7e)
                        return "value may only contain printable ASCII characters";
        /* systemd-sysctl strips surrounding whitespace at boot; refusing it
         * keeps the runtime and the boot-time value the same. */
        if (v[0] == ' ' || v[l - 1] == ' ')
                return "value must not start or end with a space";
        return NULL;
}

static const char *kernel_arg_check(const char *a) {
        size_t l = strnlen(a, NODE_CONFIG_KERNEL_ARG_MAX + 1);

        if (l == 0)
                return "must not be empty";
        if (l > NODE_CONFIG_KERNEL_ARG_MAX)
                return "longer than 256 characters";
        /* The arguments are stored in a GRUB environment variable and
         * expanded in the GRUB script: nothing may split them, quote,
         * escape, expand, comment out or end a command there ('|', '&',
         * '<', '>' are operators to GRUB's lexer as well). */
        for (size_t i = 0; i < l; i++)
                if (a[i] <= 0x20 || a[i] > 0x7e || in_set(a[i], "\"'`\\;${}#|&<>"))
                        return "must be one token of printable ASCII without whitespace, quotes, "
                               "'\\', ';', '$', '{', '}', '#', '|', '&', '<', '>'";
        /* The kernel hands everything after "--" to init as its arguments,
         * Hull's own arguments included. */
        if (streq(a, "--"))
                return "\"--\" is not allowed";

        size_t name_len = strcspn(a, "=");
        for (size_t i = 0; i < ELEMENTSOF(reserved_kernel_args); i++)
                if (strlen(reserved_kernel_args[i]) == name_len && strncmp(a, reserved_kernel_args[i], name_len) == 0)
                        return "is set by Hull and cannot be overridden";
        if (string_has_prefix(a, "hull."))
                return "hull.* arguments are set by Hull and cannot be overridden";
        return NULL;
}

static const char *file_path_check(const char *p) {
        size_t l = strnlen(p, NODE_CONFIG_FILE_PATH_MAX + 1);

        if (l > NODE_CONFIG_FILE_PATH_MAX)
                return "longer than 255 characters";
        if (p[0] != '/')
                return "must be an absolute path";
        for (size_t i = 0; i < l; i++)
                if (!ascii_alnum(p[i]) && !in_set(p[i], "._@+-/"))
                        return "may only contain A-Z, a-z, 0-9 and '.', '_', '@', '+', '-', '/'";
        if (strstr(p, "//") || (l > 1 && p[l - 1] == '/'))
                return "must be normalised (no \"//\", no trailing '/')";
        for (const char *s = p; *s;) {
                s++; /* past the '/' */
                size_t n = strcspn(s, "/");
                if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
                        return "must be normalised (no \".\" or \"..\" components)";
                s += n;
        }
        if (!string_has_prefix(p, "/etc/"))
                return "must be under /etc";
        if (streq(p, NODE_CONFIG_SYSCTL_CONF))
                return "is reserved for the sysctl section";
        return NULL;
}

const char *unit_name_check(const char *u) {
        size_t l = strnlen(u, NODE_CONFIG_UNIT_NAME_MAX + 1);
        const char *dot, *at;

        if (l == 0)
                return "must not be empty";
        if (l > NODE_CONFIG_UNIT_NAME_MAX)
                return "longer than 255 characters";
        for (size_t i = 0; i < l; i++)
                if (!ascii_alnum(u[i]) && !in_set(u[i], ":_.\\@-"))
                        return "may only contain A-Z, a-z, 0-9 and ':', '_', '.', '\\', '@', '-'";
        /* A leading '-' would be an option to systemctl. */
        if (u[0] == '-' || u[0] == '.' || u[0] == '@')
                return "must not start with '-', '.' or '@'";

        dot = strrchr(u, '.');
        bool suffix_ok = false;
        for (size_t i = 0; dot && i < ELEMENTSOF(unit_suffixes); i++)
                if (streq(dot, unit_suffixes[i]))
                        suffix_ok = true;
        if (!suffix_ok)
                return "must end in .service, .socket, .timer, .path, .target or .mount";

        at = strchr(u, '@');
        if (at && strchr(at + 1, '@'))
                return "may contain at most one '@'";
        return NULL;
}

/* "0644", "644": three or four octal digits. */
static int mode_parse(const char *s, mode_t *ret) {
        size_t l = strlen(s);
        mode_t m = 0;

        if (l < 3 || l > 4)
                return -EINVAL;
        for (size_t i = 0; i < l; i++) {
                if (s[i] < '0' || s[i] > '7')
                        return -EINVAL;
                m = m * 8 + (mode_t) (s[i] - '0');
        }
        *ret = m;
        return 0;
}

static bool strv_sorted_unique(char * const *l) {
        if (!l)
                return true;
        for (size_t i = 0; l[i]; i++)
                if (l[i + 1] && strcmp(l[i], l[i + 1]) >= 0)
                        return false;
        return true;
}

/* b is strictly inside directory a ("/etc/a" and "/etc/a/b"). */
static bool path_below(const char *b, const char *a) {
        size_t l = strlen(a);
        return strncmp(a, b, l) == 0 && b[l] == '/';
}

/* Everything node_config_parse() enforces, on a config built by hand (or
 * loaded from the store). Generation 0 is accepted where an empty config is
 * meaningful: formatting it and applying from it. */
static bool config_ok(const NodeConfig *c, bool allow_generation_zero) {
        if (c->generation > INT64_MAX || (c->generation == 0 && !allow_generation_zero))
                return false;

        if (c->n_sysctl > NODE_CONFIG_SYSCTL_MAX || (c->n_sysctl > 0 && !c->sysctl))
                return false;
        for (size_t i = 0; i < c->n_sysctl; i++) {
                const NodeConfigSysctl *s = c->sysctl + i;
                if (!s->key || !s->value || sysctl_key_check(s->key) || sysctl_value_check(s->value))
                        return false;
                if (i > 0 && strcmp(c->sysctl[i - 1].key, s->key) >= 0)
                        return false;
        }

        if (strv_length(c->kernel_args) > NODE_CONFIG_KERNEL_ARGS_MAX)
                return false;
        if (c->kernel_args)
                for (char **a = c->kernel_args; *a; a++)
                        if (kernel_arg_check(*a))
                                return false;

        if (c->n_files > NODE_CONFIG_FILES_MAX || (c->n_files > 0 && !c->files))
                return false;
        for (size_t i = 0; i < c->n_files; i++) {
                const NodeConfigFile *f = c->files + i;
                if (!f->path || file_path_check(f->path) || !f->content || f->size > NODE_CONFIG_FILE_SIZE_MAX ||
                    (f->mode & ~(mode_t) 0777))
                        return false;
                if (i > 0 && strcmp(c->files[i - 1].path, f->path) >= 0)
                        return false;
                for (size_t j = 0; j < c->n_files; j++)
                        if (j != i && c->files[j].path && path_below(f->path, c->files[j].path))
                                return false;
        }

        char **lists[] = { c->units_enable, c->units_disable };
        for (size_t k = 0; k < ELEMENTSOF(lists); k++) {
                if (strv_length(lists[k]) > NODE_CONFIG_UNITS_MAX || !strv_sorted_unique(lists[k]))
                        return false;
                if (lists[k])
                        for (char **u = lists[k]; *u; u++)
                                if (unit_name_check(*u))
                                        return false;
        }
        if (c->units_enable)
                for (char **u = c->units_enable; *u; u++)
                        if (strv_contains(c->units_disable, *u))
                                return false;
        return true;
}

/* ---- base64 ---- */

static int b64_value(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

/* Standard alphabet, padding required. Whitespace is skipped, so that the
 * output of base64(1), wrapped at 76 columns, can be pasted in. Unused bits
 * in the last group must be zero: one spelling per content. -EBADMSG for
 * anything else, -E2BIG if the result would exceed max. */
static int base64_decode(const char *s, size_t len, size_t max, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ char *clean = NULL;
        _cleanup_free_ uint8_t *out = NULL;
        size_t n = 0, pad = 0;

        clean = malloc(len + 1);
        if (!clean)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++)
                if (!in_set(s[i], WHITESPACE))
                        clean[n++] = s[i];
        clean[n] = '\0';

        if (n % 4 != 0)
                return -EBADMSG;
        if (n > 0 && clean[n - 1] == '=') {
                pad++;
                if (clean[n - 2] == '=')
                        pad++;
        }
        for (size_t i = 0; i < n - pad; i++)
                if (b64_value(clean[i]) < 0)
                        return -EBADMSG;
        if (pad == 2 && (b64_value(clean[n - 3]) & 0x0f))
                return -EBADMSG;
        if (pad == 1 && (b64_value(clean[n - 2]) & 0x03))
                return -EBADMSG;

        size_t size = n / 4 * 3 - pad;
        if (size > max)
                return -E2BIG;
        /* EVP_DecodeBlock() writes whole groups, padding bytes included. */
        out = malloc(n / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        if (n > 0 && EVP_DecodeBlock(out, (const unsigned char *) clean, (int) n) != (int) (n / 4 * 3))
                return -EBADMSG;

        *ret = TAKE_PTR(out);
        *ret_size = size;
        return 0;
}

static char *base64_encode(const uint8_t *data, size_t size) {
        char *out = malloc((size + 2) / 3 * 4 + 1);
        if (!out)
                return NULL;
        /* Writes the terminating NUL too, and no line breaks. */
        (void) EVP_EncodeBlock((unsigned char *) out, data, (int) size);
        return out;
}

/* ---- parsing ---- */

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char * const *) a, *(char * const *) b);
}

static int cmp_sysctl(const void *a, const void *b) {
        return strcmp(((const NodeConfigSysctl *) a)->key, ((const NodeConfigSysctl *) b)->key);
}

static int cmp_file(const void *a, const void *b) {
        return strcmp(((const NodeConfigFile *) a)->path, ((const NodeConfigFile *) b)->path);
}

static int parse_sysctl(json_t *obj, NodeConfig *c, char **error) {
        char q[STRING_QUOTE_SIZE];
        const char *key;
        json_t *v;

        if (!json_is_object(obj))
                return error_set(error, -EBADMSG, "sysctl: must be an object of \"key\": \"value\"");
        size_t n = json_object_size(obj);
        if (n > NODE_CONFIG_SYSCTL_MAX)
                return error_set(error, -EBADMSG, "sysctl: more than %d entries", NODE_CONFIG_SYSCTL_MAX);
        if (n == 0)
                return 0;

        c->sysctl = calloc(n, sizeof(NodeConfigSysctl));
        if (!c->sysctl)
                return -ENOMEM;

        json_object_foreach(obj, key, v) {
                NodeConfigSysctl *s = c->sysctl + c->n_sysctl;
                const char *why;

                why = sysctl_key_check(key);
                if (why)
                        return error_set(error, -EBADMSG, "sysctl[%s]: %s", string_quote(q, key), why);

                if (json_is_string(v)) {
                        if (strlen(json_string_value(v)) != json_string_length(v))
                                return error_set(error, -EBADMSG, "sysctl[%s]: value contains a NUL byte", string_quote(q, key));
                        s->value = strdup(json_string_value(v));
                        if (!s->value)
                                return -ENOMEM;
                } else if (json_is_integer(v)) {
                        /* A number is what people write for most sysctls;
                         * it is stored and written as its decimal text. */
                        if (asprintf(&s->value, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < 0) {
                                s->value = NULL;
                                return -ENOMEM;
                        }
                } else
                        return error_set(error, -EBADMSG, "sysctl[%s]: value must be a string or an integer", string_quote(q, key));
                /* Counted once it holds something, so that it is freed. */
                c->n_sysctl++;

                s->key = strdup(key);
                if (!s->key)
                        return -ENOMEM;
                why = sysctl_value_check(s->value);
                if (why)
                        return error_set(error, -EBADMSG, "sysctl[%s]: %s", string_quote(q, key), why);
        }

        qsort(c->sysctl, c->n_sysctl, sizeof(NodeConfigSysctl), cmp_sysctl);
        return 0;
}

static int parse_kernel_args(json_t *arr, NodeConfig *c, char **error) {
        char q[STRING_QUOTE_SIZE];

        if (!json_is_array(arr))
                return error_set(error, -EBADMSG, "kernel_args: must be an array of strings");
        size_t n = json_array_size(arr);
        if (n > NODE_CONFIG_KERNEL_ARGS_MAX)
                return error_set(error, -EBADMSG, "kernel_args: more than %d entries", NODE_CONFIG_KERNEL_ARGS_MAX);
        if (n == 0)
                return 0;

        c->kernel_args = calloc(n + 1, sizeof(char *));
        if (!c->kernel_args)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_t *v = json_array_get(arr, i);
                const char *why;

                if (!json_is_string(v))
                        return error_set(error, -EBADMSG, "kernel_args[%zu]: must be a string", i);
                why = kernel_arg_check(json_string_value(v));
                if (!why && strlen(json_string_value(v)) != json_string_length(v))
                        why = "must not contain a NUL byte";
                if (why)
                        return error_set(error, -EBADMSG, "kernel_args[%zu]: %s %s", i, string_quote(q, json_string_value(v)), why);
                c->kernel_args[i] = strdup(json_string_value(v));
                if (!c->kernel_args[i])
                        return -ENOMEM;
        }
        return 0;
}

static int parse_file(json_t *obj, size_t i, NodeConfigFile *f, char **error) {
        char where[64];
        const char *why;
        json_t *path, *content, *b64, *mode;
        int r;

        (void) snprintf(where, sizeof(where), "files[%zu]", i);
        if (!json_is_object(obj))
                return error_set(error, -EBADMSG, "%s: must be an object", where);
        r = json_check_keys(obj, file_keys, ELEMENTSOF(file_keys), where, error);
        if (r < 0)
                return r;

        path = json_object_get(obj, "path");
        if (!path)
                return error_set(error, -EBADMSG, "%s.path: required", where);
        if (!json_is_string(path))
                return error_set(error, -EBADMSG, "%s.path: must be a string", where);
        why = file_path_check(json_string_value(path));
        if (!why && strlen(json_string_value(path)) != json_string_length(path))
                why = "must not contain a NUL byte";
        if (why)
                return error_set(error, -EBADMSG, "%s.path: %s", where, why);
        f->path = strdup(json_string_value(path));
        if (!f->path)
                return -ENOMEM;

        content = json_object_get(obj, "content");
        b64 = json_object_get(obj, "content_base64");
        if (!!content == !!b64)
                return error_set(error, -EBADMSG, "%s: exactly one of content and content_base64 is required", where);
        if (content) {
                if (!json_is_string(content))
                        return error_set(error, -EBADMSG, "%s.content: must be a string", where);
                /* jansson has checked the UTF-8 and refused NUL bytes;
                 * binary content goes through content_base64. */
                size_t l = json_string_length(content);
                if (l > NODE_CONFIG_FILE_SIZE_MAX)
                        return error_set(error, -EBADMSG, "%s.content: larger than 256 KiB", where);
                f->content = malloc(MAX(l, (size_t) 1));
                if (!f->content)
                        return -ENOMEM;
                memcpy(f->content, json_string_value(content), l);
                f->size = l;
        } else {
                if (!json_is_string(b64))
                        return error_set(error, -EBADMSG, "%s.content_base64: must be a string", where);
                r = base64_decode(json_string_value(b64), json_string_length(b64), NODE_CONFIG_FILE_SIZE_MAX,
                                  &f->content, &f->size);
                if (r == -EBADMSG)
                        return error_set(error, r, "%s.content_base64: not valid base64", where);
                if (r == -E2BIG)
                        return error_set(error, -EBADMSG, "%s.content_base64: larger than 256 KiB once decoded", where);
                if (r < 0)
                        return r;
        }

        f->mode = 0644;
        mode = json_object_get(obj, "mode");
        if (mode) {
                /* A string, as in the image spec: a JSON number 0644 would
                 * be read as decimal 644 by everyone else. */
                if (!json_is_string(mode) || mode_parse(json_string_value(mode), &f->mode) < 0)
                        return error_set(error, -EBADMSG, "%s.mode: must be an octal string such as \"0644\"", where);
                if (f->mode & ~(mode_t) 0777)
                        return error_set(error, -EBADMSG, "%s.mode: setuid, setgid and sticky bits are not allowed", where);
        }
        return 0;
}

static int parse_files(json_t *arr, NodeConfig *c, char **error) {
        char q[STRING_QUOTE_SIZE];
        int r;

        if (!json_is_array(arr))
                return error_set(error, -EBADMSG, "files: must be an array of objects");
        size_t n = json_array_size(arr);
        if (n > NODE_CONFIG_FILES_MAX)
                return error_set(error, -EBADMSG, "files: more than %d entries", NODE_CONFIG_FILES_MAX);
        if (n == 0)
                return 0;

        c->files = calloc(n, sizeof(NodeConfigFile));
        if (!c->files)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                NodeConfigFile *f = c->files + i;

                /* Counted before parsing, so that a half-filled entry is
                 * still freed. */
                c->n_files++;
                r = parse_file(json_array_get(arr, i), i, f, error);
                if (r < 0)
                        return r;

                /* Checked in input order, so that the indices in the
                 * message are the ones the author sees. */
                for (size_t j = 0; j < i; j++) {
                        if (streq(c->files[j].path, f->path))
                                return error_set(error, -EBADMSG, "files[%zu].path: %s is already listed as files[%zu]",
                                            i, string_quote(q, f->path), j);
                        if (path_below(f->path, c->files[j].path) || path_below(c->files[j].path, f->path))
                                return error_set(error, -EBADMSG,
                                            "files[%zu].path: %s cannot be both a file and a directory (files[%zu])",
                                            i, string_quote(q, f->path), j);
                }
        }

        qsort(c->files, c->n_files, sizeof(NodeConfigFile), cmp_file);
        return 0;
}

static int parse_unit_list(json_t *arr, const char *name, char ***ret, char **error) {
        _cleanup_strv_free_ char **l = NULL;
        char q[STRING_QUOTE_SIZE];

        if (!json_is_array(arr))
                return error_set(error, -EBADMSG, "units.%s: must be an array of unit names", name);
        size_t n = json_array_size(arr);
        if (n > NODE_CONFIG_UNITS_MAX)
                return error_set(error, -EBADMSG, "units.%s: more than %d entries", name, NODE_CONFIG_UNITS_MAX);
        if (n == 0)
                return 0;

        l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_t *v = json_array_get(arr, i);
                const char *why;

                if (!json_is_string(v))
                        return error_set(error, -EBADMSG, "units.%s[%zu]: must be a string", name, i);
                why = unit_name_check(json_string_value(v));
                if (!why && strlen(json_string_value(v)) != json_string_length(v))
                        why = "must not contain a NUL byte";
                if (why)
                        return error_set(error, -EBADMSG, "units.%s[%zu]: %s %s", name, i,
                                    string_quote(q, json_string_value(v)), why);
                l[i] = strdup(json_string_value(v));
                if (!l[i])
                        return -ENOMEM;
        }

        qsort(l, n, sizeof(char *), cmp_str);
        for (size_t i = 1; i < n; i++)
                if (streq(l[i - 1], l[i]))
                        return error_set(error, -EBADMSG, "units.%s: %s is listed twice", name, string_quote(q, l[i]));
        *ret = TAKE_PTR(l);
        return 0;
}

static int parse_units(json_t *obj, NodeConfig *c, char **error) {
        char q[STRING_QUOTE_SIZE];
        json_t *v;
        int r;

        if (!json_is_object(obj))
                return error_set(error, -EBADMSG, "units: must be an object");
        r = json_check_keys(obj, units_keys, ELEMENTSOF(units_keys), "units", error);
        if (r < 0)
                return r;

        v = json_object_get(obj, "enable");
        if (v && (r = parse_unit_list(v, "enable", &c->units_enable, error)) < 0)
                return r;
        v = json_object_get(obj, "disable");
        if (v && (r = parse_unit_list(v, "disable", &c->units_disable, error)) < 0)
                return r;

        if (c->units_enable)
                for (char **u = c->units_enable; *u; u++)
                        if (strv_contains(c->units_disable, *u))
                                return error_set(error, -EBADMSG, "units: %s is both enabled and disabled", string_quote(q, *u));
        return 0;
}

static int parse_debug(json_t *obj, NodeConfig *c, char **error) {
        json_t *v;
        int r;

        if (!json_is_object(obj))
                return error_set(error, -EBADMSG, "debug: must be an object");
        r = json_check_keys(obj, debug_keys, ELEMENTSOF(debug_keys), "debug", error);
        if (r < 0)
                return r;
        v = json_object_get(obj, "enabled");
        if (v) {
                if (!json_is_boolean(v))
                        return error_set(error, -EBADMSG, "debug.enabled: must be true or false");
                c->debug_enabled = json_is_true(v);
        }
        return 0;
}

static int format_json(const NodeConfig *c, char **ret);

static int parse_internal(const char *data, size_t len, bool allow_generation_zero, NodeConfig **ret, char **error) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(node_config_freep) NodeConfig *c = NULL;
        _cleanup_free_ char *canonical = NULL;
        json_error_t jerr;
        json_t *v;
        int r;

        if ((!data && len > 0) || !ret)
                return -EINVAL;
        if (len > NODE_CONFIG_SIZE_MAX)
                return error_set(error, -E2BIG, "document: larger than 1 MiB");

        /* Duplicate keys are refused: two readers must never disagree on
         * which "mode" counts. */
        root = json_loadb(data ?: "", len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                /* jansson may quote the offending input: keep the message
                 * printable. */
                for (char *p = jerr.text; *p; p++)
                        if (*p < 0x20 || *p > 0x7e)
                                *p = '?';
                return error_set(error, -EBADMSG, "document: invalid JSON at line %d, column %d: %s", jerr.line,
                            jerr.column, jerr.text);
        }
        if (!json_is_object(root))
                return error_set(error, -EBADMSG, "document: must be a JSON object");

        r = json_check_keys(root, top_keys, ELEMENTSOF(top_keys), "", error);
        if (r < 0)
                return r;

        r = node_config_new_empty(&c);
        if (r < 0)
                return r;

        v = json_object_get(root, "generation");
        if (!v)
                return error_set(error, -EBADMSG, "generation: required");
        /* Integers only: 4.0 is a real to jansson and is refused. */
        if (!json_is_integer(v) || json_integer_value(v) < (allow_generation_zero ? 0 : 1))
                return error_set(error, -EBADMSG, "generation: must be an integer >= 1");
        c->generation = (uint64_t) json_integer_value(v);

        if ((v = json_object_get(root, "sysctl")) && (r = parse_sysctl(v, c, error)) < 0)
                return r;
        if ((v = json_object_get(root, "kernel_args")) && (r = parse_kernel_args(v, c, error)) < 0)
                return r;
        if ((v = json_object_get(root, "files")) && (r = parse_files(v, c, error)) < 0)
                return r;
        if ((v = json_object_get(root, "units")) && (r = parse_units(v, c, error)) < 0)
                return r;
        if ((v = json_object_get(root, "debug")) && (r = parse_debug(v, c, error)) < 0)
                return r;

        /* Belt and braces: what was built must pass the same rules that
         * formatting and applying check. */
        if (!config_ok(c, allow_generation_zero))
                return error_set(error, -EBADMSG, "document: inconsistent configuration");

        /* The canonical form stores file contents as base64 and so can be
         * a third larger than the input. It has to be readable again (the
         * agent saves and reloads it), so it must fit too. */
        r = format_json(c, &canonical);
        if (r < 0)
                return r;
        if (strlen(canonical) > NODE_CONFIG_SIZE_MAX)
                return error_set(error, -E2BIG, "document: larger than 1 MiB once file contents are base64-encoded");

        *ret = TAKE_PTR(c);
        return 0;
}

int node_config_parse(const char *data, size_t len, NodeConfig **ret, char **ret_error) {
        _cleanup_free_ char *error = NULL;
        int r;

        r = parse_internal(data, len, false, ret, &error);
        if (r < 0 && ret_error && error)
                *ret_error = TAKE_PTR(error);
        return r;
}

/* ---- formatting ---- */

static int set_new(json_t *obj, const char *key, json_t *v) {
        /* json_object_set_new() consumes v even when it fails, and fails
         * for v == NULL, so allocation failures fall through to here. */
        return json_object_set_new(obj, key, v) < 0 ? -ENOMEM : 0;
}

static int strv_to_json(char * const *l, json_t **ret) {
        _cleanup_(json_decrefp) json_t *a = json_array();

        if (!a)
                return -ENOMEM;
        if (l)
                for (size_t i = 0; l[i]; i++)
                        if (json_array_append_new(a, json_string(l[i])) < 0)
                                return -ENOMEM;
        *ret = TAKE_PTR(a);
        return 0;
}

/* No checks: callers have run config_ok(). */
static int format_json(const NodeConfig *c, char **ret) {
        _cleanup_(json_decrefp) json_t *root = json_object();
        json_t *a;
        int r;

        if (!root)
                return -ENOMEM;
        r = set_new(root, "generation", json_integer((json_int_t) c->generation));
        if (r < 0)
                return r;

        if (c->n_sysctl > 0) {
                json_t *s = json_object();
                r = set_new(root, "sysctl", s);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < c->n_sysctl; i++) {
                        r = set_new(s, c->sysctl[i].key, json_string(c->sysctl[i].value));
                        if (r < 0)
                                return r;
                }
        }

        if (strv_length(c->kernel_args) > 0) {
                r = strv_to_json(c->kernel_args, &a);
                if (r < 0)
                        return r;
                r = set_new(root, "kernel_args", a);
                if (r < 0)
                        return r;
        }

        if (c->n_files > 0) {
                json_t *files = json_array();
                r = set_new(root, "files", files);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < c->n_files; i++) {
                        const NodeConfigFile *f = c->files + i;
                        _cleanup_free_ char *b64 = base64_encode(f->content, f->size);
                        char mode[8];
                        json_t *o = json_object();

                        if (!b64 || !o || json_array_append_new(files, o) < 0)
                                return -ENOMEM;
                        (void) snprintf(mode, sizeof(mode), "%04o", (unsigned) f->mode);
                        if ((r = set_new(o, "path", json_string(f->path))) < 0 ||
                            (r = set_new(o, "content_base64", json_string(b64))) < 0 ||
                            (r = set_new(o, "mode", json_string(mode))) < 0)
                                return r;
                }
        }

        if (strv_length(c->units_enable) > 0 || strv_length(c->units_disable) > 0) {
                json_t *units = json_object();
                r = set_new(root, "units", units);
                if (r < 0)
                        return r;
                if (strv_length(c->units_enable) > 0) {
                        if ((r = strv_to_json(c->units_enable, &a)) < 0 || (r = set_new(units, "enable", a)) < 0)
                                return r;
                }
                if (strv_length(c->units_disable) > 0) {
                        if ((r = strv_to_json(c->units_disable, &a)) < 0 || (r = set_new(units, "disable", a)) < 0)
                                return r;
                }
        }

        if (c->debug_enabled) {
                json_t *d = json_object();
                r = set_new(root, "debug", d);
                if (r < 0)
                        return r;
                r = set_new(d, "enabled", json_true());
                if (r < 0)
                        return r;
        }

        /* Sorted keys (strcmp, like our arrays), no whitespace: one byte
         * sequence per config, so that stored configs compare with memcmp. */
        char *s = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int node_config_format(const NodeConfig *c, char **ret) {
        _cleanup_free_ char *s = NULL;
        int r;

        if (!c || !ret)
                return -EINVAL;
        if (!config_ok(c, true))
                return -EINVAL;
        r = format_json(c, &s);
        if (r < 0)
                return r;
        if (strlen(s) > NODE_CONFIG_SIZE_MAX)
                return -E2BIG;
        *ret = TAKE_PTR(s);
        return 0;
}

/* ---- comparing ---- */

static bool strv_equal(char * const *a, char * const *b) {
        size_t n = strv_length(a);

        if (n != strv_length(b))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!streq(a[i], b[i]))
                        return false;
        return true;
}

bool node_config_equal(const NodeConfig *a, const NodeConfig *b) {
        if (!a || !b)
                return a == b;
        if (a->generation != b->generation || a->debug_enabled != b->debug_enabled)
                return false;

        if (a->n_sysctl != b->n_sysctl)
                return false;
        for (size_t i = 0; i < a->n_sysctl; i++)
                if (!streq(a->sysctl[i].key, b->sysctl[i].key) || !streq(a->sysctl[i].value, b->sysctl[i].value))
                        return false;

        if (a->n_files != b->n_files)
                return false;
        for (size_t i = 0; i < a->n_files; i++) {
                const NodeConfigFile *x = a->files + i, *y = b->files + i;
                if (!streq(x->path, y->path) || x->mode != y->mode || x->size != y->size ||
                    (x->size > 0 && memcmp(x->content, y->content, x->size) != 0))
                        return false;
        }

        return strv_equal(a->kernel_args, b->kernel_args) && strv_equal(a->units_enable, b->units_enable) &&
               strv_equal(a->units_disable, b->units_disable);
}

char *node_config_kernel_args_string(const NodeConfig *c) {
        size_t l = 0, n = c ? strv_length(c->kernel_args) : 0;
        char *s, *p;

        for (size_t i = 0; i < n; i++)
                l += strlen(c->kernel_args[i]) + 1;
        s = malloc(l + 1);
        if (!s)
                return NULL;
        p = s;
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        *p++ = ' ';
                size_t k = strlen(c->kernel_args[i]);
                memcpy(p, c->kernel_args[i], k);
                p += k;
        }
        *p = '\0';
        return s;
}

/* ---- applying: helpers ---- */

static const NodeConfigFile *config_find_file(const NodeConfig *c, const char *path) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_files; i++)
                if (streq(c->files[i].path, path))
                        return c->files + i;
        return NULL;
}

static char *sysctl_path(const char *proc_sys, const char *key) {
        _cleanup_free_ char *rel = strdup(key);
        if (!rel)
                return NULL;
        for (char *p = rel; *p; p++)
                if (*p == '.')
                        *p = '/';
        return path_join(proc_sys, rel);
}

/* The kernel parses a sysctl write as a whole: it has to be one write()
 * at offset 0, so no retry loop that would continue at an offset. */
static int write_one(const char *path, const char *data, size_t len) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, data, len);
        if (n < 0)
                return -errno;
        if ((size_t) n != len)
                return -EIO;
        return 0;
}

static int sysctl_write(const char *path, const char *value) {
        _cleanup_free_ char *line = NULL;

        if (asprintf(&line, "%s\n", value) < 0)
                return -ENOMEM;
        return write_one(path, line, strlen(line));
}

/* The kernel reads back multi-value sysctls with tabs ("4096\t87380\t6291456")
 * where people write spaces; compare word by word. */
static bool sysctl_value_same(const char *current, const char *wanted) {
        const char *a = current, *b = wanted;

        for (;;) {
                a += strspn(a, WHITESPACE);
                b += strspn(b, WHITESPACE);
                size_t la = strcspn(a, WHITESPACE), lb = strcspn(b, WHITESPACE);
                if (la != lb || strncmp(a, b, la) != 0)
                        return false;
                if (la == 0)
                        return true;
                a += la;
                b += lb;
        }
}

typedef struct SysctlUndo {
        char *path;
        char *old;        /* as read back; NULL if it could not be read */
        bool written;
} SysctlUndo;

static void sysctl_undo(SysctlUndo *u, size_t n) {
        /* Best effort, newest first: the error that brought us here is
         * what the caller needs to hear about. */
        for (size_t i = n; i > 0; i--)
                if (u[i - 1].written && u[i - 1].old)
                        (void) write_one(u[i - 1].path, u[i - 1].old, strlen(u[i - 1].old));
}

static void sysctl_undo_free(SysctlUndo *u, size_t n) {
        if (!u)
                return;
        for (size_t i = 0; i < n; i++) {
                free(u[i].path);
                free(u[i].old);
        }
        free(u);
}

static int sysctl_conf_text(const NodeConfig *c, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return -ENOMEM;
        fprintf(f, "# managed by hull-agent, generation %" PRIu64 "\n"
                   "# Written from the node config; local changes are overwritten.\n",
                c->generation);
        for (size_t i = 0; i < c->n_sysctl; i++)
                fprintf(f, "%s = %s\n", c->sysctl[i].key, c->sysctl[i].value);
        if (ferror(f)) {
                (void) fclose(f);
                return -ENOMEM;
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}

static int unlink_and_sync(const char *path) {
        if (unlink(path) < 0)
                return errno == ENOENT ? 0 : -errno;
        return fsync_parent_directory(path);
}

static int apply_sysctl(const NodeConfig *c, const char *root, const char *proc_sys, char **error) {
        SysctlUndo *undo = NULL;
        _cleanup_free_ char *conf = NULL, *text = NULL, *current = NULL;
        char q[STRING_QUOTE_SIZE];
        int r = 0;

        if (c->n_sysctl > 0) {
                undo = calloc(c->n_sysctl, sizeof(SysctlUndo));
                if (!undo)
                        return -ENOMEM;
        }

        for (size_t i = 0; i < c->n_sysctl; i++) {
                SysctlUndo *u = undo + i;
                char *old = NULL;

                u->path = sysctl_path(proc_sys, c->sysctl[i].key);
                if (!u->path) {
                        r = -ENOMEM;
                        goto undo;
                }
                /* Write-only parameters (vm.drop_caches) cannot be read
                 * back: they are written and not restored. */
                if (read_full_file(u->path, SYSCTL_READ_MAX, &old, NULL) >= 0) {
                        if (sysctl_value_same(old, c->sysctl[i].value)) {
                                free(old);
                                continue;
                        }
                        u->old = old;
                }
                r = sysctl_write(u->path, c->sysctl[i].value);
                if (r < 0) {
                        r = error_set(error, r, "sysctl[%s]: cannot write %s: %s", string_quote(q, c->sysctl[i].key),
                                 c->sysctl[i].value, strerror(-r));
                        goto undo;
                }
                u->written = true;
        }

        /* Persisted after the runtime writes succeeded: a boot must not
         * apply values that were just refused. */
        conf = path_join(root, NODE_CONFIG_SYSCTL_CONF);
        if (!conf) {
                r = -ENOMEM;
                goto undo;
        }
        if (c->n_sysctl == 0) {
                r = unlink_and_sync(conf);
                if (r < 0)
                        r = error_set(error, r, "cannot remove %s: %s", conf, strerror(-r));
        } else {
                r = sysctl_conf_text(c, &text);
                if (r >= 0 && read_full_file(conf, strlen(text), &current, NULL) >= 0 && streq(current, text))
                        goto done;
                if (r >= 0) {
                        _cleanup_free_ char *dir = path_join(root, "/etc/sysctl.d");
                        r = dir ? mkdir_p(dir, 0755) : -ENOMEM;
                }
                if (r >= 0)
                        r = write_file_atomic(conf, text, strlen(text), 0644);
                if (r < 0)
                        r = error_set(error, r, "cannot write %s: %s", conf, strerror(-r));
        }
        if (r >= 0)
                goto done;

undo:
        sysctl_undo(undo, c->n_sysctl);
done:
        sysctl_undo_free(undo, c->n_sysctl);
        return r;
}

static bool file_matches(const char *path, const NodeConfigFile *f) {
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t size;

        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
                return false;
        if ((st.st_mode & 07777) != f->mode || (uint64_t) st.st_size != f->size)
                return false;
        if (read_full_file(path, f->size, &buf, &size) < 0 || size != f->size)
                return false;
        return f->size == 0 || memcmp(buf, f->content, f->size) == 0;
}

static int apply_files(const NodeConfig *old, const NodeConfig *new, const char *root, char **error) {
        int r;

        for (size_t i = 0; i < new->n_files; i++) {
                const NodeConfigFile *f = new->files + i;
                _cleanup_free_ char *path = path_join(root, f->path), *dir = NULL;

                if (!path)
                        return -ENOMEM;
                /* Unchanged files keep their inode and mtime: nothing that
                 * watches them (containerd, chrony) sees a spurious change. */
                if (file_matches(path, f))
                        continue;

                dir = strndup(path, (size_t) (strrchr(path, '/') - path));
                if (!dir)
                        return -ENOMEM;
                r = mkdir_p(dir, 0755);
                if (r < 0)
                        return error_set(error, r, "cannot create the directory of %s: %s", f->path, strerror(-r));
                r = write_file_atomic(path, f->content, f->size, f->mode);
                if (r < 0)
                        return error_set(error, r, "cannot write %s: %s", f->path, strerror(-r));
        }

        for (size_t i = 0; old && i < old->n_files; i++) {
                if (config_find_file(new, old->files[i].path))
                        continue;
                _cleanup_free_ char *path = path_join(root, old->files[i].path);
                if (!path)
                        return -ENOMEM;
                r = unlink_and_sync(path);
                if (r < 0)
                        return error_set(error, r, "cannot remove %s: %s", old->files[i].path, strerror(-r));
        }
        return 0;
}

/* ---- applying: units ---- */

typedef struct UnitPlan {
        const char *name;
        char *file;        /* where the unit file is on the node, e.g. /usr/lib/systemd/system/getty@.service */
        char **wanted_by;  /* enable without systemctl only */
} UnitPlan;

static void unit_plans_free(UnitPlan *p, size_t n) {
        if (!p)
                return;
        for (size_t i = 0; i < n; i++) {
                free(p[i].file);
                strv_free(p[i].wanted_by);
        }
        free(p);
}

/* "getty@tty1.service" is provided by "getty@.service". Returns 1 and the
 * template name for an instance, 0 for anything else. */
static int unit_template(const char *name, char **ret) {
        const char *at = strchr(name, '@'), *dot = strrchr(name, '.');

        if (!at || at + 1 == dot)
                return 0;
        if (asprintf(ret, "%.*s@%s", (int) (at - name), name, dot) < 0)
                return -ENOMEM;
        return 1;
}

/* Finds the unit file as systemd would, the config's own files included
 * (they are in place by the time units are handled) and files the config
 * is about to delete excluded. *ret_config_file is set if the config
 * provides it. -ENOENT if there is none. */
static int unit_find(const NodeConfig *old, const NodeConfig *new, const char *root, const char *name,
                     char **ret_file, const NodeConfigFile **ret_config_file) {
        _cleanup_free_ char *template = NULL;
        const char *names[2] = { name, NULL };
        int r;

        r = unit_template(name, &template);
        if (r < 0)
                return r;
        names[1] = template;

        for (size_t k = 0; k < ELEMENTSOF(names) && names[k]; k++)
                for (size_t d = 0; d < ELEMENTSOF(unit_dirs); d++) {
                        _cleanup_free_ char *file = path_join(unit_dirs[d], names[k]), *full = NULL;
                        const NodeConfigFile *cf;
                        struct stat st;

                        if (!file)
                                return -ENOMEM;
                        cf = config_find_file(new, file);
                        if (!cf) {
                                if (config_find_file(old, file))
                                        continue;
                                full = path_join(root, file);
                                if (!full)
                                        return -ENOMEM;
                                if (lstat(full, &st) < 0 || S_ISDIR(st.st_mode))
                                        continue;
                        }
                        *ret_file = TAKE_PTR(file);
                        *ret_config_file = cf;
                        return 0;
                }
        return -ENOENT;
}

static bool wanted_by_key(const char *line, const char **ret_value) {
        static const char key[] = "WantedBy";

        if (strncmp(line, key, sizeof(key) - 1) != 0)
                return false;
        line += sizeof(key) - 1;
        line += strspn(line, " \t");
        if (*line != '=')
                return false;
        *ret_value = line + 1;
        return true;
}

/* The targets of WantedBy= in [Install], as "systemctl enable" reads them.
 * Entries that are not plain unit names (specifiers such as %i) are
 * skipped: this is the fallback for tests and image assembly, not a
 * systemd reimplementation. An empty assignment resets the list. */
static int unit_wanted_by(const uint8_t *data, size_t size, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_free_ char *text = NULL;
        bool install = false;

        text = malloc(size + 1);
        if (!text)
                return -ENOMEM;
        if (size > 0)
                memcpy(text, data, size);
        text[size] = '\0';

        for (char *line = text, *next; line; line = next) {
                const char *value;

                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                line += strspn(line, WHITESPACE);
                size_t len = strlen(line);
                while (len > 0 && in_set(line[len - 1], WHITESPACE))
                        line[--len] = '\0';
                if (len == 0 || line[0] == '#' || line[0] == ';')
                        continue;
                if (line[0] == '[') {
                        install = streq(line, "[Install]");
                        continue;
                }
                if (!install || !wanted_by_key(line, &value))
                        continue;

                value += strspn(value, WHITESPACE);
                if (*value == '\0') {
                        strv_free(l);
                        l = NULL;
                        continue;
                }
                while (*value) {
                        char word[NODE_CONFIG_UNIT_NAME_MAX + 1];
                        size_t n = strcspn(value, WHITESPACE);

                        if (n < sizeof(word)) {
                                memcpy(word, value, n);
                                word[n] = '\0';
                                if (!unit_name_check(word) && !strv_contains(l, word)) {
                                        char **nl = strv_append(l, word);
                                        if (!nl)
                                                return -ENOMEM;
                                        l = nl;
                                }
                        }
                        value += n;
                        value += strspn(value, WHITESPACE);
                }
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int unit_plan(const NodeConfig *old, const NodeConfig *new, const char *root, const char *list,
                     const char *name, bool read_install, UnitPlan *p, char **error) {
        const NodeConfigFile *cf = NULL;
        char q[STRING_QUOTE_SIZE];
        int r;

        p->name = name;
        r = unit_find(old, new, root, name, &p->file, &cf);
        if (r == -ENOENT)
                return error_set(error, r,
                            "units.%s: %s: no unit file in /etc/systemd/system, /usr/lib/systemd/system "
                            "or /lib/systemd/system",
                            list, string_quote(q, name));
        if (r < 0)
                return r;
        if (!read_install)
                return 0;

        if (cf)
                r = unit_wanted_by(cf->content, cf->size, &p->wanted_by);
        else {
                _cleanup_free_ char *full = path_join(root, p->file), *text = NULL;
                size_t size;

                if (!full)
                        return -ENOMEM;
                r = read_full_file(full, UNIT_FILE_MAX, &text, &size);
                if (r < 0)
                        return error_set(error, r, "units.%s: cannot read %s: %s", list, p->file, strerror(-r));
                r = unit_wanted_by((const uint8_t *) text, size, &p->wanted_by);
        }
        if (r < 0)
                return r;

        /* Where the symlinks go must not hold anything but a symlink. */
        if (p->wanted_by)
                for (char **t = p->wanted_by; *t; t++) {
                        _cleanup_free_ char *link = NULL;
                        struct stat st;

                        if (asprintf(&link, "%s/etc/systemd/system/%s.wants/%s", streq(root, "/") ? "" : root, *t,
                                     name) < 0)
                                return -ENOMEM;
                        if (lstat(link, &st) >= 0 && !S_ISLNK(st.st_mode))
                                return error_set(error, -EINVAL, "units.%s: %s: %s exists and is not a symlink", list,
                                            string_quote(q, name), link);
                }
        return 0;
}

static int symlink_atomic(const char *target, const char *link) {
        _cleanup_free_ char *tmp = NULL, *current = NULL;
        int r;

        current = malloc(PATH_MAX);
        if (!current)
                return -ENOMEM;
        ssize_t n = readlink(link, current, PATH_MAX - 1);
        if (n >= 0) {
                current[n] = '\0';
                if (streq(current, target))
                        return 0;
        }

        if (asprintf(&tmp, "%s.hull-tmp.%d", link, (int) getpid()) < 0)
                return -ENOMEM;
        (void) unlink(tmp);
        if (symlink(target, tmp) < 0)
                return -errno;
        if (rename(tmp, link) < 0) {
                r = -errno;
                (void) unlink(tmp);
                return r;
        }
        return fsync_parent_directory(link);
}

static int unit_enable_links(const char *root, const UnitPlan *p, char **error) {
        int r;

        if (!p->wanted_by)
                return 0;
        for (char **t = p->wanted_by; *t; t++) {
                _cleanup_free_ char *dir = NULL, *link = NULL;

                if (asprintf(&dir, "%s/etc/systemd/system/%s.wants", streq(root, "/") ? "" : root, *t) < 0)
                        return -ENOMEM;
                link = path_join(dir, p->name);
                if (!link)
                        return -ENOMEM;
                r = mkdir_p(dir, 0755);
                if (r >= 0)
                        r = symlink_atomic(p->file, link);
                if (r < 0)
                        return error_set(error, r, "cannot enable %s: %s: %s", p->name, link, strerror(-r));
        }
        return 0;
}

/* Removes every <target>.wants/<unit> symlink, not only those the current
 * unit file asks for: an older version of it may have wanted other targets. */
static int unit_disable_links(const char *root, const char *name, char **error) {
        _cleanup_free_ char *dir = path_join(root, "/etc/systemd/system");
        DIR *d;
        struct dirent *de;
        int r = 0;

        if (!dir)
                return -ENOMEM;
        d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : error_set(error, -errno, "cannot read %s: %s", dir, strerror(errno));

        while ((de = readdir(d))) {
                size_t l = strlen(de->d_name);
                _cleanup_free_ char *link = NULL;
                struct stat st;

                if (l <= 6 || !streq(de->d_name + l - 6, ".wants"))
                        continue;
                if (asprintf(&link, "%s/%s/%s", dir, de->d_name, name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                if (lstat(link, &st) < 0 || !S_ISLNK(st.st_mode))
                        continue;
                r = unlink_and_sync(link);
                if (r < 0) {
                        r = error_set(error, r, "cannot disable %s: %s: %s", name, link, strerror(-r));
                        break;
                }
        }
        (void) closedir(d);
        return r;
}

static int run_systemctl(const char *root, const char *verb, bool now, char * const *units, char **error) {
        _cleanup_free_ char *root_arg = NULL;
        _cleanup_free_ char **argv = NULL;
        size_t n = 0, k = strv_length(units);
        int r;

        argv = calloc(k + 6, sizeof(char *));
        if (!argv)
                return -ENOMEM;
        argv[n++] = (char *) "systemctl";
        if (!streq(root, "/")) {
                if (asprintf(&root_arg, "--root=%s", root) < 0)
                        return -ENOMEM;
                argv[n++] = root_arg;
        }
        argv[n++] = (char *) verb;
        if (now)
                argv[n++] = (char *) "--now";
        /* Unit names cannot start with '-', and this makes sure. */
        argv[n++] = (char *) "--";
        for (size_t i = 0; i < k; i++)
                argv[n++] = units[i];

        r = spawn_run(argv, &(SpawnOptions) { .output_fd = -1, .timeout_sec = SYSTEMCTL_TIMEOUT_SEC });
        if (r < 0)
                return error_set(error, r, "cannot run systemctl %s: %s", verb, strerror(-r));
        if (r > 0)
                return error_set(error, -EIO, "systemctl %s failed with exit status %d", verb, r);
        return 0;
}

/* ---- applying ---- */

int node_config_apply(const NodeConfig *old, const NodeConfig *new, const NodeConfigApplyOptions *o,
                      NodeConfigApplyResult *ret, char **ret_error) {
        _cleanup_free_ char *error = NULL;
        UnitPlan *enable = NULL, *disable = NULL;
        size_t n_enable = 0, n_disable = 0;
        const char *root, *proc_sys;
        NodeConfig empty = {};
        char q[STRING_QUOTE_SIZE];
        int r = 0;

        if (!new || !ret)
                return -EINVAL;
        if (!old)
                old = &empty;
        root = o && !isempty(o->root) ? o->root : "/";
        proc_sys = o && !isempty(o->proc_sys) ? o->proc_sys : "/proc/sys";
        bool use_systemctl = o && o->run_systemctl, live = o && o->live;

        /* Paths below come from these configs: never act on one that
         * could not have been parsed. */
        if (!config_ok(old, true)) {
                r = error_set(&error, -EINVAL, "the applied configuration is invalid");
                goto finish;
        }
        if (!config_ok(new, true)) {
                r = error_set(&error, -EINVAL, "the new configuration is invalid");
                goto finish;
        }

        if (new->generation == old->generation) {
                if (!node_config_equal(old, new)) {
                        r = error_set(&error, -ESTALE, "generation %" PRIu64 " is already applied with different content",
                                 new->generation);
                        goto finish;
                }
                *ret = (NodeConfigApplyResult) {};
                return 0;
        }
        if (new->generation < old->generation) {
                r = error_set(&error, -ESTALE, "generation %" PRIu64 " is older than the applied generation %" PRIu64,
                         new->generation, old->generation);
                goto finish;
        }

        /* Check everything against the system before changing anything. */
        for (size_t i = 0; i < new->n_sysctl; i++) {
                _cleanup_free_ char *path = sysctl_path(proc_sys, new->sysctl[i].key);
                struct stat st;

                if (!path) {
                        r = -ENOMEM;
                        goto finish;
                }
                if (stat(path, &st) < 0) {
                        r = -errno;
                        r = error_set(&error, r, "sysctl[%s]: %s", string_quote(q, new->sysctl[i].key),
                                 r == -ENOENT ? "no such kernel parameter" : strerror(-r));
                        goto finish;
                }
                /* Root passes access(W_OK) on a 0444 file in a test directory,
                 * but not in /proc/sys: look at the mode bits as well. */
                if (S_ISDIR(st.st_mode) || !(st.st_mode & 0222) || access(path, W_OK) < 0) {
                        r = error_set(&error, -EINVAL, "sysctl[%s]: not a writable kernel parameter",
                                 string_quote(q, new->sysctl[i].key));
                        goto finish;
                }
        }

        for (size_t i = 0; i < new->n_files; i++) {
                _cleanup_free_ char *path = path_join(root, new->files[i].path);
                struct stat st;

                if (!path) {
                        r = -ENOMEM;
                        goto finish;
                }
                if (lstat(path, &st) >= 0 && S_ISDIR(st.st_mode)) {
                        r = error_set(&error, -EINVAL, "files: %s is a directory on this node",
                                 string_quote(q, new->files[i].path));
                        goto finish;
                }
        }

        n_enable = strv_length(new->units_enable);
        n_disable = strv_length(new->units_disable);
        enable = calloc(MAX(n_enable, (size_t) 1), sizeof(UnitPlan));
        disable = calloc(MAX(n_disable, (size_t) 1), sizeof(UnitPlan));
        if (!enable || !disable) {
                r = -ENOMEM;
                goto finish;
        }
        for (size_t i = 0; i < n_enable; i++) {
                r = unit_plan(old, new, root, "enable", new->units_enable[i], !use_systemctl, enable + i, &error);
                if (r < 0)
                        goto finish;
        }
        for (size_t i = 0; i < n_disable; i++) {
                r = unit_plan(old, new, root, "disable", new->units_disable[i], false, disable + i, &error);
                if (r < 0)
                        goto finish;
        }

        if (o && o->check_only) {
                *ret = (NodeConfigApplyResult) {
                        .changed = true,
                        .reboot_required = !strv_equal(old->kernel_args, new->kernel_args),
                };
                r = 0;
                goto finish;
        }

        /* Now change things. */
        r = apply_sysctl(new, root, proc_sys, &error);
        if (r < 0)
                goto finish;
        r = apply_files(old, new, root, &error);
        if (r < 0)
                goto finish;

        /* Disabling first: a config that swaps one service for a
         * conflicting one stops the old before starting the new. */
        if (use_systemctl) {
                if (n_disable > 0 && (r = run_systemctl(root, "disable", live, new->units_disable, &error)) < 0)
                        goto finish;
                if (n_enable > 0 && (r = run_systemctl(root, "enable", live, new->units_enable, &error)) < 0)
                        goto finish;
        } else {
                for (size_t i = 0; i < n_disable; i++)
                        if ((r = unit_disable_links(root, disable[i].name, &error)) < 0)
                                goto finish;
                for (size_t i = 0; i < n_enable; i++)
                        if ((r = unit_enable_links(root, enable + i, &error)) < 0)
                                goto finish;
        }

        *ret = (NodeConfigApplyResult) {
                .changed = true,
                .reboot_required = !strv_equal(old->kernel_args, new->kernel_args),
        };
        r = 0;

finish:
        unit_plans_free(enable, n_enable);
        unit_plans_free(disable, n_disable);
        if (r < 0 && ret_error && error)
                *ret_error = TAKE_PTR(error);
        return r;
}

/* ---- the store ---- */

int node_config_load(const char *path, NodeConfig **ret, char **ret_error) {
        _cleanup_free_ char *buf = NULL, *error = NULL;
        size_t size;
        int r;

        if (!path || !ret)
                return -EINVAL;
        r = read_full_file(path, NODE_CONFIG_SIZE_MAX, &buf, &size);
        if (r == -ENOENT)
                return node_config_new_empty(ret);
        if (r == -E2BIG)
                r = error_set(&error, r, "%s: larger than 1 MiB", path);
        else if (r >= 0)
                /* The agent saves generation 0 too if asked; reading it
                 * back must work. */
                r = parse_internal(buf, size, true, ret, &error);
        if (r < 0 && ret_error && error)
                *ret_error = TAKE_PTR(error);
        return r;
}

int node_config_save(const NodeConfig *c, const char *path) {
        _cleanup_free_ char *s = NULL;
        int r;

        if (!c || !path)
                return -EINVAL;
        r = node_config_format(c, &s);
        if (r < 0)
                return r;
        return write_file_atomic(path, s, strlen(s), 0600);
}
