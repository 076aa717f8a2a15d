#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""hull-agent as a daemon on a real GPT disk on loop devices, driven over its
Unix socket: the API (status, stage from a file and over HTTPS with a
dropped connection, activate, mark-good with health checks, rollback,
config), access control by SO_PEERCRED, the audit log, error documents,
SIGKILL during a stage, and the automatic health check / reboot after boot.

usage: test-agent.py HULL_AGENT HULLCTL UPDATE_TOOL MAKE_DISK HULL_BUILD FETCH_SERVER
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

failures = 0


def check(cond, what):
    global failures
    print("%s: %s" % ("PASS" if cond else "FAIL", what), flush=True)
    if not cond:
        failures += 1
    return cond


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


def api(sock, method, path, body=None, raw=None):
    c = UnixHTTP(sock)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    c.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    try:
        return r.status, json.loads(text)
    except ValueError:
        return r.status, text


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


class Rig:
    def __init__(self, tools):
        self.agent, self.hullctl, self.tool, self.make_disk, self.hull_build, self.fetch_server = tools
        self.t = tempfile.mkdtemp(prefix="hull-test-agent.", dir="/var/tmp")
        self.loop = None
        self.proc = None
        self.sock = os.path.join(self.t, "agent.sock")

    def setup(self):
        t = self.t
        sh(self.make_disk, t + "/disk.img", "64", "64", "32")
        self.loop = sh("losetup", "-f", "--show", "-P", t + "/disk.img").strip()
        if not os.path.exists(self.loop + "p4"):
            subprocess.run(["partx", "-a", self.loop], capture_output=True)
        self.a, self.b = self.loop + "p2", self.loop + "p3"
        os.makedirs(t + "/esp/EFI/hull/a")
        env = t + "/esp/EFI/hull/grubenv"
        sh("grub-editenv", env, "create")
        sh("grub-editenv", env, "set", "hull_a_prio=10", "hull_a_tries=0", "hull_a_good=1", "hull_b_prio=0",
           "hull_b_tries=0", "hull_b_good=0", "hull_a_version=1.0.0", "hull_new_tries=3", "hull_cmdline=")
        self.env = env
        for d in ("keys", "state", "root/etc", "root/usr/lib/systemd/system", "proc/net/ipv4", "health"):
            os.makedirs(os.path.join(t, d), exist_ok=True)
        with open(t + "/proc/net/ipv4/ip_forward", "w") as f:
            f.write("0\n")
        with open(t + "/root/usr/lib/systemd/system/chrony.service", "w") as f:
            f.write("[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n")
        with open(t + "/os-release", "w") as f:
            f.write('IMAGE_ID=hull-test\nIMAGE_VERSION=1.0.0\nPRETTY_NAME="Hull test"\n')
        self.boot_json("a")
        sh(self.hull_build, "keygen", t + "/key.pem", t + "/keys/trusted.pem")
        for name, size in (("rootfs", 24), ("kernel", 2), ("initrd", 3)):
            with open(os.path.join(t, name), "wb") as f:
                f.write(os.urandom(size << 20))
        # v2 records its component versions (a format-2 manifest), v2-plain
        # is the same image without them (format 1)
        with open(t + "/components-v2.json", "w") as f:
            json.dump(COMPONENTS_V2, f)
        sh(self.tool, "make-bundle", t + "/key.pem", t + "/v2.hullb", "2.0.0", "x86_64", t + "/rootfs",
           t + "/kernel", t + "/initrd", t + "/components-v2.json")
        sh(self.tool, "make-bundle", t + "/key.pem", t + "/v2-plain.hullb", "2.0.0", "x86_64", t + "/rootfs",
           t + "/kernel", t + "/initrd")
        self.running_components(COMPONENTS_V1)

    def running_components(self, c):
        """The running image's /usr/lib/hull/components.json (None: absent, a str: written as is)."""
        path = self.t + "/components.json"
        if c is None:
            if os.path.exists(path):
                os.unlink(path)
            return
        with open(path, "w") as f:
            f.write(c if isinstance(c, str) else json.dumps(c))

    def boot_json(self, slot):
        with open(self.t + "/boot.json", "w") as f:
            json.dump({"slot": slot, "degraded": False, "boot_id": "0" * 32, "first_boot": False,
                       "persist_device": None}, f)

    def start(self, *extra, booted="a"):
        self.boot_json(booted)
        t = self.t
        cmd = [self.agent, "--socket", self.sock, "--state-dir", t + "/state", "--esp", t + "/esp",
               "--slot-a", self.a, "--slot-b", self.b, "--keys", t + "/keys", "--boot-json", t + "/boot.json",
               "--os-release", t + "/os-release", "--config-root", t + "/root", "--proc-sys", t + "/proc",
               "--health-dir", t + "/health", "--no-systemd-check", "--offline",
               "--reboot-command", "touch " + t + "/rebooted", "--reboot-retry", "0",
               "--toolbox", t + "/toolbox", "--components-file", t + "/components.json"] + list(extra)
        if os.path.exists(self.sock):
            os.unlink(self.sock)  # left by a SIGKILL: wait for the new one below
        self.log = open(t + "/agent.log", "a")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("hull-agent did not start: " + open(t + "/agent.log").read()[-2000:])
            time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def wait_op(self, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            st, op = api(self.sock, "GET", "/v1/operation")
            if op and op.get("state") != "running":
                return op
            if time.monotonic() > deadline:
                return op
            time.sleep(0.1)

    def status(self):
        return api(self.sock, "GET", "/v1/status")[1]

    def cleanup(self):
        self.stop(signal.SIGKILL)
        if self.loop:
            subprocess.run(["losetup", "-d", self.loop])
        shutil.rmtree(self.t, ignore_errors=True)


COMPONENTS_V1 = {"containerd": "1.6.20", "kernel": "6.1.0-28-amd64", "kubelet": "v1.31.4", "runc": "1.1.5"}
COMPONENTS_V2 = {"containerd": "1.7.24", "kernel": "6.1.0-31-amd64", "kubelet": "v1.32.0", "runc": "1.1.12"}


def comps(st, slot):
    return st["slots"][slot].get("components")


def slots(st):
    return "a=%s/%s b=%s/%s" % (st["slots"]["a"]["state"], st["slots"]["a"]["version"], st["slots"]["b"]["state"],
                                st["slots"]["b"]["version"])


def make_toolbox(root):
    """A toolbox root with the host's sh, cat and test and their libraries."""
    for d in ("bin", "lib", "lib64", "usr/lib"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for prog in ("sh", "cat", "test", "id"):
        path = shutil.which(prog)
        shutil.copy(path, os.path.join(root, "bin", prog))
        for line in sh("ldd", path).splitlines():
            parts = line.split()
            lib = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
            if lib.startswith("/"):
                dest = root + lib
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.copy(lib, dest)


def https_server(r):
    """The fetch test's HTTPS server over the rig's directory with a fresh CA."""
    t = r.t
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=hull-test-ca",
       "-keyout", t + "/ca.key", "-out", t + "/ca.pem")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", t + "/srv.key",
       "-out", t + "/srv.csr")
    with open(t + "/san.ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    sh("openssl", "x509", "-req", "-in", t + "/srv.csr", "-CA", t + "/ca.pem", "-CAkey", t + "/ca.key",
       "-CAcreateserial", "-days", "1", "-extfile", t + "/san.ext", "-out", t + "/srv.pem")
    port_file = t + "/https.port"
    p = subprocess.Popen([sys.executable, r.fetch_server, "--root", t, "--port-file", port_file, "--cert",
                          t + "/srv.pem", "--key", t + "/srv.key", "--log", t + "/https.log"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not os.path.exists(port_file) and time.monotonic() < deadline:
        time.sleep(0.05)
    port = int(open(port_file).read())
    return p, port


def post_nowait(path, url, body):
    """Send a POST and return the connected socket without reading the answer."""
    data = json.dumps(body).encode()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (url.encode(), len(data)) + data)
    return s


CUT_FILES = 120


def cut_config(gen):
    """Generation gen of the config that the cuts apply: the same 120 files
    with other content, other kernel arguments, the sysctl flipped."""
    return {"generation": gen, "kernel_args": ["cut.gen=%d" % gen], "debug": {"enabled": True},
            "sysctl": {"net.ipv4.ip_forward": str(gen % 2)},
            "files": [{"path": "/etc/hull-cut/f%02d.conf" % i, "content": ("gen %d file %d\n" % (gen, i)) * 200}
                      for i in range(CUT_FILES)]}


def config_state(r, gen, boot_a):
    """What a cut left, against the generation being applied: 'old', 'new',
    'partly applied' (some files written, the record still old), or a str
    saying what is wrong."""
    env = subprocess.run(["grub-editenv", r.env, "list"], capture_output=True, text=True)
    if env.returncode != 0:
        return "GRUB cannot read its environment: " + env.stderr.strip()
    kv = dict(l.split("=", 1) for l in env.stdout.splitlines() if "=" in l)
    if {k: kv.get(k) for k in boot_a} != boot_a:
        return "slot a's boot entry changed: %s" % kv
    try:
        saved = json.load(open(r.t + "/state/config.json"))["generation"]
    except (OSError, ValueError, KeyError) as e:
        return "config.json on persist is unreadable: %r" % e
    if saved not in (gen - 1, gen):
        return "config.json holds generation %s" % saved
    cmdline = kv.get("hull_cmdline")
    if cmdline not in ("cut.gen=%d" % (gen - 1), "cut.gen=%d" % gen):
        return "hull_cmdline is %r" % cmdline
    if saved == gen and cmdline != "cut.gen=%d" % gen:
        return "generation %d saved with the old kernel arguments" % gen
    fresh = 0
    for i in range(CUT_FILES):
        try:
            text = open(r.t + "/root/etc/hull-cut/f%02d.conf" % i).read()
        except OSError as e:
            return "file %d: %r" % (i, e)
        if text not in (("gen %d file %d\n" % (g, i)) * 200 for g in (gen - 1, gen)):
            return "file %d is neither generation: %r" % (i, text[:40])
        if saved == gen and not text.startswith("gen %d " % gen):
            return "generation %d saved, file %d still old" % (gen, i)
        fresh += text.startswith("gen %d " % gen)
    return "new" if saved == gen else "old" if fresh == 0 else "partly applied"


def config_cuts(r):
    """SIGKILL the agent at random instants while it applies a node config
    (files, kernel arguments, sysctl, the record on persist). After each cut:
    GRUB reads its environment and still boots slot a, the record is one
    generation or the other, every file is whole, and the restarted agent
    takes the same config again."""
    import random
    rng = random.Random(int(os.environ.get("HULL_TEST_SEED", "0")) or None)
    cuts = int(os.environ.get("HULL_TEST_CONFIG_KILLS", "20"))
    gen = api(r.sock, "GET", "/v1/config")[1]["generation"] + 1
    kv = dict(l.split("=", 1) for l in sh("grub-editenv", r.env, "list").splitlines() if "=" in l)
    boot_a = {k: kv.get(k) for k in ("hull_a_prio", "hull_a_good", "hull_a_tries", "hull_a_version")}
    t0 = time.monotonic()
    code, res = api(r.sock, "POST", "/v1/config", cut_config(gen))
    took = time.monotonic() - t0
    check(code == 200 and res["changed"], "a config of %d files applies in %.0f ms: %s" % (CUT_FILES, took * 1000, res))
    bad, n = [], {"old": 0, "partly applied": 0, "new": 0}
    for i in range(cuts):
        gen += 1
        s = post_nowait(r.sock, "/v1/config", cut_config(gen))
        time.sleep(rng.uniform(0, took * 2.5))
        r.stop(signal.SIGKILL)
        s.close()
        st = config_state(r, gen, boot_a)
        if st not in n:
            bad.append("cut %d: %s" % (i + 1, st))
        else:
            n[st] += 1
        r.start(booted="a")
        code, res = api(r.sock, "POST", "/v1/config", cut_config(gen))
        if code != 200 or config_state(r, gen, boot_a) != "new":
            bad.append("cut %d: the same config again: %s %s, %s" % (i + 1, code, res, config_state(r, gen, boot_a)))
    print("  after %d cuts of config apply: not started %d times, files partly written %d times, applied %d times" %
          (cuts, n["old"], n["partly applied"], n["new"]))
    for b in bad:
        print("  " + b)
    check(not bad, "%d SIGKILLs of config apply: GRUB boots a, the record and every file are one generation "
          "or the other, the config applies again" % cuts)


def write_hook(path, body, mode=0o755, uid=0):
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chown(path, uid, 0)
    os.chmod(path, mode)


def pgroup_members(pgid):
    """Processes whose process group is pgid."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open("/proc/%s/stat" % d).read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":  # a zombie is dead, waiting for PID 1 to reap it
            found.append(int(d))
    return found


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return open("/proc/%d/stat" % pid).read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def hook_tests(r):
    t = r.t
    etc, usr = t + "/hooks-etc", t + "/hooks-usr"
    for d in (etc, usr):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
    r.stop()
    r.start("--hooks-dir", etc, "--hooks-dir", usr, "--hook-kill-grace", "2")
    sock = r.sock

    def run_hook(body):
        code, op = api(sock, "POST", "/v1/hook", body)
        if code != 202:
            return code, op
        return code, r.wait_op()

    # success, with what the hook gets to see
    write_hook(usr + "/env", 'echo "name=$HULL_HOOK_NAME stage=$HULL_HOOK_STAGE task=$HULL_HOOK_TASK '
               'os=$HULL_OS_VERSION"\necho "path=$PATH cwd=$(pwd)"\n'
               'read -r _ _ _ _ pgrp sid _ < /proc/$$/stat; echo "pid=$$ pgrp=$pgrp sid=$sid"\n'
               'echo "fds=$(ls /proc/self/fd | tr "\\n" " ")"\n'
               'echo "stdin=$(readlink /proc/$$/fd/0)"\necho "oom=$(cat /proc/$$/oom_score_adj)"\n'
               'echo "extra=$(env | grep -c -v -E "^(PATH|LANG|PWD|SHLVL|_|HULL_[A-Z_]+)=")"\n'
               'echo to-stderr >&2\n')
    code, op = api(sock, "POST", "/v1/hook", {"name": "env", "stage": "pre-drain", "timeout_seconds": 30,
                                              "task": "workers/upgrade/2.0.0"})
    check(code == 202 and op["type"] == "hook" and op["state"] == "running" and
          op["hook"] == {"name": "env", "stage": "pre-drain", "exit_code": None, "output": ""},
          "POST /v1/hook: 202 with a running hook operation: %s" % op)
    op = r.wait_op()
    out = op["hook"]["output"]
    print("finished hook operation: " + json.dumps(op), flush=True)
    check(op["state"] == "succeeded" and op["error"] is None and op["hook"]["exit_code"] == 0,
          "a hook that exits 0 succeeds")
    check("name=env stage=pre-drain task=workers/upgrade/2.0.0 os=1.0.0\n" in out,
          "the hook's environment names it, the stage, the task and the OS version:\n" + out)
    check("path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin cwd=/\n" in out,
          "a fixed PATH, cwd /")
    ids = [l for l in out.splitlines() if l.startswith("pid=")]
    check(ids and len(set(x.split("=")[1] for x in ids[0].split())) == 1, "its own session and process group: %s" % ids)
    fds = [l for l in out.splitlines() if l.startswith("fds=")]
    check(fds and fds[0] == "fds=0 1 2 3 ",
          "no descriptor of the agent's leaks in (ls opens one of its own): %s" % fds)
    check("stdin=/dev/null" in out and "oom=0" in out and "extra=0" in out and "to-stderr\n" in out,
          "stdin /dev/null, OOM score reset, nothing else in the environment, stderr captured")
    code, op = run_hook({"name": "env"})
    check(op["hook"]["stage"] == "manual" and "task= " in op["hook"]["output"] and
          "HULL_HOOK_TASK" not in op["hook"]["output"], "defaults: stage manual, no task")

    # non-zero exit, killed by a signal
    write_hook(usr + "/fail", 'echo first\necho "  disk is full  "\necho\nexit 3\n')
    code, op = run_hook({"name": "fail"})
    check(op["state"] == "failed" and op["error"]["code"] == "hook_failed" and op["hook"]["exit_code"] == 3 and
          op["error"]["message"] == "hook fail exited with status 3: disk is full",
          "a non-zero exit fails with hook_failed and the last line: %s" % op.get("error"))
    write_hook(usr + "/sig", 'kill -KILL $$\n')
    code, op = run_hook({"name": "sig"})
    check(op["state"] == "failed" and op["error"]["code"] == "hook_failed" and op["hook"]["exit_code"] is None and
          "killed by SIGKILL" in op["error"]["message"], "killed by a signal: %s" % op.get("error"))

    # timeouts: SIGTERM to the group; SIGKILL after the grace time to what ignores it, grandchildren included
    write_hook(usr + "/slow", 'echo waiting\nexec sleep 100\n')
    start = time.monotonic()
    code, op = run_hook({"name": "slow", "timeout_seconds": 1})
    took = time.monotonic() - start
    check(op["error"] and op["error"]["code"] == "hook_timeout" and "within its timeout of 1 s" in
          op["error"]["message"] and "SIGKILL" not in op["error"]["message"] and 0.9 < took < 2.5,
          "a hook past its timeout gets SIGTERM and fails with hook_timeout (%.1fs): %s" % (took, op.get("error")))
    write_hook(usr + "/stubborn", 'trap "" TERM\necho $$ > %s/stubborn.pid\nsleep 100 &\necho $! > %s/grandchild.pid\n'
               'wait\nwait\nsleep 100\n' % (t, t))
    start = time.monotonic()
    code, op = run_hook({"name": "stubborn", "timeout_seconds": 1})
    took = time.monotonic() - start
    leader = int(open(t + "/stubborn.pid").read())
    grandchild = int(open(t + "/grandchild.pid").read())
    check(op["error"]["code"] == "hook_timeout" and "then SIGKILL" in op["error"]["message"] and 2.5 < took < 6,
          "a hook that ignores SIGTERM is killed after the grace time (%.1fs): %s" % (took, op["error"]["message"]))
    check(not pid_alive(grandchild) and not pid_alive(leader) and pgroup_members(leader) == [],
          "the hook's whole process group is gone, grandchild included (%s %s %s)" %
          (pid_alive(grandchild), pid_alive(leader), pgroup_members(leader)))

    # output: the last 4096 bytes, with a note
    write_hook(usr + "/loud", "i=0; while [ $i -lt 1000 ]; do echo \"line $i of output\"; i=$((i+1)); done\n"
               "echo LAST\nexit 1\n")
    full = "".join("line %d of output\n" % i for i in range(1000)) + "LAST\n"
    code, op = run_hook({"name": "loud"})
    out = op["hook"]["output"]
    note, _, tail = out.partition("\n")
    check(note == "[hull-agent: output truncated, the first %d of %d bytes are not shown]" %
          (len(full) - 4096, len(full)) and tail == full[-4096:],
          "long output keeps its last 4096 bytes after a note: %r..." % out[:120])
    check(op["error"]["message"] == "hook loud exited with status 1: LAST", "the message quotes the last line")
    loud_op = op["id"]

    # names and lookup
    for bad in ("../etc/passwd", "a/b", "..", ".hidden", ""):
        code, body = api(sock, "POST", "/v1/hook", {"name": bad})
        check(code == 400 and body["error"]["code"] == "bad_request", "name %r: 400 (%s)" %
              (bad, body["error"]["message"]))
    code, body = api(sock, "POST", "/v1/hook", {"name": "x", "timeout_seconds": 0})
    check(code == 400 and "timeout_seconds" in body["error"]["message"], "timeout 0: 400")
    code, body = api(sock, "POST", "/v1/hook", {"name": "x", "stage": "drain"})
    check(code == 400 and "'stage'" in body["error"]["message"], "an unknown stage: 400")
    code, body = api(sock, "POST", "/v1/hook", {"name": "nosuch"})
    check(code == 404 and body["error"]["code"] == "not_found" and
          body["error"]["message"] == "there is no hook named nosuch in %s or %s" % (etc, usr),
          "a missing hook: 404 naming both directories: %s" % body["error"]["message"])
    write_hook(usr + "/which", "echo usr\n")
    code, op = run_hook({"name": "which"})
    check(op["hook"]["output"] == "usr\n", "a hook from the image's directory")
    write_hook(etc + "/which", "echo etc\n")
    code, op = run_hook({"name": "which"})
    check(op["hook"]["output"] == "etc\n", "the node's /etc directory overrides the image's for the same name")

    # unsafe hooks are refused, nothing runs
    write_hook(etc + "/which", "echo etc\ntouch %s/ran\n" % t, mode=0o775)
    code, body = api(sock, "POST", "/v1/hook", {"name": "which"})
    check(code == 422 and body["error"]["code"] == "hook_refused" and "writable by its group (mode 0775)" in
          body["error"]["message"] and etc + "/which" in body["error"]["message"],
          "a group-writable hook is refused (not skipped for the other one): %s" % body["error"]["message"])
    write_hook(etc + "/which", "echo etc\ntouch %s/ran\n" % t, uid=65534)
    code, body = api(sock, "POST", "/v1/hook", {"name": "which"})
    check(code == 422 and "is owned by uid 65534, not root" in body["error"]["message"],
          "a hook not owned by root is refused: %s" % body["error"]["message"])
    write_hook(etc + "/which", "echo etc\n", mode=0o644)
    code, body = api(sock, "POST", "/v1/hook", {"name": "which"})
    check(code == 422 and "is not executable" in body["error"]["message"], "a hook that is not executable")
    write_hook(etc + "/which", "echo etc\n")
    os.chmod(etc, 0o777)
    code, body = api(sock, "POST", "/v1/hook", {"name": "which"})
    os.chmod(etc, 0o755)
    check(code == 422 and "directory %s is writable by others" % etc in body["error"]["message"],
          "a hook in a world-writable directory: %s" % body["error"]["message"])
    os.makedirs(t + "/hooks-elsewhere", mode=0o777, exist_ok=True)
    os.chmod(t + "/hooks-elsewhere", 0o777)
    write_hook(t + "/hooks-elsewhere/real", "echo real\n")
    os.symlink(t + "/hooks-elsewhere/real", etc + "/link")
    code, body = api(sock, "POST", "/v1/hook", {"name": "link"})
    check(code == 422 and "writable by others" in body["error"]["message"],
          "a symbolic link to a hook in an unsafe directory: %s" % body["error"]["message"])
    os.chmod(t + "/hooks-elsewhere", 0o755)
    code, op = run_hook({"name": "link"})
    check(op["state"] == "succeeded" and op["hook"]["output"] == "real\n", "a symbolic link to a safe hook runs")
    check(not os.path.exists(t + "/ran"), "no refused hook ran")

    # one operation at a time; the output shows while it runs
    write_hook(usr + "/busy", "echo started\nsleep 2\necho done\n")
    code, op = api(sock, "POST", "/v1/hook", {"name": "busy"})
    seen = ""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        cur = api(sock, "GET", "/v1/operation")[1]
        if cur["state"] == "running" and cur["hook"]["output"]:
            seen = cur["hook"]["output"]
            break
        time.sleep(0.05)
    check(seen == "started\n", "the output so far shows while the hook runs: %r" % seen)
    code2, body2 = api(sock, "POST", "/v1/hook", {"name": "env"})
    code3, body3 = api(sock, "POST", "/v1/stage", {"source": t + "/v2.hullb"})
    check(code2 == 409 and body2["error"]["code"] == "busy" and code3 == 409,
          "another hook or a stage while a hook runs: 409 busy")
    st = r.status()
    check(st["operation"]["type"] == "hook" and st["operation"]["hook"]["name"] == "busy",
          "GET /v1/status shows the running hook")
    op = r.wait_op()
    check(op["state"] == "succeeded" and op["hook"]["output"] == "started\ndone\n", "then it finishes")

    # the audit log
    code, audit = api(sock, "GET", "/v1/audit?limit=1000")
    outcome = [a for a in audit if a["path"] == "hook" and a["op"] == loud_op]
    request = [a for a in audit if a["path"] == "/v1/hook" and a["op"] == loud_op]
    import hashlib
    d = outcome[0]["detail"] if outcome else {}
    check(outcome and outcome[0]["result"] == "failed" and d.get("name") == "loud" and d.get("stage") == "manual" and
          d.get("exit_code") == 1 and d.get("signal") is None and d.get("timed_out") is False and
          isinstance(d.get("duration_ms"), int) and d.get("output_bytes") == len(full) and
          d.get("output_sha256") == hashlib.sha256(full.encode()).hexdigest(),
          "the audit log records the outcome: %s" % (outcome[0] if outcome else None))
    check(request and request[0]["request"] == {"name": "loud"} and request[0]["status"] == 202,
          "... and the request")
    tmo = [a for a in audit if a["path"] == "hook" and a.get("detail", {}).get("name") == "stubborn"]
    check(tmo and tmo[0]["detail"]["timed_out"] is True and tmo[0]["detail"]["signal"] == "SIGKILL",
          "a timeout is audited with the signal")

    # hullctl hook run
    write_hook(usr + "/ok", "echo all good\n")
    res = subprocess.run([r.hullctl, "--socket", sock, "hook", "run", "ok", "--stage", "post-boot"],
                         capture_output=True, text=True)
    check(res.returncode == 0 and "all good\n" in res.stdout, "hullctl hook run prints the output, exit 0:\n" +
          res.stdout + res.stderr)
    res = subprocess.run([r.hullctl, "--socket", sock, "hook", "run", "fail", "--timeout", "30", "--task", "t1"],
                         capture_output=True, text=True)
    check(res.returncode != 0 and "disk is full" in res.stdout and
          "hook fail exited with status 3: disk is full" in res.stderr,
          "hullctl hook run of a failing hook: output, the error, exit %d:\n%s%s" %
          (res.returncode, res.stdout, res.stderr))
    res = subprocess.run([r.hullctl, "--socket", sock, "hook", "run", "nosuch"], capture_output=True, text=True)
    check(res.returncode != 0 and "no hook named nosuch" in res.stderr, "hullctl hook run of a missing hook")
    res = subprocess.run([r.hullctl, "--socket", sock, "status"], capture_output=True, text=True)
    check("hook nosuch" not in res.stdout and "hook fail" in res.stdout, "hullctl status shows the last hook:\n" +
          res.stdout)

    # the agent dies while a hook runs: interrupted, and the hook goes with it
    write_hook(usr + "/long", "echo $$ > %s/long.pid\necho setting noout on the storage cluster\n"
               "exec sleep 100\n" % t)
    code, op = api(sock, "POST", "/v1/hook", {"name": "long"})
    deadline = time.monotonic() + 5
    while not os.path.exists(t + "/long.pid") and time.monotonic() < deadline:
        time.sleep(0.05)
    # The output reaches the status (and, in the same step, the saved
    # state) within about a second of the hook writing it.
    deadline = time.monotonic() + 5
    while "noout" not in ((r.status().get("operation") or {}).get("hook") or {}).get("output", "") and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    long_pid = int(open(t + "/long.pid").read())
    r.stop(signal.SIGKILL)
    time.sleep(0.3)
    check(not pid_alive(long_pid), "a hook does not outlive a killed agent")
    r.start("--hooks-dir", etc, "--hooks-dir", usr)
    op = r.status()["operation"]
    check(op["type"] == "hook" and op["state"] == "failed" and op["error"]["code"] == "interrupted" and
          op["hook"]["name"] == "long", "after the agent's restart the hook shows as interrupted: %s" % op)
    check("setting noout on the storage cluster" in (op.get("hook") or {}).get("output", ""),
          "the interrupted hook's output up to the crash is kept: %r" % (op.get("hook") or {}).get("output"))
    os.unlink(t + "/long.pid")
    code, op = api(sock, "POST", "/v1/hook", {"name": "long"})
    while not os.path.exists(t + "/long.pid"):
        time.sleep(0.05)
    time.sleep(0.2)
    long_pid = int(open(t + "/long.pid").read())
    r.stop()
    check(not pid_alive(long_pid), "SIGTERM to the agent kills a running hook")
    r.start()
    op = r.status()["operation"]
    check(op["state"] == "failed" and op["error"]["code"] == "cancelled", "... which then shows as cancelled: %s" %
          op.get("error"))


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 77
    r = Rig(sys.argv[1:7])
    https = None
    try:
        r.setup()
        r.start()
        sock = r.sock

        # status
        code, st = api(sock, "GET", "/v1/status")
        check(code == 200 and st["api"] == "v1" and st["os"]["version"] == "1.0.0", "GET /v1/status answers")
        check(st["boot"]["slot"] == "a" and slots(st) == "a=good/1.0.0 b=empty/None", "status: " + slots(st))
        check(st["health"]["state"] == "healthy", "a good booted slot is healthy without checks")
        check(comps(st, "a") == COMPONENTS_V1, "the booted slot's components come from the running image: %s" %
              comps(st, "a"))
        check("components" not in st["slots"]["b"], "an empty slot has no components key")
        rec = json.load(open(r.t + "/state/slot-a.json"))
        check(rec == {"version": "1.0.0", "components": COMPONENTS_V1},
              "what the booted slot holds is kept on persist for later: %s" % rec)
        check(oct(os.stat(sock).st_mode & 0o777) == "0o600", "the socket is root-only without --socket-group")

        # routing and request errors
        code, body = api(sock, "GET", "/v1/nope")
        check(code == 404 and body["error"]["code"] == "not_found", "unknown path: 404 not_found")
        code, body = api(sock, "GET", "/v1/stage")
        check(code == 405 and body["error"]["code"] == "method_not_allowed", "GET on a POST endpoint: 405")
        code, body = api(sock, "POST", "/v1/stage", raw=b"{not json")
        check(code == 400 and body["error"]["code"] == "bad_request", "malformed JSON: 400 bad_request")
        code, body = api(sock, "POST", "/v1/stage", {"source": "/x", "sorce": "typo"})
        check(code == 400 and "sorce" in body["error"]["message"], "unknown field named in the error: %s" %
              body["error"]["message"])
        code, body = api(sock, "POST", "/v1/stage", raw=b"{" + b" " * (2 << 20) + b"}")
        check(code == 413 and body["error"]["code"] == "too_large", "a 2 MiB body: 413")
        code, body = api(sock, "POST", "/v1/activate", {})
        check(code == 409 and body["error"]["code"] == "conflict", "activate with nothing staged: 409 conflict")

        # stage from a local file
        env_before = open(r.env, "rb").read()
        code, op = api(sock, "POST", "/v1/stage", {"source": r.t + "/v2.hullb", "version": "2.0.0"})
        check(code == 202 and op["type"] == "stage" and op["state"] == "running", "stage: 202 with the operation")
        code2, busy = api(sock, "POST", "/v1/stage", {"source": r.t + "/v2.hullb"})
        op = r.wait_op()
        check(op["state"] == "succeeded" and op["version"] == "2.0.0" and op["slot"] == "b",
              "stage from a file succeeds: %s" % op.get("error"))
        check(code2 in (202, 409), "a second stage while one runs is refused with 409 busy (or ran after it)")
        st = r.status()
        check(slots(st) == "a=good/1.0.0 b=staged/2.0.0", "after stage: " + slots(st))

        # refused bundles through the API
        with open(r.t + "/v2.hullb", "rb") as f:
            data = f.read()
        with open(r.t + "/cut.hullb", "wb") as f:
            f.write(data[:100])
        code, op = api(sock, "POST", "/v1/stage", {"source": r.t + "/cut.hullb"})
        op = r.wait_op()
        check(op["state"] == "failed" and op["error"]["code"] == "bad_bundle" and op["error"]["errno"] == "EBADMSG",
              "a cut bundle fails with bad_bundle: %s" % op["error"]["message"])
        code, op = api(sock, "POST", "/v1/stage", {"source": r.t + "/v2.hullb", "version": "9"})
        op = r.wait_op()
        check(op["error"]["code"] == "version_mismatch", "a version mismatch: %s" % op["error"]["message"])
        code, op = api(sock, "POST", "/v1/stage", {"source": r.t + "/missing.hullb"})
        op = r.wait_op()
        check(op["state"] == "failed" and op["error"]["errno"] == "ENOENT" and "missing.hullb" in op["error"]["message"],
              "a missing file fails with ENOENT, naming it (%s)" % op.get("error"))
        st = r.status()
        check(slots(st) == "a=good/1.0.0 b=staged/2.0.0", "refusals before writing leave b staged: " + slots(st))
        check(comps(st, "b") == COMPONENTS_V2, "... and what it holds: %s" % comps(st, "b"))

        # components of what was staged survive an agent restart; hullctl shows them
        r.stop()
        r.start()
        st = r.status()
        check(comps(st, "b") == COMPONENTS_V2 and comps(st, "a") == COMPONENTS_V1,
              "after a restart: a %s, b %s" % (comps(st, "a"), comps(st, "b")))
        out = subprocess.run([r.hullctl, "--socket", sock, "status"], capture_output=True, text=True)
        check("a     kubelet v1.31.4, containerd 1.6.20, runc 1.1.5, kernel 6.1.0-28-amd64" in out.stdout and
              "b     kubelet v1.32.0, containerd 1.7.24, runc 1.1.12, kernel 6.1.0-31-amd64" in out.stdout,
              "hullctl status lists each slot's components:\n" + out.stdout)
        out = subprocess.run([r.hullctl, "--socket", sock, "--json", "status"], capture_output=True, text=True)
        check(json.loads(out.stdout)["slots"]["b"].get("components") == COMPONENTS_V2,
              "hullctl --json status passes them on")

        # a bundle without components replaces the record; then v2 again
        code, op = api(sock, "POST", "/v1/stage", {"source": r.t + "/v2-plain.hullb"})
        op = r.wait_op()
        st = r.status()
        check(op["state"] == "succeeded" and st["slots"]["b"]["state"] == "staged" and comps(st, "b") is None,
              "a staged bundle without components: none reported (%s)" % comps(st, "b"))
        check(json.load(open(r.t + "/state/slot-b.json")) == {"version": "2.0.0", "components": {}},
              "the record on persist says so")
        code, op = api(sock, "POST", "/v1/stage", {"source": r.t + "/v2.hullb"})
        op = r.wait_op()
        check(op["state"] == "succeeded" and comps(r.status(), "b") == COMPONENTS_V2, "v2 staged again")

        # the running image's components.json: malformed or missing never fails status
        r.stop()
        r.running_components('{"kubelet": "1.31"}')
        r.start()
        code, st = api(sock, "GET", "/v1/status")
        log = open(r.t + "/agent.log").read()
        check(code == 200 and comps(st, "a") is None and comps(st, "b") == COMPONENTS_V2,
              "a malformed components.json: status answers, none for the booted slot")
        api(sock, "GET", "/v1/status")
        warned = [l for l in log.splitlines() if "Ignoring %s/components.json" % r.t in l]
        log = open(r.t + "/agent.log").read()
        check(len(warned) == 1 and "not a Kubernetes version" in warned[0] and
              log.count("Ignoring %s/components.json" % r.t) == 1,
              "one warning naming the file and the problem: %s" % warned)
        check(json.load(open(r.t + "/state/slot-a.json"))["components"] == COMPONENTS_V1,
              "a malformed file does not overwrite what persist knows about the slot")
        r.stop()
        r.running_components(None)
        r.start()
        st = r.status()
        check(comps(st, "a") is None and "Ignoring" not in open(r.t + "/agent.log").read()[len(log):],
              "no components.json (an image without components): none, no warning")
        r.stop()
        r.running_components(COMPONENTS_V1)
        r.start()

        # stage over HTTPS with a connection that drops every 5 MiB
        if shutil.which("openssl"):
            https, port = https_server(r)
            code, op = api(sock, "POST", "/v1/stage", {
                "source": "https://127.0.0.1:%d/drop-after/5242880/v2.hullb" % port, "ca_file": r.t + "/ca.pem",
                "sha256": sh("sha256sum", r.t + "/v2.hullb").split()[0]})
            op = r.wait_op(120)
            check(op["state"] == "succeeded", "stage over HTTPS survives dropped connections (resume): %s" %
                  op.get("error"))
            ranges = len([l for l in open(r.t + "/https.log") if "range=bytes=" in l])
            check(ranges >= 3, "the download resumed with Range requests (%d)" % ranges)
            code, op = api(sock, "POST", "/v1/stage", {"source": "https://127.0.0.1:%d/v2.hullb" % port})
            op = r.wait_op(60)
            check(op["state"] == "failed" and op["error"]["code"] == "download_failed",
                  "HTTPS without the right CA fails: %s" % (op.get("error") or {}).get("message"))
            st = r.status()
            check(slots(st) == "a=good/1.0.0 b=bad/2.0.0" or slots(st) == "a=good/1.0.0 b=staged/2.0.0",
                  "after the TLS failure: " + slots(st))
            code, op = api(sock, "POST", "/v1/stage", {"source": r.t + "/v2.hullb"})
            r.wait_op()

        # activate without reboot, then "reboot" into b
        code, res = api(sock, "POST", "/v1/activate", {"reboot": False, "tries": 2})
        check(code == 200 and res["reboot_required"] and not res["rebooting"], "activate without reboot")
        check(not os.path.exists(r.t + "/rebooted"), "no reboot when asked not to")
        st = r.status()
        check(slots(st) == "a=good/1.0.0 b=trying/2.0.0" and st["reboot_required"], "after activate: " + slots(st))
        check(comps(st, "b") == COMPONENTS_V2, "an activated slot still reports its components")
        sh(r.tool, "--esp", r.t + "/esp", "grub-boot")  # what GRUB does at the reboot
        r.stop()
        r.running_components(COMPONENTS_V2)  # the image in b

        # boot into b with a health check that fails: never marked good, reboots
        with open(r.t + "/health/10-fails", "w") as f:
            f.write("#!/bin/sh\nexit 3\n")
        os.chmod(r.t + "/health/10-fails", 0o755)
        r.start("--health-timeout", "3", booted="b")
        deadline = time.monotonic() + 30
        while not os.path.exists(r.t + "/rebooted") and time.monotonic() < deadline:
            time.sleep(0.2)
        st = r.status()
        check(st["health"]["state"] == "unhealthy" and "10-fails" in (st["health"]["message"] or ""),
              "a failing health check: unhealthy (%s)" % st["health"]["message"])
        check(st["slots"]["b"]["state"] == "trying" and not st["slots"]["b"]["good"], "b is not marked good")
        check(st["operation"]["type"] == "mark-good" and st["operation"]["error"]["code"] == "unhealthy",
              "the mark-good operation failed with unhealthy")
        check(os.path.exists(r.t + "/rebooted"), "the agent rebooted to let GRUB count down")
        os.unlink(r.t + "/rebooted")
        r.stop()

        # boot into b again with the check passing: marked good by itself
        os.unlink(r.t + "/health/10-fails")
        with open(r.t + "/health/20-passes", "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(r.t + "/health/20-passes", 0o755)
        sh(r.tool, "--esp", r.t + "/esp", "grub-boot")
        r.start(booted="b")
        deadline = time.monotonic() + 20
        while r.status()["slots"]["b"]["state"] != "good" and time.monotonic() < deadline:
            time.sleep(0.2)
        st = r.status()
        check(st["slots"]["b"]["state"] == "good" and st["health"]["state"] == "healthy",
              "healthy checks: b marked good by the agent (%s)" % slots(st))
        check(comps(st, "b") == COMPONENTS_V2 and comps(st, "a") == COMPONENTS_V1,
              "booted into b: b's components from its image, a's (the rollback target) from persist")
        code, op = api(sock, "POST", "/v1/mark-good", {"force": True})
        check(code == 200 and op["state"] == "succeeded", "mark-good on a good slot is a no-op success")

        # rollback to a
        code, res = api(sock, "POST", "/v1/rollback", {})
        check(code == 200 and res["rebooting"], "rollback answers and reboots")
        time.sleep(1)
        check(os.path.exists(r.t + "/rebooted"), "the reboot command ran after the answer")
        out = sh(r.tool, "--esp", r.t + "/esp", "grub-boot").strip()
        check(out == "a", "after rollback GRUB boots a")
        r.stop()
        r.running_components(COMPONENTS_V1)
        r.start(booted="a")
        st = r.status()
        check(comps(st, "a") == COMPONENTS_V1 and comps(st, "b") == COMPONENTS_V2 and
              st["slots"]["b"]["state"] == "good", "after the rollback: " + slots(st))

        # config
        cfg = {"generation": 1, "sysctl": {"net.ipv4.ip_forward": "1"}, "kernel_args": ["mitigations=auto"],
               "files": [{"path": "/etc/chrony/sources.d/hull.sources", "content": "server ntp.example.com\n"}],
               "units": {"enable": ["chrony.service"]}}
        code, res = api(sock, "POST", "/v1/config", cfg)
        check(code == 200 and res["changed"] and res["reboot_required"], "config generation 1 applies: %s" % res)
        check(open(r.t + "/proc/net/ipv4/ip_forward").read().strip() == "1", "sysctl written")
        check(open(r.t + "/root/etc/chrony/sources.d/hull.sources").read() == "server ntp.example.com\n",
              "file written under /etc")
        check(os.path.islink(r.t + "/root/etc/systemd/system/multi-user.target.wants/chrony.service"),
              "unit enabled")
        check("hull_cmdline=mitigations=auto" in sh("grub-editenv", r.env, "list"),
              "kernel arguments in the GRUB environment")
        code, res = api(sock, "POST", "/v1/config", cfg)
        check(code == 200 and not res["changed"], "the same generation again changes nothing")
        # the kernel arguments need a boot: hull-node drains, then asks for it
        if os.path.exists(r.t + "/rebooted"):
            os.unlink(r.t + "/rebooted")
        code, res = api(sock, "POST", "/v1/reboot", {"now": True})
        check(code == 400, "reboot refuses unknown fields")
        check(not os.path.exists(r.t + "/rebooted"), "no reboot from a refused request")
        code, res = api(sock, "POST", "/v1/reboot", {})
        check(code == 200 and res["rebooting"] and res["operation"]["type"] == "reboot", "reboot answers: %s" % res)
        time.sleep(1)
        check(os.path.exists(r.t + "/rebooted"), "the reboot command ran after the answer")
        os.unlink(r.t + "/rebooted")

        # a reboot command that fails (systemctl timing out on a loaded host)
        # or a shutdown that never comes: still running, the agent asks again
        r.stop()
        with open(r.t + "/reboot.sh", "w") as f:
            f.write("#!/bin/sh\necho call >> %s/reboot-calls\n"
                    "[ $(wc -l < %s/reboot-calls) -ge 3 ] || exit 1\ntouch %s/rebooted\n" % (r.t, r.t, r.t))
        os.chmod(r.t + "/reboot.sh", 0o755)
        r.start("--reboot-command", r.t + "/reboot.sh", "--reboot-retry", "1", booted="a")
        code, res = api(sock, "POST", "/v1/reboot", {})
        check(code == 200 and res["rebooting"], "reboot answers with a failing reboot command")
        deadline = time.monotonic() + 15
        while not os.path.exists(r.t + "/rebooted") and time.monotonic() < deadline:
            time.sleep(0.1)
        calls = len(open(r.t + "/reboot-calls").read().split())
        check(os.path.exists(r.t + "/rebooted") and calls == 3,
              "a failed reboot command is run again until it works (%d calls)" % calls)
        log = open(r.t + "/agent.log").read()
        check("The reboot command '%s/reboot.sh' failed" % r.t in log and "asking again" in log,
              "each failure and each new try is logged")
        os.unlink(r.t + "/rebooted")
        time.sleep(2.5)
        calls = len(open(r.t + "/reboot-calls").read().split())
        check(calls >= 4, "while the process lives (the reboot never came) it keeps asking (%d calls)" % calls)
        r.stop()
        r.start(booted="a")
        cfg2 = dict(cfg, generation=2, sysctl={"net.ipv4.no_such_key": "1"})
        env_before = open(r.env, "rb").read()
        code, res = api(sock, "POST", "/v1/config", cfg2)
        check(code == 422 and res["error"]["code"] == "invalid_config",
              "an unknown sysctl is refused: %s" % res["error"]["message"])
        check(open(r.env, "rb").read() == env_before and api(sock, "GET", "/v1/config")[1]["generation"] == 1,
              "a refused config changes nothing")
        code, res = api(sock, "POST", "/v1/config", {"generation": 1, "kernel_args": ["quiet"]})
        check(code == 409 and res["error"]["code"] == "stale_generation", "same generation, other content: 409")
        code, res = api(sock, "POST", "/v1/config", {"generation": 3, "kernel_args": ["root=/dev/sda"]})
        check(code == 422, "a kernel argument Hull owns is refused: %s" % res["error"]["message"])

        # the admin container
        code, res = api(sock, "POST", "/v1/debug", {"command": ["id"]})
        check(code == 403 and "enable" in res["error"]["message"], "debug is off by default: 403")
        code, res = api(sock, "POST", "/v1/config", {"generation": 4, "debug": {"enabled": True}})
        check(code == 200, "the node config enables the admin container")
        code, res = api(sock, "POST", "/v1/debug", {"command": ["id"]})
        check(code == 409 and "toolbox" in res["error"]["message"], "no toolbox: %s" % res["error"]["message"])
        make_toolbox(r.t + "/toolbox")
        with open(r.t + "/root/etc/hostname", "w") as f:
            f.write("node-17\n")
        code, res = api(sock, "POST", "/v1/debug", {"command": [
            "sh", "-c", "cat /host%s/root/etc/hostname; echo container=$HULL_ADMIN_CONTAINER; "
            "test -e /host/proc/1 && echo host-pids; test -e /usr/lib/os-release || echo toolbox-root; exit 3" % r.t]})
        out = res.get("output", "") if isinstance(res, dict) else ""
        check(code == 200 and res["exit_status"] == 3, "a command runs in the admin container (exit 3): %r" % out)
        check("node-17" in out and "container=1" in out and "host-pids" in out and "toolbox-root" in out,
              "it sees the host's files under /host and its processes, with the toolbox's own root")
        check(not any("/toolbox" in line for line in open("/proc/self/mountinfo")),
              "nothing stays mounted in the host's mount namespace")

        out = subprocess.run([r.hullctl, "--socket", sock, "debug", "--", "sh", "-c", "echo from-toolbox; exit 5"],
                             capture_output=True, text=True)
        check(out.returncode == 5 and out.stdout == "from-toolbox\n",
              "hullctl debug prints the output and exits with the command's status")

        out = subprocess.run([r.hullctl, "--socket", sock, "debug"], input="echo shell-$((6*7))\nexit 6\n",
                             capture_output=True, text=True, timeout=30)
        check(out.returncode == 6 and "shell-42" in out.stdout and "hull-exit" not in out.stdout,
              "hullctl debug without a command: an interactive shell on a pty, exit status passed on")
        code, audit = api(sock, "GET", "/v1/audit?limit=3")
        check(any(a["path"] == "debug-session" and a["error"] == "exit status 6" for a in audit),
              "the end of the session is audited")

        # hullctl against the real agent
        out = subprocess.run([r.hullctl, "--socket", sock, "status"], capture_output=True, text=True)
        check(out.returncode == 0 and "1.0.0" in out.stdout, "hullctl status talks to the agent")
        out = subprocess.run([r.hullctl, "--socket", sock, "--json", "status"], capture_output=True, text=True)
        check(out.returncode == 0 and json.loads(out.stdout)["api"] == "v1", "hullctl --json status")

        # access control
        os.chmod(r.t, 0o755)
        nobody = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "curl", "-s",
                                 "--unix-socket", sock, "http://localhost/v1/status"], capture_output=True, text=True)
        check(nobody.returncode == 7 and nobody.stdout == "", "the socket itself keeps other users out (mode 0600)")
        os.chmod(r.t, 0o755)
        os.chmod(sock, 0o666)  # only to get past the file mode: the agent must still refuse
        nobody = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "curl", "-s", "-X",
                                 "POST", "--unix-socket", sock, "http://localhost/v1/rollback"],
                                capture_output=True, text=True)
        check('"forbidden"' in nobody.stdout, "uid 65534 gets 403 from SO_PEERCRED: %s" % nobody.stdout.strip())

        # a socket group: its members may call the API
        subprocess.run(["groupadd", "-f", "-r", "hull-test-admin"], check=True)
        gid = int(sh("getent", "group", "hull-test-admin").split(":")[2])
        r.stop()
        r.start("--socket-group", "hull-test-admin")
        st_sock = os.stat(sock)
        check(st_sock.st_gid == gid and oct(st_sock.st_mode & 0o777) == "0o660",
              "--socket-group: the socket is 0660 and owned by the group")
        member = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--groups=%d" % gid, "curl", "-s",
                                 "--unix-socket", sock, "http://localhost/v1/status"], capture_output=True, text=True)
        check('"api":"v1"' in member.stdout, "a member of the group (supplementary) may call the API")
        os.chmod(sock, 0o666)  # past the file mode: SO_PEERCRED must still refuse a non-member
        outsider = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "curl", "-s",
                                   "--unix-socket", sock, "http://localhost/v1/status"], capture_output=True, text=True)
        check('"forbidden"' in outsider.stdout, "a non-member is refused by the agent")
        r.stop()
        # a group that does not exist (an /etc that lost it): the API stays
        # up for root, with a warning, rather than the agent failing to start
        r.start("--socket-group", "hull-test-nosuch")
        check(r.proc.poll() is None and oct(os.stat(sock).st_mode & 0o777) == "0o600" and
              api(sock, "GET", "/v1/status")[0] == 200,
              "a missing socket group: the agent serves root only (socket 0600)")
        check("Socket group 'hull-test-nosuch' does not exist; only root may use the API." in
              open(r.t + "/agent.log").read(), "a missing socket group is logged")
        r.stop()
        r.start()

        # audit log
        code, audit = api(sock, "GET", "/v1/audit?limit=1000")
        paths = [a["path"] for a in audit]
        check(code == 200 and "/v1/stage" in paths and "/v1/config" in paths and "/v1/rollback" in paths,
              "the audit log has the calls (%d records)" % len(audit))
        refused = [a for a in audit if a["uid"] == 65534]
        check(refused and refused[-1]["status"] == 403 and refused[-1]["result"] == "refused",
              "the refused call is audited with the caller's uid")
        check(all(isinstance(a["pid"], int) for a in audit), "every record has the caller's pid")

        # SIGKILL during a stage
        stage_code, stage_op = api(sock, "POST", "/v1/stage", {"source": r.t + "/v2.hullb"})
        # Kill once the slot is being written (before that, nothing on disk
        # has changed and b rightly keeps what it held), or once it is done.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            op = r.status()["operation"]
            if op["state"] != "running" or op["phase"] not in ("fetching-header", "verifying-header", "verifying"):
                break
            time.sleep(0.005)
        r.stop(signal.SIGKILL)
        r.start(booted="a")
        st = r.status()
        op = st["operation"]
        check(op["type"] in ("stage",) and (op["state"] == "succeeded" or op["error"]["code"] == "interrupted"),
              "after SIGKILL the stage shows as interrupted (or finished): %s" % op.get("error"))
        check(st["slots"]["b"]["state"] in ("bad", "staged") and st["slots"]["a"]["state"] == "good",
              "after SIGKILL: " + slots(st) + " (stage answer %s %s)" % (stage_code, stage_op))
        # Killed while b was written: bad, and its record went when the
        # writing began. Killed after it finished: staged, with them (or,
        # in the instant between the environment and the record, without).
        if st["slots"]["b"]["state"] == "bad":
            check(comps(st, "b") is None and not os.path.exists(r.t + "/state/slot-b.json"),
                  "a slot being overwritten loses its components and their record")
        else:
            check(comps(st, "b") in (COMPONENTS_V2, None), "a staged slot: %s" % comps(st, "b"))

        config_cuts(r)
        hook_tests(r)

        # resident memory when idle
        time.sleep(0.5)
        rss = int([l for l in open("/proc/%d/status" % r.proc.pid) if l.startswith("VmRSS")][0].split()[1])
        print("BENCH agent idle RSS %d KiB" % rss, flush=True)
        check(rss < 16 * 1024, "idle RSS is small (%d KiB)" % rss)
        rc = r.stop()
        check(rc == 0, "SIGTERM: clean exit")
        check(not os.path.exists(sock), "the socket is removed on exit")
    except (RuntimeError, subprocess.CalledProcessError, KeyError, TypeError) as e:
        check(False, "unexpected: %r" % e)
        try:
            print(open(r.t + "/agent.log").read()[-3000:])
        except OSError:
            pass
    finally:
        if https:
            https.kill()
        r.cleanup()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
