#!/usr/bin/env python3
"""POST /webhooks/intuit, /healthz, /metrics and the CLI, against the real `qbcdc serve`.

Checks CONTRACT.md's ingress rules: 401 without a valid signature (nothing stored),
413 over 1 MiB (nothing stored), 200 only once stored, quarantine for signed bodies
that do not parse, both payload formats and content types, token rotation,
CloudEvents retry dedupe, 503 without verifier tokens, and that everything acked
survives a restart.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403

TOKEN = "verifier-new"
OLD = "verifier-old"

CLASSIC = ('{"eventNotifications":[{"realmId":"1185883450","dataChangeEvent":{"entities":['
           '{"name":"Customer","id":"1","operation":"Create","lastUpdated":"2015-10-05T14:42:19-0700"},'
           '{"name":"Vendor","id":"1","operation":"Create","lastUpdated":"2015-10-05T14:42:19-0700"}]}}]}')
CLOUD = ('[{"specversion":"1.0","id":"88cd52aa-33b6-4351-9aa4-47572edbd068",'
         '"source":"intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=","type":"qbo.account.created.v1",'
         '"datacontenttype":"application/json","time":"2025-09-10T21:31:25.179851517Z",'
         '"intuitentityid":"1234","intuitaccountid":"310687","data":{}},'
         '{"specversion":"1.0","id":"ev-2","source":"intuit.x","type":"qbo.invoice.updated.v1",'
         '"time":"2025-09-10T21:31:26Z","intuitentityid":"77","intuitaccountid":"999001"}]')


def post(port, body, token=TOKEN, ctype="application/json", sig=None, extra=None):
    headers = {"Content-Type": ctype}
    if sig is None and token is not None:
        sig = sign(body, token)
    if sig is not None:
        headers["intuit-signature"] = sig
    headers.update(extra or {})
    return request(port, "POST", "/webhooks/intuit", body, headers)


def cli(*args, data_dir=None):
    argv = [QBCDC] + list(args)
    if data_dir:
        argv += ["--data-dir", data_dir]
    r = subprocess.run(argv, capture_output=True, timeout=30)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def inbox(data_dir):
    rc, out, err = cli("inbox", "--bodies", data_dir=data_dir)
    assert rc == 0, err
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def pending(data_dir):
    rc, out, err = cli("pending", data_dir=data_dir)
    assert rc == 0, err
    return [json.loads(l) for l in out.splitlines() if l.strip()]


# ---- the CLI surface ----
rc, out, err = cli("--help")
ok(rc == 0 and "serve" in out, "qbcdc --help exits 0 and lists serve")
rc, out, err = cli("--version")
ok(rc == 0 and out.startswith("qbcdc "), "qbcdc --version")
rc, out, err = cli("serve", "--no-such-flag")
is_(rc, 2, "unknown flag exits 2")
is_(len(err.strip().splitlines()), 1, "unknown flag: one line on stderr")
rc, out, err = cli("serve", "--map-size", "lots")
ok(rc == 2 and "QBCDC_MAP_SIZE" in err, "bad value exits 2 with a clear message, naming the variable", err)
rc, out, err = cli("frobnicate")
is_(rc, 2, "unknown command exits 2")
rc, out, err = cli("serve", "--help")
ok(rc == 0 and "QBCDC_WEBHOOK_VERIFIER_TOKENS" in out, "serve --help lists the environment variables")

# ---- a running service ----
proc, port, data = start_qbcdc(tokens="%s, %s" % (OLD, TOKEN))
st, _, body = request(port, "GET", "/healthz")
ok(st == 200 and json.loads(body) == {"status": "ok"}, "healthz 200 {status: ok}")
for m in ("POST", "DELETE", "PUT"):
    st, h, body = request(port, m, "/healthz")
    ok(st == 405 and "GET" in h.get("allow", ""), "%s /healthz: 405 with Allow (it took any method)" % m, body)

st, hdrs, body = post(port, CLASSIC)
is_(st, 200, "signed classic webhook: 200")
ok(hdrs.get("content-type", "").startswith("application/json"), "answer is JSON")
ok(json.loads(body).get("status") == "stored", "answer says stored", body)

st, _, _ = post(port, CLOUD, ctype="application/cloudevents+json")
is_(st, 200, "signed CloudEvents webhook with application/cloudevents+json: 200")

st, _, _ = post(port, CLASSIC.replace('"1"', '"2"'), token=OLD)
is_(st, 200, "a body signed with the other (rotated) token is accepted")

held = inbox(data)
is_(len(held), 3, "three bodies stored")
is_(held[0]["body"], CLASSIC, "raw body stored byte for byte")
is_(held[1]["format"], "cloudevents", "CloudEvents format recognised")
pend = {(p["realm"], p["entity"], p["id"]): p for p in pending(data)}
ok(("1185883450", "Customer", "1") in pend and ("1185883450", "Vendor", "1") in pend, "classic events pending")
ok(("310687", "Account", "1234") in pend and ("999001", "Invoice", "77") in pend,
   "CloudEvents events pending, one body with two realms")
is_(pend.get(("999001", "Invoice", "77"), {}).get("op"), "update", "CloudEvents operation mapped")

# ---- refusals store nothing ----
st, _, body = post(port, CLASSIC, token=None)
ok(st == 401 and json.loads(body)["error"], "missing signature: 401 with a JSON error", body)
st, _, _ = post(port, CLASSIC, token="wrong-token")
is_(st, 401, "wrong signature: 401")
st, _, _ = post(port, CLASSIC, sig="not base64!!")
is_(st, 401, "garbage signature: 401")
st, _, _ = post(port, CLASSIC + "\n", sig=sign(CLASSIC, TOKEN))
is_(st, 401, "signature of a different body (one extra newline): 401")

big = '{"eventNotifications":[]}' + " " * (1024 * 1024 + 1 - 25)
st, _, body = post(port, big)
ok(st == 413 and json.loads(body)["error"] == "too_large", "1 MiB + 1 byte: 413 JSON", body)
# far over the limit: h2o refuses from the Content-Length alone, before reading the body
import socket
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(("POST /webhooks/intuit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "intuit-signature: %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n"
           % (sign("x", TOKEN), 5 * 1024 * 1024)).encode())
status_line = s.recv(4096).split(b"\r\n")[0]
s.close()
ok(b" 413 " in status_line, "5 MiB announced: 413 before the body is sent", status_line)
exact = '{"eventNotifications":[]}' + " " * (1024 * 1024 - 25)
st, _, body = post(port, exact)
is_(st, 200, "exactly 1 MiB: accepted")
is_(len(inbox(data)), 4, "refused requests stored nothing")

st, hdrs, _ = request(port, "GET", "/webhooks/intuit")
is_(st, 405, "GET on the webhook path: 405")

# ---- quarantine ----
st, _, body = post(port, "this is not json")
ok(st == 200 and json.loads(body)["status"] == "quarantined", "signed garbage: 200, quarantined", body)
partial = ('{"eventNotifications":[{"realmId":"5","dataChangeEvent":{"entities":['
           '{"name":"Bill","id":"9","operation":"Update","lastUpdated":"2025-01-01T00:00:00Z"},'
           '{"name":"Bill","operation":"Update"}]}}]}')
st, _, body = post(port, partial)
ok(st == 200 and json.loads(body)["status"] == "quarantined", "partly valid body: quarantined", body)
held = inbox(data)
q = [h for h in held if h["quarantined"]]
is_(len(q), 2, "both quarantined bodies kept")
is_(q[0]["body"], "this is not json", "quarantined body kept verbatim")
ok(q[0].get("reason"), "quarantine reason recorded")
ok(any(p["realm"] == "5" and p["id"] == "9" for p in pending(data)), "usable event of a partly valid body is pending")
is_(metric(port, "qbcdc_inbox_quarantined"), 2.0, "quarantine counted in /metrics")

# ---- CloudEvents retry ----
st, _, body = post(port, CLOUD, ctype="application/cloudevents+json")
ok(st == 200 and json.loads(body)["status"] == "duplicate", "a repeated CloudEvents delivery: 200 duplicate", body)
before = len(inbox(data))
is_(before, 6, "a repeat is not stored twice")

# ---- an unexpected content type is still stored (it is signed) ----
st, _, _ = post(port, CLASSIC.replace('"1"', '"3"'), ctype="text/plain")
is_(st, 200, "signed body with text/plain: stored all the same")
is_(metric(port, "qbcdc_webhooks_unexpected_content_type_total"), 1.0, "and counted")

# ---- metrics ----
_, hdrs, body = request(port, "GET", "/metrics")
text = body.decode()
ok(hdrs.get("content-type", "").startswith("text/plain"), "metrics are Prometheus text")
for name in ['qbcdc_webhooks_total{result="stored"}', 'qbcdc_webhooks_total{result="unauthorized"} 4',
             'qbcdc_webhooks_total{result="too_large"}', "qbcdc_webhook_ack_seconds_bucket",
             "qbcdc_store_group_commit_size_bucket", "qbcdc_inbox_depth 7", "qbcdc_store_used_bytes",
             "qbcdc_journal_group_commit_size_count", "qbcdc_journal_unapplied_bytes"]:
    ok(name in text, "metrics has " + name)

# ---- restart: everything acked is still there ----
acked = [h["body"] for h in inbox(data)]
is_(proc.stop(), 0, "SIGTERM: graceful exit 0")
ok("stopped" in proc.output(), "shutdown logged")
proc, port, data = start_qbcdc(data_dir=data, tokens=TOKEN)
is_([h["body"] for h in inbox(data)], acked, "after a restart the inbox holds every acked body")
st, _, body = post(port, CLASSIC.replace('"1"', '"4"'))
is_(json.loads(body).get("inbox_seq"), 8, "sequence numbers continue after a restart")
proc.stop()

# ---- retention: old raw bodies are pruned; pending work and sequences are not touched ----
held_pending = len(pending(data))
proc, port, data = start_qbcdc(data_dir=data, tokens=TOKEN, args=["--inbox-retention", "1", "--prune-interval-ms", "100"])
deadline = time.time() + 15
while time.time() < deadline and (metric(port, "qbcdc_inbox_pruned_total") or 0) < 8:
    time.sleep(0.1)
is_(metric(port, "qbcdc_inbox_pruned_total"), 8.0, "retention: all 8 old bodies pruned (counted in /metrics)")
is_(metric(port, "qbcdc_inbox_depth"), 0.0, "the inbox is empty")
is_(metric(port, "qbcdc_inbox_oldest_age_seconds"), 0.0, "no oldest body")
is_(len(pending(data)), held_pending, "pending notices untouched")
st, _, body = post(port, CLASSIC.replace('"1"', '"5"'))
is_(json.loads(body).get("inbox_seq"), 9, "a body after pruning takes the next sequence")
proc.stop()
rc, _, err = cli("serve", "--inbox-retention", "-1", data_dir=data)
ok(rc == 2 and "QBCDC_INBOX_RETENTION" in err, "a bad retention: exit 2 with a message naming the variable", err)

# ---- no verifier tokens ----
proc, port, data2 = start_qbcdc(tokens=None)
st, _, body = post(port, CLASSIC)
ok(st == 503 and json.loads(body)["error"] == "not_configured", "no verifier tokens: 503 not_configured", body)
ok("QBCDC_WEBHOOK_VERIFIER_TOKENS" in proc.output(), "and a clear log line")
is_(len(inbox(data2)), 0, "nothing stored")
proc.stop()

# ---- ambiguous body framing: 400 and the connection closed, nothing smuggled through ----
import socket


def raw_exchange(port, data):
    """sends raw bytes, returns everything the server answers until it closes (or 2 s pass)"""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    s.settimeout(2)
    got = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
    except OSError:
        pass
    s.close()
    return got


proc, port, data3 = start_qbcdc(tokens=TOKEN)
inner = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
body = CLASSIC.encode()
smuggle = body + inner
got = raw_exchange(port, b"POST /webhooks/intuit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"intuit-signature: %s\r\nContent-Length: %d\r\nContent-Length: %d\r\n\r\n"
                         % (sign(body, TOKEN).encode(), len(body), len(smuggle)) + smuggle)
ok(got.startswith(b"HTTP/1.1 400"), "two different Content-Lengths: 400", got[:200])
ok(got.count(b"HTTP/1.1") == 1, "and the connection closed: the request inside the body is never served", got)
got = raw_exchange(port, b"POST /webhooks/intuit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"intuit-signature: %s\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"%x\r\n%s\r\n0\r\n\r\n" % (sign(body, TOKEN).encode(), len(body), len(body), body))
ok(got.startswith(b"HTTP/1.1 400") and got.count(b"HTTP/1.1") == 1,
   "a Content-Length beside a Transfer-Encoding: 400, connection closed", got[:200])
is_(metric(port, "qbcdc_http_ambiguous_framing_total"), 2.0, "qbcdc_http_ambiguous_framing_total counts both")
got = raw_exchange(port, b"POST /webhooks/intuit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Connection: close\r\nintuit-signature: %s\r\nContent-Length: %d\r\nContent-Length: %d\r\n\r\n"
                         % (sign(body, TOKEN).encode(), len(body), len(body)) + body)
ok(got.startswith(b"HTTP/1.1 200"), "the same Content-Length twice is one length (RFC 9112): 200", got[:200])
is_(len(inbox(data3)), 1, "only that webhook was stored")
proc.stop()

# ---- a data dir that cannot be created ----
p = Proc([QBCDC, "serve"], env={"QBCDC_DATA_DIR": "/proc/qbcdc-cannot", "QBCDC_LISTEN": "127.0.0.1:%d" % free_port()})
rc = p.p.wait(timeout=10)
ok(rc == 1 and "cannot" in p.output(), "an unusable data dir: exit 1 with a message", p.output())

done_testing()
