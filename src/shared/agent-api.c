/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "agent-api.h"
#include "bootcount.h"
#include "oci.h"
#include "strutil.h"

/* Error messages quote at most this much of something the client sent (a
 * field name, jansson's "near '...'"), so that a hostile body cannot make
 * the answer or the log line that repeats it arbitrarily long. */
#define QUOTE_MAX 64
#define JSON_ERROR_MAX 160
/* Error documents carry messages up to this size; longer ones are cut. */
#define MESSAGE_MAX (64 * 1024)


/* ---- UTF-8 ---- */

/* The length of the well-formed character at s (n bytes available), or 0 if
 * it is ill-formed; then *ret_bad is the length of its maximal ill-formed
 * prefix (Unicode's "maximal subpart"), which becomes one U+FFFD. The ranges
 * are RFC 3629's, which is also what jansson checks. */
static size_t utf8_char(const unsigned char *s, size_t n, size_t *ret_bad) {
        unsigned char c = s[0], lo = 0x80, hi = 0xBF;
        size_t need;

        if (c < 0x80)
                return 1;
        if (c >= 0xC2 && c <= 0xDF)
                need = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
                need = 3;
                if (c == 0xE0)
                        lo = 0xA0; /* overlong */
                else if (c == 0xED)
                        hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
                need = 4;
                if (c == 0xF0)
                        lo = 0x90; /* overlong */
                else if (c == 0xF4)
                        hi = 0x8F; /* above U+10FFFF */
        } else {
                *ret_bad = 1;
                return 0;
        }

        for (size_t i = 1; i < need; i++) {
                unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
                if (i >= n || s[i] < l || s[i] > h) {
                        *ret_bad = i;
                        return 0;
                }
        }
        return need;
}

char *api_utf8_sanitize(const char *s, size_t max) {
        const unsigned char *u = (const unsigned char *) (s ?: "");
        size_t l = strnlen((const char *) u, max);

        /* Cutting inside a character would turn its head into U+FFFD; cut
         * before it instead. Only if the string goes on past max (so u[l]
         * is readable): look back for the lead byte of the last character
         * and drop it if its sequence reaches past the cut. */
        if (l == max && u[l] != '\0')
                for (size_t i = l; i > 0 && l - i < 3; i--) {
                        unsigned char c = u[i - 1];
                        if (c < 0x80)
                                break;
                        if (c >= 0xC0) {
                                size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
                                if (i - 1 + n > l)
                                        l = i - 1;
                                break;
                        }
                }

        if (l > (SIZE_MAX - 1) / 3)
                return NULL;
        char *ret = malloc(l * 3 + 1), *p = ret;
        if (!ret)
                return NULL;

        for (size_t i = 0; i < l;) {
                size_t bad = 0, n = utf8_char(u + i, l - i, &bad);
                if (n > 0) {
                        memcpy(p, u + i, n);
                        p += n;
                        i += n;
                } else {
                        memcpy(p, "\xEF\xBF\xBD", 3);
                        p += 3;
                        i += bad;
                }
        }
        *p = '\0';
        return ret;
}

/* ---- request parsing ---- */

static int unknown_field(const char *key, const char *const *known, size_t n_known, char **ret_error) {
        _cleanup_free_ char *k = api_utf8_sanitize(key, QUOTE_MAX), *list = NULL;
        size_t size = 1;

        for (size_t i = 0; i < n_known; i++)
                size += strlen(known[i]) + 2;
        list = malloc(size);
        if (!k || !list)
                return -ENOMEM;
        char *e = list;
        *e = '\0';
        for (size_t i = 0; i < n_known; i++)
                e = stpcpy(i > 0 ? stpcpy(e, ", ") : e, known[i]);
        return error_set(ret_error, -EBADMSG, "unknown field '%s' (known: %s)", k, n_known > 0 ? list : "none");
}

