/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "provision.h"
#include "strutil.h"
#include "tests.h"

/* JSON is written with ' for " to keep the cases readable. */
static char *J(const char *s) {
        char *t = strdup(s);
        ASSERT_TRUE(t);
        for (char *p = t; *p; p++)
                if (*p == '\'')
                        *p = '"';
        return t;
}

#define KEY "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVzZXIta2V5LWZvci10ZXN0aW5nLW9ubHktMDEyMzQ1 alice@laptop"
#define CA "-----BEGIN CERTIFICATE-----\\nMIIBdzCCAR2gAwIBAgIBADAKBggqhkjOPQQDAjAjMSEwHwYDVQQDDBhrM3Mtc2Vy\\n-----END CERTIFICATE-----\\n"
#define CA_TEXT "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIBADAKBggqhkjOPQQDAjAjMSEwHwYDVQQDDBhrM3Mtc2Vy\n-----END CERTIFICATE-----\n"
#define KUBELET "apiVersion: kubelet.config.k8s.io/v1beta1\\nkind: KubeletConfiguration\\ncgroupDriver: systemd\\n"
#define TOKEN "abcdef.0123456789abcdef"

/* Every section, keys deliberately out of canonical order. */
static const char full[] =
        "{'users':[{'ssh_authorized_keys':['" KEY "'],'name':'alice','groups':['wheel','adm'],'gecos':'Alice A',"
        "'shell':'/bin/bash'}],"
        "'hull_config':1,'hostname':'node1.example.com','ssh':{'enabled':true},"
        "'networks':[{'name':'lan','match':{'name':'en*'},'dhcp':true},"
        "{'name':'storage','match':{'mac':'52:54:00:AB:cd:01'},'dhcp':false,'addresses':['192.0.2.10/24',"
        "'2001:db8::10/64'],'gateway':'192.0.2.1','dns':['192.0.2.53','2001:db8::53'],'domains':['example.com',"
        "'~corp'],'mtu':9000}],"
        "'ntp':{'servers':['time1.example.com','192.0.2.123']},"
        "'sysctl':{'vm.max_map_count':262144},"
        "'files':[{'path':'/etc/motd','content':'hello\\n','mode':'0644'}],"
        "'units':{'enable':['containerd.service'],'disable':['getty@tty1.service']},"
        "'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'data','mount':'/var/lib/data',"
        "'options':['noatime']},{'device':'/dev/disk/by-id/virtio-ceph0','filesystem':'xfs','label':'ceph',"
        "'mount':'/var/lib/ceph','partition':false,'wipe':true}],"
        "'kubernetes':{'kubelet_config':'" KUBELET "','server':'https://192.0.2.1:6443','ca_cert':'" CA "',"
        "'bootstrap_token':'" TOKEN "'}}";

static ProvisionConfig *parse_ok(const char *tmpl) {
        _cleanup_free_ char *j = J(tmpl), *err = NULL;
        ProvisionConfig *c = NULL;
        int r = provision_parse(j, strlen(j), &c, &err);
        if (r < 0)
                fprintf(stderr, "unexpected failure: %s\n", err ?: "(no message)");
        ASSERT_OK(r);
        ASSERT_TRUE(c);
        ASSERT_TRUE(!err);
        return c;
}

static unsigned n_bad;

/* The document is refused with -EBADMSG and the message contains 'want'
 * (which names the field). */
static void bad(const char *tmpl, const char *want) {
        _cleanup_free_ char *j = J(tmpl), *err = NULL;
        ProvisionConfig *c = NULL;
        int r = provision_parse(j, strlen(j), &c, &err);

        if (r != -EBADMSG || !err || !strstr(err, want)) {
                fprintf(stderr, "input: %s\nexpected -EBADMSG with \"%s\", got %d: %s\n", j, want, r, err ?: "(null)");
                abort();
        }
        ASSERT_TRUE(!c);
        for (const char *p = err; *p; p++)
                ASSERT_TRUE(*p >= 0x20 && *p <= 0x7e);
        n_bad++;
}

static void test_full(void) {
        _cleanup_(provision_freep) ProvisionConfig *c = parse_ok(full);

        ASSERT_EQ(c->format, 1);
        ASSERT_STREQ(c->hostname, "node1.example.com");
        ASSERT_EQ(c->n_users, 1);
        ASSERT_STREQ(c->users[0].name, "alice");
        ASSERT_STREQ(c->users[0].gecos, "Alice A");
        /* groups are sorted */
        ASSERT_STREQ(c->users[0].groups[0], "adm");
        ASSERT_STREQ(c->users[0].groups[1], "wheel");
        ASSERT_TRUE(!c->users[0].groups[2]);
        ASSERT_STREQ(c->users[0].ssh_authorized_keys[0], KEY);
        ASSERT_STREQ(c->users[0].shell, "/bin/bash");
        ASSERT_TRUE(c->ssh_enabled);
        ASSERT_EQ(c->n_networks, 2);
        ASSERT_TRUE(c->networks[0].dhcp);
        ASSERT_STREQ(c->networks[0].match_name, "en*");
        ASSERT_TRUE(!c->networks[0].match_mac);
        ASSERT_TRUE(!c->networks[1].dhcp);
        /* MAC addresses are kept in lower case */
        ASSERT_STREQ(c->networks[1].match_mac, "52:54:00:ab:cd:01");
        ASSERT_STREQ(c->networks[1].addresses[1], "2001:db8::10/64");
        ASSERT_STREQ(c->networks[1].gateway, "192.0.2.1");
        ASSERT_EQ(c->networks[1].mtu, 9000);
        ASSERT_STREQ(c->ntp_servers[1], "192.0.2.123");
        ASSERT_TRUE(c->node);
        ASSERT_EQ(c->node->generation, 1);
        ASSERT_EQ(c->node->n_sysctl, 1);
        ASSERT_STREQ(c->node->sysctl[0].value, "262144");
        ASSERT_EQ(c->node->n_files, 1);
        ASSERT_STREQ(c->node->units_enable[0], "containerd.service");
        ASSERT_EQ(c->n_disks, 2);
        ASSERT_TRUE(c->disks[0].partition);
        ASSERT_TRUE(!c->disks[0].wipe);
        ASSERT_EQ(c->disks[0].filesystem, PROVISION_FS_EXT4);
        ASSERT_STREQ(c->disks[0].options[0], "noatime");
        ASSERT_TRUE(!c->disks[1].partition);
        ASSERT_TRUE(c->disks[1].wipe);
        ASSERT_EQ(c->disks[1].filesystem, PROVISION_FS_XFS);
        ASSERT_TRUE(c->kubernetes);
        ASSERT_STREQ(c->kubernetes->bootstrap_token, TOKEN);
        ASSERT_STREQ(c->kubernetes->ca_cert, CA_TEXT);
        ASSERT_TRUE(!c->kubernetes->kubeconfig);
}

