"""How a params section becomes a typed, validated dataclass, and the one set of validators.

:func:`from_dict` checks keys and types recursively; each section's ``__post_init__`` checks its
ranges with the validators below (:func:`one_of`, :func:`at_least`, :func:`greater`,
:func:`in_range`, :func:`finite`). Every error is a :class:`ConfigError` whose message names the
full key (``experiments.siamese.train.lr``), the value given and what is allowed.

This module imports nothing from simlearn: every section of every task builds on it.
"""

from __future__ import annotations

import dataclasses
import io
import types
import typing
from collections.abc import Mapping
from math import isfinite
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

__all__ = [
    "ConfigError",
    "at_least",
    "check_yaml_document",
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


#: params.yaml holds settings (the project's own is 13 KB): a larger file is refused before it is
#: parsed, so no stage (and no error message) spends time or memory on it
MAX_PARAMS_BYTES = 1 << 20
#: nodes (scalars, lists, mappings) the document may hold once every alias is expanded: the
#: project's params.yaml has 470; a "billion laughs" of nested aliases reaches millions from a
#: few KB and is refused at the alias that crosses this, without being expanded
MAX_PARAMS_NODES = 50_000
#: of those, the nodes that aliases may add (an anchor's whole subtree counts at every ``*alias``):
#: sharing a 30-node train section across 50 experiments adds 1,500
MAX_ALIAS_NODES = 10_000
#: nesting of lists and mappings (the project's params.yaml: 5 levels)
MAX_PARAMS_DEPTH = 32


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The mapping in ``path``, read with YAML's safe loader after :func:`check_yaml_document`.

    Every stage reads its params through here, so a file that would take a stage minutes or
    gigabytes (aliases nested into a "billion laughs", a huge file, deep nesting) or that YAML
    would read silently wrong (a key written twice: the last one wins, while DVC refuses the
    file) fails in milliseconds with :class:`ConfigError` naming the line.
    """
    import yaml  # lazy: the GPU machine's image has no pyyaml, and the benchmarks need config

    path = Path(path)
    size = path.stat().st_size
    if size > MAX_PARAMS_BYTES:
        with open(path, "rb") as f:  # the line that holds the first byte over the limit
            line = f.read(MAX_PARAMS_BYTES).count(b"\n") + 1
        raise ConfigError(
            f"{path}: {size:,} bytes, more than the {MAX_PARAMS_BYTES:,} allowed (crossed on line "
            f"{line}); params.yaml holds settings, not data: put long lists in a file and name "
            "that file in params.yaml"
        )
    text = path.read_text()
    check_yaml_document(text, str(path))
    stream = io.StringIO(text)
    stream.name = str(path)  # type: ignore[misc]  # YAML's messages name the file
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser when libyaml is there
    params = yaml.load(stream, Loader=loader) or {}  # noqa: S506 (a safe loader)
    if not isinstance(params, dict):
        raise ConfigError(
            f"{path}: expected a mapping at the top level, got {type(params).__name__}"
        )
    return params


def check_yaml_document(text: str, name: str = "params.yaml") -> None:
    """Refuse, before anything is built, a YAML document that is unsafe or ambiguous to load.

    One pass over the parser's events (linear in the text, aliases are never expanded) counts
    the nodes the document would hold: more than :data:`MAX_PARAMS_NODES` in all, more than
    :data:`MAX_ALIAS_NODES` added by aliases, nesting deeper than :data:`MAX_PARAMS_DEPTH`, an
    alias inside its own anchor (a recursive structure), or a key written twice in one mapping
    each raise :class:`ConfigError` with the line. Syntax errors are left to the loader, whose
    message already names the line and column.
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    scan = _DocumentScan(name)
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.DocumentEndEvent):
                return  # a second document is the loader's error
            scan.feed(event)
    except yaml.YAMLError:
        return  # the loader reports it, with its line and column


