"""Cost models by name: ``make_cost_model("roofline" | "profile" | "unit" | "affine_kv" | "tile_step", ...)``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from llmsched_gym.core.protocols import CostModel
from llmsched_gym.costs.analytic import AffineKVCostModel, TileStepCostModel, UnitCostModel
from llmsched_gym.costs.fitting import fit_affine_kv, fit_tile_step
from llmsched_gym.costs.profile import ProfileCostModel, find_profile
from llmsched_gym.costs.roofline import RooflineCostModel
from llmsched_gym.errors import UnknownNameError
from llmsched_gym.hardware import GPUSpec, ModelSpec

DEFAULT_COST_MODEL = "roofline"
_TILE_COEFFICIENTS = ("per_tile_s", "base_s", "per_decode_s", "per_kv_token_s")

Factory = Callable[[GPUSpec | str, ModelSpec | str, int, dict[str, Any]], CostModel]


def _roofline(gpu: GPUSpec | str, model: ModelSpec | str, tp: int, params: dict[str, Any]) -> CostModel:
    return RooflineCostModel(gpu, model, tp, **params)


def _profile(gpu: GPUSpec | str, model: ModelSpec | str, tp: int, params: dict[str, Any]) -> CostModel:
    path = params.pop("path", None)
    root = params.pop("root", None)
    _no_extra("profile", params)
    if path is not None:
        return ProfileCostModel(path)
    return ProfileCostModel(find_profile(gpu, model, tp=tp, root=root))


def _unit(gpu: GPUSpec | str, model: ModelSpec | str, tp: int, params: dict[str, Any]) -> CostModel:
    return UnitCostModel(**params)


def _base_model(gpu: GPUSpec | str, model: ModelSpec | str, tp: int, params: dict[str, Any]) -> CostModel:
    base = params.pop("base", DEFAULT_COST_MODEL)
    if isinstance(base, str):
        base_params = dict(params.pop("base_params", None) or {})
        return make_cost_model(base, gpu=gpu, model=model, tp=tp, **base_params)
    return base  # type: ignore[no-any-return]


def _affine_kv(gpu: GPUSpec | str, model: ModelSpec | str, tp: int, params: dict[str, Any]) -> CostModel:
    given = [name for name in ("d0", "d1") if name in params]
    if len(given) == 2:
        return AffineKVCostModel(**params)
    if given:
        raise ValueError(f"affine_kv: got only {given[0]}; pass both d0 and d1, or neither to fit them from `base`")
    return fit_affine_kv(_base_model(gpu, model, tp, params), **params)


def _tile_step(gpu: GPUSpec | str, model: ModelSpec | str, tp: int, params: dict[str, Any]) -> CostModel:
    if any(name in params for name in _TILE_COEFFICIENTS):
        return TileStepCostModel(**params)
    return fit_tile_step(_base_model(gpu, model, tp, params), **params)


def _no_extra(name: str, params: Mapping[str, Any]) -> None:
    if params:
        raise TypeError(f"cost model {name!r} got unknown parameter(s) {sorted(params)}")


_REGISTRY: Mapping[str, tuple[str, Factory]] = MappingProxyType(
    {
        "roofline": (
            "operator-level roofline of GPU and model shape, efficiencies fitted to measured H100 anchors (default)",
            _roofline,
        ),
        "profile": (
            "fitted calibration profile: path=... or looked up by gpu/model/tp in llmsched_gym/profiles/",
            _profile,
        ),
        "unit": ("every iteration takes `duration` (1.0): MC-SF's theory model", _unit),
        "affine_kv": (
            "d0 + d1 * KV tokens of the batch (WAIT Eq. 1); d0/d1 fitted from `base` unless given",
            _affine_kv,
        ),
        "tile_step": (
            "base + per_tile * ceil(tokens / tile) + decode terms (SLAI); fitted from `base` unless given",
            _tile_step,
        ),
    }
)


def list_cost_models() -> dict[str, str]:
    """Registered cost-model names with a one-line description each."""
    return {name: description for name, (description, _) in _REGISTRY.items()}


def make_cost_model(
    spec: str | None = None,
    *,
    gpu: GPUSpec | str = "H100-80GB",
    model: ModelSpec | str = "Llama-2-7B",
    tp: int = 1,
    **params: Any,
) -> CostModel:
    """Build a cost model by name.

    Names are case-insensitive and ``-`` equals ``_``. ``"profile:<path>"`` is short for
    ``make_cost_model("profile", path=<path>)``.

    Args:
        spec: A registered name (see :func:`list_cost_models`); None means ``"roofline"``.
        gpu: GPU name or spec (roofline, profile lookup, and the base model of fitted analytic models).
        model: Model name or spec.
        tp: Tensor-parallel degree.
        **params: Parameters of the chosen model: RooflineParams fields for ``roofline``; ``path`` or ``root``
            for ``profile``; ``duration`` for ``unit``; ``d0``, ``d1`` for ``affine_kv``; ``tile``,
            ``per_tile_s``, ``base_s``, ``per_decode_s``, ``per_kv_token_s`` for ``tile_step``. Fitted analytic
            models also take ``base`` (a name or a CostModel, default ``"roofline"``), ``base_params`` and the
            grid arguments of :func:`~llmsched_gym.costs.fitting.fit_affine_kv` / ``fit_tile_step``.

    Raises:
        UnknownNameError: The name is not registered (the message lists the known names).
        ProfileError: A profile is missing or invalid.
    """
    name = (spec or DEFAULT_COST_MODEL).strip()
    if name.lower().startswith("profile:"):
        name, params["path"] = "profile", name.split(":", 1)[1]
    key = name.lower().replace("-", "_")
    if key not in _REGISTRY:
        raise UnknownNameError(f"unknown cost model {spec!r}; known: {', '.join(_REGISTRY)}")
    return _REGISTRY[key][1](gpu, model, tp, dict(params))
