#!/bin/bash
# Install everything Hull needs to build, test and boot images on Debian 12.
set -euo pipefail
packages=(
        # build
        meson ninja-build pkg-config gcc libc6-dev
        libyaml-dev libjansson-dev libssl-dev libblkid-dev libfdisk-dev libmount-dev
        libcurl4-openssl-dev libmicrohttpd-dev libsystemd-dev
        # tests: HTTPS server certificates, API calls, SSH into a test VM
        openssl curl openssh-client
        # time zones of maintenance windows (osspec.c)
        tzdata
        # image builder's tools
        mmdebstrap erofs-utils e2fsprogs cryptsetup-bin fdisk dosfstools mtools
        # data disks (tests/integration/test-datadisk.sh formats xfs)
        xfsprogs
        # spec 'repositories:' test: a signed apt repository (tests/integration/test-build-repos.sh)
        gnupg apt-utils
        grub-efi-amd64-bin grub-common tar util-linux
        # the installer: ISO (hull-build installer), ESP compression, its tests
        xorriso libzstd-dev zstd
        # booting images
        qemu-system-x86 ovmf python3
        # container images of the controllers: checked and pushed
        # (scripts/build-oci.py, tests/kube/test-oci.sh, docs/DEPLOY.md)
        skopeo
        # OS updates through an OCI registry: a real registry with TLS and
        # htpasswd auth on loopback (tests/integration/test-oci.sh)
        docker-registry apache2-utils
)
missing=()
for p in "${packages[@]}"; do
        dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
        echo "Installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
