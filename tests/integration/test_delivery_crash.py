#!/usr/bin/env python3
"""Push delivery across a crash (issue 14): qbcdc is killed (SIGKILL) while it delivers a
backlog, then started again. The receiver still gets every change at least once, in order:
no acknowledged batch is followed by one that leaves a gap, and after the restart delivery
picks up at the stored cursor (at most what was acknowledged but not yet committed comes
again). The subscription and its secret survive.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from receiverlib import Receiver, sign
from simlib import Sim, admin, register_realms, serve_env, wait_drained

FEED = {"Authorization": "Bearer test-feed-token"}


port = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % port], realms=2, entities=10)
env = serve_env(port, tmpdir("qbcdc-push-crash-"), sim)
env.update({"QBCDC_DELIVERY_ALLOW_PRIVATE": "1", "QBCDC_CDC_INTERVAL": "3600"})
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(port), "qbcdc serve is up", q.output())
phase = {"answers": 0, "hold": True}


def behaviour(r):
    """20 ms an answer; after the 20th, 1 s until the kill: however slow the machine, the kill
    comes with deliveries left for the restart (all 68 were once done before it)"""
    phase["answers"] += 1
    return ("status", 200, 1.0 if phase["hold"] and phase["answers"] > 20 else 0.02)


rcv = Receiver(behaviour)
st, sub = admin(port, "POST", "/admin/subscriptions", json.dumps({"url": rcv.url(), "start_after": 0, "batch_max": 3}))
is_(st, 201, "a subscription from the start")
is_(register_realms(port, sim), 2, "two realms registered")
sim.json("POST", "/sim/mutate?n=150&per_hook=5")
ok(not wait_drained(sim, env["QBCDC_DATA_DIR"], timeout=60), "every change fetched")
ok(wait_for(lambda: len(rcv.acked()) >= 20, 30), "deliveries under way")
q.kill9()
phase["hold"] = False
time.sleep(1.1)  # a request in flight at the kill is recorded when its (held) answer is written
t_restart = time.time()
n_before = len(rcv.snapshot())
last_before = rcv.acked_seqs()[-1]
diag("killed after %d deliveries, the last acknowledged change %d" % (n_before, last_before))
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(port), "qbcdc starts again after SIGKILL")
feed, after = [], 0
while True:
    st, _, b = request(port, "GET", "/v1/changes?limit=1000&after=%d" % after, headers=FEED)
    page = json.loads(b)
    feed += [c["seq"] for c in page["changes"]]
    if not page["changes"]:
        break
    after = page["next"]
ok(wait_for(lambda: admin(port, "GET", "/admin/subscriptions/%s" % sub["id"])[1]["cursor"] == after, 60),
   "the subscription reaches the head (%d) after the restart" % after)

gaps, top, seen = [], 0, set()
for r in rcv.snapshot():
    if not (isinstance(r["answer"], int) and 200 <= r["answer"] < 300):
        continue
    cs = [c["seq"] for c in json.loads(r["body"])["data"]["changes"]]
    if cs[0] > top + 1:
        gaps.append((top, cs[0]))
    top = max(top, cs[-1])
    seen.update(cs)
is_(gaps, [], "no delivery ever left a gap after what was acknowledged before it")
is_(sorted(seen), feed, "every change was delivered at least once")
first_after = json.loads([r for r in rcv.snapshot() if r["at"] >= t_restart][0]["body"])["data"]["changes"][0]["seq"]
ok(first_after <= last_before + 1, "after the restart delivery resumed at or before %d (at %d): the stored cursor"
   % (last_before + 1, first_after))
ok(last_before + 1 - first_after <= 3 * 50, "and not far back: the cursor is committed as deliveries are acknowledged "
   "(%d changes again)" % (last_before + 1 - first_after))
r = rcv.snapshot()[-1]
is_(r["sig"], sign(sub["secret"], r["id"], r["ts"], r["body"]), "still signed with the subscription's secret")
is_(q.stop(), 0, "qbcdc stops")
rcv.close()
sim.stop()
done_testing()
