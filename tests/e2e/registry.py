# SPDX-License-Identifier: LGPL-2.1-or-later
"""Debian's docker-registry (the CNCF distribution registry) on the host's
loopback, with TLS from a test CA and htpasswd auth, for the end-to-end
tests. A QEMU guest with user networking reaches it as 10.0.2.2:PORT.

  r = Registry(workdir); r.start()
  r.push(hull_build, bundle, "hull/os:2.0.0") -> "sha256:..."
  r.stop(); r.start()      # killed and started again, same port and storage
  r.ca, r.auth             # files for the guest: CA and a docker config.json
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import ssl

GUEST_HOST = "10.0.2.2"


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Registry:
    def __init__(self, work, user="hull", password="e2e-s3cret"):
        self.dir = os.path.join(work, "registry")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.port = _free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.guest_host = "%s:%d" % (GUEST_HOST, self.port)
        self.proc = None
        d = self.dir

        def ssl_cmd(*args):
            subprocess.run(["openssl"] + list(args), check=True, capture_output=True)
        self.ca = os.path.join(d, "ca.pem")
        ssl_cmd("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-keyout", d + "/ca.key", "-out", self.ca, "-subj", "/CN=hull e2e registry CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        ssl_cmd("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                d + "/server.key", "-out", d + "/server.csr", "-subj", "/CN=hull e2e registry")
        with open(d + "/server.ext", "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,IP:%s\nextendedKeyUsage=serverAuth\n" % GUEST_HOST)
        ssl_cmd("x509", "-req", "-in", d + "/server.csr", "-CA", self.ca, "-CAkey", d + "/ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", d + "/server.ext", "-out", d + "/server.pem")
        htpasswd = subprocess.run(["htpasswd", "-Bbn", user, password], check=True, capture_output=True, text=True)
        with open(d + "/htpasswd", "w") as f:
            f.write(htpasswd.stdout)
        with open(d + "/registry.yml", "w") as f:
            f.write("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s/storage\n"
                    "http:\n  addr: 127.0.0.1:%d\n  tls:\n    certificate: %s/server.pem\n    key: %s/server.key\n"
                    "auth:\n  htpasswd:\n    realm: hull-e2e\n    path: %s/htpasswd\n" % (d, self.port, d, d, d))
        token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        self.auth = os.path.join(d, "auth.json")
        with open(self.auth, "w") as f:
            json.dump({"auths": {self.host: {"auth": token}, self.guest_host: {"auth": token}}}, f)

    def start(self, timeout=30):
        log = open(os.path.join(self.dir, "registry.log"), "ab")
        self.proc = subprocess.Popen(["docker-registry", "serve", os.path.join(self.dir, "registry.yml")],
                                     stdout=log, stderr=log)
        ctx = ssl.create_default_context(cafile=self.ca)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen("https://%s/v2/" % self.host, context=ctx, timeout=2)
                return
            except urllib.error.HTTPError:
                return  # 401: it answers
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("docker-registry did not start")

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def push(self, hull_build, bundle, repo_tag):
        r = subprocess.run([hull_build, "push", bundle, "%s/%s" % (self.host, repo_tag), "--auth", self.auth,
                            "--ca", self.ca], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("hull-build push failed: " + r.stderr + r.stdout)
        return r.stdout.strip().splitlines()[-1]
