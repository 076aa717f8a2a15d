#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# hull-provision against a temporary root, persist and /proc/sys, with loop
# devices for the data disk and the HULL-CONFIG disk: a full config applies
# (hostname, network, timesyncd, sysctl, files, units, a user with keys, a
# data disk) and is recorded; a second run applies nothing; every config
# source is found, in the contract's order; bad configs stop with a message
# and change nothing at all.
set -uo pipefail
PROVISION=$1
HULL_BUILD=$2
LOOP_LIB_NAME=provision
HTTP_PID=""
loop_cleanup_hook() { [ -n "$HTTP_PID" ] && kill "$HTTP_PID" 2>/dev/null; }
. "$(dirname "$0")/loop-lib.sh"
# Every file below a directory: path, mode, owner, mtime, link target, and content checksums.
snapshot() {
        (cd "$1" && find . -printf '%p %m %U:%G %T@ %l\n' | LC_ALL=C sort && find . -type f -exec sha256sum {} + | LC_ALL=C sort)
}

# A tree that looks like the image's root, as far as hull-provision cares.
make_root() {
        local r=$1
        mkdir -p "$r/etc/skel" "$r/home" "$r/usr/lib/systemd/system" "$r/var/lib" "$r/srv" "$r/usr/bin"
        printf 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n' >"$r/etc/passwd"
        printf 'root:x:0:\ndaemon:x:1:\nadm:x:4:\nsudo:x:27:\nhull-admin:x:990:\n' >"$r/etc/group"
        printf 'root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n' >"$r/etc/shadow"
        printf 'root:*::\ndaemon:*::\nadm:*::\nsudo:*::\nhull-admin:!::\n' >"$r/etc/gshadow"
        chmod 0640 "$r/etc/shadow" "$r/etc/gshadow"
        echo 'alias ll="ls -l"' >"$r/etc/skel/.bashrc"
        echo localhost >"$r/etc/hostname"
        printf '127.0.0.1 localhost\n' >"$r/etc/hosts"
        for u in systemd-networkd systemd-timesyncd containerd ssh; do
                printf '[Unit]\nDescription=%s\n\n[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n' "$u" \
                        >"$r/usr/lib/systemd/system/$u.service"
        done
        printf 'NAME=Hull\nIMAGE_ID=test\nIMAGE_VERSION=1.2.3\n' >"$r/usr/lib/os-release"
        cp /bin/bash "$r/usr/bin/bash"
        # what ssh.service's drop-in runs (openssh-server in a real image)
        mkdir -p "$r/usr/sbin"
        cp /bin/true "$r/usr/bin/ssh-keygen"
        cp /bin/true "$r/usr/sbin/sshd"
}
make_proc_sys() {
        mkdir -p "$1/net/ipv4" "$1/vm" "$1/kernel"
        echo 0 >"$1/net/ipv4/ip_forward"
        echo 65530 >"$1/vm/max_map_count"
}

R=$T/root P=$T/persist S=$T/proc-sys
make_root "$R"
make_proc_sys "$S"
mkdir -p "$P" "$T/pristine"
make_root "$T/pristine/root"
make_proc_sys "$T/pristine/proc-sys"
: >"$T/cmdline"
D1=$(newloop data 64)

cat >"$T/node.yaml" <<EOF
hull_config: 1
hostname: node1.example.com
users:
  - name: admin
    gecos: Node administrator
    groups: [adm, sudo]
    shell: /usr/bin/bash
    ssh_authorized_keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEhVTEwtZXhhbXBsZS1rZXktcmVwbGFjZS1tZQ admin@example
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFNlY29uZC1leGFtcGxlLWtleS1yZXBsYWNlLW1l admin@laptop
ssh:
  enabled: true
networks:
  - name: uplink
    match:
      name: "en*"
    dhcp: true
ntp:
  servers: [0.debian.pool.ntp.org]
sysctl:
  vm.max_map_count: 262144
  net.ipv4.ip_forward: 1
files:
  - path: /etc/motd
    content: "node1: provisioned by Hull.\n"
units:
  enable: [containerd.service]
disks:
  - device: $D1
    filesystem: ext4
    label: data
    mount: /var/lib/data
    options: [noatime]
EOF
"$HULL_BUILD" config "$T/node.yaml" >"$T/node.json" 2>"$T/config.err" || { echo "FAIL: hull-build config: $(cat "$T/config.err")"; exit 1; }

