#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Spec 'repositories:' against real signed apt repositories that this test
# makes (a throwaway OpenPGP key, apt-ftparchive, a tiny .deb) and serves on
# loopback: the happy path (packages from an http and a file: repository, no
# trace of the repositories left in the tree or the cached layer) and the
# failures (wrong key, unsigned, unreachable, missing key file), each naming
# the repository and leaving neither image nor cached layer.
#
# Needs root and Debian's archive. It reuses the shared bootstrap cache
# (/var/cache/hull-build) read-only through symlinks and keeps its package
# layers private; a bootstrap it had to make is handed to the shared cache.
set -uo pipefail
HULL_BUILD=$1
WORK=$2
SHARED_CACHE=${HULL_TEST_CACHE:-/var/cache/hull-build}

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
for t in gpg gpgconf apt-ftparchive dpkg-deb python3; do
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
        # Give a bootstrap this test made to the shared cache.
        for f in "$WORK"/cache/bootstrap-*.tar; do
                [ -f "$f" ] && [ ! -L "$f" ] && [ ! -e "$SHARED_CACHE/${f##*/}" ] && mkdir -p "$SHARED_CACHE" &&
                        mv "$f" "$SHARED_CACHE/"
        done
        rm -rf "$WORK"
}
trap cleanup EXIT

# --- the repositories ----------------------------------------------------
export GNUPGHOME="$WORK/gnupg"
mkdir -m 700 "$GNUPGHOME"
for k in good other; do
        gpg --batch -q --pinentry-mode loopback --passphrase '' --quick-gen-key "Hull test $k <$k@hull.invalid>" \
                ed25519 sign never || { echo "gpg key generation failed"; exit 1; }
        gpg --batch -q --armor --export "$k@hull.invalid" >"$WORK/$k.asc"
done
mkdir -p "$WORK/keys"
gpg --batch -q --export good@hull.invalid >"$WORK/keys/good.gpg"

# make_repo DIR PACKAGE SIGN: a flat repository holding one package.
make_repo() {
        local dir=$WORK/www/$1 pkg=$2 sign=$3
        mkdir -p "$dir" "$WORK/pkg-$pkg/DEBIAN" "$WORK/pkg-$pkg/usr/share/$pkg"
        printf 'Package: %s\nVersion: 1.0\nArchitecture: all\nMaintainer: Hull <hull@hull.invalid>\nDescription: test\n' \
                "$pkg" >"$WORK/pkg-$pkg/DEBIAN/control"
        echo "from $1" >"$WORK/pkg-$pkg/usr/share/$pkg/hello"
        dpkg-deb --root-owner-group --build "$WORK/pkg-$pkg" "$dir/${pkg}_1.0_all.deb" >/dev/null || exit 1
        (cd "$dir" && apt-ftparchive packages . >Packages && apt-ftparchive release . >../Release.tmp &&
                mv ../Release.tmp Release) || exit 1
        if [ "$sign" = sign ]; then
                gpg --batch -q -u good@hull.invalid --clearsign -o "$dir/InRelease" "$dir/Release" &&
                        gpg --batch -q -u good@hull.invalid -abs -o "$dir/Release.gpg" "$dir/Release" || exit 1
        fi
}
make_repo signed hull-repo-test sign
make_repo local hull-repo-local sign
make_repo unsigned hull-repo-unsigned nosign
chmod -R a+rX "$WORK"

python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$WORK/www" >"$WORK/http.log" 2>&1 &
server=$!
port=
for _ in $(seq 50); do
        port=$(sed -n 's/.* port \([0-9]*\) .*/\1/p' "$WORK/http.log" | head -n1)
        [ -n "$port" ] && break
        sleep 0.1
done
[ -n "$port" ] || { echo "the HTTP server did not start: $(cat "$WORK/http.log")"; exit 1; }
# A port nobody listens on: bound once, then closed.
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# --- the cache: shared bootstrap layers, private package layers ------------
mkdir -p "$WORK/cache"
for f in "$SHARED_CACHE"/bootstrap-*.tar; do
        [ -f "$f" ] && ln -s "$f" "$WORK/cache/"
done
layers() { find "$WORK/cache" -name 'packages-*.tar' | wc -l; }

"$HULL_BUILD" keygen "$WORK/k.key" "$WORK/k.pub" >/dev/null || { echo "keygen failed"; exit 1; }

spec() { # spec NAME PACKAGES REPOSITORY-YAML
        cat >"$WORK/$1.yaml" <<EOS
name: repotest
version: 1.0.0
distribution:
  suite: bookworm
  mirror: http://deb.debian.org/debian
packages: [$2]
repositories:
$3
EOS
}
signed_repo() { # signed_repo KEYFILE
        printf '  - name: signed\n    uris: [http://127.0.0.1:%s/signed/]\n    suites: ["/"]\n    signed_by: %s\n    pin: 600\n' \
                "$port" "$1"
}

# --- happy path --------------------------------------------------------
spec ok "hull-repo-test, hull-repo-local" "$(signed_repo good.asc)
  - name: local
    uris: ['file://$WORK/www/local']
    suites: [./]
    signed_by: keys/good.gpg"
