"""Turn one run of ``bench.py`` into the files the Performance page shows.

``bench.py --report PREFIX`` calls `write_report` at the end of its run; this
script does the same from a results file written earlier::

    python bench/bench.py --pinned --serializer msgpack --rounds 2 \
        --report docs/_static/perf
    python bench/bench_report.py bench/results/bench-YYYYMMDD-HHMMSS.json \
        docs/_static/perf

From ``PREFIX`` it writes:

- ``PREFIX.csv``: the table, a row per system measured, a column per scenario;
- ``PREFIX-targets.csv``: the targets of ``performance.md`` that one run can
  check, the ratio measured and whether it is met;
- ``PREFIX-run.txt``: one reStructuredText paragraph saying when, on what and
  with which command the numbers were measured;
- ``PREFIX.png``: the targets as a plot (needs matplotlib, a dependency of the
  benchmark only; the docs build uses the committed PNG).

Only small standard modules are imported at the top: ``bench.py`` imports this
module in its parent process only, and matplotlib is imported when the plot is
drawn.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import sys
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Sequence

Result = dict[str, Any]

#: How the table and the plot name each system of ``bench.py``.
LABELS = {
    "iw-asyncio": "isolated-workers, asyncio",
    "iw-trio": "isolated-workers, Trio",
    "iw-uvloop": "isolated-workers, uvloop",
    "iw-asyncio-trio": "isolated-workers, asyncio host, Trio worker",
    "iw-trio-asyncio": "isolated-workers, Trio host, asyncio worker",
    "iw-run_sync-asyncio": "isolated-workers run_sync, asyncio",
    "iw-run_sync-trio": "isolated-workers run_sync, Trio",
    "anyio-asyncio": "anyio.to_process, asyncio",
    "anyio-trio": "anyio.to_process, Trio",
    "minimal-asyncio": "minimal AnyIO design, asyncio",
    "minimal-trio": "minimal AnyIO design, Trio",
    "trio-parallel": "trio-parallel",
    "mp-pipe": "multiprocessing.Pipe (floor)",
    "process-pool": "ProcessPoolExecutor",
}
#: Shorter names for the plot's rows.
SHORT = {
    "iw-asyncio": "asyncio",
    "iw-trio": "Trio",
    "iw-uvloop": "uvloop",
    "iw-run_sync-asyncio": "run_sync, asyncio",
    "iw-run_sync-trio": "run_sync, Trio",
    "anyio-asyncio": "anyio.to_process (asyncio)",
    "anyio-trio": "anyio.to_process (Trio)",
    "minimal-asyncio": "minimal design (asyncio)",
    "minimal-trio": "minimal design (Trio)",
    "trio-parallel": "trio-parallel",
    "mp-pipe": "multiprocessing.Pipe",
    "process-pool": "ProcessPoolExecutor",
}

#: The table's columns: (header, scenario in the results, field, format).
COLUMNS = (
    ("S1 start (ms)", "S1", "start_ms", "ms"),
    ("S2 median (µs)", "S2", "median_us", "us"),
    ("S2 p99 (µs)", "S2", "p99_us", "us"),
    ("S2 pinned (µs)", "S2pin", "median_us", "us"),
    ("S3 (msg/s)", "S3", "msgs_per_s", "rate"),
    ("S4 (MiB/s)", "S4", "mib_per_s", "mib"),
    ("S5 (tasks/s)", "S5", "tasks_per_s", "rate"),
)

#: The Python pools measured for S5; the target compares with the fastest.
S5_PEERS = ("anyio-asyncio", "anyio-trio", "trio-parallel", "process-pool")
BEST_POOL = "best-pool"


class Target(NamedTuple):
    """A target of ``performance.md`` as a ratio within one run."""

    scenario: str
    source: str
    field: str
    higher_is_better: bool
    system: str
    baseline: str  # a system, or BEST_POOL: the fastest of S5_PEERS in the run
    goal: float


#: The targets one run can check. The ratios are oriented so that above 1.0
#: isolated-workers is better (for times, the baseline's over ours). S1's goal
#: stands in for "half the TypeScript original's start", which the bench cannot
#: measure: in the run of performance.md that was 77 ms against 62 ms for
#: anyio.to_process on asyncio, so 62 / 77, about 0.8.
TARGETS = (
    Target("S1 start", "S1", "start_ms", False, "iw-asyncio", "anyio-asyncio", 0.8),
    Target(
        "S2 pinned", "S2pin", "median_us", False, "iw-asyncio", "anyio-asyncio", 1.0
    ),
    Target("S2 pinned", "S2pin", "median_us", False, "iw-trio", "anyio-trio", 1.0),
    Target("S3", "S3", "msgs_per_s", True, "iw-asyncio", "minimal-asyncio", 1.3),
    Target("S3", "S3", "msgs_per_s", True, "iw-trio", "minimal-trio", 1.0),
    Target("S4", "S4", "mib_per_s", True, "iw-asyncio", "mp-pipe", 0.8),
    Target("S4", "S4", "mib_per_s", True, "iw-trio", "mp-pipe", 0.8),
    Target("S4", "S4", "mib_per_s", True, "iw-uvloop", "mp-pipe", 0.8),
    Target("S5", "S5", "tasks_per_s", True, "iw-asyncio", BEST_POOL, 5.0),
    Target("S5", "S5", "tasks_per_s", True, "iw-trio", BEST_POOL, 5.0),
    Target("S5", "S5", "tasks_per_s", True, "iw-uvloop", BEST_POOL, 5.0),
    Target("S5", "S5", "tasks_per_s", True, "iw-run_sync-asyncio", BEST_POOL, 5.0),
    Target("S5", "S5", "tasks_per_s", True, "iw-run_sync-trio", BEST_POOL, 5.0),
)


class Check(NamedTuple):
    """One target, as measured in one run."""

    target: Target
    baseline: str  # the system compared with (BEST_POOL resolved)
    value: float
    baseline_value: float
    ratio: float

    @property
    def met(self) -> bool:
        return self.ratio >= self.target.goal


def value(summary: Result, system: str, source: str, field: str) -> float | None:
    """A number of the run, or None where it was not measured (skipped, an
    error, n/a, or a scenario not run)."""
    entry = summary["systems"].get(system)
    if not entry or "error" in entry or "skipped" in entry:
        return None
    number = (entry.get(source) or {}).get(field)
    if isinstance(number, bool) or not isinstance(number, int | float):
        return None
    return float(number) if number > 0 else None


def best_pool(summary: Result) -> tuple[str, float] | None:
    """The fastest Python pool peer of the run in S5, and its tasks/s."""
    rates = {
        peer: rate
        for peer in S5_PEERS
        if (rate := value(summary, peer, "S5", "tasks_per_s")) is not None
    }
    if not rates:
        return None
    best = max(rates, key=rates.__getitem__)
    return best, rates[best]


def checks(summary: Result) -> list[Check]:
    """The targets this run can check, in the order of `TARGETS`."""
    out: list[Check] = []
    pool = best_pool(summary)
    for target in TARGETS:
        ours = value(summary, target.system, target.source, target.field)
        if target.baseline == BEST_POOL:
            baseline, theirs = pool if pool is not None else ("", None)
        else:
            baseline = target.baseline
            theirs = value(summary, baseline, target.source, target.field)
        if ours is None or theirs is None:
            continue
        ratio = ours / theirs if target.higher_is_better else theirs / ours
        out.append(Check(target, baseline, ours, theirs, ratio))
    return out


def _fmt(number: float, kind: str) -> str:
    if kind == "rate":
        return f"{number / 1000:.1f}k" if number >= 10_000 else f"{number:.0f}"
    if kind == "ms":
        return f"{number:.1f}"
    return f"{number:.0f}"


def table(summary: Result) -> list[list[str]]:
    """The table of the page, its header first: a row per system measured,
    with the columns of the scenarios run. ``n/a`` where a system cannot run a
    scenario (one call at a time, not a pool, a pool only)."""
    wanted = [*summary["scenarios"], *(["S2pin"] if summary.get("pinned") else [])]
    columns = [c for c in COLUMNS if c[1] in wanted]
    rows = [["System", *(c[0] for c in columns)]]
    for system, entry in summary["systems"].items():
        if "error" in entry or "skipped" in entry:
            continue
        row = [LABELS.get(system, system)]
        for _, source, field, kind in columns:
            # S2 pinned is not run for a system that cannot run S2.
            scenario = entry.get("S2" if source == "S2pin" else source)
            number = value(summary, system, source, field)
            if number is not None:
                row.append(_fmt(number, kind))
            elif isinstance(scenario, dict) and "na" in scenario:
                row.append("n/a")
            else:
                row.append("")
        rows.append(row)
    return rows


def target_table(found: Sequence[Check]) -> list[list[str]]:
    """The targets checked, header first."""
    rows = [
        ["Scenario", "isolated-workers", "Compared with", "Target", "Measured", "Met"]
    ]
    for check in found:
        target = check.target
        baseline = LABELS.get(check.baseline, check.baseline)
        if target.baseline == BEST_POOL:
            baseline = f"the fastest Python pool: {baseline}"
        rows.append(
            [
                target.scenario,
                SHORT.get(target.system, target.system),
                baseline,
                f"{target.goal:.1f}x",
                f"{check.ratio:.2f}x",
                "yes" if check.met else "no",
            ]
        )
    return rows


def _command(summary: Result) -> str:
    """The command of the run, as a reader would type it from the repository."""
    words = list(summary.get("command") or [])[1:]  # drop the interpreter's path
    if words and os.path.basename(words[0]) == "bench.py":
        words[0] = "bench/bench.py"
    return " ".join(["python", *words])


def _date(summary: Result) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(summary["when"])
    except (KeyError, TypeError, ValueError):
        return None


def _when(summary: Result) -> str:
    when = _date(summary)
    return f"on {when.day} {when:%B %Y}" if when else "at an unknown date"


def run_paragraph(summary: Result) -> str:
    """Where, when and how the numbers were measured, as one paragraph of
    reStructuredText."""
    machine = summary.get("machine") or {}
    versions = machine.get("versions") or {}
    python = (machine.get("python") or "").split(" ")[0] or "unknown"
    software = ", ".join(
        [f"Python {python}"]
        + [
            f"{name} {v}"
            for name in ("anyio", "trio", "trio-parallel")
            if (v := versions.get(name))
        ]
    )
    git = machine.get("git")
    commit = ""
    if git:
        commit = f" at commit ``{git['commit'][:12]}``"
        if git.get("src_dirty"):
            commit += " (with uncommitted changes in ``src/``)"
    cpu = f"{machine.get('cpu_count', '?')} CPUs"
    if machine.get("cpu_model"):
        cpu += f" ({machine['cpu_model']})"
    rounds = summary.get("rounds", 1)
    lines = [
        f"Measured {_when(summary)}{commit}, on {cpu}, {software}, with "
        f"``{_command(summary)}``: isolated-workers with the "
        f"{summary.get('serializer', 'json')} serializer, "
        f"{summary.get('handler', 'sync')} handlers and the "
        f"{summary.get('transport', 'socket')} transport; "
        + (f"medians of {rounds} rounds." if rounds > 1 else "one round."),
    ]
    absent = [
        f"{LABELS.get(system, system)} ({entry.get('skipped') or entry.get('error')})"
        for system, entry in summary["systems"].items()
        if "skipped" in entry or "error" in entry
    ]
    if absent:
        lines.append("Not measured in this run: " + "; ".join(absent) + ".")
    if summary.get("quick") or summary.get("profiled"):
        lines.append(
            "**A smoke run (small counts or a profiler): these numbers are not "
            "figures to quote.**"
        )
    return "\n".join(lines) + "\n"


def _title(summary: Result) -> str:
    machine = summary.get("machine") or {}
    python = (machine.get("python") or "").split(" ")[0]
    git = machine.get("git")
    parts = [f"{machine.get('cpu_count', '?')} CPUs"]
    if machine.get("cpu_model"):
        parts[0] += f" ({machine['cpu_model']})"
    if python:
        parts.append(f"Python {python}")
    if git:
        parts.append(f"commit {git['commit'][:7]}{'+' if git.get('src_dirty') else ''}")
    parts.append(f"{summary.get('serializer', 'json')}")
    when = _date(summary)
    if when:
        parts.append(f"{when:%Y-%m-%d}")
    title = "isolated-workers against its peers, one run\n" + ", ".join(parts)
    if summary.get("quick") or summary.get("profiled"):
        title += "\nSMOKE RUN: not figures to quote"
    return title


MET_COLOUR = "#1b7837"
NOT_MET_COLOUR = "#d95f02"


#: Units of the values a target compares, for the plot's notes.
UNITS = {"S1": "ms", "S2pin": "µs", "S3": "msg/s", "S4": "MiB/s", "S5": "tasks/s"}
#: Where the plot's ratio axis may put its ticks.
TICKS = (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 7, 10, 20, 30, 50)


def _amount(number: float, source: str) -> str:
    kind = {"S1": "ms", "S3": "rate", "S5": "rate"}.get(source, "num")
    return f"{_fmt(number, kind)} {UNITS.get(source, '')}".strip()


def plot(summary: Result, found: Sequence[Check], path: str) -> None:
    """Draw the targets checked as a PNG: a bar per target from parity (1.0x)
    to the ratio measured, on a log scale, with the target marked."""
    # matplotlib is a dependency of the benchmark only; mypy runs without it
    # in CI, where these imports are Any.
    from matplotlib.figure import Figure  # type: ignore[import-not-found, unused-ignore]
    from matplotlib.lines import Line2D  # type: ignore[import-not-found, unused-ignore]
    from matplotlib.patches import Patch  # type: ignore[import-not-found, unused-ignore]
    from matplotlib.ticker import (  # type: ignore[import-not-found, unused-ignore]
        FixedLocator,
        FuncFormatter,
        NullLocator,
    )

    rows = list(found)
    height = 2.2 + 0.5 * max(len(rows), 1)
    figure = Figure(figsize=(9.0, height), dpi=110, layout="constrained")
    axes = figure.add_subplot()
    figure.suptitle(_title(summary), fontsize=10)
    if not rows:
        axes.text(0.5, 0.5, "no target can be checked from this run", ha="center")
        axes.set_axis_off()
        figure.savefig(path, metadata={"Software": None})
        return

    positions = list(range(len(rows)))[::-1]  # the first target on top
    labels = []
    for check in rows:
        baseline = SHORT.get(check.baseline, check.baseline)
        if check.target.baseline == BEST_POOL:
            baseline = f"best pool: {baseline}"
        ours = SHORT.get(check.target.system, check.target.system)
        source = check.target.source
        labels.append(
            f"{check.target.scenario}: {ours} vs {baseline}\n"
            f"{_amount(check.value, source)} vs {_amount(check.baseline_value, source)}"
        )
    ratios = [check.ratio for check in rows]
    axes.set_xscale("log")
    axes.barh(
        positions,
        [r - 1.0 for r in ratios],
        left=1.0,
        height=0.62,
        color=[MET_COLOUR if check.met else NOT_MET_COLOUR for check in rows],
        hatch=["" if check.met else "//" for check in rows],
        edgecolor="white",
        linewidth=0,
    )
    for y, check in zip(positions, rows, strict=True):
        axes.plot(
            [check.target.goal, check.target.goal],
            [y - 0.42, y + 0.42],
            color="black",
            linewidth=2.2,
            solid_capstyle="butt",
        )
        right = check.ratio >= 1.0
        # Past the target's mark when it sits just beyond the bar's end.
        goal, at = check.target.goal, check.ratio
        if (right and at < goal < at * 1.3) or (not right and at / 1.3 < goal < at):
            at = goal
        axes.annotate(
            f"{check.ratio:.2f}x",
            (at, y),
            xytext=(4 if right else -4, 0),
            textcoords="offset points",
            ha="left" if right else "right",
            va="center",
            fontsize=8.5,
        )
    # A thin line between scenarios.
    for y in range(1, len(rows)):
        above, below = rows[len(rows) - 1 - y], rows[len(rows) - y]
        if above.target.scenario != below.target.scenario:
            axes.axhline(y - 0.5, color="0.8", linewidth=0.8)
    axes.axvline(1.0, color="0.35", linewidth=0.9, linestyle="--")
    span = [*ratios, *(check.target.goal for check in rows), 1.0]
    low, high = min(span) / 1.8, max(span) * 1.8  # room for the ratios
    axes.set_xlim(low, high)
    axes.set_ylim(-0.6, len(rows) - 0.4)
    axes.set_yticks(positions, labels, fontsize=8.5)
    axes.xaxis.set_major_locator(FixedLocator([t for t in TICKS if low <= t <= high]))
    axes.xaxis.set_minor_locator(NullLocator())
    axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
    axes.tick_params(axis="x", labelsize=8.5)
    axes.set_xlabel(
        "ratio to the peer, both measured in this run (log scale)\n"
        "right of 1x: isolated-workers is faster or moves more; left: slower",
        fontsize=9,
    )
    axes.grid(axis="x", color="0.92")
    axes.set_axisbelow(True)
    figure.legend(
        handles=[
            Patch(facecolor=MET_COLOUR, label="target met"),
            Patch(facecolor=NOT_MET_COLOUR, hatch="//", label="target not met"),
            Line2D([], [], color="black", linewidth=2.2, label="target"),
            Line2D([], [], color="0.35", linewidth=0.9, linestyle="--", label="parity"),
        ],
        loc="outside lower center",
        ncols=4,
        fontsize=8.5,
        frameon=False,
    )
    figure.savefig(path, metadata={"Software": None})


def _write_csv(path: str, rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as file:
        csv.writer(file, lineterminator="\n").writerows(rows)


def write_report(summary: Result, prefix: str, *, png: bool = True) -> list[str]:
    """Write the table, the targets, the run's paragraph and (with ``png``) the
    plot next to ``prefix``; return the paths written."""
    directory = os.path.dirname(prefix)
    if directory:
        os.makedirs(directory, exist_ok=True)
    found = checks(summary)
    written = [f"{prefix}.csv", f"{prefix}-targets.csv", f"{prefix}-run.txt"]
    _write_csv(written[0], table(summary))
    _write_csv(written[1], target_table(found))
    with open(written[2], "w", encoding="utf-8") as file:
        file.write(run_paragraph(summary))
    if png:
        plot(summary, found, f"{prefix}.png")
        written.append(f"{prefix}.png")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        description="Write the Performance page's table, targets and plot "
        "from a results file of bench.py."
    )
    parser.add_argument("results", help="a JSON file of bench/results/")
    parser.add_argument("prefix", help="e.g. docs/_static/perf")
    parser.add_argument(
        "--no-png", action="store_true", help="write the CSV and text files only"
    )
    options = parser.parse_args(argv)
    with open(options.results, encoding="utf-8") as file:
        summary = json.load(file)
    for path in write_report(summary, options.prefix, png=not options.no_png):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
