#!/usr/bin/env python3
"""bench/delivery.py — push delivery throughput (issue 14).

Starts qbosim (BENCH_REALMS realms, no API latency) and `qbcdc serve` on free 127.0.0.1 ports,
and a fast receiver in its own process (asyncio, keep-alive, answers 200 at once, counts
requests and changes). Then:

  fill     bursts of 2,000 changes (10 per webhook) until the feed holds BENCH_FILL (10,000)
  batch 1  a subscription from sequence 0 with batch_max 1: deliveries/s until its cursor is
           at the head, BENCH_REPEAT (5) times (redeliver from 1)
  batch100 the same with batch_max 100: deliveries/s and changes/s
  ingest   BENCH_INGEST (4,000) changes through webhooks with no subscription, then as many
           again with BENCH_FANOUT (50) subscriptions at the head: changes fetched per second
           (from the first webhook to nothing pending) without and with delivery, and how
           long after ingest the 50 subscriptions reach the head

Prints the figures side by side. A benchmark: it reports, it does not pass or fail (it exits
non-zero only if it could not run). Loopback only; every process it starts is killed at exit.
"""
import asyncio
import json
import multiprocessing
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import QBCDC, Proc, free_port, request, tmpdir, wait_http  # noqa: E402
from simlib import ADMIN, Sim, register_realms, serve_env, wait_drained  # noqa: E402


def knob(name, default):
    return int(os.environ.get(name, str(default)))


REALMS = knob("BENCH_REALMS", 4)
FILL = knob("BENCH_FILL", 10000)
INGEST = knob("BENCH_INGEST", 10000)
REPEAT = knob("BENCH_REPEAT", 5)
FANOUT = knob("BENCH_FANOUT", 50)
AUTH = {"Authorization": "Bearer " + ADMIN, "Content-Type": "application/json"}
FEED = {"Authorization": "Bearer test-feed-token"}


def receiver(port, counts):
    """a minimal keep-alive HTTP/1.1 server: reads each request, answers 200 with no body"""

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                n = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        n = int(line[15:])
                body = await reader.readexactly(n)
                with counts.get_lock():
                    counts[0] += 1
                    counts[1] += body.count(b'{"seq":')
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            writer.close()

    async def main():
        srv = await asyncio.start_server(handle, "127.0.0.1", port, backlog=256)
        async with srv:
            await srv.serve_forever()

    asyncio.run(main())


def admin(method, path, body=None):
    st, _, b = request(qport, method, path, json.dumps(body) if body is not None else None, AUTH)
    return st, json.loads(b) if b else None


def head():
    st, _, b = request(qport, "GET", "/v1/changes?limit=1&after=%d" % 0, headers=FEED)
    # the head: /admin/subscriptions says it; without a subscription, page to the end
    st, lst = admin("GET", "/admin/subscriptions")
    if lst["subscriptions"]:
        return lst["subscriptions"][0]["head"]
    after = 0
    while True:
        st, _, b = request(qport, "GET", "/v1/changes?limit=1000&after=%d" % after, headers=FEED)
        page = json.loads(b)
        if not page["changes"]:
            return after
        after = page["next"]


def wait_cursors(ids, target, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, lst = admin("GET", "/admin/subscriptions")
        cur = {s["id"]: s["cursor"] for s in lst["subscriptions"]}
        if all(cur.get(i, 0) >= target for i in ids):
            return True
        time.sleep(0.005)
    return False


def burst(n, per_hook=10):
    st, j = sim.json("POST", "/sim/mutate?n=%d&per_hook=%d" % (n, per_hook))
    if st != 200:
        sys.exit("qbosim refused a burst: %s %s" % (st, j))


def cpu_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


rport = free_port()
counts = multiprocessing.Array("l", 2)
rproc = multiprocessing.Process(target=receiver, args=(rport, counts), daemon=True)
rproc.start()
qport = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % qport], realms=REALMS, entities=200)
env = serve_env(qport, tmpdir("qbcdc-bench-push-"), sim)
env.update({"QBCDC_DELIVERY_ALLOW_PRIVATE": "1", "QBCDC_CDC_INTERVAL": "3600", "QBCDC_LOG_LEVEL": "error",
            "QBCDC_SNAPSHOT_ON_CONNECT": "0", "QBCDC_DELIVERY_MAX_INFLIGHT": "64"})
