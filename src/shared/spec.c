/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "fileio.h"
#include "nodeconfig.h"
#include "spec.h"
#include "strutil.h"

/* libyaml's event stream is turned into a small tree first so that the spec
 * can be validated key by key with line numbers, in any key order. */

typedef enum YNodeType {
        YN_SCALAR,
        YN_SEQUENCE,
        YN_MAPPING,
} YNodeType;

typedef struct YNode YNode;
struct YNode {
        YNodeType type;
        char *value;         /* scalars only */
        bool quoted;
        unsigned line, column;
        YNode **items;       /* sequence: elements; mapping: key, value, key, value, ... */
        size_t n_items;
};

#define YAML_DEPTH_MAX 32

static YNode *ynode_free(YNode *n) {
        if (!n)
                return NULL;
        for (size_t i = 0; i < n->n_items; i++)
                ynode_free(n->items[i]);
        free(n->items);
        free(n->value);
        free(n);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(YNode *, ynode_free);

static const char *const rootfs_type_table[_ROOTFS_TYPE_MAX] = {
        [ROOTFS_EROFS] = "erofs",
        [ROOTFS_EXT4] = "ext4",
};

static const char *const hook_stage_table[_HOOK_STAGE_MAX] = {
        [HOOK_POST_BOOTSTRAP] = "post-bootstrap",
        [HOOK_POST_PACKAGES] = "post-packages",
        [HOOK_PRE_SEAL] = "pre-seal",
};

const char *rootfs_type_to_string(RootfsType t) {
        return t >= 0 && t < _ROOTFS_TYPE_MAX ? rootfs_type_table[t] : NULL;
}

RootfsType rootfs_type_from_string(const char *s) {
        for (int i = 0; i < _ROOTFS_TYPE_MAX; i++)
                if (s && streq(s, rootfs_type_table[i]))
                        return (RootfsType) i;
        return _ROOTFS_TYPE_INVALID;
}

static const char *const boot_initramfs_table[_BOOT_INITRAMFS_MAX] = {
        [BOOT_INITRAMFS_TOOLS] = "initramfs-tools",
        [BOOT_INITRAMFS_HULL] = "hull",
};

const char *boot_initramfs_to_string(BootInitramfs t) {
        return t >= 0 && t < _BOOT_INITRAMFS_MAX ? boot_initramfs_table[t] : NULL;
}

BootInitramfs boot_initramfs_from_string(const char *s) {
        for (int i = 0; i < _BOOT_INITRAMFS_MAX; i++)
                if (s && streq(s, boot_initramfs_table[i]))
                        return (BootInitramfs) i;
        return _BOOT_INITRAMFS_INVALID;
}

const char *hook_stage_to_string(HookStage s) {
        return s >= 0 && s < _HOOK_STAGE_MAX ? hook_stage_table[s] : NULL;
}

HookStage hook_stage_from_string(const char *s) {
        for (int i = 0; i < _HOOK_STAGE_MAX; i++)
                if (s && streq(s, hook_stage_table[i]))
                        return (HookStage) i;
        return _HOOK_STAGE_INVALID;
}

_printf_(3, 4) static int fail(SpecError *e, const YNode *at, const char *fmt, ...) {
        va_list ap;

        if (e) {
                e->line = at ? at->line : 0;
                e->column = at ? at->column : 0;
                va_start(ap, fmt);
                (void) vsnprintf(e->message, sizeof(e->message), fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

static int ynode_add(YNode *parent, YNode *child) {
        YNode **n = realloc(parent->items, sizeof(YNode *) * (parent->n_items + 1));
        if (!n)
                return -ENOMEM;
        parent->items = n;
        parent->items[parent->n_items++] = child;
        return 0;
}

static YNode *ynode_new(YNodeType type, const yaml_event_t *ev) {
        YNode *n = calloc(1, sizeof(YNode));
        if (!n)
                return NULL;
        n->type = type;
        n->line = (unsigned) ev->start_mark.line + 1;
        n->column = (unsigned) ev->start_mark.column + 1;
        return n;
}

/* Build the node that starts with *ev (already read). */
static int yaml_build(yaml_parser_t *p, yaml_event_t *ev, unsigned depth, YNode **ret, SpecError *e) {
        _cleanup_(ynode_freep) YNode *n = NULL;
        int r;

        if (depth > YAML_DEPTH_MAX)
                return fail(e, NULL, "YAML nesting deeper than %d levels", YAML_DEPTH_MAX);

        switch (ev->type) {
        case YAML_SCALAR_EVENT:
                n = ynode_new(YN_SCALAR, ev);
                if (!n)
                        return -ENOMEM;
                n->value = strndup((const char *) ev->data.scalar.value, ev->data.scalar.length);
                if (!n->value)
                        return -ENOMEM;
                if (strlen(n->value) != ev->data.scalar.length)
                        return fail(e, n, "NUL byte in YAML scalar");
                n->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                            ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
                break;

        case YAML_ALIAS_EVENT:
                return fail(e, NULL, "line %zu: YAML aliases are not supported in specs",
                            ev->start_mark.line + 1);

        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
                bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
                yaml_event_type_t end = seq ? YAML_SEQUENCE_END_EVENT : YAML_MAPPING_END_EVENT;

                n = ynode_new(seq ? YN_SEQUENCE : YN_MAPPING, ev);
                if (!n)
                        return -ENOMEM;
                for (;;) {
                        yaml_event_t child_ev;
                        YNode *child = NULL;

                        if (!yaml_parser_parse(p, &child_ev))
                                return fail(e, NULL, "line %zu column %zu: %s", p->problem_mark.line + 1,
                                            p->problem_mark.column + 1, p->problem ?: "YAML syntax error");
                        if (child_ev.type == end) {
                                yaml_event_delete(&child_ev);
                                break;
                        }
                        r = yaml_build(p, &child_ev, depth + 1, &child, e);
                        yaml_event_delete(&child_ev);
                        if (r < 0)
                                return r;
                        if (!seq && n->n_items % 2 == 0 && child->type != YN_SCALAR) {
                                r = fail(e, child, "mapping keys must be plain strings");
                                ynode_free(child);
                                return r;
                        }
                        r = ynode_add(n, child);
                        if (r < 0) {
                                ynode_free(child);
                                return r;
                        }
                }
                break;
        }
        default:
                return fail(e, NULL, "unexpected YAML event");
        }

        *ret = TAKE_PTR(n);
        return 0;
}

static int yaml_load(const char *data, size_t len, YNode **ret, SpecError *e) {
        yaml_parser_t p;
        yaml_event_t ev;
        YNode *root = NULL;
        int r = 0;

        if (!yaml_parser_initialize(&p))
                return -ENOMEM;
        yaml_parser_set_input_string(&p, (const unsigned char *) data, len);

        for (;;) {
                if (!yaml_parser_parse(&p, &ev)) {
                        r = fail(e, NULL, "line %zu column %zu: %s", p.problem_mark.line + 1,
                                 p.problem_mark.column + 1, p.problem ?: "YAML syntax error");
                        break;
                }
                yaml_event_type_t t = ev.type;
                if (t == YAML_STREAM_END_EVENT) {
                        yaml_event_delete(&ev);
                        break;
                }
                if (t == YAML_SCALAR_EVENT || t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT ||
                    t == YAML_ALIAS_EVENT) {
                        if (root) {
                                yaml_event_delete(&ev);
                                r = fail(e, NULL, "the spec must be a single YAML document");
                                break;
                        }
                        r = yaml_build(&p, &ev, 0, &root, e);
                }
                yaml_event_delete(&ev);
                if (r < 0)
                        break;
        }
        yaml_parser_delete(&p);

        if (r < 0) {
                ynode_free(root);
                return r;
        }
        if (!root)
                return fail(e, NULL, "the spec is empty");
        *ret = root;
        return 0;
}

/* ---- typed accessors --------------------------------------------------- */

static int want_scalar(const YNode *n, const char *field, SpecError *e) {
        if (n->type != YN_SCALAR)
                return fail(e, n, "'%s' must be a single value, not a %s", field,
                            n->type == YN_SEQUENCE ? "list" : "mapping");
        return 0;
}

static int get_string(const YNode *n, const char *field, const char *extra_chars, char **ret, SpecError *e) {
        int r = want_scalar(n, field, e);
        if (r < 0)
                return r;
        if (isempty(n->value))
                return fail(e, n, "'%s' must not be empty", field);
        if (extra_chars && !string_is_safe_token(n->value, extra_chars))
                return fail(e, n, "'%s' has invalid characters in '%s' (allowed: letters, digits and \"%s\")",
                            field, n->value, extra_chars);
        char *s = strdup(n->value);
        if (!s)
                return -ENOMEM;
        free(*ret);
        *ret = s;
        return 0;
}

static int get_bool(const YNode *n, const char *field, bool *ret, SpecError *e) {
        int r = want_scalar(n, field, e);
        if (r < 0)
                return r;
        if (streq(n->value, "true") || streq(n->value, "yes"))
                *ret = true;
        else if (streq(n->value, "false") || streq(n->value, "no"))
                *ret = false;
        else
                return fail(e, n, "'%s' must be true or false, not '%s'", field, n->value);
        return 0;
}

static int get_size(const YNode *n, const char *field, uint64_t *ret, SpecError *e) {
        int r = want_scalar(n, field, e);
        if (r < 0)
                return r;
        uint64_t v;
        r = parse_size(n->value, &v);
        if (r < 0)
                return fail(e, n, "'%s' must be a size such as 512M or 2G, not '%s'", field, n->value);
        if (v % (1 << 20) != 0)
                return fail(e, n, "'%s' must be a whole number of MiB, not '%s'", field, n->value);
        *ret = v;
        return 0;
}

static int get_uint(const YNode *n, const char *field, unsigned min, unsigned max, unsigned *ret, SpecError *e) {
        int r = want_scalar(n, field, e);
        if (r < 0)
                return r;
        unsigned v;
        if (safe_atou(n->value, &v) < 0 || v < min || v > max)
                return fail(e, n, "'%s' must be a number from %u to %u, not '%s'", field, min, max, n->value);
        *ret = v;
        return 0;
}

static int get_string_list(const YNode *n, const char *field, const char *extra_chars, char ***ret, SpecError *e) {
        _cleanup_strv_free_ char **l = NULL;

        if (n->type != YN_SEQUENCE)
                return fail(e, n, "'%s' must be a list", field);
        for (size_t i = 0; i < n->n_items; i++) {
                _cleanup_free_ char *s = NULL;
                int r = get_string(n->items[i], field, extra_chars, &s, e);
                if (r < 0)
                        return r;
                char **nl = strv_append(l, s);
                if (!nl)
                        return -ENOMEM;
                l = nl;
        }
        if (!l) {
                l = calloc(1, sizeof(char *));
                if (!l)
                        return -ENOMEM;
        }
        strv_free(*ret);
        *ret = TAKE_PTR(l);
        return 0;
}

/* Walks a mapping, calling the handler for each known key and rejecting the
 * rest, with a hint listing what is allowed. */
typedef int (*KeyHandler)(Spec *s, const YNode *value, const char *key, SpecError *e);
typedef struct KeyTable {
        const char *key;
        KeyHandler handler;
} KeyTable;

static int walk_mapping(Spec *s, const YNode *n, const char *where, const KeyTable *table, size_t n_table,
                        SpecError *e) {
        if (n->type != YN_MAPPING)
                return fail(e, n, "'%s' must be a mapping of keys to values", where);

        for (size_t i = 0; i + 1 < n->n_items; i += 2) {
                const YNode *k = n->items[i], *v = n->items[i + 1];
                bool found = false;

                for (size_t j = 0; j < i; j += 2)
                        if (streq(n->items[j]->value, k->value))
                                return fail(e, k, "duplicate key '%s' in '%s'", k->value, where);

                for (size_t j = 0; j < n_table; j++)
                        if (streq(k->value, table[j].key)) {
                                int r = table[j].handler(s, v, k->value, e);
                                if (r < 0)
                                        return r;
                                found = true;
                                break;
                        }
                if (!found) {
                        char allowed[256] = "";
                        for (size_t j = 0; j < n_table; j++) {
                                (void) strncat(allowed, table[j].key, sizeof(allowed) - strlen(allowed) - 1);
                                if (j + 1 < n_table)
                                        (void) strncat(allowed, ", ", sizeof(allowed) - strlen(allowed) - 1);
                        }
                        return fail(e, k, "unknown key '%s' in '%s' (known keys: %s)", k->value, where, allowed);
                }
        }
        return 0;
}

#define NAME_CHARS "._+~-"

/* Names and versions end up in file names, the bundle manifest and GRUB
 * variables: the same rules as the manifest (docs/BUNDLE.md) apply. */
static int get_identifier(const YNode *v, const char *k, const char *chars, char **ret, SpecError *e) {
        int r = get_string(v, k, chars, ret, e);
        if (r < 0)
                return r;
        if (!isalnum((unsigned char) (*ret)[0]) || strlen(*ret) > 128)
                return fail(e, v, "'%s' must start with a letter or digit and be at most 128 characters, not '%s'", k,
                            *ret);
        return 0;
}
static int h_name(Spec *s, const YNode *v, const char *k, SpecError *e) {
        return get_identifier(v, k, "._-", &s->name, e);
}
static int h_version(Spec *s, const YNode *v, const char *k, SpecError *e) {
        return get_identifier(v, k, NAME_CHARS, &s->version, e);
}
static int h_arch(Spec *s, const YNode *v, const char *k, SpecError *e) {
        int r = get_string(v, k, "_", &s->arch, e);
        if (r < 0)
                return r;
        if (!streq(s->arch, "x86_64"))
                return fail(e, v, "architecture '%s' is not supported yet (supported: x86_64)", s->arch);
        return 0;
}

static int h_backend(Spec *s, const YNode *v, const char *k, SpecError *e) {
        int r = get_string(v, "distribution.backend", "-", &s->backend, e);
        if (r < 0)
                return r;
        if (!streq(s->backend, "debian"))
                return fail(e, v, "unknown distribution backend '%s' (available: debian)", s->backend);
        return 0;
}
static int h_suite(Spec *s, const YNode *v, const char *k, SpecError *e) {
        return get_string(v, "distribution.suite", "-", &s->suite, e);
}
static int h_mirror(Spec *s, const YNode *v, const char *k, SpecError *e) {
        int r = get_string(v, "distribution.mirror", NULL, &s->mirror, e);
        if (r < 0)
                return r;
        if (!string_has_prefix(s->mirror, "http://") && !string_has_prefix(s->mirror, "https://") &&
            !string_has_prefix(s->mirror, "file://"))
                return fail(e, v, "'distribution.mirror' must be an http://, https:// or file:// URL, not '%s'",
                            s->mirror);
        if (strpbrk(s->mirror, " \t\n\"'"))
                return fail(e, v, "'distribution.mirror' must not contain spaces or quotes");
        return 0;
}
static int h_variant(Spec *s, const YNode *v, const char *k, SpecError *e) {
        int r = get_string(v, "distribution.variant", "-", &s->variant, e);
        if (r < 0)
                return r;
        if (!streq(s->variant, "minbase") && !streq(s->variant, "essential") && !streq(s->variant, "apt") &&
            !streq(s->variant, "required"))
                return fail(e, v, "'distribution.variant' must be one of essential, apt, required, minbase");
        return 0;
}
static int h_components(Spec *s, const YNode *v, const char *k, SpecError *e) {
        return get_string_list(v, "distribution.components", "-", &s->components, e);
}

static int h_distribution(Spec *s, const YNode *v, const char *k, SpecError *e) {
        static const KeyTable t[] = {
                { "backend", h_backend },       { "suite", h_suite },         { "mirror", h_mirror },
                { "variant", h_variant },       { "components", h_components },
        };
        return walk_mapping(s, v, "distribution", t, ELEMENTSOF(t), e);
}

static int h_packages(Spec *s, const YNode *v, const char *k, SpecError *e) {
        /* Debian package names, optionally with =version or /suite. */
        return get_string_list(v, k, "+-.:=/~", &s->packages, e);
}

static bool path_is_safe_absolute(const char *p) {
        if (p[0] != '/' || strstr(p, "/../") || strstr(p, "//") || strchr(p, '\n'))
                return false;
        size_t l = strlen(p);
        return !(l >= 3 && streq(p + l - 3, "/..")) && !streq(p, "/");
}

static int parse_file_entry(Spec *s, const YNode *n, SpecFile *f, SpecError *e) {
        const YNode *source = NULL, *path = NULL;
        _cleanup_free_ char *mode = NULL;

        if (n->type != YN_MAPPING)
                return fail(e, n, "each entry of 'files' must be a mapping with source and path");

        f->mode = 0644;
        for (size_t i = 0; i + 1 < n->n_items; i += 2) {
                const YNode *k = n->items[i], *v = n->items[i + 1];
                int r;

                if (streq(k->value, "source")) {
                        source = v;
                        r = get_string(v, "files.source", NULL, &f->source, e);
                } else if (streq(k->value, "path")) {
                        path = v;
                        r = get_string(v, "files.path", NULL, &f->path, e);
                        if (r >= 0 && !path_is_safe_absolute(f->path))
                                r = fail(e, v, "'files.path' must be an absolute path inside the image without '..', not '%s'",
                                         f->path);
                } else if (streq(k->value, "mode")) {
                        r = get_string(v, "files.mode", NULL, &mode, e);
                        if (r >= 0) {
                                char *end;
                                errno = 0;
                                unsigned long m = strtoul(mode, &end, 8);
                                if (errno != 0 || *end != '\0' || mode[0] == '-' || m > 07777)
                                        r = fail(e, v, "'files.mode' must be an octal mode such as \"0644\", not '%s'",
                                                 mode);
                                else
                                        f->mode = (mode_t) m;
                        }
                } else if (streq(k->value, "owner")) {
                        r = get_string(v, "files.owner", "_-.", &f->owner, e);
                } else if (streq(k->value, "group")) {
                        r = get_string(v, "files.group", "_-.", &f->group, e);
                } else
                        r = fail(e, k, "unknown key '%s' in 'files' entry (known keys: source, path, mode, owner, group)",
                                 k->value);
                if (r < 0)
                        return r;
        }
        if (!source)
                return fail(e, n, "a 'files' entry is missing 'source'");
        if (!path)
                return fail(e, n, "a 'files' entry is missing 'path'");
        return 0;
}

static int h_files(Spec *s, const YNode *v, const char *k, SpecError *e) {
        if (v->type != YN_SEQUENCE)
                return fail(e, v, "'files' must be a list");
        s->files = calloc(v->n_items ?: 1, sizeof(SpecFile));
        if (!s->files)
                return -ENOMEM;
        for (size_t i = 0; i < v->n_items; i++) {
                s->n_files++;
                int r = parse_file_entry(s, v->items[i], &s->files[i], e);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- repositories ------------------------------------------------------ */

/* Extra apt repositories, written as deb822 sources during the packages
 * stage only. Everything here ends up in an apt configuration file, so each
 * value is held to the characters that field can have: a space or newline
 * would start another field or stanza. */

#define URI_CHARS "-._~:/@!$&()*+,;=%"

static bool repository_name_valid(const char *n) {
        if (!n[0] || strlen(n) > SPEC_REPOSITORY_NAME_MAX || !(islower((unsigned char) n[0]) || isdigit((unsigned char) n[0])))
                return false;
        for (const char *p = n; *p; p++)
                if (!islower((unsigned char) *p) && !isdigit((unsigned char) *p) && *p != '.' && *p != '-')
                        return false;
        return true;
}

/* The host part of an http(s) URI, which is what apt's "Pin: origin" matches;
 * "" for file: URIs (apt's "local" origin). */
int spec_repository_uri_origin(const char *uri, char **ret) {
        const char *h = strstr(uri, "://");
        if (!h || string_has_prefix(uri, "file:")) {
                *ret = strdup("");
                return *ret ? 0 : -ENOMEM;
        }
        h += 3;
        size_t l = strcspn(h, "/");
        const char *at = memchr(h, '@', l);
        if (at) {
                l -= (size_t) (at + 1 - h);
                h = at + 1;
        }
        const char *colon = memchr(h, ':', l);
        if (colon)
                l = (size_t) (colon - h);
        *ret = strndup(h, l);
        return *ret ? 0 : -ENOMEM;
}

static bool path_has_dotdot(const char *p) {
        return streq(p, "..") || string_has_prefix(p, "../") || strstr(p, "/../") ||
               (strlen(p) >= 3 && streq(p + strlen(p) - 3, "/.."));
}

static int repository_uris(const YNode *v, SpecRepository *r, SpecError *e) {
        int k = get_string_list(v, "repositories.uris", URI_CHARS, &r->uris, e);
        if (k < 0)
                return k;
        if (!r->uris[0])
                return fail(e, v, "'repositories.uris' of repository '%s' must list at least one URI", r->name ?: "?");
        for (size_t i = 0; r->uris[i]; i++) {
                const char *u = r->uris[i], *rest = NULL;
                bool ok = false;
                if (string_has_prefix(u, "http://") || string_has_prefix(u, "https://")) {
                        rest = strstr(u, "://") + 3; /* host[:port]/path */
                        ok = rest[0] && rest[0] != '/';
                } else if (string_has_prefix(u, "file:///")) {
                        rest = u + 7; /* the absolute path */
                        ok = rest[1] != '\0';
                }
                if (!ok)
                        return fail(e, v->items[i],
                                    "'repositories.uris' entry '%s' must be an http://, https:// or file:/// URI with a "
                                    "host or an absolute path",
                                    u);
                if (path_has_dotdot(rest) || strstr(rest, "//"))
                        return fail(e, v->items[i], "'repositories.uris' entry '%s' must not contain '..' or '//' in its path",
                                    u);
        }
        return 0;
}

static bool suite_is_flat(const char *s) {
        return s[strlen(s) - 1] == '/';
}

static int repository_suites(const YNode *v, SpecRepository *r, SpecError *e) {
        int k = get_string_list(v, "repositories.suites", "._-~+/", &r->suites, e);
        if (k < 0)
                return k;
        if (!r->suites[0])
                return fail(e, v, "'repositories.suites' must list at least one suite (\"/\" for a flat repository)");
        for (size_t i = 0; r->suites[i]; i++) {
                const char *x = r->suites[i];
                if ((x[0] == '/' && !streq(x, "/")) || path_has_dotdot(x) || strstr(x, "//") ||
                    (!isalnum((unsigned char) x[0]) && x[0] != '/' && !streq(x, "./")))
                        return fail(e, v->items[i],
                                    "'repositories.suites' entry '%s' must be a suite name such as bookworm, or a "
                                    "flat repository's path ending in '/' (\"/\", \"./\", \"stable/\") without '..'",
                                    x);
                if (suite_is_flat(x) != suite_is_flat(r->suites[0]))
                        return fail(e, v->items[i],
                                    "'repositories.suites' mixes a flat repository path (ending in '/') with a suite "
                                    "name; use two repositories");
        }
        return 0;
}

static int repository_components(const YNode *v, SpecRepository *r, SpecError *e) {
        int k = get_string_list(v, "repositories.components", "._-+/", &r->components, e);
        if (k < 0)
                return k;
        for (size_t i = 0; r->components[i]; i++) {
                const char *x = r->components[i];
                if (!isalnum((unsigned char) x[0]) || path_has_dotdot(x) || strstr(x, "//") || suite_is_flat(x))
                        return fail(e, v->items[i],
                                    "'repositories.components' entry '%s' must be a component name such as main", x);
        }
        return 0;
}

static int repository_pin(const YNode *v, SpecRepository *r, SpecError *e) {
        int k = want_scalar(v, "repositories.pin", e);
        if (k < 0)
                return k;
        char *end;
        errno = 0;
        long p = strtol(v->value, &end, 10);
        if (errno != 0 || end == v->value || *end != '\0' || isspace((unsigned char) v->value[0]) ||
            p < SPEC_REPOSITORY_PIN_MIN || p > SPEC_REPOSITORY_PIN_MAX || p == 0)
                return fail(e, v,
                            "'repositories.pin' must be an apt pin priority from %d to %d other than 0, not '%s'",
                            SPEC_REPOSITORY_PIN_MIN, SPEC_REPOSITORY_PIN_MAX, v->value);
        r->pin = (int) p;
        r->has_pin = true;
        return 0;
}

static int parse_repository(const YNode *n, SpecRepository *r, SpecError *e) {
        const YNode *suites = NULL, *components = NULL, *uris = NULL;

        if (n->type != YN_MAPPING)
                return fail(e, n, "each entry of 'repositories' must be a mapping with name, uris, suites and signed_by");
        r->line = n->line;
        r->column = n->column;

        /* The name first, so that later messages can use it. */
        for (size_t i = 0; i + 1 < n->n_items; i += 2)
                if (streq(n->items[i]->value, "name")) {
                        const YNode *v = n->items[i + 1];
                        int k = get_string(v, "repositories.name", ".-", &r->name, e);
                        if (k < 0)
                                return k;
                        if (!repository_name_valid(r->name))
                                return fail(e, v,
                                            "'repositories.name' must be lower-case letters, digits, '.' and '-', start "
                                            "with a letter or digit and be at most %d characters, not '%s'",
                                            SPEC_REPOSITORY_NAME_MAX, r->name);
                }

        for (size_t i = 0; i + 1 < n->n_items; i += 2) {
                const YNode *k = n->items[i], *v = n->items[i + 1];
                int q = 0;

                for (size_t j = 0; j < i; j += 2)
                        if (streq(n->items[j]->value, k->value))
                                return fail(e, k, "duplicate key '%s' in a 'repositories' entry", k->value);
                if (streq(k->value, "name"))
                        continue;
                if (streq(k->value, "uris")) {
                        uris = v;
                        q = repository_uris(v, r, e);
                } else if (streq(k->value, "suites")) {
                        suites = v;
                        q = repository_suites(v, r, e);
                } else if (streq(k->value, "components")) {
                        components = v;
                        q = repository_components(v, r, e);
                } else if (streq(k->value, "signed_by")) {
                        q = get_string(v, "repositories.signed_by", NULL, &r->signed_by, e);
                        if (q >= 0 && strpbrk(r->signed_by, "\n\r\t"))
                                q = fail(e, v, "'repositories.signed_by' must be a file name");
                        r->key_line = v->line;
                        r->key_column = v->column;
                } else if (streq(k->value, "pin"))
                        q = repository_pin(v, r, e);
                else
                        q = fail(e, k,
                                 "unknown key '%s' in 'repositories' entry (known keys: name, uris, suites, components, "
                                 "signed_by, pin)",
                                 k->value);
                if (q < 0)
                        return q;
        }

        if (!r->name)
                return fail(e, n, "a 'repositories' entry is missing 'name'");
        if (!uris)
                return fail(e, n, "repository '%s' is missing 'uris'", r->name);
        if (!suites)
                return fail(e, n, "repository '%s' is missing 'suites' (\"/\" for a flat repository)", r->name);
        /* apt never installs unsigned packages here: there is no way to turn
         * the check off, so a key is always needed. */
        if (!r->signed_by)
                return fail(e, n,
                            "repository '%s' is missing 'signed_by' (the repository's OpenPGP public key file; "
                            "unsigned repositories are not supported)",
                            r->name);
        if (suite_is_flat(r->suites[0])) {
                if (components && r->components[0])
                        return fail(e, components,
                                    "repository '%s' is flat (suite '%s' ends in '/') and must not have 'components'",
                                    r->name, r->suites[0]);
        } else if (!components || !r->components[0])
                return fail(e, components ?: n,
                            "repository '%s' needs 'components' (such as [main]) for suite '%s'; only a flat "
                            "repository (suite ending in '/') has none",
                            r->name, r->suites[0]);
        if (!r->components && !(r->components = calloc(1, sizeof(char *))))
                return -ENOMEM;
        return 0;
}

/* apt pins by host ("Pin: origin"), so two repositories on one host share
 * their pin: differing ones would silently apply to both. */
static int repositories_check_pins(const Spec *s, const YNode *list, SpecError *e) {
        for (size_t a = 0; a < s->n_repositories; a++)
                for (size_t b = 0; b < a; b++) {
                        const SpecRepository *x = &s->repositories[a], *y = &s->repositories[b];
                        if (x->has_pin == y->has_pin && (!x->has_pin || x->pin == y->pin))
                                continue;
                        for (char **u = x->uris; *u; u++)
                                for (char **w = y->uris; *w; w++) {
                                        _cleanup_free_ char *hx = NULL, *hy = NULL;
                                        if (spec_repository_uri_origin(*u, &hx) < 0 || spec_repository_uri_origin(*w, &hy) < 0)
                                                return -ENOMEM;
                                        if (streq(hx, hy))
                                                return fail(e, list->items[a],
                                                            "repositories '%s' and '%s' are on the same host '%s' but "
                                                            "have different pins; apt pins by host, so give them the "
                                                            "same pin",
                                                            y->name, x->name, hx[0] ? hx : "(local files)");
                                }
                }
        return 0;
}

static int h_repositories(Spec *s, const YNode *v, const char *k, SpecError *e) {
        if (v->type != YN_SEQUENCE)
                return fail(e, v, "'repositories' must be a list");
        s->repositories = calloc(v->n_items ?: 1, sizeof(SpecRepository));
        if (!s->repositories)
                return -ENOMEM;
        for (size_t i = 0; i < v->n_items; i++) {
                s->n_repositories++;
                int r = parse_repository(v->items[i], &s->repositories[i], e);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < i; j++)
                        if (streq(s->repositories[j].name, s->repositories[i].name))
                                return fail(e, v->items[i], "duplicate repository name '%s' (also on line %u)",
                                            s->repositories[i].name, s->repositories[j].line);
        }
        return repositories_check_pins(s, v, e);
}

static void repository_done(SpecRepository *r) {
        free(r->name);
        strv_free(r->uris);
        strv_free(r->suites);
        strv_free(r->components);
        free(r->signed_by);
        free(r->key_data);
}

/* An OpenPGP public key: armored, or a binary packet stream starting with a
 * public-key packet (RFC 4880 4.2: tag 6 in the old or new packet format). */
static const char *key_problem(const char *data, size_t size, bool *ret_armored) {
        const char *p = data;
        while (p < data + size && isspace((unsigned char) *p))
                p++;
        size_t left = size - (size_t) (p - data);
        if (left >= 5 && memcmp(p, "-----", 5) == 0) {
                static const char pub[] = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
                if (left >= strlen(pub) && memcmp(p, pub, strlen(pub)) == 0) {
                        if (memchr(data, '\0', size))
                                return "is an armored key with a NUL byte in it";
                        *ret_armored = true;
                        return NULL;
                }
                if (left >= 32 && memmem(p, MIN(left, (size_t) 64), "PRIVATE KEY", 11))
                        return "is a private key; give the repository's public key";
                return "is armored but not an OpenPGP public key block";
        }
        unsigned char b = (unsigned char) data[0];
        if (size >= 2 && (b & 0x80) && ((b & 0x40) ? (b & 0x3f) == 6 : ((b >> 2) & 0x0f) == 6)) {
                *ret_armored = false;
                return NULL;
        }
        return "is not an OpenPGP public key (neither armored nor binary)";
}

int spec_load_repository_keys(Spec *s, SpecError *e) {
        for (size_t i = 0; i < s->n_repositories; i++) {
                SpecRepository *r = &s->repositories[i];
                YNode at = { .line = r->key_line, .column = r->key_column };
                _cleanup_free_ char *path = NULL, *data = NULL;
                size_t size = 0;
                bool armored = false;

                path = r->signed_by[0] == '/' ? strdup(r->signed_by) : path_join(s->base_dir, r->signed_by);
                if (!path)
                        return -ENOMEM;
                int k = read_full_file(path, SPEC_REPOSITORY_KEY_SIZE_MAX, &data, &size);
                if (k == -E2BIG)
                        return fail(e, &at, "repository '%s': key file '%s' is larger than %d bytes", r->name, path,
                                    SPEC_REPOSITORY_KEY_SIZE_MAX);
                if (k < 0)
                        return fail(e, &at, "repository '%s': cannot read key file '%s': %s", r->name, path,
                                    strerror(-k));
                if (size == 0)
                        return fail(e, &at, "repository '%s': key file '%s' is empty", r->name, path);
                const char *why = key_problem(data, size, &armored);
                if (why)
                        return fail(e, &at, "repository '%s': key file '%s' %s", r->name, path, why);
                free(r->key_data);
                r->key_data = TAKE_PTR(data);
                r->key_size = size;
                r->key_armored = armored;
        }
        return 0;
}

static int h_hook(Spec *s, const YNode *v, const char *k, SpecError *e) {
        HookStage st = hook_stage_from_string(k);
        return get_string_list(v, k, "._-/", &s->hooks[st], e);
}

static int h_hooks(Spec *s, const YNode *v, const char *k, SpecError *e) {
        static const KeyTable t[] = {
                { "post-bootstrap", h_hook },
                { "post-packages", h_hook },
                { "pre-seal", h_hook },
        };
        return walk_mapping(s, v, "hooks", t, ELEMENTSOF(t), e);
}

static int h_rootfs_type(Spec *s, const YNode *v, const char *k, SpecError *e) {
        int r = want_scalar(v, "rootfs.type", e);
        if (r < 0)
                return r;
        RootfsType t = rootfs_type_from_string(v->value);
        if (t < 0)
                return fail(e, v, "'rootfs.type' must be erofs or ext4, not '%s'", v->value);
        s->rootfs_type = t;
        return 0;
}
static int h_verity(Spec *s, const YNode *v, const char *k, SpecError *e) {
        return get_bool(v, "rootfs.verity", &s->verity, e);
}
static int h_rootfs(Spec *s, const YNode *v, const char *k, SpecError *e) {
        static const KeyTable t[] = {
                { "type", h_rootfs_type },
                { "verity", h_verity },
        };
        return walk_mapping(s, v, "rootfs", t, ELEMENTSOF(t), e);
}

static int get_partition_size(const YNode *v, const char *field, uint64_t min, const char *why, uint64_t *ret,
                              SpecError *e) {
        int r = get_size(v, field, ret, e);
        if (r < 0)
                return r;
        if (*ret < min)
                return fail(e, v, "'%s' must be at least %lluM%s", field, (unsigned long long) (min >> 20), why);
        return 0;
}
static int h_esp(Spec *s, const YNode *v, const char *k, SpecError *e) {
        return get_partition_size(v, "partitions.esp", 64ULL << 20,
                                  ": it holds GRUB and a kernel and initramfs for each slot", &s->esp_size, e);
}
static int h_root(Spec *s, const YNode *v, const char *k, SpecError *e) {
        return get_partition_size(v, "partitions.root", 64ULL << 20, "", &s->root_size, e);
}
static int h_persist(Spec *s, const YNode *v, const char *k, SpecError *e) {
        return get_partition_size(v, "partitions.persist", 32ULL << 20, "", &s->persist_size, e);
}
static int h_partitions(Spec *s, const YNode *v, const char *k, SpecError *e) {
        static const KeyTable t[] = {
                { "esp", h_esp },
                { "root", h_root },
                { "persist", h_persist },
        };
        return walk_mapping(s, v, "partitions", t, ELEMENTSOF(t), e);
}

static int h_cmdline(Spec *s, const YNode *v, const char *k, SpecError *e) {
        /* Kernel arguments end up inside a GRUB variable: no quotes, no
         * whitespace inside an argument, nothing GRUB would expand. */
        return get_string_list(v, "kernel.cmdline", "._-=,:/+@", &s->cmdline, e);
}
/* A list of module or firmware globs (modtrim.h has the syntax). */
static int get_glob_list(const YNode *v, const char *field, char ***ret, SpecError *e) {
        if (v->type != YN_SEQUENCE)
                return fail(e, v, "%s: must be a list of globs", field);
        if (v->n_items > MODTRIM_PATTERNS_MAX)
                return fail(e, v, "%s: lists %zu globs; at most %d", field, v->n_items, MODTRIM_PATTERNS_MAX);
        for (size_t i = 0; i < v->n_items; i++) {
                const YNode *n = v->items[i];
                if (n->type != YN_SCALAR)
                        return fail(e, n, "%s[%zu]: must be a glob, not a %s", field, i,
                                    n->type == YN_SEQUENCE ? "list" : "mapping");
                const char *why = modtrim_pattern_check(n->value);
                if (why) {
                        char q[STRING_QUOTE_SIZE];
                        return fail(e, n, "%s[%zu]: %s %s", field, i, string_quote(q, n->value ?: ""), why);
                }
                for (size_t j = 0; j < i; j++)
                        if (streq(v->items[j]->value, n->value))
                                return fail(e, n, "%s[%zu]: '%s' is already listed as %s[%zu]", field, i, n->value,
                                            field, j);
        }
        return get_string_list(v, field, NULL, ret, e);
}

static int h_modules_profile(Spec *s, const YNode *v, const char *k, SpecError *e) {
        int r = want_scalar(v, "kernel.modules.profile", e);
        if (r < 0)
                return r;
        ModTrimProfile p = modtrim_profile_from_string(v->value);
        if (p < 0)
                return fail(e, v, "kernel.modules.profile: must be server, vm or all, not '%s'", v->value);
        s->modules_profile = p;
        return 0;
}
static int h_modules_allow(Spec *s, const YNode *v, const char *k, SpecError *e) {
        return get_glob_list(v, "kernel.modules.allow", &s->modules_allow, e);
}
static int h_modules_deny(Spec *s, const YNode *v, const char *k, SpecError *e) {
        return get_glob_list(v, "kernel.modules.deny", &s->modules_deny, e);
}
static int h_modules(Spec *s, const YNode *v, const char *k, SpecError *e) {
        static const KeyTable t[] = {
                { "profile", h_modules_profile },
                { "allow", h_modules_allow },
                { "deny", h_modules_deny },
        };
        return walk_mapping(s, v, "kernel.modules", t, ELEMENTSOF(t), e);
}
static int h_firmware_allow(Spec *s, const YNode *v, const char *k, SpecError *e) {
        return get_glob_list(v, "kernel.firmware.allow", &s->firmware_allow, e);
}
static int h_firmware_deny(Spec *s, const YNode *v, const char *k, SpecError *e) {
        return get_glob_list(v, "kernel.firmware.deny", &s->firmware_deny, e);
}
static int h_firmware(Spec *s, const YNode *v, const char *k, SpecError *e) {
        static const KeyTable t[] = {
                { "allow", h_firmware_allow },
                { "deny", h_firmware_deny },
        };
        return walk_mapping(s, v, "kernel.firmware", t, ELEMENTSOF(t), e);
}

static int h_kernel(Spec *s, const YNode *v, const char *k, SpecError *e) {
        static const KeyTable t[] = {
                { "cmdline", h_cmdline },
                { "modules", h_modules },
                { "firmware", h_firmware },
        };
        return walk_mapping(s, v, "kernel", t, ELEMENTSOF(t), e);
}

static int h_tries(Spec *s, const YNode *v, const char *k, SpecError *e) {
        return get_uint(v, "boot.tries", 1, 9, &s->boot_tries, e);
}
static int h_timeout(Spec *s, const YNode *v, const char *k, SpecError *e) {
        return get_uint(v, "boot.timeout", 0, 60, &s->boot_timeout, e);
}
static int h_initramfs(Spec *s, const YNode *v, const char *k, SpecError *e) {
        int r = want_scalar(v, "boot.initramfs", e);
        if (r < 0)
                return r;
        BootInitramfs t = boot_initramfs_from_string(v->value);
        if (t < 0)
                return fail(e, v, "'boot.initramfs' must be hull or initramfs-tools, not '%s'", v->value);
        s->boot_initramfs = t;
        return 0;
}
static int h_boot(Spec *s, const YNode *v, const char *k, SpecError *e) {
        static const KeyTable t[] = {
                { "tries", h_tries },
                { "timeout", h_timeout },
                { "initramfs", h_initramfs },
        };
        return walk_mapping(s, v, "boot", t, ELEMENTSOF(t), e);
}

/* ---- kubernetes, images, units ------------------------------------------ */

static const char *const kubelet_source_table[_KUBELET_SOURCE_MAX] = {
        [KUBELET_SOURCE_NONE] = "none",
        [KUBELET_SOURCE_BINARY] = "file",
        [KUBELET_SOURCE_DEB] = "deb",
};

const char *kubelet_source_to_string(KubeletSource s) {
        return s >= 0 && s < _KUBELET_SOURCE_MAX ? kubelet_source_table[s] : NULL;
}

static int get_sha256(const YNode *v, const char *field, char **ret, SpecError *e) {
        int r = get_string(v, field, NULL, ret, e);
        if (r < 0)
                return r;
        size_t l = strlen(*ret);
        bool ok = l == 64;
        for (size_t i = 0; ok && i < l; i++)
                ok = ((*ret)[i] >= '0' && (*ret)[i] <= '9') || ((*ret)[i] >= 'a' && (*ret)[i] <= 'f');
        if (!ok)
                return fail(e, v, "'%s' must be a SHA-256 as 64 lower-case hex digits (sha256sum's output), not '%s'",
                            field, *ret);
        return 0;
}

static int get_source_path(const YNode *v, const char *field, char **ret, SpecError *e) {
        int r = get_string(v, field, NULL, ret, e);
        if (r < 0)
                return r;
        if (strpbrk(*ret, "\n\t"))
                return fail(e, v, "'%s' must be a file name without tabs or line breaks", field);
        return 0;
}

static int h_kubelet(Spec *s, const YNode *v, const char *k, SpecError *e) {
        const YNode *src = NULL;
        int r;

        if (v->type != YN_MAPPING)
                return fail(e, v, "'kubernetes.kubelet' must be a mapping: file or deb, and sha256");
        for (size_t i = 0; i + 1 < v->n_items; i += 2) {
                const YNode *key = v->items[i], *val = v->items[i + 1];
                for (size_t j = 0; j < i; j += 2)
                        if (streq(v->items[j]->value, key->value))
                                return fail(e, key, "duplicate key '%s' in 'kubernetes.kubelet'", key->value);
                if (streq(key->value, "file") || streq(key->value, "deb")) {
                        if (src)
                                return fail(e, key, "'kubernetes.kubelet' takes one of file and deb, not both");
                        src = key;
                        s->kubernetes.kubelet_source = streq(key->value, "file") ? KUBELET_SOURCE_BINARY
                                                                                  : KUBELET_SOURCE_DEB;
                        r = get_source_path(val, streq(key->value, "file") ? "kubernetes.kubelet.file"
                                                                            : "kubernetes.kubelet.deb",
                                            &s->kubernetes.kubelet_path, e);
                } else if (streq(key->value, "sha256"))
                        r = get_sha256(val, "kubernetes.kubelet.sha256", &s->kubernetes.kubelet_sha256, e);
                else
                        r = fail(e, key, "unknown key '%s' in 'kubernetes.kubelet' (known keys: file, deb, sha256; "
                                 "a kubelet from a repository is an ordinary package under 'packages')",
                                 key->value);
                if (r < 0)
                        return r;
        }
        if (!src)
                return fail(e, v, "'kubernetes.kubelet' needs 'file' (a kubelet binary) or 'deb' (a kubelet package file)");
        if (!s->kubernetes.kubelet_sha256)
                return fail(e, v, "'kubernetes.kubelet' needs 'sha256': a kubelet from a file is pinned by its digest");
        return 0;
}

static int h_sandbox_image(Spec *s, const YNode *v, const char *k, SpecError *e) {
        int r = get_string(v, "kubernetes.sandbox_image", "._-/:@", &s->kubernetes.sandbox_image, e);
        if (r < 0)
                return r;
        const char *i = s->kubernetes.sandbox_image;
        /* An image reference (registry/name[:tag][@digest]); it lands in
         * containerd's TOML as a quoted string. */
        if (strlen(i) > 255 || !isalnum((unsigned char) i[0]) || strstr(i, "//") || i[strlen(i) - 1] == '/' ||
            i[strlen(i) - 1] == ':')
                return fail(e, v, "'kubernetes.sandbox_image' must be an image reference such as %s, not '%s'",
                            SPEC_DEFAULT_SANDBOX_IMAGE, i);
        return 0;
}

static int h_kubernetes(Spec *s, const YNode *v, const char *k, SpecError *e) {
        static const KeyTable t[] = {
                { "kubelet", h_kubelet },
                { "sandbox_image", h_sandbox_image },
        };
        s->kubernetes.enabled = true;
        /* "kubernetes: {}" is a node without a kubelet from a file. */
        return walk_mapping(s, v, "kubernetes", t, ELEMENTSOF(t), e);
}

static int h_images(Spec *s, const YNode *v, const char *k, SpecError *e) {
        if (v->type != YN_SEQUENCE)
                return fail(e, v, "'images' must be a list of image archives (source, optional sha256)");
        if (v->n_items > SPEC_IMAGES_MAX)
                return fail(e, v, "'images' lists %zu archives; at most %d", v->n_items, SPEC_IMAGES_MAX);
        s->images = calloc(v->n_items ?: 1, sizeof(SpecImage));
        if (!s->images)
                return -ENOMEM;
        for (size_t i = 0; i < v->n_items; i++) {
                const YNode *n = v->items[i];
                SpecImage *img = &s->images[s->n_images++];
                int r;

                if (n->type != YN_MAPPING)
                        return fail(e, n, "each entry of 'images' must be a mapping with source (and optionally sha256)");
                for (size_t j = 0; j + 1 < n->n_items; j += 2) {
                        const YNode *key = n->items[j], *val = n->items[j + 1];
                        for (size_t m = 0; m < j; m += 2)
                                if (streq(n->items[m]->value, key->value))
                                        return fail(e, key, "duplicate key '%s' in an 'images' entry", key->value);
                        if (streq(key->value, "source"))
                                r = get_source_path(val, "images.source", &img->source, e);
                        else if (streq(key->value, "sha256"))
                                r = get_sha256(val, "images.sha256", &img->sha256, e);
                        else
                                r = fail(e, key, "unknown key '%s' in an 'images' entry (known keys: source, sha256)",
                                         key->value);
                        if (r < 0)
                                return r;
                }
                if (!img->source)
                        return fail(e, n, "an 'images' entry is missing 'source'");
                /* Archives keep their file names in the image. */
                const char *base = strrchr(img->source, '/') ? strrchr(img->source, '/') + 1 : img->source;
                if (isempty(base) || streq(base, ".") || streq(base, "..") || !string_is_safe_token(base, "._+-"))
                        return fail(e, n, "'images.source' must name a file whose name has only letters, digits and "
                                    "\"._+-\", not '%s'", img->source);
                for (size_t m = 0; m + 1 < s->n_images; m++) {
                        const char *b = strrchr(s->images[m].source, '/') ? strrchr(s->images[m].source, '/') + 1
                                                                           : s->images[m].source;
                        if (streq(b, base))
                                return fail(e, n, "two 'images' entries have the file name '%s'", base);
                }
        }
        return 0;
}

const char *const spec_default_off_units[] = {
        /* apt, dpkg and man-db are gone from a sealed image: their timers
         * would only fail or scan a read-only tree */
        "apt-daily.timer", "apt-daily.service", "apt-daily-upgrade.timer", "apt-daily-upgrade.service",
        "dpkg-db-backup.timer", "dpkg-db-backup.service", "man-db.timer", "man-db.service",
        /* e2scrub needs LVM snapshots; the root is read-only and persist is
         * checked by hull-init at every boot */
        "e2scrub_all.timer", "e2scrub_all.service", "e2scrub_reap.service",
        /* Debian's fallback gettys on tty2..tty6, for systems without logind */
        "getty-static.service",
        /* not masked: a login prompt on tty1 only where there is a display
         * (a firmware frame buffer), and no VT reserved by logind */
        "getty@tty1.service", "autovt@tty6.service",
        NULL,
};

static int get_unit_list(const YNode *v, const char *field, char ***ret, SpecError *e) {
        int r = get_string_list(v, field, NULL, ret, e);
        if (r < 0)
                return r;
        if (strv_length(*ret) > SPEC_UNITS_MAX)
                return fail(e, v, "'%s' lists more than %d units", field, SPEC_UNITS_MAX);
        for (size_t i = 0; (*ret)[i]; i++) {
                const char *why = unit_name_check((*ret)[i]);
                if (why)
                        return fail(e, v->items[i], "'%s': '%s' %s", field, (*ret)[i], why);
                for (size_t j = 0; j < i; j++)
                        if (streq((*ret)[i], (*ret)[j]))
                                return fail(e, v->items[i], "'%s' lists '%s' twice", field, (*ret)[i]);
        }
        return 0;
}
static int h_units_enable(Spec *s, const YNode *v, const char *k, SpecError *e) {
        return get_unit_list(v, "units.enable", &s->units_enable, e);
}
static int h_units_mask(Spec *s, const YNode *v, const char *k, SpecError *e) {
        return get_unit_list(v, "units.mask", &s->units_mask, e);
}
static int h_units_keep(Spec *s, const YNode *v, const char *k, SpecError *e) {
        int r = get_unit_list(v, "units.keep", &s->units_keep, e);
        if (r < 0)
                return r;
        for (size_t i = 0; s->units_keep[i]; i++)
                if (!strv_contains((char *const *) spec_default_off_units, s->units_keep[i]))
                        return fail(e, v->items[i],
                                    "'units.keep': '%s' is not one of the units Hull turns off (docs/SPEC.md, units); "
                                    "to run another unit, list it in 'units.enable'",
                                    s->units_keep[i]);
        return 0;
}
static int h_units(Spec *s, const YNode *v, const char *k, SpecError *e) {
        static const KeyTable t[] = {
                { "enable", h_units_enable },
                { "mask", h_units_mask },
                { "keep", h_units_keep },
        };
        int r = walk_mapping(s, v, "units", t, ELEMENTSOF(t), e);
        if (r < 0)
                return r;
        for (char **u = s->units_keep; u && *u; u++)
                if (strv_contains(s->units_mask, *u))
                        return fail(e, v, "'units': '%s' is both kept and masked", *u);
        for (char **u = s->units_enable; u && *u; u++)
                if (strv_contains(s->units_mask, *u))
                        return fail(e, v, "'units': '%s' is both enabled and masked", *u);
        return 0;
}

static int h_format(Spec *s, const YNode *v, const char *k, SpecError *e) {
        unsigned f = 0;
        int r = get_uint(v, "format", 0, UINT32_MAX, &f, e);
        if (r < 0)
                return r;
        if (f != 1)
                return fail(e, v, "spec format %u is not supported by this hull-build (supported: 1)", f);
        return 0;
}

Spec *spec_free(Spec *s) {
        if (!s)
                return NULL;
        free(s->name);
        free(s->version);
        free(s->arch);
        free(s->backend);
        free(s->suite);
        free(s->mirror);
        free(s->variant);
        strv_free(s->components);
        strv_free(s->packages);
        for (size_t i = 0; i < s->n_files; i++) {
                free(s->files[i].source);
                free(s->files[i].path);
                free(s->files[i].owner);
                free(s->files[i].group);
        }
        free(s->files);
        for (size_t i = 0; i < s->n_repositories; i++)
                repository_done(&s->repositories[i]);
        free(s->repositories);
        for (int i = 0; i < _HOOK_STAGE_MAX; i++)
                strv_free(s->hooks[i]);
        strv_free(s->cmdline);
        strv_free(s->modules_allow);
        strv_free(s->modules_deny);
        strv_free(s->firmware_allow);
        strv_free(s->firmware_deny);
        free(s->kubernetes.kubelet_path);
        free(s->kubernetes.kubelet_sha256);
        free(s->kubernetes.sandbox_image);
        for (size_t i = 0; i < s->n_images; i++) {
                free(s->images[i].source);
                free(s->images[i].sha256);
        }
        free(s->images);
        strv_free(s->units_enable);
        strv_free(s->units_mask);
        strv_free(s->units_keep);
        free(s->base_dir);
        free(s);
        return NULL;
}

static int set_default(char **field, const char *value) {
        if (*field)
                return 0;
        *field = strdup(value);
        return *field ? 0 : -ENOMEM;
}

int spec_parse(const char *data, size_t len, const char *base_dir, Spec **ret, SpecError *e) {
        static const KeyTable top[] = {
                { "format", h_format },       { "name", h_name },       { "version", h_version },
                { "arch", h_arch },           { "distribution", h_distribution },
                { "packages", h_packages },   { "files", h_files },     { "hooks", h_hooks },
                { "rootfs", h_rootfs },       { "partitions", h_partitions },
                { "kernel", h_kernel },       { "boot", h_boot },
                { "kubernetes", h_kubernetes }, { "images", h_images }, { "units", h_units },
                { "repositories", h_repositories },
        };
        _cleanup_(ynode_freep) YNode *root = NULL;
        _cleanup_(spec_freep) Spec *s = NULL;
        int r;

        if (e)
                *e = (SpecError) {};
        if (len > SPEC_SIZE_MAX)
                return -E2BIG;

        r = yaml_load(data, len, &root, e);
        if (r < 0)
                return r;

        s = calloc(1, sizeof(Spec));
        if (!s)
                return -ENOMEM;
        s->esp_size = SPEC_DEFAULT_ESP_SIZE;
        s->root_size = SPEC_DEFAULT_ROOT_SIZE;
        s->persist_size = SPEC_DEFAULT_PERSIST_SIZE;
        s->boot_tries = 3;
        s->boot_timeout = 1;
        s->boot_initramfs = BOOT_INITRAMFS_HULL;
        s->rootfs_type = ROOTFS_EROFS;

        r = walk_mapping(s, root, "spec", top, ELEMENTSOF(top), e);
        if (r < 0)
                return r;

        if (!s->name)
                return fail(e, root, "the spec has no 'name'");
        if (!s->version)
                return fail(e, root, "the spec has no 'version'");
        if (!s->suite)
                return fail(e, root, "the spec has no 'distribution.suite' (for example bookworm)");

        if (set_default(&s->arch, "x86_64") < 0 || set_default(&s->backend, "debian") < 0 ||
            set_default(&s->mirror, SPEC_DEFAULT_MIRROR) < 0 || set_default(&s->variant, "minbase") < 0 ||
            set_default(&s->base_dir, base_dir ?: ".") < 0 ||
            (s->kubernetes.enabled && set_default(&s->kubernetes.sandbox_image, SPEC_DEFAULT_SANDBOX_IMAGE) < 0))
                return -ENOMEM;
        if (!s->components && !(s->components = strv_append(NULL, "main")))
                return -ENOMEM;

        *ret = TAKE_PTR(s);
        return 0;
}

int spec_load(const char *path, Spec **ret, SpecError *e) {
        _cleanup_free_ char *data = NULL, *copy = NULL;
        size_t size;
        int r;

        if (e)
                *e = (SpecError) {};
        r = read_full_file(path, SPEC_SIZE_MAX, &data, &size);
        if (r == -E2BIG) {
                if (e)
                        (void) snprintf(e->message, sizeof(e->message), "the spec is larger than %d bytes", SPEC_SIZE_MAX);
                return r;
        }
        if (r < 0)
                return r;
        copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        _cleanup_(spec_freep) Spec *s = NULL;
        r = spec_parse(data, size, dirname(copy), &s, e);
        if (r < 0)
                return r;
        r = spec_load_repository_keys(s, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}
