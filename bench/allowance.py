#!/usr/bin/env python3
"""bench/allowance.py — metered calls per realm per month: qbcdc against fixed-interval polling.

Issue 12's question: how many companies does one Builder-tier allowance (500,000 metered
calls a month) serve, and how fresh is their data?

1. Measures, with the real qbcdc and qbosim on loopback, what qbcdc pays for live work:
   BENCH_REALMS realms (40), each getting BENCH_BURSTS bursts (3) of BENCH_CHANGES changes
   (3, over random entity types, deletes among them) in one webhook each, BENCH_LOSS (0.1)
   of the webhooks lost. CDC sweeps are held off (interval 1 h) so that the metered live
   calls (qbcdc's own count, by purpose) are the live cost alone; then one sweep per realm is
   requested and its calls counted. qbosim's request count is printed beside as a check.
2. Builds the month from those figures, side by side for fleet sizes of 500 to 8,000:
   - qbcdc with its defaults: live calls = bursts x the measured calls per burst; CDC sweeps
     = what the adaptive schedule fits into the rest of the allowance, between 5 minutes and
     7 days per realm (QBCDC_CDC_INTERVAL, QBCDC_CDC_MAX_INTERVAL); a fleet whose live work
     alone exceeds the allowance loses freshness at the month's end, never availability;
   - fixed polling: one CDC call per realm per hour (as hourly syncs do), 720 a month.
   The model's inputs: 10 changes a realm a day in 3 bursts (BENCH_DAY_BURSTS), 10% loss.

Prints figures only; it does not pass or fail.
"""
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
os.environ.setdefault("QBCDC_BUILD", "build")
from harness import Proc, free_port, request, tmpdir, wait_http, QBCDC  # noqa: E402
from simlib import Sim, admin, register_realms, serve_env, wait_drained  # noqa: E402

REALMS = int(os.environ.get("BENCH_REALMS", "40"))
BURSTS = int(os.environ.get("BENCH_BURSTS", "3"))
CHANGES = int(os.environ.get("BENCH_CHANGES", "3"))
LOSS = float(os.environ.get("BENCH_LOSS", "0.1"))
DAY_BURSTS = float(os.environ.get("BENCH_DAY_BURSTS", "3"))
BUDGET = 500000
MONTH_S = 30 * 86400
MIN_INTERVAL, MAX_INTERVAL = 300, 7 * 86400


def used(port):
    st, j = admin(port, "GET", "/admin/budget")
    return j["by_purpose"] if st == 200 else {}


def sim_total(sim):
    st, s = sim.json("GET", "/sim/stats")
    return sum(r.get("total", 0) for r in s.get("realms", {}).values())


def measure():
    port = free_port()
    sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % port], realms=REALMS, entities=10)
    env = serve_env(port, tmpdir("qbcdc-bench-allow-"), sim)
    env.update({"QBCDC_CDC_INTERVAL": "3600", "QBCDC_SNAPSHOT_ON_CONNECT": "0", "QBCDC_LOG_LEVEL": "warn",
                "QBCDC_MONTHLY_CALL_BUDGET": "0"})
    q = Proc([QBCDC, "serve"], env=env)
    if not wait_http(port):
        sys.exit("qbcdc did not start:\n" + q.output())
    realms = sorted(sim.realms())
    register_realms(port, sim)
    time.sleep(2)  # the first sweeps (at start) are over
    base, base_sim = used(port), sim_total(sim)
    rnd = random.Random(1)
    order = [r for r in realms for _ in range(BURSTS)]
    rnd.shuffle(order)
    for realm in order:
        sim.json("POST", "/sim/mutate?n=%d&realm=%s&per_hook=%d&loss=%g" % (CHANGES, realm, CHANGES, LOSS))
    wait_drained(sim, env["QBCDC_DATA_DIR"], timeout=120)
    time.sleep(1)
    after, after_sim = used(port), sim_total(sim)
    live = after.get("live", 0) - base.get("live", 0)
    for realm in realms:
        admin(port, "POST", "/admin/realms/%s/cdc" % realm)
    deadline = time.time() + 60
    while time.time() < deadline:
        swept = used(port).get("cdc", 0) - after.get("cdc", 0)
        if swept >= len(realms):
            break
        time.sleep(0.5)
    time.sleep(1)
    cdc = used(port).get("cdc", 0) - after.get("cdc", 0)
    q.stop()
    sim.stop()
    bursts = len(order)
    return {"bursts": bursts, "live_calls": live, "per_burst": live / bursts, "sweeps": len(realms),
            "cdc_calls": cdc, "per_sweep": cdc / len(realms), "sim_requests_live": after_sim - base_sim}


