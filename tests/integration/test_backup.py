#!/usr/bin/env python3
"""`qbcdc backup DEST` and a restore (issue 11, deployment kit).

qbcdc serves qbosim's companies while a client posts signed webhooks without pause and
qbosim keeps changing things; `qbcdc backup` runs in the middle of it. Then the service
is stopped and a new one is started on the copy. Checked:
- the copy holds every webhook acked before the backup began, and its inbox is a
  gapless prefix of the source's, byte for byte;
- its feed is the source's feed up to the copy's head, byte for byte, under a new
  feed_id (a restored store is another feed: its sequences after the head would differ);
- the copied master key reads the copied OAuth tokens: the restored service fetches new
  changes from qbosim and they reach its feed;
- a destination that is not empty is refused (exit 1) and one is required (exit 2).
"""
import http.client
import json
import os
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from simlib import VERIFIER, Sim, admin, qbcdc_lines, serve_env, serve_with_sim

FEED = {"Authorization": "Bearer test-feed-token"}


def body_for(n):
    return ('{"eventNotifications":[{"realmId":"8000","dataChangeEvent":{"entities":[{"name":"Invoice",'
            '"id":"bk-%d","operation":"Update","lastUpdated":"2026-12-04T10:00:00.000Z"}]}}]}' % n)


def poster(port, acked, stop):
    conn, n = None, 0
    while not stop.is_set():
        body = body_for(n)
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("POST", "/webhooks/intuit", body=body.encode(),
                         headers={"Content-Type": "application/json", "intuit-signature": sign(body, VERIFIER)})
            r = conn.getresponse()
            r.read()
            if r.status == 200:
                acked.append(body)
                n += 1
        except (OSError, http.client.HTTPException):
            conn = None
            time.sleep(0.01)


def feed_page(port, after):
    st, _, b = request(port, "GET", "/v1/changes?limit=1000&after=%d" % after, headers=FEED)
    return json.loads(b) if st == 200 else None


port = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % port], realms=2, entities=20)
q, data, realms = serve_with_sim(sim, port, "qbcdc-backup-src-")
st, j = sim.json("POST", "/sim/mutate?n=40")
ok(st == 200, "40 changes made in qbosim", j)
ok(wait_for(lambda: len((feed_page(port, 0) or {}).get("changes", [])) >= 40, 60), "they reach the feed")

acked, stop = [], threading.Event()
th = threading.Thread(target=poster, args=(port, acked, stop))
th.start()
mut = threading.Thread(target=lambda: [sim.json("POST", "/sim/mutate?n=5") for _ in range(6)])
mut.start()
time.sleep(0.5)
before = list(acked)
dest = os.path.join(tmpdir("qbcdc-backup-dest-"), "copy")
r = subprocess.run([QBCDC, "backup", dest, "--data-dir", data], capture_output=True, timeout=120)
time.sleep(0.3)
stop.set()
th.join()
mut.join()
ok(r.returncode == 0, "qbcdc backup exits 0 under load", r.stderr.decode())
try:
    rep = json.loads(r.stdout)
except ValueError:
    rep = {}
diag("backup: %s; %d webhooks acked before it, %d in all" % (r.stdout.decode().strip(), len(before), len(acked)))
is_(rep.get("master_key"), "copied", "the master key is copied with it")
ok(rep.get("last_inbox_seq", 0) >= len(before) > 0, "its report counts at least the webhooks acked before it")
is_(stat.S_IMODE(os.stat(dest).st_mode), 0o700, "the copy's directory is 0700")
ok(all(stat.S_IMODE(os.stat(os.path.join(dest, f)).st_mode) == 0o600 for f in ("data.mdb", "journal", "master.key")),
   "its files are 0600")
is_(q.stop(), 0, "the source service stops")

# the inbox: every webhook acked before the backup, and a gapless prefix of the source's
src_inbox = qbcdc_lines("inbox", "--bodies", "--data-dir", data)
copy_inbox = qbcdc_lines("inbox", "--bodies", "--data-dir", dest)
copy_bodies = {rec["body"] for rec in copy_inbox}
is_([b for b in before if b not in copy_bodies], [], "every webhook acked before the backup is in the copy")
ok(len(copy_inbox) > 0 and copy_inbox == src_inbox[:len(copy_inbox)],
   "the copy's inbox is the source's first %d records, byte for byte" % len(copy_inbox))

# the feed: the source's, up to the copy's head
src_feed = qbcdc_lines("feed", "--data-dir", data, "--limit", "1000000")
copy_feed = qbcdc_lines("feed", "--data-dir", dest, "--limit", "1000000")
ok(len(copy_feed) >= 40 and copy_feed == src_feed[:len(copy_feed)],
   "the copy's feed is the source's first %d records, byte for byte" % len(copy_feed))

# restore: a service on the copy
port2 = free_port()
env = serve_env(port2, dest, sim)
q2 = Proc([QBCDC, "serve"], env=env)
ok(wait_http(port2), "a service starts on the copy", q2.output())
page = feed_page(port2, 0) or {}
ok(page.get("feed_id") and len(page["feed_id"]) == 32, "the restored feed names itself")
stats_src = json.loads(subprocess.run([QBCDC, "stats", "--data-dir", data], capture_output=True).stdout)
ok(page.get("feed_id") != stats_src.get("feed_id"), "with a feed_id other than the source's",
   (page.get("feed_id"), stats_src.get("feed_id")))
st, rs = admin(port2, "GET", "/admin/realms")
ok(st == 200 and sorted(x["realm"] for x in rs["realms"]) == realms, "the restored service knows both companies")
head = len(copy_feed)
# qbosim's webhooks still go to the old port: a CDC sweep of each company fetches the changes
st, j = sim.json("POST", "/sim/mutate?n=10")
time.sleep(1.1)  # past the second of the copy's watermarks
for realm in realms:
    admin(port2, "POST", "/admin/realms/%s/cdc" % realm)


def grown():
    p = feed_page(port2, head)
    return p and len(p["changes"]) >= 10


ok(wait_for(grown, 60), "new changes reach the restored feed: the copied key reads the copied tokens",
   admin(port2, "GET", "/admin/realms"))
is_(q2.stop(), 0, "the restored service stops")

# refusals
r = subprocess.run([QBCDC, "backup", dest, "--data-dir", data], capture_output=True, timeout=60)
ok(r.returncode == 1 and b"not empty" in r.stderr, "a destination that is not empty is refused", r.stderr)
r = subprocess.run([QBCDC, "backup", "--data-dir", data], capture_output=True, timeout=60)
ok(r.returncode == 2 and b"destination" in r.stderr, "a destination is required (exit 2)", r.stderr)
r = subprocess.run([QBCDC, "backup", "--help"], capture_output=True, timeout=60)
ok(r.returncode == 0 and b"Restore" in r.stdout, "--help explains the backup and the restore")
sim.stop()
done_testing()
