#!/usr/bin/env python3
"""The change feed for downstream apps, fed end to end by qbosim -> qbcdc serve.

GET /v1/changes (pull: after, limit, next, realm and entity filters, errors; long-poll
woken by a new change long before its timeout), GET /v1/changes/stream (SSE: every
change once, resume from Last-Event-ID), GET /v1/realms/{realm}/entities/{Entity}/{id}
(equals qbosim's truth; 404 for one never seen), and the feed token rules. With a
feed retention, readers behind what was pruned get 410 gone (SSE: an "event: gone").
"""
import http.client
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from simlib import Sim, flat_truth, qbcdc_lines, register_realms, serve_env

FEED = "test-feed-token"
AUTH = {"Authorization": "Bearer " + FEED}


def get(port, path, headers=AUTH, timeout=20):
    st, h, b = request(port, "GET", path, headers=headers, timeout=timeout)
    return st, (json.loads(b) if b else None)


def wait_pending_empty(data_dir, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not qbcdc_lines("pending", "--data-dir", data_dir, "--limit", "1"):
            return True
        time.sleep(0.05)
    return False


qport = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % qport], realms=2, entities=20)
data_dir = tmpdir("qbcdc-feed-")
# the feed's behaviour is checked from an empty feed filled by webhooks: no initial snapshot
# (test_snapshot.py covers it; test_cdc.py converges with snapshots on)
q = Proc([QBCDC, "serve"], env=dict(serve_env(qport, data_dir, sim), QBCDC_SNAPSHOT_ON_CONNECT="0"))
ok(wait_http(qport), "qbcdc serve is up")
register_realms(qport, sim)

# ---- token rules ----
st, _ = get(qport, "/v1/changes", headers={})
is_(st, 401, "no bearer: 401")
st, _ = get(qport, "/v1/changes", headers={"Authorization": "Bearer nope"})
is_(st, 401, "wrong bearer: 401")
for bad in ["after=-1", "after=x", "limit=0", "limit=1001", "wait=301", "entity=no%20such", "realm=a%2Fb"]:
    st, b = get(qport, "/v1/changes?" + bad)
    ok(st == 400 and b.get("error"), "400 for " + bad, b)

# ---- long-poll wakes on a new change ----
st, b = get(qport, "/v1/changes")
ok(st == 200 and b["changes"] == [] and b["next"] == 0 and b["complete_until"] == {}, "an empty feed", b)
result, seen = {}, {}


def poll():
    result["st"], result["body"] = get(qport, "/v1/changes?after=0&wait=20", timeout=30)
    result["t"] = time.monotonic()


