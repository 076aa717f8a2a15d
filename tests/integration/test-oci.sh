#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# hull-build push and the OCI pull (oci.h, oci-bundle.h) against Debian's
# docker-registry on 127.0.0.1 with TLS (a CA made here) and htpasswd auth;
# skopeo reads what was pushed; bad input gets a clear error and writes
# nothing; oci-fault-proxy.py injects 403, 429 and 503 and a redirect to
# another host name (blob storage), which must not see the credentials.
set -uo pipefail
TOOL=$1 HULL_BUILD=$2 UPDATE_TOOL=$3 PROXY=$4 HULL_AGENT=${5:-} HULLCTL=${6:-} TOKEN_SERVER=${7:-}
REGISTRY=${REGISTRY:-/usr/bin/docker-registry}
for t in openssl htpasswd python3 "$REGISTRY"; do
        command -v "$t" >/dev/null || { echo "SKIP: $t missing"; exit 77; }
done

T=$(mktemp -d /var/tmp/hull-test-oci.XXXXXX)
PIDS=()
cleanup() {
        for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
        for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
        rm -rf "$T"
}
trap cleanup EXIT; [ -n "${KEEP:-}" ] && trap - EXIT
failures=0
check() { if eval "$2"; then echo "PASS: $1"; else echo "FAIL: $1"; failures=$((failures + 1)); return 1; fi; }
unset https_proxy HTTPS_PROXY http_proxy HTTP_PROXY all_proxy ALL_PROXY REGISTRY_AUTH_FILE DOCKER_CONFIG
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost HOME=$T/home
mkdir -p "$HOME"

ssl() { openssl "$@" >>"$T/openssl.log" 2>&1 || { echo "FAIL: openssl $1"; cat "$T/openssl.log"; exit 1; }; }
ssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -keyout "$T/ca.key" -out "$T/ca.pem" \
        -subj "/CN=hull test registry CA" -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign
ssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/server.key" -out "$T/server.csr" \
        -subj "/CN=hull test registry"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$T/server.ext"
ssl x509 -req -in "$T/server.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial -days 2 \
        -extfile "$T/server.ext" -out "$T/server.pem"
# skopeo's --cert-dir wants *.crt files.
mkdir -p "$T/certs" && cp "$T/ca.pem" "$T/certs/ca.crt"

