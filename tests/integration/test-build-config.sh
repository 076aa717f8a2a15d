#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# `hull-build config` on the example and on bad input: the exit status, a
# message naming the file and the field, and no output file written on
# failure (not even an old one replaced). Needs neither root nor the network.
set -uo pipefail
HULL_BUILD=$1
SRC=$2
WORK=$(mktemp -d /tmp/test-build-config.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# The example converts, from another working directory (its source: and
# *_file: paths are relative to the document), and the result checks.
cd "$WORK"
if "$HULL_BUILD" config "$SRC/examples/provision/node.yaml" -o node.json 2>stderr; then
        pass "example converts"
else
        fail "example: $(cat stderr)"
fi
[ "$(stat -c %a node.json 2>/dev/null)" = 600 ] && pass "output is 0600" || fail "output mode $(stat -c %a node.json 2>&1)"
head -c 16 node.json | grep -qF '{"hull_config":1' && pass "hull_config comes first" || fail "first key: $(head -c 40 node.json)"
for needle in '"hostname":"node1.example.com"' '"device":"/dev/vdb"' '"mount":"/var/lib/data"' \
              '"bootstrap_token":"abcdef.0123456789abcdef"' 'admin@laptop' '"vm.max_map_count":"262144"' \
              'KubeletConfiguration' '"dhcp":true'; do
        grep -qF -- "$needle" node.json && pass "node.json has $needle" || fail "node.json lacks $needle"
done
if out=$("$HULL_BUILD" config --check node.json 2>&1); then
        pass "--check accepts it: $out"
else
        fail "--check: $out"
fi
# stdout without -o, byte for byte the same as the file
"$HULL_BUILD" config "$SRC/examples/provision/node.yaml" >stdout.json 2>/dev/null
cmp -s stdout.json node.json && pass "stdout equals -o output" || fail "stdout differs from -o output"
# canonical: converting the machine JSON again (JSON is YAML) is a fixed point
"$HULL_BUILD" config node.json -o again.json 2>/dev/null
cmp -s again.json node.json && pass "canonical form is a fixed point" || fail "reconverting changes the config"

# The worker-join example: the kubernetes keys come through as the node
# reads them.
if "$HULL_BUILD" config "$SRC/examples/provision/worker.yaml" -o worker.json 2>stderr; then
        pass "worker example converts"
else
        fail "worker example: $(cat stderr)"
fi
for needle in '"node_ip":"192.0.2.21"' '"node_labels":{"example.com/pool":"general","topology.kubernetes.io/zone":"rack-1"}' \
              '"node_taints":[{"effect":"NoSchedule","key":"example.com/onboarding"}]' '"cluster_dns":["10.96.0.10"]'; do
        grep -qF -- "$needle" worker.json && pass "worker.json has $needle" || fail "worker.json lacks $needle"
done
grep -qF '"hostname"' worker.json && fail "worker.json has a hostname" || pass "worker.json leaves the name to the node"

# expect_failure NAME NEEDLE: converting NAME.yaml fails with exit status 1,
# stderr names the file and has the needle, and NAME.json is not created.
expect_failure() {
        local name=$1 needle=$2
        "$HULL_BUILD" config "$name.yaml" -o "$name.json" >"$name.stdout" 2>"$name.stderr"
        local rc=$?
        if [ $rc -ne 1 ]; then
                fail "$name: exit status $rc"
        elif ! grep -qF -- "$name.yaml: $needle" "$name.stderr"; then
                fail "$name: stderr lacks '$name.yaml: $needle': $(cat "$name.stderr")"
        elif [ -e "$name.json" ] || [ -s "$name.stdout" ]; then
                fail "$name: output written"
        else
                pass "$name: $(cat "$name.stderr")"
        fi
}

printf 'hull_config: 1\nhostname: Node_1\n' >bad-hostname.yaml
expect_failure bad-hostname 'hostname: "Node_1" may only contain'
printf 'hull_config: 2\n' >bad-version.yaml
expect_failure bad-version 'hull_config: format version 2 is not supported (this Hull understands 1)'
printf 'hull_config: 1\nnetworks:\n  - name: lan\n    match: {name: eth0}\n    dhcp: false\n    addresses: [10.0.0.1/24, 10.0.0.300/24]\n' >bad-address.yaml
expect_failure bad-address 'networks[0].addresses[1]: "10.0.0.300/24" not an address/prefix'
printf 'hull_config: 1\ndisks:\n  - device: /dev/vdb\n    filesystem: ext4\n    label: data\n    mount: /etc/data\n' >bad-mount.yaml
expect_failure bad-mount 'disks[0].mount: "/etc/data" must not be in'
printf 'hull_config: 1\nfiles:\n  - path: /etc/a\n    source: missing.txt\n' >missing-source.yaml
expect_failure missing-source 'files[0].source: cannot read "missing.txt"'
printf 'hull_config: 1\nhostname: [\n' >bad-yaml.yaml
expect_failure bad-yaml '3:1:'
printf 'hull_config: 1\nhostnme: n1\n' >unknown-key.yaml
expect_failure unknown-key 'unknown key "hostnme"'

printf 'hull_config: 1\nkubernetes:\n  node_labels:\n    gpu: true\n' >label-bool.yaml
expect_failure label-bool 'kubernetes.node_labels["gpu"]: must be a string (quote it in YAML: "true", "1")'
printf 'hull_config: 1\nkubernetes:\n  node_labels:\n    node-role.kubernetes.io/worker: ""\n' >label-role.yaml
expect_failure label-role 'kubernetes.node_labels: key "node-role.kubernetes.io/worker" is in the kubernetes.io/k8s.io namespace'
printf 'hull_config: 1\nkubernetes:\n  kubelet_config: |\n    cgroupDriver: cgroupfs\n' >cgroupfs.yaml
expect_failure cgroupfs 'kubernetes.kubelet_config: cgroupDriver must be systemd'
printf 'hull_config: 1\nkubernetes:\n  node_taints:\n    - {key: gpu, effect: NoSchedul}\n' >taint.yaml
expect_failure taint 'kubernetes.node_taints[0].effect: "NoSchedul" must be NoSchedule, PreferNoSchedule or NoExecute'

# An existing output file is left alone on failure.
echo old >keep.json
"$HULL_BUILD" config bad-hostname.yaml -o keep.json 2>/dev/null
[ $? -eq 1 ] && [ "$(cat keep.json)" = old ] && pass "existing output untouched on failure" || fail "keep.json changed"

# --check on a bad machine JSON, and usage errors
echo '{"hull_config":1,"users":[{"name":"root"}]}' >bad.json
out=$("$HULL_BUILD" config --check bad.json 2>&1)
[ $? -eq 1 ] && grep -qF 'bad.json: users[0].name: "root" is a reserved name' <<<"$out" \
        && pass "--check refuses: $out" || fail "--check bad.json: $out"
out=$("$HULL_BUILD" config 2>&1)
[ $? -eq 1 ] && grep -qF 'Usage: hull-build config' <<<"$out" && pass "usage without input" || fail "usage: $out"
out=$("$HULL_BUILD" config nonexistent.yaml 2>&1)
[ $? -eq 1 ] && grep -qF "nonexistent.yaml" <<<"$out" && pass "missing input: $out" || fail "missing input: $out"

echo "$failures failure(s)"
[ $failures -eq 0 ]
