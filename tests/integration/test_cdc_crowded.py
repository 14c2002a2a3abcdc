#!/usr/bin/env python3
"""CDC of a crowded second: more than 1,000 changes of one entity within one second.

QBO's LastUpdatedTime has whole seconds and a CDC answer carries at most 1,000 objects,
so paging CDC by time cannot get past such a second. The sweep reads that second through
the query API instead, then goes on with CDC. And since CDC puts deleted objects after live
ones, a capped answer may have cut deletes off: the sweep's commit audits that entity
(every live version held is read again), which finds the deletes of entities qbcdc held.

Here a backfill first brings in the company's 12,000 entities; then qbosim makes 16,000
changes within a few milliseconds, every webhook lost. One sweep plus its audit must leave
every entity qbcdc holds equal to the truth, deletes included. (Entities created and
deleted inside the window were never held: nothing can report them; counted.)
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from simlib import admin, Sim, compare_to_truth, flat_truth, qbcdc_lines, serve_env, serve_with_sim, sim_calls, wait_job, SIM_ENTITIES


def converge(truth_before, timeout=40, deletes_too=True):
    """waits until qbcdc holds the truth (with deletes_too, the deletes of what it held too) and
    nothing is pending"""
    deadline = time.time() + timeout
    while True:
        truth = flat_truth(sim.json("GET", "/sim/truth")[1])
        wrong, missing, dups, feed, changed = compare_to_truth(truth, truth_before, data_dir)
        live_missing = [k for k in missing if truth.get(k) is not None]
        stale = [w for w in wrong if deletes_too or w[2] is not None]
        done = not stale and not live_missing and not qbcdc_lines("pending", "--data-dir", data_dir, "--limit", "1")
        if done or time.time() > deadline:
            return truth, wrong, missing, live_missing, dups, feed, changed
        time.sleep(0.5)


qport = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % qport, "--rate-limit", "100000"], realms=1,
          entities=1500)
# audits of one entity may follow each other at once here (QBCDC_CDC_AUDIT_GAP; 600 s by default)
extra = {"QBCDC_CDC_INTERVAL": "300", "QBCDC_CDC_ENTITIES": SIM_ENTITIES, "QBCDC_RATE_LIMIT": "100000",
         "QBCDC_CDC_AUDIT_GAP": "0"}
q, data_dir, (realm,) = serve_with_sim(sim, qport, "qbcdc-crowded-", extra)
st, j = admin(qport, "POST", "/admin/realms/%s/backfill" % realm, "")
is_(st, 202, "a backfill of the whole company")
b = wait_job(qport, j["job"]) or {}
is_(b.get("status"), "done", "it finished (%s records)" % b.get("records_seen"))
truth0 = flat_truth(sim.json("GET", "/sim/truth")[1])
held = {k for k, v in truth0.items() if v is not None}

st, j = sim.json("POST", "/sim/mutate?n=16000&realm=%s&loss=1" % realm)
ok(st == 200 and j.get("changes") == 16000, "16,000 changes in one company, no webhook delivered", j)
calls0 = sim_calls(sim)[1]["realms"][realm]["requests"]
t0 = time.time()
st, _ = admin(qport, "POST", "/admin/realms/%s/cdc" % realm)
is_(st, 202, "a CDC sweep asked for")
truth, wrong, missing, live_missing, dups, feed, changed = converge(truth0)
elapsed = time.time() - t0
held_deleted = [k for k in held if truth.get(k) is None]
ok(len(held_deleted) > 100, "many entities qbcdc held were deleted (%d)" % len(held_deleted))
is_(wrong[:5], [], "every stored entity equals the truth, the held ones deleted included (%d changed)" % len(changed))
is_(live_missing[:5], [], "every changed entity still live is stored")
is_(dups[:5], [], "the feed holds each version once (%d records)" % len(feed))
calls = sim_calls(sim)[1]["realms"][realm]["requests"]
cdc, query = calls.get("cdc", 0) - calls0.get("cdc", 0), calls.get("query", 0) - calls0.get("query", 0)
ok(cdc < 100, "in a few dozen CDC requests (%d; %d query, %d single reads)" % (cdc, query, calls.get("read", 0) - calls0.get("read", 0)))
_, _, m = request(qport, "GET", "/metrics")
crowded = [l for l in m.decode().splitlines() if l.startswith("qbcdc_cdc_crowded_seconds_total ")]
ok(crowded and float(crowded[0].split()[-1]) > 0, "crowded seconds counted in /metrics", crowded)
audits = [l for l in m.decode().splitlines() if l.startswith("qbcdc_cdc_audit_notices_total ")]
ok(audits and float(audits[0].split()[-1]) > 0, "audit notices counted in /metrics", audits)
unseen = [k for k in missing if truth.get(k) is None]
diag("converged in %.1f s: %d CDC + %d query requests; %d held entities deleted; %d entities created and "
     "deleted inside the window, never held (nothing reports them with every webhook lost)"
     % (elapsed, cdc, query, len(held_deleted), len(unseen)))
# ---- the same volume spread over seconds: CDC pages by time (no crowded second), and audits
truth1 = truth
held = {k for k, v in truth1.items() if v is not None}
crowded0 = float(crowded[0].split()[-1])
calls0 = sim_calls(sim)[1]["realms"][realm]["requests"]
for i in range(4):
    st, j = sim.json("POST", "/sim/mutate?n=3000&realm=%s&loss=1" % realm)
    time.sleep(1.1)  # each burst in a second of its own: under 1,000 changes of one entity per second
st, _ = admin(qport, "POST", "/admin/realms/%s/cdc" % realm)
truth, wrong, missing, live_missing, dups, feed, changed = converge(truth1)
held_deleted = [k for k in held if truth.get(k) is None]
is_(wrong[:5], [], "12,000 changes over 4 s: every stored entity equals the truth (%d held ones deleted)"
    % len(held_deleted))
is_(live_missing[:5], [], "every changed entity still live is stored")
is_(dups[:5], [], "the feed holds each version once (%d records)" % len(feed))
calls = sim_calls(sim)[1]["realms"][realm]["requests"]
_, _, m = request(qport, "GET", "/metrics")
crowded = [l for l in m.decode().splitlines() if l.startswith("qbcdc_cdc_crowded_seconds_total ")]
cdc = calls.get("cdc", 0) - calls0.get("cdc", 0)
ok(cdc > 8, "paged by time: %d CDC calls (crowded seconds: %s)" % (cdc, float(crowded[0].split()[-1]) - crowded0))
is_(q.stop(), 0, "qbcdc stops cleanly")

# ---- an audit within the gap is owed, and carried by the first sweep after it
GAP = 40  # long enough for the second window to come within it, even under sanitizers on a loaded machine (29 s seen)
env = dict(serve_env(qport, data_dir, sim), **extra)
env["QBCDC_CDC_AUDIT_GAP"] = str(GAP)
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(qport), "qbcdc restarts with a %d s audit gap" % GAP)


def crowd_and_sweep():
    before = flat_truth(sim.json("GET", "/sim/truth")[1])
    sim.json("POST", "/sim/mutate?n=16000&realm=%s&loss=1" % realm)
    admin(qport, "POST", "/admin/realms/%s/cdc" % realm)
    return before


truth2 = crowd_and_sweep()  # the first audit since the start: done at once
truth, wrong, missing, live_missing, dups, feed, changed = converge(truth2)
is_(wrong[:5], [], "a crowded window: audited at once, every held delete found")
first_audit_by = time.time()
truth3 = crowd_and_sweep()  # within the gap: owed
truth, wrong, missing, live_missing, dups, feed, changed = converge(truth3, deletes_too=False)
ok(not live_missing and wrong and all(w[2] is None for w in wrong),
   "another one within the gap: swept, but its held deletes wait (%d)" % len(wrong))
ok(time.time() - first_audit_by < GAP, "(that was within the gap)")
time.sleep(max(0.0, GAP + 0.5 - (time.time() - first_audit_by)))
admin(qport, "POST", "/admin/realms/%s/cdc" % realm)  # a sweep after the gap, itself not capped
truth, wrong, missing, live_missing, dups, feed, changed = converge(truth3)
is_(wrong[:5], [], "the next sweep after the gap carries the owed audit: every held delete found")
is_(q.stop(), 0, "qbcdc stops cleanly")
sim.stop()
done_testing()
