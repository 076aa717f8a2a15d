#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Delta staging (delta_pump() under update_stage()) on a real GPT disk on a
# loop device, from fetch-server.py over HTTP: only the chunks the node
# lacks are fetched (multi-range, one range at a time, first-range-only
# servers), a server that ignores Range gets a full download with a notice,
# a bundle without an index still installs, tampered chunks and indexes are
# refused with the slot left bad and the running slot untouched, and an
# interrupted stage resumes from its checkpoint, re-verifying what it skips.
set -uo pipefail
TOOL=$1 MAKE_DISK=$2 HULL_BUILD=$3 SERVER=$4
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
losetup -f >/dev/null 2>&1 || { echo "SKIP: no loop devices"; exit 77; }
command -v grub-editenv >/dev/null || { echo "SKIP: grub-editenv missing"; exit 77; }
unset https_proxy HTTPS_PROXY http_proxy HTTP_PROXY all_proxy ALL_PROXY
export no_proxy=127.0.0.1 NO_PROXY=127.0.0.1

T=$(mktemp -d /var/tmp/hull-test-delta.XXXXXX)
LOOP="" PIDS=()
cleanup() {
        for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
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
A=${LOOP}p2 B=${LOOP}p3
for p in "$A" "$B"; do [ -b "$p" ] || { echo "FAIL: no partition device $p"; exit 1; }; done
mkdir -p "$T/esp/EFI/hull/a" "$T/keys" "$T/www"
ENV=$T/esp/EFI/hull/grubenv
reset_env() {
        rm -f "$ENV"
        grub-editenv "$ENV" create
        grub-editenv "$ENV" set hull_a_prio=10 hull_a_tries=0 hull_a_good=1 hull_b_prio=0 hull_b_tries=0 \
                hull_b_good=0 hull_a_version=1.0.0 hull_new_tries=3 "hull_a_args=rootfstype=erofs" hull_cmdline=
}
reset_env
"$HULL_BUILD" keygen "$T/key.pem" "$T/keys/trusted.pem" >/dev/null 2>&1

# Version 1 runs in slot a. Version 2: 1 MiB inserted at 8 MiB (everything
# after it moves, by whole blocks, as files do in a file system), 64 KiB
# changed at 30 MiB, the same kernel, an initrd with one changed block.
head -c 40M /dev/urandom >"$T/v1.rootfs"
head -c 3000000 /dev/urandom >"$T/kernel"
head -c 5M /dev/urandom >"$T/v1.initrd"
{ head -c 8M "$T/v1.rootfs"; head -c 1M /dev/urandom; tail -c +$((8 * 1048576 + 1)) "$T/v1.rootfs"; } >"$T/v2.rootfs"
dd if=/dev/urandom of="$T/v2.rootfs" bs=64K seek=$((30 * 16)) count=1 conv=notrunc status=none
cp "$T/v1.initrd" "$T/v2.initrd"
dd if=/dev/urandom of="$T/v2.initrd" bs=4096 seek=100 count=1 conv=notrunc status=none
dd if="$T/v1.rootfs" of="$A" bs=1M status=none conv=fsync
cp "$T/kernel" "$T/esp/EFI/hull/a/vmlinuz"
cp "$T/v1.initrd" "$T/esp/EFI/hull/a/initrd.img"
a_sum=$(sha256sum <"$A")

mk() { "$TOOL" make-bundle "$T/key.pem" "$T/www/$1" "$2" x86_64 "$3" "$T/kernel" "$4" >/dev/null ||
        { echo "FAIL: make-bundle $1"; exit 1; }; }
HULL_CHUNK_INDEX=1 mk v2.hullb 2.0.0 "$T/v2.rootfs" "$T/v2.initrd"
HULL_CHUNK_INDEX=1 mk same.hullb 1.0.1 "$T/v1.rootfs" "$T/v1.initrd"
mk plain.hullb 2.0.0 "$T/v2.rootfs" "$T/v2.initrd"
V2_SIZE=$(stat -c %s "$T/www/v2.hullb")
V2_SUM=$(sha256sum <"$T/www/v2.hullb" | cut -d' ' -f1)

python3 "$SERVER" --root "$T/www" --plain --port-file "$T/port" --log "$T/server.log" 2>"$T/server.err" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
[ -s "$T/port" ] || { echo "FAIL: server did not start"; cat "$T/server.err"; exit 1; }
URL=http://127.0.0.1:$(cat "$T/port")

SRC=(--source "rootfs=$A" --source "kernel=$T/esp/EFI/hull/a/vmlinuz" --source "initrd=$T/esp/EFI/hull/a/initrd.img")
U() { "$TOOL" --esp "$T/esp" --slot-a "$A" --slot-b "$B" --keys "$T/keys" --booted a "$@"; }
# D NAME URL [options]: a delta stage; output in $T/NAME.out, exit code in $T/NAME.rc.
D() {
        local name=$1 url=$2; shift 2
        U stage-delta "$url" "${SRC[@]}" --checkpoint "$T/checkpoint" "$@" >"$T/$name.out" 2>/dev/null
        echo $? >"$T/$name.rc"
        sed 's/^/  /' "$T/$name.out" | grep -v '^  phase'
}
rc() { cat "$T/$1.rc"; }
stat_of() { sed -n "s/^stats .*\b$2=\([0-9]*\).*/\1/p" "$T/$1.out"; }
status() { U status | tr '\n' ';'; }
slot_b_is() { cmp -s -n "$(stat -c %s "$1")" "$1" "$B"; }
staged_v2() {
        [ "$(status)" = 'a good 1.0.0 10 0;b staged 2.0.0 0 0;' ] && slot_b_is "$T/v2.rootfs" &&
                cmp -s "$T/v2.initrd" "$T/esp/EFI/hull/b/initrd.img" && cmp -s "$T/kernel" "$T/esp/EFI/hull/b/vmlinuz"
}
wipe_b() { dd if=/dev/zero of="$B" bs=1M count=48 status=none conv=fsync; rm -rf "$T/esp/EFI/hull/b" "$T/checkpoint"; reset_env; }

# 1. Multi-range delta: a fraction of the bundle, and the slot is exactly v2.
wipe_b
D multi "$URL/v2.hullb" --sha256 "$V2_SUM"
fetched=$(stat_of multi fetched)
check "delta stage succeeds, slot b holds v2" "[ $(rc multi) = 0 ] && staged_v2"
check "fetched $fetched of $V2_SIZE bytes: the new MiB, the changed 64 KiB and 4 KiB, chunk edges, head and index" \
        "[ -n '$fetched' ] && [ $fetched -ge $((1088 * 1024)) ] && [ $fetched -lt $((1600 * 1024)) ]"
check "several ranges went in one request (multipart answer)" "grep -q 'v2.hullb range=bytes=.*,.* status=206 parts=' '$T/server.log'"
check "the bundle's SHA-256 matches (the reassembled stream is the file)" "! grep -q EUCLEAN '$T/multi.out'"
check "the running slot is untouched" "[ '$(sha256sum <"$A")' = '$a_sum' ]"
check "no notice: nothing fell back" "! grep -q '^notice' '$T/multi.out'"

# 2. No change at all: only the head and the index.
wipe_b
D same "$URL/same.hullb"
fetched=$(stat_of same fetched) size=$(stat_of same size)
check "no-change bundle: fetched $fetched of $size bytes (< 0.5 %)" \
        "[ $(rc same) = 0 ] && [ -n '$fetched' ] && [ $((fetched * 200)) -lt $size ] && slot_b_is '$T/v1.rootfs'"

# The same again with the index kept from the last stage: a no-change
# rebuild then costs the head alone.
wipe_b
D same1 "$URL/same.hullb" --index-cache "$T/index-cache"
wipe_b
D same2 "$URL/same.hullb" --index-cache "$T/index-cache"
fetched=$(stat_of same2 fetched)
check "no change and the index kept: fetched $fetched bytes (the head)" \
        "[ $(rc same2) = 0 ] && [ -n '$fetched' ] && [ $fetched -le 8192 ] && slot_b_is '$T/v1.rootfs'"

# 3. Servers that serve one range per request, or only the first of several.
wipe_b
D single "$URL/no-multirange/v2.hullb"
check "a server without multi-range: one range at a time, with a notice" \
        "[ $(rc single) = 0 ] && staged_v2 && grep -q '^notice: the server does not serve several ranges' '$T/single.out'"
wipe_b
D first "$URL/first-range-only/v2.hullb"
check "a server that answers only the first range: still complete" "[ $(rc first) = 0 ] && staged_v2"

# 4. A server that ignores Range, and a bundle without an index: full download.
wipe_b
D norange "$URL/no-range/v2.hullb"
check "a server that ignores Range: full download with a notice" \
        "[ $(rc norange) = 0 ] && staged_v2 && grep -q '^notice: the server ignores HTTP Range' '$T/norange.out' && grep -q 'full=1' '$T/norange.out'"
wipe_b
D plain "$URL/plain.hullb"
check "a bundle without a chunk index installs, with a notice" \
        "[ $(rc plain) = 0 ] && staged_v2 && grep -q '^notice: the bundle has no chunk index' '$T/plain.out'"

# 5. Bad input: nothing reaches a slot GRUB would boot, the error says why.
refused() { # name errno pattern
        check "$1: refused ($2), slot b bad, slot a untouched" \
                "[ $(rc "$1") != 0 ] && grep -q '^error: $2: .*$3' '$T/$1.out' && U status | grep -q '^b bad' && [ '$(sha256sum <"$A")' = '$a_sum' ] && U status | grep -q '^a good 1.0.0 10'"
}
wipe_b
# A byte inside the inserted MiB, which has to come from the server.
D tamper "$URL/tamper/$((4096 + 8 * 1048576 + 5000))/v2.hullb"
refused tamper EBADMSG "does not match the signed chunk index"
wipe_b
idx_off=$(python3 -c "
import json,struct,sys
b=open('$T/www/v2.hullb','rb').read()
m=struct.unpack('>I',b[12:16])[0]
man=json.loads(b[24:24+m])
a=(88+m+4095)//4096*4096
print([a+p['offset'] for p in man['payloads'] if p['name']=='chunk-index'][0])")
D tamperidx "$URL/tamper/$((idx_off + 40))/v2.hullb"
check "a tampered chunk index is refused before anything is written" \
        "[ $(rc tamperidx) != 0 ] && grep -q 'chunk index does not match its signed digest' '$T/tamperidx.out' && [ '$(status)' = 'a good 1.0.0 10 0;b empty - 0 0;' ]"
cp "$T/www/v2.hullb" "$T/www/trunc.hullb"
truncate -s $((V2_SIZE - 100000)) "$T/www/trunc.hullb"
wipe_b
D trunc "$URL/trunc.hullb"
check "a truncated bundle on the server is refused" "[ $(rc trunc) != 0 ] && grep -q '^error: ESTALE: .*truncated or replaced' '$T/trunc.out' && ! U status | grep -q '^b staged'"
echo "  $(grep '^error' "$T/trunc.out")"
wipe_b
D missing "$URL/nope.hullb"
check "a missing bundle: ENOENT, nothing changed" \
        "[ $(rc missing) != 0 ] && grep -q '^error: ENOENT: .*404' '$T/missing.out' && [ '$(status)' = 'a good 1.0.0 10 0;b empty - 0 0;' ]"

# 6. Resume: a stage that dies half-way leaves a checkpoint; the next stage
# of the same bundle re-reads (and re-verifies) the slot instead of
# downloading again. Slot b starts out as v2 minus its end, as after an
# interrupted stage; a checkpoint claims 24 MiB; one block inside it is
# damaged, which must be noticed and fetched again.
wipe_b
head -c 32M "$T/v2.rootfs" | dd of="$B" bs=1M status=none conv=fsync
dd if=/dev/urandom of="$B" bs=4096 seek=2000 count=1 conv=notrunc,fsync status=none
head_sha=$(python3 -c "
import hashlib,struct
b=open('$T/www/v2.hullb','rb').read()
m=struct.unpack('>I',b[12:16])[0]
print(hashlib.sha256(b[:88+m]).hexdigest())")
printf '{"bundle":"%s","device":"%s","format":1,"payload":"rootfs","verified":%d}' "$head_sha" "$B" $((24 << 20)) >"$T/checkpoint"
D resume "$URL/v2.hullb"
resumed=$(stat_of resume resumed) fetched=$(stat_of resume fetched)
check "resume: staged, $resumed bytes re-verified in the slot" "[ $(rc resume) = 0 ] && staged_v2 && [ -n '$resumed' ] && [ $resumed -gt $((20 << 20)) ]"
check "the damaged block was fetched again, not trusted" "[ -n '$fetched' ] && [ $fetched -ge 4096 ]"
check "the checkpoint is gone after success" "[ ! -e '$T/checkpoint' ]"
# A checkpoint of another bundle is ignored and removed.
wipe_b
printf '{"bundle":"%s","device":"%s","format":1,"payload":"rootfs","verified":%d}' "$(printf '0%.0s' {1..64})" "$B" $((24 << 20)) >"$T/checkpoint"
D other "$URL/v2.hullb"
check "a checkpoint of another bundle: a clean start" "[ $(rc other) = 0 ] && staged_v2 && grep -q 'resumed=0' '$T/other.out'"

# 7. A real interruption: the server drops every connection after 2 MiB;
# the stage fails after its retries but checkpoints what it wrote... only
# past 64 MiB, so here it must simply fail cleanly and leave b bad.
wipe_b
D drop "$URL/drop-after/200000/v2.hullb"
check "a server that keeps dropping: the stage fails, b is not staged" "[ $(rc drop) != 0 ] && ! U status | grep -q '^b staged'"
echo "  $(grep '^error' "$T/drop.out")"

# 8. SIGKILL at random points of delta stages (the power-cut harness's
# share of delta staging; test-update.sh has full stages and activation):
# after each, slot b is bad or staged, never bootable half-written, slot a
# and its boot entry untouched; the next stage resumes from whatever
# checkpoint the killed one left and, at the end, slot b is exactly v2.
kills=${HULL_TEST_DELTA_KILLS:-40}
wipe_b
a_entry() { grub-editenv "$ENV" list | grep -E '^hull_a_' | sort | tr '\n' ';'; }
a_before=$(a_entry)
bad=0 n_bad=0 n_staged=0 n_resumed=0
for i in $(seq 1 "$kills"); do
        "$TOOL" --esp "$T/esp" --slot-a "$A" --slot-b "$B" --keys "$T/keys" --booted a stage-delta "$URL/v2.hullb" \
                "${SRC[@]}" --checkpoint "$T/checkpoint" >"$T/kill.out" 2>/dev/null &
        pid=$!
        ms=$((RANDOM % 700))
        sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        grep -q 'resumed=[1-9]' "$T/kill.out" && n_resumed=$((n_resumed + 1))
        st=$(status)
        case "$st" in
        "a good 1.0.0 10 0;b bad 2.0.0 0 0;" | "a good 1.0.0 10 0;b empty - 0 0;") n_bad=$((n_bad + 1)) ;;
        "a good 1.0.0 10 0;b staged 2.0.0 0 0;")
                n_staged=$((n_staged + 1))
                slot_b_is "$T/v2.rootfs" || { echo "  after kill $i: staged but slot b is not v2"; bad=$((bad + 1)); }
                # Start over, so that later kills land in a stage again.
                reset_env ;;
        *) echo "  after kill $i: $st"; bad=$((bad + 1)) ;;
        esac
        [ "$(a_entry)" = "$a_before" ] || { echo "  after kill $i: slot a's boot entry changed"; bad=$((bad + 1)); }
        [ "$(U grub-boot)" = a ] || { echo "  after kill $i: GRUB would not boot a"; bad=$((bad + 1)); }
        reset_env
done
echo "  after $kills kills: b not bootable $n_bad times, staged (and exactly v2) $n_staged times, $n_resumed stages resumed"
check "$kills SIGKILLs of delta stages: a untouched and booted, b never bootable half-written" \
        "[ $bad -eq 0 ] && [ '$(sha256sum <"$A")' = '$a_sum' ]"
D final "$URL/v2.hullb"
check "a delta stage after the kills completes with slot b exactly v2" "[ $(rc final) = 0 ] && staged_v2"

echo "requests: $(grep -c 'v2.hullb' "$T/server.log")"
[ "$failures" -eq 0 ] || { echo "$failures check(s) failed"; exit 1; }
echo "all delta checks passed"
