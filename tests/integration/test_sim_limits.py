#!/usr/bin/env python3
"""qbosim: per-realm limits (qbo-facts §5) and fault injection.

The 501st request in a minute gets 429 with the ThrottleExceeded fault, as JSON or as
QBO's XML; the 11th concurrent request gets 429; injected latency, 5xx and resets.
"""
import http.client
import json
import threading
import time

from harness import diag, done_testing, is_, ok
from simlib import Sim

sim = Sim(realms=3, entities=5, args=["--throttle-xml", "0.5"])
realms = sorted(sim.realms())
R, R2, R3 = realms
AT = sim.access(R)

# --- 500 per minute ---------------------------------------------------------------------------
c = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
hdr = {"Authorization": "Bearer " + AT, "Accept": "application/json"}
statuses = []
t0 = time.time()
for i in range(500):
    c.request("GET", "/v3/company/%s/customer/1?minorversion=75" % R, headers=hdr)
    r = c.getresponse()
    r.read()
    statuses.append(r.status)
elapsed = time.time() - t0
ok(elapsed < 50, "500 requests took %.1f s" % elapsed)
is_(statuses.count(200), 500, "500 requests in a minute all answered 200")
seen = {"json": 0, "xml": 0}
for i in range(20):
    c.request("GET", "/v3/company/%s/customer/1" % R, headers=hdr)
    r = c.getresponse()
    body = r.read()
    ctype = r.getheader("Content-Type", "")
    if i == 0:
        is_(r.status, 429, "the 501st gets 429")
    if r.status != 429:
        continue
    if body.lstrip().startswith(b"<"):
        seen["xml"] += 1
        ok(b'<Error code="3001">' in body and b"ThrottleExceeded" in body and "xml" in ctype,
           "XML ThrottleExceeded fault (§5)") if seen["xml"] == 1 else None
    else:
        j = json.loads(body)
        if seen["json"] == 0:
            e = j["Fault"]["Error"][0]
            ok(e["code"] == "3001" and "ThrottleExceeded" in e["Message"] and j["Fault"]["type"] == "SERVICE",
               "JSON ThrottleExceeded fault")
        seen["json"] += 1
ok(seen["json"] > 0 and seen["xml"] > 0, "both JSON and XML 429s (%r)" % seen)
c.request("GET", "/v3/company/%s/customer/1" % R2, headers={"Authorization": "Bearer " + sim.access(R2)})
r = c.getresponse()
r.read()
is_(r.status, 200, "other realms are not affected")
c.close()
st, s = sim.json("GET", "/sim/stats")
is_(s["realms"][R]["throttled"], 20, "/sim/stats counts 429s per realm")
is_(s["throttled"], 20, "and in total")
is_(s["realms"][R]["requests"]["read"], 520, "every request counted")

# --- 10 concurrent ----------------------------------------------------------------------------
AT3 = sim.access(R3)
st, f = sim.json("POST", "/sim/faults", json.dumps({"latency_ms": 1500}))
is_((st, f["latency_ms"]), (200, 1500), "latency set through /sim/faults")
results = []
lock = threading.Lock()


def one(i):
    try:
        cc = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=15)
        cc.request("GET", "/v3/company/%s/invoice/1" % R3, headers={"Authorization": "Bearer " + AT3})
        rr = cc.getresponse()
        rr.read()
        with lock:
            results.append((time.time(), rr.status))
        cc.close()
    except Exception as e:  # noqa
        with lock:
            results.append((time.time(), repr(e)))


threads = []
t0 = time.time()
for i in range(10):
    th = threading.Thread(target=one, args=(i,))
    th.start()
    threads.append(th)
deadline = time.time() + 5
while time.time() < deadline:  # wait until all 10 are inside qbosim
    st, s = sim.json("GET", "/sim/stats")
    if s["realms"][R3]["in_flight"] >= 10:
        break
    time.sleep(0.02)
is_(s["realms"][R3]["in_flight"], 10, "10 requests in flight")
one(10)
is_(results[0][1], 429, "the 11th concurrent request gets 429 at once")
ok(results[0][0] - t0 < 1.5, "without waiting for the latency")
for th in threads:
    th.join(15)
is_(sorted(st for _, st in results[1:]), [200] * 10, "the 10 others succeed")
ok(min(t for t, _ in results[1:]) - t0 >= 1.4, "after the injected latency")
sim.json("POST", "/sim/faults", json.dumps({"latency_ms": 0}))

# --- 5xx and resets ---------------------------------------------------------------------------
AT2 = sim.access(R2)
sim.json("POST", "/sim/faults", json.dumps({"error_rate": 1}))
st, j = sim.api("GET", R2, "invoice/1", AT2)
ok(st in (500, 503) and j["Fault"]["type"] == "SystemFault", "error_rate 1: 500/503 SystemFault")
sim.json("POST", "/sim/faults", json.dumps({"error_rate": 0, "reset_rate": 1}))
try:
    st, j = sim.api("GET", R2, "invoice/1", AT2)
    dropped = "no: HTTP %r" % st
except (ConnectionError, http.client.HTTPException, OSError) as e:
    dropped = type(e).__name__
ok(dropped != "" and not dropped.startswith("no:"), "reset_rate 1: the connection is dropped without an answer (%s)"
   % dropped)
sim.json("POST", "/sim/faults", json.dumps({"reset_rate": 0}))
st, j = sim.api("GET", R2, "invoice/1", AT2)
is_(st, 200, "back to normal")
st, s = sim.json("GET", "/sim/stats")
ok(s["realms"][R2]["injected_errors"] == 1 and s["realms"][R2]["injected_resets"] == 1, "injections counted")
st, j = sim.json("POST", "/sim/faults", json.dumps({"error_rate": 2}))
is_(st, 400, "bad fault values refused")

is_(sim.stop(), 0, "clean exit") or diag(sim.proc.output())
done_testing()
