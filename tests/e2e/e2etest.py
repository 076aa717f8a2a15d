# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the end-to-end tests share: PASS/FAIL reporting, parsing the guest's
key=value report lines, and building a test image with hull-build."""
import os
import re
import socket
import subprocess

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