static void test_minimal(void) {
        _cleanup_(provision_freep) ProvisionConfig *c = parse_ok("{'hull_config':1}");
        _cleanup_free_ char *s = NULL;
        _cleanup_(node_config_freep) NodeConfig *n = NULL;

        ASSERT_TRUE(c->node);
        ASSERT_TRUE(!c->hostname && c->n_users == 0 && c->n_networks == 0 && !c->kubernetes && !c->ssh_enabled);
        ASSERT_OK(provision_format(c, &s));
        ASSERT_STREQ(s, "{\"hull_config\":1}");
        ASSERT_OK(provision_render(c, &n, NULL));
        ASSERT_EQ(n->generation, 1);
        ASSERT_EQ(n->n_files, 0);
        ASSERT_TRUE(!n->units_enable);
}

static void test_round_trip(void) {
        _cleanup_(provision_freep) ProvisionConfig *c = parse_ok(full), *c2 = NULL;
        _cleanup_free_ char *s1 = NULL, *s2 = NULL;

        ASSERT_OK(provision_format(c, &s1));
        /* hull_config first, then sorted keys */
        ASSERT_TRUE(string_has_prefix(s1, "{\"hull_config\":1,\"disks\":[{\"device\":\"/dev/vdb\",\"filesystem\":\"ext4\","
                                          "\"label\":\"data\",\"mount\":\"/var/lib/data\",\"options\":[\"noatime\"]},"
                                          "{\"device\":\"/dev/disk/by-id/virtio-ceph0\",\"filesystem\":\"xfs\","
                                          "\"label\":\"ceph\",\"mount\":\"/var/lib/ceph\",\"partition\":false,"
                                          "\"wipe\":true}],\"files\":[{\"content_base64\":\"aGVsbG8K\",\"mode\":\"0644\","
                                          "\"path\":\"/etc/motd\"}],\"hostname\":\"node1.example.com\",\"kubernetes\":{"));
        ASSERT_TRUE(strstr(s1, "\"ssh\":{\"enabled\":true},\"sysctl\":{\"vm.max_map_count\":\"262144\"},"
                               "\"units\":{\"disable\":[\"getty@tty1.service\"],\"enable\":[\"containerd.service\"]},"
                               "\"users\":[{\"gecos\":\"Alice A\",\"groups\":[\"adm\",\"wheel\"],\"name\":\"alice\","));
        ASSERT_TRUE(strstr(s1, "\"mac\":\"52:54:00:ab:cd:01\""));
        ASSERT_OK(provision_parse(s1, strlen(s1), &c2, NULL));
        ASSERT_OK(provision_format(c2, &s2));
        ASSERT_STREQ(s1, s2);
}

/* A hand-built config that breaks a rule is not formatted. */
static void test_format_refuses(void) {
        _cleanup_(provision_freep) ProvisionConfig *c = parse_ok(full);
        _cleanup_free_ char *s = NULL;
        char *saved = c->hostname;

        c->hostname = (char *) "Bad_Name";
        ASSERT_ERROR(provision_format(c, &s), EINVAL);
        c->hostname = saved;
        c->disks[1].filesystem = _PROVISION_FS_MAX;
        ASSERT_ERROR(provision_format(c, &s), EINVAL);
        c->disks[1].filesystem = PROVISION_FS_XFS;
        ASSERT_OK(provision_format(c, &s));

        /* nor rendered: the string would become a section of a .network file */
        _cleanup_(node_config_freep) NodeConfig *n = NULL;
        saved = c->networks[0].match_name;
        c->networks[0].match_name = (char *) "eth0\n[Network]\nDHCP=no";
        ASSERT_ERROR(provision_render(c, &n, NULL), EINVAL);
        ASSERT_TRUE(!n);
        c->networks[0].match_name = saved;
        ASSERT_OK(provision_render(c, &n, NULL));
}

