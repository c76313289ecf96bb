"""Serializers: JSON, MessagePack, restricted pickle and a custom wrapper, over
real workers; mismatches refused at the handshake on both sides."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import anyio
import pytest

from isolated_workers import (
    JsonSerializer,
    MsgpackSerializer,
    PickleSerializer,
    ProtocolError,
    Serializer,
    SerializerMismatchError,
    Timeouts,
    open_worker,
)
from isolated_workers._wire._protocol import decode_body, encode_body
from tests._util import GUARD
from tests.workers.ext_worker import ReversingSerializer, make_serializer
from tests.workers.messages import Echo, Echoed, Fail, Messages

NAMES = ["json", "msgpack", "pickle", "reversed"]


@pytest.mark.parametrize("name", NAMES)
async def test_round_trip_on_every_serializer(
    anyio_backend: object, worker_backend: str, name: str
) -> None:
    """Nested payloads with bytes, None and errors cross each serializer intact."""
    message = Echo(1, bytes(range(256)), items=[1, -2, 2**62], label="é€")
    with anyio.fail_after(GUARD):
        async with open_worker(
            "tests.workers.ext_worker",
            messages=Messages,
            backend=worker_backend,
            startup_data={"serializer": name},
            serializer=make_serializer(name),
        ) as client:
            result = await client.send(message)
            assert result == Echoed(1, bytes(range(256)), [1, -2, 2**62], "é€")
            assert type(result.data) is bytes
            assert await client.send(Echo(0)) == Echoed(0)
            with pytest.raises(ValueError, match="broken"):
                await client.send(Fail(text="broken"))


@pytest.mark.parametrize("name", ["msgpack", "pickle"])
async def test_binary_serializers_carry_bytes_without_base64(
    anyio_backend: object, name: str
) -> None:
    """300 kB of bytes fit a 310 kB frame limit raw; as base64 (JSON) they do not."""
    blob = os.urandom(300_000)
    options: dict[str, Any] = {"max_frame_size": 310_000}
    with anyio.fail_after(GUARD):
        async with open_worker(
            "tests.workers.ext_worker",
            messages=Messages,
            startup_data={"serializer": name},
            serializer=make_serializer(name),
            **options,
        ) as client:
            assert (await client.send(Echo(0, blob))).data == blob
        async with open_worker(
            "tests.workers.ext_worker", messages=Messages, **options
        ) as client:
            with pytest.raises(ProtocolError, match="exceeds max_frame_size"):
                await client.send(Echo(0, blob))


@pytest.mark.parametrize(
    ("host", "worker"), [("json", "msgpack"), ("msgpack", "json"), ("pickle", "json")]
)
async def test_mismatch_is_refused_on_both_sides(
    anyio_backend: object, host: str, worker: str
) -> None:
    """C11: the host raises SerializerMismatchError naming both serializers
    within the startup timeout, and so does the worker."""
    with anyio.fail_after(GUARD):
        with pytest.raises(SerializerMismatchError) as caught:
            async with open_worker(
                "tests.workers.ext_worker",
                messages=Messages,
                startup_data={"serializer": worker},
                serializer=make_serializer(host),
                timeouts=Timeouts(startup=10),
                output="capture",
            ):
                pass
    assert f"the host uses serializer {host!r}, the worker {worker!r}" in str(
        caught.value
    )
    # The worker raised it too: its traceback is on the stderr the error quotes.
    assert "SerializerMismatchError" in "\n".join(caught.value.__notes__)


def test_pickle_refuses_every_global() -> None:
    """D13: the pickle serializer builds plain data only; a pickle naming a
    class or function (here one that would create a file) is refused."""
    serializer = PickleSerializer()
    assert serializer.loads(serializer.dumps({"a": [1, b"x", None]})) == {
        "a": [1, b"x", None]
    }

    class Canary:
        def __reduce__(self) -> tuple[Any, ...]:
            return (Path("canary").touch, ())

    for evil in (pickle.dumps(os.getcwd), pickle.dumps(Canary())):
        with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
            serializer.loads(evil)
        with pytest.raises(ProtocolError, match="undecodable"):
            decode_body(serializer, evil)
    assert not Path("canary").exists()


def test_pickle_docstring_warns() -> None:
    """D13: PickleSerializer's docstring says why it is unsafe with untrusted peers."""
    doc = PickleSerializer.__doc__ or ""
    assert "Warning" in doc
    assert "trust" in doc
    assert "run any code" in doc
    assert JsonSerializer().name == "json"  # and JSON is the default (test_host)


@pytest.mark.parametrize("name", NAMES)
def test_deep_nesting_is_a_protocol_error(name: str) -> None:
    """C10 at the serializer level: 100 000 levels fail to encode, and (for the
    recursive decoders) to decode, with ProtocolError, never RecursionError."""
    serializer = make_serializer(name)
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ProtocolError):
        encode_body(serializer, "Echo", deep)
    documents = {
        "json": b"[" * 100_000 + b"]" * 100_000,
        "msgpack": b"\x91" * 100_000 + b"\x90",
        "reversed": (b"\x91" * 100_000 + b"\x90")[::-1],
    }
    if name in documents:
        with pytest.raises(ProtocolError):
            decode_body(serializer, documents[name])


def test_msgpack_rejects_non_string_keys_and_trailing_bytes() -> None:
    """Malformed MessagePack bodies are ProtocolErrors, not crashes."""
    serializer = MsgpackSerializer()
    for body in (
        b"\x81\x01\x02",  # {1: 2}
        serializer.dumps(["Echo", {}, {}]) + b"\x00",
        b"\xc1",  # never used
        b"",
    ):
        with pytest.raises(ProtocolError):
            decode_body(serializer, body)


def test_custom_serializer_names_are_compared() -> None:
    """A wrapper takes a name of its own, so both sides must wrap alike."""
    wrapped = ReversingSerializer(JsonSerializer())
    assert wrapped.name == "reversed+json"
    assert repr(wrapped) == "ReversingSerializer(name='reversed+json')"
    assert isinstance(wrapped, Serializer)


class BytesOnly(JsonSerializer):
    """A serializer whose loads insists on bytes, as a custom one may."""

    name = "bytes-only"
    accepts_buffers = False

    def loads(self, data: bytes) -> Any:
        assert type(data) is bytes
        return super().loads(data)


@pytest.mark.parametrize("serializer", [JsonSerializer(), BytesOnly()], ids=repr)
def test_a_large_body_reaches_loads_as_the_serializer_accepts(
    serializer: JsonSerializer,
) -> None:
    """A large frame's body is a bytearray: serializers with accepts_buffers take
    it as it is, the others get bytes."""
    body = bytearray(encode_body(JsonSerializer(), "Echo", {"text": "x" * 100_000}))
    assert decode_body(serializer, body) == ("Echo", {"text": "x" * 100_000}, None)


@pytest.mark.parametrize("size", [10, 5 * 1024 * 1024])
def test_msgpack_encodes_small_and_large_alike(size: int) -> None:
    """Small messages are copied out of the packer, large ones hand its buffer
    over; either way the bytes are the same, and dumps returns bytes."""
    msgpack = pytest.importorskip("msgpack")
    serializer = MsgpackSerializer()
    obj = ["Echo", {"data": b"x" * size}, None]
    for _ in range(2):  # the packer is reused after a small message, not a large
        encoded = encode_body(serializer, "Echo", {"data": b"x" * size})
        assert bytes(encoded) == msgpack.packb(obj, use_bin_type=True)
    assert type(serializer.dumps(obj)) is bytes
