#!/usr/bin/env python3
"""Fault injection: the store runs out of room.

With QBCDC_MAP_MAX tiny, webhooks must start getting 503 (never a crash, never a
200 for something not stored); everything acked before stays; /healthz says so;
after a restart with more room, the service takes webhooks again.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403

TOKEN = "full-token"


def post(port, n):
    body = ('{"eventNotifications":[{"realmId":"42","dataChangeEvent":{"entities":[{"name":"Item","id":"%d",'
            '"operation":"Update","lastUpdated":"2026-01-01T00:00:00Z"}]}}]}' % n) + " " * 4000
    st, _, resp = request(port, "POST", "/webhooks/intuit", body, {"intuit-signature": sign(body, TOKEN)})
    return st, resp, body


proc, port, data = start_qbcdc(tokens=TOKEN, extra_env={"QBCDC_MAP_SIZE": "256K", "QBCDC_MAP_MAX": "512K"})
acked, refused, other = [], 0, 0
last = None
for n in range(400):
    st, resp, body = post(port, n)
    if st == 200:
        acked.append(body)
    elif st == 503:
        refused += 1
        last = resp
    else:
        other += 1
ok(len(acked) > 20, "webhooks stored until the map is full (%d)" % len(acked))
ok(refused > 0, "then refused with 503 (%d)" % refused)
is_(other, 0, "no other status")
ok(last is not None and json.loads(last)["error"] == "store_full", "the 503 says store_full", last)
ok(proc.alive(), "the service is still running")
st, _, _ = request(port, "GET", "/metrics")
is_(st, 200, "metrics still answer")
is_(proc.stop(), 0, "graceful exit with a full store")
ok("map is full" in proc.output(), "the full map is logged")
ok(proc.output().count("map is full") <= 3, "but not once per request")

r = subprocess.run([QBCDC, "inbox", "--bodies", "--data-dir", data], capture_output=True, timeout=30)
stored = [json.loads(l)["body"] for l in r.stdout.decode().splitlines() if l.strip()]
is_(stored, acked, "exactly the acked bodies are stored, in order")

proc, port, data = start_qbcdc(data_dir=data, tokens=TOKEN, extra_env={"QBCDC_MAP_SIZE": "256K", "QBCDC_MAP_MAX": "8M"})
st, _, _ = post(port, 1000)
is_(st, 200, "with a larger QBCDC_MAP_MAX the same store takes webhooks again")
proc.stop()
done_testing()
