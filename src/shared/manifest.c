/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "manifest.h"
#include "strutil.h"

/* Limits on individual strings. They are far above anything real and keep a
 * manifest from smuggling megabytes of text into GRUB or a log line. */
#define NAME_MAX_LEN 128
#define VERSION_MAX_LEN 128
#define ARCH_MAX_LEN 32
#define PAYLOAD_NAME_MAX_LEN 64
#define CMDLINE_MAX_LEN 4096
#define SHA256_HEX_LEN 64
#define CREATED_LEN 20 /* "YYYY-MM-DDTHH:MM:SSZ" */

/* json_decrefp() comes with jansson >= 2.9. */

static const char *const top_level_fields[] = {
        "arch", "cmdline", "components", "created", "format", "key_id", "name",
        "payloads", "rootfs_type", "verity", "version",
};
static const char *const payload_fields[] = { "name", "offset", "sha256", "size" };
static const char *const verity_fields[] = { "hash_offset", "root_hash" };

int manifest_new(Manifest **ret) {
        Manifest *m = calloc(1, sizeof(Manifest));
        if (!m)
                return -ENOMEM;
        m->format = MANIFEST_FORMAT_MIN;
        *ret = m;
        return 0;
}

Manifest *manifest_free(Manifest *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_payloads; i++)
                free(m->payloads[i].name);
        free(m->payloads);
        free(m->name);
        free(m->version);
        free(m->arch);
        free(m->key_id);
        free(m->created);
        free(m->rootfs_type);
        free(m->cmdline);
        free(m->verity_root_hash);
        components_done(&m->components);
        free(m);
        return NULL;
}

/* ---- checks on values, shared by parsing and formatting ---- */

static bool ascii_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* [A-Za-z0-9._+~-], starting with a letter or digit, so that the value is
 * neither "." nor ".." nor an option ("-x") wherever it ends up. */
bool manifest_token_ok(const char *s, size_t max) {
        if (!s || !ascii_alnum(s[0]))
                return false;
        size_t l = strnlen(s, max + 1);
        if (l > max)
                return false;
        for (size_t i = 0; i < l; i++)
                if (!ascii_alnum(s[i]) && !strchr("._+~-", s[i]))
                        return false;
        return true;
}

/* Lower-case only: the canonical form is what gets signed and compared. */
static bool hex_ok(const char *s, size_t len) {
        if (!s || strnlen(s, len + 1) != len)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

static bool cmdline_ok(const char *s) {
        size_t l = strnlen(s, CMDLINE_MAX_LEN + 1);
        if (l > CMDLINE_MAX_LEN)
                return false;
        /* Printable ASCII: no newline or control character can reach the
         * boot loader environment. */
        for (size_t i = 0; i < l; i++)
                if (s[i] < 0x20 || s[i] > 0x7e)
                        return false;
        return true;
}

static bool parse_digits(const char *s, size_t n, unsigned min, unsigned max) {
        unsigned v = 0;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (unsigned) (s[i] - '0');
        }
        return v >= min && v <= max;
}

/* RFC 3339 in the one form we write: "2024-05-01T12:00:00Z" (UTC, no
 * fraction). Stricter than the RFC on purpose: one spelling per instant. */