def watch():
    # the moment the change is first readable: a plain pull every 2 ms on its own connection
    c = http.client.HTTPConnection("127.0.0.1", qport, timeout=10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "t" not in seen:
        c.request("GET", "/v1/changes?after=0&limit=1", headers=AUTH)
        if json.loads(c.getresponse().read())["changes"]:
            seen["t"] = time.monotonic()
        time.sleep(0.002)
    c.close()


th, tw = threading.Thread(target=poll), threading.Thread(target=watch)
th.start()
tw.start()
time.sleep(0.3)
st, j = sim.json("POST", "/sim/mutate?n=1")
t_ack = time.monotonic()
th.join(timeout=25)
tw.join(timeout=25)
ok(result.get("st") == 200 and result["body"]["changes"], "a waiting long-poll answers with the change")
waited = (result.get("t", t_ack + 99) - t_ack) * 1000
ok(waited < 2000, "it woke with the change, %.0f ms after the webhook ack, not at its 20 s timeout" % waited)
lag = (result.get("t", 99) - seen.get("t", 0)) * 1000
ok(lag <= 50, "the long-poll answered %.1f ms after the change became readable (<= 50 ms)" % lag)
first = result["body"]["changes"][0]
for k in ("seq", "realm", "entity", "id", "op", "version", "last_updated", "source"):
    ok(k in first, "a change has " + k)
is_(first["source"], "webhook", "source webhook")

# ---- a burst, then pull semantics ----
sim.json("POST", "/sim/mutate?n=60&per_hook=6")
ok(wait_pending_empty(data_dir), "the burst is reconciled")
feed = qbcdc_lines("feed", "--data-dir", data_dir, "--limit", "100000")
st, b = get(qport, "/v1/changes?limit=1000")
is_([c["seq"] for c in b["changes"]], [r["seq"] for r in feed], "pull returns the whole feed in order")
is_(b["next"], feed[-1]["seq"], "next is the last sequence")
st, b = get(qport, "/v1/changes?after=%d&limit=5" % feed[2]["seq"])
is_([c["seq"] for c in b["changes"]], [r["seq"] for r in feed[3:8]], "after and limit")
is_(b["next"], feed[7]["seq"], "next after a limited page")
realm = feed[0]["realm"]
st, b = get(qport, "/v1/changes?limit=1000&realm=" + realm)
is_([c["seq"] for c in b["changes"]], [r["seq"] for r in feed if r["realm"] == realm], "realm filter")
ent = feed[0]["entity"]
st, b = get(qport, "/v1/changes?limit=1000&entity=" + ent.lower())
is_([c["seq"] for c in b["changes"]], [r["seq"] for r in feed if r["entity"] == ent], "entity filter, any case")
st, b = get(qport, "/v1/changes?realm=0000&limit=10")
ok(b["changes"] == [] and b["next"] == feed[-1]["seq"], "a filter matching nothing still moves next forward", b)

# ---- entities equal the truth ----
truth = flat_truth(sim.json("GET", "/sim/truth")[1])
latest = {}
for r in feed:
    latest[(r["realm"], r["entity"], r["id"])] = r
mism = []
for (rl, e, i), r in list(latest.items())[:40]:
    st, b = get(qport, "/v1/realms/%s/entities/%s/%s" % (rl, e, i))
    want = truth.get((rl, e, i))
    got = None if b.get("deleted") else b.get("version")
    if st != 200 or got != want or (not b.get("deleted") and b.get("data", {}).get("Id") != i):
        mism.append(((rl, e, i), st, got, want))
is_(mism, [], "GET /v1/realms/.../entities/... equals qbosim's truth (%d checked)" % min(40, len(latest)))
st, b = get(qport, "/v1/realms/%s/entities/Invoice/999999" % realm)
is_(st, 404, "an entity never seen: 404")

# ---- SSE: every change once, then resume ----


def sse_read(after=None, last_event_id=None, want=0, timeout=10):
    s = socket.create_connection(("127.0.0.1", qport), timeout=timeout)
    path = "/v1/changes/stream" + ("?after=%d" % after if after is not None else "")
    hdr = "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n" % (path, FEED)
    if last_event_id is not None:
        hdr += "Last-Event-ID: %d\r\n" % last_event_id
    s.sendall((hdr + "\r\n").encode())
    buf, events, deadline = b"", [], time.time() + timeout
    while len(events) < want and time.time() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        for line in buf.split(b"\n"):
            pass
        events = [json.loads(l[6:]) for l in buf.split(b"\n") if l.startswith(b"data: ")]
    s.close()
    return buf, events


raw, events = sse_read(after=0, want=len(feed))
ok(b"text/event-stream" in raw.split(b"\r\n\r\n")[0], "SSE content type")
is_([e["seq"] for e in events], [r["seq"] for r in feed], "SSE delivers every change once, in order")
ok(b"id: %d\n" % feed[0]["seq"] in raw, "each event carries its seq as id")
raw, events = sse_read(last_event_id=feed[9]["seq"], want=len(feed) - 10)
is_([e["seq"] for e in events], [r["seq"] for r in feed[10:]], "Last-Event-ID resumes after that event")

# live SSE: a stream open before a change delivers it
box = {}


def live():
    box["raw"], box["events"] = sse_read(after=feed[-1]["seq"], want=1, timeout=15)


th = threading.Thread(target=live)
th.start()
time.sleep(0.3)
sim.json("POST", "/sim/mutate?n=1")
th.join(timeout=20)
ok(len(box.get("events", [])) >= 1 and box["events"][0]["seq"] > feed[-1]["seq"], "an open stream delivers a new change")

# ---- completeness: after a CDC sweep the feed answers say how far it is complete ----
st, _, _ = request(qport, "POST", "/admin/realms/%s/cdc" % realm, headers={"Authorization": "Bearer test-admin-token"})
ok(st in (200, 202), "a CDC sweep requested")
deadline, b = time.time() + 20, {}
while time.time() < deadline and realm not in b.get("complete_until", {}):
    st, b = get(qport, "/v1/changes?limit=1&realm=" + realm)
    time.sleep(0.1)
ok(realm in b.get("complete_until", {}), "after the sweep, feed answers carry complete_until for the realm", b)
st, b2 = get(qport, "/v1/changes?limit=1")
ok(set(b2["complete_until"]) >= {realm}, "unfiltered answers list every realm that has one")

is_(q.stop(), 0, "qbcdc stops cleanly with feed readers connected")

# ---- feed retention: a reader behind what was pruned is told so (410), never handed a gap ----


def metric(name):
    _, _, body = request(qport, "GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


env = serve_env(qport, data_dir, sim)
env.update({"QBCDC_FEED_RETENTION": "1", "QBCDC_PRUNE_INTERVAL_MS": "100", "QBCDC_SNAPSHOT_ON_CONNECT": "0"})
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(qport), "qbcdc restarts with a one-second feed retention")
st, b = get(qport, "/v1/changes?limit=1000")
last_before = b["next"]
sim.json("POST", "/sim/mutate?n=5")
ok(wait_pending_empty(data_dir), "new changes reconciled")
deadline = time.time() + 15
while time.time() < deadline and (metric("qbcdc_feed_pruned_through_seq") or 0) < last_before:
    time.sleep(0.1)
ok((metric("qbcdc_feed_pruned_through_seq") or 0) >= last_before,
   "everything older than the retention was pruned (through %s)" % metric("qbcdc_feed_pruned_through_seq"))
st, b = get(qport, "/v1/changes")
ok(st == 410 and b.get("error") == "gone" and b.get("pruned_through", 0) >= last_before,
   "a reader from the start: 410 gone, with where the feed resumes", b)
through = b.get("pruned_through", 0)
st, b = get(qport, "/v1/changes?after=%d" % through)
ok(st == 200 and len(b["changes"]) >= 1 and all(c["seq"] > through for c in b["changes"]),
   "reading on from there: the changes kept", b)
import subprocess  # noqa: E402
r = subprocess.run([QBCDC, "feed", "--data-dir", data_dir], capture_output=True, timeout=30)
ok(r.returncode == 1 and b"--after %d" % through in r.stderr, "qbcdc feed from the start says where to read on",
   r.stderr)
raw, _ = sse_read(after=0, want=1, timeout=5)
ok(b"event: gone" in raw and b'"pruned_through"' in raw, "an SSE stream from the start: an 'event: gone', then the end")
is_(q.stop(), 0, "qbcdc stops cleanly")
sim.stop()
done_testing()
