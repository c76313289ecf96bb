"""Message bodies: what the serializer carries inside a frame.

Every body is ``[wire_name, payload, meta]`` in plain data. Errors travel as
a payload describing the exception, never as a pickled exception.
"""

from __future__ import annotations

import struct
import traceback
from typing import Any, cast

from .._errors import ProtocolError, RemoteError
from ._codec import unstructure
from ._serializers import Serializer
from ._streams import Buffer

__all__ = [
    "CREDIT",
    "STREAM_WINDOW",
    "decode_body",
    "describe_exception",
    "encode_body",
    "error_from_payload",
]

#: How many items of a stream a worker may send ahead of what the host took;
#: the host grants more with CREDIT frames as its consumer takes them.
STREAM_WINDOW = 16
#: A CREDIT frame's body: the number of items granted.
CREDIT = struct.Struct("!I")


def encode_body(
    serializer: Serializer, name: str, payload: Any, meta: Any = None
) -> bytes | memoryview:
    """Serialize one message; any failure becomes a `ProtocolError`."""
    try:
        return serializer._encode([name, unstructure(payload), meta])  # pyright: ignore[reportPrivateUsage]
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise ProtocolError(f"cannot serialize {name!r}: {exc}") from exc


def decode_body(serializer: Serializer, body: Buffer) -> tuple[str, Any, Any]:
    """Parse one message; undecodable or misshapen bodies raise `ProtocolError`."""
    if not isinstance(body, bytes) and not serializer.accepts_buffers:
        body = bytes(body)
    try:
        # A bytearray reaches only the serializers that take one.
        decoded = serializer.loads(cast("bytes", body))
    except RecursionError:
        raise ProtocolError("message nested too deeply to decode") from None
    except Exception as exc:
        raise ProtocolError(
            f"undecodable message ({type(exc).__name__}: {exc})"
        ) from None
    parts = cast("list[Any]", decoded)
    if type(parts) is not list or len(parts) != 3:
        raise ProtocolError("malformed message: expected [type, payload, meta]")
    if not isinstance(parts[0], str):
        raise ProtocolError("malformed message: its type is not a string")
    return parts[0], parts[1], parts[2]


def describe_exception(exc: BaseException, *, protocol: bool = False) -> dict[str, Any]:
    """Plain-data description of an exception raised in the worker.

    ``protocol`` marks the worker's own refusals (a bad or unknown message), which
    the host raises as `ProtocolError` rather than `RemoteError`.
    """
    cls = type(exc)
    code = getattr(exc, "errno", None)
    if code is None:
        code = getattr(exc, "code", None)
    if not isinstance(code, int | str) or isinstance(code, bool):
        code = None
    return {
        "type": f"{cls.__module__}.{cls.__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "code": code,
        "protocol": protocol,
    }


def error_from_payload(payload: Any, name: str) -> Exception:
    """Rebuild the host-side error for request ``name``; never raises."""
    if not isinstance(payload, dict):
        return ProtocolError(f"malformed error reply to {name!r}")
    fields = cast("dict[str, Any]", payload)
    message = str(fields.get("message", ""))
    if fields.get("protocol") is True:
        return ProtocolError(message)
    code = fields.get("code")
    return RemoteError.build(
        str(fields.get("type", "builtins.Exception")),
        message,
        str(fields.get("traceback", "")),
        code if isinstance(code, int | str) and not isinstance(code, bool) else None,
    )
