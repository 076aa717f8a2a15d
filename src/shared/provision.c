/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "fileio.h"
#include "provision.h"
#include "strutil.h"
#include "yaml-json.h"

/* ---- tables ---- */

static const char *const top_keys[] = { "disks", "files", "hostname", "hull_config", "kubernetes", "networks",
                                        "ntp", "ssh", "sysctl", "units", "users" };
static const char *const user_keys[] = { "gecos", "groups", "name", "shell", "ssh_authorized_keys" };
static const char *const ssh_keys[] = { "enabled" };
static const char *const network_keys[] = { "addresses", "dhcp", "dns", "domains", "gateway", "match", "mtu", "name" };
static const char *const match_keys[] = { "mac", "name" };
static const char *const ntp_keys[] = { "servers" };
static const char *const disk_keys[] = { "device", "filesystem", "label", "mount", "options", "partition", "wipe" };
static const char *const kube_keys[] = { "bootstrap_token", "ca_cert",   "cluster_dns", "kubeconfig", "kubelet_config",
                                         "node_ip",         "node_labels", "node_taints", "server" };
static const char *const taint_keys[] = { "effect", "key", "value" };

/* The sections that follow the node config's rules, handed to node_config_parse(). */
static const char *const node_sections[] = { "files", "sysctl", "units" };

/* Accounts a Debian 12 system has (base-passwd, systemd, dbus, openssh,
 * chrony/timesyncd) or that mean something to every tool: a provisioned user
 * of that name would either fail in useradd on first boot or, worse, take
 * over a system account. What else lives below uid 1000 in a given image is
 * unknowable here; hull-provision refuses existing accounts on the node. */
static const char *const reserved_users[] = {
        "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
        "www-data", "backup", "list", "irc", "gnats", "nobody", "nogroup", "_apt", "messagebus", "sshd",
        "systemd-network", "systemd-resolve", "systemd-timesync", "systemd-coredump", "systemd-journal",
        "polkitd", "tss", "hull", PROVISION_ADMIN_GROUP, "staff", "users",
};

static const char *const ssh_key_types[] = {
        "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
};

/* Mount points a data disk may not cover or sit below: the image, the
 * kernel's file systems, Hull's own state. */
static const char *const mount_forbidden_trees[] = {
        "/etc", "/usr", "/proc", "/sys", "/dev", "/run", "/boot", "/persist", "/efi", "/bin", "/sbin", "/lib",
        "/lib32", "/lib64",
};
/* ...and these may not be covered, though a disk may go below them. */
static const char *const mount_forbidden_exact[] = { "/", "/var", "/home", "/root", "/tmp", "/var/lib", "/var/log" };

#define NETWORK_UNIT_DIR "/etc/systemd/network"
#define TIMESYNCD_CONF "/etc/systemd/timesyncd.conf.d/50-hull.conf"
/* The sysctls for every boot after the first. Not the node config's own
 * 90-hull.conf: the agent rewrites (or removes) that file whenever it applies
 * a node config, which would silently drop what was provisioned. Sorting
 * before it, the agent's values win where both set a key. */
#define SYSCTL_CONF "/etc/sysctl.d/80-hull-provision.conf"
#define KUBELET_CONFIG PROVISION_KUBELET_CONFIG
#define KUBE_BOOTSTRAP_CONF PROVISION_KUBELET_BOOTSTRAP
#define KUBE_KUBELET_CONF PROVISION_KUBELET_KUBECONFIG
#define KUBE_CA PROVISION_KUBELET_CA

#define UNIT_NETWORKD "systemd-networkd.service"
#define UNIT_TIMESYNCD "systemd-timesyncd.service"
#define UNIT_SSH "ssh.service"

#define CA_CERT_MAX (64 * 1024)
#define MOUNT_OPTION_MAX 256
#define SHELL_MAX 255
#define KUBE_SERVER_MAX 2048

/* ---- lifetime ---- */

const char *provision_fs_to_string(ProvisionFs fs) {
        switch (fs) {
        case PROVISION_FS_EXT4:
                return "ext4";
        case PROVISION_FS_XFS:
                return "xfs";
        default:
                return NULL;
        }
}

static void user_done(ProvisionUser *u) {
        free(u->name);
        free(u->gecos);
        strv_free(u->groups);
        strv_free(u->ssh_authorized_keys);
        free(u->shell);
}

static void network_done(ProvisionNetwork *n) {
        free(n->name);
        free(n->match_name);
        free(n->match_mac);
        strv_free(n->addresses);
        free(n->gateway);
        strv_free(n->dns);
        strv_free(n->domains);
}

static void disk_done(ProvisionDisk *d) {
        free(d->device);
        free(d->label);
        free(d->mount);
        strv_free(d->options);
}

