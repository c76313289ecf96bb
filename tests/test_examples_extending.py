"""The examples of the serializers, middleware and transports guides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests._util import EXAMPLE_BACKENDS, run_example

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", EXAMPLE_BACKENDS)]


def test_serializers(tmp_path: Path, backend: str) -> None:
    """Messages travel compressed and encrypted; a worker with another key is
    refused at startup."""
    out = run_example(tmp_path, "serializers.py", backend).stdout
    assert "A log of 20,000 lines, as each layer writes it:" in out
    sizes = {
        name: int(size.replace(",", ""))
        for name, size in re.findall(r"^  (\S+): ([\d,]+) bytes$", out, re.MULTILINE)
    }
    assert sizes.pop("json") == 800_292
    assert 5 * sizes["zlib+json"] < 800_292
    [(sealed, sealed_size)] = [(k, v) for k, v in sizes.items() if k != "zlib+json"]
    # A 12-byte nonce and a 16-byte tag around the compressed bytes.
    assert sealed_size == sizes["zlib+json"] + 28
    host_stack = re.fullmatch(r"aesgcm-([0-9a-f]{8})\+zlib\+json", sealed)
    assert host_stack is not None
    assert (
        "200 lines say ERROR; the first: '12:00:42 ERROR request 42 took 44 ms'" in out
    )
    refused = re.search(
        r"^A worker with another key: SerializerMismatchError: the host uses "
        r"serializer '(\S+)', the worker 'aesgcm-([0-9a-f]{8})\+zlib\+json'$",
        out,
        re.MULTILINE,
    )
    assert refused is not None, out
    assert refused[1] == sealed
    assert refused[2] != host_stack[1]


def test_middleware(tmp_path: Path, backend: str) -> None:
    """Host and worker middleware log, time and validate each request; meta
    carries the user; transaction ids come from the program's counter."""
    done = run_example(tmp_path, "middleware.py", backend)
    out, err = done.stdout, done.stderr
    assert "[host] Slugify #1001: sending for alice" in out
    assert "[host] Slugify #1001: got the result" in out
    assert re.search(
        r"^\[host\] #1001 took [\d.]+ ms, [\d.]+ ms of it in the worker$",
        out,
        re.MULTILINE,
    )
    assert "\nhello-world\n" in out
    assert "[worker] Slugify #1001 from alice" in err
    assert "[worker] Slugify #1001: sending the result" in err
    # Refused by the host's first middleware: used up its id, reached nothing.
    assert "Refused on the host: Slugify needs a title with something in it" in out
    assert "#1002" not in out + err
    # Refused by the worker's middleware, before the handler ran.
    assert "[host] Slugify #1003: sending for nobody" in out
    assert "[worker] Slugify #1003 from nobody" in err
    assert "[worker] Slugify #1003: sending the error" in err
    assert "[host] Slugify #1003: got the error" in out
    assert re.search(
        r"^\[host\] #1003 took [\d.]+ ms, [\d.]+ ms of it", out, re.MULTILINE
    )
    assert out.endswith(
        "Refused by the worker: PermissionError: Slugify #1003 names no user\n"
    )


def test_tracing(tmp_path: Path, backend: str) -> None:
    """Trace ids cross to the worker and back in meta."""
    done = run_example(tmp_path, "tracing.py", backend)
    out = done.stdout
    # The two tasks start in either order, so either may get id 1.
    sent = dict(
        re.findall(r"^\[host\] outgoing request #(\d) \((.+)\)$", out, re.MULTILINE)
    )
    assert sorted(sent) == ["1", "2"]
    assert sorted(sent.values()) == ["trace-a", "trace-b"]
    for tx, trace in sent.items():
        # The worker's middleware stamped its reply with the trace it adopted.
        assert f"[host] incoming result #{tx} ({trace})" in out
    assert "trace-a: 180,000 words, 8 distinct" in out
    assert "trace-b: 6 words, 4 distinct" in out
    assert "[worker] trace trace-a: 880,000 chars" in done.stderr
    assert "[worker] trace trace-b: 18 chars" in done.stderr
    assert out.endswith("Done.\n")


def test_transports(tmp_path: Path, backend: str) -> None:
    """One worker answers alike over each transport; a chosen socket
    directory is left empty once the worker has connected."""
    out = run_example(tmp_path, "transports.py", backend).stdout
    assert out.splitlines() == [
        "socket: 168 primes below 1000",
        "Left in the directory once connected: []",
        "socket in a chosen directory: 168 primes below 1000",
        "pipes: 168 primes below 1000",
    ]
