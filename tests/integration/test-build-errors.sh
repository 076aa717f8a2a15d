#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Bad input to hull-build gets a clear error, names the stage, and leaves no
# image behind. Needs root and Debian's archive (shares the bootstrap cache
# with the other image builds).
set -uo pipefail
HULL_BUILD=$1
SRC=$2
WORK=$3

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
rm -rf "$WORK"
mkdir -p "$WORK"
failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

"$HULL_BUILD" keygen "$WORK/k.key" "$WORK/k.pub" >/dev/null || { echo "keygen failed"; exit 1; }

# expect_failure NAME SPEC NEEDLE...: the build fails, stderr has every needle,
# and the output directory holds no disk image, bundle or root image.
expect_failure() {
        local name=$1 spec=$2
        shift 2
        local out="$WORK/out-$name"
        "$HULL_BUILD" build "$spec" --key "$WORK/k.key" -o "$out" >"$WORK/$name.stdout" 2>"$WORK/$name.stderr"
        local rc=$?
        if [ $rc -eq 0 ]; then
                fail "$name: the build succeeded"
                return
        fi
        for needle in "$@"; do
                if ! grep -qF -- "$needle" "$WORK/$name.stderr"; then
                        fail "$name: stderr lacks '$needle':"
                        sed 's/^/    /' "$WORK/$name.stderr" | tail -n 20
                        return
                fi
        done
        if ls "$out"/*.img "$out"/*.hullb "$out"/*.rootfs.* 2>/dev/null | grep -q .; then
                fail "$name: a partial image was left behind: $(ls "$out")"
                return
        fi
        pass "$name: $(grep -m1 'hull-build:' "$WORK/$name.stderr")"
}

base() {
        cat <<'EOS'
name: errtest
version: 1.0.0
distribution:
  suite: bookworm
  mirror: http://deb.debian.org/debian
EOS
}

# 1. Malformed specs: rejected before anything is built, with file:line:column.
printf 'name: errtest\nversion: 1.0.0\ndistribution: {suite: bookworm}\npakages: [vim]\n' >"$WORK/typo.yaml"
expect_failure typo "$WORK/typo.yaml" "typo.yaml:4:1" "unknown key 'pakages'"
printf 'name: errtest\nversion: [1\n' >"$WORK/syntax.yaml"
expect_failure syntax "$WORK/syntax.yaml" "syntax.yaml" "line"
{ base; printf 'partitions:\n  root: lots\n'; } >"$WORK/size.yaml"
expect_failure bad-size "$WORK/size.yaml" "size.yaml:7" "partitions.root" "512M or 2G"
expect_failure missing-spec "$WORK/nonexistent.yaml" "Cannot read spec" "No such file"

# 2. Missing signing key: refused up front.
if "$HULL_BUILD" build "$WORK/typo.yaml" -o "$WORK/out-nokey" 2>"$WORK/nokey.stderr"; then
        fail "no key: build succeeded"
elif grep -q "typo.yaml:4:1" "$WORK/nokey.stderr"; then
        pass "no key: spec errors are still reported first"
else
        fail "no key: unexpected message: $(cat "$WORK/nokey.stderr")"
fi
{ base; } >"$WORK/ok.yaml"
if "$HULL_BUILD" build "$WORK/ok.yaml" -o "$WORK/out-nokey" 2>"$WORK/nokey2.stderr"; then
        fail "no key: build succeeded"
elif grep -q "No signing key" "$WORK/nokey2.stderr"; then
        pass "no key: $(cat "$WORK/nokey2.stderr")"
else
        fail "no key: unexpected message: $(cat "$WORK/nokey2.stderr")"
fi

# 3. An unknown package: the packages stage fails and says which stage.
{ base; printf 'packages: [containerd, hull-no-such-package]\n'; } >"$WORK/unknown-pkg.yaml"
expect_failure unknown-package "$WORK/unknown-pkg.yaml" "stage 'packages' failed" "apt-get could not install" \
        "Unable to locate package hull-no-such-package"

# 4. A file source that does not exist.
{ base; printf 'files:\n  - {source: no-such-file, path: /etc/x}\n'; } >"$WORK/nofile.yaml"
expect_failure missing-file "$WORK/nofile.yaml" "stage 'customise' failed" "no-such-file"

# 5. A failing hook: its name and exit status.
mkdir -p "$WORK/hooks"
printf '#!/bin/sh\nexit 3\n' >"$WORK/hooks/bad.sh"
chmod +x "$WORK/hooks/bad.sh"
{ base; printf 'hooks:\n  pre-seal: [hooks/bad.sh]\n'; } >"$WORK/hook.yaml"
expect_failure failing-hook "$WORK/hook.yaml" "pre-seal hook 'hooks/bad.sh' failed with exit status 3" "stage 'seal' failed"

# 6. Root partition too small for the root file system.
{ base; printf 'partitions:\n  root: 64M\n'; } >"$WORK/small.yaml"
expect_failure root-too-small "$WORK/small.yaml" "partitions.root is only 64.0 MiB" "raise partitions.root"
{ base; printf 'rootfs: {type: ext4}\npartitions:\n  root: 64M\n'; } >"$WORK/small4.yaml"
expect_failure root-too-small-ext4 "$WORK/small4.yaml" "partitions.root is 64.0 MiB" "raise partitions.root"

# 7. No package date to derive SOURCE_DATE_EPOCH from (a hook removed every
# /usr/share/doc/*/copyright): the build says so and how to go on.
printf '#!/bin/sh\nrm -rf /usr/share/doc\n' >"$WORK/hooks/nodocs.sh"
chmod +x "$WORK/hooks/nodocs.sh"
{ base; printf 'hooks:\n  post-bootstrap: [hooks/nodocs.sh]\n'; } >"$WORK/nodocs.yaml"
unset SOURCE_DATE_EPOCH
expect_failure no-package-date "$WORK/nodocs.yaml" "stage 'customise' failed" "Cannot date the packages" \
        "set SOURCE_DATE_EPOCH"

# 8. Kernel module trimming: a malformed glob is a spec error; a deny glob
# that takes a module Hull needs fails the seal stage, naming the glob.
{ base; printf 'kernel:\n  modules:\n    deny: [fs/a/**, /fs/b]\n'; } >"$WORK/modglob.yaml"
expect_failure module-glob "$WORK/modglob.yaml" "modglob.yaml:8" 'kernel.modules.deny[1]: "/fs/b" must be relative'
{ base; printf 'kernel:\n  modules:\n    deny: [fs/btrfs/**, fs/jbd2/**]\n'; } >"$WORK/modreq.yaml"
expect_failure module-required "$WORK/modreq.yaml" "stage 'seal' failed" \
        "kernel.modules.deny[1]: 'fs/jbd2/**' matches kernel/fs/jbd2/jbd2.ko, which the image needs (needed by ext4"

rm -rf "$WORK"
echo "build-errors: $failures failure(s)"
[ $failures -eq 0 ]
