/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "modtrim.h"
#include "strutil.h"

/* ---- profiles and the required set (docs/SPEC.md lists the same) ------- */

static const char *const profile_table[_MODTRIM_PROFILE_MAX] = {
        [MODTRIM_PROFILE_SERVER] = "server",
        [MODTRIM_PROFILE_VM] = "vm",
        [MODTRIM_PROFILE_ALL] = "all",
};

const char *modtrim_profile_to_string(ModTrimProfile p) {
        return p >= 0 && p < _MODTRIM_PROFILE_MAX ? profile_table[p] : NULL;
}

ModTrimProfile modtrim_profile_from_string(const char *s) {
        for (int i = 0; s && i < _MODTRIM_PROFILE_MAX; i++)
                if (streq(s, profile_table[i]))
                        return (ModTrimProfile) i;
        return _MODTRIM_PROFILE_INVALID;
}

/* Hardware a server does not have (displays, cameras, sound, radios, phones,
 * laptops' buses, joysticks, tablets, touchscreens) and file systems Linux
 * mounts for compatibility only. Everything that drives a NIC, an HBA, a
 * disk, RAID, USB host controllers, keyboards and mice (input, HID),
 * watchdogs, I2C, IPMI, sensors and EDAC stays. */
static const char *const net_ethernet_vm_keep[] = {
        "drivers/net/ethernet/intel/**",     /* e1000(e), igb, ixgbe(vf), iavf, ice: most clouds' SR-IOV VFs */
        "drivers/net/ethernet/amazon/**",    /* AWS ENA */
        "drivers/net/ethernet/google/**",    /* GCP gVNIC */
        "drivers/net/ethernet/mellanox/**",  /* Azure and others' SR-IOV VFs (mlx4/mlx5) */
        "drivers/net/ethernet/microsoft/**", /* Azure MANA */
        NULL,
};

/* clang-format off */
#define RULES_SERVER                              \
        { "drivers/gpu/**", NULL },               \
        { "drivers/media/**", NULL },             \
        { "sound/**", NULL },                     \
        { "drivers/net/wireless/**", NULL },      \
        { "net/wireless/**", NULL },              \
        { "net/mac80211/**", NULL },              \
        { "net/batman-adv/**", NULL },            \
        { "net/bluetooth/**", NULL },             \
        { "net/nfc/**", NULL },                   \
        { "net/can/**", NULL },                   \
        { "net/ieee802154/**", NULL },            \
        { "net/6lowpan/**", NULL },               \
        { "net/mac802154/**", NULL },             \
        { "net/atm/**", NULL },                   \
        { "drivers/bluetooth/**", NULL },         \
        { "drivers/staging/**", NULL },           \
        { "drivers/iio/**", NULL },               \
        { "drivers/comedi/**", NULL },            \
        { "drivers/isdn/**", NULL },              \
        { "drivers/nfc/**", NULL },               \
        { "drivers/atm/**", NULL },               \
        { "drivers/usb/atm/**", NULL },           \
        { "drivers/pcmcia/**", NULL },            \
        { "drivers/char/pcmcia/**", NULL },       \
        { "drivers/tty/ipwireless/**", NULL },    \
        { "drivers/memstick/**", NULL },          \
        { "drivers/mmc/**", NULL },               \
        { "drivers/w1/**", NULL },                \
        { "drivers/leds/**", NULL },              \
        { "drivers/gnss/**", NULL },              \
        { "drivers/firewire/**", NULL },          \
        { "drivers/thunderbolt/**", NULL },       \
        { "drivers/usb/gadget/**", NULL },        \
        { "drivers/input/joystick/**", NULL },    \
        { "drivers/input/tablet/**", NULL },      \
        { "drivers/input/touchscreen/**", NULL }, \
        { "drivers/soundwire/**", NULL },         \
        { "drivers/input/misc/pcspkr", NULL },    \
        { "drivers/platform/chrome/**", NULL },   \
        { "drivers/platform/surface/**", NULL },  \
        { "drivers/net/can/**", NULL },           \
        { "drivers/net/ieee802154/**", NULL },    \
        { "drivers/net/wwan/**", NULL },          \
        { "drivers/net/usb/**", NULL },           \
        { "drivers/net/hamradio/**", NULL },      \
        { "drivers/net/arcnet/**", NULL },        \
        { "drivers/net/fddi/**", NULL },          \
        { "drivers/net/plip/**", NULL },          \
        { "drivers/net/slip/**", NULL },          \
        { "drivers/net/thunderbolt/**", NULL },   \
        { "lib/test_*", NULL },                   \
        { "fs/ocfs2/**", NULL },                  \
        { "fs/gfs2/**", NULL },                   \
        { "fs/nilfs2/**", NULL },                 \
        { "fs/jfs/**", NULL },                    \
        { "fs/reiserfs/**", NULL },               \
        { "fs/hfs/**", NULL },                    \
        { "fs/hfsplus/**", NULL },                \
        { "fs/ufs/**", NULL },                    \
        { "fs/affs/**", NULL },                   \
        { "fs/befs/**", NULL },                   \
        { "fs/minix/**", NULL },                  \
        { "fs/omfs/**", NULL },                   \
        { "fs/qnx4/**", NULL },                   \
        { "fs/qnx6/**", NULL },                   \
        { "fs/sysv/**", NULL },                   \
        { "fs/orangefs/**", NULL },               \
        { "fs/coda/**", NULL },                   \
        { "fs/ubifs/**", NULL },                  \
        { "fs/jffs2/**", NULL },                  \
        { "fs/romfs/**", NULL },                  \
        { "fs/cramfs/**", NULL },                 \
        { "fs/efs/**", NULL },                    \
        { "fs/freevxfs/**", NULL },               \
        { "fs/adfs/**", NULL },                   \
        { "fs/hpfs/**", NULL },                   \
        { "fs/bfs/**", NULL },                    \
        { "fs/vboxsf/**", NULL },
