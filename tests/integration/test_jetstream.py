#!/usr/bin/env python3
"""The feed published to NATS JetStream (issue 13, part 1), with a real nats-server.

- Every feed record reaches the stream QBCDC_FEED exactly once, in feed order, on subject
  qbcdc.feed.<realm>.<Entity>, byte for byte the record /v1/changes serves, with its
  Nats-Msg-Id, Qbcdc-Feed-Seq and Qbcdc-Feed-Id.
- NATS stopped: webhooks are still acked and fetched, /v1/changes still grows, the lag shows
  in /metrics; NATS back: the stream catches up.
- qbcdc killed (SIGKILL) while it publishes a backlog, then started again: still every
  record exactly once, in order.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from natslib import NATS_SERVER, Client, NatsServer
from simlib import Sim, feed_changes, qbcdc_lines, register_realms, serve_env, wait_drained

if NATS_SERVER is None:
    print("1..0 # SKIP nats-server is not installed (apt-get install nats-server)")
    sys.exit(0)

FEED = {"Authorization": "Bearer test-feed-token"}


def check_stream(label):
    c = Client(nats.port)
    msgs = c.messages("QBCDC_FEED")
    c.close()
    feed = feed_changes(port)
    seqs = [int(h.get("Qbcdc-Feed-Seq", 0)) for _, _, h, _ in msgs]
    for missing in sorted(set(feed) - set(seqs))[:3]:
        r = feed[missing]
        same = [s for s, x in feed.items() if s != missing and x["realm"] == r["realm"] and x["entity"] == r["entity"]
                and x["id"] == r["id"]]
        diag("missing %d: %s; same entity at %s" % (missing, json.dumps({k: r.get(k) for k in ("realm", "entity", "id", "op", "version", "source")}),
                                                  [(s, feed[s].get("op"), feed[s].get("version")) for s in same]))
    is_(seqs, sorted(feed), "%s: the stream holds every feed record once, in feed order (%d)" % (label, len(seqs)))
    bad = []
    for _, subject, h, body in msgs:
        rec = feed.get(int(h.get("Qbcdc-Feed-Seq", 0)))
        if rec is None or subject != "qbcdc.feed.%s.%s" % (rec["realm"], rec["entity"]) or \
                json.loads(body) != rec or h.get("Qbcdc-Feed-Id") != feed_id or not h.get("Nats-Msg-Id"):
            bad.append((subject, h))
    is_(bad[:3], [], "%s: each on its realm's and entity's subject, the same object as /v1/changes, with its ids"
        % label)
    return msgs


nats = NatsServer()
port = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % port], realms=2, entities=10)
env = serve_env(port, tmpdir("qbcdc-js-"), sim)
env.update({"QBCDC_NATS_URL": nats.url(), "QBCDC_SNAPSHOT_ON_CONNECT": "1", "QBCDC_CDC_INTERVAL": "3600"})
data = env["QBCDC_DATA_DIR"]
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(port), "qbcdc serve is up", q.output())
is_(register_realms(port, sim), 2, "two realms registered (their snapshots fill the feed)")
sim.json("POST", "/sim/mutate?n=40&per_hook=4")
wait_drained(sim, data, timeout=60)
st, _, b = request(port, "GET", "/v1/changes?limit=1", headers=FEED)
feed_id = json.loads(b)["feed_id"]
ok(wait_for(lambda: metric(port, "qbcdc_jetstream_lag") == 0 and (metric(port, "qbcdc_jetstream_cursor") or 0) > 40,
            30), "the publisher catches up (qbcdc_jetstream_lag 0)")
msgs = check_stream("published")
ok(any(h.get("Nats-Msg-Id", "").count("/") == 3 for _, _, h, _ in msgs),
   "Nats-Msg-Id is realm/Entity/id/version (or /delete)")

# NATS stops: nothing else does
nats.stop()
sim.json("POST", "/sim/mutate?n=20&per_hook=2")
wait_drained(sim, data, timeout=60)
ok(wait_for(lambda: (metric(port, "qbcdc_jetstream_lag") or 0) > 0, 15), "NATS down: webhooks are fetched, the lag "
   "shows (qbcdc_jetstream_lag %s)" % metric(port, "qbcdc_jetstream_lag"))
ok(metric(port, "qbcdc_jetstream_connected") == 0, "qbcdc_jetstream_connected 0")
st, _, b = request(port, "GET", "/admin/jetstream", headers={"Authorization": "Bearer test-admin-token"})
j = json.loads(b) if st == 200 else {}
ok(st == 200 and j.get("connected") is False and j.get("lag", 0) > 0 and "last_error" in j,
   "GET /admin/jetstream: not connected, and the lag", j)
nats.start()
ok(wait_for(lambda: metric(port, "qbcdc_jetstream_lag") == 0, 60, poll=0.5), "NATS back: it catches up")
check_stream("after the outage")

# a crash in the middle of a backlog
nats.stop()
sim.json("POST", "/sim/mutate?n=200&per_hook=2")
wait_drained(sim, data, timeout=60)
nats.start()
wait_for(lambda: (metric(port, "qbcdc_jetstream_published_total") or 0) > 0 and
         (metric(port, "qbcdc_jetstream_lag") or 0) < 150, 30, poll=0.02)
q.kill9()
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(port), "qbcdc starts again after a SIGKILL mid-backlog")
ok(wait_for(lambda: metric(port, "qbcdc_jetstream_lag") == 0, 60, poll=0.5), "and catches up")
check_stream("after the crash")
is_(q.stop(), 0, "qbcdc stops")
nats.stop()
sim.stop()
done_testing()
