"""MinAtar (Young & Tian 2019), the pixel benchmark a CPU can run: its envs registered from
deepq's own allow-list, seeded like any other, and its presets the paper's DQN."""

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import rewound_copy
from test_resume import assert_same_run

from deepq.dqn.config import DQNConfig, preset_names, resolve_config
from deepq.dqn.learner import make_optimizer
from deepq.dqn.loop import resume, train
from deepq.run.envs import make_env

GAMES = ["asterix", "breakout", "freeway", "seaquest", "space-invaders"]
# The step size each game's curve in the MinAtar README was drawn with: the best point of its
# step-size sweep (powers of 2) at 5M frames; Space Invaders' is examples/dqn.py's 2.5e-4 (2^-12).
PAPER_STEP_SIZE = {"asterix": 2**-13, "breakout": 2**-9, "freeway": 2**-11, "seaquest": 2**-13,
                   "space-invaders": 2.5e-4}  # fmt: skip


def test_minatar_ids_register_from_the_allow_list_and_give_binary_frames():
    env = make_env("MinAtar/Breakout-v0", spaces="frames")
    obs, _ = env.reset(seed=3)
    assert obs.dtype == np.bool_ and obs.shape == (10, 10, 4) and env.action_space.n == 6
    env.close()


def test_seeds_beyond_32_bits_reach_minatar_hashed_and_repeatable():
    """deepq's evaluation seeds lie above 2**32; MinAtar's RandomState takes 32-bit seeds."""
    env = make_env("MinAtar/Asterix-v0", spaces="frames")  # enemies spawn at random each step

    def first_frames(seed):
        obs = [env.reset(seed=seed)[0]]
        obs += [env.step(1)[0] for _ in range(30)]
        return np.stack(obs)

    np.testing.assert_array_equal(first_frames(2**32 + 5), first_frames(2**32 + 5))
    assert not np.array_equal(first_frames(2**32 + 5), first_frames(2**32 + 6))
    env.close()


@pytest.mark.parametrize("game", GAMES)
def test_the_presets_are_the_papers_dqn(game):
    assert f"minatar-{game}" in preset_names()
    c = resolve_config(f"minatar-{game}")
    assert c.env_id.startswith("MinAtar/") and c.env_id.endswith("-v0")  # all 6 actions
    assert (c.hidden_sizes, c.loss, c.gamma, c.batch_size, c.buffer_size) == (
        (128,), "huber", 0.99, 32, 100_000)  # fmt: skip
    assert (c.optimizer, c.learning_rate, c.rmsprop_decay, c.rmsprop_centered) == (
        "rmsprop", PAPER_STEP_SIZE[game], 0.95, True)  # fmt: skip
    assert (c.optimizer_eps, c.rmsprop_eps_in_sqrt) == (0.01, False)
    assert (c.target_update_every, c.train_every, c.learning_starts, c.random_steps) == (
        1000, 1, 5000, 5000)  # fmt: skip
    assert (c.epsilon_end, c.epsilon_decay_steps, c.total_steps) == (0.1, 105_000, 5_000_000)


def test_rmsprop_as_pytorch_computes_it():
    # PyTorch's centered RMSprop, one step of g = 2 with alpha 0.95, eps 0.01, lr 2.5e-4:
    # v = 0.05·4 = 0.2, g_avg = 0.05·2 = 0.1, step = lr·g / (sqrt(v − g_avg²) + eps)
    config = DQNConfig(optimizer="rmsprop", learning_rate=2.5e-4, rmsprop_decay=0.95,
                       rmsprop_centered=True, rmsprop_eps_in_sqrt=False, optimizer_eps=0.01)  # fmt: skip
    optimizer = make_optimizer(config)
    grads = {"w": jnp.array([2.0])}
    updates, _ = optimizer.update(grads, optimizer.init(grads))
    expected = -2.5e-4 * 2 / (np.sqrt(0.2 - 0.1**2) + 0.01)
    np.testing.assert_allclose(updates["w"], [expected], rtol=1e-5)


def test_a_resumed_minatar_run_equals_the_uninterrupted_one(tmp_path):
    """Sticky actions draw from MinAtar's own RandomState: resetting an episode with its seed
    and replaying its actions must still rebuild it exactly."""
    overrides = {"total_steps": 1500, "learning_starts": 300, "random_steps": 300,
                 "epsilon_decay_steps": 1000, "buffer_size": 5000, "eval_every": None,
                 "final_eval_episodes": 0, "checkpoint_every_episodes": 50,
                 "keep_checkpoints": 0}  # fmt: skip
    config = resolve_config("minatar-breakout", overrides=overrides)
    whole = tmp_path / "whole"
    train(config, whole, show_progress=False, tensorboard=False)
    copy = rewound_copy(whole, tmp_path / "resumed")
    resume(copy, show_progress=False, tensorboard=False)
    assert_same_run(whole, copy)


def test_a_minatar_frame_is_saved_large_enough_to_see(tmp_path):
    from PIL import Image

    from deepq.run.envinfo import save_frame

    out, shape = save_frame("MinAtar/Breakout-v0", tmp_path / "breakout.png")
    assert shape == (160, 160, 3) and Image.open(out).size == (160, 160)


def test_the_modern_preset_is_the_papers_dqn_but_for_what_it_names():
    paper, modern = resolve_config("minatar-breakout"), resolve_config("minatar-breakout-modern")
    changed = {k for k, v in modern.to_dict().items() if paper.to_dict()[k] != v}
    assert changed == {"double", "n_step", "optimizer", "learning_rate", "optimizer_eps",
                       "epsilon_end", "epsilon_decay_steps", "total_steps"}  # fmt: skip
    assert (modern.double, modern.n_step, modern.optimizer, modern.learning_rate) == (
        True, 3, "adam", 1e-4)  # fmt: skip
    assert (modern.epsilon_end, modern.epsilon_decay_steps, modern.total_steps) == (
        0.01, 250_000, 1_000_000)  # fmt: skip


def test_sticky_actions_default_to_minatars_own_and_switch_off():
    for sticky, probability in ((None, 0.1), (False, 0.0), (True, 0.1)):
        env = make_env("MinAtar/Breakout-v0", spaces="frames", sticky_actions=sticky)
        assert env.unwrapped.game.sticky_action_prob == probability
        env.close()
