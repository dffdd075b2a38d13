"""Truncation bootstraps: on an endless constant-reward env cut by a TimeLimit, Q(s) -> r / (1 - γ).

Had truncation been treated as terminal, the fixed point would be the average of the partial
sums over the 10 positions in the episode, 1 / (1 - 0.9 * 0.9) ≈ 5.26 here, not 10.
"""

import numpy as np
import pytest

from deepq.dqn.loop import train


@pytest.mark.parametrize(
    ("n_step", "time_limit_terminal", "expected"),
    [(1, False, 10.0), (3, False, 10.0), (1, True, 1 / 0.19)],
)
def test_q_of_an_endless_episode_is_r_over_one_minus_gamma(
    tmp_path, n_step, time_limit_terminal, expected
):
    # n-step: Q = 1 + 0.9 + 0.81 + 0.729 Q has the same fixed point, 10. With the time limit
    # taken as terminal (the robust-DQN post's choice), 1 in 10 stored targets is 1 and the rest
    # 1 + 0.9 Q: Q = 1 + 0.9 * 0.9 Q = 1 / 0.19 ≈ 5.26.
    config = {
        "n_step": n_step,
        "time_limit_terminal": time_limit_terminal,
        "env_id": "deepq-test/ConstantReward-v0",  # reward 1 forever, truncated every 10 steps
        "gamma": 0.9,
        "total_steps": 3000,
        "hidden_sizes": [16],
        "learning_rate": 3e-3,
        "batch_size": 32,
        "learning_starts": 100,
        "train_every": 1,
        "target_update": "soft",
        "tau": 0.05,
        "epsilon_schedule": "constant",
        "epsilon_start": 0.5,
        "eval_every": None,
        "final_eval_episodes": 0,
        "checkpoint_every_episodes": None,
    }
    result = train(config, tmp_path / "run", show_progress=False, tensorboard=False)
    q = result.agent.q_values(np.ones(1, np.float32))
    np.testing.assert_allclose(q, [expected, expected], atol=0.5)


def test_the_loop_stores_final_observations_not_reset_ones(tmp_path):
    from deepq.run.checkpoint import load_checkpoint

    config = {
        "env_id": "deepq-test/Counting-v0",  # obs = steps so far, terminates after 3
        "num_envs": 2,
        "total_steps": 30,
        "batch_size": 4,
        "learning_starts": 4,
        "hidden_sizes": [4],
        "eval_every": None,
        "final_eval_episodes": 0,
    }
    train(config, tmp_path / "run", show_progress=False, tensorboard=False)
    arrays, meta = load_checkpoint(tmp_path / "run" / "checkpoints" / "final")
    obs, next_obs = arrays["replay/obs"][:, 0], arrays["replay/next_obs"][:, 0]
    terminated = arrays["replay/terminated"]
    assert len(obs) == 30 and meta["progress"]["episodes"] == 10
    np.testing.assert_array_equal(next_obs, obs + 1)  # never a reset observation (0) as s'
    np.testing.assert_array_equal(terminated, next_obs == 3)
    np.testing.assert_allclose(arrays["replay/discounts"], 0.99)