htpasswd -Bbn hull s3cret >"$T/htpasswd" 2>/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# The servers start slowly when CI runs QEMU tests beside this one: wait up
# to 60 s for a port file, or for any HTTP answer (401 counts), and stop
# with the server's log when it never comes.
wait_file() {
        for _ in $(seq 600); do [ -s "$1" ] && return 0; sleep 0.1; done
        echo "FAIL: $2 did not start"; cat "$3" 2>/dev/null; exit 1
}
wait_https() {
        for _ in $(seq 600); do
                [ "$(curl -s --cacert "$T/ca.pem" -o /dev/null -w '%{http_code}' "https://$1/v2/")" != 000 ] && return 0
                sleep 0.1
        done
        echo "FAIL: $2 did not start"; cat "$3" 2>/dev/null; exit 1
}
PORT=$(free_port)
REG=127.0.0.1:$PORT
cat >"$T/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $T/storage
http:
  addr: 127.0.0.1:$PORT
  tls:
    certificate: $T/server.pem
    key: $T/server.key
auth:
  htpasswd:
    realm: hull-test
    path: $T/htpasswd
EOF
"$REGISTRY" serve "$T/registry.yml" >"$T/registry.log" 2>&1 &
PIDS+=($!)
wait_https "$REG" registry "$T/registry.log"

b64() { printf '%s' "$1" | base64 -w0; }
printf '{"auths":{"%s":{"auth":"%s"}}}' "$REG" "$(b64 hull:s3cret)" >"$T/auth.json"
printf '{"auths":{"https://%s/v1/":{"username":"hull","password":"wrong"}}}' "$REG" >"$T/badauth.json"
printf '{"auths":{},"credsStore":"secretservice"}' >"$T/helper.json"

# --- a small real bundle: 1 MiB + 3 MiB of random payloads.
"$HULL_BUILD" keygen "$T/rel.key" "$T/rel.pub" >/dev/null || { echo "FAIL: keygen"; exit 1; }
head -c 3M /dev/urandom >"$T/rootfs"
head -c 1M /dev/urandom >"$T/kernel"
head -c 70000 /dev/urandom >"$T/initrd"
"$UPDATE_TOOL" make-bundle "$T/rel.key" "$T/b.hullb" 2.0.0 x86_64 "$T/rootfs" "$T/kernel" "$T/initrd" >/dev/null ||
        { echo "FAIL: make-bundle"; exit 1; }
SUM=$(sha256sum <"$T/b.hullb" | cut -d' ' -f1)

# P NAME ARGS...: hull-build push; stdout to NAME.out, stderr NAME.err, rc NAME.rc
P() { local n=$1; shift; "$HULL_BUILD" push "$@" >"$T/$n.out" 2>"$T/$n.err"; echo $? >"$T/$n.rc"; }
# O NAME ARGS...: oci-tool
O() { local n=$1; shift; "$TOOL" "$@" >"$T/$n.out" 2>"$T/$n.err"; echo $? >"$T/$n.rc"; }
rc() { cat "$T/$1.rc"; }
has() { grep -q -F -- "$2" "$T/$1.out" "$T/$1.err"; }

# --- push: chunked uploads (1 MiB chunks: the rootfs takes 3 PATCHes),
# then again with every blob already there.
P push1 "$T/b.hullb" "$REG/hull/os:2.0.0" --auth "$T/auth.json" --ca "$T/ca.pem" --chunk-size 1M
DIGEST=$(tail -n1 "$T/push1.out")
check "push succeeds and prints the digest last" '[ "$(rc push1)" = 0 ] && [[ "$DIGEST" =~ ^sha256:[0-9a-f]{64}$ ]]'
check "push prints the pinned reference" 'has push1 "pinned: oci://$REG/hull/os@$DIGEST"'
check "first push uploads all 5 blobs" '[ "$(grep -c ^uploaded "$T/push1.out")" = 5 ]'
P push2 "$T/b.hullb" "$REG/hull/os:2.0.0" --auth "$T/auth.json" --ca "$T/ca.pem"
check "second push: every blob exists, same digest" \
        '[ "$(rc push2)" = 0 ] && [ "$(grep -c ^exists "$T/push2.out")" = 5 ] && [ "$(tail -n1 "$T/push2.out")" = "$DIGEST" ]'
# The default credentials file: $DOCKER_CONFIG/config.json.
mkdir -p "$T/dockercfg" && cp "$T/auth.json" "$T/dockercfg/config.json"
DOCKER_CONFIG=$T/dockercfg P push3 "$T/b.hullb" "$REG/hull/os:again" --ca "$T/ca.pem"
check "credentials from \$DOCKER_CONFIG/config.json" '[ "$(rc push3)" = 0 ] && [ "$(tail -n1 "$T/push3.out")" = "$DIGEST" ]'

# --- skopeo reads it.
if command -v skopeo >/dev/null; then
        skopeo inspect --raw --cert-dir "$T/certs" --creds hull:s3cret "docker://$REG/hull/os:2.0.0" >"$T/raw.json" 2>"$T/skopeo.err"
        check "skopeo inspect --raw reads the manifest" \
                '[ "$(sha256sum <"$T/raw.json" | cut -d" " -f1)" = "${DIGEST#sha256:}" ] && grep -q "application/vnd.hull.bundle.v1" "$T/raw.json"'
        # skopeo 1.9 (containers/image 5.23) does not inspect artifacts
        # beyond --raw: it says so and names the empty config, which is what
        # image-spec 1.1 prescribes for an artifact that is not an image.
        skopeo inspect --cert-dir "$T/certs" --creds hull:s3cret "docker://$REG/hull/os:2.0.0" >"$T/inspect.json" 2>"$T/skopeo2.err"
        check "skopeo inspect recognises an artifact, not an image" \
                'grep -q "artifact with type .*application/vnd.oci.empty.v1+json" "$T/skopeo2.err"'
        skopeo copy -q --src-cert-dir "$T/certs" --src-creds hull:s3cret "docker://$REG/hull/os:2.0.0" "oci:$T/layout:x" \
                >"$T/skopeocopy.out" 2>&1
        check "skopeo copy takes the artifact into an OCI layout, blobs intact" \
                '[ -s "$T/layout/blobs/sha256/${DIGEST#sha256:}" ] &&
                 cmp -s "$T/layout/blobs/sha256/$(sha256sum <"$T/rootfs" | cut -d" " -f1)" "$T/rootfs"'
else
        echo "SKIP: skopeo missing"
fi

# --- pull through the library: byte-identical.
O pull --auth "$T/auth.json" --ca "$T/ca.pem" pull "oci://$REG/hull/os@$DIGEST" "$T/pulled.hullb"
check "pull rebuilds a byte-identical bundle" \
        '[ "$(rc pull)" = 0 ] && [ "$(sha256sum <"$T/pulled.hullb" | cut -d" " -f1)" = "$SUM" ]'
O resolve --auth "$T/auth.json" --ca "$T/ca.pem" resolve "$REG/hull/os:2.0.0"
check "a tag resolves to the pushed digest" '[ "$(rc resolve)" = 0 ] && [ "$(cat "$T/resolve.out")" = "$DIGEST" ]'
"$UPDATE_TOOL" --help >/dev/null 2>&1
check "the pulled bundle verifies" '"$HULL_BUILD" verify --trust "$T/rel.pub" "$T/pulled.hullb" >/dev/null'

# --- bad input: a clear error, nothing written.
nothing() { [ ! -e "$T/$1.hullb" ] && [ ! -e "$T/$1.hullb.part" ]; }
O badpw --auth "$T/badauth.json" --ca "$T/ca.pem" pull "oci://$REG/hull/os@$DIGEST" "$T/badpw.hullb"
check "wrong password: EACCES, authentication failed" \
        '[ "$(rc badpw)" = 13 ] && has badpw "authentication failed" && has badpw "repository hull/os" && nothing badpw'
O noauth --ca "$T/ca.pem" pull "oci://$REG/hull/os@$DIGEST" "$T/noauth.hullb"
check "no credentials: EACCES naming the missing credentials" '[ "$(rc noauth)" = 13 ] && has noauth "no credentials" && nothing noauth'
O helper --auth "$T/helper.json" --ca "$T/ca.pem" pull "oci://$REG/hull/os@$DIGEST" "$T/helper.hullb"
check "credential store: EOPNOTSUPP" '[ "$(rc helper)" = 95 ] && has helper "credential helpers are not supported"'
P pushbadpw "$T/b.hullb" "$REG/hull/os:x" --auth "$T/badauth.json" --ca "$T/ca.pem"
check "push with a wrong password fails clearly" '[ "$(rc pushbadpw)" = 1 ] && has pushbadpw "authentication failed"'
O wrongca --auth "$T/auth.json" pull "oci://$REG/hull/os@$DIGEST" "$T/wrongca.hullb"
check "registry certificate not trusted: EPROTO" '[ "$(rc wrongca)" = 71 ] && nothing wrongca'
O missingtag --auth "$T/auth.json" --ca "$T/ca.pem" resolve "$REG/hull/os:9.9.9"
check "missing tag: ENOENT" '[ "$(rc missingtag)" = 2 ] && has missingtag "not found"'
O missingrepo --auth "$T/auth.json" --ca "$T/ca.pem" resolve "$REG/hull/nothing:2.0.0"
check "missing repository: ENOENT" '[ "$(rc missingrepo)" = 2 ] && has missingrepo "repository hull/nothing"'
ZERO=sha256:$(printf '0%.0s' $(seq 64))
O wrongpin --auth "$T/auth.json" --ca "$T/ca.pem" pull "oci://$REG/hull/os@$ZERO" "$T/wrongpin.hullb"
check "a digest pin the registry does not have: ENOENT, nothing written" '[ "$(rc wrongpin)" = 2 ] && nothing wrongpin'
O unpinned --auth "$T/auth.json" --ca "$T/ca.pem" pull "oci://$REG/hull/os:2.0.0" "$T/unpinned.hullb"
check "an unpinned reference is refused for pulling" '[ "$(rc unpinned)" = 22 ] && nothing unpinned'
O badref pull "oci://hull/os@$DIGEST" "$T/badref.hullb"
check "a reference without a registry host is refused" '[ "$(rc badref)" = 22 ] && has badref "registry host"'
P pushnotbundle "$T/rootfs" "$REG/hull/os:junk" --auth "$T/auth.json" --ca "$T/ca.pem"
check "push refuses a file that is not a bundle" '[ "$(rc pushnotbundle)" = 1 ] && has pushnotbundle "not a Hull bundle"'

# A tampered OCI manifest: the kernel layer points at the initrd's blob.
O raw --auth "$T/auth.json" --ca "$T/ca.pem" get-manifest "$REG/hull/os@$DIGEST"
python3 - "$T/raw.out" "$T/tampered.json" "$T/othertype.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
t = json.loads(json.dumps(m))
t["layers"][2]["digest"] = t["layers"][3]["digest"]
t["layers"][2]["size"] = t["layers"][3]["size"]
json.dump(t, open(sys.argv[2], "w"))
o = json.loads(json.dumps(m))
o["artifactType"] = "application/vnd.example.other.v1"
json.dump(o, open(sys.argv[3], "w"))
EOF
O puttampered --auth "$T/auth.json" --ca "$T/ca.pem" put-manifest "$REG/hull/os:tampered" "$T/tampered.json"
TDIGEST=$(cat "$T/puttampered.out")
O tampered --auth "$T/auth.json" --ca "$T/ca.pem" pull "oci://$REG/hull/os@$TDIGEST" "$T/tampered.hullb"
check "a layer that does not match the signed manifest is refused" \
        '[ "$(rc tampered)" = 74 ] && has tampered "layer for payload kernel has size" && nothing tampered'
O putother --auth "$T/auth.json" --ca "$T/ca.pem" put-manifest "$REG/hull/os:other" "$T/othertype.json"
ODIGEST=$(cat "$T/putother.out")
O other --auth "$T/auth.json" --ca "$T/ca.pem" pull "oci://$REG/hull/os@$ODIGEST" "$T/other.hullb"
check "another artifactType is refused" '[ "$(rc other)" = 124 ] && has other "not a Hull bundle" && nothing other'

# --- the agent's stage worker stages straight from the registry (slots are
# plain files here; the real partitions are covered by test-update.sh).
if [ -n "$HULL_AGENT" ] && command -v grub-editenv >/dev/null; then
        mkdir -p "$T/node/esp/EFI/hull/a" "$T/node/keys"
        cp "$T/rel.pub" "$T/node/keys/trusted.pem"
        grub-editenv "$T/node/esp/EFI/hull/grubenv" create
        grub-editenv "$T/node/esp/EFI/hull/grubenv" set hull_a_prio=10 hull_a_tries=0 hull_a_good=1 hull_b_prio=0 \
                hull_b_tries=0 hull_b_good=0 hull_a_version=1.0.0 hull_new_tries=3 hull_cmdline=
        head -c 8M /dev/zero >"$T/node/slot-a"
        head -c 8M /dev/zero >"$T/node/slot-b"
        job() {  # SOURCE [SHA256]
                python3 -c 'import json,sys; d=dict(source=sys.argv[1], esp=sys.argv[2]+"/esp", slot_a=sys.argv[2]+"/slot-a",
slot_b=sys.argv[2]+"/slot-b", booted="a", keys=sys.argv[2]+"/keys", arch="x86_64", registry_auth=sys.argv[3], ca_file=sys.argv[4])
if len(sys.argv) > 5: d["sha256"] = sys.argv[5]
print(json.dumps(d))' "$1" "$T/node" "$T/auth.json" "$T/ca.pem" "${@:2}"
        }
        W() { local n=$1; shift; "$HULL_AGENT" --stage-worker "$(job "$@")" >"$T/$n.out" 2>"$T/$n.err"; echo $? >"$T/$n.rc"; }
        W sw "oci://$REG/hull/os@$DIGEST" "${DIGEST#sha256:}"
        check "the stage worker stages oci://REG/REPO@DIGEST" \
                '[ "$(rc sw)" = 0 ] && grep -qx "V 2.0.0" "$T/sw.out" && cmp -n 3145728 "$T/node/slot-b" "$T/rootfs"'
        cp "$T/node/esp/EFI/hull/grubenv" "$T/env.before"
        W swtampered "oci://$REG/hull/os@$TDIGEST"
        check "the stage worker refuses the tampered OCI manifest before writing" \
                '[ "$(rc swtampered)" = 1 ] && grep -q "^E 74 .*layer for payload kernel" "$T/swtampered.out" &&
                 cmp -s "$T/env.before" "$T/node/esp/EFI/hull/grubenv"'
        # A delta from the registry: the running slot a holds this rootfs;
        # version 3 changes 8 KiB of it. Only the changed chunks, the head
        # and the chunk index come over, as byte ranges of the blobs.
        cp "$T/rootfs" "$T/rootfs3"
        dd if=/dev/urandom of="$T/rootfs3" bs=4096 seek=300 count=2 conv=notrunc status=none
        HULL_CHUNK_INDEX=1 "$UPDATE_TOOL" make-bundle "$T/rel.key" "$T/d3.hullb" 3.0.0 x86_64 "$T/rootfs3" "$T/kernel" \
                "$T/initrd" >/dev/null
        P pushd3 --auth "$T/auth.json" --ca "$T/ca.pem" "$T/d3.hullb" "$REG/hull/os:3.0.0"
        D3=$(tail -n 1 "$T/pushd3.out")
        dd if="$T/rootfs" of="$T/node/slot-a" conv=notrunc status=none
        cp "$T/kernel" "$T/node/esp/EFI/hull/a/vmlinuz"
        cp "$T/initrd" "$T/node/esp/EFI/hull/a/initrd.img"
        W swdelta "oci://$REG/hull/os@$D3"
        read -r _ dsize dfetched _ < <(grep "^S " "$T/swdelta.out")
        check "a delta from the registry: ${dfetched:-?} of ${dsize:-?} bytes fetched, slot b is version 3" \
                '[ "$(rc swdelta)" = 0 ] && grep -qx "V 3.0.0" "$T/swdelta.out" && cmp -n 3145728 "$T/node/slot-b" "$T/rootfs3" &&
                 [ "${dfetched:-0}" -gt 8192 ] && [ "$dfetched" -lt 300000 ]'
        W swother "oci://$REG/hull/os@$ODIGEST"
        check "the stage worker refuses another artifactType" \
                '[ "$(rc swother)" = 1 ] && grep -q "^E 124 .*not a Hull bundle" "$T/swother.out"'
