#!/bin/bash
# Delta downloads against full downloads and casync, in one run, on real
# builds of the demo spec:
#   base     examples/demo as it is
#   change   the same plus one 2 MiB file of shared-library code
#            (/usr/lib/hull-bench/blob, the first 2 MiB of the build host's
#            libcrypto.so.3): "a file set of about 2 MB changes"
#   same     the same spec built again: no change at all
# A node running 'base' stages 'change' and 'same' from fetch-server.py
# (HTTP, multi-range) through the update library's delta pump (the agent's
# code); slots are 1 GiB files, the ESP a directory. The node keeps the
# chunk index of the bundle it staged last (base's), as the agent does.
#
# Prints, per update: bytes fetched as a fraction of the bundle and as a
# multiple of the zstd-compressed size of what really changed (the files
# that differ between the two root file systems, plus kernel and initrd if
# they differ), staging time against a full download of the same bundle
# from the same server (median of 3), the fleet total for 5,000 nodes, and
# casync's bytes for the same pair (casync make, default chunking, zstd;
# what 'casync extract --seed' of the old payloads would fetch: the new
# chunks missing from the old store, plus the .caibx indexes).
# Usage (root): bench/delta.sh [SPEC]   (default examples/demo/hull.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${1:-examples/demo/hull.yaml}
tool=build/tests/integration/update-tool
hb=build/src/build/hull-build
server=tests/integration/fetch-server.py
w=$(mktemp -d /var/tmp/hull-bench-delta.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$w"; }
trap cleanup EXIT
[ -n "${HULL_BENCH_KEEP:-}" ] && trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
unset http_proxy HTTP_PROXY all_proxy ALL_PROXY
export no_proxy=127.0.0.1 NO_PROXY=127.0.0.1

# --- three builds
specdir=$(cd "$(dirname "$spec")" && pwd)
mkdir -p "$w/keys"
$hb keygen "$w/k.key" "$w/keys/k.pem" >/dev/null
mkdir -p "$specdir/.bench-delta"
head -c 2M /usr/lib/x86_64-linux-gnu/libcrypto.so.3 >"$specdir/.bench-delta/blob"
cp "$spec" "$specdir/.bench-change.yaml"
python3 - "$specdir/.bench-change.yaml" <<'EOF'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("files:\n", "files:\n  - source: .bench-delta/blob\n    path: /usr/lib/hull-bench/blob\n    mode: \"0644\"\n", 1)
open(p, "w").write(s)
EOF
trap 'rm -rf "$specdir/.bench-delta" "$specdir/.bench-change.yaml"; cleanup' EXIT
for v in base change same; do
        s=$spec
        [ $v = change ] && s=$specdir/.bench-change.yaml
        echo "building $v ..." >&2
        $hb build "$s" --key "$w/k.key" -o "$w/$v" >"$w/$v.log" 2>&1 || { tail -20 "$w/$v.log"; exit 1; }
done
bundle() { ls "$w/$1"/*.hullb; }
rootfs() { ls "$w/$1"/*.rootfs.*; }

# --- the node: 'base' staged into slot b, then b is the running slot
mkdir -p "$w/esp/EFI/hull" "$w/www"
truncate -s 1G "$w/slot-a" "$w/slot-b"
env=$w/esp/EFI/hull/grubenv
reset_env() {
        rm -f "$env"
        grub-editenv "$env" create
        grub-editenv "$env" set hull_a_prio=10 hull_a_tries=0 hull_a_good=1 hull_b_prio=0 hull_b_tries=0 hull_b_good=0
}
reset_env
$tool --esp "$w/esp" --slot-a "$w/slot-a" --slot-b "$w/slot-b" --keys "$w/keys" --booted a stage "$(bundle base)" >/dev/null
for v in change same; do cp "$(bundle $v)" "$w/www/$v.hullb"; done
python3 $server --root "$w/www" --plain --port-file "$w/port" --log "$w/server.log" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$w/port" ] && break; sleep 0.1; done
url=http://127.0.0.1:$(cat "$w/port")

stage() { # URL -> "seconds fetched"
        reset_env
        # The node keeps the chunk index of the bundle it last staged
        # (docs/DELTA.md): base's, as if base had come as a delta too.
        cp "$w/p-base/chunk-index" "$w/index-cache"
        grub-editenv "$env" set hull_b_prio=10 hull_b_good=1 hull_a_prio=0 hull_a_good=0
        local t0 t1 out
        t0=$(date +%s.%N)
        out=$($tool --esp "$w/esp" --slot-a "$w/slot-a" --slot-b "$w/slot-b" --keys "$w/keys" --booted b \
                stage-delta "$1" --source "rootfs=$w/slot-b" --source "kernel=$w/esp/EFI/hull/b/vmlinuz" \
                --source "initrd=$w/esp/EFI/hull/b/initrd.img" --index-cache "$w/index-cache" 2>/dev/null)
        t1=$(date +%s.%N)
        echo "$out" | grep -q '^staged' || { echo "stage of $1 failed: $out" >&2; exit 1; }
        echo "$(echo "$t1 - $t0" | bc) $(echo "$out" | sed -n 's/^stats .*fetched=\([0-9]*\).*/\1/p')"
}
med() { printf '%s\n' "$@" | sort -n | sed -n 2p; }

# --- what really changed, compressed
fsck.erofs --extract="$w/x-base" "$(rootfs base)" >/dev/null 2>&1
changed_bytes() { # VERSION
        local v=$1
        rm -rf "$w/x-$v" "$w/changed"
        fsck.erofs --extract="$w/x-$v" "$(rootfs $v)" >/dev/null 2>&1
        mkdir -p "$w/changed"
        (cd "$w/x-$v" && find . -type f -print0) | while IFS= read -r -d '' f; do
                cmp -s "$w/x-$v/$f" "$w/x-base/$f" 2>/dev/null || { mkdir -p "$w/changed/$(dirname "$f")"; cp "$w/x-$v/$f" "$w/changed/$f"; }
        done
        for p in kernel initrd; do
                python3 - "$(bundle base)" "$(bundle $v)" "$p" "$w/changed/$p" <<'EOF'
import json, struct, sys
def payload(path, name):
    b = open(path, "rb")
    h = b.read(24)
    m = struct.unpack(">I", h[12:16])[0]
    man = json.loads(b.read(m))
    area = (88 + m + 4095) // 4096 * 4096
    p = [x for x in man["payloads"] if x["name"] == name][0]
    return p["sha256"], area + p["offset"], p["size"]
a = payload(sys.argv[1], sys.argv[3])
n = payload(sys.argv[2], sys.argv[3])
if a[0] != n[0]:
    with open(sys.argv[2], "rb") as f, open(sys.argv[4], "wb") as o:
        f.seek(n[1]); o.write(f.read(n[2]))
EOF
        done
        echo "$(find "$w/changed" -type f | wc -l) $(tar -C "$w/changed" -cf - . | zstd -3 -q -c | wc -c)"
}

# --- casync on the same pairs (each payload with the old one as seed)
extract_payloads() { # VERSION DIR
        mkdir -p "$2"
        python3 - "$(bundle $1)" "$2" <<'EOF'
import json, struct, sys
b = open(sys.argv[1], "rb")
h = b.read(24)
m = struct.unpack(">I", h[12:16])[0]
man = json.loads(b.read(m))
area = (88 + m + 4095) // 4096 * 4096
for p in man["payloads"]:
    b.seek(area + p["offset"])
    open(f"{sys.argv[2]}/{p['name']}", "wb").write(b.read(p["size"]))
EOF
}
casync_bytes() { # VERSION -> bytes a casync client fetches
        local v=$1 total=0
        extract_payloads $v "$w/p-$v"
        for p in rootfs kernel initrd; do
                casync make --compression=zstd --store="$w/cs-base" "$w/cs-base-$p.caibx" "$w/p-base/$p" >/dev/null
                rm -rf "$w/cs-new"
                casync make --compression=zstd --store="$w/cs-new" "$w/cs-$v-$p.caibx" "$w/p-$v/$p" >/dev/null
                local idx missing
                idx=$(stat -c %s "$w/cs-$v-$p.caibx")
                missing=$(cd "$w/cs-new" && find . -name '*.cacnk' | while read -r c; do
                        [ -e "$w/cs-base/$c" ] || stat -c %s "$c"; done | awk '{s += $1} END {print s + 0}')
                total=$((total + idx + missing))
        done
        echo $total
}
extract_payloads base "$w/p-base"

printf '%-8s %12s %10s %9s %12s %9s %9s %10s %10s %12s %12s\n' update bundle fetched "%bundle" changed-zst x-changed \
        delta-s full-s ratio fleet-5000 casync
for v in change same; do
        dt=() ft=() fetched=0
        for i in 1 2 3; do
                read -r t f < <(stage "$url/$v.hullb")
                dt+=("$t"); fetched=$f
                read -r t _ < <(stage "$url/no-range/$v.hullb")
                ft+=("$t")
        done
        size=$(stat -c %s "$w/www/$v.hullb")
        read -r nfiles cz < <(changed_bytes $v)
        cs=$(casync_bytes $v)
        d=$(med "${dt[@]}") f=$(med "${ft[@]}")
        xc=$( [ "$cz" -gt 0 ] && echo "scale=2; $fetched / $cz" | bc || echo "-")
        printf '%-8s %12d %10d %8.3f%% %12d %9s %9.2f %10.2f %10.2f %10.1fGB %12d\n' $v "$size" "$fetched" \
                "$(echo "100 * $fetched / $size" | bc -l)" "$cz" "$xc" "$d" "$f" "$(echo "$d / $f" | bc -l)" \
                "$(echo "5000 * $fetched / 1000000000" | bc -l)" "$cs"
        echo "  $v: $nfiles files differ; delta runs ${dt[*]} s, full runs ${ft[*]} s; full fleet $(echo "5000 * $size / 1000000000" | bc -l | cut -c1-7) GB; casync/hull $(echo "scale=2; $cs / $fetched" | bc)"
done