data = env["QBCDC_DATA_DIR"]
q = Proc([QBCDC, "serve"], env=env)
if not wait_http(qport):
    sys.exit("qbcdc did not start:\n" + q.output())
register_realms(qport, sim)
url = "http://127.0.0.1:%d" % rport

print("filling the feed with %d changes..." % FILL, flush=True)
while head() < FILL:
    burst(2000)
    if wait_drained(sim, data, timeout=300):
        sys.exit("the fill did not drain")
H = head()
rows = []
for bm in (1, 100):
    c0 = (counts[0], counts[1])
    cpu0 = cpu_of(q.p.pid)
    t0 = time.time()
    st, s = admin("POST", "/admin/subscriptions", {"url": url + "/b%d" % bm, "start_after": 0, "batch_max": bm})
    if st != 201 or not wait_cursors([s["id"]], H):
        sys.exit("batch %d: the subscription did not reach the head" % bm)
    for _ in range(REPEAT - 1):  # again from the start (a redeliver): long enough to measure
        admin("POST", "/admin/subscriptions/%s/redeliver" % s["id"], {"from": 1})
        if not wait_cursors([s["id"]], H):
            sys.exit("batch %d: a redelivery did not reach the head" % bm)
    dt = time.time() - t0
    reqs, chs = counts[0] - c0[0], counts[1] - c0[1]
    rows.append(("batch_max %d" % bm, chs, reqs / dt, chs / dt, dt, (cpu_of(q.p.pid) - cpu0) / dt))
    admin("DELETE", "/admin/subscriptions/%s" % s["id"])

print()
print("delivery to one fast local receiver: the feed's %d changes from sequence 0, %d times" % (H, REPEAT))
print("%-14s %8s %12s %12s %9s %10s" % ("", "changes", "deliveries/s", "changes/s", "seconds", "qbcdc CPU"))
for name, n, dps, cps, dt, cpu in rows:
    print("%-14s %8d %12.0f %12.0f %9.2f %9.0f%%" % (name, n, dps, cps, dt, cpu * 100))


def ingest_run(label, subs):
    h0 = head()
    c0 = counts[1]
    cpu0 = cpu_of(q.p.pid)
    t0 = time.time()
    for _ in range(INGEST // 1000):
        burst(1000, per_hook=5)
    if wait_drained(sim, data, timeout=600, poll=0.05):
        sys.exit("%s: ingest did not drain" % label)
    t_ing = time.time() - t0
    h1 = head()
    t_caught = None
    if subs:
        if not wait_cursors(subs, h1):
            sys.exit("%s: the subscriptions did not catch up" % label)
        t_caught = time.time() - t0
    return {"label": label, "changes": h1 - h0, "ingest_s": t_ing, "ingest_cps": (h1 - h0) / t_ing,
            "all_caught_s": t_caught, "delivered": counts[1] - c0,
            "cpu": (cpu_of(q.p.pid) - cpu0) / (time.time() - t0)}


print()
print("ingest through webhooks, %d changes a run..." % INGEST, flush=True)
without = ingest_run("no subscription", [])
ids = []
for i in range(FANOUT):
    st, s = admin("POST", "/admin/subscriptions", {"url": url + "/f%d" % i, "start_after": "head", "batch_max": 100})
    ids.append(s["id"])
with_ = ingest_run("%d subscriptions" % FANOUT, ids)
print("%-18s %8s %10s %12s %16s %14s %10s" % ("", "changes", "ingest s", "ingest ch/s", "all subs at head",
                                             "ch delivered", "qbcdc CPU"))
for r in (without, with_):
    print("%-18s %8d %10.2f %12.0f %16s %14d %9.0f%%" % (
        r["label"], r["changes"], r["ingest_s"], r["ingest_cps"],
        "%.2f s" % r["all_caught_s"] if r["all_caught_s"] is not None else "-", r["delivered"], r["cpu"] * 100))
print("ingest with %d subscriptions: %.0f%% of the throughput without" % (
    FANOUT, 100.0 * with_["ingest_cps"] / without["ingest_cps"]))
q.stop()
sim.stop()
rproc.terminate()
