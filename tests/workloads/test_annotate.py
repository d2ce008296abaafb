from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched_gym.core.request import Request, SLOClass
from llmsched_gym.workloads import with_predictions, with_slo_classes, with_type_labels


def stream(outputs: list[int]) -> list[Request]:
    return [Request(i, float(i), 10, o) for i, o in enumerate(outputs)]


def test_exact_predictions_equal_true_output_lengths() -> None:
    requests = list(with_predictions(stream([1, 5, 300])))
    assert [r.predicted_output_len for r in requests] == [1, 5, 300]


def test_noisy_predictions_stay_within_relative_error_and_are_seeded() -> None:
    outputs = [100, 200, 1000] * 1_000
    noisy = list(with_predictions(stream(outputs), eps=0.5, rng=np.random.default_rng(0)))
    ratio = np.array([(r.predicted_output_len or 0) / r.output_len for r in noisy])
    assert ratio.min() >= 0.5 - 1e-9
    assert ratio.max() <= 1.5 + 1e-9
    assert ratio.std() > 0.2
    again = list(with_predictions(stream(outputs), eps=0.5, rng=np.random.default_rng(0)))
    assert noisy == again


def test_noisy_predictions_need_a_generator_and_valid_eps() -> None:
    with pytest.raises(ValueError, match=r"needs rng"):
        with_predictions(stream([1]), eps=0.2)
    with pytest.raises(ValueError, match=r"eps=-0.1"):
        with_predictions(stream([1]), eps=-0.1, rng=np.random.default_rng(0))


def test_type_labels_follow_waits_nearest_longer_type_rule() -> None:
    labelled = list(with_type_labels(stream([1, 20, 21, 50, 51, 999]), [50, 20]))
    assert [r.type_label for r in labelled] == [1, 1, 0, 0, 0, 0]


def test_type_labels_reject_empty_or_invalid_types() -> None:
    with pytest.raises(ValueError, match=r"empty"):
        with_type_labels(stream([1]), [])
    with pytest.raises(ValueError, match=r"type_outputs\[1\]=0"):
        with_type_labels(stream([1]), [5, 0])


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(1, 2_000), min_size=1, max_size=50), st.lists(st.integers(1, 2_000), min_size=1, max_size=5)
)
def test_type_label_is_the_shortest_type_that_fits_or_the_longest(outputs: list[int], types: list[int]) -> None:
    for request in with_type_labels(stream(outputs), types):
        label = request.type_label
        assert label is not None
        fitting = [t for t in types if t >= request.output_len]
        assert types[label] == (min(fitting) if fitting else max(types))


def test_slo_classes_are_drawn_with_the_given_probabilities() -> None:
    strict, relaxed = SLOClass("strict", tbt_s=0.1), SLOClass("relaxed", tbt_s=0.5)
    requests = list(
        with_slo_classes(stream([1] * 10_000), [strict, relaxed], np.random.default_rng(1), probabilities=[0.2, 0.8])
    )
    share = sum(r.slo == strict for r in requests) / len(requests)
    assert share == pytest.approx(0.2, abs=0.02)
    with pytest.raises(ValueError, match=r"summing to 1"):
        with_slo_classes(stream([1]), [strict], np.random.default_rng(0), probabilities=[0.5])
