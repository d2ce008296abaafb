from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched_gym.core.request import Request, SLOClass
from llmsched_gym.workloads import (
    ClientMix,
    ClientSpec,
    DeterministicArrivals,
    GammaArrivals,
    IndependentLengths,
    PoissonArrivals,
    UniformTokens,
)

RNG = np.random.default_rng


def assert_well_formed(requests: list[Request]) -> None:
    assert [r.id for r in requests] == list(range(len(requests)))
    arrivals = [r.arrival for r in requests]
    assert arrivals == sorted(arrivals)
    assert all(r.prompt_len >= 1 and r.output_len >= 1 for r in requests)


def two_clients() -> ClientMix:
    paying = SLOClass("paying", ttft_s=1.0, tbt_s=0.1)
    return ClientMix(
        (
            ClientSpec(PoissonArrivals(3.0), IndependentLengths.fixed(64, 64), slo=paying, weight=2.0),
            ClientSpec(GammaArrivals(1.0, 2.0), IndependentLengths.fixed(512, 8), client=7, max_tokens=16),
        )
    )


def test_client_mix_merges_clients_sorted_with_their_attributes() -> None:
    requests = list(two_clients().generate(RNG(0), n=4_000))
    assert_well_formed(requests)
    first = [r for r in requests if r.client == 0]
    second = [r for r in requests if r.client == 7]
    assert len(first) + len(second) == 4_000
    assert len(first) / len(second) == pytest.approx(3.0, rel=0.15)
    assert all(r.prompt_len == 64 and r.weight == 2.0 and r.slo is not None for r in first)
    assert all(r.prompt_len == 512 and r.max_tokens == 16 and r.slo is None for r in second)


def test_client_mix_is_deterministic_by_seed() -> None:
    assert list(two_clients().generate(RNG(5), n=500)) == list(two_clients().generate(RNG(5), n=500))
    assert list(two_clients().generate(RNG(5), n=500)) != list(two_clients().generate(RNG(6), n=500))


def test_adding_a_client_leaves_the_existing_clients_requests_unchanged() -> None:
    base = two_clients()
    extended = ClientMix((*base.clients, ClientSpec(PoissonArrivals(5.0), IndependentLengths.fixed(1, 1))))
    old = [(r.arrival, r.prompt_len) for r in base.generate(RNG(3), duration=100.0)]
    new = [(r.arrival, r.prompt_len) for r in extended.generate(RNG(3), duration=100.0) if r.client in (0, 7)]
    assert old == new


def test_equal_arrival_times_are_ordered_by_client_index() -> None:
    same = ClientSpec(DeterministicArrivals(1.0), IndependentLengths.fixed(10, 1))
    other = ClientSpec(DeterministicArrivals(1.0), IndependentLengths.fixed(20, 1))
    requests = list(ClientMix((other, same)).generate(RNG(0), n=6))
    assert [r.client for r in requests] == [0, 1, 0, 1, 0, 1]
    assert [r.prompt_len for r in requests] == [20, 10, 20, 10, 20, 10]


def test_duration_stops_before_the_first_arrival_at_or_after_it() -> None:
    requests = list(ClientSpec(DeterministicArrivals(2.0), IndependentLengths.fixed(5, 5)).generate(RNG(0), duration=3))
    assert [r.arrival for r in requests] == [0.5, 1.0, 1.5, 2.0, 2.5]


def test_generation_is_lazy() -> None:
    stream = ClientSpec(PoissonArrivals(1.0), IndependentLengths.fixed(5, 5)).generate(RNG(0), duration=1e12)
    assert next(stream).id == 0


def test_generate_requires_a_stopping_rule() -> None:
    with pytest.raises(ValueError, match=r"pass n"):
        two_clients().generate(RNG(0))


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"weight": 0.0}, "weight=0.0"),
        ({"client": -1}, "client=-1"),
        ({"max_tokens": 0}, "max_tokens=0"),
        ({"type_label": -2}, "type_label=-2"),
    ],
)
def test_client_spec_rejects_bad_values_naming_them(kwargs: dict[str, float], bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        ClientSpec(PoissonArrivals(1.0), IndependentLengths.fixed(1, 1), **kwargs)  # type: ignore[arg-type]


def test_client_mix_rejects_an_empty_client_list() -> None:
    with pytest.raises(ValueError, match=r"empty"):
        ClientMix(())


client_strategy = st.builds(
    lambda rate, cv, lo, span: ClientSpec(
        GammaArrivals(rate, cv), IndependentLengths(UniformTokens(lo, lo + span), UniformTokens(1, 1 + span))
    ),
    st.floats(0.05, 50.0),
    st.floats(0.2, 4.0),
    st.integers(1, 2_000),
    st.integers(0, 500),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(client_strategy, min_size=1, max_size=4), st.integers(0, 300), st.integers(0, 2**32 - 1))
def test_generated_streams_are_sorted_dense_positive_and_seeded(clients: list[ClientSpec], n: int, seed: int) -> None:
    mix = ClientMix(tuple(clients))
    requests = list(mix.generate(RNG(seed), n=n))
    assert len(requests) == n
    assert_well_formed(requests)
    assert requests == list(mix.generate(RNG(seed), n=n))
