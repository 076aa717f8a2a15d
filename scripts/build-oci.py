#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Build an OCI image archive of one dynamically linked program, without a
container runtime (docs/DEPLOY.md).

    scripts/build-oci.py --binary build/src/operator/hull-operator \\
        --name hull-operator --version 0.1.0 [--user 65532] \\
        -o out/hull-operator-0.1.0.oci.tar

The result is an OCI image layout (image-spec 1.1: oci-layout, index.json,
blobs/sha256/...) packed as a tar file, what `skopeo copy
oci-archive:FILE docker://REGISTRY/NAME:TAG` pushes. The image has one
gzip'ed layer holding:

  /usr/bin/NAME                      the program
  every shared library `ldd` names, and the dynamic loader, as regular
  files at the paths ldd reports (symlinks resolved)
  /etc/passwd, /etc/group            root and nonroot (65532)
  /etc/nsswitch.conf
  /etc/ssl/certs/ca-certificates.crt if the build host has it
  /tmp                               empty, mode 1777

The output is reproducible: entries sorted, mtimes SOURCE_DATE_EPOCH (or 0),
owner 0:0, no user or group names, gzip header mtime 0 and no file name,
JSON with sorted keys. Python 3 standard library only.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import re
import subprocess
import sys
import tarfile
import tempfile

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
        "riscv64": "riscv64"}

NONROOT = 65532


def die(msg):
    sys.exit("build-oci: " + msg)


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def shared_libraries(binary):
    """Absolute paths of what the binary needs at run time, the loader
    included, as ldd prints them. A static binary needs none."""
    r = subprocess.run(["ldd", binary], capture_output=True, text=True)
    out = r.stdout + r.stderr
    if r.returncode != 0:
        if "not a dynamic executable" in out or "statically linked" in out:
            return []
        die("ldd %s failed: %s" % (binary, out.strip()))
    libs = []
    for line in out.splitlines():
        line = line.strip()
        if "not found" in line:
            die("%s: a library is missing on the build host: %s" % (binary, line))
        if "statically linked" in line:
            return []
        # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
        # "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
        m = re.match(r"^(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-fA-F]+\)$", line)
        if m:
            libs.append(m.group(1))
    return sorted(set(libs))


class Layer:
    """A file system tree in memory: path -> (kind, mode, data)."""

    def __init__(self, mtime):
        self.mtime = mtime
        self.entries = {}

    def add_dir(self, path, mode=0o755):
        path = path.strip("/")
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            if p not in self.entries:
                self.entries[p] = ("dir", 0o755, None)
        self.entries[path] = ("dir", mode, None)

    def add_file(self, path, data, mode):
        path = path.strip("/")
        parent = os.path.dirname(path)
        if parent and parent not in self.entries:
            self.add_dir(parent)
        self.entries[path] = ("file", mode, data)

    def add_host_file(self, path, source, mode=None):
        real = os.path.realpath(source)
        with open(real, "rb") as f:
            data = f.read()
        if mode is None:
            mode = os.stat(real).st_mode & 0o755 or 0o644
        self.add_file(path, data, mode)

    def tar(self):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            for path in sorted(self.entries):
                kind, mode, data = self.entries[path]
                ti = tarfile.TarInfo(path + "/" if kind == "dir" else path)
                ti.mtime = self.mtime
                ti.mode = mode
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = ""
                if kind == "dir":
                    ti.type = tarfile.DIRTYPE
                    ti.name = path
                    t.addfile(ti)
                else:
                    ti.size = len(data)
                    t.addfile(ti, io.BytesIO(data))
        return buf.getvalue()


def gzip_bytes(data):
    buf = io.BytesIO()
    # filename="" and mtime=0: nothing of the build host in the header.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as g:
        g.write(data)
    return buf.getvalue()


def parse_user(s):
    m = re.match(r"^(\d+)(?::(\d+))?$", s)
    if not m:
        die("--user wants UID or UID:GID (numeric), not %r" % s)
    uid = int(m.group(1))
    gid = int(m.group(2)) if m.group(2) is not None else uid
    return uid, gid


