#!/usr/bin/env python3
"""The deployment kit (issue 11): deploy/qbcdc.service passes `systemd-analyze verify`, keeps
its hardening (a test fails if a directive goes), scores as "OK" in `systemd-analyze
security`, and deploy/qbcdc.env.example names only variables qbcdc knows (and all of them),
so the example cannot drift from the program. The checker itself is shown to catch a
broken unit.
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
unit_path = os.path.join(root, "deploy", "qbcdc.service")
env_path = os.path.join(root, "deploy", "qbcdc.env.example")
unit = open(unit_path).read()
d = tmpdir("qbcdc-unit-")

if shutil.which("systemd-analyze") is None:
    print("1..0 # SKIP systemd-analyze is not installed (apt-get install systemd)")
    sys.exit(0)


def verify(text, name="qbcdc.service"):
    """systemd-analyze verify on a copy whose ExecStart is the built qbcdc: (rc, output)"""
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text.replace("/usr/local/bin/qbcdc", os.path.abspath(QBCDC)))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", path], capture_output=True, text=True, timeout=60)
    return r.returncode, (r.stdout + r.stderr).strip()


rc, out = verify(unit)
ok(rc == 0 and out == "", "systemd-analyze verify: no error, no warning", out)
rc, out = verify(unit.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"), "broken.service")
ok("Unknown key" in out or "NoNewPrivilege" in out, "and it does complain about a misspelled directive", out)

hardening = ["DynamicUser=yes", "StateDirectory=qbcdc", "NoNewPrivileges=yes", "ProtectSystem=strict",
             "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes", "CapabilityBoundingSet=",
             "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "MemoryDenyWriteExecute=yes", "LimitCORE=0",
             "UMask=0077", "Restart=on-failure", "SystemCallFilter=@system-service", "KillSignal=SIGTERM"]
lines = set(l.strip() for l in unit.splitlines())
missing = [h for h in hardening if h not in lines]
is_(missing, [], "the hardening directives are all there")
ok("ExecStart=/usr/local/bin/qbcdc serve" in lines and "Environment=QBCDC_DATA_DIR=/var/lib/qbcdc" in lines,
   "it runs qbcdc serve on the state directory")

path = os.path.join(d, "qbcdc.service")
r = subprocess.run(["systemd-analyze", "security", "--offline=yes", path], capture_output=True, text=True,
                   timeout=60)
m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", r.stdout + r.stderr)
diag("systemd-analyze security: %s" % (m.group(0) if m else (r.stdout + r.stderr)[-300:]))
ok(m and float(m.group(1)) <= 2.0, "systemd-analyze security rates its exposure 2.0 or less (OK)")

# the example names every variable qbcdc serve knows, and nothing else
helptext = subprocess.run([QBCDC, "serve", "--help"], capture_output=True, text=True, timeout=30).stdout
# the variable of each option stands after its --flag; a default such as [default: QBCDC_FEED] is not one
known = set(re.findall(r"^\s+--[a-z0-9-]+\s+(QBCDC_[A-Z0-9_]+)\s*$", helptext, re.M))
example = set(re.findall(r"^#?(QBCDC_[A-Z_]+)=", open(env_path).read(), re.M))
is_(sorted(example - known), [], "every variable in qbcdc.env.example is one qbcdc knows")
is_(sorted(known - example - {"QBCDC_SIM_LISTEN", "QBCDC_DATA_DIR"}), [],
    "and every variable qbcdc knows is in it (the data dir is the unit's)")
done_testing()
