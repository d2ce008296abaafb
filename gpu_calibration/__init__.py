"""GPU calibration: measure the live executor, fit the operator cost form, validate it, compare sim with live.

Pipeline (docs/calibration.md)::

    llmsched calibrate profile   -> measurement JSON (designed grid + random mixed batches, timed on the executor)
    llmsched calibrate fit       -> profile JSON (llmsched_gym/profiles/<gpu>/<model>[-tp<N>].json layout)
    llmsched calibrate validate  -> held-out errors and plots of predicted vs measured
    llmsched calibrate compare   -> the same trace and scheduler live and simulated, metric by metric

Modules: :mod:`~gpu_calibration.design` (the grid, no torch), :mod:`~gpu_calibration.profiler` (timing on the
executor, torch), :mod:`~gpu_calibration.measurement` (measurement files and the points CSV format),
:mod:`~gpu_calibration.fitting` (measurement -> profile), :mod:`~gpu_calibration.splitwise` (importer of the
public Splitwise characterisation), :mod:`~gpu_calibration.compare` (sim vs live), :mod:`~gpu_calibration.plots`,
:mod:`~gpu_calibration.cli`. Importing this package imports neither torch nor the executor.
"""

from __future__ import annotations