/* The body as a JSON object whose keys are all in 'known'. */
static int parse_body(const char *body, size_t len, const char *const *known, size_t n_known, json_t **ret,
                      char **ret_error) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        json_error_t error;
        const char *key;
        json_t *v;

        if (!body && len > 0)
                return -EINVAL;
        if (len > API_BODY_MAX)
                return error_set(ret_error, -E2BIG, "request body is larger than %d bytes", API_BODY_MAX);

        if (len == 0)
                root = json_object();
        else {
                /* Duplicate keys are refused: two readers of the same body
                 * (us, and a proxy or the audit log's reader) must never
                 * disagree on which "source" counts. */
                root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &error);
                if (!root) {
                        _cleanup_free_ char *t = api_utf8_sanitize(error.text, JSON_ERROR_MAX);
                        if (!t)
                                return -ENOMEM;
                        return error_set(ret_error, -EBADMSG, "request body is not valid JSON (line %d, column %d): %s",
                                    error.line, error.column, t);
                }
        }
        if (!root)
                return -ENOMEM;
        if (!json_is_object(root))
                return error_set(ret_error, -EBADMSG, "request body must be a JSON object");

        json_object_foreach(root, key, v) {
                bool found = false;
                for (size_t i = 0; i < n_known && !found; i++)
                        found = streq(key, known[i]);
                if (!found)
                        return unknown_field(key, known, n_known, ret_error);
        }

        *ret = TAKE_PTR(root);
        return 0;
}

/* A borrowed string, or NULL if the field is absent. */
static int get_string(json_t *obj, const char *key, const char **ret, char **ret_error) {
        json_t *v = json_object_get(obj, key);

        if (!v) {
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v))
                return error_set(ret_error, -EBADMSG, "'%s' must be a string", key);
        /* jansson refuses \u0000 unless asked to allow it; be sure anyway,
         * since a NUL would cut the value short. */
        if (strlen(json_string_value(v)) != json_string_length(v))
                return error_set(ret_error, -EBADMSG, "'%s' must not contain NUL characters", key);
        *ret = json_string_value(v);
        return 0;
}

static int get_bool(json_t *obj, const char *key, bool def, bool *ret, char **ret_error) {
        json_t *v = json_object_get(obj, key);

        if (!v) {
                *ret = def;
                return 0;
        }
        if (!json_is_boolean(v))
                return error_set(ret_error, -EBADMSG, "'%s' must be true or false", key);
        *ret = json_is_true(v);
        return 0;
}

static bool is_control(unsigned char c) {
        return c < 0x20 || c == 0x7f;
}

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_hex(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Normalised so that what the agent opens, logs and audits is one spelling
 * of one file: no "." or ".." (which could also walk out of a directory a
 * reviewer thought the path was confined to), no "//", no trailing "/". */
static const char *path_problem(const char *p) {
        size_t l = strnlen(p, API_PATH_MAX + 1);

        if (p[0] != '/')
                return "must be an absolute path";
        if (l > API_PATH_MAX)
                return "is longer than 4095 bytes";
        for (size_t i = 0; i < l; i++)
                if (is_control((unsigned char) p[i]))
                        return "must not contain control characters";
        for (const char *c = p; *c == '/';) {
                const char *next = c + 1;
                size_t n = strcspn(next, "/");
                if (n == 0 || (n == 1 && next[0] == '.') || (n == 2 && next[0] == '.' && next[1] == '.'))
                        return "must be a normalised path (no empty, '.' or '..' components, no trailing '/')";
                c = next + n;
        }
        return NULL;
}

static const char *url_problem(const char *u) {
        size_t l = strnlen(u, API_URL_MAX + 1);

        if (l > API_URL_MAX)
                return "is longer than 4096 bytes";
        for (size_t i = 0; i < l; i++) {
                unsigned char c = (unsigned char) u[i];
                if (c == ' ' || is_control(c))
                        return "must not contain whitespace or control characters";
                if (c >= 0x80)
                        return "must be ASCII (percent-encode anything else)";
        }

        const char *authority = u + strlen("https://");
        size_t n = strcspn(authority, "/?#");
        /* Credentials in the URL would be copied into the audit log, the
         * status and the journal. */
        if (memchr(authority, '@', n))
                return "must not contain credentials (user@host); use client_cert and client_key";
        if (n == 0 || authority[0] == ':')
                return "must name a host";
        return NULL;
}

static int check_source(const char *s, char **ret_error) {
        const char *problem;

        if (oci_url_is_oci(s)) {
                _cleanup_(oci_ref_done) OciRef ref = {};
                _cleanup_free_ char *err = NULL;
                int r = oci_url_parse(s, &ref, &err);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return error_set(ret_error, -EBADMSG, "'source' is not a valid oci:// reference: %s",
                                         err ?: "malformed");
                if (!oci_ref_is_pinned(&ref))
                        return error_set(ret_error, -EBADMSG,
                                         "'source' oci://%s/%s:%s names a tag, which can move: "
                                         "pin it by digest, oci://HOST/REPO@sha256:HEX (hull-build push "
                                         "prints it; hullctl cluster upgrade resolves a tag to it)",
                                         ref.registry, ref.repository, ref.tag ?: "latest");
                return 0;
        }
        if (s[0] == '/')
                problem = path_problem(s);
        else if (strncasecmp(s, "https://", strlen("https://")) == 0)
                problem = url_problem(s);
        else if (strncasecmp(s, "http://", strlen("http://")) == 0)
                problem = "must not use plain http://; use https:// (or an absolute local path)";
        else
                problem = "must be an absolute local path, an https:// URL or an oci:// reference pinned by digest";

        return problem ? error_set(ret_error, -EBADMSG, "'source' %s", problem) : 0;
}

static int check_path(const char *key, const char *s, char **ret_error) {
        const char *problem = path_problem(s);
        return problem ? error_set(ret_error, -EBADMSG, "'%s' %s", key, problem) : 0;
}

static bool hex_ok(const char *s, size_t len) {
        if (strnlen(s, len + 1) != len)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!is_hex(s[i]))
                        return false;
        return true;
}

