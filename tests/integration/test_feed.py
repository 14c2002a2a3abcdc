#!/usr/bin/env python3
"""The change feed for downstream apps, fed end to end by qbosim -> qbcdc serve.

GET /v1/changes (pull: after, limit, next, realm and entity filters, errors; long-poll
woken by a new change long before its timeout), GET /v1/changes/stream (SSE: every
change once, resume from Last-Event-ID), GET /v1/realms/{realm}/entities/{Entity}/{id}
(equals qbosim's truth; 404 for one never seen), and the feed token rules. With a
feed retention, readers behind what was pruned get 410 gone (SSE: an "event: gone").
Feed identity and resync: every answer carries the store's feed_id (stable across a
restart, another for another data dir; SSE starts with an "event: feed"), a reader
beyond the head gets 409 after_beyond_head, and GET /v1/realms/{realm}/entities/{Entity}
pages through the latest versions.
"""
import http.client
import json
import os
import re
import socket
import subprocess
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
for bad in ["after=-1", "after=x", "limit=0", "limit=1001", "wait=301", "entity=no%20such", "realm=a%2Fb",
            # present but unreadable: never ignored, clamped or cut (issue 11)
            "realm=" + "a" * 200, "after=18446744073709551616", "after=" + "1" * 200, "after=+5", "after=%205",
            "entity=" + "E" * 200, "wait=" + "1" * 200]:
    st, b = get(qport, "/v1/changes?" + bad)
    ok(st == 400 and b.get("error"), "400 for " + (bad if len(bad) < 40 else bad[:30] + "..."), b)
st, b = get(qport, "/v1/changes/stream", headers=dict(AUTH, **{"Last-Event-ID": "12abc"}))
ok(st == 400 and b.get("error") == "bad_last_event_id", "a Last-Event-ID that is no sequence: 400", b)
st, b = get(qport, "/v1/changes?after=18446744073709551615")
ok(st == 409 and b.get("error") == "after_beyond_head", "the largest after is read exactly (409: beyond the head)", b)

# ---- long-poll wakes on a new change ----
st, b = get(qport, "/v1/changes")
ok(st == 200 and b["changes"] == [] and b["next"] == 0 and b["complete_until"] == {}, "an empty feed", b)

# ---- feed identity; a reader beyond the head is told, not kept waiting ----
feed_id = b.get("feed_id")
ok(isinstance(feed_id, str) and re.fullmatch("[0-9a-f]{32}", feed_id), "the answer carries a feed_id", b)
st, h, _ = request(qport, "GET", "/v1/changes", headers=AUTH)
is_(h.get("qbcdc-feed-id"), feed_id, "and the qbcdc-feed-id header the same")
st, b = get(qport, "/v1/changes?after=0&wait=0")
is_(st, 200, "after == head (0) is fine")
t0 = time.monotonic()
for path in ["/v1/changes?after=1", "/v1/changes?after=7&wait=20"]:
    st, b = get(qport, path)
    ok(st == 409 and b.get("error") == "after_beyond_head" and b.get("head") == 0 and b.get("feed_id") == feed_id
       and "resync" in b.get("message", ""), "409 after_beyond_head for " + path, b)
ok(time.monotonic() - t0 < 5, "the long-poll beyond the head answers at once, it does not wait")
t0 = time.monotonic()
st, b = get(qport, "/v1/changes?after=0&wait=1")
waited_empty = time.monotonic() - t0
ok(st == 200 and b["changes"] == [] and b["next"] == 0, "a long-poll with nothing new answers empty", b)
ok(0.9 <= waited_empty < 10, "after waiting its wait=1 out (%.2f s), not at once" % waited_empty)
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
        # the changes: not the data of a named event (event: feed, event: gone); complete
        # lines only (the last one may still be on its way)
        events = [json.loads(l[6:]) for l in buf.split(b"\n")[:-1] if l.startswith(b'data: {"seq"')]
    s.close()
    return buf, events