fi

# --- hullctl cluster upgrade pins a tag by digest before writing the OS
# object (there is no cluster here: the run stops at the kubeconfig).
if [ -n "$HULLCTL" ]; then
        U() { local n=$1; shift; "$HULLCTL" cluster --kubeconfig "$T/no-kubeconfig" upgrade workers "$@" \
                --registry-auth "$T/auth.json" --registry-ca "$T/ca.pem" >"$T/$n.out" 2>"$T/$n.err"; echo $? >"$T/$n.rc"; }
        U up "--image-url" "oci://$REG/hull/os:2.0.0"
        # created: the OCI manifest's org.opencontainers.image.created, a
        # copy of the signed manifest's (update-tool writes 2026-11-22).
        check "cluster upgrade resolves the tag and says so" \
                'has up "Resolved oci://$REG/hull/os:2.0.0 to oci://$REG/hull/os@$DIGEST (version 2.0.0, created 2026-11-22T00:00:00Z)" && has up "kubeconfig"'
        U upbundle --image-url "oci://$REG/hull/os:2.0.0" --bundle "$T/b.hullb" --trust "$T/rel.pub"
        check "cluster upgrade --bundle: the registry holds that bundle" '[ "$(rc upbundle)" = 1 ] && has upbundle "Resolved" && has upbundle "kubeconfig"'
        "$UPDATE_TOOL" make-bundle "$T/rel.key" "$T/b3.hullb" 3.0.0 x86_64 "$T/kernel" "$T/initrd" "$T/initrd" >/dev/null
        U upother --image-url "oci://$REG/hull/os:2.0.0" --bundle "$T/b3.hullb" --trust "$T/rel.pub"
        check "cluster upgrade --bundle of another bundle is refused" '[ "$(rc upother)" = 2 ] && has upother "does not hold the bundle"'
        U upver --image-url "oci://$REG/hull/os:2.0.0" --version 2.0.1
        check "cluster upgrade --version that the artifact does not hold is refused" '[ "$(rc upver)" = 2 ] && has upver "holds version '"'"'2.0.0'"'"'"'
        U upsha --image-url "oci://$REG/hull/os:2.0.0" --sha256 "${ZERO#sha256:}"
        check "cluster upgrade --sha256 that is not the digest is refused" '[ "$(rc upsha)" = 2 ] && has upsha "resolves to $DIGEST"'
        U upmissing --image-url "oci://$REG/hull/os:7.7.7"
        check "cluster upgrade of a missing tag fails before the cluster" '[ "$(rc upmissing)" = 2 ] && has upmissing "not found" && ! has upmissing kubeconfig'
        U upforeign --image-url "oci://$REG/hull/os:other"
        check "cluster upgrade of a foreign artifact is refused" '[ "$(rc upforeign)" = 2 ] && has upforeign "not a Hull bundle"'
