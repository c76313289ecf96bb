"""A worker that takes its startup data, then exits without `run_worker`."""

from __future__ import annotations

from isolated_workers import get_startup_data

get_startup_data()
