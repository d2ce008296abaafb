"""Summaries of a finished run: latency percentiles, throughput, SLO attainment and goodput.

Definitions (spec §1.6):
    * TTFT: arrival → end of the iteration that emits token 1.
    * TBT: every gap between consecutive emitted tokens of a request, stalls and preemptions
      included; percentiles over all gaps of all requests.
    * Scheduling delay: arrival → start of the first iteration that includes the request.
    * E2E: arrival → last token.
    * A request meets its SLO when TTFT ≤ its TTFT target and at most 1% of its gaps exceed its
      TBT target (its own P99 gap is within target). Goodput counts such requests per second.
    * SLO attainment and goodput are measured only against targets that exist: requests without any target are
      left out, and a run in which no request has a target reports no attainment (an empty dict) and a NaN
      goodput rather than a vacuous 100 %.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from llmsched_gym.core.batch import FloatArray
from llmsched_gym.core.table import FINISHED, REJECTED
from llmsched_gym.metrics.fairness import FairnessSummary, fairness_summary
from llmsched_gym.simulate import SimulationResult


def weighted_percentile(values: FloatArray, weights: FloatArray, q: float) -> float:
    """The ``q``-th percentile (0..100) of samples with integer-like weights (lower interpolation)."""
    if values.size == 0:
        return math.nan
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    idx = int(np.searchsorted(cum, q / 100.0 * cum[-1], side="left"))
    return float(values[order][min(idx, values.size - 1)])


def per_request(res: SimulationResult) -> dict[str, np.ndarray]:
    """Per-request metric columns keyed by name (engine ids in arrival order)."""
    c = res.columns
    with np.errstate(invalid="ignore", divide="ignore"):
        tbt_mean = np.where(c["tbt_n"] > 0, c["tbt_sum"] / np.maximum(c["tbt_n"], 1), np.nan)
    return {
        "id": c["ext_id"],
        "client": c["client"],
        "arrival_s": c["arrival"],
        "prompt_tokens": c["prompt"],
        "output_tokens": c["target"],
        "emitted_tokens": c["emitted"],
        "finished": c["state"] == FINISHED,
        "rejected": c["state"] == REJECTED,
        "ttft_s": c["first_token"] - c["arrival"],
        "e2e_s": c["finish"] - c["arrival"],
        "scheduling_delay_s": c["first_sched"] - c["arrival"],
        "tbt_mean_s": tbt_mean,
        "tbt_max_s": np.where(c["tbt_n"] > 0, c["tbt_max"], np.nan),
        "tbt_violations": c["tbt_viol"],
        "preemptions": c["preemptions"],
        "wasted_tokens": c["wasted"],
        "meets_slo": meets_slo(res),
    }


def has_slo(res: SimulationResult) -> np.ndarray:
    """Requests with a TTFT or a TBT target."""
    c = res.columns
    out: np.ndarray = np.isfinite(c["slo_ttft"]) | np.isfinite(c["slo_tbt"])
    return out


def meets_slo(res: SimulationResult) -> np.ndarray:
    """Finished requests whose TTFT and TBT targets hold (see the module docstring)."""
    c = res.columns
    ttft = c["first_token"] - c["arrival"]
    ttft_ok = ttft <= c["slo_ttft"]
    tbt_ok = c["tbt_viol"] <= np.floor(0.01 * c["tbt_n"])
    out: np.ndarray = (c["state"] == FINISHED) & ttft_ok & tbt_ok
    return out


def _pcts(x: np.ndarray) -> dict[str, float]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"mean": math.nan, "p50": math.nan, "p90": math.nan, "p99": math.nan}
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {"mean": float(x.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99)}


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Headline figures of one run (times in seconds, throughputs per second)."""

    scheduler: str
    requests: int
    finished: int
    rejected: int
    makespan_s: float
    ttft: dict[str, float]
    tbt: dict[str, float]
    e2e: dict[str, float]
    scheduling_delay: dict[str, float]
    input_tok_per_s: float
    output_tok_per_s: float
    requests_per_s: float
    slo_attainment: dict[str, float]
    goodput_req_per_s: float
    preemptions: int
    wasted_tokens: int
    kv_util_mean: float
    kv_util_max: float
    iterations: int
    decisions: int
    wall_s: float
    fairness: FairnessSummary | None = field(default=None)

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        """The summary back from :meth:`as_dict` (after a JSON round trip)."""
        fair = data.get("fairness")
        fields = {k: v for k, v in data.items() if k != "fairness"}
        fields = {
            k: ({q: _num(x) for q, x in v.items()} if isinstance(v, dict) else _num(v)) for k, v in fields.items()
        }
        if fair is not None:
            fair = FairnessSummary(**{**fair, "service_per_client": tuple(fair["service_per_client"])})
        return cls(**fields, fairness=fair)


