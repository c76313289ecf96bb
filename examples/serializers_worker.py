"""The worker of serializers.py: finds lines in a log, over an encrypted and
compressed channel."""

from __future__ import annotations

from serializers_messages import (
    AesGcmSerializer,
    CipherKey,
    Grep,
    Messages,
    ZlibSerializer,
)

from isolated_workers import JsonSerializer, get_startup_data, run_worker

# The key comes with the startup data, which the handshake carries before any
# message, and which never goes through the message serializer.
config = get_startup_data(as_type=CipherKey)


def grep(msg: Grep) -> list[str]:
    return [line for line in msg.text.splitlines() if msg.word in line]


if __name__ == "__main__":
    run_worker(
        Messages,
        {Grep: grep},
        # The same stack as the host's, in the same order.
        serializer=AesGcmSerializer(ZlibSerializer(JsonSerializer()), config.key),
    )
