#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The three ways a Kubernetes node image gets its kubelet (docs/KUBERNETES.md),
# built up to the end of the customise stage (the first also through seal,
# where the versions are recorded) and checked in the tree:
#   - a binary pinned by SHA-256 (kubernetes.kubelet.file),
#   - a package file pinned by SHA-256 (kubernetes.kubelet.deb), shaped like
#     the Kubernetes project's package (its own kubelet.service and kubeadm's
#     drop-in, which Hull's unit replaces),
#   - the package from a signed apt repository made here and served on
#     loopback, the way pkgs.k8s.io serves it (repositories: + packages).
# Each time: /usr/bin/kubelet is that kubelet, kubelet.service is Hull's, the
# kubeadm drop-in is gone, and the image records the kubelet's version
# (components.json, from `kubelet --version`). And the refusals: a file whose
# digest is not the pinned one, a file that is not an executable.
#
# No real kubelet can be downloaded here: the kubelet is a static program
# that answers --version like the real one (Kubernetes vX.Y.Z).
set -uo pipefail
HULL_BUILD=$1
WORK=$2
SHARED_CACHE=${HULL_TEST_CACHE:-/var/cache/hull-build}

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
for t in gpg gpgconf apt-ftparchive dpkg-deb python3 gcc; do
        command -v "$t" >/dev/null || { echo "SKIP: $t is missing (scripts/deps.sh)"; exit 77; }
done
rm -rf "$WORK"
mkdir -p "$WORK"
failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
server=
cleanup() {
        [ -n "$server" ] && kill "$server" 2>/dev/null
        [ -n "${GNUPGHOME:-}" ] && gpgconf --kill gpg-agent 2>/dev/null
        rm -rf "$WORK"
}
trap cleanup EXIT

# kubelet VERSION OUT: a static program that prints what kubelet --version does.
kubelet() {
        printf '#include <stdio.h>\n#include <string.h>\nint main(int c, char **v) {\n if (c > 1 && !strcmp(v[1], "--version")) { puts("Kubernetes %s"); return 0; }\n fputs("not a real kubelet\\n", stderr); return 1;\n}\n' \
                "$1" >"$WORK/kubelet.c"
        gcc -static -O2 -o "$2" "$WORK/kubelet.c" || exit 1
}
# kubelet_deb VERSION DEB: shaped like pkgs.k8s.io's kubelet package.
kubelet_deb() {
        local v=$1 d=$WORK/deb-$1
        mkdir -p "$d/DEBIAN" "$d/usr/bin" "$d/lib/systemd/system/kubelet.service.d"
        kubelet "v$v" "$d/usr/bin/kubelet"
        printf 'Package: kubelet\nVersion: %s-1.1\nArchitecture: amd64\nMaintainer: Hull test <t@hull.invalid>\nDescription: test kubelet\n' \
                "$v" >"$d/DEBIAN/control"
        printf '[Unit]\nDescription=the package'"'"'s kubelet unit\n[Service]\nExecStart=/usr/bin/kubelet\n' \
                >"$d/lib/systemd/system/kubelet.service"
        printf '[Service]\nEnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\n' \
                >"$d/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"
        dpkg-deb --root-owner-group --build "$d" "$2" >/dev/null || exit 1
}

"$HULL_BUILD" keygen "$WORK/k.key" "$WORK/k.pub" >/dev/null || { echo "keygen failed"; exit 1; }
# The file variant's packages layer is an ordinary Kubernetes node's (the
# same packages as e2e-k8s-node): it may come from and go to the shared
# cache. The others get a private cache that borrows the bootstrap layers.
mkdir -p "$WORK/cache" "$SHARED_CACHE"
for f in "$SHARED_CACHE"/bootstrap-*.tar; do
        [ -f "$f" ] && ln -s "$f" "$WORK/cache/"
done

