#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""End-to-end test of hull-agent in QEMU (TCG, OVMF):

  1. boot v1 (slot a);
  2. bad bundles from a second virtual disk (refused, the boot
     configuration unchanged); then v2 as a delta from a registry on the
     host (hull-build push to Debian's docker-registry, TLS and htpasswd;
     oci://...@sha256:...): a power cut in the middle, a SIGKILLed agent
     in the middle, the registry down when the last attempt starts; each
     next stage resumes from the checkpoint instead of downloading again;
  3. activate, reboot into v2, watch the agent mark it good by itself;
  4. roll back to v1;
  5. stage a deliberately broken v3 (a health check that always fails),
     activate it and, without any further command, watch the node try it
     twice and fall back to v1 on its own.

Each step is checked through the agent's own status (hullctl --json status
over a test-only command channel), plus an /etc change that must survive
every upgrade and rollback.

usage: test-agent.py HULL_BUILD SOURCE_ROOT WORK_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2etest  # noqa: E402
from e2etest import check  # noqa: E402
from hullvm import VM  # noqa: E402
from registry import Registry  # noqa: E402

BROKEN_FILES = """  - source: files/50-e2e-broken
    path: /usr/lib/hull/health.d/50-e2e-broken
    mode: "0755"
"""


def build(hull_build, src, work, version, broken=False):
    """Build version from the template in a private copy of tests/e2e/agent."""
    spec_dir = os.path.join(work, "spec-" + version)
    if os.path.exists(spec_dir):
        shutil.rmtree(spec_dir)
    shutil.copytree(os.path.join(src, "tests/e2e/agent"), spec_dir)
    with open(os.path.join(spec_dir, "hull-e2e-agent.yaml.in")) as f:
        text = f.read().replace("@VERSION@", version).replace("@EXTRA_FILES@\n", BROKEN_FILES if broken else "")
    spec = os.path.join(spec_dir, "hull-e2e-agent.yaml")
    with open(spec, "w") as f:
        f.write(text)
    key, pub = os.path.join(work, "test.key"), os.path.join(work, "test.pub")
    if not os.path.exists(key):
        subprocess.run([hull_build, "keygen", key, pub], check=True, capture_output=True)
    out = os.path.join(work, "out")
    r = subprocess.run([hull_build, "build", spec, "--key", key, "-o", out])
    if not check(r.returncode == 0, "hull-build builds version %s%s" % (version, " (broken)" if broken else "")):
        return None
    return os.path.join(out, "hull-e2e-agent-%s" % version)


def bundle_disk(work, bundles):
    """An ext4 disk image holding the bundles (the guest mounts it)."""
    d = os.path.join(work, "bundles")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    size = 64 << 20
    for name, path in bundles.items():
        os.link(path, os.path.join(d, name)) if os.stat(path).st_dev == os.stat(d).st_dev else shutil.copy(path, d + "/" + name)
        size += os.path.getsize(path)
    img = os.path.join(work, "bundles.img")
    if os.path.exists(img):
        os.unlink(img)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "bundles", "-d", d, img, str(size // 1024 + 16384) + "k"],
                   check=True)
    return img