static void test_bad(void) {
        /* document and version */
        bad("[]", "document: must be a JSON object");
        bad("{'hull_config':1,", "document: invalid JSON");
        bad("{'hull_config':1,'hull_config':1}", "document: invalid JSON");
        bad("{}", "hull_config: required");
        bad("{'hull_config':2}", "hull_config: format version 2 is not supported (this Hull understands 1)");
        bad("{'hull_config':'1'}", "hull_config: must be an integer");
        bad("{'hull_config':2,'future':1}", "hull_config: format version 2");
        bad("{'hull_config':1,'hostnme':'a'}", "unknown key \"hostnme\"");
        bad("{'hull_config':1,'kernel_args':['quiet']}", "unknown key \"kernel_args\"");
        bad("{'hull_config':1,'debug':{'enabled':true}}", "unknown key \"debug\"");

        /* hostname */
        bad("{'hull_config':1,'hostname':'Node_1'}", "hostname: \"Node_1\" may only contain");
        bad("{'hull_config':1,'hostname':'a..b'}", "hostname: \"a..b\" has an empty label");
        bad("{'hull_config':1,'hostname':'-a'}", "hostname: \"-a\" has a label starting or ending with '-'");
        bad("{'hull_config':1,'hostname':'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'}",
            "hostname: \"aaaa");
        bad("{'hull_config':1,'hostname':'localhost'}", "hostname: \"localhost\" is not a name");
        bad("{'hull_config':1,'hostname':7}", "hostname: must be a string");

        /* users */
        bad("{'hull_config':1,'users':{}}", "users: must be an array");
        bad("{'hull_config':1,'users':['alice']}", "users[0]: must be an object");
        bad("{'hull_config':1,'users':[{}]}", "users[0].name: required");
        bad("{'hull_config':1,'users':[{'name':'1abc'}]}", "users[0].name: \"1abc\" must start with a-z");
        bad("{'hull_config':1,'users':[{'name':'Alice'}]}", "users[0].name: \"Alice\"");
        bad("{'hull_config':1,'users':[{'name':'root'}]}", "users[0].name: \"root\" is a reserved name");
        bad("{'hull_config':1,'users':[{'name':'sshd'}]}", "users[0].name: \"sshd\" is a reserved name");
        bad("{'hull_config':1,'users':[{'name':'bob'},{'name':'bob'}]}", "users[1].name: \"bob\" is already users[0]");
        bad("{'hull_config':1,'users':[{'name':'bob','gecos':'a:b'}]}", "users[0].gecos: \"a:b\" must not contain");
        bad("{'hull_config':1,'users':[{'name':'bob','groups':['Wheel']}]}", "users[0].groups[0]: \"Wheel\"");
        bad("{'hull_config':1,'users':[{'name':'bob','groups':['adm','adm']}]}", "users[0].groups[1]: \"adm\" is already");
        bad("{'hull_config':1,'users':[{'name':'bob','groups':'adm'}]}", "users[0].groups: must be an array");
        bad("{'hull_config':1,'users':[{'name':'bob','ssh_authorized_keys':['AAAA bob']}]}",
            "users[0].ssh_authorized_keys[0]: \"AAAA bob\" must start with a key type");
        bad("{'hull_config':1,'users':[{'name':'bob','ssh_authorized_keys':['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\\nssh-rsa AAAAB3NzaC1yc2EAAAAD']}]}",
            "users[0].ssh_authorized_keys[0]:");
        bad("{'hull_config':1,'users':[{'name':'bob','ssh_authorized_keys':['ssh-rsa']}]}",
            "users[0].ssh_authorized_keys[0]: \"ssh-rsa\" has no key");
        bad("{'hull_config':1,'users':[{'name':'bob','ssh_authorized_keys':['ssh-rsa AAAAB3Nz!aC1yc2EAAAAD']}]}",
            "users[0].ssh_authorized_keys[0]: \"ssh-rsa AAAAB3Nz!aC1yc2EAAAAD\" key is not base64");
        bad("{'hull_config':1,'users':[{'name':'bob','shell':'bash'}]}", "users[0].shell: \"bash\" must be an absolute path");
        bad("{'hull_config':1,'users':[{'name':'bob','password':'x'}]}", "users[0]: unknown key \"password\"");

        /* ssh */
        bad("{'hull_config':1,'ssh':true}", "ssh: must be an object");
        bad("{'hull_config':1,'ssh':{'enabled':'yes'}}", "ssh.enabled: must be true or false");
        bad("{'hull_config':1,'ssh':{'port':22}}", "ssh: unknown key \"port\"");

        /* networks */
        bad("{'hull_config':1,'networks':[{'match':{'name':'eth0'},'dhcp':true}]}", "networks[0].name: required");
        bad("{'hull_config':1,'networks':[{'name':'Lan','match':{'name':'eth0'},'dhcp':true}]}",
            "networks[0].name: \"Lan\" may only contain a-z, 0-9 and '-'");
        bad("{'hull_config':1,'networks':[{'name':'lan','dhcp':true}]}", "networks[0].match: required");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{},'dhcp':true}]}", "networks[0].match: needs name or mac");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'type':'ether'},'dhcp':true}]}",
            "networks[0].match: unknown key \"type\"");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'mac':'52:54:00:12:34'},'dhcp':true}]}",
            "networks[0].match.mac: \"52:54:00:12:34\" must be six hexadecimal pairs");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'en0 en1'},'dhcp':true}]}",
            "networks[0].match.name: \"en0 en1\" may only contain");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'averyveryverylongname'},'dhcp':true}]}",
            "networks[0].match.name: \"averyveryverylongname\" interface names are at most 15 characters");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'}}]}", "networks[0].dhcp: required");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':'yes'}]}",
            "networks[0].dhcp: must be true or false");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':true,'addresses':['192.0.2.1/24']}]}",
            "networks[0].addresses: not allowed with dhcp: true");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':true,'gateway':'192.0.2.1'}]}",
            "networks[0].gateway: not allowed with dhcp: true");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':false}]}",
            "networks[0].addresses: required with dhcp: false");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':false,'addresses':['192.0.2.1/24','192.0.2.300/24']}]}",
            "networks[0].addresses[1]: \"192.0.2.300/24\" not an address/prefix");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':false,'addresses':['192.0.2.1']}]}",
            "networks[0].addresses[0]: \"192.0.2.1\" not an address/prefix");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':false,'addresses':['192.0.2.1/33']}]}",
            "networks[0].addresses[0]: \"192.0.2.1/33\" prefix length out of range");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':false,'addresses':['2001:db8::1/+64']}]}",
            "networks[0].addresses[0]: \"2001:db8::1/+64\" not an address/prefix");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':false,'addresses':['192.0.2.1/24','192.0.2.1/24']}]}",
            "networks[0].addresses[1]: \"192.0.2.1/24\" is already listed");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':false,'addresses':['192.0.2.1/24'],'gateway':'gw'}]}",
            "networks[0].gateway: \"gw\" not an IPv4 or IPv6 address");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':false,'addresses':['192.0.2.1/24'],'gateway':'2001:db8::1'}]}",
            "networks[0].gateway: no address of the same IP version in addresses");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':true,'dns':['dns.example.com']}]}",
            "networks[0].dns[0]: \"dns.example.com\" not an IPv4 or IPv6 address");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':true,'domains':['a b']}]}",
            "networks[0].domains[0]: \"a b\"");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':true,'mtu':67}]}",
            "networks[0].mtu: must be an integer from 68 to 65535");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':true,'mtu':'1500'}]}",
            "networks[0].mtu: must be an integer");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':true},{'name':'lan','match':{'name':'eth1'},'dhcp':true}]}",
            "networks[1].name: \"lan\" is already networks[0]");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':true,'routes':[]}]}",
            "networks[0]: unknown key \"routes\"");

        /* ntp */
        bad("{'hull_config':1,'ntp':{}}", "ntp.servers: required");
        bad("{'hull_config':1,'ntp':{'servers':[]}}", "ntp.servers: required");
        bad("{'hull_config':1,'ntp':{'servers':['time_1.example.com']}}", "ntp.servers[0]: \"time_1.example.com\" not a host name or an address");
        bad("{'hull_config':1,'ntp':{'servers':['a.example','a.example']}}", "ntp.servers[1]: \"a.example\" is already listed");
        bad("{'hull_config':1,'ntp':['a.example']}", "ntp: must be an object");

        /* the node config sections: node_config_parse()'s rules and messages */
        bad("{'hull_config':1,'sysctl':{'Net.ipv4':'1'}}", "sysctl[\"Net.ipv4\"]:");
        bad("{'hull_config':1,'files':[{'path':'/usr/lib/x','content':''}]}", "files[0].path: must be under /etc");
        bad("{'hull_config':1,'files':[{'path':'/etc/a','content':''},{'path':'/etc/a','content':''}]}",
            "files[1].path: \"/etc/a\" is already listed as files[0]");
        bad("{'hull_config':1,'units':{'enable':['foo']}}", "units.enable[0]: \"foo\" must end in .service");
        bad("{'hull_config':1,'units':{'enable':['a.service'],'disable':['a.service']}}",
            "units: \"a.service\" is both enabled and disabled");

        /* generated files and units against the config's own */
        bad("{'hull_config':1,'hostname':'n1','files':[{'path':'/etc/motd','content':''},{'path':'/etc/hostname','content':'x'}]}",
            "files[1].path: \"/etc/hostname\" collides with /etc/hostname, generated from hostname");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':true}],'files':[{'path':'/etc/systemd/network/50-hull-lan.network','content':''}]}",
            "files[0].path: \"/etc/systemd/network/50-hull-lan.network\" collides with");
        bad("{'hull_config':1,'kubernetes':{'kubelet_config':'" KUBELET "'},'files':[{'path':'/etc/kubernetes','content':''}]}",
            "files[0].path: \"/etc/kubernetes\" collides with /etc/kubernetes/kubelet-config.yaml, generated from kubernetes.kubelet_config");
        bad("{'hull_config':1,'sysctl':{'vm.swappiness':1},'files':[{'path':'/etc/sysctl.d/80-hull-provision.conf','content':''}]}",
            "files[0].path: \"/etc/sysctl.d/80-hull-provision.conf\" collides with /etc/sysctl.d/80-hull-provision.conf, generated from sysctl");
        bad("{'hull_config':1,'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':true}],'units':{'disable':['systemd-networkd.service']}}",
            "units.disable: \"systemd-networkd.service\" is needed by networks");
        bad("{'hull_config':1,'ntp':{'servers':['pool.ntp.org']},'units':{'disable':['systemd-timesyncd.service']}}",
            "units.disable: \"systemd-timesyncd.service\" is needed by ntp");
        bad("{'hull_config':1,'ssh':{'enabled':true},'units':{'disable':['ssh.service']}}",
            "units.disable: \"ssh.service\" is needed by ssh.enabled");

        /* disks */
        bad("{'hull_config':1,'disks':[{'filesystem':'ext4','label':'d','mount':'/data'}]}", "disks[0].device: required");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','label':'d','mount':'/data'}]}", "disks[0].filesystem: required");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','mount':'/data'}]}", "disks[0].label: required");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'d'}]}", "disks[0].mount: required");
        bad("{'hull_config':1,'disks':[{'device':'/tmp/vdb','filesystem':'ext4','label':'d','mount':'/data'}]}",
            "disks[0].device: \"/tmp/vdb\" must be a device under /dev/");
        bad("{'hull_config':1,'disks':[{'device':'/dev/../etc/x','filesystem':'ext4','label':'d','mount':'/data'}]}",
            "disks[0].device: \"/dev/../etc/x\" must be normalised");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'btrfs','label':'d','mount':'/data'}]}",
            "disks[0].filesystem: \"btrfs\" is not supported (ext4 or xfs)");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'xfs','label':'thirteenchars','mount':'/data'}]}",
            "disks[0].label: \"thirteenchars\" xfs labels are at most 12 characters");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'seventeen-chars-x','mount':'/data'}]}",
            "disks[0].label: \"seventeen-chars-x\" ext4 labels are at most 16 characters");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'my data','mount':'/data'}]}",
            "disks[0].label: \"my data\" may only contain");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'HULL-CONFIG','mount':'/data'}]}",
            "disks[0].label: \"HULL-CONFIG\" labels starting with \"hull\" are reserved");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'d','mount':'/etc/data'}]}",
            "disks[0].mount: \"/etc/data\" must not be in /etc");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'d','mount':'/persist'}]}",
            "disks[0].mount: \"/persist\" must not be in");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'d','mount':'/var'}]}",
            "disks[0].mount: \"/var\" would hide a directory of the system");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'d','mount':'/'}]}",
            "disks[0].mount: \"/\" would hide");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'d','mount':'data'}]}",
            "disks[0].mount: \"data\" must be an absolute path");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'d','mount':'/data/'}]}",
            "disks[0].mount: \"/data/\" must be normalised");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'d','mount':'/data','options':['noatime,nodev']}]}",
            "disks[0].options[0]: \"noatime,nodev\" may only contain");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'d','mount':'/data','wipe':1}]}",
            "disks[0].wipe: must be true or false");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'d','mount':'/data','partition':'no'}]}",
            "disks[0].partition: must be true or false");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'d','mount':'/data','size':'1G'}]}",
            "disks[0]: unknown key \"size\"");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'a','mount':'/a'},{'device':'/dev/vdb','filesystem':'ext4','label':'b','mount':'/b'}]}",
            "disks[1].device: \"/dev/vdb\" is already disks[0]");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'a','mount':'/a'},{'device':'/dev/vdc','filesystem':'ext4','label':'b','mount':'/a'}]}",
            "disks[1].mount: \"/a\" is already disks[0]'s");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'a','mount':'/a'},{'device':'/dev/vdc','filesystem':'ext4','label':'b','mount':'/a/b'}]}",
            "disks[1].mount: \"/a/b\" is nested with disks[0].mount");
        bad("{'hull_config':1,'disks':[{'device':'/dev/vdb','filesystem':'ext4','label':'a','mount':'/a'},{'device':'/dev/vdc','filesystem':'ext4','label':'a','mount':'/b'}]}",
            "disks[1].label: \"a\" is already disks[0]'s");

        /* kubernetes */
        bad("{'hull_config':1,'kubernetes':{}}", "kubernetes: empty");
        bad("{'hull_config':1,'kubernetes':{'token':'x'}}", "kubernetes: unknown key \"token\"");
        bad("{'hull_config':1,'kubernetes':{'kubeconfig':'apiVersion: v1\\nkind: Config\\n','server':'https://k'}}",
            "kubernetes.kubeconfig: excludes server, ca_cert and bootstrap_token");
        bad("{'hull_config':1,'kubernetes':{'bootstrap_token':'" TOKEN "','server':'https://k'}}",
            "kubernetes.bootstrap_token: needs server and ca_cert");
        bad("{'hull_config':1,'kubernetes':{'server':'https://k','ca_cert':'" CA "'}}",
            "kubernetes.server: needs bootstrap_token");
        bad("{'hull_config':1,'kubernetes':{'bootstrap_token':'ABCDEF.0123456789abcdef','server':'https://k','ca_cert':'" CA "'}}",
            "kubernetes.bootstrap_token: \"ABCDEF.0123456789abcdef\" must look like");
        bad("{'hull_config':1,'kubernetes':{'bootstrap_token':'" TOKEN "','server':'http://k','ca_cert':'" CA "'}}",
            "kubernetes.server: \"http://k\" must be an https:// URL");
        bad("{'hull_config':1,'kubernetes':{'bootstrap_token':'" TOKEN "','server':'https://k\\\"x','ca_cert':'" CA "'}}",
            "kubernetes.server:");
        bad("{'hull_config':1,'kubernetes':{'bootstrap_token':'" TOKEN "','server':'https://k','ca_cert':'/etc/ca.pem'}}",
            "kubernetes.ca_cert: must be PEM CERTIFICATE blocks");
        bad("{'hull_config':1,'kubernetes':{'bootstrap_token':'" TOKEN "','server':'https://k','ca_cert':'-----BEGIN CERTIFICATE-----\\nMIIB\\n'}}",
            "kubernetes.ca_cert: has a PEM block without -----END CERTIFICATE-----");
        bad("{'hull_config':1,'kubernetes':{'bootstrap_token':'" TOKEN "','server':'https://k','ca_cert':'-----BEGIN PRIVATE KEY-----\\nMIIB\\n-----END PRIVATE KEY-----\\n'}}",
            "kubernetes.ca_cert: must be PEM CERTIFICATE blocks");
        bad("{'hull_config':1,'kubernetes':{'kubelet_config':'kind: Pod\\napiVersion: v1\\n'}}",
            "kubernetes.kubelet_config: must be a KubeletConfiguration");
        bad("{'hull_config':1,'kubernetes':{'kubelet_config':'kind: KubeletConfiguration\\n'}}",
            "kubernetes.kubelet_config: apiVersion must be kubelet.config.k8s.io");
        bad("{'hull_config':1,'kubernetes':{'kubelet_config':'[1, 2'}}",
            "kubernetes.kubelet_config: is not a YAML or JSON document");
        bad("{'hull_config':1,'kubernetes':{'kubeconfig':'kind: KubeletConfiguration\\napiVersion: v1\\n'}}",
            "kubernetes.kubeconfig: must be a kubeconfig (kind: Config)");
        bad("{'hull_config':1,'kubernetes':{'kubeconfig':'kind: Config\\napiVersion: v2\\n'}}",
            "kubernetes.kubeconfig: apiVersion must be v1");

        fprintf(stderr, "%u bad documents refused\n", n_bad);
}

