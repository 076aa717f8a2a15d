/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The module index parsers of modtrim.h on arbitrary bytes: the input is
 * modules.dep, modules.softdep, modules.alias and modules.builtin separated
 * by form feeds. Whatever loads must resolve, and the result must be
 * closed: every dependency of a kept module is kept. Names resolve through
 * modtrim_lookup() to distinct, valid modules. The same bytes go through
 * the .modinfo reader and the glob matcher. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "modtrim.h"
#include "strutil.h"

/* modtrim_lookup(): valid, distinct indexes; with want, just the module of
 * that name. */
static void check_lookup(const ModTrim *t, const char *name, const char *want) {
        _cleanup_free_ size_t *v = NULL;
        size_t n = 0;
        bool builtin;
        int r = modtrim_lookup(t, name, &v, &n, &builtin);
        if (r == -ENOMEM)
                return;
        if (r < 0 || (n == 0) != !v || (want && (n != 1 || !streq(t->modules[v[0]].name, want))))
                abort();
        for (size_t i = 0; i < n; i++) {
                if (v[i] >= t->n_modules)
                        abort();
                for (size_t j = 0; j < i; j++)
                        if (v[i] == v[j])
                                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = NULL, *err = NULL;
        char *part[4] = {};
        int r;

        if (size > (1 << 20))
                return 0;
        text = malloc(size + 1);
        if (!text)
                return 0;
        if (size > 0)
                memcpy(text, data, size);
        text[size] = '\0';

        /* Four texts, split at form feeds; embedded NULs end a text early,
         * as they would for a file read as a string. */
        char *p = text;
        for (size_t i = 0; i < 4 && p; i++) {
                part[i] = p;
                p = strchr(p, '\f');
                if (p)
                        *p++ = '\0';
        }

        ModTrim *t = NULL;
        r = modtrim_load(&(ModTrimSources) { part[0], part[1], part[2], part[3] }, &t, &err);
        if (r >= 0) {
                /* Every soft dependency resolves to distinct modules; the
                 * "pre:" ones are among them; a module's own name finds it. */
                for (size_t i = 0; i < t->n_modules; i++) {
                        const ModTrimModule *m = &t->modules[i];
                        if (strv_length(m->softdeps_pre) > strv_length(m->softdeps))
                                abort();
                        for (char **sd = m->softdeps; sd && *sd; sd++)
                                check_lookup(t, *sd, NULL);
                        check_lookup(t, m->name, m->name);
                }
                char *deny[] = { (char *) "drivers/**", NULL };
                char *allow[] = { (char *) "drivers/net/**", NULL };
                for (ModTrimProfile pr = 0; pr < _MODTRIM_PROFILE_MAX; pr++) {
                        ModTrimRules rules = {
                                .profile = pr, .deny = pr == MODTRIM_PROFILE_SERVER ? deny : NULL, .allow = allow
                        };
                        r = modtrim_resolve(t, &rules, &err);
                        if (r < 0 && r != -EPERM && r != -ENOMEM)
                                abort();
                        if (r < 0)
                                continue;
                        for (size_t i = 0; i < t->n_modules; i++) {
                                const ModTrimModule *m = &t->modules[i];
                                if (!m->reason || (pr == MODTRIM_PROFILE_ALL && !m->keep))
                                        abort();
                                for (size_t d = 0; m->keep && d < m->n_deps; d++)
                                        if (m->deps[d] >= t->n_modules || !t->modules[m->deps[d]].keep)
                                                abort();
                        }
                }
                t = modtrim_free(t);
        } else if ((r != -EBADMSG && r != -E2BIG && r != -ENOMEM) || t)
                abort();

        char **fw = NULL;
        r = modtrim_modinfo_firmware(data, size, &fw);
        if (r >= 0) {
                for (char **f = fw; *f; f++)
                        if (**f == '\0')
                                abort();
                strv_free(fw);
        } else if (r != -EBADMSG && r != -E2BIG && r != -ENOMEM)
                abort();

        /* The first text as a glob against the second: a valid glob
         * matches itself when it has no wildcards. */
        if (part[1] && strlen(part[0]) < 512 && strlen(part[1]) < 4096) {
                (void) modtrim_glob_match(part[0], part[1]);
                if (!modtrim_pattern_check(part[0]) && !strpbrk(part[0], "*?") && !modtrim_glob_match(part[0], part[0]))
                        abort();
        }
        return 0;
}