fi

# --- the Bearer token flow: a second registry with "auth: token", the
# token server signing RS256 JWTs with its certificate in "x5c".
if [ -n "$TOKEN_SERVER" ]; then
        ssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "$T/token.key" -out "$T/token.crt" -subj "/CN=hull test token signer"
        python3 "$TOKEN_SERVER" --cert "$T/server.pem" --key "$T/server.key" --sign-key "$T/token.key" \
                --sign-cert "$T/token.crt" --issuer hull-test-issuer --service hull-test-registry --user hull:s3cret \
                --port-file "$T/token.port" --log "$T/token.log" 2>"$T/token.err" &
        PIDS+=($!)
        wait_file "$T/token.port" "token server" "$T/token.err"
        TPORT=$(cat "$T/token.port")
        BPORT=$(free_port)
        BREG=127.0.0.1:$BPORT
        cat >"$T/bearer.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $T/bearer-storage
http:
  addr: 127.0.0.1:$BPORT
  tls:
    certificate: $T/server.pem
    key: $T/server.key
auth:
  token:
    realm: https://127.0.0.1:$TPORT/token
    service: hull-test-registry
    issuer: hull-test-issuer
    rootcertbundle: $T/token.crt
EOF
        "$REGISTRY" serve "$T/bearer.yml" >"$T/bearer.log" 2>&1 &
        PIDS+=($!)
        wait_https "$BREG" "bearer registry" "$T/bearer.log"
        printf '{"auths":{"%s":{"auth":"%s"}}}' "$BREG" "$(b64 hull:s3cret)" >"$T/bearerauth.json"
        printf '{"auths":{"%s":{"auth":"%s"}}}' "$BREG" "$(b64 hull:nope)" >"$T/bearerbad.json"
        # The registry's challenge names the actions in either order (a Go map).
        P bpush "$T/b.hullb" "$BREG/hull/os:2.0.0" --auth "$T/bearerauth.json" --ca "$T/ca.pem"
        check "bearer: push gets a token (pull,push scope) and succeeds" \
                '[ "$(rc bpush)" = 0 ] && [ "$(tail -n1 "$T/bpush.out")" = "$DIGEST" ] &&
                 grep -Eq "scope=repository:hull/os:(pull,push|push,pull) user=hull status=200" "$T/token.log"' ||
                { cat "$T/bpush.out" "$T/bpush.err" "$T/token.log" 2>/dev/null; tail -n 20 "$T/bearer.log"; }
        : >"$T/token.log"
        O bpull --auth "$T/bearerauth.json" --ca "$T/ca.pem" pull "oci://$BREG/hull/os@$DIGEST" "$T/bpull.hullb"
        check "bearer: pull (\"token\" field) rebuilds the bundle" \
                '[ "$(rc bpull)" = 0 ] && cmp -s "$T/bpull.hullb" "$T/b.hullb" &&
                 grep -q "scope=repository:hull/os:pull user=hull status=200" "$T/token.log"'
        check "bearer: one token for the whole pull (no token per blob)" \
                '[ "$(grep -c "scope=repository:hull/os:pull user=hull" "$T/token.log")" = 1 ]'
        # A token that stops working in the middle of a pull (expired,
        # revoked): the 3rd authorized request (the first payload blob,
        # streamed by fetch.c) reaches the registry without it; the client
        # gets a new token once and resumes.
        python3 "$PROXY" --upstream "$BREG" --upstream-ca "$T/ca.pem" --direct-auth none \
                --cert "$T/server.pem" --key "$T/server.key" --port-file "$T/bproxy.port" --log "$T/bproxy.log" \
                --mode-file "$T/bmode" 2>"$T/bproxy.err" &
        PIDS+=($!)
        wait_file "$T/bproxy.port" "bearer proxy" "$T/bproxy.err"
        BPX=127.0.0.1:$(cat "$T/bproxy.port")
        printf '{"auths":{"%s":{"auth":"%s"}}}' "$BPX" "$(b64 hull:s3cret)" >"$T/bproxyauth.json"
        echo strip@3 >"$T/bmode"
        : >"$T/token.log"
        O bexpire --auth "$T/bproxyauth.json" --ca "$T/ca.pem" pull "oci://$BPX/hull/os@$DIGEST" "$T/bexpire.hullb"
        check "bearer: a token refused mid-pull is renewed once and the pull completes" \
                '[ "$(rc bexpire)" = 0 ] && cmp -s "$T/bexpire.hullb" "$T/b.hullb" &&
                 [ "$(grep -c "scope=repository:hull/os:pull user=hull status=200" "$T/token.log")" = 2 ] &&
                 grep -q "blobs/sha256:.* auth=yes status=401" "$T/bproxy.log"'
        O bbad --auth "$T/bearerbad.json" --ca "$T/ca.pem" pull "oci://$BREG/hull/os@$DIGEST" "$T/bbad.hullb"
        check "bearer: wrong password: EACCES from the token service" \
                '[ "$(rc bbad)" = 13 ] && has bbad "authentication failed: the token service" && nothing bbad'
        O banon --ca "$T/ca.pem" pull "oci://$BREG/hull/os@$DIGEST" "$T/banon.hullb"
        check "bearer: anonymous gets a token without access: EACCES" \
                '[ "$(rc banon)" = 13 ] && has banon "authentication failed" && nothing banon'
