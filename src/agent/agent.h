/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "audit.h"
#include "components.h"
#include "nodeconfig.h"
#include "sign.h"
#include "update.h"

/* hull-agent's state. The HTTP thread (agent-http.c) reads it under 'lock';
 * at most one worker thread runs an operation (stage, the health checks) at
 * a time. Everything that must survive a restart lives on persist under
 * state_dir: the operation counter and last operation, the applied node
 * config, the audit log. */

typedef struct AgentOptions {
        const char *socket_path;      /* /run/hull/agent.sock */
        const char *socket_group;     /* NULL: root only */
        const char *state_dir;        /* /persist/hull/agent */
        const char *esp_dir;          /* NULL: find PARTLABEL=hull-esp and mount it at /run/hull/esp */
        const char *slot_device[2];   /* NULL: PARTLABEL=hull-root-a/-b */
        const char *booted_slot;      /* NULL: from boot.json */
        const char *boot_json;        /* /run/hull/boot.json */
        const char *keys_dir;         /* /usr/share/hull/keys */
        const char *registry_auth;    /* OCI_AUTH_FILE_NODE: docker config.json for oci:// sources */
        const char *os_release;       /* /usr/lib/os-release */
        const char *components_file;  /* COMPONENTS_FILE: the running image's component versions */
        const char *reboot_command;   /* "systemctl reboot" */
        unsigned reboot_retry_sec;    /* 120: ask again while still running; 0: never */
        const char *config_root;      /* "/" */
        const char *proc_sys;         /* "/proc/sys" */
        char **health_dirs;           /* /usr/lib/hull/health.d /etc/hull/health.d */
        unsigned health_timeout_sec;  /* 300 */
        unsigned check_timeout_sec;   /* 60 */
        bool systemd_check;           /* wait for the default target (true) */
        bool auto_mark_good;          /* check health after boot and mark good (true) */
        bool reboot_on_unhealthy;     /* reboot when the checks time out (true) */
        bool live;                    /* a real node: systemctl for units, --now */
        const char *toolbox;          /* the admin container's root: /persist/hull/toolbox */
        unsigned debug_timeout_sec;   /* 120 */
        char **hook_dirs;             /* lookup order: /etc/hull/hooks.d /usr/lib/hull/hooks.d */
        unsigned hook_kill_grace_sec; /* HOOK_KILL_GRACE_SEC */
} AgentOptions;

typedef struct Operation {
        uint64_t id;                  /* 0: none yet */
        char type[16];                /* stage activate mark-good rollback config fallback reboot hook */
        char state[16];               /* running succeeded failed */
        char phase[24];
        uint64_t done, total;
        uint64_t started, finished;   /* usec, CLOCK_REALTIME; finished 0 while running */
        char version[65];
        int slot;                     /* Slot or -1 */
        int error_errno;              /* negative, 0 = none */
        char error_code[24];          /* "" = derived from error_errno */
        bool background;              /* ends after its request: audit the outcome separately */
        char *error_message;
        char notice[256];             /* the last thing a stage said it did differently (full download, ...) */
        bool have_transfer;           /* a download: what it fetched and reused (delta.h) */
        uint64_t bundle_bytes, fetched_bytes, reused_bytes, resumed_bytes;
        bool full_download;
        /* type "hook": which, and how it went; output is the text shown
         * (hook_output_text()), also while it runs; exit code valid when
         * have_exit_code. audit_detail: the outcome record's "detail". */
        char hook_name[65];
        char hook_stage[16];
        bool have_exit_code;
        int exit_code;
        char *hook_output;
        char *audit_detail;
} Operation;

/* What a slot holds, as far as the status reports it beyond the GRUB
 * environment: the component versions of the image in it, kept on persist
 * as state_dir/slot-<a|b>.json ({"version": ..., "components": {...}}).
 * Written when a stage succeeds (from the verified manifest) and, for the
 * booted slot, from the running image's COMPONENTS_FILE at start-up, so
 * that the slot still says what it holds once it is the inactive one.
 * Cleared when the slot starts being overwritten and when a fallback marks
 * it bad. It only counts while the slot's version in the GRUB environment is
 * the record's and the slot is neither empty nor bad. */
