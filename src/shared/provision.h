/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "nodeconfig.h"

/* The provisioning config: what makes one node different from the next,
 * applied once on first boot by hull-provision (docs/PROVISION.md is the
 * reference). People write YAML; `hull-build config` turns it into the
 * machine JSON that this module parses. Every key is checked and unknown keys
 * are errors: a typo must stop first boot, not silently leave a node without
 * its network.
 *
 * The sysctl/files/units sections follow exactly the rules of the node config
 * (nodeconfig.h); they are parsed by node_config_parse() itself. */

#define PROVISION_FORMAT 1
#define PROVISION_SIZE_MAX (1024 * 1024)

#define PROVISION_USERS_MAX 64
#define PROVISION_USER_NAME_MAX 32
#define PROVISION_GECOS_MAX 256
#define PROVISION_GROUPS_MAX 32
#define PROVISION_KEYS_MAX 64
#define PROVISION_KEY_MAX 16384
#define PROVISION_NETWORKS_MAX 32
#define PROVISION_NETWORK_NAME_MAX 32
#define PROVISION_ADDRESSES_MAX 64
#define PROVISION_DNS_MAX 16
#define PROVISION_DOMAINS_MAX 32
#define PROVISION_NTP_MAX 16
#define PROVISION_DISKS_MAX 32
#define PROVISION_DISK_OPTIONS_MAX 32
#define PROVISION_KUBE_TEXT_MAX (256 * 1024)
#define PROVISION_NODE_LABELS_MAX 64
#define PROVISION_NODE_TAINTS_MAX 32
#define PROVISION_CLUSTER_DNS_MAX 3   /* glibc's resolver reads 3 nameservers (MAXNS); the kubelet warns beyond */

typedef struct ProvisionUser {
        char *name;                  /* [a-z_][a-z0-9_-]{0,31}, not a reserved name */
        char *gecos;                 /* printable, no ':' ; or NULL */
        char **groups;               /* strv of group names, sorted, unique; NULL if none */
        char **ssh_authorized_keys;  /* strv, one key line each, in the order given; NULL if none */
        char *shell;                 /* absolute path, or NULL (useradd's default) */
} ProvisionUser;

typedef struct ProvisionNetwork {
        char *name;            /* [a-z0-9-]{1,32}: the file is /etc/systemd/network/50-hull-<name>.network */
        char *match_name;      /* interface name or glob, e.g. "en*"; or NULL */
        char *match_mac;       /* "52:54:00:12:34:56" (lower case) or NULL; at least one of match_* */
        bool dhcp;             /* true: DHCP (v4+v6); false: static */
        char **addresses;      /* static: CIDR "192.0.2.10/24", "2001:db8::10/64" (validated with inet_pton) */
        char *gateway;         /* static: IPv4 or IPv6 address, or NULL */
        char **dns;            /* addresses; NULL if none */
        char **domains;        /* search domains; NULL if none */
        uint32_t mtu;          /* 0 = unset, else 68..65535 */
} ProvisionNetwork;

typedef enum ProvisionFs {
        PROVISION_FS_EXT4,
        PROVISION_FS_XFS,
        _PROVISION_FS_MAX,
} ProvisionFs;

const char *provision_fs_to_string(ProvisionFs fs);

typedef struct ProvisionDisk {
        char *device;          /* absolute path under /dev/ (e.g. /dev/vdb, /dev/disk/by-id/..., /dev/disk/by-path/...) */
        bool partition;        /* default true: one GPT partition spanning the disk, formatted; false: the whole device */
        ProvisionFs filesystem;
        char *label;           /* file system label: ext4 <= 16 bytes, xfs <= 12; [A-Za-z0-9_-]; required (it is how a
                                * formatted disk is recognised again) */
        char *mount;           /* absolute, normalised, not /, not under /etc, /usr, /proc, /sys, /dev, /run, /boot,
                                * /persist; e.g. /var/lib/ceph, /data */
        char **options;        /* mount options, e.g. "noatime"; [A-Za-z0-9_=.:/+-], no ','; NULL if none */
        bool wipe;             /* format even if the device holds something else (explicit; default false) */
} ProvisionDisk;

typedef struct ProvisionLabel {
        char *key;             /* [prefix/]name: a qualified name, and one the kubelet may set on its own Node */
        char *value;           /* a label value: "" or <= 63 of [A-Za-z0-9-_.], alphanumeric at both ends */
} ProvisionLabel;

