#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Reproducible images (docs/BUILDER.md, "Reproducible images"): one spec
# (erofs root with dm-verity) built twice from scratch, each time with its
# own mmdebstrap run and no cached layer, gives a byte-identical root image
# (file system, hash tree and root hash), the same kernel and initramfs
# payloads and, signed with the same key, the same bundle. Without SOURCE_DATE_EPOCH the build
# dates itself by its newest package, not by the clock. A bad
# SOURCE_DATE_EPOCH is refused before anything is built.
#
# When the images differ, the test mounts both and prints what differs
# (contents, then owners, modes, mtimes and link targets), so a regression
# names the file that brought it.
#
# If Debian's mirror published new package versions between the two builds,
# the images may rightly differ: the test then says so and skips.
#
# CI's time budget: by default the second build takes the first one's
# packages layer from the cache (everything after mmdebstrap runs again:
# customisation, initramfs, seal, mkfs, verity, bundle), which halves the
# run. HULL_TEST_REPRO_FULL=1 runs mmdebstrap twice as well (about 7
# minutes on 2 cores); that is how the release check runs it.
set -uo pipefail
HULL_BUILD=$1
WORK=$2

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
for t in mmdebstrap mkfs.erofs veritysetup losetup; do
        command -v "$t" >/dev/null || { echo "SKIP: $t is missing (scripts/deps.sh)"; exit 77; }
done
rm -rf "$WORK"
mkdir -p "$WORK"
failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
cleanup() {
        for m in "$WORK/mnt1" "$WORK/mnt2"; do mountpoint -q "$m" && umount "$m"; done
        rm -rf "$WORK"
}
trap cleanup EXIT
unset SOURCE_DATE_EPOCH

"$HULL_BUILD" keygen "$WORK/k.key" "$WORK/k.pub" >/dev/null || { echo "keygen failed"; exit 1; }
cat >"$WORK/spec.yaml" <<'EOS'
name: repro
version: 1.0.0
distribution:
  suite: bookworm
  mirror: http://deb.debian.org/debian
rootfs:
  verity: true