fi

# --- faults through the proxy.
printf '{"auths":{"127.0.0.1:PROXYPORT":{"auth":"%s"}}}' "$(b64 hull:s3cret)" >"$T/proxyauth.tmpl"
python3 "$PROXY" --upstream "$REG" --upstream-ca "$T/ca.pem" --direct-auth "Basic $(b64 hull:s3cret)" \
        --cert "$T/server.pem" --key "$T/server.key" --port-file "$T/proxy.port" --log "$T/proxy.log" \
        --mode-file "$T/mode" 2>"$T/proxy.err" &
PIDS+=($!)
wait_file "$T/proxy.port" proxy "$T/proxy.err"
PP=$(cat "$T/proxy.port")
sed "s/PROXYPORT/$PP/" "$T/proxyauth.tmpl" >"$T/proxyauth.json"
PX=127.0.0.1:$PP
OP() { local n=$1; shift; O "$n" --auth "$T/proxyauth.json" --ca "$T/ca.pem" "$@"; }

: >"$T/mode"
OP proxyok pull "oci://$PX/hull/os@$DIGEST" "$T/proxyok.hullb"
check "pull through the proxy works" '[ "$(rc proxyok)" = 0 ] && cmp -s "$T/proxyok.hullb" "$T/b.hullb"'
# Chunked upload: 1 MiB chunks make the 3 MiB rootfs 3 PATCH requests with
# Content-Range; the 1 MiB kernel and the rest go up in one PUT each.
: >"$T/proxy.log"
"$HULL_BUILD" push "$T/b.hullb" "$PX/hull/chunked:1" --auth "$T/proxyauth.json" --ca "$T/ca.pem" --chunk-size 1M \
        >"$T/chunked.out" 2>&1
