"""The contract shared by serializers.py (the host) and serializers_worker.py:
the messages, and the two serializers that wrap JSON on both sides, one
compressing and one encrypting.

The encrypting one needs the ``cryptography`` package.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from typing import Any

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from isolated_workers import Request, Serializer, define_messages


@attrs.frozen
class CipherKey:
    """Startup data: the key the worker encrypts and decrypts with."""

    key: bytes


@attrs.frozen
class Grep(Request[list[str]]):
    """The lines of ``text`` that contain ``word``."""

    word: str
    text: str


Messages = define_messages(Grep)


class ZlibSerializer(Serializer):
    """Compresses what another serializer makes."""

    accepts_buffers = True  # zlib reads a bytearray as well as bytes

    def __init__(self, inner: Serializer, *, limit: int = 64 * 1024 * 1024) -> None:
        self.inner = inner
        self.limit = limit  # what one frame may inflate to, at most
        self.name = f"zlib+{inner.name}"  # both sides must wrap alike

    def dumps(self, obj: Any) -> bytes:
        return zlib.compress(self.inner.dumps(obj))

    def loads(self, data: bytes) -> Any:
        inflater = zlib.decompressobj()
        plain = inflater.decompress(data, self.limit)
        if inflater.unconsumed_tail:
            raise ValueError(f"message inflates beyond {self.limit:,} bytes")
        if not inflater.eof:
            raise ValueError("truncated zlib stream")
        return self.inner.loads(plain)


class AesGcmSerializer(Serializer):
    """Encrypts and authenticates what another serializer makes, with
    AES-256-GCM and a fresh random nonce for each message."""

    accepts_buffers = True  # decrypts from the buffer the frame was read into

    def __init__(self, inner: Serializer, key: bytes) -> None:
        self.inner = inner
        self._cipher = AESGCM(key)
        # The key's id goes in the name, which host and worker compare when
        # they connect: a worker given another key is refused at startup,
        # instead of failing to decrypt every message.
        key_id = hashlib.sha256(b"key id:" + key).hexdigest()[:8]
        self.name = f"aesgcm-{key_id}+{inner.name}"

    def dumps(self, obj: Any) -> bytes:
        nonce = os.urandom(12)  # never the same twice with one key
        return nonce + self._cipher.encrypt(nonce, self.inner.dumps(obj), None)

    def loads(self, data: bytes) -> Any:
        view = memoryview(data)
        try:
            plain = self._cipher.decrypt(view[:12], view[12:], None)
        except InvalidTag:
            raise ValueError("cannot decrypt: another key, or altered") from None
        return self.inner.loads(plain)
