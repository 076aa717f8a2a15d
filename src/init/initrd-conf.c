/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fnmatch.h>
#include <string.h>

#include "initrd-conf.h"
#include "strutil.h"

static const char *const class_names[_INITRD_MODULE_CLASS_MAX] = {
        [INITRD_MODULE_REQUIRED] = "required",
        [INITRD_MODULE_STORAGE] = "storage",
        [INITRD_MODULE_LIVE] = "live",
        [INITRD_MODULE_DEP] = "dep",
};

const char *initrd_module_class_to_string(InitrdModuleClass c) {
        return c >= 0 && c < _INITRD_MODULE_CLASS_MAX ? class_names[c] : NULL;
}

bool initrd_module_path_is_valid(const char *p) {
        size_t l = strlen(p);

        if (l <= 3 || l > 255 || p[0] == '/' || !streq(p + l - 3, ".ko"))
                return false;
        for (const char *q = p; *q; q++)
                if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+-/", *q))
                        return false;
        /* Each component: not empty, not "." or "..". */
        for (const char *c = p; c;) {
                const char *slash = strchr(c, '/');
                size_t cl = slash ? (size_t) (slash - c) : strlen(c);
                if (cl == 0 || (cl == 1 && c[0] == '.') || (cl == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                c = slash ? slash + 1 : NULL;
        }
        return true;
}

/* A glob from modules.alias: printable, no white space. */
static bool alias_is_valid(const char *a) {
        if (a[0] == '\0' || strlen(a) > 512)
                return false;
        for (const char *q = a; *q; q++)
                if ((unsigned char) *q <= ' ' || (unsigned char) *q >= 0x7f)
                        return false;
        return true;
}

static void module_done(InitrdModule *m) {
        free(m->path);
        free(m->name);
        free(m->deps);
        free(m->softs);
        strv_free(m->aliases);
}

void initrd_conf_done(InitrdConf *c) {
        free(c->kver);
        free(c->rootfstype);
        free(c->build_id);
        for (size_t i = 0; i < c->n_modules; i++)
                module_done(&c->modules[i]);
        free(c->modules);
        *c = (InitrdConf) {};
}

static int set_once(char **field, const char *value) {
        if (*field || !string_is_safe_token(value, "-_.+~"))
                return -EBADMSG;
        *field = strdup(value);
        return *field ? 0 : -ENOMEM;
}

/* Split a line at single spaces into at most max words (in place). */
static int split(char *line, char **words, size_t max, size_t *ret_n) {
        size_t n = 0;

        for (char *p = line;;) {
                char *sp = strchr(p, ' ');
                if (sp)
                        *sp = '\0';
                if (p[0] == '\0')
                        return -EBADMSG; /* double, leading or trailing space */
                if (n >= max)
                        return -E2BIG;
                words[n++] = p;
                if (!sp)
                        break;
                p = sp + 1;
        }
        *ret_n = n;
        return 0;
}

static int find_module(const InitrdConf *c, const char *path, size_t *ret) {
        for (size_t i = 0; i < c->n_modules; i++)
                if (streq(c->modules[i].path, path)) {
                        *ret = i;
                        return 0;
                }
        return -ENOENT;
}

static int parse_module(InitrdConf *c, char **w, size_t n) {
        InitrdModule m = {};
        size_t idx;
        int r = -EBADMSG;

        if (n < 3)
                return -EBADMSG;
        m.class = _INITRD_MODULE_CLASS_MAX;
        for (size_t i = 0; i < _INITRD_MODULE_CLASS_MAX; i++)
                if (streq(w[1], class_names[i]))
                        m.class = (InitrdModuleClass) i;
        if (m.class == _INITRD_MODULE_CLASS_MAX || !initrd_module_path_is_valid(w[2]))
                return -EBADMSG;
        if (find_module(c, w[2], &idx) >= 0)
                return -EBADMSG; /* listed twice */
        if (c->n_modules >= INITRD_CONF_MAX_MODULES)
                return -E2BIG;

        m.path = strdup(w[2]);
        const char *base = strrchr(w[2], '/');
        base = base ? base + 1 : w[2];
        m.name = strndup(base, strlen(base) - 3);
        m.deps = calloc(n, sizeof(size_t));
        m.softs = calloc(n, sizeof(size_t));
        if (!m.path || !m.name || !m.deps || !m.softs) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t i = 3; i < n; i++) {
                if (string_has_prefix(w[i], "dep=")) {
                        /* Earlier lines only: no cycles, and the loader's
                         * recursion is bounded by the file. */
                        if (find_module(c, w[i] + 4, &idx) < 0)
                                goto fail;
                        m.deps[m.n_deps++] = idx;
                } else if (string_has_prefix(w[i], "soft=")) {
                        if (find_module(c, w[i] + 5, &idx) < 0)
                                goto fail;
                        m.softs[m.n_softs++] = idx;
                } else if (string_has_prefix(w[i], "alias=")) {
                        /* Only storage candidates are matched against devices. */
                        if (m.class != INITRD_MODULE_STORAGE || !alias_is_valid(w[i] + 6))
                                goto fail;
                        char **l = strv_append(m.aliases, w[i] + 6);
                        if (!l) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        m.aliases = l;
                } else
                        goto fail;
        }

        InitrdModule *a = realloc(c->modules, (c->n_modules + 1) * sizeof(InitrdModule));
        if (!a) {
                r = -ENOMEM;
                goto fail;
        }
        c->modules = a;
        c->modules[c->n_modules++] = m;
        return 0;
fail:
        module_done(&m);
        return r;
}

static int parse_line(InitrdConf *c, char *line, bool first) {
        char *w[8192];
        size_t n;
        int r;

        r = split(line, w, ELEMENTSOF(w), &n);
        if (r < 0)
                return -EBADMSG;
        if (first)
                return n == 2 && streq(w[0], "hull-initrd-conf") && streq(w[1], "1") ? 0 : -EBADMSG;
        if (streq(w[0], "module"))
                return parse_module(c, w, n);
        if (n != 2)
                return -EBADMSG;
        if (streq(w[0], "kver"))
                return set_once(&c->kver, w[1]);
        if (streq(w[0], "rootfstype"))
                return set_once(&c->rootfstype, w[1]);
        if (streq(w[0], "build-id"))
                return set_once(&c->build_id, w[1]);
        return -EBADMSG;
}

int initrd_conf_parse(const char *text, size_t size, InitrdConf *ret, unsigned *ret_line) {
        InitrdConf c = {};
        unsigned lineno = 0;
        bool first = true;
        int r = 0;

        if (size > INITRD_CONF_MAX)
                return -E2BIG;
        if (memchr(text, '\0', size))
                r = -EBADMSG;

        for (size_t i = 0; r >= 0 && i < size;) {
                const char *nl = memchr(text + i, '\n', size - i);
                size_t l = nl ? (size_t) (nl - (text + i)) : size - i;
                lineno++;
                if (l > 0 && text[i] != '#') {
                        _cleanup_free_ char *line = strndup(text + i, l);
                        if (!line)
                                r = -ENOMEM;
                        else
                                r = parse_line(&c, line, first);
                        first = false;
                }
                i += l + 1;
        }
        if (r >= 0 && (first || !c.kver)) {
                lineno++;
                r = -EBADMSG; /* empty, or no kver line */
        }
        if (r < 0) {
                if (ret_line)
                        *ret_line = lineno;
                initrd_conf_done(&c);
                return r == -E2BIG ? -EBADMSG : r;
        }
        *ret = c;
        return 0;
}

bool initrd_module_matches(const InitrdModule *m, const char *modalias) {
        if (!m->aliases)
                return false;
        for (char **a = m->aliases; *a; a++)
                if (fnmatch(*a, modalias, 0) == 0)
                        return true;
        return false;
}
