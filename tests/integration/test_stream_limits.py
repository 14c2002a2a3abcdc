#!/usr/bin/env python3
"""File descriptors cannot be exhausted by authenticated readers (issue 11 #2):

1. QBCDC_MAX_STREAMS caps long-polls and SSE streams: beyond it, 503 too_many_streams with
   Retry-After, and a slot frees as soon as a reader leaves.
2. A long-poll (or stream) whose client went away is noticed within a second, not when its
   wait ends: qbcdc_feed_streams drops and the descriptor is freed.
3. At the process's descriptor limit the accept loop pauses instead of spinning (CPU stays
   low), the connections already open are served, and once clients close, new ones
   (/healthz) are answered again.
"""
import http.client
import os
import resource
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403

FEED = "feed-token"
AUTH = {"Authorization": "Bearer " + FEED}


def open_poll(port, wait=30):
    """a long-poll request sent on a raw socket (the answer is not read)"""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(("GET /v1/changes?after=0&wait=%d HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
               % (wait, FEED)).encode())
    return s


def streams(port):
    return metric(port, "qbcdc_feed_streams")


# ---- 1 and 2: the cap, and readers that leave ----
proc, port, _ = start_qbcdc(extra_env={"QBCDC_FEED_TOKEN": FEED, "QBCDC_MAX_STREAMS": "2"})
a, b = open_poll(port), open_poll(port)
ok(wait_for(lambda: streams(port) == 2, 10), "two long-polls wait (qbcdc_feed_streams 2)")
st, h, body = request(port, "GET", "/v1/changes?after=0&wait=30", headers=AUTH)
ok(st == 503 and b"too_many_streams" in body and h.get("retry-after") == "5",
   "a third: 503 too_many_streams with Retry-After", (st, h, body))
st, h, body = request(port, "GET", "/v1/changes/stream", headers=AUTH)
ok(st == 503 and b"too_many_streams" in body, "an SSE stream too", (st, body))
st, _, _ = request(port, "GET", "/v1/changes?after=0", headers=AUTH)
is_(st, 200, "a pull that does not wait is not counted")
a.close()
t0 = time.time()
ok(wait_for(lambda: streams(port) == 1, 5, poll=0.05), "a client that leaves is noticed at once (%.2f s), not after its 30 s wait"
   % (time.time() - t0))
c = open_poll(port)
ok(wait_for(lambda: streams(port) == 2, 5), "and its slot is taken by the next reader")
b.close()
c.close()
ok(wait_for(lambda: streams(port) == 0, 5), "both gone: none left")
is_(proc.stop(), 0, "qbcdc stops")

# ---- 3: at the descriptor limit ----
port = free_port()
env = dict(os.environ, QBCDC_LISTEN="127.0.0.1:%d" % port, QBCDC_DATA_DIR=tmpdir(), QBCDC_SIM="off",
           QBCDC_WEBHOOK_VERIFIER_TOKENS="t", QBCDC_FEED_TOKEN=FEED, QBCDC_LOG_LEVEL="info")
log = open(os.path.join(tmpdir(), "qbcdc.log"), "w+")
p = subprocess.Popen([QBCDC, "serve"], env=env, stdout=log, stderr=log,
                     preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)))
ok(wait_http(port), "qbcdc up with 64 file descriptors")
socks = []
for i in range(120):  # many more than it can accept; the rest wait in the backlog
    try:
        socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
    except OSError:
        break
time.sleep(1.0)


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


c0 = cpu(p.pid)
time.sleep(2.0)
used = cpu(p.pid) - c0
ok(used < 1.0, "out of descriptors, it does not spin: %.2f s of CPU in 2 s" % used)
for s in socks:
    s.close()
ok(wait_http(port, timeout=10), "the clients gone, /healthz answers again")
st, _, _ = request(port, "GET", "/healthz")
is_(st, 200, "200 ok")
p.terminate()
is_(p.wait(timeout=20), 0, "qbcdc stops")
log.seek(0)
ok("out of file descriptors" in log.read(), "and it logged running out of descriptors")
done_testing()