typedef struct SlotRecord {
        bool known;
        char version[65];
        Components components;
} SlotRecord;

typedef struct Agent {
        AgentOptions opt;
        UpdateTarget target;
        Keyring *keyring;
        char *esp_dir, *slot_device[2];
        char arch[65];
        char os_name[65], os_version[65], pretty_name[256];
        char boot_id[40];
        bool degraded, first_boot;
        Components running_components; /* the booted image's, from opt.components_file */

        pthread_mutex_t lock;
        Operation op;
        bool busy;
        pthread_t worker;
        bool worker_joinable;
        pid_t worker_pid;             /* the stage worker process, 0 if none */
        pid_t hook_pid;               /* a running hook (leader of its process group), 0 if none */
        char self_exe[4096];          /* for spawning the stage worker */
        uint64_t next_op_id;

        AuditLog *audit;
        NodeConfig *config;
        SlotRecord slot_record[_SLOT_MAX];
        char health[16];              /* pending checking healthy unhealthy */
        char *health_message;
        bool reboot_required;
        bool reboot_pending;          /* reboot as soon as the response went out */
        int wake_fd;                  /* eventfd: tells the main loop to look at reboot_pending */
        volatile int stopping;
} Agent;

int agent_init(Agent *a, const AgentOptions *o);
void agent_done(Agent *a);

/* Called once before serving: detect a fallback and start the health checks
 * of an unconfirmed boot. */
void agent_boot_tasks(Agent *a);

/* The slot records (SlotRecord above), lock held. save: after a
 * successful stage; clear: the slot is being overwritten. A failure to
 * write persist is logged; the record still holds until the agent stops. */
void agent_slot_record_save(Agent *a, Slot s, const char *version, const Components *c);
void agent_slot_record_clear(Agent *a, Slot s);

/* Request handlers used by agent-http.c. Each returns an HTTP status and a
 * JSON body (*ret_body, malloc'ed). */
unsigned agent_get_status(Agent *a, char **ret_body);
unsigned agent_get_operation(Agent *a, char **ret_body);
unsigned agent_get_config(Agent *a, char **ret_body);
unsigned agent_get_audit(Agent *a, size_t limit, char **ret_body);
unsigned agent_post_stage(Agent *a, const char *body, size_t len, char **ret_body);
unsigned agent_post_activate(Agent *a, const char *body, size_t len, char **ret_body);
unsigned agent_post_mark_good(Agent *a, const char *body, size_t len, char **ret_body);
unsigned agent_post_rollback(Agent *a, const char *body, size_t len, char **ret_body);
unsigned agent_post_reboot(Agent *a, const char *body, size_t len, char **ret_body);
unsigned agent_post_config(Agent *a, const char *body, size_t len, char **ret_body);
unsigned agent_post_hook(Agent *a, const char *body, size_t len, char **ret_body);
unsigned agent_post_debug(Agent *a, const char *body, size_t len, uid_t uid, char **ret_body);

/* An interactive admin-container session (POST /v1/debug with "Upgrade:
 * hull-tty"): 0 and the command to run (strv), or an error status and body. */
unsigned agent_debug_session_prepare(Agent *a, const char *body, size_t len, char ***ret_command, char **ret_body);
void agent_debug_session_ended(Agent *a, uid_t uid, const char *command, int exit_status);

/* An error body, with status; used for routing errors too. */
unsigned agent_error(unsigned status, const char *code, int err, char **ret_body, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

/* Ask the main loop to reboot (after the current response is sent). */
void agent_request_reboot(Agent *a);

int agent_serve(Agent *a);  /* agent-http.c: runs until SIGTERM/SIGINT */
