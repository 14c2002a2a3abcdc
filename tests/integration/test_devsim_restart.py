#!/usr/bin/env python3
"""The README's first command gives a live feed on every start, not only the first
(issue 11): `qbcdc serve` with the bundled simulator, stopped and started again on the same
data directory, three times. The simulator keeps its companies beside the store
(qbosim --state), qbcdc registers them as active again under the new simulator's tokens, and
new changes reach the feed each time. Before, the second start left every realm
disconnected (its stored tokens belonged to the previous simulator) and the feed stood still.
A simulator address that is taken stops qbcdc with a message instead of adopting whatever
answers there.
"""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403

AUTH = {"Authorization": "Bearer dev"}


def head(port):
    st, _, body = request(port, "GET", "/v1/changes?limit=1000", headers=AUTH)
    if st != 200:
        return None
    b = json.loads(body)
    seq = b["next"]
    while b["changes"]:
        st, _, body = request(port, "GET", "/v1/changes?limit=1000&after=%d" % seq, headers=AUTH)
        b = json.loads(body)
        seq = b["next"]
    return seq


def realms(port):
    st, _, body = request(port, "GET", "/admin/realms", headers=AUTH)
    return json.loads(body)["realms"] if st == 200 else []


data = tmpdir("qbcdc-devsim-restart-")
sim_port = free_port()
env = {"QBCDC_DATA_DIR": data, "QBCDC_SIM": "auto", "QBCDC_SIM_LISTEN": "127.0.0.1:%d" % sim_port}
last = 0
for start in (1, 2, 3):
    port = free_port()
    p = Proc([QBCDC, "serve"], env=dict(env, QBCDC_LISTEN="127.0.0.1:%d" % port))
    ok(wait_http(port), "start %d: qbcdc is up" % start, p.output())
    rs = wait_for(lambda: (lambda r: r if len(r) == 3 and all(x["status"] in ("active", "snapshotting") for x in r)
                           else None)(realms(port)), 20)
    ok(rs, "start %d: the three simulated companies are active" % start, realms(port))
    # the simulator changes something every 2 s or so: new records must arrive past where we were
    grown = wait_for(lambda: (head(port) or 0) > last, 45)
    now = head(port) or 0
    ok(grown, "start %d: the feed is live (head %d, was %d)" % (start, now, last))
    ok(not any((x.get("last_error") or "").startswith("refresh token refused") for x in realms(port)),
       "start %d: no realm lost its tokens" % start, realms(port))
    last = now
    is_(p.stop(), 0, "start %d: qbcdc stops" % start)
    ok(os.path.exists(os.path.join(data, "qbosim.state")), "start %d: the simulator's companies are kept" % start)

# the simulator's address taken by something else: say so and stop
blocker = socket.socket()
blocker.bind(("127.0.0.1", 0))
blocker.listen(1)
taken = blocker.getsockname()[1]
port = free_port()
p = Proc([QBCDC, "serve"], env=dict(env, QBCDC_LISTEN="127.0.0.1:%d" % port,
                                    QBCDC_SIM_LISTEN="127.0.0.1:%d" % taken))
code = p.p.wait(timeout=30)
ok(code != 0 and "could not start" in p.output(), "a taken simulator address: qbcdc stops and says so (exit %s)" % code,
   p.output()[-600:])
blocker.close()
done_testing()