check "chunked upload: 3 PATCHes for the rootfs, then the same digest" \
        '[ "$(grep -c "^PATCH /v2/hull/chunked/blobs/uploads/" "$T/proxy.log")" = 3 ] && [ "$(tail -n1 "$T/chunked.out")" = "$DIGEST" ]'
check "a push sends no blob twice: HEAD first" '[ "$(grep -c "^HEAD /v2/hull/chunked/blobs/" "$T/proxy.log")" -ge 5 ]'

echo 403 >"$T/mode"
OP denied pull "oci://$PX/hull/os@$DIGEST" "$T/denied.hullb"
check "403: EACCES, denied, with the registry's message" \
        '[ "$(rc denied)" = 13 ] && has denied "denied" && has denied "DENIED" && nothing denied'
echo 429:2 >"$T/mode"
start=$(date +%s)
OP slow resolve "$PX/hull/os:2.0.0"
check "429 twice with Retry-After: 1 is waited out" \
        '[ "$(rc slow)" = 0 ] && [ "$(cat "$T/slow.out")" = "$DIGEST" ] && [ $(($(date +%s) - start)) -ge 2 ]'
echo 429:100 >"$T/mode"
OP busy --retries 2 resolve "$PX/hull/os:2.0.0"
check "429 that persists: EBUSY after the retries" '[ "$(rc busy)" = 16 ] && has busy "too many requests"'
echo 500:2 >"$T/mode"
OP flaky resolve "$PX/hull/os:2.0.0"
check "503 twice is retried" '[ "$(rc flaky)" = 0 ] && [ "$(cat "$T/flaky.out")" = "$DIGEST" ]'
echo 500:100 >"$T/mode"
OP down --retries 2 pull "oci://$PX/hull/os@$DIGEST" "$T/down.hullb"
check "5xx that persists: ECOMM, nothing written" '[ "$(rc down)" = 70 ] && has down "HTTP 503" && nothing down'
echo redirect >"$T/mode"
: >"$T/proxy.log"
OP redirect pull "oci://$PX/hull/os@$DIGEST" "$T/redirect.hullb"
check "blob GETs follow a redirect to another host" \
        '[ "$(rc redirect)" = 0 ] && cmp -s "$T/redirect.hullb" "$T/b.hullb" && grep -q "^GET /direct/v2/hull/os/blobs/" "$T/proxy.log"'
check "the redirected requests carry no Authorization header" \
        '! grep "^GET /direct/" "$T/proxy.log" | grep -q "auth=yes"'
: >"$T/mode"

echo "failures: $failures"
[ "$failures" = 0 ]