typedef struct ProvisionTaint {
        char *key;             /* a qualified name */
        char *value;           /* a label value, or NULL */
        char *effect;          /* "NoSchedule", "PreferNoSchedule" or "NoExecute" */
} ProvisionTaint;

typedef struct ProvisionKubernetes {
        char *kubelet_config;  /* the user's KubeletConfiguration overlay (YAML or JSON mapping), merged over Hull's
                                * defaults into /etc/kubernetes/kubelet-config.yaml; or NULL (defaults only) */
        char *server;          /* https URL of the API server */
        char *ca_cert;         /* PEM text (checked to look like PEM CERTIFICATE blocks) */
        char *bootstrap_token; /* "abcdef.0123456789abcdef" format ([a-z0-9]{6}\.[a-z0-9]{16}) or NULL */
        char *kubeconfig;      /* a complete kubeconfig text instead of server/token, or NULL */
        char **cluster_dns;    /* addresses, in the order given (-> clusterDNS); NULL if none */
        ProvisionLabel *node_labels; /* sorted by key, unique (-> --node-labels) */
        size_t n_node_labels;
        ProvisionTaint *node_taints; /* in the order given, unique by (key, effect) (-> registerWithTaints) */
        size_t n_node_taints;
        char **node_ip;        /* one address, or an IPv4 and an IPv6 one (dual-stack), in the order given
                                * (-> --node-ip); NULL if none */
} ProvisionKubernetes;

typedef struct ProvisionConfig {
        unsigned format;               /* "hull_config": 1 */
        char *hostname;                /* RFC 1123 name (labels [a-z0-9-], <= 63 each, <= 253 total), or NULL */
        ProvisionUser *users;          /* in the order given */
        size_t n_users;
        bool ssh_enabled;              /* "ssh": {"enabled": true}: enable the image's sshd (off by default) */
        ProvisionNetwork *networks;    /* in the order given */
        size_t n_networks;
        char **ntp_servers;            /* host names or addresses, in the order given; NULL if none */
        NodeConfig *node;              /* sysctl, files under /etc, units: the node config rules (generation 1);
                                        * never NULL after parse (empty config) */
        ProvisionDisk *disks;          /* in the order given */
        size_t n_disks;
        ProvisionKubernetes *kubernetes; /* NULL if absent */
} ProvisionConfig;

/* SSH reaches the admin container only, never a host shell: every key is
 * forced to run this command (hullctl's interactive admin-container shell,
 * through hull-agent), and every provisioned user is in this group, which
 * hull-agent's socket admits (--socket-group) and sshd requires. */
#define PROVISION_ADMIN_GROUP "hull-admin"
#define PROVISION_ADMIN_COMMAND "/usr/bin/hullctl debug"
#define PROVISION_SSHD_CONF "/etc/ssh/sshd_config.d/50-hull.conf"
#define PROVISION_SSHD_HOST_KEYS "/etc/systemd/system/ssh.service.d/50-hull-host-keys.conf"

/* What the image's kubelet.service reads (docs/PROVISION.md#kubernetes):
 * --config, --bootstrap-kubeconfig, --kubeconfig, and EnvironmentFile= for
 * $KUBELET_EXTRA_ARGS. */
#define PROVISION_KUBELET_CONFIG "/etc/kubernetes/kubelet-config.yaml"
#define PROVISION_KUBELET_BOOTSTRAP "/etc/kubernetes/bootstrap-kubelet.conf"
#define PROVISION_KUBELET_KUBECONFIG "/etc/kubernetes/kubelet.conf"
#define PROVISION_KUBELET_CA "/etc/kubernetes/pki/ca.crt"
#define PROVISION_KUBELET_DEFAULTS "/etc/default/kubelet"
/* The image's health check polls http://127.0.0.1:10248/healthz. */
#define PROVISION_KUBELET_HEALTHZ_PORT 10248

