"""The profiler's bookkeeping on a fake runner (deterministic times): rounds, order, medians, noise flags."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from gpu_calibration.clocks import CpuTimeClock, resolve_clock
from gpu_calibration.design import DesignedBatch
from gpu_calibration.profiler import ProfilerConfig, profile_batches, relative_spread
from llmsched_gym.core.batch import IterationWork
from llmsched_gym.executor.runner import IterationTiming


class FakeRunner:
    """Takes 1 ms per token, except that ``noisy`` batches (by token count) alternate between 1x and 2x."""

    def __init__(self, noisy_tokens: int = -1) -> None:
        self.noisy_tokens = noisy_tokens
        self.known: dict[int, int] = {}
        self.cached: dict[int, int] = {}
        self.calls: list[int] = []
        self.last_timing: IterationTiming | None = None

    def prime(self, known: dict[int, int], cached: dict[int, int]) -> None:
        assert not set(known) & set(self.known), "ids must be fresh"
        self.known.update(known)
        self.cached.update(cached)

    def run(self, work: IterationWork) -> float:
        assert all(int(s) <= self.cached[int(i)] for i, s in zip(work.ids, work.start, strict=True))
        tokens = int(work.n_tokens.sum())
        self.calls.append(tokens)
        t = tokens * 1e-3 * (2.0 if tokens == self.noisy_tokens and len(self.calls) % 2 else 1.0)
        self.last_timing = IterationTiming(t, 0.0, t, False)
        return t

    def forget(self, ids) -> None:
        for rid in np.asarray(ids).tolist():
            self.known.pop(rid)
            self.cached.pop(rid)


BATCHES = [
    DesignedBatch("prefill", ((10, 5),)),
    DesignedBatch("decode", (), (3, 4, 5)),
    DesignedBatch("mixed", ((7, 0),), (9,)),
    DesignedBatch("random", ((2, 1), (3, 0)), ()),
]


def test_medians_roles_and_repeats_come_out_in_design_order():
    runner = FakeRunner()
    timings = profile_batches(runner, BATCHES, ProfilerConfig(warmup=2, repeats=3, rounds=2))  # type: ignore[arg-type]
    points = timings.points(0.2)
    assert [p.seconds for p in points] == pytest.approx([0.010, 0.003, 0.008, 0.005])
    assert [p.role for p in points] == ["train", "train", "train", "holdout"]
    assert all(p.repeats == 6 and p.flag is None and p.spread == 0 for p in points)
    assert len(runner.calls) == 4 * 2 * (2 + 3) and not runner.known  # every batch torn down
    assert points[1].n_decodes == 3 and points[1].decode_context_sum == 12 and points[0].prefill_context == (5,)


def test_noisy_batches_get_extra_rounds_and_a_flag():
    runner = FakeRunner(noisy_tokens=10)
    cfg = ProfilerConfig(warmup=0, repeats=2, rounds=1, extra_rounds=2)
    timings = profile_batches(runner, BATCHES, cfg)  # type: ignore[arg-type]
    assert [len(s) for s in timings.seconds] == [6, 2, 2, 2]
    assert [p.flag for p in timings.points(0.2)] == ["noisy", None, None, None]


def test_visiting_order_is_random_but_seeded():
    orders = []
    for seed in (0, 0, 1):
        runner = FakeRunner()
        profile_batches(runner, BATCHES, ProfilerConfig(warmup=0, repeats=1, rounds=3, seed=seed))  # type: ignore[arg-type]
        orders.append(runner.calls)
    assert orders[0] == orders[1] != orders[2]
    assert orders[0][:4] != orders[0][4:8] or orders[0][4:8] != orders[0][8:]


def test_relative_spread_and_config_errors():
    assert relative_spread([1.0, 1.0, 1.0]) == 0.0
    assert relative_spread([1.0, 2.0, 3.0]) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="repeats=0"):
        ProfilerConfig(repeats=0)
    with pytest.raises(ValueError, match="clock='gpu'"):
        ProfilerConfig(clock="gpu")


def test_cpu_time_clock_advances_virtually_while_idle():
    clock = CpuTimeClock()
    clock.start()
    before = clock.now()
    clock.sleep_until(before + 5.0)
    assert clock.now() >= before + 5.0
    assert clock.now() < before + 5.5  # no real sleep happened
    assert resolve_clock("auto", "cpu") == "cpu" and resolve_clock("auto", "cuda") == "wall"
    with pytest.raises(ValueError, match="clock 'fast'"):
        resolve_clock("fast", "cpu")
