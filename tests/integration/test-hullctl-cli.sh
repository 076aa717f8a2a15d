#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# hullctl's command line: usage errors, no agent to talk to, and the client
# side of every command against canned-agent.py.
#
# canned-agent.py answers with fixed documents in the format of
# docs/AGENT-API.md. It tests the client only (requests sent, answers
# rendered, exit codes); it is not hull-agent and says nothing about it.
set -uo pipefail
HULLCTL=$1
CANNED=$2
UPDATE_TOOL=${3:-}
HULL_BUILD=${4:-}

command -v python3 >/dev/null || { echo "SKIP: needs python3"; exit 77; }
WORK=$(mktemp -d /tmp/hullctl-cli.XXXXXX)
SERVER_PID=
cleanup() {
        [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
        rm -rf "$WORK"
}
trap cleanup EXIT
unset HULL_AGENT_SOCKET

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# run NAME ARGS...: run hullctl, keeping stdout, stderr and the exit code.
run() {
        local name=$1
        shift
        "$HULLCTL" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
        echo $? >"$WORK/$name.rc"
}

# expect NAME RC [out|err] NEEDLE...: the exit code and every needle (fixed
# strings) in stdout or stderr.
expect() {
        local name=$1 rc=$2 stream=$3
        shift 3
        local got
        got=$(cat "$WORK/$name.rc")
        if [ "$got" != "$rc" ]; then
                fail "$name: exit code $got, expected $rc"
                sed 's/^/    /' "$WORK/$name.out" "$WORK/$name.err" | tail -n 20
                return 1
        fi
        for needle in "$@"; do
                if ! grep -qF -- "$needle" "$WORK/$name.$stream"; then
                        fail "$name: std$stream lacks '$needle':"
                        sed 's/^/    /' "$WORK/$name.$stream" | tail -n 20
                        return 1
                fi
        done
        pass "$name"
}

# last_request PATH EXPR: a Python expression over the last request for PATH
# (the start of it) the canned agent received, as "r" (method, path, body).
last_request() {
        python3 -c 'import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["path"].startswith(sys.argv[2])][-1]
print(eval(sys.argv[3]))' "$WORK/agent/requests.jsonl" "$1" "$2"
}

# ---- 1. usage errors: exit 2, before any connection ----------------------
run no-args
expect no-args 2 out "Usage:" "hullctl [OPTIONS] status"
run help --help
expect help 0 out "hullctl [OPTIONS] stage SOURCE" "--socket PATH"
run version --version
expect version 0 out "hullctl "
run version-after status --version
expect version-after 0 out "hullctl "
run unknown frobnicate
expect unknown 2 err "hullctl: Unknown command 'frobnicate'"
run stage-no-source stage
expect stage-no-source 2 err "Usage: hullctl stage SOURCE"
run status-extra status now
expect status-extra 2 err "'status' takes no arguments, got 'now'"
run wrong-option status --tries 3
expect wrong-option 2 err "unrecognized option '--tries'" "options of 'status'"
run bad-tries activate --tries many
expect bad-tries 2 err "--tries needs a number of boot attempts of at least 1, not 'many'"
run zero-tries activate --tries 0
expect zero-tries 2 err "--tries needs"
run bad-sha stage x.hullb --sha256 1234
expect bad-sha 2 err "--sha256 needs 64 hex digits, not '1234'"
run cert-alone stage x.hullb --client-cert c.pem
expect cert-alone 2 err "--client-cert and --client-key go together"
run bad-limit audit --limit 5000
expect bad-limit 2 err "--limit needs a number from 1 to 1000, not '5000'"
run config-verb config frob
expect config-verb 2 err "Unknown config command 'frob'"
run config-no-file config apply
expect config-no-file 2 err "Usage: hullctl config apply FILE"
run no-wait-activate activate --no-wait
expect no-wait-activate 2 err "unrecognized option '--no-wait'"
run hook-no-name hook run
expect hook-no-name 2 err "Usage: hullctl hook run NAME"
run hook-verb hook list x
expect hook-verb 2 err "Unknown hook command 'list' (run)"
run hook-bad-stage hook run x --stage drain
expect hook-bad-stage 2 err "--stage must be pre-drain, post-boot or manual, not 'drain'"
run hook-bad-timeout hook run x --timeout 0
expect hook-bad-timeout 2 err "--timeout needs 1 to 86400 seconds, not '0'"
run hook-timeout-elsewhere stage x.hullb --timeout 5
expect hook-timeout-elsewhere 2 err "unrecognized option '--timeout'"

# ---- 2. no agent ----------------------------------------------------------
SOCK_MISSING="$WORK/missing/agent.sock"
run no-agent --socket "$SOCK_MISSING" status
expect no-agent 1 err \
        "hullctl: cannot reach hull-agent at $SOCK_MISSING: No such file or directory (is hull-agent running? are you root or in its group?)"
HULL_AGENT_SOCKET="$WORK/env/agent.sock" run no-agent-env activate
expect no-agent-env 1 err "cannot reach hull-agent at $WORK/env/agent.sock: No such file or directory"
# --socket wins over the environment.
HULL_AGENT_SOCKET="$WORK/env/agent.sock" run socket-over-env --socket "$SOCK_MISSING" status
expect socket-over-env 1 err "cannot reach hull-agent at $SOCK_MISSING:"

# A socket nobody listens on any more.
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$WORK/dead.sock"
run refused --socket "$WORK/dead.sock" status
expect refused 1 err "cannot reach hull-agent at $WORK/dead.sock: Connection refused (is hull-agent running?"
run too-long --socket "$WORK/$(printf 'x%.0s' {1..120})" status
expect too-long 1 err "File name too long"

# Local problems are reported before the agent is asked anything.
run stage-missing-file --socket "$SOCK_MISSING" stage does-not-exist.hullb
expect stage-missing-file 1 err "hullctl: Cannot find bundle 'does-not-exist.hullb': No such file or directory"
printf 'generation: 4\nhostname: a\nhostname: b\n' >"$WORK/dup.yaml"
run config-dup --socket "$SOCK_MISSING" config apply "$WORK/dup.yaml"
expect config-dup 1 err "hullctl: $WORK/dup.yaml:3:1: duplicate key 'hostname'"
printf 'generation: 4\nbase: &b {x: 1}\nother: *b\n' >"$WORK/alias.yaml"
run config-alias --socket "$SOCK_MISSING" config apply "$WORK/alias.yaml"
expect config-alias 1 err "alias.yaml:2:7: YAML anchors are not supported ('&b')"
printf '{"generation": 4,}\n' >"$WORK/bad.json"
run config-bad-json --socket "$SOCK_MISSING" config apply "$WORK/bad.json"
expect config-bad-json 1 err "bad.json:1:"
printf -- '- a\n- b\n' >"$WORK/list.yaml"
run config-list --socket "$SOCK_MISSING" config apply "$WORK/list.yaml"
expect config-list 1 err "a node config must be a mapping"
run config-missing --socket "$SOCK_MISSING" config apply "$WORK/nonexistent.yaml"
expect config-missing 1 err "Cannot read '$WORK/nonexistent.yaml': No such file or directory"

# ---- 3. against the canned agent -----------------------------------------
mkdir -p "$WORK/agent"
SOCK="$WORK/agent/agent.sock"
python3 "$CANNED" "$SOCK" "$WORK/agent" 2>"$WORK/agent/stderr" &
SERVER_PID=$!
for _ in $(seq 100); do
        [ -S "$SOCK" ] && break
        sleep 0.1
done
[ -S "$SOCK" ] || { echo "canned agent did not start:"; cat "$WORK/agent/stderr"; exit 1; }
export HULL_AGENT_SOCKET=$SOCK

run status status
expect status 0 out \
        "OS:              hull-demo 1.0.0" \
        "Booted slot:     a" \
        "Config:          generation 3" \
        "SLOT  STATE   VERSION  PRIORITY  TRIES  BOOTED" \
        "a     good    1.0.0          10      0  *" \
        "b     staged  2.0.0           0      0" \
        "Last operation:  #6 stage (version 2.0.0, slot b): failed in phase verifying at 0%" \
        "error: the bundle's signature does not verify against key 0123456789abcdef (bad_signature)"

run status-json --json status
if [ "$(cat "$WORK/status-json.rc")" = 0 ] &&
   python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["slots"]["b"]["state"] == "staged"' \
        "$WORK/status-json.out"; then
        pass "status --json is the agent's document"
else
        fail "status --json: $(cat "$WORK/status-json.out" "$WORK/status-json.err")"
fi

# An error body: message and code, exit 1.
run activate-conflict activate
expect activate-conflict 1 err "hullctl: nothing is staged: slot b is empty (conflict)"
run activate-conflict-json --json activate
expect activate-conflict-json 1 out '"code": "conflict"'

# stage, relative path, followed to success (not a terminal: a line per phase).
touch "$WORK/demo-2.0.0.hullb"
(cd "$WORK" && "$HULLCTL" stage demo-2.0.0.hullb --sha256 "$(printf '%064d' 0)" --key-id 0123456789abcdef \
        >"$WORK/stage-ok.out" 2>"$WORK/stage-ok.err"; echo $? >"$WORK/stage-ok.rc")
expect stage-ok 0 out \
        "stage #7: fetching-header" "stage #7: verifying" "stage #7: writing" "stage #7: finishing" \
        "#7 stage (version 2.0.0, slot b): succeeded, finished 2026-11-22T01:41:00Z" \
        "Boot it with 'hullctl activate'."
if [ "$(grep -c 'stage #7: writing' "$WORK/stage-ok.out")" = 1 ]; then
        pass "stage: one line per phase, not per poll"
else
        fail "stage: phase lines repeat: $(cat "$WORK/stage-ok.out")"
fi
stage_req=$(python3 -c 'import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["path"] == "/v1/stage": b = r["body"]
print(b["source"], b["sha256"][:4], b["key_id"], sorted(b))' "$WORK/agent/requests.jsonl")
if [ "$stage_req" = "$WORK/demo-2.0.0.hullb 0000 0123456789abcdef ['key_id', 'sha256', 'source']" ]; then
        pass "stage: relative source sent as an absolute path, options as fields"
else
        fail "stage: request was: $stage_req"
fi

# stage followed to failure: the operation's error, exit 1.
touch "$WORK/fail.hullb"
run stage-fail stage "$WORK/fail.hullb" --version 2.1.0
expect stage-fail 1 err \
        "hullctl: stage failed in phase verifying: the bundle's signature does not verify (bad_signature)"
expect stage-fail 1 out "stage #8: verifying"
if [ "$(last_request /v1/stage 'r["body"]["version"]')" = "2.1.0" ]; then
        pass "stage --version is sent as the image version"
else
        fail "stage --version: $(last_request /v1/stage 'r')"
fi

# --json: nothing but the final operation object.
run stage-json --json stage "$WORK/demo-2.0.0.hullb"
if [ "$(cat "$WORK/stage-json.rc")" = 0 ] &&
   python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["state"] == "succeeded" and d["id"] == 9' \
        "$WORK/stage-json.out"; then
        pass "stage --json prints the final operation"
else
        fail "stage --json: $(cat "$WORK/stage-json.out" "$WORK/stage-json.err")"
fi
run stage-nowait stage "$WORK/demo-2.0.0.hullb" --no-wait
expect stage-nowait 0 out "Started stage #10; follow it with 'hullctl status'."
run stage-url stage https://updates.example.com/b.hullb --no-wait --ca-file /etc/hull/ca.pem
if [ "$(last_request /v1/stage 'r["body"]["source"] + " " + r["body"]["ca_file"]')" = \
     "https://updates.example.com/b.hullb /etc/hull/ca.pem" ]; then
        pass "stage: URLs are sent as they are"
else
        fail "stage URL: $(last_request /v1/stage 'r')"
fi

# On a terminal: a progress bar redrawn in place.
if command -v script >/dev/null; then
        script -qec "$HULLCTL stage $WORK/demo-2.0.0.hullb" /dev/null >"$WORK/stage-tty.out" 2>&1
        if grep -q $'\r''writing  *\[#*-*\]  50%  172.5/345.0 MiB' "$WORK/stage-tty.out" &&
           grep -q 'succeeded' "$WORK/stage-tty.out"; then
                pass "stage on a terminal draws a progress bar"
        else
                fail "stage on a terminal: $(cat -A "$WORK/stage-tty.out")"
        fi
fi

run activate activate --tries 2 --no-reboot
expect activate 0 out "Activated slot b (version 2.0.0); it boots at the next reboot (reboot required)."
if [ "$(last_request /v1/activate 'r["body"]')" = "{'tries': 2, 'reboot': False}" ]; then
        pass "activate sends tries and reboot"
else
        fail "activate request: $(last_request /v1/activate 'r')"
fi
run rollback rollback
expect rollback 1 err "hullctl: slot b is not good: nothing to roll back to (conflict)"
run reboot reboot
expect reboot 0 out "Rebooting (the audit log has the request)."
[ -n "$(last_request /v1/reboot 'r["method"]')" ] && pass "reboot posts /v1/reboot" || fail "reboot: no request"
run reboot-args reboot now
expect reboot-args 2 err "'reboot' takes no arguments, got 'now'"
run mark-good mark-good --force
expect mark-good 0 out "The booted slot is marked good."
[ "$(last_request /v1/mark-good 'r["body"]')" = "{'force': True}" ] && pass "mark-good --force" || fail "mark-good: $(last_request /v1/mark-good 'r')"
# Without --force the health checks run as an operation, followed like stage.
run mark-good-fail mark-good
expect mark-good-fail 1 err "hullctl: mark-good failed in phase health-checks: kubelet: not ready after 300 s (unhealthy)"
expect mark-good-fail 1 out "mark-good #" ": health-checks"

# config apply: YAML converted with its types.
cat >"$WORK/node.yaml" <<'EOF'
generation: 4
hostname: node-1
kubelet:
  labels: {role: worker}
  max_pods: 110
  extra_args: []
debug:
  enabled: false
zone: "007"
EOF
run config-apply config apply "$WORK/node.yaml"
expect config-apply 0 out "Config generation 4 applied." "A reboot is required"
got=$(last_request /v1/config 'json.dumps(r["body"], sort_keys=True)')
want='{"debug": {"enabled": false}, "generation": 4, "hostname": "node-1", "kubelet": {"extra_args": [], "labels": {"role": "worker"}, "max_pods": 110}, "zone": "007"}'
[ "$got" = "$want" ] && pass "config apply: YAML sent as typed JSON" || fail "config apply sent $got"
printf '{"generation": 5, "hostname": "n"}\n' >"$WORK/node.json"
run config-apply-json config apply "$WORK/node.json"
expect config-apply-json 0 out "Config generation 5 applied."
run config-show config show
expect config-show 0 out '"hostname": "node-1"'

run debug debug -- ls -l /
expect debug 0 out "ran: ls -l /"
[ "$(last_request /v1/debug 'r["body"]')" = "{'command': ['ls', '-l', '/']}" ] && pass "debug sends the command" ||
        fail "debug request: $(last_request /v1/debug 'r')"

run audit audit --limit 5
expect audit 0 out \
        "2026-11-22T01:40:00.123456Z  uid=0 pid=4242  POST /v1/stage  202 accepted" \
        "uid=1000 pid=99  POST /v1/activate  403 refused  error: uid 1000 is not allowed (forbidden)"
[ "$(last_request /v1/audit 'r["path"]')" = "/v1/audit?limit=5" ] && pass "audit --limit" || fail "audit: $(last_request /v1/audit 'r')"

# 403: the message, and a hint about who may use the socket.
echo forbidden >"$WORK/agent/mode"
run forbidden status
expect forbidden 1 err "hullctl: uid 1000 is not root or in group hull (forbidden)" \
        "hint: hull-agent accepts only root and members of its socket group"
run forbidden-debug debug
expect forbidden-debug 1 err "must be enabled in the node config"

# Bodies are bounded, and must be JSON.
echo huge >"$WORK/agent/mode"
run huge status
expect huge 1 err "response body larger than 16 MiB"
echo garbage >"$WORK/agent/mode"
run garbage status
expect garbage 1 err "hull-agent sent a response that is not JSON (HTTP 200)"

# cluster upgrade --bundle: version, sha256, key id and kubelet from the
# verified bundle, checked before any cluster is contacted (the kubeconfig
# does not exist, so a run that gets that far stops there).
if [ -n "$UPDATE_TOOL" ] && [ -n "$HULL_BUILD" ]; then
        "$HULL_BUILD" keygen "$WORK/rel.key" "$WORK/rel.pub" >/dev/null &&
                "$HULL_BUILD" keygen "$WORK/other.key" "$WORK/other.pub" >/dev/null || fail "keygen"
        head -c 300000 /dev/urandom >"$WORK/rootfs"; head -c 5000 /dev/urandom >"$WORK/kernel"; head -c 3000 /dev/urandom >"$WORK/initrd"
        printf '{"containerd":"1.6.20","kernel":"6.1.0-28-amd64","kubelet":"v1.32.0","runc":"1.1.5"}' >"$WORK/components.json"
        "$UPDATE_TOOL" make-bundle "$WORK/rel.key" "$WORK/b.hullb" 2.1.0 x86_64 "$WORK/rootfs" "$WORK/kernel" "$WORK/initrd" \
                "$WORK/components.json" >/dev/null || fail "make-bundle"
        sum=$(sha256sum "$WORK/b.hullb" | cut -d' ' -f1)
        up() { run "$1" cluster --kubeconfig "$WORK/no-kubeconfig" upgrade workers --image-url https://u.example/b.hullb "${@:2}"; }
        up bundle-ok --bundle "$WORK/b.hullb" --trust "$WORK/rel.pub"
        expect bundle-ok 1 out "Bundle $WORK/b.hullb: hull-test 2.1.0" "sha256 $sum, kubelet v1.32.0, created 2026-11-22T00:00:00Z"
        expect bundle-ok 1 err "kubeconfig"
        up bundle-agree --bundle "$WORK/b.hullb" --trust "$WORK/rel.pub" --version 2.1.0 --sha256 "$sum" --kubelet-version v1.32.0
        expect bundle-agree 1 err "kubeconfig"
        up bundle-version --bundle "$WORK/b.hullb" --trust "$WORK/rel.pub" --version 2.2.0
        expect bundle-version 2 err "--version is '2.2.0', but the bundle says '2.1.0'"
        up bundle-kubelet --bundle "$WORK/b.hullb" --trust "$WORK/rel.pub" --kubelet-version v1.31.0
        expect bundle-kubelet 2 err "--kubelet-version is 'v1.31.0', but the bundle says 'v1.32.0'"
        up bundle-notrust --bundle "$WORK/b.hullb"
        expect bundle-notrust 2 err "--bundle needs --trust"
        up bundle-otherkey --bundle "$WORK/b.hullb" --trust "$WORK/other.pub"
        expect bundle-otherkey 2 err "is not signed by the key in"
        cp "$WORK/b.hullb" "$WORK/bad.hullb"
        printf 'X' | dd of="$WORK/bad.hullb" bs=1 seek=$(( $(stat -c %s "$WORK/bad.hullb") - 10 )) conv=notrunc 2>/dev/null
        up bundle-damaged --bundle "$WORK/bad.hullb" --trust "$WORK/rel.pub"
        expect bundle-damaged 2 err "is damaged"
        printf 'not a bundle' >"$WORK/nb.hullb"
        up bundle-garbage --bundle "$WORK/nb.hullb" --trust "$WORK/rel.pub"
        expect bundle-garbage 2 err "is not a valid Hull bundle"
        run bundle-rollback cluster --kubeconfig "$WORK/no-kubeconfig" rollback workers --version 1 --bundle "$WORK/b.hullb"
        expect bundle-rollback 2 err "--bundle and --trust are for upgrade"
        # --created (spec.image.created, for minImageAgeSeconds): the CRD's
        # form only; it may differ from the bundle's build date.
        up created-ok --bundle "$WORK/b.hullb" --trust "$WORK/rel.pub" --created 2026-12-03T10:00:00Z
        expect created-ok 1 err "kubeconfig"
        for bad in 2026-12-03T10:00:00+01:00 2026-12-03T10:00:00.5Z 2026-02-30T10:00:00Z 2026-12-03T10:00:60Z yesterday; do
                up created-bad --bundle "$WORK/b.hullb" --trust "$WORK/rel.pub" --created "$bad"
                expect created-bad 2 err "--created wants a UTC time YYYY-MM-DDTHH:MM:SSZ such as 2026-12-03T10:00:00Z, not '$bad'"
        done
        run created-rollback cluster --kubeconfig "$WORK/no-kubeconfig" rollback workers --version 1 --created 2026-12-03T10:00:00Z
        expect created-rollback 2 err "--created is for upgrade"
fi

if [ $failures -gt 0 ]; then
        echo "$failures failure(s)"
        exit 1
fi
echo "all passed"
