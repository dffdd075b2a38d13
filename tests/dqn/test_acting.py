"""ε-greedy action selection during training."""

import numpy as np

from deepq.dqn.exploration import select_actions

Q_VALUES = np.array([[1.0, 5.0, 2.0], [3.0, 0.0, 0.0], [0.0, 0.0, 9.0]])


def test_a_coin_below_epsilon_takes_the_random_action_otherwise_the_greedy_one():
    coins = np.array([0.1, 0.9, 0.5])  # below, above, equal to epsilon
    actions = select_actions(Q_VALUES, 0.5, coins, np.array([2, 2, 0]))
    np.testing.assert_array_equal(actions, [2, 0, 2])


def test_epsilon_zero_is_greedy_and_epsilon_one_is_random():
    coins = np.array([0.0, 0.3, 0.999])
    random_actions = np.array([0, 1, 1])
    np.testing.assert_array_equal(select_actions(Q_VALUES, 0.0, coins, random_actions), [1, 0, 2])
    np.testing.assert_array_equal(select_actions(Q_VALUES, 1.0, coins, random_actions), [0, 1, 1])