static void test_too_big(void) {
        size_t n = PROVISION_SIZE_MAX + 1;
        _cleanup_free_ char *s = malloc(n), *err = NULL;
        ProvisionConfig *c = NULL;

        ASSERT_TRUE(s);
        memset(s, ' ', n);
        memcpy(s, "{\"hull_config\":1}", 17);
        ASSERT_ERROR(provision_parse(s, n, &c, &err), E2BIG);
        ASSERT_TRUE(err && strstr(err, "larger than 1 MiB"));
        /* just below: whitespace is fine */
        ASSERT_OK(provision_parse(s, n - 1, &c, NULL));
        provision_free(c);
}

/* More files than a node config holds once the generated ones are added:
 * found by parse, not on the node. */
static void test_combined_limits(void) {
        _cleanup_free_ char *j = NULL, *err = NULL;
        ProvisionConfig *c = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&j, &len);

        ASSERT_TRUE(f);
        fputs("{\"hull_config\":1,\"hostname\":\"n1\",\"files\":[", f);
        for (int i = 0; i < NODE_CONFIG_FILES_MAX; i++)
                fprintf(f, "%s{\"path\":\"/etc/f%d\",\"content\":\"\"}", i ? "," : "", i);
        fputs("]}", f);
        ASSERT_TRUE(fclose(f) == 0);
        ASSERT_ERROR(provision_parse(j, len, &c, &err), EBADMSG);
        ASSERT_TRUE(strstr(err, "rendered configuration: files: more than 128 entries"));
}