class Node:
    """One boot of the VM, driven over the command channel."""

    def __init__(self, disk, log, extra):
        self.disk, self.log, self.extra = disk, log, extra
        self.vm = None

    def boot(self, timeout=600):
        if self.vm:
            self.vm.stop()
        self.vm = VM(self.disk, self.log, no_reboot=True, channel=True, extra_disks=self.extra, net=True)
        self.vm.start()
        line = self.vm.expect("hull: ready", timeout)
        print("booted after %.1f s: %s" % (self.vm.elapsed(), line), flush=True)
        if not self.vm.saw("HULL-E2E-SHELL ready"):  # it may come before or after "hull: ready"
            self.vm.expect("HULL-E2E-SHELL ready", 120)
        self.vm.connect()
        rc, _ = self.vm.run("mkdir -p /run/bundles && mount -o ro /dev/vdb /run/bundles")
        check(rc == 0, "the bundle disk mounts in the guest")

    def sh(self, cmd, timeout=900):
        rc, out = self.vm.run(cmd, timeout)
        return rc, out

    def ctl(self, args, timeout=900):
        rc, out = self.sh("hullctl --json " + args, timeout)
        try:
            return rc, json.loads(out[out.index("{"):]) if "{" in out else None, out
        except ValueError:
            return rc, None, out

    def status(self):
        rc, st, out = self.ctl("status")
        if st is None:
            raise RuntimeError("hullctl status gave no JSON: %s" % out.strip())
        return st

    def wait_status(self, pred, what, timeout=300):
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if pred(st):
                return st
            if time.monotonic() > deadline:
                check(False, "%s (last status: %s)" % (what, json.dumps(st)))
                return st
            time.sleep(3)

    def wait_poweroff_or_reboot(self, timeout=300):
        # 300 s: the agent asks systemd again 120 s after a reboot that did
        # not happen, and a shutdown under TCG on a loaded host takes a while.
        try:
            return self.vm.wait_exit(max(timeout, 300))
        except TimeoutError as e:
            # CI keeps only the test's output: say why the node is still up.
            try:
                _, out = self.vm.run("journalctl -b --no-pager -n 40 -u hull-agent; systemctl list-jobs --no-pager",
                                     60)
            except (TimeoutError, RuntimeError, OSError) as e2:
                out = "(cannot ask the guest: %s)" % e2
            raise TimeoutError("%s\nthe agent's journal and systemd's jobs:\n%s" % (e, out)) from None


def slot(st, s):
    return st["slots"][s]