def _num(value: Any) -> Any:
    """JSON ``null`` (a NaN written out) back to NaN."""
    return math.nan if value is None else value


def _tbt_stats(res: SimulationResult) -> dict[str, float]:
    values, weights = res.recorder.tbt_samples()
    if values.size == 0:
        return {"mean": math.nan, "p50": math.nan, "p90": math.nan, "p99": math.nan}
    out = {f"p{q}": weighted_percentile(values, weights, q) for q in (50, 90, 99)}
    out["mean"] = float(np.average(values, weights=weights))
    return {"mean": out["mean"], "p50": out["p50"], "p90": out["p90"], "p99": out["p99"]}


def _slo_attainment(res: SimulationResult, ok: np.ndarray, targeted: np.ndarray) -> dict[str, float]:
    """Attainment among requests with targets (``"all"``) and per SLO class; empty when nothing has a target."""
    c = res.columns
    if not targeted.any():
        return {}
    out = {"all": float(ok[targeted].mean())}
    for idx, name in enumerate(res.slo_names):
        mask = (c["slo_class"] == idx) & targeted
        if mask.any():
            out[name] = float(ok[mask].mean())
    return out


def _kv_util(res: SimulationResult) -> tuple[float, float]:
    samples = res.recorder.samples
    if not samples:
        return math.nan, math.nan
    used = np.array([s[1] for s in samples], dtype=np.float64) / res.total_blocks
    return float(used.mean()), float(used.max())


def summarize(res: SimulationResult) -> RunSummary:
    """Compute the :class:`RunSummary` of a run."""
    c = res.columns
    fin = c["state"] == FINISHED
    start = float(c["arrival"].min()) if c["arrival"].size else 0.0
    span = max(res.end_time - start, 1e-12)
    targeted = has_slo(res)
    ok = meets_slo(res) & targeted
    kv_mean, kv_max = _kv_util(res)
    return RunSummary(
        scheduler=res.scheduler,
        requests=res.n_requests,
        finished=int(fin.sum()),
        rejected=int((c["state"] == REJECTED).sum()),
        makespan_s=span,
        ttft=_pcts((c["first_token"] - c["arrival"])[fin]),
        tbt=_tbt_stats(res),
        e2e=_pcts((c["finish"] - c["arrival"])[fin]),
        scheduling_delay=_pcts((c["first_sched"] - c["arrival"])[fin]),
        input_tok_per_s=float(c["prompt"][fin].sum()) / span,
        output_tok_per_s=float(c["emitted"].sum()) / span,
        requests_per_s=float(fin.sum()) / span,
        slo_attainment=_slo_attainment(res, ok, targeted),
        goodput_req_per_s=float(ok.sum()) / span if targeted.any() else math.nan,
        preemptions=int(c["preemptions"].sum()),
        wasted_tokens=int(c["wasted"].sum()),
        kv_util_mean=kv_mean,
        kv_util_max=kv_max,
        iterations=res.iterations,
        decisions=res.decisions,
        wall_s=res.wall_s,
        fairness=fairness_summary(res),
    )
