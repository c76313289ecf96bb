"""Serializers turn plain data (dicts, lists, scalars, bytes) into bytes and back."""

from __future__ import annotations

import base64
import json
from typing import Any, cast

__all__ = ["JsonSerializer", "Serializer"]


class Serializer:
    """Base class of serializers.

    A serializer turns the plain data the library hands it (dicts with str
    keys, lists, str, int, float, bool, None and bytes) into bytes and back.
    Host and worker must use serializers with the same `name`; the handshake
    checks it.

    Subclass it to plug in another format, or to wrap another serializer (to
    compress, say) under a name of its own.
    """

    #: Compared at the handshake; host and worker must agree on it.
    name: str = ""

    def dumps(self, obj: Any) -> bytes:
        """Encode plain data as bytes."""
        raise NotImplementedError

    def loads(self, data: bytes) -> Any:
        """Decode bytes made by `dumps`."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def bytes_as_base64(obj: object) -> str:
    """JSON's ``default=``: bytes as base64 text; anything else is refused."""
    if isinstance(obj, bytes | bytearray | memoryview):
        return base64.b64encode(cast("bytes", obj)).decode("ascii")
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


class JsonSerializer(Serializer):
    """JSON, the default. `bytes` travel as base64 text.

    A bytes value comes back as bytes where the declared type says `bytes`,
    and as base64 text where the type is not declared (``Any``, untyped
    startup data).
    """

    name = "json"

    def __init__(self) -> None:
        self._encoder = json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), default=bytes_as_base64
        )
        self._decoder = json.JSONDecoder()

    def dumps(self, obj: Any) -> bytes:
        return self._encoder.encode(obj).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        return self._decoder.decode(str(data, "utf-8"))