static ProvisionKubernetes *kube_free(ProvisionKubernetes *k) {
        if (!k)
                return NULL;
        free(k->kubelet_config);
        free(k->server);
        free(k->ca_cert);
        free(k->bootstrap_token);
        free(k->kubeconfig);
        strv_free(k->cluster_dns);
        for (size_t i = 0; i < k->n_node_labels; i++) {
                free(k->node_labels[i].key);
                free(k->node_labels[i].value);
        }
        free(k->node_labels);
        for (size_t i = 0; i < k->n_node_taints; i++) {
                free(k->node_taints[i].key);
                free(k->node_taints[i].value);
                free(k->node_taints[i].effect);
        }
        free(k->node_taints);
        strv_free(k->node_ip);
        free(k);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(ProvisionKubernetes *, kube_free);

ProvisionConfig *provision_free(ProvisionConfig *c) {
        if (!c)
                return NULL;
        free(c->hostname);
        for (size_t i = 0; i < c->n_users; i++)
                user_done(c->users + i);
        free(c->users);
        for (size_t i = 0; i < c->n_networks; i++)
                network_done(c->networks + i);
        free(c->networks);
        strv_free(c->ntp_servers);
        node_config_free(c->node);
        for (size_t i = 0; i < c->n_disks; i++)
                disk_done(c->disks + i);
        free(c->disks);
        kube_free(c->kubernetes);
        free(c);
        return NULL;
}

/* ---- value rules ----
 *
 * Each returns NULL if the value is fine, or why it is not. */

static bool ascii_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool in_set(char c, const char *set) {
        return c != '\0' && strchr(set, c);
}

static bool in_list(const char *s, const char *const *l, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (streq(s, l[i]))
                        return true;
        return false;
}

static bool strv_has(char *const *l, const char *s) {
        if (l)
                for (; *l; l++)
                        if (streq(*l, s))
                                return true;
        return false;
}

static bool streq_ptr(const char *a, const char *b) {
        return a && b && streq(a, b);
}

static bool path_below(const char *b, const char *a) {
        size_t l = strlen(a);
        return strncmp(a, b, l) == 0 && b[l] == '/';
}

/* RFC 1123 host name, lower case: what /etc/hostname, the kubelet's node
 * name and DNS all accept. */
static const char *hostname_check(const char *h) {
        size_t l = strnlen(h, 254);

        if (l == 0)
                return "must not be empty";
        if (l > 253)
                return "longer than 253 characters";
        for (const char *s = h; *s;) {
                size_t n = strcspn(s, ".");
                if (n == 0)
                        return "has an empty label (leading, trailing or double '.')";
                if (n > 63)
                        return "has a label longer than 63 characters";
                for (size_t i = 0; i < n; i++)
                        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
                                return "may only contain a-z, 0-9 and '-' in labels separated by '.'";
                if (s[0] == '-' || s[n - 1] == '-')
                        return "has a label starting or ending with '-'";
                s += n;
                if (*s == '.') {
                        s++;
                        if (!*s)
                                return "has an empty label (leading, trailing or double '.')";
                }
        }
        return NULL;
}

static const char *account_name_check(const char *n) {
        size_t l = strnlen(n, PROVISION_USER_NAME_MAX + 1);

        if (l == 0)
                return "must not be empty";
        if (l > PROVISION_USER_NAME_MAX)
                return "longer than 32 characters";
        if (!((n[0] >= 'a' && n[0] <= 'z') || n[0] == '_'))
                return "must start with a-z or '_'";
        for (size_t i = 0; i < l; i++)
                if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') || in_set(n[i], "_-")))
                        return "may only contain a-z, 0-9, '_' and '-'";
        return NULL;
}

/* Control characters would end a line of /etc/passwd; ':' separates its
 * fields. */
static const char *gecos_check(const char *g) {
        if (strlen(g) > PROVISION_GECOS_MAX)
                return "longer than 256 bytes";
        for (const char *p = g; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f || *p == ':')
                        return "must not contain control characters or ':'";
        return NULL;
}

static const char *abs_path_check(const char *p, size_t max) {
        size_t l = strnlen(p, max + 1);

        if (l > max)
                return "path too long";
        if (p[0] != '/')
                return "must be an absolute path";
        for (size_t i = 0; i < l; i++)
                if (!ascii_alnum(p[i]) && !in_set(p[i], "._@+-/:="))
                        return "may only contain A-Z, a-z, 0-9 and '.', '_', '@', '+', '-', ':', '=', '/'";
        if (strstr(p, "//") || (l > 1 && p[l - 1] == '/'))
                return "must be normalised (no \"//\", no trailing '/')";
        for (const char *s = p; *s;) {
                s++;
                size_t n = strcspn(s, "/");
                if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
                        return "must be normalised (no \".\" or \"..\" components)";
                s += n;
        }
        return NULL;
}

/* One authorized_keys line: "TYPE BASE64 [comment]". Options in front of
 * the key ("from=...") are not accepted: they are a language of their own. */
static const char *ssh_key_check(const char *k) {
        size_t l = strnlen(k, PROVISION_KEY_MAX + 1);
        size_t t;

        if (l > PROVISION_KEY_MAX)
                return "longer than 16 KiB";
        for (size_t i = 0; i < l; i++)
                if ((unsigned char) k[i] < 0x20 || k[i] == 0x7f)
                        return "must be one line without control characters";
        t = strcspn(k, " ");
        bool known = false;
        for (size_t i = 0; i < ELEMENTSOF(ssh_key_types); i++)
                if (strlen(ssh_key_types[i]) == t && strncmp(k, ssh_key_types[i], t) == 0)
                        known = true;
        if (!known)
                return "must start with a key type such as ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp256";
        const char *b = k + t;
        if (*b != ' ')
                return "has no key after the key type";
        b++;
        size_t n = strcspn(b, " ");
        if (n < 16)
                return "has no key after the key type";
        for (size_t i = 0; i < n; i++)
                if (!ascii_alnum(b[i]) && !in_set(b[i], "+/="))
                        return "key is not base64";
        return NULL;
}

static const char *network_name_check(const char *n) {
        size_t l = strnlen(n, PROVISION_NETWORK_NAME_MAX + 1);

        if (l == 0 || l > PROVISION_NETWORK_NAME_MAX)
                return "must be 1 to 32 characters";
        for (size_t i = 0; i < l; i++)
                if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') || n[i] == '-'))
                        return "may only contain a-z, 0-9 and '-'";
        return NULL;
}

/* An interface name (at most 15 bytes, IFNAMSIZ) or a glob of one, as
 * networkd's Name= takes it; one pattern, so no spaces. */
static const char *ifname_check(const char *n) {
        size_t l = strnlen(n, 65);
        bool glob = false;

        if (l == 0)
                return "must not be empty";
        for (size_t i = 0; i < l; i++) {
                if (in_set(n[i], "*?[]"))
                        glob = true;
                else if (!ascii_alnum(n[i]) && !in_set(n[i], "_.:-"))
                        return "may only contain A-Z, a-z, 0-9, '_', '.', ':', '-' and the glob characters '*', '?', '[', ']'";
        }
        if (l > (glob ? 64 : 15))
                return glob ? "pattern longer than 64 characters" : "interface names are at most 15 characters";
        if (streq(n, ".") || streq(n, ".."))
                return "is not an interface name";
        return NULL;
}

static bool hex_digit(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static const char *mac_check(const char *m) {
        if (strlen(m) != 17)
                return "must be six hexadecimal pairs separated by ':'";
        for (size_t i = 0; i < 17; i++)
                if (i % 3 == 2 ? m[i] != ':' : !hex_digit(m[i]))
                        return "must be six hexadecimal pairs separated by ':'";
        return NULL;
}

static int address_family(const char *a) {
        unsigned char buf[sizeof(struct in6_addr)];

        if (inet_pton(AF_INET, a, buf) == 1)
                return AF_INET;
        if (inet_pton(AF_INET6, a, buf) == 1)
                return AF_INET6;
        return -1;
}

static const char *address_check(const char *a) {
        if (strlen(a) >= 64 || address_family(a) < 0)
                return "not an IPv4 or IPv6 address";
        return NULL;
}

static const char *cidr_check(const char *a) {
        char buf[64];
        const char *slash = strchr(a, '/');
        unsigned prefix;

        if (!slash || (size_t) (slash - a) >= sizeof(buf) || !slash[1])
                return "not an address/prefix";
        memcpy(buf, a, (size_t) (slash - a));
        buf[slash - a] = '\0';
        int f = address_family(buf);
        if (f < 0)
                return "not an address/prefix";
        /* safe_atou() takes "+1" and " 1" as well; one spelling per value. */
        for (const char *p = slash + 1; *p; p++)
                if (*p < '0' || *p > '9')
                        return "not an address/prefix";
        if ((slash[1] == '0' && slash[2]) || safe_atou(slash + 1, &prefix) < 0 || prefix < 1 ||
            prefix > (f == AF_INET ? 32U : 128U))
                return "prefix length out of range";
        return NULL;
}

/* A search domain, or "~domain" for a routing-only domain (networkd). */
static const char *domain_check(const char *d) {
        if (d[0] == '~')
                d++;
        return hostname_check(d);
}

static const char *ntp_server_check(const char *s) {
        if (address_family(s) >= 0)
                return NULL;
        return hostname_check(s) ? "not a host name or an address" : NULL;
}

static const char *device_check(const char *d) {
        const char *why = abs_path_check(d, 255);
        if (why)
                return why;
        if (!string_has_prefix(d, "/dev/") || !d[5])
                return "must be a device under /dev/";
        return NULL;
}

static const char *label_check(const char *l, ProvisionFs fs) {
        size_t n = strnlen(l, 17);

        if (n == 0)
                return "must not be empty";
        if (fs == PROVISION_FS_XFS && n > 12)
                return "xfs labels are at most 12 characters";
        if (n > 16)
                return "ext4 labels are at most 16 characters";
        for (size_t i = 0; i < n; i++)
                if (!ascii_alnum(l[i]) && !in_set(l[i], "_-"))
                        return "may only contain A-Z, a-z, 0-9, '_' and '-'";
        /* Hull finds its own partitions and the config disk by label. */
        if (strncasecmp(l, "hull", 4) == 0)
                return "labels starting with \"hull\" are reserved for Hull";
        return NULL;
}

static const char *mount_check(const char *m) {
        const char *why = abs_path_check(m, 255);
        if (why)
                return why;
        for (size_t i = 0; i < ELEMENTSOF(mount_forbidden_exact); i++)
                if (streq(m, mount_forbidden_exact[i]))
                        return "would hide a directory of the system";
        for (size_t i = 0; i < ELEMENTSOF(mount_forbidden_trees); i++)
                if (streq(m, mount_forbidden_trees[i]) || path_below(m, mount_forbidden_trees[i]))
                        return "must not be in /etc, /usr, /proc, /sys, /dev, /run, /boot, /persist or below";
        return NULL;
}

static const char *mount_option_check(const char *o) {
        size_t l = strnlen(o, MOUNT_OPTION_MAX + 1);

        if (l == 0)
                return "must not be empty";
        if (l > MOUNT_OPTION_MAX)
                return "longer than 256 characters";
        for (size_t i = 0; i < l; i++)
                if (!ascii_alnum(o[i]) && !in_set(o[i], "_=.:/+-"))
                        return "may only contain A-Z, a-z, 0-9 and '_', '=', '.', ':', '/', '+', '-' (one option per entry)";
        return NULL;
}

static const char *token_check(const char *t) {
        if (strlen(t) != 23 || t[6] != '.')
                return "must look like \"abcdef.0123456789abcdef\" ([a-z0-9]{6}.[a-z0-9]{16})";
        for (size_t i = 0; i < 23; i++)
                if (i != 6 && !((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '0' && t[i] <= '9')))
                        return "must look like \"abcdef.0123456789abcdef\" ([a-z0-9]{6}.[a-z0-9]{16})";
        return NULL;
}

/* https://HOST[:PORT][/PATH], with nothing a YAML scalar or a shell would
 * read differently. */
static const char *server_check(const char *s) {
        size_t l = strnlen(s, KUBE_SERVER_MAX + 1);

        if (l > KUBE_SERVER_MAX)
                return "URL too long";
        if (!string_has_prefix(s, "https://"))
                return "must be an https:// URL";
        const char *h = s + 8;
        if (*h == '\0' || *h == '/' || *h == ':')
                return "has no host";
        for (size_t i = 0; i < l; i++)
                if (!ascii_alnum(s[i]) && !in_set(s[i], "-._~:/[]%"))
                        return "may only contain A-Z, a-z, 0-9 and '-', '.', '_', '~', ':', '/', '[', ']', '%'";
        return NULL;
}

/* One or more PEM CERTIFICATE blocks, nothing else but whitespace around
 * them, base64 inside: enough to catch a key or a path pasted by mistake. */
static const char *pem_check(const char *p) {
        static const char begin[] = "-----BEGIN CERTIFICATE-----", end[] = "-----END CERTIFICATE-----";
        size_t blocks = 0;

        if (strlen(p) > CA_CERT_MAX)
                return "larger than 64 KiB";
        for (;;) {
                p += strspn(p, " \t\r\n");
                if (!*p)
                        break;
                if (!string_has_prefix(p, begin))
                        return "must be PEM CERTIFICATE blocks (-----BEGIN CERTIFICATE-----)";
                p += strlen(begin);
                const char *e = strstr(p, end);
                if (!e)
                        return "has a PEM block without -----END CERTIFICATE-----";
                size_t n = 0;
                for (; p < e; p++) {
                        if (in_set(*p, " \t\r\n"))
                                continue;
                        if (!ascii_alnum(*p) && !in_set(*p, "+/="))
                                return "has a PEM block that is not base64";
                        n++;
                }
                if (n == 0)
                        return "has an empty PEM block";
                p = e + strlen(end);
                blocks++;
        }
        if (blocks == 0)
                return "must be PEM CERTIFICATE blocks (-----BEGIN CERTIFICATE-----)";
        return NULL;
}

/* A YAML (or JSON) document that is a mapping whose kind is 'kind'. */
static const char *kube_doc_check(const char *text, const char *kind, const char *api_prefix) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        json_t *v;

        if (strlen(text) > PROVISION_KUBE_TEXT_MAX)
                return "larger than 256 KiB";
        if (yaml_to_json(text, strlen(text), &j, NULL) < 0)
                return "is not a YAML or JSON document";
        if (!json_is_object(j))
                return "must be a YAML mapping";
        v = json_object_get(j, "kind");
        if (!json_is_string(v) || !streq(json_string_value(v), kind))
                return streq(kind, "Config") ? "must be a kubeconfig (kind: Config)" :
                                               "must be a KubeletConfiguration (kind: KubeletConfiguration)";
        v = json_object_get(j, "apiVersion");
        if (!json_is_string(v) || !(streq(kind, "Config") ? streq(json_string_value(v), api_prefix) :
                                                            string_has_prefix(json_string_value(v), api_prefix)))
                return streq(kind, "Config") ? "apiVersion must be v1" :
                                               "apiVersion must be kubelet.config.k8s.io/...";
        return NULL;
}

/* ---- kubernetes: node labels, taints, node IP ----
 *
 * The rules the kubelet applies to --node-labels and the API server to a
 * Node's labels and taints (apimachinery's IsQualifiedName and
 * IsValidLabelValue), so that a node that would not register is stopped
 * by the config check, with the field named. */

/* The name part of a qualified name, and a label value: at most 63 of
 * A-Z a-z 0-9 '-' '_' '.', alphanumeric at both ends. */
static const char *label_name_check(const char *n, size_t l) {
        if (l == 0)
                return "has an empty name part";
        if (l > 63)
                return "has a name part longer than 63 characters";
        for (size_t i = 0; i < l; i++)
                if (!ascii_alnum(n[i]) && !in_set(n[i], "-_."))
                        return "may only contain A-Z, a-z, 0-9, '-', '_' and '.' in its name part";
        if (!ascii_alnum(n[0]) || !ascii_alnum(n[l - 1]))
                return "must start and end its name part with a letter or digit";
        return NULL;
}

/* A DNS-1123 subdomain: the prefix of a qualified name. Labels of a-z,
 * 0-9 and '-', starting and ending with a letter or digit, joined by '.'. */
static const char *label_prefix_check(const char *p, size_t l) {
        if (l == 0)
                return "has an empty prefix before '/'";
        if (l > 253)
                return "has a prefix longer than 253 characters";
        for (size_t i = 0; i < l;) {
                size_t n = 0;
                while (i + n < l && p[i + n] != '.')
                        n++;
                if (n == 0 || n > 63)
                        return "must have a DNS subdomain as its prefix (labels of 1 to 63 characters, joined by '.')";
                for (size_t j = i; j < i + n; j++)
                        if (!((p[j] >= 'a' && p[j] <= 'z') || (p[j] >= '0' && p[j] <= '9') || p[j] == '-'))
                                return "must have a lower-case DNS subdomain as its prefix (a-z, 0-9, '-', '.')";
                if (p[i] == '-' || p[i + n - 1] == '-')
                        return "must have a DNS subdomain as its prefix (labels start and end with a-z or 0-9)";
                i += n;
                if (i < l && ++i == l)
                        return "must have a DNS subdomain as its prefix (no trailing '.')";
        }
        return NULL;
}

/* [prefix/]name */
static const char *qualified_name_check(const char *k) {
        size_t l = strlen(k);
        const char *slash = strchr(k, '/');

        if (l == 0)
                return "must not be empty";
        if (!slash)
                return label_name_check(k, l);
        if (strchr(slash + 1, '/'))
                return "has more than one '/'";
        return label_prefix_check(k, (size_t) (slash - k)) ?: label_name_check(slash + 1, l - (size_t) (slash - k) - 1);
}

static const char *label_value_check(const char *v) {
        size_t l = strlen(v);
        if (l == 0)
                return NULL;
        if (l > 63)
                return "longer than 63 characters";
        for (size_t i = 0; i < l; i++)
                if (!ascii_alnum(v[i]) && !in_set(v[i], "-_."))
                        return "may only contain A-Z, a-z, 0-9, '-', '_' and '.'";
        if (!ascii_alnum(v[0]) || !ascii_alnum(v[l - 1]))
                return "must start and end with a letter or digit";
        return NULL;
}

static bool namespace_is(const char *ns, size_t l, const char *domain) {
        size_t d = strlen(domain);
        return (l == d && strncmp(ns, domain, d) == 0) || (l > d && ns[l - d - 1] == '.' && strncmp(ns + l - d, domain, d) == 0);
}

/* Keys the kubelet may set on its own Node: k8s.io/kubelet's
 * IsKubeletLabel(). Any other key in the kubernetes.io or k8s.io
 * namespaces makes the kubelet refuse to start ("unknown 'kubernetes.io'
 * or 'k8s.io' labels specified with --node-labels"); the NodeRestriction
 * admission plugin refuses them too. */
static const char *const kubelet_labels[] = {
        "kubernetes.io/hostname", "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
        "node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type", "kubernetes.io/os",
        "kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/arch",
};

static const char *node_label_key_check(const char *k) {
        const char *why = qualified_name_check(k);
        if (why)
                return why;
        const char *slash = strchr(k, '/');
        if (!slash)
                return NULL;
        size_t l = (size_t) (slash - k);
        if (!namespace_is(k, l, "kubernetes.io") && !namespace_is(k, l, "k8s.io"))
                return NULL;
        if (in_list(k, kubelet_labels, ELEMENTSOF(kubelet_labels)) || namespace_is(k, l, "kubelet.kubernetes.io") ||
            namespace_is(k, l, "node.kubernetes.io"))
                return NULL;
        return "is in the kubernetes.io/k8s.io namespace, where a kubelet may only set its own labels "
               "([*.]kubelet.kubernetes.io/*, [*.]node.kubernetes.io/*, kubernetes.io/hostname, kubernetes.io/os, "
               "kubernetes.io/arch, topology.kubernetes.io/zone and /region, ...); set node roles "
               "(node-role.kubernetes.io/...) with kubectl label after the join";
}

static const char *const taint_effects[] = { "NoSchedule", "PreferNoSchedule", "NoExecute" };

/* An address the kubelet can register: not loopback, unspecified,
 * multicast or link-local (the kubelet refuses those for --node-ip). */
static const char *node_ip_check(const char *a) {
        unsigned char b[sizeof(struct in6_addr)];

        if (strlen(a) >= 64)
                return "not an IPv4 or IPv6 address";
        if (inet_pton(AF_INET, a, b) == 1) {
                if (b[0] == 127 || b[0] == 0 || b[0] >= 224 || (b[0] == 169 && b[1] == 254))
                        return "must be a unicast address of the node (not loopback, unspecified, multicast or link-local)";
                return NULL;
        }
        if (inet_pton(AF_INET6, a, b) == 1) {
                static const unsigned char zero[15] = {};
                bool lead_zero = memcmp(b, zero, 15) == 0;
                if ((lead_zero && (b[15] == 0 || b[15] == 1)) || b[0] == 0xff || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80))
                        return "must be a unicast address of the node (not loopback, unspecified, multicast or link-local)";
                /* ::ffff:a.b.c.d is an IPv4 address to the kubelet (Go's net.ParseIP) */
                if (memcmp(b, zero, 10) == 0 && b[10] == 0xff && b[11] == 0xff)
                        return "must be written as an IPv4 address, not IPv4-mapped IPv6";
                return NULL;
        }
        return "not an IPv4 or IPv6 address";
}

