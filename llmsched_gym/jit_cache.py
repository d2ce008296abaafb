"""Whether the compiled (numba) kernels are already cached, so a one-time compile can be announced.

numba caches each ``cache=True`` kernel next to its source (``__pycache__/<module>.<function>-<line>.py311.nbi``)
and recompiles when the source is newer. :func:`uncached_kernel_files` applies the same rule to a package's files,
without importing or compiling anything, and :func:`compile_message` turns it into the line a command prints
before its first run ("compiling simulator kernels, once, ~30 s"). The env can call it with
:data:`ENV_PACKAGES` before ``gymnasium.make`` compiles its own kernels.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

SIMULATOR_PACKAGES = ("llmsched_gym.core", "baselines")
"""Packages whose kernels a simulation compiles."""

ENV_PACKAGES = ("llmsched_gym.core", "llmsched_gym.env")
"""Packages whose kernels the Gymnasium environment compiles."""


def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except ImportError:
        return None
    locations = None if spec is None else spec.submodule_search_locations
    return Path(next(iter(locations))) if locations else None


def uncached_kernel_files(packages: Sequence[str] = SIMULATOR_PACKAGES) -> list[Path]:
    """Source files with ``cache=True`` kernels and no cache at least as new as the source."""
    out: list[Path] = []
    for package in packages:
        folder = _package_dir(package)
        if folder is None:
            continue
        for source in sorted(folder.glob("*.py")):
            if "cache=True" not in source.read_text(encoding="utf-8", errors="replace"):
                continue
            stamps = [p.stat().st_mtime for p in (folder / "__pycache__").glob(f"{source.stem}.*.nbi")]
            if not stamps or max(stamps) < source.stat().st_mtime:
                out.append(source)
    return out


def compile_message(packages: Sequence[str] = SIMULATOR_PACKAGES, what: str = "simulator") -> str | None:
    """The one-time compile notice, or ``None`` when every kernel of ``packages`` is cached."""
    if not uncached_kernel_files(packages):
        return None
    return (
        f"compiling {what} kernels, once (30-60 s); they are cached next to the sources, so later runs start in "
        "about a second"
    )
