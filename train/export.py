"""Export a trained SB3 / sb3-contrib policy to ONNX and TorchScript, with its manifest inside.

The exported network maps observations to the deterministic action SB3's ``predict(obs, deterministic=True)``
returns: the Gaussian mean clipped to the action bounds (PPO, Box actions), or the per-dimension argmax of the
masked logits (MaskablePPO, MultiDiscrete actions; the masks are a second input). Observations are not normalised
in llmsched-gym runs, so the network is all there is. :func:`export_run` checks the exported files against the SB3
policy on observations of validation episodes before it returns (exactly for discrete actions, to 1e-5 otherwise).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from llmsched_gym.policy.manifest import METADATA_KEY, PolicyManifest
from llmsched_gym.tasks import get_task
from train.evaluate import load_policy


class BoxActor(nn.Module):
    """Deterministic action of an SB3 Gaussian policy: the clipped mean."""

    def __init__(self, policy: Any, low: np.ndarray, high: np.ndarray) -> None:
        super().__init__()
        self.policy = policy
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Clipped action mean."""
        features = self.policy.extract_features(obs, self.policy.pi_features_extractor)
        mean = self.policy.action_net(self.policy.mlp_extractor.forward_actor(features))
        high, low = self.get_buffer("high"), self.get_buffer("low")
        return torch.maximum(torch.minimum(mean, high), low)


