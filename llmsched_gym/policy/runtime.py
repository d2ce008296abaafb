"""Running an exported policy without stable-baselines3: onnxruntime (default) or TorchScript.

:func:`load_exported` reads a policy file (``.onnx`` or ``.pt``), its manifest, and returns an
:class:`ExportedPolicy` whose :meth:`~ExportedPolicy.act` maps one observation to the deterministic action the
trained policy takes (the Gaussian mean clipped to the action bounds; per-dimension argmax of the masked logits for
MultiDiscrete actions). ``predict`` mirrors SB3's signature so evaluation code can run either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from llmsched_gym.policy.manifest import METADATA_KEY, PolicyCompatibilityError, PolicyManifest

RUNTIMES: tuple[str, ...] = ("onnx", "torchscript")


class _Net(Protocol):
    def __call__(self, obs: np.ndarray, mask: np.ndarray | None) -> np.ndarray: ...


class ExportedPolicy:
    """An exported policy: its manifest and a network (see the module docstring).

    Args:
        manifest: The policy's manifest.
        net: Maps a batch of observations (and action masks) to a batch of actions.
        runtime: ``onnx`` or ``torchscript``.
        path: The file it came from.
    """

    def __init__(self, manifest: PolicyManifest, net: _Net, runtime: str, path: Path) -> None:
        self.manifest = manifest
        self.runtime = runtime
        self.path = path
        self._net = net
        self._discrete = manifest.action["kind"] == "multi_discrete"
        self._size = len(manifest.feature_names)

    def act(self, obs: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """The action for one observation (``mask``: MultiDiscrete action masks, all allowed when ``None``)."""
        x = np.asarray(obs, dtype=np.float32).reshape(1, -1)
        if x.shape[1] != self._size:
            raise PolicyCompatibilityError(
                f"observation has {x.shape[1]} entries, the policy expects {self._size} "
                f"({self.manifest.observation} observation of {self.manifest.env_config['slots']} slots)"
            )
        m = None
        if self._discrete:
            total = int(sum(self.manifest.action["nvec"]))
            m = np.ones((1, total), dtype=np.float32) if mask is None else np.asarray(mask, np.float32).reshape(1, -1)
        return self._net(x, m)[0]

    def predict(
        self, obs: np.ndarray, deterministic: bool = True, action_masks: np.ndarray | None = None
    ) -> tuple[np.ndarray, None]:
        """SB3-style ``predict`` (deterministic only: an exported policy carries no sampling)."""
        if not deterministic:
            raise ValueError("an exported policy acts deterministically; evaluate sampled runs from the .zip")
        return self.act(obs, action_masks), None


def load_exported(path: Path | str, runtime: str | None = None) -> ExportedPolicy:
    """Load an exported policy (runtime from the suffix: ``.onnx`` onnxruntime, ``.pt`` TorchScript).

    Raises:
        FileNotFoundError: No such file.
        PolicyCompatibilityError: Not an exported llmsched-gym policy (no manifest), or the wrong runtime for it.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no exported policy at {p} (export one with `llmsched export RUN_DIR`)")
    kind = runtime or ("torchscript" if p.suffix == ".pt" else "onnx")
    if kind not in RUNTIMES:
        raise ValueError(f"runtime={kind!r} must be one of {RUNTIMES}")
    if kind == "onnx":
        return _load_onnx(p)
    return _load_torchscript(p)


def _load_onnx(path: Path) -> ExportedPolicy:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError("onnxruntime is needed to run .onnx policies: pip install onnxruntime") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise PolicyCompatibilityError(f"{path} has no llmsched-gym manifest: export it with `llmsched export`")
    manifest = PolicyManifest.from_json(meta[METADATA_KEY])
    return ExportedPolicy(manifest, _BoundSession(session, manifest), "onnx", path)


class _BoundSession:
    """One-observation inference through onnxruntime's I/O binding.

    The input buffers are bound once and refilled per call: about half the per-call overhead of ``session.run``.
    """

    def __init__(self, session: Any, manifest: PolicyManifest) -> None:
        self.session = session
        self.obs = np.zeros((1, len(manifest.feature_names)), dtype=np.float32)
        self.binding = session.io_binding()
        self.binding.bind_cpu_input("obs", self.obs)
        self.mask: np.ndarray | None = None
        if "mask" in [i.name for i in session.get_inputs()]:
            self.mask = np.ones((1, int(sum(manifest.action["nvec"]))), dtype=np.float32)
            self.binding.bind_cpu_input("mask", self.mask)
        self.binding.bind_output("action")

    def __call__(self, obs: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        if obs.shape[0] != 1:
            feeds: dict[str, Any] = {"obs": obs} if self.mask is None else {"obs": obs, "mask": mask}
            batch: np.ndarray = self.session.run(None, feeds)[0]
            return batch
        self.obs[...] = obs
        if self.mask is not None and mask is not None:
            self.mask[...] = mask
        self.session.run_with_iobinding(self.binding)
        out: np.ndarray = self.binding.copy_outputs_to_cpu()[0]
        return out


def _load_torchscript(path: Path) -> ExportedPolicy:
    import torch

    extra = {"manifest.json": ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    if not extra["manifest.json"]:
        raise PolicyCompatibilityError(f"{path} has no llmsched-gym manifest: export it with `llmsched export`")
    manifest = PolicyManifest.from_json(extra["manifest.json"])
    discrete = manifest.action["kind"] == "multi_discrete"

    def net(obs: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(obs)
            y = module(x, torch.from_numpy(mask)) if discrete else module(x)
        out: np.ndarray = y.numpy()
        return out

    return ExportedPolicy(manifest, net, "torchscript", path)
