"""Measured H100 anchors of the roofline defaults, the fit that produces them, and the table in docs/cost_models.md.

Run ``python -m llmsched_gym.costs.anchors`` to print the fit and the Markdown table.

Anchors (design/executor.md, one H100 80GB HBM3, Llama-2-7B shape, bf16):

* CUDA-graph decode steps at context 1024: B = 1 / 8 / 32 / 64 took 8.3 / 11.7 / 16.1 / 23.6 ms;
* bf16 GEMM ceiling 764 TFLOP/s (8192³); FlashAttention-2 varlen prefill attention ~310 TFLOP/s (0.31 of peak).

Fit: memory efficiency and per-iteration overhead by least squares (relative error) on the decode anchors, where
``t = overhead + (weight bytes + KV bytes) / (e_m * peak bandwidth)``; then the compute efficiency such that a
4096-token prefill achieves ``PREFILL_TARGET_FRACTION`` of the measured GEMM ceiling in model FLOPs per second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmsched_gym.core.batch import BatchSummary
from llmsched_gym.costs.roofline import DEFAULT_ATTENTION_EFFICIENCY, RooflineCostModel, RooflineParams
from llmsched_gym.hardware import GPUS, MODELS, GPUSpec, ModelSpec, get_gpu, get_model

DECODE_ANCHORS: tuple[tuple[int, int, float], ...] = (
    (1, 1024, 8.3e-3),
    (8, 1024, 11.7e-3),
    (32, 1024, 16.1e-3),
    (64, 1024, 23.6e-3),
)
"""``(batch size, context per sequence, measured seconds)`` of CUDA-graph decode steps."""
PREFILL_TARGET_FRACTION = 0.65
"""Target fraction of the measured GEMM ceiling a long prefill achieves (model FLOPs / iteration time)."""
PREFILL_FIT_TOKENS = 4096
PREFILL_TABLE_TOKENS = (512, 1024, 2048, 4096, 8192)


@dataclass(frozen=True, slots=True)
class AnchorFit:
    """Unrounded result of :func:`fit_roofline_defaults`.

    Attributes:
        compute_efficiency: Linear-layer fraction of peak FLOP/s.
        memory_efficiency: Fraction of peak HBM bandwidth.
        overhead_s: Fixed per-iteration seconds.
    """

    compute_efficiency: float
    memory_efficiency: float
    overhead_s: float

    def rounded(self) -> RooflineParams:
        """Parameters rounded as the module defaults are (2 decimals, 0.1 ms)."""
        return RooflineParams(
            compute_efficiency=round(self.compute_efficiency, 2),
            memory_efficiency=round(self.memory_efficiency, 2),
            overhead_s=round(self.overhead_s, 4),
        )


def model_flops(model: ModelSpec, batch: BatchSummary) -> float:
    """Useful FLOPs of one iteration: GEMMs (LM head on one row per sequence) plus causal prefill attention."""
    linear = 2.0 * model.n_layers * model.layer_linear_params * batch.total_tokens
    head = 2.0 * model.vocab * model.hidden * batch.n_seqs
    return linear + head + _attention_flops(model, batch)


def _attention_flops(model: ModelSpec, batch: BatchSummary) -> float:
    chunks = batch.prefill_tokens.astype(np.float64)
    units = float(np.sum(chunks * (batch.prefill_context + chunks / 2.0)))
    return 4.0 * model.n_layers * model.n_heads * model.head_dim * units


def fit_roofline_defaults(
    gpu: GPUSpec | str = "H100-80GB",
    model: ModelSpec | str = "Llama-2-7B",
    *,
    attention_efficiency: float = DEFAULT_ATTENTION_EFFICIENCY,
    prefill_fraction: float = PREFILL_TARGET_FRACTION,
) -> AnchorFit:
    """Fit the roofline's memory efficiency, overhead and compute efficiency to the anchors (module docstring)."""
    g, m = get_gpu(gpu), get_model(model)
    measured = np.array([t for _, _, t in DECODE_ANCHORS])
    bytes_read = np.array(
        [m.streamed_weight_bytes + m.kv_bytes_per_token() * b * (c + 1) for b, c, _ in DECODE_ANCHORS]
    )
    design = np.column_stack((np.ones_like(measured), bytes_read / g.hbm_bandwidth)) / measured[:, None]
    (overhead, inv_eff), *_ = np.linalg.lstsq(design, np.ones_like(measured), rcond=None)
    batch = BatchSummary.of([(PREFILL_FIT_TOKENS, 0)])
    ceiling = g.measured_flops or g.peak_flops
    target_s = model_flops(m, batch) / (prefill_fraction * ceiling)
    attention_s = _attention_flops(m, batch) / (attention_efficiency * g.peak_flops)
    linear_flops = 2.0 * m.n_layers * m.layer_linear_params * PREFILL_FIT_TOKENS + 2.0 * m.vocab * m.hidden
    compute_eff = linear_flops / (g.peak_flops * (target_s - float(overhead) - attention_s))
    return AnchorFit(float(compute_eff), float(1.0 / inv_eff), float(overhead))


