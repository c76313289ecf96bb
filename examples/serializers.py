"""Custom serializers: compress and encrypt every message, on top of JSON.

Run it from anywhere, once the cryptography package is installed::

    python -m pip install cryptography
    python examples/serializers.py
"""

from __future__ import annotations

from pathlib import Path

from backend_option import run
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from serializers_messages import (
    AesGcmSerializer,
    CipherKey,
    Grep,
    Messages,
    ZlibSerializer,
)

from isolated_workers import JsonSerializer, SerializerMismatchError, open_worker

WORKER = Path(__file__).with_name("serializers_worker.py")


def make_log(lines: int) -> str:
    """A server log, as repetitive as real ones are."""
    return "".join(
        f"12:{i // 60 % 60:02d}:{i % 60:02d} "
        f"{'ERROR' if i % 100 == 42 else 'INFO'} request {i} took {i * 7 % 250} ms\n"
        for i in range(lines)
    )


async def main() -> None:
    key = AESGCM.generate_key(bit_length=256)
    # Compress first, then encrypt: encrypted bytes do not compress.
    plain = JsonSerializer()
    packed = ZlibSerializer(plain)
    sealed = AesGcmSerializer(packed, key)

    log = make_log(20_000)
    print(f"A log of {len(log.splitlines()):,} lines, as each layer writes it:")
    for layer in (plain, packed, sealed):
        print(f"  {layer.name}: {len(layer.dumps(log)):,} bytes")

    async with open_worker(
        WORKER,
        messages=Messages,
        serializer=sealed,
        startup_data=CipherKey(key),  # how the worker gets the key
    ) as worker:
        errors = await worker.send(Grep("ERROR", log))
        print(f"{len(errors)} lines say ERROR; the first: {errors[0]!r}")

    # The key's id is part of the serializer's name, so a worker given another
    # key is refused when it connects, before any message is sent.
    wrong_key = CipherKey(AESGCM.generate_key(bit_length=256))
    try:
        async with open_worker(
            WORKER,
            messages=Messages,
            serializer=sealed,
            startup_data=wrong_key,
            output="capture",  # keeps the worker's own traceback for the error
        ):
            pass
    except SerializerMismatchError as exc:
        print(f"A worker with another key: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    run(main)