spec() { # spec NAME KUBERNETES-YAML [MORE-YAML]
        cat >"$WORK/$1.yaml" <<EOS
name: kubelettest
version: 1.0.0
distribution:
  suite: bookworm
packages: [iptables, conntrack, ethtool, socat${4:-}]
kubernetes:
$2
${3:-}
EOS
}

# check_tree NAME VERSION [seal]: the tree of a build that stopped after
# customise (or seal, where the version is recorded).
check_tree() {
        local name=$1 v=$2 stage=${3:-customise} root
        root=$(sed -n "s/.*the tree is in \(.*\)$/\1/p" "$WORK/$name.stderr")
        if [ ! -d "$root" ]; then
                fail "$name: no tree reported: $(tail -n 3 "$WORK/$name.stderr")"
                return
        fi
        local got
        got=$(chroot "$root" /usr/bin/kubelet --version 2>&1)
        [ "$got" = "Kubernetes v$v" ] && pass "$name: /usr/bin/kubelet is the kubelet v$v" ||
                fail "$name: /usr/bin/kubelet --version says '$got'"
        if grep -q "^# Hull (hull-build)" "$root/usr/lib/systemd/system/kubelet.service" &&
                grep -q -- "--config=/etc/kubernetes/kubelet-config.yaml" "$root/usr/lib/systemd/system/kubelet.service"; then
                pass "$name: kubelet.service is Hull's (kubeadm's file layout)"
        else
                fail "$name: kubelet.service is not Hull's: $(head -n 3 "$root/usr/lib/systemd/system/kubelet.service")"
        fi
        [ ! -e "$root/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf" ] &&
                pass "$name: no kubeadm drop-in" || fail "$name: kubeadm's drop-in is still there"
        [ -L "$root/etc/systemd/system/multi-user.target.wants/kubelet.service" ] &&
                pass "$name: kubelet.service is enabled" || fail "$name: kubelet.service is not enabled"
        if [ "$stage" != seal ]; then
                :
        elif python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); sys.exit(0 if c.get("kubelet")==sys.argv[2] else 1)' \
                "$root/usr/lib/hull/components.json" "v$v" 2>/dev/null; then
                pass "$name: the image records kubelet v$v (components.json)"
        else
                fail "$name: components.json: $(cat "$root/usr/lib/hull/components.json" 2>&1)"
        fi
        [ -x "$root/usr/lib/hull/health.d/60-kubelet" ] && pass "$name: the kubelet health check is installed" ||
                fail "$name: no kubelet health check"
        rm -rf "$WORK/out-$name"
}

build() { # build NAME CACHE STAGE
        "$HULL_BUILD" build "$WORK/$1.yaml" --key "$WORK/k.key" -o "$WORK/out-$1" --cache "$2" --stop-after "$3" \
                >"$WORK/$1.stdout" 2>"$WORK/$1.stderr"
}

# --- a binary ----------------------------------------------------------
kubelet v1.32.0 "$WORK/kubelet"
sum=$(sha256sum "$WORK/kubelet" | cut -d' ' -f1)
spec file "  kubelet: {file: kubelet, sha256: $sum}"
if build file "$SHARED_CACHE" seal; then
        check_tree file 1.32.0 seal
else
        fail "file: the build failed: $(tail -n 20 "$WORK/file.stderr")"
fi

# --- a package file ----------------------------------------------------
kubelet_deb 1.31.4 "$WORK/kubelet_1.31.4-1.1_amd64.deb"
sum=$(sha256sum "$WORK/kubelet_1.31.4-1.1_amd64.deb" | cut -d' ' -f1)
spec deb "  kubelet: {deb: kubelet_1.31.4-1.1_amd64.deb, sha256: $sum}"
if build deb "$WORK/cache" customise; then
        check_tree deb 1.31.4
else
        fail "deb: the build failed: $(tail -n 20 "$WORK/deb.stderr")"
fi

# --- from a signed apt repository ----------------------------------------
export GNUPGHOME="$WORK/gnupg"
mkdir -m 700 "$GNUPGHOME"
gpg --batch -q --pinentry-mode loopback --passphrase '' --quick-gen-key "Hull test <k8s@hull.invalid>" ed25519 sign never ||
        { echo "gpg key generation failed"; exit 1; }
