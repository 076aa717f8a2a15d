# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the end-to-end tests share: PASS/FAIL reporting, parsing the guest's
key=value report lines, building a test image with hull-build, provisioning
configs, and one boot of a test image driven over its command channel."""
import os
import re
import socket
import subprocess
import time

from hullvm import VM

failures = 0


def check(cond, what):
    global failures
    print("%s: %s" % ("PASS" if cond else "FAIL", what), flush=True)
    if not cond:
        failures += 1
    return cond


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fields(line):
    return dict(re.findall(r"(\w+)=(\S+)", line))


def build_image(hull_build, src, work, spec):
    """Build tests/e2e/<spec> into work/out with a test key; returns
    (out_dir, key, pub) or None if the build failed (already reported)."""
    os.makedirs(work, exist_ok=True)
    key, pub = os.path.join(work, "test.key"), os.path.join(work, "test.pub")
    if not os.path.exists(key):
        subprocess.run([hull_build, "keygen", key, pub], check=True, capture_output=True)
    out = os.path.join(work, "out")
    r = subprocess.run([hull_build, "build", os.path.join(src, "tests/e2e", spec), "--key", key, "-o", out])
    if not check(r.returncode == 0, "hull-build builds %s" % spec):
        return None
    return out, key, pub


def fresh_console_log(work):
    path = os.path.join(work, "console.log")
    if os.path.exists(path):
        os.unlink(path)
    return path


READY_TIMEOUT = 600


def make_config(hull_build, work, name, yaml_text):
    """YAML -> machine JSON with hull-build config; returns the JSON path."""
    y = os.path.join(work, name + ".yaml")
    j = os.path.join(work, name + ".json")
    with open(y, "w") as f:
        f.write(yaml_text)
    if os.path.exists(j):
        os.unlink(j)
    r = subprocess.run([hull_build, "config", y, "-o", j], capture_output=True, text=True)
    if not check(r.returncode == 0 and os.path.exists(j), "hull-build config turns %s.yaml into JSON%s" %
                 (name, "" if r.returncode == 0 else ": " + r.stderr.strip())):
        return None
    return j


def copy_image(src, dst):
    if os.path.exists(dst):
        os.unlink(dst)
    subprocess.run(["cp", "--sparse=always", src, dst], check=True)
    return dst


class Boot:
    """One boot of a VM, driven over the command channel."""

    def __init__(self, disk, log, extra=(), rw=(), fw_cfg=(), net=False):
        self.vm = VM(disk, log, no_reboot=True, channel=True, extra_disks=extra, rw_disks=rw, fw_cfg=fw_cfg,
                     net=net)
        self.vm.start()

    def ready(self):
        # The command channel can report before or after "hull: ready":
        # wait for the later of the two without consuming the other.
        deadline = time.monotonic() + READY_TIMEOUT
        while not (self.vm.saw("hull: ready") and self.vm.saw("HULL-E2E-SHELL ready")):
            if time.monotonic() > deadline:
                raise TimeoutError("the node did not become ready")
            if not self.vm._pump(1.0):
                raise RuntimeError("QEMU exited before the node was ready")
        print("ready after %.1f s" % self.vm.elapsed(), flush=True)
        self.vm.connect()

    def sh(self, cmd):
        status, out = self.vm.run(cmd)
        return status, out.strip()

    def out(self, cmd):
        return self.sh(cmd)[1]

    def poweroff(self):
        self.vm.chan.sendall(b"systemctl poweroff\n")
        self.vm.wait_exit(180)
        self.vm.stop()
