"""The manifest of an exported policy: what it is, what it acts on, where it came from.

An exported policy file (``.onnx`` or TorchScript ``.pt``) carries its manifest inside (ONNX metadata property,
TorchScript extra file ``manifest.json``). The manifest fixes everything that must match for the policy to act as
it did in training: the environment version, action mode, :class:`~llmsched_gym.env.config.EnvConfig` (slots, budget
levels, decision events, base scheduler, observation scales), the observation's feature names and size, the action
space, the observation normalisation (none for llmsched-gym runs: observations are bounded), the task, and the
provenance (training run, date, package versions). :func:`check_compatible` compares two manifests and names the
first field that differs.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from llmsched_gym.env.config import EnvConfig, ObservationConfig
from llmsched_gym.env.events import DecisionEvents

FORMAT = "llmsched-policy"
FORMAT_VERSION = 1
METADATA_KEY = "llmsched_manifest"
"""Key of the manifest in an ONNX model's metadata properties (and TorchScript extra file ``manifest.json``)."""


class PolicyCompatibilityError(ValueError):
    """An exported policy does not fit the environment or scheduler it is asked to serve."""


@dataclass(frozen=True, slots=True)
class PolicyManifest:
    """Everything needed to act with an exported policy (see the module docstring).

    Attributes:
        env_version: Environment version the policy was trained on (``1``).
        action_mode: ``priority``, ``residual``, ``knobs`` or ``scores``.
        env_config: The environment configuration (``dataclasses.asdict`` of :class:`EnvConfig`).
        observation: Observation encoder name (``slots`` or ``global``).
        feature_names: Name of every observation entry, in order.
        action: ``{"kind": "box", "shape": [...], "low": ..., "high": ...}`` or ``{"kind": "multi_discrete",
            "nvec": [...]}``.
        normalisation: Observation normalisation (``None``: observations are used as the env gives them).
        task: Task id the policy was trained on (``""`` if none).
        provenance: Training run, date, versions.
        format: Always :data:`FORMAT`.
        format_version: The manifest format version.
    """

    env_version: int
    action_mode: str
    env_config: dict[str, Any]
    observation: str
    feature_names: tuple[str, ...]
    action: dict[str, Any]
    normalisation: dict[str, list[float]] | None = None
    task: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        """The manifest as JSON."""
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PolicyManifest:
        """Parse a manifest, checking its format and version.

        Raises:
            PolicyCompatibilityError: Not a manifest of this format, or of a newer format version.
        """
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise PolicyCompatibilityError(f"not an llmsched-gym policy manifest (format={data.get('format')!r})")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise PolicyCompatibilityError(
                f"manifest format_version {data['format_version']} is newer than this llmsched-gym reads "
                f"({FORMAT_VERSION}): upgrade llmsched-gym"
            )
        data["feature_names"] = tuple(data["feature_names"])
        return cls(**data)

    def config(self) -> EnvConfig:
        """The :class:`EnvConfig` the policy was trained with."""
        return env_config_from_dict(self.env_config)


def env_config_from_dict(data: dict[str, Any]) -> EnvConfig:
    """Rebuild an :class:`EnvConfig` from ``dataclasses.asdict`` output (JSON lists back to tuples)."""
    values = dict(data)
    values["events"] = DecisionEvents(**values["events"])
    values["observation"] = ObservationConfig(**values["observation"])
    for name in ("budget_levels", "deferral_levels"):
        values[name] = tuple(values[name])
    return EnvConfig(**values)


_CHECKED = ("env_version", "action_mode", "observation", "feature_names", "action")
_CHECKED_CONFIG = (
    "slots", "budget_levels", "default_budget", "base", "events", "slot_order", "deferral_levels", "chunk_caps",
    "preempt_below", "hold_below", "defer_below", "max_num_seqs", "observation",
)  # fmt: skip


def check_compatible(policy: PolicyManifest, expected: PolicyManifest) -> None:
    """Raise unless ``policy`` acts on exactly what ``expected`` describes (the first difference is named).

    Raises:
        PolicyCompatibilityError: A field differs; the message gives both values and the fix.
    """
    for name in _CHECKED:
        got, want = getattr(policy, name), getattr(expected, name)
        if got != want:
            raise PolicyCompatibilityError(_message(name, got, want))
    for name in _CHECKED_CONFIG:
        got, want = policy.env_config.get(name), expected.env_config.get(name)
        if _norm(got) != _norm(want):
            raise PolicyCompatibilityError(_message(f"env_config.{name}", got, want))


def _norm(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _message(name: str, got: Any, want: Any) -> str:
    shown_got, shown_want = _short(got), _short(want)
    return (
        f"the policy was exported for {name}={shown_got}, but this environment has {name}={shown_want}: "
        f"serve it with the configuration it was trained on (PolicyScheduler.from_file uses the policy's own), "
        f"or re-train/re-export for this one"
    )


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