gpg --batch -q --armor --export k8s@hull.invalid >"$WORK/Release.key"
mkdir -p "$WORK/www/core/stable/v1.30/deb"
repo=$WORK/www/core/stable/v1.30/deb
kubelet_deb 1.30.2 "$repo/kubelet_1.30.2-1.1_amd64.deb"
(cd "$repo" && apt-ftparchive packages . >Packages && apt-ftparchive release . >../Release.tmp && mv ../Release.tmp Release &&
        gpg --batch -q -u k8s@hull.invalid --clearsign -o InRelease Release) || { echo "repository failed"; exit 1; }
chmod -R a+rX "$WORK"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$WORK/www" >"$WORK/http.log" 2>&1 &
server=$!
port=
for _ in $(seq 50); do
        port=$(sed -n 's/.* port \([0-9]*\) .*/\1/p' "$WORK/http.log" | head -n1)
        [ -n "$port" ] && break
        sleep 0.1
done
[ -n "$port" ] || { echo "the HTTP server did not start"; exit 1; }
spec apt "  sandbox_image: registry.k8s.io/pause:3.10" "repositories:
  - name: kubernetes
    uris: [http://127.0.0.1:$port/core/stable/v1.30/deb/]
    suites: [/]
    signed_by: Release.key" ", kubelet"
if build apt "$WORK/cache" customise; then
        root=$(sed -n "s/.*the tree is in \(.*\)$/\1/p" "$WORK/apt.stderr")
        grep -q "^ii  kubelet  *1.30.2-1.1 " <(chroot "$root" dpkg -l kubelet 2>/dev/null) &&
                pass "apt: kubelet 1.30.2-1.1 came from the repository" ||
                fail "apt: dpkg does not list kubelet 1.30.2-1.1: $(chroot "$root" dpkg -l kubelet 2>&1 | tail -n 1)"
        check_tree apt 1.30.2
else
        fail "apt: the build failed: $(tail -n 20 "$WORK/apt.stderr")"
fi

# --- refusals: before anything is built ------------------------------------
expect_failure() { # expect_failure NAME NEEDLE...
        local name=$1
        shift
        if "$HULL_BUILD" build "$WORK/$name.yaml" --key "$WORK/k.key" -o "$WORK/out-$name" --cache "$WORK/cache" \
                >"$WORK/$name.stdout" 2>"$WORK/$name.stderr"; then
                fail "$name: the build succeeded"
                return
        fi
        for needle in "$@"; do
                grep -qF -- "$needle" "$WORK/$name.stderr" || {
                        fail "$name: stderr lacks '$needle': $(tail -n 5 "$WORK/$name.stderr")"
                        return
                }
        done
        if ls "$WORK/out-$name"/*.img "$WORK/out-$name"/*.hullb 2>/dev/null | grep -q . ||
                ls -d "$WORK/out-$name"/.work-* 2>/dev/null | grep -q .; then
                fail "$name: something was left behind: $(ls -A "$WORK/out-$name")"
        else
                pass "$name: $(grep -m1 "kubernetes.kubelet" "$WORK/$name.stderr")"
        fi
}
spec wrong-sum "  kubelet: {deb: kubelet_1.31.4-1.1_amd64.deb, sha256: $(printf '0%.0s' $(seq 64))}"
expect_failure wrong-sum "kubernetes.kubelet.deb" "has SHA-256 $sum" "but the spec pins 0000" "stage 'setup' failed; nothing was built"
printf '#!/bin/sh\necho Kubernetes v1.32.0\n' >"$WORK/kubelet.sh"
spec not-elf "  kubelet: {file: kubelet.sh, sha256: $(sha256sum "$WORK/kubelet.sh" | cut -d' ' -f1)}"
expect_failure not-elf "kubernetes.kubelet.file" "is not a kubelet binary"

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
