"""Each daemon setting is described once, on its dataclass field: help, unit, range, choices and flag.

``setting(default, "help", unit="s", range=(0.05, 60), flag="--hop")`` is a ``dataclasses.field``
whose metadata drives the range/choice checks and their error text (``daemon.settings``), the
command-line flags (``daemon.cli``) and the test that holds ``systemd/config.example.toml`` to the
fields. Checks that relate several keys (a file source needs a path, TLS files need ``tls``) stay
code in ``daemon.settings``; the decision rule's overrides are checked by
``edge.decide.params.DecisionParams`` (the rule's own single source).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from daemon.errors import ConfigError

META = "genre-pi"


@dataclass(frozen=True)
class Meta:
    """What a field's metadata says about its setting."""

    help: str
    unit: str = ""  # "s", "Hz": shown after the range in errors
    low: float | str | None = None  # a number, or the name of a field of the same section
    high: float | None = None
    zero: str = ""  # 0 is also accepted, meaning this ("auto")
    choices: tuple[Any, ...] = ()
    fold_case: bool = False  # choices compare case-insensitively (the value is stored lower-cased)
    flag: str = ""  # the command-line flag that overrides the key
    metavar: str = ""


def setting(
    default: Any,
    help: str,
    *,
    unit: str = "",
    range: tuple[float | str, float] | None = None,
    zero: str = "",
    choices: tuple[Any, ...] = (),
    fold_case: bool = False,
    flag: str = "",
    metavar: str = "",
) -> Any:
    """A dataclass field with its setting's description (typed ``Any`` like ``dataclasses.field``)."""
    low, high = range if range is not None else (None, None)
    meta = Meta(help, unit, low, high, zero, choices, fold_case, flag, metavar)
    return dataclasses.field(default=default, metadata={META: meta})


def meta_of(f: dataclasses.Field[Any]) -> Meta | None:
    meta = f.metadata.get(META)
    return meta if isinstance(meta, Meta) else None


def described(cls: type[Any]) -> Iterator[tuple[str, Meta]]:
    """``(key, meta)`` for every field of a settings dataclass that carries a description."""
    for f in dataclasses.fields(cls):
        meta = meta_of(f)
        if meta is not None:
            yield f.name, meta


def _num(x: float | str) -> str:
    return x if isinstance(x, str) else f"{x:g}"


def range_text(meta: Meta) -> str:
    """``0.05..60 s``: the range as errors and the example config write it."""
    unit = f" {meta.unit}" if meta.unit else ""
    return f"{_num(meta.low if meta.low is not None else '')}..{_num(meta.high if meta.high is not None else '')}{unit}"


def problem(meta: Meta, value: Any, section: Any) -> str | None:
    """What is wrong with ``value`` by its field's description (None if nothing); ``section`` holds its siblings."""
    if meta.choices:
        folded = value.lower() if meta.fold_case and isinstance(value, str) else value
        if folded not in meta.choices:
            shown = ", ".join(str(c) if meta.fold_case else repr(c) for c in meta.choices)
            return f"must be one of {shown}, got {value!r}"
    if meta.low is None or meta.high is None or (meta.zero and value == 0):
        return None
    low = getattr(section, meta.low) if isinstance(meta.low, str) else meta.low
    if low <= value <= meta.high:
        return None
    zero = f"0 ({meta.zero}) or " if meta.zero else ""
    return f"must be {zero}in {range_text(meta)}, got {value}"


def _type_name(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


def check_type(default: Any, value: Any, origin: str, key: str) -> Any:
    """Same type as the default (int accepted where a float is expected); ``source.device`` is str or int."""
    if key == "source.device":
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ConfigError(f"must be a string or an integer, got {_type_name(value)} {value!r}", file=origin, key=key)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
        if ok and not math.isfinite(value):
            raise ConfigError("must be a finite number", file=origin, key=key)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"must be {_type_name(default)}, got {_type_name(value)} {value!r}", file=origin, key=key)
    return value


# Flags that set more than one key, or convert their text: parsed here, once.
def _source_flag(text: str) -> dict[str, Any]:
    kind, _, path = text.partition(":")
    return {"source.kind": kind, **({"source.path": path} if kind == "file" or path else {})}


def _device_flag(text: str) -> dict[str, Any]:
    return {"source.device": int(text) if text.isdigit() else text}


_COMPOUND: dict[str, Callable[[str], dict[str, Any]]] = {"--source": _source_flag, "--device": _device_flag}


def _flagged(sections: dict[str, type[Any]]) -> Iterator[tuple[str, str, Meta, dataclasses.Field[Any]]]:
    for section, cls in sections.items():
        for f in dataclasses.fields(cls):
            meta = meta_of(f)
            if meta is not None and meta.flag:
                yield meta.flag, f"{section}.{f.name}", meta, f


def flag_of(sections: dict[str, type[Any]], dotted: str) -> str:
    """The flag that sets ``section.key`` ("" if none), for errors about a value from the command line."""
    return next((flag for flag, key, _, _ in _flagged(sections) if key == dotted), "")


def add_flags(parser: argparse.ArgumentParser, sections: dict[str, type[Any]]) -> None:
    """One argument per flag named in the fields; help is the field's, with the key it sets."""
    seen: dict[str, list[str]] = {}
    for flag, dotted, _, _ in _flagged(sections):
        seen.setdefault(flag, []).append(dotted)
    for flag, keys in seen.items():
        _, _, meta, f = next(item for item in _flagged(sections) if item[0] == flag)
        where = " / ".join(keys)
        if flag not in _COMPOUND and isinstance(f.default, bool):
            parser.add_argument(flag, action="store_true", default=None, help=f"{meta.help} ({where})")
            continue
        kind = str if flag in _COMPOUND or f.default is None else type(f.default)
        parser.add_argument(flag, type=kind, metavar=meta.metavar or None, help=f"{meta.help} ({where})")


def overrides_from_args(args: argparse.Namespace, sections: dict[str, type[Any]]) -> dict[str, Any]:
    """``{"section.key": value}`` for every flag given on the command line."""
    out: dict[str, Any] = {}
    for flag, dotted, _, _ in _flagged(sections):
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value is None:
            continue
        out.update(_COMPOUND[flag](value) if flag in _COMPOUND else {dotted: value})
    return out
