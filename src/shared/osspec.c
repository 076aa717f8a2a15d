/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodeconfig.h"
#include "kube-version.h"
#include "kube.h"
#include "oci.h"
#include "agent-api.h"
#include "osspec.h"
#include "strutil.h"
#include "tzfile.h"

/* How much of a user-supplied string an error message repeats. */

#define VERSION_MAX 64
#define URL_MAX 2048
#define BATCHES_MAX 100
#define SELECTOR_LABELS_MAX 64
/* Counts and seconds above this are refused: nobody means them, and adding
 * them to a unix time must not overflow. */
#define INT_FIELD_MAX 1000000000LL
/* A soak of more than a year is a typo. */
#define SOAK_SECONDS_MAX 31536000LL
/* An object name: a DNS-1123 subdomain. */
#define OBJECT_NAME_MAX 253

#define ZONEINFO_DIR TZ_ZONEINFO_DIR

/* The messages of the CEL rules (x-kubernetes-validations) in
 * deploy/crds/hull.dev_oses.yaml, word for word: a cluster that does not
 * evaluate CEL (or an object stored before a rule existed) gets the same
 * refusal from the operator, after the same field path. Change both
 * together; tests/kube/test-crd-schema.py checks that every rule's message
 * appears in this file. */
#define CEL_MSG_UPGRADE_IMAGE "spec.image.url and spec.image.sha256 are required for operation upgrade"
#define CEL_MSG_CONFIG_REQUIRED "spec.config is required for operation config"
#define CEL_MSG_MAX_UNAVAILABLE "must be a count from 0 to 1000000000 or a percentage from 0% to 100%"
#define CEL_MSG_BATCH_NODES "must be a count from 1 to 1000000000 or a percentage from 0% to 100%"
#define CEL_MSG_GATE_OR_PAUSE "manualGate and pauseSeconds exclude each other"
#define CEL_MSG_OCI_SHA256 "for an oci:// url, sha256 must be the digest the url is pinned by"
#define CEL_MSG_HOOK_ONE_OF "exactly one of exec and waitFor"
#define CEL_MSG_WAIT_ONE_OF "exactly one of label and annotation"
#define CEL_MSG_EXPRESSION_VALUES "values must be non-empty for In and NotIn and empty for Exists and DoesNotExist"
#define CEL_MSG_EMPTY_WINDOW "start and end must differ: an empty window never opens (leave the window out for always)"
#define CEL_MSG_MIN_IMAGE_AGE \
        "spec.image.created is required for operation upgrade when spec.strategy.minImageAgeSeconds is above 0"
#define CEL_MSG_AFTER_SELF "must name another OS object, not this one"

static const char *const spec_keys[] = { "config", "drain", "hooks", "image", "nodeSelector", "operation",
                                          "strategy", "verify", "version", "window" };
static const char *const hooks_keys[] = { "postBoot", "preDrain" };
static const char *const hook_keys[] = { "exec", "timeoutSeconds", "waitFor" };
static const char *const wait_keys[] = { "annotation", "label", "value" };
static const char *const verify_keys[] = { "podSelector", "timeoutSeconds" };
static const char *const selector_keys[] = { "matchExpressions", "matchLabels" };
static const char *const expression_keys[] = { "key", "operator", "values" };
static const char *const image_keys[] = { "created", "keyId", "kubeletVersion", "sha256", "url" };
static const char *const strategy_keys[] = { "after", "approvedBatches", "batches", "failureBudget",
                                              "maxUnavailable", "minImageAgeSeconds", "nodeTimeoutSeconds", "paused" };
static const char *const after_keys[] = { "os", "soakSeconds" };
static const char *const batch_keys[] = { "manualGate", "nodes", "pauseSeconds" };
static const char *const window_keys[] = { "days", "end", "start", "timeZone" };
static const char *const drain_keys[] = { "deleteEmptyDirData", "force", "gracePeriodSeconds", "timeoutSeconds" };

/* Index = struct tm's tm_wday. */
static const char *const day_names[7] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };

static const char *const operation_names[] = {
        [OS_OPERATION_UPGRADE] = "upgrade",
        [OS_OPERATION_ROLLBACK] = "rollback",
        [OS_OPERATION_CONFIG] = "config",
};

const char *os_operation_to_string(OsOperation o) {
        if ((unsigned) o >= ELEMENTSOF(operation_names))
                return NULL;
        return operation_names[o];
}

int os_operation_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(operation_names); i++)
                if (streq(s, operation_names[i]))
                        return (int) i;
        return -EINVAL;
}

/* ---- IntOrString ---- */

int64_t os_int_or_percent_resolve(const OsIntOrPercent *v, int64_t total, bool at_least_one) {
        int64_t r;

        if (total <= 0)
                return 0;
        if (!v)
                r = 0;
        else if (v->percent) {
                int64_t p = MAX(MIN(v->value, 100), 0);
                /* Round up: total is capped well below overflow by the callers
                 * (a node count), and p <= 100. */
                r = total > INT64_MAX / 100 ? total : (total * p + 99) / 100;
        } else
                r = MAX(v->value, 0);
        r = MIN(r, total);
        if (at_least_one && r < 1)
                r = 1;
        return r;
}

/* ---- freeing ---- */

void os_spec_done(OsSpec *s) {
        if (!s)
                return;
        free(s->node_selector);
        free(s->version);
        free(s->image.url);
        free(s->image.sha256);
        free(s->image.key_id);
        free(s->image.kubelet_version);
        free(s->after_os);
        free(s->batches);
        free(s->window.time_zone);
        json_decref(s->config);
        os_hooks_done(&s->hooks);
        os_verify_done(&s->verify);
        json_decref(s->hooks_json);
        json_decref(s->verify_json);
        *s = (OsSpec) {};
}

/* ---- error messages ---- */

/* Every validation failure is -EINVAL with a message naming the field. */
#define fail(error, ...) error_set((error), -EINVAL, __VA_ARGS__)

static const char *json_type_name(const json_t *v) {
        switch (json_typeof(v)) {
        case JSON_OBJECT:
                return "an object";
        case JSON_ARRAY:
                return "an array";
        case JSON_STRING:
                return "a string";
        case JSON_INTEGER:
                return "an integer";
        case JSON_REAL:
                return "a number";
        case JSON_TRUE:
        case JSON_FALSE:
                return "a boolean";
        case JSON_NULL:
                return "null";
        }
        return "unknown";
}

/* ---- field helpers ----
 *
 * A JSON null counts as absent: the API server drops nulls of defaulted
 * fields, and a client may send them for "unset". */

static json_t *member(json_t *obj, const char *key) {
        json_t *v = json_object_get(obj, key);
        return json_is_null(v) ? NULL : v;
}

