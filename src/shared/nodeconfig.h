/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

/* The node config: declarative node settings (sysctls, kernel arguments,
 * files under /etc, unit enablement, debug access) that hull-agent applies
 * without a new image. The document is JSON, at most NODE_CONFIG_SIZE_MAX
 * bytes; docs/CONFIG.md is the reference. Every key is checked and unknown
 * keys are errors, so that a typo never silently changes what a node does.
 *
 * A config carries a generation: the agent applies a higher generation,
 * treats the same generation with the same content as a no-op and refuses
 * anything else as stale. Generation 0 is "nothing applied yet"; it only
 * exists in memory and in the agent's store, never in a submitted document. */

#define NODE_CONFIG_SIZE_MAX (1024 * 1024)
#define NODE_CONFIG_SYSCTL_MAX 256
#define NODE_CONFIG_SYSCTL_KEY_MAX 255
#define NODE_CONFIG_SYSCTL_VALUE_MAX 4096
#define NODE_CONFIG_KERNEL_ARGS_MAX 64
#define NODE_CONFIG_KERNEL_ARG_MAX 256
#define NODE_CONFIG_FILES_MAX 128
#define NODE_CONFIG_FILE_PATH_MAX 255
#define NODE_CONFIG_FILE_SIZE_MAX (256 * 1024)
#define NODE_CONFIG_UNITS_MAX 128
#define NODE_CONFIG_UNIT_NAME_MAX 255

/* NULL if 'u' is a unit name that may be enabled, disabled or masked
 * (a plain or instance name with a known suffix, nothing systemctl would read
 * as an option); otherwise why not. Shared with the image spec's units. */
const char *unit_name_check(const char *u);

/* Where the sysctl section is persisted for the next boot (below the apply
 * root). Reserved: a files[] entry may not name it. */
#define NODE_CONFIG_SYSCTL_CONF "/etc/sysctl.d/90-hull.conf"

typedef struct NodeConfigFile {
        char *path;        /* absolute, normalised, below /etc/ */
        uint8_t *content;  /* never NULL, even for an empty file */
        size_t size;
        mode_t mode;       /* permission bits only, <= 0777 */
} NodeConfigFile;

typedef struct NodeConfigSysctl {
        char *key;         /* "net.ipv4.ip_forward" */
        char *value;       /* printable ASCII, as written to /proc/sys */
} NodeConfigSysctl;

typedef struct NodeConfig {
        uint64_t generation;
        NodeConfigSysctl *sysctl;    /* sorted by key (strcmp) */
        size_t n_sysctl;
        char **kernel_args;          /* strv in the order given; NULL if none */
        NodeConfigFile *files;       /* sorted by path (strcmp) */
        size_t n_files;
        char **units_enable;         /* strv, sorted, no duplicates; NULL if none */
        char **units_disable;        /* likewise; disjoint from units_enable */
        bool debug_enabled;
} NodeConfig;

