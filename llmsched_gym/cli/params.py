"""Scheduler parameters by introspection: names, types, defaults and meaning, and typed ``--param`` values.

Nothing is listed by hand. A scheduler's parameters are its class's ``__init__`` signature (types from the
annotations, defaults from the signature overridden by the registered preset), documented by the ``Args:``
section of the class docstring. A ``**options`` argument is followed into the class or config dataclass that its
docstring names (``Further :class:`VTCConfig` fields``), else into the next base class; a dataclass contributes
its fields, documented by its ``Attributes:`` section. ``llmsched params NAME`` prints the result and
:func:`coerce_params` converts ``--param`` texts with it.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import sys
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from llmsched_gym.cli.validate import UsageError, suggest
from llmsched_gym.cli.values import ConversionError, convert, settable, spell, type_text

REQUIRED = inspect.Parameter.empty
_SECTION = re.compile(r"^(\s*)(Args|Arguments|Attributes|Parameters):\s*$")
_ENTRY = re.compile(r"^\*{0,2}(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")
_REFERENCE = re.compile(r":class:`~?([\w.]+)`")


@dataclass(frozen=True, slots=True)
class ParamInfo:
    """One settable parameter of a scheduler.

    Attributes:
        name: Keyword name (``--param NAME=VALUE``).
        annotation: Its type (``Any`` when the annotation cannot be resolved).
        default: The registered name's default (preset or signature), or :data:`REQUIRED`.
        doc: Its meaning, from the docstrings ("" when undocumented).
        preset: Whether the registered name presets it (``sarathi-spf`` presets ``order``).
    """

    name: str
    annotation: Any
    default: Any
    doc: str
    preset: bool = False

    @property
    def type_name(self) -> str:
        """The annotation as text (``int``, ``float or none``, ...)."""
        if settable(self.annotation):
            return type_text(self.annotation)
        return "a Python object (not settable from the CLI)"


def doc_entries(doc: str | None) -> dict[str, str]:
    """The ``name: meaning`` entries of a Google-style ``Args:``/``Attributes:`` section, continuation lines joined."""
    out: dict[str, str] = {}
    indent: int | None = None
    current: str | None = None
    for line in inspect.cleandoc(doc or "").splitlines():
        if (m := _SECTION.match(line)) is not None:
            indent, current = len(m.group(1)), None
            continue
        if indent is None:
            continue
        depth = len(line) - len(line.lstrip())
        if line.strip() and depth <= indent:
            indent, current = None, None
            continue
        entry = _ENTRY.match(line.strip())
        if entry is not None and depth == indent + 4:
            current = entry.group(1)
            out[current] = entry.group(2).strip()
        elif current is not None and line.strip():
            out[current] += " " + line.strip()
    return out


def _hints(obj: Any) -> dict[str, Any]:
    """Resolved annotations of a function or class; unresolvable ones (``TYPE_CHECKING`` imports) are ``Any``."""
    try:
        return typing.get_type_hints(obj)
    except Exception:
        pass
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    namespace = {**vars(typing), **(vars(module) if module else {})}
    raw = getattr(obj, "__annotations__", {})
    out: dict[str, Any] = {}
    for name, text in raw.items():
        try:
            out[name] = eval(text, namespace) if isinstance(text, str) else text
        except Exception:
            out[name] = Any
    return out


def _resolve(reference: str, owner: type) -> Any:
    """A class named in a docstring reference, looked up in the owner's module or imported by dotted path."""
    module = sys.modules.get(owner.__module__)
    if module is not None and reference.split(".")[-1] in vars(module) and "." not in reference:
        return vars(module)[reference]
    path, _, attr = reference.rpartition(".")
    try:
        return getattr(importlib.import_module(path), attr) if path else None
    except (ImportError, AttributeError):
        return None


def _dataclass_params(cfg: type) -> Iterator[ParamInfo]:
    hints, docs = _hints(cfg), doc_entries(cfg.__doc__)
    for f in dataclasses.fields(cfg):
        default = f.default if f.default is not dataclasses.MISSING else REQUIRED
        yield ParamInfo(f.name, hints.get(f.name, Any), default, docs.get(f.name, ""))