static int check_keys(json_t *obj, const char *path, const char *const *keys, size_t n_keys, char **error) {
        const char *key;
        json_t *v;
        char q[STRING_QUOTE_SIZE];

        json_object_foreach(obj, key, v) {
                bool found = false;
                for (size_t i = 0; i < n_keys && !found; i++)
                        found = streq(key, keys[i]);
                if (!found)
                        return fail(error, "%s: unknown field %s", path, string_quote(q, key));
        }
        return 0;
}

static int get_object(json_t *obj, const char *key, const char *path, json_t **ret, char **error) {
        json_t *v = member(obj, key);

        if (v && !json_is_object(v))
                return fail(error, "%s.%s: must be an object, not %s", path, key, json_type_name(v));
        *ret = v;
        return 0;
}

static int get_string(json_t *obj, const char *key, const char *path, bool required, const char **ret,
                      char **error) {
        json_t *v = member(obj, key);

        if (!v) {
                if (required)
                        return fail(error, "%s.%s: required", path, key);
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v))
                return fail(error, "%s.%s: must be a string, not %s", path, key, json_type_name(v));
        if (strlen(json_string_value(v)) != json_string_length(v))
                return fail(error, "%s.%s: must not contain NUL characters", path, key);
        *ret = json_string_value(v);
        return 0;
}

static int get_bool(json_t *obj, const char *key, const char *path, bool def, bool *ret, char **error) {
        json_t *v = member(obj, key);

        if (!v) {
                *ret = def;
                return 0;
        }
        if (!json_is_boolean(v))
                return fail(error, "%s.%s: must be a boolean, not %s", path, key, json_type_name(v));
        *ret = json_is_true(v);
        return 0;
}

static int get_int(json_t *obj, const char *key, const char *path, int64_t def, int64_t min, int64_t *ret,
                   char **error) {
        json_t *v = member(obj, key);
        int64_t x;

        if (!v) {
                *ret = def;
                return 0;
        }
        if (!json_is_integer(v))
                return fail(error, "%s.%s: must be an integer, not %s", path, key, json_type_name(v));
        x = json_integer_value(v);
        if (x < min)
                return fail(error, "%s.%s: %" PRId64 " is less than %" PRId64, path, key, x, min);
        if (x > INT_FIELD_MAX)
                return fail(error, "%s.%s: %" PRId64 " is too large (at most %lld)", path, key, x, INT_FIELD_MAX);
        *ret = x;
        return 0;
}

/* "0%".."100%", no sign, no leading zeros, nothing after the '%': the same
 * as the CRD's CEL rules (the regex ^(100|[1-9]?[0-9])%$ for maxUnavailable,
 * the list of the 101 strings for batch sizes). */
static bool parse_percent(const char *s, int64_t *ret) {
        size_t l = strlen(s);
        int64_t v = 0;

        if (l < 2 || l > 4 || s[l - 1] != '%')
                return false;
        for (size_t i = 0; i < l - 1; i++) {
                if (!isdigit((unsigned char) s[i]))
                        return false;
                v = v * 10 + (s[i] - '0');
        }
        if (l - 1 > 1 && s[0] == '0')
                return false;
        if (v > 100)
                return false;
        *ret = v;
        return true;
}

/* A count from min_int to INT_FIELD_MAX, or a percentage. range_msg is the
 * message of the field's CEL rule (CEL_MSG_*), which says the same. */
static int get_int_or_percent(json_t *obj, const char *key, const char *path, int64_t min_int, bool required,
                              int64_t def, const char *range_msg, OsIntOrPercent *ret, char **error) {
        json_t *v = member(obj, key);
        char q[STRING_QUOTE_SIZE];

        if (!v) {
                if (required)
                        return fail(error, "%s.%s: required", path, key);
                *ret = (OsIntOrPercent) { .percent = false, .value = def };
                return 0;
        }
        if (json_is_integer(v)) {
                int64_t x = json_integer_value(v);
                if (x < min_int || x > INT_FIELD_MAX)
                        return fail(error, "%s.%s: %" PRId64 ": %s", path, key, x, range_msg);
                *ret = (OsIntOrPercent) { .percent = false, .value = x };
                return 0;
        }
        if (json_is_string(v)) {
                int64_t p;
                if (strlen(json_string_value(v)) != json_string_length(v) ||
                    !parse_percent(json_string_value(v), &p))
                        return fail(error, "%s.%s: %s: %s", path, key, string_quote(q, json_string_value(v)),
                                    range_msg);
                *ret = (OsIntOrPercent) { .percent = true, .value = p };
                return 0;
        }
        return fail(error, "%s.%s: must be an integer or a percentage string, not %s", path, key,
                    json_type_name(v));
}

/* ---- value checks ---- */

static bool version_ok(const char *s) {
        size_t l = strlen(s);

        if (l < 1 || l > VERSION_MAX || !isalnum((unsigned char) s[0]))
                return false;
        for (size_t i = 0; i < l; i++)
                if (!isalnum((unsigned char) s[i]) && !strchr("._+~-", s[i]))
                        return false;
        return true;
}

