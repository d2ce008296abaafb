"""Shared pieces of the paper reproductions: GPUs missing from the catalog, runs, parallel maps, files, plots.

Every script builds its workloads, schedulers and cost models from the package (registered names, the workload
registry or the synthetic generators) and runs them with :func:`llmsched_gym.simulate.simulate`,
:func:`llmsched_gym.compare.sweep.run_sweep` / ``run_point`` and
:func:`llmsched_gym.metrics.capacity.capacity_search`; this module only adds plumbing around them.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from llmsched_gym.core.engine import EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.recorder import RecorderConfig
from llmsched_gym.core.request import Request
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.costs import make_cost_model
from llmsched_gym.hardware import GIB, GPUSpec
from llmsched_gym.schedulers import make_scheduler
from llmsched_gym.simulate import SimulationResult, simulate

OUT_DIR = Path(__file__).resolve().parents[1] / "docs" / "reproductions"
"""Where every script writes its JSON/CSV numbers and PNG plots."""

RTX_6000_ADA = GPUSpec("RTX-6000-Ada", 48 * GIB, 364e12, 960e9)
"""SLAI's GPU (datasheet: 48 GB, 364 TFLOP/s dense FP16 tensor, 960 GB/s); not in the package catalog."""

A10G = GPUSpec("A10G", 24 * GIB, 125e12, 600e9)
"""VTC's GPU, with the NVIDIA A10 datasheet numbers (24 GB, 125 TFLOP/s dense FP16 tensor, 600 GB/s)."""

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Setup:
    """A cost model (by registered name) and an engine configuration; picklable for worker processes.

    Attributes:
        cost: Registered cost-model name (``roofline``, ``affine_kv``, ``unit``, ...).
        cost_kwargs: Its keyword arguments (``gpu``, ``model``, ``tp``, coefficients).
        engine: Engine configuration (schedulers' requirements are applied per run).
    """

    cost: str
    cost_kwargs: dict[str, Any]
    engine: EngineConfig


def engine_config(
    num_blocks: int,
    *,
    block_size: int = 16,
    watermark: float = 0.01,
    restart_mode: str = "recompute",
    sample_dt: float | None = None,
) -> EngineConfig:
    """An engine configuration with the iteration log off (the reproductions never read it).

    Args:
        num_blocks: KV pool size in blocks.
        block_size: Tokens per block.
        watermark: Admission watermark fraction.
        restart_mode: ``"recompute"`` or ``"full"`` (spec §1.3).
        sample_dt: Period of the time series (KV use, per-client service), or ``None`` for none.

    Returns:
        The configuration.
    """
    recorder = RecorderConfig(iterations=False, sample_dt=sample_dt)
    kv = KVConfig(num_blocks=num_blocks, block_size=block_size, watermark=watermark)
    return EngineConfig(kv, restart_mode=restart_mode, recorder=recorder)  # type: ignore[arg-type]


def run_requests(
    requests: Iterable[Request], scheduler: str, params: dict[str, Any], setup: Setup, *, seed: int = 0
) -> SimulationResult:
    """Serve ``requests`` with a registered scheduler through :func:`llmsched_gym.simulate.simulate`.

    Args:
        requests: The workload stream.
        scheduler: Registered scheduler name.
        params: Constructor overrides of the scheduler preset.
        setup: Cost model and engine configuration.
        seed: Seed passed to the scheduler's ``reset``.

    Returns:
        The simulation result.
    """
    runner = SimulatedRunner(make_cost_model(setup.cost, **setup.cost_kwargs))
    return simulate(requests, make_scheduler(scheduler, **params), runner, setup.engine, seed=seed)


