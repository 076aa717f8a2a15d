#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Staging, activation, mark-good, rollback and fallback with the update
# library on a real GPT disk on a loop device (FAT ESP with a GRUB
# environment, two root slots, ext4 persist): every refusal changes nothing,
# every failure after the first write leaves the inactive slot bad and the
# running slot's boot entry untouched, and SIGKILL at random points never
# leaves anything GRUB would boot into half-written.
set -uo pipefail
TOOL=$1 MAKE_DISK=$2 HULL_BUILD=$3
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
losetup -f >/dev/null 2>&1 || { echo "SKIP: no loop devices"; exit 77; }
command -v grub-editenv >/dev/null || { echo "SKIP: grub-editenv missing"; exit 77; }

T=$(mktemp -d /var/tmp/hull-test-update.XXXXXX)
LOOP=""
cleanup() {
        umount "$T/esp" 2>/dev/null
        [ -n "$LOOP" ] && losetup -d "$LOOP"
        rm -rf "$T"
}
trap cleanup EXIT
failures=0
check() { if eval "$2"; then echo "PASS: $1"; else echo "FAIL: $1"; failures=$((failures + 1)); fi; }

"$MAKE_DISK" "$T/disk.img" 64 64 32 >/dev/null || { echo "FAIL: make-disk"; exit 1; }
LOOP=$(losetup -f --show -P "$T/disk.img")
udevadm settle 2>/dev/null || true
[ -e "${LOOP}p4" ] || partx -a "$LOOP" 2>/dev/null || true
ESP=${LOOP}p1 A=${LOOP}p2 B=${LOOP}p3 PERSIST=${LOOP}p4
for p in "$ESP" "$A" "$B" "$PERSIST"; do [ -b "$p" ] || { echo "FAIL: no partition device $p"; exit 1; }; done
mkfs.vfat -F 32 -n HULL-ESP "$ESP" >/dev/null
mkfs.ext4 -q -L hull-persist "$PERSIST"
mkdir -p "$T/esp" "$T/keys" "$T/other"
# This machine's kernel may lack vfat: then the ESP is a directory (the
# library only needs a file system path; FAT itself is covered in the VM).
mount -t vfat "$ESP" "$T/esp" 2>/dev/null || echo "NOTE: no vfat in this kernel; the ESP is a plain directory here"
mkdir -p "$T/esp/EFI/hull/a"
ENV=$T/esp/EFI/hull/grubenv
grub-editenv "$ENV" create
grub-editenv "$ENV" set hull_a_prio=10 hull_a_tries=0 hull_a_good=1 hull_b_prio=0 hull_b_tries=0 hull_b_good=0 \
        hull_a_version=1.0.0 hull_new_tries=3 "hull_a_args=rootfstype=erofs console=ttyS0" hull_cmdline=
head -c 3000000 /dev/urandom >"$T/esp/EFI/hull/a/vmlinuz"
head -c 40M /dev/urandom >"$A"            # the running slot's "image"
sync
a_sum=$(sha256sum <"$A")
persist_sum=$(sha256sum <"$PERSIST")

"$HULL_BUILD" keygen "$T/key.pem" "$T/keys/trusted.pem" >/dev/null 2>&1
"$HULL_BUILD" keygen "$T/other.pem" "$T/other/other.pem" >/dev/null 2>&1
head -c 40M /dev/urandom >"$T/rootfs"
head -c 3M /dev/urandom >"$T/kernel"
head -c 5M /dev/urandom >"$T/initrd"
head -c 70M /dev/urandom >"$T/huge"
mk() { "$TOOL" make-bundle "$@" >/dev/null || { echo "FAIL: make-bundle $*"; exit 1; }; }
mk "$T/key.pem" "$T/v2.hullb" 2.0.0 x86_64 "$T/rootfs" "$T/kernel" "$T/initrd"
mk "$T/other.pem" "$T/foreign.hullb" 2.0.0 x86_64 "$T/rootfs" "$T/kernel" "$T/initrd"
mk "$T/key.pem" "$T/arm.hullb" 2.0.0 aarch64 "$T/rootfs" "$T/kernel" "$T/initrd"
mk "$T/key.pem" "$T/huge.hullb" 2.0.0 x86_64 "$T/huge" "$T/kernel" "$T/initrd"

