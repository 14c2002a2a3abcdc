#!/usr/bin/env python3
"""A truncated data.mdb (a bad copy, a restore onto a full disk) is refused with an error
that says what happened and what to do, by `qbcdc serve` and by the read-only CLI views;
before, LMDB read past the end of the file and the process died of SIGBUS (issue 11 #6).
"""
import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403

TOKEN = "test-verifier-token"
proc, port, data = start_qbcdc(tokens=TOKEN)
for i in range(200):  # enough to use many pages
    body = json.dumps({"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [
        {"name": "Invoice", "id": str(i), "operation": "Update", "lastUpdated": "2026-01-01T00:00:00Z"}]}}]}) + " " * 400
    st, _, _ = request(port, "POST", "/webhooks/intuit", body,
                       {"intuit-signature": sign(body.encode(), TOKEN), "Content-Type": "application/json"})
    if st != 200:
        break
is_(st, 200, "200 webhooks stored")
is_(proc.stop(), 0, "qbcdc stops")


def cli(*args):
    p = subprocess.run([QBCDC] + list(args), capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


rc, out, err = cli("stats", "--data-dir", data)
ok(rc == 0 and json.loads(out).get("inbox_depth") == 200, "qbcdc stats reads the intact store", out + err)

path = os.path.join(data, "data.mdb")
size = os.path.getsize(path)
with open(path, "r+b") as f:
    f.truncate(12288)  # both meta pages stay, most data pages go
ok(size > 12288, "data.mdb cut from %d to 12288 bytes" % size)

rc, out, err = cli("stats", "--data-dir", data)
ok(rc != 0 and rc != -signal.SIGBUS, "qbcdc stats on the truncated store fails without a crash (exit %d)" % rc)
ok("truncated" in err and "backup" in err, "and says the file is truncated and to restore it", err[-400:])

p = Proc([QBCDC, "serve"], env={"QBCDC_LISTEN": "127.0.0.1:%d" % free_port(), "QBCDC_DATA_DIR": data,
                                "QBCDC_SIM": "off", "QBCDC_WEBHOOK_VERIFIER_TOKENS": TOKEN})
code = p.p.wait(timeout=30)
ok(code != 0 and code != -signal.SIGBUS, "qbcdc serve refuses it without a crash (exit %d)" % code)
ok("truncated" in p.output(), "naming the problem", p.output()[-400:])
done_testing()
