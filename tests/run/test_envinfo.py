"""``deepq env`` and ``deepq envs``: any env described, frames saved, the registry listed."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

from deepq.errors import UsageError
from deepq.run.envinfo import describe_env, registered_envs, save_frame, space_summary


class BrokenEnv(gym.Env):
    def __init__(self):
        raise ImportError("needs the frobnicate package")


if "deepq-test/Broken-v0" not in gym.registry:
    gym.register("deepq-test/Broken-v0", entry_point=BrokenEnv)


def test_discrete_observations_are_described_and_trained_by_q_learning():
    text = describe_env("FrozenLake-v1")
    assert "observation space: Discrete(16)" in text
    assert "  2 = move right" in text and "trains it with: q-learning" in text
    assert "  Action         0 (move left)" in text


def test_box_actions_are_described_and_sampled_reproducibly():
    text = describe_env("Pendulum-v1", seed=3)
    assert "action space: Box(1,) float32 in [-2, 2]" in text and "[0] torque" in text
    assert "trains it with: none of its algorithms" in text
    assert text == describe_env("Pendulum-v1", seed=3)
    with pytest.raises(UsageError, match="--action is for Discrete action spaces"):
        describe_env("Pendulum-v1", action=1)


def test_lunar_lander_actions_carry_the_labs_names_and_gymnasiums():
    text = describe_env("LunarLander-v3", action=3)
    assert "  1 = fire right engine (Gymnasium: fire left orientation engine)" in text
    assert "  3 = fire left engine (Gymnasium: fire right orientation engine)" in text


def test_image_observations_are_summarised_not_listed():
    space = gym.spaces.Box(0, 255, (84, 84, 4), np.uint8)
    assert space_summary(space) == "Box(84, 84, 4) uint8 in [0, 255]"


def test_the_saved_frame_is_what_render_draws(tmp_path):
    out, shape = save_frame("CartPole-v1", tmp_path / "frame.png", seed=5)
    env = gym.make("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=5)
    expected = env.render()
    env.close()
    assert shape == expected.shape == (400, 600, 3)
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)


def test_the_registry_lists_spaces_algorithms_and_why_an_env_cannot_be_made():
    listed = {entry.env_id: entry for entry in registered_envs("CartPole-v1")}
    assert {"CartPole-v1", "phys2d/CartPole-v1"} <= listed.keys()  # a substring, any namespace
    cartpole = listed["CartPole-v1"]
    assert (cartpole.observation, cartpole.action) == ("Box(4,) float32", "Discrete(2)")
    assert cartpole.trains_with == ("dqn", "reinforce")
    assert [e.env_id for e in registered_envs("*lunarlander-v3")] == ["LunarLander-v3"]
    (broken,) = registered_envs("deepq-test/Broken")
    assert broken.unavailable == "needs the frobnicate package"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["envs", "no-such-env-anywhere"], "no registered environment matches"),
        (["env", "CartPole-v1", "--action", "2"], "--action 2 must be in [0, 1]"),
        (["env", "CartPole-v1", "--frame", "x.jpg"], "--frame x.jpg must end in .png"),
        (["train", "--env", "FrozenLake-v1", "--dry-run"], "train it with --algo q-learning"),
    ],
)
def test_bad_requests_are_one_line(argv, message):
    done = subprocess.run([sys.executable, "-m", "deepq", *argv], capture_output=True, text=True)
    assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1


def test_renders_become_visible_bytes():
    """MinAtar renders 10×10 floats in [0, 1]: bytes, each pixel a 16×16 block (160 px a side);
    an ordinary uint8 render is left as it is."""
    from deepq.run.envs import displayable_frame

    tiny = np.zeros((10, 10, 3))
    tiny[0, 0] = [1.0, 0.5, 0.0]
    shown = displayable_frame(tiny)
    assert shown.shape == (160, 160, 3) and shown.dtype == np.uint8
    np.testing.assert_array_equal(shown[15, 15], [255, 128, 0])
    np.testing.assert_array_equal(shown[16, 16], [0, 0, 0])
    frame = np.full((400, 600, 3), 7, np.uint8)
    np.testing.assert_array_equal(displayable_frame(frame), frame)


def test_dqn_trains_on_frames_channels_last_only():
    from deepq.run.envinfo import trainable_by

    actions = gym.spaces.Discrete(4)
    assert trainable_by(gym.spaces.Box(0, 255, (84, 84, 4), np.uint8), actions) == ["dqn"]
    assert trainable_by(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), actions) == []
    assert trainable_by(gym.spaces.Box(0, 1, (10, 10, 4), bool), actions) == ["dqn"]
