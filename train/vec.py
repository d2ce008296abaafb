"""A vectorised environment for SB3: many environments per process, spread over a few worker processes.

SB3's ``SubprocVecEnv`` runs one environment per process and ``DummyVecEnv`` all in one. On a small machine the
best split is a few processes (one per core) each stepping a group of environments, so that the policy evaluates
one batch of all observations per step and the processes step their groups in parallel. :class:`GroupedVecEnv`
does that with SB3's ``VecEnv`` semantics: auto-reset with ``terminal_observation`` and ``TimeLimit.truncated``
in ``info``, ``env_method`` / ``get_attr`` / ``set_attr`` (MaskablePPO reads ``action_masks`` through it), and
per-environment seeds (environment ``i`` is reset with ``seed + i`` at the first reset).
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import gymnasium
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

EnvFactory = Callable[[], gymnasium.Env[Any, Any]]


class EnvGroup:
    """A list of environments stepped together (the body of one worker).

    Args:
        factories: One environment factory per environment.
    """

    def __init__(self, factories: Sequence[EnvFactory]) -> None:
        self.envs = [f() for f in factories]

    def reset(self, seeds: Sequence[int | None], options: Sequence[dict[str, Any] | None]) -> tuple[Any, list[Any]]:
        """Reset every environment; returns stacked observations and the reset infos."""
        out = [env.reset(seed=s, options=o) for env, s, o in zip(self.envs, seeds, options, strict=True)]
        return np.stack([o for o, _ in out]), [i for _, i in out]

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Step every environment (auto-reset at episode ends, SB3's conventions)."""
        obs_list, rewards, dones, infos = [], np.zeros(len(self.envs)), np.zeros(len(self.envs), bool), []
        for i, (env, action) in enumerate(zip(self.envs, actions, strict=True)):
            obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if done:
                info["terminal_observation"] = obs
                info["TimeLimit.truncated"] = truncated and not terminated
                obs, _ = env.reset()
            obs_list.append(obs)
            rewards[i], dones[i] = reward, done
            infos.append(info)
        return np.stack(obs_list), rewards, dones, infos

    def call(self, name: str, indices: Sequence[int], args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        """``env.unwrapped.<name>(*args, **kwargs)`` for the given environments."""
        return [getattr(self.envs[i].unwrapped, name)(*args, **kwargs) for i in indices]

    def get(self, name: str, indices: Sequence[int]) -> list[Any]:
        """``getattr(env.unwrapped, name)`` for the given environments."""
        return [getattr(self.envs[i].unwrapped, name) for i in indices]

    def has(self, name: str) -> bool:
        """Whether the unwrapped environments have attribute ``name`` (answered without sending it)."""
        return hasattr(self.envs[0].unwrapped, name)

    def set(self, name: str, value: Any, indices: Sequence[int]) -> None:
        """``setattr(env.unwrapped, name, value)`` for the given environments."""
        for i in indices:
            setattr(self.envs[i].unwrapped, name, value)

    def close(self) -> None:
        """Close every environment."""
        for env in self.envs:
            env.close()


def _worker(conn: Any, factories: Sequence[EnvFactory]) -> None:
    group = EnvGroup(factories)
    handlers: dict[str, Callable[..., Any]] = {
        "reset": group.reset,
        "step": group.step,
        "call": group.call,
        "get": group.get,
        "has": group.has,
        "set": group.set,
    }
    try:
        while True:
            command, payload = conn.recv()
            if command == "close":
                group.close()
                break
            conn.send(handlers[command](*payload))
    except KeyboardInterrupt:
        pass
    finally:
        conn.close()


class GroupedVecEnv(VecEnv):
    """SB3 ``VecEnv`` over ``len(factories)`` environments in ``n_procs`` worker processes (0: in this process).

    Args:
        factories: One environment factory per environment (picklable when ``n_procs > 0``).
        n_procs: Worker processes; environments are split into contiguous groups.
        seed: Environment ``i`` is reset with ``seed + i`` at the first reset.
        start_method: Multiprocessing start method (``forkserver`` by default where available).
    """

    def __init__(
        self, factories: Sequence[EnvFactory], n_procs: int = 2, seed: int = 0, start_method: str | None = None
    ) -> None:
        n = len(factories)
        n_procs = min(n_procs, n)
        self._bounds = np.linspace(0, n, max(n_procs, 1) + 1).astype(int).tolist()
        self._local: EnvGroup | None = None
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        if n_procs == 0:
            self._local = EnvGroup(factories)
            probe = self._local.envs[0]
        else:
            self._start(factories, n_procs, start_method)
            probe = factories[0]()
        super().__init__(n, probe.observation_space, probe.action_space)
        if n_procs:
            probe.close()
        self._next_seeds: list[int | None] = [seed + i for i in range(n)]
        self._actions: np.ndarray | None = None

    def _start(self, factories: Sequence[EnvFactory], n_procs: int, start_method: str | None) -> None:
        method = start_method or ("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        ctx = mp.get_context(method)
        for p in range(n_procs):
            lo, hi = self._bounds[p], self._bounds[p + 1]
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, list(factories[lo:hi])), daemon=True)  # type: ignore[attr-defined]
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)

    def _groups(self, indices: Iterable[int]) -> list[tuple[int, list[int], list[int]]]:
        """``(group, local indices, global indices)`` for each group holding some of ``indices``."""
        indices = list(indices)
        out = []
        for g in range(len(self._bounds) - 1):
            lo, hi = self._bounds[g], self._bounds[g + 1]
            mine = [i for i in indices if lo <= i < hi]
            if mine:
                out.append((g, [i - lo for i in mine], mine))
        return out

    def _run(self, g: int, command: str, *payload: Any) -> Any:
        if self._local is not None:
            return getattr(self._local, command)(*payload)
        self._conns[g].send((command, payload))
        return self._conns[g].recv()

    def _broadcast(self, command: str, payloads: list[tuple[Any, ...]]) -> list[Any]:
        if self._local is not None:
            return [getattr(self._local, command)(*payloads[0])]
        for conn, payload in zip(self._conns, payloads, strict=True):
            conn.send((command, payload))
        return [conn.recv() for conn in self._conns]

    def reset(self) -> Any:
        """Reset every environment (first call: ``seed + i``; later: the environments' own streams)."""
        seeds = self._next_seeds
        options = [self._options[i] if self._options else None for i in range(self.num_envs)]
        payloads = [(seeds[lo:hi], options[lo:hi]) for lo, hi in zip(self._bounds[:-1], self._bounds[1:], strict=True)]
        results = self._broadcast("reset", payloads)
        self._next_seeds = [None] * self.num_envs
        self.reset_infos = [info for _, infos in results for info in infos]
        self._reset_seeds()
        self._reset_options()
        return np.concatenate([obs for obs, _ in results])

    def step_async(self, actions: np.ndarray) -> None:
        """Remember the actions (stepped in :meth:`step_wait`)."""
        self._actions = np.asarray(actions)

    def step_wait(self) -> Any:
        """Step every group (workers in parallel) and gather the results."""
        assert self._actions is not None
        payloads = [(self._actions[lo:hi],) for lo, hi in zip(self._bounds[:-1], self._bounds[1:], strict=True)]
        results = self._broadcast("step", payloads)
        obs = np.concatenate([r[0] for r in results])
        rewards = np.concatenate([r[1] for r in results]).astype(np.float32)
        dones = np.concatenate([r[2] for r in results])
        infos = [info for r in results for info in r[3]]
        return obs, rewards, dones, infos

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed the next reset: environment ``i`` gets ``seed + i``."""
        if seed is not None:
            self._next_seeds = [seed + i for i in range(self.num_envs)]
        return [None] * self.num_envs

    def close(self) -> None:
        """Stop the workers (or close the local environments)."""
        if self._local is not None:
            self._local.close()
            return
        for conn in self._conns:
            conn.send(("close", ()))
        for proc in self._procs:
            proc.join(timeout=5)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Attribute of each environment's unwrapped env."""
        out: list[Any] = []
        for g, local, _ in self._groups(self._get_indices(indices)):
            out += self._run(g, "get", attr_name, local)
        return out

    def has_attr(self, attr_name: str) -> bool:
        """Whether the environments have ``attr_name``, answered by a worker with a bool.

        MaskablePPO asks for ``action_masks``; SB3's default fetches the attribute itself, and a bound method of a
        worker's environment cannot be sent back.
        """
        return bool(self._run(0, "has", attr_name))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute on each environment's unwrapped env."""
        for g, local, _ in self._groups(self._get_indices(indices)):
            self._run(g, "set", attr_name, value, local)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **kw: Any) -> list[Any]:
        """Call a method of each environment's unwrapped env (``action_masks`` for MaskablePPO)."""
        out: list[Any] = []
        for g, local, _ in self._groups(self._get_indices(indices)):
            out += self._run(g, "call", method_name, local, method_args, kw)
        return out

    def env_is_wrapped(
        self, wrapper_class: type[gymnasium.Wrapper[Any, Any, Any, Any]], indices: VecEnvIndices = None
    ) -> list[bool]:
        """No environment is wrapped beyond what ``gymnasium.make`` adds."""
        return [False] * len(list(self._get_indices(indices)))
