#!/bin/bash
# Build benchmarks for the issue note: cold and warm build time, image size,
# and package count against a plain Debian minbase with the same kernel.
# Usage (root): bench/build.sh [SPEC]   (default examples/demo/hull.yaml)
# Prints a table; ratios are against the cold build in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${1:-examples/demo/hull.yaml}
hb=build/src/build/hull-build
w=$(mktemp -d /var/tmp/hull-bench-build.XXXXXX)
trap 'rm -rf "$w"' EXIT
$hb keygen "$w/k.key" "$w/k.pub" >/dev/null

t0=$(date +%s.%N)
$hb build "$spec" --key "$w/k.key" -o "$w/cold" --cache "$w/cache" 2>"$w/cold.log"
t1=$(date +%s.%N)
$hb build "$spec" --key "$w/k.key" -o "$w/warm" --cache "$w/cache" 2>"$w/warm.log"
t2=$(date +%s.%N)

info=$(ls "$w"/warm/*.json)
j() { python3 -c "import json,sys; print(json.load(open('$info'))['$1'])"; }

# Plain Debian minbase with the same kernel, from the same mirror.
mmdebstrap --quiet --variant=minbase --include=linux-image-amd64 bookworm "$w/minbase.tar" >/dev/null 2>&1
mkdir "$w/minbase"
tar -xf "$w/minbase.tar" -C "$w/minbase"
minbase_pkgs=$(dpkg-query --admindir="$w/minbase/var/lib/dpkg" -W -f '${Package}\n' | wc -l)

cold=$(echo "$t1 - $t0" | bc)
warm=$(echo "$t2 - $t1" | bc)
printf '%-44s %12s\n' "metric" "value"
printf '%-44s %10.1f s\n' "build time, cold cache" "$cold"
printf '%-44s %10.1f s  (%.2fx of cold)\n' "build time, warm cache" "$warm" "$(echo "$warm / $cold" | bc -l)"
printf '%-44s %10.1f MiB\n' "root file system image ($(j rootfs_type))" "$(echo "$(j rootfs_size) / 1048576" | bc -l)"
printf '%-44s %10.1f MiB\n' "update bundle" "$(echo "$(j bundle_size) / 1048576" | bc -l)"
printf '%-44s %10.1f MiB\n' "kernel + initramfs" "$(echo "($(j kernel_size) + $(j initrd_size)) / 1048576" | bc -l)"
printf '%-44s %10s\n' "packages in the Hull image" "$(j packages)"
printf '%-44s %10s  (%.2fx of Hull)\n' "packages in Debian minbase + same kernel" "$minbase_pkgs" \
        "$(echo "$minbase_pkgs / $(j packages)" | bc -l)"