ProvisionConfig *provision_free(ProvisionConfig *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(ProvisionConfig *, provision_free);

/* Strict parse of the machine JSON: unknown keys, wrong types, bad values -> -EBADMSG with *ret_error like
 * "networks[0].addresses[1]: not an address/prefix"; -E2BIG over PROVISION_SIZE_MAX; duplicates (two users of one
 * name, two disks of one device or mount point, two networks of one name, a generated file also listed in files[])
 * are errors. Also rejects "hull_config" other than 1 with a message saying which versions are understood.
 * -ENOMEM. *ret_error is written only on -EBADMSG/-E2BIG, if ret_error is not NULL (free() it). */
int provision_parse(const char *json, size_t len, ProvisionConfig **ret, char **ret_error) _warn_unused_result_;

/* Canonical JSON: sorted keys, compact, defaults and empty sections left out. parse(format(c)) == c and format
 * is a fixed point. -EINVAL for a config that parse would not have returned. */
int provision_format(const ProvisionConfig *c, char **ret) _warn_unused_result_;

/* Everything that becomes plain files/sysctls/units, as ONE NodeConfig (generation 1), for node_config_apply():
 * the config's own files/sysctl/units plus generated files: /etc/hostname and /etc/hosts (127.0.1.1 line) when a
 * hostname is set; /etc/systemd/network/50-hull-<name>.network per network (+ "systemd-networkd.service" enabled);
 * /etc/systemd/timesyncd.conf.d/50-hull.conf with NTP= (+ "systemd-timesyncd.service" enabled) ; with a kubernetes
 * section: PROVISION_KUBELET_CONFIG (0644, always: Hull's defaults with the user's kubelet_config merged over them,
 * as canonical JSON), PROVISION_KUBELET_DEFAULTS (0644, always: KUBELET_EXTRA_ARGS with --node-ip/--node-labels),
 * bootstrap-kubelet.conf built from server+ca+token or kubelet.conf from kubeconfig (0600), pki/ca.crt (0644, from
 * ca_cert or the kubeconfig's certificate-authority-data); "ssh.service" enabled and PROVISION_SSHD_CONF (keys only, no root, only
 * PROVISION_ADMIN_GROUP, no forwarding, ForceCommand PROVISION_ADMIN_COMMAND) and PROVISION_SSHD_HOST_KEYS (ssh-keygen -A
 * before sshd starts: images carry no host keys) when ssh_enabled; the sysctls also as
 * /etc/sysctl.d/80-hull-provision.conf (the agent rewrites the node config's own 90-hull.conf). Users'
 * authorized_keys are NOT in here (they live under /home, done by hull-provision with useradd). Deterministic
 * output. -EBADMSG/-E2BIG with *ret_error if the combination breaks a node config limit (provision_parse() has
 * already refused such configs), -EINVAL for a config that parse would not have returned. */
int provision_render(const ProvisionConfig *c, NodeConfig **ret, char **ret_error) _warn_unused_result_;

/* The user's authorized_keys(5) file: each key behind the options
 * "restrict,pty,command=\"" PROVISION_ADMIN_COMMAND "\"" (no forwarding of any kind, a terminal, and the admin
 * container whatever command the client asks for), one line each, ending in a newline. -ENOMEM. */
int provision_authorized_keys(const ProvisionUser *u, char **ret) _warn_unused_result_;

/* The host name a node gets when its config names none: "hull-" and the first 12 hex digits of the machine ID
 * (systemd's /etc/machine-id, 32 lower-case hex digits), or, without a usable one (NULL, empty, "uninitialized"),
 * of the MAC address 'mac' ("52:54:00:12:34:56", either case) without colons. Unique per node and stable: the ID is
 * the node's own, and the name is kept in /etc/hostname once written. -ENOENT if neither is usable, -ENOMEM. */
int provision_default_hostname(const char *machine_id, const char *mac, char **ret) _warn_unused_result_;

/* The human document -> machine JSON, for `hull-build config`: 'yaml' is the YAML text (yaml-json.h converts),
 * 'base_dir' resolves conveniences that read local files at generation time: files[].source (instead of
 * content), users[].ssh_authorized_keys_file, kubernetes.kubelet_config_file / ca_cert_file / kubeconfig_file.
 * The result is validated with provision_parse() and formatted canonically (ending in a newline).
 * -EBADMSG/-E2BIG with *ret_error as for provision_parse(); a source file that cannot be read is -EBADMSG too,
 * with the field and the path in the message. */
int provision_generate(const char *yaml, size_t len, const char *base_dir, char **ret_json, char **ret_error)
        _warn_unused_result_;
