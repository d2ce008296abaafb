"""Shared fixtures of the workload tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

TRACES_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "traces"
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def traces_dir() -> Path:
    """The public traces folder next to the repository, or skip the test."""
    if not TRACES_DIR.is_dir():
        pytest.skip(f"public traces not found at {TRACES_DIR} (set up ../shared/traces next to the repo)")
    return TRACES_DIR


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The hand-written fixture files of these tests."""
    return FIXTURES_DIR


@pytest.fixture(scope="session")
def trace_path() -> Callable[[str], Path]:
    """A function returning a file of the public traces folder, skipping the test when it is absent."""

    def find(name: str) -> Path:
        path = TRACES_DIR / name
        if not path.is_file():
            pytest.skip(f"public trace file {path} not found")
        return path

    return find