/* The user's kubelet_config merged over Hull's defaults: what the image's
 * kubelet.service needs (containerd with the systemd cgroup driver, the
 * health check on 127.0.0.1:10248, the writable volume plugin directory,
 * systemd-resolved's upstream resolv.conf) and what a node that joins a
 * cluster should have (no anonymous access, webhook authn/authz, client
 * certificate rotation). */
static int json_merge(json_t *base, json_t *over) {
        const char *key;
        json_t *v;

        json_object_foreach(over, key, v) {
                json_t *b = json_object_get(base, key);
                if (json_is_object(b) && json_is_object(v)) {
                        int r = json_merge(b, v);
                        if (r < 0)
                                return r;
                } else if (json_object_set(base, key, v) < 0)
                        return -ENOMEM;
        }
        return 0;
}

#define KUBELET_API_VERSION "kubelet.config.k8s.io/v1beta1"

/* -EBADMSG with *ret_why (static text) for a config the image's kubelet
 * cannot run with. 'ca' says whether /etc/kubernetes/pki/ca.crt is
 * written. */
static int kubelet_config_build(const ProvisionKubernetes *k, bool ca, json_t **ret, const char **ret_why) {
        _cleanup_(json_decrefp) json_t *d = NULL, *user = NULL;
        json_t *v;
        int r;

        d = json_pack("{s:s, s:s, s:s, s:s, s:{s:{s:b}, s:{s:b}}, s:{s:s}, s:b, s:s, s:s, s:s, s:s, s:i, s:s}",
                      "apiVersion", KUBELET_API_VERSION, "kind", "KubeletConfiguration",
                      "cgroupDriver", "systemd",
                      "containerRuntimeEndpoint", "unix:///run/containerd/containerd.sock",
                      "authentication", "anonymous", "enabled", 0, "webhook", "enabled", 1,
                      "authorization", "mode", "Webhook",
                      "rotateCertificates", 1,
                      "staticPodPath", "/etc/kubernetes/manifests",
                      "volumePluginDir", "/var/lib/kubelet/volumeplugins",
                      "resolvConf", "/run/systemd/resolve/resolv.conf",
                      "healthzBindAddress", "127.0.0.1",
                      "healthzPort", PROVISION_KUBELET_HEALTHZ_PORT,
                      "clusterDomain", "cluster.local");
        if (!d)
                return -ENOMEM;
        if (ca && json_object_set_new(json_object_get(d, "authentication"), "x509",
                                      json_pack("{s:s}", "clientCAFile", PROVISION_KUBELET_CA)) < 0)
                return -ENOMEM;
        if (k->cluster_dns) {
                json_t *a = json_array();
                if (!a || json_object_set_new(d, "clusterDNS", a) < 0)
                        return -ENOMEM;
                for (char **s = k->cluster_dns; *s; s++)
                        if (json_array_append_new(a, json_string(*s)) < 0)
                                return -ENOMEM;
        }
        if (k->n_node_taints > 0) {
                json_t *a = json_array();
                if (!a || json_object_set_new(d, "registerWithTaints", a) < 0)
                        return -ENOMEM;
                for (size_t i = 0; i < k->n_node_taints; i++) {
                        const ProvisionTaint *t = k->node_taints + i;
                        json_t *o = json_pack("{s:s, s:s}", "key", t->key, "effect", t->effect);
                        if (!o || json_array_append_new(a, o) < 0 ||
                            (t->value && json_object_set_new(o, "value", json_string(t->value)) < 0))
                                return -ENOMEM;
                }
        }

        if (k->kubelet_config) {
                r = yaml_to_json(k->kubelet_config, strlen(k->kubelet_config), &user, NULL);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return *ret_why = "is not a YAML or JSON document", -EBADMSG;
                if (!json_is_object(user))
                        return *ret_why = "must be a YAML mapping", -EBADMSG;
                /* Where the section has a key of its own, the value must
                 * come from one place only. */
                if (k->cluster_dns && json_object_get(user, "clusterDNS"))
                        return *ret_why = "sets clusterDNS, and so does kubernetes.cluster_dns (use one of them)", -EBADMSG;
                if (k->n_node_taints > 0 && json_object_get(user, "registerWithTaints"))
                        return *ret_why = "sets registerWithTaints, and so does kubernetes.node_taints (use one of them)",
                               -EBADMSG;
                r = json_merge(d, user);
                if (r < 0)
                        return r;
        }

        v = json_object_get(d, "kind");
        if (!json_is_string(v) || !streq(json_string_value(v), "KubeletConfiguration"))
                return *ret_why = "must be a KubeletConfiguration (kind: KubeletConfiguration)", -EBADMSG;
        v = json_object_get(d, "apiVersion");
        if (!json_is_string(v) || !streq(json_string_value(v), KUBELET_API_VERSION))
                return *ret_why = "apiVersion must be " KUBELET_API_VERSION " (the version of Hull's defaults; "
                                  "it may be left out)", -EBADMSG;
        v = json_object_get(d, "cgroupDriver");
        if (!json_is_string(v) || !streq(json_string_value(v), "systemd"))
                return *ret_why = "cgroupDriver must be systemd: the image's containerd uses the systemd cgroup driver "
                                  "(SystemdCgroup = true), and the kubelet must use the same one", -EBADMSG;
        v = json_object_get(d, "healthzPort");
        if (!json_is_integer(v) || json_integer_value(v) != PROVISION_KUBELET_HEALTHZ_PORT)
                return *ret_why = "healthzPort must stay 10248: the image's health check polls "
                                  "http://127.0.0.1:10248/healthz", -EBADMSG;
        v = json_object_get(d, "healthzBindAddress");
        if (!json_is_string(v) || (!streq(json_string_value(v), "127.0.0.1") && !streq(json_string_value(v), "0.0.0.0") &&
                                   !streq(json_string_value(v), "::")))
                return *ret_why = "healthzBindAddress must be 127.0.0.1 (or 0.0.0.0 or ::): the image's health check "
                                  "polls http://127.0.0.1:10248/healthz", -EBADMSG;
        *ret = TAKE_PTR(d);
        return 0;
}

/* The cluster CA of a kubeconfig: certificate-authority-data of the
 * current context's cluster. 1 with *ret (PEM text), 0 if it has none
 * (a certificate-authority path, or no such entry), -EBADMSG if it is
 * not base64 of PEM certificates. */
static int kubeconfig_ca(const char *kubeconfig, char **ret) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        const char *ctx, *cluster = NULL, *data = NULL;
        size_t i;
        json_t *x;
        int r;

        r = yaml_to_json(kubeconfig, strlen(kubeconfig), &j, NULL);
        if (r < 0)
                return r == -ENOMEM ? r : 0;
        ctx = json_string_value(json_object_get(j, "current-context"));
        if (!ctx)
                return 0;
        json_array_foreach(json_object_get(j, "contexts"), i, x)
                if (streq_ptr(json_string_value(json_object_get(x, "name")), ctx))
                        cluster = json_string_value(json_object_get(json_object_get(x, "context"), "cluster"));
        if (!cluster)
                return 0;
        json_array_foreach(json_object_get(j, "clusters"), i, x)
                if (streq_ptr(json_string_value(json_object_get(x, "name")), cluster))
                        data = json_string_value(json_object_get(json_object_get(x, "cluster"),
                                                                 "certificate-authority-data"));
        if (!data)
                return 0;

        size_t l = strlen(data);
        if (l > CA_CERT_MAX * 2)
                return -EBADMSG;
        _cleanup_free_ unsigned char *out = malloc(l / 4 * 3 + 4);
        EVP_ENCODE_CTX *e = EVP_ENCODE_CTX_new();
        int n = 0, m = 0;
        if (!out || !e) {
                EVP_ENCODE_CTX_free(e);
                return -ENOMEM;
        }
        EVP_DecodeInit(e);
        r = EVP_DecodeUpdate(e, out, &n, (const unsigned char *) data, (int) l) < 0 ||
                            EVP_DecodeFinal(e, out + n, &m) < 0 ? -EBADMSG : 0;
        EVP_ENCODE_CTX_free(e);
        if (r < 0)
                return r;
        out[n + m] = '\0';
        if (strlen((char *) out) != (size_t) (n + m) || pem_check((char *) out))
                return -EBADMSG;
        *ret = (char *) TAKE_PTR(out);
        return 1;
}

/* ---- parsing helpers ---- */

