#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Tests of the Kubernetes API-server double itself (a test fixture).

    test-apiserver.py APISERVER_PY YAML2JSON_EXE

Starts tests/kube/apiserver.py on port 0 (plain HTTP, then TLS with a bearer
token file and a client CA made with the openssl CLI) and checks every rule
it promises over real HTTP with http.client, watch streams included. Prints
one PASS/FAIL line per named check; exits 1 if any failed.
"""

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

APISERVER = os.path.abspath(sys.argv[1])
YAML2JSON = os.path.abspath(sys.argv[2])
TMP = tempfile.mkdtemp(prefix="kube-double-test-")
RESULTS = []


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def eq(a, b, what):
    if a != b:
        raise Fail("%s: expected %r, got %r" % (what, b, a))


# --------------------------------------------------------------------------
# plumbing

class Double:
    def __init__(self, *extra, tls=None):
        self.portfile = os.path.join(TMP, "port-%d" % len(os.listdir(TMP)))
        self.log = self.portfile + ".log"
        cmd = [sys.executable, APISERVER, "--port", "0", "--port-file", self.portfile,
               "--yaml2json", YAML2JSON, "--log", self.log] + list(extra)
        self.proc = subprocess.Popen(cmd)
        deadline = time.time() + 20
        while not os.path.exists(self.portfile):
            if self.proc.poll() is not None:
                raise RuntimeError("double exited with %d" % self.proc.returncode)
            if time.time() > deadline:
                raise RuntimeError("double did not write its port file")
            time.sleep(0.05)
        self.port = int(open(self.portfile).read())
        self.tls = tls

    def conn(self, timeout=30, ctx=None):
        if self.tls is not None:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=ctx or self.tls)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "<%d %s>" % (self.status, self.raw[:300])


class Client:
    def __init__(self, double, token=None, ctx=None):
        self.double = double
        self.token = token
        self.ctx = ctx
        self.c = None

    def req(self, method, path, body=None, ctype="application/json", headers=None):
        h = {"User-Agent": "test-apiserver/1"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            if isinstance(data, str):
                data = data.encode()
            h["Content-Type"] = ctype
        h.update(headers or {})
        for attempt in (0, 1):
            if self.c is None:
                self.c = self.double.conn(ctx=self.ctx)
            try:
                self.c.request(method, path, body=data, headers=h)
                r = self.c.getresponse()
                b = r.read()
                return Resp(r.status, r.headers, b)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.c.close()
                self.c = None
                if attempt:
                    raise

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.req("POST", path, body, **kw)

    def put(self, path, body, **kw):
        return self.req("PUT", path, body, **kw)

    def patch(self, path, body, ctype="application/merge-patch+json", **kw):
        return self.req("PATCH", path, body, ctype=ctype, **kw)

    def delete(self, path, body=None, **kw):
        return self.req("DELETE", path, body, **kw)

    def ok(self, method, path, body=None, want=(200, 201), **kw):
        if method == "PATCH":
            kw.setdefault("ctype", "application/merge-patch+json")
        r = self.req(method, path, body, **kw)
        if r.status not in want:
            raise Fail("%s %s: HTTP %d %s" % (method, path, r.status, r.raw[:400]))
        return r.json


class Watch:
    def __init__(self, double, path, token=None):
        self.c = double.conn(timeout=30)
        h = {"Authorization": "Bearer " + token} if token else {}
        self.c.request("GET", path, headers=h)
        self.r = self.c.getresponse()
        self.status = self.r.status
        self.headers = self.r.headers
        self.ended = False

    def next(self, timeout=5.0):
        """The next event, or None on timeout; sets ended at end of stream."""
        if self.ended:
            return None
        self.c.sock.settimeout(timeout)
        try:
            line = self.r.readline()
        except (socket.timeout, TimeoutError):
            return None
        if not line:
            self.ended = True
            return None
        return json.loads(line)

    def collect(self, n, timeout=5.0):
        out = []
        deadline = time.time() + timeout
        while len(out) < n and time.time() < deadline:
            e = self.next(max(0.05, deadline - time.time()))
            if e is None and self.ended:
                break
            if e is not None:
                out.append(e)
        return out

    def quiet(self, seconds):
        """Events (other than bookmarks) arriving within 'seconds'."""
        out = []
        deadline = time.time() + seconds
        while time.time() < deadline:
            e = self.next(max(0.05, deadline - time.time()))
            if e is not None and e["type"] != "BOOKMARK":
                out.append(e)
            if self.ended:
                break
        return out

    def close(self):
        self.c.close()


def rv(o):
    return int(o["metadata"]["resourceVersion"])


def status_shape(r, code, reason):
    j = r.json
    check(r.status == code, "HTTP %d, want %d: %s" % (r.status, code, r.raw[:300]))
    check(isinstance(j, dict), "body is not JSON: %r" % r.raw[:200])
    eq(j.get("kind"), "Status", "kind")
    eq(j.get("apiVersion"), "v1", "apiVersion")
    eq(j.get("status"), "Failure", "status")
    eq(j.get("code"), code, "code")
    eq(j.get("reason"), reason, "reason")
    check(j.get("message"), "message empty")
    return j


def run(name, fn, *a):
    t0 = time.time()
    try:
        fn(*a)
        RESULTS.append((name, True))
        print("PASS %s (%.2fs)" % (name, time.time() - t0), flush=True)
    except Exception as e:
        RESULTS.append((name, False))
        print("FAIL %s: %s" % (name, e), flush=True)
        if not isinstance(e, Fail):
            traceback.print_exc()


# --------------------------------------------------------------------------
# fixtures

WIDGET_CRD_YAML = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.hull.dev
spec:
  group: test.hull.dev
  scope: Cluster
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wd]
  versions:
    - name: v1
      served: true
      storage: true
      subresources:
        status: {}
      schema:
        openAPIV3Schema:
          type: object
          required: [spec]
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size:
                  type: integer
                  minimum: 1
                  maximum: 100
                mode:
                  type: string
                  enum: [Fast, Slow]
                  default: Slow
                name:
                  type: string
                  pattern: '^[a-z]+$'
                  minLength: 2
                  maxLength: 10
                strategy:
                  type: object
                  properties:
                    maxUnavailable:
                      x-kubernetes-int-or-string: true
                      anyOf:
                        - type: integer
                        - type: string
                tags:
                  type: array
                  minItems: 1
                  maxItems: 3
                  items:
                    type: string
                ratio:
                  type: number
                  minimum: 0
                  exclusiveMinimum: true
                note:
                  type: string
                  nullable: true
                enabled:
                  type: boolean
                labelsMap:
                  type: object
                  additionalProperties:
                    type: integer
                extra:
                  type: object
                  x-kubernetes-preserve-unknown-fields: true
            status:
              type: object
              properties:
                phase:
                  type: string
                count:
                  type: integer
"""

GADGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.test.hull.dev"},
    "spec": {"group": "test.hull.dev", "scope": "Namespaced",
             "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "properties": {"color": {"type": "string"}}}}}}}]}}

WIDGETS = "/apis/test.hull.dev/v1/widgets"
NODES = "/api/v1/nodes"


def widget(name, spec="default", **meta):
    m = {"name": name}
    m.update(meta)
    w = {"apiVersion": "test.hull.dev/v1", "kind": "Widget", "metadata": m}
    if spec is not None:
        w["spec"] = {"size": 3} if spec == "default" else spec
    return w


def node(name, labels=None):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}},
            "spec": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def ns_create(c, ns):
    c.ok("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})


def pod(name, node_name="n1", labels=None, **spec):
    s = {"nodeName": node_name, "containers": [{"name": "c", "image": "x"}]}
    s.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}}, "spec": s}


def pods_path(ns, name=None, sub=None):
    p = "/api/v1/namespaces/%s/pods" % ns
    if name:
        p += "/" + name
    if sub:
        p += "/" + sub
    return p


def make_running(c, ns, name, ready=True):
    c.ok("PATCH", pods_path(ns, name, "status"),
         {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}},
         ctype="application/merge-patch+json")


