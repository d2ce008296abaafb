"""``llmsched calibrate profile | fit | validate | compare | import-splitwise`` (docs/calibration.md).

Register with ``add_calibrate_parser(subparsers)``; building the parser imports neither torch nor the executor
(the handlers in :mod:`gpu_calibration.commands` import them when a command runs).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _target_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("executor (use the settings of the live run)")
    g.add_argument("--model", default="tiny-llama", help="built-in model shape, random weights (default tiny-llama)")
    g.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    g.add_argument("--dtype", default="float32", help="float32 (default), bfloat16 or float16")
    g.add_argument("--block-size", type=int, default=16, help="KV block size (default 16)")
    g.add_argument("--num-blocks", type=int, default=None, help="KV blocks (default: free GPU memory; 4096 on CPU)")
    g.add_argument("--no-cuda-graphs", action="store_true", help="run decode iterations eagerly")
    g.add_argument("--max-tokens", type=int, default=8192, help="most tokens per iteration (default 8192)")
    g.add_argument("--max-seqs", type=int, default=512, help="most rows per iteration (default 512)")
    g.add_argument("--clock", choices=("auto", "wall", "cpu"), default="auto",
                   help="time iterations in wall time or the serving thread's CPU time (auto: cpu on a CPU device, "
                   "wall on a GPU; profile and compare must use the same)")  # fmt: skip


def _add_profile(sub: Any) -> None:
    p = sub.add_parser("profile", help="time designed batches on the live executor; write a measurement file",
                       description="Time the executor's iterations over the designed grid and random mixed batches "
                       "(held out for validation): warm-up, repeats, medians, random order, noise flags.")  # fmt: skip
    _target_arguments(p)
    p.add_argument("--design", choices=("small", "full"), default="full", help="grid size (small: ~75 batches)")
    p.add_argument("--max-context", type=int, default=None, help="longest designed row: cached + new tokens")
    p.add_argument("--n-random", type=int, default=None, help="random mixed batches to hold out")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per visit (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per visit (default 3)")
    p.add_argument("--rounds", type=int, default=2, help="visits per batch, each in a new random order (default 2)")
    p.add_argument("--time-budget", type=float, default=None, help="seconds after which no new round starts")
    p.add_argument("--engine-overhead", default="sarathi", metavar="SCHEDULER",
                   help="measure the live engine's time per decision with this scheduler and add it to the fit's "
                   "fixed_s (default sarathi; 'none' to skip)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the design and the visiting order")
    p.add_argument("--out", type=Path, required=True, help="measurement JSON to write")


def _add_fit(sub: Any) -> None:
    p = sub.add_parser("fit", help="fit the operator cost form to measurements; write a profile",
                       description="Fit a measurement file (or a points CSV) and write the profile JSON with grid, "
                       "fit, validation and provenance.")  # fmt: skip
    p.add_argument("measurement", type=Path, help="measurement JSON, or a points CSV (then give --gpu, --model)")
    p.add_argument("--out", type=Path, required=True, help="profile JSON to write")
    p.add_argument("--gpu", default=None, help="GPU name (points CSV only)")
    p.add_argument("--model", default=None, help="catalog model name (points CSV only)")
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (points CSV only)")
    p.add_argument("--block-size", type=int, default=None, help="KV block size (points CSV only)")
    p.add_argument("--tiles", default="0,16,32,64,128", help="candidate GEMM tiles (default 0,16,32,64,128)")
    p.add_argument("--holdout-fraction", type=float, default=0.0, help="grid points held out at random (default 0)")
    p.add_argument("--folds", type=int, default=0, help="cross-validation folds when nothing is held out")
    p.add_argument("--starts", type=int, default=4, help="optimisation starts (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the starts")


def _add_validate(sub: Any) -> None:
    p = sub.add_parser("validate", help="held-out error of a profile and plots of predicted vs measured",
                       description="Report a profile's per-iteration error on its held-out points (and on further "
                       "measurements), check it against the goals, and plot predicted vs measured.")  # fmt: skip
    p.add_argument("profile", type=Path, help="profile JSON")
    p.add_argument("--points", type=Path, default=None, help="further measurements (JSON or points CSV) to check")
    p.add_argument("--plot", type=Path, default=None, help="write the predicted-vs-measured plot here (.png)")
    p.add_argument("--max-median", type=float, default=None, help="exit 1 if the held-out median error exceeds it")
    p.add_argument("--max-p90", type=float, default=None, help="exit 1 if the held-out p90 error exceeds it")


def _add_compare(sub: Any) -> None:
    p = sub.add_parser("compare", help="the same trace live and simulated with a profile, side by side",
                       description="Serve a workload on the live executor and simulate it with the profile; print "
                       "TTFT / TBT percentiles, throughput and the per-iteration error.")  # fmt: skip
    _target_arguments(p)
    p.add_argument("--profile", type=Path, required=True, help="profile JSON of this executor")
    p.add_argument("--workload", default="sharegpt", help="named workload (default sharegpt)")
    p.add_argument("--trace-dir", default=None, help="folder with public traces")
    p.add_argument("--n-requests", type=int, default=60, help="requests (default 60)")
    p.add_argument("--rate", type=float, default=None, help="arrival rate, requests/s")
    p.add_argument("--max-total", type=int, default=None, help="drop requests whose prompt + output exceed this")
    p.add_argument("--scheduler", default="sarathi", help="registered scheduler (default sarathi)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="scheduler parameter")
    p.add_argument("--seed", type=int, default=0, help="seed of the workload and the scheduler")
    p.add_argument("--live-runs", type=int, default=1, help="serve the trace live this many times (median, range)")
    p.add_argument("--max-error", type=float, default=None, help="exit 1 if a TTFT/TBT p50/p99 differs by more")
    p.add_argument("--out", type=Path, default=None, help="folder for comparison.json and comparison.png")


def _add_import(sub: Any) -> None:
    p = sub.add_parser("import-splitwise", help="fit profiles of the public Splitwise characterisation",
                       description="Import ../shared/calibration/splitwise_perf_model.csv into imported profiles "
                       "(one per GPU, model and TP).")  # fmt: skip
    p.add_argument("--csv", type=Path, default=None, help="the CSV (default ../shared/calibration/...)")
    p.add_argument("--out", type=Path, default=None, help="profiles folder (default: the package's)")


def add_calibrate_parser(subparsers: Any) -> None:
    """Add ``calibrate`` with its subcommands to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "calibrate",
        help="measure the executor, fit and validate cost profiles, compare simulation with live runs",
        description="GPU calibration (docs/calibration.md): profile -> fit -> validate -> compare.",
    )
    sub = p.add_subparsers(dest="calibrate_command", required=True, metavar="STEP", help="the calibration step")
    for add in (_add_profile, _add_fit, _add_validate, _add_compare, _add_import):
        add(sub)
    p.set_defaults(handler=run_calibrate)


def run_calibrate(args: argparse.Namespace) -> int:
    """Dispatch to the handler of the chosen step; returns the exit status."""
    from gpu_calibration import commands

    handler = {
        "profile": commands.run_profile,
        "fit": commands.run_fit,
        "validate": commands.run_validate,
        "compare": commands.run_compare,
        "import-splitwise": commands.run_import,
    }[args.calibrate_command]
    return handler(args)