/* A string without NUL bytes. */
static int get_string(json_t *v, const char *where, char **ret, char **error) {
        if (!json_is_string(v))
                return error_set(error, -EBADMSG, "%s: must be a string", where);
        if (strlen(json_string_value(v)) != json_string_length(v))
                return error_set(error, -EBADMSG, "%s: must not contain a NUL byte", where);
        char *s = strdup(json_string_value(v));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* Optional string field with a rule. */
static int get_checked(json_t *obj, const char *key, const char *where, const char *(*check)(const char *),
                       char **ret, char **error) {
        char w[128], q[STRING_QUOTE_SIZE];
        _cleanup_free_ char *s = NULL;
        json_t *v = json_object_get(obj, key);
        int r;

        if (!v)
                return 0;
        (void) snprintf(w, sizeof(w), "%s%s%s", where, *where ? "." : "", key);
        r = get_string(v, w, &s, error);
        if (r < 0)
                return r;
        const char *why = check ? check(s) : NULL;
        if (why)
                return error_set(error, -EBADMSG, "%s: %s %s", w, string_quote(q, s), why);
        *ret = TAKE_PTR(s);
        return 0;
}

static int get_bool(json_t *obj, const char *key, const char *where, bool *ret, char **error) {
        json_t *v = json_object_get(obj, key);

        if (!v)
                return 0;
        if (!json_is_boolean(v))
                return error_set(error, -EBADMSG, "%s%s%s: must be true or false", where, *where ? "." : "", key);
        *ret = json_is_true(v);
        return 0;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* An array of strings, each passing 'check', no duplicates; sorted if
 * 'sort'. An empty array gives NULL. */
static int get_strv(json_t *obj, const char *key, const char *where, size_t max, const char *(*check)(const char *),
                    bool sort, char ***ret, char **error) {
        _cleanup_strv_free_ char **l = NULL;
        char w[128], q[STRING_QUOTE_SIZE];
        json_t *arr = json_object_get(obj, key);
        int r;

        if (!arr)
                return 0;
        (void) snprintf(w, sizeof(w), "%s%s%s", where, *where ? "." : "", key);
        if (!json_is_array(arr))
                return error_set(error, -EBADMSG, "%s: must be an array of strings", w);
        size_t n = json_array_size(arr);
        if (n > max)
                return error_set(error, -EBADMSG, "%s: more than %zu entries", w, max);
        if (n == 0)
                return 0;
        l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                char wi[160];
                (void) snprintf(wi, sizeof(wi), "%s[%zu]", w, i);
                r = get_string(json_array_get(arr, i), wi, &l[i], error);
                if (r < 0)
                        return r;
                const char *why = check(l[i]);
                if (why)
                        return error_set(error, -EBADMSG, "%s: %s %s", wi, string_quote(q, l[i]), why);
                for (size_t j = 0; j < i; j++)
                        if (streq(l[j], l[i]))
                                return error_set(error, -EBADMSG, "%s: %s is already listed as %s[%zu]", wi,
                                                 string_quote(q, l[i]), w, j);
        }
        if (sort)
                qsort(l, n, sizeof(char *), cmp_str);
        *ret = TAKE_PTR(l);
        return 0;
}

static int need_object(json_t *v, const char *where, const char *const *keys, size_t n, char **error) {
        if (!json_is_object(v))
                return error_set(error, -EBADMSG, "%s: must be an object", where);
        return json_check_keys(v, keys, n, where, error);
}

static int need_array(json_t *v, const char *where, size_t max, char **error) {
        if (!json_is_array(v))
                return error_set(error, -EBADMSG, "%s: must be an array of objects", where);
        if (json_array_size(v) > max)
                return error_set(error, -EBADMSG, "%s: more than %zu entries", where, max);
        return 0;
}

/* ---- parsing sections ---- */

static int parse_user(json_t *obj, size_t i, ProvisionUser *u, char **error) {
        char where[32], q[STRING_QUOTE_SIZE];
        int r;

        (void) snprintf(where, sizeof(where), "users[%zu]", i);
        r = need_object(obj, where, user_keys, ELEMENTSOF(user_keys), error);
        if (r < 0)
                return r;
        if (!json_object_get(obj, "name"))
                return error_set(error, -EBADMSG, "%s.name: required", where);
        if ((r = get_checked(obj, "name", where, account_name_check, &u->name, error)) < 0)
                return r;
        if (in_list(u->name, reserved_users, ELEMENTSOF(reserved_users)))
                return error_set(error, -EBADMSG, "%s.name: %s is a reserved name (a system account or group, or Hull's own)",
                                 where, string_quote(q, u->name));
        if ((r = get_checked(obj, "gecos", where, gecos_check, &u->gecos, error)) < 0 ||
            (r = get_strv(obj, "groups", where, PROVISION_GROUPS_MAX, account_name_check, true, &u->groups, error)) < 0 ||
            (r = get_strv(obj, "ssh_authorized_keys", where, PROVISION_KEYS_MAX, ssh_key_check, false,
                          &u->ssh_authorized_keys, error)) < 0)
                return r;
        if ((r = get_checked(obj, "shell", where, NULL, &u->shell, error)) < 0)
                return r;
        if (u->shell) {
                const char *why = abs_path_check(u->shell, SHELL_MAX);
                if (why)
                        return error_set(error, -EBADMSG, "%s.shell: %s %s", where, string_quote(q, u->shell), why);
        }
        return 0;
}

static int parse_users(json_t *arr, ProvisionConfig *c, char **error) {
        char q[STRING_QUOTE_SIZE];
        int r;

        r = need_array(arr, "users", PROVISION_USERS_MAX, error);
        if (r < 0)
                return r;
        size_t n = json_array_size(arr);
        if (n == 0)
                return 0;
        c->users = calloc(n, sizeof(ProvisionUser));
        if (!c->users)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                c->n_users++;
                r = parse_user(json_array_get(arr, i), i, c->users + i, error);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < i; j++)
                        if (streq(c->users[j].name, c->users[i].name))
                                return error_set(error, -EBADMSG, "users[%zu].name: %s is already users[%zu]", i,
                                                 string_quote(q, c->users[i].name), j);
        }
        return 0;
}

static int parse_network(json_t *obj, size_t i, ProvisionNetwork *n, char **error) {
        char where[32], w[48];
        json_t *v;
        int r;

        (void) snprintf(where, sizeof(where), "networks[%zu]", i);
        r = need_object(obj, where, network_keys, ELEMENTSOF(network_keys), error);
        if (r < 0)
                return r;
        if (!json_object_get(obj, "name"))
                return error_set(error, -EBADMSG, "%s.name: required", where);
        if ((r = get_checked(obj, "name", where, network_name_check, &n->name, error)) < 0)
                return r;

        (void) snprintf(w, sizeof(w), "%s.match", where);
        v = json_object_get(obj, "match");
        if (!v)
                return error_set(error, -EBADMSG, "%s: required (an interface name or a MAC address)", w);
        r = need_object(v, w, match_keys, ELEMENTSOF(match_keys), error);
        if (r < 0)
                return r;
        if ((r = get_checked(v, "name", w, ifname_check, &n->match_name, error)) < 0 ||
            (r = get_checked(v, "mac", w, mac_check, &n->match_mac, error)) < 0)
                return r;
        if (!n->match_name && !n->match_mac)
                return error_set(error, -EBADMSG, "%s: needs name or mac (a network matching every interface is refused)", w);
        if (n->match_mac)
                for (char *p = n->match_mac; *p; p++)
                        if (*p >= 'A' && *p <= 'F')
                                *p = (char) (*p - 'A' + 'a');

        v = json_object_get(obj, "dhcp");
        if (!v)
                return error_set(error, -EBADMSG, "%s.dhcp: required (true, or false with addresses)", where);
        if ((r = get_bool(obj, "dhcp", where, &n->dhcp, error)) < 0)
                return r;
        if ((r = get_strv(obj, "addresses", where, PROVISION_ADDRESSES_MAX, cidr_check, false, &n->addresses, error)) < 0 ||
            (r = get_checked(obj, "gateway", where, address_check, &n->gateway, error)) < 0 ||
            (r = get_strv(obj, "dns", where, PROVISION_DNS_MAX, address_check, false, &n->dns, error)) < 0 ||
            (r = get_strv(obj, "domains", where, PROVISION_DOMAINS_MAX, domain_check, false, &n->domains, error)) < 0)
                return r;

        v = json_object_get(obj, "mtu");
        if (v) {
                if (!json_is_integer(v) || json_integer_value(v) < 68 || json_integer_value(v) > 65535)
                        return error_set(error, -EBADMSG, "%s.mtu: must be an integer from 68 to 65535", where);
                n->mtu = (uint32_t) json_integer_value(v);
        }

        if (n->dhcp && n->addresses)
                return error_set(error, -EBADMSG, "%s.addresses: not allowed with dhcp: true", where);
        if (n->dhcp && n->gateway)
                return error_set(error, -EBADMSG, "%s.gateway: not allowed with dhcp: true", where);
        if (!n->dhcp && !n->addresses)
                return error_set(error, -EBADMSG, "%s.addresses: required with dhcp: false", where);
        if (n->gateway) {
                /* A gateway must be reachable through an address of its
                 * family; networkd would otherwise fail quietly. */
                int f = address_family(n->gateway);
                bool found = false;
                for (char **a = n->addresses; a && *a; a++) {
                        char buf[64];
                        size_t k = strcspn(*a, "/");
                        memcpy(buf, *a, k);
                        buf[k] = '\0';
                        if (address_family(buf) == f)
                                found = true;
                }
                if (!found)
                        return error_set(error, -EBADMSG, "%s.gateway: no address of the same IP version in addresses",
                                         where);
        }
        return 0;
}

static int parse_networks(json_t *arr, ProvisionConfig *c, char **error) {
        char q[STRING_QUOTE_SIZE];
        int r;

        r = need_array(arr, "networks", PROVISION_NETWORKS_MAX, error);
        if (r < 0)
                return r;
        size_t n = json_array_size(arr);
        if (n == 0)
                return 0;
        c->networks = calloc(n, sizeof(ProvisionNetwork));
        if (!c->networks)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                c->n_networks++;
                r = parse_network(json_array_get(arr, i), i, c->networks + i, error);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < i; j++)
                        if (streq(c->networks[j].name, c->networks[i].name))
                                return error_set(error, -EBADMSG, "networks[%zu].name: %s is already networks[%zu]",
                                                 i, string_quote(q, c->networks[i].name), j);
        }
        return 0;
}

static int parse_disk(json_t *obj, size_t i, ProvisionDisk *d, char **error) {
        char where[32], q[STRING_QUOTE_SIZE];
        _cleanup_free_ char *fs = NULL;
        int r;

        (void) snprintf(where, sizeof(where), "disks[%zu]", i);
        r = need_object(obj, where, disk_keys, ELEMENTSOF(disk_keys), error);
        if (r < 0)
                return r;
        const char *required[] = { "device", "filesystem", "label", "mount" };
        for (size_t k = 0; k < ELEMENTSOF(required); k++)
                if (!json_object_get(obj, required[k]))
                        return error_set(error, -EBADMSG, "%s.%s: required", where, required[k]);

        if ((r = get_checked(obj, "device", where, device_check, &d->device, error)) < 0 ||
            (r = get_checked(obj, "filesystem", where, NULL, &fs, error)) < 0)
                return r;
        if (streq(fs, "ext4"))
                d->filesystem = PROVISION_FS_EXT4;
        else if (streq(fs, "xfs"))
                d->filesystem = PROVISION_FS_XFS;
        else
                return error_set(error, -EBADMSG, "%s.filesystem: %s is not supported (ext4 or xfs)", where,
                                 string_quote(q, fs));
        if ((r = get_checked(obj, "label", where, NULL, &d->label, error)) < 0)
                return r;
        const char *why = label_check(d->label, d->filesystem);
        if (why)
                return error_set(error, -EBADMSG, "%s.label: %s %s", where, string_quote(q, d->label), why);
        d->partition = true;
        if ((r = get_checked(obj, "mount", where, mount_check, &d->mount, error)) < 0 ||
            (r = get_strv(obj, "options", where, PROVISION_DISK_OPTIONS_MAX, mount_option_check, false, &d->options,
                          error)) < 0 ||
            (r = get_bool(obj, "partition", where, &d->partition, error)) < 0 ||
            (r = get_bool(obj, "wipe", where, &d->wipe, error)) < 0)
                return r;
        return 0;
}

static int parse_disks(json_t *arr, ProvisionConfig *c, char **error) {
        char q[STRING_QUOTE_SIZE];
        int r;

        r = need_array(arr, "disks", PROVISION_DISKS_MAX, error);
        if (r < 0)
                return r;
        size_t n = json_array_size(arr);
        if (n == 0)
                return 0;
        c->disks = calloc(n, sizeof(ProvisionDisk));
        if (!c->disks)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                ProvisionDisk *d = c->disks + i;

                c->n_disks++;
                r = parse_disk(json_array_get(arr, i), i, d, error);
                if (r < 0)
                        return r;
                for (size_t j = 0; j < i; j++) {
                        const ProvisionDisk *e = c->disks + j;
                        if (streq(e->device, d->device))
                                return error_set(error, -EBADMSG, "disks[%zu].device: %s is already disks[%zu]", i,
                                                 string_quote(q, d->device), j);
                        if (streq(e->mount, d->mount))
                                return error_set(error, -EBADMSG, "disks[%zu].mount: %s is already disks[%zu]'s", i,
                                                 string_quote(q, d->mount), j);
                        /* Mounting in order would then matter, and a disk
                         * that fails would leave the other one hidden. */
                        if (path_below(d->mount, e->mount) || path_below(e->mount, d->mount))
                                return error_set(error, -EBADMSG, "disks[%zu].mount: %s is nested with disks[%zu].mount",
                                                 i, string_quote(q, d->mount), j);
                        if (streq(e->label, d->label))
                                return error_set(error, -EBADMSG, "disks[%zu].label: %s is already disks[%zu]'s", i,
                                                 string_quote(q, d->label), j);
                }
        }
        return 0;
}

static int cmp_label(const void *a, const void *b) {
        return strcmp(((const ProvisionLabel *) a)->key, ((const ProvisionLabel *) b)->key);
}

static int parse_node_labels(json_t *obj, ProvisionKubernetes *k, char **error) {
        char q[STRING_QUOTE_SIZE], q2[STRING_QUOTE_SIZE];
        const char *key, *why;
        json_t *v;

        if (!obj)
                return 0;
        if (!json_is_object(obj))
                return error_set(error, -EBADMSG, "kubernetes.node_labels: must be an object (label: value)");
        size_t n = json_object_size(obj);
        if (n > PROVISION_NODE_LABELS_MAX)
                return error_set(error, -EBADMSG, "kubernetes.node_labels: more than %d labels", PROVISION_NODE_LABELS_MAX);
        if (n == 0)
                return 0;
        k->node_labels = calloc(n, sizeof(ProvisionLabel));
        if (!k->node_labels)
                return -ENOMEM;
        json_object_foreach(obj, key, v) {
                if (strlen(key) > 317 || (why = node_label_key_check(key)))
                        return error_set(error, -EBADMSG, "kubernetes.node_labels: key %s %s", string_quote(q, key),
                                         why ?: "longer than 317 characters");
                if (!json_is_string(v))
                        return error_set(error, -EBADMSG,
                                         "kubernetes.node_labels[%s]: must be a string (quote it in YAML: \"true\", \"1\")",
                                         string_quote(q, key));
                if ((why = label_value_check(json_string_value(v))) || strlen(json_string_value(v)) != json_string_length(v))
                        return error_set(error, -EBADMSG, "kubernetes.node_labels[%s]: %s %s", string_quote(q, key),
                                         string_quote(q2, json_string_value(v)), why ?: "must not contain a NUL byte");
                ProvisionLabel *l = k->node_labels + k->n_node_labels;
                l->key = strdup(key);
                l->value = strdup(json_string_value(v));
                k->n_node_labels++;
                if (!l->key || !l->value)
                        return -ENOMEM;
        }
        /* Canonical order; keys of one object are unique already. */
        qsort(k->node_labels, k->n_node_labels, sizeof(ProvisionLabel), cmp_label);
        return 0;
}