static const NodeConfigFile *find(const NodeConfig *n, const char *path) {
        for (size_t i = 0; i < n->n_files; i++)
                if (streq(n->files[i].path, path))
                        return n->files + i;
        return NULL;
}

static void assert_file(const NodeConfig *n, const char *path, mode_t mode, const char *content) {
        const NodeConfigFile *f = find(n, path);
        if (!f) {
                fprintf(stderr, "missing %s\n", path);
                abort();
        }
        ASSERT_EQ(f->mode, mode);
        if (f->size != strlen(content) || memcmp(f->content, content, f->size) != 0) {
                fprintf(stderr, "%s:\n---- got\n%.*s---- expected\n%s----\n", path, (int) f->size, f->content, content);
                abort();
        }
}

static void test_render(void) {
        _cleanup_(provision_freep) ProvisionConfig *c = parse_ok(full);
        _cleanup_(node_config_freep) NodeConfig *n = NULL, *n2 = NULL;

        ASSERT_OK(provision_render(c, &n, NULL));
        ASSERT_EQ(n->generation, 1);
        ASSERT_EQ(n->n_files, 12);
        assert_file(n, "/etc/systemd/system/ssh.service.d/50-hull-host-keys.conf", 0644,
                    "# Generated by Hull from the provisioning config (ssh): this node's own host keys.\n"
                    "[Service]\n"
                    "ExecStartPre=\n"
                    "ExecStartPre=/usr/bin/ssh-keygen -A\n"
                    "ExecStartPre=/usr/sbin/sshd -t\n");
        assert_file(n, "/etc/motd", 0644, "hello\n");
        /* ssh.enabled: sshd admits Hull's admin users by key only, into
         * the admin container only */
        assert_file(n, "/etc/ssh/sshd_config.d/50-hull.conf", 0644,
                    "# Generated by Hull from the provisioning config (ssh): SSH reaches the admin\n"
                    "# container only (docs/PROVISION.md).\n"
                    "PermitRootLogin no\n"
                    "PasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\n"
                    "AuthenticationMethods publickey\n"
                    "AllowGroups hull-admin\n"
                    "DisableForwarding yes\n"
                    "PermitUserRC no\n"
                    "ForceCommand /usr/bin/hullctl debug\n");
        assert_file(n, "/etc/hostname", 0644, "node1.example.com\n");
        /* the sysctls for later boots, in a file the agent never rewrites */
        assert_file(n, "/etc/sysctl.d/80-hull-provision.conf", 0644,
                    "# Generated by Hull from the provisioning config (sysctl).\n"
                    "vm.max_map_count = 262144\n");
        assert_file(n, "/etc/hosts", 0644,
                    "127.0.0.1\tlocalhost\n"
                    "127.0.1.1\tnode1.example.com node1\n"
                    "\n"
                    "::1\tlocalhost ip6-localhost ip6-loopback\n"
                    "ff02::1\tip6-allnodes\n"
                    "ff02::2\tip6-allrouters\n");
        assert_file(n, "/etc/systemd/network/50-hull-lan.network", 0644,
                    "# Generated by Hull from the provisioning config (networks: lan).\n"
                    "[Match]\n"
                    "Name=en*\n"
                    "\n"
                    "[Network]\n"
                    "DHCP=yes\n");
        assert_file(n, "/etc/systemd/network/50-hull-storage.network", 0644,
                    "# Generated by Hull from the provisioning config (networks: storage).\n"
                    "[Match]\n"
                    "MACAddress=52:54:00:ab:cd:01\n"
                    "\n"
                    "[Link]\n"
                    "MTUBytes=9000\n"
                    "\n"
                    "[Network]\n"
                    "Address=192.0.2.10/24\n"
                    "Address=2001:db8::10/64\n"
                    "Gateway=192.0.2.1\n"
                    "DNS=192.0.2.53\n"
                    "DNS=2001:db8::53\n"
                    "Domains=example.com ~corp\n");
        assert_file(n, "/etc/systemd/timesyncd.conf.d/50-hull.conf", 0644,
                    "# Generated by Hull from the provisioning config (ntp).\n"
                    "[Time]\n"
                    "NTP=time1.example.com 192.0.2.123\n");
        assert_file(n, "/etc/kubernetes/kubelet-config.yaml", 0644,
                    "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n");
        assert_file(n, "/etc/kubernetes/pki/ca.crt", 0644, CA_TEXT);
        assert_file(n, "/etc/kubernetes/bootstrap-kubelet.conf", 0600,
                    "# Generated by Hull from the provisioning config: the kubelet's TLS bootstrap credentials.\n"
                    "apiVersion: v1\n"
                    "kind: Config\n"
                    "clusters:\n"
                    "- name: default\n"
                    "  cluster:\n"
                    "    certificate-authority: /etc/kubernetes/pki/ca.crt\n"
                    "    server: \"https://192.0.2.1:6443\"\n"
                    "contexts:\n"
                    "- name: default\n"
                    "  context:\n"
                    "    cluster: default\n"
                    "    user: kubelet-bootstrap\n"
                    "current-context: default\n"
                    "users:\n"
                    "- name: kubelet-bootstrap\n"
                    "  user:\n"
                    "    token: \"" TOKEN "\"\n");
        ASSERT_TRUE(!find(n, "/etc/kubernetes/kubelet.conf"));

        /* units: the config's own plus what the sections need, sorted */
        ASSERT_STREQ(n->units_enable[0], "containerd.service");
        ASSERT_STREQ(n->units_enable[1], "ssh.service");
        ASSERT_STREQ(n->units_enable[2], "systemd-networkd.service");
        ASSERT_STREQ(n->units_enable[3], "systemd-timesyncd.service");
        ASSERT_TRUE(!n->units_enable[4]);
        ASSERT_STREQ(n->units_disable[0], "getty@tty1.service");
        ASSERT_EQ(n->n_sysctl, 1);

        /* deterministic */
        ASSERT_OK(provision_render(c, &n2, NULL));
        ASSERT_TRUE(node_config_equal(n, n2));
}

