#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Simulated fleet: the real hull-operator and one real hull-node process per
node, against the API-server double (apiserver.py) and simulated hosts
(fake-hosts.py). Every Node and OSNode watch event is checked against the
rollout invariant: within an OS group, the nodes that are cordoned, NotReady
or working on a task never outnumber maxUnavailable.

Usage: test-fleet.py SCENARIO --apiserver apiserver.py --yaml2json EXE
                     --crds DIR --hull-node EXE --hull-operator EXE --fake-hosts fake-hosts.py
"""

import argparse
import calendar
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kubeapi import Api  # noqa: E402

A = None
FAILED = []


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def check(cond, what):
    print(("PASS " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILED.append(what)
    return cond


class Fleet:
    def __init__(self, tmp, n, labels=None, version="1.0.0", pods=None, extra_nodes=(), crds=None,
                 kube_version=None, components=None):
        self.tmp = tmp
        crds = crds or A.crds
        self.procs = []
        self.node_procs = {}
        self.operators = []
        self.names = [f"node-{i:03d}" for i in range(n)]
        portfile = os.path.join(tmp, "port")
        self.double = self.spawn("apiserver", [sys.executable, A.apiserver, "--port", "0", "--port-file", portfile,
                                              "--yaml2json", A.yaml2json, "--bookmark-interval", "2"] +
                                 (["--kube-version", kube_version] if kube_version else []) +
                                 sum([["--crd", os.path.join(crds, f)] for f in sorted(os.listdir(crds))], []))
        for _ in range(200):
            if os.path.exists(portfile):
                break
            time.sleep(0.05)
        port = int(open(portfile).read())
        self.api = Api(f"http://127.0.0.1:{port}")
        self.kubeconfig = os.path.join(tmp, "kubeconfig")
        with open(self.kubeconfig, "w") as f:
            f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: sim
  cluster:
    server: http://127.0.0.1:{port}
users:
- name: sim
  user:
    token: sim-token
contexts:
- name: sim
  context:
    cluster: sim
    user: sim
    namespace: hull-system
current-context: sim
""")
        for ns in ("hull-system", "default"):
            self.api.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": ns}})
        self.all_names = self.names + list(extra_nodes)
        for i, name in enumerate(self.all_names):
            lab = {"kubernetes.io/hostname": name}
            lab.update(labels(i, name) if labels else {"pool": "workers"})
            self.api.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                              "metadata": {"name": name, "labels": lab}, "spec": {}})
            self.api.call("PATCH", f"/api/v1/nodes/{name}/status", {"status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "",
                 "lastHeartbeatTime": "2026-11-30T00:00:00Z", "lastTransitionTime": "2026-11-30T00:00:00Z"}]}},
                "application/merge-patch+json")
        self.hostdir = os.path.join(tmp, "hosts")
        os.mkdir(self.hostdir)
        extra = []
        if components:
            with open(os.path.join(tmp, "components.json"), "w") as f:
                json.dump(components, f)
            extra = ["--components", os.path.join(tmp, "components.json")]
        self.hosts = self.spawn("fake-hosts", [sys.executable, A.fake_hosts, "--dir", self.hostdir, "--api",
                                               self.api.base, "--nodes", ",".join(self.all_names),
                                               "--version", version] + extra)
        for _ in range(200):
            if os.path.exists(os.path.join(self.hostdir, "ready")):
                break
            time.sleep(0.05)
        for name in self.all_names:
            self.start_node(name)
        self.watch = Watcher(self)

    def spawn(self, tag, argv):
        out = open(os.path.join(self.tmp, tag + ".log"), "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def start_node(self, name):
        self.node_procs[name] = self.spawn(f"hull-node-{name}", [
            A.hull_node, "--node", name, "--kubeconfig", self.kubeconfig,
            "--agent-socket", os.path.join(self.hostdir, name + ".sock"), "--poll-ms", "200,2000",
            "--reboot-retry", "5"])

    def start_operator(self, ident="op-1", metrics="off"):
        p = self.spawn(f"hull-operator-{ident}", [A.hull_operator, "--kubeconfig", self.kubeconfig, "--identity",
                                                  ident, "--metrics-address", metrics, "--resync", "2",
                                                  "--lease-timing", "4,3,1", "--min-interval-ms", "50"])
        self.operators.append(p)
        return p

    def behave(self, node, b):
        with open(os.path.join(self.hostdir, node + ".json"), "w") as f:
            json.dump(b, f)

    def apply_os(self, name, spec):
        return self.api.create("/apis/hull.dev/v1alpha1/oses", {"apiVersion": "hull.dev/v1alpha1", "kind": "OS",
                                                               "metadata": {"name": name}, "spec": spec})

    def os(self, name):
        return self.api.get(f"/apis/hull.dev/v1alpha1/oses/{name}")

    def condition(self, name, ctype):
        for c in (self.os(name).get("status") or {}).get("conditions") or []:
            if c["type"] == ctype:
                return c
        return None

    def wait(self, what, fn, timeout=180, interval=0.5):
        end = time.time() + timeout
        while time.time() < end:
            v = fn()
            if v:
                return v
            time.sleep(interval)
        check(False, f"timed out waiting for {what}")
        return None

    def check_rbac(self):
        """Every request hull-operator and hull-node made in this scenario
        is one that deploy/'s RBAC grants their service accounts."""
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import rbac
        reqs = self.api.get("/_double/requests?since=0")["requests"]
        ours = [r for r in reqs if (r.get("userAgent") or "").startswith(("hull-operator/", "hull-node/"))]
        strangers = sorted({r.get("userAgent") or "" for r in reqs
                            if not (r.get("userAgent") or "").startswith(
                                ("hull-operator/", "hull-node/", "hullctl/", "Python-urllib/"))
                            and not r["path"].startswith("/_double/")})
        check(not strangers, f"every API request names its program in User-Agent ({strangers})")
        deploy = os.path.join(os.path.dirname(A.crds))
        # hullctl runs as a person bound to deploy/people-rbac.yaml's
        # hull-fleet-admin, the way a site binds its platform team.
        objects = rbac.load_objects(deploy, A.yaml2json) + [{
            "kind": "ClusterRoleBinding", "metadata": {"name": "test-people"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "hull-fleet-admin"},
            "subjects": [{"kind": "ServiceAccount", "namespace": "people", "name": "person"}]}]
        people = [r for r in reqs if (r.get("userAgent") or "").startswith("hullctl/")]
        v = rbac.check_by_user_agent(reqs, None, {"hull-operator/": "hull-system:hull-operator",
                                                  "hull-node/": "hull-system:hull-node",
                                                  "hullctl/": "people:person"},
                                     objects=objects, warnings=[], ignore_agents=("Python-urllib/",))
        check(not v, f"deploy/ RBAC allows all {len(ours)} requests of hull-operator and hull-node and the "
                     f"{len(people)} of hullctl as hull-fleet-admin ({[str(x) for x in v[:3]]})")

    def close(self):
        try:
            if not FAILED:
                self.check_rbac()
        except Exception as e:
            check(False, f"RBAC check: {e}")
        self.watch.stop = True
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


class Watcher:
    """Follows Nodes and OSNodes through watches and checks the invariant on
    every single event."""

    def __init__(self, fleet):
        self.fleet = fleet
        self.nodes = {}
        self.osnodes = {}
        self.groups = {}             # OS name -> (set of node names, maxUnavailable as int)
        self.max_seen = {}
        self.violations = []
        self.chosen_order = []       # (time, node, task id)
        self.done_at = {}
        self.released_at = {}        # hull-node cleared the task: the node is back in service
        self.cordoned_at = {}        # node -> first time seen cordoned
        self.phases = {}             # node -> OSNode phases seen, in order, repeats collapsed
        self.lock = threading.Lock()
        self.stop = False
        self.events = 0
        for kind in ("/api/v1/nodes", "/apis/hull.dev/v1alpha1/osnodes"):
            threading.Thread(target=self.run, args=(kind,), daemon=True).start()

    def run(self, path):
        rv = None
        while not self.stop:
            try:
                if rv is None:
                    lst = self.fleet.api.get(path)
                    rv = lst["metadata"]["resourceVersion"]
                    with self.lock:
                        for o in lst["items"]:
                            self.apply(path, "ADDED", o)
                url = f"{self.fleet.api.base}{path}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true" \
                      f"&timeoutSeconds=60"
                with urllib.request.urlopen(url, timeout=120) as r:
                    for line in r:
                        if self.stop:
                            return
                        ev = json.loads(line)
                        if ev["type"] == "ERROR":
                            rv = None
                            break
                        rv = ev["object"]["metadata"]["resourceVersion"]
                        if ev["type"] == "BOOKMARK":
                            continue
                        with self.lock:
                            self.apply(path, ev["type"], ev["object"])
            except Exception as e:
                if not self.stop:
                    time.sleep(0.2)

    def apply(self, path, typ, obj):
        name = obj["metadata"]["name"]
        store = self.nodes if "nodes" in path and "osnodes" not in path else self.osnodes
        if typ == "DELETED":
            store.pop(name, None)
        else:
            old = store.get(name)
            store[name] = obj
            if store is self.nodes:
                ann = (obj["metadata"].get("annotations") or {}).get("hull.dev/task")
                old_ann = ((old or {}).get("metadata", {}).get("annotations") or {}).get("hull.dev/task")
                if ann and ann != old_ann:
                    self.chosen_order.append((time.time(), name, json.loads(ann)["id"]))
                if old_ann and not ann:
                    self.released_at.setdefault((name, json.loads(old_ann)["id"]), time.time())
                if (obj.get("spec") or {}).get("unschedulable"):
                    self.cordoned_at.setdefault(name, time.time())
            else:
                st = obj.get("status") or {}
                seen = self.phases.setdefault(name, [])
                if st.get("phase") and (not seen or seen[-1] != st.get("phase")):
                    seen.append(st.get("phase"))
                if st.get("phase") == "Done":
                    self.done_at.setdefault((name, st.get("task")), time.time())
        self.events += 1
        self.check_invariant()

    def unavailable(self, name):
        n = self.nodes.get(name)
        if not n:
            return False
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in (n.get("status") or {}).get("conditions") or [])
        cordoned = bool((n.get("spec") or {}).get("unschedulable"))
        ann = (n["metadata"].get("annotations") or {}).get("hull.dev/task")
        working = False
        if ann:
            tid = json.loads(ann)["id"]
            st = (self.osnodes.get(name) or {}).get("status") or {}
            working = not (st.get("task") == tid and st.get("phase") in ("Done", "Failed", "RolledBack"))
        return (not ready) or cordoned or working

    def check_invariant(self):
        for os_name, (members, max_unavail) in self.groups.items():
            count = sum(1 for m in members if self.unavailable(m))
            self.max_seen[os_name] = max(self.max_seen.get(os_name, 0), count)
            if count > max_unavail:
                self.violations.append((time.time(), os_name, count,
                                        sorted(m for m in members if self.unavailable(m))))

    def track(self, os_name, members, max_unavail):
        with self.lock:
            self.groups[os_name] = (set(members), max_unavail)


def version_of(fleet, name):
    return ((fleet.watch.osnodes.get(name) or {}).get("status") or {}).get("version")


def upgrade_spec(version="2.0.0", max_unavailable=3, batches=None, selector=None, **extra):
    spec = {"version": version, "operation": "upgrade",
            "image": {"url": f"https://updates.example.com/hull-{version}.hullb", "sha256": "ab" * 32,
                      "keyId": "0123456789abcdef"},
            "strategy": {"maxUnavailable": max_unavailable, "failureBudget": 1, "nodeTimeoutSeconds": 60},
            "drain": {"timeoutSeconds": 60, "gracePeriodSeconds": 0}}
    if batches:
        spec["strategy"]["batches"] = batches
    if selector is not None:
        spec["nodeSelector"] = selector
    for k, v in extra.items():
        if isinstance(v, dict) and k in spec:
            spec[k].update(v)
        else:
            spec[k] = v
    return spec


