"""Fuzzing with Hypothesis: the frame decoder, the handshake and the worker's server.

Reliability spec C2, C4 and C16, and D4's bound on what an unauthenticated peer
gets read. Every test is deterministic (``derandomize=True``, no example
database) and bounds each example with a deadline (`anyio.fail_after`,
`anyio.move_on_after` or a socket timeout), so a hang fails the example.

- `FrameReader` on in-memory streams cut into arbitrary chunks, checked against
  a reference decoder written here.
- `host_authenticate` and `worker_authenticate` against peers that do not hold
  the secret (and, as a control, against one that does).
- C16: generated frame streams (valid requests of ``tests/workers/fuzz_messages``,
  bad bodies, wrong kinds, duplicate and cancelled transactions, truncated and
  oversized tails) fed to the worker's `Server` in-process over a socketpair,
  then to one real worker process. The server may only answer as the model
  says, refuse with `ProtocolError` descriptions, or stop cleanly; a valid
  request written after the garbage still gets its own answer.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import itertools
import json
import math
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, Literal, cast, get_args

import anyio
import anyio.lowlevel
import attrs
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from isolated_workers import JsonSerializer, ProtocolError
from isolated_workers._util import json_dumps
from isolated_workers._wire._bootstrap import BOOTSTRAP_ENV, write_bootstrap
from isolated_workers._wire._framing import HEADER, FrameReader, Kind, encode_frame
from isolated_workers._wire._handshake import (
    HOST_GREETING_SIZE,
    MAGIC,
    WORKER_REPLY_SIZE,
    AuthenticationError,
    host_authenticate,
    receive_exactly,
    recv_exactly,
    worker_authenticate,
)
from isolated_workers._wire._protocol import error_from_payload
from isolated_workers._wire._streams import SocketStream
from isolated_workers._worker._server import Server
from isolated_workers._worker._session import Session
from tests._util import GUARD, HAVE_TRIO, MemoryReceive, MemorySend, RecordingStream
from tests.workers.fuzz_messages import MAX_FRAME_SIZE, Messages, make_handlers

pytestmark = pytest.mark.anyio

Frame = tuple[int, int, bytes | bytearray]

READ_SIZE = 256 * 1024  # FrameReader's read size
U64 = 2**64 - 1
#: Per-example deadlock guard, in seconds (generous: the machine is shared).
ASYNCIO_ONLY = pytest.mark.parametrize("anyio_backend", ["asyncio"])


def fuzz(max_examples: int, **options: Any) -> settings:
    """Deterministic settings: the same examples on every run, no database."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        # check_leaks (autouse, function-scoped) checks the whole test at once.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
        **options,
    )


#: Where to cut a byte string, drawn before its length is known: each cut is
#: taken modulo the length (see `split`).
CUTS = st.frozensets(st.integers(1, 2**20), max_size=16)


def split(blob: bytes, cuts: frozenset[int]) -> list[bytes]:
    """``blob`` cut into non-empty chunks at ``cut % len(blob)`` for each cut."""
    points = sorted({cut % len(blob) for cut in cuts} - {0}) if blob else []
    bounds = [0, *points, len(blob)]
    return [blob[a:b] for a, b in itertools.pairwise(bounds) if a < b]


def reference_decode(data: bytes, limit: int) -> tuple[list[Frame], int | None, int]:
    """The framing as documented: ``(frames, offset of the first oversized
    header or None, bytes left over after the last complete frame)``."""
    frames: list[Frame] = []
    offset = 0
    while len(data) - offset >= HEADER.size:
        size, kind, tx = HEADER.unpack_from(data, offset)
        if size > limit:
            return frames, offset, len(data) - offset
        start = offset + HEADER.size
        if len(data) - start < size:
            break
        frames.append((kind, tx, data[start : start + size]))
        offset = start + size
    return frames, None, len(data) - offset


# ----------------------------------------------------------------- framing


@attrs.define
class Decoded:
    frames: list[Frame]
    outcome: BaseException
    partial: bool
    delivered: int


async def decode(chunks: list[bytes], limit: int, max_chunk: int | None) -> Decoded:
    """Feed ``chunks`` then EOF to a `FrameReader`; read until it raises.

    Only `ProtocolError` and `anyio.EndOfStream` are caught: any other
    exception fails the example.
    """
    send_side, receive_side = anyio.create_memory_object_stream[bytes](math.inf)
    sender, receiver = MemorySend(send_side), MemoryReceive(receive_side, max_chunk)
    async with sender, receiver:
        for chunk in chunks:
            await sender.send(chunk)
        await sender.send_eof()
        reader = FrameReader(receiver, limit)
        frames: list[Frame] = []
        with anyio.fail_after(GUARD):
            while True:
                try:
                    frames += await reader.receive()
                except (ProtocolError, anyio.EndOfStream) as exc:
                    return Decoded(
                        frames, exc, reader.has_partial_frame, receiver.delivered
                    )


FRAMES = st.tuples(
    st.integers(0, 255), st.integers(0, U64), st.binary(max_size=600)
).map(lambda f: (f[0], f[1], bytes(f[2])))
MAX_CHUNKS = st.none() | st.integers(1, 64)


@ASYNCIO_ONLY
@fuzz(600)
@given(data=st.data())
async def test_decoder_round_trip(data: st.DataObject) -> None:
    """Encoded frames cut into any chunks decode to exactly those frames, then a
    clean EOF."""
    frames = data.draw(st.lists(FRAMES, max_size=12))
    biggest = max((len(body) for _, _, body in frames), default=0)
    limit = data.draw(
        st.just(biggest)
        | st.integers(biggest, biggest + 16)
        | st.integers(biggest, U64 >> 32)
    )
    blob = b"".join(encode_frame(k, tx, body, limit) for k, tx, body in frames)
    result = await decode(split(blob, data.draw(CUTS)), limit, data.draw(MAX_CHUNKS))
    assert result.frames == frames
    assert isinstance(result.outcome, anyio.EndOfStream)
    assert not result.partial
    assert result.delivered == len(blob)