def qbcdc_month(n, per_burst, per_sweep):
    live = n * DAY_BURSTS * 30 * per_burst
    room = BUDGET * 0.999 - live
    if room <= 0:
        # live work alone is past the allowance: sweeps at the longest interval, live waits at the end
        sweeps = MONTH_S / MAX_INTERVAL
        return live + n * sweeps * per_sweep, MAX_INTERVAL, False
    # with 10% loss every realm finds gaps, so all weigh the same: one interval fits
    interval = max(MIN_INTERVAL, min(MAX_INTERVAL, MONTH_S * n * per_sweep / room))
    return live + n * (MONTH_S / interval) * per_sweep, interval, True


def human(s):
    return "%.0f min" % (s / 60) if s < 3600 else "%.1f h" % (s / 3600) if s < 86400 else "%.1f d" % (s / 86400)


def main():
    print("measuring with qbcdc + qbosim: %d realms x %d bursts of %d changes, %.0f%% of webhooks lost ..."
          % (REALMS, BURSTS, CHANGES, LOSS * 100))
    m = measure()
    print("  live: %d calls for %d bursts = %.2f calls a burst (qbosim counted %d requests)"
          % (m["live_calls"], m["bursts"], m["per_burst"], m["sim_requests_live"]))
    print("  CDC: %d calls for %d sweeps = %.2f a sweep" % (m["cdc_calls"], m["sweeps"], m["per_sweep"]))
    per_burst, per_sweep = max(m["per_burst"], 0.01), max(m["per_sweep"], 1.0)
    print()
    print("a month at %g changes a realm a day in %g bursts, %.0f%% webhook loss; allowance %d"
          % (10, DAY_BURSTS, LOSS * 100, BUDGET))
    print("%7s | %-44s | %-34s" % ("realms", "qbcdc (adaptive CDC, live via webhooks)", "fixed CDC polling, 1/h"))
    print("%7s | %10s %9s %10s %11s | %10s %9s %11s" % ("", "calls", "per realm", "CDC every", "within?",
                                                          "calls", "per realm", "within?"))
    best = 0
    for n in (500, 690, 1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000):
        total, interval, fits = qbcdc_month(n, per_burst, per_sweep)
        weekly = interval <= 7 * 86400
        ok = fits and total <= BUDGET and weekly
        if ok:
            best = n
        fixed = n * 720
        print("%7d | %10.0f %9.1f %10s %11s | %10d %9d %11s"
              % (n, total, total / n, human(interval), "yes" if ok else "no: live waits" if not fits else "no",
                 fixed, 720, "yes" if fixed <= BUDGET else "no"))
    # the largest fleet: live work plus a weekly sweep of every realm within the allowance
    best = int(BUDGET * 0.999 / (DAY_BURSTS * 30 * per_burst + MONTH_S / MAX_INTERVAL * per_sweep))
    print()
    print("one Builder allowance: qbcdc serves %d realms (webhook changes in seconds, CDC-confirmed at least "
          "weekly); fixed hourly polling %d (data up to an hour old). Goal: >= 5,000." % (best, BUDGET // 720))


if __name__ == "__main__":
    main()
