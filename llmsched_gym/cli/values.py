"""Typed conversion of command-line text: ``"512"`` to ``int``, ``"none"`` to ``None``, ``"a,b"`` to a tuple.

One converter serves every ``KEY=VALUE`` flag (``--param``, ``--workload-option``) and every command that adds
its own: the target type is a Python annotation (``int``, ``float | None``, ``Literal["fcfs", "spf"]``,
``tuple[int, ...]``), read from a scheduler's signature or a workload's option table. Conversion is strict: a
bool is never an int, ``1.5`` is never an int, ``abc`` is never a number, and a non-finite float is refused.
"""

from __future__ import annotations

import collections.abc
import math
import re
import types
import typing
from typing import Any, Literal

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("none", "null")
_INT = re.compile(r"[+-]?[0-9]+")


class ConversionError(ValueError):
    """A text cannot be read as the wanted type; the message says what was expected."""


def _args(tp: Any) -> tuple[Any, ...]:
    return typing.get_args(tp)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _is_sequence(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return origin in (tuple, list, collections.abc.Sequence, collections.abc.Collection, collections.abc.Iterable)


def type_text(tp: Any) -> str:
    """A short human name of an annotation: ``int``, ``float or none``, ``'fcfs' | 'spf'``, ``list of int``."""
    if tp is Any or tp is None:
        return "any"
    if tp is type(None):
        return "none"
    if _is_union(tp):
        members = [a for a in _args(tp) if a is not type(None)]
        shown = [a for a in members if settable(a)] or members
        text = " | ".join(type_text(a) for a in shown)
        return f"{text} or none" if type(None) in _args(tp) else text
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(v) for v in _args(tp))
    if _is_sequence(tp):
        inner = _items(tp)
        if len(inner) > 1:
            return f"{len(inner)} comma-separated values ({', '.join(type_text(a) for a in inner)})"
        return f"comma-separated {type_text(inner[0]) if inner else 'values'}"
    if isinstance(tp, str):
        return tp
    return getattr(tp, "__name__", str(tp))


def settable(tp: Any) -> bool:
    """Whether a value of this annotation can be written on the command line."""
    if tp is Any or tp in (bool, int, float, str) or tp is type(None):
        return True
    if _is_union(tp):
        return any(settable(a) for a in _args(tp) if a is not type(None))
    if typing.get_origin(tp) is Literal:
        return True
    if _is_sequence(tp):
        return all(settable(a) and not _is_sequence(a) for a in _items(tp))
    return False


def _items(tp: Any) -> list[Any]:
    """Item types of a sequence annotation: one for ``tuple[int, ...]``/``list[int]``, each for ``tuple[a, b]``."""
    return [a for a in _args(tp) if a is not Ellipsis]


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConversionError(f"{text!r} is not true or false")


def _int(text: str) -> int:
    body = text.strip().replace("_", "")
    if _INT.fullmatch(body):
        return int(body)
    raise ConversionError(f"{text!r} is not a whole number")


def _float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ConversionError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ConversionError(f"{text!r} is not a finite number")
    return value


def _literal(text: str, tp: Any) -> Any:
    for value in _args(tp):
        if isinstance(value, str) and value.lower() == text.strip().lower():
            return value
        if not isinstance(value, str) and str(value).lower() == text.strip().lower():
            return value
    raise ConversionError(f"{text!r} is not one of {' | '.join(repr(v) for v in _args(tp))}")


def _loose(text: str) -> Any:
    """Untyped values: bool, none, int, float, else the string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in _NONE:
        return None
    for cast in (_int, _float):
        try:
            return cast(text)
        except ConversionError:
            pass
    return text


def _union(text: str, tp: Any) -> Any:
    members = [a for a in _args(tp) if a is not type(None)]
    if type(None) in _args(tp) and text.strip().lower() in _NONE:
        return None
    ranked = sorted(members, key=lambda a: (a is str, not settable(a)))  # str last: it accepts anything
    for member in ranked:
        if not settable(member):
            continue
        try:
            return convert(text, member)
        except ConversionError:
            continue
    raise ConversionError(f"{text!r} is not {type_text(tp)}")


def convert(text: str, tp: Any) -> Any:
    """Convert command-line ``text`` to a value of annotation ``tp``.

    Raises:
        ConversionError: The text is not a value of that type, or the type cannot be set from text.
    """
    if tp is Any or tp is None:
        return _loose(text)
    simple: dict[Any, Any] = {bool: _bool, int: _int, float: _float, str: lambda t: t}
    if tp in simple:
        return simple[tp](text)
    if _is_union(tp):
        return _union(text, tp)
    if typing.get_origin(tp) is Literal:
        return _literal(text, tp)
    if _is_sequence(tp) and settable(tp):
        return _sequence(text, tp)
    raise ConversionError(f"a {type_text(tp)} cannot be given on the command line")


def _sequence(text: str, tp: Any) -> tuple[Any, ...]:
    inner = _items(tp)
    items = [t.strip() for t in text.split(",") if t.strip()]
    fixed = typing.get_origin(tp) is tuple and Ellipsis not in _args(tp) and len(inner) > 1
    if fixed and len(items) != len(inner):
        raise ConversionError(f"{text!r} has {len(items)} values; give {len(inner)} ({type_text(tp)})")
    if fixed:
        return tuple(convert(t, a) for t, a in zip(items, inner, strict=True))
    return tuple(convert(t, inner[0] if inner else Any) for t in items)


def spell(value: Any) -> str:
    """How a Python value is written on the command line (``True`` -> ``true``, ``None`` -> ``none``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, tuple | list):
        return ",".join(spell(v) for v in value)
    return str(value)
