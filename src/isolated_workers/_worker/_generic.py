"""The worker of a pool opened without a target: it serves `run_sync` only."""

from __future__ import annotations

import os
import sys

from .._calls import BUILTIN_SERIALIZERS, PATH_ENV
from .._registry import define_messages
from .._wire._serializers import JsonSerializer
from ._api import run_worker
from ._session import connect


def main() -> None:
    # The host's import path too, so that the functions it names import here.
    host_path = os.environ.pop(PATH_ENV, "").split(os.pathsep)
    sys.path.extend(entry for entry in host_path if entry and entry not in sys.path)
    # Whichever of the library's serializers the host chose.
    name = connect().hello.get("serializer", "")
    chosen = BUILTIN_SERIALIZERS.get(name, JsonSerializer)
    run_worker(define_messages(), {}, serializer=chosen())


if __name__ == "__main__":
    main()
