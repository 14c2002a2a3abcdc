#!/usr/bin/env python3
"""QBO's entity JSON reaches consumers byte for byte (issue 9).

qbosim's entities carry amounts a double round trip changes (2932.92, 73.69, 0.1, 1e-7,
12345678901234567890, -0.0, 1E+2, 0.30000000000000004) and strings a re-serialization
changes (\\u00e9, \\/, raw and escaped emoji, \\", \\\\, \\n), plus fields qbcdc knows
nothing of (CustomField). For every such entity, the bytes qbosim sends (GET /sim/entity:
the bytes it splices into reads, queries, CDC and batch answers) must be exactly the
bytes of "data" in /v1/changes, in the SSE stream and in the entity read, both after a
backfill (query API) and after webhook-driven fetches (Id IN queries, batch, reads).

Comparisons are of raw bytes, never of parsed JSON: a parser would hide exactly the
changes this test is about. Checked to fail on the jansson round trip this replaced.
"""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from simlib import (EXACT_CYCLE, EXACT_NUMBERS, EXACT_STRINGS, SIM_ENTITIES, Sim, admin, register_realms,
                    serve_env, wait_drained, wait_job)

FEED = {"Authorization": "Bearer test-feed-token"}
ENTITIES = SIM_ENTITIES.split(",")
IDS = list(range(1, 9)) + list(range(17, 25))  # two cycles of every exact case


# ---- a raw JSON reader: where each value's bytes begin and end ----

def skip_ws(b, i):
    while i < len(b) and b[i] in b" \t\r\n":
        i += 1
    return i


def value_end(b, i):
    """the index just past the JSON value starting at b[i]"""
    c = b[i:i + 1]
    if c == b'"':
        i += 1
        while b[i:i + 1] != b'"':
            i += 2 if b[i:i + 1] == b"\\" else 1
        return i + 1
    if c in (b"{", b"["):
        close = b"}" if c == b"{" else b"]"
        i = skip_ws(b, i + 1)
        if b[i:i + 1] == close:
            return i + 1
        while True:
            if c == b"{":
                i = skip_ws(b, value_end(b, i))  # the key
                i = skip_ws(b, i + 1)  # past ':'
            i = skip_ws(b, value_end(b, i))
            if b[i:i + 1] == close:
                return i + 1
            i = skip_ws(b, i + 1)  # past ','
    while i < len(b) and b[i:i + 1] not in (b",", b"}", b"]", b" ", b"\n", b"\r", b"\t"):
        i += 1
    return i


def members(b, i=0):
    """{key: raw value bytes} of the object starting at b[i] (the last value of a repeated key)"""
    out = {}
    i = skip_ws(b, i)
    assert b[i:i + 1] == b"{"
    i = skip_ws(b, i + 1)
    while b[i:i + 1] != b"}":
        k_end = value_end(b, i)
        key = json.loads(b[i:k_end])
        v = skip_ws(b, skip_ws(b, k_end) + 1)
        v_end = value_end(b, v)
        out[key] = b[v:v_end]
        i = skip_ws(b, v_end)
        if b[i:i + 1] == b",":
            i = skip_ws(b, i + 1)
    return out


def elements(b):
    """raw bytes of each element of the JSON array b"""
    out, i = [], skip_ws(b, 1)
    while b[i:i + 1] != b"]":
        e = value_end(b, i)
        out.append(b[i:e])
        i = skip_ws(b, e)
        if b[i:i + 1] == b",":
            i = skip_ws(b, i + 1)
    return out


def feed_data(port, realm):
    """{(entity, id): raw data bytes of the latest record} from /v1/changes, paging to the end"""
    got, after = {}, 0
    while True:
        st, _, b = request(port, "GET", "/v1/changes?realm=%s&limit=1000&after=%d" % (realm, after), headers=FEED)
        if st != 200:
            return got, "HTTP %d" % st
        top = members(b)
        changes = elements(top["changes"])
        for c in changes:
            m = members(c)
            if "data" in m:
                got[(json.loads(m["entity"]), json.loads(m["id"]))] = m["data"]
        nxt = json.loads(top["next"])
        if not changes or nxt == after:
            return got, None
        after = nxt


