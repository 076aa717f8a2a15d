/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The A/B boot-counting state machine and the GRUB script that runs its
 * selection step at boot. docs/BOOT-COUNTING.md describes both; the two
 * implementations here (C model and generated script) must stay in step. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootcount.h"
#include "strutil.h"

static const char * const slot_names[_SLOT_MAX] = {
        [SLOT_A] = "a",
        [SLOT_B] = "b",
};

static bool slot_valid(Slot s) {
        return s >= 0 && s < _SLOT_MAX;
}

const char *slot_to_string(Slot s) {
        return slot_valid(s) ? slot_names[s] : NULL;
}

Slot slot_from_string(const char *s) {
        if (!s)
                return SLOT_INVALID;
        if (streq(s, "a") || streq(s, "A"))
                return SLOT_A;
        if (streq(s, "b") || streq(s, "B"))
                return SLOT_B;
        return SLOT_INVALID;
}

Slot slot_other(Slot s) {
        switch (s) {
        case SLOT_A:
                return SLOT_B;
        case SLOT_B:
                return SLOT_A;
        default:
                return SLOT_INVALID;
        }
}

static bool slot_state_valid(const SlotState *s) {
        return s->priority <= BOOT_PRIORITY_MAX && s->tries <= BOOT_TRIES_MAX;
}

static bool boot_state_valid(const BootState *s) {
        return s && slot_state_valid(&s->slot[SLOT_A]) && slot_state_valid(&s->slot[SLOT_B]);
}

/* The GRUB script compares tries and good as strings ("1", "2", ...), so only
 * the canonical spelling of a number is accepted: no sign, no leading zero,
 * no whitespace. Anything else would mean different things to GRUB and to us. */
static int parse_canonical(const char *s, unsigned max, unsigned *ret) {
        unsigned v = 0;

        if (isempty(s) || (s[0] == '0' && s[1] != '\0'))
                return -EBADMSG;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EBADMSG;
                v = v * 10 + (unsigned) (*p - '0');
                if (v > max)
                        return -EBADMSG;
        }
        *ret = v;
        return 0;
}

static int env_var_name(char *buf, size_t size, Slot slot, const char *field) {
        int n = snprintf(buf, size, "hull_%s_%s", slot_to_string(slot), field);
        return n < 0 || (size_t) n >= size ? -EINVAL : 0;
}

static int read_field(const GrubEnv *e, Slot slot, const char *field, unsigned max, unsigned *ret) {
        char name[32];
        int r = env_var_name(name, sizeof(name), slot, field);
        if (r < 0)
                return r;
        const char *v = grubenv_get(e, name);
        if (!v) {
                *ret = 0;
                return 0;
        }
        return parse_canonical(v, max, ret);
}

int boot_state_from_env(const GrubEnv *e, BootState *ret) {
        BootState s = {};
        int r;

        if (!e || !ret)
                return -EINVAL;

        for (Slot i = 0; i < _SLOT_MAX; i++) {
                unsigned good;

                r = read_field(e, i, "prio", BOOT_PRIORITY_MAX, &s.slot[i].priority);
                if (r < 0)
                        return r;
                r = read_field(e, i, "tries", BOOT_TRIES_MAX, &s.slot[i].tries);
                if (r < 0)
                        return r;
                r = read_field(e, i, "good", 1, &good);
                if (r < 0)
                        return r;
                s.slot[i].good = good;
        }

        *ret = s;
        return 0;
}

static int write_field(GrubEnv *e, Slot slot, const char *field, unsigned value) {
        char name[32], v[16];
        int r = env_var_name(name, sizeof(name), slot, field);
        if (r < 0)
                return r;
        (void) snprintf(v, sizeof(v), "%u", value);
        return grubenv_set(e, name, v);
}

