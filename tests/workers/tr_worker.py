"""The plain worker, launched as test_transports.py needs: it prints before its
handshake, and runs as a module or as a script.

As a script it needs ``PYTHONPATH`` to hold the repository (for
``tests.workers``); `tr_sibling` then imports only through ``sys.path[0]``.
"""

from __future__ import annotations

from isolated_workers import get_startup_data, run_worker
from tests.workers.echo_handlers import HANDLERS
from tests.workers.messages import IMPORT_PRINT, Messages

print(IMPORT_PRINT, flush=True)  # before the handshake
get_startup_data()  # performs the handshake

if __name__ == "__main__":
    run_worker(Messages, HANDLERS)
