"""Simulation speed: 10,000 ShareGPT-length requests through Sarathi-Serve on H100 / Llama-2-7B.

Setup (issue "Simulation engine", docs/design/speed.md): prompt/output lengths drawn from the ShareGPT length-stats
file in ``../shared/traces`` with totals above 4096 tokens removed (spec §1.5), Poisson arrivals at
``--rate`` (default: near Sarathi-Serve's capacity on this setup, measured with ``llmsched capacity``
and recorded in docs/benchmarks.md), Sarathi-Serve with chunk 512 and batch cap 128, roofline cost
model for H100-80GB / Llama-2-7B with the KV pool derived from GPU memory.

Runs the simulation twice in one process. ``wall_s`` is the first run: streaming the workload, and the
process's one-time start of numba's runtime and loading of the cached compiled kernels (about 0.35 s,
see docs/benchmarks.md), included. ``warm_wall_s`` is the second, identical run: what each further
simulation of a sweep costs. Also printed: iterations, iterations per second (of the first run),
decisions, peak RSS and ``total_s`` (from the first import of this script to the end of the first run:
imports and setup included). The last line is one JSON object.
"""

from __future__ import annotations

import time

_T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402

import numpy as np  # noqa: E402

from llmsched_gym.core.engine import EngineConfig  # noqa: E402
from llmsched_gym.core.kv import KVConfig  # noqa: E402
from llmsched_gym.core.recorder import RecorderConfig  # noqa: E402
from llmsched_gym.core.runner import SimulatedRunner  # noqa: E402
from llmsched_gym.costs import make_cost_model  # noqa: E402
from llmsched_gym.hardware import get_gpu, get_model, kv_capacity_blocks  # noqa: E402
from llmsched_gym.schedulers import make_scheduler  # noqa: E402
from llmsched_gym.simulate import simulate  # noqa: E402
from llmsched_gym.workloads import make_workload  # noqa: E402

DEFAULT_RATE = 4.4  # Sarathi-Serve capacity here: 4.5 req/s (llmsched capacity, 2048 requests, docs/benchmarks.md)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="requests (default 10000)")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="Poisson rate, req/s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-fast-forward", action="store_true", help="step one iteration at a time")
    args = parser.parse_args()
    gpu, model = get_gpu("H100-80GB"), get_model("Llama-2-7B")
    cfg = EngineConfig(
        KVConfig(kv_capacity_blocks(gpu, model)),
        fast_forward=not args.no_fast_forward,
        recorder=RecorderConfig(sample_dt=1.0),
    )
    runner = SimulatedRunner(make_cost_model("roofline", gpu=gpu, model=model))
    walls = []
    for _ in range(2):
        workload = make_workload(
            "sharegpt", rng=np.random.default_rng(args.seed), n_requests=args.n, rate=args.rate, max_total=4096
        )
        sched = make_scheduler("sarathi", chunk_size=512, max_num_seqs=128)
        t0 = time.perf_counter()
        res = simulate(workload, sched, runner, cfg, seed=args.seed)
        walls.append(time.perf_counter() - t0)
        if len(walls) == 1:
            total = time.perf_counter() - _T_START
            first = res
    if res.end_time != first.end_time or res.iterations != first.iterations:
        raise RuntimeError("the two identical runs differ: the simulation is not deterministic")
    wall = walls[0]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = {
        "wall_s": round(wall, 3),
        "warm_wall_s": round(walls[1], 3),
        "iterations": res.iterations,
        "iterations_per_s": round(res.iterations / wall),
        "decisions": res.decisions,
        "requests": res.n_requests,
        "simulated_s": round(res.end_time, 1),
        "peak_rss_mb": round(rss_mb, 1),
        "total_s": round(total, 3),
    }
    print(
        f"{res.n_requests} requests, {res.iterations} iterations, {res.decisions} decisions in {wall:.3f} s wall "
        f"(first run in this process), {walls[1]:.3f} s warm"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