/* As manifest.c's token rule, so that a version that can never match a
 * manifest is refused now and not after the download. */
static bool version_ok(const char *s) {
        size_t l = strnlen(s, API_VERSION_MAX + 1);

        if (l == 0 || l > API_VERSION_MAX || !is_alnum(s[0]))
                return false;
        for (size_t i = 0; i < l; i++)
                if (!is_alnum(s[i]) && !strchr("._+~-", s[i]))
                        return false;
        return true;
}

static int dup_lower(const char *s, size_t lower_prefix, char **ret) {
        if (!s) {
                *ret = NULL;
                return 0;
        }
        char *c = strdup(s);
        if (!c)
                return -ENOMEM;
        for (size_t i = 0; i < lower_prefix && c[i]; i++)
                if (c[i] >= 'A' && c[i] <= 'Z')
                        c[i] = (char) (c[i] - 'A' + 'a');
        *ret = c;
        return 0;
}

void stage_request_done(StageRequest *r) {
        if (!r)
                return;
        free(r->source);
        free(r->sha256);
        free(r->version);
        free(r->key_id);
        free(r->ca_file);
        free(r->client_cert);
        free(r->client_key);
        *r = (StageRequest) {};
}

void debug_request_done(DebugRequest *r) {
        if (!r)
                return;
        strv_free(r->command);
        *r = (DebugRequest) {};
}

void hook_request_done(HookRequest *r) {
        if (!r)
                return;
        free(r->name);
        free(r->stage);
        free(r->task);
        *r = (HookRequest) {};
}