static int parse_node_taints(json_t *arr, ProvisionKubernetes *k, char **error) {
        char q[STRING_QUOTE_SIZE], w[64];
        int r;

        if (!arr)
                return 0;
        r = need_array(arr, "kubernetes.node_taints", PROVISION_NODE_TAINTS_MAX, error);
        if (r < 0)
                return r;
        size_t n = json_array_size(arr);
        if (n == 0)
                return 0;
        k->node_taints = calloc(n, sizeof(ProvisionTaint));
        if (!k->node_taints)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_t *o = json_array_get(arr, i);
                ProvisionTaint *t = k->node_taints + i;

                (void) snprintf(w, sizeof(w), "kubernetes.node_taints[%zu]", i);
                if ((r = need_object(o, w, taint_keys, ELEMENTSOF(taint_keys), error)) < 0)
                        return r;
                k->n_node_taints++;
                if ((r = get_checked(o, "key", w, qualified_name_check, &t->key, error)) < 0 ||
                    (r = get_checked(o, "value", w, label_value_check, &t->value, error)) < 0 ||
                    (r = get_checked(o, "effect", w, NULL, &t->effect, error)) < 0)
                        return r;
                if (!t->key)
                        return error_set(error, -EBADMSG, "%s.key: required", w);
                if (!t->effect)
                        return error_set(error, -EBADMSG, "%s.effect: required (NoSchedule, PreferNoSchedule or NoExecute)", w);
                if (!in_list(t->effect, taint_effects, ELEMENTSOF(taint_effects)))
                        return error_set(error, -EBADMSG, "%s.effect: %s must be NoSchedule, PreferNoSchedule or NoExecute",
                                         w, string_quote(q, t->effect));
                /* The API server's rule: one taint per key and effect. */
                for (size_t j = 0; j < i; j++)
                        if (streq(k->node_taints[j].key, t->key) && streq(k->node_taints[j].effect, t->effect))
                                return error_set(error, -EBADMSG, "%s: key %s with effect %s is already node_taints[%zu]", w,
                                                 string_quote(q, t->key), t->effect, j);
        }
        return 0;
}

static int parse_node_ip(json_t *obj, ProvisionKubernetes *k, char **error) {
        char q[STRING_QUOTE_SIZE];
        json_t *v = json_object_get(obj, "node_ip");
        int r;

        if (!v)
                return 0;
        if (json_is_string(v)) {
                _cleanup_free_ char *s = NULL;
                r = get_checked(obj, "node_ip", "kubernetes", node_ip_check, &s, error);
                if (r < 0)
                        return r;
                if (!(k->node_ip = strv_append(NULL, s)))
                        return -ENOMEM;
                return 0;
        }
        if (!json_is_array(v))
                return error_set(error, -EBADMSG,
                                 "kubernetes.node_ip: must be an address, or a list of an IPv4 and an IPv6 address");
        if (json_array_size(v) == 0 || json_array_size(v) > 2)
                return error_set(error, -EBADMSG, "kubernetes.node_ip: a list must hold one address, or two for "
                                                  "dual-stack (an IPv4 and an IPv6 one)");
        r = get_strv(obj, "node_ip", "kubernetes", 2, node_ip_check, false, &k->node_ip, error);
        if (r < 0)
                return r;
        if (k->node_ip[1] && address_family(k->node_ip[0]) == address_family(k->node_ip[1]))
                return error_set(error, -EBADMSG, "kubernetes.node_ip[1]: %s is of the same IP version as node_ip[0] "
                                                  "(dual-stack needs an IPv4 and an IPv6 address)",
                                 string_quote(q, k->node_ip[1]));
        return 0;
}

static int parse_kubernetes(json_t *obj, ProvisionConfig *c, char **error) {
        _cleanup_(kube_freep) ProvisionKubernetes *k = NULL;
        _cleanup_(json_decrefp) json_t *kc = NULL;
        _cleanup_free_ char *kube_ca = NULL;
        const char *why = NULL;
        int r;

        r = need_object(obj, "kubernetes", kube_keys, ELEMENTSOF(kube_keys), error);
        if (r < 0)
                return r;
        if (json_object_size(obj) == 0)
                return error_set(error, -EBADMSG,
                                 "kubernetes: empty (bootstrap_token, kubeconfig, kubelet_config, node_labels, ... expected)");
        k = calloc(1, sizeof(ProvisionKubernetes));
        if (!k)
                return -ENOMEM;
        if ((r = get_checked(obj, "kubelet_config", "kubernetes", NULL, &k->kubelet_config, error)) < 0 ||
            (r = get_checked(obj, "server", "kubernetes", server_check, &k->server, error)) < 0 ||
            (r = get_checked(obj, "ca_cert", "kubernetes", NULL, &k->ca_cert, error)) < 0 ||
            (r = get_checked(obj, "bootstrap_token", "kubernetes", token_check, &k->bootstrap_token, error)) < 0 ||
            (r = get_checked(obj, "kubeconfig", "kubernetes", NULL, &k->kubeconfig, error)) < 0 ||
            (r = get_strv(obj, "cluster_dns", "kubernetes", PROVISION_CLUSTER_DNS_MAX, address_check, false,
                          &k->cluster_dns, error)) < 0 ||
            (r = parse_node_labels(json_object_get(obj, "node_labels"), k, error)) < 0 ||
            (r = parse_node_taints(json_object_get(obj, "node_taints"), k, error)) < 0 ||
            (r = parse_node_ip(obj, k, error)) < 0)
                return r;
        /* Texts are not quoted back: they may hold secrets. */
        if (k->kubelet_config && strlen(k->kubelet_config) > PROVISION_KUBE_TEXT_MAX)
                return error_set(error, -EBADMSG, "kubernetes.kubelet_config: larger than 256 KiB");
        if (k->kubeconfig && (why = kube_doc_check(k->kubeconfig, "Config", "v1")))
                return error_set(error, -EBADMSG, "kubernetes.kubeconfig: %s", why);
        if (k->ca_cert && (why = pem_check(k->ca_cert)))
                return error_set(error, -EBADMSG, "kubernetes.ca_cert: %s", why);

        if (k->kubeconfig && (k->server || k->bootstrap_token))
                return error_set(error, -EBADMSG, "kubernetes.kubeconfig: excludes server and bootstrap_token (it holds them)");
        if (k->bootstrap_token && (!k->server || !k->ca_cert))
                return error_set(error, -EBADMSG, "kubernetes.bootstrap_token: needs server and ca_cert");
        if (k->server && !k->bootstrap_token)
                return error_set(error, -EBADMSG, "kubernetes.server: needs bootstrap_token (or use kubeconfig)");
        if (k->ca_cert && !k->bootstrap_token && !k->kubeconfig)
                return error_set(error, -EBADMSG, "kubernetes.ca_cert: needs bootstrap_token or kubeconfig");
        if (k->kubeconfig && !k->ca_cert) {
                r = kubeconfig_ca(k->kubeconfig, &kube_ca);
                if (r == -EBADMSG)
                        return error_set(error, r, "kubernetes.kubeconfig: the current context's cluster has a "
                                                   "certificate-authority-data that is not base64 of PEM certificates");
                if (r < 0)
                        return r;
        }
        r = kubelet_config_build(k, k->ca_cert || kube_ca, &kc, &why);
        if (r == -EBADMSG)
                return error_set(error, r, "kubernetes.kubelet_config: %s", why);
        if (r < 0)
                return r;
        c->kubernetes = TAKE_PTR(k);
        return 0;
}

/* The files/sysctl/units sections as a node config document of generation
 * 1, so that exactly node_config_parse()'s rules apply. Its messages name
 * the same keys ("files[1].path: ..."), which are ours too. */
static int parse_node(json_t *root, ProvisionConfig *c, char **error) {
        _cleanup_(json_decrefp) json_t *doc = json_object();
        _cleanup_free_ char *text = NULL, *err = NULL;
        int r;

        if (!doc || json_object_set_new(doc, "generation", json_integer(1)) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(node_sections); i++) {
                json_t *v = json_object_get(root, node_sections[i]);
                if (v && json_object_set(doc, node_sections[i], v) < 0)
                        return -ENOMEM;
        }
        text = json_dumps(doc, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        r = node_config_parse(text, strlen(text), &c->node, &err);
        if (r == -EBADMSG || r == -E2BIG)
                return error_set(error, r, "%s", err ?: "invalid files, sysctl or units");
        return r;
}

/* ---- rendering ---- */

typedef struct Generated {
        char *path;
        char *content;
        mode_t mode;
        const char *from; /* the key it is made from, for messages */
} Generated;

static void generated_free(Generated *g, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(g[i].path);
                free(g[i].content);
        }
        free(g);
}

typedef struct Buf {
        char *s;
        size_t len, cap;
        bool oom;
} Buf;

_printf_(2, 3) static void buf_printf(Buf *b, const char *fmt, ...) {
        va_list ap;
        int n;

        if (b->oom)
                return;
        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
                b->oom = true;
                return;
        }
        if (b->len + (size_t) n + 1 > b->cap) {
                size_t cap = MAX(b->cap * 2, b->len + (size_t) n + 1);
                char *s = realloc(b->s, cap);
                if (!s) {
                        b->oom = true;
                        return;
                }
                b->s = s;
                b->cap = cap;
        }
        va_start(ap, fmt);
        (void) vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        b->len += (size_t) n;
}

static int buf_take(Buf *b, char **ret) {
        if (b->oom || !b->s) {
                free(b->s);
                return -ENOMEM;
        }
        *ret = b->s;
        return 0;
}

static int network_text(const ProvisionNetwork *n, char **ret) {
        Buf b = {};

        buf_printf(&b, "# Generated by Hull from the provisioning config (networks: %s).\n", n->name);
        buf_printf(&b, "[Match]\n");
        if (n->match_name)
                buf_printf(&b, "Name=%s\n", n->match_name);
        if (n->match_mac)
                buf_printf(&b, "MACAddress=%s\n", n->match_mac);
        if (n->mtu > 0)
                buf_printf(&b, "\n[Link]\nMTUBytes=%" PRIu32 "\n", n->mtu);
        buf_printf(&b, "\n[Network]\n");
        if (n->dhcp)
                buf_printf(&b, "DHCP=yes\n");
        for (char **a = n->addresses; a && *a; a++)
                buf_printf(&b, "Address=%s\n", *a);
        if (n->gateway)
                buf_printf(&b, "Gateway=%s\n", n->gateway);
        for (char **a = n->dns; a && *a; a++)
                buf_printf(&b, "DNS=%s\n", *a);
        if (n->domains) {
                buf_printf(&b, "Domains=");
                for (char **a = n->domains; *a; a++)
                        buf_printf(&b, "%s%s", a == n->domains ? "" : " ", *a);
                buf_printf(&b, "\n");
        }
        return buf_take(&b, ret);
}

static int hosts_text(const char *hostname, char **ret) {
        Buf b = {};
        size_t short_len = strcspn(hostname, ".");

        /* Debian's layout: the host's own name on 127.0.1.1, so that it
         * resolves without DNS (hostname --fqdn, sudo, the kubelet). */
        buf_printf(&b, "127.0.0.1\tlocalhost\n");
        if (hostname[short_len])
                buf_printf(&b, "127.0.1.1\t%s %.*s\n", hostname, (int) short_len, hostname);
        else
                buf_printf(&b, "127.0.1.1\t%s\n", hostname);
        buf_printf(&b, "\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n");
        return buf_take(&b, ret);
}

