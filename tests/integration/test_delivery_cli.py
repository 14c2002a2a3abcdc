#!/usr/bin/env python3
"""`qbcdc subscriptions ...` (issue 14): the operator CLI over /admin/subscriptions.

create (the answer holds the secret once; --secret-stdin takes one without showing it in
ps), list, show, update (filters, --rotate-secret), pause, resume, redeliver, delete; bad
usage exits 2 with a one-line error; an error answer exits 1. Also a bad
QBCDC_DELIVERY_SCHEDULE stops `qbcdc serve` with exit 2 and the variable named.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from receiverlib import Receiver

ADMIN = "test-admin-token"
p, port, _ = start_qbcdc(extra_env={"QBCDC_ADMIN_TOKEN": ADMIN, "QBCDC_DELIVERY_ALLOW_PRIVATE": "1"})
env = dict(os.environ, QBCDC_LISTEN="127.0.0.1:%d" % port, QBCDC_ADMIN_TOKEN=ADMIN)


def cli(*args, stdin=None):
    r = subprocess.run([QBCDC, "subscriptions"] + list(args), env=env, input=stdin, capture_output=True, text=True,
                       timeout=30)
    try:
        out = json.loads(r.stdout) if r.stdout.strip() else None
    except ValueError:
        out = r.stdout
    return r.returncode, out, r.stderr


rcv = Receiver()
rc, j, err = cli("create", "--url", rcv.url(), "--entities", "invoice,Bill", "--ops", "create,update",
                 "--batch-max", "7", "--start-after", "head")
ok(rc == 0 and j["id"] and j["secret"].startswith("whsec_") and j["entities"] == ["Invoice", "Bill"] and
   j["ops"] == ["create", "update"] and j["batch_max"] == 7, "create: exit 0, the answer with its secret", (rc, j, err))
sid = j["id"]
rc, j, err = cli("create", "--url", rcv.url(), "--secret-stdin", stdin="whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\n")
ok(rc == 0 and j["secret"] == "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "create --secret-stdin", (rc, j, err))
sid2 = j["id"]
rc, j, _ = cli()
ok(rc == 0 and [x["id"] for x in j["subscriptions"]] == [sid, sid2], "no verb: list", j)
rc, j, _ = cli("list")
ok(rc == 0 and all("secret" not in x for x in j["subscriptions"]), "list never shows a secret")
rc, j, _ = cli("show", sid)
ok(rc == 0 and j["id"] == sid and j["state"] == "active" and "lag" in j, "show ID", j)
rc, j, _ = cli("update", sid, "--entities", "", "--batch-max", "3")
ok(rc == 0 and j["entities"] is None and j["batch_max"] == 3, "update: an empty list clears the filter", j)
rc, j, _ = cli("update", sid, "--rotate-secret")
ok(rc == 0 and j.get("secret", "").startswith("whsec_"), "update --rotate-secret answers the new secret", j)
rc, j, _ = cli("pause", sid)
ok(rc == 0 and j["state"] == "paused", "pause", j)
rc, j, _ = cli("resume", sid)
ok(rc == 0 and j["state"] == "active", "resume", j)
rc, j, _ = cli("redeliver", sid, "--from", "1")
ok(rc == 0 and j["cursor"] == 0, "redeliver --from 1", j)
rc, j, _ = cli("delete", sid2)
ok(rc == 0 and j["deleted"] is True, "delete", j)
rc, j, _ = cli("show", sid2)
ok(rc == 1 and j["error"] == "not_found", "show of a deleted one: exit 1 with the error answer", (rc, j))
rc, j, _ = cli("create", "--url", "ftp://x/")
ok(rc == 1 and j["error"] == "bad_subscription", "a refused create: exit 1, the reason printed", (rc, j))
for args, what in [(["show"], "show without an id"), (["pause", "a/b"], "a bad id"), (["explode", "1"], "an unknown verb"),
                   (["create", "--batch-max", "x"], "a non-number"), (["create", "--url"], "a flag without value"),
                   (["pause", "1", "--url", "http://a/"], "flags where none are taken")]:
    rc, _, err = cli(*args)
    ok(rc == 2 and err.count("\n") == 1 and err.startswith("qbcdc: "), "%s: exit 2, one line" % what, (rc, err))
is_(p.stop(), 0, "qbcdc stops")

r = subprocess.run([QBCDC, "serve"], env=dict(os.environ, QBCDC_DELIVERY_SCHEDULE="0,five", QBCDC_SIM="off",
                                               QBCDC_DATA_DIR=tmpdir()), capture_output=True, text=True, timeout=30)
ok(r.returncode == 2 and "QBCDC_DELIVERY_SCHEDULE" in r.stderr and r.stderr.count("\n") == 1,
   "a bad QBCDC_DELIVERY_SCHEDULE: exit 2 naming the variable", (r.returncode, r.stderr))
rcv.close()
done_testing()
