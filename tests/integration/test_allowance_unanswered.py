#!/usr/bin/env python3
"""A call Intuit served but qbcdc never heard the answer of (its timeout passed first) may have
been metered (issue 12): qbcdc counts it against the allowance rather than guess it was free.

qbosim holds its answers longer than qbcdc's request timeout; it meters each one it serves
(/sim/stats `metered`, qbo-facts 5.1) although qbcdc has gone by then. qbcdc's own count of the
period (/admin/budget `used`) must be at least what qbosim metered: counting only the answers it
received, it would say 0.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from simlib import admin, Sim, serve_with_sim

port = free_port()
sim = Sim(realms=1, entities=2)
q, data, realms = serve_with_sim(sim, port, "qbcdc-unanswered-", {
    "QBCDC_MONTHLY_CALL_BUDGET": "100000", "QBCDC_REQUEST_TIMEOUT_MS": "300", "QBCDC_MAX_ATTEMPTS": "3",
    "QBCDC_BACKOFF_BASE_MS": "100", "QBCDC_BACKOFF_MAX_MS": "200", "QBCDC_SNAPSHOT_ON_CONNECT": "0"})


def metered():
    st, s = sim.json("GET", "/sim/stats")
    return sum(r.get("metered", 0) for r in s.get("realms", {}).values())


def used():
    st, b = admin(port, "GET", "/admin/budget")
    return b.get("used", 0) if st == 200 else None


m0, u0 = metered(), used()
is_(sim.json("POST", "/sim/faults", json.dumps({"latency_ms": 1000}))[0], 200, "qbosim answers after 1 s")
st, _ = admin(port, "POST", "/admin/realms/%s/cdc" % realms[0])
ok(st in (200, 202), "a CDC sweep is asked for (%s)" % st)
ok(wait_for(lambda: metered() - m0 >= 2, 30), "qbosim served (and metered) calls qbcdc had given up on: %d"
   % (metered() - m0))
sim.json("POST", "/sim/faults", json.dumps({"latency_ms": 0}))
ok(wait_for(lambda: (used() or 0) - u0 >= metered() - m0, 15),
   "qbcdc counts every call Intuit may have metered: used %s, qbosim metered %d" % ((used() or 0) - u0,
                                                                                       metered() - m0))
is_(q.stop(), 0, "qbcdc stops")
done_testing()
