#!/usr/bin/env python3
"""bench/feed.py — how fast downstream apps can read the change feed (issue 5).

Starts qbosim (BENCH_REALMS realms, BENCH_ENTITIES records of each type, no API latency,
no practical rate limit) and `qbcdc serve` on free 127.0.0.1 ports, registers every
simulated company, then:

  fill   bursts of 5,000 changes (10 per webhook) until the feed holds at least
         BENCH_FILL (20,000) changes, each burst drained (nothing pending in qbosim or
         qbcdc) before the next
  pull   BENCH_PULL_CLIENTS (4) processes, each with its own keep-alive connection, page
         through the whole feed with GET /v1/changes?limit=1000 from after=0, again and
         again, for BENCH_SECONDS (10); then one client alone for as long. Pages/s,
         changes/s, bytes/s (bodies), per-page latency p50/p99, qbcdc's CPU
  sse    BENCH_BASE_BURSTS (3) bursts of BENCH_BURST_SIZE (500) changes with nobody
         listening, then BENCH_SSE (100) consumers open GET /v1/changes/stream at the feed's
         end (raw sockets, spread over BENCH_SSE_READERS (2) processes with one selectors
         loop each) and BENCH_BURSTS (10) more bursts run while they listen. Each consumer
         records (seq, receive time) for every event. Reported: events per consumer, consumers that got every new change exactly
         once and in order, delivery spread per change (last consumer's receipt minus the
         first's), the time from the last webhook's ack / from the end of ingest to the last
         event delivered, and the drain time of a burst without and with the consumers

Prints one table. A benchmark: it reports figures, it does not pass or fail (it exits
non-zero only if it could not run). Loopback only; every process it starts is killed at
exit (the harness does that).
"""
import http.client
import json
import multiprocessing
import os
import queue
import re
import selectors
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import QBCDC, Proc, free_port, tmpdir, wait_http  # noqa: E402
from simlib import Sim, register_realms, serve_env, wait_drained  # noqa: E402


def knob(name, default):
    return int(os.environ.get(name, str(default)))


REALMS = knob("BENCH_REALMS", 4)
ENTITIES = knob("BENCH_ENTITIES", 200)
FILL = knob("BENCH_FILL", 20000)
FILL_BURST = 5000
PULL_CLIENTS = knob("BENCH_PULL_CLIENTS", 4)
SECONDS = knob("BENCH_SECONDS", 10)
SSE = knob("BENCH_SSE", 100)
BASE_BURSTS = knob("BENCH_BASE_BURSTS", 3)
BURSTS = knob("BENCH_BURSTS", 10)
BURST_SIZE = knob("BENCH_BURST_SIZE", 500)
SSE_READERS = knob("BENCH_SSE_READERS", 2)
GRACE = float(os.environ.get("BENCH_GRACE", "10"))  # longest wait for the consumers after ingest
PAGE = 1000
FEED = "test-feed-token"
AUTH = {"Authorization": "Bearer " + FEED}
TICK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print("# " + msg, file=sys.stderr, flush=True)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else float("nan")


def cpu_s(pid):
    """user + system CPU seconds of a process so far"""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def self_cpu():
    t = os.times()
    return t.user + t.system


# ------------------------------------------------------------------ pull


def get_page(conn, after):
    conn.request("GET", "/v1/changes?after=%d&limit=%d" % (after, PAGE), headers=AUTH)
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        raise RuntimeError("GET /v1/changes answered %d: %r" % (r.status, body[:200]))
    return body


NEXT_RE = re.compile(rb'\],"next":(\d+)')


def tail_next(body):
    """`next` (the key after the changes array), without parsing the whole page"""
    i = body.rindex(b'],"next":')
    return int(NEXT_RE.match(body, i).group(1))


def feed_scan(port, after=0):
    """every change after `after`, parsed: (seqs, pages [(after, count, next)], end)"""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    seqs, pages = [], []
    while True:
        j = json.loads(get_page(conn, after))
        if not j["changes"]:
            break
        seqs.extend(c["seq"] for c in j["changes"])
        pages.append((after, len(j["changes"]), j["next"]))
        after = j["next"]
    conn.close()
    return seqs, pages, after


