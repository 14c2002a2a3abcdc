#!/usr/bin/env python3
"""Push delivery to a flaky receiver (issue 14): at least once, in feed order, no gap.

A local receiver answers 500 to 30% of the requests, resets 5% of the connections, answers
5% slowly (past QBCDC_DELIVERY_TIMEOUT_MS), and is down (connection refused) for 10 s in
the middle of a burst of changes made through qbosim's webhooks. Then:
- every change of the feed is acknowledged by the receiver at least once, and the 2xx
  deliveries, first of each webhook-id, hold the feed in order with no gap and nothing twice;
- every change object is the one /v1/changes serves;
- retries keep their webhook-id and body, and every signature verifies (our own check here;
  test_delivery_verify.py uses npm's standardwebhooks);
- the subscription's cursor ends at the head with no lag, its attempts are visible, and
  /metrics counts the failures by kind.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from receiverlib import Receiver, flaky, sign
from simlib import Sim, admin, register_realms, serve_env, wait_drained

FEED = {"Authorization": "Bearer test-feed-token"}


def feed(port):
    """{seq: change object} from /v1/changes, and the raw pages"""
    out, raw, after = {}, [], 0
    while True:
        st, _, b = request(port, "GET", "/v1/changes?limit=1000&after=%d" % after, headers=FEED)
        raw.append(b)
        page = json.loads(b)
        for c in page["changes"]:
            out[c["seq"]] = c
        if not page["changes"]:
            return out, b"".join(raw)
        after = page["next"]


port = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % port], realms=2, entities=10)
env = serve_env(port, tmpdir("qbcdc-push-"), sim)
env.update({"QBCDC_DELIVERY_ALLOW_PRIVATE": "1", "QBCDC_CDC_INTERVAL": "3600", "QBCDC_DELIVERY_TIMEOUT_MS": "800",
            "QBCDC_DELIVERY_SCHEDULE": ",".join(["0", "0.05", "0.1", "0.2", "0.4"] + ["1"] * 27)})
data = env["QBCDC_DATA_DIR"]
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(port), "qbcdc serve is up", q.output())

rcv = Receiver(flaky(seed=14, p500=0.30, preset=0.05, pslow=0.05, slow_s=1.2))
st, sub = admin(port, "POST", "/admin/subscriptions", json.dumps({"url": rcv.url(), "batch_max": 5,
                                                                   "start_after": 0}))
is_(st, 201, "POST /admin/subscriptions answers 201")
ok(sub.get("id") and sub.get("secret", "").startswith("whsec_"), "with an id and a whsec_ secret", sub)
sid, secret = sub["id"], sub["secret"]
st, again = admin(port, "GET", "/admin/subscriptions/%s" % sid)
ok(st == 200 and "secret" not in again, "the secret is shown once: GET does not show it")

is_(register_realms(port, sim), 2, "two realms registered (their snapshots start the feed)")
sim.json("POST", "/sim/mutate?n=60&per_hook=3")
# the receiver goes down for 10 s in the middle of the burst
ok(wait_for(lambda: len(rcv.acked()) >= 5, 30), "deliveries flow before the outage")
rcv.down()
down_at = time.time()
sim.json("POST", "/sim/mutate?n=60&per_hook=3")
time.sleep(10)
rcv.up()
diag("the receiver was down for %.1f s" % (time.time() - down_at))
sim.json("POST", "/sim/mutate?n=60&per_hook=3")
ok(not wait_drained(sim, data, timeout=90), "qbcdc fetched every change")

changes, raw = feed(port)
head = max(changes)
diag("feed head %d" % head)


def caught_up():
    st, j = admin(port, "GET", "/admin/subscriptions/%s" % sid)
    return j if st == 200 and j["cursor"] == head and j["lag"]["sequences"] == 0 else None


s = wait_for(caught_up, 120, poll=0.5)
ok(s is not None, "the cursor ends at the head (%d)" % head, admin(port, "GET", "/admin/subscriptions/%s" % sid)[1])

reqs = rcv.snapshot()
by_id_all = {}
for r in reqs:
    by_id_all.setdefault(r["id"], []).append(r)
answers = {}
for r in reqs:
    answers[str(r["answer"])] = answers.get(str(r["answer"]), 0) + 1
diag("the receiver saw %d requests: %s" % (len(reqs), answers))
ok(answers.get("500", 0) > 5 and answers.get("reset", 0) > 0, "it answered 500s and reset connections")
slow = [r for r in reqs if r.get("slow")]
ok(slow and all(len(by_id_all.get(r["id"], [])) > 1 for r in slow),
   "%d answers came too slowly (past QBCDC_DELIVERY_TIMEOUT_MS): each was sent again, same webhook-id" % len(slow))

seqs = rcv.acked_seqs()
is_(seqs, sorted(changes), "2xx deliveries (first of each webhook-id) hold every change in feed order, no gap, "
    "nothing twice (%d changes)" % len(seqs))

delivered = {}
for r in rcv.acked():
    for c in json.loads(r["body"])["data"]["changes"]:
        delivered[c["seq"]] = c
is_([k for k in changes if delivered.get(k) != changes[k]][:5], [], "each change is the object /v1/changes serves")
# the stored bytes are spliced: each change's text appears as is in /v1/changes' answer
first = rcv.acked()[0]["body"]
start = first.index(b'"changes":[') + len(b'"changes":[')
one = first[start:first.index(b',{"seq":', start)] if b',{"seq":' in first[start:] else None
ok(one is not None and one in raw, "a delivered change's bytes are /v1/changes' bytes")
body0 = json.loads(first)
ok(body0.get("type") == "qbcdc.changes" and body0["data"].get("feed_id") and "timestamp" in body0,
   "the body is {type: qbcdc.changes, timestamp, data: {changes, feed_id}}")
ok(all(len(json.loads(r["body"])["data"]["changes"]) <= 5 for r in reqs if r["body"]), "at most batch_max changes")

by_id = {}
for r in reqs:
    by_id.setdefault(r["id"], []).append(r)
retried = [v for v in by_id.values() if len(v) > 1]
ok(len(retried) > 5, "retries happened (%d deliveries were tried more than once)" % len(retried))
ok(all(len({x["body"] for x in v}) == 1 for v in retried), "a retry keeps its webhook-id and its body")
ok(all(any(isinstance(x["answer"], int) and 200 <= x["answer"] < 300 for x in v) for v in by_id.values()),
   "every webhook-id was acknowledged in the end")
bad = [r["id"] for r in reqs if r["sig"] != sign(secret, r["id"], r["ts"], r["body"])]
is_(bad[:3], [], "every request's webhook-signature verifies (v1, HMAC-SHA256 of id.timestamp.body)")
ok(all(abs(int(r["ts"]) - r["at"]) < 30 for r in reqs), "webhook-timestamp is the send time (unix seconds)")
ok(all(r["ctype"] == "application/json" for r in reqs), "Content-Type: application/json")

# order: no delivery of a later batch reaches the receiver before the one before it was acknowledged
out_of_order, last_ack, acked_ids = [], 0, set()
for r in reqs:
    cs = json.loads(r["body"])["data"]["changes"]
    if r["id"] in acked_ids:
        continue  # a retry of a delivery the receiver had taken (qbcdc timed out first)
    if cs[0]["seq"] != last_ack + 1:
        out_of_order.append((r["id"], cs[0]["seq"], last_ack))
    if isinstance(r["answer"], int) and 200 <= r["answer"] < 300:
        acked_ids.add(r["id"])
        last_ack = cs[-1]["seq"]
is_(out_of_order[:3], [], "one delivery at a time, in feed order: each starts right after the last acknowledged")

s = admin(port, "GET", "/admin/subscriptions/%s" % sid)[1]
ok(s["state"] == "active" and s["attempts"] and "latency_ms" in s["attempts"][0] and s["delivered"]["changes"] >= len(
    changes), "GET shows the state, the last attempts with their latency, and what was delivered", s)
st, lst = admin(port, "GET", "/admin/subscriptions")
ok(st == 200 and [x["id"] for x in lst["subscriptions"]] == [sid], "GET /admin/subscriptions lists it")
m5 = metric(port, 'qbcdc_delivery_attempts_total{result="http_5xx"}')
mn = metric(port, 'qbcdc_delivery_attempts_total{result="network"}')
mok = metric(port, 'qbcdc_delivery_attempts_total{result="ok"}')
ok(m5 and m5 > 0 and mn and mn > 0 and mok and mok >= len(rcv.acked()),
   "/metrics counts attempts by result (ok %s, http_5xx %s, network %s)" % (mok, m5, mn))
is_(metric(port, 'qbcdc_delivery_lag_sequences{subscription="%s"}' % sid), 0.0, "and the lag, 0")
is_(q.stop(), 0, "qbcdc stops cleanly")
rcv.close()
sim.stop()
done_testing()