static bool created_ok(const char *s) {
        static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

        if (!s || strnlen(s, CREATED_LEN + 1) != CREATED_LEN)
                return false;
        if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z')
                return false;
        if (!parse_digits(s, 4, 1970, 9999) || !parse_digits(s + 5, 2, 1, 12) ||
            !parse_digits(s + 11, 2, 0, 23) || !parse_digits(s + 14, 2, 0, 59) ||
            !parse_digits(s + 17, 2, 0, 60))
                return false;

        unsigned year = (unsigned) (s[0] - '0') * 1000 + (unsigned) (s[1] - '0') * 100 +
                        (unsigned) (s[2] - '0') * 10 + (unsigned) (s[3] - '0');
        unsigned month = (unsigned) (s[5] - '0') * 10 + (unsigned) (s[6] - '0');
        unsigned max = mdays[month - 1];
        if (month == 2 && !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
                max = 28;
        return parse_digits(s + 8, 2, 1, max);
}

static bool rootfs_type_ok(const char *s) {
        return s && (streq(s, "erofs") || streq(s, "ext4"));
}

static bool size_ok(uint64_t v) {
        /* JSON integers are int64 here (jansson's json_int_t); offsets must
         * also fit off_t. */
        return v <= INT64_MAX;
}

static bool payloads_ok(const Manifest *m) {
        if (m->n_payloads == 0 || m->n_payloads > MANIFEST_PAYLOADS_MAX || !m->payloads)
                return false;

        for (size_t i = 0; i < m->n_payloads; i++) {
                const ManifestPayload *p = m->payloads + i;

                if (!manifest_token_ok(p->name, PAYLOAD_NAME_MAX_LEN))
                        return false;
                if (p->offset % 4096 != 0 || p->size == 0)
                        return false;
                if (!size_ok(p->offset) || !size_ok(p->size) || p->size > INT64_MAX - p->offset)
                        return false;

                for (size_t j = 0; j < i; j++) {
                        const ManifestPayload *q = m->payloads + j;
                        if (streq(p->name, q->name))
                                return false;
                        /* [p->offset, end) and [q->offset, end) intersect;
                         * sizes are > 0, so equal offsets overlap too. */
                        if (p->offset < q->offset + q->size && q->offset < p->offset + p->size)
                                return false;
                }
        }
        return true;
}

/* Everything manifest_parse() enforces beyond JSON types. */
static bool components_ok(const Manifest *m) {
        if (components_is_empty(&m->components))
                return true;
        if (m->format < MANIFEST_FORMAT_COMPONENTS)
                return false;
        for (size_t i = 0; i < _COMPONENT_MAX; i++)
                if (m->components.version[i] && !component_version_is_valid((Component) i, m->components.version[i]))
                        return false;
        return true;
}

static bool manifest_ok(const Manifest *m) {
        if (m->format < MANIFEST_FORMAT_MIN || m->format > MANIFEST_FORMAT)
                return false;
        if (!components_ok(m))
                return false;
        if (!manifest_token_ok(m->name, NAME_MAX_LEN) || !manifest_token_ok(m->version, VERSION_MAX_LEN) ||
            !manifest_token_ok(m->arch, ARCH_MAX_LEN))
                return false;
        if (!hex_ok(m->key_id, 16) || !created_ok(m->created) || !rootfs_type_ok(m->rootfs_type))
                return false;
        if (m->cmdline && !cmdline_ok(m->cmdline))
                return false;
        if (!payloads_ok(m))
                return false;

        if (m->verity_root_hash) {
                /* dm-verity with SHA-256: the hash tree lives inside the
                 * rootfs payload, after the data, on a block boundary. */
                const ManifestPayload *root = manifest_find_payload(m, "rootfs");
                if (!hex_ok(m->verity_root_hash, SHA256_HEX_LEN) || !root)
                        return false;
                if (m->verity_hash_offset == 0 || m->verity_hash_offset % 4096 != 0 ||
                    m->verity_hash_offset >= root->size)
                        return false;
        } else if (m->verity_hash_offset != 0)
                return false;

        return true;
}

/* ---- parsing ---- */

static bool field_known(const char *key, const char *const *table, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (streq(key, table[i]))
                        return true;
        return false;
}

static int check_fields(json_t *obj, const char *const *table, size_t n) {
        const char *key;
        json_t *v;

        json_object_foreach(obj, key, v)
                if (!field_known(key, table, n))
                        return -EBADMSG;
        return 0;
}

static int get_string(json_t *obj, const char *key, bool optional, char **ret) {
        json_t *v = json_object_get(obj, key);
        const char *s;

        if (!v) {
                if (!optional)
                        return -EBADMSG;
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v))
                return -EBADMSG;
        s = json_string_value(v);
        /* jansson refuses \u0000 unless told otherwise; be sure anyway. */
        if (strlen(s) != json_string_length(v))
                return -EBADMSG;

        char *c = strdup(s);
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

static int get_u64(json_t *obj, const char *key, uint64_t *ret) {
        json_t *v = json_object_get(obj, key);

        /* Integers only: 4096.0 or 4e3 are reals in jansson and are refused,
         * as are negative values. Values beyond int64 fail in json_loadb(). */
        if (!v || !json_is_integer(v))
                return -EBADMSG;
        json_int_t i = json_integer_value(v);
        if (i < 0)
                return -EBADMSG;
        *ret = (uint64_t) i;
        return 0;
}

static int parse_payload(json_t *obj, ManifestPayload *p) {
        _cleanup_free_ char *digest = NULL;
        int r;

        if (!json_is_object(obj))
                return -EBADMSG;
        r = check_fields(obj, payload_fields, ELEMENTSOF(payload_fields));
        if (r < 0)
                return r;

        r = get_string(obj, "name", false, &p->name);
        if (r < 0)
                return r;
        r = get_u64(obj, "offset", &p->offset);
        if (r < 0)
                return r;
        r = get_u64(obj, "size", &p->size);
        if (r < 0)
                return r;
        r = get_string(obj, "sha256", false, &digest);
        if (r < 0)
                return r;
        if (!hex_ok(digest, SHA256_HEX_LEN) || hex_decode(digest, p->sha256, sizeof(p->sha256)) < 0)
                return -EBADMSG;
        return 0;
}

static int parse_verity(json_t *obj, Manifest *m) {
        int r;

        if (!json_is_object(obj))
                return -EBADMSG;
        r = check_fields(obj, verity_fields, ELEMENTSOF(verity_fields));
        if (r < 0)
                return r;
        r = get_string(obj, "root_hash", false, &m->verity_root_hash);
        if (r < 0)
                return r;
        return get_u64(obj, "hash_offset", &m->verity_hash_offset);
}

int manifest_parse(const char *data, size_t len, Manifest **ret) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(manifest_freep) Manifest *m = NULL;
        json_error_t error;
        json_t *v;
        int r;

        if (!data || !ret)
                return -EINVAL;
        if (len > MANIFEST_SIZE_MAX)
                return -E2BIG;

        /* Duplicate keys are refused: two readers must never disagree on
         * which "size" counts. */
        root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &error);
        if (!root || !json_is_object(root))
                return -EBADMSG;

        /* "format" first: a manifest of another format may well carry fields
         * we do not know, and that is reported as what it is. */
        v = json_object_get(root, "format");
        if (!v || !json_is_integer(v))
                return -EBADMSG;
        json_int_t format = json_integer_value(v);
        if (format < MANIFEST_FORMAT_MIN || format > MANIFEST_FORMAT)
                return -EPROTONOSUPPORT;

        r = check_fields(root, top_level_fields, ELEMENTSOF(top_level_fields));
        if (r < 0)
                return r;

        r = manifest_new(&m);
        if (r < 0)
                return r;
        m->format = (unsigned) format;

        if ((r = get_string(root, "name", false, &m->name)) < 0 ||
            (r = get_string(root, "version", false, &m->version)) < 0 ||
            (r = get_string(root, "arch", false, &m->arch)) < 0 ||
            (r = get_string(root, "key_id", false, &m->key_id)) < 0 ||
            (r = get_string(root, "created", false, &m->created)) < 0 ||
            (r = get_string(root, "rootfs_type", false, &m->rootfs_type)) < 0 ||
            (r = get_string(root, "cmdline", true, &m->cmdline)) < 0)
                return r;

        v = json_object_get(root, "verity");
        if (v) {
                r = parse_verity(v, m);
                if (r < 0)
                        return r;
        }

        v = json_object_get(root, "components");
        if (v) {
                /* A format-1 reader would refuse the field: it belongs to
                 * format 2. An empty object has one spelling: absent. */
                if (m->format < MANIFEST_FORMAT_COMPONENTS || !json_is_object(v) || json_object_size(v) == 0)
                        return -EBADMSG;
                r = components_from_json(v, &m->components, NULL);
                if (r < 0)
                        return r;
        }

        v = json_object_get(root, "payloads");
        if (!v || !json_is_array(v))
                return -EBADMSG;
        size_t n = json_array_size(v);
        if (n == 0 || n > MANIFEST_PAYLOADS_MAX)
                return -EBADMSG;
        m->payloads = calloc(n, sizeof(ManifestPayload));
        if (!m->payloads)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                /* Counted before parsing, so that a half-filled entry is
                 * still freed. */
                m->n_payloads++;
                r = parse_payload(json_array_get(v, i), m->payloads + i);
                if (r < 0)
                        return r;
        }

        if (!manifest_ok(m))
                return -EBADMSG;

        *ret = TAKE_PTR(m);
        return 0;
}

