"""simlearn.config.schema: from_dict's key and type checks, and the one set of validators."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from simlearn.config.schema import (
    ConfigError,
    at_least,
    finite,
    flatten,
    from_dict,
    greater,
    in_range,
    load_params,
    one_of,
    section,
    to_dict,
)


@dataclass(frozen=True)
class Inner:
    k: int = 1

    def __post_init__(self) -> None:
        at_least("k", self.k, 1)


@dataclass(frozen=True)
class Outer:
    name: str
    x: float = 0.5
    flag: bool = False
    ids: tuple[int, ...] = ()
    cap: int | None = None
    inner: Inner = field(default_factory=Inner)


def test_from_dict_coerces_types_and_builds_nested_sections():
    cfg = from_dict(Outer, {"name": "a", "x": 2, "ids": [3, 4], "inner": {"k": 5}}, "p")
    assert cfg == Outer(name="a", x=2.0, ids=(3, 4), inner=Inner(k=5))
    assert isinstance(cfg.x, float) and cfg.cap is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "a", "y": 1}, "p.y: unknown key; allowed keys: cap, flag, ids, inner, name, x"),
        ({}, "p.name: required key is missing"),
        ({"name": "a", "x": "fast"}, "p.x='fast': expected a number"),
        ({"name": "a", "x": True}, "p.x=True: expected a number"),
        ({"name": "a", "cap": 1.5}, "p.cap=1.5: expected an integer"),
        ({"name": "a", "flag": "yes"}, "p.flag='yes': expected true or false"),
        ({"name": 3}, "p.name=3: expected a string"),
        ({"name": "a", "ids": 3}, "p.ids=3: expected a list"),
        ({"name": "a", "ids": [1, "b"]}, "p.ids[1]='b': expected an integer"),
        ({"name": "a", "inner": 7}, "p.inner=7: expected a mapping of Inner keys"),
        ({"name": "a", "inner": {"k": 0}}, "p.inner.k=0: must be >= 1"),
        ({"name": "a", "x": float("nan")}, "p.x=nan: must be a finite number"),
    ],
)
def test_from_dict_errors_name_the_full_key(data, message):
    with pytest.raises(ConfigError) as e:
        from_dict(Outer, data, "p")
    assert str(e.value).startswith(message)


def test_to_dict_and_flatten_give_plain_values():
    d = to_dict(Outer(name="a", ids=(1, 2)))
    assert d == {"name": "a", "x": 0.5, "flag": False, "ids": [1, 2], "cap": None,
                 "inner": {"k": 1}}  # fmt: skip
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}) == {
        "a.b": 1,
        "a.c.d": [1, 2],
        "e": "x",
    }


def test_section_lists_the_keys_that_exist(tmp_path):
    params = {"experiments": {"b": {"task": "metric"}, "a": None}}
    assert section(params, "experiments", "b") == {"task": "metric"}
    assert section(params, "experiments", "a") == {}
    with pytest.raises(ConfigError, match=r"^experiments.c is not defined .*: a, b$"):
        section(params, "experiments", "c")
    with pytest.raises(ConfigError, match=r"^datasets.d is not defined .*: \(none\)$"):
        section(params, "datasets", "d")


def test_load_params_wants_a_mapping(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("datasets:\n  digits: {source: digits}\n")
    bad.write_text("- a\n- b\n")
    assert load_params(good) == {"datasets": {"digits": {"source": "digits"}}}
    with pytest.raises(ConfigError, match="expected a mapping at the top level, got list"):
        load_params(bad)


def test_one_of_lists_what_is_allowed():
    one_of("name", "b", ("a", "b"))
    with pytest.raises(ConfigError) as e:
        one_of("name", "c", ("a", "b"))
    assert str(e.value) == "name='c': unknown name; allowed: a, b"
    with pytest.raises(ConfigError) as e:
        one_of("paths", 6, (4, 8), what="number of paths")
    assert str(e.value) == "paths=6: unknown number of paths; allowed: 4, 8"


def test_at_least_and_greater_at_the_boundary():
    at_least("k", 1, 1)
    with pytest.raises(ConfigError, match=r"^k=0: must be >= 1$"):
        at_least("k", 0, 1)
    greater("lr", 1e-9, 0.0)
    with pytest.raises(ConfigError, match=r"^lr=0.0: must be > 0.0$"):
        greater("lr", 0.0, 0.0)


@pytest.mark.parametrize(
    ("value", "open_low", "open_high", "ok"),
    [
        (0.0, False, False, True),
        (1.0, False, False, True),
        (0.0, True, False, False),
        (1.0, False, True, False),
        (0.5, True, True, True),
        (-0.1, False, False, False),
        (1.1, False, False, False),
    ],
)
def test_in_range_closed_and_open_ends(value, open_low, open_high, ok):
    if ok:
        in_range("p", value, 0, 1, open_low=open_low, open_high=open_high)
        return
    interval = f"{'(' if open_low else '['}0, 1{')' if open_high else ']'}"
    with pytest.raises(ConfigError) as e:
        in_range("p", value, 0, 1, open_low=open_low, open_high=open_high)
    assert str(e.value) == f"p={value!r}: must be in {interval}"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_every_range_validator_refuses_nan_and_inf(bad):
    """nan passes a bare ``value < low`` test; each validator must catch it first."""
    message = "must be a finite number (nan and inf are not allowed)"
    for check in (
        lambda: finite("v", bad),
        lambda: at_least("v", bad, 0.0),
        lambda: greater("v", bad, 0.0),
        lambda: in_range("v", bad, 0, 1),
    ):
        with pytest.raises(ConfigError) as e:
            check()
        assert str(e.value) == f"v={bad!r}: {message}"
