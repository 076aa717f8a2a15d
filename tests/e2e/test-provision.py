#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""End-to-end: first-boot provisioning in QEMU (TCG, OVMF).

1. A human-written YAML config goes through `hull-build config`; the JSON
   lands on a second virtual disk labelled HULL-CONFIG; a third, empty disk
   is the data disk. First boot must apply the hostname, a user with SSH
   keys, a networkd file, a sysctl, a file under /etc and the data disk
   (partitioned, ext4, mounted at the configured path), and record it on
   persist.
2. Power cycle with a DIFFERENT config on the config disk: nothing is
   applied twice (record unchanged, hostname unchanged, the data disk's
   file system and the file written to it still there), and the console
   says the new config was ignored.
3. A fresh copy of the image with an impossible config (a data disk that
   already holds a file system, without wipe): first boot stops with a
   clear console message; the data disk and persist are unchanged.
4. A fresh copy of the image with the config in a QEMU fw_cfg entry and no
   config disk: applied as well.

usage: test-provision.py HULL_BUILD SOURCE_ROOT WORK_DIR
"""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2etest  # noqa: E402
from e2etest import check  # noqa: E402
from e2etest import Boot, copy_image, make_config  # noqa: E402


def ssh_key(comment):
    """A well-formed ssh-ed25519 public key line (random key material)."""
    def s(b):
        return len(b).to_bytes(4, "big") + b
    blob = s(b"ssh-ed25519") + s(os.urandom(32))
    return "ssh-ed25519 %s %s" % (base64.b64encode(blob).decode(), comment)


def config_yaml(hostname, key, disk_device="/dev/vdc", ssh=False):
    return """# provisioning config for the e2e test (the human format: docs/PROVISION.md)
hull_config: 1
hostname: %s
users:
  - name: ops
    gecos: Platform on-call
    ssh_authorized_keys:
      - %s
networks:
  - name: uplink
    match:
      name: "en*"
    dhcp: true
sysctl:
  vm.max_map_count: 262144
files:
  - path: /etc/hull-e2e/provisioned
    mode: "0644"
    content: |
      from the provisioning config
disks:
  - device: %s
    filesystem: ext4
    label: e2edata
    mount: /var/lib/data