static int bootstrap_text(const ProvisionKubernetes *k, char **ret) {
        Buf b = {};

        buf_printf(&b,
                   "# Generated by Hull from the provisioning config: the kubelet's TLS bootstrap credentials.\n"
                   "apiVersion: v1\n"
                   "kind: Config\n"
                   "clusters:\n"
                   "- name: default\n"
                   "  cluster:\n"
                   "    certificate-authority: " KUBE_CA "\n"
                   "    server: \"%s\"\n"
                   "contexts:\n"
                   "- name: default\n"
                   "  context:\n"
                   "    cluster: default\n"
                   "    user: kubelet-bootstrap\n"
                   "current-context: default\n"
                   "users:\n"
                   "- name: kubelet-bootstrap\n"
                   "  user:\n"
                   "    token: \"%s\"\n",
                   k->server, k->bootstrap_token);
        return buf_take(&b, ret);
}

/* Text files end in a newline, whatever was pasted. */
static int text_with_newline(const char *s, char **ret) {
        size_t l = strlen(s);
        char *t;

        if (l > 0 && s[l - 1] == '\n')
                t = strdup(s);
        else if (asprintf(&t, "%s\n", s) < 0)
                t = NULL;
        if (!t)
                return -ENOMEM;
        *ret = t;
        return 0;
}

/* The KubeletConfiguration, in canonical form: JSON (which is YAML, and
 * what the kubelet's decoder reads first), keys sorted, two-space indent.
 * No comment line: a JSON document cannot carry one. */
static int kubelet_config_text(const ProvisionKubernetes *k, const char *ca, char **ret) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        _cleanup_free_ char *s = NULL;
        const char *why;
        int r;

        r = kubelet_config_build(k, ca != NULL, &j, &why);
        if (r < 0)
                return r == -EBADMSG ? -EINVAL : r;
        s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (!s)
                return -ENOMEM;
        return text_with_newline(s, ret);
}

/* The kubelet's flags that have no KubeletConfiguration field, for
 * kubelet.service's EnvironmentFile=. Values are label keys and values and
 * IP addresses, which can hold no quote, backslash, '$' or white space, so
 * one pair of double quotes is all systemd needs; the unit's unbraced
 * $KUBELET_EXTRA_ARGS splits them into words at the spaces. */
static int kubelet_defaults_text(const ProvisionKubernetes *k, char **ret) {
        Buf b = {};
        bool any = k->node_ip || k->n_node_labels > 0;

        buf_printf(&b, "# Generated by Hull from the provisioning config (kubernetes): the kubelet's flags\n"
                       "# that have no KubeletConfiguration field. Read by kubelet.service.\n"
                       "KUBELET_EXTRA_ARGS=%s", any ? "\"" : "");
        if (k->node_ip) {
                buf_printf(&b, "--node-ip=");
                for (char **a = k->node_ip; *a; a++)
                        buf_printf(&b, "%s%s", a == k->node_ip ? "" : ",", *a);
        }
        if (k->n_node_labels > 0) {
                buf_printf(&b, "%s--node-labels=", k->node_ip ? " " : "");
                for (size_t i = 0; i < k->n_node_labels; i++)
                        buf_printf(&b, "%s%s=%s", i == 0 ? "" : ",", k->node_labels[i].key, k->node_labels[i].value);
        }
        buf_printf(&b, "%s\n", any ? "\"" : "");
        return buf_take(&b, ret);
}

static int generated_add(Generated **g, size_t *n, const char *path, char *content, mode_t mode, const char *from) {
        Generated *x = realloc(*g, (*n + 1) * sizeof(Generated));
        if (!x) {
                free(content);
                return -ENOMEM;
        }
        *g = x;
        x[*n] = (Generated) { .path = strdup(path), .content = content, .mode = mode, .from = from };
        (*n)++;
        return x[*n - 1].path ? 0 : -ENOMEM;
}

/* Every file made from the config's own keys, in a fixed order. */
static int generate_files(const ProvisionConfig *c, Generated **ret, size_t *ret_n) {
        Generated *g = NULL;
        size_t n = 0;
        char *t;
        int r;

        if (c->hostname) {
                if ((r = text_with_newline(c->hostname, &t)) < 0 ||
                    (r = generated_add(&g, &n, "/etc/hostname", t, 0644, "hostname")) < 0)
                        goto fail;
                if ((r = hosts_text(c->hostname, &t)) < 0 ||
                    (r = generated_add(&g, &n, "/etc/hosts", t, 0644, "hostname")) < 0)
                        goto fail;
        }
        if (c->node && c->node->n_sysctl > 0) {
                Buf b = {};
                buf_printf(&b, "# Generated by Hull from the provisioning config (sysctl).\n");
                for (size_t i = 0; i < c->node->n_sysctl; i++)
                        buf_printf(&b, "%s = %s\n", c->node->sysctl[i].key, c->node->sysctl[i].value);
                if ((r = buf_take(&b, &t)) < 0 || (r = generated_add(&g, &n, SYSCTL_CONF, t, 0644, "sysctl")) < 0)
                        goto fail;
        }
        for (size_t i = 0; i < c->n_networks; i++) {
                char path[128];
                (void) snprintf(path, sizeof(path), NETWORK_UNIT_DIR "/50-hull-%s.network", c->networks[i].name);
                if ((r = network_text(c->networks + i, &t)) < 0 ||
                    (r = generated_add(&g, &n, path, t, 0644, "networks")) < 0)
                        goto fail;
        }
        if (c->ntp_servers) {
                Buf b = {};
                buf_printf(&b, "# Generated by Hull from the provisioning config (ntp).\n[Time]\nNTP=");
                for (char **s = c->ntp_servers; *s; s++)
                        buf_printf(&b, "%s%s", s == c->ntp_servers ? "" : " ", *s);
                buf_printf(&b, "\n");
                if ((r = buf_take(&b, &t)) < 0 || (r = generated_add(&g, &n, TIMESYNCD_CONF, t, 0644, "ntp")) < 0)
                        goto fail;
        }
        if (c->ssh_enabled) {
                /* A second gate besides the keys' own options: whatever a
                 * home directory's authorized_keys says, sshd admits only
                 * Hull's admin users, by key, into the admin container. */
                if (!(t = strdup("# Generated by Hull from the provisioning config (ssh): SSH reaches the admin\n"
                                 "# container only (docs/PROVISION.md).\n"
                                 "PermitRootLogin no\n"
                                 "PasswordAuthentication no\n"
                                 "KbdInteractiveAuthentication no\n"
                                 "AuthenticationMethods publickey\n"
                                 "AllowGroups " PROVISION_ADMIN_GROUP "\n"
                                 "DisableForwarding yes\n"
                                 "PermitUserRC no\n"
                                 "ForceCommand " PROVISION_ADMIN_COMMAND "\n"))) {
                        r = -ENOMEM;
                        goto fail;
                }
                if ((r = generated_add(&g, &n, PROVISION_SSHD_CONF, t, 0644, "ssh.enabled")) < 0)
                        goto fail;
                /* hull-build never ships host keys (every node would share
                 * them): each node makes its own before sshd first starts,
                 * kept in /etc on persist across updates. Debian's unit
                 * runs "sshd -t" first, which fails without keys. */
                if (!(t = strdup("# Generated by Hull from the provisioning config (ssh): this node's own host keys.\n"
                                 "[Service]\n"
                                 "ExecStartPre=\n"
                                 "ExecStartPre=/usr/bin/ssh-keygen -A\n"
                                 "ExecStartPre=/usr/sbin/sshd -t\n"))) {
                        r = -ENOMEM;
                        goto fail;
                }
                if ((r = generated_add(&g, &n, PROVISION_SSHD_HOST_KEYS, t, 0644, "ssh.enabled")) < 0)
                        goto fail;
        }
        if (c->kubernetes) {
                const ProvisionKubernetes *k = c->kubernetes;
                _cleanup_free_ char *ca = NULL;
                if (k->ca_cert && !(ca = strdup(k->ca_cert))) {
                        r = -ENOMEM;
                        goto fail;
                }
                if (!ca && k->kubeconfig && (r = kubeconfig_ca(k->kubeconfig, &ca)) < 0)
                        goto fail;
                if ((r = kubelet_config_text(k, ca, &t)) < 0 ||
                    (r = generated_add(&g, &n, KUBELET_CONFIG, t, 0644, "kubernetes")) < 0)
                        goto fail;
                if ((r = kubelet_defaults_text(k, &t)) < 0 ||
                    (r = generated_add(&g, &n, PROVISION_KUBELET_DEFAULTS, t, 0644, "kubernetes")) < 0)
                        goto fail;
                if (k->bootstrap_token &&
                    ((r = bootstrap_text(k, &t)) < 0 ||
                     (r = generated_add(&g, &n, KUBE_BOOTSTRAP_CONF, t, 0600, "kubernetes.bootstrap_token")) < 0))
                        goto fail;
                if (k->kubeconfig &&
                    ((r = text_with_newline(k->kubeconfig, &t)) < 0 ||
                     (r = generated_add(&g, &n, KUBE_KUBELET_CONF, t, 0600, "kubernetes.kubeconfig")) < 0))
                        goto fail;
                if (ca && ((r = text_with_newline(ca, &t)) < 0 ||
                           (r = generated_add(&g, &n, KUBE_CA, t, 0644,
                                              k->ca_cert ? "kubernetes.ca_cert" : "kubernetes.kubeconfig")) < 0))
                        goto fail;
        }
        *ret = g;
        *ret_n = n;
        return 0;
fail:
        generated_free(g, n);
        return r;
}

static int generated_units(const ProvisionConfig *c, const char **ret, size_t *ret_n) {
        size_t n = 0;

        if (c->n_networks > 0)
                ret[n++] = UNIT_NETWORKD;
        if (c->ntp_servers)
                ret[n++] = UNIT_TIMESYNCD;
        if (c->ssh_enabled)
                ret[n++] = UNIT_SSH;
        *ret_n = n;
        return 0;
}

/* What the generated files and units need that the config's own files and
 * units must not contradict. 'files' is the input array, for indices the
 * author recognises (node->files is sorted). */
static int check_conflicts(const ProvisionConfig *c, json_t *files, char **error) {
        char q[STRING_QUOTE_SIZE];
        Generated *g = NULL;
        const char *units[3];
        size_t n = 0, n_units;
        int r;

        r = generate_files(c, &g, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < json_array_size(files); i++) {
                const char *p = json_string_value(json_object_get(json_array_get(files, i), "path"));
                if (!p)
                        continue;
                for (size_t j = 0; j < n; j++)
                        if (streq(p, g[j].path) || path_below(p, g[j].path) || path_below(g[j].path, p)) {
                                r = error_set(error, -EBADMSG, "files[%zu].path: %s collides with %s, generated from %s",
                                              i, string_quote(q, p), g[j].path, g[j].from);
                                goto finish;
                        }
        }
        (void) generated_units(c, units, &n_units);
        for (size_t i = 0; i < n_units; i++)
                if (strv_has(c->node->units_disable, units[i])) {
                        r = error_set(error, -EBADMSG, "units.disable: %s is needed by %s", string_quote(q, units[i]),
                                      streq(units[i], UNIT_NETWORKD) ? "networks" :
                                      streq(units[i], UNIT_TIMESYNCD) ? "ntp" : "ssh.enabled");
                        goto finish;
                }
        r = 0;
finish:
        generated_free(g, n);
        return r;
}