run_ok() {
        "$HULL_BUILD" build "$WORK/ok.yaml" --key "$WORK/k.key" -o "$WORK/out-ok" --cache "$WORK/cache" \
                --stop-after packages >"$WORK/ok.stdout" 2>"$WORK/ok.stderr"
}
if ! run_ok; then
        fail "happy path: the build failed:"
        tail -n 30 "$WORK/ok.stderr" | sed 's/^/    /'
        [ -f "$WORK/out-ok/build.log" ] && tail -n 30 "$WORK/out-ok/build.log" | sed 's/^/    /'
else
        root=$(sed -n "s/.*the tree is in \(.*\)$/\1/p" "$WORK/ok.stderr")
        if [ ! -d "$root" ]; then
                fail "happy path: no tree reported: $(tail -n 3 "$WORK/ok.stderr")"
        elif ! grep -qx "from signed" "$root/usr/share/hull-repo-test/hello" 2>/dev/null ||
                ! grep -qx "from local" "$root/usr/share/hull-repo-local/hello" 2>/dev/null; then
                fail "happy path: the packages of the repositories are not installed"
        elif left=$(ls -d "$root"/etc/apt/sources.list.d/hull-* "$root"/etc/apt/keyrings/hull-* \
                        "$root"/etc/apt/preferences.d/hull-* "$root"/run/hull-repositories 2>/dev/null); [ -n "$left" ]; then
                fail "happy path: repository files left in the tree: $left"
        else
                pass "happy path: hull-repo-test (http, armored key, pin) and hull-repo-local (file:, binary key) installed, no repository files left"
        fi
        if grep -q "^Get:.*127.0.0.1:$port/signed.*InRelease" "$WORK/out-ok/build.log" &&
                grep -q "^Get:.*file:/run/hull-repositories/local-0.*InRelease" "$WORK/out-ok/build.log"; then
                pass "happy path: apt fetched both repositories' signed InRelease"
        else
                fail "happy path: the build log does not show both repositories' InRelease fetched"
        fi
        if [ "$(layers)" -ne 1 ]; then
                fail "happy path: expected one cached packages layer, found $(layers)"
        elif tar -tf "$WORK"/cache/packages-*.tar | grep -E 'hull-(signed|local)|run/hull-repositories'; then
                fail "happy path: the cached layer holds repository files"
        else
                pass "happy path: the cached layer holds no repository files"
        fi
        rm -rf "$WORK/out-ok"
        if run_ok && grep -q "reusing cached base and packages layer" "$WORK/ok.stderr"; then
                pass "happy path: an unchanged spec reuses the layer"
        else
                fail "happy path: the second build did not reuse the layer: $(tail -n 5 "$WORK/ok.stderr")"
        fi
        rm -rf "$WORK/out-ok"
fi

# --- failures ----------------------------------------------------------
# expect_failure NAME NEEDLE...: the build fails, stderr has every needle, no
# image is written and no packages layer is cached.
expect_failure() {
        local name=$1 out="$WORK/out-$1" before
        shift
        before=$(layers)
        if "$HULL_BUILD" build "$WORK/$name.yaml" --key "$WORK/k.key" -o "$out" --cache "$WORK/cache" \
                >"$WORK/$name.stdout" 2>"$WORK/$name.stderr"; then
                fail "$name: the build succeeded"
                return
        fi
        for needle in "$@"; do
                if ! grep -qF -- "$needle" "$WORK/$name.stderr"; then
                        fail "$name: stderr lacks '$needle':"
                        tail -n 20 "$WORK/$name.stderr" | sed 's/^/    /'
                        return
                fi
        done
        if ls "$out"/*.img "$out"/*.hullb "$out"/*.rootfs.* 2>/dev/null | grep -q .; then
                fail "$name: an image was left behind: $(ls "$out")"
        elif [ "$(layers)" -ne "$before" ]; then
                fail "$name: a packages layer was cached"
        else
                pass "$name: $(grep -m1 "Repository '\|repository '" "$WORK/$name.stderr")"
        fi
        rm -rf "$out"
}

# The same repository entry as the happy path with another key: the layer
# cached above must not be reused (the key is part of its cache key).
spec wrong-key hull-repo-test "$(signed_repo other.asc)"
expect_failure wrong-key "stage 'packages' failed" "Repository 'signed'" "NO_PUBKEY"

spec unsigned hull-repo-unsigned "  - name: unsigned
    uris: [http://127.0.0.1:$port/unsigned/]
    suites: [/]
    signed_by: good.asc"
expect_failure unsigned "stage 'packages' failed" "Repository 'unsigned'" "is not signed"

spec unreachable hull-repo-test "  - name: down
    uris: [http://127.0.0.1:$closed/]
    suites: [/]
    signed_by: good.asc"
expect_failure unreachable "stage 'packages' failed" "Repository 'down'" "Connection refused"

# A missing key file is found when the spec is loaded, before any stage.
spec missing-key hull-repo-test "$(signed_repo keys/missing.asc)"
expect_failure missing-key "missing-key.yaml:11:16" "repository 'signed': cannot read key file" "No such file"

echo "build-repos: $failures failure(s)"
[ $failures -eq 0 ]