U() { "$TOOL" --esp "$T/esp" --slot-a "$A" --slot-b "$B" --keys "$T/keys" --booted "${BOOTED:-a}" "$@"; }
status() { U status | tr '\n' ';'; }
a_entry() { grub-editenv "$ENV" list | grep -E '^hull_(a_|cmdline)' | sort | tr '\n' ';'; }
expect_err() { # name errno command...
        local name=$1 want=$2; shift 2
        local rc
        "$@" >"$T/out" 2>/dev/null; rc=$?
        check "$name: refused with $want" "[ $rc -ne 0 ] && grep -q '^error: $want:' '$T/out'"
        echo "  $(tail -n 1 "$T/out")"
}

# 1. The happy path.
U stage "$T/v2.hullb" --version 2.0.0 --sha256 "$(sha256sum <"$T/v2.hullb" | cut -d' ' -f1)" >/dev/null
check "stage v2: slot b staged" "[ '$(status)' = 'a good 1.0.0 10 0;b staged 2.0.0 0 0;' ]"
check "slot b holds the rootfs" "cmp -s -n $((40 << 20)) '$T/rootfs' '$B'"
check "kernel and initrd on the ESP" "cmp -s '$T/kernel' '$T/esp/EFI/hull/b/vmlinuz' && cmp -s '$T/initrd' '$T/esp/EFI/hull/b/initrd.img'"
check "no temporaries left on the ESP" "[ -z \"\$(ls '$T/esp/EFI/hull/b' | grep '\.new')\" ]"
check "slot b's kernel arguments recorded" "grub-editenv '$ENV' list | grep -q '^hull_b_args=rootfstype=erofs init=/usr/lib/hull/hull-init'"
check "the running slot is untouched" "[ '$(sha256sum <"$A")' = '$a_sum' ]"
check "GRUB still boots a (staged is not active)" "[ \"\$(U grub-boot)\" = a ]"
U activate 2 >/dev/null
check "activate: b trying with 2 tries, above a" "[ '$(status)' = 'a good 1.0.0 10 0;b trying 2.0.0 11 2;' ]"
check "activate twice is refused (nothing staged)" "! U activate >/dev/null"
check "GRUB boots b and counts a try" "[ \"\$(U grub-boot)\" = b ] && grub-editenv '$ENV' list | grep -q '^hull_b_tries=1$'"
BOOTED=b U mark-good >/dev/null
check "mark-good on b" "[ '$(BOOTED=b status)' = 'a good 1.0.0 10 0;b good 2.0.0 11 1;' ]"
BOOTED=b U rollback >/dev/null
check "rollback prefers a again" "[ \"\$(U grub-boot)\" = a ] && [ '$(status)' = 'a good 1.0.0 12 0;b good 2.0.0 11 1;' ]"

# 2. Refusals before the first write change nothing at all.
printf 'x' | dd of="$T/badsig.hullb" bs=1 seek=40 conv=notrunc 2>/dev/null
cp "$T/v2.hullb" "$T/badsig.hullb"; printf '\x01' | dd of="$T/badsig.hullb" bs=1 seek=60 conv=notrunc 2>/dev/null
head -c 100 "$T/v2.hullb" >"$T/head.hullb"
cp "$ENV" "$T/env.before"
expect_err "manifest byte changed" EKEYREJECTED U stage "$T/badsig.hullb"
expect_err "unknown signing key" ENOKEY U stage "$T/foreign.hullb"
expect_err "wrong architecture" EXDEV U stage "$T/arm.hullb"
expect_err "too large for the slot" EFBIG U stage "$T/huge.hullb"
expect_err "unexpected version" EDOM U stage "$T/v2.hullb" --version 9.9.9
expect_err "cut inside the header" EBADMSG U stage "$T/head.hullb"
expect_err "not a regular file" EBADMSG U stage /dev/null
check "after every refusal the boot environment is byte-identical" "cmp -s '$ENV' '$T/env.before'"
check "slot b still holds the good 2.0.0" "[ '$(status)' = 'a good 1.0.0 12 0;b good 2.0.0 11 1;' ]"