static bool hex_ok(const char *s, size_t len) {
        if (strlen(s) != len)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!isdigit((unsigned char) s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
                        return false;
        return true;
}

/* A DNS-1123 subdomain, as Kubernetes wants object names: at most 253
 * characters, dot-separated labels of [a-z0-9-] that begin and end with a
 * letter or digit. */
static bool object_name_ok(const char *s) {
        size_t l = strlen(s);

        if (l < 1 || l > OBJECT_NAME_MAX)
                return false;
        for (size_t i = 0; i < l; i++) {
                if (islower((unsigned char) s[i]) || isdigit((unsigned char) s[i]))
                        continue;
                if (s[i] != '-' && s[i] != '.')
                        return false;
                /* '-' inside a label, '.' between two labels: neither at
                 * either end nor next to a '.'. */
                if (i == 0 || i == l - 1 || s[i - 1] == '.' || s[i + 1] == '.' ||
                    (s[i] == '.' && (s[i - 1] == '-' || s[i + 1] == '-')))
                        return false;
        }
        return true;
}

/* Exactly "YYYY-MM-DDTHH:MM:SSZ" (the CRD's pattern), a real date, no
 * earlier than 1970: an image date, in the one form every tool prints the
 * same. */
static bool parse_created(const char *s, int64_t *ret) {
        static const char form[] = "dddd-dd-ddTdd:dd:ddZ";
        int64_t t;

        if (strlen(s) != sizeof(form) - 1)
                return false;
        for (size_t i = 0; i < sizeof(form) - 1; i++)
                if (form[i] == 'd' ? !isdigit((unsigned char) s[i]) : s[i] != form[i])
                        return false;
        if (s[17] > '5' || kube_parse_time(s, &t) < 0 || t < 0)
                return false;
        *ret = t;
        return true;
}

/* oci://HOST/REPO[:TAG]@sha256:HEX: the CRD's pattern, and oci.h's
 * grammar on top (the operator may be stricter than the schema, never
 * looser). */
static bool oci_url_ok(const char *s) {
        _cleanup_(oci_ref_done) OciRef ref = {};

        return strlen(s) <= URL_MAX && string_has_prefix(s, OCI_URL_PREFIX) && oci_url_parse(s, &ref, NULL) >= 0 &&
                oci_ref_is_pinned(&ref);
}

/* Whether s ends with infix + tail (the CEL endsWith). */
static bool string_has_suffix_after(const char *s, const char *infix, const char *tail) {
        size_t ls = strlen(s), li = strlen(infix), lt = strlen(tail);
        return ls >= li + lt && memcmp(s + ls - li - lt, infix, li) == 0 && memcmp(s + ls - lt, tail, lt) == 0;
}

static bool url_ok(const char *s) {
        size_t l = strlen(s);

        if (l > URL_MAX)
                return false;
        if (string_has_prefix(s, OCI_URL_PREFIX))
                return oci_url_ok(s);
        if (!string_has_prefix(s, "https://") && !string_has_prefix(s, "http://"))
                return false;
        if (s[strcspn(s, ":") + 3] == '\0') /* nothing after the scheme */
                return false;
        for (size_t i = 0; i < l; i++)
                if ((unsigned char) s[i] <= 0x20 || (unsigned char) s[i] >= 0x7f)
                        return false;
        return true;
}

/* Label keys and values as Kubernetes validates them: a value is empty or
 * at most 63 characters [A-Za-z0-9._-] beginning and ending alphanumeric;
 * a key is a name like that, optionally with a DNS subdomain prefix and a
 * '/'. */
static bool label_name_ok(const char *s, size_t len, bool allow_empty) {
        if (len == 0)
                return allow_empty;
        if (len > 63 || !isalnum((unsigned char) s[0]) || !isalnum((unsigned char) s[len - 1]))
                return false;
        for (size_t i = 0; i < len; i++)
                if (!isalnum((unsigned char) s[i]) && !strchr("._-", s[i]))
                        return false;
        return true;
}

static bool label_key_ok(const char *s) {
        const char *slash = strchr(s, '/');

        if (slash) {
                size_t pl = (size_t) (slash - s);
                if (pl == 0 || pl > 253)
                        return false;
                for (size_t i = 0; i < pl; i++)
                        if (!(islower((unsigned char) s[i]) || isdigit((unsigned char) s[i]) || strchr(".-", s[i])))
                                return false;
                if (!isalnum((unsigned char) s[0]) || !isalnum((unsigned char) s[pl - 1]))
                        return false;
                s = slash + 1;
        }
        return label_name_ok(s, strlen(s), false);
}

bool os_time_zone_is_valid(const char *name) {
        _cleanup_(tz_freep) TimeZone *z = NULL;

        /* The name rules live in tzfile.c (no "..", "//", leading "/",
         * below ZONEINFO_DIR); "UTC" needs no file. A TZ string like
         * "CET-1CEST" is not a name and fails the lookup. The file is
         * parsed completely, so a zone accepted here is one
         * os_window_open() can use. */
        return tz_name_is_valid(name) && tz_load(name, &z) >= 0;
}

/* "HH:MM", 00:00..23:59, exactly five characters. */
static bool parse_hhmm(const char *s, int *ret) {
        if (strlen(s) != 5 || s[2] != ':')
                return false;
        for (size_t i = 0; i < 5; i++)
                if (i != 2 && !isdigit((unsigned char) s[i]))
                        return false;
        int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
        if (h > 23 || m > 59)
                return false;
        *ret = h * 60 + m;
        return true;
}

/* ---- sections ---- */

static int parse_node_selector(json_t *spec, OsSpec *s, char **error) {
        json_t *sel = member(spec, "nodeSelector"), *v;
        const char *key;
        char q[STRING_QUOTE_SIZE];
        const char **keys = NULL;
        size_t n = 0, len = 0;
        char *out, *p;

        if (sel && !json_is_object(sel))
                return fail(error, "spec.nodeSelector: must be an object, not %s", json_type_name(sel));
        if (sel && json_object_size(sel) > SELECTOR_LABELS_MAX)
                return fail(error, "spec.nodeSelector: more than %d labels", SELECTOR_LABELS_MAX);

        if (sel) {
                keys = calloc(json_object_size(sel) + 1, sizeof(char *));
                if (!keys)
                        return -ENOMEM;
                json_object_foreach(sel, key, v) {
                        if (!label_key_ok(key)) {
                                free(keys);
                                return fail(error, "spec.nodeSelector: %s is not a valid label key", string_quote(q, key));
                        }
                        if (!json_is_string(v)) {
                                free(keys);
                                return fail(error, "spec.nodeSelector.%s: must be a string, not %s", key,
                                            json_type_name(v));
                        }
                        if (strlen(json_string_value(v)) != json_string_length(v) ||
                            !label_name_ok(json_string_value(v), json_string_length(v), true)) {
                                free(keys);
                                return fail(error, "spec.nodeSelector.%s: %s is not a valid label value", key,
                                            string_quote(q, json_string_value(v)));
                        }
                        keys[n++] = key;
                        len += strlen(key) + json_string_length(v) + 2;
                }
                /* Sorted, so that the same map always gives the same string. */
                for (size_t i = 1; i < n; i++)
                        for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
                                const char *t = keys[j];
                                keys[j] = keys[j - 1];
                                keys[j - 1] = t;
                        }
        }

        out = p = malloc(len + 1);
        if (!out) {
                free(keys);
                return -ENOMEM;
        }
        *p = '\0';
        for (size_t i = 0; i < n; i++) {
                const char *val = json_string_value(json_object_get(sel, keys[i]));
                size_t kl = strlen(keys[i]), vl = strlen(val);
                if (i > 0)
                        *p++ = ',';
                memcpy(p, keys[i], kl);
                p += kl;
                *p++ = '=';
                memcpy(p, val, vl);
                p += vl;
                *p = '\0';
        }
        free(keys);
        s->node_selector = out;
        return 0;
}

static int dup_string(const char *v, char **ret) {
        if (!v) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(v);
        return *ret ? 0 : -ENOMEM;
}