run() { # extra args...; output in $T/out, $T/err
        "$PROVISION" --root "$R" --persist "$P" --proc-sys "$S" --cmdline "$T/cmdline" --fw-cfg "$T/no-fw-cfg" \
                --no-systemd --disk-wait 1 "$@" >"$T/out" 2>"$T/err"
}

# --- a full config ---
run --config "$T/node.json"
rc=$?
check "full config: exit 0" "[ $rc -eq 0 ]"
[ $rc -eq 0 ] || cat "$T/out" "$T/err"
check "hostname file" "[ \"\$(cat $R/etc/hostname)\" = node1.example.com ]"
check "hosts has the 127.0.1.1 line" "grep -q '^127.0.1.1.*node1.example.com' $R/etc/hosts"
check "network file" "grep -q '^DHCP=yes' $R/etc/systemd/network/50-hull-uplink.network"
check "networkd enabled" "[ -L $R/etc/systemd/system/multi-user.target.wants/systemd-networkd.service ]"
check "timesyncd conf" "grep -q '^NTP=0.debian.pool.ntp.org' $R/etc/systemd/timesyncd.conf.d/50-hull.conf"
check "timesyncd enabled" "[ -L $R/etc/systemd/system/multi-user.target.wants/systemd-timesyncd.service ]"
check "sysctl written to proc_sys" "[ \"\$(cat $S/vm/max_map_count)\" = 262144 ] && [ \"\$(cat $S/net/ipv4/ip_forward)\" = 1 ]"
check "sysctl persisted" "grep -q 'vm.max_map_count = 262144' $R/etc/sysctl.d/90-hull.conf"
check "file written" "[ \"\$(cat $R/etc/motd)\" = 'node1: provisioned by Hull.' ]"
check "unit enabled" "[ \"\$(readlink $R/etc/systemd/system/multi-user.target.wants/containerd.service)\" = /usr/lib/systemd/system/containerd.service ]"
check "user in the root's passwd (home, shell, gecos)" "grep -q '^admin:x:[0-9]*:[0-9]*:Node administrator:/home/admin:/usr/bin/bash$' $R/etc/passwd"
uid=$(awk -F: '$1 == "admin" {print $3}' "$R/etc/passwd")
check "user is a regular uid (>= 1000)" "[ \"$uid\" -ge 1000 ]"
check "user not in the host's passwd" "! grep -q '^admin:.*Node administrator' /etc/passwd"
check "user's groups adm and sudo" "grep -q '^adm:x:4:admin$' $R/etc/group && grep -q '^sudo:x:27:admin$' $R/etc/group"
check "user has no password (*)" "grep -q '^admin:\\*:' $R/etc/shadow"
check "home from skel" "[ -f $R/home/admin/.bashrc ]"
K=$R/home/admin/.ssh/authorized_keys
check "authorized_keys: both keys" "[ \$(wc -l <$K) -eq 2 ] && grep -q 'admin@laptop' $K"
check "authorized_keys: every key forced into the admin container, no forwarding" \
        "[ \$(grep -c '^restrict,pty,command=\"/usr/bin/hullctl debug\" ssh-ed25519 ' $K) -eq 2 ]"
check "the user is in hull-admin (the agent's socket group)" "grep -q '^hull-admin:x:990:admin$' $R/etc/group"
check "sshd: keys only, hull-admin only, ForceCommand hullctl debug" \
        "grep -qx 'AllowGroups hull-admin' $R/etc/ssh/sshd_config.d/50-hull.conf && grep -qx 'ForceCommand /usr/bin/hullctl debug' $R/etc/ssh/sshd_config.d/50-hull.conf && grep -qx 'PasswordAuthentication no' $R/etc/ssh/sshd_config.d/50-hull.conf"
check "ssh.service enabled" "[ -L $R/etc/systemd/system/multi-user.target.wants/ssh.service ]"
check "sshd makes this node's host keys before it starts" \
        "grep -qx 'ExecStartPre=/usr/bin/ssh-keygen -A' $R/etc/systemd/system/ssh.service.d/50-hull-host-keys.conf"
