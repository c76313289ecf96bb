"""A worker that never calls `run_worker`.

``python -m tests.workers.bad_never_ready [connect]``: without arguments it
sleeps without ever reading its bootstrap; with ``connect`` it first completes
the handshake (`get_startup_data`) and then sleeps, so the host never gets its
READY frame.
"""

from __future__ import annotations

import sys
import time

from isolated_workers import get_startup_data

if "connect" in sys.argv[1:]:
    get_startup_data()
time.sleep(60)
