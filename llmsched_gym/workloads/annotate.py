"""Attach scheduler-side knowledge to a request stream: predicted output lengths, WAIT types, SLO classes.

Each function is lazy (iterator in, iterator out) and keeps ids and arrival order unchanged.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from llmsched_gym.core.request import Request, SLOClass
from llmsched_gym.workloads._validate import require_int_at_least, require_non_negative
from llmsched_gym.workloads.arrivals import BLOCK


def _uniforms(rng: np.random.Generator, low: float, high: float) -> Iterator[float]:
    while True:
        yield from rng.uniform(low, high, BLOCK).tolist()


def with_predictions(
    requests: Iterable[Request], *, eps: float = 0.0, rng: np.random.Generator | None = None
) -> Iterator[Request]:
    """Set ``predicted_output_len``: exact (``eps=0``) or noisy with relative error up to ``eps``.

    The noisy prediction is ``max(1, round(o * (1 + u)))`` with ``u`` uniform on ``[-eps, eps]``, i.e. uniform on
    ``[(1 - eps) o, (1 + eps) o]`` (MC-SF's ``noisy(eps)`` predictor; VTC's ±50 % oracle uses ``eps=0.5``).

    Args:
        requests: The stream.
        eps: Largest relative error (>= 0).
        rng: Source of the noise; required when ``eps > 0``.

    Returns:
        The stream with predictions attached.

    Raises:
        ValueError: ``eps`` is negative, or ``eps > 0`` without ``rng``.
    """
    require_non_negative("with_predictions", "eps", eps, "eps is a relative error such as 0.2")
    if eps > 0 and rng is None:
        raise ValueError(f"with_predictions: eps={eps} needs rng=np.random.default_rng(seed) for the noise")
    return _predicted(requests, eps, rng)


def _predicted(requests: Iterable[Request], eps: float, rng: np.random.Generator | None) -> Iterator[Request]:
    noise = _uniforms(rng, -eps, eps) if rng is not None and eps > 0 else None
    for request in requests:
        factor = 1.0 if noise is None else 1.0 + next(noise)
        predicted = max(1, round(request.output_len * factor))
        yield dataclasses.replace(request, predicted_output_len=predicted)


def with_type_labels(requests: Iterable[Request], type_outputs: Sequence[int]) -> Iterator[Request]:
    """Set ``type_label`` by WAIT's output-length rule.

    Type ``j`` has output length ``type_outputs[j]``. A request gets the type with the smallest output length
    that is >= its own output; if none is that long, the type with the largest output length. Ties between equal
    type lengths go to the lower index.

    Args:
        requests: The stream.
        type_outputs: Output length of each type (each >= 1).

    Returns:
        The stream with type labels attached.

    Raises:
        ValueError: ``type_outputs`` is empty or has a value below 1.
    """
    if not type_outputs:
        raise ValueError("with_type_labels: type_outputs is empty; pass each type's output length, e.g. [20, 50]")
    for j, value in enumerate(type_outputs):
        require_int_at_least("with_type_labels", f"type_outputs[{j}]", value, 1)
    order = sorted(range(len(type_outputs)), key=lambda j: (type_outputs[j], j))
    return _labelled(requests, [type_outputs[j] for j in order], order)


def _labelled(requests: Iterable[Request], lengths: list[int], order: list[int]) -> Iterator[Request]:
    for request in requests:
        slot = bisect.bisect_left(lengths, request.output_len)
        label = order[min(slot, len(order) - 1)]
        yield dataclasses.replace(request, type_label=label)


def with_slo_classes(
    requests: Iterable[Request],
    classes: Sequence[SLOClass],
    rng: np.random.Generator,
    *,
    probabilities: Sequence[float] | None = None,
) -> Iterator[Request]:
    """Give each request an SLO class drawn independently (e.g. SLAI's critical/non-critical mix).

    Args:
        requests: The stream.
        classes: The SLO classes.
        rng: Source of the draws.
        probabilities: Probability of each class (summing to 1); uniform when ``None``.

    Returns:
        The stream with ``slo`` set.

    Raises:
        ValueError: No classes, or probabilities of the wrong length or not summing to 1.
    """
    if not classes:
        raise ValueError("with_slo_classes: classes is empty; pass at least one SLOClass")
    probs = np.full(len(classes), 1.0 / len(classes)) if probabilities is None else np.asarray(probabilities, float)
    if probs.shape != (len(classes),) or np.any(probs < 0) or not np.isclose(probs.sum(), 1.0):
        raise ValueError(
            f"with_slo_classes: probabilities={probabilities!r} must be {len(classes)} non-negative numbers "
            "summing to 1"
        )
    return _with_slo(requests, tuple(classes), np.cumsum(probs), rng)


def _with_slo(
    requests: Iterable[Request], classes: tuple[SLOClass, ...], cumulative: np.ndarray, rng: np.random.Generator
) -> Iterator[Request]:
    draws = _uniforms(rng, 0.0, 1.0)
    last = len(classes) - 1
    for request in requests:
        index = min(int(np.searchsorted(cumulative, next(draws), side="right")), last)
        yield dataclasses.replace(request, slo=classes[index])