# 3. Failures after the first write: slot b bad, a's entry untouched.
area=$(python3 -c "import struct;d=open('$T/v2.hullb','rb').read(24);m=struct.unpack('>I',d[12:16])[0];print((24+m+64+4095)//4096*4096)")
cp "$T/v2.hullb" "$T/tampered.hullb"; printf '\xff' | dd of="$T/tampered.hullb" bs=1 seek=$((area + 12345)) conv=notrunc 2>/dev/null
head -c $((area + (20 << 20))) "$T/v2.hullb" >"$T/truncated.hullb"
a_before=$(a_entry)
after_write() { # name errno [env] command...
        local name=$1 want=$2; shift 2
        expect_err "$name" "$want" "$@"
        check "$name: slot b is bad, a is untouched and boots" \
                "U status | grep -q '^b bad ' && [ '$(a_entry)' = \"\$(a_entry)\" ] && [ \"\$(a_entry)\" = '$a_before' ] && [ \"\$(U grub-boot)\" = a ]"
}
after_write "tampered payload" EBADMSG U stage "$T/tampered.hullb"
after_write "truncated download" ENODATA U stage "$T/truncated.hullb"
after_write "bundle digest mismatch" EUCLEAN U stage "$T/v2.hullb" --sha256 "$(printf '0%.0s' {1..64})"
after_write "EIO on the 5th write" EIO env HULL_FAULT=eio@5 "$TOOL" --esp "$T/esp" --slot-a "$A" --slot-b "$B" --keys "$T/keys" --booted a stage "$T/v2.hullb"
after_write "ENOSPC from the 3rd write" ENOSPC env HULL_FAULT=enospc@3 "$TOOL" --esp "$T/esp" --slot-a "$A" --slot-b "$B" --keys "$T/keys" --booted a stage "$T/v2.hullb"
after_write "fsync fails with EIO" EIO env HULL_FAULT=fsync-eio "$TOOL" --esp "$T/esp" --slot-a "$A" --slot-b "$B" --keys "$T/keys" --booted a stage "$T/v2.hullb"
check "activating a bad slot is refused" "! U activate >/dev/null"
check "rolling back to a bad slot is refused" "! U rollback >/dev/null"
HULL_FAULT=short U stage "$T/v2.hullb" >/dev/null
check "short writes are completed: staged and read back" "U status | grep -q '^b staged 2.0.0'"

# 4. The slot device in use (mounted) is never written.
mkfs.ext4 -q "$B" && mkdir -p "$T/mnt" && mount "$B" "$T/mnt"
expect_err "inactive slot mounted" EBUSY U stage "$T/v2.hullb"
umount "$T/mnt"

# 5. SIGKILL at random points during staging.
kills=${HULL_TEST_KILLS:-40}
bad=0
for i in $(seq 1 "$kills"); do
        # The tool itself in the background (not a shell function, whose
        # subshell would take the signal instead of the tool).
        HULL_FAULT=slow "$TOOL" --esp "$T/esp" --slot-a "$A" --slot-b "$B" --keys "$T/keys" --booted a \
                stage "$T/v2.hullb" >/dev/null 2>&1 &
        pid=$!
        # 0 to 1.6 s: the slow stage takes about 1.2 s, so kills land in
        # the header, the writing, the read-back, the finish, and after it.
        ms=$((RANDOM % 1600))
        sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        st=$(status)
        case "$st" in
        "a good 1.0.0 12 0;b bad 2.0.0 0 0;") n_bad=$((${n_bad:-0} + 1)) ;;
        "a good 1.0.0 12 0;b staged 2.0.0 0 0;") n_staged=$((${n_staged:-0} + 1)) ;;
        *) echo "  after kill $i: $st"; bad=$((bad + 1)) ;;
        esac
        grub-editenv "$ENV" list >/dev/null || bad=$((bad + 1))
        [ "$(a_entry)" = "$a_before" ] || bad=$((bad + 1))