/* clang-format on */

/* A virtual machine has no InfiniBand or Fibre Channel HBA and only the
 * NICs its hypervisor or SR-IOV gives it (virtio_net, vmxnet3 and Hyper-V's
 * netvsc are outside drivers/net/ethernet and stay). */
/* clang-format off */
#define RULES_VM                                             \
        { "drivers/infiniband/**", NULL },                   \
        { "drivers/scsi/lpfc/**", NULL },                    \
        { "drivers/scsi/qla2xxx/**", NULL },                 \
        { "drivers/scsi/bfa/**", NULL },                     \
        { "drivers/scsi/fnic/**", NULL },                    \
        { "drivers/scsi/bnx2fc/**", NULL },                  \
        { "drivers/scsi/qedf/**", NULL },                    \
        { "drivers/scsi/csiostor/**", NULL },                \
        { "drivers/scsi/fcoe/**", NULL },                    \
        { "drivers/net/ethernet/**", net_ethernet_vm_keep },
/* clang-format on */

static const ModTrimProfileRule rules_server[] = { RULES_SERVER };
static const ModTrimProfileRule rules_vm[] = { RULES_SERVER RULES_VM };

const ModTrimProfileRule *modtrim_profile_rules(ModTrimProfile p, size_t *ret_n) {
        switch (p) {
        case MODTRIM_PROFILE_SERVER:
                *ret_n = ELEMENTSOF(rules_server);
                return rules_server;
        case MODTRIM_PROFILE_VM:
                *ret_n = ELEMENTSOF(rules_vm);
                return rules_vm;
        default:
                *ret_n = 0;
                return NULL;
        }
}

#define WHY_BOOT "Hull's initramfs and boot need it"
#define WHY_PROVISION "provisioning reads its config from a FAT or ISO volume or QEMU's fw_cfg"
#define WHY_KUBE "Kubernetes networking needs it"
static const ModTrimRequired required_table[] = {
        { "erofs", WHY_BOOT },
        { "ext4", WHY_BOOT },
        { "overlay", WHY_BOOT },
        { "virtio_blk", WHY_BOOT },
        { "virtio_pci", WHY_BOOT },
        { "virtio_scsi", WHY_BOOT },
        { "sd_mod", WHY_BOOT },
        { "nvme", WHY_BOOT },
        { "ahci", WHY_BOOT },
        { "dm_verity", WHY_BOOT },
        { "dm_mod", WHY_BOOT },
        { "loop", WHY_BOOT },
        { "isofs", WHY_BOOT },
        { "cdrom", WHY_BOOT },
        { "sr_mod", WHY_BOOT },
        { "usb_storage", WHY_BOOT },
        { "uas", WHY_BOOT },
        { "xhci_pci", WHY_BOOT },
        { "ehci_pci", WHY_BOOT },
        /* the rest of the initramfs' list (src/build/distro-debian.c) */
        { "crc32c_generic", WHY_BOOT },
        { "ata_piix", WHY_BOOT },
        { "megaraid_sas", WHY_BOOT },
        { "mpt3sas", WHY_BOOT },
        { "smartpqi", WHY_BOOT },
        { "hpsa", WHY_BOOT },
        { "hv_storvsc", WHY_BOOT },
        { "vmw_pvscsi", WHY_BOOT },
        { "xen_blkfront", WHY_BOOT },
        { "vfat", WHY_PROVISION },
        { "nls_cp437", WHY_PROVISION },
        { "nls_ascii", WHY_PROVISION },
        { "nls_utf8", WHY_PROVISION },
        { "qemu_fw_cfg", WHY_PROVISION },
        { "br_netfilter", WHY_KUBE },
        { "nf_conntrack", WHY_KUBE },
        { "veth", WHY_KUBE },
        { "vxlan", WHY_KUBE },
        { "ip_tables", WHY_KUBE },
        { "ip6_tables", WHY_KUBE },
        { "nf_tables", WHY_KUBE },
        { "iptable_*", WHY_KUBE },
        { "ip6table_*", WHY_KUBE },
        { "xt_*", WHY_KUBE },
        { "nft_*", WHY_KUBE },
        { "xfs", "data disks are formatted with it" },
};

const ModTrimRequired *modtrim_required(size_t *ret_n) {
        *ret_n = ELEMENTSOF(required_table);
        return required_table;
}

static char *mfree_reason(char *p) {
        free(p);
        return NULL;
}

/* ---- globs ----------------------------------------------------------- */

