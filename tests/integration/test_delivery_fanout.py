#!/usr/bin/env python3
"""50 push subscriptions, 10 of them dead, while webhooks come in (issue 14).

40 subscriptions deliver to a healthy local receiver; 5 point at a port that refuses
connections and 5 at a "black hole" that accepts connections and never answers (each
attempt lasts QBCDC_DELIVERY_TIMEOUT_MS). While qbosim sends bursts of webhooks:
- every webhook is acked and fetched as usual (ingest and reconciliation are not held up);
- all 40 healthy subscriptions reach the head, each with every change in order, no gap;
- the 10 dead ones stay behind with failed attempts (they are retried, not skipped), and
  /v1/changes answers at once all along.
"""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from receiverlib import Receiver
from simlib import Sim, admin, register_realms, serve_env, wait_drained

FEED = {"Authorization": "Bearer test-feed-token"}


class BlackHole:
    """accepts connections, reads, never answers"""

    def __init__(self):
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(64)
        self.port = self.s.getsockname()[1]
        self.conns = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            self.conns.append(c)


port = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % port], realms=3, entities=10)
env = serve_env(port, tmpdir("qbcdc-push-fan-"), sim)
env.update({"QBCDC_DELIVERY_ALLOW_PRIVATE": "1", "QBCDC_CDC_INTERVAL": "3600", "QBCDC_DELIVERY_TIMEOUT_MS": "2000",
            "QBCDC_DELIVERY_SCHEDULE": ",".join(["0"] + ["0.5"] * 31)})
data = env["QBCDC_DATA_DIR"]
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(port), "qbcdc serve is up", q.output())

live = Receiver()
hole = BlackHole()
refused = free_port()  # nothing listens there
subs = {}
for i in range(50):
    if i % 5 == 4:
        url = "http://127.0.0.1:%d/dead/%d" % (hole.port if i % 10 == 4 else refused, i)
        kind = "dead"
    else:
        url = live.url("/s/%d" % i)
        kind = "live"
    st, j = admin(port, "POST", "/admin/subscriptions", json.dumps({"url": url, "start_after": 0, "batch_max": 20}))
    if st != 201:
        ok(False, "subscription %d created" % i, j)
    subs[j["id"]] = (kind, "/s/%d" % i)
is_(sum(1 for k, _ in subs.values() if k == "live"), 40, "50 subscriptions: 40 to a healthy receiver")
is_(sum(1 for k, _ in subs.values() if k == "dead"), 10, "and 10 dead (5 refused, 5 never answering)")

is_(register_realms(port, sim), 3, "three realms registered")
t0 = time.time()
slow_feed = []
for burst in range(3):
    st, j = sim.json("POST", "/sim/mutate?n=80&per_hook=2")
    ok(st == 200, "burst %d of 80 changes sent as webhooks" % (burst + 1), j)
    t = time.time()
    st, _, _ = request(port, "GET", "/v1/changes?limit=1", headers=FEED)
    slow_feed.append(time.time() - t)
ok(not wait_drained(sim, data, timeout=90), "every change was fetched while deliveries went on")
ok(max(slow_feed) < 0.5, "/v1/changes answered at once meanwhile (slowest %.3f s)" % max(slow_feed))


def feed_seqs():
    out, after = [], 0
    while True:
        st, _, b = request(port, "GET", "/v1/changes?limit=1000&after=%d" % after, headers=FEED)
        page = json.loads(b)
        out += [c["seq"] for c in page["changes"]]
        if not page["changes"]:
            return out
        after = page["next"]


seqs = feed_seqs()
head = seqs[-1]
t_fetched = time.time()


def live_caught_up():
    st, lst = admin(port, "GET", "/admin/subscriptions")
    behind = [s["id"] for s in lst["subscriptions"] if subs[s["id"]][0] == "live" and s["cursor"] != head]
    return lst if not behind else None


lst = wait_for(live_caught_up, 60, poll=0.5)
ok(lst is not None, "all 40 healthy subscriptions reach the head (%d) %.1f s after the last change was fetched"
   % (head, time.time() - t_fetched))
diag("from the first webhook to all 40 caught up: %.1f s" % (time.time() - t0))

by_path = {}
for r in live.acked():
    by_path.setdefault(r["path"], []).extend(c["seq"] for c in json.loads(r["body"])["data"]["changes"])
wrong = [p for k, p in subs.values() if k == "live" and by_path.get(p) != seqs]
is_(wrong, [], "each healthy receiver path got every change, in order, no gap, nothing twice")


def dead_tried():
    """the dead subscriptions, once each has a finished attempt (a black hole's runs until its timeout)"""
    st, lst = admin(port, "GET", "/admin/subscriptions")
    d = [s for s in lst["subscriptions"] if subs[s["id"]][0] == "dead"]
    return d if all(s["attempts"] for s in d) else None


dead = wait_for(dead_tried, 30, poll=0.5) or [s for s in admin(port, "GET", "/admin/subscriptions")[1]["subscriptions"]
                                                if subs[s["id"]][0] == "dead"]
ok(all(s["cursor"] == 0 and s["lag"]["sequences"] == head and s["state"] == "active" for s in dead),
   "the 10 dead ones are still at their cursor (0), lagging %d, still being retried" % head,
   [(s["id"], s["cursor"], s["state"]) for s in dead])
ok(all(s["delivered"]["failed_attempts"] >= 1 and s["attempts"] and s["attempts"][0]["error"] for s in dead),
   "each shows its failed attempts and their error", [s["attempts"][:1] for s in dead][:2])
errs = {s["attempts"][0]["error"] for s in dead if s["attempts"]}
diag("the dead ones' last errors: %s" % sorted(errs))
ok(any("imeout" in e or "timed out" in e for e in errs) and any("onnect" in e for e in errs),
   "timeouts (the black hole) and refused connections")
ok(metric(port, 'qbcdc_delivery_attempts_total{result="timeout"}') > 0, "timeouts are counted in /metrics")
is_(q.stop(), 0, "qbcdc stops cleanly with deliveries in flight")
live.close()
sim.stop()
done_testing()