check "authorized_keys: 0600 owned by the user, .ssh 0700" "[ \"\$(stat -c '%a %u' $K)\" = '600 $uid' ] && [ \"\$(stat -c '%a %u' $R/home/admin/.ssh)\" = '700 $uid' ]"
check "data disk: ext4 labelled data on one partition" "[ \"\$(blkid -p -o value -s TYPE ${D1}p1) \$(blkid -p -o value -s LABEL ${D1}p1)\" = 'ext4 data' ]"
check "data disk: mount unit" "grep -qx 'Where=/var/lib/data' $R/etc/systemd/system/var-lib-data.mount && grep -qx 'Options=noatime' $R/etc/systemd/system/var-lib-data.mount"
check "data disk: mounted" "findmnt -n -o SOURCE $R/var/lib/data | grep -qx ${D1}p1"
A=$P/hull/provision/applied.json
sha=$(sha256sum "$T/node.json" | cut -d' ' -f1)
check "applied.json: 0600 in a 0700 directory" "[ \"\$(stat -c %a $A) \$(stat -c %a $P/hull/provision)\" = '600 700' ]"
check "applied.json: sha256, source, time, image version" \
        "python3 -c 'import json,sys; a=json.load(open(\"$A\")); sys.exit(not (a[\"sha256\"] == \"$sha\" and a[\"source\"].endswith(\"(--config)\") and a[\"image_version\"] == \"1.2.3\" and a[\"time\"].endswith(\"Z\")))'"
check "output names the source and the disk" "grep -q 'config from $T/node.json' $T/out && grep -q 'formatted, ext4 on /var/lib/data' $T/out"
echo data >"$R/var/lib/data/file"
sync

# --- a second run applies nothing ---
state() { snapshot "$R"; snapshot "$P"; snapshot "$S"; }
before=$(state)
run --config "$T/node.json"
check "second run: exit 0, says when and from where" "[ $? -eq 0 ] && grep -q '^hull-provision: provisioned on 20[0-9-]*T[0-9:]*Z from $T/node.json (--config)' $T/out"
check "second run: nothing offered differs, nothing said" "! grep -q ignored $T/out"
sync
after=$(state)
check "second run: every file, mode and mtime unchanged" "[ \"\$before\" = \"\$after\" ]"
sed 's/node1/node2/' "$T/node.json" >"$T/node2.json"
run --config "$T/node2.json"
check "a different config offered later: ignored, and said so" "[ $? -eq 0 ] && grep -q 'the config from $T/node2.json (--config) differs from the one applied and was ignored' $T/out"
check "  ... and nothing changed" "[ \"\$(cat $R/etc/hostname)\" = node1.example.com ]"
umount "$R/var/lib/data"

# --- dry run ---
R=$T/dry P=$T/dry-persist
cp -a "$T/pristine/root" "$R"
mkdir -p "$P"
cat >"$T/small.json" <<'EOF'
{"hull_config":1,"hostname":"dry","sysctl":{"vm.max_map_count":"262144"},"units":{"enable":["containerd.service"]}}
EOF
before=$(snapshot "$T/dry")
run --config "$T/small.json" --dry-run
check "dry run: plan printed" "[ $? -eq 0 ] && grep -q '^hostname: dry' $T/out && grep -q '^enable: containerd.service' $T/out && grep -q '^sysctl: vm.max_map_count = 262144' $T/out"
check "dry run: nothing changed, no applied.json" "[ \"\$before\" = \"\$(snapshot $T/dry)\" ] && [ ! -e $P/hull ]"

# --- where the config comes from, in order ---
source_of() { # -> the "config from" line of a dry run
        run --dry-run "$@"
        sed -n 's/^hull-provision: config from \(.*\) (sha256.*/\1/p' "$T/out"
}
mkdir -p "$P/hull/provision"
cp "$T/small.json" "$P/hull/provision/config.json"
check "source 0: the installer's copy on persist" "[ \"\$(source_of)\" = '$P/hull/provision/config.json (copied by the installer)' ]"
rm -rf "$P/hull"

# ext4: the kernel running the tests may have no vfat or iso9660 (the image's
# has; the QEMU test uses vfat).
CD=$(newloop cfgdisk 8)
mkfs.ext4 -q -L HULL-CONFIG "$CD"
mkdir -p "$T/m"
mount "$CD" "$T/m" && cp "$T/small.json" "$T/m/hull-config.json" && umount "$T/m"
OTHER=$(newloop other 8)
mkfs.ext4 -q -L OTHER "$OTHER"
echo "quiet hull.config=/cfg.json" >"$T/cmdline"
cp "$T/small.json" "$R/cfg.json"
mkdir -p "$T/fw/by_name/opt/dev.hull/config"
cp "$T/small.json" "$T/fw/by_name/opt/dev.hull/config/raw"
check "source 1: HULL-CONFIG disk before the command line and fw_cfg" \
        "[ \"\$(source_of --config-device $OTHER --config-device $CD --fw-cfg $T/fw)\" = 'hull-config.json on $CD (label HULL-CONFIG)' ]"
