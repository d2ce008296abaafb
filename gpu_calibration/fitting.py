"""From a measurement to a calibration profile: fit the operator form, validate it, record how."""

from __future__ import annotations

from dataclasses import asdict

from gpu_calibration.measurement import Measurement
from llmsched_gym.costs.operator_fit import OperatorFitConfig, fit_operator
from llmsched_gym.costs.profile import Profile


def fit_measurement(measurement: Measurement, config: OperatorFitConfig | None = None) -> Profile:
    """Fit ``measurement`` (docs/profiles.md, "Fitting") and return the profile that records grid, fit and validation.

    Args:
        measurement: Measured points with their provenance.
        config: Fit settings (default :class:`OperatorFitConfig` ()).
    """
    cfg = config or OperatorFitConfig()
    fit = fit_operator(measurement.points, cfg)
    n_out = sum(p.flag == "outlier" for p in fit.points)
    holdout = sum(p.role == "holdout" for p in fit.points)
    method = (
        f"{holdout} held-out points" if holdout else (f"{cfg.folds}-fold cross-validation" if cfg.folds else "none")
    )
    info = {
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
        fit=fit.params,
        validation=fit.validation,
        executor_info=measurement.executor_info,
        source=measurement.source,
        reference=measurement.reference,
        caveats=measurement.caveats,
        fit_info=info,
    )
