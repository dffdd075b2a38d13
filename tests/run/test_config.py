"""Config validation, parsing, presets."""

import dataclasses
import json
import re

import pytest

from deepq.classic.configs import QLearningConfig
from deepq.dqn.config import (
    DQNConfig,
    config_from_dict,
    load_preset,
    preset_names,
    resolve_config,
)
from deepq.errors import ConfigError
from deepq.run.config import Config, documented

BAD_VALUES = [
    ({"gamma": 1.5}, "gamma=1.5 must be in [0, 1]"),
    ({"gamma": -0.1}, "gamma=-0.1 must be in [0, 1]"),
    ({"learning_rate": 0.0}, "learning_rate=0.0 must be > 0"),
    ({"learning_rate": -1e-3}, "learning_rate=-0.001 must be > 0"),
    (
        {"batch_size": 200, "buffer_size": 100, "learning_starts": 200},
        "batch_size=200 must be <= buffer_size=100",
    ),
    ({"learning_starts": 10, "batch_size": 64}, "learning_starts=10 must be >= batch_size=64"),
    ({"epsilon_start": 1.2}, "epsilon_start=1.2 must be in [0, 1]"),
    (
        {"epsilon_end": 0.5, "epsilon_start": 0.2},
        "epsilon_end=0.5 must be in [0, epsilon_start=0.2]",
    ),
    ({"epsilon_decay": 0.0}, "epsilon_decay=0.0 must be in (0, 1]"),
    ({"epsilon_fraction": 1.5}, "epsilon_fraction=1.5 must be in (0, 1]"),
    ({"tau": 0.0}, "tau=0.0 must be in (0, 1]"),
    ({"tau": 1.5}, "tau=1.5 must be in (0, 1]"),
    ({"train_every": 0}, "train_every=0 must be >= 1"),
    ({"gradient_steps": 0}, "gradient_steps=0 must be in [1, 1000]"),
    ({"target_update_every": 0}, "target_update_every=0 must be >= 1"),
    ({"eval_every": 0}, "eval_every=0 must be >= 1 or null"),
    ({"total_steps": -5}, "total_steps=-5 must be >= 1 or null"),
    ({"num_envs": 0}, "num_envs=0 must be in [1, 1024]"),
    ({"hidden_sizes": []}, "hidden_sizes must list 1 to 16 layer widths, not 0"),
    ({"hidden_sizes": [64, 0]}, "hidden_sizes=[64, 0] must all be in [1, 65536]"),
    ({"num_atoms": 400_000_000}, "num_atoms=400000000 must be in [1, 1000]"),
    ({"v_min": -1e300}, "v_min=-1e+300 must be in [-1000000, 1000000]"),
    ({"priority_alpha": 1e308}, "priority_alpha=1e+308 must be in [0, 1]"),
    ({"total_steps": 10**13}, "total_steps=10000000000000 must lie within ±10^12"),
    ({"huber_delta": 0.0}, "huber_delta=0.0 must be > 0"),
    ({"l2_coef": -1.0}, "l2_coef=-1.0 must be >= 0"),
    ({"max_grad_norm": 0.0}, "max_grad_norm=0.0 must be > 0 or null"),
    ({"munchausen_temperature": 0.0}, "munchausen_temperature=0.0 must be > 0"),
    ({"munchausen_alpha": 1.5}, "munchausen_alpha=1.5 must be in [0, 1]"),
    ({"munchausen_log_policy_floor": 0.0}, "munchausen_log_policy_floor=0.0 must be < 0"),
    ({"munchausen": True, "double": True}, "munchausen=true replaces the max"),
    ({"munchausen": True, "n_step": 3}, "munchausen=true needs n_step=1 (got 3)"),
    ({"seed": -1}, "seed=-1 must be in [0, 2147483647]"),
    ({"time_budget_s": 0.0}, "time_budget_s=0.0 must be > 0 or null"),
    ({"total_steps": None, "epsilon_schedule": "exponential"}, "set at least one budget"),
    (
        {"total_steps": None, "max_episodes": 10},
        "epsilon_schedule='linear' decays over total_steps",
    ),
    ({"loss": "l1"}, "loss='l1' must be one of mse, huber"),
    ({"optimizer": "sgd"}, "optimizer='sgd' must be one of adam, rmsprop"),
    ({"activation": "swish"}, "activation='swish' must be one of"),
    ({"batch_size": "64"}, "batch_size='64' must be an integer"),
    ({"batch_size": 64.5}, "batch_size=64.5 must be an integer"),
    ({"double": "yes"}, "double='yes' must be true or false"),
    ({"gamma": float("nan")}, "gamma=nan must be a number"),
    ({"hidden_sizes": [64.0]}, "hidden_sizes=[64.0] must be a list of integers"),
    ({"env_id": ""}, "env_id must not be empty"),
    ({"bogus": 1}, "unknown config key 'bogus'"),
    ({"learning_rate_end": 0.1}, "learning_rate_end=0.1 must be in [0, learning_rate]"),
    ({"learning_rate_decay_steps": 0}, "learning_rate_decay_steps=0 must be >= 1 or null"),
    (
        {"learning_rate_end": 0.0, "total_steps": None, "max_episodes": 10},
        "learning_rate_end decays over total_steps",
    ),
    (
        {"learning_rate_end": 0.0, "learning_rate_decay_steps": 500},
        "the learning rate decays until env step 500, which must come after learning_starts=1000",
    ),
    (
        {"stop_eval_mean": 250.0, "eval_every": None},
        "stop_eval_mean stops at a periodic greedy evaluation: set eval_every too",
    ),
]


