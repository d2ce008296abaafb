"""Printing summaries as tables and writing per-request results to CSV or JSON."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmsched_gym.cli.metadata import RunRecord, csv_header_line
from llmsched_gym.metrics.summary import RunSummary, per_request
from llmsched_gym.simulate import SimulationResult

ROWS: tuple[tuple[str, str], ...] = (
    ("requests (finished / rejected)", "counts"),
    ("TTFT p50 / p90 / p99 (s)", "ttft"),
    ("TBT p50 / p90 / p99 (s)", "tbt"),
    ("E2E p50 / p90 / p99 (s)", "e2e"),
    ("scheduling delay p50 / p99 (s)", "sched"),
    ("throughput in / out (tok/s)", "tput"),
    ("SLO attainment / goodput (req/s)", "slo"),
    ("preemptions / wasted tokens", "preempt"),
    ("KV utilisation mean / max", "kv"),
    ("iterations / decisions / wall (s)", "sim"),
)


def _f(x: float, digits: int = 3) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.{digits}f}"


def _cell(s: RunSummary, key: str) -> str:
    cells = {
        "counts": f"{s.requests} ({s.finished} / {s.rejected})",
        "ttft": " / ".join(_f(s.ttft[q]) for q in ("p50", "p90", "p99")),
        "tbt": " / ".join(_f(s.tbt[q], 4) for q in ("p50", "p90", "p99")),
        "e2e": " / ".join(_f(s.e2e[q]) for q in ("p50", "p90", "p99")),
        "sched": f"{_f(s.scheduling_delay['p50'])} / {_f(s.scheduling_delay['p99'])}",
        "tput": f"{s.input_tok_per_s:.0f} / {s.output_tok_per_s:.0f}",
        "slo": _slo_cell(s),
        "preempt": f"{s.preemptions} / {s.wasted_tokens}",
        "kv": f"{_f(s.kv_util_mean)} / {_f(s.kv_util_max)}",
        "sim": f"{s.iterations} / {s.decisions} / {s.wall_s:.2f}",
    }
    return cells[key]


def _slo_cell(s: RunSummary) -> str:
    if "all" not in s.slo_attainment:
        return "- (no SLO targets)"
    return f"{_f(s.slo_attainment['all'])} / {_f(s.goodput_req_per_s)}"


def summary_table(summaries: Sequence[RunSummary]) -> str:
    """A plain-text table with one column per run."""
    header = ["metric", *[s.scheduler for s in summaries]]
    body = [[label, *[_cell(s, key) for s in summaries]] for label, key in ROWS]
    if any(s.fairness is not None for s in summaries):
        body.append(
            [
                "fairness: max / mean service diff, Jain",
                *[
                    "-"
                    if s.fairness is None
                    else f"{s.fairness.max_service_diff:.0f} / {s.fairness.mean_service_diff:.0f} / "
                    f"{s.fairness.jain_index:.3f}"
                    for s in summaries
                ],
            ]
        )
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_per_request(res: SimulationResult, path: Path, record: RunRecord | None = None) -> None:
    """Per-request metrics to ``.csv`` or ``.json`` (chosen by the suffix), headed by the run record.

    The folder must exist (it is never created: a mistyped folder is an error, not a new directory).
    """
    cols = per_request(res)
    names = list(cols)
    rows = zip(*(cols[n].tolist() for n in names), strict=True)
    if path.suffix.lower() == ".json":
        records = [dict(zip(names, map(_json_value, row), strict=True)) for row in rows]
        run = None if record is None else record.as_dict()
        path.write_text(json.dumps({"run": run, "scheduler": res.scheduler, "requests": records}, indent=1))
        return
    with path.open("w", newline="") as fh:
        if record is not None:
            fh.write(csv_header_line(record))
        writer = csv.writer(fh)
        writer.writerow(names)
        writer.writerows(rows)


def _json_value(v: object) -> object:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats as ``None`` and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return _json_value(value)


def dumps(value: Any) -> str:
    """Strict JSON text of ``value`` (NaN and infinities become ``null``)."""
    return json.dumps(jsonable(value), indent=1, allow_nan=False, default=str)