def build_layer(a, mtime):
    layer = Layer(mtime)
    name = a.name
    if a.strip:
        with tempfile.TemporaryDirectory() as d:
            stripped = os.path.join(d, name)
            r = subprocess.run(["strip", "--strip-unneeded", "-o", stripped, a.binary], capture_output=True,
                               text=True)
            if r.returncode != 0:
                die("strip %s failed: %s" % (a.binary, r.stderr.strip()))
            layer.add_host_file("usr/bin/" + name, stripped, 0o755)
    else:
        layer.add_host_file("usr/bin/" + name, a.binary, 0o755)
    for lib in shared_libraries(a.binary):
        layer.add_host_file(lib, lib, 0o755)
    uid, gid = parse_user(a.user)
    passwd = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n" % (
        NONROOT, NONROOT)
    group = "root:x:0:\nnonroot:x:%d:\n" % NONROOT
    if uid not in (0, NONROOT):
        passwd += "%s:x:%d:%d:%s:/:/sbin/nologin\n" % (name, uid, gid, name)
    if gid not in (0, NONROOT):
        group += "%s:x:%d:\n" % (name, gid)
    layer.add_file("etc/passwd", passwd.encode(), 0o644)
    layer.add_file("etc/group", group.encode(), 0o644)
    layer.add_file("etc/nsswitch.conf", b"passwd: files\ngroup: files\nhosts: files dns\n", 0o644)
    if os.path.exists(a.ca_certificates):
        layer.add_host_file("etc/ssl/certs/ca-certificates.crt", a.ca_certificates, 0o644)
    if a.zoneinfo:
        # The compiled zone files, for maintenance windows in named time
        # zones (hull-operator reads them itself, src/shared/tzfile.c).
        # posix/ and right/ are copies and leap-second variants: left out.
        for top, dirs, files in os.walk(a.zoneinfo, followlinks=False):
            rel = os.path.relpath(top, a.zoneinfo)
            if rel.split(os.sep)[0] in ("posix", "right"):
                dirs[:] = []
                continue
            dirs.sort()
            for f in sorted(files):
                src = os.path.join(top, f)
                with open(os.path.realpath(src), "rb") as fh:
                    if fh.read(4) != b"TZif":
                        continue
                dest = os.path.normpath(os.path.join("usr/share/zoneinfo", rel, f))
                layer.add_host_file(dest, src, 0o644)
    layer.add_dir("tmp", 0o1777)
    layer.add_dir("home/nonroot", 0o755)
    return layer


def source_url(a):
    if a.source:
        return a.source
    try:
        r = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "config", "--get",
                            "remote.origin.url"], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
    except OSError:
        pass
    return "unknown"


