"""The worker that tests/test_fuzz.py feeds raw frames to (C16, real process)."""

from __future__ import annotations

from isolated_workers import run_worker
from tests.workers.fuzz_messages import MAX_FRAME_SIZE, Messages, make_handlers

if __name__ == "__main__":
    run_worker(Messages, make_handlers(), max_frame_size=MAX_FRAME_SIZE)