check "  ... and the config disk is not left mounted" "! grep -q ' /run/hull-provision' /proc/self/mounts"
check "source 2: kernel command line path before fw_cfg" \
        "[ \"\$(source_of --config-device $OTHER --fw-cfg $T/fw)\" = 'kernel command line hull.config=$R/cfg.json' ]"
echo "hull.config=file:///cfg.json" >"$T/cmdline"
check "source 2: file:// URL" "[ \"\$(source_of --config-device $OTHER)\" = 'kernel command line hull.config=$R/cfg.json' ]"
mkdir -p "$T/www"
cp "$T/small.json" "$T/www/c.json"
port=$((20000 + RANDOM % 20000))
python3 -m http.server --bind 127.0.0.1 --directory "$T/www" "$port" >/dev/null 2>&1 &
HTTP_PID=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
echo "hull.config=http://127.0.0.1:$port/c.json" >"$T/cmdline"
check "source 2: http:// URL" "[ \"\$(source_of --config-device $OTHER)\" = 'kernel command line hull.config=http://127.0.0.1:$port/c.json' ]"
echo "hull.config=http://127.0.0.1:$port/missing.json" >"$T/cmdline"
run --dry-run --config-device "$OTHER"
check "source 2: a URL that cannot be fetched stops with advice" "[ $? -eq 1 ] && grep -q 'first boot stopped: cannot read the machine config: hull.config=\"http://127.0.0.1:$port/missing.json\": cannot fetch it.*add ip=dhcp' $T/err"
kill "$HTTP_PID" 2>/dev/null
wait "$HTTP_PID" 2>/dev/null
HTTP_PID=""
echo "hull.config=relative.json" >"$T/cmdline"
run --dry-run --config-device "$OTHER"
check "source 2: a relative path is an error" "[ $? -eq 1 ] && grep -q 'not an absolute path, file://' $T/err"
: >"$T/cmdline"
check "source 3: fw_cfg" "[ \"\$(source_of --config-device $OTHER --fw-cfg $T/fw)\" = 'QEMU fw_cfg opt/dev.hull/config' ]"
CD2=$(newloop cfgdisk2 8)
mkfs.ext4 -q -L HULL-CONFIG "$CD2"
run --dry-run --config-device "$CD" --config-device "$CD2"
check "two HULL-CONFIG disks: refused" "[ $? -eq 1 ] && grep -q 'two file systems are labelled HULL-CONFIG' $T/err"
run --dry-run --config-device "$CD2"
check "a HULL-CONFIG disk without hull-config.json: refused" "[ $? -eq 1 ] && grep -q 'has no hull-config.json at its root' $T/err"

# --- no config at all ---
before=$(snapshot "$R")
run --config-device "$OTHER"
check "no config: exit 0, said so" "[ $? -eq 0 ] && grep -q 'no machine config found' $T/out"
check "no config: the image is left as it is" "[ \"\$before\" = \"\$(snapshot $R)\" ]"
check "no config: recorded as none" "python3 -c 'import json,sys; a=json.load(open(\"$P/hull/provision/applied.json\")); sys.exit(not (a[\"source\"] == \"none\" and a[\"sha256\"] is None))'"
run --config-device "$CD"
check "no config, then a config disk: ignored, and said so" "[ $? -eq 0 ] && grep -q 'differs from the one applied and was ignored' $T/out && [ \"\$(cat $R/etc/hostname)\" = localhost ]"

# --- a node without a hostname gets one of its own ---
# A worker that joins a cluster, its config naming no hostname: the name
# comes from the machine ID (the kubelet registers the node under it).
R=$T/named P=$T/named-persist
cp -a "$T/pristine/root" "$R"
mkdir -p "$P"
echo 0123456789abcdef0123456789abcdef >"$R/etc/machine-id"
cat >"$T/join.json" <<'EOF'
{"hull_config":1,"kubernetes":{"node_ip":"192.0.2.10","node_labels":{"example.com/pool":"gpu"},"node_taints":[{"key":"example.com/gpu","effect":"NoSchedule"}]}}
EOF
run --config "$T/join.json"
rc=$?
check "no hostname, kubernetes: exit 0" "[ $rc -eq 0 ]"
[ $rc -eq 0 ] || cat "$T/out" "$T/err"
check "  ... named after the machine ID, and said so" \
        "[ \"\$(cat $R/etc/hostname)\" = hull-0123456789ab ] && grep -q 'this node is hull-0123456789ab (from the machine ID)' $T/out"