const char *modtrim_pattern_check(const char *p) {
        if (isempty(p))
                return "must not be empty";
        if (strlen(p) > MODTRIM_PATTERN_LEN_MAX)
                return "is longer than 255 characters";
        if (!string_is_safe_token(p, "._+,@=~-/*?"))
                return "may only have letters, digits, \"._+,@=~-/\" and the wildcards * ** ?";
        if (p[0] == '/')
                return "must be relative (it matches below the module or firmware directory)";
        if (p[strlen(p) - 1] == '/')
                return "must not end in '/' (write dir/** for everything below a directory)";
        for (const char *c = p; c;) {
                size_t l = strcspn(c, "/");
                if (l == 0)
                        return "must not contain '//'";
                if ((l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.'))
                        return "must not contain '.' or '..' components";
                c = c[l] ? c + l + 1 : NULL;
        }
        return NULL;
}

/* Dynamic programming over (pattern position, path position), so no pattern
 * makes it backtrack exponentially. row[j]: the pattern from token i on
 * matches path[j..]. */
bool modtrim_glob_match(const char *pattern, const char *path) {
        size_t lp = strlen(pattern), ls = strlen(path);
        bool *next = calloc(ls + 1, sizeof(bool)), *cur = calloc(ls + 1, sizeof(bool));
        bool m = false;

        if (!next || !cur)
                goto out;
        next[ls] = true; /* the empty pattern matches the empty rest */
        for (size_t i = lp; i > 0;) {
                /* The token ending at i-1. Tokens are read from the left, so
                 * a run of stars is "**" pairs and then one "*" if odd: the
                 * last token of the run is "**" when its length is even. */
                size_t run = 0;
                while (run < i && pattern[i - 1 - run] == '*')
                        run++;
                bool dstar = run >= 2 && run % 2 == 0;
                size_t start = dstar ? i - 2 : i - 1;
                for (size_t jj = ls + 1; jj > 0; jj--) {
                        size_t j = jj - 1;
                        char c = pattern[start];
                        if (dstar)
                                cur[j] = next[j] || (j < ls && cur[j + 1]);
                        else if (c == '*')
                                cur[j] = next[j] || (j < ls && path[j] != '/' && cur[j + 1]);
                        else if (c == '?')
                                cur[j] = j < ls && path[j] != '/' && next[j + 1];
                        else
                                cur[j] = j < ls && path[j] == c && next[j + 1];
                }
                bool *t = next;
                next = cur;
                cur = t;
                i = start;
        }
        m = next[0];
out:
        free(next);
        free(cur);
        return m;
}

static const char *const module_suffixes[] = { ".ko", ".ko.xz", ".ko.zst", ".ko.gz" };

static size_t module_suffix_len(const char *path) {
        size_t l = strlen(path);
        for (size_t i = 0; i < ELEMENTSOF(module_suffixes); i++) {
                size_t s = strlen(module_suffixes[i]);
                if (l > s && streq(path + l - s, module_suffixes[i]))
                        return s;
        }
        return 0;
}

char *modtrim_match_path(const char *path) {
        size_t s = module_suffix_len(path);
        if (!string_has_prefix(path, "kernel/") || s == 0 || strlen(path) - s <= strlen("kernel/"))
                return NULL;
        return strndup(path + strlen("kernel/"), strlen(path) - s - strlen("kernel/"));
}

static char *firmware_match_path(const char *path) {
        size_t l = strlen(path);
        if (l > 3 && streq(path + l - 3, ".xz"))
                l -= 3;
        else if (l > 4 && streq(path + l - 4, ".zst"))
                l -= 4;
        return strndup(path, l);
}

/* The module name the kernel uses: the file name without suffix, '-' as '_'. */
static char *module_name_from_path(const char *path) {
        size_t s = module_suffix_len(path);
        if (s == 0)
                return NULL;
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        size_t l = strlen(b) - s;
        if (l == 0)
                return NULL;
        char *n = strndup(b, l);
        if (!n)
                return NULL;
        for (char *c = n; *c; c++)
                if (*c == '-')
                        *c = '_';
        return n;
}

static char *name_normalise(const char *name) {
        char *n = strdup(name);
        if (!n)
                return NULL;
        for (char *c = n; *c; c++)
                if (*c == '-')
                        *c = '_';
        return n;
}

/* ---- the index files ---------------------------------------------------- */

typedef struct Tokens {
        char **v;
        size_t n, cap;
} Tokens;

/* Splits the next line of *p on whitespace into t (pointing into buf, which
 * holds a copy of the line). Returns 0 at the end, 1 for a line, -E2BIG for
 * an overlong line. */
static int next_line(const char **p, char **buf, Tokens *t) {
        const char *s = *p;
        if (!*s)
                return 0;
        size_t l = strcspn(s, "\n");
        *p = s[l] ? s + l + 1 : s + l;
        if (l > MODTRIM_LINE_MAX)
                return -E2BIG;
        free(*buf);
        *buf = strndup(s, l);
        if (!*buf)
                return -ENOMEM;
        t->n = 0;
        for (char *c = *buf; *c;) {
                c += strspn(c, " \t\r");
                if (!*c)
                        break;
                if (t->n == t->cap) {
                        size_t nc = t->cap ? t->cap * 2 : 16;
                        char **nv = realloc(t->v, nc * sizeof(char *));
                        if (!nv)
                                return -ENOMEM;
                        t->v = nv;
                        t->cap = nc;
                }
                t->v[t->n++] = c;
                c += strcspn(c, " \t\r");
                if (*c)
                        *c++ = '\0';
        }
        return 1;
}

static bool path_is_sane(const char *p) {
        if (isempty(p) || p[0] == '/' || strstr(p, "//"))
                return false;
        for (const char *c = p; c;) {
                size_t l = strcspn(c, "/");
                if ((l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                c = c[l] ? c + l + 1 : NULL;
        }
        for (const char *c = p; *c; c++)
                if ((unsigned char) *c < 0x21 || *c == 0x7f)
                        return false;
        return true;
}

static int grow(void **v, size_t *cap, size_t n, size_t size) {
        if (n < *cap)
                return 0;
        size_t nc = *cap ? *cap * 2 : 64;
        void *nv = realloc(*v, nc * size);
        if (!nv)
                return -ENOMEM;
        *v = nv;
        *cap = nc;
        return 0;
}

static int cmp_by_name(const void *a, const void *b, void *userdata) {
        const ModTrim *t = userdata;
        const ModTrimModule *x = &t->modules[*(const size_t *) a], *y = &t->modules[*(const size_t *) b];
        int c = strcmp(x->name, y->name);
        return c ? c : (*(const size_t *) a > *(const size_t *) b) - (*(const size_t *) a < *(const size_t *) b);
}
static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int modtrim_find(const ModTrim *t, const char *name) {
        _cleanup_free_ char *n = name_normalise(name);
        if (!n)
                return -ENOMEM;
        size_t lo = 0, hi = t->n_modules;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                int c = strcmp(t->modules[t->by_name[mid]].name, n);
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo < t->n_modules && streq(t->modules[t->by_name[lo]].name, n))
                return (int) t->by_name[lo];
        return -ENOENT;
}

bool modtrim_is_builtin(const ModTrim *t, const char *name) {
        _cleanup_free_ char *n = name_normalise(name);
        if (!n || t->n_builtin == 0)
                return false;
        return bsearch(&n, t->builtin, t->n_builtin, sizeof(char *), cmp_str) != NULL;
}

int modtrim_lookup(const ModTrim *t, const char *name, size_t **ret, size_t *ret_n, bool *ret_builtin) {
        _cleanup_free_ size_t *v = NULL;
        size_t n = 0, cap = 0;
        bool builtin = false;
        int r;

        int k = modtrim_find(t, name);
        if (k >= 0) {
                if (!(v = malloc(sizeof(size_t))))
                        return -ENOMEM;
                v[n++] = (size_t) k;
        } else if (k != -ENOENT)
                return k;
        else if (modtrim_is_builtin(t, name))
                builtin = true;
        else {
                /* The name as given: patterns are matched against it as
                 * modprobe does, without '-' folded to '_'. */
                for (size_t i = 0; i < t->n_aliases; i++) {
                        if (fnmatch(t->aliases[i].pattern, name, 0) != 0)
                                continue;
                        bool seen = false;
                        for (size_t j = 0; j < n && !seen; j++)
                                seen = v[j] == t->aliases[i].module;
                        if (seen)
                                continue;
                        if ((r = grow((void **) &v, &cap, n, sizeof(size_t))) < 0)
                                return r;
                        v[n++] = t->aliases[i].module;
                }
                for (size_t i = 0; i < t->n_builtin_aliases && !builtin; i++)
                        builtin = fnmatch(t->builtin_aliases[i], name, 0) == 0;
        }
        *ret = TAKE_PTR(v);
        *ret_n = n;
        if (ret_builtin)
                *ret_builtin = builtin;
        return 0;
}

ModTrim *modtrim_free(ModTrim *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_modules; i++) {
                ModTrimModule *m = &t->modules[i];
                free(m->path);
                free(m->name);
                free(m->deps);
                strv_free(m->softdeps);
                strv_free(m->softdeps_pre);
                strv_free(m->firmware);
                free(m->reason);
        }
        free(t->modules);
        free(t->by_name);
        for (size_t i = 0; i < t->n_aliases; i++)
                free(t->aliases[i].pattern);
        free(t->aliases);
        for (size_t i = 0; i < t->n_builtin; i++)
                free(t->builtin[i]);
        free(t->builtin);
        for (size_t i = 0; i < t->n_builtin_aliases; i++)
                free(t->builtin_aliases[i]);
        free(t->builtin_aliases);
        free(t);
        return NULL;
}

static int check_text(const char *s, const char *file, char **ret_error) {
        if (s && strnlen(s, MODTRIM_TEXT_MAX + 1) > MODTRIM_TEXT_MAX)
                return error_set(ret_error, -E2BIG, "%s is larger than %u bytes", file, MODTRIM_TEXT_MAX);
        return 0;
}

static int load_builtin(ModTrim *t, const char *text, char **ret_error) {
        _cleanup_free_ char *buf = NULL;
        Tokens tk = {};
        size_t cap = 0;
        unsigned line = 0;
        int r;

        while ((r = next_line(&text, &buf, &tk)) > 0) {
                line++;
                if (tk.n == 0 || tk.v[0][0] == '#')
                        continue;
                if (tk.n != 1 || !path_is_sane(tk.v[0]) || module_suffix_len(tk.v[0]) == 0) {
                        r = error_set(ret_error, -EBADMSG, "modules.builtin:%u: expected a module path", line);
                        goto out;
                }
                if (t->n_builtin >= MODTRIM_MODULES_MAX) {
                        r = error_set(ret_error, -E2BIG, "modules.builtin: more than %d modules", MODTRIM_MODULES_MAX);
                        goto out;
                }
                if ((r = grow((void **) &t->builtin, &cap, t->n_builtin, sizeof(char *))) < 0)
                        goto out;
                if (!(t->builtin[t->n_builtin] = module_name_from_path(tk.v[0]))) {
                        r = -ENOMEM;
                        goto out;
                }
                t->n_builtin++;
        }
        if (r == -E2BIG)
                r = error_set(ret_error, r, "modules.builtin:%u: line too long", line + 1);
        if (r >= 0 && t->n_builtin > 0)
                qsort(t->builtin, t->n_builtin, sizeof(char *), cmp_str);
out:
        free(tk.v);
        return r;
}

/* Pass 1 of modules.dep: the modules (left of the colon). */
static int load_dep_modules(ModTrim *t, const char *text, char **ret_error) {
        _cleanup_free_ char *buf = NULL;
        Tokens tk = {};
        size_t cap = 0;
        unsigned line = 0;
        int r;

        while ((r = next_line(&text, &buf, &tk)) > 0) {
                line++;
                if (tk.n == 0 || tk.v[0][0] == '#')
                        continue;
                size_t l = strlen(tk.v[0]);
                if (l < 2 || tk.v[0][l - 1] != ':') {
                        r = error_set(ret_error, -EBADMSG, "modules.dep:%u: expected 'module.ko: dependencies'", line);
                        goto out;
                }
                tk.v[0][l - 1] = '\0';
                if (!path_is_sane(tk.v[0]) || module_suffix_len(tk.v[0]) == 0) {
                        r = error_set(ret_error, -EBADMSG, "modules.dep:%u: '%s' is not a module path", line, tk.v[0]);
                        goto out;
                }
                if (t->n_modules >= MODTRIM_MODULES_MAX) {
                        r = error_set(ret_error, -E2BIG, "modules.dep: more than %d modules", MODTRIM_MODULES_MAX);
                        goto out;
                }
                if ((r = grow((void **) &t->modules, &cap, t->n_modules, sizeof(ModTrimModule))) < 0)
                        goto out;
                ModTrimModule *m = &t->modules[t->n_modules];
                *m = (ModTrimModule) {};
                m->path = strdup(tk.v[0]);
                m->name = module_name_from_path(tk.v[0]);
                t->n_modules++;
                if (!m->path || !m->name) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        if (r == -E2BIG)
                r = error_set(ret_error, r, "modules.dep:%u: line too long", line + 1);
out:
        free(tk.v);
        return r;
}

static int cmp_index_path(const void *a, const void *b, void *userdata) {
        const ModTrim *t = userdata;
        return strcmp(t->modules[*(const size_t *) a].path, t->modules[*(const size_t *) b].path);
}

/* Pass 2: the dependencies, as indexes; by_path is sorted by path. */
static int load_dep_edges(ModTrim *t, const char *text, const size_t *by_path, char **ret_error) {
        _cleanup_free_ char *buf = NULL;
        Tokens tk = {};
        unsigned line = 0;
        size_t mi = 0;
        int r;

        while ((r = next_line(&text, &buf, &tk)) > 0) {
                line++;
                if (tk.n == 0 || tk.v[0][0] == '#')
                        continue;
                ModTrimModule *m = &t->modules[mi++];
                if (tk.n > 1 && !(m->deps = calloc(tk.n - 1, sizeof(size_t)))) {
                        r = -ENOMEM;
                        goto out;
                }
                for (size_t k = 1; k < tk.n; k++) {
                        const char *d = tk.v[k];
                        size_t lo = 0, hi = t->n_modules;
                        while (lo < hi) {
                                size_t mid = (lo + hi) / 2;
                                if (strcmp(t->modules[by_path[mid]].path, d) < 0)
                                        lo = mid + 1;
                                else
                                        hi = mid;
                        }
                        if (lo < t->n_modules && streq(t->modules[by_path[lo]].path, d)) {
                                if (by_path[lo] != (size_t) (m - t->modules))
                                        m->deps[m->n_deps++] = by_path[lo];
                                continue;
                        }
                        /* A module built into this kernel needs no file. */
                        _cleanup_free_ char *n = module_name_from_path(d);
                        if (n && t->n_builtin > 0 && bsearch(&n, t->builtin, t->n_builtin, sizeof(char *), cmp_str))
                                continue;
                        char q[STRING_QUOTE_SIZE];
                        r = error_set(ret_error, -EBADMSG, "modules.dep:%u: %s needs %s, which is not in modules.dep",
                                line, m->path, string_quote(q, d));
                        goto out;
                }
        }
out:
        free(tk.v);
        return r;
}

static int load_alias(ModTrim *t, const char *text, char **ret_error) {
        _cleanup_free_ char *buf = NULL;
        Tokens tk = {};
        size_t cap = 0, cap_builtin = 0;
        unsigned line = 0;
        int r;

        while ((r = next_line(&text, &buf, &tk)) > 0) {
                line++;
                if (tk.n == 0 || tk.v[0][0] == '#')
                        continue;
                if (tk.n != 3 || !streq(tk.v[0], "alias")) {
                        r = error_set(ret_error, -EBADMSG, "modules.alias:%u: expected 'alias PATTERN MODULE'", line);
                        goto out;
                }
                int k = modtrim_find(t, tk.v[2]);
                if (k == -ENOMEM) {
                        r = k;
                        goto out;
                }
                if (k < 0 && modtrim_is_builtin(t, tk.v[2])) {
                        /* Nothing to keep, but the name is no missing module. */
                        if ((r = grow((void **) &t->builtin_aliases, &cap_builtin, t->n_builtin_aliases,
                                     sizeof(char *))) < 0)
                                goto out;
                        if (!(t->builtin_aliases[t->n_builtin_aliases] = strdup(tk.v[1]))) {
                                r = -ENOMEM;
                                goto out;
                        }
                        t->n_builtin_aliases++;
                        continue;
                }
                if (k < 0) /* gone: nothing to keep */
                        continue;
                if ((r = grow((void **) &t->aliases, &cap, t->n_aliases, sizeof(ModTrimAlias))) < 0)
                        goto out;
                t->aliases[t->n_aliases] = (ModTrimAlias) { .pattern = strdup(tk.v[1]), .module = (size_t) k };
                if (!t->aliases[t->n_aliases].pattern) {
                        r = -ENOMEM;
                        goto out;
                }
                t->n_aliases++;
        }
        if (r == -E2BIG)
                r = error_set(ret_error, r, "modules.alias:%u: line too long", line + 1);
out:
        free(tk.v);
        return r;
}

static bool softdep_word_ok(const char *w) {
        for (const char *c = w; *c; c++)
                if ((unsigned char) *c < 0x21 || *c == 0x7f)
                        return false;
        return *w != '\0';
}

/* "softdep MODULE pre: A B post: C"; words before pre:/post: (the kernel's
 * MODULE_SOFTDEP("gcm") in cifs) are taken as soft dependencies too:
 * keeping one more module is the safe side. */
static int load_softdep(ModTrim *t, const char *text, char **ret_error) {
        _cleanup_free_ char *buf = NULL;
        Tokens tk = {};
        unsigned line = 0;
        int r;

        while ((r = next_line(&text, &buf, &tk)) > 0) {
                line++;
                if (tk.n == 0 || tk.v[0][0] == '#')
                        continue;
                if (!streq(tk.v[0], "softdep") || tk.n < 2 || streq(tk.v[1], "pre:") || streq(tk.v[1], "post:")) {
                        r = error_set(ret_error, -EBADMSG,
                                "modules.softdep:%u: expected 'softdep MODULE pre: ... post: ...'", line);
                        goto out;
                }
                for (size_t k = 1; k < tk.n; k++)
                        if (!softdep_word_ok(tk.v[k])) {
                                r = error_set(ret_error, -EBADMSG, "modules.softdep:%u: invalid characters", line);
                                goto out;
                        }
                int mi = modtrim_find(t, tk.v[1]);
                if (mi == -ENOMEM) {
                        r = mi;
                        goto out;
                }
                if (mi < 0)
                        continue;
                ModTrimModule *m = &t->modules[mi];
                bool pre = false;
                for (size_t k = 2; k < tk.n; k++) {
                        if (streq(tk.v[k], "pre:") || streq(tk.v[k], "post:")) {
                                pre = streq(tk.v[k], "pre:");
                                continue;
                        }
                        if (strv_length(m->softdeps) >= 256) {
                                r = error_set(ret_error, -E2BIG, "modules.softdep:%u: too many soft dependencies of %s",
                                        line, m->name);
                                goto out;
                        }
                        char **nl = strv_append(m->softdeps, tk.v[k]);
                        if (!nl) {
                                r = -ENOMEM;
                                goto out;
                        }
                        m->softdeps = nl;
                        if (pre) {
                                if (!(nl = strv_append(m->softdeps_pre, tk.v[k]))) {
                                        r = -ENOMEM;
                                        goto out;
                                }
                                m->softdeps_pre = nl;
                        }
                }
        }
        if (r == -E2BIG)
                r = error_set(ret_error, r, "modules.softdep:%u: line too long", line + 1);
out:
        free(tk.v);
        return r;
}

int modtrim_load(const ModTrimSources *src, ModTrim **ret, char **ret_error) {
        _cleanup_(modtrim_freep) ModTrim *t = NULL;
        _cleanup_free_ size_t *by_path = NULL;
        int r;

        if (!src || !src->dep)
                return -EINVAL;
        if ((r = check_text(src->dep, "modules.dep", ret_error)) < 0 ||
                (r = check_text(src->softdep, "modules.softdep", ret_error)) < 0 ||
                (r = check_text(src->alias, "modules.alias", ret_error)) < 0 ||
                (r = check_text(src->builtin, "modules.builtin", ret_error)) < 0)
                return r;

        t = calloc(1, sizeof(ModTrim));
        if (!t)
                return -ENOMEM;
        if (src->builtin && (r = load_builtin(t, src->builtin, ret_error)) < 0)
                return r;
        if ((r = load_dep_modules(t, src->dep, ret_error)) < 0)
                return r;

        by_path = calloc(t->n_modules ?: 1, sizeof(size_t));
        t->by_name = calloc(t->n_modules ?: 1, sizeof(size_t));
        if (!by_path || !t->by_name)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_modules; i++)
                by_path[i] = t->by_name[i] = i;
        qsort_r(by_path, t->n_modules, sizeof(size_t), cmp_index_path, t);
        qsort_r(t->by_name, t->n_modules, sizeof(size_t), cmp_by_name, t);
        for (size_t i = 1; i < t->n_modules; i++)
                if (streq(t->modules[by_path[i]].path, t->modules[by_path[i - 1]].path))
                        return error_set(
                                ret_error, -EBADMSG, "modules.dep: %s is listed twice", t->modules[by_path[i]].path);

        if ((r = load_dep_edges(t, src->dep, by_path, ret_error)) < 0)
                return r;
        if (src->alias && (r = load_alias(t, src->alias, ret_error)) < 0)
                return r;
        if (src->softdep && (r = load_softdep(t, src->softdep, ret_error)) < 0)
                return r;
        *ret = TAKE_PTR(t);
        return 0;
}

/* ---- resolution ------------------------------------------------------- */

/* The reason is the concatenation of up to four parts (NULL for none). */
static int set_reason(char **reason, const char *a, const char *b, const char *c, const char *d) {
        char *s;
        if (asprintf(&s, "%s%s%s%s", a ?: "", b ?: "", c ?: "", d ?: "") < 0)
                return -ENOMEM;
        free(*reason);
        *reason = s;
        return 0;
}

/* Marks module k kept (and required, if so) because of 'why', queueing it
 * when that is news. */
typedef struct Queue {
        size_t *v;
        size_t n;
} Queue;

static int keep_module(ModTrim *t, size_t k, bool required, const char *a, const char *b, const char *c, Queue *q) {
        ModTrimModule *m = &t->modules[k];
        if (m->keep && (m->required || !required))
                return 0;
        bool was_kept = m->keep;
        m->keep = true;
        m->required = m->required || required;
        /* A module kept on its own merit keeps that reason unless it is
         * now required: the report then says why it cannot go. */
        if (!was_kept || required) {
                int r = set_reason(&m->reason, a, b, c, NULL);
                if (r < 0)
                        return r;
        }
        q->v[q->n++] = k;
        return 0;
}

/* Calls keep_module() for every module the name means (modtrim_lookup()).
 * Built-in or unknown names mean nothing to keep. */
static int keep_name(
        ModTrim *t, const char *name, bool required, const char *a, const char *b, const char *c, Queue *q) {
        _cleanup_free_ size_t *found = NULL;
        size_t n = 0;
        int r = modtrim_lookup(t, name, &found, &n, NULL);
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = keep_module(t, found[i], required, a, b, c, q);
        return r;
}

/* Everything the queued modules need, transitively. */
static int close_over(ModTrim *t, Queue *q) {
        while (q->n > 0) {
                size_t k = q->v[--q->n];
                ModTrimModule *m = &t->modules[k];
                bool req = m->required;
                int r;
                for (size_t d = 0; d < m->n_deps; d++)
                        if ((r = keep_module(t, m->deps[d], req, "needed by ", m->name, req ? " (required)" : "", q)) <
                                0)
                                return r;
                for (char **s = m->softdeps; s && *s; s++)
                        if ((r = keep_name(t, *s, req, "soft dependency of ", m->name, req ? " (required)" : "", q)) <
                                0)
                                return r;
        }
        return 0;
}

static bool name_matches_required(const char *pattern, const char *name) {
        size_t l = strlen(pattern);
        if (l > 0 && pattern[l - 1] == '*')
                return strncmp(pattern, name, l - 1) == 0;
        return streq(pattern, name);
}

int modtrim_resolve(ModTrim *t, const ModTrimRules *rules, char **ret_error) {
        size_t n_rules = 0;
        const ModTrimProfileRule *prules = modtrim_profile_rules(rules->profile, &n_rules);
        /* Each module is queued at most twice (kept, then required). */
        _cleanup_free_ size_t *qv = calloc(2 * t->n_modules + 1, sizeof(size_t));
        Queue q = { .v = qv };
        int r;

        if (!qv)
                return -ENOMEM;

        /* Step 1: each module on its own, by the globs. */
        for (size_t i = 0; i < t->n_modules; i++) {
                ModTrimModule *m = &t->modules[i];
                _cleanup_free_ char *mp = modtrim_match_path(m->path);
                m->keep = true;
                m->required = false;
                m->user_deny = 0;
                m->reason = mfree_reason(m->reason);
                if (!mp) {
                        if (!string_has_prefix(m->path, "kernel/")) {
                                if ((r = set_reason(&m->reason, "kept: outside kernel/", NULL, NULL, NULL)) < 0)
                                        return r;
                                continue;
                        }
                        return -ENOMEM;
                }
                for (size_t a = 0; rules->allow && rules->allow[a]; a++)
                        if (modtrim_glob_match(rules->allow[a], mp)) {
                                if ((r = set_reason(&m->reason, "kept: allow ", rules->allow[a], NULL, NULL)) < 0)
                                        return r;
                                break;
                        }
                if (m->reason)
                        continue;
                for (size_t d = 0; rules->deny && rules->deny[d]; d++)
                        if (modtrim_glob_match(rules->deny[d], mp)) {
                                m->keep = false;
                                m->user_deny = d + 1;
                                if ((r = set_reason(&m->reason, "deny ", rules->deny[d], NULL, NULL)) < 0)
                                        return r;
                                break;
                        }
                for (size_t p = 0; m->keep && p < n_rules; p++) {
                        if (!modtrim_glob_match(prules[p].deny, mp))
                                continue;
                        bool except = false;
                        for (const char *const *e = prules[p].except; e && *e && !except; e++)
                                except = modtrim_glob_match(*e, mp);
                        if (except)
                                continue;
                        m->keep = false;
                        if ((r = set_reason(&m->reason, "profile ", modtrim_profile_to_string(rules->profile), ": ",
                                     prules[p].deny)) < 0)
                                return r;
                }
                if (m->keep && (r = set_reason(&m->reason, "kept", NULL, NULL, NULL)) < 0)
                        return r;
        }

        /* Step 2: Hull's required set and modules-load.d, with everything
         * they need. */
        for (size_t i = 0; i < ELEMENTSOF(required_table); i++) {
                const char *n = required_table[i].name;
                if (n[strlen(n) - 1] == '*') {
                        for (size_t k = 0; k < t->n_modules; k++)
                                if (name_matches_required(n, t->modules[k].name) &&
                                        (r = keep_module(
                                                 t, k, true, "kept: required (", required_table[i].why, ")", &q)) < 0)
                                        return r;
                } else if ((r = keep_name(t, n, true, "kept: required (", required_table[i].why, ")", &q)) < 0)
                        return r;
        }
        for (char **l = rules->load; l && *l; l++)
                if ((r = keep_name(t, *l, true, "kept: required (", *l, " is in modules-load.d)", &q)) < 0)
                        return r;
        if ((r = close_over(t, &q)) < 0)
                return r;

        /* A deny glob of the spec must not take what the image cannot boot
         * or run Kubernetes without. */
        for (size_t i = 0; i < t->n_modules; i++) {
                ModTrimModule *m = &t->modules[i];
                if (m->required && m->user_deny > 0)
                        return error_set(ret_error, -EPERM,
                                "kernel.modules.deny[%zu]: '%s' matches %s, which the image needs (%s); "
                                "narrow the glob or add it to kernel.modules.allow",
                                m->user_deny - 1, rules->deny[m->user_deny - 1], m->path, m->reason);
        }

        /* Step 3: the closure of everything else kept. */
        for (size_t i = 0; i < t->n_modules; i++)
                if (t->modules[i].keep && !t->modules[i].required)
                        q.v[q.n++] = i;
        return close_over(t, &q);
}

/* ---- firmware --------------------------------------------------------- */

void modtrim_firmware_done(ModTrimFirmware *fw, size_t n) {
        for (size_t i = 0; fw && i < n; i++) {
                free(fw[i].path);
                free(fw[i].link_target);
                free(fw[i].reason);
                fw[i] = (ModTrimFirmware) {};
        }
}

static int fw_reason(ModTrimFirmware *f, bool keep, const char *a, const char *b, const char *c) {
        f->keep = keep;
        return set_reason(&f->reason, a, b, c, NULL);
}

int modtrim_firmware_resolve(const ModTrim *t, ModTrimFirmware *fw, size_t n, char **allow, char **deny) {
        int r;

        for (size_t i = 0; i < n; i++) {
                ModTrimFirmware *f = &fw[i];
                _cleanup_free_ char *mp = firmware_match_path(f->path);
                const char *rule = NULL;
                if (!mp)
                        return -ENOMEM;
                f->reason = mfree_reason(f->reason);
                for (size_t a = 0; !rule && allow && allow[a]; a++)
                        if (modtrim_glob_match(allow[a], mp))
                                rule = allow[a];
                if (rule) {
                        if ((r = fw_reason(f, true, "kept: allow ", rule, NULL)) < 0)
                                return r;
                        continue;
                }
                for (size_t d = 0; !rule && deny && deny[d]; d++)
                        if (modtrim_glob_match(deny[d], mp))
                                rule = deny[d];
                if (rule) {
                        if ((r = fw_reason(f, false, "deny ", rule, NULL)) < 0)
                                return r;
                        continue;
                }
                const ModTrimModule *first_dropped = NULL, *kept_by = NULL;
                size_t n_dropped = 0;
                for (size_t k = 0; k < t->n_modules && !kept_by; k++) {
                        const ModTrimModule *m = &t->modules[k];
                        for (char **w = m->firmware; w && *w; w++)
                                if (streq(*w, f->path) || streq(*w, mp)) {
                                        if (m->keep)
                                                kept_by = m;
                                        else {
                                                if (!first_dropped)
                                                        first_dropped = m;
                                                n_dropped++;
                                        }
                                        break;
                                }
                }
                if (kept_by)
                        r = fw_reason(f, true, "kept: for ", kept_by->name, NULL);
                else if (first_dropped) {
                        char more[64] = "";
                        if (n_dropped > 1)
                                (void) snprintf(more, sizeof(more), " and %zu more", n_dropped - 1);
                        r = fw_reason(f, false, "only for dropped modules: ", first_dropped->name, more);
                } else
                        r = fw_reason(f, true, "kept: named by no module", NULL, NULL);
                if (r < 0)
                        return r;
        }

        /* A kept link keeps what it points to (linux-firmware links one
         * file under several names); links may chain. */
        for (bool changed = true; changed;) {
                changed = false;
                for (size_t i = 0; i < n; i++) {
                        if (!fw[i].keep || !fw[i].link_target)
                                continue;
                        for (size_t j = 0; j < n; j++)
                                if (!fw[j].keep && streq(fw[j].path, fw[i].link_target)) {
                                        if ((r = fw_reason(&fw[j], true, "kept: target of ", fw[i].path, NULL)) < 0)
                                                return r;
                                        changed = true;
                                }
                }
        }
        return 0;
}

/* ---- .modinfo --------------------------------------------------------- */

static uint64_t le(const uint8_t *p, size_t n) {
        uint64_t v = 0;
        for (size_t i = n; i > 0; i--)
                v = (v << 8) | p[i - 1];
        return v;
}

int modtrim_modinfo_firmware(const void *elf, size_t size, char ***ret) {
        const uint8_t *e = elf;
        _cleanup_strv_free_ char **l = NULL;

        /* ELF64, little-endian, version 1. */
        if (size < 64 || memcmp(e, "\177ELF", 4) != 0 || e[4] != 2 || e[5] != 1 || e[6] != 1)
                return -EBADMSG;
        uint64_t shoff = le(e + 0x28, 8), shentsize = le(e + 0x3a, 2), shnum = le(e + 0x3c, 2),
                 shstrndx = le(e + 0x3e, 2);
        if (shnum == 0)
                goto done;
        if (shentsize != 64 || shoff > size || shnum > (size - shoff) / 64 || shstrndx >= shnum)
                return -EBADMSG;
        const uint8_t *strsh = e + shoff + shstrndx * 64;
        uint64_t stroff = le(strsh + 0x18, 8), strsize = le(strsh + 0x20, 8);
        if (stroff > size || strsize > size - stroff)
                return -EBADMSG;
        for (uint64_t i = 0; i < shnum; i++) {
                const uint8_t *sh = e + shoff + i * 64;
                uint64_t name = le(sh, 4), type = le(sh + 4, 4), off = le(sh + 0x18, 8), sz = le(sh + 0x20, 8);
                if (name >= strsize)
                        return -EBADMSG;
                const char *sn = (const char *) e + stroff + name;
                if (strnlen(sn, strsize - name) == strsize - name)
                        return -EBADMSG;
                if (!streq(sn, ".modinfo"))
                        continue;
                if (type == 8 /* SHT_NOBITS */)
                        break;
                if (off > size || sz > size - off)
                        return -EBADMSG;
                /* NUL-separated key=value strings. */
                const char *p = (const char *) e + off, *end = p + sz;
                while (p < end) {
                        size_t len = strnlen(p, (size_t) (end - p));
                        if (len > strlen("firmware=") && strncmp(p, "firmware=", strlen("firmware=")) == 0 &&
                                len < 4096) {
                                _cleanup_free_ char *v = strndup(p + strlen("firmware="), len - strlen("firmware="));
                                if (!v)
                                        return -ENOMEM;
                                if (!strv_contains(l, v)) {
                                        if (strv_length(l) >= 1024)
                                                return -E2BIG;
                                        char **nl = strv_append(l, v);
                                        if (!nl)
                                                return -ENOMEM;
                                        l = nl;
                                }
                        }
                        p += len + 1;
                }
                break;
        }
done:
        if (!l && !(l = calloc(1, sizeof(char *))))
                return -ENOMEM;
        *ret = TAKE_PTR(l);
        return 0;
}
