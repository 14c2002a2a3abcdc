#!/usr/bin/env python3
"""bench/reconcile.py — what reconciliation costs upstream, and how fast changes reach the feed.

Starts qbosim (API latency BENCH_LATENCY_MS, default 100 ms, as the issue asks) and
`qbcdc serve` on loopback, registers every simulated company, then measures:

  isolated  one change at a time (BENCH_ISOLATED, 30), each after the previous one is in
            the feed and the realm has been idle longer than QBCDC_COALESCE_MS: upstream
            API calls per change (qbosim's own counters) and webhook-ack -> feed latency,
            timed with a long-poll on GET /v1/changes (the webhook is acked when
            POST /sim/mutate returns)
  burst     BENCH_BURSTS (3) bursts of BENCH_BURST_SIZE (1000) changes over all realms,
            10 changes per webhook: API calls per changed entity, and the time until
            nothing is pending

Prints one table. A benchmark: it reports figures, it does not pass or fail.
"""
import http.client
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import QBCDC, Proc, free_port, tmpdir, wait_http  # noqa: E402
from simlib import Sim, flat_truth, register_realms, serve_env, sim_calls, wait_drained  # noqa: E402

LATENCY = int(os.environ.get("BENCH_LATENCY_MS", "100"))
ISOLATED = int(os.environ.get("BENCH_ISOLATED", "30"))
BURSTS = int(os.environ.get("BENCH_BURSTS", "3"))
BURST_SIZE = int(os.environ.get("BENCH_BURST_SIZE", "1000"))
FEED = "test-feed-token"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else float("nan")


def long_poll(port, after, wait=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=wait + 5)
    c.request("GET", "/v1/changes?after=%d&wait=%d&limit=1000" % (after, wait), headers={"Authorization": "Bearer " + FEED})
    body = json.loads(c.getresponse().read())
    c.close()
    return body


def drained(sim, data_dir, timeout=300):
    return not wait_drained(sim, data_dir, timeout, poll=0.05)


def main():
    qport = free_port()
    sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % qport, "--latency-ms", str(LATENCY),
                    "--rate-limit", "100000"], realms=4, entities=100)
    data_dir = tmpdir("qbcdc-bench-rec-")
    env = serve_env(qport, data_dir, sim)
    q = Proc([QBCDC, "serve"], env=env)
    if not wait_http(qport):
        sys.exit("qbcdc did not start:\n" + q.output())
    register_realms(qport, sim)
    coalesce_s = int(env.get("QBCDC_COALESCE_MS", "500")) / 1000.0

    # isolated changes
    after = long_poll(qport, 0, wait=0)["next"]
    lat, calls0 = [], sim_calls(sim)[0]
    for _ in range(ISOLATED):
        time.sleep(coalesce_s + 0.1)
        sim.json("POST", "/sim/mutate?n=1")
        t_ack = time.monotonic()
        got = long_poll(qport, after)
        t_feed = time.monotonic()
        if got["changes"]:
            lat.append((t_feed - t_ack) * 1000.0)
        after = got["next"]
        drained(sim, data_dir, timeout=10)  # a merge makes two changes; let both settle
        after = max(after, long_poll(qport, after, wait=0)["next"])
    iso_calls = sim_calls(sim)[0] - calls0

    # bursts
    burst_rows = []
    for _ in range(BURSTS):
        truth0 = flat_truth(sim.json("GET", "/sim/truth")[1])
        c0 = sim_calls(sim)[0]
        t0 = time.monotonic()
        sim.json("POST", "/sim/mutate?n=%d&per_hook=10" % BURST_SIZE)
        drained(sim, data_dir)
        dt = time.monotonic() - t0
        truth = flat_truth(sim.json("GET", "/sim/truth")[1])
        changed = sum(1 for k, v in truth.items() if truth0.get(k, "absent") != v)
        burst_rows.append((changed, sim_calls(sim)[0] - c0, dt))
    q.stop()
    sim.stop()

    print("\nqbosim API latency %d ms; qbcdc coalesce %d ms; %d realms" % (LATENCY, coalesce_s * 1000, 4))
    print("%-10s %8s %10s %12s %10s %10s %10s" % ("case", "changes", "API calls", "calls/change", "p50 ms", "p99 ms", "max ms"))
    print("%-10s %8d %10d %12.3f %10.1f %10.1f %10.1f" % ("isolated", len(lat), iso_calls, iso_calls / max(1, ISOLATED),
                                                         pct(lat, 50), pct(lat, 99), max(lat) if lat else float("nan")))
    for i, (changed, calls, dt) in enumerate(burst_rows):
        print("%-10s %8d %10d %12.3f %21s %10s" % ("burst %d" % (i + 1), changed, calls, calls / max(1, changed),
                                                    "drained in %.1f s" % dt, ""))
    print("(isolated latency: webhook acked -> change readable in GET /v1/changes, via long-poll;"
          " calls: qbosim's counters, a batch request counted once; changes: distinct entities changed)")


if __name__ == "__main__":
    main()
