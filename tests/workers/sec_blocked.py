"""The echo worker, held back before it connects to its host.

``python -m tests.workers.sec_blocked RELEASE [MODULE]``: writes its pid to
``RELEASE.started``, waits (at most 30 s) until the file ``RELEASE`` exists,
then runs ``MODULE`` (default ``tests.workers.echo``). Until then the host is
STARTING with its socket directory in place, for the tests to inspect and
attack.
"""

from __future__ import annotations

import os
import runpy
import sys
import time

release = sys.argv[1]
with open(f"{release}.started", "w") as started:  # the test's beacon
    started.write(f"{os.getpid()}\n")
deadline = time.monotonic() + 30
while not os.path.exists(release):
    if time.monotonic() > deadline:
        sys.exit(3)
    time.sleep(0.005)
module = sys.argv[2] if len(sys.argv) > 2 else "tests.workers.echo"
del sys.argv[1:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
