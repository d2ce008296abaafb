"""Importer of the Splitwise characterisation (../shared/calibration/splitwise_perf_model.csv) into profiles.

Run ``python -m gpu_calibration.splitwise [--csv PATH] [--out DIR]`` to (re)build the shipped profiles
``llmsched_gym/profiles/<gpu>/<model>-tp<N>.json`` for every (model, GPU, TP) of the file. Each is marked
``source: imported`` with its reference and caveats; its grid holds the points derived from the file:

* prefill: ``batch_size`` chunks of ``prompt_size`` tokens over an empty cache, measured ``prompt_time``;
* decode: ``batch_size`` decode rows whose context grows from ``prompt_size`` over ``token_size`` steps,
  measured ``token_time`` (the mean step), recorded at the mean context ``prompt_size + (token_size - 1) / 2``
  (exact for the operator form's linear context terms when the step is GPU-bound);

each the median of the file's repeats, with their relative spread. The fit uses 4-fold cross-validation (the
grid has 32 points per setup, too few to set a hold-out apart) and screens outliers (the file's two implausible
prefill points are flagged).
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from gpu_calibration.fitting import fit_measurement
from gpu_calibration.measurement import Measurement
from llmsched_gym.core.batch import BatchSummary
from llmsched_gym.costs.operator import OperatorParams
from llmsched_gym.costs.operator_fit import OperatorFitConfig
from llmsched_gym.costs.profile import PROFILES_DIR, Profile, profile_path
from llmsched_gym.costs.profile_fit import MeasuredPoint
from llmsched_gym.hardware import get_gpu, get_model

DEFAULT_CSV = Path(__file__).resolve().parent.parent.parent / "shared" / "calibration" / "splitwise_perf_model.csv"
GPUS = {"a100-80gb": "A100-80GB", "h100-80gb": "H100-80GB", "h100-80gb-pcap": "H100-80GB-PCAP"}
MODELS = {"llama2-70b": "Llama-2-70B", "bloom-176b": "BLOOM-176B"}
REFERENCE = (
    "Splitwise characterisation (Patel et al., ISCA'24): GitHub Mutinifni/splitwise-sim data/perf_model.csv at "
    "commit 8f99e7dc9b40 (MIT), via ../shared/calibration/splitwise_perf_model.csv"
)
CAVEATS = (
    "serving engine and version not stated by the source; block size unknown",
    "no mixed prefill + decode batches and no prefill over a cached context: prefill_ctx_s, seq_s, decode_s and "
    "fixed_s are not identifiable here and stay 0",
    "decode steps are means over token_size steps, recorded at the mean context",
    "decode context varies only at batch 1; batched decodes are at prompt 512",
    "validated by 4-fold cross-validation over the file's 32 points per setup",
)
PUBLIC_FREE = ("floor_s", "host_seq_s", "overlap_p", "weights_s", "token_s", "gemm_p", "chunk_s", "attn_s", "kv_s")
"""Coefficients the public grid identifies (prefill-only and decode-only iterations, one TP degree)."""
Setup = tuple[str, str, int]


def read_rows(path: Path) -> dict[tuple[str, str, int, int, int, int], list[tuple[float, float]]]:
    """Repeats of ``(prompt_time, token_time)`` in ms keyed by (model, hardware, tp, prompt, batch, tokens)."""
    groups: dict[tuple[str, str, int, int, int, int], list[tuple[float, float]]] = defaultdict(list)
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            key = (row["model"], row["hardware"], int(row["tensor_parallel"]), int(row["prompt_size"]),
                   int(row["batch_size"]), int(row["token_size"]))  # fmt: skip
            groups[key].append((float(row["prompt_time"]), float(row["token_time"])))
    return groups


def _point(batch: BatchSummary, ms: list[float]) -> MeasuredPoint:
    median = statistics.median(ms)
    ordered = sorted(ms)
    spread = (ordered[-1] - ordered[0]) / median
    return MeasuredPoint.from_summary(batch, median / 1e3, spread=round(spread, 4), repeats=len(ms))


def setup_points(
    groups: dict[tuple[str, str, int, int, int, int], list[tuple[float, float]]], setup: Setup
) -> list[MeasuredPoint]:
    """The prefill and decode points of one (model, hardware, tp) setup (module docstring)."""
    points = []
    for key in sorted(k for k in groups if k[:3] == setup):
        prompt, batch, tokens = key[3:]
        repeats = groups[key]
        if tokens == 128:
            points.append(_point(BatchSummary.of([(prompt, 0)] * batch), [p for p, _ in repeats]))
        context = batch * (prompt + (tokens - 1) / 2)
        decode = BatchSummary.of(n_decodes=batch, decode_context_sum=round(context))
        points.append(_point(decode, [t for _, t in repeats]))
    return points


def import_setup(groups: dict[tuple[str, str, int, int, int, int], list[tuple[float, float]]], setup: Setup) -> Profile:
    """Fit and return the profile of one setup."""
    model_key, gpu_key, tp = setup
    gpu, model = get_gpu(GPUS[gpu_key]), get_model(MODELS[model_key])
    measurement = Measurement(
        gpu_name=gpu.name, gpu_memory_bytes=gpu.memory_bytes, model=model, tp=tp, block_size=None,
        executor_version="unknown (Splitwise characterisation)", created="2024-03-29",
        provenance="imported by gpu_calibration.splitwise: median of the file's repeats per configuration",
        points=tuple(setup_points(groups, setup)), source="imported", reference=REFERENCE, caveats=CAVEATS,
        executor_info={"source_columns": "prompt_time, token_time (ms)", "source_hardware": gpu_key},
    )  # fmt: skip
    config = OperatorFitConfig(free=PUBLIC_FREE, base=OperatorParams(floor_s=0.01), folds=4, seed=0)
    return fit_measurement(measurement, config)


def setups(groups: Iterable[tuple[str, str, int, int, int, int]]) -> list[Setup]:
    """Every (model, hardware, tp) of the file."""
    return sorted({k[:3] for k in groups})


def main(argv: list[str] | None = None) -> None:
    """Rebuild the shipped imported profiles."""
    parser = argparse.ArgumentParser(description="Import the Splitwise characterisation into profiles.")
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="splitwise_perf_model.csv")
    parser.add_argument("--out", type=Path, default=PROFILES_DIR, help="profiles folder")
    args = parser.parse_args(argv)
    groups = read_rows(args.csv)
    for setup in setups(groups):
        profile = import_setup(groups, setup)
        path = profile.save(profile_path(profile.gpu_name, profile.model.name, tp=profile.tp, root=args.out))
        v = profile.validation
        print(f"{path}: median {v.median_abs_error:.1%}, p90 {v.p90_abs_error:.1%} ({v.n_holdout} points, CV)")


if __name__ == "__main__":
    main()