static int parse_image(json_t *spec, OsSpec *s, char **error) {
        json_t *img;
        const char *url, *sha, *key, *kubelet, *created;
        char q[STRING_QUOTE_SIZE];
        int r;

        r = get_object(spec, "image", "spec", &img, error);
        if (r < 0)
                return r;
        /* The CEL rule on spec, and its message after the path "spec". */
        if (s->operation == OS_OPERATION_UPGRADE && (!img || !member(img, "url") || !member(img, "sha256")))
                return fail(error, "spec: " CEL_MSG_UPGRADE_IMAGE);
        if (!img)
                return 0;
        r = check_keys(img, "spec.image", image_keys, ELEMENTSOF(image_keys), error);
        if (r < 0)
                return r;

        bool need = s->operation == OS_OPERATION_UPGRADE;
        if ((r = get_string(img, "url", "spec.image", need, &url, error)) < 0 ||
            (r = get_string(img, "sha256", "spec.image", need, &sha, error)) < 0 ||
            (r = get_string(img, "keyId", "spec.image", false, &key, error)) < 0 ||
            (r = get_string(img, "kubeletVersion", "spec.image", false, &kubelet, error)) < 0 ||
            (r = get_string(img, "created", "spec.image", false, &created, error)) < 0)
                return r;
        if (url && !url_ok(url))
                return fail(error,
                            "spec.image.url: %s is not an http:// or https:// URL or an oci:// reference pinned by "
                            "digest (oci://HOST/REPO@sha256:HEX)",
                            string_quote(q, url));
        if (sha && !hex_ok(sha, 64))
                return fail(error, "spec.image.sha256: %s is not 64 lowercase hexadecimal digits", string_quote(q, sha));
        /* The CEL rule on spec.image. */
        if (url && string_has_prefix(url, OCI_URL_PREFIX) &&
            (!sha || !string_has_suffix_after(url, "@sha256:", sha)))
                return fail(error, "spec.image: " CEL_MSG_OCI_SHA256);
        if (key && !hex_ok(key, 16))
                return fail(error, "spec.image.keyId: %s is not 16 lowercase hexadecimal digits", string_quote(q, key));
        if (kubelet && kube_version_parse(kubelet, NULL) < 0)
                return fail(error, "spec.image.kubeletVersion: %s is not a Kubernetes version such as v1.32.0",
                            string_quote(q, kubelet));
        if (created && !parse_created(created, &s->image.created))
                return fail(error,
                            "spec.image.created: %s is not a UTC time YYYY-MM-DDTHH:MM:SSZ (RFC 3339) from 1970 on",
                            string_quote(q, created));
        s->image.has_created = created != NULL;

        if ((r = dup_string(url, &s->image.url)) < 0 || (r = dup_string(sha, &s->image.sha256)) < 0 ||
            (r = dup_string(key, &s->image.key_id)) < 0 || (r = dup_string(kubelet, &s->image.kubelet_version)) < 0)
                return r;
        return 0;
}

/* spec.strategy.after: {os: NAME, soakSeconds: N}. Whether NAME is the
 * object itself is os_spec_check_name()'s to say. */
static int parse_after(json_t *st, OsSpec *s, char **error) {
        json_t *after;
        const char *os;
        char q[STRING_QUOTE_SIZE];
        int r;

        r = get_object(st, "after", "spec.strategy", &after, error);
        if (r < 0 || !after)
                return r;
        r = check_keys(after, "spec.strategy.after", after_keys, ELEMENTSOF(after_keys), error);
        if (r < 0)
                return r;
        if ((r = get_string(after, "os", "spec.strategy.after", true, &os, error)) < 0 ||
            (r = get_int(after, "soakSeconds", "spec.strategy.after", 0, 0, &s->after_soak_seconds, error)) < 0)
                return r;
        if (s->after_soak_seconds > SOAK_SECONDS_MAX)
                return fail(error, "spec.strategy.after.soakSeconds: %" PRId64 " is too large (at most %lld, a year)",
                            s->after_soak_seconds, SOAK_SECONDS_MAX);
        if (!object_name_ok(os))
                return fail(error,
                            "spec.strategy.after.os: %s is not an OS object name (a DNS-1123 subdomain: at most %d "
                            "lowercase letters, digits, '-' and '.')",
                            string_quote(q, os), OBJECT_NAME_MAX);
        return dup_string(os, &s->after_os);
}

static int parse_strategy(json_t *spec, OsSpec *s, char **error) {
        json_t *st, *batches;
        int r;

        r = get_object(spec, "strategy", "spec", &st, error);
        if (r < 0)
                return r;
        if (st) {
                r = check_keys(st, "spec.strategy", strategy_keys, ELEMENTSOF(strategy_keys), error);
                if (r < 0)
                        return r;
        }
        /* get_*() on a NULL object return the defaults. */
        if ((r = get_int_or_percent(st, "maxUnavailable", "spec.strategy", 0, false, 1, CEL_MSG_MAX_UNAVAILABLE,
                                    &s->max_unavailable, error)) < 0 ||
            (r = get_int(st, "approvedBatches", "spec.strategy", 0, 0, &s->approved_batches, error)) < 0 ||
            (r = get_bool(st, "paused", "spec.strategy", false, &s->paused, error)) < 0 ||
            (r = get_int(st, "failureBudget", "spec.strategy", 1, 0, &s->failure_budget, error)) < 0 ||
            (r = get_int(st, "nodeTimeoutSeconds", "spec.strategy", 3600, 60, &s->node_timeout_seconds, error)) <
                    0 ||
            (r = get_int(st, "minImageAgeSeconds", "spec.strategy", 0, 0, &s->min_image_age_seconds, error)) < 0 ||
            (r = parse_after(st, s, error)) < 0)
                return r;
        /* The CEL rule on spec (parse_image() ran before). */
        if (s->operation == OS_OPERATION_UPGRADE && s->min_image_age_seconds > 0 && !s->image.has_created)
                return fail(error, "spec: " CEL_MSG_MIN_IMAGE_AGE);

        batches = member(st, "batches");
        if (!batches)
                return 0;
        if (!json_is_array(batches))
                return fail(error, "spec.strategy.batches: must be an array, not %s", json_type_name(batches));
        if (json_array_size(batches) > BATCHES_MAX)
                return fail(error, "spec.strategy.batches: more than %d batches", BATCHES_MAX);
        if (json_array_size(batches) == 0)
                return 0;

        s->batches = calloc(json_array_size(batches), sizeof(OsBatch));
        if (!s->batches)
                return -ENOMEM;
        for (size_t i = 0; i < json_array_size(batches); i++) {
                json_t *b = json_array_get(batches, i);
                char path[64];
                bool manual;
                int64_t pause;

                (void) snprintf(path, sizeof path, "spec.strategy.batches[%zu]", i);
                if (!json_is_object(b))
                        return fail(error, "%s: must be an object, not %s", path, json_type_name(b));
                r = check_keys(b, path, batch_keys, ELEMENTSOF(batch_keys), error);
                if (r < 0)
                        return r;
                OsBatch *ob = s->batches + s->n_batches;
                if ((r = get_int_or_percent(b, "nodes", path, 1, true, 0, CEL_MSG_BATCH_NODES, &ob->nodes, error)) <
                            0 ||
                    (r = get_bool(b, "manualGate", path, false, &manual, error)) < 0 ||
                    (r = get_int(b, "pauseSeconds", path, 0, 0, &pause, error)) < 0)
                        return r;
                if (manual && pause > 0)
                        return fail(error, "%s: " CEL_MSG_GATE_OR_PAUSE, path);
                ob->pause = manual ? OS_PAUSE_MANUAL : pause > 0 ? OS_PAUSE_DURATION : OS_PAUSE_NONE;
                ob->pause_seconds = pause;
                s->n_batches++;
        }
        return 0;
}

