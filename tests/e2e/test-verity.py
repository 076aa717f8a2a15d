#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""End-to-end: an ext4 root under dm-verity. Build it, boot it, and check from
inside the guest that / is the verity device with the root hash the build
recorded, and that hull-init accepted it.

usage: test-verity.py HULL_BUILD SOURCE_ROOT WORK_DIR
"""
import json
import os
import re
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
    return 1 if e2etest.failures else 0


if __name__ == "__main__":
    sys.exit(main())