# --------------------------------------------------------------------------
# checks

def t_port_file_and_yaml2json(d):
    txt = open(d.portfile).read()
    check(txt.endswith("\n") and txt.strip().isdigit(), "port file %r" % txt)
    p = subprocess.run([YAML2JSON, os.path.join(TMP, "widget-crd.yaml")], capture_output=True)
    eq(p.returncode, 0, "yaml2json exit")
    j = json.loads(p.stdout)
    eq(j["spec"]["names"]["kind"], "Widget", "converted kind")
    bad = os.path.join(TMP, "bad.yaml")
    with open(bad, "w") as f:
        f.write("a: 1\nb: [1, 2\n")
    p = subprocess.run([YAML2JSON, bad], capture_output=True)
    eq(p.returncode, 1, "yaml2json exit on bad input")
    check(b"bad.yaml:" in p.stderr, "no file:line in %r" % p.stderr)


def t_discovery(c):
    j = c.ok("GET", "/api")
    eq(j["versions"], ["v1"], "/api versions")
    j = c.ok("GET", "/apis")
    names = [g["name"] for g in j["groups"]]
    for g in ("policy", "coordination.k8s.io", "events.k8s.io", "apiextensions.k8s.io", "test.hull.dev"):
        check(g in names, "group %s missing from /apis" % g)
    j = c.ok("GET", "/apis/test.hull.dev/v1")
    res = {r["name"]: r for r in j["resources"]}
    check("widgets" in res and "widgets/status" in res, "widgets or widgets/status missing: %s" % list(res))
    eq(res["widgets"]["namespaced"], False, "widgets namespaced")
    eq(res["widgets"]["kind"], "Widget", "widgets kind")
    j = c.ok("GET", "/api/v1")
    res = {r["name"]: r for r in j["resources"]}
    for r in ("pods", "pods/status", "pods/eviction", "nodes", "nodes/status", "namespaces", "events"):
        check(r in res, "%s missing from /api/v1" % r)
    eq(res["pods/eviction"]["kind"], "Eviction", "eviction kind")
    j = c.ok("GET", "/version")
    eq(j["major"], "1", "version major")
    eq(j["minor"], "32", "version minor (default --kube-version v1.32.4)")
    eq(j["gitVersion"], "v1.32.4", "version gitVersion")
    eq(c.get("/apis/nope.example/v1").status, 404, "unknown group")
    eq(c.get("/api/v1/nonexistent").status, 404, "unknown resource")


def t_rv_and_metadata(c, d):
    w = Watch(d, WIDGETS + "?watch=true&resourceVersion=%s" % c.ok("GET", WIDGETS)["metadata"]["resourceVersion"])
    a = c.ok("POST", WIDGETS, widget("rv1", labels={"x": "1"}))
    check(isinstance(a["metadata"]["resourceVersion"], str), "RV not a string")
    check(a["metadata"].get("uid") and a["metadata"].get("creationTimestamp"), "uid/creationTimestamp missing")
    eq(a["metadata"].get("generation"), 1, "generation on create")
    seen = [rv(a)]
    a["spec"]["size"] = 4
    b = c.ok("PUT", WIDGETS + "/rv1", a)
    seen.append(rv(b))
    eq(b["metadata"]["generation"], 2, "generation after spec change")
    b["metadata"]["labels"]["x"] = "2"
    b2 = c.ok("PUT", WIDGETS + "/rv1", b)
    seen.append(rv(b2))
    eq(b2["metadata"]["generation"], 2, "generation after label change")
    b2["status"] = {"phase": "Up"}
    s = c.ok("PUT", WIDGETS + "/rv1/status", b2)
    seen.append(rv(s))
    eq(s["metadata"]["generation"], 2, "generation after status write")
    p = c.ok("PATCH", WIDGETS + "/rv1", {"metadata": {"annotations": {"k": "v"}}},
             ctype="application/merge-patch+json")
    seen.append(rv(p))
    # no-op update: same RV, no event
    same = c.ok("PUT", WIDGETS + "/rv1", p)
    eq(same["metadata"]["resourceVersion"], p["metadata"]["resourceVersion"], "no-op PUT RV")
    same = c.ok("PATCH", WIDGETS + "/rv1", {"spec": {"size": 4}}, ctype="application/merge-patch+json")
    eq(same["metadata"]["resourceVersion"], p["metadata"]["resourceVersion"], "no-op PATCH RV")
    dl = c.ok("DELETE", WIDGETS + "/rv1")
    evs = w.collect(6)
    eq([e["type"] for e in evs], ["ADDED"] + ["MODIFIED"] * 4 + ["DELETED"], "event types")
    seen.append(rv(evs[-1]["object"]))
    check(all(x < y for x, y in zip(seen, seen[1:])), "RVs not strictly increasing: %s" % seen)
    eq([rv(e["object"]) for e in evs], seen, "event RVs")
    check(rv(dl) == seen[-1] or dl["metadata"]["resourceVersion"] == str(seen[-1]), "DELETE response RV")
    eq(w.quiet(0.5), [], "events after no-op writes")
    w.close()


def t_errors(c):
    r = c.get(WIDGETS + "/missing")
    j = status_shape(r, 404, "NotFound")
    eq(j["details"]["name"], "missing", "details.name")
    eq(j["details"]["kind"], "widgets", "details.kind")
    eq(j["details"].get("group"), "test.hull.dev", "details.group")
    c.ok("POST", WIDGETS, widget("e1"))
    status_shape(c.post(WIDGETS, widget("e1")), 409, "AlreadyExists")
    cur = c.ok("GET", WIDGETS + "/e1")
    stale = json.loads(json.dumps(cur))
    cur["spec"]["size"] = 5
    c.ok("PUT", WIDGETS + "/e1", cur)
    stale["spec"]["size"] = 6
    status_shape(c.put(WIDGETS + "/e1", stale), 409, "Conflict")
    del stale["metadata"]["resourceVersion"]
    j = status_shape(c.put(WIDGETS + "/e1", stale), 422, "Invalid")
    eq(j["details"]["causes"][0]["field"], "metadata.resourceVersion", "422 cause field")
    # core resources: unconditional update is allowed
    n = c.ok("POST", NODES, node("err-node"))
    del n["metadata"]["resourceVersion"]
    n["metadata"]["labels"] = {"z": "1"}
    c.ok("PUT", NODES + "/err-node", n)
    status_shape(c.patch(WIDGETS + "/e1", {"spec": {"size": 7}}, ctype="application/strategic-merge-patch+json"),
                 415, "UnsupportedMediaType")
    j = c.ok("PATCH", NODES + "/err-node", {"spec": {"unschedulable": True}},
             ctype="application/strategic-merge-patch+json")
    eq(j["spec"].get("unschedulable"), True, "SMP on node")
    j = c.ok("PATCH", NODES + "/err-node", {"spec": {"unschedulable": None}},
             ctype="application/strategic-merge-patch+json")
    check("unschedulable" not in j["spec"], "SMP null did not delete")
    status_shape(c.post(WIDGETS, b"{not json"), 400, "BadRequest")
    status_shape(c.put(WIDGETS, widget("x")), 405, "MethodNotAllowed")
    status_shape(c.patch(WIDGETS + "/e1", {"spec": {}}, ctype="text/plain"), 415, "UnsupportedMediaType")
    status_shape(c.post("/api/v1/namespaces/nope/pods", pod("p")), 404, "NotFound")


