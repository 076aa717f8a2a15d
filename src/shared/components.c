/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "components.h"
#include "kube-version.h"
#include "strutil.h"

/* Sorted, as the enum: the canonical JSON lists them in this order. */
static const char *const component_names[_COMPONENT_MAX] = {
        [COMPONENT_CONTAINERD] = "containerd",
        [COMPONENT_KERNEL] = "kernel",
        [COMPONENT_KUBELET] = "kubelet",
        [COMPONENT_RUNC] = "runc",
};

const char *component_to_string(Component c) {
        if (c < 0 || c >= _COMPONENT_MAX)
                return NULL;
        return component_names[c];
}

Component component_from_string(const char *s) {
        if (!s)
                return _COMPONENT_INVALID;
        for (int i = 0; i < _COMPONENT_MAX; i++)
                if (streq(s, component_names[i]))
                        return (Component) i;
        return _COMPONENT_INVALID;
}

void components_done(Components *c) {
        if (!c)
                return;
        for (size_t i = 0; i < _COMPONENT_MAX; i++)
                free(c->version[i]);
        *c = (Components) {};
}

bool components_is_empty(const Components *c) {
        for (size_t i = 0; c && i < _COMPONENT_MAX; i++)
                if (c->version[i])
                        return false;
        return true;
}

static bool alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* The manifest's token rule, with its own length limit. */
static bool token_ok(const char *s) {
        if (!s || !alnum(s[0]))
                return false;
        size_t l = strnlen(s, COMPONENT_VERSION_MAX + 1);
        if (l > COMPONENT_VERSION_MAX)
                return false;
        for (size_t i = 0; i < l; i++)
                if (!alnum(s[i]) && !strchr("._+~-", s[i]))
                        return false;
        return true;
}

bool component_version_is_valid(Component k, const char *v) {
        if (k < 0 || k >= _COMPONENT_MAX || !token_ok(v))
                return false;
        if (k == COMPONENT_KUBELET)
                return kube_version_parse(v, NULL) >= 0;
        return true;
}

int components_set(Components *c, Component k, const char *v) {
        if (!c || k < 0 || k >= _COMPONENT_MAX)
                return -EINVAL;
        if (v && !component_version_is_valid(k, v))
                return -EINVAL;
        char *n = NULL;
        if (v && !(n = strdup(v)))
                return -ENOMEM;
        free(c->version[k]);
        c->version[k] = n;
        return 0;
}

int components_copy(const Components *from, Components *ret) {
        Components c = {};
        for (size_t i = 0; i < _COMPONENT_MAX; i++)
                if (from && from->version[i] && !(c.version[i] = strdup(from->version[i]))) {
                        components_done(&c);
                        return -ENOMEM;
                }
        *ret = c;
        return 0;
}

int components_from_json(json_t *obj, Components *ret, char **ret_error) {
        Components c = {};
        char q[STRING_QUOTE_SIZE];
        const char *key;
        json_t *v;
        int r;

        if (!json_is_object(obj))
                return error_set(ret_error, -EBADMSG, "components: not a JSON object");
        json_object_foreach(obj, key, v) {
                Component k = component_from_string(key);
                if (k < 0) {
                        r = error_set(ret_error, -EBADMSG,
                                      "components: unknown component %s (known: containerd, kernel, kubelet, runc)",
                                      string_quote(q, key));
                        goto fail;
                }
                const char *s = json_string_value(v);
                if (!s || strlen(s) != json_string_length(v)) {
                        r = error_set(ret_error, -EBADMSG, "components.%s: not a string", key);
                        goto fail;
                }
                if (!component_version_is_valid(k, s)) {
                        r = k == COMPONENT_KUBELET
                                ? error_set(ret_error, -EBADMSG,
                                            "components.%s: %s is not a Kubernetes version such as v1.32.0", key,
                                            string_quote(q, s))
                                : error_set(ret_error, -EBADMSG,
                                            "components.%s: %s is not a version (1 to %d characters of "
                                            "[A-Za-z0-9._+~-], starting with a letter or digit)",
                                            key, string_quote(q, s), COMPONENT_VERSION_MAX);
                        goto fail;
                }
                if (!(c.version[k] = strdup(s))) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        *ret = c;
        return 0;
fail:
        components_done(&c);
        return r;
}

json_t *components_to_json(const Components *c) {
        json_t *o = json_object();
        if (!o)
                return NULL;
        for (size_t i = 0; c && i < _COMPONENT_MAX; i++)
                if (c->version[i] && json_object_set_new(o, component_names[i], json_string(c->version[i])) < 0) {
                        json_decref(o);
                        return NULL;
                }
        return o;
}

int components_parse(const char *data, size_t len, Components *ret, char **ret_error) {
        json_error_t jerr;

        if (!data || !ret)
                return -EINVAL;
        if (len > COMPONENTS_FILE_MAX)
                return error_set(ret_error, -E2BIG, "components: more than %d bytes", COMPONENTS_FILE_MAX);
        json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!j)
                return error_set(ret_error, -EBADMSG, "components: not JSON: %s", jerr.text);
        int r = components_from_json(j, ret, ret_error);
        json_decref(j);
        return r;
}