static int parse_window(json_t *spec, OsSpec *s, char **error) {
        json_t *w, *days;
        const char *start, *end, *tz;
        char q[STRING_QUOTE_SIZE];
        int r;

        r = get_object(spec, "window", "spec", &w, error);
        if (r < 0)
                return r;
        if (!w)
                return 0; /* always open */
        r = check_keys(w, "spec.window", window_keys, ELEMENTSOF(window_keys), error);
        if (r < 0)
                return r;

        s->window.set = true;
        days = member(w, "days");
        if (!days)
                s->window.days = 0x7f;
        else {
                if (!json_is_array(days))
                        return fail(error, "spec.window.days: must be an array, not %s", json_type_name(days));
                if (json_array_size(days) == 0)
                        return fail(error, "spec.window.days: must name at least one day (leave it out for every day)");
                for (size_t i = 0; i < json_array_size(days); i++) {
                        json_t *d = json_array_get(days, i);
                        size_t k;

                        if (!json_is_string(d))
                                return fail(error, "spec.window.days[%zu]: must be a string, not %s", i,
                                            json_type_name(d));
                        for (k = 0; k < 7; k++)
                                if (streq(json_string_value(d), day_names[k]))
                                        break;
                        if (k == 7)
                                return fail(error, "spec.window.days[%zu]: %s is not one of Mon Tue Wed Thu Fri Sat Sun",
                                            i, string_quote(q, json_string_value(d)));
                        if (s->window.days & (1u << k))
                                return fail(error, "spec.window.days[%zu]: %s given twice", i, day_names[k]);
                        s->window.days |= (uint8_t) (1u << k);
                }
        }

        if ((r = get_string(w, "start", "spec.window", true, &start, error)) < 0 ||
            (r = get_string(w, "end", "spec.window", true, &end, error)) < 0 ||
            (r = get_string(w, "timeZone", "spec.window", false, &tz, error)) < 0)
                return r;
        if (!parse_hhmm(start, &s->window.start_minute))
                return fail(error, "spec.window.start: %s is not a time HH:MM between 00:00 and 23:59", string_quote(q, start));
        if (!parse_hhmm(end, &s->window.end_minute))
                return fail(error, "spec.window.end: %s is not a time HH:MM between 00:00 and 23:59", string_quote(q, end));
        if (s->window.start_minute == s->window.end_minute)
                return fail(error, "spec.window: " CEL_MSG_EMPTY_WINDOW);
        if (!tz)
                tz = "UTC";
        if (!os_time_zone_is_valid(tz))
                return fail(error, "spec.window.timeZone: %s is not a time zone under " ZONEINFO_DIR, string_quote(q, tz));
        return dup_string(tz, &s->window.time_zone);
}

static int parse_drain(json_t *spec, OsSpec *s, char **error) {
        json_t *d;
        int r;

        r = get_object(spec, "drain", "spec", &d, error);
        if (r < 0)
                return r;
        if (d) {
                r = check_keys(d, "spec.drain", drain_keys, ELEMENTSOF(drain_keys), error);
                if (r < 0)
                        return r;
        }
        if ((r = get_int(d, "timeoutSeconds", "spec.drain", 600, 0, &s->drain.timeout_seconds, error)) < 0 ||
            (r = get_int(d, "gracePeriodSeconds", "spec.drain", -1, -1, &s->drain.grace_period_seconds, error)) < 0 ||
            (r = get_bool(d, "deleteEmptyDirData", "spec.drain", false, &s->drain.delete_empty_dir_data, error)) <
                    0 ||
            (r = get_bool(d, "force", "spec.drain", false, &s->drain.force, error)) < 0)
                return r;
        return 0;
}

/* ---- hooks and the post-boot gate ---- */

static void hook_list_free(OsHook *l, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(l[i].name);
                free(l[i].value);
        }
        free(l);
}

void os_hooks_done(OsHooks *h) {
        if (!h)
                return;
        hook_list_free(h->pre_drain, h->n_pre_drain);
        hook_list_free(h->post_boot, h->n_post_boot);
        *h = (OsHooks) {};
}

void os_verify_done(OsVerify *v) {
        if (!v)
                return;
        free(v->pod_selector);
        *v = (OsVerify) {};
}

char *os_hook_describe(const OsHook *h) {
        char *s = NULL;
        int r = h->kind == OS_HOOK_EXEC ? asprintf(&s, "exec %s", h->name)
                                        : asprintf(&s, "wait for %s %s%s%s",
                                                   h->kind == OS_HOOK_WAIT_LABEL ? "label" : "annotation", h->name,
                                                   h->value ? "=" : "", h->value ?: "");
        return r < 0 ? NULL : s;
}

