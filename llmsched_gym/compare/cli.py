"""The ``llmsched compare`` options; the command itself is :mod:`llmsched_gym.compare.command`."""

from __future__ import annotations

import argparse
from typing import Any

from llmsched_gym.cli.arguments import add_setup_arguments, scheduler_name
from llmsched_gym.cli.validate import integer, listed, number, out_dir

COMPARE_REQUESTS = 500
"""Requests per run when neither --n-requests nor --duration is given (see ``llmsched_gym.compare.command``)."""


def add_compare_parser(sub: Any) -> None:
    """Register ``llmsched compare``."""
    p = sub.add_parser(
        "compare",
        help="compare schedulers over a load sweep: table, CSV and PNG plots",
        description="Run several schedulers on the same arrival sequences over a load sweep and seeds. Each run "
        "is appended to OUT_DIR/compare.csv as it finishes; rerunning the command resumes a killed sweep.",
    )
    p.add_argument("--schedulers", type=listed(scheduler_name, what="scheduler names"), default=("vllm-v1", "sarathi"),
                   help="comma-separated registered names (default vllm-v1,sarathi)")  # fmt: skip
    rate = number(low=0, low_open=True, what="requests/s")
    p.add_argument("--rates", type=listed(rate, what="rates"), default=None,
                   help="comma-separated arrival rates in requests/s (default: the single --rate)")  # fmt: skip
    p.add_argument("--seeds", type=listed(integer(low=0), what="seeds"), default=(0,),
                   help="comma-separated workload seeds, one replication each (default 0)")  # fmt: skip
    p.add_argument("--jobs", type=integer(low=1), default=2, help="worker processes (default 2)")
    p.add_argument("--out-dir", type=out_dir, default="compare-out", help="folder for CSV and PNGs (compare-out)")
    p.add_argument("--overwrite", action="store_true", help="discard earlier results in --out-dir instead of resuming")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (no matplotlib needed)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    seconds = number(low=0, low_open=True, what="seconds")
    p.add_argument("--p99-tbt", type=seconds, default=None, help="SLO for the capacity bars: max P99 TBT (s)")
    p.add_argument("--median-ttft", type=seconds, default=None, help="SLO for the capacity bars: max median TTFT")
    p.add_argument("--median-sched-delay", type=seconds, default=2.0, help="SLO: max median scheduling delay (2)")
    add_setup_arguments(p)
    p.set_defaults(handler=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    """Handler of ``compare`` (the engine and the sweep load only when it runs)."""
    from llmsched_gym.compare.command import run

    return run(args)


__all__ = ["COMPARE_REQUESTS", "add_compare_parser", "run_compare"]
