"""An impostor worker for `PipeTransport`: it fails the handshake on the pipes.

``tr_impostor.py MODE OUT`` appends every byte its host sends to the file
``OUT`` until the host hangs up. MODE:

- ``noise``: runs in place of the interpreter, so its own stdin and stdout
  are the protocol pipes; it reads the greeting and answers 4 KiB of noise.
- ``channel``: runs under the launcher and does the same on the pipes the
  launcher moved out of the way.
- ``wrong-secret``: runs under the launcher and plays the worker's handshake
  with a random secret.
"""

from __future__ import annotations

import contextlib
import os
import sys

from isolated_workers._wire import _bootstrap
from isolated_workers._wire._handshake import (
    HOST_GREETING_SIZE,
    AuthenticationError,
    worker_authenticate,
)
from isolated_workers._wire._streams import BlockingPipe

mode, out = sys.argv[1], sys.argv[2]
if mode == "noise":
    read_fd, write_fd = 0, 1
else:
    assert _bootstrap.stdio_channel is not None, "not started by the launcher"
    read_fd, write_fd = _bootstrap.stdio_channel

with open(out, "wb", buffering=0) as received:

    class RecordingPipe(BlockingPipe):
        def recv_into(self, buffer: memoryview, /) -> int:
            count = super().recv_into(buffer)
            received.write(buffer[:count])
            return count

    pipe = RecordingPipe(read_fd, write_fd, None)
    if mode == "wrong-secret":
        with contextlib.suppress(AuthenticationError, ConnectionError):
            worker_authenticate(pipe, os.urandom(32))
    else:
        greeting = bytearray(HOST_GREETING_SIZE)
        view = memoryview(greeting)
        got = 0
        while got < len(greeting):
            count = pipe.recv_into(view[got:])
            if not count:
                sys.exit(2)
            got += count
        pipe.sendall(os.urandom(4096))
    while pipe.recv_into(memoryview(bytearray(65536))):
        pass
