/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "init-cmdline.h"
#include "strutil.h"

int cmdline_next_word(const char **p, char **ret) {
        const char *s = *p;
        bool in_quote = false;

        while (*s && isspace((unsigned char) *s))
                s++;
        if (*s == '\0') {
                *p = s;
                return 0;
        }

        /* The word is never longer than what is left of the line. */
        _cleanup_free_ char *w = malloc(strlen(s) + 1);
        if (!w)
                return -ENOMEM;

        size_t n = 0;
        for (; *s; s++) {
                if (*s == '"') {
                        in_quote = !in_quote;
                        continue;
                }
                if (!in_quote && isspace((unsigned char) *s))
                        break;
                w[n++] = *s;
        }
        w[n] = '\0';

        *p = s;
        *ret = TAKE_PTR(w);
        return 1;
}

bool hull_slot_name_is_valid(const char *s) {
        return string_is_safe_token(s, "-_") && strlen(s) <= HULL_MAX_SLOT_LEN;
}

bool hull_roothash_is_valid(const char *s) {
        size_t l = strlen(s);

        if (l < 2 || l > HULL_MAX_ROOTHASH_LEN || l % 2 != 0)
                return false;
        for (const char *q = s; *q; q++)
                if (!isxdigit((unsigned char) *q))
                        return false;
        return true;
}

bool hull_persist_spec_is_valid(const char *s) {
        static const char *const tags[] = { "PARTLABEL=", "PARTUUID=", "LABEL=", "UUID=" };

        if (s[0] == '/')
                return true;
        for (size_t i = 0; i < ELEMENTSOF(tags); i++)
                if (string_has_prefix(s, tags[i]) && s[strlen(tags[i])] != '\0')
                        return true;
        return false;
}

/* Replace *field by a copy of value. */
static int set_string(char **field, const char *value) {
        char *c = strdup(value);
        if (!c)
                return -ENOMEM;
        free(*field);
        *field = c;
        return 0;
}

static int parse_one(HullCmdline *c, const char *word) {
        const char *eq = strchr(word, '=');
        const char *value = eq ? eq + 1 : NULL;
        size_t klen = eq ? (size_t) (eq - word) : strlen(word);

#define KEY_IS(k) (klen == strlen(k) && strncmp(word, (k), klen) == 0)

        if (KEY_IS("hull.slot")) {
                if (!value || !hull_slot_name_is_valid(value)) {
                        c->invalid_key = "hull.slot";
                        return -EINVAL;
                }
                return set_string(&c->slot, value);
        }

        if (KEY_IS("hull.boot")) {
                /* Only "degraded" means anything today; other values ("normal")
                 * select the ordinary boot, so that GRUB may always pass the key. */
                c->degraded = value && streq(value, "degraded");
                return 0;
        }

        if (KEY_IS("hull.verity.roothash")) {
                /* Never skip verification because of a malformed hash: refuse. */
                if (!value || !hull_roothash_is_valid(value)) {
                        c->invalid_key = "hull.verity.roothash";
                        return -EINVAL;
                }
                int r = set_string(&c->verity_roothash, value);
                if (r < 0)
                        return r;
                for (char *q = c->verity_roothash; *q; q++)
                        *q = (char) tolower((unsigned char) *q);
                return 0;
        }

        if (KEY_IS("hull.persist")) {
                if (!value || !hull_persist_spec_is_valid(value)) {
                        c->invalid_key = "hull.persist";
                        return -EINVAL;
                }
                return set_string(&c->persist, value);
        }

        if (KEY_IS("hull.init")) {
                if (!value || value[0] != '/') {
                        c->invalid_key = "hull.init";
                        return -EINVAL;
                }
                return set_string(&c->init, value);
        }

        /* The keys of hull-initrd: a bad value is noted, not refused here
         * (see invalid_initrd_key). */
        if (KEY_IS("hull.verity.hashoffset")) {
                uint64_t u;
                /* The hash area starts on a 4 KiB block after the data. */
                if (!value || safe_atou64(value, &u) < 0 || u == 0 || u % 4096 != 0) {
                        if (!c->invalid_initrd_key)
                                c->invalid_initrd_key = "hull.verity.hashoffset";
                        return 0;
                }
                c->verity_hashoffset = u;
                c->has_verity_hashoffset = true;
                return 0;
        }

        if (KEY_IS("hull.rootwait")) {
                unsigned u;
                if (!value || safe_atou(value, &u) < 0 || u > HULL_MAX_ROOTWAIT) {
                        if (!c->invalid_initrd_key)
                                c->invalid_initrd_key = "hull.rootwait";
                        return 0;
                }
                c->rootwait = u;
                return 0;
        }

        if (KEY_IS("hull.live")) {
                /* An ISO 9660 volume id is at most 32 characters. */
                if (!value || !string_is_safe_token(value, "-_.") || strlen(value) > HULL_MAX_LIVE_LEN) {
                        if (!c->invalid_initrd_key)
                                c->invalid_initrd_key = "hull.live";
                        return 0;
                }
                return set_string(&c->live, value);
        }

        if (KEY_IS("hull.fatal_delay")) {
                unsigned u;
                if (!value || safe_atou(value, &u) < 0 || u > HULL_MAX_FATAL_DELAY) {
                        c->invalid_key = "hull.fatal_delay";
                        return -EINVAL;
                }
                c->fatal_delay = u;
                return 0;
        }
#undef KEY_IS

        return 0;
}

