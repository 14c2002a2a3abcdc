#!/usr/bin/env python3
"""Crash test for reconciliation: kill -9 `qbcdc serve` while it fetches.

qbosim answers API calls after 250 ms and sends 30% of webhooks twice (as Intuit may),
so fetches are in flight when qbcdc is
SIGKILLed at a random moment, several times, while webhooks keep coming (qbosim
retries the ones that failed). After the last restart qbcdc must converge: nothing
pending is lost (every entity equals qbosim's truth), and no version appears twice
in the feed. Seeded (QBCDC_CRASH_SEED) so a failure can be replayed.
"""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from simlib import Sim, compare_to_truth, flat_truth, qbcdc_lines, register_realms, serve_env, sim_calls, wait_drained

ROUNDS = int(os.environ.get("QBCDC_CRASH_ROUNDS", "6"))
seed = int(os.environ.get("QBCDC_CRASH_SEED", str(int(time.time()))))
rnd = random.Random(seed)
diag("seed %d (set QBCDC_CRASH_SEED to replay)" % seed)

qport = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % qport, "--retry-scale", "0.002",
                "--latency-ms", "250", "--dup", "0.3"], realms=3, entities=30)
data_dir = tmpdir("qbcdc-rec-crash-")
env = serve_env(qport, data_dir, sim)
env["QBCDC_COALESCE_MS"] = "50"  # many small fetches: more of them are in flight at the kill
truth0 = flat_truth(sim.json("GET", "/sim/truth")[1])

q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(qport), "qbcdc serve is up")
is_(register_realms(qport, sim), len(sim.realms()), "realms registered")

killed_with_work = 0
for r in range(ROUNDS):
    st, j = sim.json("POST", "/sim/mutate?n=150&per_hook=3")
    ok(st == 200, "round %d: 150 changes made" % r)
    time.sleep(rnd.uniform(0.02, 0.35))
    pending = len(qbcdc_lines("pending", "--data-dir", data_dir))
    killed_with_work += pending > 0
    q.kill9()
    diag("round %d: killed with %d notices pending" % (r, pending))
    q = Proc([QBCDC, "serve"], env=env)
    ok(wait_http(qport), "round %d: restarted on the same store" % r)
ok(killed_with_work > 0, "at least one kill landed while work was pending (%d of %d)" % (killed_with_work, ROUNDS))

left = wait_drained(sim, data_dir, timeout=120)
ok(left == [], "after the last restart every notice is reconciled", "%d still pending" % len(left or []))
_, s = sim_calls(sim)
is_(s.get("webhooks", {}).get("gave_up", 0), 0, "qbosim gave up on no webhook")

truth = flat_truth(sim.json("GET", "/sim/truth")[1])
wrong, missing, dups, feed, changed = compare_to_truth(truth, truth0, data_dir)
is_(wrong[:5], [], "every stored entity equals qbosim's truth (%d entities)" % len(truth))
is_(missing[:5], [], "every changed entity is stored (%d changed)" % len(changed))
is_(dups[:5], [], "no version twice in the feed (%d records)" % len(feed))
seqs = [rec["seq"] for rec in feed]
ok(seqs == sorted(set(seqs)), "feed sequences strictly increase across the crashes")
is_(q.stop(), 0, "qbcdc stops cleanly")
sim.stop()
done_testing()
