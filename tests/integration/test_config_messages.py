#!/usr/bin/env python3
"""Configuration an operator gets wrong is said plainly (issue 11): a bad value names the
environment variable (and its flag) and quotes what was given; a configuration that runs
but not as its user likely expects is warned about once at start.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403


def serve_with(env):
    full = dict(os.environ, QBCDC_DATA_DIR=tmpdir(), QBCDC_SIM="off", QBCDC_LISTEN="127.0.0.1:%d" % free_port())
    full.update(env)
    p = subprocess.run([QBCDC, "serve"], env=full, capture_output=True, text=True, timeout=30)
    return p.returncode, p.stderr


for var, value in (("QBCDC_CDC_INTERVAL", "abc"), ("QBCDC_RATE_LIMIT", "0"), ("QBCDC_LOG_LEVEL", "loud"),
                   ("QBCDC_SNAPSHOT_ON_CONNECT", "yes"), ("QBCDC_MAP_SIZE", "lots"), ("QBCDC_CDC_ENTITIES", "Foo"),
                   ("QBCDC_MONTHLY_CALL_BUDGET", "-5"), ("QBCDC_BUDGET_PERIOD", "0"), ("QBCDC_BUDGET_TZ", "Mars/Base"),
                   ("QBCDC_CDC_MAX_INTERVAL", "9999999")):
    rc, err = serve_with({var: value})
    ok(rc == 2 and var in err and "'%s'" % value in err,
       "%s=%s: exit 2, the message names the variable and quotes the value" % (var, value), err[:300])

rc, err = serve_with({"QBCDC_CLIENT_ID": "app-without-secret"})
ok(rc == 2 and "QBCDC_CLIENT_SECRET" in err and "QBCDC_CLIENT_ID needs it" in err,
   "a client id without a secret: refused at start, naming what is missing (it failed later, 'invalid argument')",
   err[:300])
proc, port, _ = start_qbcdc(extra_env={"QBCDC_CLIENT_ID": "app", "QBCDC_CLIENT_SECRET": "s",
                                       "QBCDC_API_BASE": "http://127.0.0.1:9"})
out = proc.output()
proc.stop()
ok("QBCDC_FEED_TOKEN is not set" in out, "no feed token: warned at start", out[-1500:])
ok("QBCDC_ADMIN_TOKEN is not set" in out, "no admin token: warned at start")
ok("QBCDC_OAUTH_REDIRECT_URI is not set" in out, "no redirect URI for the connect flow: warned at start")
proc, port, _ = start_qbcdc(extra_env={"QBCDC_FEED_TOKEN": "f", "QBCDC_ADMIN_TOKEN": "a"})
out = proc.output()
proc.stop()
ok("is not set" not in out, "nothing to warn about: no warning", out[-1500:])
done_testing()
