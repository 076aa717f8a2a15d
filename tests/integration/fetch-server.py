#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""HTTPS file server with Range support and injectable faults, for
test-fetch.sh. Python standard library only.

  fetch-server.py --root DIR --cert PEM --key PEM --port-file F --log F
                  [--client-ca PEM]
  fetch-server.py --root DIR --plain --port-file F --log F

Listens on 127.0.0.1 on a free port and writes the port to --port-file once
it accepts connections. With --client-ca, clients must present a
certificate signed by it. --plain serves http:// instead. Every request is logged to --log as
"GET <path> range=<Range header or -> status=<code>", every failed TLS
handshake as "handshake-failed <reason>".

Faults are path prefixes, applied in order, before the file's path:
  /drop-after/N/...   every response closes the connection after N body bytes
  /drop-once/N/...    only the first response for this exact URL does
  /stall/N/...        every response stops sending after N body bytes
  /stall-once/N/...   only the first response for this exact URL does
  /500/...            always HTTP 500
  /500-once/...       HTTP 500 the first time this exact URL is asked for
  /status/CODE/...    always HTTP CODE
  /no-range/...       ignore Range: always 200 with the whole file
  /chunked/...        no Content-Length: chunked transfer encoding
  /grow-once/N/...    first response drops after N bytes, later ones serve
                      the file with one byte more (the file changed)
  /etag-once/N/...    strong ETag that changes after the first response,
                      which drops after N bytes (same size, other file)
  /redirect/...       302 to the rest of the path
  /redirect-http/...  302 to the rest of the path over plain http://
  /no-multirange/...  a request for several ranges gets 200 and the whole
                      file (as some object stores do); one range works
  /first-range-only/... a request for several ranges gets only the first
  /tamper/N/...       the byte at file offset N is served flipped
