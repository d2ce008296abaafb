"""Cost models: map a batch summary to an iteration time (docs/cost_models.md, docs/profiles.md).

* :class:`RooflineCostModel` (``"roofline"``, the default): operator-level roofline fitted to public GPU measurements.
* :class:`ProfileCostModel` (``"profile"``): a fitted calibration profile (versioned JSON).
* :class:`OperatorCostModel`: the operator form with explicit coefficients (:class:`OperatorParams`).
* :class:`UnitCostModel`, :class:`AffineKVCostModel`, :class:`TileStepCostModel` (``"unit"``, ``"affine_kv"``,
  ``"tile_step"``): the models the theory papers assume (MC-SF, WAIT, SLAI).

Build one by name with :func:`make_cost_model`.
"""

from __future__ import annotations

from llmsched_gym.costs.analytic import AffineKVCostModel, TileStepCostModel, UnitCostModel, batch_kv_tokens
from llmsched_gym.costs.fitting import fit_affine_kv, fit_tile_step
from llmsched_gym.costs.operator import OperatorCostModel, OperatorParams
from llmsched_gym.costs.operator_fit import OperatorFit, OperatorFitConfig, fit_operator
from llmsched_gym.costs.profile import (
    PROFILES_DIR,
    Profile,
    ProfileCostModel,
    find_profile,
    list_profiles,
    load_profile,
    profile_from_dict,
    profile_path,
)
from llmsched_gym.costs.profile_fit import FittedParams, MeasuredPoint, ProfileFit, Validation, fit_profile
from llmsched_gym.costs.profile_schema import SCHEMA_VERSION
from llmsched_gym.costs.registry import DEFAULT_COST_MODEL, list_cost_models, make_cost_model
from llmsched_gym.costs.roofline import RooflineCostModel, RooflineParams

__all__ = [
    "DEFAULT_COST_MODEL",
    "PROFILES_DIR",
    "SCHEMA_VERSION",
    "AffineKVCostModel",
    "FittedParams",
    "MeasuredPoint",
    "OperatorCostModel",
    "OperatorFit",
    "OperatorFitConfig",
    "OperatorParams",
    "Profile",
    "ProfileCostModel",
    "ProfileFit",
    "RooflineCostModel",
    "RooflineParams",
    "TileStepCostModel",
    "UnitCostModel",
    "Validation",
    "batch_kv_tokens",
    "find_profile",
    "fit_affine_kv",
    "fit_operator",
    "fit_profile",
    "fit_tile_step",
    "list_cost_models",
    "list_profiles",
    "load_profile",
    "make_cost_model",
    "profile_from_dict",
    "profile_path",
]