GARBAGE_PIECES = st.one_of(
    st.binary(max_size=64),
    FRAMES.map(lambda f: HEADER.pack(len(f[2]), f[0], f[1]) + f[2]),
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 255), st.integers(0, U64)).map(
        lambda h: HEADER.pack(*h)
    ),
)


@ASYNCIO_ONLY
@fuzz(1000)
@given(data=st.data())
async def test_decoder_on_garbage(data: st.DataObject) -> None:
    """Arbitrary bytes in arbitrary chunks: the reader yields what the reference
    decoder finds, then `ProtocolError` (oversized header) or EOF, with
    ``has_partial_frame`` telling a truncated frame from a clean end."""
    blob = b"".join(data.draw(st.lists(GARBAGE_PIECES, max_size=8)))
    limit = data.draw(st.integers(0, 300) | st.integers(0, 2**32 - 1))
    result = await decode(split(blob, data.draw(CUTS)), limit, data.draw(MAX_CHUNKS))
    expected, oversized_at, left = reference_decode(blob, limit)
    if oversized_at is None:
        assert isinstance(result.outcome, anyio.EndOfStream)
        assert result.frames == expected
        assert result.partial == (left > 0)
        assert result.delivered == len(blob)
    else:
        # Frames parsed in the read that met the bad header are not returned.
        assert isinstance(result.outcome, ProtocolError)
        assert result.frames == expected[: len(result.frames)]
        size = HEADER.unpack_from(blob, oversized_at)[0]
        assert str(result.outcome) == (
            f"incoming frame of {size} bytes exceeds max_frame_size ({limit})"
        )
        assert result.delivered < oversized_at + HEADER.size + READ_SIZE


@ASYNCIO_ONLY
@fuzz(400)
@given(data=st.data())
async def test_oversized_header_refused_before_its_body(data: st.DataObject) -> None:
    """C2: after valid frames, a header announcing more than max_frame_size is
    refused with at most one read past it, however much body is available."""
    limit = data.draw(st.integers(0, 4096))
    prefix = data.draw(
        st.lists(
            st.tuples(
                st.integers(0, 255),
                st.integers(0, U64),
                st.binary(max_size=min(limit, 200)),
            ),
            max_size=4,
        )
    )
    announced = data.draw(st.integers(limit + 1, 2**32 - 1))
    header = HEADER.pack(announced, data.draw(st.integers(0, 255)), 0)
    head = b"".join(HEADER.pack(len(b), k, tx) + b for k, tx, b in prefix) + header
    body = bytes(data.draw(st.integers(0, 2 * READ_SIZE)))
    chunks = [*split(head, data.draw(CUTS)), *split(body, data.draw(CUTS))]
    result = await decode(
        chunks, limit, data.draw(st.none() | st.integers(1, READ_SIZE))
    )
    assert isinstance(result.outcome, ProtocolError)
    assert f"incoming frame of {announced} bytes" in str(result.outcome)
    assert (
        result.frames
        == [(k, tx, bytes(b)) for k, tx, b in prefix][: len(result.frames)]
    )
    assert result.delivered < len(head) + READ_SIZE


# ---------------------------------------------------------------- handshake


def mac(secret: bytes, *parts: bytes) -> bytes:
    """The handshake's MAC, computed independently of the library."""
    return hmac.new(secret, b"".join(parts), hashlib.sha256).digest()


def flip_bit(data: bytes, bit: int) -> bytes:
    bit %= 8 * len(data)
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@contextlib.asynccontextmanager
async def socket_streams() -> AsyncGenerator[tuple[SocketStream, SocketStream]]:
    """A connected pair of the library's `SocketStream`."""
    a, b = socket.socketpair()
    async with SocketStream(a) as left, SocketStream(b) as right:
        yield left, right


SECRETS = st.binary(min_size=32, max_size=32)


def draw_secrets(data: st.DataObject) -> tuple[bytes, bytes]:
    """The worker's secret, and another one."""
    secret, other = data.draw(SECRETS), data.draw(SECRETS)
    return secret, other if other != secret else flip_bit(other, 0)


HOST_REPLY_MODES = [
    "random",
    "wrong-secret",
    "altered",
    "reflected",
    "short",
    "correct",
]


@ASYNCIO_ONLY
@fuzz(300)
@given(data=st.data())
async def test_host_authenticate_against_arbitrary_peers(data: st.DataObject) -> None:
    """D4/D5: a peer answering the challenge with anything but the right MAC fails
    with `AuthenticationError` or EOF, after ≤ 64 bytes read and no proof sent."""
    secret, other = draw_secrets(data)
    mode = data.draw(st.sampled_from(HOST_REPLY_MODES))
    noise = data.draw(st.binary(max_size=100))
    nonce = data.draw(st.binary(min_size=32, max_size=32))
    cut = data.draw(st.integers(0, WORKER_REPLY_SIZE - 1))
    bit = data.draw(st.integers(0, 255))
    trailing = data.draw(st.binary(max_size=64))
    cuts = data.draw(CUTS)
    proofs: list[bytes] = []
    replies: list[bytes] = []

    async def peer(stream: SocketStream) -> None:
        greeting = await receive_exactly(stream, HOST_GREETING_SIZE)
        host_nonce = greeting[len(MAGIC) :]
        right = mac(secret, b"worker", host_nonce) + nonce
        reply = {
            "random": noise,
            "wrong-secret": mac(other, b"worker", host_nonce) + nonce,
            "altered": flip_bit(right, bit),
            "reflected": mac(secret, b"host", host_nonce) + nonce,
            "short": right[:cut],
            "correct": right,
        }[mode]
        if mode != "short":
            reply += trailing
        replies.append(reply)
        for chunk in split(reply, cuts):
            await stream.send(chunk)
        if mode == "correct":
            proofs.append(await receive_exactly(stream, 32))
            proofs.append(mac(secret, b"host", nonce, host_nonce))
        await stream.send_eof()

    with anyio.fail_after(GUARD):
        async with socket_streams() as (host_end, peer_end):
            recorder = RecordingStream(host_end)
            error: BaseException | None = None
            async with anyio.create_task_group() as tg:
                tg.start_soon(peer, peer_end)
                try:
                    await host_authenticate(recorder, secret)
                except (AuthenticationError, anyio.EndOfStream) as exc:
                    error = exc
    assert len(recorder.received) <= WORKER_REPLY_SIZE
    assert recorder.sent[: len(MAGIC)] == MAGIC
    if mode == "correct":
        assert error is None
        assert proofs[0] == proofs[1]
        return
    assert len(recorder.sent) == HOST_GREETING_SIZE  # no proof for a stranger
    short = len(replies[0]) < WORKER_REPLY_SIZE
    assert isinstance(error, anyio.EndOfStream if short else AuthenticationError)