def all_at(fleet, names, version):
    with fleet.watch.lock:
        return all(version_of(fleet, n) == version and not (fleet.watch.nodes[n]["metadata"].get("annotations") or {})
                   .get("hull.dev/task") for n in names)


# ---------------- scenarios ----------------

def scenario_rollout(tmp):
    """50 nodes, maxUnavailable 3, canary batch of 1 then 10 % then the rest."""
    f = Fleet(tmp, 50)
    try:
        f.start_operator()
        f.watch.track("workers", f.names, 3)
        f.apply_os("workers", upgrade_spec(max_unavailable=3, selector={"pool": "workers"},
                                           batches=[{"nodes": 1}, {"nodes": "10%"}, {"nodes": "100%"}]))
        t0 = time.time()
        ok = f.wait("all 50 nodes at 2.0.0", lambda: all_at(f, f.names, "2.0.0"), timeout=600)
        log(f"rollout of 50 nodes took {time.time() - t0:.1f} s, {f.watch.events} watch events checked")
        check(ok, "every node reached 2.0.0")
        check(not f.watch.violations, f"maxUnavailable 3 never exceeded (max seen {f.watch.max_seen.get('workers')}, "
                                      f"violations {f.watch.violations[:3]})")
        check(f.watch.max_seen.get("workers", 0) >= 2, "the rollout used its parallelism (more than one node at once)")
        order = f.watch.chosen_order
        first = order[0] if order else None
        if check(first is not None, "a canary node was chosen"):
            done = f.watch.released_at.get((first[1], first[2]))
            others = [t for (t, n, _) in order if n != first[1]]
            check(done is not None and others and min(others) > done,
                  "the canary was back in service on the new version before any other node was chosen")
        c = f.wait("Complete condition", lambda: (f.condition("workers", "Complete") or {}).get("status") == "True")
        st = f.os("workers")["status"]
        check(st.get("updated") == 50 and st.get("desired") == 50 and st.get("failed") == 0,
              f"OS status counts desired 50, updated 50, failed 0 ({ {k: st.get(k) for k in ('desired', 'updated', 'failed', 'inProgress')} })")
        with f.watch.lock:
            cordoned = [n for n in f.names if (f.watch.nodes[n].get("spec") or {}).get("unschedulable")]
        check(not cordoned, f"no node left cordoned ({cordoned[:5]})")
    finally:
        f.close()


