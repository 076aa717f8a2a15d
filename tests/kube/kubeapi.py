# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small JSON client for the API-server double (tests/kube/apiserver.py),
shared by the simulated fleet (tests/kube/test-fleet.py), the QEMU cluster
test (tests/e2e/test-cluster.py) and the operator benchmark
(bench/operator-fleet.py). Only the standard library."""
import json
import urllib.error
import urllib.request


class Api:
    def __init__(self, base, timeout=30):
        self.base = base
        self.timeout = timeout

    def call(self, method, path, body=None, ctype="application/json"):
        """(HTTP status, decoded JSON body); an error status is returned, not raised."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": ctype} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def get(self, path):
        """The object, or None when the server does not answer 200 (404: gone)."""
        st, out = self.call("GET", path)
        return out if st == 200 else None

    def create(self, path, obj):
        st, out = self.call("POST", path, obj)
        if st not in (200, 201):
            raise RuntimeError("create %s: %s %s" % (path, st, out))
        return out

    def patch(self, path, patch):
        return self.call("PATCH", path, patch, "application/merge-patch+json")