/* The kernel's own keys that hull-initrd acts on, stored as given. */
static int parse_kernel_key(HullCmdline *c, const char *word) {
        static const struct {
                const char *prefix;
                size_t offset;
        } keys[] = {
                { "root=",       offsetof(HullCmdline, root)        },
                { "rootfstype=", offsetof(HullCmdline, rootfstype)  },
                { "init=",       offsetof(HullCmdline, kernel_init) },
                { "rootflags=",  offsetof(HullCmdline, root_flags)  },
        };

        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (string_has_prefix(word, keys[i].prefix))
                        return set_string((char **) ((uint8_t *) c + keys[i].offset), word + strlen(keys[i].prefix));
        return 0;
}

static bool root_spec_is_valid(const char *s) {
        if (string_has_prefix(s, "/dev/"))
                return s[5] != '\0' && !strstr(s, "/../");
        if (string_has_prefix(s, "PARTLABEL="))
                return s[10] != '\0';
        if (string_has_prefix(s, "PARTUUID=")) {
                uint8_t u[16];
                return hull_parse_guid(s + 9, u) >= 0;
        }
        return false;
}

int hull_parse_guid(const char *s, uint8_t ret[static 16]) {
        /* 8-4-4-4-12 hex digits; bytes in the order they are written. */
        static const size_t dashes[] = { 8, 13, 18, 23 };
        char hex[33];
        size_t n = 0;

        if (strlen(s) != 36)
                return -EINVAL;
        for (size_t i = 0, d = 0; i < 36; i++) {
                if (d < ELEMENTSOF(dashes) && i == dashes[d]) {
                        if (s[i] != '-')
                                return -EINVAL;
                        d++;
                        continue;
                }
                if (!isxdigit((unsigned char) s[i]))
                        return -EINVAL;
                hex[n++] = (char) tolower((unsigned char) s[i]);
        }
        hex[n] = '\0';
        return hex_decode(hex, ret, 16);
}

int hull_cmdline_check_initrd(HullCmdline *c) {
        if (c->invalid_initrd_key) {
                c->invalid_key = c->invalid_initrd_key;
                return -EINVAL;
        }
        if (c->kernel_init && c->kernel_init[0] != '/') {
                c->invalid_key = "init";
                return -EINVAL;
        }
        if (c->root && !root_spec_is_valid(c->root)) {
                c->invalid_key = "root";
                return -EINVAL;
        }
        if (c->rootfstype && (!string_is_safe_token(c->rootfstype, "_") || strlen(c->rootfstype) > 32)) {
                c->invalid_key = "rootfstype";
                return -EINVAL;
        }
        /* dm-verity needs both the partition and the hash area to find; the
         * root hash alone would be refused later with a vaguer message. */
        if (c->verity_roothash && !c->live) {
                if (!c->slot) {
                        c->invalid_key = "hull.slot";
                        return -EINVAL;
                }
                if (!c->has_verity_hashoffset) {
                        c->invalid_key = "hull.verity.hashoffset";
                        return -EINVAL;
                }
        }
        return 0;
}

int hull_cmdline_parse(const char *line, HullCmdline *c) {
        const char *p = line, *first_invalid = NULL;
        int r;

        /* Keep going after a refused value, so that a hull.fatal_delay= later
         * on the line still applies to the failure we are about to report. */
        for (;;) {
                _cleanup_free_ char *w = NULL;

                r = cmdline_next_word(&p, &w);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                /* Everything after "--" is passed to init by the kernel. */
                if (streq(w, "--"))
                        break;
                if (!string_has_prefix(w, "hull.")) {
                        r = parse_kernel_key(c, w);
                        if (r < 0)
                                return r;
                        continue;
                }
                r = parse_one(c, w);
                if (r == -EINVAL) {
                        if (!first_invalid)
                                first_invalid = c->invalid_key;
                        continue;
                }
                if (r < 0)
                        return r;
        }

        if (first_invalid) {
                c->invalid_key = first_invalid;
                return -EINVAL;
        }
        return 0;
}

void hull_cmdline_done(HullCmdline *c) {
        free(c->slot);
        free(c->verity_roothash);
        free(c->persist);
        free(c->init);
        free(c->live);
        free(c->root);
        free(c->rootfstype);
        free(c->kernel_init);
        free(c->root_flags);
        c->slot = c->verity_roothash = c->persist = c->init = NULL;
        c->live = c->root = c->rootfstype = c->kernel_init = c->root_flags = NULL;
}
