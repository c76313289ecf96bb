"""A worker that exits with status 0 at once, without ever connecting."""

from __future__ import annotations

import sys

sys.exit(0)
