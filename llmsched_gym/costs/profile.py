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

import numpy as np

from llmsched_gym.core.batch import BatchSummary, FloatArray
from llmsched_gym.core.cost_kernels import TILE_KNEE_LINEAR, CompiledCost
from llmsched_gym.costs._common import check_k, prefill_aggregates
from llmsched_gym.costs.profile_fit import COEFFICIENTS, FittedParams, MeasuredPoint, Validation
from llmsched_gym.errors import ProfileError
from llmsched_gym.hardware import GPUSpec, ModelSpec, get_gpu, get_model

SCHEMA_VERSION = 1
PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
"""Where shipped profiles live: ``<PROFILES_DIR>/<gpu>/<model>.json`` (``<model>-tp<N>.json`` for tp > 1)."""

_MODEL_FIELDS = ("name", "n_layers", "hidden", "n_heads", "n_kv_heads", "head_dim", "intermediate", "vocab")
_POINT_FIELDS = ("prefill_tokens", "prefill_context", "n_decodes", "decode_context_sum", "n_seqs", "seconds")
_REQUIRED: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "": ("gpu", "model", "tp", "block_size", "executor", "created", "provenance", "grid", "fit", "validation"),
        "gpu": ("name", "memory_bytes"),
        "model": (*_MODEL_FIELDS, "dtype_bytes"),
        "executor": ("version",),
        "fit": ("form", "tile_tokens", "knee_tokens", "coefficients"),
        "fit.coefficients": COEFFICIENTS,
        "validation": ("mape", "max_abs_rel_error", "n_train", "n_holdout"),
    }
)


