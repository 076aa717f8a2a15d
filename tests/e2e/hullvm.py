#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Boot a Hull disk image in QEMU (TCG, OVMF) and watch its serial console.

Used by the end-to-end tests and by the demo. Only the standard library.
"""
import os
import re
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
    def __init__(self, disk, log_path, memory="1024", extra_disks=(), no_reboot=False, channel=False, net=False,
                 rw_disks=(), fw_cfg=(), cdrom=None):
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
            "-drive", "file=%s,format=raw,if=virtio,cache=unsafe" % disk if not cdrom else
            # With a CD (the installer ISO): the disk first in the boot order,
            # the CD second, so an empty disk falls through to the CD and an
            # installed one boots by itself.
            "file=%s,format=raw,if=none,id=disk0,cache=unsafe" % disk,
            # net: QEMU user networking (slirp); the guest reaches the host's
            # loopback as 10.0.2.2. Without it the guest has no network. A
            # string adds options, e.g. "hostfwd=tcp:127.0.0.1:2222-:22".
            "-serial", "stdio", "-nic",
            ("user,model=virtio-net-pci" + ("," + net if isinstance(net, str) else "")) if net else "none",
        ]
        if no_reboot:
            # A guest reboot ends QEMU; the caller starts a new one. A fresh
            # start is a real power cycle and avoids warm-reset hangs seen
            # with OVMF under TCG.
            self.cmd.append("-no-reboot")
        if cdrom:
            self.cmd += ["-device", "virtio-blk-pci,drive=disk0,bootindex=0",
                         "-drive", "file=%s,format=raw,if=none,id=cd0,media=cdrom,readonly=on" % cdrom,
                         "-device", "ide-cd,drive=cd0,bus=ide.0,bootindex=1"]
        for d in extra_disks:
            self.cmd += ["-drive", "file=%s,format=raw,if=virtio,readonly=on" % d]
        # Writable disks come after the read-only ones (data disks in the
        # provisioning test: vda is the boot disk, then extra_disks, then these).
        for d in rw_disks:
            self.cmd += ["-drive", "file=%s,format=raw,if=virtio,cache=unsafe" % d]
        # fw_cfg: (name, host file) pairs, e.g. ("opt/dev.hull/config", "config.json").
        for name, path in fw_cfg:
            self.cmd += ["-fw_cfg", "name=%s,file=%s" % (name, path)]
        self.channel_path = None
        self.chan = None
        if channel:
            # A virtio-serial port named hull.e2e, a Unix socket on the host:
            # the command channel of the test image (files/hull-e2e-shell.sh).
            self.channel_path = os.path.join(self.tmp, "channel.sock")
            self.cmd += ["-device", "virtio-serial-pci",
                         "-chardev", "socket,id=e2e,path=%s,server=on,wait=off" % self.channel_path,
                         "-device", "virtserialport,chardev=e2e,name=hull.e2e"]
        self.proc = None
        self.buf = b""
        self.history = b""  # everything this boot printed, for saw()
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
        self.history += data
        return True

    # A kernel message printed in the middle of a user-space line splits it
    # on the serial console ("HULL-E2E-SHELL r[  39.85] cfg80211: ...\neady");
    # matching also looks at the text without such messages.
    KMSG = re.compile(rb"\[ *[0-9]+\.[0-9]+\] [^\r\n]*\r?\n")

    def expect(self, needle, timeout):
        """Wait for a line containing needle; returns that line (str)."""
        deadline = time.monotonic() + timeout
        needle_b = needle.encode()
        while True:
            idx = self.buf.find(needle_b)
            if idx < 0:
                clean = self.KMSG.sub(b"", self.buf)
                if clean.find(needle_b) >= 0 and clean.find(b"\n", clean.find(needle_b)) >= 0:
                    self.buf = clean
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
                raise TimeoutError("no '%s' on the serial console within %d s%s" % (needle, timeout, self.tail()))
            if not self._pump(min(left, 1.0)):
                if self.buf.find(needle_b) >= 0:
                    continue
                raise RuntimeError("QEMU exited before '%s' appeared%s" % (needle, self.tail()))

    def tail(self, lines=40):
        """The end of this boot's console, for an error message: CI keeps
        the test's output but not the console log file."""
        text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", self.history.decode(errors="replace").replace("\r", ""))
        last = [l for l in text.split("\n") if l.strip()][-lines:]
        if not last:
            return " (the console printed nothing)"
        return "; the console's last %d lines:\n    %s" % (len(last), "\n    ".join(last))

    def saw(self, needle):
        """Whether the console showed needle at any time during this run,
        including text an earlier expect() has already consumed."""
        return needle.encode() in self.history or needle.encode() in self.KMSG.sub(b"", self.history)

    def wait_exit(self, timeout):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError("QEMU did not exit within %d s%s" % (timeout, self.tail()))
            self._pump(0.5)
        return self.proc.returncode

    def connect(self, timeout=30):
        """Connect to the command channel (the guest side must be ready)."""
        import socket
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.chan = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.chan.connect(self.channel_path)
                self.chan_buf = b""
                return
            except OSError:
                self.chan.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def run(self, cmd, timeout=600):
        """Run a shell command in the guest over the channel; returns
        (status, output). The console keeps being logged meanwhile."""
        self.chan.sendall(cmd.encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            idx = self.chan_buf.find(b"HULL-E2E-END ")
            if idx >= 0 and self.chan_buf.find(b"\n", idx) >= 0:
                end = self.chan_buf.find(b"\n", idx)
                out = self.chan_buf[:idx].decode(errors="replace")
                status = int(self.chan_buf[idx + 13:end])
                self.chan_buf = self.chan_buf[end + 1:]
                return status, out
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("guest command '%s' did not finish within %d s" % (cmd, timeout))
            r, _, _ = select.select([self.chan, self.proc.stdout], [], [], min(left, 1.0))
            if self.proc.stdout in r:
                if not self._pump(0):
                    raise RuntimeError("QEMU exited while running '%s'" % cmd)
            if self.chan in r:
                data = self.chan.recv(65536)
                if not data:
                    raise RuntimeError("the command channel closed while running '%s'" % cmd)
                self.chan_buf += data

    def stop(self):
        if self.chan:
            self.chan.close()
            self.chan = None
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
    ap.add_argument("--report", action="store_true",
                    help="after ready, wait for and print hull-boot-report's output (the kernel command line must "
                         "have hull.boot.report)")
    ap.add_argument("--config-disk", action="append", default=[], metavar="IMG",
                    help="attach IMG read-only after the boot disk, e.g. a HULL-CONFIG disk (docs/PROVISION.md)")
    ap.add_argument("--data-disk", action="append", default=[], metavar="IMG",
                    help="attach IMG writable after the config disks (data disks)")
    ap.add_argument("--fw-cfg", action="append", default=[], metavar="NAME=FILE",
                    help="a QEMU fw_cfg entry, e.g. opt/dev.hull/config=node.json")
    ap.add_argument("--net", action="store_true", help="user-mode networking (the guest sees the host as 10.0.2.2)")
    a = ap.parse_args()
    fw = []
    for e in a.fw_cfg:
        name, sep, path = e.partition("=")
        if not sep or not name or not os.path.isfile(path):
            ap.error("--fw-cfg wants NAME=FILE with an existing file, not '%s'" % e)
        fw.append((name, path))
    for d in a.config_disk + a.data_disk:
        if not os.path.isfile(d):
            ap.error("no such disk image: %s" % d)
    vm = VM(a.disk, a.log, extra_disks=a.config_disk, rw_disks=a.data_disk, fw_cfg=fw, net=a.net)
    vm.start()
    try:
        line = vm.expect("hull: ready", a.timeout)
        print("ready after %.1f s: %s" % (vm.elapsed(), line), flush=True)
        if a.report:
            vm.expect("BENCH-REPORT-END", 600)
            text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", vm.history.decode(errors="replace").replace("\r", ""))
            init = re.search(r"\[\s*([0-9.]+)\] Run /init as init process", text)
            print("kernel-to-init %s s" % (init.group(1) if init else "?"))
            print(text[text.rindex("BENCH-REPORT-BEGIN"):text.rindex("BENCH-REPORT-END")].strip())
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
