"""Reading calibration profile JSON (schema versions 1 and 2; docs/profiles.md) into checked values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from llmsched_gym.costs.operator import OperatorParams
from llmsched_gym.costs.profile_fit import COEFFICIENTS, FittedParams, MeasuredPoint, Validation
from llmsched_gym.errors import ProfileError
from llmsched_gym.hardware import ModelSpec

SCHEMA_VERSION = 2
"""The version this llmsched-gym writes."""
READABLE_VERSIONS = (1, 2)
MODEL_FIELDS = ("name", "n_layers", "hidden", "n_heads", "n_kv_heads", "head_dim", "intermediate", "vocab")
MODEL_OPTIONAL = ("gated_mlp", "tied_embeddings")
POINT_FIELDS = ("prefill_tokens", "prefill_context", "n_decodes", "decode_context_sum", "n_seqs", "seconds")
POINT_OPTIONAL = ("role", "flag", "spread", "repeats")
VALIDATION_FIELDS = ("mape", "max_abs_rel_error", "n_train", "n_holdout")
FORMS = (FittedParams.form, OperatorParams.form)
_COMMON: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "": ("gpu", "model", "tp", "block_size", "executor", "created", "provenance", "grid", "fit", "validation"),
        "gpu": ("name", "memory_bytes"),
        "model": (*MODEL_FIELDS, "dtype_bytes"),
        "executor": ("version",),
        "validation": VALIDATION_FIELDS,
    }
)
REQUIRED: Mapping[int, Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        1: MappingProxyType(
            {**_COMMON, "fit": ("form", "tile_tokens", "knee_tokens", "coefficients"), "fit.coefficients": COEFFICIENTS}
        ),
        2: MappingProxyType(
            {
                **_COMMON,
                "": (*_COMMON[""], "source"),
                "source": ("kind", "reference", "caveats"),
                "fit": ("form", "coefficients"),
                "validation": (*VALIDATION_FIELDS, "median_abs_error", "p90_abs_error"),
            }
        ),
    }
)
SOURCE_KINDS = ("measured", "imported")


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``.

    Raises:
        ProfileError: Missing file, invalid JSON, or not an object.
    """
    if not path.is_file():
        raise ProfileError(f"profile {path} does not exist (or is not a file); check the path or run the calibration")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"profile {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"profile {path} must hold a JSON object, found {type(data).__name__}")
    return data


def check_version(source: str, data: Mapping[str, Any]) -> int:
    """The profile's schema version (1 or 2).

    Raises:
        ProfileError: No version, or one this llmsched-gym cannot read (the message names both).
    """
    supported = " and ".join(str(v) for v in READABLE_VERSIONS)
    if "schema_version" not in data:
        raise ProfileError(
            f"profile {source} has no schema_version; this llmsched-gym reads schema_version {supported}"
        )
    found = data["schema_version"]
    if isinstance(found, bool) or found not in READABLE_VERSIONS:
        raise ProfileError(
            f"profile {source} has schema_version {found!r}; this llmsched-gym supports schema_version {supported} "
            "only: re-run the calibration or upgrade llmsched-gym"
        )
    return int(found)


def missing_fields(data: Mapping[str, Any], version: int) -> list[str]:
    """Dotted names of every required field absent from ``data`` (a missing section is named once)."""
    missing: list[str] = []
    for section, names in REQUIRED[version].items():
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


def parse_point(raw: Any, index: int) -> MeasuredPoint:
    """One grid point (``grid[index]``)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"grid[{index}] must be an object with fields {', '.join(POINT_FIELDS)}")
    absent = [name for name in POINT_FIELDS if name not in raw]
    if absent:
        raise ValueError(f"grid[{index}] lacks field(s): {', '.join(absent)}")
    if not raw["seconds"] > 0:
        raise ValueError(f"grid[{index}].seconds = {raw['seconds']} must be > 0 (a measured duration)")
    extra = {name: raw[name] for name in POINT_OPTIONAL if raw.get(name) is not None}
    try:
        return MeasuredPoint(
            tuple(int(c) for c in raw["prefill_tokens"]),
            tuple(int(x) for x in raw["prefill_context"]),
            int(raw["n_decodes"]),
            int(raw["decode_context_sum"]),
            int(raw["n_seqs"]),
            float(raw["seconds"]),
            **extra,
        )
    except ValueError as exc:
        raise ValueError(f"grid[{index}]: {exc}") from None


def parse_fit(source: str, fit: Mapping[str, Any]) -> FittedParams | OperatorParams:
    """The ``fit`` section: ``tile_knee_linear`` (schema 1 and 2) or ``operator`` (schema 2)."""
    form = fit["form"]
    if form not in FORMS:
        raise ProfileError(f"profile {source}: fit.form={form!r} is unknown; supported: {', '.join(FORMS)}")
    coefficients = fit["coefficients"]
    if not isinstance(coefficients, Mapping):
        raise ProfileError(f"profile {source}: fit.coefficients must be an object")
    if form == OperatorParams.form:
        return OperatorParams.from_mapping(coefficients, source=f"profile {source}: fit.coefficients")
    for name in ("tile_tokens", "knee_tokens"):
        if name not in fit and name not in coefficients:
            raise ProfileError(f"profile {source} is missing field(s): fit.{name}")
    absent = [f"fit.coefficients.{n}" for n in COEFFICIENTS if n not in coefficients]
    if absent:
        raise ProfileError(f"profile {source} is missing field(s): {', '.join(absent)}")
    return FittedParams(
        tile_tokens=int(fit.get("tile_tokens", coefficients.get("tile_tokens", 0))),
        knee_tokens=int(fit.get("knee_tokens", coefficients.get("knee_tokens", 0))),
        **{name: float(coefficients[name]) for name in COEFFICIENTS},
    )


def parse_model(model: Mapping[str, Any]) -> ModelSpec:
    """The ``model`` section."""
    optional: dict[str, Any] = {name: bool(model[name]) for name in MODEL_OPTIONAL if name in model}
    return ModelSpec(**{name: model[name] for name in (*MODEL_FIELDS, "dtype_bytes")}, **optional)


def parse_validation(raw: Mapping[str, Any]) -> Validation:
    """The ``validation`` section (``median_abs_error`` / ``p90_abs_error`` optional in schema 1)."""
    stats: dict[str, Any] = {name: raw[name] for name in VALIDATION_FIELDS}
    stats.update({name: raw.get(name) for name in ("median_abs_error", "p90_abs_error")})
    return Validation(**stats)
