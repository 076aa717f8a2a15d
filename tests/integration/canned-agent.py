#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A stand-in for hull-agent that answers with canned documents.

It exists to test hullctl, the client, against the wire format of
docs/AGENT-API.md: it decides nothing, verifies nothing and touches no slot.
It is not a model of the agent and passing against it says nothing about the
agent itself.

Usage: canned-agent.py SOCKET STATE_DIR

STATE_DIR/mode (read on every request) switches the behaviour:
  normal     the canned answers below
  forbidden  every request gets 403 forbidden
  huge       GET /v1/status answers with a 17 MiB body
  garbage    every answer is "this is not json"
Every request is appended to STATE_DIR/requests.jsonl as
{"method": ..., "path": ..., "body": ...}.
"""

import http.server
import json
import os
import socketserver
import sys
import threading

SOCKET, STATE = sys.argv[1], sys.argv[2]
MIB = 1024 * 1024
TOTAL = 345 * MIB

lock = threading.Lock()
state = {"next_id": 7, "op": None, "script": [], "staged": False}

STATUS = {
    "api": "v1",
    "os": {"name": "hull-demo", "version": "1.0.0", "pretty_name": "Hull hull-demo 1.0.0 (Debian bookworm)"},
    "boot": {"slot": "a", "degraded": False, "boot_id": "0f3c", "first_boot": False},
    "slots": {
        "b": {"state": "staged", "version": "2.0.0", "priority": 0, "tries": 0, "good": False, "booted": False},
        "a": {"state": "good", "version": "1.0.0", "priority": 10, "tries": 0, "good": True, "booted": True},
    },
    "health": {"state": "healthy", "message": None},
    "config": {"generation": 3},
    "reboot_required": False,
    "operation": {
        "id": 6, "type": "stage", "state": "failed", "phase": "verifying", "done": 0, "total": TOTAL,
        "started": "2026-11-22T01:40:00Z", "finished": "2026-11-22T01:40:02Z",
        "error": {"code": "bad_signature",
                  "message": "the bundle's signature does not verify against key 0123456789abcdef",
                  "errno": "EKEYREJECTED"},
        "version": "2.0.0", "slot": "b",
    },
}


def error(status, code, message):
    return status, {"error": {"code": code, "message": message, "errno": "E"}}


def operation(op_id, version, state_, phase, done, err=None, type_="stage"):
    return {"id": op_id, "type": type_, "state": state_, "phase": phase, "done": done, "total": TOTAL,
            "started": "2026-11-22T01:40:00Z",
            "finished": None if state_ == "running" else "2026-11-22T01:41:00Z",
            "error": err, "version": version, "slot": "b"}


def stage(body):
    op_id = state["next_id"]
    state["next_id"] += 1
    version = body.get("version") or "2.0.0"
    steps = [("running", "fetching-header", 0, None), ("running", "verifying", 0, None)]
    if "fail" in body.get("source", ""):
        steps.append(("failed", "verifying", 0,
                      {"code": "bad_signature", "message": "the bundle's signature does not verify",
                       "errno": "EKEYREJECTED"}))
    else:
        steps += [("running", "writing", TOTAL // 2, None), ("running", "writing", TOTAL, None),
                  ("running", "finishing", TOTAL, None), ("succeeded", "finishing", TOTAL, None)]
    state["script"] = [operation(op_id, version, *s) for s in steps]
    state["op"] = operation(op_id, version, "running", "fetching-header", 0)
    return 202, state["op"]


def mark_good(body):
    op_id = state["next_id"]
    state["next_id"] += 1
    if body.get("force"):
        state["op"] = operation(op_id, "1.0.0", "succeeded", None, 0, type_="mark-good")
        state["op"]["slot"] = "a"
        return 200, state["op"]
    steps = [("running", "health-checks", 1, None), ("running", "health-checks", 2, None),
             ("failed", "health-checks", 2, {"code": "unhealthy", "message": "kubelet: not ready after 300 s",
                                              "errno": "ETIMEDOUT"})]
    state["script"] = [operation(op_id, "1.0.0", *s, type_="mark-good") for s in steps]
    state["op"] = operation(op_id, "1.0.0", "running", "health-checks", 0, type_="mark-good")
    return 202, state["op"]


def current_operation():
    if state["script"]:
        state["op"] = state["script"].pop(0)
        if state["op"]["state"] == "succeeded":
            state["staged"] = True
    return state["op"]


def answer(method, path, body):
    route = path.split("?")[0]
    if method == "GET" and route == "/v1/status":
        return 200, STATUS
    if method == "GET" and route == "/v1/operation":
        return 200, current_operation()
    if method == "POST" and route == "/v1/stage":
        return stage(body)
    if method == "POST" and route == "/v1/activate":
        if not state["staged"]:
            return error(409, "conflict", "nothing is staged: slot b is empty")
        op = operation(state["next_id"], "2.0.0", "succeeded", None, 0, type_="activate")
        state["next_id"] += 1
        return 200, {"operation": op, "reboot_required": True, "rebooting": body.get("reboot", True)}
    if method == "POST" and route == "/v1/rollback":
        return error(409, "conflict", "slot b is not good: nothing to roll back to")
    if method == "POST" and route == "/v1/mark-good":
        return mark_good(body)
    if method == "POST" and route == "/v1/reboot":
        op = operation(state["next_id"], None, "succeeded", None, 0, type_="reboot")
        state["next_id"] += 1
        return 200, {"operation": op, "rebooting": True}
    if method == "POST" and route == "/v1/config":
        return 200, {"generation": body.get("generation", 0), "changed": True, "reboot_required": True}
    if method == "GET" and route == "/v1/config":
        return 200, {"generation": 3, "hostname": "node-1"}
    if method == "POST" and route == "/v1/debug":
        return 200, {"message": "ran: " + " ".join(body.get("command", ["<shell>"]))}
    if method == "GET" and route == "/v1/audit":
        return 200, [
            {"time": "2026-11-22T01:40:00.123456Z", "seq": 12, "uid": 0, "pid": 4242, "method": "POST",
             "path": "/v1/stage", "request": {}, "status": 202, "result": "accepted", "error": None},
            {"time": "2026-11-22T01:40:05.000001Z", "seq": 13, "uid": 1000, "pid": 99, "method": "POST",
             "path": "/v1/activate", "request": {}, "status": 403, "result": "refused",
             "error": {"code": "forbidden", "message": "uid 1000 is not allowed"}},
        ]
    return error(404, "not_found", "no such path: " + route)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, data):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else {}
        with lock:
            with open(os.path.join(STATE, "requests.jsonl"), "a") as f:
                f.write(json.dumps({"method": method, "path": self.path, "body": body}) + "\n")
            try:
                with open(os.path.join(STATE, "mode")) as f:
                    mode = f.read().strip()
            except FileNotFoundError:
                mode = "normal"
            if mode == "forbidden":
                status, doc = error(403, "forbidden", "uid 1000 is not root or in group hull")
            elif mode == "huge" and self.path == "/v1/status":
                return self.reply(200, b'"' + b"x" * (17 * MIB) + b'"')
            elif mode == "garbage":
                return self.reply(200, b"this is not json")
            else:
                status, doc = answer(method, self.path, body)
        self.reply(status, json.dumps(doc).encode())

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


if os.path.exists(SOCKET):
    os.unlink(SOCKET)
Server(SOCKET, Handler).serve_forever()
