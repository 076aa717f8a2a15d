#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""End-to-end: an ext4 root under dm-verity. Build it, boot it, and check from
inside the guest that / is the verity device with the root hash the build
recorded, and that hull-init accepted it. Then the early boot's bad cases,
each on a copy of the disk: a root whose bytes do not match the root hash,
and a disk without the slot's partition. Each must end with a clear console
line and a reboot (QEMU -no-reboot exits), never a hang.

usage: test-verity.py HULL_BUILD SOURCE_ROOT WORK_DIR
"""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2etest  # noqa: E402
from e2etest import check, fields  # noqa: E402
from hullvm import VM  # noqa: E402


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 77
    hull_build, src, work = sys.argv[1], sys.argv[2], sys.argv[3]
    built = e2etest.build_image(hull_build, src, work, "hull-e2e-verity.yaml")
    if not built:
        return 1
    out = built[0]
    info = json.load(open(os.path.join(out, "hull-e2e-verity-1.0.0.json")))
    roothash = info.get("verity_root_hash")
    check(bool(roothash) and re.fullmatch(r"[0-9a-f]{64}", roothash or "") is not None,
          "the build recorded a dm-verity root hash")
    check("hull.verity.roothash=%s" % roothash in info.get("cmdline", ""), "the slot's kernel arguments carry it")

    vm = VM(os.path.join(out, "hull-e2e-verity-1.0.0.img"), e2etest.fresh_console_log(work))
    vm.start()
    try:
        line = vm.expect("hull: ready", 600)
        print("ready after %.1f s: %s" % (vm.elapsed(), line), flush=True)
        check("slot=a" in line, "booted slot A")
        f = fields(vm.expect("HULL-E2E root_ro", 300))
        check(f.get("root_src") == "/dev/mapper/hull-root", "/ is the dm-verity device (%s)" % f.get("root_src"))
        check(f.get("root_fstype") == "ext4", "the root file system is ext4")
        check(f.get("root_ro") == "yes", "/ is read-only")
        check(f.get("verity") == roothash, "hull-init verified and recorded the expected root hash")
        check(f.get("etc") == "overlay" and f.get("var_on_persist") == "yes", "/etc and /var are on persist")
    except (TimeoutError, RuntimeError) as e:
        check(False, "%s (console log: %s)" % (e, os.path.join(work, "console.log")))
    finally:
        vm.stop()

    image = os.path.join(out, "hull-e2e-verity-1.0.0.img")
    bad_boot(work, image, "tampered", tamper_root_a,
             "FATAL: dm-verity refused", "a changed byte in slot A's root")
    bad_boot(work, image, "no-root", rename_root_a,
             "FATAL: no root device PARTLABEL=hull-root-a", "a disk without hull-root-a")
    return 1 if e2etest.failures else 0


def partition(disk, name):
    """(start, size) in bytes of the GPT partition called name."""
    t = json.loads(subprocess.run(["sfdisk", "-J", disk], check=True, capture_output=True, text=True).stdout)
    t = t["partitiontable"]
    sector = t.get("sectorsize", 512)
    for i, p in enumerate(t["partitions"], 1):
        if p.get("name") == name:
            return i, p["start"] * sector, p["size"] * sector
    raise RuntimeError("%s has no partition %s" % (disk, name))


def tamper_root_a(disk):
    # One byte of the ext4 superblock (offset 1024 + 0x78, the volume
    # name): the mount reads it at once, so dm-verity must refuse it there.
    _, start, _ = partition(disk, "hull-root-a")
    with open(disk, "r+b") as f:
        f.seek(start + 1024 + 0x78)
        b = f.read(1)
        f.seek(start + 1024 + 0x78)
        f.write(bytes([b[0] ^ 0xff]))


def rename_root_a(disk):
    n, _, _ = partition(disk, "hull-root-a")
    subprocess.run(["sfdisk", "-q", "--part-label", disk, str(n), "not-hull"], check=True)


def bad_boot(work, image, name, damage, needle, what):
    disk = os.path.join(work, name + ".img")
    subprocess.run(["cp", "--sparse=always", image, disk], check=True)
    damage(disk)
    log = os.path.join(work, "console-%s.log" % name)
    if os.path.exists(log):
        os.unlink(log)
    vm = VM(disk, log, no_reboot=True)
    vm.start()
    try:
        line = vm.expect(needle, 300)
        print("%s: %s" % (name, line), flush=True)
        check("rebooting in" in line, "%s: the early boot says why it stops and that it reboots" % what)
        vm.wait_exit(120)
        check(not vm.saw("hull: ready"), "%s: the node rebooted instead of booting that slot" % what)
    except (TimeoutError, RuntimeError) as e:
        check(False, "%s: %s (console log: %s)" % (what, e, log))
    finally:
        vm.stop()
        os.unlink(disk)


if __name__ == "__main__":
    sys.exit(main())
