"""Small helpers shared by host and worker."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from typing import Any, NoReturn

from ._wire._serializers import bytes_as_base64

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "current_backend",
    "json_dumps",
    "json_loads",
    "log",
    "raise_single",
]

DEFAULT_MAX_FRAME_SIZE = 64 * 1024 * 1024


def json_dumps(obj: Any) -> bytes:
    """The handshake's own encoding, independent of the message serializer."""
    return json.dumps(obj, separators=(",", ":"), default=bytes_as_base64).encode()


def json_loads(data: bytes) -> Any:
    return json.loads(data)


def current_backend(*, uvloop: bool = False) -> str:
    """Name of the running event loop's library: ``"trio"`` or ``"asyncio"``;
    with ``uvloop``, ``"uvloop"`` for an asyncio loop that uvloop runs."""
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass
        else:
            return "trio"
    if uvloop and "uvloop" in sys.modules:
        import asyncio

        if type(asyncio.get_running_loop()).__module__.startswith("uvloop"):
            return "uvloop"
    return "asyncio"


def raise_single(group: BaseExceptionGroup[Any]) -> NoReturn:
    """Re-raise the only exception of a task group's group, else the group.

    The library's background tasks never raise, so a group from one of its
    task groups holds the user's own exception (or a cancellation) alone.
    """
    if len(group.exceptions) != 1:
        raise group
    error = group.exceptions[0]
    context = error.__context__
    try:
        raise error
    finally:
        error.__context__ = context  # not the group we are unwrapping
        del error, group


def log(
    logger: logging.Logger, level: int, msg: str, *args: Any, **kwargs: Any
) -> None:
    """`Logger.log` that never raises: a log handler that fails costs only its
    line, reported on stderr the way `logging` reports its own handlers' errors.

    The library logs from its background tasks, where an exception would end
    the task and cancel the user's block.
    """
    try:
        logger.log(level, msg, *args, stacklevel=2, **kwargs)
    except Exception:
        if logging.raiseExceptions and sys.stderr is not None:
            try:
                sys.stderr.write("--- Logging error ---\n")
                traceback.print_exc(file=sys.stderr)
            except Exception:  # stderr closed or broken: nothing left to tell
                pass
