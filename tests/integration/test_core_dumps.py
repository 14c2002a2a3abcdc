#!/usr/bin/env python3
"""Core dumps must not expose secrets (issue 11 #7): `qbcdc serve` makes itself
undumpable with a core size limit of 0 unless QBCDC_ALLOW_CORE_DUMPS=1, and keeps the
master key on a page a dump leaves out (MADV_DONTDUMP: VmFlags "dd" in /proc/PID/smaps).
"""
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403


def core_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max core file size"):
                return line.split()[4]  # the soft limit
    return None


def dontdump_pages(pid):
    """4 KiB mappings marked don't-dump (the key's page; a sanitizer's shadow maps are huge)"""
    n, size = 0, None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            if line.startswith("Size:"):
                size = line.split()[1]
            elif line.startswith("VmFlags:") and " dd" in line and size == "4":
                n += 1
    return n


# children inherit this: a limit qbcdc must lower by itself
try:
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
except (ValueError, OSError):
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
inherited = resource.getrlimit(resource.RLIMIT_CORE)[0]
ok(inherited != 0, "the test runs with core dumps allowed (limit %s)" % inherited)

proc, port, _ = start_qbcdc()
is_(core_limit(proc.p.pid), "0", "qbcdc serve: core size limit 0 by default")
ok(dontdump_pages(proc.p.pid) >= 1, "the master key's page is left out of dumps (MADV_DONTDUMP)")
is_(proc.stop(), 0, "it stops")

# (under AddressSanitizer, its own default disable_coredump=1 would zero the limit too)
asan = (os.environ.get("ASAN_OPTIONS", "") + ":disable_coredump=0").lstrip(":")
proc, port, _ = start_qbcdc(extra_env={"QBCDC_ALLOW_CORE_DUMPS": "1", "ASAN_OPTIONS": asan})
lim = core_limit(proc.p.pid)
ok(lim is not None and lim != "0", "QBCDC_ALLOW_CORE_DUMPS=1 keeps dumps (limit %s)" % lim)
ok(dontdump_pages(proc.p.pid) >= 1, "the key's page is still left out")
is_(proc.stop(), 0, "it stops")
ok("QBCDC_ALLOW_CORE_DUMPS=1" in proc.output(), "and the log says dumps may hold tokens")
done_testing()
