#!/usr/bin/env python3
"""HTTPS served directly (issue 11, deployment kit): QBCDC_TLS_CERT and QBCDC_TLS_KEY.

With a self-signed certificate made by `openssl req` for this test:
- /healthz, a signed webhook, the feed (pull and an SSE event) answer over TLS 1.2+, and a
  client that trusts the certificate verifies it; plain HTTP on the same port gets no answer;
  TLS 1.1 is refused;
- a long-poll whose client leaves over TLS (close_notify, then FIN) is noticed at once;
- the admin CLI reaches the service over HTTPS by pinning the certificate's key, and refuses
  a service whose key is another;
- the bundled simulator posts its webhooks over HTTPS (pinned) and the feed is live;
- configuration errors name the variable: a certificate without its key, a key that does
  not match, an unreadable file (exit 2, before anything starts).
"""
import json
import os
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403

d = tmpdir("qbcdc-tls-")


def make_cert(name):
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], capture_output=True)
    if r.returncode != 0:
        diag(r.stderr.decode())
    os.chmod(key, 0o600)
    return cert, key


cert, key = make_cert("a")
other_cert, other_key = make_cert("b")
ok(os.path.exists(cert) and os.path.exists(other_cert), "two self-signed certificates made with openssl")

ctx = ssl.create_default_context(cafile=cert)


def https(port, method, path, body=None, headers=None, timeout=10):
    import http.client
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def wait_https(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            return https(port, "GET", "/healthz", timeout=2)[0]
        except (OSError, ssl.SSLError):
            time.sleep(0.1)
    return None


ADMIN, FEED, TOKEN = "adm-tls", "feed-tls", "verifier-tls"
port = free_port()
env = {"QBCDC_LISTEN": "127.0.0.1:%d" % port, "QBCDC_DATA_DIR": os.path.join(d, "data"), "QBCDC_SIM": "off",
       "QBCDC_TLS_CERT": cert, "QBCDC_TLS_KEY": key, "QBCDC_ADMIN_TOKEN": ADMIN, "QBCDC_FEED_TOKEN": FEED,
       "QBCDC_WEBHOOK_VERIFIER_TOKENS": TOKEN}
p = Proc([QBCDC, "serve"], env=env)
is_(wait_https(port), 200, "GET /healthz answers over HTTPS, the certificate verified by a client that trusts it")
ok("https://127.0.0.1:%d" % port in p.output(), "the log says it listens on https://")

with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        got = s.recv(100)
    except OSError:
        got = b""
ok(not got.startswith(b"HTTP/1.1 200"), "plain HTTP on the HTTPS port gets no answer", got)

old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
old.load_verify_locations(cert)
try:
    old.minimum_version = ssl.TLSVersion.TLSv1_1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with old.wrap_socket(s, server_hostname="127.0.0.1") as t:
            t.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            refused = False
except (ssl.SSLError, OSError, ValueError):
    refused = True
ok(refused, "TLS 1.1 is refused")

body = ('{"eventNotifications":[{"realmId":"77","dataChangeEvent":{"entities":[{"name":"Invoice","id":"1",'
        '"operation":"Update","lastUpdated":"2026-12-04T10:00:00.000Z"}]}}]}')
st, _, b = https(port, "POST", "/webhooks/intuit", body, {"intuit-signature": sign(body, TOKEN),
                                                           "Content-Type": "application/json"})
is_(st, 200, "a signed webhook is acked over HTTPS")
st, h, b = https(port, "GET", "/v1/changes?limit=1", headers={"Authorization": "Bearer " + FEED})
ok(st == 200 and "feed_id" in json.loads(b), "the feed answers over HTTPS")

# SSE over TLS: the first event arrives
import http.client
c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
c.request("GET", "/v1/changes/stream", headers={"Authorization": "Bearer " + FEED})
r = c.getresponse()
first = r.fp.readline() + r.fp.readline()
ok(r.status == 200 and b"event: feed" in first, "an SSE stream starts over HTTPS", first)
c.close()

# a long-poll whose TLS client leaves is noticed at once
def streams():
    st, _, m = https(port, "GET", "/metrics")
    for line in m.decode().splitlines():
        if line.startswith("qbcdc_feed_streams "):
            return float(line.split()[1])
    return None


st, _, b = https(port, "GET", "/v1/changes?limit=1", headers={"Authorization": "Bearer " + FEED})
head = json.loads(b)["next"]
t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="127.0.0.1")
t.sendall(("GET /v1/changes?after=%d&wait=60 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
           % (head, FEED)).encode())