def pull_client(port, t_start, seconds, expect, end, out):
    """one client (its own process, so clients do not share a GIL): scans the feed from after=0
    to the end, again and again, between t_start and t_start + seconds"""
    lat, tot, err = [], {"changes": 0, "bytes": 0, "wrong": 0}, None
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    time.sleep(max(0.0, t_start - time.monotonic()))
    cpu0 = self_cpu()
    deadline = t_start + seconds
    try:
        while time.monotonic() < deadline:
            after = 0
            while after != end:
                t0 = time.monotonic()
                body = get_page(conn, after)
                t1 = time.monotonic()
                if t1 > deadline:
                    break  # only pages finished inside the window count
                nxt = tail_next(body)
                n, want = expect.get(after, (None, None))
                if nxt != want:
                    tot["wrong"] += 1
                    n = len(json.loads(body)["changes"])
                lat.append(t1 - t0)
                tot["changes"] += n
                tot["bytes"] += len(body)
                after = nxt
    except Exception as e:  # reported, not raised: a benchmark prints what it saw
        err = "%s: %s" % (type(e).__name__, e)
    conn.close()
    out.put((lat, tot, self_cpu() - cpu0, err))


def pull_run(port, clients, seconds, pages):
    """clients processes page through the feed (the pages of `pages`) until the time is up"""
    expect = {a: (n, nxt) for a, n, nxt in pages}
    end = pages[-1][2]
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    t_start = time.monotonic() + 0.5
    procs = [ctx.Process(target=pull_client, args=(port, t_start, seconds, expect, end, out), daemon=True)
             for _ in range(clients)]
    for p in procs:
        p.start()
    done = []
    for _ in procs:
        try:
            done.append(out.get(timeout=seconds + 60))
        except queue.Empty:
            break
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()
    return {"pages": sum(len(r[0]) for r in done), "changes": sum(r[1]["changes"] for r in done),
            "bytes": sum(r[1]["bytes"] for r in done), "wrong": sum(r[1]["wrong"] for r in done),
            "lat": [x for r in done for x in r[0]], "dt": float(seconds), "t_start": t_start,
            "client_cpu": sum(r[2] for r in done) / seconds,
            "errors": [r[3] for r in done if r[3]] + ["a client did not finish"] * (clients - len(done))}


def machine_busy():
    """(busy, total) jiffies of the whole machine, from /proc/stat"""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


# ------------------------------------------------------------------ SSE

ID_RE = re.compile(rb"(?m)^id: (\d+)$")


class Consumer:
    """one SSE stream on a raw socket: HTTP/1.1 headers, chunked body, events"""

    def __init__(self, port, after):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(("GET /v1/changes/stream?after=%d HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Authorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n" % (after, FEED)).encode())
        self.sock.setblocking(False)
        self.raw = bytearray()
        self.text = bytearray()
        self.head = None
        self.chunked = False
        self.left = 0  # bytes of the current chunk still to come
        self.skip = 0  # CRLF after a chunk still to skip
        self.seqs, self.times = [], []
        self.connected = False
        self.closed = False
        self.error = None

    def feed(self, data, t):
        self.raw += data
        if self.head is None:
            i = self.raw.find(b"\r\n\r\n")
            if i < 0:
                return
            self.head = bytes(self.raw[:i]).decode("latin-1")
            del self.raw[:i + 4]
            if not self.head.startswith("HTTP/1.1 200"):
                self.error = self.head.split("\r\n")[0]
            self.chunked = "transfer-encoding: chunked" in self.head.lower()
        if self.chunked:
            raw = self.raw
            while raw:
                if self.left > 0:
                    take = min(self.left, len(raw))
                    self.text += raw[:take]
                    del raw[:take]
                    self.left -= take
                    if self.left == 0:
                        self.skip = 2
                elif self.skip > 0:
                    take = min(self.skip, len(raw))
                    del raw[:take]
                    self.skip -= take
                else:
                    j = raw.find(b"\r\n")
                    if j < 0:
                        break
                    size = int(bytes(raw[:j]).split(b";")[0], 16)
                    del raw[:j + 2]
                    if size == 0:
                        self.closed = True
                        break
                    self.left = size
        else:
            self.text += self.raw
            del self.raw[:]
        k = self.text.rfind(b"\n\n")
        if k < 0:
            return
        block = bytes(self.text[:k + 2])
        del self.text[:k + 2]
        self.connected = True
        ids = ID_RE.findall(block)
        if ids:
            # changes only: the stream opens with an "event: feed" whose data is not a change
            changes = block.count(b'\ndata: {"seq"') + block.startswith(b'data: {"seq"')
            if changes != len(ids) and self.error is None:
                self.error = "an event without exactly one data line"
            self.seqs.extend(int(x) for x in ids)
            self.times.extend([t] * len(ids))


class Result:
    """what a consumer saw, sent back from its reader process"""

    def __init__(self, c):
        self.seqs, self.times, self.error = c.seqs, c.times, c.error
        self.connected, self.closed = c.connected, c.closed


