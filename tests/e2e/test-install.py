#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""End-to-end: the installer (docs/INSTALL.md). Build the e2e image, make
its installer ISO and PXE files with a machine config, then under QEMU (TCG,
OVMF, q35):
  1. boot the ISO against a 4 GiB disk that holds a file system: the
     installer refuses, says why, powers off, and the disk is unchanged;
  2. boot the ISO against an EMPTY 4 GiB disk (disk first in the boot order,
     the CD second): it installs and reboots; from the host, check the GPT
     (roots of the spec's size, persist the rest), root A = the image's root,
     root B blank, persist ext4 holding hull/provision/config.json (0600 in a
     0700 directory);
  3. boot again with the CD still in: the installed disk boots, slot A, /var
     on persist, and (with hull-provision in the image) the config the
     installer copied is applied: /etc/hostname on persist, applied.json;
  4. PXE: the same kernel with the two initrds concatenated (QEMU -kernel,
     -initrd) installs onto another empty disk;
  5. the ISO attached as a disk (as written to a USB stick) boots and
     installs onto the other disk, never onto itself.

usage: test-install.py HULL_BUILD SOURCE_ROOT WORK_DIR [--skip-build] [--spec hull-e2e-verity.yaml]
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2etest  # noqa: E402
from e2etest import check, fields  # noqa: E402
from hullvm import VM  # noqa: E402

DISK_SIZE = 4 << 30
MiB = 1 << 20
HOSTNAME = "hull-installed"


def empty_disk(path):
    if os.path.exists(path):
        os.unlink(path)
    with open(path, "wb") as f:
        f.truncate(DISK_SIZE)


def digest(path, ranges):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for off, size in ranges:
            f.seek(off)
            h.update(f.read(size))
    return h.hexdigest()


def gpt(path):
    out = subprocess.run(["sfdisk", "--json", path], capture_output=True, text=True, check=True).stdout
    t = json.loads(out)["partitiontable"]
    return t, {p.get("name"): p for p in t["partitions"]}


def read_persist(disk, part, names):
    """Mount the persist partition of a disk image read-only; returns
    {name: (mode, bytes)} for the paths asked, and the file system type."""
    mnt = tempfile.mkdtemp(prefix="hull-persist-")
    loop = subprocess.run(["losetup", "--find", "--show", "--read-only", "--offset", str(part["start"] * 512),
                           "--sizelimit", str(part["size"] * 512), disk], capture_output=True, text=True,
                          check=True).stdout.strip()
    res = {}
    try:
        fstype = subprocess.run(["blkid", "-o", "value", "-s", "TYPE", loop], capture_output=True, text=True).stdout.strip()
        label = subprocess.run(["blkid", "-o", "value", "-s", "LABEL", loop], capture_output=True, text=True).stdout.strip()
        # noload: a persist that was not cleanly unmounted is still readable.
        subprocess.run(["mount", "-o", "ro,noload", loop, mnt], check=True)
        try:
            for n in names:
                p = os.path.join(mnt, n)
                if os.path.exists(p):
                    st = os.stat(p)
                    data = open(p, "rb").read() if os.path.isfile(p) else None
                    res[n] = (st.st_mode & 0o7777, data)
        finally:
            subprocess.run(["umount", mnt], check=True)
    finally:
        subprocess.run(["losetup", "-d", loop])
        os.rmdir(mnt)
    return fstype, label, res


def image_has(rootfs, path):
    mnt = tempfile.mkdtemp(prefix="hull-root-")
    try:
        subprocess.run(["mount", "-o", "ro,loop", rootfs, mnt], check=True)
        try:
            return os.path.exists(os.path.join(mnt, path.lstrip("/")))
        finally:
            subprocess.run(["umount", mnt], check=True)
    finally:
        os.rmdir(mnt)


def check_installed_disk(disk, image, facts, config_bytes, what):
    t, parts = gpt(disk)
    check(t["label"] == "gpt" and len(t["partitions"]) == 4, "%s: a GPT with four partitions" % what)
    names = ["hull-esp", "hull-root-a", "hull-root-b", "hull-persist"]
    check(all(n in parts for n in names), "%s: partitions named %s" % (what, ", ".join(names)))
    if not all(n in parts for n in names):
        return
    sz = {n: parts[n]["size"] * 512 for n in names}
    print("%s: layout %s" % (what, ", ".join("%s %d MiB" % (n, sz[n] // MiB) for n in names)), flush=True)
    _, iparts = gpt(image)
    esp, root = iparts["hull-esp"]["size"] * 512, iparts["hull-root-a"]["size"] * 512
    check(sz["hull-esp"] == esp, "%s: the ESP is the image's %d MiB" % (what, esp // MiB))
    check(sz["hull-root-a"] == root and sz["hull-root-b"] == root, "%s: both roots are the spec's %d MiB" % (what, root // MiB))
    check(sz["hull-persist"] == DISK_SIZE - 2 * MiB - esp - 2 * root,
          "%s: persist takes the rest of the 4 GiB disk (%d MiB)" % (what, sz["hull-persist"] // MiB))
    ra, ira = parts["hull-root-a"]["start"] * 512, iparts["hull-root-a"]["start"] * 512
    n = facts["rootfs_size"]
    check(digest(disk, [(ra, n)]) == digest(image, [(ira, n)]), "%s: root A holds the image's root (%d bytes)" % (what, n))
    check(digest(disk, [(parts["hull-root-b"]["start"] * 512, MiB)]) == hashlib.sha256(bytes(MiB)).hexdigest(),
          "%s: root B is blank" % what)
    ie, de = iparts["hull-esp"], parts["hull-esp"]
    check(digest(disk, [(de["start"] * 512, de["size"] * 512)]) == digest(image, [(ie["start"] * 512, ie["size"] * 512)]),
          "%s: the ESP is the image's ESP" % what)
    fstype, label, files = read_persist(disk, parts["hull-persist"], ["hull", "hull/provision",
                                                                      "hull/provision/config.json"])
    check(fstype == "ext4" and label == "hull-persist", "%s: persist is ext4 labelled hull-persist (%s, %s)" %
          (what, fstype, label))
    cfg = files.get("hull/provision/config.json")
    check(cfg is not None and cfg[1] == config_bytes, "%s: persist holds hull/provision/config.json, the config given" % what)
    check(cfg is not None and cfg[0] == 0o600, "%s: config.json is 0600" % what)
    d = files.get("hull/provision")
    check(d is not None and d[0] == 0o700, "%s: hull/provision is 0700" % what)


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 77
    hull_build, src, work = sys.argv[1], sys.argv[2], sys.argv[3]
    skip_build = "--skip-build" in sys.argv[4:]
    # --spec FILE: another spec of tests/e2e (hull-e2e-verity.yaml: ext4 root under dm-verity).
    spec = sys.argv[sys.argv.index("--spec") + 1] if "--spec" in sys.argv else "hull-e2e.yaml"
    name = [ln.split(":", 1)[1].strip() for ln in open(os.path.join(src, "tests/e2e", spec)) if ln.startswith("name:")][0]
    nv = name + "-1.0.0"
    os.makedirs(work, exist_ok=True)
    out = os.path.join(work, "out")
    if not skip_build:
        if not e2etest.build_image(hull_build, src, work, spec):
            return 1
    image = os.path.join(out, nv + ".img")
    facts = json.load(open(os.path.join(out, nv + ".json")))
    has_provision = image_has(facts["rootfs"], "/usr/lib/hull/hull-provision")
    print("image has hull-provision: %s" % has_provision, flush=True)

    # The machine config, made the way a user makes it.
    cfg_yaml = os.path.join(work, "machine.yaml")
    cfg = os.path.join(work, "machine.json")
    with open(cfg_yaml, "w") as f:
        f.write("hull_config: 1\nhostname: %s\n" % HOSTNAME)
    r = subprocess.run([hull_build, "config", cfg_yaml, "-o", cfg])
    if not check(r.returncode == 0, "hull-build config makes the machine config"):
        return 1
    config_bytes = open(cfg, "rb").read()

    # Bad input to hull-build installer: refused, nothing written.
    inst = os.path.join(work, "installer")
    bad_cfg = os.path.join(work, "bad.json")
    with open(bad_cfg, "w") as f:
        f.write('{"hull_config": 1, "hostname": "-bad-"}\n')
    r = subprocess.run([hull_build, "installer", "--image", image, "--config", bad_cfg, "-o", inst + "-bad"],
                       capture_output=True, text=True)
    check(r.returncode != 0 and "hostname" in r.stderr and not os.path.exists(inst + "-bad"),
          "hull-build installer refuses an invalid config: %s" % r.stderr.strip().splitlines()[-1:])
    r = subprocess.run([hull_build, "installer", "--image", cfg, "-o", inst + "-bad"], capture_output=True, text=True)
    check(r.returncode != 0 and not os.path.exists(inst + "-bad"),
          "hull-build installer refuses a file that is not a Hull disk image: %s" % r.stderr.strip().splitlines()[-1:])
    r = subprocess.run([hull_build, "installer", "--image", image, "--root-size", "10M", "-o", inst + "-bad"],
                       capture_output=True, text=True)
    check(r.returncode != 0 and "root image" in r.stderr, "hull-build installer refuses a root size below the image's")

    t = time.monotonic()
    r = subprocess.run([hull_build, "installer", "--image", image, "--config", cfg, "-o", inst])
    if not check(r.returncode == 0, "hull-build installer makes the ISO and PXE files (%.0f s)" % (time.monotonic() - t)):
        return 1
    iso = os.path.join(inst, nv + "-installer.iso")
    pxe = os.path.join(inst, nv + "-pxe")
    check(os.path.exists(iso), "the ISO exists (%d MiB)" % (os.path.getsize(iso) // MiB if os.path.exists(iso) else 0))
    check(all(os.path.exists(os.path.join(pxe, f)) for f in ("vmlinuz", "initrd.img", "media.cpio", "boot.ipxe", "README")),
          "the PXE directory has vmlinuz, initrd.img, media.cpio, boot.ipxe and README")
    label = subprocess.run(["blkid", "-o", "value", "-s", "LABEL", iso], capture_output=True, text=True).stdout.strip()
    check(label == "HULL-INSTALL", "the ISO is labelled HULL-INSTALL (%s)" % label)

    log = e2etest.fresh_console_log(work)
    disk = os.path.join(work, "target.img")
    vm = None
    try:
        # 1. A disk holding data is refused and left alone.
        empty_disk(disk)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "precious", disk], check=True)
        ranges = [(0, 64 * MiB), (DISK_SIZE - MiB, MiB)]
        before = digest(disk, ranges)
        vm = VM(disk, log, memory="1536", no_reboot=True, cdrom=iso)
        vm.start()
        line = vm.expect("hull-install: /dev/vda holds data", 900)
        print("refusal after %.0f s: %s" % (vm.elapsed(), line), flush=True)
        check("ext4" in line and "hull.install.force=1" in line, "the installer refuses the disk holding ext4 and says how to force")
        vm.expect("INSTALLATION FAILED", 60)
        rc = vm.wait_exit(180)
        check(rc == 0 and not vm.saw("rebooting into slot A"), "the installer powered off instead of rebooting")
        vm.stop()
        vm = None
        check(digest(disk, ranges) == before, "the disk holding data is unchanged")

        # 2. An empty disk: install, reboot.
        empty_disk(disk)
        vm = VM(disk, log, memory="1536", no_reboot=True, cdrom=iso)
        vm.start()
        line = vm.expect("hull-install: target disk", 900)
        t_start = vm.elapsed()
        print("installer up after %.0f s: %s" % (t_start, line), flush=True)
        line = vm.expect("hull-install: installed %s 1.0.0 on /dev/vda" % name, 1200)
        t_done = vm.elapsed()
        print("installed after %.0f s (writing took %.0f s): %s" % (t_done, t_done - t_start, line), flush=True)
        check("rebooting into slot A" in line, "the installer reports the install and reboots into slot A")
        check(vm.saw("hull-install: layout: ESP "), "the installer printed the layout")
        rc = vm.wait_exit(120)
        check(rc == 0, "the installer rebooted (QEMU -no-reboot exits)")
        vm.stop()
        vm = None
        check_installed_disk(disk, image, facts, config_bytes, "ISO install")

        # 3. The installed disk boots by itself, slot A, with the installer
        # CD still in the drive (the disk comes first in the boot order).
        vm = VM(disk, log, no_reboot=True, cdrom=iso)
        vm.start()
        line = vm.expect("hull: ready", 900)
        check(not vm.saw("hull-install:"), "with the CD still in, the installed disk boots, not the installer")
        print("installed system ready after %.0f s: %s" % (vm.elapsed(), line), flush=True)
        check("slot=a" in line and "degraded=false" in line and "version=1.0.0" in line,
              "the installed system booted slot A, not degraded, version 1.0.0")
        f = fields(vm.expect("HULL-E2E root_ro", 300))
        check(f.get("slot") == "a", "boot.json says slot A")
        check(f.get("var_on_persist") == "yes", "/var is on the installed persist partition")
        check(f.get("root_ro") == "yes", "the installed root is read-only")
        if facts.get("verity_root_hash"):
            check(f.get("verity") == facts["verity_root_hash"], "the installed root A is opened with dm-verity (root hash %s)"
                  % facts["verity_root_hash"][:16])
        vm.expect("HULL-E2E rebooting", 120)
        vm.wait_exit(180)
        vm.stop()
        vm = None
        if has_provision:
            console = open(log, "rb").read().decode(errors="replace")
            check("config from /persist/hull/provision/config.json (copied by the installer)" in console,
                  "hull-provision took the config the installer copied onto persist")
            _, parts = gpt(disk)
            _, _, files = read_persist(disk, parts["hull-persist"], ["etc/upper/hostname", "hull/provision/applied.json"])
            hn = files.get("etc/upper/hostname")
            check(hn is not None and hn[1] == (HOSTNAME + "\n").encode(),
                  "the config was applied: /etc/hostname is %s (on persist, etc/upper/hostname)" % HOSTNAME)
            check("hull/provision/applied.json" in files, "hull-provision recorded the first boot (applied.json)")
        else:
            print("NOTE: the image has no hull-provision; the config is on persist but not applied", flush=True)

        # 4. PXE: the kernel, and the initramfs and the medium as one initrd.
        initrd = os.path.join(work, "pxe-initrd.img")
        with open(initrd, "wb") as o:
            for part in ("initrd.img", "media.cpio"):
                with open(os.path.join(pxe, part), "rb") as i:
                    while True:
                        b = i.read(1 << 20)
                        if not b:
                            break
                        o.write(b)
        ipxe = open(os.path.join(pxe, "boot.ipxe")).read()
        cmdline = [ln for ln in ipxe.splitlines() if ln.startswith("kernel ")][0].split(" ", 1)[1]
        cmdline = " ".join(w for w in cmdline.split() if not w.startswith("initrd=") and w != "vmlinuz")
        empty_disk(disk)
        vm = VM(disk, log, memory="2560", no_reboot=True)
        vm.cmd += ["-kernel", os.path.join(pxe, "vmlinuz"), "-initrd", initrd, "-append", cmdline]
        vm.start()
        line = vm.expect("hull-install: installed %s 1.0.0 on /dev/vda" % name, 1500)
        print("PXE install done after %.0f s: %s" % (vm.elapsed(), line), flush=True)
        vm.wait_exit(120)
        vm.stop()
        vm = None
        os.unlink(initrd)
        check_installed_disk(disk, image, facts, config_bytes, "PXE install")
        # 5. The ISO written to a disk, as to a USB stick (-isohybrid-gpt-basdat):
        # the firmware boots it through its GPT; it is the medium, so with
        # two non-removable disks auto still picks the empty one.
        empty_disk(disk)
        vm = VM(disk, log, memory="1536", no_reboot=True, extra_disks=[iso])
        vm.start()
        line = vm.expect("hull-install: installed %s 1.0.0 on /dev/vda" % name, 1200)
        print("USB-style install done after %.0f s: %s" % (vm.elapsed(), line), flush=True)
        check(vm.saw("hull-install: target disk: /dev/vda"), "the ISO as a disk boots and installs onto the other disk, not itself")
        vm.wait_exit(120)
        vm.stop()
        vm = None
        _, parts = gpt(disk)
        check(sorted(parts) == ["hull-esp", "hull-persist", "hull-root-a", "hull-root-b"], "USB-style install: Hull's GPT")
    except (TimeoutError, RuntimeError) as e:
        check(False, "%s (console log: %s)" % (e, log))
    finally:
        if vm:
            vm.stop()
        if os.path.exists(disk):
            os.unlink(disk)
    return 1 if e2etest.failures else 0


if __name__ == "__main__":
    sys.exit(main())
