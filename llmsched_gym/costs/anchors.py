"""Measured H100 anchors of the ``cuda-graphs`` roofline preset, the fit that produces it, and its table.

Run ``python -m llmsched_gym.costs.anchors`` to print the fit and the Markdown tables of docs/cost_models.md.

Anchors (design/executor.md, one H100 80GB HBM3, Llama-2-7B shape, bf16, the project's executor):

* CUDA-graph decode steps at context 1024: B = 1 / 8 / 32 / 64 took 8.3 / 11.7 / 16.1 / 23.6 ms;
* bf16 GEMM ceiling 764 TFLOP/s (8192³); FlashAttention-2 varlen prefill attention ~310 TFLOP/s (0.31 of peak).

Fit (:func:`fit_cuda_graph_preset`): memory efficiency, per-iteration overhead and compute efficiency by least
squares of the relative error on the four decode anchors and on the target (weighted 5) that a 4096-token
prefill achieves ``PREFILL_TARGET_FRACTION`` of the measured GEMM ceiling; no launch floors (graph replay), the
GEMM smoothness of the public fit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from llmsched_gym.core.batch import BatchSummary, FloatArray
from llmsched_gym.costs.lsq import levenberg_marquardt
from llmsched_gym.costs.roofline import RooflineCostModel, RooflineParams
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
PREFILL_WEIGHT = 5.0
"""Weight of the prefill target against each decode anchor (one prefill target, four decode anchors)."""
PREFILL_TABLE_TOKENS = (512, 1024, 2048, 4096, 8192)


@dataclass(frozen=True, slots=True)
class AnchorFit:
    """Unrounded result of :func:`fit_cuda_graph_preset`.

    Attributes:
        compute_efficiency: Linear-layer fraction of peak FLOP/s.
        memory_efficiency: Fraction of peak HBM bandwidth.
        overhead_s: Fixed per-iteration seconds.
    """

    compute_efficiency: float
    memory_efficiency: float
    overhead_s: float

    def rounded(self) -> RooflineParams:
        """The ``cuda-graphs`` preset these values round to (2 decimals, 0.1 ms)."""
        return replace(
            RooflineParams.cuda_graphs(),
            compute_efficiency=round(self.compute_efficiency, 2),
            memory_efficiency=round(self.memory_efficiency, 2),
            overhead_s=round(self.overhead_s, 4),
        )


def model_flops(model: ModelSpec, batch: BatchSummary) -> float:
    """Useful FLOPs of one iteration: GEMMs (LM head on one row per sequence) plus causal prefill attention."""
    linear = 2.0 * model.n_layers * model.layer_linear_params * batch.total_tokens
    head = 2.0 * model.vocab * model.hidden * batch.n_seqs
    chunks = batch.prefill_tokens.astype(np.float64)
    units = float(np.sum(chunks * (batch.prefill_context + chunks / 2.0)))
    return linear + head + 4.0 * model.n_layers * model.n_heads * model.head_dim * units


def fit_cuda_graph_preset(
    gpu: GPUSpec | str = "H100-80GB",
    model: ModelSpec | str = "Llama-2-7B",
    *,
    prefill_fraction: float = PREFILL_TARGET_FRACTION,
) -> AnchorFit:
    """Fit the ``cuda-graphs`` preset's memory efficiency, overhead and compute efficiency (module docstring)."""
    g, m = get_gpu(gpu), get_model(model)
    base = RooflineParams.cuda_graphs()
    batches = [BatchSummary.of(n_decodes=b, decode_context_sum=b * c) for b, c, _ in DECODE_ANCHORS]
    prefill = BatchSummary.of([(PREFILL_FIT_TOKENS, 0)])
    targets = np.array(
        [t for _, _, t in DECODE_ANCHORS] + [model_flops(m, prefill) / (prefill_fraction * (g.measured_flops or 1))]
    )

    def params(theta: FloatArray) -> RooflineParams:
        e_c, e_m = (1.0 / (1.0 + np.exp(-t)) for t in theta[:2])
        return replace(base, compute_efficiency=e_c, memory_efficiency=e_m, overhead_s=float(np.exp(theta[2])))

    weights = np.array([1.0] * len(batches) + [PREFILL_WEIGHT])

    def residuals(theta: FloatArray) -> FloatArray:
        cm = RooflineCostModel(g, m, params=params(theta))
        return weights * (np.log([cm.iteration_time(b) for b in [*batches, prefill]]) - np.log(targets))

    result = levenberg_marquardt(residuals, np.array([0.3, 0.7, np.log(2.7e-3)]))
    p = params(result.x)
    return AnchorFit(float(p.compute_efficiency), float(p.memory_efficiency), float(p.overhead_s))


def anchor_rows(cost_model: RooflineCostModel | None = None) -> list[tuple[str, float, float | None, str]]:
    """Rows ``(case, model ms, measured ms or None, note)`` comparing a roofline model with the anchors."""
    cm = cost_model or RooflineCostModel(params=RooflineParams.cuda_graphs())
    rows: list[tuple[str, float, float | None, str]] = []
    for b, c, t in DECODE_ANCHORS:
        pred = cm.iteration_time(BatchSummary.of(n_decodes=b, decode_context_sum=b * c))
        rows.append((f"decode B={b} ctx={c}", pred * 1e3, t * 1e3, f"{(pred / t - 1) * 100:+.1f}%"))
    ceiling = cm.gpu.measured_flops or cm.gpu.peak_flops
    for n in PREFILL_TABLE_TOKENS:
        batch = BatchSummary.of([(n, 0)])
        pred = cm.iteration_time(batch)
        rate = model_flops(cm.model, batch) / pred
        note = f"{rate / 1e12:.0f} TFLOP/s = {rate / ceiling:.0%} of GEMM ceiling"
        rows.append((f"prefill {n} tokens", pred * 1e3, None, note))
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
    """Batch tokens where the linear layers' GEMM time equals their weight-streaming time (LM head ignored)."""
    c = cost_model.coefficients
    return c.weights_s / c.token_s


def paper_anchor_table() -> str:
    """Markdown: both parameter sets vs Sarathi-Serve's Yi-34B TP-2 measurements, and crossover token counts."""
    models = {
        "defaults": RooflineCostModel("A100-80GB", YI_34B, tp=2),
        "cuda-graphs": RooflineCostModel("A100-80GB", YI_34B, tp=2, params=RooflineParams.cuda_graphs()),
    }
    lines = ["| Yi-34B TP-2 A100 case | measured (ms) | " + " | ".join(f"{n} (ms, error)" for n in models) + " |"]
    lines.append("|---|---|" + "---|" * len(models))
    for case, batch, measured in SARATHI_YI_34B_A100_TP2:
        cells = [f"{m.iteration_time(batch) * 1e3:.1f} ({(m.iteration_time(batch) / measured - 1):+.0%})" for m in
                 models.values()]  # fmt: skip
        lines.append(f"| {case} | {measured * 1e3:.1f} | " + " | ".join(cells) + " |")
    lines += ["", "| GPU | " + " | ".join(MODELS) + " |", "|---|" + "---|" * len(MODELS)]
    for gpu in GPUS:
        crossovers = (f"{crossover_tokens(RooflineCostModel(gpu, model)):.0f}" for model in MODELS)
        lines.append(f"| {gpu} | " + " | ".join(crossovers) + " |")
    return "\n".join(lines)


def main() -> None:
    """Print the fit and the anchor tables of the ``cuda-graphs`` preset."""
    fit = fit_cuda_graph_preset()
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