/* Generation 0, everything empty: what a node has before its first config. */
int node_config_new_empty(NodeConfig **ret) _warn_unused_result_;
NodeConfig *node_config_free(NodeConfig *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(NodeConfig *, node_config_free);

/* Parse and validate a document. Returns -EBADMSG for malformed JSON, an
 * unknown key, a mistyped or missing field or a value breaking a rule
 * (generation must be >= 1); -E2BIG if len > NODE_CONFIG_SIZE_MAX or if the
 * canonical form would exceed it (file contents grow by a third as base64);
 * -ENOMEM. On -EBADMSG and -E2BIG, if ret_error is non-NULL, *ret_error gets
 * an allocated message naming the field, e.g.
 * "files[1].path: must be under /etc"; it is not touched otherwise. */
int node_config_parse(const char *data, size_t len, NodeConfig **ret, char **ret_error) _warn_unused_result_;

/* Canonical JSON: sorted keys, compact, empty sections and defaults left
 * out, file contents always as "content_base64", modes as "0644" strings,
 * sysctl values as strings. For every c that node_config_parse() returned,
 * parsing the output gives a config equal to c, and formatting that gives
 * the same bytes again. Generation 0 formats as {"generation":0} (the agent
 * reports that before the first config). -EINVAL if c breaks a rule that
 * node_config_parse() enforces (a hand-built config), -E2BIG if the output
 * would exceed NODE_CONFIG_SIZE_MAX. */
int node_config_format(const NodeConfig *c, char **ret) _warn_unused_result_;

/* Same content and generation. A NULL strv equals an empty one; two NULL
 * configs are equal. */
bool node_config_equal(const NodeConfig *a, const NodeConfig *b);

/* The kernel arguments joined by single spaces, "" if there are none; NULL
 * only on allocation failure. */
char *node_config_kernel_args_string(const NodeConfig *c);

/* ---- applying ----
 *
 * All paths are below 'root' ("/" on a node, a temporary directory in
 * tests); sysctls go to 'proc_sys'. A zeroed (or NULL) options struct means
 * root "/", proc_sys "/proc/sys", no systemctl, not live. */
typedef struct NodeConfigApplyOptions {
        const char *root;      /* NULL: "/" */
        const char *proc_sys;  /* NULL: "/proc/sys"; tests point it at a temp dir */
        /* Enable and disable units with "systemctl [--root=ROOT] enable|disable".
         * Without it, the [Install] WantedBy= symlinks are created and
         * removed directly (tests, images being assembled). */
        bool run_systemctl;
        /* A running node: also start/stop units ("enable --now",
         * "disable --now"). Only meaningful with run_systemctl and root "/". */
        bool live;
        /* Run the checks against the system (below) and stop there:
         * nothing is written. hull-provision checks every part of a first
         * boot before it changes any. */
        bool check_only;
} NodeConfigApplyOptions;

typedef struct NodeConfigApplyResult {
        bool changed;          /* the generation differs from old's */
        bool reboot_required;  /* the kernel arguments differ from old's */
} NodeConfigApplyResult;

/* Move the node from 'old' (the config applied last, or NULL/generation 0
 * for none) to 'new'.
 *
 * Generations: the same generation with equal content returns 0 with
 * changed = false and touches nothing; the same generation with different
 * content, or a lower one, is -ESTALE.
 *
 * Before changing anything, 'new' is checked against the system: every
 * sysctl must exist under proc_sys (-ENOENT) and be a writable parameter
 * (-EINVAL); every unit to enable or disable must have a unit file in
 * <root>/etc/systemd/system, <root>/usr/lib/systemd/system or
 * <root>/lib/systemd/system, or be a file of the config itself below
 * /etc/systemd/system (-ENOENT); no file may replace a directory (-EINVAL).
 * A config that breaks a parse rule is -EINVAL.
 *
 * Then, in this order:
 *  - sysctls are written to proc_sys (values already in place are left
 *    alone) and to <root>/etc/sysctl.d/90-hull.conf for the next boot (the
 *    file is removed when there are none). If a write fails, the values
 *    written so far are restored and nothing else happens. Keys dropped
 *    since 'old' keep their current runtime value until the next boot.
 *  - files are written atomically with their mode (parents created 0755);
 *    a file whose content and mode already match is not rewritten; files of
 *    'old' that 'new' no longer lists are deleted.
 *  - units are disabled, then enabled. Units dropped from the enable list
 *    since 'old' are left as they are; disabling is always explicit.
 *  - kernel arguments are not applied here: the caller writes
 *    node_config_kernel_args_string() to the boot loader, and
 *    reboot_required says whether that matters.
 * A failure after the checks can leave the node partly moved to 'new'; as
 * every step is idempotent, applying the same pair again converges.
 *
 * On failure, if ret_error is non-NULL, *ret_error gets an allocated
 * message when there is something to say beyond the errno. ret is written
 * only on success. */
int node_config_apply(const NodeConfig *old, const NodeConfig *new, const NodeConfigApplyOptions *o,
                      NodeConfigApplyResult *ret, char **ret_error) _warn_unused_result_;

/* ---- the agent's store ---- */

/* A missing file is an empty config (generation 0), as is a stored
 * {"generation":0}. Otherwise as node_config_parse(); read errors are
 * returned as they are. */
int node_config_load(const char *path, NodeConfig **ret, char **ret_error) _warn_unused_result_;
/* Canonical JSON, written atomically with mode 0600: the config may hold
 * secrets (files under /etc), so only root reads the store. */
int node_config_save(const NodeConfig *c, const char *path) _warn_unused_result_;
