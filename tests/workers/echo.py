"""A well-behaved worker used by most tests."""

from __future__ import annotations

from isolated_workers import get_startup_data, run_worker
from tests.workers.echo_handlers import HANDLERS
from tests.workers.messages import Messages

# At module level, as a worker reading its configuration would: the handshake
# happens here, before run_worker (the GetStartup handler returns this data).
startup = get_startup_data()


if __name__ == "__main__":
    run_worker(Messages, HANDLERS)
