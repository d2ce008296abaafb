"""Calibration profiles (versioned JSON, docs/profiles.md) and the cost model that evaluates them."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from llmsched_gym.costs._common import CompiledCostModel
from llmsched_gym.costs.operator import OperatorParams
from llmsched_gym.costs.profile_fit import FittedParams, MeasuredPoint, Validation
from llmsched_gym.costs.profile_schema import (
    MODEL_FIELDS,
    MODEL_OPTIONAL,
    POINT_FIELDS,
    POINT_OPTIONAL,
    SCHEMA_VERSION,
    SOURCE_KINDS,
    check_version,
    missing_fields,
    parse_fit,
    parse_model,
    parse_point,
    parse_validation,
    read_json,
)
from llmsched_gym.errors import ProfileError
from llmsched_gym.hardware import GPUSpec, ModelSpec, get_gpu, get_model

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
"""Where shipped profiles live: ``<PROFILES_DIR>/<gpu>/<model>.json`` (``<model>-tp<N>.json`` for tp > 1)."""


@dataclass(frozen=True, slots=True)
class Profile:
    """A calibration profile: measured iteration times of one executor on one GPU and model, and their fit.

    Attributes:
        gpu_name: GPU name (catalog name where known).
        gpu_memory_bytes: Device memory of that GPU.
        model: The model shape.
        tp: Tensor-parallel degree measured.
        block_size: KV block size of the executor (None: unknown, e.g. imported measurements).
        executor_version: Version string of the executor that was measured.
        created: ISO-8601 date or date-time of the measurement.
        provenance: Free text: who measured what, how (tool, repeats, warm-up), on which machine.
        grid: The raw measured points (with their role, hold-out or training, and flags).
        fit: Fitted coefficients: the ``operator`` form, or ``tile_knee_linear`` (schema 1).
        validation: Error of ``fit`` on held-out points.
        executor_info: Further executor details (torch, driver and CUDA versions, CUDA graph buckets, ...).
        source: ``"measured"`` (by this project's profiler) or ``"imported"`` (public measurements).
        reference: Where the measurements come from (tool, file, commit, paper).
        caveats: Known limits of the measurements or of the fit.
        fit_info: Details of the fit (free coefficients, hold-out method, seed).
        schema_version: The schema version the profile was read from (written profiles use the current one).
    """

    gpu_name: str
    gpu_memory_bytes: int
    model: ModelSpec
    tp: int
    block_size: int | None
    executor_version: str
    created: str
    provenance: str
    grid: tuple[MeasuredPoint, ...]
    fit: FittedParams | OperatorParams
    validation: Validation
    executor_info: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    source: str = "measured"
    reference: str = ""
    caveats: tuple[str, ...] = ()
    fit_info: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        """Check scalar fields and freeze the mappings."""
        if self.tp < 1 or (self.block_size is not None and self.block_size < 1) or self.gpu_memory_bytes < 1:
            raise ValueError(
                f"Profile: tp={self.tp}, block_size={self.block_size} and gpu_memory_bytes={self.gpu_memory_bytes} "
                "must be >= 1 (block_size may be None when unknown)"
            )
        if self.source not in SOURCE_KINDS:
            raise ValueError(f"Profile: source={self.source!r} must be one of {SOURCE_KINDS}")
        try:
            dt.datetime.fromisoformat(self.created)
        except ValueError:
            raise ValueError(
                f"Profile: created={self.created!r} must be an ISO-8601 date such as '2026-01-31'"
            ) from None
        for name in ("executor_info", "fit_info"):
            value = getattr(self, name)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(value)))
        object.__setattr__(self, "caveats", tuple(self.caveats))

    def check_run(
        self,
        *,
        gpu: str | GPUSpec | None = None,
        model: str | ModelSpec | None = None,
        tp: int | None = None,
        block_size: int | None = None,
        source: str = "the profile",
    ) -> None:
        """Raise unless the profile was measured for the run's GPU, model, TP degree and block size.

        Arguments left as None are not checked; a profile without a block size matches any.

        Raises:
            ProfileError: Naming the first field that differs, both values, and the fix.
        """
        checks: list[tuple[str, object, object, str]] = []
        if gpu is not None:
            checks.append(("gpu", self.gpu_name, _canonical(gpu, get_gpu), "--gpu"))
        if model is not None:
            checks.append(("model", self.model.name, _canonical(model, get_model), "--model"))
        if tp is not None:
            checks.append(("tp", self.tp, tp, "--tp"))
        if block_size is not None and self.block_size is not None:
            checks.append(("block_size", self.block_size, block_size, "--block-size"))
        for name, ours, theirs, flag in checks:
            if str(ours).lower() != str(theirs).lower():
                raise ProfileError(
                    f"{source} was measured with {name}={ours} but the run uses {name}={theirs}: pass {flag} {ours} "
                    f"or use a profile measured with {name}={theirs}"
                )
        if isinstance(model, ModelSpec) and model != self.model:
            raise ProfileError(f"{source} was measured on a {self.model} shape but the run uses {model}")

    def to_dict(self) -> dict[str, Any]:
        """The profile as JSON-ready data (schema version 2, docs/profiles.md)."""
        model = {name: getattr(self.model, name) for name in (*MODEL_FIELDS, "dtype_bytes", *MODEL_OPTIONAL)}
        fit: dict[str, Any] = {"form": self.fit.form, "coefficients": self.fit.coefficients()}
        if isinstance(self.fit, FittedParams):
            fit.update(tile_tokens=self.fit.tile_tokens, knee_tokens=self.fit.knee_tokens)
        if self.fit_info:
            fit["info"] = dict(self.fit_info)
        v = self.validation
        return {
            "schema_version": SCHEMA_VERSION,
            "gpu": {"name": self.gpu_name, "memory_bytes": self.gpu_memory_bytes},
            "model": model,
            "tp": self.tp,
            "block_size": self.block_size,
            "executor": {"version": self.executor_version, "info": dict(self.executor_info)},
            "created": self.created,
            "provenance": self.provenance,
            "source": {"kind": self.source, "reference": self.reference, "caveats": list(self.caveats)},
            "fit": fit,
            "validation": {
                "median_abs_error": v.median_abs_error,
                "p90_abs_error": v.p90_abs_error,
                "mape": v.mape,
                "max_abs_rel_error": v.max_abs_rel_error,
                "n_train": v.n_train,
                "n_holdout": v.n_holdout,
            },
            "grid": [point_to_dict(p) for p in self.grid],
        }

    def to_json(self) -> str:
        """The profile as indented JSON, one line per grid point, the grid last."""
        data = self.to_dict()
        grid = data.pop("grid")
        head = json.dumps(data, indent=1)
        rows = ",\n  ".join(json.dumps(point) for point in grid)
        body = f"[\n  {rows}\n ]" if grid else "[]"
        return f'{head[:-2]},\n "grid": {body}\n}}'

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the profile to ``path`` (parent folders are created) and return the path."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(self.to_json() + "\n", encoding="utf-8")
        return out


def point_to_dict(p: MeasuredPoint) -> dict[str, Any]:
    """A grid point as JSON-ready data (optional fields only when set)."""
    out: dict[str, Any] = {name: _jsonable(getattr(p, name)) for name in POINT_FIELDS}
    out.update({name: getattr(p, name) for name in POINT_OPTIONAL if getattr(p, name) is not None})
    return out


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def profile_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Profile:
    """Validate and convert parsed profile JSON (schema version 1 or 2).

    Args:
        data: The parsed JSON object.
        source: Where it came from, for error messages.

    Raises:
        ProfileError: Wrong or missing ``schema_version``, missing fields (all named), or invalid values.
    """
    version = check_version(source, data)
    missing = missing_fields(data, version)
    if missing:
        raise ProfileError(f"profile {source} is missing field(s): {', '.join(missing)}")
    try:
        fit = parse_fit(source, data["fit"])
        executor = data["executor"]
        origin = data.get("source") or {}
        block = data["block_size"]
        return Profile(
            gpu_name=str(data["gpu"]["name"]),
            gpu_memory_bytes=int(data["gpu"]["memory_bytes"]),
            model=parse_model(data["model"]),
            tp=int(data["tp"]),
            block_size=None if block is None else int(block),
            executor_version=str(executor["version"]),
            created=str(data["created"]),
            provenance=str(data["provenance"]),
            grid=tuple(parse_point(raw, i) for i, raw in enumerate(data["grid"])),
            fit=fit,
            validation=parse_validation(data["validation"]),
            executor_info=dict(executor.get("info") or {}),
            source=str(origin.get("kind", "measured")),
            reference=str(origin.get("reference", "")),
            caveats=tuple(str(c) for c in origin.get("caveats", ())),
            fit_info=dict(data["fit"].get("info") or {}),
            schema_version=version,
        )
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ProfileError):
            raise
        raise ProfileError(f"profile {source}: {exc}") from None


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """Read and validate a profile JSON file (schema version 1 or 2).

    Raises:
        ProfileError: Missing file, invalid JSON, wrong or missing ``schema_version``, missing fields (named),
            negative or zero measured times, or other invalid values.
    """
    p = Path(path)
    return profile_from_dict(read_json(p), str(p))


def profile_path(
    gpu: str | GPUSpec, model: str | ModelSpec, *, tp: int = 1, root: str | os.PathLike[str] | None = None
) -> Path:
    """Where the profile of ``(gpu, model, tp)`` lives: ``<root>/<gpu>/<model>[-tp<N>].json``.

    Catalog names are canonicalised (``h100-80gb`` -> ``H100-80GB``); other names are used as given.
    """
    gpu_name = _canonical(gpu, get_gpu)
    model_name = _canonical(model, get_model)
    suffix = "" if tp == 1 else f"-tp{tp}"
    return Path(root if root is not None else PROFILES_DIR) / gpu_name / f"{model_name}{suffix}.json"


def _canonical(item: Any, getter: Any) -> str:
    if not isinstance(item, str):
        return str(item.name)
    try:
        return str(getter(item).name)
    except KeyError:
        return item


def list_profiles(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Shipped (or ``root``'s) profiles as ``<gpu>/<model>[-tp<N>].json`` paths relative to the folder."""
    base = Path(root if root is not None else PROFILES_DIR)
    return sorted(str(p.relative_to(base)) for p in base.glob("*/*.json")) if base.is_dir() else []


def find_profile(
    gpu: str | GPUSpec, model: str | ModelSpec, *, tp: int = 1, root: str | os.PathLike[str] | None = None
) -> Profile:
    """Load the profile of ``(gpu, model, tp)`` from ``root`` (default: the package's ``profiles/``).

    Raises:
        ProfileError: No such profile (the message lists the available ones), or it does not match the request.
    """
    path = profile_path(gpu, model, tp=tp, root=root)
    if not path.is_file():
        raise ProfileError(
            f"no calibration profile at {path}; available: {', '.join(list_profiles(path.parent.parent)) or 'none'}. "
            "Measure one with `llmsched calibrate profile`, pass a profile path, or use the 'roofline' cost model"
        )
    profile = load_profile(path)
    profile.check_run(gpu=gpu, model=model, tp=tp, source=f"profile {path}")
    return profile


class ProfileCostModel(CompiledCostModel):
    """Evaluates a calibration profile's fit through its compiled form (docs/profiles.md).

    Schema-2 profiles use the operator form (:mod:`llmsched_gym.core.cost_kernels`), schema-1 profiles the
    ``tile_knee_linear`` form::

        t = c0 + c_tok * max(0, tile_ceil(T) - knee) + c_attn * Σ c (x + c / 2) + c_pre_ctx * Σ x
               + c_dec * n_decodes + c_kv * decode_context_sum

    Attributes:
        params: The fitted coefficients.
        profile: The profile they came from, if any.
    """

    name: ClassVar[str] = "profile"
    __slots__ = ("params", "profile")

    def __init__(self, source: Profile | FittedParams | OperatorParams | str | os.PathLike[str]) -> None:
        """Build from a loaded profile, bare fitted parameters, or a profile path."""
        if isinstance(source, (str, os.PathLike)):
            source = load_profile(source)
        self.profile = source if isinstance(source, Profile) else None
        self.params: FittedParams | OperatorParams = source.fit if isinstance(source, Profile) else source
        self._compiled = self.params.compiled()

    def __repr__(self) -> str:
        return f"ProfileCostModel({self.params!r})"
