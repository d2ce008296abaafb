"""Shared fixtures of the environment tests: small workloads, a fast cost model and env builders."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import gymnasium
import numpy as np
import pytest

import llmsched_gym.env  # noqa: F401  (registers the ids)
from llmsched_gym.core.request import Request, SLOClass
from llmsched_gym.core.table import RUNNING
from llmsched_gym.env.episodes import WorkloadSpec
from llmsched_gym.env.registration import ENV_IDS
from tests.helpers import LinearCost

SCORES_ID = "llmsched_gym/LLMSchedScores-v0"
KNOBS_ID = "llmsched_gym/LLMSchedKnobs-v0"
ALL_IDS = tuple(ENV_IDS)

SMALL_SPEC = WorkloadSpec(name="synthetic-sharegpt", rate=6.0, n_requests=30)


def requests_for(
    n: int, seed: int, *, span: float = 2.0, clients: int = 3, prompt: tuple[int, int] = (20, 900), out: int = 120
) -> list[Request]:
    """A small multi-client workload with two SLO classes, sorted by arrival."""
    rng = np.random.default_rng(seed)
    arrivals = np.sort(rng.uniform(0.0, span, n))
    classes = (SLOClass("paying", ttft_s=1.0, tbt_s=0.05), SLOClass("free", ttft_s=3.0, tbt_s=0.2))
    return [
        Request(
            i,
            float(arrivals[i]),
            int(rng.integers(*prompt)),
            int(rng.integers(1, out)),
            client=int(rng.integers(0, clients)),
            slo=classes[int(rng.integers(0, 2))],
        )
        for i in range(n)
    ]


def make_env(env_id: str = SCORES_ID, **kwargs: Any) -> gymnasium.Env:
    """A registered env on the fast linear cost model and a small synthetic workload."""
    kwargs.setdefault("cost_model", LinearCost())
    kwargs.setdefault("workload", SMALL_SPEC)
    kwargs.setdefault("num_blocks", 3000)
    return gymnasium.make(env_id, **kwargs)


def trajectory_hash(rows: list[tuple[Any, ...]]) -> str:
    """A sha256 over observations, rewards and flags of a trajectory."""
    h = hashlib.sha256()
    for obs, reward, terminated, truncated in rows:
        h.update(np.ascontiguousarray(obs).tobytes())
        h.update(repr((float(reward), bool(terminated), bool(truncated))).encode())
    return h.hexdigest()


def check_engine_invariants(env: gymnasium.Env, last_now: float) -> float:
    """Assert the KV accounting and clock invariants; return the clock."""
    engine = env.unwrapped.engine
    t = engine.table
    n = t.n
    assert int(t.blocks[:n].sum()) + engine.pool.free == engine.pool.total
    assert 0 <= engine.pool.free <= engine.pool.total
    running = t.state[:n] == RUNNING
    assert np.all(t.blocks[:n][~running] == 0)
    assert np.all(t.computed[:n] <= t.prompt[:n] + t.generated[:n])
    assert engine.now >= last_now
    return float(engine.now)


@pytest.fixture
def env_factory() -> Iterator[Callable[..., gymnasium.Env]]:
    """Build envs with :func:`make_env` and close them after the test."""
    made: list[gymnasium.Env] = []

    def build(env_id: str = SCORES_ID, **kwargs: Any) -> gymnasium.Env:
        env = make_env(env_id, **kwargs)
        made.append(env)
        return env

    yield build
    for env in made:
        env.close()