def reader(port, after, n, pipe):
    """one reader process: n consumers on one selectors loop. Tells the parent how many
    connected; on ("end", seq, grace) reads until every consumer has seq (or grace is over),
    0.5 s more, then sends back every consumer's Result and its own busy time."""
    sel = selectors.DefaultSelector()
    cons = []
    for _ in range(n):
        c = Consumer(port, after)
        cons.append(c)
        sel.register(c.sock, selectors.EVENT_READ, c)
    sel.register(pipe, selectors.EVENT_READ, None)
    buf = bytearray(1 << 18)
    view = memoryview(buf)
    busy, cpu0 = 0.0, self_cpu()
    told = False
    t_open = time.monotonic()
    end_seq, until, stop_at = None, None, None
    while True:
        now = time.monotonic()
        if not told and (all(c.connected or c.closed for c in cons) or now - t_open > 15):
            pipe.send(("connected", sum(1 for c in cons if c.connected)))
            told = True
        if end_seq is not None and stop_at is None and (
                now > until or all(c.closed or (c.seqs and c.seqs[-1] >= end_seq) for c in cons)):
            stop_at = now + 0.5  # anything sent twice or past the end shows up now
        if stop_at is not None and now > stop_at:
            break
        for key, _ in sel.select(0.05):
            c = key.data
            if c is None:
                msg = pipe.recv()
                end_seq, until = msg[1], time.monotonic() + msg[2]
                continue
            try:
                k = c.sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                k, c.error = 0, c.error or str(e)
            t = time.monotonic()
            if k == 0:
                c.closed = True
                sel.unregister(c.sock)
                continue
            c.feed(view[:k], t)
            busy += time.monotonic() - t
    for c in cons:
        c.sock.close()
    pipe.send(("result", [Result(c) for c in cons], busy, self_cpu() - cpu0))


class Fanout:
    """the consumers, spread over `readers` processes (one selectors loop each)"""

    def __init__(self, port, n, after, readers):
        ctx = multiprocessing.get_context("fork")
        self.parts = []
        readers = max(1, min(readers, n))
        for i in range(readers):
            mine, theirs = ctx.Pipe()
            k = n // readers + (1 if i < n % readers else 0)
            p = ctx.Process(target=reader, args=(port, after, k, theirs), daemon=True)
            p.start()
            self.parts.append((p, mine))

    def connected(self, timeout=20):
        n = 0
        for _, pipe in self.parts:
            if pipe.poll(timeout):
                n += pipe.recv()[1]
        return n

    def finish(self, end_seq, grace):
        """(Results, reader busy seconds, reader CPU seconds)"""
        for _, pipe in self.parts:
            pipe.send(("end", end_seq, grace))
        results, busy, cpu = [], 0.0, 0.0
        for p, pipe in self.parts:
            if pipe.poll(grace + 30):
                _, rs, b, c = pipe.recv()
                results += rs
                busy += b
                cpu += c
            p.join(5)
            if p.is_alive():
                p.kill()
        return results, busy, cpu


# ------------------------------------------------------------------ ingest


def drained(sim, data_dir, timeout=120):
    return not wait_drained(sim, data_dir, timeout, poll=0.05)


def burst(sim, data_dir, n):
    """one burst: (POST returned = every webhook acked, drained), both relative to its start"""
    t0 = time.monotonic()
    st, j = sim.json("POST", "/sim/mutate?n=%d&per_hook=10" % n)
    if st != 200:
        sys.exit("POST /sim/mutate answered %d: %r" % (st, j))
    t_ack = time.monotonic()
    if not drained(sim, data_dir):
        sys.exit("a burst of %d changes did not drain within 120 s" % n)
    return t0, t_ack, time.monotonic()


# ------------------------------------------------------------------ main