int components_format(const Components *c, char **ret) {
        json_t *j = components_to_json(c);
        if (!j)
                return -ENOMEM;
        char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
        json_decref(j);
        if (!s)
                return -ENOMEM;
        char *n = NULL;
        int k = asprintf(&n, "%s\n", s);
        free(s);
        if (k < 0)
                return -ENOMEM;
        *ret = n;
        return 0;
}

/* ---- build-time parsers ---- */

static char *cut_at(char *s, const char *marker) {
        char *p = strstr(s, marker);
        if (p)
                *p = '\0';
        return s;
}

int debian_upstream_version(const char *raw, char **ret) {
        if (!raw || !ret)
                return -EINVAL;
        const char *s = raw;
        const char *colon = strchr(s, ':');
        if (colon) {
                /* The epoch is digits only; anything else is not a Debian version. */
                if (colon == s || strspn(s, "0123456789") != (size_t) (colon - s))
                        return -EINVAL;
                s = colon + 1;
        }
        _cleanup_free_ char *v = strndup(s, COMPONENT_VERSION_MAX * 2);
        if (!v)
                return -ENOMEM;
        if (strlen(s) > COMPONENT_VERSION_MAX * 2)
                return -EINVAL;
        char *dash = strrchr(v, '-');
        if (dash)
                *dash = '\0';
        /* Repacks of the upstream tarball, not a version difference. */
        static const char *const repack[] = { "+ds", "~ds", "+dfsg", "~dfsg" };
        for (size_t i = 0; i < ELEMENTSOF(repack); i++)
                (void) cut_at(v, repack[i]);
        for (char *p = v; *p; p++)
                if (*p == '~')
                        *p = '-';
        if (!token_ok(v))
                return -EINVAL;
        *ret = TAKE_PTR(v);
        return 0;
}

int kubelet_version_from_output(const char *out, char **ret) {
        static const char prefix[] = "Kubernetes ";
        if (!out || !ret || !string_has_prefix(out, prefix))
                return -EINVAL;
        const char *v = out + strlen(prefix);
        size_t l = strcspn(v, "\r\n");
        /* Nothing but one line (a trailing newline is fine). */
        if (v[l] && strspn(v + l, "\r\n") != strlen(v + l))
                return -EINVAL;
        _cleanup_free_ char *s = strndup(v, l);
        if (!s)
                return -ENOMEM;
        if (!component_version_is_valid(COMPONENT_KUBELET, s))
                return -EINVAL;
        *ret = TAKE_PTR(s);
        return 0;
}

int components_from_package_list(const char *list, Components *c) {
        if (!list || !c)
                return -EINVAL;
        for (const char *line = list; *line;) {
                size_t l = strcspn(line, "\n");
                _cleanup_free_ char *copy = strndup(line, l);
                if (!copy)
                        return -ENOMEM;
                line += l + (line[l] == '\n');

                char *sp = strchr(copy, ' ');
                if (!sp)
                        continue;
                *sp = '\0';
                const char *name = copy, *raw = sp + 1;
                Component k;
                if (streq(name, "containerd") || streq(name, "containerd.io"))
                        k = COMPONENT_CONTAINERD;
                else if (streq(name, "runc"))
                        k = COMPONENT_RUNC;
                else if (streq(name, "kubelet"))
                        k = COMPONENT_KUBELET;
                else
                        continue;

                _cleanup_free_ char *v = NULL, *kv = NULL;
                int r = debian_upstream_version(raw, &v);
                if (r < 0)
                        return r;
                if (k == COMPONENT_KUBELET) {
                        if (asprintf(&kv, "v%s", v) < 0)
                                return -ENOMEM;
                }
                r = components_set(c, k, kv ?: v);
                if (r < 0)
                        return r;
        }
        return 0;
}