/* No checks of c beyond the node sections: callers have parsed it. */
static int render_internal(const ProvisionConfig *c, NodeConfig **ret, char **ret_error) {
        _cleanup_(json_decrefp) json_t *doc = NULL;
        _cleanup_free_ char *node_text = NULL, *text = NULL, *err = NULL;
        json_t *files, *units, *enable;
        Generated *g = NULL;
        const char *gen_units[3];
        size_t n = 0, n_units;
        int r;

        if (!c || !c->node || !ret)
                return -EINVAL;

        /* Start from the config's own sections in canonical form and add the
         * generated files and units; node_config_parse() then sorts, checks
         * the combination (sizes, counts, collisions) and builds it. */
        r = node_config_format(c->node, &node_text);
        if (r < 0)
                return r;
        doc = json_loads(node_text, 0, NULL);
        if (!doc)
                return -ENOMEM;
        if (json_object_set_new(doc, "generation", json_integer(1)) < 0)
                return -ENOMEM;
        files = json_object_get(doc, "files");
        if (!files) {
                files = json_array();
                if (json_object_set_new(doc, "files", files) < 0)
                        return -ENOMEM;
        }
        r = generate_files(c, &g, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n && r >= 0; i++) {
                char mode[8];
                json_t *o = json_object();
                (void) snprintf(mode, sizeof(mode), "%04o", (unsigned) g[i].mode);
                if (!o || json_array_append_new(files, o) < 0 ||
                    json_object_set_new(o, "path", json_string(g[i].path)) < 0 ||
                    json_object_set_new(o, "content", json_string(g[i].content)) < 0 ||
                    json_object_set_new(o, "mode", json_string(mode)) < 0)
                        r = -ENOMEM;
        }
        generated_free(g, n);
        if (r < 0)
                return r;
        if (json_array_size(files) == 0)
                (void) json_object_del(doc, "files");

        (void) generated_units(c, gen_units, &n_units);
        if (n_units > 0) {
                units = json_object_get(doc, "units");
                if (!units) {
                        units = json_object();
                        if (json_object_set_new(doc, "units", units) < 0)
                                return -ENOMEM;
                }
                enable = json_object_get(units, "enable");
                if (!enable) {
                        enable = json_array();
                        if (json_object_set_new(units, "enable", enable) < 0)
                                return -ENOMEM;
                }
                for (size_t i = 0; i < n_units; i++)
                        if (!strv_has(c->node->units_enable, gen_units[i]) &&
                            json_array_append_new(enable, json_string(gen_units[i])) < 0)
                                return -ENOMEM;
        }

        text = json_dumps(doc, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        r = node_config_parse(text, strlen(text), ret, &err);
        if (r == -EBADMSG || r == -E2BIG)
                return error_set(ret_error, r, "rendered configuration: %s", err ?: "invalid");
        return r;
}

int provision_authorized_keys(const ProvisionUser *u, char **ret) {
        Buf b = {};
        if (!u->ssh_authorized_keys || !*u->ssh_authorized_keys)
                return (*ret = strdup("")) ? 0 : -ENOMEM;
        for (char **k = u->ssh_authorized_keys; k && *k; k++)
                buf_printf(&b, "restrict,pty,command=\"%s\" %s\n", PROVISION_ADMIN_COMMAND, *k);
        return buf_take(&b, ret);
}

int provision_render(const ProvisionConfig *c, NodeConfig **ret, char **ret_error) {
        _cleanup_free_ char *s = NULL;
        int r;

        if (!c || !c->node || !ret)
                return -EINVAL;
        /* A hand-built config must not get past the rules: its strings end
         * up in files (a newline in a match name would be a new section of
         * a .network file). Formatting checks it by parsing. */
        r = provision_format(c, &s);
        if (r < 0)
                return r;
        return render_internal(c, ret, ret_error);
}

/* ---- parse ---- */

static int parse_internal(const char *data, size_t len, ProvisionConfig **ret, char **error) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(provision_freep) ProvisionConfig *c = NULL;
        _cleanup_(node_config_freep) NodeConfig *rendered = NULL;
        json_error_t jerr;
        json_t *v;
        int r;

        if ((!data && len > 0) || !ret)
                return -EINVAL;
        if (len > PROVISION_SIZE_MAX)
                return error_set(error, -E2BIG, "document: larger than 1 MiB");

        root = json_loadb(data ?: "", len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                for (char *p = jerr.text; *p; p++)
                        if (*p < 0x20 || *p > 0x7e)
                                *p = '?';
                return error_set(error, -EBADMSG, "document: invalid JSON at line %d, column %d: %s", jerr.line,
                                 jerr.column, jerr.text);
        }
        if (!json_is_object(root))
                return error_set(error, -EBADMSG, "document: must be a JSON object");

        /* The version first: a newer document is refused for what it is,
         * not for the first key this version does not know. */
        v = json_object_get(root, "hull_config");
        if (!v)
                return error_set(error, -EBADMSG, "hull_config: required (the format version; this Hull understands 1)");
        if (!json_is_integer(v) || json_integer_value(v) != PROVISION_FORMAT)
                return json_is_integer(v) ?
                               error_set(error, -EBADMSG,
                                         "hull_config: format version %" JSON_INTEGER_FORMAT
                                         " is not supported (this Hull understands 1)",
                                         json_integer_value(v)) :
                               error_set(error, -EBADMSG,
                                         "hull_config: must be an integer, the format version (this Hull understands 1)");

        r = json_check_keys(root, top_keys, ELEMENTSOF(top_keys), "", error);
        if (r < 0)
                return r;

        c = calloc(1, sizeof(ProvisionConfig));
        if (!c)
                return -ENOMEM;
        c->format = PROVISION_FORMAT;

        if ((r = get_checked(root, "hostname", "", hostname_check, &c->hostname, error)) < 0)
                return r;
        if (c->hostname && streq(c->hostname, "localhost"))
                return error_set(error, -EBADMSG, "hostname: \"localhost\" is not a name for a node");
        if ((v = json_object_get(root, "users")) && (r = parse_users(v, c, error)) < 0)
                return r;
        if ((v = json_object_get(root, "ssh"))) {
                if ((r = need_object(v, "ssh", ssh_keys, ELEMENTSOF(ssh_keys), error)) < 0 ||
                    (r = get_bool(v, "enabled", "ssh", &c->ssh_enabled, error)) < 0)
                        return r;
        }
        if ((v = json_object_get(root, "networks")) && (r = parse_networks(v, c, error)) < 0)
                return r;
        if ((v = json_object_get(root, "ntp"))) {
                if ((r = need_object(v, "ntp", ntp_keys, ELEMENTSOF(ntp_keys), error)) < 0 ||
                    (r = get_strv(v, "servers", "ntp", PROVISION_NTP_MAX, ntp_server_check, false, &c->ntp_servers,
                                  error)) < 0)
                        return r;
                if (!c->ntp_servers)
                        return error_set(error, -EBADMSG, "ntp.servers: required, at least one server");
        }
        r = parse_node(root, c, error);
        if (r < 0)
                return r;
        if ((v = json_object_get(root, "disks")) && (r = parse_disks(v, c, error)) < 0)
                return r;
        if ((v = json_object_get(root, "kubernetes")) && (r = parse_kubernetes(v, c, error)) < 0)
                return r;

        r = check_conflicts(c, json_object_get(root, "files"), error);
        if (r < 0)
                return r;
        /* Whatever parses must also render: limits that only the combination
         * reaches (the number of files, the total size) are found here, not
         * on the node. */
        r = render_internal(c, &rendered, error);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(c);
        return 0;
}

int provision_parse(const char *json, size_t len, ProvisionConfig **ret, char **ret_error) {
        _cleanup_free_ char *error = NULL;
        int r;

        r = parse_internal(json, len, ret, &error);
        if (r < 0 && ret_error && error && (r == -EBADMSG || r == -E2BIG))
                *ret_error = TAKE_PTR(error);
        return r;
}

/* ---- format ---- */

static int set_new(json_t *obj, const char *key, json_t *v) {
        return json_object_set_new(obj, key, v) < 0 ? -ENOMEM : 0;
}

static int set_str(json_t *obj, const char *key, const char *s) {
        return s ? set_new(obj, key, json_string(s)) : 0;
}

static int set_strv(json_t *obj, const char *key, char *const *l) {
        json_t *a;
        int r;

        if (!l || !*l)
                return 0;
        a = json_array();
        r = set_new(obj, key, a);
        if (r < 0)
                return r;
        for (; *l; l++)
                if (json_array_append_new(a, json_string(*l)) < 0)
                        return -ENOMEM;
        return 0;
}

/* A deep copy with every object's keys inserted in strcmp order: jansson
 * keeps insertion order, and we need sorted keys everywhere except for
 * "hull_config", which comes first. */
static json_t *sorted_copy(json_t *v) {
        if (json_is_object(v)) {
                size_t n = json_object_size(v), k = 0;
                const char **keys = calloc(MAX(n, (size_t) 1), sizeof(char *));
                const char *key;
                json_t *x, *o = json_object();

                if (!keys || !o) {
                        free(keys);
                        json_decref(o);
                        return NULL;
                }
                json_object_foreach(v, key, x)
                        keys[k++] = key;
                qsort(keys, n, sizeof(char *), cmp_str);
                for (size_t i = 0; i < n; i++)
                        if (json_object_set_new(o, keys[i], sorted_copy(json_object_get(v, keys[i]))) < 0) {
                                free(keys);
                                json_decref(o);
                                return NULL;
                        }
                free(keys);
                return o;
        }
        if (json_is_array(v)) {
                json_t *a = json_array();
                size_t i;
                json_t *x;
                if (!a)
                        return NULL;
                json_array_foreach(v, i, x)
                        if (json_array_append_new(a, sorted_copy(x)) < 0) {
                                json_decref(a);
                                return NULL;
                        }
                return a;
        }
        return json_incref(v);
}

static int build_json(const ProvisionConfig *c, json_t **ret) {
        _cleanup_(json_decrefp) json_t *body = json_object(), *node = NULL;
        _cleanup_free_ char *node_text = NULL;
        int r;

        if (!body)
                return -ENOMEM;
        if ((r = set_str(body, "hostname", c->hostname)) < 0)
                return r;

        if (c->n_users > 0) {
                json_t *a = json_array();
                if ((r = set_new(body, "users", a)) < 0)
                        return r;
                for (size_t i = 0; i < c->n_users; i++) {
                        const ProvisionUser *u = c->users + i;
                        json_t *o = json_object();
                        if (!o || json_array_append_new(a, o) < 0)
                                return -ENOMEM;
                        if ((r = set_str(o, "name", u->name)) < 0 || (r = set_str(o, "gecos", u->gecos)) < 0 ||
                            (r = set_strv(o, "groups", u->groups)) < 0 ||
                            (r = set_strv(o, "ssh_authorized_keys", u->ssh_authorized_keys)) < 0 ||
                            (r = set_str(o, "shell", u->shell)) < 0)
                                return r;
                }
        }
        if (c->ssh_enabled) {
                json_t *o = json_object();
                if ((r = set_new(body, "ssh", o)) < 0 || (r = set_new(o, "enabled", json_true())) < 0)
                        return r;
        }
        if (c->n_networks > 0) {
                json_t *a = json_array();
                if ((r = set_new(body, "networks", a)) < 0)
                        return r;
                for (size_t i = 0; i < c->n_networks; i++) {
                        const ProvisionNetwork *n = c->networks + i;
                        json_t *o = json_object(), *m = json_object();
                        if (!o || json_array_append_new(a, o) < 0) {
                                json_decref(m);
                                return -ENOMEM;
                        }
                        if ((r = set_str(o, "name", n->name)) < 0 || (r = set_new(o, "match", m)) < 0 ||
                            (r = set_str(m, "name", n->match_name)) < 0 || (r = set_str(m, "mac", n->match_mac)) < 0 ||
                            (r = set_new(o, "dhcp", json_boolean(n->dhcp))) < 0 ||
                            (r = set_strv(o, "addresses", n->addresses)) < 0 ||
                            (r = set_str(o, "gateway", n->gateway)) < 0 || (r = set_strv(o, "dns", n->dns)) < 0 ||
                            (r = set_strv(o, "domains", n->domains)) < 0)
                                return r;
                        if (n->mtu > 0 && (r = set_new(o, "mtu", json_integer(n->mtu))) < 0)
                                return r;
                }
        }
        if (c->ntp_servers && *c->ntp_servers) {
                json_t *o = json_object();
                if ((r = set_new(body, "ntp", o)) < 0 || (r = set_strv(o, "servers", c->ntp_servers)) < 0)
                        return r;
        }
        if (c->n_disks > 0) {
                json_t *a = json_array();
                if ((r = set_new(body, "disks", a)) < 0)
                        return r;
                for (size_t i = 0; i < c->n_disks; i++) {
                        const ProvisionDisk *d = c->disks + i;
                        const char *fs = provision_fs_to_string(d->filesystem);
                        if (!fs)
                                return -EINVAL;
                        json_t *o = json_object();
                        if (!o || json_array_append_new(a, o) < 0)
                                return -ENOMEM;
                        if ((r = set_str(o, "device", d->device)) < 0 || (r = set_str(o, "filesystem", fs)) < 0 ||
                            (r = set_str(o, "label", d->label)) < 0 || (r = set_str(o, "mount", d->mount)) < 0 ||
                            (r = set_strv(o, "options", d->options)) < 0)
                                return r;
                        if (!d->partition && (r = set_new(o, "partition", json_false())) < 0)
                                return r;
                        if (d->wipe && (r = set_new(o, "wipe", json_true())) < 0)
                                return r;
                }
        }
        if (c->kubernetes) {
                const ProvisionKubernetes *k = c->kubernetes;
                json_t *o = json_object();
                if ((r = set_new(body, "kubernetes", o)) < 0 ||
                    (r = set_str(o, "kubelet_config", k->kubelet_config)) < 0 ||
                    (r = set_str(o, "server", k->server)) < 0 || (r = set_str(o, "ca_cert", k->ca_cert)) < 0 ||
                    (r = set_str(o, "bootstrap_token", k->bootstrap_token)) < 0 ||
                    (r = set_str(o, "kubeconfig", k->kubeconfig)) < 0 ||
                    (r = set_strv(o, "cluster_dns", k->cluster_dns)) < 0)
                        return r;
                /* One address as a string, a dual-stack pair as a list. */
                if (k->node_ip && !k->node_ip[1] && (r = set_str(o, "node_ip", k->node_ip[0])) < 0)
                        return r;
                if (k->node_ip && k->node_ip[1] && (r = set_strv(o, "node_ip", k->node_ip)) < 0)
                        return r;
                if (k->n_node_labels > 0) {
                        json_t *l = json_object();
                        if ((r = set_new(o, "node_labels", l)) < 0)
                                return r;
                        for (size_t i = 0; i < k->n_node_labels; i++)
                                if ((r = set_str(l, k->node_labels[i].key, k->node_labels[i].value)) < 0)
                                        return r;
                }
                if (k->n_node_taints > 0) {
                        json_t *a = json_array();
                        if ((r = set_new(o, "node_taints", a)) < 0)
                                return r;
                        for (size_t i = 0; i < k->n_node_taints; i++) {
                                const ProvisionTaint *t = k->node_taints + i;
                                json_t *x = json_object();
                                if (!x || json_array_append_new(a, x) < 0)
                                        return -ENOMEM;
                                if ((r = set_str(x, "key", t->key)) < 0 || (r = set_str(x, "value", t->value)) < 0 ||
                                    (r = set_str(x, "effect", t->effect)) < 0)
                                        return r;
                        }
                }
        }

        /* The node sections in the node config's own canonical form. */
        if (c->node) {
                const char *key;
                json_t *x;

                r = node_config_format(c->node, &node_text);
                if (r < 0)
                        return r;
                node = json_loads(node_text, 0, NULL);
                if (!node)
                        return -ENOMEM;
                json_object_foreach(node, key, x) {
                        if (!in_list(key, node_sections, ELEMENTSOF(node_sections)))
                                continue;
                        if (json_object_set(body, key, x) < 0)
                                return -ENOMEM;
                }
        }

        json_t *sorted = sorted_copy(body);
        json_t *root = json_object();
        if (!sorted || !root || json_object_set_new(root, "hull_config", json_integer(PROVISION_FORMAT)) < 0 ||
            json_object_update(root, sorted) < 0) {
                json_decref(sorted);
                json_decref(root);
                return -ENOMEM;
        }
        json_decref(sorted);
        *ret = root;
        return 0;
}