int api_parse_stage(const char *body, size_t len, StageRequest *ret, char **ret_error) {
        static const char *const fields[] = {
                "source", "sha256", "version", "key_id", "ca_file", "client_cert", "client_key",
        };
        _cleanup_(json_decrefp) json_t *root = NULL;
        const char *source, *sha256, *version, *key_id, *ca_file, *client_cert, *client_key;
        int r;

        if (!ret)
                return -EINVAL;
        r = parse_body(body, len, fields, ELEMENTSOF(fields), &root, ret_error);
        if (r < 0)
                return r;

        if ((r = get_string(root, "source", &source, ret_error)) < 0 ||
            (r = get_string(root, "sha256", &sha256, ret_error)) < 0 ||
            (r = get_string(root, "version", &version, ret_error)) < 0 ||
            (r = get_string(root, "key_id", &key_id, ret_error)) < 0 ||
            (r = get_string(root, "ca_file", &ca_file, ret_error)) < 0 ||
            (r = get_string(root, "client_cert", &client_cert, ret_error)) < 0 ||
            (r = get_string(root, "client_key", &client_key, ret_error)) < 0)
                return r;

        if (!source)
                return error_set(ret_error, -EBADMSG, "'source' is required");
        r = check_source(source, ret_error);
        if (r < 0)
                return r;
        bool oci = oci_url_is_oci(source);
        bool https = source[0] != '/' && !oci;

        if (sha256 && !hex_ok(sha256, 64))
                return error_set(ret_error, -EBADMSG, "'sha256' must be 64 hexadecimal digits");
        if (version && !version_ok(version))
                return error_set(ret_error, -EBADMSG,
                            "'version' must be 1 to %d characters from A-Z a-z 0-9 . _ + ~ -, "
                            "starting with a letter or digit",
                            API_VERSION_MAX);
        if (key_id && !hex_ok(key_id, 16))
                return error_set(ret_error, -EBADMSG, "'key_id' must be 16 hexadecimal digits");
        /* For a registry, the pin is the OCI manifest's digest, which the
         * reference carries; a second, different one is a contradiction. */
        if (oci && sha256) {
                const char *d = strstr(source, "@sha256:") + strlen("@sha256:");
                if (strcasecmp(d, sha256) != 0)
                        return error_set(ret_error, -EBADMSG,
                                         "'sha256' must be the digest the oci:// source is pinned by (%s)", d);
        }

        const struct {
                const char *key, *value;
        } tls[] = { { "ca_file", ca_file }, { "client_cert", client_cert }, { "client_key", client_key } };
        for (size_t i = 0; i < ELEMENTSOF(tls); i++) {
                if (!tls[i].value)
                        continue;
                if (oci && i == 0)
                        ; /* the registry's CA */
                else if (!https)
                        return error_set(ret_error, -EBADMSG, "'%s' is only valid with an https:// source%s", tls[i].key,
                                         i == 0 ? " or an oci:// one" : "");
                r = check_path(tls[i].key, tls[i].value, ret_error);
                if (r < 0)
                        return r;
        }
        if (client_key && !client_cert)
                return error_set(ret_error, -EBADMSG, "'client_key' requires 'client_cert'");
        if (client_cert && !client_key)
                return error_set(ret_error, -EBADMSG, "'client_cert' requires 'client_key'");

        _cleanup_(stage_request_done) StageRequest req = {};
        if ((r = dup_lower(source, https ? strlen("https") : oci ? strlen("oci") : 0, &req.source)) < 0 ||
            (r = dup_lower(sha256, SIZE_MAX, &req.sha256)) < 0 ||
            (r = dup_lower(version, 0, &req.version)) < 0 ||
            (r = dup_lower(key_id, SIZE_MAX, &req.key_id)) < 0 ||
            (r = dup_lower(ca_file, 0, &req.ca_file)) < 0 ||
            (r = dup_lower(client_cert, 0, &req.client_cert)) < 0 ||
            (r = dup_lower(client_key, 0, &req.client_key)) < 0)
                return r;

        *ret = req;
        req = (StageRequest) {};
        return 0;
}

int api_parse_activate(const char *body, size_t len, ActivateRequest *ret, char **ret_error) {
        static const char *const fields[] = { "tries", "reboot" };
        _cleanup_(json_decrefp) json_t *root = NULL;
        ActivateRequest req = {};
        int r;

        if (!ret)
                return -EINVAL;
        r = parse_body(body, len, fields, ELEMENTSOF(fields), &root, ret_error);
        if (r < 0)
                return r;

        json_t *v = json_object_get(root, "tries");
        if (v) {
                /* Integers only: 3.0 is a real in jansson, and true is not 1. */
                if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > BOOT_TRIES_MAX)
                        return error_set(ret_error, -EBADMSG, "'tries' must be an integer from 1 to %d", BOOT_TRIES_MAX);
                req.tries = (unsigned) json_integer_value(v);
        }
        r = get_bool(root, "reboot", true, &req.reboot, ret_error);
        if (r < 0)
                return r;

        *ret = req;
        return 0;
}

