#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Boot a Hull disk image in QEMU (TCG, OVMF) and watch its serial console.

Used by the end-to-end tests and by the demo. Only the standard library.
"""
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

OVMF_CODE_CANDIDATES = ["/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE.fd"]
OVMF_VARS_CANDIDATES = ["/usr/share/OVMF/OVMF_VARS_4M.fd", "/usr/share/OVMF/OVMF_VARS.fd"]


def first_existing(paths):
    for p in paths:
        if os.path.exists(p):
            return p
    raise FileNotFoundError("none of %s exists (install the ovmf package)" % ", ".join(paths))


class VM:
    def __init__(self, disk, log_path, memory="1024", extra_disks=(), no_reboot=False):
        self.disk = disk
        self.log = open(log_path, "ab", buffering=0)
        self.tmp = tempfile.mkdtemp(prefix="hullvm-")
        self.vars = os.path.join(self.tmp, "OVMF_VARS.fd")
        shutil.copy(first_existing(OVMF_VARS_CANDIDATES), self.vars)
        self.cmd = [
            "qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-m", memory, "-smp", "2",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-drive", "if=pflash,format=raw,readonly=on,file=" + first_existing(OVMF_CODE_CANDIDATES),
            "-drive", "if=pflash,format=raw,file=" + self.vars,
            "-drive", "file=%s,format=raw,if=virtio,cache=unsafe" % disk,
            "-serial", "stdio", "-nic", "none",
        ]
        if no_reboot:
            # A guest reboot ends QEMU; the caller starts a new one. A fresh
            # start is a real power cycle and avoids warm-reset hangs seen
            # with OVMF under TCG.
            self.cmd.append("-no-reboot")
        for d in extra_disks:
            self.cmd += ["-drive", "file=%s,format=raw,if=virtio" % d]
        self.proc = None
        self.buf = b""
        self.start_time = None

    def start(self):
        self.log.write(("\n=== %s\n" % " ".join(self.cmd)).encode())
        self.start_time = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        os.set_blocking(self.proc.stdout.fileno(), False)

    def elapsed(self):
        return time.monotonic() - self.start_time

    def _pump(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            return True
        data = self.proc.stdout.read()
        if not data:
            return False  # QEMU exited
        self.log.write(data)
        self.buf += data
        return True

    def expect(self, needle, timeout):
        """Wait for a line containing needle; returns that line (str)."""
        deadline = time.monotonic() + timeout
        needle_b = needle.encode()
        while True:
            idx = self.buf.find(needle_b)
            if idx >= 0:
                end = self.buf.find(b"\n", idx)
                if end >= 0:
                    start = self.buf.rfind(b"\n", 0, idx) + 1
                    line = self.buf[start:end].decode(errors="replace").strip()
                    self.buf = self.buf[end + 1:]
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no '%s' on the serial console within %d s" % (needle, timeout))
            if not self._pump(min(left, 1.0)):
                if self.buf.find(needle_b) >= 0:
                    continue
                raise RuntimeError("QEMU exited before '%s' appeared" % needle)

    def wait_exit(self, timeout):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError("QEMU did not exit within %d s" % timeout)
            self._pump(0.5)
        return self.proc.returncode

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.log.close()


def main():
    import argparse
    ap = argparse.ArgumentParser(description="Boot a Hull disk image under QEMU TCG and wait until it is ready")
    ap.add_argument("disk")
    ap.add_argument("--log", default="console.log")
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--keep-running", action="store_true", help="leave the VM running after it is ready")
    a = ap.parse_args()
    vm = VM(a.disk, a.log)
    vm.start()
    try:
        line = vm.expect("hull: ready", a.timeout)
        print("ready after %.1f s: %s" % (vm.elapsed(), line))
        if a.keep_running:
            vm.wait_exit(10 ** 9)
    except (TimeoutError, RuntimeError) as e:
        print("FAILED: %s (console log: %s)" % (e, a.log), file=sys.stderr)
        return 1
    finally:
        vm.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
