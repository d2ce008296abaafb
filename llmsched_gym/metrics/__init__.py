"""Per-request metrics, run summaries, fairness measures and the capacity search."""

from llmsched_gym.metrics.summary import RunSummary, per_request, summarize, weighted_percentile

__all__ = ["RunSummary", "per_request", "summarize", "weighted_percentile"]
