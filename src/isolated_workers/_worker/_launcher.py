"""Start a worker whose stdin and stdout carry the protocol (`PipeTransport`).

Run as ``python -m isolated_workers._worker._launcher (-m MODULE | SCRIPT) [ARGS...]``.
Before any of the worker's own code runs, the pipes move to descriptors of
their own; stdin then reads ``/dev/null`` and stdout writes to stderr, so that
nothing the worker prints, from Python or from C, can reach the protocol.
"""

from __future__ import annotations

import os
import runpy
import sys

from .._wire import _bootstrap


def _take_stdio() -> None:
    sys.stdout.flush()
    _bootstrap.stdio_channel = (os.dup(0), os.dup(1))  # not inheritable
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)


def main() -> None:
    _take_stdio()
    args = sys.argv[1:]
    if args[:1] == ["-m"]:
        sys.argv = args[1:]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    else:  # as ``python SCRIPT`` does: its real directory first on the path
        sys.argv = args
        sys.path[0] = os.path.dirname(os.path.realpath(args[0]))
        runpy.run_path(os.path.abspath(args[0]), run_name="__main__")


if __name__ == "__main__":
    main()
