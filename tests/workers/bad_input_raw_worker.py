"""A fake worker: the real handshake, then raw frames, malformed on purpose.

Opened by `open_worker` with `fault_messages.RawFaults`. It authenticates
and answers READY like a real worker, then reads frames on a blocking socket
and answers each request with frames it builds itself:

- `Tx`: the request's tx id. `Frames`: how many frames it has received so far,
  this one included. `Grow(depth)`: a `Node` chain ``depth`` deep.
- `Flood(count)`: a stream of ``count`` items sent at once, ignoring the
  window, then its end.
- `Flush`: ``"late"`` for every request held so far, then JSON text
  ``{"held": [tx...], "cancelled": [tx...], "tx": tx}``.
- `Act(action, text, size)`, by ``action``:

  ``echo``          ``text``
  ``bytewise``      ``text``, its frame written one byte per ``send()``
  ``exact``         ``"x" * n``, in a body of exactly ``size`` bytes
  ``empty``         a RESULT with an empty body
  ``invalid_json``  a RESULT whose body is not JSON
  ``non_utf8``      a RESULT whose JSON body holds bytes that are not UTF-8
  ``deep``          a result nested 100 000 lists deep
  ``wrong_name``    a result named ``Other``
  ``unknown_kind``  a frame of kind 99 and a REQUEST frame, then ``text``
  ``request_kind``  a REQUEST frame, then ``text``
  ``unknown_tx``    a RESULT for tx + 1000, then ``text``
  ``twice``         ``text`` twice, for the same tx
  ``hold``          no answer until a `Flush`
  ``oversized``     a header announcing 2**32 - 1 bytes and 64 KiB of it
  ``oversized_u64`` an 8-byte length prefix of 2**63 instead of a header
  ``truncated``     a header announcing 100 bytes and 50 of them, then EOF
  ``garbage``       4096 random bytes, then EOF

  After the last four it sends nothing more and waits for the host to hang up.

It exits 0 on SHUTDOWN or when the host hangs up.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import sys
from typing import Any, NoReturn

from isolated_workers._wire._bootstrap import read_bootstrap
from isolated_workers._wire._framing import HEADER, Kind
from isolated_workers._wire._handshake import recv_exactly, worker_authenticate

info = read_bootstrap()
assert info is not None, "not started by open_worker()"
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.settimeout(30)  # never outlive a stuck test for long
sock.connect(info["socket"])
worker_authenticate(sock, bytes.fromhex(info["secret"]))
recv_exactly(sock, HEADER.size + info["hello_size"])  # HELLO: nothing needed here

frames_received = 0
held: list[int] = []
cancelled: list[int] = []


def frame(kind: int, tx: int, body: bytes) -> bytes:
    return HEADER.pack(len(body), kind, tx) + body


def body(name: str, payload: Any) -> bytes:
    return json.dumps([name, payload, {}], ensure_ascii=False).encode()


def result(tx: int, payload: Any, name: str = "Act") -> bytes:
    return frame(Kind.RESULT, tx, body(name, payload))


def wait_for_hang_up() -> NoReturn:
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass
    sys.exit(0)


def act(tx: int, action: str, text: str, size: int) -> None:
    if action == "echo":
        sock.sendall(result(tx, text))
    elif action == "bytewise":
        data = result(tx, text)
        for i in range(len(data)):
            sock.sendall(data[i : i + 1])
    elif action == "exact":
        overhead = len(body("Act", ""))
        sock.sendall(result(tx, "x" * (size - overhead)))
    elif action == "empty":
        sock.sendall(frame(Kind.RESULT, tx, b""))
    elif action == "invalid_json":
        sock.sendall(frame(Kind.RESULT, tx, b'["Act", "no end'))
    elif action == "non_utf8":
        sock.sendall(frame(Kind.RESULT, tx, b'["Act","\xff\xfe",{}]'))
    elif action == "deep":
        payload = b"[" * 100_000 + b"]" * 100_000
        sock.sendall(frame(Kind.RESULT, tx, b'["Act",' + payload + b",{}]"))
    elif action == "wrong_name":
        sock.sendall(result(tx, text, name="Other"))
    elif action == "unknown_kind":
        sock.sendall(frame(99, tx, body("Act", "kind 99")))
        sock.sendall(frame(Kind.REQUEST, tx, body("Act", {"action": "echo"})))
        sock.sendall(result(tx, text))
    elif action == "request_kind":
        sock.sendall(frame(Kind.REQUEST, tx, body("Act", {"action": "echo"})))
        sock.sendall(result(tx, text))
    elif action == "unknown_tx":
        sock.sendall(result(tx + 1000, "stray") + result(tx, text))
    elif action == "twice":
        sock.sendall(result(tx, text) + result(tx, text + " again"))
    elif action == "hold":
        held.append(tx)
    elif action == "oversized":
        sock.sendall(HEADER.pack(2**32 - 1, Kind.RESULT, tx) + bytes(64 * 1024))
        wait_for_hang_up()
    elif action == "oversized_u64":
        sock.sendall(struct.pack("!QQ", 2**63, tx) + bytes(64 * 1024))
        wait_for_hang_up()
    elif action == "truncated":
        sock.sendall(HEADER.pack(100, Kind.RESULT, tx) + b"x" * 50)
        sock.shutdown(socket.SHUT_WR)
        wait_for_hang_up()
    elif action == "garbage":
        sock.sendall(os.urandom(4096))
        sock.shutdown(socket.SHUT_WR)
        wait_for_hang_up()
    else:
        raise ValueError(f"unknown action {action!r}")


def grow(tx: int, depth: int) -> None:
    node: dict[str, Any] = {"children": []}
    for _ in range(depth - 1):
        node = {"children": [node]}
    sock.sendall(result(tx, node, name="Grow"))


def serve() -> None:
    global frames_received
    while True:
        header = sock.recv(HEADER.size, socket.MSG_WAITALL)
        if len(header) < HEADER.size:
            return  # the host hung up
        size, kind, tx = HEADER.unpack(header)
        data = recv_exactly(sock, size)
        frames_received += 1
        if kind == Kind.SHUTDOWN:
            return
        if kind == Kind.CANCEL:
            cancelled.append(tx)
        if kind == Kind.STREAM:
            name, payload, _ = json.loads(data)
            items = (
                frame(Kind.ITEM, tx, body(name, i)) for i in range(payload["count"])
            )
            sock.sendall(b"".join(items) + result(tx, None, name))
        if kind != Kind.REQUEST:
            continue
        name, payload, _ = json.loads(data)
        if name == "Tx":
            sock.sendall(result(tx, tx, name))
        elif name == "Frames":
            sock.sendall(result(tx, frames_received, name))
        elif name == "Grow":
            grow(tx, payload["depth"])
        elif name == "Flush":
            late = b"".join(result(old, "late") for old in held)
            report = {"held": held, "cancelled": cancelled, "tx": tx}
            sock.sendall(late + result(tx, json.dumps(report), name))
            held.clear()
        else:
            act(tx, payload["action"], payload.get("text", ""), payload.get("size", 0))


sock.sendall(frame(Kind.READY, 0, json.dumps({"ok": True}).encode()))
with contextlib.suppress(OSError):  # the host hung up mid-write
    serve()
