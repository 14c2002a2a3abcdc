#!/usr/bin/env python3
"""Live fetches take the cheapest plan (issue 12): a webhook burst that touches several
entity types (deletes among them) is fetched with one CDC call, not a query per type and a
read per deleted id; a single change still costs one query or read. Counted by qbosim.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from simlib import Sim, compare_to_truth, flat_truth, qbcdc_lines, register_realms, serve_env, wait_drained


def requests(sim):
    st, s = sim.json("GET", "/sim/stats")
    out = {}
    for r in s.get("realms", {}).values():
        for k, v in r.get("requests", {}).items():
            out[k] = out.get(k, 0) + v
    return out


def delta(a, b):
    return {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b) if b.get(k, 0) != a.get(k, 0)}


port = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % port], realms=1, entities=10)
realm = next(iter(sim.realms()))
truth0 = flat_truth(sim.json("GET", "/sim/truth")[1])
env = serve_env(port, tmpdir("qbcdc-plan-"), sim)
env.update({"QBCDC_CDC_INTERVAL": "3600", "QBCDC_SNAPSHOT_ON_CONNECT": "0"})
data = env["QBCDC_DATA_DIR"]
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(port), "qbcdc serve is up", q.output())
is_(register_realms(port, sim), 1, "the realm registered")
time.sleep(1)  # its first sweep (at start) is over

before = requests(sim)
st, j = sim.json("POST", "/sim/mutate?n=40&realm=%s&per_hook=40" % realm)
ok(st == 200, "40 changes in one webhook")
is_(wait_drained(sim, data, timeout=30), [], "fetched")
d = delta(before, requests(sim))
truth = flat_truth(sim.json("GET", "/sim/truth")[1])
changed = {k for k, v in truth.items() if truth0.get(k, "absent") != v}
types = {k[1] for k in changed}
deletes = [k for k in changed if truth[k] is None]
diag("changes: %d over %d entity types, %d deletes; qbosim requests: %s" % (len(changed), len(types), len(deletes), d))
ok(len(types) >= 3, "the burst touched %d entity types" % len(types))
is_(d, {"cdc": 1}, "one CDC call fetched them all (queries would take %d, plus a read per delete)" % len(types))
wrong, missing, dups, feed, _ = compare_to_truth(truth, truth0, data)
ok(not wrong and not missing, "every entity equals the truth, deletes included", (wrong[:3], missing[:3]))
st, _, m = request(port, "GET", "/metrics")
ok('qbcdc_qbo_calls_total{endpoint="cdc",status="200"}' in m.decode(), "counted as a cdc call")

before = requests(sim)
truth0 = truth
st, j = sim.json("POST", "/sim/mutate?n=1&realm=%s&per_hook=1" % realm)
is_(wait_drained(sim, data, timeout=30), [], "a single change is fetched")
d = delta(before, requests(sim))
ok(sum(d.values()) == 1 and "cdc" not in d, "with one query or read, not CDC", d)
is_(q.stop(), 0, "qbcdc stops")
sim.stop()
done_testing()