def t_pagination(c):
    ns_create(c, "pag")
    ns_create(c, "pag0")
    for i in (5, 1, 3, 7, 2, 6, 4):
        c.ok("POST", pods_path("pag", "p%d" % i).rsplit("/", 1)[0], pod("p%d" % i))
    c.ok("POST", pods_path("pag0"), pod("p9"))
    first = c.ok("GET", pods_path("pag") + "?limit=3")
    lrv = first["metadata"]["resourceVersion"]
    eq([p["metadata"]["name"] for p in first["items"]], ["p1", "p2", "p3"], "page 1 (sorted)")
    eq(first["metadata"].get("remainingItemCount"), 4, "remainingItemCount page 1")
    cont = first["metadata"]["continue"]
    c.ok("POST", pods_path("pag"), pod("p0"))          # not in the snapshot
    c.ok("DELETE", pods_path("pag", "p7") + "?gracePeriodSeconds=0")
    second = c.ok("GET", pods_path("pag") + "?limit=3&continue=" + urllib.parse.quote(cont))
    eq(second["metadata"]["resourceVersion"], lrv, "page 2 RV")
    eq([p["metadata"]["name"] for p in second["items"]], ["p4", "p5", "p6"], "page 2")
    eq(second["metadata"].get("remainingItemCount"), 1, "remainingItemCount page 2")
    third = c.ok("GET", pods_path("pag") + "?limit=3&continue=" + urllib.parse.quote(second["metadata"]["continue"]))
    eq([p["metadata"]["name"] for p in third["items"]], ["p7"], "page 3")
    eq(third["metadata"]["resourceVersion"], lrv, "page 3 RV")
    check(not third["metadata"].get("continue"), "continue on last page")
    # cluster-wide, sorted by namespace then name
    allp = c.ok("GET", "/api/v1/pods")
    keys = [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in allp["items"]]
    eq(keys, sorted(keys), "cluster-wide order")
    check(("pag0", "p9") in keys and ("pag", "p0") in keys, "cluster-wide list incomplete")
    # expired continue token
    again = c.ok("GET", pods_path("pag") + "?limit=2")
    c.ok("POST", "/_double/compact", {})
    r = c.get(pods_path("pag") + "?limit=2&continue=" + urllib.parse.quote(again["metadata"]["continue"]))
    status_shape(r, 410, "Expired")