# A real firmware package (24 kB, Debian main) for the firmware trimming
# checks below; the rules are part of the spec built twice.
packages: [firmware-linux-free]
kernel:
  firmware:
    allow: [av7110/**]
    deny: [keyspan_pda/**]
EOS

# 1. A SOURCE_DATE_EPOCH that is not a number: refused up front.
if SOURCE_DATE_EPOCH=yesterday "$HULL_BUILD" build "$WORK/spec.yaml" --key "$WORK/k.key" -o "$WORK/out-bad" \
        --no-cache >/dev/null 2>"$WORK/bad.stderr"; then
        fail "bad SOURCE_DATE_EPOCH: the build succeeded"
elif grep -q "SOURCE_DATE_EPOCH='yesterday' is not a number" "$WORK/bad.stderr" && [ ! -e "$WORK/out-bad" ]; then
        pass "bad SOURCE_DATE_EPOCH: $(grep -m1 SOURCE_DATE_EPOCH "$WORK/bad.stderr")"
else
        fail "bad SOURCE_DATE_EPOCH: unexpected outcome:"
        sed 's/^/    /' "$WORK/bad.stderr" | tail -n 5
fi

# 2. Two builds, one after the other: from scratch, and from scratch again
# (HULL_TEST_REPRO_FULL=1) or from the first one's packages layer.
started=$(date +%s)
for i in 1 2; do
        cache=(--no-cache)
        [ -z "${HULL_TEST_REPRO_FULL:-}" ] && cache=(--cache "$WORK/cache")
        if ! "$HULL_BUILD" build "$WORK/spec.yaml" --key "$WORK/k.key" -o "$WORK/out$i" "${cache[@]}" \
                >"$WORK/build$i.stdout" 2>"$WORK/build$i.stderr"; then
                echo "FAIL: build $i failed:"
                tail -n 25 "$WORK/build$i.stderr"
                exit 1
        fi
        "$HULL_BUILD" verify --trust "$WORK/k.pub" "$WORK/out$i/repro-1.0.0.hullb" >"$WORK/verify$i.txt" ||
                { echo "FAIL: bundle $i does not verify"; exit 1; }
done
img1=$WORK/out1/repro-1.0.0.rootfs.erofs
img2=$WORK/out2/repro-1.0.0.rootfs.erofs

mount_image() { # image dir
        mkdir -p "$2"
        mount -o ro,loop -t erofs "$1" "$2"
}

# The package versions must be the same for the comparison to mean anything.
mount_image "$img1" "$WORK/mnt1" && mount_image "$img2" "$WORK/mnt2" || { echo "FAIL: cannot mount the images"; exit 1; }
if ! cmp -s "$WORK/mnt1/usr/share/hull/packages.txt" "$WORK/mnt2/usr/share/hull/packages.txt"; then
        echo "SKIP: the mirror published other package versions between the two builds:"
        diff "$WORK/mnt1/usr/share/hull/packages.txt" "$WORK/mnt2/usr/share/hull/packages.txt" | head -n 10
        exit 77
fi

# 3. The date: the newest package's, the same both times, and not the clock's.
sde() { sed -n 's/.*SOURCE_DATE_EPOCH=\([0-9]*\) .*the newest package.s date.*/\1/p' "$1"; }
e1=$(sde "$WORK/build1.stderr")
e2=$(sde "$WORK/build2.stderr")
created=$(sed -n 's/^  created: //p' "$WORK/verify1.txt")
if [ -z "$e1" ]; then
        fail "SOURCE_DATE_EPOCH: the build did not report the newest package's date"
        grep -m3 SOURCE_DATE "$WORK/build1.stderr"
elif [ "$e1" != "$e2" ]; then
        fail "SOURCE_DATE_EPOCH: $e1 in the first build, $e2 in the second"
elif [ "$e1" -ge "$started" ]; then
        fail "SOURCE_DATE_EPOCH: $e1 is not before the build started ($started): the clock, not a package"
elif [ "$created" != "$(date -u -d "@$e1" +%Y-%m-%dT%H:%M:%SZ)" ]; then
        fail "SOURCE_DATE_EPOCH: the manifest says created $created, not the date $e1"
else
        pass "SOURCE_DATE_EPOCH=$e1 ($created) in both builds, from the packages"
fi
if [ -n "$e1" ]; then
        if [ "$(stat -c %Y "$WORK/mnt1/etc/machine-id")" = "$e1" ] && [ "$(stat -c %Y "$WORK/mnt1/usr/lib/os-release")" = "$e1" ]; then
                pass "files the build made carry that date"
        else
                fail "files the build made do not carry the date $e1: $(stat -c '%n %Y' "$WORK/mnt1/etc/machine-id" "$WORK/mnt1/usr/lib/os-release")"
        fi
        newer=$(find "$WORK/mnt1" -xdev -newermt "@$e1" | head -n 5)
        [ -z "$newer" ] && pass "no file in the image is newer than that date" ||
                fail "files newer than SOURCE_DATE_EPOCH: $newer"
        # Users that mmdebstrap's maintainer scripts created today: their
        # password-change day is clamped to the date's day.
        day=$((e1 / 86400))
        days=$(awk -F: '$3 ~ /^[0-9]+$/ && $3 != 0 {print $3}' "$WORK/mnt1/etc/shadow" | sort -un | tr '\n' ' ')
        max=$(echo $days | tr ' ' '\n' | sort -n | tail -n 1)
        if [ -n "$max" ] && [ "$max" -le "$day" ]; then
                pass "/etc/shadow password-change days ($days) are not after day $day"
        else
                fail "/etc/shadow has password-change days ($days) after day $day of SOURCE_DATE_EPOCH"
        fi
fi

# 4. The root image, byte for byte (file system, verity tree), and the root hash.
if cmp -s "$img1" "$img2"; then
        pass "root images are byte-identical ($(stat -c %s "$img1") bytes, erofs with dm-verity)"
else
        fail "root images differ: $(cmp "$img1" "$img2" | head -n 1); what differs inside:"
        diff -r --no-dereference "$WORK/mnt1" "$WORK/mnt2" 2>&1 | sed "s|$WORK/mnt1|A|g; s|$WORK/mnt2|B|g" | head -n 30
        for i in 1 2; do
                (cd "$WORK/mnt$i" && find . -printf '%p %y %m %U:%G %s %T@ %l\n' | LC_ALL=C sort) >"$WORK/meta$i.txt"
        done
        echo "  metadata (path type mode owner size mtime target), first build < second >:"
        diff "$WORK/meta1.txt" "$WORK/meta2.txt" | grep '^[<>]' | head -n 30
        echo "  superblocks:"
        diff <(dump.erofs -s "$img1" 2>&1) <(dump.erofs -s "$img2" 2>&1) | head -n 10
fi
roothash() { sed -n 's/.*"verity_root_hash": "\([0-9a-f]*\)".*/\1/p' "$1"; }
h1=$(roothash "$WORK/out1/repro-1.0.0.json")
h2=$(roothash "$WORK/out2/repro-1.0.0.json")
if [ -n "$h1" ] && [ "$h1" = "$h2" ]; then
        pass "dm-verity root hash is the same: $h1"
else
        fail "dm-verity root hashes: '$h1' and '$h2'"
fi

# 5. The bundles: every payload has the same digest, and as the manifest is
# the same and Ed25519 signatures are deterministic, the signed bundles are
# the same file.
payloads() { grep '^  payload ' "$1"; }
if [ "$(payloads "$WORK/verify1.txt" | wc -l)" -eq 4 ] && diff <(payloads "$WORK/verify1.txt") <(payloads "$WORK/verify2.txt") >/dev/null; then
        pass "bundle payload digests are identical (rootfs, kernel, initrd, chunk-index)"
else
        fail "bundle payloads differ:"
        diff <(payloads "$WORK/verify1.txt") <(payloads "$WORK/verify2.txt")
fi
if cmp -s "$WORK/out1/repro-1.0.0.hullb" "$WORK/out2/repro-1.0.0.hullb"; then
        pass "signed bundles are byte-identical"
else
        fail "signed bundles differ: $(cmp "$WORK/out1/repro-1.0.0.hullb" "$WORK/out2/repro-1.0.0.hullb" | head -n 1)"
fi

# 6. Firmware trimming (docs/SPEC.md, "Firmware") on the files of Debian's
# firmware-linux-free and the modules that name them (modinfo firmware=):
# a file only dropped modules name goes (carl9170: wireless, usbdux: comedi,
# both outside the server profile), a file a kept module names stays (isci,
# a SAS HBA), a file no module names stays (dsp56k, an m68k DSP), allow
# keeps a file of a dropped module (av7110, DVB), deny drops a file of a
# kept one (keyspan_pda, USB serial). The report and the facts agree.
report=$WORK/out1/repro-1.0.0.modules.txt
fw=$WORK/mnt1/usr/lib/firmware
fw_dropped() { # FILE RULE: FILE is gone from the image, and the report gives that rule
        local entry
        entry=$(grep -F -- "$1" "$report" | head -n 1)
        if [ -e "$fw/$1" ]; then
                fail "firmware: $1 is still in the image"
        elif [ -z "$entry" ]; then
                fail "firmware: $1 is not in the report"
        elif [[ "$entry" == *"$2"* ]]; then
                pass "firmware: $1 dropped ($(cut -f3 <<<"$entry"))"
        else
                fail "firmware: $1 dropped for another reason: $entry"
        fi
}
fw_kept() { # FILE WHY
        if [ -f "$fw/$1" ] && ! grep -qF -- "$1" "$report"; then
                pass "firmware: $1 kept ($2)"
        else
                fail "firmware: $1 should stay ($2): $(ls "$fw/$1" 2>&1); report: $(grep -F -- "$1" "$report")"
        fi
}
if [ ! -f "$report" ] || [ ! -d "$fw" ]; then
        fail "firmware: no report ($report) or no $fw in the image"
else
        fw_dropped carl9170-1.fw "only for dropped modules: carl9170"
        fw_dropped usbdux_firmware.bin "only for dropped modules: usbdux"
        fw_dropped keyspan_pda/keyspan_pda.fw "deny keyspan_pda/**"
        fw_kept isci/isci_firmware.bin "for the kept isci module"
        fw_kept dsp56k/bootstrap.bin "no module names it"
        fw_kept av7110/bootcode.bin "firmware.allow"
        n_report=$(grep -c 'lib/firmware/' "$report")
        n_facts=$(sed -n 's/.*"firmware_dropped": \([0-9]*\).*/\1/p' "$WORK/out1/repro-1.0.0.json")
        if [ -n "$n_facts" ] && [ "$n_facts" = "$n_report" ] && [ "$n_facts" -ge 3 ]; then
                pass "firmware: the facts and the report both count $n_facts dropped files"
        else
                fail "firmware: the facts say '$n_facts' dropped, the report lists $n_report"
        fi
        line=$(grep -m1 'firmware: dropped' "$WORK/build1.stderr" "$WORK/build1.stdout" | cut -d: -f2-)
        [ -n "$line" ] && pass "the build reports it:$line" || fail "the build printed no firmware line"
fi

echo "build-reproducible: $failures failure(s) ($(($(date +%s) - started)) s for the two builds and the checks)"
[ $failures -eq 0 ]
