#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# fetch_stream() against a real HTTPS server on 127.0.0.1 (fetch-server.py)
# with its own CA: verification, mTLS, resume after drops and stalls, servers
# that ignore Range, files that change between connections, HTTP errors and
# the retry limit. Every download is compared byte for byte.
set -uo pipefail
TOOL=$1 SERVER=$2
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl missing"; exit 77; }

T=$(mktemp -d /var/tmp/hull-test-fetch.XXXXXX)
PIDS=()
cleanup() {
        for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
        for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
        rm -rf "$T"
}
trap cleanup EXIT
failures=0
check() { if eval "$2"; then echo "PASS: $1"; else echo "FAIL: $1"; failures=$((failures + 1)); fi; }
# The test talks to 127.0.0.1 only; a proxy from the environment must not
# get in between.
unset https_proxy HTTPS_PROXY http_proxy HTTP_PROXY all_proxy ALL_PROXY
export no_proxy=127.0.0.1 NO_PROXY=127.0.0.1

# --- certificates: a CA, a server certificate for 127.0.0.1, a client
# certificate, and a second CA that trusts none of them.
ssl() { openssl "$@" >>"$T/openssl.log" 2>&1 || { echo "FAIL: openssl $1"; cat "$T/openssl.log"; exit 1; }; }
mkca() {
        ssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
                -keyout "$T/$1.key" -out "$T/$1.pem" -subj "/CN=hull test $1" \
                -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
mkcert() {  # name CA extensions...
        ssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/$1.key" -out "$T/$1.csr" \
                -subj "/CN=hull test $1"
        printf '%s\n' "${@:3}" >"$T/$1.ext"
        ssl x509 -req -in "$T/$1.csr" -CA "$T/$2.pem" -CAkey "$T/$2.key" -CAcreateserial -days 2 \
                -extfile "$T/$1.ext" -out "$T/$1.pem"
}
mkca ca
mkca otherca
mkcert server ca "subjectAltName=IP:127.0.0.1" "extendedKeyUsage=serverAuth"
mkcert client ca "extendedKeyUsage=clientAuth"
mkcert rogue otherca "extendedKeyUsage=clientAuth"

mkdir -p "$T/www/sub"
head -c 20M /dev/urandom >"$T/www/big.bin"
echo "small file" >"$T/www/sub/small.txt"
SIZE=$(stat -c %s "$T/www/big.bin")
SUM=$(sha256sum <"$T/www/big.bin" | cut -d' ' -f1)

start_server() {  # name [--client-ca F | --plain]
        local name=$1 tls=(--cert "$T/server.pem" --key "$T/server.key")
        shift
        [ "${1:-}" = --plain ] && tls=()
        python3 "$SERVER" --root "$T/www" "${tls[@]}" \
                --port-file "$T/$name.port" --log "$T/$name.log" "$@" 2>"$T/$name.err" &
        PIDS+=($!)
        for _ in $(seq 100); do
                [ -s "$T/$name.port" ] && return 0
                sleep 0.1
        done
        echo "FAIL: $name server did not start"
        cat "$T/$name.err"
        exit 1
}
start_server plain
start_server mtls --client-ca "$T/ca.pem"
start_server http --plain
PORT=$(cat "$T/plain.port") MPORT=$(cat "$T/mtls.port") HPORT=$(cat "$T/http.port")
URL=https://127.0.0.1:$PORT
MURL=https://127.0.0.1:$MPORT
LOG=$T/plain.log

# F NAME URL [options]: download into $T/NAME.out; the exit code goes to
# $T/NAME.rc, the error line to $T/NAME.msg, the tool's stderr to $T/NAME.err.
F() {
        local name=$1 url=$2
        shift 2
        "$TOOL" "$url" "$T/$name.out" "$@" >"$T/$name.msg" 2>"$T/$name.err"
        echo $? >"$T/$name.rc"
}
rc() { cat "$T/$1.rc"; }
same() { [ "$(sha256sum <"$T/$1.out" | cut -d' ' -f1)" = "$SUM" ]; }
err() { grep -q "^error: $2: " "$T/$1.msg"; }
requests() { grep -c -F "GET $1 " "$LOG"; }
handshake_failures() { grep -c '^handshake-failed' "$1"; }

F plain "$URL/big.bin" --ca "$T/ca.pem"
check "plain download matches" '[ "$(rc plain)" = 0 ] && same plain && grep -qx "size $SIZE" "$T/plain.err"'

n=$(handshake_failures "$LOG")
F wrongca "$URL/big.bin" --ca "$T/otherca.pem" --retries 5
check "wrong CA fails with EPROTO" '[ "$(rc wrongca)" = 71 ] && err wrongca EPROTO'
check "wrong CA is not retried" '[ "$(handshake_failures "$LOG")" = $((n + 1)) ]'

F sysca "$URL/big.bin" --retries 2
check "system CA store does not trust the test CA" '[ "$(rc sysca)" = 71 ] && err sysca EPROTO'

F mtls "$MURL/big.bin" --ca "$T/ca.pem" --cert "$T/client.pem" --key "$T/client.key"
check "mTLS with a client certificate works" '[ "$(rc mtls)" = 0 ] && same mtls'

# With TLS 1.3 the server's alert may be lost to a reset (see fetch.c), so
# the attempt can be retried, but the error must still be a TLS one.
for i in 1 2 3; do
        F nocert$i "$MURL/big.bin" --ca "$T/ca.pem" --retries 2
        check "mTLS without a client certificate fails with EPROTO ($i)" \
                '[ "$(rc nocert$i)" = 71 ] && err nocert$i EPROTO && grep -q "certificate" "$T/nocert$i.msg"'
done

for i in 1 2 3; do
        F rogue$i "$MURL/big.bin" --ca "$T/ca.pem" --cert "$T/rogue.pem" --key "$T/rogue.key" --retries 2
        check "mTLS with an untrusted client certificate fails with EPROTO ($i)" '[ "$(rc rogue$i)" = 71 ] && err rogue$i EPROTO'
done

F halfpair "$MURL/big.bin" --ca "$T/ca.pem" --cert "$T/client.pem"
check "client certificate without key is EINVAL" '[ "$(rc halfpair)" = 22 ]'

F noca "$URL/big.bin" --ca "$T/missing.pem"
check "missing CA file is EINVAL" '[ "$(rc noca)" = 22 ] && grep -q missing.pem "$T/noca.msg"'

F http "http://127.0.0.1:$HPORT/big.bin"
check "http:// without allow-http is EINVAL" '[ "$(rc http)" = 22 ] && [ ! -s "$T/http.log" ]'
F allowhttp "http://127.0.0.1:$HPORT/drop-after/5000000/big.bin" --allow-http --retries 1
check "http:// with allow-http (tests only) works and resumes" '[ "$(rc allowhttp)" = 0 ] && same allowhttp'

F drop "$URL/drop-after/1048576/big.bin" --ca "$T/ca.pem" --retries 3
check "drop after every MiB recovers by resuming" '[ "$(rc drop)" = 0 ] && same drop'
check "resumed with Range requests answered 206" \
        '[ "$(grep -c -F "GET /drop-after/1048576/big.bin range=bytes=" "$LOG")" -ge 19 ] &&
         ! grep -F "GET /drop-after/1048576/big.bin range=bytes=" "$LOG" | grep -qv "status=206"'
check "size reported once per connection" '[ "$(grep -c -x "size $SIZE" "$T/drop.err")" -ge 20 ]'

F norange "$URL/no-range/drop-once/5000000/big.bin?t=1" --ca "$T/ca.pem" --retries 2
check "server ignoring Range: prefix skipped, bytes right" \
        '[ "$(rc norange)" = 0 ] && same norange && [ "$(grep -c -F "GET /no-range/drop-once/5000000/big.bin?t=1 range=bytes=5000000- status=200" "$LOG")" = 1 ]'

F norangeoff "$URL/no-range/big.bin" --ca "$T/ca.pem" --offset 7777777
check "server ignoring Range with an offset" \
        '[ "$(rc norangeoff)" = 0 ] && cmp -s "$T/norangeoff.out" <(tail -c +7777778 "$T/www/big.bin")'

F offset "$URL/big.bin" --ca "$T/ca.pem" --offset 12345678
check "offset start" '[ "$(rc offset)" = 0 ] && cmp -s "$T/offset.out" <(tail -c +12345679 "$T/www/big.bin") &&
        grep -qx "size $SIZE" "$T/offset.err"'

F atend "$URL/big.bin" --ca "$T/ca.pem" --offset "$SIZE"
check "offset at the end: nothing to do" '[ "$(rc atend)" = 0 ] && [ ! -s "$T/atend.out" ]'

F pastend "$URL/big.bin" --ca "$T/ca.pem" --offset $((SIZE + 10))
check "offset past the end is ECOMM" '[ "$(rc pastend)" = 70 ] && err pastend ECOMM'

t0=$(date +%s)
F missing "$URL/nope.bin" --ca "$T/ca.pem" --retries 5
check "404 fails fast with ENOENT" '[ "$(rc missing)" = 2 ] && err missing ENOENT && [ "$(requests /nope.bin)" = 1 ] &&
        [ $(($(date +%s) - t0)) -lt 3 ]'

F forbidden "$URL/status/403/big.bin" --ca "$T/ca.pem" --retries 5
check "403 is EACCES" '[ "$(rc forbidden)" = 13 ] && err forbidden EACCES && [ "$(requests /status/403/big.bin)" = 1 ]'

F teapot "$URL/status/418/big.bin" --ca "$T/ca.pem" --retries 5
check "other 4xx is ECOMM, not retried" '[ "$(rc teapot)" = 70 ] && [ "$(requests /status/418/big.bin)" = 1 ]'

F once500 "$URL/500-once/big.bin?t=1" --ca "$T/ca.pem" --retries 1
check "500 once is retried" '[ "$(rc once500)" = 0 ] && same once500 && [ "$(requests "/500-once/big.bin?t=1")" = 2 ]'

F always500 "$URL/500/big.bin" --ca "$T/ca.pem" --retries 2
check "500 after all retries is ECOMM" '[ "$(rc always500)" = 70 ] && err always500 ECOMM &&
        [ "$(requests /500/big.bin)" = 3 ] && grep -q "HTTP 500" "$T/always500.msg"'

F stall "$URL/stall-once/1048576/big.bin?t=1" --ca "$T/ca.pem" --retries 1 --stall-timeout 2
check "stall detected and resumed" '[ "$(rc stall)" = 0 ] && same stall &&
        grep -q -F "GET /stall-once/1048576/big.bin?t=1 range=bytes=1048576- status=206" "$LOG"'

F exhausted "$URL/drop-after/0/big.bin" --ca "$T/ca.pem" --retries 2
check "server closing early until retries run out is ENODATA" \
        '[ "$(rc exhausted)" = 61 ] && err exhausted ENODATA && [ "$(requests /drop-after/0/big.bin)" = 3 ]'

F noretry "$URL/drop-after/1048576/big.bin?t=2" --ca "$T/ca.pem"
check "no retries: a drop is ENODATA right away" '[ "$(rc noretry)" = 61 ] && [ "$(requests "/drop-after/1048576/big.bin?t=2")" = 1 ] &&
        cmp -s "$T/noretry.out" <(head -c 1048576 "$T/www/big.bin")'

F stalled "$URL/stall/1000/big.bin" --ca "$T/ca.pem" --retries 1 --stall-timeout 1
check "a server trickling a little per connection runs out of retries: ECOMM" \
        '[ "$(rc stalled)" = 70 ] && err stalled ECOMM && [ "$(requests /stall/1000/big.bin)" = 2 ]'

# A port nothing listens on: bind, note, close.
DEAD=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
F down "https://127.0.0.1:$DEAD/big.bin" --ca "$T/ca.pem" --retries 2
check "server down after all retries is ECOMM" '[ "$(rc down)" = 70 ] && err down ECOMM && grep -q "3 attempts" "$T/down.msg"'

F grow "$URL/grow-once/3000000/big.bin?t=1" --ca "$T/ca.pem" --retries 2
check "file that changed size is ESTALE" '[ "$(rc grow)" = 116 ] && err grow ESTALE'

F etag "$URL/etag-once/3000000/big.bin?t=1" --ca "$T/ca.pem" --retries 2
check "file that changed ETag is ESTALE" '[ "$(rc etag)" = 116 ] && err etag ESTALE'

F redirect "$URL/redirect/big.bin" --ca "$T/ca.pem"
check "redirect followed" '[ "$(rc redirect)" = 0 ] && same redirect'

F downgrade "$URL/redirect-http/big.bin" --ca "$T/ca.pem" --retries 2
check "redirect to http:// refused" '[ "$(rc downgrade)" = 71 ] && [ "$(requests /redirect-http/big.bin)" = 1 ]'

F chunked "$URL/chunked/big.bin" --ca "$T/ca.pem"
check "chunked body of unknown size" '[ "$(rc chunked)" = 0 ] && same chunked && grep -qx "size 0" "$T/chunked.err"'

F cancel "$URL/big.bin" --ca "$T/ca.pem" --retries 3 --cancel-after 3000000
check "cancel is ECANCELED" '[ "$(rc cancel)" = 125 ] && err cancel ECANCELED'

F small "$URL/sub/small.txt" --ca "$T/ca.pem"
check "small file in a subdirectory" '[ "$(rc small)" = 0 ] && cmp -s "$T/small.out" "$T/www/sub/small.txt"'

if [ "$failures" -ne 0 ]; then
        echo "$failures check(s) failed; server log:"
        tail -n 50 "$LOG"
        exit 1
fi
exit 0
