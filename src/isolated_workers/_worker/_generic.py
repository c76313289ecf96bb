"""The worker of a pool opened without a target: it serves `run_sync` only."""

from __future__ import annotations

import os
import sys

from .._calls import PATH_ENV
from .._registry import define_messages
from ._api import run_worker


def main() -> None:
    # The host's import path too, so that the functions it names import here.
    host_path = os.environ.pop(PATH_ENV, "").split(os.pathsep)
    sys.path.extend(entry for entry in host_path if entry and entry not in sys.path)
    run_worker(define_messages(), {})


if __name__ == "__main__":
    main()