check "  ... /etc/hosts has it on 127.0.1.1" "grep -q '^127.0.1.1.hull-0123456789ab$' $R/etc/hosts"
cat >"$T/kubelet-check.py" <<'EOF'
import json, sys
k = json.load(open(sys.argv[1]))
ok = (k["kind"] == "KubeletConfiguration" and k["apiVersion"] == "kubelet.config.k8s.io/v1beta1"
      and k["cgroupDriver"] == "systemd" and k["healthzPort"] == 10248 and k["healthzBindAddress"] == "127.0.0.1"
      and k["containerRuntimeEndpoint"] == "unix:///run/containerd/containerd.sock"
      and k["volumePluginDir"] == "/var/lib/kubelet/volumeplugins"
      and k["resolvConf"] == "/run/systemd/resolve/resolv.conf"
      and k["authentication"]["anonymous"]["enabled"] is False and k["authorization"]["mode"] == "Webhook"
      and "x509" not in k["authentication"]
      and k["registerWithTaints"] == [{"key": "example.com/gpu", "effect": "NoSchedule"}])
sys.exit(0 if ok else 1)
EOF
check "  ... kubelet-config.yaml: Hull's defaults and the taint, 0644" \
        "python3 $T/kubelet-check.py $R/etc/kubernetes/kubelet-config.yaml && [ \$(stat -c %a $R/etc/kubernetes/kubelet-config.yaml) = 644 ]"
check "  ... /etc/default/kubelet: node IP and labels, 0644" \
        "grep -qx 'KUBELET_EXTRA_ARGS=\"--node-ip=192.0.2.10 --node-labels=example.com/pool=gpu\"' $R/etc/default/kubelet && [ \$(stat -c %a $R/etc/default/kubelet) = 644 ]"
# The unit's $KUBELET_EXTRA_ARGS, split into words as systemd splits an
# unbraced variable (the shell reads this simple file the same way).
check "  ... which splits into the kubelet's two flags" \
        "[ \"\$(. $R/etc/default/kubelet && printf '%s|' \$KUBELET_EXTRA_ARGS)\" = '--node-ip=192.0.2.10|--node-labels=example.com/pool=gpu|' ]"

# No config at all: a name of its own too, and nothing else.
R=$T/unnamed P=$T/unnamed-persist
cp -a "$T/pristine/root" "$R"
mkdir -p "$P"
echo fedcba9876543210fedcba9876543210 >"$R/etc/machine-id"
run --config-device "$OTHER"
check "no config, a machine ID: named after it" \
        "[ $? -eq 0 ] && [ \"\$(cat $R/etc/hostname)\" = hull-fedcba987654 ] && grep -q '^127.0.1.1.hull-fedcba987654$' $R/etc/hosts"
check "  ... recorded as none" "python3 -c 'import json,sys; sys.exit(json.load(open(\"$P/hull/provision/applied.json\"))[\"source\"] != \"none\")'"
check "  ... and nothing else written" "[ ! -e $R/etc/kubernetes ] && [ ! -e $R/etc/default/kubelet ]"

# --- bad configs: exit 1, a message, nothing changed ---
D2=$(newloop precious 64)
mkfs.ext4 -q -L precious "$D2"
echo keep >"$T/precious.txt"
mount "$D2" "$T/m" && cp "$T/precious.txt" "$T/m/" && umount "$T/m"
bad() { # name json message-regex
        R=$T/bad P=$T/bad-persist S=$T/bad-proc-sys
        rm -rf "$R" "$P" "$S"
        cp -a "$T/pristine/root" "$R"
        cp -a "$T/pristine/proc-sys" "$S"
        mkdir -p "$P"
        printf '%s\n' "$2" >"$T/bad.json"
        printf '%s\n' "$3" >"$T/re"
        sync
        local b d
        b=$(snapshot "$T/bad"; snapshot "$T/bad-persist"; snapshot "$T/bad-proc-sys")
        d=$(sha256sum "$D2" | cut -d' ' -f1)
        run --config "$T/bad.json"
        local rc=$?
        sync
        check "$1: exit 1" "[ $rc -eq 1 ]"
        check "$1: console message" "grep -Eqf $T/re $T/err"
        [ $rc -eq 1 ] && grep -Eqf "$T/re" "$T/err" || cat "$T/out" "$T/err"
        check "$1: root, persist and proc_sys byte-identical, no applied.json" \
                "[ \"\$b\" = \"\$(snapshot $T/bad; snapshot $T/bad-persist; snapshot $T/bad-proc-sys)\" ] && [ ! -e $P/hull/provision/applied.json ]"
        check "$1: the disk with data untouched" "[ \$(sha256sum $D2 | cut -d' ' -f1) = $d ]"
}
GOOD='"hostname":"bad","sysctl":{"vm.max_map_count":"1"},"files":[{"path":"/etc/motd","content":"x"}]'
bad "unknown key" "{\"hull_config\":1,$GOOD,\"hostnme\":\"x\"}" \
        '^hull-provision: first boot stopped: the machine config is invalid \(.*bad.json \(--config\)\): .*hostnme'