@pytest.mark.parametrize(("values", "message"), BAD_VALUES, ids=[str(v) for v, _ in BAD_VALUES])
def test_bad_values_are_named_in_the_error(values, message):
    with pytest.raises(ConfigError) as excinfo:
        config_from_dict(values)
    assert message in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_config_is_frozen_and_round_trips_through_json():
    config = DQNConfig(hidden_sizes=(32, 16), gamma=0.9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.gamma = 0.5  # type: ignore[misc]
    assert config_from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_ints_are_accepted_for_floats_and_lists_for_tuples():
    config = config_from_dict({"learning_rate": 1, "hidden_sizes": [8, 8]})
    assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
    assert config.hidden_sizes == (8, 8)


@pytest.mark.parametrize(
    ("pair", "key", "value"),
    [
        ("batch_size=128", "batch_size", 128),
        ("total_steps=1e5", "total_steps", 100_000),
        ("buffer_size=100_000", "buffer_size", 100_000),
        ("learning_rate=3e-4", "learning_rate", 3e-4),
        ("double=true", "double", True),
        ("dueling=no", "dueling", False),
        ("hidden_sizes=256,256", "hidden_sizes", (256, 256)),
        ("hidden_sizes=[32, 32]", "hidden_sizes", (32, 32)),
        ("max_episode_steps=null", "max_episode_steps", None),
        ("time_budget_s=30", "time_budget_s", 30.0),
        ("loss=huber", "loss", "huber"),
        ("env_id=CartPole-v1", "env_id", "CartPole-v1"),
    ],
)
def test_overrides_are_parsed_by_field_type(pair, key, value):
    assert DQNConfig.parse_overrides([pair]) == {key: value}


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("batch_size", "must look like key=value"),
        ("nope=1", "unknown config key 'nope'"),
        ("batch_size=big", "batch_size='big' must be an integer"),
        ("total_steps=1.5", "total_steps='1.5' must be an integer or null"),
        ("double=maybe", "double='maybe' must be true or false"),
        ("gamma=inf", "gamma='inf' must be a number"),
    ],
)
def test_bad_overrides(pair, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DQNConfig.parse_overrides([pair])


def test_every_preset_is_a_valid_config():
    assert {"lunarlander", "lunarlander-lab", "lunarlander-robust", "cartpole"} <= set(
        preset_names()
    )
    for name in preset_names():
        resolve_config(preset=name)


def test_lab_preset_is_faithful_to_the_lab():
    c = resolve_config(preset="lunarlander-lab")
    assert (c.env_id, c.hidden_sizes, c.activation, c.loss) == (
        "LunarLander-v3",
        (64, 64),
        "relu",
        "mse",
    )
    assert (c.target_update, c.tau, c.optimizer, c.learning_rate, c.gamma) == (
        "soft",
        1e-3,
        "adam",
        1e-3,
        0.995,
    )
    assert (c.batch_size, c.buffer_size, c.train_every) == (64, 100_000, 4)
    assert (c.epsilon_schedule, c.epsilon_start, c.epsilon_decay, c.epsilon_end) == (
        "exponential",
        1.0,
        0.995,
        0.01,
    )
    assert (c.max_episodes, c.max_episode_steps, c.double, c.dueling) == (2000, 1000, False, False)


def test_robust_preset_is_faithful_to_the_blog_post():
    c = resolve_config(preset="lunarlander-robust")
    assert (c.hidden_sizes, c.l2_coef, c.loss, c.double) == ((64, 64, 64), 1e-3, "huber", True)
    assert (c.target_update, c.target_update_every, c.batch_size, c.learning_starts) == (
        "hard",
        1000,
        128,
        256,
    )
    assert (c.buffer_size, c.learning_rate, c.gamma, c.train_every) == (200_000, 1e-3, 0.99, 4)
    assert (c.epsilon_schedule, c.epsilon_decay, c.epsilon_end) == ("exponential", 0.995, 0.01)
    assert (c.time_feature, c.checkpoint_every_episodes) == (True, 100)
    assert c.time_limit_terminal  # `if step == max_steps: done = True`


def test_resolution_order_preset_then_env_then_seed_then_overrides():
    assert resolve_config().env_id == "LunarLander-v3"
    assert resolve_config(env_id="CartPole-v1") == resolve_config(preset="cartpole")
    generic = resolve_config(env_id="Acrobot-v1")
    assert generic == DQNConfig(env_id="Acrobot-v1")
    c = resolve_config(preset="cartpole", seed=7, overrides={"seed": 9, "gamma": 0.5})
    assert (c.seed, c.gamma) == (9, 0.5)
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        resolve_config(preset="nope")


def test_every_field_is_documented():
    rows = DQNConfig.field_help()
    assert [name for name, _, _ in rows] == [f.name for f in dataclasses.fields(DQNConfig)]
    assert all(text.strip() for _, _, text in rows)


def test_presets_hold_only_known_keys():
    for name in preset_names():
        assert set(load_preset(name)) <= {f.name for f in dataclasses.fields(DQNConfig)}


def test_bounds_sit_beside_their_field_and_speak_for_it():
    @dataclasses.dataclass(frozen=True)
    class Toy(Config):
        rate: float = documented("A rate.", 0.5, gt=0, le=1)
        widths: tuple[int, ...] = documented("Widths.", (4,), ge=1)
        limit: int | None = documented("A limit.", None, ge=1)
        floor: float = documented("A floor.", -1.0, lt=0)

    assert Toy().rate == 0.5 and Toy(limit=None).limit is None
    for values, message in (
        ({"rate": 0.0}, "rate=0.0 must be in (0, 1]"),
        ({"rate": 1.5}, "rate=1.5 must be in (0, 1]"),
        ({"widths": [4, 0]}, "widths=[4, 0] must all be >= 1"),
        ({"limit": 0}, "limit=0 must be >= 1 or null"),
        ({"floor": 0.0}, "floor=0.0 must be < 0"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            Toy.from_dict(values)
    assert Toy(rate=1, floor=-1e-9).rate == 1.0  # the closed end and an open end's neighbour
    help_text = {name: text for name, _, text in Toy.field_help()}
    assert help_text["rate"] == "A rate. Must be in (0, 1]."
    assert help_text["limit"] == "A limit. Must be >= 1."


def test_help_groups_keep_every_field_once_in_declaration_order():
    groups = DQNConfig.field_groups()
    assert [title for title, _ in groups][:3] == [
        "environment",
        "budgets (whichever comes first ends the run)",
        "Q-learning targets and loss",
    ]
    names = [name for _, rows in groups for name, _, _ in rows]
    assert names == [f.name for f in dataclasses.fields(DQNConfig)]
    assert groups[0][1][0][0] == "env_id" and all(rows for _, rows in groups)
    assert [title for title, _ in QLearningConfig.field_groups()] == [None]  # no groups declared