static int parse_hook(json_t *h, const char *path, OsHook *ret, char **error) {
        json_t *wait;
        const char *exec = NULL, *key = NULL, *value = NULL;
        char q[STRING_QUOTE_SIZE];
        int r;

        if (!json_is_object(h))
                return fail(error, "%s: must be an object, not %s", path, json_type_name(h));
        if ((r = check_keys(h, path, hook_keys, ELEMENTSOF(hook_keys), error)) < 0 ||
            (r = get_string(h, "exec", path, false, &exec, error)) < 0 ||
            (r = get_object(h, "waitFor", path, &wait, error)) < 0 ||
            (r = get_int(h, "timeoutSeconds", path, OS_HOOK_TIMEOUT_DEFAULT, 1, &ret->timeout_seconds, error)) < 0)
                return r;
        if (!exec == !wait)
                return fail(error, "%s: " CEL_MSG_HOOK_ONE_OF, path);
        if (ret->timeout_seconds > OS_HOOK_TIMEOUT_MAX)
                return fail(error, "%s.timeoutSeconds: %" PRId64 ": must be at most %d", path, ret->timeout_seconds,
                            OS_HOOK_TIMEOUT_MAX);
        if (exec) {
                /* The agent's own rule (POST /v1/hook): a file name in hooks.d, never a path. */
                if (!api_hook_name_is_valid(exec))
                        return fail(error, "%s.exec: %s is not a hook name (1 to 64 characters, letters, digits "
                                    "and ._-, beginning with a letter or digit; a file in /etc/hull/hooks.d or "
                                    "/usr/lib/hull/hooks.d)", path, string_quote(q, exec));
                ret->kind = OS_HOOK_EXEC;
                return dup_string(exec, &ret->name);
        }
        _cleanup_free_ char *wpath = NULL;
        if (asprintf(&wpath, "%s.waitFor", path) < 0)
                return -ENOMEM;
        const char *label = NULL, *annotation = NULL;
        if ((r = check_keys(wait, wpath, wait_keys, ELEMENTSOF(wait_keys), error)) < 0 ||
            (r = get_string(wait, "label", wpath, false, &label, error)) < 0 ||
            (r = get_string(wait, "annotation", wpath, false, &annotation, error)) < 0 ||
            (r = get_string(wait, "value", wpath, false, &value, error)) < 0)
                return r;
        if (!label == !annotation)
                return fail(error, "%s: " CEL_MSG_WAIT_ONE_OF, wpath);
        key = label ?: annotation;
        if (!label_key_ok(key))
                return fail(error, "%s.%s: %s is not a valid %s key", wpath, label ? "label" : "annotation",
                            string_quote(q, key), label ? "label" : "annotation");
        if (value && (label ? !label_name_ok(value, strlen(value), true) : strlen(value) > 1024))
                return fail(error, "%s.value: %s is not a valid %s value", wpath, string_quote(q, value),
                            label ? "label" : "annotation");
        ret->kind = label ? OS_HOOK_WAIT_LABEL : OS_HOOK_WAIT_ANNOTATION;
        if ((r = dup_string(key, &ret->name)) < 0 || (r = dup_string(value, &ret->value)) < 0)
                return r;
        return 0;
}

static int parse_hook_list(json_t *hooks, const char *key, const char *path, OsHook **ret, size_t *ret_n,
                           char **error) {
        json_t *l = member(hooks, key), *h;
        size_t i;
        int r;

        if (!l)
                return 0;
        if (!json_is_array(l))
                return fail(error, "%s.%s: must be an array, not %s", path, key, json_type_name(l));
        if (json_array_size(l) > OS_HOOKS_MAX)
                return fail(error, "%s.%s: more than %d hooks", path, key, OS_HOOKS_MAX);
        if (json_array_size(l) == 0)
                return 0;
        OsHook *list = calloc(json_array_size(l), sizeof(OsHook));
        if (!list)
                return -ENOMEM;
        json_array_foreach(l, i, h) {
                _cleanup_free_ char *hp = NULL;
                r = asprintf(&hp, "%s.%s[%zu]", path, key, i) < 0 ? -ENOMEM : parse_hook(h, hp, &list[i], error);
                if (r < 0) {
                        hook_list_free(list, i + 1);
                        return r;
                }
        }
        *ret = list;
        *ret_n = json_array_size(l);
        return 0;
}

int os_hooks_parse(json_t *hooks, const char *path, OsHooks *ret, char **ret_error) {
        _cleanup_free_ char *error = NULL;
        OsHooks h = {};
        int r = 0;

        if (hooks && !json_is_null(hooks)) {
                if (!json_is_object(hooks))
                        r = fail(&error, "%s: must be an object, not %s", path, json_type_name(hooks));
                if (r >= 0)
                        r = check_keys(hooks, path, hooks_keys, ELEMENTSOF(hooks_keys), &error);
                if (r >= 0)
                        r = parse_hook_list(hooks, "preDrain", path, &h.pre_drain, &h.n_pre_drain, &error);
                if (r >= 0)
                        r = parse_hook_list(hooks, "postBoot", path, &h.post_boot, &h.n_post_boot, &error);
        }
        if (r < 0) {
                os_hooks_done(&h);
                if (ret_error)
                        *ret_error = TAKE_PTR(error);
                return r;
        }
        *ret = h;
        return 0;
}

/* Append s to *buf (a growing string). */
static int append(char **buf, const char *s) {
        size_t a = *buf ? strlen(*buf) : 0, b = strlen(s);
        char *n = realloc(*buf, a + b + 1);
        if (!n)
                return -ENOMEM;
        memcpy(n + a, s, b + 1);
        *buf = n;
        return 0;
}

/* A metav1.LabelSelector as a selector string ("a=b,c in (x,y),!d"), which
 * is what list calls take and kube_selector_matches() evaluates. */
static int parse_label_selector(json_t *sel, const char *path, char **ret, char **error) {
        _cleanup_free_ char *out = NULL;
        json_t *labels, *exprs = member(sel, "matchExpressions"), *v, *e;
        const char *key;
        char q[STRING_QUOTE_SIZE];
        size_t i;
        int r;

        if (!json_is_object(sel))
                return fail(error, "%s: must be an object, not %s", path, json_type_name(sel));
        if ((r = check_keys(sel, path, selector_keys, ELEMENTSOF(selector_keys), error)) < 0 ||
            (r = get_object(sel, "matchLabels", path, &labels, error)) < 0)
                return r;
        if (append(&out, "") < 0)
                return -ENOMEM;
        if (labels && json_object_size(labels) > SELECTOR_LABELS_MAX)
                return fail(error, "%s.matchLabels: more than %d labels", path, SELECTOR_LABELS_MAX);
        json_object_foreach(labels, key, v) {
                if (!label_key_ok(key))
                        return fail(error, "%s.matchLabels: %s is not a valid label key", path, string_quote(q, key));
                if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
                    !label_name_ok(json_string_value(v), json_string_length(v), true))
                        return fail(error, "%s.matchLabels.%s: not a valid label value", path, key);
                if ((*out && append(&out, ",") < 0) || append(&out, key) < 0 || append(&out, "=") < 0 ||
                    append(&out, json_string_value(v)) < 0)
                        return -ENOMEM;
        }
        if (exprs && (!json_is_array(exprs) || json_array_size(exprs) > 16))
                return fail(error, "%s.matchExpressions: must be an array of at most 16 expressions", path);
        json_array_foreach(exprs, i, e) {
                _cleanup_free_ char *ep = NULL;
                const char *k, *op;
                json_t *vals;
                size_t j;
                if (asprintf(&ep, "%s.matchExpressions[%zu]", path, i) < 0)
                        return -ENOMEM;
                if (!json_is_object(e))
                        return fail(error, "%s: must be an object, not %s", ep, json_type_name(e));
                if ((r = check_keys(e, ep, expression_keys, ELEMENTSOF(expression_keys), error)) < 0 ||
                    (r = get_string(e, "key", ep, true, &k, error)) < 0 ||
                    (r = get_string(e, "operator", ep, true, &op, error)) < 0)
                        return r;
                if (!label_key_ok(k))
                        return fail(error, "%s.key: %s is not a valid label key", ep, string_quote(q, k));
                bool set = streq(op, "In") || streq(op, "NotIn");
                if (!set && !streq(op, "Exists") && !streq(op, "DoesNotExist"))
                        return fail(error, "%s.operator: %s is not one of In, NotIn, Exists, DoesNotExist", ep,
                                    string_quote(q, op));
                vals = member(e, "values");
                if (vals && (!json_is_array(vals) || json_array_size(vals) > 64))
                        return fail(error, "%s.values: must be an array of at most 64 values", ep);
                if (set != (vals && json_array_size(vals) > 0))
                        return fail(error, "%s: " CEL_MSG_EXPRESSION_VALUES, ep);
                if ((*out && append(&out, ",") < 0) || (streq(op, "DoesNotExist") && append(&out, "!") < 0) ||
                    append(&out, k) < 0)
                        return -ENOMEM;
                if (set && append(&out, streq(op, "In") ? " in (" : " notin (") < 0)
                        return -ENOMEM;
                json_array_foreach(vals, j, v) {
                        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
                            !label_name_ok(json_string_value(v), json_string_length(v), true))
                                return fail(error, "%s.values[%zu]: not a valid label value", ep, j);
                        if ((j > 0 && append(&out, ",") < 0) || append(&out, json_string_value(v)) < 0)
                                return -ENOMEM;
                }
                if (set && append(&out, ")") < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(out);
        return 0;
}

