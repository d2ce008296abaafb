"""Per-request features the -v1 priority action weights (computed for every waiting request, not only slots)."""

from __future__ import annotations

import numpy as np

from llmsched_gym.core.batch import FloatArray, IntArray
from llmsched_gym.core.view import EngineView
from llmsched_gym.env import _rule_kernels as _kernels

PRIORITY_FEATURES: tuple[str, ...] = (
    "ttft_missed",
    "ttft_slack",
    "prompt_len",
    "remaining_prefill",
    "predicted_output",
    "time_waited",
    "preempted",
    "client_service",
    "tbt_target",
)
"""Request features the priority action weights (see :func:`request_features`)."""


def request_features(view: EngineView, ids: IntArray, service: FloatArray) -> np.ndarray:
    """The :data:`PRIORITY_FEATURES` of waiting requests ``ids`` (one row each), each in ``[-1, 1]``.

    ``ttft_missed`` 1 once the TTFT deadline has passed without a first token; ``ttft_slack`` the time left to the
    deadline, ``x / (|x| + 1 s)``; token counts ``log1p(n) / log1p(16384)`` (prompt, pending prefill, predicted
    output, 0 without a prediction); ``time_waited`` ``t / (t + 1 s)``; ``preempted`` 1 after a preemption;
    ``client_service`` the client's VTC service minus the mean over the clients served so far,
    ``d / (|d| + 10,000)``; ``tbt_target``
    ``t / (t + 0.1 s)`` (1 without a target).
    """
    served = service[service > 0.0]
    mean = float(served.mean()) if served.size else 0.0
    out: np.ndarray = _kernels.features(
        ids, view.now, view.arrival, view.slo_ttft, view.first_token, view.prompt, view.generated, view.computed,
        view.predicted, view.preemptions, view.client, view.slo_tbt, service, mean,
    )  # fmt: skip
    return out
