"""Scheduler parameters by introspection.

Every registered scheduler's parameters are listed with type, default and meaning, and ``--param`` values are typed
before anything runs.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmsched_gym.cli import main
from llmsched_gym.cli.params import REQUIRED, coerce_params, doc_entries, scheduler_parameters
from llmsched_gym.cli.validate import UsageError
from llmsched_gym.cli.values import ConversionError, convert, spell, type_text
from llmsched_gym.schedulers import REGISTRY, scheduler_class

NAMES = sorted(REGISTRY)


@pytest.mark.parametrize("name", NAMES)
def test_every_constructor_argument_is_listed_documented_and_typed(name: str) -> None:
    params = {p.name: p for p in scheduler_parameters(name)}
    signature = inspect.signature(scheduler_class(name)).parameters
    named = {n for n, p in signature.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    assert named <= set(params)
    for p in params.values():
        assert p.doc, f"{name}: {p.name} is undocumented"
        assert p.annotation is not Any, f"{name}: {p.name} has no resolvable type"
    for key, value in REGISTRY[name].kwargs.items():
        assert params[key].default == value and params[key].preset


@pytest.mark.parametrize("name", NAMES)
def test_params_command_prints_each_parameter(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["params", name]) == 0
    out = capsys.readouterr().out
    for p in scheduler_parameters(name):
        assert f"  {p.name}: " in out
    assert main(["schedulers", "--params", name.upper()]) == 0
    assert capsys.readouterr().out == out


def test_every_settable_default_reads_back_from_its_own_spelling() -> None:
    for name in NAMES:
        for p in scheduler_parameters(name):
            if p.default is REQUIRED or "Python" in p.type_name or p.default is None:
                continue
            if isinstance(p.default, tuple | list) and not p.default:
                continue
            assert convert(spell(p.default), p.annotation) == p.default, (name, p.name)


def test_values_are_typed_before_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import llmsched_gym.simulate as simulate_module

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the simulation must not start")

    monkeypatch.setattr(simulate_module, "simulate", never)
    for value in ("true", "1.5", "abc", "1e3", ""):
        assert main(["simulate", "--param", f"chunk_size={value}", "--no-progress"]) == 2
    assert coerce_params("sarathi", {"chunk_size": "1024", "order": "spf", "max_model_len": "none"}) == {
        "chunk_size": 1024,
        "order": "spf",
        "max_model_len": None,
    }


def test_unknown_parameter_lists_the_valid_ones() -> None:
    with pytest.raises(UsageError, match=r"did you mean 'chunk_size'.*it takes chunk_size, max_num_seqs") as info:
        coerce_params("sarathi", {"chunksize": "5"})
    assert info.value.flag == "--param chunksize=5"


def test_doc_entries_reads_google_sections() -> None:
    doc = """Title.

    Args:
        alpha: First line
            continued here.
        **options: Forwarded.

    Returns:
        beta: not an argument.
    """
    assert doc_entries(doc) == {"alpha": "First line continued here.", "options": "Forwarded."}


@given(st.integers(-(10**12), 10**12))
def test_integers_round_trip(value: int) -> None:
    assert convert(spell(value), int) == value
    assert convert(spell(value), int | None) == value


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip(value: float) -> None:
    assert convert(repr(value), float) == value


@pytest.mark.parametrize(
    ("text", "tp", "expected"),
    [
        ("TRUE", bool, True),
        ("no", bool, False),
        ("none", float | None, None),
        ("0.5", float | None, 0.5),
        ("Full", Literal["recompute", "full"], "full"),
        ("1,2,3", tuple[int, ...], (1, 2, 3)),
        ("512,20,1.5", tuple[int, int, float], (512, 20, 1.5)),
        ("x", str | None, "x"),
    ],
)
def test_conversions(text: str, tp: Any, expected: Any) -> None:
    assert convert(text, tp) == expected


@pytest.mark.parametrize(
    ("text", "tp"),
    [
        ("true", int),
        ("1.5", int),
        ("nan", float),
        ("inf", float),
        ("maybe", bool),
        ("x", Literal["a"]),
        ("1,2", tuple[int, int, int]),
    ],
)
def test_conversion_refusals_say_what_was_expected(text: str, tp: Any) -> None:
    with pytest.raises(ConversionError, match=repr(text)):
        convert(text, tp)


def test_type_names_are_short() -> None:
    assert type_text(int | None) == "int or none"
    assert type_text(Literal["a", "b"]) == "'a' | 'b'"
    assert type_text(tuple[int, ...]) == "comma-separated int"
