"""The option every example takes: ``--trio`` runs the host on Trio.

The workers follow their host's event loop unless an example says otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVarTuple

import anyio

Args = TypeVarTuple("Args")


def run(
    main: Callable[[*Args], Awaitable[object]],
    *args: *Args,
) -> None:
    """Run ``main(*args)`` on asyncio, or on Trio when the command line says
    ``--trio``."""
    summary = (sys.modules["__main__"].__doc__ or "").strip().split("\n")[0]
    parser = argparse.ArgumentParser(description=summary)
    parser.add_argument("--trio", action="store_true", help="run on Trio")
    backend = "trio" if parser.parse_args().trio else "asyncio"
    if backend == "trio" and importlib.util.find_spec("trio") is None:
        sys.exit("Trio is missing: python -m pip install 'isolated-workers[trio]'")
    anyio.run(main, *args, backend=backend)