@dataclass(frozen=True, slots=True)
class Profile:
    """A calibration profile: measured iteration times of one executor on one GPU and model, and their fit.

    Attributes:
        gpu_name: GPU name (catalog name where known).
        gpu_memory_bytes: Device memory of that GPU.
        model: The model shape.
        tp: Tensor-parallel degree measured.
        block_size: KV block size of the executor.
        executor_version: Version string of the executor that was measured.
        created: ISO-8601 date or date-time of the measurement.
        provenance: Free text: who measured what, how (tool, repeats, warm-up), on which machine.
        grid: The raw measured points.
        fit: Fitted coefficients (``tile_knee_linear`` form).
        validation: Error of ``fit`` on held-out points.
        executor_info: Further executor details (torch version, CUDA graph buckets, ...), JSON values.
        schema_version: Always :data:`SCHEMA_VERSION`.
    """

    gpu_name: str
    gpu_memory_bytes: int
    model: ModelSpec
    tp: int
    block_size: int
    executor_version: str
    created: str
    provenance: str
    grid: tuple[MeasuredPoint, ...]
    fit: FittedParams
    validation: Validation
    executor_info: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        """Check scalar fields and freeze ``executor_info``."""
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(f"Profile: schema_version={self.schema_version}; this version writes {SCHEMA_VERSION}")
        if self.tp < 1 or self.block_size < 1 or self.gpu_memory_bytes < 1:
            raise ValueError(
                f"Profile: tp={self.tp}, block_size={self.block_size} and gpu_memory_bytes={self.gpu_memory_bytes} "
                "must be >= 1"
            )
        try:
            dt.datetime.fromisoformat(self.created)
        except ValueError:
            raise ValueError(
                f"Profile: created={self.created!r} must be an ISO-8601 date such as '2026-01-31'"
            ) from None
        if not isinstance(self.executor_info, MappingProxyType):
            object.__setattr__(self, "executor_info", MappingProxyType(dict(self.executor_info)))

    def to_dict(self) -> dict[str, Any]:
        """The profile as JSON-ready data (schema in docs/profiles.md)."""
        model = {name: getattr(self.model, name) for name in (*_MODEL_FIELDS, "dtype_bytes")}
        v = self.validation
        return {
            "schema_version": self.schema_version,
            "gpu": {"name": self.gpu_name, "memory_bytes": self.gpu_memory_bytes},
            "model": model,
            "tp": self.tp,
            "block_size": self.block_size,
            "executor": {"version": self.executor_version, "info": dict(self.executor_info)},
            "created": self.created,
            "provenance": self.provenance,
            "grid": [{name: _jsonable(getattr(p, name)) for name in _POINT_FIELDS} for p in self.grid],
            "fit": {
                "form": FittedParams.form,
                "tile_tokens": self.fit.tile_tokens,
                "knee_tokens": self.fit.knee_tokens,
                "coefficients": self.fit.coefficients(),
            },
            "validation": {
                "mape": v.mape,
                "max_abs_rel_error": v.max_abs_rel_error,
                "n_train": v.n_train,
                "n_holdout": v.n_holdout,
            },
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


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ProfileError(f"profile {path} does not exist (or is not a file); check the path or run the calibration")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"profile {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"profile {path} must hold a JSON object, found {type(data).__name__}")
    return data


def _check_version(path: Path, data: Mapping[str, Any]) -> None:
    if "schema_version" not in data:
        raise ProfileError(
            f"profile {path} has no schema_version; this llmsched-gym reads schema_version {SCHEMA_VERSION}"
        )
    found = data["schema_version"]
    if found != SCHEMA_VERSION or isinstance(found, bool):
        raise ProfileError(
            f"profile {path} has schema_version {found!r}; this llmsched-gym supports schema_version {SCHEMA_VERSION} "
            "only: re-run the calibration or upgrade llmsched-gym"
        )


def _missing_fields(data: Mapping[str, Any]) -> list[str]:
    missing: list[str] = []
    for section, names in _REQUIRED.items():
        node: Any = data
        for part in filter(None, section.split(".")):
            node = node.get(part) if isinstance(node, Mapping) else None
        if section and not isinstance(node, Mapping):
            if not any(section.startswith(m + ".") or section == m for m in missing):
                missing.append(f"{section} (an object)")
            continue
        prefix = f"{section}." if section else ""
        missing.extend(prefix + name for name in names if name not in node)
    return missing


def _point(raw: Any, index: int) -> MeasuredPoint:
    if not isinstance(raw, Mapping):
        raise ValueError(f"grid[{index}] must be an object with fields {', '.join(_POINT_FIELDS)}")
    absent = [name for name in _POINT_FIELDS if name not in raw]
    if absent:
        raise ValueError(f"grid[{index}] lacks field(s): {', '.join(absent)}")
    if not raw["seconds"] > 0:
        raise ValueError(f"grid[{index}].seconds = {raw['seconds']} must be > 0 (a measured duration)")
    return MeasuredPoint(
        tuple(int(c) for c in raw["prefill_tokens"]),
        tuple(int(x) for x in raw["prefill_context"]),
        int(raw["n_decodes"]),
        int(raw["decode_context_sum"]),
        int(raw["n_seqs"]),
        float(raw["seconds"]),
    )


def profile_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Profile:
    """Validate and convert parsed profile JSON.

    Args:
        data: The parsed JSON object.
        source: Where it came from, for error messages.

    Raises:
        ProfileError: Wrong or missing ``schema_version``, missing fields (all named), or invalid values.
    """
    _check_version(Path(source), data)
    missing = _missing_fields(data)
    if missing:
        raise ProfileError(f"profile {source} is missing field(s): {', '.join(missing)}")
    fit = data["fit"]
    if fit["form"] != FittedParams.form:
        raise ProfileError(f"profile {source}: fit.form={fit['form']!r} is unknown; supported: {FittedParams.form!r}")
    try:
        model = data["model"]
        executor = data["executor"]
        return Profile(
            gpu_name=str(data["gpu"]["name"]),
            gpu_memory_bytes=int(data["gpu"]["memory_bytes"]),
            model=ModelSpec(**{name: model[name] for name in (*_MODEL_FIELDS, "dtype_bytes")}),
            tp=int(data["tp"]),
            block_size=int(data["block_size"]),
            executor_version=str(executor["version"]),
            created=str(data["created"]),
            provenance=str(data["provenance"]),
            grid=tuple(_point(raw, i) for i, raw in enumerate(data["grid"])),
            fit=FittedParams(
                tile_tokens=int(fit["tile_tokens"]),
                knee_tokens=int(fit["knee_tokens"]),
                **{name: float(fit["coefficients"][name]) for name in COEFFICIENTS},
            ),
            validation=Validation(**{name: data["validation"][name] for name in _REQUIRED["validation"]}),
            executor_info=dict(executor.get("info") or {}),
        )
    except (ValueError, TypeError) as exc:
        raise ProfileError(f"profile {source}: {exc}") from None


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """Read and validate a profile JSON file.

    Raises:
        ProfileError: Missing file, invalid JSON, wrong or missing ``schema_version``, missing fields (named),
            negative or zero measured times, or other invalid values.
    """
    p = Path(path)
    return profile_from_dict(_read_json(p), str(p))


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


def find_profile(
    gpu: str | GPUSpec, model: str | ModelSpec, *, tp: int = 1, root: str | os.PathLike[str] | None = None
) -> Profile:
    """Load the profile of ``(gpu, model, tp)`` from ``root`` (default: the package's ``profiles/``).

    Raises:
        ProfileError: No such profile (the message lists the available ones), or it does not match the request.
    """
    path = profile_path(gpu, model, tp=tp, root=root)
    if not path.is_file():
        base = path.parent.parent
        available = sorted(str(p.relative_to(base)) for p in base.glob("*/*.json")) if base.is_dir() else []
        raise ProfileError(
            f"no calibration profile at {path}; available: {', '.join(available) or 'none'}. Measure one with the "
            "GPU calibration tool, pass a profile path, or use the 'roofline' cost model"
        )
    profile = load_profile(path)
    wanted = (_canonical(gpu, get_gpu).lower(), _canonical(model, get_model).lower(), tp)
    found = (profile.gpu_name.lower(), profile.model.name.lower(), profile.tp)
    if found != wanted:
        raise ProfileError(
            f"profile {path} is for {profile.gpu_name} / {profile.model.name} tp={profile.tp}, not the requested "
            f"{wanted[0]} / {wanted[1]} tp={tp}: fix its header or move it"
        )
    return profile


class ProfileCostModel:
    """Evaluates a calibration profile's fitted ``tile_knee_linear`` form (docs/profiles.md).

    Formula::

        t = c0 + c_tok * max(0, tile_ceil(T) - knee) + c_attn * Σ c (x + c / 2) + c_pre_ctx * Σ x
               + c_dec * n_decodes + c_kv * decode_context_sum

    Attributes:
        params: The fitted coefficients.
        profile: The profile they came from, if any.
    """

    name: ClassVar[str] = "profile"
    __slots__ = ("params", "profile")

    def __init__(self, source: Profile | FittedParams | str | os.PathLike[str]) -> None:
        """Build from a loaded profile, bare fitted parameters, or a profile path."""
        if isinstance(source, (str, os.PathLike)):
            source = load_profile(source)
        self.profile = source if isinstance(source, Profile) else None
        self.params = source.fit if isinstance(source, Profile) else source

    def __repr__(self) -> str:
        return f"ProfileCostModel({self.params!r})"

    def _fixed_part(self, tokens: int, n_dec: int) -> float:
        """Intercept, token and decode-count terms (those that do not grow with context)."""
        p = self.params
        tile = p.tile_tokens
        gemm = -(-tokens // tile) * tile if tile > 1 else tokens
        return p.c0 + p.c_tok * max(gemm - p.knee_tokens, 0) + p.c_dec * n_dec

    def compiled_form(self) -> CompiledCost:
        """The fitted form as coefficients of the compiled tile-knee-linear form (for the fused step)."""
        p = self.params
        coef = [p.c0, p.tile_tokens, p.c_tok, p.knee_tokens, p.c_dec, p.c_kv, p.c_attn, p.c_pre_ctx]
        return CompiledCost(TILE_KNEE_LINEAR, np.array(coef, dtype=np.float64))

    def iteration_time(self, batch: BatchSummary) -> float:
        """Duration of one iteration computing ``batch``, in seconds."""
        p = self.params
        s_c, s_cx, s_cc, s_x = prefill_aggregates(batch)
        n_dec = batch.n_decodes
        t = self._fixed_part(s_c + n_dec, n_dec) + p.c_kv * batch.decode_context_sum
        if s_c:
            t += p.c_attn * (s_cx + 0.5 * s_cc) + p.c_pre_ctx * s_x
        return t

    def stretch_times(self, batch: BatchSummary, k: int) -> FloatArray:
        """Durations of ``k`` repetitions with growing contexts (vectorised)."""
        check_k(k)
        p = self.params
        s_c, s_cx, s_cc, s_x = prefill_aggregates(batch)
        n_dec = batch.n_decodes
        j = np.arange(k, dtype=np.float64)
        first = self._fixed_part(s_c + n_dec, n_dec) + p.c_kv * batch.decode_context_sum
        slope = p.c_kv * n_dec
        if s_c:
            first += p.c_attn * (s_cx + 0.5 * s_cc) + p.c_pre_ctx * s_x
            slope += p.c_attn * s_cc + p.c_pre_ctx * s_c
        return first + slope * j
