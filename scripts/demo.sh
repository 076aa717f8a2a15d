#!/bin/bash
# The main job: install dependencies, build Hull, build the demo image from
# examples/demo/hull.yaml and boot it in QEMU until it reports ready.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then exec sudo --preserve-env=CI "$0" "$@"; fi
cd "$(dirname "$0")/.."
top=$PWD

scripts/deps.sh
[ -d build ] || meson setup build
meson compile -C build

out=${HULL_DEMO_OUT:-$top/demo-out}
mkdir -p "$out"
if [ ! -f "$out/demo.key" ]; then
        build/src/build/hull-build keygen "$out/demo.key" "$out/demo.pub"
fi
build/src/build/hull-build build examples/demo/hull.yaml --key "$out/demo.key" -o "$out"
build/src/build/hull-build verify --trust "$out/demo.pub" "$out/hull-demo-1.0.0.hullb"

echo
echo "Booting $out/hull-demo-1.0.0.img in QEMU (TCG); console log: $out/console.log"
python3 tests/e2e/hullvm.py "$out/hull-demo-1.0.0.img" --log "$out/console.log" --timeout 900
echo
echo "The demo image booted to ready. Boot it yourself with:"
echo "  python3 tests/e2e/hullvm.py $out/hull-demo-1.0.0.img --keep-running --log $out/console.log"