def sse_data(port, realm, until_seq, timeout=30):
    """{(entity, id): raw data bytes of the latest record} from the SSE stream, up to until_seq"""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(("GET /v1/changes/stream?realm=%s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n"
               % (realm, FEED["Authorization"])).encode())
    buf, got, last, deadline = b"", {}, 0, time.time() + timeout
    while last < until_seq and time.time() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.startswith(b"data: {\"seq\""):
                m = members(line[6:])
                last = json.loads(m["seq"])
                if "data" in m:
                    got[(json.loads(m["entity"]), json.loads(m["id"]))] = m["data"]
    s.close()
    return got


def entity_read(port, realm, entity, id):
    st, _, b = request(port, "GET", "/v1/realms/%s/entities/%s/%s" % (realm, entity, id), headers=FEED)
    return members(b).get("data") if st == 200 else None


def check_all(stage, port, sim, realm):
    want = {(e, str(i)): sim.entity_bytes(realm, e, i) for e in ENTITIES for i in IDS}
    want = {k: v for k, v in want.items() if v is not None and not v.startswith(b'{"status":"Deleted"')}
    pulled, err = feed_data(port, realm)
    ok(err is None, "%s: /v1/changes pages to the end" % stage, err)
    streamed = sse_data(port, realm, max_seq(port))
    for name, got in (("/v1/changes", pulled), ("SSE", streamed)):
        bad = [k for k, v in want.items() if got.get(k) != v]
        ok(not bad, "%s: %s data equals qbosim's bytes for all %d exact-case entities" % (stage, name, len(want)),
           "\n".join("%s/%s: got %r\n  want %r" % (k[0], k[1], got.get(k), want[k]) for k in bad[:4]))
    bad = [k for k, v in want.items() if entity_read(port, realm, k[0], k[1]) != v]
    ok(not bad, "%s: entity reads equal qbosim's bytes" % stage,
       "\n".join("%s/%s" % k for k in bad[:8]))
    blob = b"".join(pulled.values())
    for case in EXACT_NUMBERS + EXACT_STRINGS:
        ok(case in blob, "%s: %r reaches the feed verbatim" % (stage, case))


def max_seq(port):
    st, _, b = request(port, "GET", "/v1/changes?after=0&limit=1000", headers=FEED)
    nxt, last = 0, 0
    while True:
        top = members(b)
        nxt = json.loads(top["next"])
        if nxt == last:
            return nxt
        last = nxt
        st, _, b = request(port, "GET", "/v1/changes?after=%d&limit=1000" % nxt, headers=FEED)


qport = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % qport], realms=1, entities=24)
realm = list(sim.realms().keys())[0]
data_dir = tmpdir("qbcdc-exact-")
env = serve_env(qport, data_dir, sim)
env["QBCDC_CDC_INTERVAL"] = "3600"
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(qport), "qbcdc serve is up")
is_(register_realms(qport, sim), 1, "realm registered")

# 1. the query API (a backfill of every entity qbosim holds)
st, j = admin(qport, "POST", "/admin/realms/%s/backfill" % realm, json.dumps({"entities": ENTITIES}))
is_(st, 202, "backfill accepted")
jj = wait_job(qport, j["job"]) or {}
is_(jj.get("status"), "done", "backfill done")
check_all("backfill", qport, sim, realm)

# 2. webhook-driven fetches: update every exact-case entity (Id IN queries, batch, reads)
at = sim.access(realm)
st, _, _ = sim.req("POST", "/sim/mutate?n=400&per_hook=10&realm=%s" % realm)
is_(st, 200, "400 changes made and announced")
ok(wait_drained(sim, data_dir, timeout=90) == [], "qbcdc fetched every change")
check_all("webhooks", qport, sim, realm)

q.stop()
sim.stop()
done_testing()
