"""The registry of action decoders, per environment version (kept apart from the decoders it builds)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from llmsched_gym.env.config import EnvConfig
from llmsched_gym.env.knobs import KnobsDecoder, KnobsRuleDecoder
from llmsched_gym.env.residual import PriorityDecoder, ResidualDecoder
from llmsched_gym.env.scores import ScoresDecoder
from llmsched_gym.env.scores_v1 import ScoresRuleDecoder
from llmsched_gym.errors import UnknownNameError

DECODERS: Mapping[int, Mapping[str, Callable[[EnvConfig], Any]]] = MappingProxyType(
    {
        0: MappingProxyType({"scores": ScoresDecoder, "knobs": KnobsDecoder}),
        1: MappingProxyType(
            {
                "scores": ScoresRuleDecoder,
                "knobs": KnobsRuleDecoder,
                "residual": ResidualDecoder,
                "priority": PriorityDecoder,
            }
        ),
    }
)
"""Action modes of each environment version and their decoder classes."""


def make_decoder(name: str, config: EnvConfig, version: int = 0) -> Any:
    """Build the decoder of action mode ``name`` for environment ``version`` (0 or 1).

    Raises:
        UnknownNameError: ``name`` is not an action mode of ``version``.
    """
    if version not in DECODERS:
        raise UnknownNameError(f"unknown env version {version!r}; choose one of {sorted(DECODERS)}")
    registry = DECODERS[version]
    if name not in registry:
        raise UnknownNameError(f"unknown action mode {name!r} for -v{version}; choose one of {sorted(registry)}")
    return registry[name](config)