int api_parse_rollback(const char *body, size_t len, RollbackRequest *ret, char **ret_error) {
        static const char *const fields[] = { "reboot" };
        _cleanup_(json_decrefp) json_t *root = NULL;
        RollbackRequest req = {};
        int r;

        if (!ret)
                return -EINVAL;
        r = parse_body(body, len, fields, ELEMENTSOF(fields), &root, ret_error);
        if (r < 0)
                return r;
        r = get_bool(root, "reboot", true, &req.reboot, ret_error);
        if (r < 0)
                return r;

        *ret = req;
        return 0;
}

int api_parse_reboot(const char *body, size_t len, char **ret_error) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        return parse_body(body, len, NULL, 0, &root, ret_error);
}

int api_parse_mark_good(const char *body, size_t len, MarkGoodRequest *ret, char **ret_error) {
        static const char *const fields[] = { "force" };
        _cleanup_(json_decrefp) json_t *root = NULL;
        MarkGoodRequest req = {};
        int r;

        if (!ret)
                return -EINVAL;
        r = parse_body(body, len, fields, ELEMENTSOF(fields), &root, ret_error);
        if (r < 0)
                return r;
        r = get_bool(root, "force", false, &req.force, ret_error);
        if (r < 0)
                return r;

        *ret = req;
        return 0;
}

int api_parse_debug(const char *body, size_t len, DebugRequest *ret, char **ret_error) {
        static const char *const fields[] = { "command" };
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_strv_free_ char **command = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = parse_body(body, len, fields, ELEMENTSOF(fields), &root, ret_error);
        if (r < 0)
                return r;

        json_t *v = json_object_get(root, "command");
        if (v) {
                size_t n = json_array_size(v);
                if (!json_is_array(v) || n < 1 || n > API_COMMAND_ARGS_MAX)
                        return error_set(ret_error, -EBADMSG, "'command' must be an array of 1 to %d strings",
                                    API_COMMAND_ARGS_MAX);
                command = calloc(n + 1, sizeof(char *));
                if (!command)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        json_t *a = json_array_get(v, i);
                        if (!json_is_string(a) || json_string_length(a) == 0 ||
                            strlen(json_string_value(a)) != json_string_length(a))
                                return error_set(ret_error, -EBADMSG, "'command[%zu]' must be a non-empty string", i);
                        if (json_string_length(a) > API_COMMAND_ARG_MAX)
                                return error_set(ret_error, -EBADMSG, "'command[%zu]' is longer than %d bytes", i,
                                            API_COMMAND_ARG_MAX);
                        command[i] = strdup(json_string_value(a));
                        if (!command[i])
                                return -ENOMEM;
                }
        }

        *ret = (DebugRequest) { .command = TAKE_PTR(command) };
        return 0;
}

bool api_hook_name_is_valid(const char *name) {
        size_t l = name ? strnlen(name, API_HOOK_NAME_MAX + 1) : 0;

        if (l < 1 || l > API_HOOK_NAME_MAX || !is_alnum(name[0]))
                return false;
        for (size_t i = 1; i < l; i++)
                if (!is_alnum(name[i]) && !strchr("._-", name[i]))
                        return false;
        return true;
}