static void test_authorized_keys(void) {
        _cleanup_(provision_freep) ProvisionConfig *c =
                parse_ok("{'hull_config':1,'users':[{'name':'alice','ssh_authorized_keys':['" KEY "',"
                         "'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7']},{'name':'bob'}]}");
        _cleanup_free_ char *keys = NULL, *none = NULL;

        ASSERT_OK(provision_authorized_keys(c->users + 0, &keys));
        ASSERT_STREQ(keys, "restrict,pty,command=\"/usr/bin/hullctl debug\" " KEY "\n"
                           "restrict,pty,command=\"/usr/bin/hullctl debug\" ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7\n");
        ASSERT_OK(provision_authorized_keys(c->users + 1, &none));
        ASSERT_STREQ(none, "");

        /* without ssh.enabled, no sshd drop-in (and no ssh.service) */
        _cleanup_(node_config_freep) NodeConfig *n = NULL;
        ASSERT_OK(provision_render(c, &n, NULL));
        ASSERT_TRUE(!find(n, "/etc/ssh/sshd_config.d/50-hull.conf"));
        ASSERT_TRUE(!find(n, "/etc/systemd/system/ssh.service.d/50-hull-host-keys.conf"));
        ASSERT_TRUE(!n->units_enable || !n->units_enable[0]);

        /* hull-admin is Hull's: no user of that name */
        bad("{'hull_config':1,'users':[{'name':'hull-admin'}]}", "users[0].name: \"hull-admin\" is a reserved name");
}