def main():
    t_start = time.monotonic()
    qport = free_port()
    sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % qport, "--rate-limit", "100000",
                    "--log-level", "warn"], realms=REALMS, entities=ENTITIES)
    data_dir = tmpdir("qbcdc-bench-feed-")
    q = Proc([QBCDC, "serve"], env=serve_env(qport, data_dir, sim))
    if not wait_http(qport):
        sys.exit("qbcdc did not start:\n" + q.output())
    if register_realms(qport, sim) != REALMS:
        sys.exit("could not register the realms:\n" + q.output())

    # ---- fill
    size, end, fill_bursts, fill_t0 = 0, 0, 0, time.monotonic()
    while size < FILL and fill_bursts < 40:
        burst(sim, data_dir, FILL_BURST)
        fill_bursts += 1
        seqs, _, end = feed_scan(qport, end)
        size += len(seqs)
        log("fill: %d changes in the feed after %d bursts" % (size, fill_bursts))
    fill_dt = time.monotonic() - fill_t0
    all_seqs, pages, end = feed_scan(qport, 0)
    size = len(all_seqs)
    probe = http.client.HTTPConnection("127.0.0.1", qport, timeout=30)
    page_bytes = [len(get_page(probe, a)) for a, _, _ in pages]
    probe.close()

    # ---- pull
    pull = []
    for clients in (PULL_CLIENTS, 1):
        log("pull: %d client(s) for %d s" % (clients, SECONDS))
        c0, sim0, m0 = cpu_s(q.p.pid), cpu_s(sim.proc.p.pid), machine_busy()
        r = pull_run(qport, clients, SECONDS, pages)
        m1 = machine_busy()
        r["server_cpu"] = (cpu_s(q.p.pid) - c0) / r["dt"]  # includes the 0.5 s before the start: idle
        others = (m1[0] - m0[0]) / TICK - (cpu_s(q.p.pid) - c0) - (cpu_s(sim.proc.p.pid) - sim0) - r["client_cpu"] * r["dt"]
        r["others"] = max(0.0, others) / (r["dt"] + 0.5)
        pull.append((clients, r))

    # ---- SSE fan-out while ingest runs
    log("sse: %d burst(s) of %d with no consumer" % (BASE_BURSTS, BURST_SIZE))
    base = [burst(sim, data_dir, BURST_SIZE) for _ in range(BASE_BURSTS)]
    _, _, start_seq = feed_scan(qport, end)
    log("sse: opening %d consumers after seq %d" % (SSE, start_seq))
    fan = Fanout(qport, SSE, start_seq, SSE_READERS)
    n_connected = fan.connected()
    log("sse: %d consumers connected; %d burst(s) of %d" % (n_connected, BURSTS, BURST_SIZE))
    c0, c_t0 = cpu_s(q.p.pid), time.monotonic()
    live = [burst(sim, data_dir, BURST_SIZE) for _ in range(BURSTS)]
    t_ingest_end = live[-1][2] if live else time.monotonic()
    new_seqs, _, new_end = feed_scan(qport, start_seq)
    cons, reader_busy, reader_cpu = fan.finish(new_end, GRACE)
    sse_dt = time.monotonic() - (live[0][0] if live else c_t0)
    sse_server_cpu = (cpu_s(q.p.pid) - c0) / sse_dt
    q_alive = q.alive()
    q.stop()
    sim.stop()

    # ---- figures
    exact = sum(1 for c in cons if c.seqs == new_seqs)
    per = [len(c.seqs) for c in cons]
    want = set(new_seqs)
    missing = sum(len(want - set(c.seqs)) for c in cons)
    dups = sum(len(c.seqs) - len(set(c.seqs)) for c in cons)
    disorder = sum(1 for c in cons if any(b <= a for a, b in zip(c.seqs, c.seqs[1:])))
    extra = sum(len(set(c.seqs) - want) for c in cons)
    errors = [c.error for c in cons if c.error]
    first, last, full = {}, {}, {}
    for c in cons:
        for s, t in zip(c.seqs, c.times):
            if s in want:
                first[s] = min(first.get(s, t), t)
                last[s] = max(last.get(s, t), t)
                full[s] = full.get(s, 0) + 1
    spread = [(last[s] - first[s]) * 1000.0 for s in new_seqs if full.get(s) == len(cons)]
    last_delivery = max(last.values()) if last else float("nan")
    last_ack = live[-1][1] if live else float("nan")
    base_drain = [d - t0 for t0, _, d in base]
    live_drain = [d - t0 for t0, _, d in live]

    def ms(x):
        return "%.1f" % x

    print()
    print("qbcdc feed benchmark: %d realms, %d records of each type per realm, loopback, %d CPUs; run took %.0f s"
          % (REALMS, ENTITIES, os.cpu_count(), time.monotonic() - t_start))
    print("feed: %d changes (filled with %d bursts of %d changes in %.1f s), %d pages of %d, %.0f KiB per full page"
          % (size, fill_bursts, FILL_BURST, fill_dt, len(pages), PAGE, pct(page_bytes, 50) / 1024.0))
    print()
    print("%-34s %12s %12s" % ("pull, GET /v1/changes?limit=1000", "%d clients" % pull[0][0], "1 client"))
    rows = [("pages/s", lambda r: "%.1f" % (r["pages"] / r["dt"])),
            ("changes/s", lambda r: "%.0f" % (r["changes"] / r["dt"])),
            ("MB/s (bodies)", lambda r: "%.1f" % (r["bytes"] / r["dt"] / 1e6)),
            ("page latency p50 ms", lambda r: ms(pct(r["lat"], 50) * 1000)),
            ("page latency p99 ms", lambda r: ms(pct(r["lat"], 99) * 1000)),
            ("page latency max ms", lambda r: ms(max(r["lat"] or [float("nan")]) * 1000)),
            ("qbcdc CPU (cores)", lambda r: "%.2f" % r["server_cpu"]),
            ("client CPU (cores, python)", lambda r: "%.2f" % r["client_cpu"]),
            ("rest of the machine (cores)", lambda r: "%.2f" % r["others"]),
            ("pages with an unexpected next", lambda r: "%d" % r["wrong"]),
            ("clients that failed", lambda r: "%d" % len(r["errors"]))]
    for name, f in rows:
        print("%-34s %12s %12s" % (name, f(pull[0][1]), f(pull[1][1])))
    for e in sorted(set(pull[0][1]["errors"] + pull[1][1]["errors"]))[:5]:
        print("    error: %s" % e)
    print()
    print("SSE fan-out, GET /v1/changes/stream, while ingest runs (%d bursts of %d changes, 10 per webhook)"
          % (BURSTS, BURST_SIZE))
    print("%-52s %s" % ("consumers connected", "%d of %d" % (n_connected, SSE)))
    print("%-52s %d" % ("new changes in the feed", len(new_seqs)))
    print("%-52s min %d, median %d, max %d" % ("events per consumer", min(per or [0]), pct(per, 50) if per else 0,
                                               max(per or [0])))
    print("%-52s %d of %d" % ("got every new change exactly once, in order", exact, len(cons)))
    if exact != len(cons):
        print("%-52s missing %d, duplicates %d, beyond the end %d, consumers out of order %d, closed %d"
              % ("  what went wrong (summed over consumers)", missing, dups, extra, disorder,
                 sum(1 for c in cons if c.closed)))
        for e in sorted(set(errors))[:5]:
            print("    error: %s" % e)
    print("%-52s p50 %s, p99 %s, max %s" % ("delivery spread per change, ms (last - first)", ms(pct(spread, 50)),
                                            ms(pct(spread, 99)), ms(max(spread or [float("nan")]))))
    print("%-52s %s ms" % ("last webhook acked -> last event delivered", ms((last_delivery - last_ack) * 1000)))
    print("%-52s %s ms" % ("ingest end (drain seen) -> last event delivered", ms((last_delivery - t_ingest_end) * 1000)))
    print("%-52s %.2f / %.2f" % ("qbcdc / consumers' CPU during ingest (cores)", sse_server_cpu, reader_cpu / sse_dt))
    print("%-52s %d, busy %.0f%% of the time" % ("consumer reader processes", len(fan.parts),
                                                 100.0 * reader_busy / len(fan.parts) / sse_dt))
    print()
    print("%-30s %7s %12s %12s %12s %12s" % ("burst of %d changes" % BURST_SIZE, "bursts", "acked, p50",
                                            "drained, p50", "drained, min", "drained, max"))
    for name, rows in (("without consumers", base), ("with %d consumers" % n_connected, live)):
        acks = [(a - t0) * 1000 for t0, a, _ in rows]
        drains = [(d - t0) * 1000 for t0, _, d in rows]
        print("%-30s %7d %12s %12s %12s %12s" % (name, len(rows), ms(pct(acks, 50)), ms(pct(drains, 50)),
                                                 ms(min(drains or [float("nan")])), ms(max(drains or [float("nan")]))))
    if base and live:
        print("%-30s %7s %12.2f %12.2f" % ("ratio (with / without)", "", pct([a - t0 for t0, a, _ in live], 50) /
                                           pct([a - t0 for t0, a, _ in base], 50), pct(live_drain, 50) / pct(base_drain, 50)))
    print()
    print("(pull: pages finished inside the %d s window, each client on its own keep-alive connection,"
          " scanning from after=0 to the end and again; latency = request sent -> body read; rest of the machine ="
          " CPU used by other processes and by the kernel outside them (loopback softirq)."
          " SSE: receive times are taken when a reader process (python, one selectors"
          " loop over its share of the sockets) reads each socket, so the spread includes the readers' own lag. Times in ms from sending POST /sim/mutate: acked = it returned (qbosim"
          " has posted every webhook, one at a time, and qbcdc acknowledged each); drained = nothing pending in"
          " qbosim or qbcdc, polled every 50 ms (includes qbcdc's coalescing window).)" % SECONDS)
    if not q_alive:
        print("qbcdc had died during the run; its log:\n" + q.output()[-2000:])


if __name__ == "__main__":
    main()