WORKER_PROOF_MODES = [
    "random",
    "wrong-secret",
    "altered",
    "reflected",
    "swapped",
    "short",
    "correct",
]


def unread_bytes(sock: socket.socket) -> int:
    """Bytes received by ``sock`` that nobody has read yet (0 once closed)."""
    if sock.fileno() < 0:
        return 0
    answer = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    count: int = struct.unpack("i", answer)[0]
    return count


@fuzz(300)
@given(data=st.data())
def test_worker_authenticate_against_arbitrary_hosts(data: st.DataObject) -> None:
    """A fake host without the right greeting or proof makes `worker_authenticate`
    raise `AuthenticationError` or `ConnectionError`; the worker reads at most
    the greeting, plus the 32-byte proof once the greeting has the magic, and
    answers nothing to a greeting without it."""
    secret, other = draw_secrets(data)
    with_magic = data.draw(st.booleans())
    if with_magic:
        greeting = MAGIC + data.draw(st.binary(min_size=32, max_size=32))
    else:  # anything without the magic, short (EOF) or long enough to check
        greeting = data.draw(
            st.binary(max_size=100).filter(lambda g: not g.startswith(MAGIC))
        )
    mode = data.draw(st.sampled_from(WORKER_PROOF_MODES))
    noise = data.draw(st.binary(max_size=40))
    cut = data.draw(st.integers(0, 31))
    bit = data.draw(st.integers(0, 255))
    trailing = data.draw(st.binary(max_size=64))
    cuts = data.draw(CUTS)
    outcome: list[BaseException | None] = []

    def worker_side(sock: socket.socket) -> None:
        try:
            worker_authenticate(sock, secret)
        except (AuthenticationError, ConnectionError) as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    host, worker = socket.socketpair()
    with host, worker:
        host.settimeout(GUARD)
        worker.settimeout(GUARD)
        thread = threading.Thread(target=worker_side, args=(worker,))
        thread.start()
        try:
            host.sendall(greeting)
            reply = b""
            proof = b""
            if with_magic:
                reply = recv_exactly(host, WORKER_REPLY_SIZE)
                worker_mac, worker_nonce = reply[:32], reply[32:]
                host_nonce = greeting[len(MAGIC) :]
                right = mac(secret, b"host", worker_nonce, host_nonce)
                proof = {
                    "random": noise + trailing,
                    "wrong-secret": mac(other, b"host", worker_nonce, host_nonce),
                    "altered": flip_bit(right, bit),
                    "reflected": worker_mac,
                    "swapped": mac(secret, b"host", host_nonce, worker_nonce),
                    "short": right[:cut],
                    "correct": right,
                }[mode]
                if mode not in ("random", "short"):
                    proof += trailing
                for chunk in split(proof, cuts):
                    host.sendall(chunk)
            host.shutdown(socket.SHUT_WR)
        except BaseException:
            host.shutdown(socket.SHUT_RDWR)  # unblock the worker side
            raise
        finally:
            thread.join(GUARD)
        assert not thread.is_alive(), "worker_authenticate hangs"
        consumed = len(greeting) + len(proof) - unread_bytes(worker)
        worker.shutdown(socket.SHUT_WR)
        leftover = b"".join(iter(lambda: host.recv(4096), b""))
    (error,) = outcome
    assert leftover == b""  # nothing beyond the one reply
    if not with_magic:
        short = len(greeting) < HOST_GREETING_SIZE
        assert isinstance(error, ConnectionError if short else AuthenticationError)
        assert reply == b""
        assert consumed <= HOST_GREETING_SIZE
        return
    assert consumed <= HOST_GREETING_SIZE + 32
    if mode == "correct":
        assert error is None
    else:
        short = len(proof) < 32
        assert isinstance(error, ConnectionError if short else AuthenticationError)


# --------------------------------------------------- C16: generated streams

TEXT = st.text(max_size=8)
INTS = st.integers(-(2**70), 2**70)
FLOATS = st.floats(allow_nan=False) | st.integers(-(2**53), 2**53)
JSON = st.recursive(
    st.none() | st.booleans() | INTS | st.floats(allow_nan=False) | TEXT,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3)
    ),
    max_leaves=6,
)
METAS = st.none() | st.dictionaries(TEXT, TEXT, max_size=2)
BAD_METAS = st.one_of(
    INTS,
    TEXT,
    st.booleans(),
    st.lists(TEXT, max_size=2),
    st.dictionaries(TEXT, INTS | st.none(), min_size=1, max_size=2),
)


def is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