int os_verify_parse(json_t *verify, const char *path, OsVerify *ret, char **ret_error) {
        _cleanup_free_ char *error = NULL, *sel_path = NULL;
        OsVerify v = { .timeout_seconds = OS_VERIFY_TIMEOUT_DEFAULT };
        json_t *sel = NULL;
        int r = 0;

        if (verify && json_is_null(verify))
                verify = NULL;
        if (verify && !json_is_object(verify))
                r = fail(&error, "%s: must be an object, not %s", path, json_type_name(verify));
        if (r >= 0 && verify)
                r = check_keys(verify, path, verify_keys, ELEMENTSOF(verify_keys), &error);
        if (r >= 0)
                r = get_int(verify, "timeoutSeconds", path, OS_VERIFY_TIMEOUT_DEFAULT, OS_VERIFY_TIMEOUT_MIN,
                            &v.timeout_seconds, &error);
        if (r >= 0 && v.timeout_seconds > OS_HOOK_TIMEOUT_MAX)
                r = fail(&error, "%s.timeoutSeconds: %" PRId64 ": must be at most %d", path, v.timeout_seconds,
                         OS_HOOK_TIMEOUT_MAX);
        if (r >= 0 && verify)
                sel = member(verify, "podSelector");
        if (r >= 0 && sel)
                r = asprintf(&sel_path, "%s.podSelector", path) < 0 ? -ENOMEM
                                                                   : parse_label_selector(sel, sel_path, &v.pod_selector, &error);
        if (r < 0) {
                os_verify_done(&v);
                if (ret_error)
                        *ret_error = TAKE_PTR(error);
                return r;
        }
        *ret = v;
        return 0;
}

static int parse_hooks_and_verify(json_t *spec, OsSpec *s, char **error) {
        json_t *h = member(spec, "hooks"), *v = member(spec, "verify");
        int r;

        if ((r = os_hooks_parse(h, "spec.hooks", &s->hooks, error)) < 0 ||
            (r = os_verify_parse(v, "spec.verify", &s->verify, error)) < 0)
                return r;
        if (h && !(s->hooks_json = json_deep_copy(h)))
                return -ENOMEM;
        if (v && !(s->verify_json = json_deep_copy(v)))
                return -ENOMEM;
        return 0;
}

static int parse_config(json_t *spec, OsSpec *s, char **error) {
        _cleanup_(node_config_freep) NodeConfig *c = NULL;
        _cleanup_free_ char *text = NULL, *cerr = NULL;
        json_t *cfg;
        int r;

        r = get_object(spec, "config", "spec", &cfg, error);
        if (r < 0)
                return r;
        if (!cfg) {
                if (s->operation == OS_OPERATION_CONFIG)
                        return fail(error, "spec: " CEL_MSG_CONFIG_REQUIRED);
                return 0;
        }
        if (!member(cfg, "generation"))
                return fail(error, "spec.config.generation: required");

        text = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
        if (!text)
                return -ENOMEM;
        r = node_config_parse(text, strlen(text), &c, &cerr);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail(error, "spec.config.%s", cerr ?: "invalid node config");
        if (c->generation > (uint64_t) INT64_MAX)
                return fail(error, "spec.config.generation: too large");

        s->config = json_deep_copy(cfg);
        if (!s->config)
                return -ENOMEM;
        s->config_generation = (int64_t) c->generation;
        return 0;
}

static int parse_all(json_t *spec, OsSpec *s, char **error) {
        const char *version, *op;
        char q[STRING_QUOTE_SIZE];
        int r;

        if (!json_is_object(spec))
                return fail(error, "spec: must be an object, not %s", spec ? json_type_name(spec) : "missing");
        r = check_keys(spec, "spec", spec_keys, ELEMENTSOF(spec_keys), error);
        if (r < 0)
                return r;

        r = get_string(spec, "operation", "spec", true, &op, error);
        if (r < 0)
                return r;
        r = os_operation_from_string(op);
        if (r < 0)
                return fail(error, "spec.operation: %s is not one of upgrade, rollback, config", string_quote(q, op));
        s->operation = (OsOperation) r;

        r = get_string(spec, "version", "spec", true, &version, error);
        if (r < 0)
                return r;
        if (!version_ok(version))
                return fail(error,
                            "spec.version: %s is not a version (1 to %d characters, letters, digits and ._+~-, "
                            "beginning with a letter or digit)",
                            string_quote(q, version), VERSION_MAX);
        r = dup_string(version, &s->version);
        if (r < 0)
                return r;

        if ((r = parse_node_selector(spec, s, error)) < 0 || (r = parse_image(spec, s, error)) < 0 ||
            (r = parse_strategy(spec, s, error)) < 0 || (r = parse_window(spec, s, error)) < 0 ||
            (r = parse_drain(spec, s, error)) < 0 || (r = parse_config(spec, s, error)) < 0 ||
            (r = parse_hooks_and_verify(spec, s, error)) < 0)
                return r;
        return 0;
}

int os_spec_parse(json_t *spec, OsSpec *ret, char **ret_error) {
        _cleanup_free_ char *error = NULL;
        OsSpec s = {};
        int r;

        if (!ret)
                return -EINVAL;
        r = parse_all(spec, &s, &error);
        if (r < 0) {
                os_spec_done(&s);
                if (ret_error && error)
                        *ret_error = TAKE_PTR(error);
                return r;
        }
        *ret = s;
        return 0;
}

