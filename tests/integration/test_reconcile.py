#!/usr/bin/env python3
"""End to end: qbosim -> webhooks -> `qbcdc serve` (ingress, store, reconciler) -> entities and feed.

qbosim posts signed webhooks (classic, then CloudEvents; some duplicated, some reordered)
for changes across several companies whose access tokens expire every few seconds. At the
end every entity qbcdc stores equals qbosim's truth, every changed entity is there, the
feed holds each version once, no request was throttled, and the upstream calls per changed
entity are reported (from qbosim's own counters).
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from simlib import Sim, compare_to_truth, flat_truth, register_realms, serve_env, sim_calls, wait_drained


qport = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % qport, "--access-ttl", "5",
                "--dup", "0.2", "--reorder", "0.2", "--retry-scale", "0.001"], realms=4, entities=30)
data_dir = tmpdir("qbcdc-rec-")
# the calls per change of webhook bursts are measured here: no initial snapshot (its pages are a one-time
# cost, measured in test_snapshot.py; test_cdc.py converges with snapshots on)
q = Proc([QBCDC, "serve"], env=dict(serve_env(qport, data_dir, sim), QBCDC_SNAPSHOT_ON_CONNECT="0"))
ok(wait_http(qport), "qbcdc serve is up", q.output())

realms = sim.realms()
n_ok = register_realms(qport, sim)
is_(n_ok, len(realms), "every realm's refresh token registered")

truth0 = flat_truth(sim.json("GET", "/sim/truth")[1])
calls0, _ = sim_calls(sim)
t0 = time.time()
for fmt in ("classic", "cloudevents"):
    st, j = sim.json("POST", "/sim/mutate?n=600&per_hook=5&format=%s" % fmt)
    ok(st == 200 and j.get("changes") == 600, "qbosim made 600 changes (%s webhooks)" % fmt, j)
    time.sleep(6)  # let access tokens expire in between: refreshes happen under load

left = wait_drained(sim, data_dir, timeout=90)
ok(left == [], "every notice reconciled", "%d still pending" % len(left or []))
elapsed = time.time() - t0

truth = flat_truth(sim.json("GET", "/sim/truth")[1])
wrong, missing, dups, feed, changed = compare_to_truth(truth, truth0, data_dir)
is_(wrong[:5], [], "every stored entity equals qbosim's truth")
is_(missing[:5], [], "every changed entity is stored (%d changed)" % len(changed))
is_(dups[:5], [], "the feed holds each version once (%d records)" % len(feed))
seqs = [rec["seq"] for rec in feed]
ok(seqs == sorted(set(seqs)), "feed sequences strictly increase")

calls, stats = sim_calls(sim)
calls -= calls0
throttled = stats.get("throttled", 0)
is_(throttled, 0, "no request was throttled")
per = calls / max(1, len(changed))
diag("%d changed entities, %d upstream API calls (%.3f per changed entity), %d token requests, %.1f s"
     % (len(changed), calls, per, stats.get("oauth", {}).get("token", 0), elapsed))
ok(per <= 0.05, "bursts cost <= 0.05 upstream calls per changed entity")
missing_mv = sum(r.get("minorversion_missing", 0) for r in stats.get("realms", {}).values())
is_(missing_mv, 0, "minorversion on every call")

is_(q.stop(), 0, "qbcdc stops cleanly on SIGTERM")
log = q.output()
leaked = [t for t in [v["refresh_token"] for v in realms.values()] if t in log]
is_(leaked, [], "no refresh token in qbcdc's log")
sim.stop()
done_testing()
