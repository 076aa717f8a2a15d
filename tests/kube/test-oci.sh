#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# scripts/build-oci.py end to end, for each program given:
#   test-oci.sh BUILD_OCI_PY BINARY...
# builds the image twice (byte-identical archives), checks the layout in
# Python (every digest and size, mediaTypes, diff_ids, config fields, the
# layer's contents and owners), lets skopeo read and copy it if skopeo is
# installed, then unpacks the layer and runs `BINARY --version` chrooted into
# it, which fails unless every library and the loader are in the image.
set -euo pipefail

build_oci=$1
shift
[ $# -gt 0 ] || { echo "usage: test-oci.sh BUILD_OCI_PY BINARY..." >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for binary in "$@"; do
        name=$(basename "$binary")
        out=$tmp/$name.oci.tar
        echo "== $name"
        extra=()
        [ "$name" = hull-operator ] && extra=(--zoneinfo /usr/share/zoneinfo)
        python3 "$build_oci" --binary "$binary" --name "$name" --version 0.1.0-test --user 65532 "${extra[@]}" \
                -o "$out"
        SOURCE_DATE_EPOCH=0 python3 "$build_oci" --binary "$binary" --name "$name" --version 0.1.0-test \
                --user 65532 "${extra[@]}" -o "$out.again" >/dev/null
        cmp "$out" "$out.again" || { echo "FAIL: two builds of $name differ" >&2; exit 1; }
        SOURCE_DATE_EPOCH=1700000000 python3 "$build_oci" --binary "$binary" --name "$name" \
                --version 0.1.0-test --user 65532 -o "$out.sde" >/dev/null
        if cmp -s "$out" "$out.sde"; then
                echo "FAIL: SOURCE_DATE_EPOCH did not change the archive" >&2
                exit 1
        fi

        root=$tmp/$name.root
        mkdir "$root"
        digest=$(python3 - "$out" "$name" "$root" "$binary" <<'EOF'
import gzip, hashlib, io, json, os, sys, tarfile

path, name, root, binary = sys.argv[1:5]
fails = []

def check(cond, msg):
    if not cond:
        fails.append(msg)

def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()

with tarfile.open(path) as t:
    members = t.getmembers()
    files = {m.name: t.extractfile(m).read() for m in members if m.isfile()}
    names = [m.name for m in members]
    check(names == sorted(names), "archive entries not sorted: %s" % names)
    for m in members:
        check(m.uid == 0 and m.gid == 0 and m.mtime == 0, "archive entry %s: owner/mtime %d:%d %d"
              % (m.name, m.uid, m.gid, m.mtime))

layout = json.loads(files["oci-layout"])
check(layout == {"imageLayoutVersion": "1.0.0"}, "oci-layout: %r" % layout)
blobs = {n[len("blobs/sha256/"):]: b for n, b in files.items() if n.startswith("blobs/sha256/")}
for hexd, b in blobs.items():
    check(hashlib.sha256(b).hexdigest() == hexd, "blob %s does not hash to its name" % hexd)

def blob(desc, mt):
    check(desc.get("mediaType") == mt, "descriptor mediaType %r, want %r" % (desc.get("mediaType"), mt))
    d = desc["digest"]
    check(d.startswith("sha256:"), "digest %r" % d)
    b = blobs.get(d[7:])
    if b is None:
        fails.append("blob %s missing" % d)
        return b""
    check(len(b) == desc["size"], "blob %s: size %d, descriptor says %d" % (d, len(b), desc["size"]))
    return b

index = json.loads(files["index.json"])
check(index.get("schemaVersion") == 2, "index schemaVersion")
check(index.get("mediaType") == "application/vnd.oci.image.index.v1+json", "index mediaType")
check(len(index["manifests"]) == 1, "index has %d manifests" % len(index["manifests"]))
mdesc = index["manifests"][0]
check(mdesc.get("annotations", {}).get("org.opencontainers.image.ref.name") == "0.1.0-test",
      "ref.name annotation: %r" % mdesc.get("annotations"))
check(mdesc.get("platform", {}).get("os") == "linux", "index platform")
manifest = json.loads(blob(mdesc, "application/vnd.oci.image.manifest.v1+json"))
check(manifest.get("schemaVersion") == 2, "manifest schemaVersion")
check(manifest.get("mediaType") == "application/vnd.oci.image.manifest.v1+json", "manifest mediaType")
config = json.loads(blob(manifest["config"], "application/vnd.oci.image.config.v1+json"))
check(len(manifest["layers"]) == 1, "layers: %d" % len(manifest["layers"]))
layer_gz = blob(manifest["layers"][0], "application/vnd.oci.image.layer.v1.tar+gzip")
check(layer_gz[:2] == b"\x1f\x8b" and layer_gz[4:8] == b"\0\0\0\0", "layer gzip header mtime not 0")
layer = gzip.decompress(layer_gz)
check(config["rootfs"] == {"type": "layers", "diff_ids": [sha(layer)]}, "diff_ids do not match the layer")
check(config.get("os") == "linux" and config.get("architecture") in ("amd64", "arm64", "arm", "ppc64le",
      "s390x", "riscv64"), "config os/architecture %r/%r" % (config.get("os"), config.get("architecture")))
c = config.get("config", {})
check(c.get("Entrypoint") == ["/usr/bin/" + name], "Entrypoint %r" % c.get("Entrypoint"))
check(c.get("User") == "65532:65532", "User %r" % c.get("User"))
labels = c.get("Labels", {})
check(labels.get("org.opencontainers.image.version") == "0.1.0-test", "version label %r" % labels)
check("org.opencontainers.image.source" in labels, "source label missing")

with tarfile.open(fileobj=io.BytesIO(layer)) as t:
    members = {m.name: m for m in t.getmembers()}
    lnames = [m.name for m in t.getmembers()]
    check(lnames == sorted(lnames), "layer entries not sorted")
    for m in members.values():
        check(m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == "" and m.mtime == 0,
              "layer entry %s: owner %d:%d %r:%r mtime %d" % (m.name, m.uid, m.gid, m.uname, m.gname, m.mtime))
        check(m.isfile() or m.isdir(), "layer entry %s is neither file nor directory" % m.name)
        check(not m.name.startswith("/") and ".." not in m.name.split("/"), "unsafe path %s" % m.name)
    prog = members.get("usr/bin/" + name)
    check(prog is not None and prog.mode & 0o111, "usr/bin/%s missing or not executable" % name)
    check("tmp" in members and members["tmp"].isdir() and members["tmp"].mode == 0o1777, "/tmp")
    passwd = t.extractfile("etc/passwd").read().decode()
    check("nonroot:x:65532:65532:" in passwd, "nonroot user missing from /etc/passwd")
    check("nonroot:x:65532:" in t.extractfile("etc/group").read().decode(), "nonroot group missing")
    if os.path.exists("/etc/ssl/certs/ca-certificates.crt"):
        check("etc/ssl/certs/ca-certificates.crt" in members, "CA bundle missing")
    check(any(n.startswith(("lib", "usr/lib")) and "/ld-linux" in n for n in members) or
          any("/ld-" in n for n in members), "no dynamic loader in the layer")
    if prog is not None:
        with open(binary, "rb") as f:
            check(t.extractfile(prog).read() == f.read(), "usr/bin/%s differs from %s" % (name, binary))
    # Unpack for the chroot run.
    for m in t.getmembers():
        dest = os.path.join(root, m.name)
        if m.isdir():
            os.makedirs(dest, exist_ok=True)
            os.chmod(dest, m.mode)
        else:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "wb") as f:
                f.write(t.extractfile(m).read())
            os.chmod(dest, m.mode)

if fails:
    for f in fails:
        print("FAIL: " + f, file=sys.stderr)
    sys.exit(1)
print(sha(blobs[mdesc["digest"][7:]]))
EOF
)
        echo "layout checks passed, manifest $digest"

        if command -v skopeo >/dev/null; then
                inspected=$(skopeo inspect --format '{{.Digest}}' "oci-archive:$out")
                [ "$inspected" = "$digest" ] || {
                        echo "FAIL: skopeo sees digest $inspected, expected $digest" >&2
                        exit 1
                }
                skopeo copy --quiet "oci-archive:$out" "dir:$tmp/$name.dir" 2>&1 || {
                        echo "FAIL: skopeo copy oci-archive:$out dir: failed" >&2
                        exit 1
                }
                [ -s "$tmp/$name.dir/manifest.json" ] || { echo "FAIL: skopeo copy wrote no manifest" >&2; exit 1; }
                echo "skopeo inspect and copy passed"
        else
                echo "SKIP: skopeo not installed (scripts/deps.sh installs it)"
        fi

        if [ "$(id -u)" = 0 ]; then
                if [ "$name" = hull-operator ]; then
                        head -c 4 "$root/usr/share/zoneinfo/Europe/Berlin" | grep -q TZif ||
                                { echo "FAIL: the hull-operator image has no Europe/Berlin zone file" >&2; exit 1; }
                        echo "zone files present"
                fi
                got=$(env -i PATH=/usr/bin "$(command -v chroot)" "$root" "/usr/bin/$name" --version)
                want=$("$binary" --version)
                [ "$got" = "$want" ] || {
                        echo "FAIL: chrooted '$name --version' said '$got', expected '$want'" >&2
                        exit 1
                }
                echo "chroot run passed: $got"
        else
                echo "SKIP: not root, no chroot run"
        fi
done
echo "PASS"
