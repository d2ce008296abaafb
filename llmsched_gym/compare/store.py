"""A sweep's results on disk, written as each run finishes, so that a killed sweep loses nothing and resumes.

``<out>/compare.csv`` gets one row per finished run (its summary figures and its run record as columns), appended
and flushed at once; ``<out>/runs/<scheduler>_<rate>_<seed>.npz`` keeps the arrays the plots need (written first,
atomically, so a CSV row always has its arrays). Restarting the same sweep skips every run whose row is there; a
CSV written by a different setup (another workload, GPU, cost model, ...) is refused rather than mixed in.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmsched_gym.cli.metadata import RunRecord
from llmsched_gym.cli.output import jsonable
from llmsched_gym.cli.validate import UsageError
from llmsched_gym.compare.sweep import Key, SweepPoint
from llmsched_gym.metrics.summary import RunSummary

RESULT_FIELDS = (
    "finished", "rejected", "ttft_p50", "ttft_p99", "tbt_p50", "tbt_p99", "e2e_p50", "sched_delay_p50",
    "output_tok_per_s", "slo_attainment", "goodput_req_per_s", "preemptions", "kv_util_mean", "wall_s",
)  # fmt: skip
RECORD_FIELDS = (
    "scheduler", "rate", "seed", "requests", "scheduler_params", "workload", "workload_options", "n_requests",
    "duration", "slo_ttft_s", "slo_tbt_s", "gpu", "model", "tp", "cost_model", "num_blocks", "block_size",
    "command", "version",
)  # fmt: skip
FIELDS = RECORD_FIELDS[:4] + RESULT_FIELDS + RECORD_FIELDS[4:]
IDENTITY = tuple(f for f in RECORD_FIELDS if f not in ("requests", "command", "version"))
"""Columns that say which run a row is: equal values mean the same run."""
SETUP = tuple(f for f in IDENTITY if f not in ("scheduler", "rate", "seed", "scheduler_params"))
"""Columns every row of one sweep shares."""


def text(value: Any) -> str:
    """A CSV cell: empty for ``None``/NaN, shortest round-trip text for floats."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    return repr(float(value)) if isinstance(value, float | np.floating) else str(value)


def result_cells(summary: RunSummary) -> dict[str, str]:
    """The summary figures of a row."""
    s = summary
    values = (s.finished, s.rejected, s.ttft["p50"], s.ttft["p99"], s.tbt["p50"], s.tbt["p99"], s.e2e["p50"],
              s.scheduling_delay["p50"], s.output_tok_per_s, s.slo_attainment.get("all"), s.goodput_req_per_s,
              s.preemptions, s.kv_util_mean, s.wall_s)  # fmt: skip
    return {name: text(v) for name, v in zip(RESULT_FIELDS, values, strict=True)}


def record_cells(record: RunRecord) -> dict[str, str]:
    """The run-record columns of a row."""
    columns = record.columns()
    return {name: text(columns.get(name)) for name in RECORD_FIELDS}


def key_of(cells: dict[str, str]) -> Key:
    """``(scheduler, rate, seed)`` of a row."""
    rate = cells["rate"]
    return cells["scheduler"], (float(rate) if rate else None), int(cells["seed"])


class SweepStore:
    """The folder of one sweep (see the module docstring).

    Args:
        folder: Output folder (created if absent).
        overwrite: Start afresh, deleting an earlier sweep's CSV and arrays.
    """

    def __init__(self, folder: Path, *, overwrite: bool = False) -> None:
        self.folder = folder
        self.csv = folder / "compare.csv"
        self.runs = folder / "runs"
        self.runs.mkdir(parents=True, exist_ok=True)
        if overwrite:
            self.csv.unlink(missing_ok=True)
            for old in self.runs.glob("*.npz"):
                old.unlink()

    def rows(self) -> list[dict[str, str]]:
        """The rows written so far (none when there is no CSV yet)."""
        if not self.csv.is_file():
            return []
        with self.csv.open(newline="") as fh:
            reader = csv.DictReader(fh)
            if tuple(reader.fieldnames or ()) != FIELDS:
                raise UsageError(
                    "--out-dir", f"{self.csv} was written by another version of compare; pass --overwrite or "
                    "choose another --out-dir",
                )  # fmt: skip
            return list(reader)

    def done(self, planned: Iterable[dict[str, str]]) -> dict[Key, dict[str, str]]:
        """The planned runs already in the CSV (with their arrays); a row of another setup is an error."""
        wanted = {tuple(cells[f] for f in IDENTITY): cells for cells in planned}
        setup = {f: next(iter(wanted.values()))[f] for f in SETUP} if wanted else {}
        out: dict[Key, dict[str, str]] = {}
        for row in self.rows():
            clash = next((f for f in SETUP if row[f] != setup.get(f, row[f])), None)
            if clash is not None:
                raise UsageError(
                    "--out-dir", f"{self.csv} holds runs of another setup ({clash} {row[clash]!r}, now "
                    f"{setup[clash]!r}); pass --overwrite to replace them or choose another --out-dir",
                )  # fmt: skip
            identity = tuple(row[f] for f in IDENTITY)
            if identity in wanted and self.array_path(key_of(row)).is_file():
                out[key_of(row)] = row
        return out

    def array_path(self, key: Key) -> Path:
        """Where a run's arrays are kept."""
        scheduler, rate, seed = key
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", scheduler)  # scheme names (policy:PATH) hold slashes
        return self.runs / f"{safe}_{'trace' if rate is None else f'{rate:g}'}_{seed}.npz"

    def add(self, point: SweepPoint, record: RunRecord) -> None:
        """Keep a finished run: its arrays (atomically), then its CSV row (flushed)."""
        path = self.array_path((point.scheduler, point.rate, point.seed))
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, ttft=point.ttft, tbt_values=point.tbt_values, tbt_weights=point.tbt_weights,
                 sample_times=point.sample_times, kv_used=point.kv_used, client_service=point.client_service,
                 summary=np.array(json.dumps(jsonable(point.summary.as_dict()))))  # fmt: skip
        os.replace(tmp, path)
        new = not self.csv.is_file()
        with self.csv.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerow({**record_cells(record), **result_cells(point.summary)})
            fh.flush()

    def load(self, key: Key) -> SweepPoint:
        """A run kept earlier."""
        with np.load(self.array_path(key), allow_pickle=False) as data:
            summary = RunSummary.from_dict(json.loads(str(data["summary"])))
            arrays = [data[name] for name in
                      ("ttft", "tbt_values", "tbt_weights", "sample_times", "kv_used", "client_service")]  # fmt: skip
        return SweepPoint(key[0], key[1], key[2], summary, *arrays)


def load_points(store: SweepStore, keys: Sequence[Key]) -> list[SweepPoint]:
    """Several kept runs, in the given order."""
    return [store.load(key) for key in keys]