class MultiDiscreteActor(nn.Module):
    """Deterministic action of a (maskable) MultiDiscrete policy: per-dimension argmax of the masked logits."""

    def __init__(self, policy: Any, nvec: list[int]) -> None:
        super().__init__()
        self.policy = policy
        self.nvec = [int(n) for n in nvec]

    def forward(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Actions as int64, one column per dimension."""
        features = self.policy.extract_features(obs, self.policy.pi_features_extractor)
        logits = self.policy.action_net(self.policy.mlp_extractor.forward_actor(features))
        logits = torch.where(mask > 0.5, logits, torch.full_like(logits, -1e8))
        out, start = [], 0
        for n in self.nvec:
            out.append(torch.argmax(logits[:, start : start + n], dim=1))
            start += n
        return torch.stack(out, dim=1)


def manifest_for(run_dir: Path, env: Any) -> PolicyManifest:
    """The manifest of the run in ``run_dir`` acting on ``env`` (its task's environment)."""
    import stable_baselines3

    import llmsched_gym

    base = env.unwrapped
    args = json.loads((run_dir / "args.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    space = base.action_space
    if isinstance(space, spaces.Box):
        action = {"kind": "box", "shape": list(space.shape), "low": space.low.tolist(), "high": space.high.tolist()}
    else:
        action = {"kind": "multi_discrete", "nvec": [int(n) for n in space.nvec]}
    provenance = {
        "run": run_dir.name, "args": args, "trained": summary, "exported": time.strftime("%Y-%m-%d %H:%M:%S"),
        "versions": {"llmsched_gym": getattr(llmsched_gym, "__version__", "0.1.0"), "torch": torch.__version__,
                     "stable_baselines3": stable_baselines3.__version__, "python": platform.python_version()},
    }  # fmt: skip
    return PolicyManifest(
        env_version=base.version, action_mode=base.action_mode, env_config=asdict(base.config),
        observation=base.encoder.name, feature_names=tuple(base.encoder.feature_names()), action=action,
        normalisation=None, task=get_task(args["task"]).id, provenance=provenance,
    )  # fmt: skip


def actor_of(model: Any) -> nn.Module:
    """The deterministic actor module of an SB3 model."""
    space = model.action_space
    if isinstance(space, spaces.Box):
        return BoxActor(model.policy, space.low, space.high).eval()
    return MultiDiscreteActor(model.policy, list(space.nvec)).eval()


def export_onnx(actor: nn.Module, manifest: PolicyManifest, n_obs: int, path: Path) -> None:
    """Write ``actor`` to ONNX at ``path`` with the manifest in its metadata."""
    import onnx

    discrete = isinstance(actor, MultiDiscreteActor)
    obs = torch.zeros(1, n_obs)
    args: tuple[torch.Tensor, ...] = (obs, torch.ones(1, sum(actor.nvec))) if discrete else (obs,)  # type: ignore[arg-type]
    names = ["obs", "mask"] if discrete else ["obs"]
    torch.onnx.export(actor, args, str(path), input_names=names, output_names=["action"], dynamo=False,
                      dynamic_axes={n: {0: "batch"} for n in [*names, "action"]}, opset_version=17)  # fmt: skip
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, manifest.to_json()
    onnx.save(model, str(path))


def export_torchscript(actor: nn.Module, manifest: PolicyManifest, n_obs: int, path: Path) -> None:
    """Write ``actor`` as TorchScript at ``path`` with the manifest as the extra file ``manifest.json``."""
    discrete = isinstance(actor, MultiDiscreteActor)
    obs = torch.zeros(1, n_obs)
    example = (obs, torch.ones(1, sum(actor.nvec))) if discrete else (obs,)  # type: ignore[arg-type]
    traced = torch.jit.trace(actor, example)
    torch.jit.save(traced, str(path), _extra_files={"manifest.json": manifest.to_json()})


def sample_observations(env: Any, model: Any, seeds: list[int], limit: int = 400) -> list[np.ndarray]:
    """Observations the policy meets on a few validation episodes (for the equality check)."""
    from train.episodes import _is_maskable

    out: list[np.ndarray] = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        done = False
        while not done and len(out) < limit:
            out.append(obs)
            kwargs = {"action_masks": env.unwrapped.action_masks()} if _is_maskable(model) else {}
            action, _ = model.predict(obs, deterministic=True, **kwargs)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    return out


def check_exported(model: Any, files: list[Path], observations: list[np.ndarray], env: Any) -> dict[str, float]:
    """Max action difference of each exported file to SB3's deterministic actions (raises if not equal)."""
    from llmsched_gym.policy.runtime import load_exported

    discrete = not isinstance(model.action_space, spaces.Box)
    report = {}
    for path in files:
        policy = load_exported(path)
        worst = 0.0
        for obs in observations:
            want, _ = model.predict(obs, deterministic=True)
            got = policy.act(obs)
            worst = max(worst, float(np.max(np.abs(np.asarray(got, np.float64) - want))))
        limit = 0.0 if discrete else 1e-5
        if worst > limit:
            raise RuntimeError(f"{path}: exported actions differ from SB3's by {worst:.3g} (limit {limit})")
        report[path.name] = worst
    return report


def export_run(
    run_dir: Path,
    which: str = "best",
    out: Path | None = None,
    formats: tuple[str, ...] = ("onnx", "torchscript"),
    env_overrides: dict[str, Any] | None = None,
) -> list[Path]:
    """Export ``<run_dir>/<which>.zip`` to ``out`` (default: the run directory); returns the written files.

    ``env_overrides`` are environment keyword arguments the model was built for besides the task's (e.g. ``slots``).
    """
    model, mode = load_policy(run_dir / f"{which}.zip")
    args = json.loads((run_dir / "args.json").read_text())
    task = get_task(args["task"])
    env = task.make_env("validation", mode, **(env_overrides or {}))
    manifest = manifest_for(run_dir, env)
    actor = actor_of(model)
    n_obs = int(np.prod(env.observation_space.shape))
    target = out or run_dir
    target.mkdir(parents=True, exist_ok=True)
    files = []
    if "onnx" in formats:
        files.append(target / f"{run_dir.name}.onnx")
        export_onnx(actor, manifest, n_obs, files[-1])
    if "torchscript" in formats:
        files.append(target / f"{run_dir.name}.pt")
        export_torchscript(actor, manifest, n_obs, files[-1])
    check_exported(model, files, sample_observations(env, model, list(task.seeds("validation", 2))), env)
    return files