int boot_state_to_env(const BootState *s, GrubEnv *e) {
        int r;

        if (!boot_state_valid(s) || !e)
                return -EINVAL;

        /* All six variables are always written, each a fixed-width value for
         * what GRUB may change (tries is one digit), so that GRUB's in-place
         * save_env never has to grow the block. */
        for (Slot i = 0; i < _SLOT_MAX; i++) {
                r = write_field(e, i, "prio", s->slot[i].priority);
                if (r < 0)
                        return r;
                r = write_field(e, i, "tries", s->slot[i].tries);
                if (r < 0)
                        return r;
                r = write_field(e, i, "good", s->slot[i].good ? 1 : 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

bool slot_bootable(const SlotState *s) {
        return s && s->priority > 0 && (s->good || s->tries > 0);
}

/* The slot GRUB prefers by priority alone: B only if strictly higher. */
static Slot higher_priority(const BootState *s) {
        return s->slot[SLOT_B].priority > s->slot[SLOT_A].priority ? SLOT_B : SLOT_A;
}

Slot boot_state_select(BootState *s, bool *ret_degraded) {
        bool a = slot_bootable(&s->slot[SLOT_A]), b = slot_bootable(&s->slot[SLOT_B]);
        Slot chosen;

        if (!a && !b) {
                /* Nothing is bootable: boot something rather than nothing, but
                 * let the system know (hull.boot=degraded) and count nothing. */
                if (ret_degraded)
                        *ret_degraded = true;
                return higher_priority(s);
        }

        if (a && b)
                chosen = higher_priority(s);
        else
                chosen = a ? SLOT_A : SLOT_B;

        /* bootable && !good implies tries > 0: this never underflows. */
        if (!s->slot[chosen].good)
                s->slot[chosen].tries--;

        if (ret_degraded)
                *ret_degraded = false;
        return chosen;
}

/* Give 'slot' a priority strictly above the other slot's, unless it already
 * has one. Priorities saturate at BOOT_PRIORITY_MAX; the other slot is
 * lowered below it then, keeping it bootable (>= 1) as the fallback. */
static void raise_priority(BootState *s, Slot slot) {
        SlotState *me = &s->slot[slot], *other = &s->slot[slot_other(slot)];

        if (me->priority > other->priority)
                return;
        me->priority = MIN(other->priority + 1, (unsigned) BOOT_PRIORITY_MAX);
        if (other->priority >= me->priority)
                other->priority = me->priority - 1;
}

int boot_state_install(BootState *s, Slot slot, unsigned tries) {
        if (!boot_state_valid(s) || !slot_valid(slot) || tries < 1 || tries > BOOT_TRIES_MAX)
                return -EINVAL;

        raise_priority(s, slot);
        s->slot[slot].tries = tries;
        s->slot[slot].good = false;
        return 0;
}

int boot_state_mark_good(BootState *s, Slot slot) {
        if (!boot_state_valid(s) || !slot_valid(slot))
                return -EINVAL;
        /* Marked bad (or never installed) while we were running: marking it
         * good now would resurrect a slot someone decided against. */
        if (s->slot[slot].priority == 0)
                return -ESTALE;
        /* tries is kept: it records how many attempts the slot needed. */
        s->slot[slot].good = true;
        return 0;
}

int boot_state_mark_bad(BootState *s, Slot slot) {
        if (!boot_state_valid(s) || !slot_valid(slot))
                return -EINVAL;
        s->slot[slot] = (SlotState) {};
        return 0;
}

int boot_state_prefer(BootState *s, Slot slot) {
        if (!boot_state_valid(s) || !slot_valid(slot))
                return -EINVAL;
        if (!s->slot[slot].good)
                return -ENOMEDIUM;
        raise_priority(s, slot);
        return 0;
}

/* ---- GRUB script generator ---- */

#define DEFAULT_ENV_PATH "/EFI/hull/grubenv"
#define DEFAULT_BOOT_DIR "/EFI/hull"
#define DEFAULT_ROOT_LABEL_PREFIX "hull-root-"
#define DEFAULT_TITLE "Hull"
/* GPT partition names hold 36 UTF-16 code units; the slot adds one. */
#define PARTLABEL_MAX 36
#define TITLE_MAX 128

/* Absolute, no trailing slash, no "." or ".." components, and only characters
 * that need no quoting in GRUB script or on a kernel command line. */
static bool grub_path_valid(const char *p) {
        if (isempty(p) || p[0] != '/' || p[1] == '\0' || !string_is_safe_token(p, "/._-"))
                return false;
        if (p[strlen(p) - 1] == '/' || strstr(p, "//"))
                return false;
        for (const char *c = p; c; c = strchr(c + 1, '/')) {
                const char *n = c + 1;
                size_t l = strcspn(n, "/");
                if ((l == 1 && n[0] == '.') || (l == 2 && n[0] == '.' && n[1] == '.'))
                        return false;
        }
        return true;
}

/* The title goes between single quotes, where GRUB interprets nothing. */
static bool grub_title_valid(const char *t) {
        if (isempty(t) || strlen(t) > TITLE_MAX)
                return false;
        for (const char *c = t; *c; c++)
                if (*c < 0x20 || *c > 0x7e || *c == '\'')
                        return false;
        return true;
}

static void emit_slot_defaults(FILE *f, const char *s) {
        fprintf(f,
                "set hull_%1$s_prio=0\n"
                "set hull_%1$s_tries=0\n"
                "set hull_%1$s_good=0\n"
                "set hull_%1$s_args=\n",
                s);
}

static void emit_slot_normalize(FILE *f, const char *s) {
        static const char * const fields[] = { "prio", "tries", "good" };
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                fprintf(f, "if [ -z \"$hull_%1$s_%2$s\" ]; then set hull_%1$s_%2$s=0; fi\n", s, fields[i]);
}

static void emit_slot_bootable(FILE *f, const char *s) {
        fprintf(f,
                "# Slot %1$s is bootable if hull_%1$s_prio > 0 and (hull_%1$s_good = 1 or hull_%1$s_tries > 0).\n"
                "set hull_%1$s_ok=0\n"
                "if [ \"$hull_%1$s_prio\" -gt 0 ]; then\n"
                "  if [ \"$hull_%1$s_good\" = 1 ]; then\n"
                "    set hull_%1$s_ok=1\n"
                "  elif [ \"$hull_%1$s_tries\" -gt 0 ]; then\n"
                "    set hull_%1$s_ok=1\n"
                "  fi\n"
                "fi\n",
                s);
}

static void emit_slot_count(FILE *f, const char *s, const char *env) {
        fprintf(f,
                "# Slot %1$s: one try is used up before the kernel even starts, so a\n"
                "# boot that hangs or panics counts too. There is no arithmetic in\n"
                "# GRUB: tries - 1 is spelled out for every possible value.\n"
                "if [ \"$hull_slot\" = %1$s ]; then\n"
                "  if [ \"$hull_degraded\" = 0 ]; then\n"
                "    if [ \"$hull_%1$s_good\" != 1 ]; then\n",
                s);
        for (unsigned t = 1; t <= BOOT_TRIES_MAX; t++)
                fprintf(f,
                        "      %1$s [ \"$hull_%2$s_tries\" = %3$u ]; then\n"
                        "        set hull_%2$s_tries=%4$u\n",
                        t == 1 ? "if" : "elif", s, t, t - 1);
        fprintf(f,
                "      fi\n"
                "      save_env -f \"${esp}%2$s\" hull_%1$s_tries\n"
                "    fi\n"
                "  fi\n"
                "fi\n",
                s, env);
}

static void emit_slot_menuentry(FILE *f, const char *s, const GrubCfgOptions *o) {
        fprintf(f,
                "  menuentry '%2$s (slot %1$s)' {\n"
                "    linux \"${esp}%3$s/%1$s/vmlinuz\" root=PARTLABEL=%4$s%1$s ro hull.slot=%1$s"
                " $hull_boot_flags $hull_%1$s_args $hull_cmdline\n"
                "    initrd \"${esp}%3$s/%1$s/initrd.img\"\n"
                "  }\n",
                s, o->title, o->boot_dir, o->root_label_prefix);
}

int bootcount_generate_grub_cfg(const GrubCfgOptions *options, char **ret) {
        GrubCfgOptions o = {};

        if (!ret)
                return -EINVAL;
        if (options)
                o = *options;
        if (!o.env_path)
                o.env_path = DEFAULT_ENV_PATH;
        if (!o.boot_dir)
                o.boot_dir = DEFAULT_BOOT_DIR;
        if (!o.root_label_prefix)
                o.root_label_prefix = DEFAULT_ROOT_LABEL_PREFIX;
        if (!o.title)
                o.title = DEFAULT_TITLE;

        if (!grub_path_valid(o.env_path) || !grub_path_valid(o.boot_dir) || !grub_title_valid(o.title) ||
            !string_is_safe_token(o.root_label_prefix, "._-") || strlen(o.root_label_prefix) + 1 > PARTLABEL_MAX)
                return -EINVAL;

        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        _cleanup_fclose_ FILE *f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;

        const char *a = slot_to_string(SLOT_A), *b = slot_to_string(SLOT_B);

        fprintf(f,
                "# Generated by Hull (bootcount_generate_grub_cfg()). Do not edit: the image\n"
                "# build writes this file again from src/shared/bootcount.c.\n"
                "#\n"
                "# A/B boot counting: the state machine is documented in\n"
                "# docs/BOOT-COUNTING.md and the env file format in docs/GRUBENV.md.\n"
                "# boot_state_select() in src/shared/bootcount.c is the C model of the\n"
                "# selection below and is tested exhaustively; keep the two in step.\n"
                "#\n"
                "# Sourced with 'configfile' from the stub embedded in the GRUB image, which\n"
                "# sets (and exports) $esp to the ESP's device, e.g. \"(hd0,gpt1)\".\n"
                "# GRUB script has no arithmetic and no variable indirection, so the code\n"
                "# for slots a and b is spelled out separately.\n"
                "\n"
                "set timeout=%u\n"
                "set default=0\n"
                "\n"
                "if [ -z \"$esp\" ]; then\n"
                "  # The stub did not pass $esp on: find the ESP by the env file.\n"
                "  search --no-floppy --file --set=hull_esp_dev \"%s\"\n"
                "  set esp=\"($hull_esp_dev)\"\n"
                "fi\n"
                "\n"
                "# A variable missing from the env reads as 0 (arguments as empty),\n"
                "# as in boot_state_from_env(). Only hull_* variables are loaded.\n",
                o.timeout, o.env_path);
        emit_slot_defaults(f, a);
        emit_slot_defaults(f, b);
        fprintf(f,
                "set hull_cmdline=\n"
                "load_env -f \"${esp}%1$s\""
                " hull_%2$s_prio hull_%2$s_tries hull_%2$s_good hull_%2$s_args"
                " hull_%3$s_prio hull_%3$s_tries hull_%3$s_good hull_%3$s_args"
                " hull_cmdline\n",
                o.env_path, a, b);
        emit_slot_normalize(f, a);
        emit_slot_normalize(f, b);
        fputs("\n", f);

        emit_slot_bootable(f, a);
        emit_slot_bootable(f, b);

        fprintf(f,
                "\n"
                "# Pick the bootable slot with the higher priority; %1$s wins ties. If\n"
                "# neither is bootable, boot the higher-priority slot anyway, without\n"
                "# counting, and tell the system with hull.boot=degraded.\n"
                "set hull_degraded=0\n"
                "if [ \"$hull_%1$s_ok\" = 1 ]; then\n"
                "  if [ \"$hull_%2$s_ok\" = 1 ]; then\n"
                "    if [ \"$hull_%2$s_prio\" -gt \"$hull_%1$s_prio\" ]; then\n"
                "      set hull_slot=%2$s\n"
                "    else\n"
                "      set hull_slot=%1$s\n"
                "    fi\n"
                "  else\n"
                "    set hull_slot=%1$s\n"
                "  fi\n"
                "elif [ \"$hull_%2$s_ok\" = 1 ]; then\n"
                "  set hull_slot=%2$s\n"
                "else\n"
                "  set hull_degraded=1\n"
                "  if [ \"$hull_%2$s_prio\" -gt \"$hull_%1$s_prio\" ]; then\n"
                "    set hull_slot=%2$s\n"
                "  else\n"
                "    set hull_slot=%1$s\n"
                "  fi\n"
                "fi\n"
                "\n"
                "if [ \"$hull_degraded\" = 1 ]; then\n"
                "  set hull_boot_flags=\"hull.boot=degraded\"\n"
                "else\n"
                "  set hull_boot_flags=\n"
                "fi\n"
                "\n",
                a, b);
        emit_slot_count(f, a, o.env_path);
        emit_slot_count(f, b, o.env_path);
        fprintf(f,
                "\n"
                "echo \"hull: slot $hull_slot (degraded=$hull_degraded;"
                " %1$s: prio=$hull_%1$s_prio tries=$hull_%1$s_tries good=$hull_%1$s_good;"
                " %2$s: prio=$hull_%2$s_prio tries=$hull_%2$s_tries good=$hull_%2$s_good)\"\n"
                "\n"
                "if [ \"$hull_slot\" = %2$s ]; then\n",
                a, b);
        emit_slot_menuentry(f, b, &o);
        fputs("else\n", f);
        emit_slot_menuentry(f, a, &o);
        fputs("fi\n", f);

        if (ferror(f))
                return -ENOMEM;
        if (fclose(TAKE_PTR(f)) != 0)
                return -ENOMEM;

        *ret = TAKE_PTR(buf);
        return 0;
}
