#!/usr/bin/env python3
"""Logs an operator can use (issue 11): QBCDC_LOG_FORMAT=json writes one JSON object a line
(time, level, module, message, and realm when a line is about one), and a periodic info
line says the service is alive and how it goes (QBCDC_SUMMARY_INTERVAL).
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403

ADMIN = "adm"
proc, port, _ = start_qbcdc(extra_env={"QBCDC_LOG_FORMAT": "json", "QBCDC_SUMMARY_INTERVAL": "1",
                                       "QBCDC_ADMIN_TOKEN": ADMIN, "QBCDC_FEED_TOKEN": "f"})
st, _, _ = request(port, "PUT", "/admin/realms/4242/tokens", json.dumps({"refresh_token": "r"}),
                   {"Authorization": "Bearer " + ADMIN, "Content-Type": "application/json"})
is_(st, 200, "a realm registered (logged)")
deadline = time.time() + 10
while time.time() < deadline and "alive:" not in proc.output():
    time.sleep(0.1)
is_(proc.stop(), 0, "qbcdc stops")
lines = [l for l in proc.output().splitlines() if l.strip()]
parsed, bad = [], []
for l in lines:
    try:
        parsed.append(json.loads(l))
    except ValueError:
        bad.append(l)
is_(bad, [], "every line of stderr is a JSON object (%d lines)" % len(lines))
ok(parsed and all({"time", "level", "module", "message"} <= set(o) for o in parsed),
   "each with time, level, module and message")
about = [o for o in parsed if o["message"].startswith("realm 4242")]
ok(about and all(o.get("realm") == "4242" for o in about), "a line about a realm names it in \"realm\"", about)
alive = [o for o in parsed if o["message"].startswith("alive:")]
ok(alive and alive[0]["level"] == "info" and "webhooks acked" in alive[0]["message"] and "feed head" in
   alive[0]["message"], "the periodic summary says the service is alive", alive[:1])

r = subprocess.run([QBCDC, "serve"], env=dict(os.environ, QBCDC_LOG_FORMAT="xml", QBCDC_DATA_DIR=tmpdir()),
                   capture_output=True, text=True, timeout=30)
ok(r.returncode == 2 and "QBCDC_LOG_FORMAT" in r.stderr, "another format: exit 2 naming the variable", r.stderr)
done_testing()
