#!/usr/bin/env python3
"""A CDC sweep commits in bounded chunks (QBCDC_CDC_COMMIT_MAX), not in one transaction
holding every version of its window: a long backlog can no longer fill a transaction or
memory and retry forever. Only the last commit moves the watermark.

With QBCDC_CDC_COMMIT_MAX=7, 60 changes whose webhooks are all lost, then a requested sweep:
every change reaches the store once, the sweep took at least ceil(versions / 7) commits
(qbcdc_cdc_commits_total), one sweep completed, and the watermark moved forward. A bad
value of the setting is refused at start, naming the variable's option.
"""
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from simlib import admin, Sim, compare_to_truth, flat_truth, serve_env, serve_with_sim, SIM_ENTITIES as ENTITIES


qport = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % qport, "--retry-scale", "0.001"],
          realms=1, entities=20)
extra = {"QBCDC_CDC_INTERVAL": "3600", "QBCDC_CDC_ENTITIES": ENTITIES, "QBCDC_CDC_COMMIT_MAX": "7",
         "QBCDC_SNAPSHOT_ON_CONNECT": "0"}
q, data_dir, (realm,) = serve_with_sim(sim, qport, "qbcdc-cdc-chunks-", extra)

# the first sweep sets a watermark; wait for it so the one under test starts from there
admin(qport, "POST", "/admin/realms/%s/cdc" % realm)
deadline = time.time() + 30
while time.time() < deadline and (metric(qport, "qbcdc_cdc_sweeps_total") or 0) < 1:
    time.sleep(0.2)
ok((metric(qport, "qbcdc_cdc_sweeps_total") or 0) >= 1, "a first sweep completed")
st, j = admin(qport, "GET", "/admin/realms")
mark0 = {r["realm"]: r for r in j["realms"]}[realm]["cdc_watermark"]
truth0 = flat_truth(sim.json("GET", "/sim/truth")[1])
sweeps0 = metric(qport, "qbcdc_cdc_sweeps_total")
commits0 = metric(qport, "qbcdc_cdc_commits_total")
ok(commits0 is not None, "qbcdc_cdc_commits_total is exported")
time.sleep(1.1)  # the next window starts after the watermark's second

st, j = sim.json("POST", "/sim/mutate?n=60&realm=%s&per_hook=3&loss=1" % realm)
ok(st == 200 and j.get("changes") == 60, "60 changes, no webhook delivered", j)
st, j = admin(qport, "POST", "/admin/realms/%s/cdc" % realm)
is_(st, 202, "a sweep is requested")
deadline = time.time() + 60
while time.time() < deadline and (metric(qport, "qbcdc_cdc_sweeps_total") or 0) < sweeps0 + 1:
    time.sleep(0.2)
is_(metric(qport, "qbcdc_cdc_sweeps_total"), sweeps0 + 1, "the sweep completed")

truth = flat_truth(sim.json("GET", "/sim/truth")[1])
wrong, missing, dups, feed, changed = compare_to_truth(truth, truth0, data_dir)
is_(wrong[:5], [], "every stored entity equals the truth (%d changed)" % len(changed))
is_(missing[:5], [], "every changed entity is stored")
is_(dups[:5], [], "the feed holds each version once")
cdc_records = [r for r in feed if r["source"] == "cdc"]
ok(len(cdc_records) >= len(changed) > 7, "the sweep found them (%d cdc records for %d changed entities)" %
   (len(cdc_records), len(changed)))
commits = metric(qport, "qbcdc_cdc_commits_total") - commits0
want = math.ceil(len(changed) / 7.0)
ok(commits >= want, "committed in chunks of at most 7: %d commits for %d changed entities (>= %d)" %
   (commits, len(changed), want))
st, j = admin(qport, "GET", "/admin/realms")
mark1 = {r["realm"]: r for r in j["realms"]}[realm]["cdc_watermark"]
ok(mark1 is not None and mark0 is not None and mark1 > mark0, "the watermark moved forward (%s -> %s)" %
   (mark0, mark1))
is_(q.stop(), 0, "qbcdc stops cleanly")

# a bad value is refused at start, naming the option
env = dict(serve_env(free_port(), tmpdir("qbcdc-cdc-chunks-bad-"), sim), QBCDC_CDC_COMMIT_MAX="0")
p = Proc([QBCDC, "serve"], env=env)
code = p.p.wait(timeout=15)
ok(code != 0 and "QBCDC_CDC_COMMIT_MAX" in p.output(), "QBCDC_CDC_COMMIT_MAX=0 is refused, naming the variable",
   p.output()[-300:])
sim.stop()
done_testing()