def rfc3339(t):
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def build(a):
    if not os.path.isfile(a.binary) or not os.access(a.binary, os.X_OK):
        die("%s is not an executable file" % a.binary)
    sde = os.environ.get("SOURCE_DATE_EPOCH", "")
    try:
        mtime = int(sde) if sde else 0
    except ValueError:
        die("SOURCE_DATE_EPOCH is not a number: %r" % sde)
    arch = a.arch or ARCH.get(platform.machine(), platform.machine())
    uid, gid = parse_user(a.user)

    layer_tar = build_layer(a, mtime).tar()
    layer_gz = gzip_bytes(layer_tar)
    created = rfc3339(mtime)
    labels = {
        "org.opencontainers.image.title": a.name,
        "org.opencontainers.image.version": a.version,
        "org.opencontainers.image.source": source_url(a),
        "org.opencontainers.image.licenses": "LGPL-2.1-or-later",
    }
    config = {
        "created": created,
        "architecture": arch,
        "os": "linux",
        "config": {
            "User": "%d:%d" % (uid, gid),
            "Entrypoint": ["/usr/bin/" + a.name],
            "Env": ["PATH=/usr/bin:/bin"],
            "WorkingDir": "/",
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer_tar)]},
        "history": [{"created": created, "created_by": "scripts/build-oci.py --name %s --version %s"
                     % (a.name, a.version)}],
    }
    config_blob = canonical_json(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": sha256(config_blob), "size": len(config_blob)},
        "layers": [{"mediaType": MT_LAYER, "digest": sha256(layer_gz), "size": len(layer_gz)}],
        "annotations": {"org.opencontainers.image.version": a.version,
                        "org.opencontainers.image.created": created,
                        "org.opencontainers.image.title": a.name},
    }
    manifest_blob = canonical_json(manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{
            "mediaType": MT_MANIFEST,
            "digest": sha256(manifest_blob),
            "size": len(manifest_blob),
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": a.tag or a.version},
        }],
    }
    if a.image_name:
        # What `ctr images import` (containerd) names the image after; the
        # spec's images: key preloads archives that way (docs/KUBERNETES.md).
        index["manifests"][0]["annotations"]["io.containerd.image.name"] = a.image_name
    files = {
        "oci-layout": canonical_json({"imageLayoutVersion": "1.0.0"}),
        "index.json": canonical_json(index),
    }
    for blob in (layer_gz, config_blob, manifest_blob):
        files["blobs/sha256/" + sha256(blob)[7:]] = blob

    out_dir = os.path.dirname(os.path.abspath(a.output))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build-oci.", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as t:
                names = sorted(set(files) | {"blobs", "blobs/sha256"})
                for n in names:
                    ti = tarfile.TarInfo(n)
                    ti.mtime = mtime
                    ti.uid = ti.gid = 0
                    ti.uname = ti.gname = ""
                    if n in files:
                        ti.mode = 0o644
                        ti.size = len(files[n])
                        t.addfile(ti, io.BytesIO(files[n]))
                    else:
                        ti.type = tarfile.DIRTYPE
                        ti.mode = 0o755
                        t.addfile(ti)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, a.output)
    except BaseException:
        os.unlink(tmp)
        raise

    digest = sha256(manifest_blob)
    image_size = len(manifest_blob) + len(config_blob) + len(layer_gz)
    print("%s %s (%s/linux): digest %s, image %d bytes (layer %d bytes compressed, %d uncompressed), "
          "archive %s %d bytes" % (a.name, a.tag or a.version, arch, digest, image_size, len(layer_gz),
                                   len(layer_tar), a.output, os.path.getsize(a.output)))
    return digest


def main(argv=None):
    ap = argparse.ArgumentParser(description="Build an OCI image archive of one program without a container "
                                 "runtime.")
    ap.add_argument("--binary", required=True, help="the program to put at /usr/bin/NAME")
    ap.add_argument("--name", required=True, help="image and program name")
    ap.add_argument("--version", required=True, help="org.opencontainers.image.version")
    ap.add_argument("--user", default=str(NONROOT), help="UID[:GID] the image runs as (default %d)" % NONROOT)
    ap.add_argument("--tag", help="org.opencontainers.image.ref.name in index.json (default: the version)")
    ap.add_argument("--image-name", metavar="REF", help="full image reference (e.g. registry.example.com/hull/"
                    "hull-node:0.1.0) recorded as io.containerd.image.name, so that `ctr images import` and a Hull "
                    "image's images: preload know the image by it")
    ap.add_argument("--source", help="org.opencontainers.image.source (default: git remote.origin.url)")
    ap.add_argument("--arch", help="OCI architecture (default: this machine's, e.g. amd64)")
    ap.add_argument("--ca-certificates", default="/etc/ssl/certs/ca-certificates.crt",
                    help="CA bundle to include if it exists")
    ap.add_argument("--zoneinfo", metavar="DIR", help="add the compiled time zones from DIR (e.g. "
                    "/usr/share/zoneinfo) at /usr/share/zoneinfo; hull-operator needs them for maintenance "
                    "windows in zones other than UTC")
    ap.add_argument("--strip", action="store_true", help="strip the program's symbols and debug information "
                    "(a copy; the libraries are taken as they are)")
    ap.add_argument("-o", "--output", required=True, help="the archive to write")
    a = ap.parse_args(argv)
    if not re.match(r"^[a-z0-9][a-z0-9._-]*$", a.name):
        die("--name must be a lower-case image name, not %r" % a.name)
    build(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
