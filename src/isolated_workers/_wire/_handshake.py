"""Mutual challenge-response authentication with the per-worker secret.

Before anything else crosses the socket, each side proves it knows the secret
without revealing it, and the host speaks first only with a random challenge,
so an unauthenticated peer learns nothing and gets at most 64 bytes read:

1. host -> worker: ``MAGIC`` + host nonce (36 bytes)
2. worker -> host: HMAC(secret, "worker" + host nonce) + worker nonce (64 bytes)
3. host -> worker: HMAC(secret, "host" + worker nonce + host nonce) (32 bytes)

Fresh nonces on both sides defeat replays; the role labels defeat reflection.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from anyio.abc import ByteStream

from ._streams import BlockingChannel

__all__ = [
    "HOST_GREETING_SIZE",
    "WORKER_REPLY_SIZE",
    "host_authenticate",
    "worker_authenticate",
]

MAGIC = b"IWK1"
_NONCE = 32
HOST_GREETING_SIZE = len(MAGIC) + _NONCE
WORKER_REPLY_SIZE = 32 + _NONCE


class AuthenticationError(Exception):
    """The peer did not prove that it knows the secret."""


def _mac(secret: bytes, *parts: bytes) -> bytes:
    return hmac.new(secret, b"".join(parts), hashlib.sha256).digest()


async def receive_exactly(stream: ByteStream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        data += await stream.receive(size - len(data))
    return bytes(data)


async def host_authenticate(stream: ByteStream, secret: bytes) -> None:
    """Authenticate a freshly accepted connection; raise `AuthenticationError`."""
    host_nonce = os.urandom(_NONCE)
    await stream.send(MAGIC + host_nonce)
    reply = await receive_exactly(stream, WORKER_REPLY_SIZE)
    proof, worker_nonce = reply[:32], reply[32:]
    if not hmac.compare_digest(proof, _mac(secret, b"worker", host_nonce)):
        raise AuthenticationError("the peer does not know this worker's secret")
    await stream.send(_mac(secret, b"host", worker_nonce, host_nonce))


def recv_exactly(channel: BlockingChannel, size: int) -> bytes:
    """Blocking exact read, for the worker's side of the handshake."""
    data = bytearray(size)
    view = memoryview(data)
    received = 0
    while received < size:
        count = channel.recv_into(view[received:])
        if not count:
            raise ConnectionError("the host closed the connection during the handshake")
        received += count
    return bytes(data)


def worker_authenticate(channel: BlockingChannel, secret: bytes) -> None:
    """Authenticate to the host over a blocking socket or pipe pair."""
    greeting = recv_exactly(channel, HOST_GREETING_SIZE)
    if greeting[: len(MAGIC)] != MAGIC:
        raise AuthenticationError("the peer is not an isolated-workers host")
    host_nonce = greeting[len(MAGIC) :]
    worker_nonce = os.urandom(_NONCE)
    channel.sendall(_mac(secret, b"worker", host_nonce) + worker_nonce)
    proof = recv_exactly(channel, 32)
    if not hmac.compare_digest(proof, _mac(secret, b"host", worker_nonce, host_nonce)):
        raise AuthenticationError("the host failed to prove it knows the secret")
