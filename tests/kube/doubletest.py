# SPDX-License-Identifier: LGPL-2.1-or-later
"""The harness the double's HTTP tests share (test-crd-schema.py,
test-cel.py): named checks that report PASS/FAIL and go on, a double
started on a free port, and the cause texts of a 422 Status. Standard
library only."""

import http.client
import json
import os
import subprocess
import sys
import time
import traceback

RESULTS = []


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def run(name, fn, *a):
    t0 = time.time()
    try:
        fn(*a)
        RESULTS.append((name, True))
        print("PASS %s (%.2fs)" % (name, time.time() - t0), flush=True)
    except Exception as e:      # noqa: BLE001 - report every failure, go on
        RESULTS.append((name, False))
        print("FAIL %s: %s" % (name, e), flush=True)
        if not isinstance(e, Fail):
            traceback.print_exc()


def summary():
    """Prints the count line; 1 if any check failed, else 0."""
    failed = [n for n, ok in RESULTS if not ok]
    print("%d checks, %d failed%s" % (len(RESULTS), len(failed), (": " + ", ".join(failed)) if failed else ""))
    return 1 if failed else 0


def yaml_load(yaml2json, path):
    return json.loads(subprocess.check_output([yaml2json, path]))


def texts(status):
    """The causes of a Status as 'field: message'."""
    return ["%s: %s" % (c["field"], c["message"]) for c in status["details"]["causes"]]


class Double:
    """apiserver.py on a port of its choosing; extra: its options."""

    def __init__(self, apiserver, yaml2json, tmp, *extra):
        self.portfile = os.path.join(tmp, "port-%d" % len(os.listdir(tmp)))
        self.proc = subprocess.Popen([sys.executable, apiserver, "--port", "0", "--port-file", self.portfile,
                                      "--yaml2json", yaml2json] + list(extra))
        deadline = time.time() + 20
        while not os.path.exists(self.portfile):
            if self.proc.poll() is not None:
                raise RuntimeError("double exited with %d" % self.proc.returncode)
            if time.time() > deadline:
                raise RuntimeError("double did not write its port file")
            time.sleep(0.05)
        self.c = http.client.HTTPConnection("127.0.0.1", int(open(self.portfile).read()), timeout=30)

    def req(self, method, path, body=None, ctype="application/json"):
        """(status, decoded body, list of Warning header values)"""
        self.c.request(method, path, body=None if body is None else json.dumps(body),
                       headers={"Content-Type": ctype})
        r = self.c.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if data else None), r.headers.get_all("Warning") or []

    def stop(self):
        self.c.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