static void test_render_kubeconfig(void) {
        _cleanup_(provision_freep) ProvisionConfig *c = parse_ok(
                "{'hull_config':1,'hostname':'worker','units':{'enable':['systemd-networkd.service']},"
                "'networks':[{'name':'lan','match':{'name':'eth0'},'dhcp':true}],"
                "'kubernetes':{'kubeconfig':'apiVersion: v1\\nkind: Config\\nclusters: []'}}");
        _cleanup_(node_config_freep) NodeConfig *n = NULL;

        ASSERT_OK(provision_render(c, &n, NULL));
        assert_file(n, "/etc/hosts", 0644,
                    "127.0.0.1\tlocalhost\n127.0.1.1\tworker\n\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                    "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n");
        /* a newline is added to text without one */
        assert_file(n, "/etc/kubernetes/kubelet.conf", 0600, "apiVersion: v1\nkind: Config\nclusters: []\n");
        ASSERT_TRUE(!find(n, "/etc/kubernetes/bootstrap-kubelet.conf"));
        ASSERT_TRUE(!find(n, "/etc/kubernetes/pki/ca.crt"));
        ASSERT_TRUE(!find(n, "/etc/kubernetes/kubelet-config.yaml"));
        /* listed once even though the config enables it itself */
        ASSERT_STREQ(n->units_enable[0], "systemd-networkd.service");
        ASSERT_TRUE(!n->units_enable[1]);
}

static void put(const char *dir, const char *name, const char *content) {
        _cleanup_free_ char *p = path_join(dir, name), *parent = NULL;
        ASSERT_TRUE(p);
        parent = strdup(p);
        ASSERT_TRUE(parent);
        *strrchr(parent, '/') = '\0';
        ASSERT_OK(mkdir_p(parent, 0755));
        ASSERT_OK(write_file_atomic(p, content, strlen(content), 0644));
}

static void expect(const char *dir, const char *name, mode_t mode, const char *content) {
        _cleanup_free_ char *p = path_join(dir, name), *data = NULL;
        struct stat st;
        size_t size;

        ASSERT_TRUE(p);
        ASSERT_OK(read_full_file(p, 1 << 20, &data, &size));
        ASSERT_STREQ(data, content);
        ASSERT_TRUE(stat(p, &st) == 0);
        ASSERT_EQ(st.st_mode & 07777, mode);
}

/* What render makes is what node_config_apply() takes: applied to a
 * temporary root whose image has the units the config needs. */
static void test_render_apply(void) {
        char dir[] = "/tmp/test-provision-apply-XXXXXX";
        _cleanup_(provision_freep) ProvisionConfig *c = parse_ok(full);
        _cleanup_(node_config_freep) NodeConfig *n = NULL;
        _cleanup_free_ char *root = NULL, *proc = NULL, *err = NULL, *cmd = NULL;
        NodeConfigApplyResult res = {};

        ASSERT_TRUE(mkdtemp(dir));
        root = path_join(dir, "root");
        proc = path_join(dir, "proc-sys");
        ASSERT_TRUE(root && proc);
        put(proc, "vm/max_map_count", "65530\n");
        const char *units[] = { "systemd-networkd.service", "systemd-timesyncd.service", "ssh.service",
                                "containerd.service" };
        for (size_t i = 0; i < ELEMENTSOF(units); i++) {
                _cleanup_free_ char *u = NULL;
                ASSERT_TRUE(asprintf(&u, "usr/lib/systemd/system/%s", units[i]) > 0);
                put(root, u, "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n");
        }
        put(root, "usr/lib/systemd/system/getty@.service", "[Install]\nWantedBy=getty.target\n");

        ASSERT_OK(provision_render(c, &n, NULL));
        NodeConfigApplyOptions o = { .root = root, .proc_sys = proc };
        int r = node_config_apply(NULL, n, &o, &res, &err);
        if (r < 0)
                fprintf(stderr, "apply: %s\n", err ?: "(no message)");
        ASSERT_OK(r);
        ASSERT_TRUE(res.changed);

        expect(root, "etc/hostname", 0644, "node1.example.com\n");
        {
                const NodeConfigFile *f = find(n, "/etc/kubernetes/bootstrap-kubelet.conf");
                _cleanup_free_ char *want = NULL;
                ASSERT_TRUE(f);
                want = strndup((const char *) f->content, f->size);
                ASSERT_TRUE(want);
                expect(root, "etc/kubernetes/bootstrap-kubelet.conf", 0600, want);
        }
        expect(root, "etc/kubernetes/pki/ca.crt", 0644, CA_TEXT);
        expect(root, "etc/sysctl.d/80-hull-provision.conf", 0644,
               "# Generated by Hull from the provisioning config (sysctl).\nvm.max_map_count = 262144\n");
        expect(proc, "vm/max_map_count", 0644, "262144\n");
        {
                _cleanup_free_ char *l = path_join(root, "etc/systemd/system/multi-user.target.wants/systemd-networkd.service");
                struct stat st;
                ASSERT_TRUE(l && lstat(l, &st) == 0 && S_ISLNK(st.st_mode));
        }

        /* An image without systemd-timesyncd: refused before anything changes. */
        _cleanup_free_ char *ts = path_join(root, "usr/lib/systemd/system/systemd-timesyncd.service");
        _cleanup_free_ char *root2 = path_join(dir, "root2");
        ASSERT_TRUE(ts && root2);
        ASSERT_TRUE(asprintf(&cmd, "cp -a '%s' '%s' && rm -rf '%s/etc' '%s/usr/lib/systemd/system/systemd-timesyncd.service'",
                             root, root2, root2, root2) > 0);
        ASSERT_TRUE(system(cmd) == 0);
        free(err);
        err = NULL;
        NodeConfigApplyOptions o2 = { .root = root2, .proc_sys = proc };
        ASSERT_ERROR(node_config_apply(NULL, n, &o2, &res, &err), ENOENT);
        {
                _cleanup_free_ char *etc = path_join(root2, "etc");
                ASSERT_TRUE(etc && access(etc, F_OK) < 0);
        }

        free(cmd);
        ASSERT_TRUE(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
        ASSERT_TRUE(system(cmd) == 0);
}

static void write_file(const char *dir, const char *name, const char *content) {
        _cleanup_free_ char *p = path_join(dir, name);
        ASSERT_TRUE(p);
        ASSERT_OK(write_file_atomic(p, content, strlen(content), 0644));
}

static void test_generate(void) {
        char dir[] = "/tmp/test-provision-XXXXXX";
        _cleanup_free_ char *out = NULL, *err = NULL, *again = NULL;
        _cleanup_(provision_freep) ProvisionConfig *c = NULL;
        _cleanup_(node_config_freep) NodeConfig *n = NULL;
        static const char yaml[] =
                "hull_config: 1\n"
                "hostname: node1\n"
                "users:\n"
                "  - name: alice\n"
                "    ssh_authorized_keys:\n"
                "      - " KEY "\n"
                "    ssh_authorized_keys_file: keys/alice.pub\n"
                "networks:\n"
                "  - name: lan\n"
                "    match: {name: \"en*\"}\n"
                "    dhcp: true\n"
                "files:\n"
                "  - path: /etc/containerd/config.toml\n"
                "    source: files/config.toml\n"
                "    mode: \"0600\"\n"
                "sysctl:\n"
                "  vm.max_map_count: 262144\n"
                "kubernetes:\n"
                "  kubelet_config_file: kubelet.yaml\n"
                "  server: https://10.0.0.1:6443\n"
                "  ca_cert_file: ca.crt\n"
                "  bootstrap_token: " TOKEN "\n";

        ASSERT_TRUE(mkdtemp(dir));
        {
                _cleanup_free_ char *k = path_join(dir, "keys"), *f = path_join(dir, "files");
                ASSERT_TRUE(mkdir(k, 0755) == 0 && mkdir(f, 0755) == 0);
        }
        write_file(dir, "keys/alice.pub",
                   "# alice's keys\n\nssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 alice@old\r\n"
                   "  ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY= alice@key\n");
        write_file(dir, "files/config.toml", "version = 2\n");
        write_file(dir, "kubelet.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n");
        write_file(dir, "ca.crt", CA_TEXT);

        ASSERT_OK(provision_generate(yaml, strlen(yaml), dir, &out, &err));
        ASSERT_TRUE(!err);
        ASSERT_TRUE(string_has_prefix(out, "{\"hull_config\":1,"));
        ASSERT_TRUE(out[strlen(out) - 1] == '\n');
        ASSERT_OK(provision_parse(out, strlen(out), &c, NULL));
        ASSERT_STREQ(c->users[0].ssh_authorized_keys[0], KEY);
        ASSERT_STREQ(c->users[0].ssh_authorized_keys[1], "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 alice@old");
        ASSERT_STREQ(c->users[0].ssh_authorized_keys[2],
                     "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY= alice@key");
        ASSERT_TRUE(!c->users[0].ssh_authorized_keys[3]);
        ASSERT_STREQ(c->kubernetes->ca_cert, CA_TEXT);
        ASSERT_STREQ(c->kubernetes->server, "https://10.0.0.1:6443");
        ASSERT_OK(provision_format(c, &again));
        ASSERT_TRUE(strncmp(out, again, strlen(again)) == 0 && streq(out + strlen(again), "\n"));
        ASSERT_OK(provision_render(c, &n, NULL));
        assert_file(n, "/etc/containerd/config.toml", 0600, "version = 2\n");
        assert_file(n, "/etc/kubernetes/kubelet-config.yaml", 0644,
                    "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n");

        /* an absolute source path does not depend on base_dir */
        {
                _cleanup_free_ char *src = path_join(dir, "files/config.toml"), *y = NULL, *o = NULL;
                ASSERT_TRUE(asprintf(&y, "hull_config: 1\nfiles:\n  - path: /etc/a\n    source: %s\n", src) > 0);
                ASSERT_OK(provision_generate(y, strlen(y), "/nonexistent", &o, NULL));
                ASSERT_TRUE(strstr(o, "\"content_base64\":\"dmVyc2lvbiA9IDIK\""));
        }

        /* errors name the field; nothing is returned */
        struct {
                const char *yaml, *want;
        } cases[] = {
                { "hull_config: 1\nfiles:\n  - path: /etc/a\n    source: missing.txt\n",
                  "files[0].source: cannot read \"missing.txt\": No such file or directory" },
                { "hull_config: 1\nfiles:\n  - path: /etc/a\n    source: files/config.toml\n    content: x\n",
                  "files[0].source: excludes content and content_base64" },
                { "hull_config: 1\nfiles:\n  - path: /etc/a\n    source: [a]\n", "files[0].source: must be a string" },
                { "hull_config: 1\nusers:\n  - name: bob\n    ssh_authorized_keys_file: nope.pub\n",
                  "users[0].ssh_authorized_keys_file: cannot read \"nope.pub\"" },
                { "hull_config: 1\nkubernetes:\n  ca_cert_file: ca.crt\n  ca_cert: x\n",
                  "kubernetes.ca_cert_file: excludes ca_cert" },
                { "hull_config: 1\nkubernetes:\n  kubeconfig_file: none\n", "kubernetes.kubeconfig_file: cannot read \"none\"" },
                { "hull_config: 1\nhostname: [\n", "did not find expected node content" },
                { "hull_config: 1\nhostname: a\nhostname: b\n", "3:" },
                { "- a\n", "document: must be a YAML mapping" },
                { "hostname: n1\n", "hull_config: required" },
                { "hull_config: 1\nfiles:\n  - path: /etc/a\n    mode: 0644\n    content: x\n", "4:" },
                { "hull_config: 1\nfiles:\n  - path: /etc/a\n    sourc: x\n", "files[0]: unknown key \"sourc\"" },
                /* the rules of provision_parse() hold for the generated document */
                { "hull_config: 1\nusers:\n  - name: root\n", "users[0].name: \"root\" is a reserved name" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *o = NULL, *e = NULL;
                int r = provision_generate(cases[i].yaml, strlen(cases[i].yaml), dir, &o, &e);
                if (r != -EBADMSG || !e || !strstr(e, cases[i].want) || o) {
                        fprintf(stderr, "case %zu: %d %s (want %s)\n", i, r, e ?: "(null)", cases[i].want);
                        abort();
                }
        }

        _cleanup_free_ char *cmd = NULL;
        ASSERT_TRUE(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
        ASSERT_TRUE(system(cmd) == 0);
}

int main(void) {
        TEST_RUN(test_full);
        TEST_RUN(test_minimal);
        TEST_RUN(test_round_trip);
        TEST_RUN(test_format_refuses);
        TEST_RUN(test_bad);
        TEST_RUN(test_too_big);
        TEST_RUN(test_combined_limits);
        TEST_RUN(test_render);
        TEST_RUN(test_authorized_keys);
        TEST_RUN(test_render_kubeconfig);
        TEST_RUN(test_render_apply);
        TEST_RUN(test_generate);
        return 0;
}
