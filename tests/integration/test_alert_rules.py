#!/usr/bin/env python3
"""examples/prometheus-alerts.yml is valid for Prometheus (`promtool check rules`, Debian's
prometheus package) and every qbcdc metric it names is one a running qbcdc exports (with the
reconciler: against qbosim), so an alert can never watch a metric that does not exist.
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from natslib import NATS_SERVER, NatsServer
from simlib import Sim, register_realms, serve_env

RULES = os.path.join(ROOT, "examples", "prometheus-alerts.yml")
promtool = shutil.which("promtool")
ok(promtool is not None, "promtool is installed (Debian: prometheus; .ci/run installs it)")
if promtool:
    r = subprocess.run([promtool, "check", "rules", RULES], capture_output=True, text=True, timeout=60)
    ok(r.returncode == 0 and "SUCCESS" in r.stdout, "promtool check rules: SUCCESS", r.stdout + r.stderr)

named = set(re.findall(r"\b(qbcdc_[a-z_]+)", open(RULES).read()))
ok(len(named) >= 8, "the rules watch %d qbcdc metrics" % len(named))
sim = Sim(realms=1, entities=5)
port = free_port()
q = Proc([QBCDC, "serve"], env=serve_env(port, tmpdir("qbcdc-alerts-"), sim))
ok(wait_http(port), "qbcdc serve is up", q.output())
register_realms(port, sim)
st, _, body = request(port, "GET", "/metrics")
exported = set(re.findall(r"^(qbcdc_[a-z_]+)", body.decode(), re.M))
# the JetStream and cluster metrics: a node in cluster mode on a nats-server of its own
if NATS_SERVER is not None:
    nats = NatsServer()
    cport = free_port()
    cenv = serve_env(cport, tmpdir("qbcdc-alerts-node-"), sim)
    cenv.update({"QBCDC_NATS_URL": nats.url(), "QBCDC_NODE_ID": "n1", "QBCDC_PARTITIONS": "4"})
    node = Proc([QBCDC, "serve"], env=cenv)
    ok(wait_http(cport), "a node in cluster mode is up", node.output())
    got = wait_for(lambda: (lambda b: b if b"qbcdc_cluster_partitions_owned 4" in b else None)(
        request(cport, "GET", "/metrics")[2]), 30) or b""
    exported |= set(re.findall(r"^(qbcdc_[a-z_]+)", got.decode(), re.M))
    is_(node.stop(), 0, "the node stops")
    nats.stop()
else:
    ok(True, "# SKIP nats-server is not installed (.ci/install installs it)")
missing = sorted(m for m in named if m not in exported and re.sub("_(bucket|sum|count)$", "", m) not in exported)
is_(missing, [], "every metric the rules name is exported")
is_(q.stop(), 0, "qbcdc stops")
sim.stop()
done_testing()
