"""Measurement files (what the profiler writes, what ``fit`` reads) and the points CSV format for any source.

**Measurement JSON** (``llmsched calibrate profile`` output)::

    {"kind": "llmsched-measurement", "version": 1,
     "gpu": {"name": ..., "memory_bytes": ...}, "model": {ModelSpec fields}, "tp": 1, "block_size": 16,
     "executor": {"version": ..., "info": {...}}, "created": "2026-...", "provenance": "...",
     "source": {"kind": "measured", "reference": "...", "caveats": [...]},
     "points": [grid points as in a profile, docs/profiles.md]}

**Points CSV** (measured iterations from any source; docs/calibration.md), one row per iteration::

    prefill_tokens,prefill_context,n_decodes,decode_context_sum,n_seqs,seconds,role,flag,spread,repeats
    512;512,0;1024,32,40960,34,0.0251,train,,0.012,7
    ,,64,65536,64,0.0198,holdout,,,

``prefill_tokens`` / ``prefill_context`` list one entry per chunk separated by ``;`` (empty: no chunk);
``seconds`` is the median duration of the iteration; ``role`` (``train`` | ``holdout``), ``flag``
(``noisy`` | ``outlier``), ``spread`` and ``repeats`` are optional columns.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from llmsched_gym.costs.profile import point_to_dict
from llmsched_gym.costs.profile_fit import MeasuredPoint
from llmsched_gym.costs.profile_schema import MODEL_FIELDS, MODEL_OPTIONAL, parse_model, parse_point
from llmsched_gym.errors import ProfileError
from llmsched_gym.hardware import ModelSpec

KIND = "llmsched-measurement"
CSV_COLUMNS = ("prefill_tokens", "prefill_context", "n_decodes", "decode_context_sum", "n_seqs", "seconds")
CSV_OPTIONAL = ("role", "flag", "spread", "repeats")


@dataclass(frozen=True, slots=True)
class Measurement:
    """Measured iterations of one executor on one GPU and model, with their provenance.

    Attributes:
        gpu_name: GPU name (catalog name where known).
        gpu_memory_bytes: Device memory.
        model: The model shape measured.
        tp: Tensor-parallel degree.
        block_size: KV block size of the executor (None: unknown).
        executor_version: Version of the executor measured.
        created: ISO-8601 date-time of the measurement.
        provenance: How it was measured (tool, repeats, warm-up, machine).
        points: The measured points.
        executor_info: torch / driver / CUDA versions, device, dtype, CUDA-graph buckets, timer.
        source: ``"measured"`` or ``"imported"``.
        reference: Where the numbers come from.
        caveats: Known limits.
    """

    gpu_name: str
    gpu_memory_bytes: int
    model: ModelSpec
    tp: int
    block_size: int | None
    executor_version: str
    created: str
    provenance: str
    points: tuple[MeasuredPoint, ...]
    executor_info: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    source: str = "measured"
    reference: str = ""
    caveats: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (module docstring)."""
        return {
            "kind": KIND,
            "version": 1,
            "gpu": {"name": self.gpu_name, "memory_bytes": self.gpu_memory_bytes},
            "model": {n: getattr(self.model, n) for n in (*MODEL_FIELDS, "dtype_bytes", *MODEL_OPTIONAL)},
            "tp": self.tp,
            "block_size": self.block_size,
            "executor": {"version": self.executor_version, "info": dict(self.executor_info)},
            "created": self.created,
            "provenance": self.provenance,
            "source": {"kind": self.source, "reference": self.reference, "caveats": list(self.caveats)},
            "points": [point_to_dict(p) for p in self.points],
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write as JSON (one line per point) and return the path."""
        data = self.to_dict()
        points = data.pop("points")
        head = json.dumps(data, indent=1)
        body = ",\n  ".join(json.dumps(p) for p in points)
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f'{head[:-2]},\n "points": [\n  {body}\n ]\n}}\n', encoding="utf-8")
        return out


def load_measurement(path: str | os.PathLike[str]) -> Measurement:
    """Read a measurement JSON file.

    Raises:
        ProfileError: Missing file, not JSON, not a measurement, or invalid points (named by index).
    """
    p = Path(path)
    if not p.is_file():
        raise ProfileError(f"measurement {p} does not exist; run `llmsched calibrate profile --out {p}` first")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"measurement {p} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise ProfileError(f"{p} is not a measurement file (its 'kind' must be {KIND!r}); for a profile use validate")
    try:
        source = data.get("source") or {}
        return Measurement(
            gpu_name=str(data["gpu"]["name"]), gpu_memory_bytes=int(data["gpu"]["memory_bytes"]),
            model=parse_model(data["model"]), tp=int(data["tp"]), block_size=data["block_size"],
            executor_version=str(data["executor"]["version"]), created=str(data["created"]),
            provenance=str(data["provenance"]),
            points=tuple(parse_point(raw, i) for i, raw in enumerate(data["points"])),
            executor_info=dict(data["executor"].get("info") or {}), source=str(source.get("kind", "measured")),
            reference=str(source.get("reference", "")), caveats=tuple(source.get("caveats", ())),
        )  # fmt: skip
    except KeyError as exc:
        raise ProfileError(f"measurement {p} lacks field {exc}") from None
    except (ValueError, TypeError) as exc:
        raise ProfileError(f"measurement {p}: {exc}") from None


def _int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(";") if v.strip()] if text.strip() else []


def read_points_csv(path: str | os.PathLike[str]) -> list[MeasuredPoint]:
    """Read a points CSV (module docstring).

    Raises:
        ProfileError: Missing columns or an invalid row (named by its line number and the bad value).
    """
    p = Path(path)
    if not p.is_file():
        raise ProfileError(f"points file {p} does not exist")
    with p.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        absent = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or ())]
        if absent:
            raise ProfileError(
                f"points file {p} lacks column(s) {', '.join(absent)}; expected {', '.join(CSV_COLUMNS)}"
            )
        points = []
        for line, row in enumerate(reader, start=2):
            raw: dict[str, Any] = {c: row[c] for c in CSV_COLUMNS}
            try:
                raw["prefill_tokens"] = _int_list(row["prefill_tokens"])
                raw["prefill_context"] = _int_list(row["prefill_context"])
                raw["seconds"] = float(row["seconds"])
                for name in CSV_OPTIONAL:
                    value = (row.get(name) or "").strip()
                    if value:
                        raw[name] = float(value) if name == "spread" else int(value) if name == "repeats" else value
                points.append(parse_point(raw, line))
            except ValueError as exc:
                raise ProfileError(f"points file {p}, line {line}: {exc}") from None
    if not points:
        raise ProfileError(f"points file {p} has no rows")
    return points


def write_points_csv(path: str | os.PathLike[str], points: Sequence[MeasuredPoint]) -> Path:
    """Write ``points`` in the points CSV format and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow((*CSV_COLUMNS, *CSV_OPTIONAL))
        for pt in points:
            lists = (";".join(map(str, pt.prefill_tokens)), ";".join(map(str, pt.prefill_context)))
            rest = (pt.n_decodes, pt.decode_context_sum, pt.n_seqs, repr(pt.seconds))
            extra = ("" if getattr(pt, n) is None else getattr(pt, n) for n in CSV_OPTIONAL)
            writer.writerow((*lists, *rest, *extra))
    return out
