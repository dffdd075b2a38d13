"""The configs of a sweep: grid axes crossed, random axes drawn reproducibly, every value parsed
by the config's own field types, and every mistake one ConfigError before any trial runs."""

import math
import re

import numpy as np
import pytest

from deepq.classic.configs import ReinforceConfig
from deepq.dqn.config import DQNConfig
from deepq.errors import ConfigError
from deepq.sweeps.grid import RandomAxis, parse_grid, parse_random, point_label, sweep_points


def test_grid_values_are_parsed_by_the_keys_types_and_crossed_in_order():
    grid = parse_grid(["learning_rate=1e-3,3e-4", "double=true,false"], DQNConfig)
    assert grid == [("learning_rate", [0.001, 0.0003]), ("double", [True, False])]
    assert sweep_points(grid, [], None) == [
        {"learning_rate": 0.001, "double": True},
        {"learning_rate": 0.001, "double": False},
        {"learning_rate": 0.0003, "double": True},
        {"learning_rate": 0.0003, "double": False},
    ]


def test_a_list_valued_key_separates_its_options_with_a_bar():
    assert parse_grid(["hidden_sizes=64,64|256"], DQNConfig) == [
        ("hidden_sizes", [(64, 64), (256,)])
    ]
    assert parse_grid(["hidden_sizes=64,64"], DQNConfig) == [("hidden_sizes", [(64, 64)])]
    assert parse_grid(["batch_size=32|64"], DQNConfig) == [("batch_size", [32, 64])]


def test_no_axes_is_one_config_the_base():
    assert sweep_points([], [], None) == [{}]
    assert point_label({}) == "base"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("learning_rate", "must look like key=value1,value2"),
        ("=1,2", "must look like key=value1,value2"),
        ("learning_rat=1,2", "unknown config key 'learning_rat'"),
        ("learning_rate=1e-3,", "has an empty value"),
        ("learning_rate=1e-3,fast", "learning_rate='fast' must be a number"),
        ("batch_size=32,32", "repeats a value"),
        ("double=maybe", "must be true or false"),
    ],
)
def test_bad_grid_specs_are_one_config_error(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_grid([spec], DQNConfig)


def test_a_key_named_twice_is_refused():
    with pytest.raises(ConfigError, match="names 'gamma' twice"):
        parse_grid(["gamma=0.9,0.99", "gamma=0.95"], DQNConfig)
    with pytest.raises(ConfigError, match="both a --grid and a --random key"):
        sweep_points(parse_grid(["gamma=0.9"], DQNConfig),
                     parse_random(["gamma=0.9:0.99"], DQNConfig), 2)  # fmt: skip


def test_random_axes_know_integer_keys_and_log_scales():
    lr, batch = parse_random(["learning_rate=1e-4:1e-2:log", "batch_size=32:256"], DQNConfig)
    assert lr == RandomAxis("learning_rate", 1e-4, 1e-2, log=True, integer=False)
    assert batch == RandomAxis("batch_size", 32, 256, log=False, integer=True)


def test_random_draws_are_reproducible_within_bounds_and_crossed_with_the_grid():
    grid = parse_grid(["double=true,false"], DQNConfig)
    axes = parse_random(["learning_rate=1e-4:1e-2:log", "batch_size=32:256"], DQNConfig)
    points = sweep_points(grid, axes, samples=50, sweep_seed=7)
    assert points == sweep_points(grid, axes, samples=50, sweep_seed=7)
    assert points != sweep_points(grid, axes, samples=50, sweep_seed=8)
    assert len(points) == 100  # each draw with each grid point
    assert [p["double"] for p in points[:4]] == [True, False, True, False]
    assert points[0]["learning_rate"] == points[1]["learning_rate"]  # one draw, two grid points
    rates = np.array([p["learning_rate"] for p in points])
    assert rates.min() >= 1e-4 and rates.max() <= 1e-2
    # log-uniform: as many draws below the geometric middle (1e-3) as above it, roughly
    assert 30 <= np.sum(rates < 1e-3) <= 70
    assert all(isinstance(p["batch_size"], int) and 32 <= p["batch_size"] <= 256 for p in points)


def test_a_log_draw_is_exp_of_a_uniform_draw_of_the_logs():
    axis = RandomAxis("learning_rate", 1e-4, 1e-2, log=True, integer=False)
    expected = math.exp(np.random.default_rng(3).uniform(math.log(1e-4), math.log(1e-2)))
    assert axis.draw(np.random.default_rng(3)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("learning_rate=1e-3", "must look like key=low:high"),
        ("learning_rate=1e-2:1e-4", "low must be below high"),
        ("learning_rate=0:1e-2:log", "a log scale needs low > 0"),
        ("double=0:1", "double is not a number; use --grid"),
        ("batch_size=-5:64", "batch_size=-5 must be in [1, 65536]"),
        ("gamma=0.9:1.5", "gamma=1.5 must be in"),
        ("learning_rate=1e-4:1e-2:cubic", "must look like key=low:high"),
    ],
)
def test_bad_random_specs_are_one_config_error(spec, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_random([spec], DQNConfig)


def test_random_needs_samples_and_samples_need_random():
    axes = parse_random(["gamma=0.9:0.99"], DQNConfig)
    with pytest.raises(ConfigError, match="--random needs --samples"):
        sweep_points([], axes, None)
    with pytest.raises(ConfigError, match="--samples draws --random keys"):
        sweep_points([], [], 4)


def test_other_algorithms_keys_are_their_own():
    assert parse_grid(["learning_rate=0.01,0.02"], ReinforceConfig)[0][1] == [0.01, 0.02]
    with pytest.raises(ConfigError, match="unknown config key 'double'"):
        parse_grid(["double=true"], ReinforceConfig)


def test_labels_name_each_override():
    label = point_label({"learning_rate": 0.00031234, "double": True, "hidden_sizes": (64, 64)})
    assert label == "learning_rate=0.0003123 double=true hidden_sizes=64,64"