def scenario_pdb(tmp):
    """A PodDisruptionBudget blocks the drain until it is relaxed."""
    f = Fleet(tmp, 3)
    try:
        for i, n in enumerate(f.names):
            f.api.create("/api/v1/namespaces/default/pods", {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"db-{i}", "namespace": "default", "labels": {"app": "db"},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
                                                  "uid": "u-db", "controller": True}]},
                "spec": {"nodeName": n, "containers": [{"name": "db", "image": "db"}]}})
            f.api.call("PATCH", f"/api/v1/namespaces/default/pods/db-{i}/status", {"status": {
                "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
                "application/merge-patch+json")
        f.api.create("/apis/policy/v1/namespaces/default/poddisruptionbudgets", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "db", "namespace": "default"},
            "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "db"}}}})
        f.start_operator()
        f.watch.track("workers", f.names, 1)
        f.apply_os("workers", upgrade_spec(max_unavailable=1, drain={"timeoutSeconds": 600}))
        f.wait("a node draining", lambda: any(((o.get("status") or {}).get("phase") == "Draining")
                                              for o in list(f.watch.osnodes.values())))
        time.sleep(8)
        with f.watch.lock:
            phases = [((f.watch.osnodes.get(n) or {}).get("status") or {}).get("phase") for n in f.names]
        check(phases.count("Draining") == 1 and "Done" not in phases,
              f"the drain is held by the PDB (phases {phases})")
        pods = f.api.get("/api/v1/namespaces/default/pods")["items"]
        check(len(pods) == 3, f"no pod evicted while the PDB forbids it ({len(pods)} pods)")
        st, _ = f.api.patch("/apis/policy/v1/namespaces/default/poddisruptionbudgets/db",
                            {"spec": {"minAvailable": 2}})
        check(st == 200, "PDB relaxed to minAvailable 2")
        # Evicted pods are not recreated by anything in the double, so the
        # PDB lets exactly one through; recreate each evicted pod on another
        # node as its StatefulSet would, so the rollout can go on.
        def recreate():
            names = {p["metadata"]["name"] for p in f.api.get("/api/v1/namespaces/default/pods")["items"]}
            for i in range(3):
                if f"db-{i}" not in names:
                    target = next(n for n in f.names if not (f.watch.nodes[n].get("spec") or {}).get("unschedulable"))
                    f.api.create("/api/v1/namespaces/default/pods", {
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": f"db-{i}", "namespace": "default", "labels": {"app": "db"},
                                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                                          "name": "db", "uid": "u-db", "controller": True}]},
                        "spec": {"nodeName": target, "containers": [{"name": "db", "image": "db"}]}})
                    f.api.call("PATCH", f"/api/v1/namespaces/default/pods/db-{i}/status", {"status": {
                        "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
                        "application/merge-patch+json")
            return all_at(f, f.names, "2.0.0")
        check(f.wait("all nodes at 2.0.0 after the PDB was relaxed", recreate, timeout=240),
              "the rollout completes once the PDB allows evictions")
        check(not f.watch.violations, "maxUnavailable 1 never exceeded")
    finally:
        f.close()


def scenario_budget(tmp):
    """A node that never comes back uses up the failure budget and halts the
    rollout; what quarantine means (docs/OPERATOR.md, "What quarantine
    means"): the task annotation and the cordon stay, hull-node finishes the
    task when the node returns, Hull never removes the label, a label removed
    by hand from a node still in progress comes back, and once removed from a
    finished node the rollout goes on. A node quarantined while it still
    works (a download longer than nodeTimeoutSeconds) counts as unavailable
    until it finishes."""
    f = Fleet(tmp, 8, labels=lambda i, name: {"pool": "slow" if i >= 6 else "workers"})
    workers, slow = f.names[:6], f.names[6:]
    try:
        f.behave("node-000", {"reboot": "never"})
        f.behave("node-006", {"stage_seconds": 75})
        port = free_port()
        f.start_operator(metrics=f"127.0.0.1:{port}")
        f.watch.track("workers", workers, 1)
        f.watch.track("slow", slow, 1)
        spec = upgrade_spec(max_unavailable=1, selector={"pool": "workers"})
        spec["strategy"]["nodeTimeoutSeconds"] = 60
        f.apply_os("workers", spec)
        f.apply_os("slow", upgrade_spec(max_unavailable=1, selector={"pool": "slow"},
                                        strategy={"failureBudget": 0, "nodeTimeoutSeconds": 60}))

        def labelled(n):
            return (node_obj(f, n)["metadata"].get("labels") or {}).get("hull.dev/quarantined") == "true"
        f.wait("node-000 quarantined", lambda: labelled("node-000"), timeout=150)
        # A node quarantined while it still works (staging for longer than
        # nodeTimeoutSeconds, Ready and not cordoned): it counts as failed,
        # but is still unavailable, so the other node of its group waits
        # (checked below: node-007 is chosen only once node-006 is done).
        f.wait("node-006 quarantined", lambda: labelled("node-006"), timeout=30)
        check(osnode_status(f, "node-006").get("phase") == "Staging" and not cordoned(f, "node-006"),
              f"node-006 was quarantined while staging, uncordoned ({osnode_status(f, 'node-006').get('phase')})")
        c = f.wait("Degraded condition", lambda: (f.condition("workers", "Degraded") or {}).get("status") == "True"
                   and f.condition("workers", "Degraded"))
        check(bool(c) and c.get("reason") == "FailureBudgetExceeded" if c else False,
              f"Degraded with reason FailureBudgetExceeded ({c})")
        time.sleep(6)
        with f.watch.lock:
            touched = [n for n in workers[1:] if (f.watch.nodes[n]["metadata"].get("annotations") or {})
                       .get("hull.dev/task")]
        check(not touched, f"no other node was given a task after the failure ({touched})")
        st = f.os("workers")["status"]
        check(st.get("failed") == 1 and "node-000" in (st.get("quarantinedNodes") or []),
              f"status: failed 1, node-000 quarantined ({st.get('failed')}, {st.get('quarantinedNodes')})")
        ev = f.api.get("/apis/events.k8s.io/v1/namespaces/default/events")["items"]
        check(any(e.get("reason") == "NodeQuarantined" for e in ev), "a NodeQuarantined Event was emitted")

        # What the quarantine leaves: the node may be half-way.
        n0 = node_obj(f, "node-000")
        check(bool(task_of(f, "node-000")), "the task annotation stays on the quarantined node")
        check((n0.get("spec") or {}).get("unschedulable") is True and
              (n0["metadata"].get("annotations") or {}).get("hull.dev/cordoned") == "true",
              "the quarantined node stays cordoned (hull-node's cordon, hull.dev/cordoned)")
        check(osnode_status(f, "node-000").get("phase") == "Rebooting",
              f"its OSNode still says Rebooting ({osnode_status(f, 'node-000').get('phase')})")


        # A person removes the label while node-000 is still down: it is
        # still in progress and overdue, so it is quarantined again.
        f.api.patch("/api/v1/nodes/node-000", {"metadata": {"labels": {"hull.dev/quarantined": None}}})
        check(f.wait("node-000 quarantined again", lambda: labelled("node-000"), timeout=20),
              "a label removed from a node still in progress comes back")
        ev = f.api.get("/apis/events.k8s.io/v1/namespaces/default/events")["items"]
        n_q = sum(1 for e in ev if e.get("reason") == "NodeQuarantined" and "node-000" in (e.get("note") or ""))
        check(n_q == 2, f"... with a second NodeQuarantined Event ({n_q})")

        # The host is power-cycled: hull-node finishes the task it was given.
        f.behave("node-000", {})
        ok = f.wait("node-000 Done at 2.0.0", lambda: osnode_status(f, "node-000").get("phase") == "Done" and
                    version_of(f, "node-000") == "2.0.0" and not task_of(f, "node-000") and
                    not cordoned(f, "node-000"), timeout=60)
        check(bool(ok), "back from the reboot, hull-node finishes the task: Done, uncordoned, task cleared")
        time.sleep(4)
        check(labelled("node-000"), "Hull never removes the quarantine label")
        st = f.os("workers")["status"]
        check(st.get("failed") == 1 and (f.condition("workers", "Degraded") or {}).get("reason") ==
              "FailureBudgetExceeded", f"the node still counts as failed, the rollout stays halted ({st.get('failed')})")
        check(not any(task_of(f, n) for n in workers[1:]), "no other node was started")

        # node-006 finished staging, drained, rebooted: then node-007 goes.
        check(f.wait("node-007 at 2.0.0", lambda: all_at(f, ["node-006", "node-007"], "2.0.0"), timeout=90),
              "the quarantined node-006 finishes its task, then node-007 is updated")
        t6 = f.watch.released_at.get(("node-006", "slow/upgrade/2.0.0"))
        t7 = [t for (t, n, _) in f.watch.chosen_order if n == "node-007"]
        check(t6 is not None and t7 and min(t7) > t6, f"node-007 was chosen only after node-006 finished ({t6}, {t7})")

        # The person removes the label of the finished node: it is updated,
        # and the halted rollout goes on to the end.
        f.api.patch("/api/v1/nodes/node-000", {"metadata": {"labels": {"hull.dev/quarantined": None}}})
        check(f.wait("all workers at 2.0.0", lambda: all_at(f, workers, "2.0.0"), timeout=120),
              "with the label removed the rollout resumes and completes")
        st = f.wait("workers Complete", lambda: (lambda s: s if s.get("updated") == 6 and s.get("failed") == 0
                                                   else None)(f.os("workers")["status"]), timeout=20)
        check(bool(st) and not st.get("quarantinedNodes"), f"updated 6, failed 0, nobody quarantined ({st})")
        _, text = scrape(port)
        q = parse_prometheus(text)[1].get(("hull_operator_nodes_quarantined_total", frozenset()))
        check(q == 3, f"hull_operator_nodes_quarantined_total counts node-000 twice and node-006 once ({q})")
        check(not f.watch.violations, f"maxUnavailable 1 never exceeded in either group ({f.watch.violations[:3]})")
    finally:
        f.close()


def scenario_fallback(tmp):
    """A node whose new image does not boot falls back; hull-node reports RolledBack and uncordons.
    A node whose agent refuses the stage is Failed with the agent's reason.
    A node whose reboot is lost (still up on the same boot) is asked again;
    so is one whose agent was busy when asked to activate."""
    f = Fleet(tmp, 4)
    try:
        f.behave("node-000", {"boot": "fallback"})
        f.behave("node-001", {"reboot": "lost"})
        f.behave("node-003", {"activate": "busy-once"})
        f.behave("node-002", {"stage": "refuse"})
        f.start_operator()
        f.watch.track("workers", f.names, 1)
        f.apply_os("workers", upgrade_spec(max_unavailable=1, strategy={"failureBudget": 3}))
        f.wait("node-000 RolledBack", lambda: ((f.watch.osnodes.get("node-000") or {}).get("status") or {})
               .get("phase") == "RolledBack")
        st = (f.watch.osnodes.get("node-000") or {}).get("status") or {}
        check(st.get("version") == "1.0.0" and "boot_failed" in ((st.get("lastError") or {}).get("message") or ""),
              f"OSNode says 1.0.0 and the boot failure ({st.get('version')}, {st.get('lastError')})")
        f.wait("node-000 uncordoned", lambda: not (f.api.get("/api/v1/nodes/node-000").get("spec") or {})
               .get("unschedulable"))
        check(f.wait("node-001 upgraded", lambda: all_at(f, ["node-001"], "2.0.0")),
              "the other node still upgrades, though its first reboot was lost")
        with open(os.path.join(f.hostdir, "node-001.log")) as fl:
            calls = [c["path"] for c in map(json.loads, fl) if c["method"] == "POST"]
        check(calls[-2:] == ["/v1/activate", "/v1/reboot"],
              f"hull-node asked node-001 again with a plain reboot (the boot target was set): {calls}")
        ev = f.api.get("/apis/events.k8s.io/v1/namespaces/default/events")["items"]
        check(any(e.get("reason") == "RebootRetry" and (e.get("regarding") or {}).get("name") == "node-001"
                  for e in ev), "a RebootRetry Event for node-001")
        check(f.wait("node-003 upgraded", lambda: all_at(f, ["node-003"], "2.0.0")),
              "a busy agent is asked to activate again, not failed")
        with open(os.path.join(f.hostdir, "node-003.log")) as fl:
            acts = [c["status"] for c in map(json.loads, fl) if c["path"] == "/v1/activate"]
        check(acts == [409, 200], f"node-003: activate answered busy, then done ({acts})")
        f.wait("node-002 Failed", lambda: ((f.watch.osnodes.get("node-002") or {}).get("status") or {})
               .get("phase") == "Failed")
        st = (f.watch.osnodes.get("node-002") or {}).get("status") or {}
        check("in use" in ((st.get("lastError") or {}).get("message") or ""),
              f"a refused stage: Failed with the agent's reason ({st.get('lastError')})")
        check(f.node_procs["node-002"].poll() is None, "hull-node survives the agent's refusal")
        check(not (f.api.get("/api/v1/nodes/node-002").get("spec") or {}).get("unschedulable"),
              "the refused node was never cordoned")
        st = f.wait("status failed 2 updated 2", lambda: (lambda s: s if s.get("failed") == 2 and s.get("updated") == 2
                                                          else None)(f.os("workers")["status"]))
        check(bool(st), f"status failed 2 updated 2 ({f.os('workers')['status']})")
    finally:
        f.close()


def scenario_operator_kills(tmp):
    """The operator is SIGKILLed at random points many times; the rollout still completes within the limit."""
    f = Fleet(tmp, 20)
    try:
        f.watch.track("workers", f.names, 3)
        f.apply_os("workers", upgrade_spec(max_unavailable=3))
        kills = 0
        rnd = random.Random(int(os.environ.get("HULL_TEST_SEED", "4242")))
        deadline = time.time() + 420
        ident = 0
        while time.time() < deadline and not all_at(f, f.names, "2.0.0"):
            ident += 1
            p = f.start_operator(f"op-{ident}")
            time.sleep(rnd.uniform(0.5, 6.0))
            if all_at(f, f.names, "2.0.0"):
                break
            p.kill()
            p.wait()
            kills += 1
        if not all_at(f, f.names, "2.0.0"):
            f.start_operator("op-final")
        ok = f.wait("all nodes at 2.0.0", lambda: all_at(f, f.names, "2.0.0"), timeout=240)
        log(f"{kills} operator kills")
        check(kills >= 5, f"the operator was killed many times ({kills})")
        check(ok, "the rollout completed despite the kills")
        check(not f.watch.violations, f"maxUnavailable 3 never exceeded (max seen {f.watch.max_seen.get('workers')})")
    finally:
        f.close()


def scenario_takeover(tmp):
    """Two replicas: one leads; when it dies the other takes over through the Lease."""
    f = Fleet(tmp, 8)
    try:
        p1 = f.start_operator("op-a")
        time.sleep(1)
        p2 = f.start_operator("op-b")
        lease_path = "/apis/coordination.k8s.io/v1/namespaces/hull-system/leases/hull-operator"
        lease = f.wait("a lease holder", lambda: ((f.api.get(lease_path) or {}).get("spec") or {}).get("holderIdentity"))
        check(lease == "op-a", f"the first replica leads ({lease})")
        f.watch.track("workers", f.names, 2)
        f.apply_os("workers", upgrade_spec(max_unavailable=2))
        f.wait("some nodes upgraded", lambda: sum(1 for n in f.names if version_of(f, n) == "2.0.0") >= 2)
        p1.kill()
        p1.wait()
        t0 = time.time()
        holder = f.wait("op-b leading", lambda: ((f.api.get(lease_path) or {}).get("spec") or {})
                        .get("holderIdentity") == "op-b", timeout=30)
        log(f"takeover after {time.time() - t0:.1f} s")
        check(bool(holder), "the second replica took the lease after the leader was killed")
        check(f.wait("all nodes at 2.0.0", lambda: all_at(f, f.names, "2.0.0")), "the rollout completed under op-b")
        spec = f.api.get(lease_path)["spec"]
        check(spec.get("leaseTransitions", 0) >= 1, f"leaseTransitions counted the change ({spec})")
        check(not f.watch.violations, "maxUnavailable 2 never exceeded across the takeover")
    finally:
        f.close()


def scenario_selection(tmp):
    """Overlapping selectors raise Conflict; unmanaged nodes are never touched; a closed window moves nothing."""
    def labels(i, name):
        lab = {"pool": "workers"}
        if i < 2:
            lab["zone"] = "z1"
        if i == 5:
            lab["hull.dev/unmanaged"] = "true"
        if i >= 6:
            lab = {"pool": "db"}
        return lab
    f = Fleet(tmp, 8, labels=labels)
    try:
        f.watch.track("workers", f.names[:6], 2)
        # All three exist before the operator starts, so that its first pass
        # sees the overlap (scenario_conflict_late: one that arises later).
        f.apply_os("workers", upgrade_spec(max_unavailable=2, selector={"pool": "workers"}))
        f.apply_os("zone1", upgrade_spec(version="3.0.0", max_unavailable=1, selector={"zone": "z1"}))
        # A window that is closed now: the day of the week after tomorrow.
        closed_day = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][(time.gmtime().tm_wday + 3) % 7]
        f.apply_os("db", upgrade_spec(max_unavailable=1, selector={"pool": "db"},
                                      window={"days": [closed_day], "start": "00:00", "end": "23:59",
                                              "timeZone": "UTC"}))
        f.start_operator()
        c = f.wait("Conflict on workers", lambda: (f.condition("workers", "Conflict") or {}).get("status") == "True")
        check(bool(c), "workers reports Conflict")
        check((f.condition("zone1", "Conflict") or {}).get("status") == "True", "zone1 reports Conflict")
        st = f.os("workers")["status"]
        check(sorted(st.get("conflictingNodes") or []) == ["node-000", "node-001"],
              f"conflicting nodes listed ({st.get('conflictingNodes')})")
        check(f.wait("workers' other nodes upgraded",
                     lambda: all_at(f, ["node-002", "node-003", "node-004"], "2.0.0")),
              "the non-conflicting workers upgrade")
        time.sleep(3)
        with f.watch.lock:
            for n in ("node-000", "node-001", "node-005", "node-006", "node-007"):
                node = f.watch.nodes[n]
                check(not (node["metadata"].get("annotations") or {}).get("hull.dev/task") and
                      version_of(f, n) == "1.0.0" and not (node.get("spec") or {}).get("unschedulable"),
                      f"{n} untouched (conflict, unmanaged or window closed)")
        p = f.condition("db", "Progressing")
        check(p is not None and p.get("reason") == "WindowClosed", f"db waits for its window ({p})")
        # Bad custom resources: refused at admission, or Degraded; never half-applied.
        # maxUnavailable's range and percentage form, and the image an
        # upgrade needs, are CEL rules of the CRD: the double evaluates them
        # and answers 422 with a real server's words. (The operator's twins
        # of the rules, osspec.c, are unit-tested in tests/unit/test-osspec.c.)
        def os_refused(name, spec, cause):
            st_, out = f.api.call("POST", "/apis/hull.dev/v1alpha1/oses", {
                "apiVersion": "hull.dev/v1alpha1", "kind": "OS", "metadata": {"name": name}, "spec": spec})
            want = f'OS.hull.dev "{name}" is invalid: {cause}'
            check(st_ == 422 and (out or {}).get("message") == want, f"{name}: 422 {want!r} ({st_} {out})")
        for name, mu in (("bad1", -1), ("bad2", "150%")):
            os_refused(name, dict(upgrade_spec(selector={"pool": "none"}), strategy={"maxUnavailable": mu}),
                       'spec.strategy.maxUnavailable: Invalid value: "": must be a count from 0 to 1000000000 '
                       "or a percentage from 0% to 100%")
        st_, out = f.api.call("POST", "/apis/hull.dev/v1alpha1/oses", {
            "apiVersion": "hull.dev/v1alpha1", "kind": "OS", "metadata": {"name": "bad3"},
            "spec": dict(upgrade_spec(), operation="reinstall")})
        check(st_ == 422, f"unknown operation rejected by the schema ({st_})")
        spec = upgrade_spec(selector={"pool": "none"})
        del spec["image"]["sha256"]
        os_refused("bad4", spec, 'spec: Invalid value: "object": spec.image.url and spec.image.sha256 are required '
                                 "for operation upgrade")
        # What only the operator can judge reaches it: a time zone the node's
        # zoneinfo does not have is Degraded/InvalidSpec, nothing is done.
        f.apply_os("bad5", upgrade_spec(selector={"pool": "none"},
                                        window={"start": "01:00", "end": "02:00", "timeZone": "Mars/Olympus_Mons"}))
        c = f.wait("bad5 Degraded", lambda: (f.condition("bad5", "Degraded") or {}).get("status") == "True"
                   and f.condition("bad5", "Degraded"))
        want = 'spec.window.timeZone: "Mars/Olympus_Mons" is not a time zone'
        check(bool(c) and c.get("reason") == "InvalidSpec" and want in c.get("message", ""),
              f"unknown time zone: Degraded/InvalidSpec ({c})")
        check(not f.watch.violations, "maxUnavailable never exceeded")
    finally:
        f.close()


def scenario_conflict_late(tmp):
    """A conflict that arises while nodes work on a task: the task runs on,
    and those nodes still count against maxUnavailable until they are done."""
    def labels(i, name):
        return {"pool": "workers", "zone": "z1"} if i < 2 else {"pool": "workers"}
    f = Fleet(tmp, 6, labels=labels)
    try:
        for n in f.names:
            f.behave(n, {"stage_seconds": 4})
        f.watch.track("workers", f.names, 2)
        f.start_operator()
        f.apply_os("workers", upgrade_spec(max_unavailable=2, selector={"pool": "workers"}))

        def tasked():
            with f.watch.lock:
                return sorted(n for n in f.names
                              if ((f.watch.nodes.get(n) or {}).get("metadata", {}).get("annotations") or {})
                              .get("hull.dev/task"))
        first = f.wait("the first two nodes chosen", lambda: tasked() if len(tasked()) == 2 else None)
        check(first == ["node-000", "node-001"], f"workers chose node-000 and node-001 first ({first})")
        f.apply_os("zone1", upgrade_spec(version="3.0.0", max_unavailable=1, selector={"zone": "z1"}))
        c = f.wait("Conflict on workers", lambda: (f.condition("workers", "Conflict") or {}).get("status") == "True")
        check(bool(c), "the late overlap is a Conflict on workers")
        check(f.wait("the rest of workers upgraded",
                     lambda: all_at(f, ["node-002", "node-003", "node-004", "node-005"], "2.0.0"), timeout=240),
              "the other workers upgrade")
        check(not f.watch.violations,
              f"maxUnavailable 2 never exceeded while the conflicting nodes worked (max seen "
              f"{f.watch.max_seen.get('workers')}, violations {f.watch.violations[:3]})")
    finally:
        f.close()


def scenario_skew(tmp):
    """An upgrade to an image whose kubelet is newer than the API server is
    refused before any node is touched; a kubelet the policy allows goes."""
    f = Fleet(tmp, 3, kube_version="v1.32.4")
    try:
        f.start_operator()
        f.watch.track("workers", f.names, 2)
        f.apply_os("workers", upgrade_spec(max_unavailable=2, image={"kubeletVersion": "v1.33.0"}))
        check(f.os("workers")["spec"]["image"].get("kubeletVersion") == "v1.33.0",
              "spec.image.kubeletVersion is kept by the API server")
        c = f.wait("Degraded condition", lambda: (f.condition("workers", "Degraded") or {}).get("status") == "True"
                   and f.condition("workers", "Degraded"))
        want = "kubelet v1.33.0 of image 2.0.0 is newer than the API server v1.32.4 (version skew policy)"
        check(bool(c) and c.get("reason") == "VersionSkew" and want in (c.get("message") or ""),
              f"Degraded, reason VersionSkew, naming both versions ({c})")
        p = f.condition("workers", "Progressing")
        check(p and p.get("status") == "False" and p.get("reason") == "VersionSkew",
              f"Progressing False with reason VersionSkew ({p})")
        time.sleep(5)  # more than two resyncs
        with f.watch.lock:
            touched = [n for n in f.names if (f.watch.nodes[n]["metadata"].get("annotations") or {})
                       .get("hull.dev/task")]
            chosen = list(f.watch.chosen_order)
        check(not touched and not chosen, f"no node was given a task ({touched}, {chosen})")
        check(all(version_of(f, n) == "1.0.0" for n in f.names), "every node still runs 1.0.0")
        st = f.os("workers")["status"]
        check(st.get("inProgress") == 0 and st.get("updated") == 0, f"nothing in progress or updated ({st})")
        ev = f.api.get("/apis/events.k8s.io/v1/namespaces/default/events")["items"]
        check(any(e.get("reason") == "VersionSkew" and e.get("type") == "Warning" for e in ev),
              "a Warning Event VersionSkew was emitted")

        # Three minor versions older is allowed: the same rollout goes.
        f.api.patch("/apis/hull.dev/v1alpha1/oses/workers", {"spec": {"image": {"kubeletVersion": "v1.29.7"}}})
        f.wait("all nodes at 2.0.0", lambda: all_at(f, f.names, "2.0.0"), timeout=120)
        c = f.wait("Degraded False", lambda: (f.condition("workers", "Degraded") or {}).get("status") == "False"
                   and f.condition("workers", "Degraded"))
        check(bool(c) and c.get("reason") == "AsExpected", f"Degraded False again ({c})")
        check(not f.watch.violations, f"maxUnavailable held ({f.watch.violations[:3]})")
    finally:
        f.close()


COMPONENTS_V1 = {"containerd": "1.6.20", "kernel": "6.1.0-28-amd64", "kubelet": "v1.31.4", "runc": "1.1.5"}
COMPONENTS_V2 = {"containerd": "1.7.24", "kernel": "6.1.0-31-amd64", "kubelet": "v1.32.0"}   # no runc


def osnode_status(f, name):
    with f.watch.lock:
        return ((f.watch.osnodes.get(name) or {}).get("status") or {})


def scenario_components(tmp):
    """hull-node copies what the agent says the images hold into the OSNode
    status: the running image's components, the staged one's while it
    waits; a component the new image lacks goes; what the agent reports
    invalid is not passed on; an unchanged status is not written again."""
    f = Fleet(tmp, 3, components={"1.0.0": COMPONENTS_V1, "2.0.0": COMPONENTS_V2})
    try:
        f.behave("node-001", {"reboot": "never"})
        f.behave("node-002", {"components": {"kubelet": "1.31", "runc": "1.1.5"}})
        ok = f.wait("components in every OSNode", lambda: all(
            osnode_status(f, n).get("components") == COMPONENTS_V1 for n in ("node-000", "node-001")) and
            "slot" in osnode_status(f, "node-002"))
        check(ok, "status.components is the running image's (%s)" % osnode_status(f, "node-000").get("components"))
        check("staged" not in osnode_status(f, "node-000"), "nothing staged: no status.staged")
        st = osnode_status(f, "node-002")
        check("components" not in st, f"invalid components from the agent are not passed on ({st.get('components')})")
        log_text = open(os.path.join(tmp, "hull-node-node-002.log"), errors="replace").read()
        check(log_text.count("The agent reports invalid components for slot a") == 1 and
              "not a Kubernetes version" in log_text, "... and hull-node warns once")

        f.start_operator()
        f.watch.track("workers", f.names, 3)
        f.apply_os("workers", upgrade_spec(max_unavailable=3, selector={"pool": "workers"}))
        # node-001 never comes back from its reboot: its last status, written
        # before the reboot, shows the staged image waiting
        ok = f.wait("node-001 Rebooting with the staged image", lambda: osnode_status(f, "node-001").get("phase") ==
                    "Rebooting" and osnode_status(f, "node-001").get("staged"))
        st = osnode_status(f, "node-001")
        check(ok and st.get("staged") == {"slot": "b", "version": "2.0.0", "components": COMPONENTS_V2} and
              st.get("components") == COMPONENTS_V1,
              f"status.staged has the staged bundle's components ({st.get('staged')}, running {st.get('components')})")
        check(f.wait("node-000 at 2.0.0", lambda: all_at(f, ["node-000"], "2.0.0"), timeout=120), "node-000 upgraded")
        f.wait("node-000 components", lambda: osnode_status(f, "node-000").get("components") == COMPONENTS_V2)
        st = osnode_status(f, "node-000")
        check(st.get("components") == COMPONENTS_V2 and "runc" not in st.get("components", {}),
              f"after the upgrade: the new image's components, runc gone ({st.get('components')})")
        check("staged" not in st, f"booted into it: no status.staged any more ({st.get('staged')})")
        rv = f.api.get("/apis/hull.dev/v1alpha1/osnodes/node-000")["metadata"]["resourceVersion"]
        time.sleep(5)  # several passes of hull-node
        rv2 = f.api.get("/apis/hull.dev/v1alpha1/osnodes/node-000")["metadata"]["resourceVersion"]
        check(rv == rv2, f"an unchanged status is not written again ({rv} -> {rv2})")
    finally:
        f.close()


def scenario_oci(tmp):
    """An OS object pinned to an OCI registry (oci://HOST/REPO@sha256:D, sha256
    the same digest, as hullctl cluster upgrade writes it) rolls out like an
    https one through the CRD, the operator and every hull-node."""
    f = Fleet(tmp, 6)
    digest = "5d" * 32
    ref = f"oci://registry.example.com:5000/hull/os@sha256:{digest}"
    try:
        f.start_operator()
        f.watch.track("workers", f.names, 2)
        f.apply_os("workers", upgrade_spec(max_unavailable=2, image={"url": ref, "sha256": digest}))
        ok = f.wait("all 6 nodes at 2.0.0", lambda: all_at(f, f.names, "2.0.0"), timeout=300)
        check(ok, "every node reached 2.0.0 from the registry reference")
        check(not f.watch.violations, "maxUnavailable 2 never exceeded")
        stages = {}
        for n in f.names:
            for line in open(os.path.join(f.hostdir, n + ".log")):
                rec = json.loads(line)
                if rec["path"] == "/v1/stage":
                    stages.setdefault(n, []).append((rec.get("source"), rec.get("sha256")))
        check(all(stages.get(n) == [(ref, digest)] for n in f.names),
              "each node's agent was asked once to stage the pinned reference: %s" % stages)
        ev = f.api.get("/apis/events.k8s.io/v1/namespaces/default/events")["items"]
        staged = [e for e in ev if e.get("reason") == "Staged"]
        log("Staged events: %s" % [e.get("note") for e in staged][:3])
        check(len(staged) >= 6 and all("downloaded 15.0 MiB of 380.0 MiB (a delta)" in (e.get("note") or "")
                                       for e in staged), "every Staged Event says what the delta downloaded")
        # a node whose server ignores Range: a full download, and a Warning says why
        f.behave(f.names[0], {"range": "ignored"})
        st, out = f.api.patch("/apis/hull.dev/v1alpha1/oses/workers", {"spec": {
            "version": "3.0.0", "image": {"url": ref.replace("5d" * 32, "6e" * 32), "sha256": "6e" * 32}}})
        check(st == 200, "the OS object moves to 3.0.0 (%s)" % st)
        ok = f.wait("all 6 nodes at 3.0.0", lambda: all_at(f, f.names, "3.0.0"), timeout=300)
        check(ok, "a second version rolls out from the registry")
        ev = f.api.get("/apis/events.k8s.io/v1/namespaces/default/events")["items"]
        notice = [e for e in ev if e.get("reason") == "StageNotice"]
        check(len(notice) == 1 and notice[0]["type"] == "Warning" and "ignores Range" in notice[0].get("note", "")
              and notice[0].get("regarding", {}).get("name") == f.names[0],
              "the node that downloaded everything has a Warning StageNotice: %s" %
              [(e.get("regarding", {}).get("name"), e.get("note")) for e in notice])
    finally:
        f.close()


def scenario_config(tmp):
    """A config-only change goes out without a reboot and without a cordon."""
    f = Fleet(tmp, 4)
    try:
        f.start_operator()
        f.watch.track("workers", f.names, 2)
        f.apply_os("workers", {"version": "1.0.0", "operation": "config",
                               "strategy": {"maxUnavailable": 2},
                               "config": {"generation": 2, "sysctl": {"vm.swappiness": "10"}}})
        ok = f.wait("config generation 2 everywhere", lambda: all(
            ((f.watch.osnodes.get(n) or {}).get("status") or {}).get("configGeneration") == 2 for n in f.names))
        check(bool(ok), "every node applied config generation 2")
        logs = "".join(open(os.path.join(f.hostdir, n + ".log")).read() for n in f.names)
        check("/v1/reboot" not in logs and "/v1/activate" not in logs, "no reboot for a sysctl-only change")
        c = f.wait("Complete", lambda: (f.condition("workers", "Complete") or {}).get("status") == "True")
        check(bool(c), "the config rollout is Complete")
    finally:
        f.close()


def hullctl(f, *args):
    p = subprocess.run([A.hullctl, "cluster", "--kubeconfig", f.kubeconfig] + list(args), capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def scenario_hullctl(tmp):
    """An operator drives a canary rollout with hullctl cluster, as a person would."""
    f = Fleet(tmp, 4)
    try:
        f.start_operator()
        f.watch.track("workers", f.names, 2)
        spec = upgrade_spec(max_unavailable=2, batches=[{"nodes": 1, "manualGate": True}, {"nodes": "100%"}])
        f.apply_os("workers", spec)
        f.wait("the canary done and the gate waiting", lambda: (f.condition("workers", "Paused") or {})
               .get("reason") == "WaitingForApproval")
        rc, out, err = hullctl(f, "status", "workers")
        log("hullctl cluster status workers:\n" + out + err)
        check(rc == 0 and "workers" in out and "Paused" in out and "WaitingForApproval" not in err,
              "status names the rollout and its Paused state")
        check(out.count("Done") == 1 and "node-000" in out and "2.0.0" in out and out.count("Idle") == 3,
              "status lists the canary node as Done at 2.0.0 and the three others as Idle")
        rc, out, err = hullctl(f, "approve", "workers")
        check(rc == 0 and "approvedBatches is now 1" in out, f"approve ({rc}: {out}{err})")
        check(f.wait("all at 2.0.0", lambda: all_at(f, f.names, "2.0.0")), "the rollout goes on after approve")

        # A new version through hullctl: the earlier approval does not open
        # the new rollout's canary gate.
        rc, out, err = hullctl(f, "upgrade", "workers", "--version", "3.0.0", "--image-url",
                               "https://updates.example.com/hull-3.0.0.hullb", "--sha256", "cd" * 32,
                               "--created", "2026-11-30T12:00:00Z")
        check(rc == 0 and "generation" in out, f"upgrade accepted ({rc}: {out}{err})")
        check(f.os("workers")["spec"]["image"].get("created") == "2026-11-30T12:00:00Z",
              "--created sets spec.image.created")
        f.wait("the 3.0.0 canary waiting", lambda: (f.condition("workers", "Paused") or {})
               .get("reason") == "WaitingForApproval" and f.os("workers")["status"].get("updated") == 1)
        with f.watch.lock:
            at3 = [n for n in f.names if version_of(f, n) == "3.0.0"]
        check(len(at3) == 1, f"only the canary is at 3.0.0 before a new approval ({at3})")
        rc, out, err = hullctl(f, "pause", "workers")
        check(rc == 0 and f.os("workers")["spec"]["strategy"].get("paused") is True, "pause sets spec.strategy.paused")
        rc, out, err = hullctl(f, "approve", "workers")
        time.sleep(4)
        with f.watch.lock:
            busy = [n for n in f.names if (f.watch.nodes[n]["metadata"].get("annotations") or {}).get("hull.dev/task")]
        check(not busy, f"paused: an approval starts nothing ({busy})")
        rc, out, err = hullctl(f, "resume", "workers")
        check(f.wait("all at 3.0.0", lambda: all_at(f, f.names, "3.0.0")), "resume: the rollout completes")
        # The operator counts the last node in the OS status a moment after
        # the node reports it.
        f.wait("the OS status counts all 4", lambda: f.os("workers")["status"].get("updated") == 4)
        rc, out, err = hullctl(f, "--json", "status")
        check(rc == 0 and json.loads(out)["oses"][0]["status"]["updated"] == 4, "status --json is the objects")

        # What people get wrong.
        rc, out, err = hullctl(f, "status", "nope")
        check(rc == 1 and "No OS object named 'nope'" in err, f"unknown OS: {err.strip()}")
        rc, out, err = hullctl(f, "upgrade", "nope", "--version", "4", "--image-url", "https://x/y",
                               "--sha256", "ab" * 32)
        check(rc == 1 and "No OS object named 'nope'" in err, f"upgrade of an unknown OS: {err.strip()}")
        rc, out, err = hullctl(f, "upgrade", "workers", "--version", "4")
        check(rc == 2 and "--image-url" in err, f"upgrade without an image: {err.strip()}")
        rc, out, err = hullctl(f, "upgrade", "workers", "--version", "4", "--image-url", "https://x/y",
                               "--sha256", "ab" * 32, "--max-unavailable", "150%")
        check(rc == 2 and "--max-unavailable" in err, f"bad --max-unavailable: {err.strip()}")
        p = subprocess.run([A.hullctl, "cluster", "--kubeconfig", os.path.join(tmp, "missing"), "status"],
                           capture_output=True, text=True)
        check(p.returncode == 1 and "kubeconfig" in p.stderr, f"missing kubeconfig: {p.stderr.strip()}")
        check(not f.watch.violations, "maxUnavailable never exceeded")
    finally:
        f.close()


def make_pod(f, name, node, labels=None, owner=None, empty_dir=False, annotations=None):
    """A Running pod on NODE, as the kubelet would report it. owner: (kind,
    name) of its controller, or None for a bare pod."""
    meta = {"name": name, "namespace": "default", "labels": labels or {"app": name}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "v1" if owner[0] == "Node" else "apps/v1", "kind": owner[0],
                                    "name": owner[1], "uid": "u-" + owner[1], "controller": True}]
    if annotations:
        meta["annotations"] = annotations
    spec = {"nodeName": node, "containers": [{"name": "c", "image": "img"}]}
    if empty_dir:
        spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    f.api.create("/api/v1/namespaces/default/pods", {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                                                     "spec": spec})
    f.api.call("PATCH", f"/api/v1/namespaces/default/pods/{name}/status", {"status": {
        "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}, "application/merge-patch+json")


def pod_names(f):
    return {p["metadata"]["name"] for p in f.api.get("/api/v1/namespaces/default/pods")["items"]}


def host_calls(f, node, method="POST"):
    try:
        with open(os.path.join(f.hostdir, node + ".log")) as fl:
            return [c for c in map(json.loads, fl) if c["method"] == method]
    except FileNotFoundError:
        return []


def node_obj(f, name):
    return f.api.get(f"/api/v1/nodes/{name}")


def cordoned(f, name):
    n = node_obj(f, name)
    return bool((n.get("spec") or {}).get("unschedulable")) or \
        "hull.dev/cordoned" in (n["metadata"].get("annotations") or {})


def task_of(f, name):
    return (node_obj(f, name)["metadata"].get("annotations") or {}).get("hull.dev/task")


def scenario_drain(tmp):
    """What a drain refuses and how long it waits, as kubectl drain does it:
    a PodDisruptionBudget that never allows the eviction times the drain out
    (Failed naming the pod, uncordoned, no reboot, counted against the
    failure budget); a bare pod refuses the drain unless drain.force, a pod
    with emptyDir data unless drain.deleteEmptyDirData; DaemonSet and mirror
    pods stay; drain.timeoutSeconds 0 waits for ever."""
    pools = {0: "pdb", 1: "pdb", 2: "bare", 3: "bareforce", 4: "edir", 5: "edirok", 6: "forever"}
    f = Fleet(tmp, 7, labels=lambda i, name: {"pool": pools[i]})
    try:
        # (a) node-000: a pod whose PDB never allows an eviction
        make_pod(f, "db-0", "node-000", labels={"app": "db"}, owner=("StatefulSet", "db"))
        f.api.create("/apis/policy/v1/namespaces/default/poddisruptionbudgets", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "db", "namespace": "default"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}})
        # (b) bare pods; next to the refused one a pod that could go, and must not
        make_pod(f, "lonely-2", "node-002")
        make_pod(f, "web-2", "node-002", owner=("ReplicaSet", "web"))
        make_pod(f, "lonely-3", "node-003")
        # (c) emptyDir
        make_pod(f, "cache-4", "node-004", owner=("ReplicaSet", "cache"), empty_dir=True)
        make_pod(f, "cache-5", "node-005", owner=("ReplicaSet", "cache"), empty_dir=True)
        # DaemonSet pods (with emptyDir, and one without a controller would be
        # refused) and mirror pods stay where they are, also when the drain goes on
        for n in ("node-003", "node-005"):
            i = n[-1]
            make_pod(f, f"ds-{i}", n, owner=("DaemonSet", "logs"), empty_dir=True)
            make_pod(f, f"mirror-{i}", n, owner=("Node", n),
                     annotations={"kubernetes.io/config.mirror": "0123abcd"})
        # (d) node-006: a PDB that blocks, and drain.timeoutSeconds 0
        make_pod(f, "hold-6", "node-006", labels={"app": "hold"}, owner=("StatefulSet", "hold"))
        f.api.create("/apis/policy/v1/namespaces/default/poddisruptionbudgets", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "hold", "namespace": "default"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "hold"}}}})

        f.start_operator()
        f.watch.track("pdb", ["node-000", "node-001"], 1)
        drains = {"pdb": {"timeoutSeconds": 3}, "bare": {}, "bareforce": {"force": True}, "edir": {},
                  "edirok": {"deleteEmptyDirData": True}, "forever": {"timeoutSeconds": 0}}
        for pool, d in drains.items():
            f.apply_os(pool, upgrade_spec(max_unavailable=1, selector={"pool": pool}, drain=d))

        def final(n):
            st = osnode_status(f, n)
            return st if st.get("phase") in ("Done", "Failed", "RolledBack") and st.get("task") else None
        for n in ("node-000", "node-002", "node-003", "node-004", "node-005"):
            f.wait(f"{n} finished its task", lambda: final(n) and not cordoned(f, n), timeout=60)
        t_others = time.time()

        # (a) the drain timed out
        st = osnode_status(f, "node-000")
        err = (st.get("lastError") or {}).get("message") or ""
        log(f"node-000: {st.get('phase')}: {err}")
        check(st.get("phase") == "Failed" and "drain timed out after 3 s" in err and "default/db-0" in err
              and "disruption budget" in err, f"node-000 Failed, lastError names the timeout and the pod ({err})")
        check(not cordoned(f, "node-000"), "node-000 uncordoned after the timeout")
        calls = [c["path"] for c in host_calls(f, "node-000")]
        check(calls == ["/v1/stage"], f"node-000's agent was asked to stage, never to reboot ({calls})")
        check("db-0" in pod_names(f), "the PDB-protected pod is still there")
        c = f.wait("pdb Degraded", lambda: (f.condition("pdb", "Degraded") or {}).get("status") == "True"
                   and f.condition("pdb", "Degraded"), timeout=20)
        check(bool(c) and c.get("reason") == "FailureBudgetExceeded",
              f"the drain timeout counts against failureBudget 1: Degraded FailureBudgetExceeded ({c})")
        ost = f.os("pdb")["status"]
        check(ost.get("failed") == 1, f"OS pdb counts 1 failed ({ost.get('failed')})")
        check(not task_of(f, "node-001"), "node-001 was never given a task after the failure")

        # (b) bare pod
        st = osnode_status(f, "node-002")
        err = (st.get("lastError") or {}).get("message") or ""
        check(st.get("phase") == "Failed" and
              "default/lonely-2 is not managed by a controller (drain.force is off)" in err,
              f"node-002: a bare pod refuses the drain, naming it ({st.get('phase')}: {err})")
        check({"lonely-2", "web-2"} <= pod_names(f), "a refused drain evicts nothing, not even the pods that could go")
        check(not cordoned(f, "node-002") and
              not any(c["path"] in ("/v1/activate", "/v1/reboot") for c in host_calls(f, "node-002")),
              "node-002 uncordoned, no reboot asked")
        check(osnode_status(f, "node-003").get("phase") == "Done" and version_of(f, "node-003") == "2.0.0",
              f"node-003 with drain.force: Done at 2.0.0 ({osnode_status(f, 'node-003').get('phase')})")
        # (c) emptyDir
        st = osnode_status(f, "node-004")
        err = (st.get("lastError") or {}).get("message") or ""
        check(st.get("phase") == "Failed" and
              "default/cache-4 has emptyDir data (drain.deleteEmptyDirData is off)" in err,
              f"node-004: an emptyDir pod refuses the drain, naming it ({st.get('phase')}: {err})")
        check("cache-4" in pod_names(f) and not cordoned(f, "node-004"), "cache-4 stays, node-004 uncordoned")
        check(osnode_status(f, "node-005").get("phase") == "Done" and version_of(f, "node-005") == "2.0.0",
              "node-005 with drain.deleteEmptyDirData: Done at 2.0.0")
        pods = pod_names(f)
        check("lonely-3" not in pods and "cache-5" not in pods, f"the bare and the emptyDir pod were evicted ({pods})")
        check({"ds-3", "mirror-3", "ds-5", "mirror-5"} <= pods, f"DaemonSet and mirror pods stay ({pods})")
        ev = f.api.get("/apis/events.k8s.io/v1/namespaces/default/events")["items"]
        for n in ("node-000", "node-002", "node-004"):
            check(any(e.get("reason") == "UpdateFailed" and e.get("type") == "Warning" and
                      (e.get("regarding") or {}).get("name") == n for e in ev), f"a Warning UpdateFailed Event for {n}")

        # (d) timeoutSeconds 0: still draining long after the others finished
        drain_began = f.wait("node-006 Draining", lambda: osnode_status(f, "node-006").get("phase") == "Draining",
                             timeout=30)
        time.sleep(max(0.0, 6 - (time.time() - t_others)))
        st = osnode_status(f, "node-006")
        check(st.get("phase") == "Draining" and "hold-6" in pod_names(f),
              f"drain.timeoutSeconds 0 waits for ever: node-006 still Draining ({st.get('phase')}, "
              f"{(st.get('lastError') or {}).get('message')})")
        st_, _ = f.api.call("DELETE", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/hold")
        check(f.wait("node-006 at 2.0.0", lambda: all_at(f, ["node-006"], "2.0.0"), timeout=60),
              "once the PDB is gone the drain goes on and node-006 is updated")
        check(drain_began and not f.watch.violations, f"maxUnavailable held ({f.watch.violations[:3]})")
    finally:
        f.close()


def scenario_percent(tmp):
    """maxUnavailable "25%" of 10 nodes is 3 (rounded up): never more than 3
    unavailable on any watch event, and 3 at once at some point."""
    f = Fleet(tmp, 10)
    try:
        for n in f.names:
            f.behave(n, {"stage_seconds": 2})
        f.start_operator()
        f.watch.track("workers", f.names, 3)
        f.apply_os("workers", upgrade_spec(max_unavailable="25%"))
        ok = f.wait("all 10 nodes at 2.0.0", lambda: all_at(f, f.names, "2.0.0"), timeout=120)
        check(ok, "every node reached 2.0.0")
        check(not f.watch.violations, f"never more than 3 unavailable ({f.watch.violations[:3]})")
        check(f.watch.max_seen.get("workers") == 3,
              f"3 nodes were unavailable at once at some point (max seen {f.watch.max_seen.get('workers')})")
        c = f.wait("Complete", lambda: (f.condition("workers", "Complete") or {}).get("status") == "True")
        check(bool(c), "the rollout is Complete")
    finally:
        f.close()


def scenario_kernel_args(tmp):
    """A config rollout that changes kernel arguments needs a boot: each node
    is cordoned, drained, its agent asked to reboot, then uncordoned and
    Done, within maxUnavailable. (A sysctl-only change does not reboot:
    scenario_config.)"""
    f = Fleet(tmp, 4)
    try:
        for i, n in enumerate(f.names):
            make_pod(f, f"app-{i}", n, owner=("ReplicaSet", "app"))
        f.wait("boot IDs", lambda: all(osnode_status(f, n).get("bootId") for n in f.names))
        boots = {n: osnode_status(f, n).get("bootId") for n in f.names}
        f.start_operator()
        f.watch.track("workers", f.names, 2)
        f.apply_os("workers", {"version": "1.0.0", "operation": "config", "strategy": {"maxUnavailable": 2},
                               "drain": {"gracePeriodSeconds": 0},
                               "config": {"generation": 2, "kernel_args": ["mitigations=auto"]}})
        ok = f.wait("config generation 2 everywhere, tasks released", lambda: all(
            osnode_status(f, n).get("configGeneration") == 2 and osnode_status(f, n).get("phase") == "Done"
            and not task_of(f, n) for n in f.names), timeout=90)
        check(bool(ok), "every node applied config generation 2 and is Done")
        for n in f.names:
            calls = host_calls(f, n)
            paths = [c["path"] for c in calls]
            reboot_t = next((c["t"] for c in calls if c["path"] == "/v1/reboot"), None)
            check(paths[:2] == ["/v1/config", "/v1/reboot"] and "/v1/activate" not in paths and
                  "/v1/stage" not in paths, f"{n}: the agent got the config, then a reboot ({paths})")
            cat = f.watch.cordoned_at.get(n)
            check(cat is not None and reboot_t is not None and cat < reboot_t,
                  f"{n} was cordoned before the reboot was asked ({cat}, {reboot_t})")
            ph = f.watch.phases.get(n, [])
            check(ph[-5:] == ["Draining", "Rebooting", "Verifying", "Gating", "Done"] or
                  ph[-4:] == ["Draining", "Rebooting", "Gating", "Done"] or
                  ph[-3:] == ["Draining", "Rebooting", "Done"],
                  f"{n} went Draining, Rebooting, (Verifying,) Gating, Done ({ph})")
            st = osnode_status(f, n)
            check(st.get("bootId") and st.get("bootId") != boots[n], f"{n} booted again")
            check(not cordoned(f, n), f"{n} is uncordoned")
        pods = pod_names(f)
        check(not any(f"app-{i}" in pods for i in range(4)), f"every node was drained ({pods})")
        check(not f.watch.violations, f"maxUnavailable 2 never exceeded ({f.watch.violations[:3]})")
        check(f.watch.max_seen.get("workers") == 2, f"2 nodes at once ({f.watch.max_seen.get('workers')})")
        check(f.wait("Complete", lambda: (f.condition("workers", "Complete") or {}).get("status") == "True"),
              "the config rollout is Complete")
    finally:
        f.close()


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port, path="/metrics"):
    """(status, body) of GET http://127.0.0.1:PORT/PATH."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except Exception as e:
        return None, str(e)


def parse_prometheus(text):
    """Prometheus text format 0.0.4: {name: type}, {(name, frozenset(labels)): value}."""
    import re
    types, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        if not m:
            raise ValueError(f"not a sample line: {line!r}")
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return types, samples


def documented_metrics():
    """The metrics table of docs/OPERATOR.md: {name: type}."""
    import re
    doc = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(A.crds))), "docs", "OPERATOR.md")
    out = {}
    for line in open(doc):
        m = re.match(r'\| `(hull_[a-z_]+)(?:\{[^}]*\})?` \| (counter|gauge) \|', line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def scenario_metrics(tmp):
    """hull-operator's /metrics and /healthz (--metrics-address): every
    metric docs/OPERATOR.md lists, with its TYPE; counters that moved;
    hull_os_nodes as the fleet is; the leader gauge 1 on the leader only."""
    f = Fleet(tmp, 4)
    try:
        pa, pb = free_port(), free_port()
        f.start_operator("op-a", metrics=f"127.0.0.1:{pa}")
        lease_path = "/apis/coordination.k8s.io/v1/namespaces/hull-system/leases/hull-operator"
        f.wait("op-a leads", lambda: ((f.api.get(lease_path) or {}).get("spec") or {}).get("holderIdentity") == "op-a")
        f.start_operator("op-b", metrics=f"127.0.0.1:{pb}")
        f.wait("op-b serving", lambda: scrape(pb, "/healthz")[0] == 200, timeout=20)
        code, body = scrape(pa, "/healthz")
        check(code == 200, f"/healthz of the leader answers 200 ({code} {body!r})")
        code, body = scrape(pb, "/healthz")
        check(code == 200, f"/healthz of the standby answers 200 ({code} {body!r})")
        check(scrape(pa, "/nope")[0] == 404, "an unknown path is a 404")

        docs = documented_metrics()
        check(len(docs) >= 9, f"docs/OPERATOR.md lists the metrics in a table ({sorted(docs)})")
        code, before = scrape(pa)
        types0, s0 = parse_prometheus(before)
        f.watch.track("workers", f.names, 2)
        f.apply_os("workers", upgrade_spec(max_unavailable=2))
        # during the rollout: a pass sees nodes in progress
        in_progress_seen = f.wait("hull_os_nodes in_progress > 0", lambda: parse_prometheus(scrape(pa)[1])[1].get(
            ("hull_os_nodes", frozenset({("os", "workers"), ("state", "in_progress")})), 0) > 0, interval=0.2)
        check(bool(in_progress_seen), "during the rollout hull_os_nodes{state=in_progress} is above 0")
        check(f.wait("all at 2.0.0", lambda: all_at(f, f.names, "2.0.0"), timeout=90), "the rollout completed")
        f.wait("Complete", lambda: (f.condition("workers", "Complete") or {}).get("status") == "True")
        time.sleep(2.5)     # a resync after the last status write

        code, text = scrape(pa)
        check(code == 200, f"GET /metrics answers 200 ({code})")
        types, s = parse_prometheus(text)
        for name, typ in sorted(docs.items()):
            check(types.get(name) == typ, f"/metrics has {name} with TYPE {typ} ({types.get(name)})")
        undocumented = sorted(set(types) - set(docs))
        check(not undocumented, f"every metric served is documented ({undocumented})")

        def v(name, **labels):
            return s.get((name, frozenset(labels.items())))
        check(v("hull_operator_leader") == 1, f"leader gauge 1 on op-a ({v('hull_operator_leader')})")
        check(v("hull_operator_nodes_chosen_total") == 4,
              f"nodes_chosen_total counts the 4 nodes ({v('hull_operator_nodes_chosen_total')})")
        check(v("hull_operator_reconciles_total") > s0.get(("hull_operator_reconciles_total", frozenset()), 0),
              "reconciles_total moved")
        check(v("hull_operator_api_writes_total") >= 4 + 1,
              f"api_writes_total counts the tasks and status writes ({v('hull_operator_api_writes_total')})")
        check(v("hull_operator_reconcile_seconds_total") > 0, "reconcile_seconds_total moved")
        check(v("hull_operator_reconcile_errors_total") == 0, "no reconcile errors")
        check(v("hull_operator_nodes_quarantined_total") == 0, "nothing quarantined")
        st = f.os("workers")["status"]
        want = {"desired": 4, "updated": 4, "in_progress": 0, "failed": 0, "unavailable": 0}
        got = {k: v("hull_os_nodes", os="workers", state=k) for k in want}
        check(got == want and st.get("updated") == 4 and st.get("desired") == 4,
              f"hull_os_nodes{{os=workers}} matches the fleet and the status ({got}, status {st.get('updated')})")

        code, text = scrape(pb)
        types_b, sb = parse_prometheus(text)
        check(code == 200 and sb.get(("hull_operator_leader", frozenset())) == 0 and
              sb.get(("hull_operator_nodes_chosen_total", frozenset())) == 0,
              "the standby serves /metrics too, leader gauge 0, nothing chosen")
        check(types_b == {k: t for k, t in types.items()}, "the standby declares the same metrics")

        # the OS object deleted: its series go
        f.api.call("DELETE", "/apis/hull.dev/v1alpha1/oses/workers")
        gone = f.wait("hull_os_nodes for workers gone", lambda: not any(
            k[0] == "hull_os_nodes" for k in parse_prometheus(scrape(pa)[1])[1]), timeout=20)
        check(bool(gone), "hull_os_nodes drops an OS object that was deleted")
        check(not f.watch.violations, "maxUnavailable 2 never exceeded")
    finally:
        f.close()


def rfc3339_to_unix(s):
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))


def scenario_promotion(tmp):
    """Promotion: production (4 nodes, after staging with a 5 s soak) starts
    no node until staging (2 nodes) has been Complete at the same version
    for 5 s; its status and an Event say why it waits. An image too new for
    minImageAgeSeconds waits until it is old enough. The spec rules the CRD
    states in CEL are refused at admission."""
    soak, age = 5, 4
    groups = ["staging"] * 2 + ["production"] * 4 + ["fresh"]
    f = Fleet(tmp, 7, labels=lambda i, name: {"pool": groups[i]})
    staging, production, fresh = f.names[:2], f.names[2:6], f.names[6:]
    try:
        for n in staging:
            f.behave(n, {"stage_seconds": 2})
        f.watch.track("production", production, 2)
        f.start_operator()
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        f.apply_os("fresh", upgrade_spec(max_unavailable=1, selector={"pool": "fresh"},
                                         image={"created": created}, strategy={"minImageAgeSeconds": age}))
        f.apply_os("staging", upgrade_spec(max_unavailable=2, selector={"pool": "staging"}))
        f.apply_os("production", upgrade_spec(max_unavailable=2, selector={"pool": "production"},
                                              strategy={"after": {"os": "staging", "soakSeconds": soak}}))
        check(f.os("production")["spec"]["strategy"].get("after") == {"os": "staging", "soakSeconds": soak},
              "spec.strategy.after is kept by the API server")
        check(f.os("fresh")["spec"]["image"].get("created") == created, "spec.image.created is kept")

        # While staging rolls out, production waits and says so.
        p = f.wait("production waiting for promotion",
                   lambda: (f.condition("production", "Progressing") or {}).get("reason") == "WaitingForPromotion"
                   and f.condition("production", "Progressing"), timeout=30, interval=0.2)
        want = f"waiting for OS staging to be Complete at 2.0.0 for {soak} s"
        check(bool(p) and p.get("status") == "True" and want in (p.get("message") or ""),
              f"Progressing True, reason WaitingForPromotion, message {want!r} ({p})")
        c = f.wait("fresh too new", lambda: (f.condition("fresh", "Progressing") or {}).get("reason") == "ImageTooNew"
                   and f.condition("fresh", "Progressing"), timeout=30, interval=0.2)
        check(bool(c) and c.get("status") == "True" and f"created {created} is too new" in (c.get("message") or ""),
              f"fresh: Progressing True, reason ImageTooNew, naming the creation time ({c})")

        sc = f.wait("staging Complete", lambda: (f.condition("staging", "Complete") or {}).get("status") == "True"
                    and f.condition("staging", "Complete"), timeout=60, interval=0.2)
        since = rfc3339_to_unix(sc["lastTransitionTime"]) if sc else 0
        with f.watch.lock:
            staging_done = max([t for (n, _), t in f.watch.released_at.items() if n in staging] or [0])
        p = f.condition("production", "Progressing")
        check(p and p.get("reason") == "WaitingForPromotion" and "(Complete since " in (p.get("message") or ""),
              f"production soaks after staging completed ({p})")

        check(f.wait("production at 2.0.0", lambda: all_at(f, production, "2.0.0"), timeout=90), "production completes")
        check(f.wait("fresh at 2.0.0", lambda: all_at(f, fresh, "2.0.0"), timeout=30), "fresh completes")
        with f.watch.lock:
            order = list(f.watch.chosen_order)
        first_prod = min([t for (t, n, _) in order if n in production] or [0])
        first_fresh = min([t for (t, n, _) in order if n in fresh] or [0])
        log(f"staging released its last node at {staging_done:.1f}, Complete since {since}, "
            f"production's first node chosen at {first_prod:.1f}, fresh's at {first_fresh:.1f} (created {created})")
        check(since > 0 and first_prod >= since + soak,
              f"production chose no node before staging had been Complete for {soak} s "
              f"({first_prod:.1f} >= {since} + {soak})")
        check(staging_done > 0 and first_prod >= staging_done + soak - 1,
              "nor before staging's last node was back, plus the soak")
        check(first_fresh >= rfc3339_to_unix(created) + age,
              f"fresh chose no node before created + minImageAgeSeconds ({first_fresh:.1f})")
        c = f.wait("production Complete", lambda: (f.condition("production", "Complete") or {}).get("status") == "True")
        check(bool(c), "production reports Complete")
        ev = f.api.get("/apis/events.k8s.io/v1/namespaces/default/events")["items"]
        for os_name, reason in (("production", "WaitingForPromotion"), ("fresh", "ImageTooNew")):
            mine = [e for e in ev if e.get("reason") == reason and (e.get("regarding") or {}).get("name") == os_name]
            check(len(mine) == 1 and mine[0].get("type") == "Normal",
                  f"one Normal Event {reason} about OS {os_name} ({[e.get('note') for e in mine]})")
        check(not f.watch.violations, f"maxUnavailable held ({f.watch.violations[:3]})")

        # The CEL rules of the gates: refused at admission with a real
        # server's words (the operator's twins: tests/unit/test-osspec.c).
        for name, spec, want in (
                ("bad-age", upgrade_spec(selector={"pool": "none"}, strategy={"minImageAgeSeconds": 60}),
                 'spec: Invalid value: "object": spec.image.created is required for operation upgrade when '
                 "spec.strategy.minImageAgeSeconds is above 0"),
                ("bad-self", upgrade_spec(selector={"pool": "none"}, strategy={"after": {"os": "bad-self"}}),
                 'spec.strategy.after.os: Invalid value: "object": must name another OS object, not this one')):
            st_, out = f.api.call("POST", "/apis/hull.dev/v1alpha1/oses", {
                "apiVersion": "hull.dev/v1alpha1", "kind": "OS", "metadata": {"name": name}, "spec": spec})
            check(st_ == 422 and (out or {}).get("message") == f'OS.hull.dev "{name}" is invalid: {want}',
                  f"{name}: refused: {want!r} ({st_} {out})")
        st_, out = f.api.call("POST", "/apis/hull.dev/v1alpha1/oses", {
            "apiVersion": "hull.dev/v1alpha1", "kind": "OS", "metadata": {"name": "bad-created"},
            "spec": upgrade_spec(image={"created": "2026-12-03T10:00:00+01:00"})})
        check(st_ == 422, f"image.created with an offset refused by the schema ({st_})")
    finally:
        f.close()


def add_daemonset_pod(f, node, i):
    """A DaemonSet pod on node, Ready (as a CNI or storage daemon would be)."""
    name = f"agent-{i}"
    f.api.create("/api/v1/namespaces/kube-system/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "kube-system", "labels": {"app": "net-agent"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "net-agent",
                                          "uid": "u-ds", "controller": True}]},
        "spec": {"nodeName": node, "containers": [{"name": "agent", "image": "net-agent"}]}})
    f.api.call("PATCH", f"/api/v1/namespaces/kube-system/pods/{name}/status", {"status": {
        "phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime":
                                            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]}},
        "application/merge-patch+json")


def osnode_status(f, n):
    with f.watch.lock:
        return dict(((f.watch.osnodes.get(n) or {}).get("status") or {}))


def scenario_gate(tmp):
    """The post-boot gate: the canary's DaemonSet pods never get Ready on
    2.0.0, so hull-node rolls it back to 1.0.0 by itself (RolledBack with the
    reason) and the failure budget halts the rollout before the next batch.
    Its pre-drain and post-boot hooks ran through the agent, in order."""
    f = Fleet(tmp, 4)
    try:
        for i, n in enumerate(f.names):
            add_daemonset_pod(f, n, i)
        f.behave("node-000", {"pods_unready_on": "2.0.0"})
        f.start_operator()
        f.watch.track("workers", f.names, 1)
        spec = upgrade_spec(max_unavailable=1, batches=[{"nodes": 1}, {"nodes": "100%"}],
                            hooks={"preDrain": [{"exec": "ceph-noout"}],
                                   "postBoot": [{"exec": "ceph-unset-noout", "timeoutSeconds": 60}]},
                            verify={"timeoutSeconds": 12})
        f.apply_os("workers", spec)
        ok = f.wait("node-000 RolledBack", lambda: osnode_status(f, "node-000").get("phase") == "RolledBack",
                    timeout=120)
        st = osnode_status(f, "node-000")
        check(bool(ok) and st.get("version") == "1.0.0",
              "the canary whose pods stay un-Ready is rolled back to 1.0.0: %s" % {k: st.get(k) for k in (
                  "phase", "version", "gate")})
        err = (st.get("lastError") or {}).get("message", "")
        check("rolled back to 1.0.0" in err and "not Ready within 12 s" in err and "kube-system/agent-0" in err,
              "lastError names the gate, the timeout and the pod: %s" % err)
        node = f.api.get("/api/v1/nodes/node-000")
        check(not (node.get("spec") or {}).get("unschedulable"), "the rolled-back node is uncordoned")
        hooks = [json.loads(l) for l in open(os.path.join(f.hostdir, "node-000.hooks"))]
        check([(h["name"], h["stage"]) for h in hooks] == [("ceph-noout", "pre-drain")],
              "the pre-drain hook ran, the post-boot hook did not (the gate failed first): %s" % hooks)
        logs = [json.loads(l) for l in open(os.path.join(f.hostdir, "node-000.log"))]
        check([r["path"] for r in logs if r["path"] in ("/v1/activate", "/v1/rollback")] == ["/v1/activate", "/v1/rollback"],
              "the agent was asked to activate, then to roll back")
        c = f.wait("Degraded", lambda: (f.condition("workers", "Degraded") or {}).get("status") == "True"
                   and f.condition("workers", "Degraded"))
        check(bool(c) and c.get("reason") == "FailureBudgetExceeded",
              "the rollback counts against the failure budget: the rollout halts (%s)" % c)
        time.sleep(4)
        with f.watch.lock:
            touched = [n for n in f.names[1:] if (f.watch.nodes[n]["metadata"].get("annotations") or {})
                       .get("hull.dev/task")]
        check(not touched, "no node of the next batch was started (%s)" % touched)
        ev = f.api.get("/apis/events.k8s.io/v1/namespaces/default/events")["items"]
        reasons = [e.get("reason") for e in ev if (e.get("regarding") or {}).get("name") == "node-000"]
        check("GateFailed" in reasons and "RolledBack" in reasons, "GateFailed and RolledBack Events: %s" % reasons)

        # the fleet after the fix: the next version passes the gate, the
        # hooks run in order on every node
        f.behave("node-000", {})
        f.watch.track("workers", f.names, 2)
        st, _ = f.api.patch("/apis/hull.dev/v1alpha1/oses/workers", {"spec": {
            "version": "3.0.0", "image": {"url": "https://updates.example.com/hull-3.0.0.hullb"},
            "strategy": {"maxUnavailable": 2}}})
        ok = f.wait("all at 3.0.0", lambda: all_at(f, f.names, "3.0.0"), timeout=180)
        check(bool(ok), "3.0.0 passes the gate on every node")
        for n in f.names:
            hooks = [json.loads(l) for l in open(os.path.join(f.hostdir, n + ".hooks"))]
            got = [(h["name"], h["stage"]) for h in hooks if h["task"] == "workers/upgrade/3.0.0"]
            if not check(got == [("ceph-noout", "pre-drain"), ("ceph-unset-noout", "post-boot")],
                         "%s ran pre-drain, then post-boot for 3.0.0: %s" % (n, got)):
                break
        h = osnode_status(f, "node-001").get("hook") or {}
        check(h.get("state") == "Succeeded" and h.get("stage") == "postBoot" and "ok on node-001" in h.get("output", ""),
              "OSNode status.hook shows the last hook and its output: %s" % h)
        check(not f.watch.violations, "maxUnavailable never exceeded")
    finally:
        f.close()


def scenario_hooks(tmp):
    """A pre-drain hook that fails leaves the node in service: not drained,
    uncordoned, its task Failed with the hook's output, and the failure
    budget counts it. A wait-for hook waits for another controller's label;
    a missing hook fails clearly."""
    f = Fleet(tmp, 3)
    try:
        for i, n in enumerate(f.names):
            f.api.create("/api/v1/namespaces/default/pods", {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"web-{i}", "namespace": "default",
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                                  "uid": "u-web", "controller": True}]},
                "spec": {"nodeName": n, "containers": [{"name": "web", "image": "web"}]}})
        f.behave("node-000", {"hooks": {"ceph-noout": "fail"}})
        f.start_operator()
        f.watch.track("workers", f.names, 1)
        spec = upgrade_spec(max_unavailable=1, hooks={"preDrain": [
            {"waitFor": {"label": "storage.example.com/drain-ok", "value": "yes"}, "timeoutSeconds": 60},
            {"exec": "ceph-noout"}]})
        spec["strategy"]["failureBudget"] = 2
        f.apply_os("workers", spec)
        f.wait("node-000 waiting for its label", lambda: "wait for label" in
               ((osnode_status(f, "node-000").get("hook") or {}).get("hook") or ""))
        time.sleep(2)
        check(osnode_status(f, "node-000").get("phase") == "PreDrain" and
              len(f.api.get("/api/v1/namespaces/default/pods")["items"]) == 3,
              "without the label the node waits in PreDrain, nothing evicted")
        f.api.patch("/api/v1/nodes/node-000", {"metadata": {"labels": {"storage.example.com/drain-ok": "yes"}}})
        ok = f.wait("node-000 Failed", lambda: osnode_status(f, "node-000").get("phase") == "Failed")
        st = osnode_status(f, "node-000")
        err = (st.get("lastError") or {}).get("message", "")
        check(bool(ok) and "preDrain hook exec ceph-noout failed" in err and "HEALTH_ERR" in err,
              "the task fails with the hook's message and output: %s" % err)
        node = f.api.get("/api/v1/nodes/node-000")
        pods = [p["spec"]["nodeName"] for p in f.api.get("/api/v1/namespaces/default/pods")["items"]]
        check(not (node.get("spec") or {}).get("unschedulable") and "node-000" in pods,
              "node-000 stays in service: uncordoned, its pod not evicted")
        logs = [json.loads(l)["path"] for l in open(os.path.join(f.hostdir, "node-000.log"))]
        check("/v1/activate" not in logs and "/v1/reboot" not in logs, "node-000 was not rebooted")
        h = st.get("hook") or {}
        check(h.get("state") == "Failed" and "HEALTH_ERR" in h.get("output", ""), "status.hook has the output: %s" % h)
        ev = f.api.get("/apis/events.k8s.io/v1/namespaces/default/events")["items"]
        check(any(e.get("reason") == "UpdateFailed" and "ceph-noout" in (e.get("note") or "") for e in ev),
              "an UpdateFailed Event names the hook")
        c = f.wait("failed 1 counted", lambda: (f.os("workers").get("status") or {}).get("failed") == 1)
        check(bool(c), "the failure counts against the budget (failed 1)")
        # the other nodes wait for their own label
        for n in f.names[1:]:
            f.api.patch(f"/api/v1/nodes/{n}", {"metadata": {"labels": {"storage.example.com/drain-ok": "yes"}}})
        ok = f.wait("the others at 2.0.0", lambda: all_at(f, f.names[1:], "2.0.0"), timeout=120)
        check(bool(ok), "the other nodes pass both hooks and update")
        check(not f.watch.violations, "maxUnavailable never exceeded")
    finally:
        f.close()


def scenario_retry(tmp):
    """A node that failed this rollout's task gets another try through
    hullctl cluster retry: hull-node resets it, the operator gives the task
    again within maxUnavailable, the failure budget gets the node back and a
    halted rollout goes on. Wrong requests change nothing."""
    f = Fleet(tmp, 3)
    try:
        f.behave("node-000", {"hooks": {"pre-check": "fail"}})
        f.start_operator()
        f.watch.track("workers", f.names, 1)
        spec = upgrade_spec(max_unavailable=1, hooks={"preDrain": [{"exec": "pre-check"}]})
        spec["strategy"]["failureBudget"] = 1
        f.apply_os("workers", spec)
        ok = f.wait("node-000 Failed", lambda: osnode_status(f, "node-000").get("phase") == "Failed")
        check(bool(ok), "node-000 fails its pre-drain hook")
        halted = f.wait("the rollout halts", lambda: (f.condition("workers", "Degraded") or {}).get("reason") ==
                        "FailureBudgetExceeded")
        check(bool(halted), "failureBudget 1: the rollout halts at the first failure (FailureBudgetExceeded)")
        task = osnode_status(f, "node-000").get("task")
        check(task == "workers/upgrade/2.0.0", f"the failed task is this rollout's ({task})")
        others = [n for n in f.names[1:] if osnode_status(f, n).get("phase") != "Failed"]

        # What people get wrong: nothing changes.
        rc, out, err = hullctl(f, "retry", "workers", others[0])
        check(rc == 2 and "has not failed" in err and "Nothing was changed" in err,
              f"a node that did not fail is refused ({rc}: {err.strip()})")
        rc, out, err = hullctl(f, "retry", "workers", "node-000", "nosuch")
        check(rc == 2 and "nosuch is not a node of OS 'workers'" in err, f"an unknown node is refused: {err.strip()}")
        check(not f.api.get("/apis/hull.dev/v1alpha1/osnodes/node-000").get("spec", {}).get("retry"),
              "all or nothing: node-000 was not asked either")
        rc, out, err = hullctl(f, "retry", "nope")
        check(rc == 1 and "No OS object named 'nope'" in err, f"unknown OS: {err.strip()}")
        rc, out, err = hullctl(f, "status", "--wait", "5")
        check(rc == 2 and "--wait is for retry" in err, f"--wait elsewhere: {err.strip()}")
        rc, out, err = hullctl(f, "retry", "workers", "--wait", "soon")
        check(rc == 2 and "--wait takes a number of seconds" in err, f"bad --wait: {err.strip()}")

        # hull-node's own check: a request about a task the node did not fail.
        f.api.patch(f"/apis/hull.dev/v1alpha1/osnodes/{others[0]}",
                    {"spec": {"retry": {"task": "workers/upgrade/2.0.0", "requestedAt": "2026-12-04T10:00:00.5Z"}}})
        ans = f.wait("hull-node refuses", lambda: (osnode_status(f, others[0]).get("retry") or {}).get("result"))
        check(ans == "Refused" and "did not fail task workers/upgrade/2.0.0" in (osnode_status(f, others[0])["retry"].get("message") or ""),
              f"hull-node refuses to reset a node that did not fail ({osnode_status(f, others[0]).get('retry')})")

        # A quarantined node that then reported its failure: the retry lifts
        # the label too.
        f.api.patch("/api/v1/nodes/node-000", {"metadata": {"labels": {"hull.dev/quarantined": "true"}}})
        f.behave("node-000", {})
        rc, out, err = hullctl(f, "retry", "workers", "--wait", "60")
        log("hullctl cluster retry workers:\n" + out + err)
        check(rc == 0 and "node-000: Reset" in out and "quarantine label removed" in out and "node-001" not in out,
              f"retry resets node-000 and only it ({rc}: {out}{err})")
        node = f.api.get("/api/v1/nodes/node-000")
        check("hull.dev/quarantined" not in (node["metadata"].get("labels") or {}), "the quarantine label is gone")
        done = f.wait("all at 2.0.0", lambda: all_at(f, f.names, "2.0.0"), timeout=120)
        check(bool(done), "the retried node and the rest of the rollout reach 2.0.0")
        st = f.wait("failed 0, updated 3", lambda: (lambda s: s if s.get("failed") == 0 and s.get("updated") == 3
                                                     else None)(f.os("workers").get("status") or {}))
        check(bool(st), f"the OS status counts no failure any more ({f.os('workers').get('status')})")
        check((f.condition("workers", "Degraded") or {}).get("status") != "True",
              f"not Degraded any more ({f.condition('workers', 'Degraded')})")
        hooks = open(os.path.join(f.hostdir, "node-000.hooks")).read().count("pre-check")
        check(hooks == 2, f"node-000 ran its pre-drain hook twice: the failed try and the retry ({hooks})")
        ev = f.api.get("/apis/events.k8s.io/v1/namespaces/default/events")["items"]
        check(any(e.get("reason") == "RetryRequested" and "pre-check" in (e.get("note") or "") for e in ev),
              "a RetryRequested Event keeps the failure the reset cleared")
        rc, out, err = hullctl(f, "retry", "workers")
        check(rc == 0 and "nothing to retry" in out, f"nothing failed: nothing to do ({rc}: {out}{err})")
        check(not f.watch.violations, "maxUnavailable never exceeded")
    finally:
        f.close()


SCENARIOS = {k[len("scenario_"):]: v for k, v in globals().items() if k.startswith("scenario_")}


def main():
    global A
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    for a in ("apiserver", "yaml2json", "crds", "hull-node", "hull-operator", "fake-hosts", "hullctl"):
        p.add_argument("--" + a, required=True)
    A = p.parse_args()
    with tempfile.TemporaryDirectory(prefix=f"hull-fleet-{A.scenario}-") as tmp:
        try:
            SCENARIOS[A.scenario](tmp)
        except Exception as e:
            import traceback
            traceback.print_exc()
            FAILED.append(f"exception: {e}")
        if FAILED:
            for name in sorted(os.listdir(tmp)):
                if name.endswith(".log") and ("operator" in name or name == "apiserver.log"):
                    print(f"--- {name} (tail)")
                    print("".join(open(os.path.join(tmp, name), errors="replace").readlines()[-40:]))
    print(f"{len(FAILED)} check(s) failed" if FAILED else "all checks passed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