int os_spec_check_name(const OsSpec *s, const char *name, char **ret_error) {
        char q[STRING_QUOTE_SIZE];

        if (!s || !name)
                return -EINVAL;
        /* The CEL rule at the root of the schema (fieldPath
         * .spec.strategy.after.os). */
        if (s->after_os && streq(s->after_os, name))
                return fail(ret_error, "spec.strategy.after.os: %s: " CEL_MSG_AFTER_SELF, string_quote(q, name));
        return 0;
}

/* ---- maintenance windows ----
 *
 * Evaluated on the local wall clock of the window's time zone: a window
 * 02:00-04:00 means what a clock on the wall there shows. The zone comes
 * from its compiled file under ZONEINFO_DIR, read and converted by tzfile.c
 * on every call, not through glibc: glibc converts only through the
 * process-wide TZ variable, and setting that with setenv() races the
 * getenv() calls of other threads (libcurl reads proxy variables on every
 * transfer in hull-operator). Nothing here touches the environment or any
 * global state, so os_window_open() is safe on any thread. "UTC" needs no
 * file; every other zone needs tzdata installed (docs/CRD.md). */

/* Opens the window's zone; NULL is UTC. Anything that cannot be used is
 * the caller's unknown time zone. */
static int window_zone(const char *name, TimeZone **ret) {
        int r = tz_load(name ?: "UTC", ret);
        if (r == -ENOMEM)
                return r;
        return r < 0 ? -EINVAL : 0;
}

/* The wall clock at t as minutes since 1970-01-01 00:00 of that clock
 * (seconds dropped, rounding down before 1970 too). */
static bool wall_minutes_at(const TimeZone *z, int64_t t, int64_t *ret) {
        int32_t off;
        int64_t s;

        if (tz_utc_offset(z, t, &off) < 0)
                return false;
        s = t + off;
        *ret = s >= 0 ? s / 60 : -((-s + 59) / 60);
        return true;
}

/* 1970-01-01 was a Thursday (tm_wday 4). */
static int weekday_of_day(int64_t day) {
        int64_t w = (day + 4) % 7;
        return (int) (w < 0 ? w + 7 : w);
}

static bool window_contains_wall(const OsWindow *w, int64_t wall) {
        int64_t day = wall >= 0 ? wall / 1440 : -((-wall + 1439) / 1440);
        int64_t len = w->end_minute > w->start_minute ? w->end_minute - w->start_minute
                                                      : 1440 - w->start_minute + w->end_minute;

        /* An instance starts on 'day' or, crossing midnight, the day before. */
        for (int64_t d = day - 1; d <= day; d++) {
                int64_t s = d * 1440 + w->start_minute;
                if ((w->days & (1u << weekday_of_day(d))) && wall >= s && wall < s + len)
                        return true;
        }
        return false;
}

static bool window_open_at(const TimeZone *z, const OsWindow *w, int64_t t, bool *ok) {
        int64_t wall;

        if (!wall_minutes_at(z, t, &wall)) {
                *ok = false;
                return false;
        }
        return window_contains_wall(w, wall);
}

/* The instant at which the wall clock reads day*1440+minute, for a window
 * opening: a wall time that happens twice (the repeated hour of an autumn
 * change) gives its first occurrence, or the second if the first is not
 * after 'after' (so a closed window still finds the second pass); a wall
 * time that does not exist (skipped by a spring change) gives the change,
 * the first instant whose wall clock reads that time or later. */
static bool wall_to_unix(const TimeZone *z, int64_t wall, int64_t after, int64_t *ret) {
        int64_t earliest, latest;
        int n;

        if (wall < -TZ_TIME_LIMIT / 60 || wall > TZ_TIME_LIMIT / 60)
                return false;
        n = tz_local_to_utc(z, wall * 60, &earliest, &latest);
        if (n < 0)
                return false;
        *ret = n >= 2 && earliest <= after ? latest : earliest;
        return true;
}

int os_window_open(const OsWindow *w, int64_t t, bool *ret_open, int64_t *ret_next_open) {
        _cleanup_(tz_freep) TimeZone *z = NULL;
        bool ok = true, open;
        int64_t next = 0;
        int r;

        if (!w || !ret_open)
                return -EINVAL;
        if (!w->set) {
                *ret_open = true;
                if (ret_next_open)
                        *ret_next_open = 0;
                return 0;
        }
        if (w->days == 0 || w->start_minute < 0 || w->start_minute >= 1440 || w->end_minute < 0 ||
            w->end_minute >= 1440 || w->start_minute == w->end_minute)
                return -EINVAL;

        r = window_zone(w->time_zone, &z);
        if (r < 0)
                return r;

        open = window_open_at(z, w, t, &ok);
        if (ok && !open && ret_next_open) {
                /* Candidates: the start of an instance on today and each of
                 * the next eight local days (a week, plus the day a window
                 * lying wholly inside a DST gap loses): the first one at
                 * which the window really is open. Nine conversions of a
                 * wall time, instead of a minute-by-minute search. */
                int64_t wall;
                if (!wall_minutes_at(z, t, &wall))
                        ok = false;
                else {
                        int64_t today = wall / 1440;
                        for (int64_t d = today; d <= today + 8 && next == 0 && ok; d++) {
                                int64_t cand;
                                if (!(w->days & (1u << weekday_of_day(d))))
                                        continue;
                                if (!wall_to_unix(z, d * 1440 + w->start_minute, t, &cand)) {
                                        ok = false;
                                        break;
                                }
                                if (cand > t && window_open_at(z, w, cand, &ok))
                                        next = cand;
                        }
                        /* Nothing found (cannot happen with real zones):
                         * look again in a day. */
                        if (ok && next == 0)
                                next = t + 86400;
                }
        }

        if (!ok)
                return -ERANGE;
        *ret_open = open;
        if (ret_next_open)
                *ret_next_open = open ? 0 : next;
        return 0;
}

/* The task id names what a node is asked to reach, not the OS object's
 * generation: pausing, approving a batch or changing maxUnavailable bumps
 * the generation but must not restart the rollout or forget its failures. */
char *os_task_id(const char *os, const OsSpec *s) {
        char *id = NULL;
        int r;
        if (s->operation == OS_OPERATION_CONFIG)
                r = asprintf(&id, "%s/config/%" PRIi64, os, s->config_generation);
        else if (s->config)
                r = asprintf(&id, "%s/%s/%s/config-%" PRIi64, os, os_operation_to_string(s->operation), s->version,
                             s->config_generation);
        else
                r = asprintf(&id, "%s/%s/%s", os, os_operation_to_string(s->operation), s->version);
        return r < 0 ? NULL : id;
}
