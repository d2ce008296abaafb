"""From a measurement to a calibration profile: fit the operator form, validate it, record how."""

from __future__ import annotations

from dataclasses import asdict

from gpu_calibration.measurement import Measurement
from llmsched_gym.costs.operator import OperatorParams
from llmsched_gym.costs.operator_fit import OperatorFit, OperatorFitConfig, fit_operator
from llmsched_gym.costs.profile import Profile
from llmsched_gym.costs.profile_fit import FittedParams


def fit_measurement(measurement: Measurement, config: OperatorFitConfig | None = None) -> Profile:
    """Fit ``measurement`` (docs/profiles.md, "Fitting") and return the profile that records grid, fit and validation.

    Args:
        measurement: Measured points with their provenance.
        config: Fit settings (default :class:`OperatorFitConfig` ()).
    """
    cfg = config or OperatorFitConfig()
    fit = fit_operator(measurement.points, cfg)
    overhead = float(measurement.executor_info.get("engine_overhead_s", 0.0))
    info = fit_info(cfg, fit, overhead, str(measurement.executor_info.get("engine_overhead_scheduler")))
    return Profile(
        gpu_name=measurement.gpu_name,
        gpu_memory_bytes=measurement.gpu_memory_bytes,
        model=measurement.model,
        tp=measurement.tp,
        block_size=measurement.block_size,
        executor_version=measurement.executor_version,
        created=measurement.created,
        provenance=measurement.provenance,
        grid=fit.points,
        fit=fit.params.with_values(fixed_s=fit.params.fixed_s + overhead),
        validation=fit.validation,
        executor_info=measurement.executor_info,
        source=measurement.source,
        reference=measurement.reference,
        caveats=measurement.caveats,
        fit_info=info,
    )


def fit_info(cfg: OperatorFitConfig, fit: OperatorFit, overhead: float, scheduler: str) -> dict[str, object]:
    """The profile's ``fit.info``: how the fit was made and validated, and the engine overhead it includes."""
    n_out = sum(p.flag == "outlier" for p in fit.points)
    holdout = sum(p.role == "holdout" for p in fit.points)
    method = (
        f"{holdout} held-out points" if holdout else (f"{cfg.folds}-fold cross-validation" if cfg.folds else "none")
    )
    info: dict[str, object] = {
        "method": "least squares of log(predicted / measured), Levenberg-Marquardt, multi-start",
        "free": list(cfg.free),
        "tiles": list(cfg.tiles),
        "starts": cfg.starts,
        "seed": cfg.seed,
        "validation": method,
        "outliers": n_out,
        "outlier_rule": f"error > {cfg.outlier_error:.0%} and > {cfg.outlier_sigmas:g} robust sigmas",
        "fixed": {k: v for k, v in asdict(cfg.base).items() if k not in cfg.free and k != "tile_tokens"},
    }
    if overhead:
        info["engine_overhead_s"] = overhead
        info["engine_overhead"] = (
            f"fixed_s includes the live engine's {overhead * 1e3:.3f} ms per decision ({scheduler}); validation is "
            "of the executor alone"
        )
    return info


def executor_fit(profile: Profile) -> OperatorParams | FittedParams:
    """The profile's fit without the engine overhead it includes: the model of the executor's iterations alone."""
    overhead = float(profile.fit_info.get("engine_overhead_s", 0.0))
    if overhead and isinstance(profile.fit, OperatorParams):
        return profile.fit.with_values(fixed_s=max(profile.fit.fixed_s - overhead, 0.0))
    return profile.fit
