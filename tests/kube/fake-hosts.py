#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Simulated hosts for the fleet tests: one fake hull-agent per node, and
the host side of a reboot (the kubelet's Node Ready condition).

TEST FIXTURE ONLY. Each simulated host answers the agent API of
docs/AGENT-API.md on DIR/<node>.sock as far as hull-node uses it (status,
stage, activate, rollback, config, reboot, mark-good) and keeps the A/B slot
state a real host would: staging writes the inactive slot, activate and
rollback change the boot target and reboot. A reboot takes the socket away,
sets the Node's Ready condition to False through the API server (as a
kubelet that stopped posting status would), and comes back with a new boot
ID. What it does NOT model: GRUB, disks, signatures, health checks; passing
against it says nothing about hull-agent itself (tests/integration and
tests/e2e test that).

Usage: fake-hosts.py --dir DIR --api URL --nodes n1,n2,... [--version 1.0.0]
                     [--stage-seconds S] [--reboot-seconds S] [--health-seconds S]
                     [--components FILE]

--components FILE: {"<version>": {"kubelet": "v1.32.0", ...}, ...}, the
component versions each image records (its components.json and its bundle
manifest); a version not in it has none. Slots report them as the real agent
does: the booted slot always (from "its image"), the other slot only while it
holds a staged or good image (not empty, not bad), and a stage clears them
when it starts writing.