def _forwarded(cls: type, doc: str) -> Iterator[ParamInfo]:
    """Parameters behind a ``**options`` argument: the referenced classes, else the next base's ``__init__``."""
    targets = [t for t in (_resolve(r, cls) for r in _REFERENCE.findall(doc)) if isinstance(t, type)]
    if not targets:
        targets = [b for b in cls.__mro__[1:] if "__init__" in vars(b) and b is not object][:1]
    for target in targets:
        yield from (_dataclass_params(target) if dataclasses.is_dataclass(target) else class_params(target))


def class_params(cls: type) -> Iterator[ParamInfo]:
    """The parameters of ``cls(...)``, following ``**options`` (see the module docstring)."""
    init = cls.__init__  # type: ignore[misc]
    hints = _hints(init)
    docs = {**doc_entries(init.__doc__), **doc_entries(cls.__doc__)}
    seen: set[str] = set()
    for p in inspect.signature(cls).parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            continue
        if p.kind is p.VAR_KEYWORD:
            for info in _forwarded(cls, docs.get(p.name, "")):
                if info.name not in seen:
                    seen.add(info.name)
                    yield info
            continue
        seen.add(p.name)
        yield ParamInfo(p.name, hints.get(p.name, Any), p.default, docs.get(p.name, ""))


def scheduler_parameters(name: str) -> tuple[ParamInfo, ...]:
    """Every parameter of a registered scheduler, with the registered preset's values as defaults."""
    from llmsched_gym.schedulers import REGISTRY, resolve_scheduler, scheduler_class

    canonical = resolve_scheduler(name)
    preset: Mapping[str, Any] = REGISTRY[canonical].kwargs if canonical in REGISTRY else {}
    infos = []
    for info in class_params(scheduler_class(canonical)) if canonical in REGISTRY else ():
        if info.name in preset:
            info = dataclasses.replace(info, default=preset[info.name], preset=True)
        infos.append(info)
    return tuple(infos)


def coerce_params(scheduler: str, texts: Mapping[str, str], flag: str = "--param") -> dict[str, Any]:
    """Convert ``--param`` texts to typed values for ``scheduler`` (unknown names and bad values are errors).

    A scheduler reached through a name scheme (``policy:...``) cannot be introspected: its values are read as
    int, float, bool, none or text and checked by its factory.

    Raises:
        UsageError: An unknown parameter (the message lists the valid ones) or a value of the wrong type.
    """
    from llmsched_gym.schedulers import REGISTRY, resolve_scheduler

    canonical = resolve_scheduler(scheduler)
    if canonical not in REGISTRY:
        return {key: convert(text, Any) for key, text in texts.items()}
    infos = {p.name: p for p in scheduler_parameters(canonical)}
    out: dict[str, Any] = {}
    for key, text in texts.items():
        info = infos.get(key)
        if info is None:
            raise UsageError(
                f"{flag} {key}={text}",
                f"scheduler {canonical!r} has no parameter {key!r}{suggest(key, infos)}; it takes "
                f"{', '.join(infos)} (see `llmsched params {canonical}`)",
            )
        try:
            out[key] = convert(text, info.annotation)
        except ConversionError as exc:
            default = "" if info.default is REQUIRED else f", default {spell(info.default)}"
            raise UsageError(f"{flag} {key}={text}", f"{exc}; {key} is {info.type_name}{default}") from None
    return out


def plain(doc: str) -> str:
    """Docstring markup as plain text: ``x`` -> x, :class:`~a.B` -> B."""
    text = re.sub(r":\w+:`~?(?:[\w]+\.)*([\w]+)`", r"\1", doc)
    return re.sub(r"``(.*?)``", r"\1", text)


def describe(name: str) -> str:
    """The text of ``llmsched params NAME``: one block per parameter."""
    from llmsched_gym.schedulers import REGISTRY, resolve_scheduler

    canonical = resolve_scheduler(name)
    if canonical not in REGISTRY:
        raise UsageError(None, f"{canonical!r} is built by its scheme's factory; its parameters are not introspected")
    entry = REGISTRY[canonical]
    lines = [f"{canonical}: {entry.description}", f"  class {entry.target}", ""]
    for p in scheduler_parameters(canonical):
        default = "required" if p.default is REQUIRED else f"default {spell(p.default)}"
        preset = " (preset)" if p.preset else ""
        lines.append(f"  {p.name}: {p.type_name}, {default}{preset}")
        if p.doc:
            lines.append(f"      {plain(p.doc)}")
    lines.append("")
    lines.append(f"set with --param NAME=VALUE, e.g. llmsched simulate --scheduler {canonical} --param KEY=VALUE")
    return "\n".join(lines)