raw, events = sse_read(after=0, want=len(feed))
ok(b"text/event-stream" in raw.split(b"\r\n\r\n")[0], "SSE content type")
hdrs, _, body = raw.partition(b"\r\n\r\n")
ok(b"qbcdc-feed-id: " + feed_id.encode() in hdrs.lower(), "the stream has the qbcdc-feed-id header")
m = re.search(rb"event: feed\ndata: (\{[^\n]*\})\n\n", body)
ok(m and json.loads(m.group(1)) == {"feed_id": feed_id, "head": feed[-1]["seq"]},
   "SSE starts with an 'event: feed' naming the feed and its head", body[:300])
ok(m and b"id:" not in body[:m.end()] and body.find(b"event: feed") < body.find(b"data: {\"seq\""),
   "before any change, and without an id: line")
is_([e["seq"] for e in events], [r["seq"] for r in feed], "SSE delivers every change once, in order")
ok(b"id: %d\n" % feed[0]["seq"] in raw, "each event carries its seq as id")
raw, events = sse_read(last_event_id=feed[9]["seq"], want=len(feed) - 10)
is_([e["seq"] for e in events], [r["seq"] for r in feed[10:]], "Last-Event-ID resumes after that event")

head = feed[-1]["seq"]
for kw in [{"after": head + 1}, {"last_event_id": head + 5}]:
    raw, events = sse_read(want=1, timeout=5, **kw)
    st_line = raw.split(b"\r\n", 1)[0]
    body = raw.partition(b"\r\n\r\n")[2]
    ok(b" 409 " in st_line and b'"error":"after_beyond_head"' in body and (b'"head":%d' % head) in body,
       "SSE beyond the head (%r): 409 after_beyond_head" % kw, raw[:400])

# ---- listing the latest versions: what a reader resyncs from ----
ents = qbcdc_lines("entities", "--data-dir", data_dir, "--limit", "100000")
realm0, ent0 = feed[0]["realm"], feed[0]["entity"]
want = sorted([e for e in ents if e["realm"] == realm0 and e["entity"] == ent0], key=lambda e: e["id"].encode())
pages, got, after_id = 0, [], None
while pages < 100:
    path = "/v1/realms/%s/entities/%s?limit=3" % (realm0, ent0.lower()) + (
        "&after_id=" + after_id if after_id is not None else "")
    st, b = get(qport, path)
    if st != 200:
        break
    pages += 1
    got += b["entities"]
    after_id = b["next_after_id"]
    if after_id is None:
        break
ok(st == 200 and b["realm"] == realm0 and b["entity"] == ent0 and b["feed_id"] == feed_id,
   "the listing names realm, canonical entity and feed_id", b)
is_([e["id"] for e in got], [e["id"] for e in want], "paging by 3 with after_id lists every %s of realm %s, in id byte "
    "order (%d in %d pages)" % (ent0, realm0, len(want), pages))
is_([(e["deleted"], e["version"]) for e in got], [(e["deleted"], e["version"] if e["version"] else None) for e in want],
    "versions and deleted flags as stored")
ok(all(("data" in e) != e["deleted"] for e in got), "live ones carry data, deleted ones none")
ok(all(e["data"]["Id"] == e["id"] for e in got if not e["deleted"]), "data is the entity")
every = []
for r in sorted({e["realm"] for e in ents}):
    for en in sorted({e["entity"] for e in ents}):
        st, b = get(qport, "/v1/realms/%s/entities/%s?limit=1000" % (r, en))
        every += [(r, en, e["id"], e["deleted"]) for e in b["entities"]]
is_(sorted(every), sorted((e["realm"], e["entity"], e["id"], e["deleted"]) for e in ents),
    "listing every realm and type gives every stored entity once, deleted ones flagged (%d, %d deleted)"
    % (len(ents), sum(e["deleted"] for e in ents)))
