"""llmsched-gym: a reference environment for LLM-inference scheduling research."""

from __future__ import annotations

__version__ = "0.1.0"

import llmsched_gym.env  # noqa: F401  (registers the Gymnasium ids; light: no engine import)
