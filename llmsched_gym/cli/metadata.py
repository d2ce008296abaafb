"""The run record: what was run, written into every output (table header, JSON, CSV, plots).

One :class:`RunRecord` per run holds the workload (name or trace file, size, rate, duration, seed, options, SLO
targets), the scheduler and its effective parameters, and the hardware and cost model. Tables print
:meth:`RunRecord.line`; JSON outputs carry :meth:`RunRecord.as_dict` under ``"run"``; per-request CSV files start
with one ``# llmsched run: {...}`` comment line (``pandas.read_csv(path, comment="#")`` skips it;
:func:`read_run_record` reads it back); sweep CSVs carry the fields as columns.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from llmsched_gym.cli.values import spell

CSV_PREFIX = "# llmsched run: "


def package_version() -> str:
    """The installed llmsched-gym version ("unknown" when run from a source tree without installing)."""
    try:
        return metadata.version("llmsched-gym")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class RunRecord:
    """What one run was.

    Attributes:
        command: The ``llmsched`` command (``simulate``, ``compare``, ...).
        scheduler: Registered scheduler name.
        scheduler_params: The preset with the ``--param`` overrides applied.
        workload: Workload name or trace file path.
        workload_options: Typed ``--workload-option`` values.
        requests: Requests in the run (after every filter).
        n_requests: Requests asked for (``None``: the workload's default).
        rate: Arrival rate asked for (``None``: the workload's own).
        duration: Arrival window asked for (``None``: none).
        seed: Workload seed.
        slo_ttft_s: TTFT target given to every request, if any.
        slo_tbt_s: TBT target given to every request, if any.
        hardware: GPU, model, tensor parallelism, cost model and KV pool.
        version: llmsched-gym version.
    """

    command: str
    scheduler: str
    scheduler_params: dict[str, Any]
    workload: str
    workload_options: dict[str, Any]
    requests: int
    n_requests: int | None
    rate: float | None
    duration: float | None
    seed: int
    slo_ttft_s: float | None
    slo_tbt_s: float | None
    hardware: dict[str, Any] = field(default_factory=dict)
    version: str = field(default_factory=package_version)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self), default=str))

    def line(self, load: str | None = None) -> str:
        """One line: scheduler, workload, load, seed, SLO, hardware and cost model.

        ``load`` replaces the ``N requests, rate, seed`` part (e.g. for a sweep).
        """
        params = ", ".join(f"{k}={spell(v)}" for k, v in self.scheduler_params.items())
        options = ", ".join(f"{k}={spell(v)}" for k, v in self.workload_options.items())
        rate = "the workload's rate" if self.rate is None else f"rate {self.rate:g}/s"
        load = load or f"{self.requests} requests, {rate}, seed {self.seed}"
        pairs = (("TTFT", self.slo_ttft_s), ("TBT", self.slo_tbt_s))
        slo = "SLO " + ", ".join(f"{name} <= {value:g} s" for name, value in pairs if value is not None)
        hardware = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.hardware.items())
        return (
            f"{self.scheduler}{' (' + params + ')' if params else ''} on {self.workload}"
            f"{' (' + options + ')' if options else ''}: {load}, "
            f"{slo if self.slo_ttft_s or self.slo_tbt_s else 'no SLO targets'}; {hardware}; "
            f"llmsched-gym {self.version}"
        )

    def columns(self) -> dict[str, Any]:
        """Flat CSV columns (parameters and options as JSON text)."""
        d = self.as_dict()
        hw = d.pop("hardware")
        d["scheduler_params"] = json.dumps(d["scheduler_params"], sort_keys=True)
        d["workload_options"] = json.dumps(d["workload_options"], sort_keys=True)
        return {**d, **hw}


def csv_header_line(record: RunRecord) -> str:
    """The comment line that starts a per-request CSV file."""
    return CSV_PREFIX + json.dumps(record.as_dict(), sort_keys=True) + "\n"


def read_run_record(path: Path | str) -> dict[str, Any] | None:
    """The run record of an output file (per-request CSV or JSON), or ``None`` when it has none."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text())
        run = data.get("run") if isinstance(data, dict) else None
        return run if isinstance(run, dict) else None
    with path.open() as fh:
        first = fh.readline()
    if not first.startswith(CSV_PREFIX):
        return None
    record: dict[str, Any] = json.loads(first[len(CSV_PREFIX) :])
    return record