def describe(st):
    return "booted %s %s; a=%s/%s b=%s/%s; health %s; op %s" % (
        st["boot"]["slot"], st["os"]["version"], slot(st, "a")["state"], slot(st, "a")["version"],
        slot(st, "b")["state"], slot(st, "b")["version"], st["health"]["state"],
        (st["operation"] or {}).get("type"))


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 77
    hull_build, src, work = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(work, exist_ok=True)
    v1 = build(hull_build, src, work, "1.0.0")
    v2 = build(hull_build, src, work, "2.0.0") if v1 else None
    v3 = build(hull_build, src, work, "3.0.0", broken=True) if v2 else None
    if not v3:
        return 1
    other_key, other_pub = os.path.join(work, "other.key"), os.path.join(work, "other.pub")
    if not os.path.exists(other_key):
        subprocess.run([hull_build, "keygen", other_key, other_pub], check=True, capture_output=True)
    foreign = os.path.join(work, "foreign.hullb")
    subprocess.run([hull_build, "sign", "--key", other_key, "--trust", os.path.join(work, "test.pub"),
                    v2 + ".hullb", foreign], check=True, capture_output=True)
    truncated = os.path.join(work, "truncated.hullb")
    with open(v2 + ".hullb", "rb") as f, open(truncated, "wb") as g:
        g.write(f.read(8 << 20))
    disk = os.path.join(work, "node.img")
    shutil.copy(v1 + ".img", disk)
    reg = Registry(work)
    reg.start()
    digest = reg.push(hull_build, v2 + ".hullb", "hull/os:2.0.0")
    check(digest.startswith("sha256:"), "hull-build push puts v2 into the registry: %s" % digest)
    v2_oci = "oci://%s/hull/os@%s" % (reg.guest_host, digest)
    extra = [bundle_disk(work, {"v2.hullb": v2 + ".hullb", "v3.hullb": v3 + ".hullb",
                                "foreign.hullb": foreign, "truncated.hullb": truncated,
                                "registry-ca.pem": reg.ca, "registry-auth.json": reg.auth})]
    log = e2etest.fresh_console_log(work)
    node = Node(disk, log, extra)
    t0 = time.monotonic()
    try:
        # 1. v1
        node.boot()
        st = node.wait_status(lambda s: s["health"]["state"] == "healthy", "v1 is healthy")
        print("  " + describe(st))
        check(st["boot"]["slot"] == "a" and st["os"]["version"] == "1.0.0", "v1 boots from slot a")
        check(slot(st, "a")["state"] == "good" and slot(st, "b")["state"] == "empty", "slot a good, slot b empty")
        rc, _ = node.sh("echo 'server time.example.com iburst' > /etc/hull-e2e-ntp.conf && sync")
        check(rc == 0, "an /etc change is written on v1")

        # Node config through hullctl (YAML), as an operator would.
        # (The command channel takes one line per command.)
        yaml_lines = ["generation: 1", "sysctl:", "  vm.swappiness: \"13\"", "kernel_args: [hull_e2e_karg=1]",
                      "files:", "  - path: /etc/hull-e2e/managed.conf", "    content: \"managed by hull\\n\"",
                      "debug:", "  enabled: true"]
        rc, out = node.sh("printf '%s\\n' " + " ".join("'%s'" % l for l in yaml_lines) +
                          " > /run/node.yaml && hullctl config apply /run/node.yaml")
        check(rc == 0, "hullctl config apply (YAML): %s" % out.strip())
        rc, out = node.sh("cat /proc/sys/vm/swappiness /etc/hull-e2e/managed.conf")
        check(out.split() == ["13", "managed", "by", "hull"], "sysctl and file applied at once: %r" % out)
        st = node.status()
        check(st["config"]["generation"] == 1 and st["reboot_required"], "config generation 1, reboot required "
              "for the kernel argument")
        rc, out = node.sh("hullctl config apply /run/node.yaml")
        check(rc == 0, "applying the same generation again is accepted (no change)")
        rc, out = node.sh("sed 's/13/14/' /run/node.yaml > /run/node2.yaml; hullctl config apply /run/node2.yaml")
        check(rc != 0 and "stale_generation" in out, "same generation, other content: refused: %s" % out.strip())

        # The admin container, with a toolbox made of a few of the image's
        # programs (a real one would be a full root file system).
        rc, out = node.sh("mkdir -p /persist/hull/toolbox && cd /persist/hull/toolbox && "
                          "for b in /bin/sh /bin/cat /bin/ls; do for f in $b $(ldd $b | grep -o '/[^ ]*'); do "
                          "mkdir -p .$(dirname $f) && cp -L $f .$f; done; done")
        check(rc == 0, "a toolbox is put on persist")
        rc, out = node.sh("hullctl debug -- sh -c 'cat /host/etc/hull-e2e/managed.conf; ls /host/persist/hull/agent'")
        check(rc == 0 and "managed by hull" in out and "audit.log" in out,
              "hullctl debug runs a command in the admin container, the host under /host: %r" % out)
        rc, out = node.sh("printf 'echo via-$((40+2))\\nexit 3\\n' | hullctl debug")
        check(rc == 3 and "via-42" in out, "hullctl debug: an interactive shell on a pty (exit 3): %r" % out)

        # 2. refusals, then v2
        for name, code in (("foreign.hullb", "unknown_key"), ("truncated.hullb", "truncated")):
            rc, op, out = node.ctl("stage /run/bundles/" + name)
            err = (op or {}).get("error") or {}
            check(rc != 0 and err.get("code") == code, "staging %s fails with %s: %s" % (name, code, err.get("message")))
        st = node.status()
        check(st["boot"]["slot"] == "a" and slot(st, "a")["state"] == "good" and slot(st, "a")["priority"] == 10,
              "after the refusals slot a is still good and preferred")
        # v2 from the registry, as a delta: the node's credentials file is
        # node-local (/etc/hull/registry-auth.json), never in a request.
        # Synced: the power cut below comes seconds later, and ext4 would
        # keep an empty file of a copy still in the page cache.
        rc, out = node.sh("mkdir -p /etc/hull && cp /run/bundles/registry-auth.json /etc/hull/registry-auth.json && sync")
        check(rc == 0, "the registry credentials are put on the node")
        stage_oci = "stage --no-wait --ca-file /run/bundles/registry-ca.pem " + v2_oci

        def checkpoint():
            rc, out = node.sh("cat /persist/hull/agent/stage-checkpoint.json 2>/dev/null || echo '{}'")
            try:
                return json.loads(out[out.index("{"):]).get("verified", 0)
            except ValueError:
                return 0

        def wait_checkpoint(above, what, timeout=240):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                v = checkpoint()
                if v > above:
                    return v
                op = node.status().get("operation") or {}
                if op.get("state") != "running":
                    check(False, "%s: the stage ended first: %s" % (what, json.dumps(op)))
                    return v
                time.sleep(0.5)
            check(False, "%s: no checkpoint beyond %d bytes" % (what, above))
            return 0

        # Power cut in the middle of staging: the node boots the old slot
        # with its data, and the half-written slot is never booted.
        rc, op, out = node.ctl(stage_oci)
        check(rc == 0 and op and op.get("state") == "running", "a stage from the registry starts (--no-wait)")
        cut_at = wait_checkpoint(0, "power cut")
        check(cut_at > 0, "the stage checkpointed %d MiB of slot b when the power goes" % (cut_at >> 20))
        node.vm.proc.kill()  # power cut
        node.vm.proc.wait()
        node.boot()
        st = node.wait_status(lambda s: s["health"]["state"] == "healthy", "v1 is healthy after the power cut")
        print("  " + describe(st))
        check(st["boot"]["slot"] == "a" and st["os"]["version"] == "1.0.0" and slot(st, "a")["state"] == "good",
              "after the power cut the node runs v1 from slot a")
        check(slot(st, "b")["state"] == "bad", "the half-written slot b is marked bad, never booted")
        check((st["operation"] or {}).get("error", {}).get("code") == "interrupted",
              "the cut stage is reported as interrupted")
        # It may have moved on between the look and the cut, never back.
        check(checkpoint() >= cut_at, "the checkpoint survived the power cut")
        rc, out = node.sh("cat /etc/hull-e2e-ntp.conf")
        check("time.example.com" in out, "the /etc change survived the power cut")

        # The agent is SIGKILLed in the middle of the next attempt; systemd
        # starts it again and it reports the stage as interrupted.
        rc, op, out = node.ctl(stage_oci)
        check(rc == 0 and op and op.get("state") == "running", "the stage starts again")
        killed_at = wait_checkpoint(cut_at, "agent kill")
        rc, out = node.sh("systemctl kill -s KILL hull-agent.service")
        check(rc == 0, "hull-agent is SIGKILLed with %d MiB checkpointed" % (killed_at >> 20))
        # systemd starts it again after 2 s (Restart=on-failure); until
        # then hullctl gets no answer.
        deadline, st = time.monotonic() + 120, {}
        while time.monotonic() < deadline:
            time.sleep(2)
            rc, st, out = node.ctl("status")
            if st and (st.get("operation") or {}).get("state") == "failed":
                break
        st = st or {}
        check(((st.get("operation") or {}).get("error") or {}).get("code") == "interrupted",
              "the restarted agent reports the killed stage as interrupted")

        # The last attempt starts while the registry is down; it comes back
        # within the download's retries. The stage resumes from the
        # checkpoint and fetches only what this node does not have.
        reg.stop()
        t_stage = time.monotonic()
        rc, op, out = node.ctl(stage_oci + " --version 2.0.0")
        time.sleep(4)
        reg.start()
        st = node.wait_status(lambda s: (s.get("operation") or {}).get("state") != "running",
                              "the resumed stage ends", timeout=600)
        op = st.get("operation") or {}
        tr = op.get("transfer") or {}
        print("BENCH stage-v2-delta-in-guest %.1f s: fetched %d of %d bytes, reused %d, resumed %d (TCG)" % (
              time.monotonic() - t_stage, tr.get("fetched", -1), tr.get("bundle", -1), tr.get("reused", -1),
              tr.get("resumed", -1)), flush=True)
        check(op.get("state") == "succeeded", "v2 stages from the registry: %s" % op.get("error"))
        check(tr.get("resumed", 0) >= killed_at - (64 << 20),
              "the stage resumed: %d MiB re-verified in slot b, not downloaded" % (tr.get("resumed", 0) >> 20))
        check(0 < tr.get("fetched", 0) < tr.get("bundle", 0) // 10 and not tr.get("full"),
              "a delta: %d KiB fetched of a %d MiB bundle" % (tr.get("fetched", 0) >> 10, tr.get("bundle", 0) >> 20))
        check(checkpoint() == 0, "the checkpoint is gone once the stage succeeded")
        rc, out = node.sh("hullctl status | grep -E 'download|notice'")
        print("  " + out.strip().replace("\n", "\n  "))
        check("download:" in out, "hullctl status says what the stage downloaded")
        st = node.status()
        print("  " + describe(st))
        check(slot(st, "b")["state"] == "staged" and slot(st, "b")["version"] == "2.0.0", "slot b holds v2, staged")

        # 3. activate and reboot into v2
        t_activate = time.monotonic()
        rc, res, out = node.ctl("activate")
        check(rc == 0, "activate v2 (the agent reboots the node)")
        node.wait_poweroff_or_reboot(180)
        node.boot()
        st = node.wait_status(lambda s: slot(s, "b")["state"] == "good", "v2 is marked good by the agent")
        print("  " + describe(st))
        print("BENCH activate-to-mark-good %.1f s (TCG, includes the reboot)" % (time.monotonic() - t_activate),
              flush=True)
        check(st["boot"]["slot"] == "b" and st["os"]["version"] == "2.0.0", "v2 runs from slot b")
        check(st["health"]["state"] == "healthy" and st["operation"]["type"] == "mark-good",
              "the agent ran the health checks and marked v2 good by itself")
        rc, out = node.sh("cat /proc/cmdline; cat /proc/sys/vm/swappiness")
        check("hull_e2e_karg=1" in out and out.split()[-1] == "13",
              "after the reboot the config's kernel argument is on the command line and the sysctl is set")
        rc, out = node.sh("cat /etc/hull-e2e-ntp.conf")
        check("time.example.com" in out, "the /etc change survived the upgrade")

        # 4. rollback to v1
        rc, res, out = node.ctl("rollback")
        check(rc == 0, "rollback to v1")
        node.wait_poweroff_or_reboot(180)
        node.boot()
        st = node.status()
        print("  " + describe(st))
        check(st["boot"]["slot"] == "a" and st["os"]["version"] == "1.0.0", "rollback: v1 runs from slot a again")
        check(slot(st, "b")["state"] == "good", "slot b (v2) stays good as a fallback")
        rc, out = node.sh("cat /etc/hull-e2e-ntp.conf")
        check("time.example.com" in out, "the /etc change survived the rollback")

        # 5. broken v3: no human action after activate
        rc, op, out = node.ctl("stage /run/bundles/v3.hullb")
        check(rc == 0 and op and op.get("state") == "succeeded", "v3 (broken) stages")
        rc, res, out = node.ctl("activate --tries 2")
        check(rc == 0, "activate v3 with 2 tries")
        node.wait_poweroff_or_reboot(180)
        boots = 0
        while True:
            node.vm.stop()
            node.vm = VM(disk, log, no_reboot=True, channel=True, extra_disks=extra)
            node.vm.start()
            line = node.vm.expect("hull: ready", 600)
            print("unattended boot: %s" % line, flush=True)
            if "version=1.0.0" in line:
                break
            boots += 1
            check("version=3.0.0" in line and "slot=b" in line, "unattended boot %d runs v3 from slot b" % boots)
            node.vm.wait_exit(400)  # the agent gives up on it and reboots
            if boots > 3:
                break
        check(boots == 2, "v3 was tried exactly twice before the node fell back (%d)" % boots)
        if not node.vm.saw("HULL-E2E-SHELL ready"):
            node.vm.expect("HULL-E2E-SHELL ready", 120)
        node.vm.connect()
        st = node.status()
        print("  " + describe(st))
        check(st["boot"]["slot"] == "a" and st["os"]["version"] == "1.0.0", "the node fell back to v1 by itself")
        check(slot(st, "b")["state"] == "bad" and slot(st, "b")["version"] == "3.0.0", "slot b (v3) is marked bad")
        op = st["operation"] or {}
        check(op.get("type") == "fallback" and op.get("state") == "failed",
              "the fallback is reported as the last operation: %s" % (op.get("error") or {}).get("message"))
        rc, out = node.sh("cat /etc/hull-e2e-ntp.conf")
        check("time.example.com" in out, "the /etc change survived the failed upgrade")
        rc, out = node.sh("hullctl audit --limit 100")
        check(out.count("/v1/stage") >= 4 and "/v1/rollback" in out and "/v1/activate" in out,
              "the audit log on persist recorded every call")
        print("agent e2e took %.0f s" % (time.monotonic() - t0), flush=True)
    except (TimeoutError, RuntimeError) as e:
        check(False, "%s (console log: %s)" % (e, log))
    finally:
        reg.stop()
        if node.vm:
            node.vm.stop()
    return 1 if e2etest.failures else 0


if __name__ == "__main__":
    sys.exit(main())
