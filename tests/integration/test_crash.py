#!/usr/bin/env python3
"""Crash test: an acked webhook is never lost.

Several client threads post signed, unique webhooks over keep-alive connections
while `qbcdc serve` is killed with SIGKILL at a random moment. After each restart,
every webhook that got a 200 must be in the inbox, byte for byte, and sequence
numbers must still be unique and increasing. Several rounds on the same data dir.
Seeded (QBCDC_CRASH_SEED) so a failure can be replayed.
"""
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403

TOKEN = "crash-token"
ROUNDS = int(os.environ.get("QBCDC_CRASH_ROUNDS", "6"))
THREADS = 8
seed = int(os.environ.get("QBCDC_CRASH_SEED", str(int(time.time()))))
rnd = random.Random(seed)
diag("seed %d (set QBCDC_CRASH_SEED to replay)" % seed)


def body_for(round_no, thread_no, n):
    realm = str(9000 + thread_no)
    return ('{"eventNotifications":[{"realmId":"%s","dataChangeEvent":{"entities":[{"name":"Invoice","id":"r%d-t%d-%d",'
            '"operation":"Update","lastUpdated":"2026-11-21T10:00:00.000Z"}]}}]}' % (realm, round_no, thread_no, n))


def client(port, round_no, thread_no, acked, stop):
    n = 0
    conn = None
    while not stop.is_set():
        body = body_for(round_no, thread_no, n)
        n += 1
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("POST", "/webhooks/intuit", body=body.encode(),
                         headers={"Content-Type": "application/json", "intuit-signature": sign(body, TOKEN)})
            r = conn.getresponse()
            r.read()
            if r.status == 200:
                acked.append(body)
        except (OSError, http.client.HTTPException):
            conn = None
            time.sleep(0.01)  # the server is gone (or restarting): this one was not acked


def inbox_bodies(data_dir):
    r = subprocess.run([QBCDC, "inbox", "--bodies", "--data-dir", data_dir], capture_output=True, timeout=60)
    if r.returncode != 0:
        return None, r.stderr.decode()
    recs = [json.loads(l) for l in r.stdout.decode().splitlines() if l.strip()]
    return recs, ""


data = tmpdir("qbcdc-crash-")
all_acked = []
for round_no in range(ROUNDS):
    proc, port, _ = start_qbcdc(data_dir=data, tokens=TOKEN)
    acked = []
    stop = threading.Event()
    threads = [threading.Thread(target=client, args=(port, round_no, t, acked, stop), daemon=True)
               for t in range(THREADS)]
    for t in threads:
        t.start()
    time.sleep(rnd.uniform(0.3, 1.5))
    proc.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=10)
    all_acked.extend(acked)
    recs, err = inbox_bodies(data)
    if not ok(recs is not None, "round %d: the store opens after SIGKILL" % round_no, err):
        break
    stored = set(r["body"] for r in recs)
    lost = [b for b in all_acked if b not in stored]
    ok(len(acked) > 0, "round %d: webhooks were acked before the kill (%d)" % (round_no, len(acked)))
    ok(not lost, "round %d: every acked webhook is stored (%d acked so far, %d lost)"
       % (round_no, len(all_acked), len(lost)), "\n".join(lost[:5]))
    seqs = [r["seq"] for r in recs]
    ok(seqs == sorted(set(seqs)), "round %d: inbox sequences unique and increasing" % round_no)

# the service still works on the crashed-into store
proc, port, _ = start_qbcdc(data_dir=data, tokens=TOKEN)
body = body_for(99, 0, 0)
st, _, resp = request(port, "POST", "/webhooks/intuit", body, {"intuit-signature": sign(body, TOKEN)})
is_(st, 200, "after %d crashes the service still stores webhooks" % ROUNDS)
is_(proc.stop(), 0, "and stops cleanly")
diag("acked across all rounds: %d" % len(all_acked))
done_testing()