def anchor_rows(cost_model: RooflineCostModel | None = None) -> list[tuple[str, float, float | None, str]]:
    """Rows ``(case, model ms, measured ms or None, note)`` comparing a roofline model with the anchors."""
    cm = cost_model or RooflineCostModel()
    rows: list[tuple[str, float, float | None, str]] = []
    for b, c, t in DECODE_ANCHORS:
        pred = cm.iteration_time(BatchSummary.of(n_decodes=b, decode_context_sum=b * c))
        rows.append((f"decode B={b} ctx={c}", pred * 1e3, t * 1e3, f"{(pred / t - 1) * 100:+.1f}%"))
    ceiling = cm.gpu.measured_flops or cm.gpu.peak_flops
    for n in PREFILL_TABLE_TOKENS:
        batch = BatchSummary.of([(n, 0)])
        pred = cm.iteration_time(batch)
        rate = model_flops(cm.model, batch) / pred
        rows.append(
            (
                f"prefill {n} tokens",
                pred * 1e3,
                None,
                f"{rate / 1e12:.0f} TFLOP/s = {rate / ceiling:.0%} of GEMM ceiling",
            )
        )
    return rows


def anchor_table(cost_model: RooflineCostModel | None = None) -> str:
    """The Markdown table of :func:`anchor_rows`."""
    lines = ["| case | model (ms) | measured (ms) | error / achieved rate |", "|---|---|---|---|"]
    for case, pred, measured, note in anchor_rows(cost_model):
        shown = f"{measured:.1f}" if measured is not None else "—"
        lines.append(f"| {case} | {pred:.1f} | {shown} | {note} |")
    return "\n".join(lines)


YI_34B = ModelSpec("Yi-34B", 60, 7168, 56, 8, 128, 20480, 64000)
"""Yi-34B shape (Sarathi-Serve's TP-2 model), for the paper anchors below."""
SARATHI_YI_34B_A100_TP2: tuple[tuple[str, BatchSummary, float], ...] = (
    ("prefill 1024", BatchSummary.of([(1024, 0)]), 217.2e-3),
    ("hybrid 1021 + 3 decodes (ctx 1024 assumed)", BatchSummary.of([(1021, 0)], 3, 3 * 1024), 217.6e-3),
    ("decode 4 (ctx 1024 assumed)", BatchSummary.of(n_decodes=4, decode_context_sum=4 * 1024), 68.1e-3),
)
"""Sarathi-Serve ``osdi-experiments/table-2/results.csv`` (Yi-34B, TP-2 A100): case, batch, measured seconds."""


def crossover_tokens(cost_model: RooflineCostModel) -> float:
    """Batch tokens where the linear layers turn from memory-bound to compute-bound (LM head ignored)."""
    p, g, m = cost_model.params, cost_model.gpu, cost_model.model
    weights_s = m.streamed_weight_bytes / (p.memory_efficiency * g.hbm_bandwidth)
    per_token_s = 2.0 * m.n_layers * m.layer_linear_params / (p.compute_efficiency * g.peak_flops)
    return weights_s / per_token_s


def paper_anchor_table() -> str:
    """Markdown: default roofline vs Sarathi-Serve's Yi-34B TP-2 measurements, and crossover token counts."""
    yi = RooflineCostModel("A100-80GB", YI_34B, tp=2)
    lines = ["| Yi-34B TP-2 A100 case | model (ms) | measured (ms) | error |", "|---|---|---|---|"]
    for case, batch, measured in SARATHI_YI_34B_A100_TP2:
        pred = yi.iteration_time(batch)
        lines.append(f"| {case} | {pred * 1e3:.1f} | {measured * 1e3:.1f} | {(pred / measured - 1) * 100:+.0f}% |")
    lines += ["", "| GPU | " + " | ".join(MODELS) + " |", "|---|" + "---|" * len(MODELS)]
    for gpu in GPUS:
        cells = (f"{crossover_tokens(RooflineCostModel(gpu, model)):.0f}" for model in MODELS)
        lines.append(f"| {gpu} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    """Print the fit and the anchor table of the default roofline model."""
    fit = fit_roofline_defaults()
    print(
        f"fit: compute_efficiency={fit.compute_efficiency:.4f} memory_efficiency={fit.memory_efficiency:.4f} "
        f"overhead_s={fit.overhead_s:.5f}"
    )
    print(f"rounded: {fit.rounded()}")
    print()
    print(anchor_table())
    print()
    print(paper_anchor_table())


if __name__ == "__main__":
    main()