def t_watch_replay_and_initial(c, d):
    ns_create(c, "wr")
    start = c.ok("GET", pods_path("wr"))["metadata"]["resourceVersion"]
    c.ok("POST", pods_path("wr"), pod("a"))
    c.ok("POST", pods_path("wr"), pod("b"))
    c.ok("PATCH", pods_path("wr", "a"), {"metadata": {"labels": {"l": "1"}}})
    c.ok("DELETE", pods_path("wr", "b") + "?gracePeriodSeconds=0")
    w = Watch(d, pods_path("wr") + "?watch=true&resourceVersion=" + start)
    eq(w.status, 200, "watch status")
    eq((w.headers.get("Transfer-Encoding") or "").lower(), "chunked", "Transfer-Encoding")
    evs = w.collect(4)
    eq([(e["type"], e["object"]["metadata"]["name"]) for e in evs],
       [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")], "replayed events")
    rvs = [rv(e["object"]) for e in evs]
    eq(rvs, sorted(rvs), "replay order")
    c.ok("POST", pods_path("wr"), pod("c"))
    live = w.collect(1)
    check(live and live[0]["type"] == "ADDED" and live[0]["object"]["metadata"]["name"] == "c", "live event %r" % live)
    eq(live[0]["object"]["kind"], "Pod", "event object kind")
    w.close()
    for q in ("", "&resourceVersion=0"):
        w = Watch(d, pods_path("wr") + "?watch=1" + q)
        evs = w.collect(2)
        eq(sorted((e["type"], e["object"]["metadata"]["name"]) for e in evs), [("ADDED", "a"), ("ADDED", "c")],
           "synthetic ADDED (%s)" % (q or "RV unset"))
        c.ok("PATCH", pods_path("wr", "c"), {"metadata": {"labels": {"q": q or "unset"}}})
        eq([e["type"] for e in w.collect(1)], ["MODIFIED"], "live after initial")
        w.close()
    # DELETED carries the final object with a new RV
    w = Watch(d, pods_path("wr") + "?watch=1&resourceVersion=" + c.ok("GET", pods_path("wr"))["metadata"]["resourceVersion"])
    last = c.ok("GET", pods_path("wr", "c"))
    c.ok("DELETE", pods_path("wr", "c") + "?gracePeriodSeconds=0")
    evs = w.collect(1)
    eq(evs[0]["type"], "DELETED", "delete event")
    check(rv(evs[0]["object"]) > rv(last), "DELETED RV not newer")
    eq(evs[0]["object"]["metadata"]["labels"], last["metadata"]["labels"], "final object content")
    w.close()


def t_watch_expired(c, d):
    old = c.ok("GET", NODES)["metadata"]["resourceVersion"]
    c.ok("POST", NODES, node("exp-1"))
    c.ok("POST", "/_double/compact", {})
    w = Watch(d, NODES + "?watch=true&resourceVersion=" + old)
    eq(w.status, 200, "error-event mode HTTP status")
    evs = w.collect(2, timeout=3)
    eq(len(evs), 1, "one ERROR event")
    eq(evs[0]["type"], "ERROR", "event type")
    eq(evs[0]["object"]["code"], 410, "ERROR status code")
    eq(evs[0]["object"]["reason"], "Expired", "ERROR reason")
    check(w.ended, "stream not closed after ERROR")
    w.close()
    c.ok("POST", "/_double/watch-expiry-mode", {"mode": "http410"})
    w = Watch(d, NODES + "?watch=true&resourceVersion=" + old)
    eq(w.status, 410, "http410 mode status")
    j = json.loads(w.r.read())
    eq((j["kind"], j["code"], j["reason"]), ("Status", 410, "Expired"), "410 body")
    w.close()
    c.ok("POST", "/_double/watch-expiry-mode", {"mode": "error-event"})
    # the current RV is still fine
    cur = c.ok("GET", NODES)["metadata"]["resourceVersion"]
    w = Watch(d, NODES + "?watch=true&resourceVersion=" + cur)
    eq(w.status, 200, "watch from current RV after compaction")
    c.ok("DELETE", NODES + "/exp-1")
    eq([e["type"] for e in w.collect(1)], ["DELETED"], "event after compaction")
    w.close()


def t_history_overflow(c, d):
    # the double runs with --history 50
    ns_create(c, "hist")
    c.ok("POST", "/apis/coordination.k8s.io/v1/namespaces/hist/leases", {"metadata": {"name": "h"}, "spec": {}})
    start = c.ok("GET", "/apis/coordination.k8s.io/v1/namespaces/hist/leases")["metadata"]["resourceVersion"]
    for i in range(40):
        c.ok("PATCH", "/apis/coordination.k8s.io/v1/namespaces/hist/leases/h", {"spec": {"holderIdentity": "x%d" % i}})
    w = Watch(d, "/apis/coordination.k8s.io/v1/namespaces/hist/leases?watch=1&resourceVersion=" + start)
    eq(len(w.collect(40)), 40, "replay within history")
    w.close()
    for i in range(60):
        c.ok("PATCH", "/apis/coordination.k8s.io/v1/namespaces/hist/leases/h", {"spec": {"holderIdentity": "y%d" % i}})
    w = Watch(d, "/apis/coordination.k8s.io/v1/namespaces/hist/leases?watch=1&resourceVersion=" + start)
    evs = w.collect(1)
    eq((evs[0]["type"], evs[0]["object"]["code"]), ("ERROR", 410), "too old after history overflow")
    w.close()


def t_watch_timeout(c, d):
    t0 = time.time()
    w = Watch(d, NODES + "?watch=true&timeoutSeconds=1")
    w.quiet(6)
    check(w.ended, "stream did not end")
    el = time.time() - t0
    check(0.8 <= el < 5, "ended after %.2fs" % el)
    w.close()


def t_bookmarks(c, d):
    # the double runs with --bookmark-interval 0.5
    w = Watch(d, NODES + "?watch=true&allowWatchBookmarks=true&resourceVersion=" +
              c.ok("GET", NODES)["metadata"]["resourceVersion"])
    c.ok("POST", NODES, node("bm-1"))
    evs = w.collect(3, timeout=4)
    types = [e["type"] for e in evs]
    eq(types[0], "ADDED", "first event")
    bms = [e for e in evs if e["type"] == "BOOKMARK"]
    check(bms, "no BOOKMARK in %s" % types)
    o = bms[0]["object"]
    eq(sorted(o), ["apiVersion", "kind", "metadata"], "bookmark object keys")
    eq(list(o["metadata"]), ["resourceVersion"], "bookmark metadata keys")
    check(int(o["metadata"]["resourceVersion"]) >= rv(evs[0]["object"]), "bookmark RV went back")
    w.close()
    w = Watch(d, NODES + "?watch=true&resourceVersion=" + c.ok("GET", NODES)["metadata"]["resourceVersion"])
    evs = w.collect(1, timeout=1.5)
    eq(evs, [], "events without allowWatchBookmarks")
    w.close()
    c.ok("DELETE", NODES + "/bm-1")


def t_selectors_list(c):
    ns_create(c, "sel")
    specs = [("s1", {"app": "a", "tier": "web"}, "n1"), ("s2", {"app": "b", "tier": "web"}, "n2"),
             ("s3", {"app": "c"}, "n1"), ("s4", {}, "n3")]
    for name, labels, nn in specs:
        c.ok("POST", pods_path("sel"), pod(name, nn, labels))
    make_running(c, "sel", "s2")

    def names(q):
        j = c.ok("GET", pods_path("sel") + "?" + q)
        return sorted(p["metadata"]["name"] for p in j["items"])

    def ls(sel):
        return names("labelSelector=" + urllib.parse.quote(sel))

    eq(ls("app=a"), ["s1"], "=")
    eq(ls("app==b"), ["s2"], "==")
    eq(ls("app!=a"), ["s2", "s3", "s4"], "!= (includes missing key)")
    eq(ls("app in (a,c)"), ["s1", "s3"], "in")
    eq(ls("app notin (a,c)"), ["s2", "s4"], "notin")
    eq(ls("tier"), ["s1", "s2"], "exists")
    eq(ls("!tier"), ["s3", "s4"], "!key")
    eq(ls("tier=web,app in (b)"), ["s2"], "conjunction")

    def fs(sel):
        return names("fieldSelector=" + urllib.parse.quote(sel))

    eq(fs("metadata.name=s3"), ["s3"], "metadata.name")
    eq(fs("metadata.namespace=sel"), ["s1", "s2", "s3", "s4"], "metadata.namespace")
    eq(fs("spec.nodeName=n1"), ["s1", "s3"], "spec.nodeName=")
    eq(fs("spec.nodeName==n2"), ["s2"], "spec.nodeName==")
    eq(fs("spec.nodeName!=n1"), ["s2", "s4"], "spec.nodeName!=")
    eq(fs("status.phase=Running"), ["s2"], "status.phase")
    eq(fs("status.phase!=Running,spec.nodeName=n1"), ["s1", "s3"], "field conjunction")
    j = c.ok("GET", "/api/v1/pods?fieldSelector=" + urllib.parse.quote("spec.nodeName=n3,metadata.namespace=sel"))
    eq([p["metadata"]["name"] for p in j["items"]], ["s4"], "cluster-wide field selector")
    status_shape(c.get(pods_path("sel") + "?fieldSelector=spec.bogus=1"), 400, "BadRequest")
    status_shape(c.get(NODES + "?fieldSelector=spec.nodeName=x"), 400, "BadRequest")
    status_shape(c.get(pods_path("sel") + "?labelSelector=" + urllib.parse.quote("a in (")), 400, "BadRequest")
    status_shape(c.get(pods_path("sel") + "?labelSelector=" + urllib.parse.quote("a b c")), 400, "BadRequest")


def t_selectors_watch(c, d):
    ns_create(c, "selw")
    c.ok("POST", pods_path("selw"), pod("w1", "n1", {"app": "x"}))
    c.ok("POST", pods_path("selw"), pod("w2", "n1", {"app": "y"}))
    w = Watch(d, pods_path("selw") + "?watch=true&labelSelector=app%3Dx")
    evs = w.collect(1)
    eq([(e["type"], e["object"]["metadata"]["name"]) for e in evs], [("ADDED", "w1")], "initial filtered")
    c.ok("PATCH", pods_path("selw", "w2"), {"metadata": {"labels": {"other": "1"}}})   # never matches
    c.ok("PATCH", pods_path("selw", "w1"), {"metadata": {"labels": {"app": "z"}}})     # stops matching
    c.ok("PATCH", pods_path("selw", "w2"), {"metadata": {"labels": {"app": "x"}}})     # starts matching
    c.ok("PATCH", pods_path("selw", "w2"), {"metadata": {"labels": {"more": "1"}}})    # stays
    evs = w.collect(3)
    eq([(e["type"], e["object"]["metadata"]["name"]) for e in evs],
       [("DELETED", "w1"), ("ADDED", "w2"), ("MODIFIED", "w2")], "transitions")
    eq(w.quiet(0.3), [], "extra events")
    w.close()
    w = Watch(d, "/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dn7")
    c.ok("POST", pods_path("selw"), pod("w3", "n7"))
    c.ok("POST", pods_path("selw"), pod("w4", "n8"))
    make_running(c, "selw", "w3")
    evs = w.collect(2)
    eq([(e["type"], e["object"]["metadata"]["name"]) for e in evs], [("ADDED", "w3"), ("MODIFIED", "w3")],
       "field selector watch")
    w.close()
    # a pod bound to the node later arrives as ADDED on that node's watch
    w = Watch(d, "/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dn9")
    c.ok("POST", pods_path("selw"), pod("w5", ""))
    cur = c.ok("GET", pods_path("selw", "w5"))
    cur["spec"]["nodeName"] = "n9"
    c.ok("PUT", pods_path("selw", "w5"), cur)
    c.ok("DELETE", pods_path("selw", "w5") + "?gracePeriodSeconds=0")
    evs = w.collect(2)
    eq([(e["type"], e["object"]["metadata"]["name"]) for e in evs], [("ADDED", "w5"), ("DELETED", "w5")],
       "pod bound later")
    w.close()
    # watches on one object by name, by selector and by the /watch/ path
    c.ok("POST", NODES, node("idx-1"))
    for path in (NODES + "?watch=1&fieldSelector=metadata.name%3Didx-1", "/api/v1/watch/nodes/idx-1"):
        w = Watch(d, path)
        eq([e["type"] for e in w.collect(1)], ["ADDED"], "initial by name (%s)" % path)
        c.ok("POST", NODES, node("idx-2"))
        c.ok("PATCH", NODES + "/idx-2", {"metadata": {"labels": {"v": "1"}}})
        c.ok("PATCH", NODES + "/idx-1", {"metadata": {"labels": {"v": "1"}}})
        evs = w.collect(1)
        eq([(e["type"], e["object"]["metadata"]["name"]) for e in evs], [("MODIFIED", "idx-1")], "by name (%s)" % path)
        c.ok("DELETE", NODES + "/idx-2")
        c.ok("PATCH", NODES + "/idx-1", {"metadata": {"labels": {"v": None}}})
        eq([e["object"]["metadata"]["name"] for e in w.collect(1)], ["idx-1"], "after other delete")
        w.close()
    c.ok("DELETE", NODES + "/idx-1")
    w = Watch(d, pods_path("selw") + "?watch=true&fieldSelector=status.phase%3DRunning&resourceVersion=" +
              c.ok("GET", pods_path("selw"))["metadata"]["resourceVersion"])
    make_running(c, "selw", "w4")
    evs = w.collect(1)
    eq([(e["type"], e["object"]["metadata"]["name"]) for e in evs], [("ADDED", "w4")], "status.phase starts matching")
    w.close()
    status_shape(c.get(pods_path("selw") + "?watch=true&fieldSelector=spec.bogus%3D1"), 400, "BadRequest")


def t_merge_patch(c):
    c.ok("POST", WIDGETS, widget("mp", {"size": 3, "tags": ["a", "b", "c"], "extra": {"k1": 1, "k2": {"x": 1}}}))
    j = c.ok("PATCH", WIDGETS + "/mp", {"spec": {"tags": ["z"], "extra": {"k1": None, "k2": {"y": 2}}}})
    eq(j["spec"]["tags"], ["z"], "array replaced whole")
    eq(j["spec"]["extra"], {"k2": {"x": 1, "y": 2}}, "null deletes, objects merge")
    r = c.patch(WIDGETS + "/mp", {"metadata": {"resourceVersion": "1"}, "spec": {"size": 9}})
    status_shape(r, 409, "Conflict")
    eq(c.ok("GET", WIDGETS + "/mp")["spec"]["size"], 3, "stale merge patch applied")
    j = c.ok("PATCH", WIDGETS + "/mp", {"metadata": {"resourceVersion": j["metadata"]["resourceVersion"]},
                                        "spec": {"size": 9}})
    eq(j["spec"]["size"], 9, "patch with current RV")


def t_json_patch(c):
    c.ok("POST", WIDGETS, widget("jp", {"size": 3, "tags": ["a", "b"], "extra": {"k": "v"}},
                                 finalizers=["test.hull.dev/one"]))
    cur = c.ok("GET", WIDGETS + "/jp")
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": cur["metadata"]["resourceVersion"]},
           {"op": "add", "path": "/spec/tags/-", "value": "c"},
           {"op": "replace", "path": "/spec/size", "value": 4},
           {"op": "copy", "from": "/spec/extra/k", "path": "/spec/extra/k2"},
           {"op": "move", "from": "/spec/extra/k", "path": "/spec/extra/k3"},
           {"op": "remove", "path": "/metadata/finalizers/0"},
           {"op": "add", "path": "/metadata/labels", "value": {"a~b/c": "x"}}]
    j = c.ok("PATCH", WIDGETS + "/jp", ops, ctype="application/json-patch+json")
    eq(j["spec"]["tags"], ["a", "b", "c"], "add -")
    eq(j["spec"]["size"], 4, "replace")
    eq(j["spec"]["extra"], {"k2": "v", "k3": "v"}, "copy/move")
    eq(j["metadata"].get("finalizers", []), [], "remove")
    before = c.ok("GET", WIDGETS + "/jp")
    bad = [{"op": "replace", "path": "/spec/size", "value": 50},
           {"op": "test", "path": "/metadata/resourceVersion", "value": "1"}]
    status_shape(c.patch(WIDGETS + "/jp", bad, ctype="application/json-patch+json"), 422, "Invalid")
    after = c.ok("GET", WIDGETS + "/jp")
    eq(after, before, "object after failed test op")
    status_shape(c.patch(WIDGETS + "/jp", [{"op": "remove", "path": "/spec/nothere"}],
                         ctype="application/json-patch+json"), 422, "Invalid")
    status_shape(c.patch(WIDGETS + "/jp", [{"op": "replace", "path": "/spec/tags/9", "value": "x"}],
                         ctype="application/json-patch+json"), 422, "Invalid")
    eq(c.ok("GET", WIDGETS + "/jp"), before, "object after failed ops")


def t_status_subresource(c):
    w = c.ok("POST", WIDGETS, dict(widget("st"), status={"phase": "Ignored"}))
    check("status" not in w or w["status"] in ({}, None), "status kept on create: %r" % w.get("status"))
    w["status"] = {"phase": "Ready", "count": 2}
    w["spec"]["size"] = 42
    w["metadata"]["labels"] = {"from": "status"}
    s = c.ok("PUT", WIDGETS + "/st/status", w)
    eq(s["status"], {"phase": "Ready", "count": 2}, "status written")
    eq(s["spec"]["size"], 3, "spec via /status ignored")
    check("from" not in (s["metadata"].get("labels") or {}), "labels via /status not ignored")
    s["spec"]["size"] = 5
    s["status"] = {"phase": "Hacked"}
    m = c.ok("PUT", WIDGETS + "/st", s)
    eq(m["spec"]["size"], 5, "spec via main")
    eq(m["status"]["phase"], "Ready", "status via main ignored")
    p = c.ok("PATCH", WIDGETS + "/st/status", {"status": {"count": 7}, "spec": {"size": 99}})
    eq((p["status"], p["spec"]["size"]), ({"phase": "Ready", "count": 7}, 5), "PATCH /status")
    p = c.ok("PATCH", WIDGETS + "/st", {"status": {"count": 8}})
    eq(p["status"]["count"], 7, "PATCH main ignores status")
    g = c.ok("GET", WIDGETS + "/st/status")
    eq(g["status"]["count"], 7, "GET /status")
    # nodes too
    c.ok("POST", NODES, node("st-node"))
    j = c.ok("PATCH", NODES + "/st-node/status", {"status": {"conditions": [{"type": "Ready", "status": "False"}]},
                                                 "spec": {"unschedulable": True}})
    eq(j["status"]["conditions"][0]["status"], "False", "node status")
    check("unschedulable" not in j["spec"], "node spec via /status")


def t_finalizers(c, d):
    start = c.ok("GET", WIDGETS)["metadata"]["resourceVersion"]
    c.ok("POST", WIDGETS, widget("fin", finalizers=["test.hull.dev/a", "test.hull.dev/b"]))
    w = Watch(d, WIDGETS + "?watch=true&resourceVersion=" + start)
    j = c.ok("DELETE", WIDGETS + "/fin")
    check(j["metadata"].get("deletionTimestamp"), "no deletionTimestamp")
    eq(c.ok("GET", WIDGETS + "/fin")["metadata"]["finalizers"], ["test.hull.dev/a", "test.hull.dev/b"], "still there")
    cur = c.ok("GET", WIDGETS + "/fin")
    cur["metadata"]["finalizers"] = ["test.hull.dev/b"]
    cur = c.ok("PUT", WIDGETS + "/fin", cur)
    eq(c.get(WIDGETS + "/fin").status, 200, "deleted before last finalizer")
    cur["metadata"]["finalizers"] = []
    c.ok("PUT", WIDGETS + "/fin", cur)
    eq(c.get(WIDGETS + "/fin").status, 404, "not deleted after last finalizer")
    evs = w.collect(4)
    eq([e["type"] for e in evs], ["ADDED", "MODIFIED", "MODIFIED", "DELETED"], "finalizer events")
    check(evs[1]["object"]["metadata"].get("deletionTimestamp"), "MODIFIED lacks deletionTimestamp")
    check(evs[3]["object"]["metadata"].get("deletionTimestamp"), "final object lacks deletionTimestamp")
    w.close()


def t_pod_grace(c, d):
    ns_create(c, "grace")
    c.ok("POST", pods_path("grace"), pod("g1"))
    w = Watch(d, pods_path("grace") + "?watch=true&resourceVersion=" +
              c.ok("GET", pods_path("grace"))["metadata"]["resourceVersion"])
    j = c.ok("DELETE", pods_path("grace", "g1"), {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 30})
    check(j["metadata"].get("deletionTimestamp"), "no deletionTimestamp")
    eq(j["metadata"].get("deletionGracePeriodSeconds"), 30, "deletionGracePeriodSeconds")
    evs = w.collect(2, timeout=5)
    eq([e["type"] for e in evs], ["MODIFIED", "DELETED"], "graceful delete events")
    eq(c.get(pods_path("grace", "g1")).status, 404, "pod gone after grace cap")
    c.ok("POST", pods_path("grace"), pod("g2"))
    c.ok("DELETE", pods_path("grace", "g2") + "?gracePeriodSeconds=0")
    eq(c.get(pods_path("grace", "g2")).status, 404, "grace 0 deletes at once")
    # a pod with a finalizer waits for it after the kubelet is done
    p = pod("g3")
    p["metadata"]["finalizers"] = ["test/x"]
    c.ok("POST", pods_path("grace"), p)
    c.ok("DELETE", pods_path("grace", "g3"))
    time.sleep(0.6)
    cur = c.ok("GET", pods_path("grace", "g3"))
    eq(cur["metadata"].get("deletionGracePeriodSeconds"), 0, "grace after kubelet")
    c.ok("PATCH", pods_path("grace", "g3"), [{"op": "remove", "path": "/metadata/finalizers"}],
         ctype="application/json-patch+json")
    eq(c.get(pods_path("grace", "g3")).status, 404, "pod gone after finalizer removal")
    w.close()


def t_cr_validation(c):
    def bad(name, spec, want):
        r = c.post(WIDGETS, widget(name, spec))
        j = status_shape(r, 422, "Invalid")
        causes = [(x.get("reason"), x.get("field")) for x in j["details"]["causes"]]
        for cause in want:
            check(cause in causes, "%s: cause %s not in %s" % (name, cause, causes))
        eq(j["details"]["kind"], "Widget", "details.kind")
        eq(j["details"]["group"], "test.hull.dev", "details.group")
        eq(c.get(WIDGETS + "/" + name).status, 404, "%s stored although invalid" % name)

    bad("v-type", {"size": "three"}, [("FieldValueTypeInvalid", "spec.size")])
    bad("v-req", {"mode": "Fast"}, [("FieldValueRequired", "spec.size")])
    bad("v-nospec", None, [("FieldValueRequired", "spec")])
    bad("v-enum", {"size": 1, "mode": "Medium"}, [("FieldValueNotSupported", "spec.mode")])
    bad("v-min", {"size": 0}, [("FieldValueInvalid", "spec.size")])
    bad("v-max", {"size": 101}, [("FieldValueInvalid", "spec.size")])
    bad("v-excl", {"size": 1, "ratio": 0}, [("FieldValueInvalid", "spec.ratio")])
    bad("v-pattern", {"size": 1, "name": "ABC"}, [("FieldValueInvalid", "spec.name")])
    bad("v-minlen", {"size": 1, "name": "a"}, [("FieldValueInvalid", "spec.name")])
    bad("v-maxlen", {"size": 1, "name": "abcdefghijk"}, [("FieldValueTooLong", "spec.name")])
    bad("v-minitems", {"size": 1, "tags": []}, [("FieldValueInvalid", "spec.tags")])
    bad("v-maxitems", {"size": 1, "tags": ["a", "b", "c", "d"]}, [("FieldValueTooMany", "spec.tags")])
    bad("v-items", {"size": 1, "tags": ["a", 2]}, [("FieldValueTypeInvalid", "spec.tags[1]")])
    bad("v-intorstr", {"size": 1, "strategy": {"maxUnavailable": True}},
        [("FieldValueTypeInvalid", "spec.strategy.maxUnavailable")])
    bad("v-addl", {"size": 1, "labelsMap": {"a": "x"}}, [("FieldValueTypeInvalid", "spec.labelsMap.a")])
    bad("v-bool", {"size": 1, "enabled": "yes"}, [("FieldValueTypeInvalid", "spec.enabled")])
    bad("v-multi", {"size": 0, "mode": "X"}, [("FieldValueInvalid", "spec.size"), ("FieldValueNotSupported", "spec.mode")])
    r = c.post(WIDGETS, widget("v-msg", {"size": 0}))
    check('Widget.test.hull.dev "v-msg" is invalid: spec.size' in r.json["message"], "message %r" % r.json["message"])
    # accepted forms, defaults, pruning, preserve-unknown-fields, nullable
    r = c.post(WIDGETS, widget("v-ok", {"size": 1, "strategy": {"maxUnavailable": "25%"}, "unknown": 1,
                                        "extra": {"anything": {"goes": [1]}}, "note": None, "ratio": 0.5,
                                        "labelsMap": {"a": 1}}))
    eq(r.status, 201, "valid widget: %r" % r)
    j = r.json
    eq(j["spec"]["mode"], "Slow", "default applied")
    check("unknown" not in j["spec"], "unknown field not pruned")
    eq(j["spec"]["extra"], {"anything": {"goes": [1]}}, "preserve-unknown-fields")
    check("note" in j["spec"] and j["spec"]["note"] is None, "nullable null dropped")
    warn = r.headers.get_all("Warning") or []
    check(any("spec.unknown" in x for x in warn), "no Warning for pruned field: %r" % warn)
    eq(c.ok("GET", WIDGETS + "/v-ok")["spec"].get("unknown"), None, "pruned field stored")
    j = c.ok("PATCH", WIDGETS + "/v-ok", {"spec": {"strategy": {"maxUnavailable": 2}}})
    eq(j["spec"]["strategy"]["maxUnavailable"], 2, "int-or-string int")
    status_shape(c.post(WIDGETS + "?fieldValidation=Strict", widget("v-strict", {"size": 1, "junk": 1})), 400, "BadRequest")
    # validation after a patch; nothing stored
    before = c.ok("GET", WIDGETS + "/v-ok")
    status_shape(c.patch(WIDGETS + "/v-ok", {"spec": {"size": 0}}), 422, "Invalid")
    status_shape(c.patch(WIDGETS + "/v-ok", [{"op": "remove", "path": "/spec/size"}],
                         ctype="application/json-patch+json"), 422, "Invalid")
    bad_put = json.loads(json.dumps(before))
    bad_put["spec"]["mode"] = "Nope"
    status_shape(c.put(WIDGETS + "/v-ok", bad_put), 422, "Invalid")
    eq(c.ok("GET", WIDGETS + "/v-ok"), before, "object after invalid writes")


def t_eviction(c, d):
    ns_create(c, "ev")
    ev = lambda name, g=None: {"apiVersion": "policy/v1", "kind": "Eviction",
                               "metadata": {"name": name, "namespace": "ev"},
                               **({"deleteOptions": {"gracePeriodSeconds": g}} if g is not None else {})}
    status_shape(c.post(pods_path("ev", "nope", "eviction"), ev("nope")), 404, "NotFound")
    for i in range(3):
        c.ok("POST", pods_path("ev"), pod("web-%d" % i, labels={"app": "web"}))
        make_running(c, "ev", "web-%d" % i)
    c.ok("POST", pods_path("ev"), pod("web-pending", labels={"app": "web"}))
    c.ok("POST", "/apis/policy/v1/namespaces/ev/poddisruptionbudgets",
         {"metadata": {"name": "web"}, "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}}})
    pdb = c.ok("GET", "/apis/policy/v1/namespaces/ev/poddisruptionbudgets/web")
    st = pdb["status"]
    eq((st["currentHealthy"], st["desiredHealthy"], st["expectedPods"], st["disruptionsAllowed"]), (3, 3, 4, 0),
       "PDB status (minAvailable 3)")
    eq(st["observedGeneration"], pdb["metadata"]["generation"], "observedGeneration")
    r = c.post(pods_path("ev", "web-0", "eviction"), ev("web-0"))
    j = status_shape(r, 429, "TooManyRequests")
    eq(j["details"]["causes"][0]["reason"], "DisruptionBudget", "429 cause")
    eq(c.get(pods_path("ev", "web-0")).status, 200, "pod kept on 429")
    # Pending pods are deleted without a PDB check
    r = c.post(pods_path("ev", "web-pending", "eviction"), ev("web-pending", 0))
    eq(r.status, 201, "evict pending: %r" % r)
    eq(c.get(pods_path("ev", "web-pending")).status, 404, "pending pod deleted")
    # relax the PDB: minAvailable 2 -> one disruption allowed
    c.ok("PATCH", "/apis/policy/v1/namespaces/ev/poddisruptionbudgets/web", {"spec": {"minAvailable": 2}})
    pdb = c.ok("GET", "/apis/policy/v1/namespaces/ev/poddisruptionbudgets/web")
    eq(pdb["status"]["disruptionsAllowed"], 1, "disruptionsAllowed after relax")
    eq(pdb["status"]["observedGeneration"], 2, "observedGeneration after spec change")
    w = Watch(d, "/apis/policy/v1/namespaces/ev/poddisruptionbudgets?watch=1&resourceVersion=" +
              pdb["metadata"]["resourceVersion"])
    r = c.post(pods_path("ev", "web-0", "eviction"), ev("web-0", 30))
    eq(r.status, 201, "evict with budget: %r" % r)
    eq(r.json.get("status"), "Success", "eviction Status")
    p = c.get(pods_path("ev", "web-0"))
    check(p.status == 404 or p.json["metadata"].get("deletionTimestamp"), "evicted pod not deleting")
    evs = w.collect(1)
    check(evs and evs[0]["object"]["status"]["disruptionsAllowed"] == 0, "PDB not decremented: %r" % evs)
    w.close()
    r = c.post(pods_path("ev", "web-1", "eviction"), ev("web-1"))
    status_shape(r, 429, "TooManyRequests")
    # a deleting pod is deleted with no PDB check
    r = c.post(pods_path("ev", "web-0", "eviction"), ev("web-0", 0))
    check(r.status in (201, 404), "evict deleting pod: %r" % r)
    # more than one PDB -> 500
    c.ok("POST", "/apis/policy/v1/namespaces/ev/poddisruptionbudgets",
         {"metadata": {"name": "web2"}, "spec": {"maxUnavailable": 1,
                                                 "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}}})
    status_shape(c.post(pods_path("ev", "web-1", "eviction"), ev("web-1")), 500, "InternalError")
    # percentages round up; maxUnavailable
    c.ok("DELETE", "/apis/policy/v1/namespaces/ev/poddisruptionbudgets/web2")
    c.ok("PATCH", "/apis/policy/v1/namespaces/ev/poddisruptionbudgets/web", {"spec": {"minAvailable": "34%"}})
    st = c.ok("GET", "/apis/policy/v1/namespaces/ev/poddisruptionbudgets/web")["status"]
    eq((st["expectedPods"], st["desiredHealthy"], st["currentHealthy"], st["disruptionsAllowed"]), (2, 1, 2, 1),
       "34% of 2 rounds up")
    c.ok("PATCH", "/apis/policy/v1/namespaces/ev/poddisruptionbudgets/web",
         {"spec": {"minAvailable": None, "maxUnavailable": "50%"}})
    st = c.ok("GET", "/apis/policy/v1/namespaces/ev/poddisruptionbudgets/web")["status"]
    eq((st["desiredHealthy"], st["disruptionsAllowed"]), (1, 1), "maxUnavailable 50%")
    make_running(c, "ev", "web-2", ready=False)
    st = c.ok("GET", "/apis/policy/v1/namespaces/ev/poddisruptionbudgets/web")["status"]
    eq((st["currentHealthy"], st["disruptionsAllowed"]), (1, 0), "unready pod not healthy")
    status_shape(c.post(pods_path("ev", "web-2", "eviction"), {"metadata": {"name": "other"}}), 400, "BadRequest")


def t_leases(c):
    ns_create(c, "lease")
    base = "/apis/coordination.k8s.io/v1/namespaces/lease/leases"
    l0 = c.ok("POST", base, {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}})
    l1 = json.loads(json.dumps(l0))
    l1["spec"]["holderIdentity"] = "b"
    c.ok("PUT", base + "/leader", l1)
    l0["spec"]["holderIdentity"] = "c"
    status_shape(c.put(base + "/leader", l0), 409, "Conflict")
    for round_ in range(10):
        cur = c.ok("GET", base + "/leader")
        results = []
        barrier = threading.Barrier(2)

        def racer(who):
            cl = Client(c.double)
            body = json.loads(json.dumps(cur))
            body["spec"]["holderIdentity"] = who
            barrier.wait()
            results.append(cl.put(base + "/leader", body).status)

        ts = [threading.Thread(target=racer, args=("r%d-%d" % (round_, i),)) for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        eq(sorted(results), [200, 409], "race round %d" % round_)


def t_crd_post_and_namespaced(c, d):
    r = c.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", GADGET_CRD)
    eq(r.status, 201, "CRD POST: %r" % r)
    conds = {x["type"]: x["status"] for x in r.json["status"]["conditions"]}
    eq(conds.get("Established"), "True", "Established")
    ns_create(c, "gad")
    g = c.ok("POST", "/apis/test.hull.dev/v1/namespaces/gad/gadgets",
             {"apiVersion": "test.hull.dev/v1", "kind": "Gadget", "metadata": {"name": "g1"},
              "spec": {"color": "red", "size": 3}})
    check("size" not in g["spec"], "Gadget unknown field not pruned")
    j = c.ok("GET", "/apis/test.hull.dev/v1/gadgets")
    eq([(x["metadata"]["namespace"], x["metadata"]["name"]) for x in j["items"]], [("gad", "g1")], "cluster-wide CR list")
    eq(j["items"][0]["kind"], "Gadget", "CR list items keep kind")
    bad = json.loads(json.dumps(GADGET_CRD))
    bad["metadata"]["name"] = "wrong.test.hull.dev"
    bad["spec"]["names"]["plural"] = "things"
    status_shape(c.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", bad), 422, "Invalid")
    c.ok("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.test.hull.dev")
    eq(c.get("/apis/test.hull.dev/v1/namespaces/gad/gadgets").status, 404, "CR path after CRD deletion")


def t_namespaces(c):
    ns_create(c, "doomed")
    c.ok("POST", pods_path("doomed"), pod("p", node_name=""))
    c.ok("POST", "/api/v1/namespaces/doomed/events", {"metadata": {"name": "e1"}, "reason": "R", "message": "m",
                                                      "involvedObject": {"kind": "Pod", "name": "p"}})
    c.ok("POST", "/apis/events.k8s.io/v1/namespaces/doomed/events",
         {"metadata": {"name": "e2"}, "reason": "R", "note": "n", "action": "A",
          "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "t", "reportingInstance": "t-1"})
    c.ok("DELETE", "/api/v1/namespaces/doomed")
    eq(c.get("/api/v1/namespaces/doomed").status, 404, "namespace after delete")
    eq(c.get(pods_path("doomed", "p")).status, 404, "pod after namespace delete")


def t_control(c, d):
    ns_create(c, "ctl")
    since = c.ok("GET", "/_double/requests")["last"]
    c.ok("POST", "/_double/fail", {"method": "PUT", "pathRegex": "/leases/ctl-lease$", "status": 500, "count": 2,
                                   "retryAfter": 3})
    base = "/apis/coordination.k8s.io/v1/namespaces/ctl/leases"
    l = c.ok("POST", base, {"metadata": {"name": "ctl-lease"}, "spec": {}})
    for i in range(2):
        r = c.put(base + "/ctl-lease", l)
        status_shape(r, 500, "InternalError")
        eq(r.headers.get("Retry-After"), "3", "Retry-After")
    eq(c.put(base + "/ctl-lease", l).status, 200, "after injected failures")
    c.ok("POST", "/_double/fail", {"pathRegex": "/leases", "status": 429, "count": 1})
    status_shape(c.get(base), 429, "TooManyRequests")
    c.ok("POST", "/_double/delay", {"pathRegex": "^/api/v1/namespaces/ctl$", "seconds": 0.5})
    t0 = time.time()
    c.ok("GET", "/api/v1/namespaces/ctl")
    check(time.time() - t0 >= 0.45, "delay not applied")
    c.ok("POST", "/_double/reset", {})
    t0 = time.time()
    c.ok("GET", "/api/v1/namespaces/ctl")
    check(time.time() - t0 < 0.45, "delay not reset")
    log = c.ok("GET", "/_double/requests?since=%d" % since)["requests"]
    puts = [x for x in log if x["method"] == "PUT" and x["path"] == base + "/ctl-lease"]
    eq([x["status"] for x in puts], [500, 500, 200], "logged PUT statuses")
    eq(puts[0]["userAgent"], "test-apiserver/1", "logged user agent")
    check(all(x["seq"] > since for x in log), "since not honoured")
    check(all("time" in x and "query" in x for x in log), "log fields")
    # close-watches and stats
    w = Watch(d, NODES + "?watch=true&resourceVersion=" + c.ok("GET", NODES)["metadata"]["resourceVersion"])
    time.sleep(0.2)
    log = c.ok("GET", "/_double/requests?since=%d" % since)["requests"]
    check(any(x["watch"] and x["path"] == NODES and x["status"] == 200 for x in log), "open watch not logged")
    st = c.ok("GET", "/_double/stats")
    check(st["openWatches"] >= 1, "open watches %r" % st)
    check(st["objects"]["namespaces"] >= 5, "objects %r" % st["objects"])
    check(st["requests"] > since, "request count")
    n = c.ok("POST", "/_double/close-watches", {})["closed"]
    check(n >= 1, "closed %d" % n)
    w.quiet(3)
    check(w.ended, "watch not ended by close-watches")
    w.close()


def t_performance(c, d):
    t0 = time.time()
    for i in range(5000):
        c.ok("POST", NODES, node("perf-%04d" % i, {"fleet": "yes", "group": str(i % 10)}))
    create = time.time() - t0
    t0 = time.time()
    j = c.ok("GET", NODES + "?labelSelector=fleet%3Dyes")
    el = time.time() - t0
    eq(len(j["items"]), 5000, "items")
    check(el < 1.0, "list of 5000 nodes took %.2fs" % el)
    t0 = time.time()
    total, cont, pages = 0, None, 0
    while True:
        q = "?limit=500" + ("&continue=" + urllib.parse.quote(cont) if cont else "")
        page = c.ok("GET", NODES + q)
        total += len(page["items"])
        pages += 1
        cont = page["metadata"].get("continue")
        if not cont:
            break
    check(total >= 5000 and pages >= 10, "paginated %d in %d pages" % (total, pages))
    w = Watch(d, NODES + "?watch=true")
    evs = w.collect(total, timeout=10)
    eq(len(evs), total, "initial ADDED count")
    w.close()
    print("  perf: 5000 creates %.1fs, list %.3fs, paginated list %.3fs" % (create, el, time.time() - t0))


def t_concurrency(c, d):
    ns_create(c, "conc")
    start = c.ok("GET", pods_path("conc"))["metadata"]["resourceVersion"]
    w = Watch(d, pods_path("conc") + "?watch=true&resourceVersion=" + start)
    wn = Watch(d, "/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dcn-3&resourceVersion=" + start)
    errors = []

    def writer(i):
        try:
            cl = Client(c.double)
            cl.ok("POST", pods_path("conc"), pod("cp-%d" % i, "cn-%d" % i))
            for k in range(25):
                cl.ok("PATCH", pods_path("conc", "cp-%d" % i), {"metadata": {"labels": {"k": str(k)}}})
        except Exception as e:
            errors.append(e)

    ts = [threading.Thread(target=writer, args=(i,)) for i in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    eq(errors, [], "writer errors")
    evs = w.collect(16 * 26, timeout=20)
    eq(len(evs), 16 * 26, "events seen")
    rvs = [rv(e["object"]) for e in evs]
    eq(rvs, sorted(set(rvs)), "events in strictly increasing RV order")
    eq(rvs, list(range(rvs[0], rvs[0] + len(rvs))), "no RV gaps (only these writes happened)")
    per = {}
    for e in evs:
        per.setdefault(e["object"]["metadata"]["name"], []).append(e["object"]["metadata"]["labels"].get("k"))
    eq(per["cp-5"], [None] + [str(k) for k in range(25)], "per-object order")
    nev = wn.collect(26, timeout=10)
    eq([e["object"]["metadata"]["name"] for e in nev], ["cp-3"] * 26, "node-indexed watch")
    w.close()
    wn.close()


def t_tls_token(dt, ca_ctx, client_ctx, other_ctx, token_file):
    c = Client(dt, ctx=ca_ctx)
    status_shape(c.get("/api/v1/namespaces"), 401, "Unauthorized")
    c.token = "wrong"
    status_shape(c.get("/api/v1/namespaces"), 401, "Unauthorized")
    c.token = "secret-1"
    c.ok("GET", "/api/v1/namespaces")
    with open(token_file + ".new", "w") as f:
        f.write("secret-2\n")
    os.rename(token_file + ".new", token_file)
    status_shape(c.get("/api/v1/namespaces"), 401, "Unauthorized")
    c.token = "secret-2"
    c.ok("GET", "/api/v1/namespaces")
    w = Watch(dt, "/api/v1/namespaces?watch=1&timeoutSeconds=2", token="secret-2")
    eq(w.status, 200, "TLS watch status")
    check(len(w.collect(4)) == 4, "TLS watch initial events")
    w.close()
    # a client certificate from the trusted CA is enough
    cc = Client(dt, ctx=client_ctx)
    cc.ok("GET", "/api/v1/namespaces")
    # one from another CA is refused
    try:
        Client(dt, ctx=other_ctx).get("/api/v1/namespaces")
        raise Fail("untrusted client certificate accepted")
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected, OSError) as e:
        if isinstance(e, Fail):
            raise


# --------------------------------------------------------------------------

def openssl(*a):
    subprocess.run(["openssl"] + list(a), check=True, cwd=TMP, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki():
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
            "-subj", "/CN=test-ca")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other.crt", "-days", "1",
            "-subj", "/CN=other-ca")
    with open(os.path.join(TMP, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=apiserver")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "1", "-extfile", "san.ext")
    for name, ca in (("client", "ca"), ("rogue", "other")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=" + name + "/O=system:masters")
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key", "-CAcreateserial",
                "-out", name + ".crt", "-days", "1")


def main():
    with open(os.path.join(TMP, "widget-crd.yaml"), "w") as f:
        f.write(WIDGET_CRD_YAML)
    d = Double("--crd", os.path.join(TMP, "widget-crd.yaml"), "--history", "50", "--bookmark-interval", "0.5")
    try:
        c = Client(d)
        run("port-file-and-yaml2json", t_port_file_and_yaml2json, d)
        run("discovery", t_discovery, c)
        run("resource-version-and-metadata", t_rv_and_metadata, c, d)
        run("error-statuses", t_errors, c)
        run("list-pagination", t_pagination, c)
        run("watch-replay-and-initial-state", t_watch_replay_and_initial, c, d)
        run("watch-too-old-410", t_watch_expired, c, d)
        run("watch-history-overflow", t_history_overflow, c, d)
        run("watch-timeout", t_watch_timeout, c, d)
        run("watch-bookmarks", t_bookmarks, c, d)
        run("selectors-list", t_selectors_list, c)
        run("selectors-watch", t_selectors_watch, c, d)
        run("merge-patch", t_merge_patch, c)
        run("json-patch", t_json_patch, c)
        run("status-subresource", t_status_subresource, c)
        run("finalizers", t_finalizers, c, d)
        run("pod-graceful-delete", t_pod_grace, c, d)
        run("cr-validation", t_cr_validation, c)
        run("eviction-and-pdb", t_eviction, c, d)
        run("leases", t_leases, c)
        run("crd-post-and-namespaced-cr", t_crd_post_and_namespaced, c, d)
        run("namespace-delete", t_namespaces, c)
        run("test-control", t_control, c, d)
        run("concurrent-writes-and-watch-order", t_concurrency, c, d)
        run("performance-5000-nodes", t_performance, c, d)
    finally:
        d.stop()

    try:
        make_pki()
    except (OSError, subprocess.CalledProcessError) as e:
        RESULTS.append(("tls-pki", False))
        print("FAIL tls-pki: %s" % e)
        return
    token_file = os.path.join(TMP, "token")
    with open(token_file, "w") as f:
        f.write("secret-1\n")
    p = lambda n: os.path.join(TMP, n)
    ca_ctx = ssl.create_default_context(cafile=p("ca.crt"))
    client_ctx = ssl.create_default_context(cafile=p("ca.crt"))
    client_ctx.load_cert_chain(p("client.crt"), p("client.key"))
    other_ctx = ssl.create_default_context(cafile=p("ca.crt"))
    other_ctx.load_cert_chain(p("rogue.crt"), p("rogue.key"))
    dt = Double("--tls-cert", p("server.crt"), "--tls-key", p("server.key"), "--client-ca", p("ca.crt"),
                "--token-file", token_file, tls=ca_ctx)
    try:
        run("tls-token-and-client-cert", t_tls_token, dt, ca_ctx, client_ctx, other_ctx, token_file)
    finally:
        dt.stop()


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    failed = [n for n, ok in RESULTS if not ok]
    print("%d checks, %d failed%s" % (len(RESULTS), len(failed), (": " + ", ".join(failed)) if failed else ""))
    sys.exit(1 if failed else 0)
