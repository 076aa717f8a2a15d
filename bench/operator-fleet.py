#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Benchmark: hull-operator rolling out over a large simulated fleet.

The API server is the test double (tests/kube/apiserver.py). The nodes are
simulated in this process, not by hull-node processes (5,000 of those would
measure this machine, not the operator): a watch on Nodes sees each task the
operator hands out and, after --node-seconds, answers as hull-node would
(OSNode status Done at the new version, task annotation removed).

Measures, for the real hull-operator binary:
  - time from creating the OS object to the first node getting its task;
  - wall time, CPU seconds (user+system) and peak resident memory (VmHWM)
    of the operator for the whole rollout;
and prints them for a baseline fleet (--baseline nodes) and the large one
(--nodes), run one after the other in this invocation, with the ratios.

usage: operator-fleet.py --operator EXE --apiserver apiserver.py --yaml2json EXE --crds DIR
                         [--nodes 5000] [--baseline 50] [--max-unavailable 10%]
"""

import argparse
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "kube"))
from kubeapi import Api  # noqa: E402
import urllib.error
import urllib.request

A = None


def proc_stats(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick
    hwm = rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return cpu, hwm / 1024, rss / 1024


def realistic_status(name):
    """What a kubelet reports (about 4 KiB of JSON): the operator reads only
    the Ready condition, the rest is what its informer must not keep."""
    cond = lambda t, s, r: {"type": t, "status": s, "reason": r, "message": f"kubelet says {r}",
                            "lastHeartbeatTime": "2026-11-30T00:00:00Z",
                            "lastTransitionTime": "2026-11-30T00:00:00Z"}
    return {
        "conditions": [cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                       cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                       cond("PIDPressure", "False", "KubeletHasSufficientPID"),
                       cond("Ready", "True", "KubeletReady")],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": name}],
        "capacity": {"cpu": "64", "memory": "263835868Ki", "pods": "110", "ephemeral-storage": "1951850Mi"},
        "allocatable": {"cpu": "63", "memory": "261738716Ki", "pods": "110", "ephemeral-storage": "1798818Mi"},
        "nodeInfo": {"machineID": "0f" * 16, "systemUUID": "1e" * 16, "bootID": "2d" * 16,
                     "kernelVersion": "6.1.0-28-amd64", "osImage": "Hull 1.0.0", "containerRuntimeVersion":
                     "containerd://1.6.20", "kubeletVersion": "v1.31.0", "kubeProxyVersion": "v1.31.0",
                     "operatingSystem": "linux", "architecture": "amd64"},
        "images": [{"names": [f"registry.example.com/team-{i}/service@sha256:{'ab' * 32}",
                              f"registry.example.com/team-{i}/service:v{i}.2.3"], "sizeBytes": 123456789 + i}
                   for i in range(12)],
    }


def run(n, tmp):
    portfile = os.path.join(tmp, f"port-{n}")
    crds = sum([["--crd", os.path.join(A.crds, f)] for f in sorted(os.listdir(A.crds))], [])
    dlog = open(os.path.join(tmp, f"apiserver-{n}.log"), "w")
    double = subprocess.Popen([sys.executable, A.apiserver, "--port", "0", "--port-file", portfile,
                               "--yaml2json", A.yaml2json, "--history", str(max(1000, 20 * n))] + crds,
                              stdout=dlog, stderr=subprocess.STDOUT)
    procs = [double]
    try:
        while not os.path.exists(portfile):
            time.sleep(0.05)
        port = int(open(portfile).read())
        api = Api(f"http://127.0.0.1:{port}", timeout=60)
        api.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                "metadata": {"name": "hull-system"}})
        names = [f"node-{i:05d}" for i in range(n)]

        def mk(name):
            api.call("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {
                "name": name, "labels": {"pool": "workers", "kubernetes.io/hostname": name,
                                         "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                                         "topology.kubernetes.io/zone": "zone-a"}},
                "spec": {"podCIDR": "10.244.0.0/24", "providerID": f"hull://{name}"}})
            api.call("PATCH", f"/api/v1/nodes/{name}/status", {"status": realistic_status(name)},
                     "application/merge-patch+json")
            api.call("POST", "/apis/hull.dev/v1alpha1/osnodes", {"apiVersion": "hull.dev/v1alpha1", "kind": "OSNode",
                                                                 "metadata": {"name": name}, "spec": {}})
            api.call("PATCH", f"/apis/hull.dev/v1alpha1/osnodes/{name}/status", {"status": {
                "phase": "Idle", "version": "1.0.0", "slot": "a", "configGeneration": 0}},
                "application/merge-patch+json")
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            list(ex.map(mk, names))
        print(f"  [{n} nodes] fleet created in {time.time() - t0:.1f} s", flush=True)

        kubeconfig = os.path.join(tmp, f"kubeconfig-{n}")
        with open(kubeconfig, "w") as f:
            f.write(f"apiVersion: v1\nkind: Config\nclusters:\n- name: b\n  cluster:\n    server: http://127.0.0.1:{port}\n"
                    f"users:\n- name: b\n  user:\n    token: t\ncontexts:\n- name: b\n  context:\n    cluster: b\n"
                    f"    user: b\n    namespace: hull-system\ncurrent-context: b\n")
        olog = open(os.path.join(tmp, f"operator-{n}.log"), "w")
        op = subprocess.Popen([A.operator, "--kubeconfig", kubeconfig, "--identity", "bench",
                               "--metrics-address", "off"], stdout=olog, stderr=subprocess.STDOUT)
        procs.append(op)
        lease = "/apis/coordination.k8s.io/v1/namespaces/hull-system/leases/hull-operator"
        while (api.call("GET", lease)[1] or {}).get("spec", {}).get("holderIdentity") != "bench":
            time.sleep(0.1)
        time.sleep(2)           # informers synced, first (empty) pass done
        _, idle_hwm, idle_rss = proc_stats(op.pid)
        cpu0, _, _ = proc_stats(op.pid)

        # The simulated nodes.
        first_task = [None]
        done = set()
        lock = threading.Lock()
        stop = [False]
        pool = concurrent.futures.ThreadPoolExecutor(16)

        def finish(name, tid):
            time.sleep(A.node_seconds)
            api.call("PATCH", f"/apis/hull.dev/v1alpha1/osnodes/{name}/status", {"status": {
                "phase": "Done", "task": tid, "version": "2.0.0", "slot": "b"}}, "application/merge-patch+json")
            api.call("PATCH", f"/api/v1/nodes/{name}", {"metadata": {"annotations": {"hull.dev/task": None}}},
                     "application/merge-patch+json")
            with lock:
                done.add(name)

        def watch():
            seen = set()
            st, lst = api.call("GET", "/api/v1/nodes?limit=1")
            rv = lst["metadata"]["resourceVersion"]
            while not stop[0]:
                url = f"{api.base}/api/v1/nodes?watch=true&resourceVersion={rv}&timeoutSeconds=30"
                try:
                    with urllib.request.urlopen(url, timeout=60) as r:
                        for line in r:
                            ev = json.loads(line)
                            if ev["type"] == "ERROR":
                                raise RuntimeError(f"watch error: {ev}")
                            rv = ev["object"]["metadata"]["resourceVersion"]
                            ann = (ev["object"]["metadata"].get("annotations") or {}).get("hull.dev/task")
                            name = ev["object"]["metadata"]["name"]
                            if ann and name not in seen:
                                seen.add(name)
                                if first_task[0] is None:
                                    first_task[0] = time.time()
                                pool.submit(finish, name, json.loads(ann)["id"])
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    if not stop[0]:
                        time.sleep(0.1)
        wt = threading.Thread(target=watch, daemon=True)
        wt.start()
        time.sleep(0.5)

        t_spec = time.time()
        st, _ = api.call("POST", "/apis/hull.dev/v1alpha1/oses", {
            "apiVersion": "hull.dev/v1alpha1", "kind": "OS", "metadata": {"name": "workers"},
            "spec": {"version": "2.0.0", "operation": "upgrade", "nodeSelector": {"pool": "workers"},
                     "image": {"url": "https://updates.example.com/hull-2.0.0.hullb", "sha256": "ab" * 32},
                     "strategy": {"maxUnavailable": A.max_unavailable}}})
        assert st in (200, 201), st
        while True:
            with lock:
                if len(done) == n:
                    break
            if op.poll() is not None:
                raise RuntimeError("hull-operator exited")
            time.sleep(0.2)
        # Wait for the operator to report it.
        while True:
            o = api.call("GET", "/apis/hull.dev/v1alpha1/oses/workers")[1]
            c = [x for x in (o.get("status") or {}).get("conditions") or [] if x["type"] == "Complete"]
            if c and c[0]["status"] == "True":
                break
            time.sleep(0.2)
        t_end = time.time()
        cpu1, hwm, rss = proc_stats(op.pid)
        stop[0] = True
        pool.shutdown(wait=False)
        return {"nodes": n, "first_batch_s": first_task[0] - t_spec, "rollout_s": t_end - t_spec,
                "cpu_s": cpu1 - cpu0, "peak_rss_mib": hwm, "idle_rss_mib": idle_rss, "rss_mib": rss}
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def main():
    global A
    p = argparse.ArgumentParser()
    p.add_argument("--operator", required=True)
    p.add_argument("--apiserver", required=True)
    p.add_argument("--yaml2json", required=True)
    p.add_argument("--crds", required=True)
    p.add_argument("--nodes", type=int, default=5000)
    p.add_argument("--baseline", type=int, default=50)
    p.add_argument("--max-unavailable", default="10%")
    p.add_argument("--node-seconds", type=float, default=0.5)
    A = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="hull-bench-operator-") as tmp:
        base = run(A.baseline, tmp)
        big = run(A.nodes, tmp)
    print()
    print(f"{'metric':40s} {A.baseline:>10d} {A.nodes:>10d}   ratio")
    for k, label in (("first_batch_s", "OS created -> first node chosen (s)"),
                     ("rollout_s", "whole rollout (s)"),
                     ("cpu_s", "operator CPU, user+system (s)"),
                     ("idle_rss_mib", "operator RSS after sync, idle (MiB)"),
                     ("peak_rss_mib", "operator peak RSS (MiB)")):
        ratio = big[k] / base[k] if base[k] else float("nan")
        print(f"{label:40s} {base[k]:10.2f} {big[k]:10.2f}   {ratio:6.2f}")
    print(f"{'operator CPU per node (ms)':40s} {1000 * base['cpu_s'] / base['nodes']:10.2f} "
          f"{1000 * big['cpu_s'] / big['nodes']:10.2f}   "
          f"{(big['cpu_s'] / big['nodes']) / (base['cpu_s'] / base['nodes']):6.2f}")
    print(f"targets at {A.nodes} nodes: peak RSS < 64 MiB: {'met' if big['peak_rss_mib'] < 64 else 'NOT met'}; "
          f"first batch < 1 s: {'met' if big['first_batch_s'] < 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
