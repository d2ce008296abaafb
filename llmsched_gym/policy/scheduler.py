"""``PolicyScheduler``: an exported policy as a :class:`~llmsched_gym.core.protocols.Scheduler`.

It decides exactly as the -v1 environment does: at a decision it encodes the observation with the environment's
encoder (from the view and episode totals computed from the view), runs the exported network (onnxruntime by
default, no stable-baselines3, no gymnasium training stack), decodes the action with the environment's decoder into
a held decision, and holds it, one plan per engine step, until the next decision event of the policy's
configuration (arrival, completion, first token, KV shortfall, iteration cap). While nothing is waiting or running
it idles to the next arrival without deciding, as the environment does. So ``simulate`` with this scheduler gives
the same per-request results as the policy acting in the environment on the same episode (tested), and ``live``
serves it on the executor. ``decision_times`` records the seconds each decision took (encode + infer + decode).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from llmsched_gym.core.batch import FloatArray
from llmsched_gym.core.plan import BatchPlan
from llmsched_gym.core.protocols import EngineRequirements
from llmsched_gym.core.view import EngineView
from llmsched_gym.env._rule_kernels import view_totals
from llmsched_gym.env.context import DecisionContext
from llmsched_gym.env.decoders import make_decoder
from llmsched_gym.env.events import HeldDecision
from llmsched_gym.env.observation import make_observation
from llmsched_gym.policy.manifest import PolicyCompatibilityError
from llmsched_gym.policy.runtime import ExportedPolicy, load_exported

SUPPORTED_VERSION = 1


class ViewStats:
    """The episode totals the observation reads, computed from a view (equal to the env's tracker).

    Args:
        view: The engine view at the decision.
    """

    __slots__ = ("_mean", "attainment", "service")

    def __init__(self, view: EngineView) -> None:
        v = view
        service, seen, finished, met = view_totals(
            v.n_arrived, v.client, v.prompt_done, v.emitted, v.state, v.first_token, v.arrival, v.slo_ttft,
            v.tbt_viol, v.tbt_n,
        )  # fmt: skip
        self.service: FloatArray = service
        self._mean = float(service.sum()) / seen if seen else 0.0
        self.attainment = met / finished if finished else 1.0

    def service_mean(self) -> float:
        """Mean service over the clients seen."""
        return self._mean


class PolicyScheduler:
    """An exported policy serving as a scheduler (see the module docstring).

    Args:
        policy: The exported policy.
        name: Scheduler name (default ``policy:<file name>``).

    Raises:
        PolicyCompatibilityError: The policy was exported for another environment version, or its observation
            or action layout does not match what this llmsched-gym builds from its configuration.
    """

    def __init__(self, policy: ExportedPolicy, name: str | None = None) -> None:
        m = policy.manifest
        if m.env_version != SUPPORTED_VERSION:
            raise PolicyCompatibilityError(
                f"the policy was exported for env version {m.env_version}; PolicyScheduler serves version "
                f"{SUPPORTED_VERSION}: re-train on a -v{SUPPORTED_VERSION} id and re-export"
            )
        cfg = m.config()
        self.policy = policy
        self.config = cfg
        self.decoder = make_decoder(m.action_mode, cfg, SUPPORTED_VERSION)
        self.encoder = make_observation(m.observation, cfg.slots, cfg.observation)
        _check_layout(self, m)
        self.events = cfg.events
        self.name = name or f"policy:{policy.path.name}"
        self.requirements = EngineRequirements(
            allocation=cfg.allocation,  # type: ignore[arg-type]
            overflow="error",
            restart_mode=cfg.restart_mode,  # type: ignore[arg-type]
        )
        self.decision_times: list[float] = []
        self._held: HeldDecision | None = None
        self._mark = 0
        self._last: BatchPlan | None = None
        self._fresh: np.ndarray | None = None

    def reset(self, *, seed: int | None = None) -> None:
        """Forget the held decision, the decoder's queue and the timings."""
        self.decoder.reset()
        self.decision_times = []
        self._held, self._last, self._fresh, self._mark = None, None, None, 0

    def schedule(self, view: EngineView) -> BatchPlan:
        """The held decision's plan for this step (a new decision after a decision event)."""
        if self._held is None or self._event(view):
            if view.running.size == 0 and view.n_waiting == 0:
                self._held = None  # nothing to decide: idle to the next arrival, as the environment does
                return BatchPlan.idle()
            self._decide(view)
        assert self._held is not None
        plan = self._held.plan(view)
        ev = self.events
        cap = ev.max_iterations - (view.iterations - self._mark)
        if plan.repeat > cap or (ev.arrival and not plan.arrival_sensitive):
            plan = dataclasses.replace(plan, repeat=min(plan.repeat, cap), arrival_sensitive=True)
        self._last = plan
        self._fresh = np.isnan(view.first_token[plan.ids]) if ev.first_token and plan.ids.size else None
        return plan

    def _event(self, view: EngineView) -> bool:
        """Whether a decision event of the policy's configuration happened during the last step."""
        ev, last = self.events, self._last
        if ev.arrival and len(view.arrived):
            return True
        if ev.completion and view.finished:
            return True
        if ev.kv_shortfall and (view.evicted or (last is not None and last.preempt)):
            return True
        if (
            self._fresh is not None
            and last is not None
            and bool((self._fresh & ~np.isnan(view.first_token[last.ids])).any())
        ):
            return True
        return view.iterations - self._mark >= ev.max_iterations

    def _decide(self, view: EngineView) -> None:
        t0 = time.perf_counter()
        stats = ViewStats(view)
        ctx = DecisionContext(None, self.config.slots, stats.service, self.decoder.waiting_order, view=view)
        action = self.policy.act(self.encoder.encode(ctx, stats))
        self._held = self.decoder.decide(action, ctx)
        self._mark = view.iterations
        self.decision_times.append(time.perf_counter() - t0)


def _check_layout(sched: PolicyScheduler, m: Any) -> None:
    names = tuple(sched.encoder.feature_names())
    if names != tuple(m.feature_names):
        raise PolicyCompatibilityError(
            f"the policy's observation has {len(m.feature_names)} features, this llmsched-gym builds {len(names)} "
            f"for {m.observation!r} with {sched.config.slots} slots: re-export the policy with this version"
        )
    space = sched.decoder.space
    if m.action["kind"] == "box" and list(space.shape) != list(m.action["shape"]):
        raise PolicyCompatibilityError(
            f"the policy's action has shape {m.action['shape']}, the {m.action_mode!r} decoder expects "
            f"{list(space.shape)}: re-export the policy with this version"
        )
    if m.action["kind"] == "multi_discrete" and [int(n) for n in space.nvec] != list(m.action["nvec"]):
        raise PolicyCompatibilityError(
            f"the policy's knobs are {m.action['nvec']}, this decoder offers {[int(n) for n in space.nvec]} "
            "(budget levels or orderings changed): re-export the policy with this version"
        )


def load_scheduler(path: str, runtime: str | None = None) -> PolicyScheduler:
    """``make_scheduler("policy:PATH")``: the scheduler of the exported policy at ``path``."""
    return PolicyScheduler(load_exported(Path(path), runtime=runtime))