NOT_INT = st.one_of(
    st.booleans(), st.floats(), TEXT, st.none(), st.lists(INTS, max_size=2)
)
NOT_FLOAT = st.one_of(
    st.booleans(),
    TEXT,
    st.none(),
    st.lists(FLOATS, max_size=2),
    st.integers(10**309, 10**400),
    st.integers(-(10**400), -(10**309)),
)
NOT_STR = st.one_of(INTS, st.booleans(), st.none(), st.lists(TEXT, max_size=2))

#: Valid payloads, field by field: required fields, then optional ones.
FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "Mirror": {
        "text": TEXT,
        "blob": st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode()),
        "count": INTS,
        "ratio": FLOATS,
        "flag": st.booleans(),
        "color": st.sampled_from(["red", "green", 3]),
        "mode": st.sampled_from(["a", "b"]),
        "tags": st.lists(TEXT, max_size=3),
        "scores": st.dictionaries(TEXT, INTS, max_size=3),
    },
    "Add": {"a": INTS, "b": INTS},
    "Divide": {"a": FLOATS, "b": FLOATS | st.sampled_from([0, 0.0, -0.0])},
    "Count": {},
    "Hold": {"value": INTS, "until": INTS},
    "Note": {"value": INTS},
    "Release": {"upto": INTS},
}
OPTIONAL: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "Mirror": {
        "point": st.none() | st.fixed_dictionaries({"x": INTS, "y": FLOATS}),
        "pair": st.tuples(INTS, TEXT).map(list),
    },
}
#: Values that each field must refuse.
INVALID: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "Mirror": {
        "text": NOT_STR,
        "blob": st.one_of(
            TEXT.filter(lambda t: not is_base64(t)), INTS, st.none(), st.booleans()
        ),
        "count": NOT_INT,
        "ratio": NOT_FLOAT,
        "flag": st.one_of(INTS, TEXT, st.none(), st.floats()),
        "color": st.one_of(
            TEXT.filter(lambda t: t not in ("red", "green")),
            INTS.filter(lambda i: i != 3),
            st.none(),
            st.lists(INTS, max_size=2),
        ),
        "mode": st.one_of(TEXT.filter(lambda t: t not in ("a", "b")), INTS, st.none()),
        "tags": st.one_of(
            TEXT, INTS, st.none(), st.lists(NOT_STR, min_size=1, max_size=2)
        ),
        "scores": st.one_of(
            st.lists(INTS, max_size=2),
            TEXT,
            st.none(),
            st.dictionaries(TEXT, NOT_INT, min_size=1, max_size=2),
        ),
        "point": st.one_of(
            INTS,
            TEXT,
            st.lists(INTS, max_size=2),
            st.fixed_dictionaries({"x": NOT_INT, "y": FLOATS}),
            st.fixed_dictionaries({"y": FLOATS}),
        ),
        "pair": st.one_of(
            st.lists(INTS, max_size=1),
            st.tuples(INTS, TEXT, INTS).map(list),
            st.tuples(NOT_INT, TEXT).map(list),
            st.tuples(INTS, NOT_STR).map(list),
            TEXT,
            st.none(),
        ),
    },
    "Add": {"a": NOT_INT, "b": NOT_INT},
    "Divide": {"a": NOT_FLOAT, "b": NOT_FLOAT},
    "Hold": {"value": NOT_INT, "until": NOT_INT},
    "Note": {"value": NOT_INT},
    "Release": {"upto": NOT_INT},
}
REQUEST_NAMES = ("Mirror", "Add", "Divide", "Count", "Hold")
NOTIFICATION_NAMES = ("Note", "Release")
# Strategies are built once: building one per draw costs more than drawing.
PAYLOADS = {
    name: st.fixed_dictionaries(fields, optional=OPTIONAL.get(name, {}))
    for name, fields in FIELDS.items()
}


def body_of(name: Any, payload: Any, meta: Any, ascii_only: bool = False) -> bytes:
    """A body as a JSON serializer writes it: ``[type, payload, meta]``."""
    return json.dumps([name, payload, meta], ensure_ascii=ascii_only).encode()


def names_a_message(body: bytes, names: tuple[str, ...]) -> bool:
    """Whether ``body`` may decode to ``[name, ...]`` with a name of ``names``
    (a three-key object whose first key is such a name counts too)."""
    try:
        name, _, _ = json.loads(body)
    except (ValueError, TypeError):  # undecodable, or not three items
        return False
    return name in names


HOW = st.sampled_from(["replace", "drop", "extra", "not-a-dict", "meta"])
BAD_FIELD = {name: st.sampled_from(sorted(fields)) for name, fields in INVALID.items()}
REQUIRED_FIELD = {name: st.sampled_from(sorted(f)) for name, f in FIELDS.items() if f}


def not_a_field(name: str) -> st.SearchStrategy[str]:
    known = {*FIELDS[name], *OPTIONAL.get(name, {})}
    return TEXT.filter(lambda key: key not in known)


EXTRA_KEY = {name: not_a_field(name) for name in FIELDS}
NOT_A_DICT = st.one_of(INTS, TEXT, st.none(), st.lists(INTS, max_size=2))


@st.composite
def mutated(draw: st.DrawFn, names: st.SearchStrategy[str]) -> tuple[bytes, str]:
    """A body that the schema of a message of ``names`` refuses, and a word the
    refusal must contain (the field, the extra key or "meta"; "" if none)."""
    name = draw(names)
    payload: Any = dict(draw(PAYLOADS[name]))
    meta: Any = draw(METAS)
    how = draw(HOW)
    word = ""
    if how == "replace" and name in INVALID:
        word = draw(BAD_FIELD[name])
        payload[word] = draw(INVALID[name][word])
    elif how == "drop" and name in REQUIRED_FIELD:
        word = draw(REQUIRED_FIELD[name])
        del payload[word]
    elif how == "meta":
        meta = draw(BAD_METAS)
        word = "meta"
    elif how == "extra":
        key = draw(EXTRA_KEY[name])
        payload[key] = draw(JSON)
        word = repr(key)
    else:
        payload = draw(NOT_A_DICT)
    return body_of(name, payload, meta, draw(st.booleans())), word