int api_parse_hook(const char *body, size_t len, HookRequest *ret, char **ret_error) {
        static const char *const fields[] = { "name", "stage", "timeout_seconds", "task" };
        static const char *const stages[] = { "pre-drain", "post-boot", "manual" };
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(hook_request_done) HookRequest req = { .timeout_sec = API_HOOK_TIMEOUT_DEFAULT };
        const char *name, *stage, *task;
        int r;

        if (!ret)
                return -EINVAL;
        r = parse_body(body, len, fields, ELEMENTSOF(fields), &root, ret_error);
        if (r < 0)
                return r;

        r = get_string(root, "name", &name, ret_error);
        if (r < 0)
                return r;
        if (!name)
                return error_set(ret_error, -EBADMSG, "'name' is required");
        if (!api_hook_name_is_valid(name)) {
                /* The name becomes a file name: nothing that could walk out of
                 * the hooks directories, nothing hidden. */
                _cleanup_free_ char *q = api_utf8_sanitize(name, QUOTE_MAX);
                if (!q)
                        return -ENOMEM;
                return error_set(ret_error, -EBADMSG,
                                 "'name' must be 1 to %d letters, digits, '.', '_' or '-' starting with a letter or "
                                 "digit (a file name in a hooks directory), not '%s'",
                                 API_HOOK_NAME_MAX, q);
        }

        r = get_string(root, "stage", &stage, ret_error);
        if (r < 0)
                return r;
        if (!stage)
                stage = "manual";
        bool known = false;
        for (size_t i = 0; i < ELEMENTSOF(stages) && !known; i++)
                known = streq(stage, stages[i]);
        if (!known) {
                _cleanup_free_ char *q = api_utf8_sanitize(stage, QUOTE_MAX);
                if (!q)
                        return -ENOMEM;
                return error_set(ret_error, -EBADMSG, "'stage' must be pre-drain, post-boot or manual, not '%s'", q);
        }

        json_t *v = json_object_get(root, "timeout_seconds");
        if (v) {
                /* Integers only, as for 'tries'. */
                if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                    json_integer_value(v) > API_HOOK_TIMEOUT_MAX)
                        return error_set(ret_error, -EBADMSG, "'timeout_seconds' must be an integer from 1 to %d",
                                         API_HOOK_TIMEOUT_MAX);
                req.timeout_sec = (unsigned) json_integer_value(v);
        }

        r = get_string(root, "task", &task, ret_error);
        if (r < 0)
                return r;
        if (task) {
                if (strlen(task) > API_HOOK_TASK_MAX)
                        return error_set(ret_error, -EBADMSG, "'task' is longer than %d bytes", API_HOOK_TASK_MAX);
                /* It goes into the hook's environment and the log. */
                for (const char *c = task; *c; c++)
                        if (is_control((unsigned char) *c))
                                return error_set(ret_error, -EBADMSG, "'task' must not contain control characters");
        }

        req.name = strdup(name);
        req.stage = strdup(stage);
        if (!req.name || !req.stage)
                return -ENOMEM;
        /* An empty task is the same as none: nothing to tell the hook. */
        if (task && task[0] && !(req.task = strdup(task)))
                return -ENOMEM;

        *ret = req;
        req = (HookRequest) {};
        return 0;
}

/* ---- errors ---- */

static const struct {
        int err;
        const char *name;
        unsigned status;
        const char *code; /* NULL: named, but "internal" */
} errno_table[] = {
        { EBADMSG, "EBADMSG", 422, "bad_bundle" },
        { EMEDIUMTYPE, "EMEDIUMTYPE", 422, "bad_bundle" },   /* an OCI artifact that is no Hull bundle */
        { EKEYREJECTED, "EKEYREJECTED", 422, "bad_signature" },
        { ENOKEY, "ENOKEY", 422, "unknown_key" },
        { EPROTONOSUPPORT, "EPROTONOSUPPORT", 422, "unsupported_format" },
        { EXDEV, "EXDEV", 422, "wrong_arch" },
        { EFBIG, "EFBIG", 422, "too_large" },
        { EDOM, "EDOM", 422, "version_mismatch" },
        { EKEYREVOKED, "EKEYREVOKED", 422, "key_mismatch" },
        { EUCLEAN, "EUCLEAN", 422, "digest_mismatch" },
        { ENODATA, "ENODATA", 422, "truncated" },
        { ECOMM, "ECOMM", 502, "download_failed" },
        { ECONNREFUSED, "ECONNREFUSED", 502, "download_failed" },
        { ECONNRESET, "ECONNRESET", 502, "download_failed" },
        { ECONNABORTED, "ECONNABORTED", 502, "download_failed" },
        { EHOSTUNREACH, "EHOSTUNREACH", 502, "download_failed" },
        { EHOSTDOWN, "EHOSTDOWN", 502, "download_failed" },
        { ENETUNREACH, "ENETUNREACH", 502, "download_failed" },
        { ENETDOWN, "ENETDOWN", 502, "download_failed" },
        { ETIMEDOUT, "ETIMEDOUT", 502, "download_failed" },
        { EPROTO, "EPROTO", 502, "download_failed" },
        { EILSEQ, "EILSEQ", 500, "readback_mismatch" },
        { EIO, "EIO", 500, "io_error" },
        { ENOSPC, "ENOSPC", 507, "no_space" },
        { EDQUOT, "EDQUOT", 507, "no_space" },
        { ENOENT, "ENOENT", 502, "download_failed" },
        { EACCES, "EACCES", 502, "download_failed" },
        { EBUSY, "EBUSY", 409, "busy" },
        { ENOMEDIUM, "ENOMEDIUM", 409, "conflict" },
        { ESTALE, "ESTALE", 409, "conflict" },
        { E2BIG, "E2BIG", 413, "too_large" },
        { EINVAL, "EINVAL", 400, "bad_request" },
        { ECANCELED, "ECANCELED", 503, "cancelled" },
        { EINTR, "EINTR", 500, "interrupted" },
        /* Named only, so that the error document says more than "E12". */
        { ENOMEM, "ENOMEM", 500, NULL },
        { EPERM, "EPERM", 500, NULL },
        { EEXIST, "EEXIST", 500, NULL },
        { EAGAIN, "EAGAIN", 500, NULL },
        { EOPNOTSUPP, "EOPNOTSUPP", 500, NULL },
        { ENOTDIR, "ENOTDIR", 500, NULL },
        { EISDIR, "EISDIR", 500, NULL },
        { EROFS, "EROFS", 500, NULL },
        { ELOOP, "ELOOP", 500, NULL },
        { ENAMETOOLONG, "ENAMETOOLONG", 500, NULL },
        { ENXIO, "ENXIO", 500, NULL },
        { ENODEV, "ENODEV", 500, NULL },
        { ERANGE, "ERANGE", 500, NULL },
        { EOVERFLOW, "EOVERFLOW", 500, NULL },
        { ENOSYS, "ENOSYS", 500, NULL },
        { EMFILE, "EMFILE", 500, NULL },
};

