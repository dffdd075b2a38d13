"""Batched greedy evaluation: seeding per episode, independence from the batch width."""

import numpy as np

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