def garbage_bodies(names: tuple[str, ...]) -> st.SearchStrategy[bytes]:
    """Bodies that name no message of ``names``: garbage, invalid UTF-8 or
    JSON, the wrong shape, an unknown type, a message of the other kind."""
    unknown = st.tuples(TEXT.filter(lambda n: n not in names), JSON, METAS)
    others = st.sampled_from([n for n in FIELDS if n not in names])
    return st.one_of(
        st.binary(max_size=40),
        TEXT.map(str.encode),
        JSON.map(lambda v: json.dumps(v).encode()),
        unknown.map(lambda t: body_of(*t)),
        others.flatmap(lambda n: PAYLOADS[n].map(lambda p: body_of(n, p, None))),
    ).filter(lambda b: not names_a_message(b, names))


GARBAGE_REQUESTS = garbage_bodies(REQUEST_NAMES)
SCHEMA_REQUESTS = mutated(st.sampled_from(REQUEST_NAMES))
BAD_NOTIFICATIONS = garbage_bodies(NOTIFICATION_NAMES) | mutated(
    st.sampled_from(NOTIFICATION_NAMES)
).map(lambda b: b[0])


def valid_request(name: str, payload: dict[str, Any]) -> tuple[str, Any]:
    """The expected outcome of a valid request: ``("result", value)`` or
    ``("error", exception type)``; Count's value is filled in later."""
    if name == "Mirror":
        return "result", {"point": None, "pair": [0, ""], **payload}
    if name == "Add":
        return "result", payload["a"] + payload["b"]
    if name == "Divide":
        try:
            return "result", float(payload["a"]) / float(payload["b"])
        except ArithmeticError as exc:
            return "error", f"builtins.{type(exc).__name__}"
    return "result", None


Role = Literal["reply", "refuse", "note", "hold", "release", "cancel", "ignore"]


@attrs.frozen
class Step:
    """One frame of a generated stream and what the worker must do with it."""

    role: Role
    kind: int
    tx: int
    body: bytes = b""  # fixed bodies; the others are built by `Conversation`
    name: str = ""
    payload: Any = None
    meta: Any = None
    outcome: str = ""  # "result" | "error" for "reply"
    value: Any = None  # the result, or the error type; a Hold's value
    word: str = ""  # what a refusal must contain


Tail = Literal["none", "shutdown", "other-kind", "truncated", "oversized", "garbage"]


@attrs.frozen
class Stream:
    steps: tuple[Step, ...]
    tail: Tail = "none"
    tail_bytes: bytes = b""
    cuts: frozenset[int] = frozenset()


TXS = st.integers(0, 40) | st.integers(0, U64)
STRIDES = st.sampled_from([1, 7, 2**32 + 1, 2**63 - 1])
OTHER_KINDS = st.sampled_from(
    [0, Kind.RESULT, Kind.ERROR, Kind.HELLO, Kind.READY]
) | st.integers(9, 255)
# Weighted by repetition: bad requests are where the bugs were.
CHOICES = st.lists(
    st.sampled_from(
        [
            *("request", "schema", "garbage", "note", "bad-note"),
            *("cancel", "hold", "release", "dup", "cancel-hold"),
            *("request", "schema", "garbage"),
        ]
    ),
    max_size=10,
)
VALID_NAMES = st.sampled_from(("Mirror", "Add", "Divide", "Count"))
TAILS: st.SearchStrategy[Tail] = st.sampled_from(get_args(Tail))
SMALL = st.binary(max_size=8)
OTHER_BODIES = (
    st.binary(max_size=24) | GARBAGE_REQUESTS | SCHEMA_REQUESTS.map(lambda b: b[0])
)
DUP_BODIES = OTHER_BODIES | PAYLOADS["Add"].map(lambda p: body_of("Add", p, None))
COUNT_BODY = body_of("Count", {}, None)