bad "not JSON" '{"hull_config":1,' '^hull-provision: first boot stopped: the machine config is invalid'
bad "a disk that holds data" \
        "{\"hull_config\":1,$GOOD,\"disks\":[{\"device\":\"$D2\",\"filesystem\":\"ext4\",\"label\":\"data\",\"mount\":\"/var/lib/data\"}]}" \
        'first boot stopped: the machine config cannot be applied .*disks\[0\]: .* holds a "ext4" signature \(label "precious"\); refusing to format it. Set wipe: true to destroy it'
bad "a missing data disk" \
        "{\"hull_config\":1,$GOOD,\"disks\":[{\"device\":\"/dev/hull-test-missing\",\"filesystem\":\"ext4\",\"label\":\"data\",\"mount\":\"/var/lib/data\"}]}" \
        'disks\[0\]: /dev/hull-test-missing does not exist \(waited 1 s for it\)'
bad "a missing unit" "{\"hull_config\":1,$GOOD,\"units\":{\"enable\":[\"nosuch.service\"]}}" \
        'first boot stopped: the machine config cannot be applied .*nosuch.service'
bad "a missing sysctl" "{\"hull_config\":1,\"sysctl\":{\"net.nosuch.key\":\"1\"},\"hostname\":\"bad\"}" \
        'cannot be applied .*sysctl\["net.nosuch.key"\]: no such kernel parameter'
bad "a missing group" "{\"hull_config\":1,$GOOD,\"users\":[{\"name\":\"ops\",\"groups\":[\"wheel\"]}]}" \
        'users\[0\].groups: the group "wheel" does not exist in the image'
bad "a user that is the image's" "{\"hull_config\":1,$GOOD,\"users\":[{\"name\":\"daemon\"}]}" \
        'users\[0\]'
bad "a missing shell" "{\"hull_config\":1,$GOOD,\"users\":[{\"name\":\"ops\",\"shell\":\"/bin/zsh\"}]}" \
        'users\[0\].shell: "/bin/zsh" does not exist in the image'
mv "$T/pristine/root/usr/sbin/sshd" "$T/pristine/sshd"
bad "ssh without sshd in the image" "{\"hull_config\":1,$GOOD,\"ssh\":{\"enabled\":true}}" \
        'ssh.enabled: the image has no /usr/sbin/sshd \(install openssh-server\)'
mv "$T/pristine/sshd" "$T/pristine/root/usr/sbin/sshd"
sed -i '/^hull-admin:/d' "$T/pristine/root/etc/group" "$T/pristine/root/etc/gshadow"
bad "an image without the hull-admin group" "{\"hull_config\":1,$GOOD,\"users\":[{\"name\":\"ops\"}]}" \
        'users: the image has no group hull-admin'
printf 'hull-admin:x:990:\n' >>"$T/pristine/root/etc/group"
printf 'hull-admin:!::\n' >>"$T/pristine/root/etc/gshadow"
ALIAS=/dev/hull-test-alias-$$
ln -s "$D1" "$ALIAS"
bad "one disk twice under two names" \
        "{\"hull_config\":1,$GOOD,\"disks\":[{\"device\":\"$D1\",\"filesystem\":\"ext4\",\"label\":\"data\",\"mount\":\"/var/lib/a\"},{\"device\":\"$ALIAS\",\"filesystem\":\"ext4\",\"label\":\"data2\",\"mount\":\"/var/lib/b\"}]}" \
        'disks\[0\] and disks\[1\] are the same device'
rm -f "$ALIAS"
# The pristine root has no machine ID, and --root no network interfaces.
bad "kubernetes without a hostname, none to be made" '{"hull_config":1,"kubernetes":{"node_ip":"192.0.2.10"}}' \
        'kubernetes: the config names no hostname and none can be made .*: set hostname'

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
