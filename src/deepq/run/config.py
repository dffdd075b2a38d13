"""Typed, validated configs: the one style every algorithm's config follows.

A config is a frozen dataclass deriving :class:`Config`. Each field is declared with
:func:`documented`: its help (the CLI documentation), its default and its bounds, together; the
class's ``validate`` method holds only the rules that tie fields together, right under them. On
construction every field is checked against its annotation (``int`` -> ``float``, ``list`` ->
``tuple``); ``--set key=value`` strings are parsed by the same annotations. Any mistake is one
:class:`~deepq.errors.ConfigError` line naming the key and the value.

Hand-written rather than pydantic (which checks the nested checkpoint schema, run/schema.py):
the whole checker is the two small functions below for the six annotation shapes configs use
(int, float, bool, str, Literal, tuple of ints, and their ``| None``), it gives the exact
one-line messages the CLI prints, and the same bounds print in ``--help``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from deepq.errors import ConfigError

MAX_SEED = 2**31 - 1
# No integer of any config lies outside ±MAX_INT: counts of steps and episodes far beyond any run
# (10^12 env steps is 30 years at 1,000 a second), small enough that nothing built from one
# overflows. Keys that size memory (widths, atoms, envs, batches) have bounds of their own.
MAX_INT = 10**12
MAX_WIDTH = 1 << 16  # a hidden layer's width
MAX_LAYERS = 16  # hidden layers
MAX_WINDOW = 1_000_000  # episodes in a moving average (a checkpoint keeps them)
MAX_EVAL_EPISODES = 100_000  # episodes of one evaluation (its returns are kept)


@dataclass(frozen=True)
class Bounds:
    """An interval a number (or every number of a list) must lie in; ``None`` is unbounded."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself excluded
    high_open: bool = False

    @classmethod
    def of(
        cls,
        ge: float | None = None,
        gt: float | None = None,
        le: float | None = None,
        lt: float | None = None,
    ) -> Bounds | None:
        """The interval ``ge``/``gt`` (≥, >) to ``le``/``lt`` (≤, <); None when none is given."""
        if (ge, gt, le, lt) == (None, None, None, None):
            return None
        return cls(gt if gt is not None else ge, lt if lt is not None else le,
                   gt is not None, lt is not None)  # fmt: skip

    def holds(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def text(self) -> str:
        """``>= 1``, ``> 0``, ``< 0``, ``in [0, 1]``, ``in (0, 1]``..."""
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {_number(self.low)}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {_number(self.high)}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{_number(self.low)}, {_number(self.high)}{right}"


def _number(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else str(value)


def documented(
    text: str,
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    group: str | None = None,
) -> Any:
    """A config field: its help text (shown by ``deepq train --help``), its default, and the
    bounds its value must lie in (``ge`` ≥, ``gt`` >, ``le`` ≤, ``lt`` <; ``null`` always passes
    where the type allows it; a list's every element must lie in them). ``group`` starts a group
    of keys in the help: this field and the ones declared after it, up to the next group."""
    bounds = Bounds.of(ge, gt, le, lt)
    return field(default=default, metadata={"help": text, "bounds": bounds, "group": group})


def require(ok: bool, message: str) -> None:
    """A validation rule: ``message`` names the field and the value."""
    if not ok:
        raise ConfigError(message)


MAX_ENV_ID_LENGTH = 200


def require_env_id(env_id: str) -> None:
    """An env id is a registered Gymnasium name: never empty, never ``module:Env``, which would
    make Gymnasium import (run) ``module`` when the config comes from someone else's file."""
    require(bool(env_id.strip()), "env_id must not be empty")
    require(
        len(env_id) <= MAX_ENV_ID_LENGTH and env_id.isprintable(),
        f"env_id must be printable and at most {MAX_ENV_ID_LENGTH} characters",
    )
    module, colon, name = env_id.partition(":")
    require(
        not colon,
        f"env_id {env_id!r} names a module to import; deepq never imports a module named by an "
        f"env id: pass --env-module {module} on the command line and env id {name}",
    )


class Config:
    """Base of every config dataclass (declare it ``@dataclass(frozen=True)``)."""

    def __post_init__(self) -> None:
        coerce_fields(self)
        self.validate()

    def validate(self) -> None:
        """Rules across fields; a subclass raises ConfigError through :func:`require`."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (tuples become lists); :meth:`from_dict` reads them back."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        """Build from JSON-style values; unknown keys are an error."""
        unknown = sorted(set(values) - set(field_types(cls)))
        if unknown:
            raise ConfigError(
                f"unknown config key {unknown[0]!r} (see 'deepq train --help' for the keys)"
            )
        return cls(**values)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (coerced and validated like any other input)."""
        return self.from_dict({**self.to_dict(), **changes})

    @classmethod
    def parse_overrides(cls, pairs: list[str]) -> dict[str, Any]:
        """Parse ``["key=value", ...]`` from ``--set`` into typed values."""
        overrides: dict[str, Any] = {}
        for pair in pairs:
            key, sep, text = pair.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"--set {pair!r} must look like key=value")
            overrides[key.strip()] = parse_value(key.strip(), text, cls)
        return overrides

    @classmethod
    def field_groups(cls) -> list[tuple[str | None, list[tuple[str, str, str]]]]:
        """:meth:`field_help`'s rows in their groups, in declaration order: (title, rows), with a
        None title for a config whose fields declare no group."""
        groups: list[tuple[str | None, list[tuple[str, str, str]]]] = []
        for f, row in zip(dataclasses.fields(cls), cls.field_help(), strict=True):  # type: ignore[arg-type]
            if f.metadata.get("group") is not None or not groups:
                groups.append((f.metadata.get("group"), []))
            groups[-1][1].append(row)
        return groups

    @classmethod
    def field_help(cls) -> list[tuple[str, str, str]]:
        """(name, default, help) for every field, in declaration order; the help ends with the
        field's bounds."""
        rows = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if isinstance(f.default, tuple):
                default = ",".join(map(str, f.default))  # as typed after --set: 64,64
            elif f.default is None or isinstance(f.default, bool):
                default = json.dumps(f.default)  # null, true, false
            else:
                default = str(f.default)
            text, bounds = f.metadata["help"], f.metadata.get("bounds")
            rows.append((f.name, default, f"{text} Must be {bounds.text()}." if bounds else text))
        return rows


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def coerce_fields(config: Any) -> None:
    """Check every field of a frozen config dataclass against its annotation and bounds,
    normalising in place (int -> float, list -> tuple); ConfigError names the field and value."""
    types_ = field_types(type(config))
    for f in dataclasses.fields(config):
        value = _check_type(f.name, types_[f.name], getattr(config, f.name))
        integers = value if isinstance(value, tuple) else (value,)
        require(
            all(
                abs(v) <= MAX_INT
                for v in integers
                if isinstance(v, int) and not isinstance(v, bool)
            ),
            f"{f.name}={value} must lie within ±10^12",
        )
        bounds = f.metadata.get("bounds")
        if bounds is not None and value is not None:
            if isinstance(value, tuple):
                require(all(bounds.holds(v) for v in value),
                        f"{f.name}={list(value)} must all be {bounds.text()}")  # fmt: skip
            else:
                nullable = " or null" if type(None) in typing.get_args(types_[f.name]) else ""
                require(bounds.holds(value), f"{f.name}={value} must be {bounds.text()}{nullable}")
        object.__setattr__(config, f.name, value)


# ----------------------------------------------------------------------------------------------
# Types: strict checks for Python values, lenient parsing for strings from the command line.
# ----------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "a list of integers"
    return {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "a string",
        type(None): "null",
    }[tp]


def _check_type(name: str, tp: Any, value: Any) -> Any:
    """Return ``value`` normalised to ``tp`` (int -> float, list -> tuple) or raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        for arg in typing.get_args(tp):
            try:
                return _check_type(name, arg, value)
            except ConfigError:
                continue
    elif origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif origin is tuple:
        if isinstance(value, list | tuple) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            return tuple(value)
    elif tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{name}={value!r} must be {_type_name(tp)}")


def parse_value(name: str, text: str, cls: type) -> Any:
    """Parse a command-line string for field ``name`` (e.g. ``64,64``, ``1e5``, ``true``, ``null``)."""
    if name not in field_types(cls):
        raise ConfigError(f"unknown config key {name!r} (see 'deepq train --help' for the keys)")
    return _parse(name, field_types(cls)[name], text.strip())


def _parse(name: str, tp: Any, text: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if type(None) in args and text.lower() in ("none", "null", ""):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _parse(name, arg, text)
            except ConfigError:
                continue
    elif origin is Literal:
        if text in typing.get_args(tp):
            return text
    elif origin is tuple:
        body = text.strip("[]() ")
        try:
            return tuple(int(part) for part in body.split(",") if part.strip()) if body else ()
        except ValueError:
            pass
    elif tp is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
    elif tp is int:
        try:
            return int(text.replace("_", ""))
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                as_float = math.nan
            if math.isfinite(as_float) and as_float.is_integer():
                return int(as_float)
    elif tp is float:
        try:
            value = float(text.replace("_", ""))
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return value
    elif tp is str:
        return text
    raise ConfigError(f"{name}={text!r} must be {_type_name(tp)}")