@st.composite
def streams(draw: st.DrawFn, *, tails: bool) -> Stream:
    """A stream of frames; with ``tails`` it may end in a way that stops the
    worker (SHUTDOWN, a truncated frame, an oversized header, raw garbage)."""
    # Distinct ids for the frames that need their own (an odd stride never
    # repeats modulo 2**64), wrapping around the u64 range at times.
    start, stride = draw(TXS | st.just(U64 - 2)), draw(STRIDES)
    fresh = ((start + i * stride) % 2**64 for i in range(32))
    steps: list[Step] = []
    holds: list[int] = []  # txs of the holds still waiting (not released/cancelled)
    for choice in draw(CHOICES):
        if choice in ("dup", "cancel-hold") and not holds:
            choice = "request"
        if choice == "request":
            name = draw(VALID_NAMES)
            payload = draw(PAYLOADS[name])
            outcome, value = valid_request(name, payload)
            step = Step(
                "reply",
                Kind.REQUEST,
                next(fresh),
                name=name,
                payload=payload,
                meta=draw(METAS),
                outcome=outcome,
                value=value,
            )
        elif choice == "schema":
            body, word = draw(SCHEMA_REQUESTS)
            step = Step("refuse", Kind.REQUEST, next(fresh), body, word=word)
        elif choice == "garbage":
            body = draw(GARBAGE_REQUESTS)
            step = Step("refuse", Kind.REQUEST, next(fresh), body)
        elif choice == "note":
            step = Step(
                "note",
                Kind.NOTIFICATION,
                draw(TXS),
                payload=draw(PAYLOADS["Note"]),
                meta=draw(METAS),
            )
        elif choice == "bad-note":
            step = Step("ignore", Kind.NOTIFICATION, draw(TXS), draw(BAD_NOTIFICATIONS))
        elif choice == "cancel":  # of a tx nobody uses
            step = Step("ignore", Kind.CANCEL, next(fresh), draw(SMALL))
        elif choice == "hold":
            holds.append(next(fresh))
            step = Step(
                "hold", Kind.REQUEST, holds[-1], value=draw(INTS), meta=draw(METAS)
            )
        elif choice == "release":
            holds.clear()
            step = Step("release", Kind.NOTIFICATION, draw(TXS), meta=draw(METAS))
        elif choice == "dup":  # a request reusing the tx of a waiting hold
            tx = draw(st.sampled_from(holds))
            step = Step(
                "refuse", Kind.REQUEST, tx, draw(DUP_BODIES), word="duplicate tx"
            )
        else:  # cancel-hold
            tx = holds.pop(draw(st.integers(0, len(holds) - 1)))
            step = Step("cancel", Kind.CANCEL, tx, draw(SMALL))
        steps.append(step)
    tail: Tail = draw(TAILS) if tails else "none"
    tail_bytes = b""
    if tail in ("shutdown", "other-kind"):
        # Followed by a request that must not be answered: a frame of a kind
        # no worker receives ends the connection as a SHUTDOWN does.
        if tail == "shutdown":
            tail_bytes = HEADER.pack(0, Kind.SHUTDOWN, draw(TXS))
        else:
            body = draw(OTHER_BODIES)
            tail_bytes = HEADER.pack(len(body), draw(OTHER_KINDS), draw(TXS)) + body
        tail_bytes += encode_frame(
            Kind.REQUEST, next(fresh), COUNT_BODY, MAX_FRAME_SIZE
        )
    elif tail == "truncated":
        frame = encode_frame(Kind.REQUEST, next(fresh), COUNT_BODY, MAX_FRAME_SIZE)
        tail_bytes = frame[: draw(st.integers(1, len(frame) - 1))]
    elif tail == "oversized":
        size = draw(st.integers(MAX_FRAME_SIZE + 1, 2**32 - 1))
        tail_bytes = HEADER.pack(size, draw(st.integers(0, 255)), draw(TXS))
        tail_bytes += draw(SMALL)
    elif tail == "garbage":
        tail_bytes = draw(st.binary(min_size=1, max_size=200))
    return Stream(tuple(steps), tail, tail_bytes, draw(CUTS))


@attrs.frozen
class Expect:
    """A reply the worker must (``sure``) or may send for ``tx``."""

    tx: int
    outcome: Literal["result", "error", "refused"]
    name: str = ""
    value: Any = None
    word: str = ""
    sure: bool = True

    def matches(self, kind: int, body: bytes | bytearray) -> bool:
        try:
            name, payload, _ = json.loads(body)
        except ValueError:
            return False
        if self.outcome == "result":
            return kind == Kind.RESULT and name == self.name and payload == self.value
        if kind != Kind.ERROR or not isinstance(payload, dict):
            return False
        fields = cast("dict[str, Any]", payload)
        if self.outcome == "error":
            return (name, fields.get("protocol"), fields.get("type")) == (
                self.name,
                False,
                self.value,
            )
        error = error_from_payload(fields, "?")
        return type(error) is ProtocolError and self.word in str(error)


@attrs.define
class Plan:
    data: bytes  # the generated frames (and tail)
    closing: bytes  # a last Release and the probe, after a stream without a tail
    expects: list[Expect]
    extra_ok: bool  # raw garbage may parse into requests of its own


class Conversation:
    """The model of one connection: turns streams into bytes and expectations.

    ``base`` keeps the `Hold` rounds and ``mask`` the transaction ids of one
    stream apart from those of the streams before it on the same worker.
    """

    def __init__(self, base: int = 0, mask: int = 0, notes: int = 0) -> None:
        self.base = base
        self.mask = mask
        self.notes = notes  # valid Note notifications so far: what Count answers
        self.rounds = 0

    def plan(self, stream: Stream) -> Plan:
        data = bytearray()
        expects: list[Expect] = []
        holds: dict[int, int] = {}  # tx -> value of the holds still waiting
        used: set[int] = set()
        for step in stream.steps:
            tx = step.tx ^ self.mask
            used.add(tx)
            body = step.body
            if step.role == "reply":
                body = body_of(step.name, step.payload, step.meta)
                value = self.notes if step.name == "Count" else step.value
                outcome: Any = step.outcome
                expects.append(Expect(tx, outcome, step.name, value))
            elif step.role == "refuse":
                expects.append(Expect(tx, "refused", word=step.word))
            elif step.role == "note":
                body = body_of("Note", step.payload, step.meta)
                self.notes += 1
            elif step.role == "hold":
                until = self.base + self.rounds + 1
                body = body_of("Hold", {"value": step.value, "until": until}, step.meta)
                holds[tx] = step.value
            elif step.role == "release":
                self.rounds += 1
                body = body_of("Release", {"upto": self.base + self.rounds}, step.meta)
                expects += [Expect(t, "result", "Hold", v) for t, v in holds.items()]
                holds.clear()
            elif step.role == "cancel":
                del holds[tx]
            data += HEADER.pack(len(body), step.kind, tx) + body
        closing = b""
        if stream.tail == "none":
            self.rounds += 1
            upto = {"upto": self.base + self.rounds}
            closing = encode_frame(
                Kind.NOTIFICATION, 0, body_of("Release", upto, None), MAX_FRAME_SIZE
            )
            expects += [Expect(t, "result", "Hold", v) for t, v in holds.items()]
            probe = next(
                t ^ self.mask for t in range(len(used) + 1) if t ^ self.mask not in used
            )
            closing += encode_frame(
                Kind.REQUEST, probe, body_of("Count", {}, None), MAX_FRAME_SIZE
            )
            expects.append(Expect(probe, "result", "Count", self.notes))
        else:
            data += stream.tail_bytes
            # Every frame before a SHUTDOWN or a truncated frame is read, and a
            # sync handler answers before the next frame is read; a read that
            # meets an oversized header drops what it holds.
            keep_sync = stream.tail in ("shutdown", "other-kind", "truncated")
            expects = [
                attrs.evolve(e, sure=keep_sync and e.name not in ("Mirror", "Hold"))
                for e in expects
            ]
        return Plan(bytes(data), closing, expects, stream.tail == "garbage")


