"""What an environment builds from its arguments: the workload sampler, the cost model and the engine config."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmsched_gym.core.engine import EngineConfig
from llmsched_gym.core.kv import KVConfig
from llmsched_gym.core.protocols import CostModel, EngineRequirements
from llmsched_gym.core.recorder import RecorderConfig
from llmsched_gym.env.config import EnvConfig
from llmsched_gym.env.episodes import WorkloadMix, WorkloadSampler, WorkloadSpec

WorkloadArg = WorkloadSampler | WorkloadSpec | Sequence[WorkloadSpec] | str | None


@dataclass(frozen=True, slots=True)
class EngineSetup:
    """How the environment's engine is built: enough to run any scheduler natively on an episode's requests.

    ``simulate(env.unwrapped.episode.requests, scheduler, SimulatedRunner(setup.cost_model), setup.engine_config)``
    serves exactly the environment's episode (apply the scheduler's requirements with
    ``setup.engine_config.with_requirements(scheduler.requirements)``, as ``simulate`` does).

    Attributes:
        engine_config: The engine configuration (KV pool, modes, recorder).
        cost_model: The iteration cost model.
    """

    engine_config: EngineConfig
    cost_model: CostModel


def make_sampler(workload: WorkloadArg, load_range: tuple[float, float]) -> WorkloadSampler:
    """The workload sampler for the ``workload`` argument of the environment."""
    if workload is None:
        return WorkloadMix(load_range=load_range)
    if isinstance(workload, str):
        return WorkloadMix((WorkloadSpec(name=workload),), load_range)
    if isinstance(workload, WorkloadSpec):
        return WorkloadMix((workload,), load_range)
    if isinstance(workload, WorkloadSampler):
        return workload
    return WorkloadMix(tuple(workload), load_range)


def make_env_cost_model(cost_model: CostModel | str, config: EnvConfig) -> CostModel:
    """The cost model for the ``cost_model`` argument (a registered name is built for the config's GPU/model)."""
    if not isinstance(cost_model, str):
        return cost_model
    from llmsched_gym.costs import make_cost_model

    return make_cost_model(cost_model, gpu=config.gpu, model=config.model, tp=config.tp)


def engine_config_of(config: EnvConfig, version: int, requirements: EngineRequirements | None = None) -> EngineConfig:
    """The engine configuration of an environment (``requirements``: those of a scheduler it plays)."""
    blocks = config.num_blocks
    if blocks is None:
        from llmsched_gym.hardware import get_gpu, get_model, kv_capacity_blocks

        blocks = kv_capacity_blocks(
            get_gpu(config.gpu), get_model(config.model), tp=config.tp, block_size=config.block_size
        )
    engine_config = EngineConfig(
        KVConfig(blocks, config.block_size, config.watermark),
        allocation=config.allocation,  # type: ignore[arg-type]
        overflow="error",
        restart_mode=config.restart_mode,  # type: ignore[arg-type]
        fast_forward=version >= 1,
        recorder=RecorderConfig(iterations=False, sample_dt=config.sample_dt),
    )
    return engine_config if requirements is None else engine_config.with_requirements(requirements)


def summary_of(result: Any) -> dict[str, Any]:
    """The run summary of a result, as a dict."""
    from llmsched_gym.metrics.summary import summarize

    return summarize(result).as_dict()