static int errno_abs(int err) {
        /* INT_MIN has no positive counterpart; it is no errno anyway. */
        return err < 0 ? (err == INT_MIN ? INT_MAX : -err) : err;
}

ApiError api_error_from_errno(int err) {
        err = errno_abs(err);
        for (size_t i = 0; i < ELEMENTSOF(errno_table); i++)
                if (errno_table[i].err == err && errno_table[i].code)
                        return (ApiError) { errno_table[i].status, errno_table[i].code };
        return (ApiError) { 500, "internal" };
}

const char *api_error_code_from_errno(int err) {
        return api_error_from_errno(err).code;
}

const char *api_errno_name(int err, char buf[static API_ERRNO_NAME_MAX]) {
        err = errno_abs(err);
        for (size_t i = 0; i < ELEMENTSOF(errno_table); i++)
                if (errno_table[i].err == err)
                        return errno_table[i].name;
        if (err == 0)
                return "0";
        (void) snprintf(buf, API_ERRNO_NAME_MAX, "E%d", err);
        return buf;
}

int api_format_error(const char *code, const char *message, int err, char **ret) {
        _cleanup_(json_decrefp) json_t *root = NULL, *e = NULL;
        _cleanup_free_ char *msg = NULL;
        char buf[API_ERRNO_NAME_MAX];

        if (!ret)
                return -EINVAL;
        msg = api_utf8_sanitize(message ?: (err != 0 ? strerror(errno_abs(err)) : "unknown error"), MESSAGE_MAX);
        if (!msg)
                return -ENOMEM;
        e = json_object();
        root = json_object();
        if (!e || !root)
                return -ENOMEM;
        /* code comes from us, but sanitise it too: a NULL from json_string()
         * must never be mistaken for an allocation failure. */
        _cleanup_free_ char *c = api_utf8_sanitize(code ?: "internal", QUOTE_MAX);
        if (!c)
                return -ENOMEM;
        if (json_object_set_new(e, "code", json_string(c)) < 0 ||
            json_object_set_new(e, "message", json_string(msg)) < 0)
                return -ENOMEM;
        if (err != 0 && json_object_set_new(e, "errno", json_string(api_errno_name(err, buf))) < 0)
                return -ENOMEM;
        if (json_object_set(root, "error", e) < 0)
                return -ENOMEM;

        char *s = json_dumps(root, JSON_PRESERVE_ORDER | JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}
