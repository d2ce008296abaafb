"""Deploying learned policies: exported files (ONNX / TorchScript), their manifest, and the scheduler that runs them.

No stable-baselines3 is needed: ``load_exported(path)`` runs a policy with onnxruntime (or torch for ``.pt``),
and ``make_scheduler("policy:PATH")`` serves it wherever a baseline runs (simulate, compare, capacity, live).
"""

from __future__ import annotations

from llmsched_gym.policy.manifest import PolicyCompatibilityError, PolicyManifest, check_compatible
from llmsched_gym.policy.runtime import ExportedPolicy, load_exported

__all__ = ["ExportedPolicy", "PolicyCompatibilityError", "PolicyManifest", "check_compatible", "load_exported"]