class Replies:
    """The frames a worker sends back, checked against a `Plan` as they come."""

    def __init__(self, plan: Plan) -> None:
        self.waiting: dict[int, list[Expect]] = {}
        for expect in plan.expects:
            self.waiting.setdefault(expect.tx, []).append(expect)
        self.missing = sum(e.sure for e in plan.expects)
        self.extra_ok = plan.extra_ok
        self.problems: list[str] = []

    @property
    def complete(self) -> bool:
        return self.missing == 0

    def take(self, frames: list[Frame]) -> None:
        for kind, tx, body in frames:
            candidates = self.waiting.get(tx, [])
            match = next((e for e in candidates if e.matches(kind, body)), None)
            if match is not None:
                candidates.remove(match)
                self.missing -= match.sure
            elif not (self.extra_ok and Expect(tx, "refused").matches(kind, body)):
                self.problems.append(
                    f"unexpected reply: kind {kind} tx {tx} {body[:300]!r}; "
                    f"expected one of {candidates}"
                )

    def report(self) -> str:
        """Everything wrong so far: unexpected replies, then missing ones."""
        missing = [e for es in self.waiting.values() for e in es if e.sure]
        lines = [*self.problems, *(f"no reply: {e}" for e in missing)]
        return "\n".join(lines)


# --------------------------------------------------- C16: in-process server


async def deliver(
    stream: SocketStream,
    server_sock: socket.socket,
    chunks: list[bytes],
    served: anyio.Event,
) -> None:
    """Write ``chunks``, each once the server has read everything before it,
    so that each is a read of its own; stop if the server hung up."""
    for chunk in chunks:
        try:
            await stream.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return
        while not served.is_set() and unread_bytes(server_sock) > 0:
            await anyio.lowlevel.checkpoint()


async def serve_in_process(stream: Stream) -> None:
    """Feed ``stream`` to a fresh `Server`; check its replies and that it stops
    cleanly when the stream ends (or when the stream says it must stop)."""
    plan = Conversation().plan(stream)
    replies = Replies(plan)
    crashes: list[BaseException] = []
    host_sock, server_sock = socket.socketpair()
    with server_sock:
        async with SocketStream(host_sock) as host:
            server = Server(
                Session(-1, server_sock, {}, ready_sent=True),
                Messages,
                make_handlers(),
                JsonSerializer(),
                MAX_FRAME_SIZE,
            )
            served = anyio.Event()
            answered = anyio.Event()
            ended = anyio.Event()

            async def serve() -> None:
                try:
                    await server.serve()
                except Exception as exc:  # the crash this test looks for
                    crashes.append(exc)
                finally:
                    served.set()

            async def read() -> None:
                reader = FrameReader(host, 2**32 - 1)
                try:
                    while True:
                        replies.take(await reader.receive())
                        if replies.complete:
                            answered.set()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    pass
                finally:
                    answered.set()
                    ended.set()

            with anyio.move_on_after(GUARD) as guard:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(serve)
                    tg.start_soon(read)
                    chunks = [*split(plan.data, stream.cuts), plan.closing]
                    await deliver(host, server_sock, chunks, served)
                    if plan.closing:
                        await answered.wait()
                    with contextlib.suppress(OSError):
                        await host.send_eof()
                    await served.wait()
                    await ended.wait()
    assert not crashes, f"serve() raised {crashes[0]!r}"
    assert not guard.cancelled_caught, f"no end after {GUARD} s\n{replies.report()}"
    assert not replies.report(), replies.report()


@pytest.mark.parametrize(  # without asyncio's debug mode: twice as fast
    "anyio_backend",
    [
        "asyncio",
        pytest.param(
            "trio", marks=pytest.mark.skipif(not HAVE_TRIO, reason="needs trio")
        ),
    ],
)
@fuzz(1000)
@given(stream=streams(tails=True))
async def test_c16_in_process(stream: Stream) -> None:
    """C16: generated streams against `Server` in-process: only the model's
    replies and `ProtocolError` refusals, a clean stop, never a crash or hang;
    the probe after the stream gets its own answer (no desync)."""
    await serve_in_process(stream)


MIRROR_ZERO: dict[str, Any] = {
    "text": "",
    "blob": "",
    "count": 0,
    "ratio": 0,
    "flag": False,
    "color": "red",
    "mode": "a",
    "tags": [],
    "scores": {},
}


@pytest.mark.parametrize(
    ("name", "payload", "field"),
    [
        pytest.param("Divide", {"a": "1", "b": 1}, "a", id="str-for-float"),
        pytest.param("Divide", {"a": 10**309, "b": 1}, "a", id="float-overflow"),
        pytest.param("Mirror", {**MIRROR_ZERO, "blob": "\xe9"}, "blob", id="non-ascii"),
    ],
)
async def test_c16_codec_errors_are_refused(
    name: str, payload: Any, field: str
) -> None:
    """Regressions found by this fuzzer, which crashed the worker's server: an
    int beyond float range for a float field (OverflowError) and non-ASCII text
    for a bytes field (ValueError from b64decode). Like a plain type error,
    each is refused with a `ProtocolError` naming the field."""
    body = body_of(name, payload, None)
    await serve_in_process(Stream((Step("refuse", Kind.REQUEST, 1, body, word=field),)))


