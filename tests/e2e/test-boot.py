#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""End-to-end: build the e2e image with hull-build, boot it in QEMU (TCG,
OVMF), and check from inside the guest that / is read-only, /etc and /var
are on persist, the booted slot is A, and a file written to /etc survives a
reboot. Needs root and the Debian archive (for the first, uncached build).

usage: test-boot.py HULL_BUILD SOURCE_ROOT WORK_DIR
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2etest  # noqa: E402
from e2etest import check, fields  # noqa: E402
from hullvm import VM  # noqa: E402


def verify_fails(hull_build, bundle, trust, needle, what):
    r = subprocess.run([hull_build, "verify", "--trust", trust, bundle], capture_output=True, text=True)
    ok = r.returncode != 0 and needle in r.stderr
    check(ok, "%s is rejected: %s" % (what, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "(no message)"))


def check_bad_bundles(hull_build, work, bundle, key, pub):
    """A real bundle, damaged in each way a download or an attacker could."""
    import shutil
    bad = os.path.join(work, "bad.hullb")
    size = os.path.getsize(bundle)
    with open(bundle, "rb") as f:
        header = f.read(24)
    mlen = int.from_bytes(header[12:16], "big")

    def damaged(offset=None, truncate=None, data=None):
        shutil.copy(bundle, bad)
        with open(bad, "r+b") as f:
            if offset is not None:
                f.seek(offset)
                b = f.read(1)
                f.seek(offset)
                f.write(data if data is not None else bytes([b[0] ^ 0x01]))
            if truncate is not None:
                f.truncate(truncate)
        return bad

    verify_fails(hull_build, damaged(offset=size - 4096), pub, "does not match the SHA-256 in the signed manifest",
                 "a bundle with one payload byte flipped")
    verify_fails(hull_build, damaged(offset=24 + mlen // 2), pub, "signature does not match",
                 "a bundle with a manifest byte changed")
    verify_fails(hull_build, damaged(offset=24 + mlen, data=bytes(64)[:1] * 64), pub, "signature does not match",
                 "a bundle whose signature was zeroed")
    verify_fails(hull_build, damaged(truncate=size - 1000000), pub, "truncated", "a truncated bundle")
    verify_fails(hull_build, damaged(truncate=30), pub, "not a valid Hull bundle (bad header",
                 "a bundle cut inside its header")
    other_key, other_pub = os.path.join(work, "other.key"), os.path.join(work, "other.pub")
    if not os.path.exists(other_key):
        subprocess.run([hull_build, "keygen", other_key, other_pub], check=True, capture_output=True)
    verify_fails(hull_build, bundle, other_pub, "not trusted", "a bundle signed by an unknown key")
    # Re-signing: only a verified bundle, and the result verifies with the new key only.
    resigned = os.path.join(work, "resigned.hullb")
    r = subprocess.run([hull_build, "sign", "--key", other_key, "--trust", pub, bundle, resigned])
    check(r.returncode == 0, "sign re-signs a verified bundle with another key")
    r = subprocess.run([hull_build, "verify", "--trust", other_pub, resigned], capture_output=True)
    check(r.returncode == 0, "the re-signed bundle verifies with the new key")
    verify_fails(hull_build, resigned, pub, "not trusted", "the re-signed bundle under the old key")
    r = subprocess.run([hull_build, "sign", "--key", other_key, "--trust", pub, damaged(offset=24 + mlen // 2),
                        resigned + ".2"], capture_output=True, text=True)
    check(r.returncode != 0 and not os.path.exists(resigned + ".2"), "sign refuses to re-sign a tampered bundle")
    for p in (bad, resigned):
        if os.path.exists(p):
            os.unlink(p)


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 77
    hull_build, src, work = sys.argv[1], sys.argv[2], sys.argv[3]
    built = e2etest.build_image(hull_build, src, work, "hull-e2e.yaml")
    if not built:
        return 1
    out, key, pub = built
    disk = os.path.join(out, "hull-e2e-1.0.0.img")
    bundle = os.path.join(out, "hull-e2e-1.0.0.hullb")
    r = subprocess.run([hull_build, "verify", "--trust", pub, bundle])
    check(r.returncode == 0, "the bundle verifies with the build key")
    check_bad_bundles(hull_build, work, bundle, key, pub)

    log = e2etest.fresh_console_log(work)
    vm = VM(disk, log, no_reboot=True)
    vm.start()
    try:
        line = vm.expect("hull: ready", 600)
        print("first boot ready after %.1f s: %s" % (vm.elapsed(), line), flush=True)
        check("slot=a" in line and "degraded=false" in line and "version=1.0.0" in line,
              "the ready marker reports slot a, not degraded, version 1.0.0")
        f = fields(vm.expect("HULL-E2E root_ro", 300))
        check(f.get("root_ro") == "yes", "writing under /usr fails: root is read-only")
        check(f.get("root_mount_ro") == "yes", "/ is mounted ro")
        check(f.get("etc") == "overlay", "/etc is an overlay")
        check(f.get("var_on_persist") == "yes", "/var is on the persist partition")
        check(f.get("slot") == "a", "the booted slot is A")
        check(f.get("marker") == "absent", "first boot: no /etc marker yet")
        check(f.get("pkgmgr") == "absent", "no package manager in the image")
        check(f.get("sshd") == "absent", "no sshd in the image")
        check(f.get("containerd") == "yes" and f.get("runc") == "yes", "containerd and runc are installed")
        vm.expect("HULL-E2E rebooting", 120)
        vm.wait_exit(180)
        vm.stop()
        vm = VM(disk, log, no_reboot=True)
        vm.start()
        line = vm.expect("hull: ready", 600)
        print("second boot ready: %s" % line, flush=True)
        f = fields(vm.expect("HULL-E2E root_ro", 300))
        check(f.get("marker") == "present", "the file written to /etc survived the reboot")
        check(f.get("marker_on_persist") == "present", "the /etc write landed on persist (overlay upper)")
        check(f.get("slot") == "a", "second boot is slot A as well")
        vm.expect("HULL-E2E done", 120)
        rc = vm.wait_exit(300)
        check(rc == 0, "the guest powered off cleanly")
        with open(os.path.join(work, "console.log"), "rb") as f:
            console = f.read().decode(errors="replace")
        check(console.count("hull-persist: clean") >= 2, "hull-init checked the persist file system at each boot")
    except (TimeoutError, RuntimeError) as e:
        check(False, "%s (console log: %s)" % (e, os.path.join(work, "console.log")))
    finally:
        vm.stop()
    return 1 if e2etest.failures else 0


if __name__ == "__main__":
    sys.exit(main())
