"""Batched evaluation, greedy or ε-greedy: seeding per episode, independence from the batch
width."""

import numpy as np
import pytest

from deepq.errors import UsageError
from deepq.run.envs import make_env
from deepq.run.evaluation import EvalResult, Evaluator


def test_eval_result_statistics():
    result = EvalResult.from_episodes([1.0, 2.0, 3.0, 6.0], [10, 10, 10, 10])
    assert (result.mean, result.min, result.max, result.episodes) == (3.0, 1.0, 6.0, 4)
    np.testing.assert_allclose(result.std, np.sqrt((4 + 1 + 0 + 9) / 4))


def test_counting_env_returns_are_exact():
    evaluator = Evaluator(lambda: make_env("deepq-test/Counting-v0"), max_parallel=2)
    result = evaluator.run(lambda obs: np.zeros(len(obs), np.int64), episodes=5, seed=0)
    assert result.returns == [6.0] * 5 and result.lengths == [3] * 5  # rewards 1 + 2 + 3


def test_results_do_not_depend_on_how_many_envs_run_at_once():
    def policy(obs):  # a fixed, state-dependent CartPole policy
        return (obs[:, 2] + obs[:, 3] > 0).astype(np.int64)

    def run(width):
        evaluator = Evaluator(lambda: make_env("CartPole-v1"), max_parallel=width)
        return evaluator.run(policy, episodes=7, seed=123)

    one_at_a_time, batched = run(1), run(4)
    assert one_at_a_time.returns == batched.returns
    assert len(set(one_at_a_time.returns)) > 1  # different seeds gave different episodes


def _reads_the_frame(obs):
    """BrightSide's perfect policy: 1 when the white pixel lies in the right half."""
    return (obs.reshape(len(obs), 8, 8)[:, :, 4:].max(axis=(1, 2)) > 0).astype(np.int64)


def test_epsilon_zero_is_greedy_and_epsilon_one_ignores_the_policy():
    evaluator = Evaluator(
        lambda: make_env("deepq-test/BrightSide-v0", spaces="frames"), max_parallel=4
    )
    greedy = evaluator.run(_reads_the_frame, episodes=20, seed=5)
    assert greedy.returns == [10.0] * 20 and greedy.epsilon == 0.0
    assert greedy.line().startswith("greedy return 10.00")

    uniform = evaluator.run(_reads_the_frame, episodes=20, seed=5, epsilon=1.0)
    hits = sum(uniform.returns)  # 200 fair coin flips: 100 expected, sd 7.1
    assert 70 <= hits <= 130 and uniform.epsilon == 1.0
    assert uniform.line().startswith("ε-greedy (ε 1) return")


def test_epsilon_greedy_misses_about_epsilon_over_n_actions_of_the_steps():
    evaluator = Evaluator(
        lambda: make_env("deepq-test/BrightSide-v0", spaces="frames"), max_parallel=8
    )
    result = evaluator.run(_reads_the_frame, episodes=80, seed=0, epsilon=0.2)
    misses = 800 - sum(result.returns)  # a random action misses half the time: 80 expected
    assert 50 <= misses <= 110


def test_epsilon_greedy_results_do_not_depend_on_how_many_envs_run_at_once():
    def run(width):
        evaluator = Evaluator(
            lambda: make_env("deepq-test/BrightSide-v0", spaces="frames"), max_parallel=width
        )
        return evaluator.run(_reads_the_frame, episodes=9, seed=77, epsilon=0.5)

    one_at_a_time, batched = run(1), run(4)
    assert one_at_a_time.returns == batched.returns
    assert len(set(one_at_a_time.returns)) > 1  # each episode drew its own random actions


def test_epsilon_outside_zero_one_is_refused():
    evaluator = Evaluator(lambda: make_env("deepq-test/Counting-v0"))
    with pytest.raises(UsageError, match="epsilon=1.5 must be in"):
        evaluator.run(lambda obs: np.zeros(len(obs), np.int64), episodes=1, seed=0, epsilon=1.5)