int provision_format(const ProvisionConfig *c, char **ret) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(provision_freep) ProvisionConfig *check = NULL;
        _cleanup_free_ char *s = NULL;
        int r;

        if (!c || !ret || c->format != PROVISION_FORMAT || !c->node)
                return -EINVAL;
        if ((c->n_users > 0 && !c->users) || (c->n_networks > 0 && !c->networks) || (c->n_disks > 0 && !c->disks))
                return -EINVAL;
        r = build_json(c, &root);
        if (r < 0)
                return r;
        s = json_dumps(root, JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        if (strlen(s) > PROVISION_SIZE_MAX)
                return -E2BIG;
        /* A hand-built config is held to the parser's rules by parsing the
         * result: what we hand out must be readable again. */
        r = provision_parse(s, strlen(s), &check, NULL);
        if (r == -EBADMSG)
                return -EINVAL;
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

/* ---- default host name ---- */

int provision_default_hostname(const char *machine_id, const char *mac, char **ret) {
        char hex[13];
        size_t n = 0;

        if (!ret)
                return -EINVAL;
        /* systemd's format: 32 lower-case hex digits (sd-id128), with or
         * without the newline; "uninitialized" (an image before its first
         * boot) and anything else are not an ID. */
        if (machine_id && strspn(machine_id, "0123456789abcdef") == 32 &&
            (machine_id[32] == '\0' || streq(machine_id + 32, "\n")) &&
            strspn(machine_id, "0") != 32) {
                memcpy(hex, machine_id, 12);
                n = 12;
        } else if (mac && !mac_check(mac) && strcasecmp(mac, "00:00:00:00:00:00") != 0) {
                for (size_t i = 0; i < 17; i++)
                        if (mac[i] != ':')
                                hex[n++] = (char) ((mac[i] >= 'A' && mac[i] <= 'F') ? mac[i] - 'A' + 'a' : mac[i]);
        }
        if (n != 12)
                return -ENOENT;
        hex[12] = '\0';
        return asprintf(ret, "hull-%s", hex) < 0 ? -ENOMEM : 0;
}

/* ---- generate ---- */

static int resolve_read(const char *base_dir, const char *name, size_t max, char **ret, size_t *ret_size) {
        _cleanup_free_ char *path = NULL;

        if (name[0] == '/' || !base_dir)
                path = strdup(name);
        else
                path = path_join(base_dir, name);
        if (!path)
                return -ENOMEM;
        return read_full_file(path, max, ret, ret_size);
}

static int read_error(char **error, int r, const char *where, const char *name) {
        char q[STRING_QUOTE_SIZE];

        if (r == -ENOMEM)
                return r;
        if (r == -E2BIG)
                return error_set(error, -EBADMSG, "%s: %s is too large", where, string_quote(q, name));
        return error_set(error, -EBADMSG, "%s: cannot read %s: %s", where, string_quote(q, name), strerror(-r));
}

/* Replace "KEY_file": "path" in obj with "KEY": "<contents>". */
static int inline_text(json_t *obj, const char *key, const char *where, const char *base_dir, char **error) {
        char file_key[64], w[96];
        _cleanup_free_ char *data = NULL;
        json_t *v, *s;
        size_t size;
        int r;

        (void) snprintf(file_key, sizeof(file_key), "%s_file", key);
        (void) snprintf(w, sizeof(w), "%s.%s", where, file_key);
        v = json_object_get(obj, file_key);
        if (!v)
                return 0;
        if (!json_is_string(v))
                return error_set(error, -EBADMSG, "%s: must be a string (a path)", w);
        if (json_object_get(obj, key))
                return error_set(error, -EBADMSG, "%s: excludes %s (give one of them)", w, key);
        r = resolve_read(base_dir, json_string_value(v), PROVISION_KUBE_TEXT_MAX, &data, &size);
        if (r < 0)
                return read_error(error, r, w, json_string_value(v));
        s = json_stringn(data, size);
        if (!s || strlen(data) != size) {
                json_decref(s);
                return error_set(error, -EBADMSG, "%s: %s is not UTF-8 text", w, json_string_value(v));
        }
        if (json_object_set_new(obj, key, s) < 0)
                return -ENOMEM;
        (void) json_object_del(obj, file_key);
        return 0;
}

static int inline_keys(json_t *user, size_t i, const char *base_dir, char **error) {
        _cleanup_free_ char *data = NULL;
        char w[64];
        json_t *v, *list;
        size_t size;
        int r;

        (void) snprintf(w, sizeof(w), "users[%zu].ssh_authorized_keys_file", i);
        v = json_object_get(user, "ssh_authorized_keys_file");
        if (!v)
                return 0;
        if (!json_is_string(v))
                return error_set(error, -EBADMSG, "%s: must be a string (a path)", w);
        r = resolve_read(base_dir, json_string_value(v), PROVISION_KEYS_MAX * 1024, &data, &size);
        if (r < 0)
                return read_error(error, r, w, json_string_value(v));
        if (strlen(data) != size)
                return error_set(error, -EBADMSG, "%s: %s is not a text file", w, json_string_value(v));

        list = json_object_get(user, "ssh_authorized_keys");
        if (!list) {
                list = json_array();
                if (json_object_set_new(user, "ssh_authorized_keys", list) < 0)
                        return -ENOMEM;
        } else if (!json_is_array(list))
                return 0; /* provision_parse() says what is wrong with it */

        /* authorized_keys(5): one key per line; blank lines and '#'
         * comments are skipped. */
        for (char *line = data; *line;) {
                size_t n = strcspn(line, "\n");
                char *next = line + n + (line[n] ? 1 : 0);
                line[n] = '\0';
                if (n > 0 && line[n - 1] == '\r')
                        line[n - 1] = '\0';
                const char *t = line + strspn(line, " \t");
                if (*t && *t != '#') {
                        json_t *s = json_string(t);
                        if (!s)
                                return error_set(error, -EBADMSG, "%s: %s is not UTF-8 text", w, json_string_value(v));
                        if (json_array_append_new(list, s) < 0)
                                return -ENOMEM;
                }
                line = next;
        }
        (void) json_object_del(user, "ssh_authorized_keys_file");
        return 0;
}

static int inline_file_source(json_t *f, size_t i, const char *base_dir, char **error) {
        _cleanup_free_ char *data = NULL, *b64 = NULL;
        char w[48];
        json_t *v;
        size_t size;
        int r;

        (void) snprintf(w, sizeof(w), "files[%zu].source", i);
        v = json_object_get(f, "source");
        if (!v)
                return 0;
        if (!json_is_string(v))
                return error_set(error, -EBADMSG, "%s: must be a string (a path)", w);
        if (json_object_get(f, "content") || json_object_get(f, "content_base64"))
                return error_set(error, -EBADMSG, "%s: excludes content and content_base64 (give one of them)", w);
        r = resolve_read(base_dir, json_string_value(v), NODE_CONFIG_FILE_SIZE_MAX, &data, &size);
        if (r < 0)
                return read_error(error, r, w, json_string_value(v));
        /* base64 whatever it is: binary files are fine, and the canonical
         * form stores contents that way anyway. */
        b64 = malloc((size + 2) / 3 * 4 + 1);
        if (!b64)
                return -ENOMEM;
        (void) EVP_EncodeBlock((unsigned char *) b64, (const unsigned char *) data, (int) size);
        if (json_object_set_new(f, "content_base64", json_string(b64)) < 0)
                return -ENOMEM;
        (void) json_object_del(f, "source");
        return 0;
}

static int generate_internal(const char *yaml, size_t len, const char *base_dir, char **ret, char **error) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(provision_freep) ProvisionConfig *c = NULL;
        _cleanup_free_ char *text = NULL, *err = NULL, *out = NULL;
        json_t *v;
        int r;

        if ((!yaml && len > 0) || !ret)
                return -EINVAL;
        if (len > PROVISION_SIZE_MAX)
                return error_set(error, -E2BIG, "document: larger than 1 MiB");
        r = yaml_to_json(yaml ?: "", len, &root, &err);
        if (r == -EBADMSG)
                return error_set(error, r, "%s", err ?: "not valid YAML");
        if (r < 0)
                return r;
        if (!json_is_object(root))
                return error_set(error, -EBADMSG, "document: must be a YAML mapping");

        v = json_object_get(root, "files");
        if (json_is_array(v))
                for (size_t i = 0; i < json_array_size(v); i++)
                        if (json_is_object(json_array_get(v, i)) &&
                            (r = inline_file_source(json_array_get(v, i), i, base_dir, error)) < 0)
                                return r;
        v = json_object_get(root, "users");
        if (json_is_array(v))
                for (size_t i = 0; i < json_array_size(v); i++)
                        if (json_is_object(json_array_get(v, i)) &&
                            (r = inline_keys(json_array_get(v, i), i, base_dir, error)) < 0)
                                return r;
        v = json_object_get(root, "kubernetes");
        if (json_is_object(v)) {
                const char *texts[] = { "kubelet_config", "ca_cert", "kubeconfig" };
                for (size_t i = 0; i < ELEMENTSOF(texts); i++)
                        if ((r = inline_text(v, texts[i], "kubernetes", base_dir, error)) < 0)
                                return r;
        }

        text = json_dumps(root, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        r = provision_parse(text, strlen(text), &c, error);
        if (r < 0)
                return r;
        r = provision_format(c, &out);
        if (r < 0)
                return r;
        if (asprintf(ret, "%s\n", out) < 0)
                return -ENOMEM;
        return 0;
}

int provision_generate(const char *yaml, size_t len, const char *base_dir, char **ret_json, char **ret_error) {
        _cleanup_free_ char *error = NULL;
        int r;

        r = generate_internal(yaml, len, base_dir, ret_json, &error);
        if (r < 0 && ret_error && error && (r == -EBADMSG || r == -E2BIG))
                *ret_error = TAKE_PTR(error);
        return r;
}