deadline = time.time() + 10
while time.time() < deadline and streams() != 1:
    time.sleep(0.05)
is_(streams(), 1.0, "a long-poll over TLS waits (qbcdc_feed_streams 1)")
t.close()  # close_notify, then FIN
t0 = time.time()
while time.time() - t0 < 10 and streams() != 0:
    time.sleep(0.05)
gone = time.time() - t0
is_(streams(), 0.0, "its leaving is noticed (after %.2f s of a 60 s wait)" % gone)
ok(gone < 5, "well before the wait ends")

# the admin CLI over HTTPS, pinned
cli_env = dict(os.environ, QBCDC_LISTEN="127.0.0.1:%d" % port, QBCDC_ADMIN_TOKEN=ADMIN, QBCDC_TLS_CERT=cert)
r = subprocess.run([QBCDC, "realms"], env=cli_env, capture_output=True, timeout=30)
ok(r.returncode == 0 and b'"realms"' in r.stdout, "qbcdc realms reaches the service over HTTPS", r.stderr)
r = subprocess.run([QBCDC, "realms"], env=dict(cli_env, QBCDC_TLS_CERT=other_cert), capture_output=True, timeout=30)
ok(r.returncode == 1 and b"cannot reach" in r.stderr, "and refuses a service whose key is not the pinned one",
   r.stderr)
is_(p.stop(), 0, "qbcdc stops")

# configuration errors name the variable, before anything starts
for extra, want, name in (
        ({"QBCDC_TLS_KEY": None}, b"QBCDC_TLS_KEY", "a certificate without its key"),
        ({"QBCDC_TLS_KEY": other_key}, b"QBCDC_TLS_KEY", "a key that does not match the certificate"),
        ({"QBCDC_TLS_CERT": os.path.join(d, "missing.pem")}, b"QBCDC_TLS_CERT", "a certificate file that is missing")):
    e = dict(env, QBCDC_LISTEN="127.0.0.1:%d" % free_port())
    for k, v in extra.items():
        if v is None:
            e.pop(k)
        else:
            e[k] = v
    r = subprocess.run([QBCDC, "serve"], env=dict(os.environ, **e), capture_output=True, timeout=30)
    ok(r.returncode == 2 and want in r.stderr, "%s: exit 2 naming %s" % (name, want.decode()), r.stderr)

# dev mode over HTTPS: the bundled simulator's webhooks arrive, pinned
port = free_port()
sim_port = free_port()
env = {"QBCDC_LISTEN": "127.0.0.1:%d" % port, "QBCDC_DATA_DIR": os.path.join(d, "dev"), "QBCDC_SIM": "auto",
       "QBCDC_SIM_LISTEN": "127.0.0.1:%d" % sim_port, "QBCDC_TLS_CERT": cert, "QBCDC_TLS_KEY": key}
p = Proc([QBCDC, "serve"], env=env)
is_(wait_https(port), 200, "dev mode serves HTTPS")


def webhooks_in():
    try:
        st, _, m = https(port, "GET", "/metrics")
    except OSError:
        return 0
    for line in m.decode().splitlines():
        if line.startswith('qbcdc_webhooks_total{result="stored"}'):
            return float(line.split()[-1])
    return 0


deadline = time.time() + 45
while time.time() < deadline and webhooks_in() < 2:
    time.sleep(0.5)
ok(webhooks_in() >= 2, "the bundled simulator's webhooks arrive over HTTPS (pinned)", p.output()[-2000:])
is_(p.stop(), 0, "dev mode stops")
done_testing()