done
echo "  after $kills kills: b bad ${n_bad:-0} times (killed before the end), staged ${n_staged:-0} times (after it)"
check "$kills SIGKILLs: GRUB's own tool reads the env, a untouched, b never bootable" "[ $bad -eq 0 ]"
check "GRUB boots a after the kills" "[ \"\$(U grub-boot)\" = a ]"
U stage "$T/v2.hullb" >/dev/null 2>&1
check "a stage after the kills completes" "U status | grep -q '^b staged 2.0.0' && cmp -s -n $((40 << 20)) '$T/rootfs' '$B'"

# 5b. SIGKILL at random points of activation (the update tool's process
# start included, so some kills land before, some during, some after the
# environment is replaced): GRUB then boots a, or b if the activation was
# complete, and whichever it boots holds exactly its image.
akills=${HULL_TEST_ACTIVATE_KILLS:-20}
cp "$ENV" "$T/env.staged"
bad=0 n_before=0 n_after=0
for i in $(seq 1 "$akills"); do
        cp "$T/env.staged" "$ENV"
        "$TOOL" --esp "$T/esp" --slot-a "$A" --slot-b "$B" --keys "$T/keys" --booted a activate >/dev/null 2>&1 &
        pid=$!
        us=$((RANDOM % 20000))
        sleep "0.$(printf '%06d' $us)"
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        grub-editenv "$ENV" list >/dev/null || { echo "  after kill $i: GRUB cannot read the env"; bad=$((bad + 1)); }
        booted=$(U grub-boot)
        case "$(status)" in
        "a good 1.0.0 12 0;b staged 2.0.0 0 0;")
                n_before=$((n_before + 1))
                [ "$booted" = a ] || { echo "  after kill $i: staged, but GRUB picks $booted"; bad=$((bad + 1)); } ;;
        "a good 1.0.0 "*";b trying 2.0.0 "*)
                n_after=$((n_after + 1))
                [ "$booted" = b ] && cmp -s -n $((40 << 20)) "$T/rootfs" "$B" ||
                        { echo "  after kill $i: activated, but GRUB picks $booted or b is not v2"; bad=$((bad + 1)); } ;;
        *) echo "  after kill $i: $(status)"; bad=$((bad + 1)) ;;
        esac
done
cp "$T/env.staged" "$ENV"
echo "  after $akills kills of activate: not yet activated $n_before times, activated $n_after times"
check "$akills SIGKILLs of activation: GRUB boots a, or b complete and verified" "[ $bad -eq 0 ]"

# 6. Fallback: an activated slot that never gets marked good.
U activate 2 >/dev/null
for boot in 1 2; do
        check "boot $boot of b uses a try" "[ \"\$(U grub-boot)\" = b ]"
done
check "with the tries used up GRUB falls back to a" "[ \"\$(U grub-boot)\" = a ]"
check "the agent notices the fallback" "U reconcile | grep -q 'fallback from 2.0.0' && U status | grep -q '^b bad 2.0.0 0 0'"
check "reconcile again is a no-op" "[ -z \"\$(U reconcile)\" ]"

check "the running slot's data never changed" "[ '$(sha256sum <"$A")' = '$a_sum' ]"
check "persist was never written" "[ '$(sha256sum <"$PERSIST")' = '$persist_sum' ]"
[ $failures -eq 0 ]
