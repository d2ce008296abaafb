"""Exception types raised by llmsched-gym.

Every error names the rule that was broken and, where possible, how to fix it.
"""

from __future__ import annotations


class LLMSchedError(Exception):
    """Base class of every error raised by the package."""


class InvalidPlanError(LLMSchedError, ValueError):
    """A scheduler returned a plan that breaks an engine rule (the message names the rule)."""


class KVCapacityError(InvalidPlanError):
    """A plan needs more free KV blocks than the pool has."""


class LivelockError(LLMSchedError, RuntimeError):
    """The engine made no progress for too many consecutive decisions."""


class TraceFormatError(LLMSchedError, ValueError):
    """A trace file or record is malformed (the message names the file, row and field)."""


class ProfileError(LLMSchedError, ValueError):
    """A calibration profile is missing, malformed or of the wrong schema version."""


class UnknownNameError(LLMSchedError, KeyError):
    """A registry lookup (scheduler, GPU, model, cost model, reward, ...) failed."""

    def __str__(self) -> str:
        """Return the message without KeyError's quoting."""
        return str(self.args[0]) if self.args else ""


class DeviceUnavailableError(LLMSchedError, RuntimeError):
    """A GPU (CUDA) device was required but is not available."""
