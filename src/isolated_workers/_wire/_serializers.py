"""Serializers turn plain data (dicts, lists, scalars, bytes) into bytes and back."""

from __future__ import annotations

import base64
import importlib
import io
import json
import json.encoder
import json.scanner
import pickle
from collections.abc import Callable
from typing import Any, NoReturn, cast

__all__ = ["JsonSerializer", "MsgpackSerializer", "PickleSerializer", "Serializer"]


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
    #: Whether `loads` takes a `bytearray` as well as `bytes`: a large message
    #: is then decoded from the buffer it was read into rather than a copy.
    accepts_buffers: bool = False

    def dumps(self, obj: Any) -> bytes:
        """Encode plain data as bytes."""
        raise NotImplementedError

    def loads(self, data: bytes) -> Any:
        """Decode bytes made by `dumps`."""
        raise NotImplementedError

    def _encode(self, obj: Any) -> bytes | memoryview:
        """`dumps` as the library calls it: a serializer that can hand over
        its own buffer, rather than a copy of it, does so here."""
        return self.dumps(obj)

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
    accepts_buffers = True

    def __init__(self) -> None:
        encoder = json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), default=bytes_as_base64
        )
        decoder = json.JSONDecoder()
        self._encode_text: Callable[[Any], str] = encoder.encode
        self._decode_text: Callable[[str], Any] = decoder.decode
        self._scan: Callable[[str, int], tuple[Any, int]] | None = None
        # The json module's C parts, made once: `encode` and `decode` remake
        # or wrap them on every call, which costs a small message as much as
        # the work. Without circular checks: a cycle ends in RecursionError.
        c_encoder = getattr(json.encoder, "c_make_encoder", None)
        c_scanner = getattr(json.scanner, "c_make_scanner", None)
        if c_encoder is not None and c_scanner is not None:
            encode = c_encoder(
                None,
                bytes_as_base64,
                json.encoder.encode_basestring,
                None,
                ":",
                ",",
                False,
                False,
                True,
            )
            self._encode_text = lambda obj: "".join(encode(obj, 0))
            self._scan = c_scanner(decoder)

    def dumps(self, obj: Any) -> bytes:
        return self._encode_text(obj).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        text = str(data, "utf-8")
        if self._scan is not None:
            try:
                obj, end = self._scan(text, 0)
            except StopIteration:  # not a JSON value here: let decode say why
                pass
            else:
                if end == len(text):
                    return obj
        return self._decode_text(text)


class MsgpackSerializer(Serializer):
    """MessagePack: compact and fast; `bytes` travel as raw binary.

    Needs the ``msgpack`` package: ``pip install isolated-workers[msgpack]``.
    """

    name = "msgpack"
    accepts_buffers = True

    def __init__(self) -> None:
        try:
            msgpack: Any = importlib.import_module("msgpack")  # an optional extra
        except ImportError:
            raise ImportError(
                "MsgpackSerializer needs the msgpack package: "
                "pip install isolated-workers[msgpack]"
            ) from None
        self._new_packer: Callable[[], Any] = lambda: msgpack.Packer(
            use_bin_type=True, datetime=False, autoreset=False
        )
        self._packer = self._new_packer()
        self._unpackb = msgpack.unpackb

    def dumps(self, obj: Any) -> bytes:
        return bytes(self._encode(obj))

    def _encode(self, obj: Any) -> bytes | memoryview:
        packer = self._packer
        try:
            packer.pack(obj)
            if packer.getbuffer().nbytes <= _OWN_BUFFER:
                data: bytes = packer.bytes()
                return data
            # Large: hand the packer's buffer over instead of copying it, and
            # start afresh, so that the buffer does not stay allocated.
            self._packer = self._new_packer()
            view: memoryview = packer.getbuffer()
            return view
        finally:
            if packer is self._packer:
                packer.reset()

    def loads(self, data: bytes) -> Any:
        # Sizes are bounded by the frame already; maps keep str keys only.
        return self._unpackb(data, raw=False, strict_map_key=True)


#: Messages up to this size are copied out of the msgpack packer, which keeps
#: its buffer for the next one.
_OWN_BUFFER = 4 * 1024 * 1024


class PickleSerializer(Serializer):
    """Pickle, for peers you trust completely; never the default.

    Warning:
        Unpickling runs a program written by the peer. A peer that can send
        arbitrary pickles can, with an ordinary unpickler, run any code in
        your process. This serializer only ever carries the plain data the
        library hands it, so it refuses every class or function a pickle
        names, which closes that door; but the pickle machinery remains a
        large attack surface, and shared references let a small pickle
        unfold into an enormous structure. Both sides authenticate before any
        message is decoded, so only your own worker or host can send one;
        choose this serializer only when you trust the code on both sides,
        and prefer `MsgpackSerializer` for speed with `bytes`.

    `bytes` travel as raw binary, with pickle protocol 5.
    """

    name = "pickle"
    accepts_buffers = True

    def dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=5)

    def loads(self, data: bytes) -> Any:
        return _PlainUnpickler(io.BytesIO(data)).load()


class _PlainUnpickler(pickle.Unpickler):
    """Builds plain data only: any reference to a class or function is refused."""

    def find_class(self, module: str, name: str) -> NoReturn:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
