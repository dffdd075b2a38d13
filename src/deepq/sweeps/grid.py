"""The configs of a sweep: ``--grid key=v1,v2`` axes crossed with each other, and ``--random
key=lo:hi[:log]`` keys drawn ``--samples`` times, every value parsed and checked by the config
class's own field types before any trial starts (a mistake is one ConfigError, exit 2).

A point of the sweep is the overrides that make one config (``{"learning_rate": 1e-3, ...}``);
with both kinds of axis, each random sample is crossed with every grid point. Random draws come
from ``sweep_seed``, so the same command gives the same configs, and a resumed sweep finds them.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepq.errors import ConfigError, UsageError
from deepq.run.config import MAX_SEED, field_types, parse_value
from deepq.sweeps.files import MAX_CONFIGS, MAX_SEEDS


@dataclass(frozen=True)
class RandomAxis:
    """A key drawn uniformly from [low, high] (or log-uniformly), rounded for an integer key."""

    key: str
    low: float
    high: float
    log: bool
    integer: bool

    def draw(self, rng: np.random.Generator) -> int | float:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return int(round(value)) if self.integer else float(value)


def _is_list_key(key: str, config_class: type) -> bool:
    tp = field_types(config_class)[key]
    args = typing.get_args(tp) if typing.get_origin(tp) is not None else (tp,)
    return any(typing.get_origin(a) is tuple for a in args) or typing.get_origin(tp) is tuple


def _key_and_text(spec: str, flag: str, example: str) -> tuple[str, str]:
    key, sep, text = spec.partition("=")
    key = key.strip()
    if not sep or not key or not text.strip():
        raise ConfigError(f"{flag} {spec!r} must look like {example}")
    return key, text


def parse_grid(specs: list[str], config_class: type) -> list[tuple[str, list[Any]]]:
    """``["learning_rate=1e-3,3e-4", "hidden_sizes=64,64|256,256"]`` -> the axes, each value
    parsed as ``--set`` parses it. A list-valued key separates its options with ``|`` (its
    values themselves hold commas); other keys with ``,`` or ``|``."""
    axes: list[tuple[str, list[Any]]] = []
    for spec in specs:
        key, text = _key_and_text(spec, "--grid", "key=value1,value2")
        if key not in field_types(config_class):
            parse_value(key, "", config_class)  # the one "unknown config key" message
        separator = "|" if "|" in text or _is_list_key(key, config_class) else ","
        options = [part.strip() for part in text.split(separator)]
        if any(not part for part in options):
            raise ConfigError(f"--grid {spec!r} has an empty value")
        values = [parse_value(key, part, config_class) for part in options]
        if key in (k for k, _ in axes):
            raise ConfigError(f"--grid names {key!r} twice")
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"--grid {spec!r} repeats a value")
        axes.append((key, values))
    return axes


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RANDOM = re.compile(rf"^({_NUMBER}):({_NUMBER})(?::(log|uniform))?$")


def parse_random(specs: list[str], config_class: type) -> list[RandomAxis]:
    """``["learning_rate=1e-4:1e-2:log", "batch_size=32:256"]`` -> the random axes."""
    axes: list[RandomAxis] = []
    for spec in specs:
        key, text = _key_and_text(spec, "--random", "key=low:high or key=low:high:log")
        types_ = field_types(config_class)
        if key not in types_:
            parse_value(key, "", config_class)
        match = _RANDOM.match(text.strip())
        if match is None:
            raise ConfigError(f"--random {spec!r} must look like key=low:high or key=low:high:log")
        low, high, scale = float(match[1]), float(match[2]), match[3]
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ConfigError(f"--random {spec!r}: low and high must be finite numbers")
        tp = types_[key]
        args = set(typing.get_args(tp)) if typing.get_origin(tp) is not None else {tp}
        numeric = args & {int, float}
        if not numeric:
            raise ConfigError(f"--random {key}: {key} is not a number; use --grid for it")
        if not low < high:
            raise ConfigError(f"--random {spec!r}: low must be below high")
        if scale == "log" and low <= 0:
            raise ConfigError(f"--random {spec!r}: a log scale needs low > 0")
        bounds = {f.name: f.metadata.get("bounds") for f in dataclasses.fields(config_class)}[key]
        for bound in (low, high):  # both ends must be values the key accepts
            if bounds is not None and not bounds.holds(bound):
                raise ConfigError(f"--random {key}: {key}={bound:g} must be {bounds.text()}")
        if key in (a.key for a in axes):
            raise ConfigError(f"--random names {key!r} twice")
        axes.append(RandomAxis(key, low, high, scale == "log", float not in numeric))
    return axes


def sweep_points(
    grid: list[tuple[str, list[Any]]],
    random_axes: list[RandomAxis],
    samples: int | None,
    sweep_seed: int = 0,
) -> list[dict[str, Any]]:
    """Every config's overrides: the grid's product, crossed with ``samples`` random draws.
    With neither, one point: the base config itself."""
    both = {key for key, _ in grid} & {axis.key for axis in random_axes}
    if both:
        raise ConfigError(f"{sorted(both)[0]!r} is both a --grid and a --random key")
    if random_axes and not samples:
        raise ConfigError("--random needs --samples N (how many configs to draw)")
    if samples and not random_axes:
        raise ConfigError("--samples draws --random keys; name at least one")
    points = math.prod(len(values) for _, values in grid) * (samples or 1)
    if points > MAX_CONFIGS:
        raise UsageError(f"the --grid and --samples make {points:,} configs; a sweep takes at "
                         f"most {MAX_CONFIGS:,}")  # fmt: skip
    keys = [key for key, _ in grid]
    grid_points = [dict(zip(keys, values, strict=True)) for values in
                   itertools.product(*(values for _, values in grid))]  # fmt: skip
    if not random_axes:
        return grid_points
    rng = np.random.default_rng(sweep_seed)
    draws = [{axis.key: axis.draw(rng) for axis in random_axes} for _ in range(samples or 0)]
    return [{**point, **draw} for draw in draws for point in grid_points]


def parse_seeds(text: str) -> list[int]:
    """``"0-9"``, ``"3,7,11"`` or a mix such as ``"0-2,5"``: at most MAX_SEEDS seeds, each in
    [0, MAX_SEED], counted before any list is made (``0-9999999`` is one line, not 4 GB)."""
    ranges: list[range] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                if high < low:
                    raise ValueError
                ranges.append(range(low, high + 1))
            elif part:
                ranges.append(range(int(part), int(part) + 1))
    except ValueError:
        raise UsageError(
            f"--seeds {text[:80]!r} must be a list or range of seeds such as 0-9 or 3,7,11"
        ) from None
    if not ranges or min(r.start for r in ranges) < 0 or max(r.stop for r in ranges) > MAX_SEED + 1:
        raise UsageError(f"--seeds {text[:80]!r} must name seeds in [0, {MAX_SEED}]")
    if sum(len(r) for r in ranges) > MAX_SEEDS:
        raise UsageError(
            f"--seeds {text[:80]!r} names {sum(len(r) for r in ranges):,} seeds; a sweep takes "
            f"at most {MAX_SEEDS:,}"
        )
    return list(dict.fromkeys(seed for r in ranges for seed in r))


def point_label(overrides: dict[str, Any]) -> str:
    """``learning_rate=0.001 double=true``: how results name a config (``base`` for none)."""
    if not overrides:
        return "base"
    return " ".join(f"{key}={_text(value)}" for key, value in overrides.items())


def _text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, tuple | list):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