class _DocumentScan:
    """The state of :func:`check_yaml_document`'s pass: open collections, anchors' sizes."""

    def __init__(self, name: str) -> None:
        import yaml

        self.name = name
        self.stack: list[_Open] = []
        self.sizes: dict[str, int] = {}  # anchor -> nodes of its subtree, aliases expanded
        self.nodes = 0  # in the whole document, aliases expanded
        self.alias_nodes = 0  # of those, added by aliases
        self.resolver = yaml.resolver.Resolver()
        self.constructor = yaml.constructor.SafeConstructor()

    def feed(self, event: Any) -> None:
        import yaml

        line = event.start_mark.line + 1
        if isinstance(event, yaml.CollectionStartEvent):
            self._place(event, line)
            self._count(1, line)  # its parent gets its whole size when it ends
            if len(self.stack) >= MAX_PARAMS_DEPTH:
                raise ConfigError(
                    f"{self.name}, line {line}: lists and mappings nested deeper than "
                    f"{MAX_PARAMS_DEPTH} levels (at {self._path()}); params.yaml needs 5"
                )
            kind = "mapping" if isinstance(event, yaml.MappingStartEvent) else "sequence"
            self.stack.append(_Open(kind, event.anchor, line))
        elif isinstance(event, yaml.CollectionEndEvent):
            done = self.stack.pop()
            if done.anchor is not None:
                self.sizes[done.anchor] = done.nodes
            if self.stack:
                self.stack[-1].nodes += done.nodes
        elif isinstance(event, yaml.ScalarEvent):
            self._place(event, line)
            self._count(1, line, into_parent=True)
            if event.anchor is not None:
                self.sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            self._place(event, line)
            self._alias(event.anchor, line)

    def _alias(self, anchor: str, line: int) -> None:
        for open_ in self.stack:
            if open_.anchor == anchor:
                raise ConfigError(
                    f"{self.name}, line {line}: alias *{anchor} at {self._path()} lies inside "
                    f"its own anchor &{anchor} (line {open_.line}): a recursive structure that "
                    "no stage can read; write the values out"
                )
        size = self.sizes.get(anchor)
        if size is None:
            return  # an undefined alias: the loader's error, with its line
        self.alias_nodes += size
        if self.alias_nodes > MAX_ALIAS_NODES:
            raise ConfigError(
                f"{self.name}, line {line}: alias *{anchor} at {self._path()} brings the values "
                f"added by aliases past {MAX_ALIAS_NODES:,} (each *{anchor} adds {size:,}): "
                "aliases nested this deep expand into a document too large to load (a YAML "
                '"billion laughs"); write the shared values out or share smaller sections'
            )
        self._count(size, line, into_parent=True)

    def _count(self, size: int, line: int, into_parent: bool = False) -> None:
        """Count a node whose subtree holds ``size`` nodes (aliases expanded)."""
        self.nodes += size
        if self.nodes > MAX_PARAMS_NODES:
            raise ConfigError(
                f"{self.name}, line {line}: the document holds more than {MAX_PARAMS_NODES:,} "
                f"values (at {self._path()}); params.yaml holds settings, not data"
            )
        if into_parent and self.stack:
            self.stack[-1].nodes += size

    def _place(self, event: Any, line: int) -> None:
        """Move the parent to this node: a sequence's next index, or a mapping's key (checked
        against the keys before it) or value."""
        if not self.stack:
            return
        parent = self.stack[-1]
        if parent.kind == "sequence":
            parent.index += 1
            parent.key = f"[{parent.index}]"
        elif parent.expect_key:
            parent.key = self._key(event, parent, line)
            parent.expect_key = False
        else:
            parent.expect_key = True

    def _key(self, event: Any, mapping: _Open, line: int) -> str:
        """The key's text for paths; raises when the mapping already has an equal key."""
        import yaml

        if not isinstance(event, yaml.ScalarEvent):
            return "?"  # an alias or a collection used as a key: nothing to compare
        tag = event.tag
        if tag in (None, "!"):
            tag = self.resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == "tag:yaml.org,2002:merge":
            return "<<"  # merged keys may be overridden: not a duplicate
        try:  # as the loader builds it: `yes` and `true`, `1` and `0x1` are one key
            value = self.constructor.construct_object(yaml.ScalarNode(tag, event.value))
        except yaml.YAMLError:
            value = (tag, event.value)
        try:
            first = mapping.keys.get(value)
        except TypeError:  # unhashable: the loader refuses it
            return str(event.value)
        if first is not None:
            where = self._path(mapping) or "the top level"
            lines = f"lines {first} and {line}" if first != line else f"line {line}"
            raise ConfigError(
                f"{self.name}, {lines}: key {event.value!r} is written twice "
                f"in the same mapping ({where}); YAML would keep the last one silently and DVC "
                "refuses the file: delete one of them"
            )
        mapping.keys[value] = line
        return str(event.value)

    def _path(self, upto: _Open | None = None) -> str:
        """The dotted key of the node being read (of mapping ``upto``, when given)."""
        keys: list[str] = []
        for open_ in self.stack:
            if open_ is upto:
                break
            keys.append(open_.key or "?")
        return ".".join(keys).replace(".[", "[")


class _Open:
    """One list or mapping being read: its nodes so far and, for a mapping, its keys' lines."""

    def __init__(self, kind: str, anchor: str | None, line: int) -> None:
        self.kind, self.anchor, self.line = kind, anchor, line
        self.nodes = 1
        self.index = -1  # a sequence's last item
        self.key: str | None = None  # the key (or [index]) being read, for messages
        self.expect_key = kind == "mapping"
        self.keys: dict[Any, int] = {}  # a mapping's keys, as loaded, and their lines


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
        first: ConfigError | None = None
        for option in inner:  # int | str (e.g. devices: 2 or auto): the first type that fits
            try:
                return _coerce(value, option, key)
            except ConfigError as e:
                first = first or e
        assert first is not None
        raise first
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
