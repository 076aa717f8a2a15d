#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""End-to-end: a Kubernetes worker image in QEMU (TCG, OVMF).

The image is examples/k8s-node/hull.yaml without its kubelet (none can be
installed on these machines; the kubelet.service Hull ships must then stay
inert), with two container image archives under `images:` (one the test
builds from a static program, and hull-node's own image, both with
scripts/build-oci.py), and the test command channel. The node is booted read-only with a provisioning config that has
a `kubernetes` section (bootstrap token, CA, server) and DHCP networking.

First boot:
  - containerd runs with the CRI plugin loaded (ctr plugins ls), the systemd
    cgroup driver and the spec's sandbox image (containerd config dump);
  - /opt/cni/bin (seeded with Debian's plugins) and /etc/cni/net.d are
    writable; the kubelet's volume-plugin directory too;
  - the join files are in place; kubelet.service is inert without a kubelet,
    ordered after containerd and hull-provision (systemd-analyze verify);
  - /etc/resolv.conf is the DHCP one (QEMU's 10.0.2.3), not a stub and not
    the build host's;
  - br_netfilter is loaded before hull-provision applies a net.bridge.*
    sysctl; ip_forward is on;
  - only the expected units are enabled (no CNI DHCP daemon, no sysext, no
    apt timers);
  - the imported images are listed by `ctr -n k8s.io images ls` and run;
  - the kubelet health check passes on a node without a kubelet.
Second boot: the CNI files written survive, and the archive is not imported
again.

usage: test-k8s-node.py HULL_BUILD SOURCE_ROOT WORK_DIR --hull-node HULL_NODE
"""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2etest  # noqa: E402
from e2etest import check  # noqa: E402
from e2etest import Boot, copy_image, make_config  # noqa: E402

IMAGE_REF = "registry.example.com/hull-e2e/hello:1.0"
NODE_REF = "registry.example.com/hull/hull-node:e2e"

# Units that may be enabled on this node: Hull's, the kubernetes section's,
# the images preload, what the provisioning config turns on, and the test
# command channel. Anything else enabled is a failure.
EXPECTED_ENABLED = {
    "hull-agent.service", "hull-ready.service", "hull-boot-report.service", "hull-provision-check.service",
    "getty@.service", "remote-fs.target",
    "systemd-networkd.service", "systemd-networkd.socket", "systemd-networkd-wait-online.service",
    "systemd-network-generator.service", "systemd-resolved.service", "systemd-timesyncd.service",
    "systemd-pstore.service", "fstrim.timer", "containerd.service", "kubelet.service", "hull-images.service",
    "hull-e2e-shell.service",
}
NEVER_ENABLED = ["cni-dhcp.socket", "cni-dhcp.service", "systemd-sysext.service", "apt-daily.timer",
                 "apt-daily-upgrade.timer", "e2scrub_all.timer", "dpkg-db-backup.timer", "ssh.service"]


def hello_archive(src, work):
    """An OCI archive of a static 'hello' program, named IMAGE_REF."""
    c = os.path.join(work, "hello.c")
    exe = os.path.join(work, "hello")
    with open(c, "w") as f:
        f.write('#include <stdio.h>\nint main(void) { puts("hello from a preloaded image"); return 0; }\n')
    subprocess.run(["gcc", "-static", "-O2", "-o", exe, c], check=True)
    out = os.path.join(work, "hello.oci.tar")
    subprocess.run([sys.executable, os.path.join(src, "scripts/build-oci.py"), "--binary", exe, "--name", "hello",
                    "--version", "1.0", "--user", "0", "--image-name", IMAGE_REF, "--source", "e2e", "-o", out],
                   check=True)
    return out


def hull_node_archive(src, work, hull_node):
    """hull-node's own image (scripts/build-oci.py, as docs/DEPLOY.md builds
    it), to preload like an air-gapped cluster would."""
    out = os.path.join(work, "hull-node.oci.tar")
    subprocess.run([sys.executable, os.path.join(src, "scripts/build-oci.py"), "--binary", hull_node, "--name",
                    "hull-node", "--version", "e2e", "--image-name", NODE_REF, "--source", "e2e", "-o", out],
                   check=True)
    return out


def example_sections(src):
    """The example's kubernetes: and units: sections, without the kubelet
    (the test image is the example minus what cannot be installed here)."""
    with open(os.path.join(src, "examples/k8s-node/hull.yaml")) as f:
        text = f.read()
    m = re.search(r"^kubernetes:\n((?:  .*\n|\s*#.*\n|\n)*)", text, re.M)
    kube = m.group(1) if m else ""
    kube = re.sub(r"  kubelet:\n(?:    .*\n)*", "", kube)
    m = re.search(r"^units:\n((?:  .*\n)*)", text, re.M)
    return "kubernetes:\n" + kube, "units:\n" + (m.group(1) if m else "")


def spec(src, work, archives):
    kube, units = example_sections(src)
    agent = os.path.join(src, "tests/e2e/agent")
    return """# test image: examples/k8s-node without a kubelet (tests/e2e/test-k8s-node.py)
format: 1
name: hull-e2e-k8s
version: 1.0.0
distribution:
  suite: bookworm
packages: [iptables, conntrack, ethtool, socat]
%s
%s
images:
%s
files:
  - source: %s/files/hull-e2e-shell.sh
    path: /usr/lib/hull/hull-e2e-shell
    mode: "0755"
  - source: %s/files/hull-e2e-shell.service
    path: /etc/systemd/system/hull-e2e-shell.service
hooks:
  pre-seal: [%s/hooks/enable-shell.sh]
rootfs: {type: erofs}
partitions: {esp: 256M, root: 1G, persist: 512M}
kernel:
  cmdline: ["console=ttyS0,115200", no_timer_check]
boot: {tries: 3, timeout: 0}
""" % (kube, units, "".join("  - source: %s\n" % a for a in archives).rstrip("\n"), agent, agent, agent)


def cluster_ca(work):
    key, crt = os.path.join(work, "ca.key"), os.path.join(work, "ca.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "30", "-subj", "/CN=kubernetes"], check=True, capture_output=True)
    return crt


def config_yaml(ca):
    return """hull_config: 1
hostname: e2e-worker-1
networks:
  - name: uplink
    match: {name: "en*"}
    dhcp: true
sysctl:
  net.bridge.bridge-nf-call-iptables: 1
kubernetes:
  server: https://10.0.2.2:6443
  ca_cert_file: %s
  bootstrap_token: abcdef.0123456789abcdef
  node_ip: 10.0.2.15
  node_labels:
    hull.dev/pool: e2e
  node_taints:
    - {key: hull.dev/e2e, value: "yes", effect: NoSchedule}
  kubelet_config: |
    apiVersion: kubelet.config.k8s.io/v1beta1
    kind: KubeletConfiguration
    cgroupDriver: systemd
""" % ca


def first_boot(b):
    st, out = b.sh("ctr plugins ls")
    cri = [ln for ln in out.splitlines() if re.search(r"\bio\.containerd\.grpc\.v1\s+cri\s", ln)]
    check(st == 0 and cri and cri[0].split()[-1] == "ok", "containerd's CRI plugin is loaded: %s" % cri)
    st, dump = b.sh("containerd config dump")
    check(st == 0 and re.search(r"SystemdCgroup = true", dump) is not None, "runc runs with the systemd cgroup driver")
    check('sandbox_image = "registry.k8s.io/pause:3.10"' in dump, "the sandbox image is the spec's")
    check('bin_dir = "/opt/cni/bin"' in dump, "containerd takes CNI plugins from /opt/cni/bin")

    check(b.sh("test -x /opt/cni/bin/bridge && test -x /opt/cni/bin/portmap")[0] == 0,
          "/opt/cni/bin is seeded with Debian's CNI plugins")
    st, out = b.sh("cp /bin/true /opt/cni/bin/e2e-plugin && echo '{\"cniVersion\":\"1.0.0\",\"name\":\"e2e\","
                   "\"plugins\":[]}' > /etc/cni/net.d/10-e2e.conflist && sync")
    check(st == 0, "a CNI installer can write /opt/cni/bin and /etc/cni/net.d: %s" % out)
    check(b.out("readlink -f /opt/cni/bin") == "/var/opt/cni/bin", "/opt/cni/bin lives on persist (/var)")
    check(b.sh("mkdir -p /usr/libexec/kubernetes/kubelet-plugins/volume/exec/e2e~driver")[0] == 0,
          "the kubelet's volume-plugin directory is writable")
    check(b.out("ls /etc/cni/net.d") == "10-e2e.conflist", "no CNI config ships with the image")

    for f in ("/etc/kubernetes/bootstrap-kubelet.conf", "/etc/kubernetes/pki/ca.crt",
              "/etc/kubernetes/kubelet-config.yaml"):
        check(b.sh("test -s %s" % f)[0] == 0, "join file %s is in place" % f)
    check("server: \"https://10.0.2.2:6443\"" in b.out("cat /etc/kubernetes/bootstrap-kubelet.conf"),
          "the bootstrap kubeconfig points at the API server")
    st, out = b.sh("cat /etc/kubernetes/kubelet-config.yaml")
    try:
        kc = json.loads(out)
    except ValueError:
        kc = {}
    check(kc.get("cgroupDriver") == "systemd" and kc.get("volumePluginDir") == "/var/lib/kubelet/volumeplugins" and
          kc.get("resolvConf") == "/run/systemd/resolve/resolv.conf" and kc.get("healthzPort") == 10248,
          "the kubelet config matches the image: systemd cgroups, writable volume plugins, resolved's file, healthz")
    check(kc.get("registerWithTaints") == [{"effect": "NoSchedule", "key": "hull.dev/e2e", "value": "yes"}],
          "the node registers with its taint: %s" % kc.get("registerWithTaints"))
    st, out = b.sh(". /etc/default/kubelet && printf '%s\\n' $KUBELET_EXTRA_ARGS")
    check(st == 0 and out.split() == ["--node-ip=10.0.2.15", "--node-labels=hull.dev/pool=e2e"],
          "/etc/default/kubelet gives the kubelet its node IP and labels: %s" % out.split())

    state = b.out("systemctl is-enabled kubelet.service; systemctl is-active kubelet.service; "
                  "systemctl show -P ConditionResult kubelet.service").split()
    check(state == ["enabled", "inactive", "no"],
          "kubelet.service is enabled, and inert without a kubelet (condition not met, not failed): %s" % state)
    after = b.out("systemctl show -P After kubelet.service").split()
    check("containerd.service" in after and "hull-provision.service" in after and "network-online.target" in after,
          "kubelet.service is ordered after containerd, hull-provision and network-online")
    st, out = b.sh("systemd-analyze verify kubelet.service 2>&1")
    problems = [ln for ln in out.splitlines() if ln.strip() and "/usr/bin/kubelet" not in ln]
    check(not problems, "systemd-analyze verify kubelet.service: nothing but the missing kubelet binary: %s" % out)

    resolv = b.out("readlink /etc/resolv.conf")
    check(resolv.endswith("/run/systemd/resolve/resolv.conf"), "/etc/resolv.conf is resolved's upstream file: %s" % resolv)
    st, out = b.sh("for i in $(seq 60); do grep -q '^nameserver 10.0.2.3' /etc/resolv.conf && break; sleep 1; done; "
                   "cat /etc/resolv.conf")
    check("nameserver 10.0.2.3" in out and "127.0.0.53" not in out,
          "/etc/resolv.conf holds the DHCP server's resolver (10.0.2.3), not the stub: %s" % out.replace("\n", " | "))
    check(b.out("systemctl is-active systemd-timesyncd.service") == "active", "time sync runs")

    check(b.sh("grep -q '^br_netfilter ' /proc/modules")[0] == 0, "br_netfilter is loaded")
    check(b.out("cat /proc/sys/net/bridge/bridge-nf-call-iptables") == "1",
          "the provisioned net.bridge.bridge-nf-call-iptables is applied")
    check(b.out("cat /proc/sys/net/ipv4/ip_forward") == "1", "IPv4 forwarding is on")
    check(b.out("hostname") == "e2e-worker-1", "the host name is the configured one")

    enabled = set(b.out("systemctl list-unit-files --state=enabled --no-legend | awk '{print $1}'").split())
    extra = sorted(enabled - EXPECTED_ENABLED)
    print("enabled units: %s" % " ".join(sorted(enabled)), flush=True)
    check(not extra, "only the expected units are enabled (unexpected: %s)" % extra)
    on = [u for u in NEVER_ENABLED if b.out("systemctl is-enabled %s 2>/dev/null" % u) == "enabled"]
    check(not on, "none of %s is enabled: %s" % (", ".join(NEVER_ENABLED), on))
    check(b.out("systemctl is-enabled apt-daily.timer 2>&1") in ("masked", "masked-runtime") or
          b.sh("test -e /usr/lib/systemd/system/apt-daily.timer")[0] != 0,
          "the spec's units.mask is applied (apt-daily.timer)")

    check(b.vm.saw("hull-images: imported hello.oci.tar"), "the console says the archive was imported")
    st, out = b.sh("systemctl is-active hull-images.service; ctr -n k8s.io images ls -q")
    check(st == 0 and IMAGE_REF in out.split(), "the preloaded image is listed by ctr -n k8s.io images ls: %s" % out)
    check(NODE_REF in out.split(), "hull-node's own image is preloaded too: %s" % NODE_REF)
    st, out = b.sh("ctr -n k8s.io run --rm %s e2e-node /usr/bin/hull-node --help" % NODE_REF)
    check("hull-node" in out, "hull-node's image runs (its libraries are in the image): %s" % out[-200:])
    st, out = b.sh("ctr -n k8s.io run --rm %s e2e-hello /usr/bin/hello" % IMAGE_REF)
    check(st == 0 and "hello from a preloaded image" in out, "the preloaded image runs: %s" % out[-200:])

    st, out = b.sh("/usr/lib/hull/health.d/60-kubelet")
    check(st == 0, "the kubelet health check passes on a node without a kubelet: %s" % out)
    st, out = b.sh("hullctl status")
    check(st == 0 and "healthy" in out, "the agent reports the node healthy")


def second_boot(b):
    check(b.sh("test -x /opt/cni/bin/e2e-plugin")[0] == 0, "after a reboot: the plugin written to /opt/cni/bin is there")
    check(b.sh("test -s /etc/cni/net.d/10-e2e.conflist")[0] == 0, "after a reboot: /etc/cni/net.d keeps its config")
    check(b.sh("test -x /opt/cni/bin/bridge")[0] == 0, "after a reboot: Debian's plugins are still there")
    st, out = b.sh("journalctl -b -u hull-images.service --no-pager -o cat")
    check(st == 0 and "hull-images: imported" not in out and "cannot import" not in out,
          "after a reboot: the archive is not imported again: %s" % out[-300:])
    st, out = b.sh("cat /var/lib/hull/images/*")
    check(st == 0 and sorted(out.split()) == ["hello.oci.tar", "hull-node.oci.tar"],
          "the imports are recorded on persist: %s" % out.split())
    st, out = b.sh("ctr -n k8s.io images ls -q")
    check(IMAGE_REF in out.split() and NODE_REF in out.split(), "after a reboot: the images are still in containerd")


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 77
    hull_build, src, work = sys.argv[1], sys.argv[2], sys.argv[3]
    hull_node = sys.argv[sys.argv.index("--hull-node") + 1]
    os.makedirs(work, exist_ok=True)
    archives = [hello_archive(src, work), hull_node_archive(src, work, hull_node)]
    spec_path = os.path.join(work, "hull-e2e-k8s.yaml")
    with open(spec_path, "w") as f:
        f.write(spec(src, work, archives))
    built = e2etest.build_image(hull_build, src, work, spec_path)
    if not built:
        return 1
    out, _key, _pub = built
    image = os.path.join(out, "hull-e2e-k8s-1.0.0.img")
    log = e2etest.fresh_console_log(work)

    cfg = make_config(hull_build, work, "worker1", config_yaml(cluster_ca(work)))
    if not cfg:
        return 1
    disk = copy_image(image, os.path.join(work, "worker1.img"))
    b = Boot(disk, log, fw_cfg=[("opt/dev.hull/config", cfg)], net=True)
    try:
        b.ready()
        first_boot(b)
        b.poweroff()
    finally:
        b.vm.stop()

    b = Boot(disk, log, fw_cfg=[("opt/dev.hull/config", cfg)], net=True)
    try:
        b.ready()
        second_boot(b)
        b.poweroff()
    finally:
        b.vm.stop()
    os.unlink(disk)

    print("%d failure(s)" % e2etest.failures)
    return 1 if e2etest.failures else 0


if __name__ == "__main__":
    sys.exit(main())