ok(any(e["deleted"] for e in ents), "some of them are deletes")
if got:
    live = next((e for e in got if not e["deleted"]), None)
    if live is not None:
        _, _, raw1 = request(qport, "GET", "/v1/realms/%s/entities/%s/%s" % (realm0, ent0, live["id"]), headers=AUTH)
        _, _, rawl = request(qport, "GET", "/v1/realms/%s/entities/%s?after_id=%s&limit=1" % (
            realm0, ent0, got[got.index(live) - 1]["id"] if got.index(live) > 0 else ""), headers=AUTH)
        d1 = raw1[raw1.index(b',"data":') + 8:-1]
        ok(d1 in rawl, "the listing's data is the stored bytes, as the single read gives them")
for bad in ["limit=0", "limit=1001", "limit=", "foo=1", "after_id=1&after_id=2", "limit=5&Limit=4"]:
    st, b = get(qport, "/v1/realms/%s/entities/Invoice?%s" % (realm0, bad))
    ok(st == 400 and b.get("error") and b.get("message"), "listing: 400 for " + bad, b)
st, b = get(qport, "/v1/realms/%s/entities/Inv-oice" % realm0)
ok(st == 400 and b.get("error") == "bad_entity", "listing: 400 for a bad entity name", b)
st, b = get(qport, "/v1/realms/%s/entities/Invoice?fo%%22o=1" % realm0)
ok(st == 400 and 'fo"o' in b.get("message", ""), "an unknown parameter is named in the message, escaped", b)
st, b = get(qport, "/v1/realms/%s/entities/Invoice?after_id=zzzz" % realm0)
ok(st == 200 and b["entities"] == [] and b["next_after_id"] is None, "after the last id: an empty page, the end", b)

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

# ---- another data dir is another feed ----
port2, dir2 = free_port(), tmpdir("qbcdc-feed2-")
q2 = Proc([QBCDC, "serve"], env=serve_env(port2, dir2, sim))
ok(wait_http(port2), "a second qbcdc on a new data dir")
st, b = get(port2, "/v1/changes")
ok(st == 200 and re.fullmatch("[0-9a-f]{32}", b.get("feed_id", "")) and b["feed_id"] != feed_id,
   "a new data dir has another feed_id", b)
st, b = get(port2, "/v1/changes?after=%d&wait=5" % head)
ok(st == 409 and b.get("head") == 0 and b.get("feed_id") != feed_id,
   "a consumer of the old feed pointed at it gets 409 after_beyond_head, not a wait", b)
is_(q2.stop(), 0, "it stops")

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
is_(b.get("feed_id"), feed_id, "the feed_id is the same after a restart on the same data dir")
r = subprocess.run([QBCDC, "stats", "--data-dir", data_dir], capture_output=True, timeout=30)
is_(json.loads(r.stdout).get("feed_id") if r.returncode == 0 else r.stderr, feed_id, "qbcdc stats shows the feed_id")
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
ok(b.get("feed_id") == feed_id and "/v1/realms/{realm}/entities/{Entity}" in b.get("message", ""),
   "the 410 carries the feed_id and names the listing to resync from", b)
through = b.get("pruned_through", 0)
st, b = get(qport, "/v1/changes?after=%d" % through)
ok(st == 200 and len(b["changes"]) >= 1 and all(c["seq"] > through for c in b["changes"]),
   "reading on from there: the changes kept", b)
r = subprocess.run([QBCDC, "feed", "--data-dir", data_dir], capture_output=True, timeout=30)
ok(r.returncode == 1 and b"--after %d" % through in r.stderr, "qbcdc feed from the start says where to read on",
   r.stderr)
raw, _ = sse_read(after=0, want=1, timeout=5)
ok(b"event: gone" in raw and b'"pruned_through"' in raw, "an SSE stream from the start: an 'event: gone', then the end")
ok(re.search(rb"event: gone\ndata: [^\n]*\"feed_id\":\"" + feed_id.encode(), raw), "the 'event: gone' carries the feed_id")
is_(q.stop(), 0, "qbcdc stops cleanly")
sim.stop()
done_testing()
