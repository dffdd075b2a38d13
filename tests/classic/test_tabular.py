"""Tabular Q-learning: its TD target by hand, a run on non-slippery FrozenLake, its checkpoint."""

import json
import re

import numpy as np
import pytest

from deepq.api import evaluate, load, train
from deepq.classic.configs import QLearningConfig
from deepq.classic.tabular import greedy_with_random_ties, q_learning_target, q_learning_update
from deepq.errors import ConfigError, UsageError


def test_td_target_by_hand():
    next_q = np.array([0.5, 2.0, -1.0])
    assert q_learning_target(1.0, False, next_q, 0.9) == pytest.approx(1.0 + 0.9 * 2.0)
    assert q_learning_target(1.0, True, next_q, 0.9) == 1.0  # terminated: no future


def test_update_moves_the_cell_alpha_of_the_way_to_the_target():
    q_table = np.array([[0.0, 0.0], [2.0, 4.0]])
    # target = 1 + 0.5 * max(2, 4) = 3; Q(0, 1) = 0 + 0.5 * (3 - 0) = 1.5; nothing else moves
    q_learning_update(q_table, 0, 1, 1.0, False, 1, gamma=0.5, alpha=0.5)
    np.testing.assert_array_equal(q_table, [[0.0, 1.5], [2.0, 4.0]])
    q_learning_update(q_table, 0, 1, 1.0, True, 1, gamma=0.5, alpha=0.5)  # target 1
    np.testing.assert_array_equal(q_table, [[0.0, 1.25], [2.0, 4.0]])


def test_ties_are_broken_at_random_and_a_clear_best_always_wins():
    rng = np.random.default_rng(0)
    picks = {greedy_with_random_ties(np.zeros(4), rng) for _ in range(200)}
    assert picks == {0, 1, 2, 3}
    assert {greedy_with_random_ties(np.array([0.0, 3.0, 1.0]), rng) for _ in range(20)} == {1}


@pytest.fixture(scope="module")
def frozen_lake_run(tmp_path_factory):
    config = QLearningConfig(
        env_id="deepq/FrozenLake-NotSlippery-v1", max_episodes=600, eval_every_episodes=200
    )
    run_dir = tmp_path_factory.mktemp("tabular") / "run"
    return train(config, run_dir, show_progress=False, tensorboard=False, report=False)


def test_non_slippery_frozen_lake_is_solved_every_time(frozen_lake_run):
    assert frozen_lake_run.summary["final_eval"]["mean"] == 1.0  # 100% of 100 held-out episodes
    agent = load(frozen_lake_run.run_dir)
    assert evaluate(agent, episodes=10).mean == 1.0
    # the greedy path is the shortest one: 6 moves
    env = agent.make_env()
    state, _ = env.reset(seed=0)
    for _ in range(6):
        state, reward, terminated, _, _ = env.step(agent.act(state))
    assert terminated and reward == 1.0


def test_the_run_directory_is_a_deepq_run(frozen_lake_run):
    run_dir = frozen_lake_run.run_dir
    config = json.loads((run_dir / "config.json").read_text())
    assert config["env_id"] == "deepq/FrozenLake-NotSlippery-v1"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["episodes"] == 600 and summary["stop_reason"] == "max_episodes"
    assert [e["episodes"] for e in summary["eval_history"]] == [200, 400, 600]
    rows = (run_dir / "progress.csv").read_text().splitlines()
    assert rows[0] == "episode,env_steps,return,length,mean_100,epsilon,wall_s"
    assert len(rows) == 601
    for name in ("best", "final"):
        assert (run_dir / "checkpoints" / name / "COMPLETE").exists()


def test_q_learning_refuses_continuous_observations(tmp_path):
    with pytest.raises(UsageError, match="tabular Q-learning needs Discrete"):
        train(QLearningConfig(env_id="CartPole-v1"), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before the run directory was made


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"alpha0": 0.0}, "alpha0=0.0 must be in (0, 1]"),
        ({"gamma": 1.5}, "gamma=1.5 must be in [0, 1]"),
        ({"max_episodes": None, "total_steps": None}, "set max_episodes or total_steps"),
        ({"epsilon_end": 0.5, "epsilon_start": 0.1}, "epsilon_end=0.5"),
        ({"max_episodes": "many"}, "max_episodes='many' must be an integer or null"),
    ],
)
def test_bad_configs_name_the_field(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        QLearningConfig(**values)
