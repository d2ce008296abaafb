"""The parsers and the error path.

No abbreviations anywhere, help on every option, errors in command-line words, missing optional packages named with
their install command, listings of GPUs, models and parameters, the compile notice.
"""

from __future__ import annotations

import argparse
import builtins
import sys
from pathlib import Path
from typing import Any

import pytest

from llmsched_gym.cli import build_parser, main
from llmsched_gym.cli.errors import flag_table, missing_package, speak_cli
from llmsched_gym.cli.validate import UsageError


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


COMMANDS = sorted(_subparsers())
LEADING = {"train": ["slo-goodput"], "evaluate": ["slo-goodput"]}  # a valid positional, checked before options


def test_every_command_is_registered() -> None:
    expected = {"simulate", "capacity", "compare", "live", "schedulers", "params", "workloads", "cost-models", "gpus"}
    assert expected | {"models"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_no_parser_accepts_an_abbreviated_option(command: str) -> None:
    sub = _subparsers()[command]
    options = {s for a in sub._actions for s in a.option_strings if s.startswith("--")}
    for option in sorted(options - {"--help"}):
        prefix = option[:-1]
        if prefix in options or prefix == "-":
            continue
        with pytest.raises(UsageError, match="unknown option"):
            build_parser().parse_args([command, *LEADING.get(command, []), prefix, "1"])


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help(command: str) -> None:
    for action in _subparsers()[command]._actions:
        assert action.help, (command, action.dest)


def test_errors_speak_in_flags_not_keywords() -> None:
    flags = flag_table(_subparsers()["simulate"])
    options = frozenset({"sort", "zero"})
    assert speak_cli("timestamps decrease; pass sort=True to sort it", flags, options) == (
        "timestamps decrease; pass --workload-option sort=true to sort it"
    )
    assert speak_cli("make_workload: rate=-1.0 must be positive", flags) == "--rate -1.0 must be positive"
    assert speak_cli("Pass trace_dir=... or set X", flags) == "Pass --trace-dir DIR or set X"
    assert speak_cli("pass zero='skip' to drop", flags, options) == "pass --workload-option zero=skip to drop"
    assert speak_cli("SarathiConfig: chunk_size=0 must be >= 1", {}) == "chunk_size=0 must be >= 1"
    assert speak_cli("x.csv: line 3: bad", flags) == "x.csv: line 3: bad"  # file names are not keywords


def test_live_device_error_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from llmsched_gym.cli.errors import namespace_flags

    message = "device='cuda' needs CUDA; or pass device='cpu' with a tiny model"
    flags = namespace_flags(argparse.Namespace(device="cuda", n_requests=3))
    assert speak_cli(message, flags) == "--device cuda needs CUDA; or pass --device cpu with a tiny model"


@pytest.mark.parametrize(
    ("package", "hint"), [("matplotlib", ".[plots]"), ("torch", "index-url"), ("transformers", ".[executor]")]
)
def test_a_missing_optional_package_names_its_install_command(package: str, hint: str) -> None:
    message = missing_package(ImportError(f"No module named '{package}'", name=package))
    assert package in message and hint in message


def _block(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    real_import = builtins.__import__

    def fake(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == package or name.startswith(package + "."):
            raise ImportError(f"No module named {package!r}", name=package)
        return real_import(name, *args, **kwargs)

    for loaded in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, loaded)
    monkeypatch.setattr(builtins, "__import__", fake)


def test_live_without_torch_says_how_to_install_it(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    for module in [
        m for m in sys.modules if m.startswith("llmsched_gym.executor.") and m != "llmsched_gym.executor.cli"
    ]:
        monkeypatch.delitem(sys.modules, module)
    _block(monkeypatch, "torch")
    assert main(["live", "--n-requests", "2", "--model", "tiny-llama", "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "optional package 'torch'" in err and ".[executor]" in err and "Traceback" not in err


def test_compare_without_matplotlib_stops_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "matplotlib" else real(n, *a))
    out = tmp_path / "o"
    assert main(["compare", "--n-requests", "4", "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pip install -e '.[plots]'" in err and "--no-plots" in err
    assert not (out / "compare.csv").exists()
    assert main(["compare", "--n-requests", "4", "--out-dir", str(out), "--no-plots", "--no-progress"]) == 0
    assert (out / "compare.csv").exists()


def test_reproductions_without_matplotlib_exit_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from reproductions._common import parse_args

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "matplotlib" else real(n, *a))
    with pytest.raises(SystemExit, match=r"pip install -e '\.\[plots\]'"):
        parse_args("x", ["--quick"])


def test_gpus_and_models_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    from llmsched_gym.hardware import GPUS, MODELS

    assert main(["gpus"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in GPUS) and "GiB" in out
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in MODELS) and "KiB/token" in out


def test_workload_options_are_listed_with_types(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workloads", "--options", "synthetic-sharegpt"]) == 0
    out = capsys.readouterr().out
    assert "max_total: int, default 8192" in out and "cv: float or none" in out
    assert main(["workloads"]) == 0
    assert "--trace PATH" in capsys.readouterr().out


def test_compile_notice_is_printed_before_a_first_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmsched_gym.jit_cache as jit

    monkeypatch.setattr(jit, "uncached_kernel_files", lambda packages=(): [Path("kernels.py")])
    assert main(["simulate", "--n-requests", "3", "--no-progress"]) == 0
    assert "compiling simulator kernels, once" in capsys.readouterr().err
    monkeypatch.setattr(jit, "uncached_kernel_files", lambda packages=(): [])
    assert main(["simulate", "--n-requests", "3", "--no-progress"]) == 0
    assert "compiling" not in capsys.readouterr().err


def test_uncached_kernel_files_follow_numbas_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from llmsched_gym.jit_cache import uncached_kernel_files

    package = tmp_path / "pkg_kernels_probe"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    source = package / "k.py"
    source.write_text("@njit(cache=True)\ndef f():\n    pass\n")
    (package / "plain.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert uncached_kernel_files(("pkg_kernels_probe",)) == [source]
    index = package / "__pycache__" / "k.f-1.py311.nbi"
    index.write_text("")
    os.utime(source, (1, 1))
    assert uncached_kernel_files(("pkg_kernels_probe",)) == []
