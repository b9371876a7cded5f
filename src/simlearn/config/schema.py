"""How a params section becomes a typed, validated dataclass, and the one set of validators.

:func:`from_dict` checks keys and types recursively; each section's ``__post_init__`` checks its
ranges with the validators below (:func:`one_of`, :func:`at_least`, :func:`greater`,
:func:`in_range`, :func:`finite`). Every error is a :class:`ConfigError` whose message names the
full key (``experiments.siamese.train.lr``), the value given and what is allowed.

This module imports nothing from simlearn: every section of every task builds on it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from math import isfinite
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

__all__ = [
    "ConfigError",
    "at_least",
    "finite",
    "flatten",
    "from_dict",
    "greater",
    "in_range",
    "load_params",
    "one_of",
    "section",
    "to_dict",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A params section is malformed; the message names the key, the value and what is allowed."""


# ----------------------------------------------------------------------------- validators


def one_of(key: str, value: Any, allowed: tuple[Any, ...], what: str = "name") -> None:
    """``value`` must be one of ``allowed``: ``key='x': unknown <what>; allowed: a, b``."""
    if value not in allowed:
        raise ConfigError(
            f"{key}={value!r}: unknown {what}; allowed: {', '.join(map(str, allowed))}"
        )


def at_least(key: str, value: float, low: float) -> None:
    """``value >= low``, and finite."""
    finite(key, value)
    if value < low:
        raise ConfigError(f"{key}={value!r}: must be >= {low}")


def greater(key: str, value: float, low: float) -> None:
    """``value > low``, and finite."""
    finite(key, value)
    if not value > low:
        raise ConfigError(f"{key}={value!r}: must be > {low}")


def in_range(
    key: str,
    value: float,
    low: float,
    high: float,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> None:
    """``value`` in the interval from ``low`` to ``high`` (each end closed unless ``open_*``),
    and finite: ``key=2.0: must be in [0, 1)``."""
    finite(key, value)
    above = value > low if open_low else value >= low
    below = value < high if open_high else value <= high
    if not (above and below):
        interval = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise ConfigError(f"{key}={value!r}: must be in {interval}")


def finite(key: str, value: float) -> None:
    """Refuse nan and inf: they pass every range check (nan < x is False), then ruin a run."""
    if not isfinite(value):
        raise ConfigError(f"{key}={value!r}: must be a finite number (nan and inf are not allowed)")


# ----------------------------------------------------------------------------- loading


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    import yaml  # lazy: the GPU machine's image has no pyyaml, and the benchmarks need config

    with open(path) as f:
        params = yaml.safe_load(f) or {}
    if not isinstance(params, dict):
        raise ConfigError(
            f"{path}: expected a mapping at the top level, got {type(params).__name__}"
        )
    return params


def section(params: Mapping[str, Any], group: str, key: str) -> Mapping[str, Any]:
    """``params[group][key]``, with an error that lists the keys that do exist."""
    entries = params.get(group) or {}
    if key not in entries:
        known = ", ".join(sorted(entries)) or "(none)"
        raise ConfigError(f"{group}.{key} is not defined in params.yaml; defined {group}: {known}")
    return entries[key] or {}


def from_dict(cls: type[T], data: Mapping[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, checking keys and types recursively.

    Errors name the full dotted key. Range checks live in each dataclass's ``__post_init__`` and
    are re-raised here with the prefix added.
    """
    data = dict(data or {})
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{_join(prefix, unknown[0])}: unknown key; allowed keys: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kwargs[name] = _coerce(value, hints[name], _join(prefix, name))
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{_join(prefix, missing[0])}: required key is missing")
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{prefix}.{e}" if prefix else str(e)) from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, YAML/JSON-friendly dict of a config dataclass (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}``; lists are kept as values."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


# ----------------------------------------------------------------------------- helpers


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}={value!r}: expected a mapping of {tp.__name__} keys")
        return from_dict(tp, value, key)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}={value!r}: expected a list")
        return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}={value!r}: allowed values are {', '.join(map(repr, args))}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}: expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            hint = _text_number_hint(value, integer=True)
            raise ConfigError(f"{key}={value!r}: expected an integer{hint}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}={value!r}: expected a number{_text_number_hint(value)}")
        finite(key, value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}={value!r}: expected a string")
        return value
    return value


def _text_number_hint(value: Any, integer: bool = False) -> str:
    """Why a number arrived as text and how to write it ("" when ``value`` is no number).

    PyYAML follows YAML 1.1, whose floats need a dot in the mantissa and a sign in the exponent:
    ``1e-3`` and ``1.0e3`` are read as strings, ``1.0e-3`` and ``1.0e+3`` as numbers.
    """
    if not isinstance(value, str):
        return ""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        return ""
    if not isfinite(number):
        return " (nan and inf are not allowed)"
    import yaml

    quoted = isinstance(yaml.safe_load(text), int | float)  # YAML reads it as a number unquoted
    if integer:
        if not number.is_integer():
            return ""
        return (
            f"; it is quoted text: write {int(number)} without quotes"
            if quoted
            else f"; YAML reads {text} as text: write {int(number)}"
        )
    if quoted:
        return f"; it is quoted text: write {text} without quotes"

    def yaml_float(t: str) -> str:
        mantissa, _, exponent = t.lower().partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        if exponent and exponent[0] not in "+-":
            exponent = "+" + exponent
        return f"{mantissa}e{exponent}" if exponent else mantissa

    written = yaml_float(text)
    if not isinstance(yaml.safe_load(written), float):
        written = yaml_float(repr(number))
    return f"; YAML reads {text} as text: write {written}"