""" % (hostname, key, disk_device) + ("ssh:\n  enabled: true\n" if ssh else "")


def config_disk(work, name, config_json):
    """A small FAT disk labelled HULL-CONFIG with hull-config.json at its root."""
    img = os.path.join(work, name + ".img")
    if os.path.exists(img):
        os.unlink(img)
    subprocess.run(["mkfs.vfat", "-n", "HULL-CONFIG", "-C", img, "8192"], check=True, capture_output=True)
    subprocess.run(["mcopy", "-i", img, config_json, "::/hull-config.json"], check=True)
    return img


def blank_disk(path, size=256 << 20):
    if os.path.exists(path):
        os.unlink(path)
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def persist_listing(disk):
    """Every path and file digest on the persist partition of a disk image
    (read-only loop mount), to compare before and after a boot."""
    loop = subprocess.run(["losetup", "--find", "--show", "--partscan", "--read-only", disk],
                          check=True, capture_output=True, text=True).stdout.strip()
    mnt = tempfile.mkdtemp(prefix="hull-persist-")
    try:
        part = loop + "p4"
        if shutil.which("udevadm"):
            subprocess.run(["udevadm", "settle"], capture_output=True)
        if not os.path.exists(part):
            subprocess.run(["partx", "-a", loop], capture_output=True)
        subprocess.run(["mount", "-o", "ro,noload", part, mnt], check=True)
        try:
            out = {}
            for root, dirs, files in os.walk(mnt):
                for d in dirs:
                    out[os.path.relpath(os.path.join(root, d), mnt)] = "dir"
                for f in files:
                    p = os.path.join(root, f)
                    out[os.path.relpath(p, mnt)] = sha256_file(p) if os.path.isfile(p) and not os.path.islink(p) else "other"
            return out
        finally:
            subprocess.run(["umount", mnt])
    finally:
        os.rmdir(mnt)
        subprocess.run(["losetup", "-d", loop])


def check_applied(b, hostname, key):
    check(b.out("hostname") == hostname, "the hostname is %s" % hostname)
    check(b.out("cat /etc/hostname") == hostname, "/etc/hostname says %s" % hostname)
    st, pw = b.sh("getent passwd ops")
    check(st == 0 and ":/home/ops:" in pw and "Platform on-call" in pw, "user ops exists with its home: %s" % pw)
    st, keys = b.sh("cat /home/ops/.ssh/authorized_keys")
    check(st == 0 and key in keys, "ops's authorized_keys holds the configured key")
    check(b.out("stat -c '%U %a' /home/ops/.ssh/authorized_keys") == "ops 600", "authorized_keys is ops's, mode 600")
    check(st == 0 and ('restrict,pty,command="/usr/bin/hullctl debug" ' + key) in keys,
          "the key opens the admin container only (restrict, forced hullctl debug)")
    check("hull-admin" in b.out("id -nG ops").split(), "ops is in hull-admin")
    # The forced command's path: as ops, hullctl reaches hull-agent through
    # the socket group; the admin container itself is the node config's call.
    as_ops = "setpriv --reuid=ops --regid=ops --init-groups "
    st, out = b.sh(as_ops + "hullctl status")
    check(st == 0 and out != "", "as ops, hullctl status talks to hull-agent (socket group hull-admin)")
    st, out = b.sh(as_ops + "hullctl debug -- id")
    check(st != 0 and "admin container is disabled" in out,
          "as ops, hullctl debug reaches the agent, which answers that the admin container is off: %s" % out.strip())
    st, out = b.sh("setpriv --reuid=nobody --regid=nogroup --clear-groups hullctl status")
    check(st != 0, "a user outside hull-admin cannot use the agent's socket")
    st, net = b.sh("cat /etc/systemd/network/50-hull-uplink.network")
    check(st == 0 and "Name=en*" in net and "DHCP=yes" in net, "the networkd file matches en* with DHCP")
    check(b.out("systemctl is-enabled systemd-networkd.service") == "enabled", "systemd-networkd is enabled")
    check(b.out("cat /proc/sys/vm/max_map_count") == "262144", "vm.max_map_count is 262144")
    check(b.out("cat /etc/hull-e2e/provisioned") == "from the provisioning config", "the file under /etc is in place")
    st, mnt = b.sh("findmnt -n -o SOURCE,FSTYPE,LABEL /var/lib/data")
    check(st == 0 and "/dev/vdc1" in mnt and "ext4" in mnt and "e2edata" in mnt,
          "the data disk is partitioned, ext4 labelled e2edata, mounted at /var/lib/data: %s" % mnt)
    state = b.out("systemctl is-enabled ssh.service 2>&1; systemctl is-active ssh.service 2>&1").split()
    check(state == ["disabled", "inactive"], "sshd is in the image but stays off without ssh.enabled: %s" % state)


def ssh(idkey, port, *args, stdin=None, timeout=120):
    cmd = ["ssh", "-i", idkey, "-p", str(port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
           "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR"] + list(args)
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)


def check_ssh(b, idkey, port):
    """ssh.enabled: sshd runs with this node's own host keys, and a key from
    the config opens the admin container, never a host shell."""
    deadline = time.monotonic() + 120
    while b.out("systemctl is-active ssh.service") != "active" and time.monotonic() < deadline:
        time.sleep(2)
    check(b.out("systemctl is-active ssh.service") == "active", "sshd runs (ssh.enabled)")
    st, keys = b.sh("ls /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub")
    check(st == 0, "the node made its own host keys before sshd started")
    # The admin container, switched on by the node config, with a toolbox
    # made of a few of the image's programs (as e2e-agent does).
    st, out = b.sh("printf '%s\\n' 'generation: 1' 'debug:' '  enabled: true' > /run/node.yaml && "
                   "hullctl config apply /run/node.yaml && mkdir -p /persist/hull/toolbox && cd /persist/hull/toolbox && "
                   "for x in /bin/sh /bin/cat /bin/ls /usr/bin/id; do for f in $x $(ldd $x | grep -o '/[^ ]*'); do "
                   "mkdir -p .$(dirname $f) && cp -L $f .$f; done; done")
    check(st == 0, "the node config enables the admin container; a toolbox is on persist: %s" % out[-300:])
    b.sh("echo host-only > /root/host-marker")
    # -tt: a terminal, as a person at a keyboard has one
    r = ssh(idkey, port, "-tt", "ops@127.0.0.1",
            stdin="echo in-$((40+2)); cat /host/etc/hostname; ls /root/host-marker; exit 7\n")
    out = r.stdout.replace("\r", "")
    check(r.returncode == 7 and "in-42" in out and "e2e-fwcfg" in out,
          "ssh ops@node: a shell in the admin container, the host under /host, exit status passed on (%d): %r" %
          (r.returncode, out[-400:] + r.stderr[-200:]))
    check("No such file" in out, "the SSH shell is not the host's (no /root/host-marker in the container)")
    r = ssh(idkey, port, "ops@127.0.0.1", "cat /etc/shadow", stdin="")
    check("root:" not in r.stdout, "a command asked for over SSH does not run on the host (forced hullctl debug)")
    # A remote forward is asked for at session start, so the refusal shows
    # at once (a local one would only fail on its first connection).
    r = ssh(idkey, port, "-N", "-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:22", "ops@127.0.0.1",
            timeout=60)
    check(r.returncode != 0, "port forwarding is refused (%d): %s" % (r.returncode, r.stderr.strip()[-200:]))
    st, audit = b.sh("hullctl --json audit --limit 50")
    uid = b.out("id -u ops")
    try:
        records = json.loads(audit)
    except ValueError:
        records = []
    records = records if isinstance(records, list) else records.get("records", [])
    check(any(a.get("path") == "debug-session" and str(a.get("uid")) == uid for a in records),
          "the SSH session is in the agent's audit log with ops's uid %s" % uid)


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 77
    hull_build, src, work = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(work, exist_ok=True)
    built = e2etest.build_image(hull_build, src, work, "provision/hull-e2e-provision.yaml")
    if not built:
        return 1
    out, _key, _pub = built
    image = os.path.join(out, "hull-e2e-provision-1.0.0.img")
    log = e2etest.fresh_console_log(work)

    # --- 1. first boot with the config on a second disk
    key = ssh_key("ops@e2e")
    cfg1 = make_config(hull_build, work, "node1", config_yaml("e2e-node-1", key))
    if not cfg1:
        return 1
    with open(cfg1) as f:
        check(json.load(f).get("hull_config") == 1, "the machine config is JSON with hull_config 1")
    disk = copy_image(image, os.path.join(work, "node1.img"))
    cdisk = config_disk(work, "config1", cfg1)
    data = blank_disk(os.path.join(work, "data1.img"))
    b = Boot(disk, log, extra=[cdisk], rw=[data])
    try:
        b.ready()
        check(b.vm.saw("hull-provision"), "hull-provision reported on the console")
        check_applied(b, "e2e-node-1", key)
        check(b.out("systemctl show -p ConditionResult --value hull-provision-check.service") == "no"
              and not b.vm.saw("provisioned on"),
              "first boot: hull-provision-check.service is skipped (nothing to report yet)")
        st, rec = b.sh("cat /persist/hull/provision/applied.json")
        try:
            applied = json.loads(rec) if st == 0 else {}
        except ValueError:
            applied = {}
        with open(cfg1, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        check(st == 0 and digest in rec, "applied.json records the config's sha256")
        check("HULL-CONFIG" in rec or "config disk" in rec or "label" in json.dumps(applied),
              "applied.json names the config disk as the source: %s" % rec)
        check(b.out("stat -c %a /persist/hull/provision/applied.json") == "600", "applied.json is mode 600")
        check(b.sh("echo keep-me > /var/lib/data/precious && sync")[0] == 0, "a file is written to the data disk")
        uuid1 = b.out("findmnt -n -o UUID /var/lib/data")
        mtime1 = b.out("stat -c %Y /persist/hull/provision/applied.json")
        b.poweroff()
    finally:
        b.vm.stop()

    # --- 2. power cycle, with a different config offered: nothing applied twice
    cfg2 = make_config(hull_build, work, "node2", config_yaml("e2e-other-name", ssh_key("other@e2e")))
    if not cfg2:
        return 1
    cdisk2 = config_disk(work, "config2", cfg2)
    b = Boot(disk, log, extra=[cdisk2], rw=[data])
    try:
        b.ready()
        check(b.vm.saw("ignored"), "the console says the new config was ignored")
        check(b.vm.saw("provisioned on"), "second boot: hull-provision-check.service says when the node was provisioned")
        check(b.out("hostname") == "e2e-node-1", "second boot: the hostname is still e2e-node-1")
        check(b.out("stat -c %Y /persist/hull/provision/applied.json") == mtime1, "applied.json was not rewritten")
        check(b.out("cat /var/lib/data/precious") == "keep-me", "the file on the data disk survived the reboot")
        check(b.out("findmnt -n -o UUID /var/lib/data") == uuid1, "the data disk was not formatted again")
        check(b.sh("grep -c '^ops:' /etc/passwd")[1] == "1", "user ops exists once")
        check(b.out("cat /home/ops/.ssh/authorized_keys").count("ssh-ed25519") == 1, "the key is there once")
        b.poweroff()
    finally:
        b.vm.stop()

    # --- 3. an impossible config stops first boot and changes nothing
    disk3 = copy_image(image, os.path.join(work, "node3.img"))
    data3 = blank_disk(os.path.join(work, "data3.img"))
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "somebodys", data3], check=True)
    data3_sum = sha256_file(data3)
    cdisk3 = config_disk(work, "config3", cfg1)  # wants to format vdc, which holds a file system
    before = persist_listing(disk3)
    b = Boot(disk3, log, extra=[cdisk3], rw=[data3])
    try:
        line = b.vm.expect("first boot stopped", 600)
        print("console: %s" % line, flush=True)
        check("hull-provision" in line, "the console says hull-provision stopped first boot")
        check("wipe: true" in line or b.vm.saw("Set wipe: true"),
              "the console explains that the disk holds data and wipe is needed")
        try:
            b.vm.expect("hull: ready", 60)
            check(False, "the node does not come up after a failed first boot")
        except (TimeoutError, RuntimeError):
            check(True, "the node does not come up after a failed first boot")
    finally:
        b.vm.stop()
    check(sha256_file(data3) == data3_sum, "the data disk holding a file system is byte-for-byte unchanged")
    after = persist_listing(disk3)
    check("hull/provision/applied.json" not in after, "no applied.json after a failed first boot")
    upper = [p for p in after if p.startswith("etc/upper/") and p not in before]
    check(not any(p.endswith(("hostname", "provisioned", ".network")) for p in upper),
          "no config file landed in /etc: %s" % ", ".join(sorted(upper)[:8]))

    # --- 4. the config in a QEMU fw_cfg entry, no config disk; sshd on, and
    # an SSH login with a real key lands in the admin container.
    # Without a config disk the data disk is the second virtio disk.
    idkey = os.path.join(work, "id_ops")
    for p in (idkey, idkey + ".pub"):
        if os.path.exists(p):
            os.unlink(p)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops@e2e-host", "-f", idkey], check=True)
    with open(idkey + ".pub") as f:
        real_key = f.read().strip()
    cfg4 = make_config(hull_build, work, "node4", config_yaml("e2e-fwcfg", real_key, disk_device="/dev/vdb", ssh=True))
    if not cfg4:
        return 1
    disk4 = copy_image(image, os.path.join(work, "node4.img"))
    data4 = blank_disk(os.path.join(work, "data4.img"))
    ssh_port = e2etest.free_port()
    b = Boot(disk4, log, rw=[data4], fw_cfg=[("opt/dev.hull/config", cfg4)],
             net="hostfwd=tcp:127.0.0.1:%d-:22" % ssh_port)
    try:
        b.ready()
        check(b.out("hostname") == "e2e-fwcfg", "fw_cfg: the hostname is e2e-fwcfg")
        st, rec = b.sh("cat /persist/hull/provision/applied.json")
        check(st == 0 and "fw_cfg" in rec, "fw_cfg: applied.json names fw_cfg as the source")
        st, mnt = b.sh("findmnt -n -o SOURCE /var/lib/data")
        check(st == 0 and "/dev/vdb1" in mnt, "fw_cfg: the data disk is mounted: %s" % mnt)
        check_ssh(b, idkey, ssh_port)
        b.poweroff()
    finally:
        b.vm.stop()
    for p in (disk, disk3, disk4, data, data3, data4):
        if os.path.exists(p):
            os.unlink(p)

    print("%d failure(s)" % e2etest.failures)
    return 1 if e2etest.failures else 0


if __name__ == "__main__":
    sys.exit(main())