Per-node behaviour is read from DIR/<node>.json on every request (absent =
normal), e.g. {"stage": "fail"} | {"stage": "refuse"} (409) | {"boot": "fallback"}
| {"reboot": "never"} (the host goes down and stays down until the file no longer says "never")
| {"reboot": "lost"} (the first reboot answers but never happens: the host stays up on the same boot)
| {"activate": "busy-once"} (the first activate is a 409 busy, as while a health check runs)
| {"stage_seconds": 5} | {"range": "ignored"} (the stage reports a full download and a notice)
| {"hooks": {"NAME": "fail" | "missing"}} (POST /v1/hook: exit status 3 | 404; any other hook succeeds)
| {"pods_unready_on": "2.0.0"} (after booting that version the node's DaemonSet pods stay un-Ready)
| {"components": {...}} (the booted image's components.json says this instead, valid or not).
DIR/<node>.log gets one line per API call, DIR/<node>.hooks one per hook run.
"""

import argparse
import http.server
import json
import os
import socketserver
import threading
import time
import urllib.parse
import urllib.request
import uuid

args = None
lock = threading.Lock()


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def api_call(method, path, body=None, content_type="application/merge-patch+json"):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{args.api}{path}", data=data, method=method,
                                 headers={"Content-Type": content_type} if data else {})
    for _ in range(20):
        try:
            return json.loads(urllib.request.urlopen(req, timeout=10).read() or b"null")
        except Exception:
            time.sleep(0.2)
    return None


def set_ready(node, ready, boot_id=None):
    """Patch the Node's Ready condition as the kubelet would; a kubelet of a
    new boot also reports its boot ID (a UUID with dashes, as the kubelet
    writes /proc/sys/kernel/random/boot_id)."""
    status = {"conditions": [{
        "type": "Ready", "status": "True" if ready else "False",
        "reason": "KubeletReady" if ready else "NodeStatusUnknown",
        "message": "simulated", "lastHeartbeatTime": now_iso(), "lastTransitionTime": now_iso()}]}
    if boot_id:
        status["nodeInfo"] = {"bootID": str(uuid.UUID(boot_id))}
    api_call("PATCH", f"/api/v1/nodes/{node}/status", {"status": status})


def set_pods_ready(node, ready, reason=None):
    """The kubelet of a new boot restarts the node's DaemonSet pods and
    reports their readiness (a fresh lastTransitionTime)."""
    pods = api_call("GET", "/api/v1/pods?fieldSelector=" + urllib.parse.quote(f"spec.nodeName={node}")) or {}
    for p in pods.get("items", []):
        owners = p["metadata"].get("ownerReferences") or []
        if not any(o.get("kind") == "DaemonSet" and o.get("controller") for o in owners):
            continue
        cond = {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now_iso()}
        if not ready:
            cond.update(reason=reason or "ContainersNotReady", message="containers with unready status: [agent]")
        api_call("PATCH", f"/api/v1/namespaces/{p['metadata']['namespace']}/pods/{p['metadata']['name']}/status",
                 {"status": {"phase": "Running", "conditions": [cond]}})


class Host:
    def __init__(self, name):
        self.name = name
        self.sock = os.path.join(args.dir, name + ".sock")
        self.booted = "a"
        self.boot_id = uuid.uuid4().hex
        self.slots = {"a": {"state": "good", "version": args.version, "priority": 10, "tries": 0, "good": True,
                            "components": components_of(args.version)},
                      "b": {"state": "empty", "version": None, "priority": 0, "tries": 0, "good": False,
                            "components": None}}
        self.config = {"generation": 0}
        self.reboot_required = False
        self.next_boot = None   # set by activate/rollback, like the GRUB environment
        self.lost_reboots = 0
        self.busy_answers = 0
        self.health = "healthy"
        self.op = None
        self.next_op = 1
        self.server = None
        self.lock = threading.Lock()

    def behaviour(self):
        try:
            with open(os.path.join(args.dir, self.name + ".json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def other(self):
        return "b" if self.booted == "a" else "a"

    def status(self):
        slots = {}
        b = self.behaviour()
        for k, s in self.slots.items():
            slots[k] = {f: v for f, v in s.items() if f != "components"}
            slots[k]["booted"] = k == self.booted
            comp = s["components"]
            if k == self.booted and "components" in b:
                comp = b["components"]
            elif k != self.booted and s["state"] in ("empty", "bad"):
                comp = None
            if comp:
                slots[k]["components"] = comp
        return {"api": "v1",
                "os": {"name": "hull-sim", "version": self.slots[self.booted]["version"],
                       "pretty_name": "Hull simulated host"},
                "boot": {"slot": self.booted, "degraded": False, "boot_id": self.boot_id, "first_boot": False},
                "slots": slots, "health": {"state": self.health, "message": None},
                "config": {"generation": self.config.get("generation", 0)},
                "reboot_required": self.reboot_required, "operation": self.op}

    def new_op(self, type_, version=None, state="running"):
        self.op = {"id": self.next_op, "type": type_, "state": state, "phase": None, "done": 0, "total": 0,
                   "started": now_iso(), "finished": None, "error": None, "version": version,
                   "slot": self.other() if type_ == "stage" else self.booted}
        self.next_op += 1
        return self.op

    def busy(self):
        return self.op is not None and self.op["state"] == "running"

    # --- the API ---
    # The request fields the real agent accepts (src/shared/agent-api.c) and
    # their JSON types. Like the agent, an unknown field, a wrong type or a
    # null is a 400: a client that sends what the agent would refuse must
    # fail here too, not only on a real host.
    FIELDS = {
        "/v1/stage": {"source": str, "sha256": str, "version": str, "key_id": str, "ca_file": str,
                      "client_cert": str, "client_key": str},
        "/v1/activate": {"tries": int, "reboot": bool},
        "/v1/rollback": {"reboot": bool},
        "/v1/reboot": {},
        "/v1/mark-good": {"force": bool},
        "/v1/hook": {"name": str, "stage": str, "timeout_seconds": int, "task": str},
    }

    def check_body(self, path, body):
        fields = self.FIELDS.get(path)
        if fields is None:
            return None
        for k, v in body.items():
            if k not in fields:
                return f"unknown field '{k}'"
            if not isinstance(v, fields[k]) or (fields[k] is int and isinstance(v, bool)):
                return f"'{k}' must be {fields[k].__name__}, not {json.dumps(v)}"
        if path == "/v1/stage" and "source" not in body:
            return "'source' is required"
        if path == "/v1/hook" and "name" not in body:
            return "'name' is required"
        return None

    def handle(self, method, path, body):
        b = self.behaviour()
        bad = self.check_body(path, body) if method == "POST" else None
        if bad:
            return 400, {"error": {"code": "bad_request", "message": bad}}
        with self.lock:
            if method == "GET" and path == "/v1/status":
                return 200, self.status()
            if method != "POST":
                return 404, {"error": {"code": "not_found", "message": path}}
            if self.busy():
                return 409, {"error": {"code": "busy", "message": "an operation is running"}}
            if path == "/v1/stage" and b.get("stage") == "refuse":
                return 409, {"error": {"code": "conflict", "message": "the inactive slot's device is in use"}}
            if path == "/v1/stage":
                op = self.new_op("stage", body.get("version"))
                other = self.other()
                self.slots[other].update(state="empty", version=None, good=False, priority=0, components=None)
                threading.Thread(target=self.do_stage, args=(op, body, b), daemon=True).start()
                return 202, op
            if path == "/v1/activate" and b.get("activate") == "busy-once" and self.busy_answers == 0:
                self.busy_answers += 1
                return 409, {"error": {"code": "busy", "message": "an operation is running"}}
            if path == "/v1/activate":
                other = self.other()
                if self.slots[other]["state"] != "staged":
                    return 409, {"error": {"code": "conflict", "message": "nothing is staged"}}
                self.slots[other].update(state="trying", priority=20, tries=3)
                self.next_boot = other
                self.reboot_required = True
                op = self.new_op("activate", self.slots[other]["version"], "succeeded")
                threading.Thread(target=self.reboot, args=(other, b), daemon=True).start()
                return 200, op
            if path == "/v1/rollback":
                other = self.other()
                if not self.slots[other]["good"]:
                    return 409, {"error": {"code": "conflict", "message": "the other slot is not good"}}
                self.slots[other]["priority"] = 20
                self.slots[self.booted]["priority"] = 10
                self.next_boot = other
                self.reboot_required = True
                op = self.new_op("rollback", self.slots[other]["version"], "succeeded")
                threading.Thread(target=self.reboot, args=(other, b), daemon=True).start()
                return 200, op
            if path == "/v1/reboot":
                op = self.new_op("reboot", None, "succeeded")
                threading.Thread(target=self.reboot, args=(self.next_boot or self.booted, b), daemon=True).start()
                return 200, op
            if path == "/v1/config":
                gen = body.get("generation")
                cur = self.config.get("generation", 0)
                if not isinstance(gen, int) or gen < cur or (gen == cur and body != self.config):
                    return 409, {"error": {"code": "stale_generation", "message": f"generation {gen} <= {cur}"}}
                changed = gen != cur
                # As the agent (docs/CONFIG.md): a reboot is due exactly
                # when the kernel arguments differ, also when they go.
                if changed and (body.get("kernel_args") or []) != (self.config.get("kernel_args") or []):
                    self.reboot_required = True
                self.config = body
                return 200, {"generation": gen, "changed": changed, "reboot_required": self.reboot_required}
            if path == "/v1/hook":
                how = (b.get("hooks") or {}).get(body["name"], "ok")
                if how == "missing":
                    return 404, {"error": {"code": "not_found", "message": "no hook %s in /etc/hull/hooks.d or "
                                           "/usr/lib/hull/hooks.d" % body["name"]}}
                op = self.new_op("hook", None)
                op["hook"] = {"name": body["name"], "stage": body.get("stage", "manual"), "exit_code": None,
                              "output": ""}
                threading.Thread(target=self.do_hook, args=(op, body, how), daemon=True).start()
                return 202, op
            if path == "/v1/mark-good":
                self.slots[self.booted]["good"] = True
                self.slots[self.booted]["state"] = "good"
                return 200, self.new_op("mark-good", None, "succeeded")
            return 404, {"error": {"code": "not_found", "message": path}}

    def do_stage(self, op, body, b):
        time.sleep(b.get("stage_seconds", args.stage_seconds))
        with self.lock:
            other = self.other()
            if b.get("stage") == "fail":
                op.update(state="failed", finished=now_iso(),
                          error={"code": "digest_mismatch", "message": "the bundle's SHA-256 does not match",
                                 "errno": "EBADMSG"})
                self.slots[other]["state"] = "bad"
                return
            self.slots[other].update(state="staged", version=body.get("version"), good=False, priority=0,
                                     components=components_of(body.get("version")))
            # What the real agent reports (docs/DELTA.md): an oci:// or
            # https:// source is staged as a delta, a 380 MB bundle with
            # a few MB missing; a server without Range sends all of it.
            size = 380 << 20
            if b.get("range") == "ignored":
                op.update(notice="the server ignores Range requests: downloading the whole bundle",
                          transfer={"bundle": size, "fetched": size, "reused": 0, "resumed": 0, "full": True})
            else:
                op.update(transfer={"bundle": size, "fetched": 15 << 20, "reused": size - (15 << 20),
                                    "resumed": 0, "full": False})
            op.update(state="succeeded", finished=now_iso())

    def do_hook(self, op, body, how):
        time.sleep(0.3)
        with self.lock:
            if how == "fail":
                op["hook"].update(exit_code=3, output="setting noout\nceph: cluster is HEALTH_ERR, refusing\n")
                op.update(state="failed", finished=now_iso(), error={
                    "code": "hook_failed", "errno": "EIO",
                    "message": "hook %s exited with status 3: ceph: cluster is HEALTH_ERR, refusing" % body["name"]})
            else:
                op["hook"].update(exit_code=0, output="%s: ok on %s\n" % (body["name"], self.name))
                op.update(state="succeeded", finished=now_iso())
        with open(os.path.join(args.dir, self.name + ".hooks"), "a") as f:
            f.write(json.dumps({"t": time.time(), "name": body["name"], "stage": body.get("stage"),
                                "task": body.get("task"), "result": how}) + "\n")

    def reboot(self, target, b):
        time.sleep(0.1)         # the API answer goes out first, as on a real host
        if b.get("reboot") == "lost" and self.lost_reboots == 0:
            self.lost_reboots += 1
            return
        self.stop()
        set_ready(self.name, False)
        # "never": the host stays down until the behaviour file no longer
        # says so, as a person who power-cycles it would bring it back.
        while self.behaviour().get("reboot") == "never":
            time.sleep(0.2)
        time.sleep(b.get("reboot_seconds", args.reboot_seconds))
        with self.lock:
            fell_back = b.get("boot") == "fallback" and target != self.booted
            self.next_boot = None
            self.reboot_required = False    # a new boot: a new agent process
            if fell_back:
                self.slots[target].update(state="bad", priority=0, tries=0, components=None)
                self.op = {"id": self.next_op, "type": "fallback", "state": "failed", "phase": None, "done": 0,
                           "total": 0, "started": now_iso(), "finished": now_iso(), "version": self.slots[target]["version"],
                           "slot": target, "error": {"code": "boot_failed",
                                                     "message": f"slot {target} used up its tries"}}
                self.next_op += 1
            else:
                self.booted = target
                if not self.slots[target]["good"]:
                    self.health = "checking"
            self.boot_id = uuid.uuid4().hex
        self.start()
        set_ready(self.name, True, self.boot_id)
        # {"pods_unready_on": V}: after booting V the node's DaemonSet pods
        # never get Ready (a CNI or storage daemon broken by the image).
        bad = b.get("pods_unready_on") == self.slots[self.booted]["version"]
        set_pods_ready(self.name, not bad)
        if not fell_back and self.health == "checking":
            time.sleep(args.health_seconds)
            with self.lock:
                self.slots[self.booted].update(state="good", good=True, priority=10)
                other = self.other()
                if self.slots[other]["state"] == "good":
                    self.slots[other]["priority"] = 5
                self.health = "healthy"
                self.op = {"id": self.next_op, "type": "mark-good", "state": "succeeded", "phase": None,
                           "done": 0, "total": 0, "started": now_iso(), "finished": now_iso(), "error": None,
                           "version": self.slots[self.booted]["version"], "slot": self.booted}
                self.next_op += 1

    # --- the socket ---
    def start(self):
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def address_string(self):
                return "unix"

            def do(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = None
                if body is None or not isinstance(body, dict):
                    code, out = 400, {"error": {"code": "bad_request", "message": "not a JSON object"}}
                else:
                    code, out = host.handle(self.command, self.path.split("?")[0], body)
                with open(os.path.join(args.dir, host.name + ".log"), "a") as f:
                    rec = {"t": time.time(), "method": self.command, "path": self.path, "status": code}
                    if self.path == "/v1/stage":
                        rec.update(source=body.get("source"), sha256=body.get("sha256"))
                    f.write(json.dumps(rec) + "\n")
                data = json.dumps(out).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        try:
            os.unlink(self.sock)
        except FileNotFoundError:
            pass
        self.server = Server(self.sock, Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        try:
            os.unlink(self.sock)
        except FileNotFoundError:
            pass


def components_of(version):
    return (args.components_map or {}).get(version)


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--api", required=True)
    p.add_argument("--nodes", required=True)
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--stage-seconds", type=float, default=0.5)
    p.add_argument("--reboot-seconds", type=float, default=1.0)
    p.add_argument("--health-seconds", type=float, default=0.5)
    p.add_argument("--components")
    args = p.parse_args()
    args.components_map = json.load(open(args.components)) if args.components else {}
    hosts = [Host(n) for n in args.nodes.split(",") if n]
    for h in hosts:
        h.start()
    with open(os.path.join(args.dir, "ready"), "w") as f:
        f.write("ready\n")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