/* ---- formatting ---- */

static int set_new(json_t *obj, const char *key, json_t *v) {
        /* json_object_set_new() consumes v even when it fails, and fails
         * for v == NULL, so allocation failures fall through to here. */
        return json_object_set_new(obj, key, v) < 0 ? -ENOMEM : 0;
}

static int set_string(json_t *obj, const char *key, const char *s) {
        return set_new(obj, key, json_string(s));
}

static int set_u64(json_t *obj, const char *key, uint64_t v) {
        /* manifest_ok() has checked that v fits. */
        return set_new(obj, key, json_integer((json_int_t) v));
}

int manifest_format(const Manifest *m, char **ret) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        int r;

        if (!m || !ret)
                return -EINVAL;
        if (!manifest_ok(m))
                return -EINVAL;

        root = json_object();
        if (!root)
                return -ENOMEM;

        if ((r = set_u64(root, "format", m->format)) < 0 ||
            (r = set_string(root, "name", m->name)) < 0 ||
            (r = set_string(root, "version", m->version)) < 0 ||
            (r = set_string(root, "arch", m->arch)) < 0 ||
            (r = set_string(root, "key_id", m->key_id)) < 0 ||
            (r = set_string(root, "created", m->created)) < 0 ||
            (r = set_string(root, "rootfs_type", m->rootfs_type)) < 0)
                return r;
        if (m->cmdline && (r = set_string(root, "cmdline", m->cmdline)) < 0)
                return r;
        if (!components_is_empty(&m->components) &&
            (r = set_new(root, "components", components_to_json(&m->components))) < 0)
                return r;

        if (m->verity_root_hash) {
                json_t *verity = json_object();
                r = set_new(root, "verity", verity);
                if (r < 0)
                        return r;
                if ((r = set_string(verity, "root_hash", m->verity_root_hash)) < 0 ||
                    (r = set_u64(verity, "hash_offset", m->verity_hash_offset)) < 0)
                        return r;
        }

        json_t *payloads = json_array();
        r = set_new(root, "payloads", payloads);
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->n_payloads; i++) {
                const ManifestPayload *p = m->payloads + i;
                char hex[SHA256_HEX_LEN + 1];
                json_t *o = json_object();

                if (!o || json_array_append_new(payloads, o) < 0)
                        return -ENOMEM;
                hex_encode(p->sha256, sizeof(p->sha256), hex);
                if ((r = set_string(o, "name", p->name)) < 0 ||
                    (r = set_u64(o, "offset", p->offset)) < 0 ||
                    (r = set_u64(o, "size", p->size)) < 0 ||
                    (r = set_string(o, "sha256", hex)) < 0)
                        return r;
        }

        /* Sorted keys, no whitespace: one byte sequence per manifest, which
         * is what the signature covers. */
        _cleanup_free_ char *s = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        if (strlen(s) > MANIFEST_SIZE_MAX)
                return -E2BIG;

        *ret = TAKE_PTR(s);
        return 0;
}

