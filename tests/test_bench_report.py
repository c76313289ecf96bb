"""bench/bench_report.py: the table, targets and plot of the Performance page,
from a small results file made here (no benchmark runs), and the committed
copies the page includes."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "docs" / "_static"
PAGE = ROOT / "docs" / "performance.rst"

if TYPE_CHECKING:
    import bench_report
else:
    # bench/ is a directory of scripts, not a package: load the module from
    # its file, without putting bench/ on sys.path for the whole session.
    _spec = importlib.util.spec_from_file_location(
        "bench_report", ROOT / "bench" / "bench_report.py"
    )
    bench_report = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(bench_report)

pytestmark = pytest.mark.pure


def timing(median: float, p99: float) -> dict[str, float]:
    return {"calls": 5000.0, "median_us": median, "p99_us": p99}


#: A run of bench.py as its results file records it, cut down to what the
#: report reads: one system skipped, one failed, n/a where a system cannot run
#: a scenario.
SUMMARY: dict[str, Any] = {
    "when": "2026-12-05T18:37:08+00:00",
    "command": [
        "/somewhere/.venv/bin/python",
        "bench/bench.py",
        "--pinned",
        "--serializer",
        "msgpack",
    ],
    "machine": {
        "git": {"commit": "0123456789abcdef0123", "src_dirty": False},
        "cpu_count": 2,
        "cpu_model": "Test CPU",
        "python": "3.11.7 (main, May  9 2026, 07:35:25) [GCC 12.2.0]",
        "versions": {"anyio": "4.16.0", "trio": "0.35.0", "trio-parallel": None},
    },
    "scenarios": ["S1", "S2", "S3", "S4", "S5"],
    "pinned": True,
    "rounds": 2,
    "handler": "sync",
    "serializer": "msgpack",
    "transport": "socket",
    "quick": False,
    "profiled": False,
    "systems": {
        "iw-asyncio": {
            "S1": {"start_ms": 100.0, "close_ms": 20.0},
            "S2": timing(200.0, 300.0),
            "S2pin": timing(120.0, 200.0),
            "S3": {"msgs_per_s": 40_000.0},
            "S4": {"mib_per_s": 900.0},
            "S5": {"tasks_per_s": 30_000.0},
        },
        "iw-trio": {"error": "child exited with code 1"},
        "anyio-asyncio": {
            "S1": {"start_ms": 70.0},
            "S2": timing(220.0, 330.0),
            "S2pin": timing(150.0, 240.0),
            "S3": {"na": "one call at a time per worker process"},
            "S4": {"mib_per_s": 200.0},
            "S5": {"tasks_per_s": 7000.0},
        },
        "minimal-asyncio": {
            "S1": {"start_ms": 90.0},
            "S2": timing(260.0, 400.0),
            "S2pin": timing(250.0, 380.0),
            "S3": {"msgs_per_s": 80_000.0},
            "S4": {"mib_per_s": 250.0},
            "S5": {"na": "one worker, not a pool"},
        },
        "trio-parallel": {"skipped": "not installed"},
        "mp-pipe": {
            "S1": {"start_ms": 2.345},
            "S2": timing(25.4, 60.0),
            "S2pin": timing(25.0, 51.0),
            "S3": {"msgs_per_s": 8000.0},
            "S4": {"mib_per_s": 300.0},
            "S5": {"na": "one worker, not a pool; see process-pool"},
        },
        "process-pool": {
            **{s: {"na": "a pool: S5 only"} for s in ("S1", "S2", "S3", "S4")},
            "S5": {"tasks_per_s": 9000.0},
        },
    },
}


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def test_report_writes_the_table_the_targets_and_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """From a results file: a row per system measured, n/a where a system cannot
    run a scenario; the targets as ratios, the S5 one against the fastest pool;
    and a paragraph naming the machine and the command."""
    results = tmp_path / "bench.json"
    results.write_text(json.dumps(SUMMARY))
    prefix = tmp_path / "static" / "perf"  # the directory is made

    assert bench_report.main([str(results), str(prefix), "--no-png"]) == 0

    assert capsys.readouterr().out.split() == [
        f"{prefix}.csv",
        f"{prefix}-targets.csv",
        f"{prefix}-run.txt",
    ]
    assert not Path(f"{prefix}.png").exists()
    assert Path(f"{prefix}.csv").read_text(encoding="utf-8") == (
        "System,S1 start (ms),S2 median (µs),S2 p99 (µs),S2 pinned (µs),"
        "S3 (msg/s),S4 (MiB/s),S5 (tasks/s)\n"
        '"isolated-workers, asyncio",100.0,200,300,120,40.0k,900,30.0k\n'
        '"anyio.to_process, asyncio",70.0,220,330,150,n/a,200,7000\n'
        '"minimal AnyIO design, asyncio",90.0,260,400,250,80.0k,250,n/a\n'
        "multiprocessing.Pipe (floor),2.3,25,60,25,8000,300,n/a\n"
        "ProcessPoolExecutor,n/a,n/a,n/a,n/a,n/a,n/a,9000\n"
    )
    assert read_csv(Path(f"{prefix}-targets.csv")) == [
        ["Scenario", "isolated-workers", "Compared with", "Target", "Measured", "Met"],
        # Times: the peer's over ours, so above 1.0x we are faster.
        ["S1 start", "asyncio", "anyio.to_process, asyncio", "0.8x", "0.70x", "no"],
        ["S2 pinned", "asyncio", "anyio.to_process, asyncio", "1.0x", "1.25x", "yes"],
        ["S3", "asyncio", "minimal AnyIO design, asyncio", "1.3x", "0.50x", "no"],
        ["S4", "asyncio", "multiprocessing.Pipe (floor)", "0.8x", "3.00x", "yes"],
        [
            "S5",
            "asyncio",
            "the fastest Python pool: ProcessPoolExecutor",
            "5.0x",
            "3.33x",
            "no",
        ],
    ]
    paragraph = Path(f"{prefix}-run.txt").read_text()
    assert paragraph.startswith(
        "Measured on 5 December 2026 at commit ``0123456789ab``"
    )
    assert (
        "on 2 CPUs (Test CPU), Python 3.11.7, anyio 4.16.0, trio 0.35.0," in paragraph
    )
    assert "``python bench/bench.py --pinned --serializer msgpack``" in paragraph
    assert "medians of 2 rounds." in paragraph
    assert (
        "Not measured in this run: isolated-workers, Trio (child exited with code 1); "
        "trio-parallel (not installed)." in paragraph
    )
    assert "smoke run" not in paragraph


def test_report_says_a_smoke_run_is_one(tmp_path: Path) -> None:
    """Numbers of a ``--quick`` run are marked as not for quoting."""
    summary = {**SUMMARY, "quick": True}
    bench_report.write_report(summary, str(tmp_path / "perf"), png=False)
    assert "not figures to quote" in (tmp_path / "perf-run.txt").read_text()


@pytest.mark.slow
def test_report_draws_the_plot(tmp_path: Path) -> None:
    """With matplotlib, the report also writes the PNG."""
    pytest.importorskip("matplotlib")
    written = bench_report.write_report(SUMMARY, str(tmp_path / "perf"))
    assert written[-1] == str(tmp_path / "perf.png")
    assert (tmp_path / "perf.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_the_performance_page_includes_the_committed_report() -> None:
    """The page shows the files ``--report docs/_static/perf`` writes, they are
    committed, and they are not from a smoke run."""
    page = PAGE.read_text()
    assert re.search(r"^\.\. image:: _static/perf\.png$", page, re.MULTILINE)
    for name in ("perf.csv", "perf-targets.csv"):
        assert re.search(rf"^   :file: _static/{re.escape(name)}$", page, re.MULTILINE)
    assert re.search(r"^\.\. include:: _static/perf-run\.txt$", page, re.MULTILINE)
    # The command the page gives regenerates exactly these files.
    assert "--report docs/_static/perf\n" in page

    for name in ("perf.csv", "perf-targets.csv", "perf-run.txt", "perf.png"):
        assert (STATIC / name).stat().st_size > 0, name
    assert (STATIC / "perf.png").read_bytes().startswith(b"\x89PNG")
    assert read_csv(STATIC / "perf.csv")[0][0] == "System"
    assert read_csv(STATIC / "perf-targets.csv")[0][0] == "Scenario"
    assert "smoke run" not in (STATIC / "perf-run.txt").read_text()
