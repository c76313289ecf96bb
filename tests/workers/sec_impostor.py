"""An impostor: it connects to its host but answers the challenge with noise.

``python -m tests.workers.sec_impostor OUT``: reads the bootstrap itself,
connects, sends 64 random bytes as its handshake reply and appends every byte
the host sends to the file ``OUT`` until the host hangs up; then exits 0.
"""

from __future__ import annotations

import json
import os
import socket
import sys

out = sys.argv[1]
fd = int(os.environ["ISOLATED_WORKERS_BOOTSTRAP_FD"])
line = b""
while not line.endswith(b"\n"):
    chunk = os.read(fd, 4096)
    if not chunk:
        sys.exit(2)
    line += chunk
info = json.loads(line)

with (
    open(out, "wb", buffering=0) as received,
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock,
):
    sock.settimeout(10)
    sock.connect(info["socket"])
    sock.sendall(os.urandom(64))
    while True:
        try:
            data = sock.recv(65536)
        except OSError:  # reset or timeout: the host is done with us
            break
        if not data:
            break
        received.write(data)