/* ---- accessors ---- */

const ManifestPayload *manifest_find_payload(const Manifest *m, const char *name) {
        if (!m || !name)
                return NULL;
        for (size_t i = 0; i < m->n_payloads; i++)
                if (m->payloads[i].name && streq(m->payloads[i].name, name))
                        return m->payloads + i;
        return NULL;
}

int manifest_set_components(Manifest *m, const Components *c) {
        Components copy = {};
        int r;

        if (!m)
                return -EINVAL;
        for (size_t i = 0; c && i < _COMPONENT_MAX; i++)
                if (c->version[i] && !component_version_is_valid((Component) i, c->version[i]))
                        return -EINVAL;
        r = components_copy(c, &copy);
        if (r < 0)
                return r;
        components_done(&m->components);
        m->components = copy;
        if (!components_is_empty(&m->components) && m->format < MANIFEST_FORMAT_COMPONENTS)
                m->format = MANIFEST_FORMAT_COMPONENTS;
        return 0;
}

int manifest_add_payload(Manifest *m, const char *name, uint64_t size, const uint8_t sha256[static 32]) {
        if (!m || !sha256)
                return -EINVAL;
        if (!manifest_token_ok(name, PAYLOAD_NAME_MAX_LEN) || size == 0 || !size_ok(size))
                return -EINVAL;
        if (manifest_find_payload(m, name))
                return -EEXIST;
        if (m->n_payloads >= MANIFEST_PAYLOADS_MAX)
                return -E2BIG;

        _cleanup_free_ char *c = strdup(name);
        if (!c)
                return -ENOMEM;
        ManifestPayload *n = realloc(m->payloads, sizeof(ManifestPayload) * (m->n_payloads + 1));
        if (!n)
                return -ENOMEM;
        m->payloads = n;
        m->payloads[m->n_payloads++] = (ManifestPayload) {
                .name = TAKE_PTR(c),
                .size = size,
        };
        memcpy(m->payloads[m->n_payloads - 1].sha256, sha256, 32);
        return 0;
}