# ------------------------------------------------------ C16: a real worker

FUZZ_WORKER = "tests.workers.fuzz_worker"


class RealWorker:
    """A fuzz worker process behind a fake host, driven with blocking I/O.

    The fake host runs the library's bootstrap, handshake and greeting, then
    writes raw frames. Streams run one after another on the same connection;
    a worker that died is replaced before the next stream, so that a failure
    replays the same way.
    """

    def __init__(self, stderr: Path) -> None:
        self.stderr_path = stderr
        self.sock: socket.socket | None = None
        self.process: subprocess.Popen[bytes] | None = None
        # The bootstrap pipe's write end, which the worker watches for our death.
        self.pipe_fd = -1
        self.streams = 0
        self.notes = 0
        self.buffer = b""

    def start(self) -> None:
        """Spawn the worker and take it to READY (stopping it on failure)."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        directory = tempfile.mkdtemp(prefix="iwt-fuzz-", dir="/tmp")
        path = os.path.join(directory, "s")
        secret = os.urandom(32)
        hello = json_dumps(
            {
                "serializer": "json",
                "messages": Messages.fingerprint,
                "backend": "asyncio",
                "startup_data": None,
            }
        )
        read_fd, self.pipe_fd = os.pipe()
        try:
            with (
                socket.socket(socket.AF_UNIX) as listener,
                open(self.stderr_path, "ab") as stderr,
            ):
                listener.bind(path)
                listener.listen(1)
                listener.settimeout(GUARD)
                write_bootstrap(
                    self.pipe_fd,
                    {
                        "socket": path,
                        "secret": secret.hex(),
                        "connect_timeout": GUARD,
                        "hello_size": len(hello),
                    },
                )
                self.process = subprocess.Popen(
                    [sys.executable, "-m", FUZZ_WORKER],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    # A file: a pipe nobody reads could fill up and block it.
                    stderr=stderr,
                    env={**os.environ, BOOTSTRAP_ENV: str(read_fd)},
                    pass_fds=[read_fd],
                    start_new_session=True,
                )
                self.sock, _ = listener.accept()
        finally:
            os.close(read_fd)
            shutil.rmtree(directory, ignore_errors=True)
        anyio.run(self._greet, secret, hello)
        self.sock.settimeout(GUARD)  # blocking from now on, a timeout is a hang
        self.notes = 0
        self.buffer = b""

    async def _greet(self, secret: bytes, hello: bytes) -> None:
        assert self.sock is not None
        stream = SocketStream(self.sock)  # not closed: the socket stays in use
        with anyio.fail_after(GUARD):
            await host_authenticate(stream, secret)
            await stream.send(encode_frame(Kind.HELLO, 0, hello, 2**32 - 1))
            [(kind, _, body)] = await FrameReader(stream, 2**20).receive()
        assert (kind, json.loads(body)) == (Kind.READY, {"ok": True})

    def stop(self) -> int | None:
        """Hang up and reap the worker (killed if it lingers); its exit code.

        The bootstrap pipe closes last: closing it first would make the
        worker's watchdog kill it for a dead host.
        """
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        code: int | None = None
        if self.process is not None:
            try:
                code = self.process.wait(GUARD)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self.pipe_fd >= 0:
            os.close(self.pipe_fd)
            self.pipe_fd = -1
        return code

    def receive(self) -> list[Frame]:
        """The next complete frames; [] at EOF."""
        assert self.sock is not None
        while True:
            data = self.sock.recv(READ_SIZE)
            if not data:
                return []
            self.buffer += data
            frames, _, left = reference_decode(self.buffer, 2**32 - 1)
            self.buffer = self.buffer[len(self.buffer) - left :]
            if frames:
                return frames

    def run(self, stream: Stream) -> None:
        """Write ``stream`` and its probe; wait for every reply the model expects."""
        if self.process is None or self.process.poll() is not None:
            self.stop()
            self.start()
        assert self.sock is not None
        conversation = Conversation(self.streams * 1000, self.streams << 40, self.notes)
        self.streams += 1
        plan = conversation.plan(stream)
        self.notes = conversation.notes
        replies = Replies(plan)
        try:
            for chunk in [*split(plan.data, stream.cuts), plan.closing]:
                self.sock.sendall(chunk)
            while not replies.complete and not replies.problems:
                frames = self.receive()
                if not frames:
                    replies.problems.append("the worker hung up")
                    break
                replies.take(frames)
        except OSError as exc:  # a timeout (a hang) or a broken connection
            replies.problems.append(f"{exc!r}")
        report = replies.report()
        if report:
            self.stop()  # replaced by the next stream
            stderr = self.stderr_path.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{report}\nworker stderr:\n{stderr}")


#: Failures on the real worker are not shrunk: shrinking would respawn it at
#: every step; the in-process test shrinks the same kind of streams.
NO_SHRINK = (Phase.explicit, Phase.generate)


def test_c16_real_worker(tmp_path: Path) -> None:
    """C16 against one real worker process: 200 generated streams on one
    connection, each answered as the model says; then an oversized header,
    which makes the worker exit 0 without a traceback (C2)."""
    worker = RealWorker(tmp_path / "stderr")

    @fuzz(200, phases=NO_SHRINK)
    @given(stream=streams(tails=False))
    def one_stream(stream: Stream) -> None:
        worker.run(stream)

    try:
        worker.start()
        one_stream()
        assert worker.sock is not None
        worker.sock.sendall(HEADER.pack(2**32 - 1, Kind.REQUEST, 1))
        assert worker.receive() == []  # hung up, nothing more to say
        assert worker.stop() == 0
    finally:
        worker.stop()
    stderr = worker.stderr_path.read_text(errors="replace")
    assert "exceeds max_frame_size" in stderr
    assert "Traceback" not in stderr
