"""Cost models by name: ``make_cost_model("roofline" | "profile" | "unit" | "affine_kv" | "tile_step", ...)``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from llmsched_gym.core.protocols import CostModel
from llmsched_gym.costs.analytic import AffineKVCostModel, TileStepCostModel, UnitCostModel
from llmsched_gym.costs.fitting import fit_affine_kv, fit_tile_step
from llmsched_gym.costs.profile import ProfileCostModel, find_profile, load_profile
from llmsched_gym.costs.roofline import PRESETS, RooflineCostModel
from llmsched_gym.errors import UnknownNameError
from llmsched_gym.hardware import GPUSpec, ModelSpec

DEFAULT_COST_MODEL = "roofline"
DEFAULT_GPU = "H100-80GB"
DEFAULT_MODEL = "Llama-2-7B"
_TILE_COEFFICIENTS = ("per_tile_s", "base_s", "per_decode_s", "per_kv_token_s")


@dataclass(frozen=True, slots=True)
class _Run:
    """The run a cost model is built for; None where the caller left the value unspecified."""

    gpu: GPUSpec | str | None
    model: ModelSpec | str | None
    tp: int | None

    @property
    def hardware(self) -> tuple[GPUSpec | str, ModelSpec | str, int]:
        """GPU, model and TP with the defaults filled in."""
        return self.gpu or DEFAULT_GPU, self.model or DEFAULT_MODEL, self.tp or 1


Factory = Callable[[_Run, dict[str, Any]], CostModel]


def _roofline(run: _Run, params: dict[str, Any]) -> CostModel:
    preset = str(params.pop("preset", "public"))
    if preset not in PRESETS:
        raise UnknownNameError(f"unknown roofline preset {preset!r}; known: {', '.join(PRESETS)}")
    params.pop("block_size", None)
    return RooflineCostModel(*run.hardware, params=PRESETS[preset](), **params)


def _profile(run: _Run, params: dict[str, Any]) -> CostModel:
    path = params.pop("path", None)
    root = params.pop("root", None)
    block_size = params.pop("block_size", None)
    _no_extra("profile", params)
    if path is not None:
        profile = load_profile(path)
        profile.check_run(gpu=run.gpu, model=run.model, tp=run.tp, block_size=block_size, source=f"profile {path}")
        return ProfileCostModel(profile)
    gpu, model, tp = run.hardware
    profile = find_profile(gpu, model, tp=tp, root=root)
    profile.check_run(block_size=block_size, source=f"the {profile.gpu_name} / {profile.model.name} profile")
    return ProfileCostModel(profile)


def _unit(run: _Run, params: dict[str, Any]) -> CostModel:
    params.pop("block_size", None)
    return UnitCostModel(**params)


def _base_model(run: _Run, params: dict[str, Any]) -> CostModel:
    base = params.pop("base", DEFAULT_COST_MODEL)
    block_size = params.pop("block_size", None)
    preset = params.pop("preset", None)
    if isinstance(base, str):
        base_params = dict(params.pop("base_params", None) or {})
        if preset is not None:
            base_params.setdefault("preset", preset)
        return make_cost_model(base, gpu=run.gpu, model=run.model, tp=run.tp, block_size=block_size, **base_params)
    return base  # type: ignore[no-any-return]


def _affine_kv(run: _Run, params: dict[str, Any]) -> CostModel:
    given = [name for name in ("d0", "d1") if name in params]
    if len(given) == 2:
        params.pop("block_size", None)
        return AffineKVCostModel(**params)
    if given:
        raise ValueError(f"affine_kv: got only {given[0]}; pass both d0 and d1, or neither to fit them from `base`")
    return fit_affine_kv(_base_model(run, params), **params)


def _tile_step(run: _Run, params: dict[str, Any]) -> CostModel:
    if any(name in params for name in _TILE_COEFFICIENTS):
        params.pop("block_size", None)
        return TileStepCostModel(**params)
    return fit_tile_step(_base_model(run, params), **params)


def _no_extra(name: str, params: Mapping[str, Any]) -> None:
    if params:
        raise TypeError(f"cost model {name!r} got unknown parameter(s) {sorted(params)}")


_REGISTRY: Mapping[str, tuple[str, Factory]] = MappingProxyType(
    {
        "roofline": (
            "operator-level roofline of GPU and model shape, fitted to public GPU measurements at TP 2-8 (default); "
            "preset='cuda-graphs' for a CUDA-graph executor",
            _roofline,
        ),
        "profile": (
            "fitted calibration profile: path=... (checked against gpu/model/tp/block_size) or looked up by "
            "gpu/model/tp in llmsched_gym/profiles/",
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
    gpu: GPUSpec | str | None = None,
    model: ModelSpec | str | None = None,
    tp: int | None = None,
    **params: Any,
) -> CostModel:
    """Build a cost model by name.

    Names are case-insensitive and ``-`` equals ``_``. ``"profile:<path>"`` is short for
    ``make_cost_model("profile", path=<path>)``. A profile given by path is checked against every one of
    ``gpu``, ``model``, ``tp`` and ``block_size`` that is given: a mismatch raises a ``ProfileError`` naming the
    field.

    Args:
        spec: A registered name (see :func:`list_cost_models`); None means ``"roofline"``.
        gpu: GPU name or spec (roofline, profile lookup and check, the base of fitted analytic models);
            None: ``H100-80GB`` where one is needed, unchecked for a profile path.
        model: Model name or spec; None: ``Llama-2-7B`` where one is needed.
        tp: Tensor-parallel degree; None: 1 where one is needed.
        **params: Parameters of the chosen model: RooflineParams fields or ``preset`` for ``roofline``;
            ``path``, ``root`` or ``block_size`` (checked) for ``profile``; ``duration`` for ``unit``; ``d0``,
            ``d1`` for ``affine_kv``; ``tile``,
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
    return _REGISTRY[key][1](_Run(gpu, model, tp), dict(params))