Several ranges in one request ("bytes=a-b,c-d") are answered with a
multipart/byteranges body; the log line then says "parts=K bytes=B".
"Exact URL" includes the query, so a test can make a fresh one with ?t=...
"""

import argparse
import http.server
import os
import re
import socket
import ssl
import sys
import threading
import time

CHUNK = 64 * 1024

seen_lock = threading.Lock()
seen = set()       # URLs whose "once" fault has fired
log_lock = threading.Lock()
log_file = None


def log(line):
    with log_lock:
        log_file.write(line + "\n")
        log_file.flush()


def first_time(url):
    with seen_lock:
        if url in seen:
            return False
        seen.add(url)
        return True


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60            # no thread outlives a vanished client for long
    server_version = "fetch-server"
    sys_version = ""

    def setup(self):
        # Handshake here, in the connection's own thread: wrapping the
        # listening socket would do it in accept(), where one stalled
        # client would block every other.
        try:
            if self.server.ctx:
                self.request = self.server.ctx.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log(f"handshake-failed {e}")
            raise
        super().setup()

    def log_message(self, format, *args):
        pass

    def answer(self, code, headers=(), body=b""):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        log(f"GET {self.path} range={self.headers.get('Range', '-')} status={code}")

    def drop(self):
        # A bare TCP shutdown, no TLS close_notify: what a crashed server or
        # a broken middlebox looks like. (SSLSocket.shutdown() sends none.)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self):
        url = self.path
        path, _, _ = url.partition("?")
        segs = [s for s in path.split("/") if s]
        drop_at = stall_at = None
        no_range = chunked = no_multi = first_only = False
        tamper = None
        extra = b""
        etag = None
        try:
            while segs:
                s = segs[0]
                if s in ("drop-after", "drop-once", "stall", "stall-once", "grow-once", "etag-once") and len(segs) > 1:
                    n = int(segs[1])
                    segs = segs[2:]
                    if s == "drop-after":
                        drop_at = n
                    elif s == "stall":
                        stall_at = n
                    elif s == "stall-once":
                        if first_time(url):
                            stall_at = n
                    elif s == "drop-once":
                        if first_time(url):
                            drop_at = n
                    elif s == "grow-once":
                        if first_time(url):
                            drop_at = n
                        else:
                            extra = b"!"
                    elif s == "etag-once":
                        if first_time(url):
                            drop_at = n
                            etag = '"v1"'
                        else:
                            etag = '"v2"'
                elif s == "500":
                    return self.answer(500, body=b"broken\n")
                elif s == "500-once":
                    segs = segs[1:]
                    if first_time(url):
                        return self.answer(500, body=b"try again\n")
                elif s == "status" and len(segs) > 1:
                    return self.answer(int(segs[1]), body=b"status\n")
                elif s == "no-range":
                    no_range = True
                    segs = segs[1:]
                elif s == "no-multirange":
                    no_multi = True
                    segs = segs[1:]
                elif s == "first-range-only":
                    first_only = True
                    segs = segs[1:]
                elif s == "tamper" and len(segs) > 1:
                    tamper = int(segs[1])
                    segs = segs[2:]
                elif s == "chunked":
                    chunked = True
                    segs = segs[1:]
                elif s == "redirect":
                    return self.answer(302, [("Location", "/" + "/".join(segs[1:]))])
                elif s == "redirect-http":
                    port = self.server.server_address[1]
                    return self.answer(302, [("Location", f"http://127.0.0.1:{port}/" + "/".join(segs[1:]))])
                else:
                    break
        except ValueError:
            return self.answer(400, body=b"bad fault parameter\n")

        name = "/".join(segs)
        full = os.path.realpath(os.path.join(self.server.root, name))
        if not name or not full.startswith(self.server.root + os.sep) or not os.path.isfile(full):
            return self.answer(404, body=b"not found\n")
        with open(full, "rb") as f:
            data = f.read() + extra
        if tamper is not None and tamper < len(data):
            data = data[:tamper] + bytes([data[tamper] ^ 0xff]) + data[tamper + 1:]
        size = len(data)

        start, end, code = 0, size - 1, 200
        rng = self.headers.get("Range")
        ctype = None
        if rng and not no_range and "," in rng:
            specs = []
            for spec in rng.strip()[len("bytes="):].split(","):
                m = re.fullmatch(r"(\d+)-(\d+)", spec.strip())
                if not rng.strip().startswith("bytes=") or not m:
                    return self.answer(400, body=b"bad range\n")
                specs.append((int(m.group(1)), min(int(m.group(2)), size - 1)))
            if no_multi:
                pass                            # 200, the whole file
            elif first_only:
                start, end = specs[0]
                code = 206
            else:
                boundary = "HULL_TEST_BOUNDARY_0123"
                body = b""
                for a, b in specs:
                    body += (f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                             f"Content-Range: bytes {a}-{b}/{size}\r\n\r\n").encode() + data[a:b + 1]
                body += f"\r\n--{boundary}--\r\n".encode()
                log(f"GET {url} range={rng} status=206 parts={len(specs)} bytes={sum(b - a + 1 for a, b in specs)}")
                data, size, start, end, code = body, len(body), 0, len(body) - 1, 206
                ctype = f"multipart/byteranges; boundary={boundary}"
        elif rng and not no_range:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if not m:
                return self.answer(400, body=b"bad range\n")
            start = int(m.group(1))
            if m.group(2):
                end = min(int(m.group(2)), size - 1)
            if start >= size:
                return self.answer(416, [("Content-Range", f"bytes */{size}")])
            code = 206

        self.send_response(code)
        if ctype:
            self.send_header("Content-Type", ctype)
        elif code == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        if etag:
            self.send_header("ETag", etag)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if not ctype:
            log(f"GET {url} range={rng or '-'} status={code} bytes={end - start + 1}")

        sent, pos = 0, start
        try:
            while pos <= end:
                n = min(CHUNK, end + 1 - pos)
                if drop_at is not None:
                    n = min(n, drop_at - sent)
                if stall_at is not None:
                    n = min(n, stall_at - sent)
                if n <= 0:
                    if drop_at is not None and sent >= drop_at:
                        return self.drop()
                    time.sleep(45)      # the client gives up long before
                    return self.drop()
                buf = data[pos:pos + n]
                if chunked:
                    self.wfile.write(b"%x\r\n" % len(buf) + buf + b"\r\n")
                else:
                    self.wfile.write(buf)
                sent += n
                pos += n
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass    # handshake failures are logged; client aborts are expected


def main():
    global log_file
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--plain", action="store_true")
    p.add_argument("--client-ca")
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    a = p.parse_args()

    log_file = open(a.log, "a")
    ctx = None
    if not a.plain:
        if not a.cert or not a.key:
            p.error("--cert and --key are needed without --plain")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        if a.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(a.client_ca)

    srv = Server(("127.0.0.1", 0), Handler)
    srv.ctx = ctx
    srv.root = os.path.realpath(a.root)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{srv.server_address[1]}\n")
    os.rename(tmp, a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