def progress(total: int | None, desc: str, unit: str = "run") -> Any:
    """A progress bar on stderr (tqdm), so that long reproductions show they are moving."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, mininterval=1.0, file=sys.stderr)


def parallel_map(fn: Callable[[T], R], items: Sequence[T], jobs: int, desc: str | None = None) -> list[R]:
    """``[fn(x) for x in items]`` in ``jobs`` worker processes (in order; ``jobs <= 1`` runs in-process).

    A progress bar counts finished items as they complete.

    Args:
        fn: A picklable (module-level) function.
        items: Its picklable arguments.
        jobs: Worker processes.
        desc: Label of the progress bar (default: the function's name).

    Returns:
        The results in the order of ``items``.
    """
    with progress(len(items), desc or getattr(fn, "__name__", "runs").strip("_")) as bar:
        if jobs <= 1 or len(items) <= 1:
            out = []
            for x in items:
                out.append(fn(x))
                bar.update(1)
            return out
        with ProcessPoolExecutor(max_workers=min(jobs, len(items))) as pool:
            futures = [pool.submit(fn, x) for x in items]
            for _ in as_completed(futures):
                bar.update(1)
            return [f.result() for f in futures]


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The shared command line: ``--quick``, ``--jobs`` and ``--out``.

    Quick runs write to ``docs/reproductions/quick/`` so that they never overwrite the default run's files.

    Args:
        description: The script's one-line description.
        argv: Arguments (``None`` = ``sys.argv[1:]``).

    Returns:
        The parsed arguments.
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small smoke-test run (~40 s) instead of the default")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default docs/reproductions, +/quick)")
    args = p.parse_args(argv)
    if importlib.util.find_spec("matplotlib") is None:
        sys.exit("the reproductions draw plots with matplotlib, which is not installed: pip install -e '.[plots]'")
    if args.out is None:
        args.out = OUT_DIR / "quick" if args.quick else OUT_DIR
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating | float):
        value = float(x)
        return value if math.isfinite(value) else str(value)
    if isinstance(x, np.ndarray):
        return [_jsonable(v) for v in x.tolist()]
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x


def write_json(out: Path, name: str, data: Any) -> Path:
    """Write ``data`` (numpy values and non-finite floats made JSON-safe) to ``out/name``.

    Args:
        out: Output folder.
        name: File name.
        data: Nested dicts/lists of numbers and strings.

    Returns:
        The file written.
    """
    path = out / name
    path.write_text(json.dumps(_jsonable(data), indent=1) + "\n")
    return path


def write_csv(out: Path, name: str, rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``rows`` (dicts with the same keys) as CSV to ``out/name``.

    Args:
        out: Output folder.
        name: File name.
        rows: The rows; the first row's keys are the header.

    Returns:
        The file written.
    """
    path = out / name
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows([{k: _cell(v) for k, v in row.items()} for row in rows])
    return path


def _cell(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return f"{float(v):.6g}"
    return v


def print_table(title: str, rows: Sequence[dict[str, Any]]) -> None:
    """Print ``rows`` as an aligned text table under ``title``.

    Args:
        title: Heading line.
        rows: Dicts with the same keys (the columns).
    """
    print(f"\n{title}")
    if not rows:
        print("  (no rows)")
        return
    cols = list(rows[0])
    cells = [[_fmt(row[c]) for c in cols] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    print("  " + "  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True)))
    for r in cells:
        print("  " + "  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)))


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return f"{float(v):.4g}"
    return str(v)


def pyplot() -> Any:
    """Return matplotlib's pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, out: Path, name: str) -> Path:
    """Save ``fig`` as a small PNG (dpi 100) to ``out/name`` and close it.

    Args:
        fig: A matplotlib figure.
        out: Output folder.
        name: File name ending in ``.png``.

    Returns:
        The file written.
    """
    path = out / name
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return path


@dataclass(slots=True)
class Stopwatch:
    """Wall-clock time since construction."""

    start: float = field(default_factory=time.perf_counter)

    @property
    def seconds(self) -> float:
        """Seconds elapsed."""
        return time.perf_counter() - self.start


def finish(out: Path, name: str, results: dict[str, Any], clock: Stopwatch, quick: bool) -> None:
    """Write ``results`` plus the run's mode and runtime to ``out/name`` and print the runtime.

    Args:
        out: Output folder.
        name: JSON file name.
        results: The script's numbers.
        clock: Started when the script began.
        quick: Whether this was a ``--quick`` run.
    """
    results = {"mode": "quick" if quick else "default", "runtime_s": round(clock.seconds, 1), **results}
    path = write_json(out, name, results)
    print(f"\nwrote {path} ({results['mode']} run, {results['runtime_s']} s)")
