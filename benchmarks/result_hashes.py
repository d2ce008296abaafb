"""Result hashes of every registered scheduler on the benchmark workloads (behaviour-change detector).

For each workload and each scheduler of ``llmsched_gym.schedulers.REGISTRY`` this runs one simulation with the
default engine configuration (compiled step, fast-forward, segments where a scheduler has them) and prints a
SHA-256 digest of everything it recorded: every per-request column and the rejection reasons, the iteration log,
the time series (KV use, queue lengths, per-client service and backlog), the TBT samples with their weights (as
a sorted multiset: compiled segments and the Python path record the same gaps in different orders), the end
time and the iteration and decision counts. Two code versions behave identically on these workloads when every
digest agrees. The wall time of each run is printed too (the ``sim10k`` column of docs/benchmarks.md's table).

Workloads (all need ``../shared/traces``; the script exits with a message when the files are absent):

* ``sim10k``: the ``benchmarks/sim_speed.py`` workload (10,000 ShareGPT-length requests, 4.4 req/s, H100 /
  Llama-2-7B roofline, KV pool from GPU memory, samples every 1 s);
* ``kv-pressure``: 1,200 ShareGPT-length requests at 6 req/s on a 240-block pool (some requests can never fit
  and are rejected; the rest preempt each other);
* ``multi-client``: the VTC LMSYS trace (1,500 requests of 27 clients) on a 3,000-block pool, with per-client
  time series.

Usage::

    python benchmarks/result_hashes.py                       # every workload, every scheduler
    python benchmarks/result_hashes.py --workload kv-pressure --scheduler vllm-v1 sarathi
    python benchmarks/result_hashes.py --json hashes.json    # also write {workload: {scheduler: {...}}}

The last line is one JSON object with the digests (and wall times) of the runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmsched_gym.core.engine import EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.recorder import RecorderConfig
from llmsched_gym.core.request import Request
from llmsched_gym.core.runner import SimulatedRunner
from llmsched_gym.costs import make_cost_model
from llmsched_gym.errors import LLMSchedError
from llmsched_gym.hardware import get_gpu, get_model, kv_capacity_blocks
from llmsched_gym.schedulers import REGISTRY, make_scheduler
from llmsched_gym.simulate import SimulationResult, simulate
from llmsched_gym.workloads import make_workload


@dataclass(frozen=True, slots=True)
class Workload:
    """A named benchmark setup: requests, KV pool size and sampling period."""

    name: str
    requests: Callable[[], Iterator[Request]]
    blocks: int
    sample_dt: float


def workloads() -> dict[str, Workload]:
    """The benchmark setups (see the module docstring)."""
    gpu, model = get_gpu("H100-80GB"), get_model("Llama-2-7B")

    def sharegpt(n: int, rate: float, seed: int) -> Callable[[], Iterator[Request]]:
        rng = np.random.default_rng
        return lambda: make_workload("sharegpt", rng=rng(seed), n_requests=n, rate=rate, max_total=4096)

    return {
        "sim10k": Workload("sim10k", sharegpt(10_000, 4.4, 0), kv_capacity_blocks(gpu, model), 1.0),
        "kv-pressure": Workload("kv-pressure", sharegpt(1_200, 6.0, 1), 240, 0.5),
        "multi-client": Workload(
            "multi-client", lambda: make_workload("vtc-lmsys", rng=np.random.default_rng(2)), 3_000, 1.0
        ),
    }


def digest(res: SimulationResult) -> dict[str, str]:
    """Digests of a result's parts and of the whole (16 hex digits each)."""
    rec = res.recorder
    parts: dict[str, hashlib._Hash] = {k: hashlib.sha256() for k in ("columns", "iterations", "tbt", "series")}
    for name in sorted(res.columns):
        parts["columns"].update(name.encode() + np.ascontiguousarray(res.columns[name]).tobytes())
    parts["columns"].update(repr(sorted(res.reject_reason.items())).encode())
    parts["iterations"].update(np.asarray(rec.iterations, dtype=np.float64).tobytes())
    parts["iterations"].update(repr((res.end_time, res.iterations, res.decisions)).encode())
    values, weights = rec.tbt_samples()
    order = np.lexsort((weights, values))
    parts["tbt"].update(values[order].tobytes() + weights[order].tobytes())
    parts["series"].update(np.asarray(rec.samples, dtype=np.float64).tobytes())
    for arr in (*rec.client_service, *rec.client_backlogged):
        parts["series"].update(np.ascontiguousarray(arr).tobytes())
    out = {k: h.hexdigest()[:16] for k, h in parts.items()}
    out["all"] = hashlib.sha256("".join(out.values()).encode()).hexdigest()[:16]
    return out


def run_one(w: Workload, name: str) -> dict[str, Any]:
    """Simulate ``w`` with scheduler ``name``; returns its digests, wall time and counts (or the error)."""
    gpu, model = get_gpu("H100-80GB"), get_model("Llama-2-7B")
    runner = SimulatedRunner(make_cost_model("roofline", gpu=gpu, model=model))
    cfg = EngineConfig(KVConfig(w.blocks), max_idle_decisions=50_000, recorder=RecorderConfig(sample_dt=w.sample_dt))
    t0 = time.perf_counter()
    try:
        res = simulate(w.requests(), make_scheduler(name), runner, cfg, seed=0)
    except LLMSchedError as exc:  # a deterministic failure is a result too
        text = f"{type(exc).__name__}: {exc}"
        return {"all": hashlib.sha256(text.encode()).hexdigest()[:16], "error": text, "wall_s": 0.0}
    wall = time.perf_counter() - t0
    counts = {
        "iterations": res.iterations,
        "decisions": res.decisions,
        "preemptions": int(res.columns["preemptions"].sum()),
        "rejected": len(res.reject_reason),
    }
    return {**digest(res), "wall_s": round(wall, 3), **counts}


def main() -> None:
    """Parse arguments, run the simulations and print one line per run and a final JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    setups = workloads()
    parser.add_argument("--workload", nargs="*", default=list(setups), choices=list(setups))
    parser.add_argument("--scheduler", nargs="*", default=list(REGISTRY), help="registered names (default: all)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    try:
        make_workload("sharegpt", rng=np.random.default_rng(0), n_requests=1)
    except LLMSchedError as exc:
        sys.exit(f"result_hashes: the trace files are needed ({exc})")
    results: dict[str, dict[str, Any]] = {}
    for wname in args.workload:
        results[wname] = {}
        for name in args.scheduler:
            out = run_one(setups[wname], name)
            results[wname][name] = out
            extra = out.get("error") or ", ".join(
                f"{out[k]} {k}" for k in ("iterations", "decisions", "preemptions", "rejected")
            )
            print(f"{wname:13s} {name:20s} {out['all']}  {out['wall_s']:8.3f} s  {extra}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, sort_keys=True)
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
