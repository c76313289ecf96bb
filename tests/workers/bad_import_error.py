"""A worker that raises while it is being imported, before any handshake."""

from __future__ import annotations

raise RuntimeError("bad_import_error: this worker fails at import time")
