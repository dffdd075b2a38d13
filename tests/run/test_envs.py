"""Environment construction, supported spaces, final observations under autoreset."""

import os

import numpy as np
import pytest

from deepq.errors import UsageError
from deepq.run.envs import final_observations, make_env, make_vector_env, space_names


def test_unknown_env_is_a_usage_error():
    with pytest.raises(UsageError, match="cannot make environment 'NoSuchEnv-v9'"):
        make_env("NoSuchEnv-v9")


@pytest.mark.parametrize(
    ("env_id", "message"),
    [
        ("Pendulum-v1", "Box action space; deepq's DQN and REINFORCE need Discrete actions"),
        (
            "FrozenLake-v1",
            "Discrete(16) observations (a table of states): train it with --algo q-learning",
        ),
    ],
)
def test_unsupported_spaces_are_refused(env_id, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_env(env_id)


def test_max_episode_steps_truncates():
    env = make_env("deepq-test/ConstantReward-v0", max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(0)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


def test_time_feature_appends_fraction_of_the_step_limit_used():
    env = make_env("deepq-test/ConstantReward-v0", max_episode_steps=4, time_feature=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == (2,)
    fractions = [obs[-1]] + [env.step(0)[0][-1] for _ in range(4)]
    np.testing.assert_allclose(fractions, [0.0, 0.25, 0.5, 0.75, 1.0])


def test_time_feature_needs_a_step_limit():
    import gymnasium as gym
    from conftest import ConstantRewardEnv

    if "deepq-test/Unlimited-v0" not in gym.registry:
        gym.register("deepq-test/Unlimited-v0", entry_point=ConstantRewardEnv)
    with pytest.raises(UsageError, match="time_feature needs a step limit"):
        make_env("deepq-test/Unlimited-v0", time_feature=True)


def test_final_observation_replaces_the_reset_observation():
    envs = make_vector_env("deepq-test/Counting-v0", num_envs=2)
    obs, _ = envs.reset(seed=0)
    for _ in range(3):
        next_obs, _, terminated, truncated, infos = envs.step(np.zeros(2, np.int64))
    done = terminated | truncated
    assert done.all()
    np.testing.assert_array_equal(
        next_obs[:, 0], [0.0, 0.0]
    )  # what autoreset returns: the reset obs
    np.testing.assert_array_equal(final_observations(next_obs, done, infos)[:, 0], [3.0, 3.0])
    assert final_observations(next_obs, np.zeros(2, bool), infos) is next_obs


def test_space_names_for_lunar_lander_and_generic_envs():
    states, actions = space_names("LunarLander-v3", 8, 4)
    assert states[0] == "x position" and states[7] == "right leg contact"
    assert actions == [  # the LunarLander lab's names, with Gymnasium's beside
        "do nothing",
        "fire right engine (Gymnasium: fire left orientation engine)",
        "fire main engine",
        "fire left engine (Gymnasium: fire right orientation engine)",
    ]
    states, actions = space_names("LunarLander-v3", 9, 4)  # time feature appended
    assert states[8] == "obs[8]"
    assert space_names("Acrobot-v1", 2, 3) == (
        ["obs[0]", "obs[1]"],
        ["action 0", "action 1", "action 2"],
    )


def test_offscreen_envs_get_the_dummy_sdl_driver_and_windows_the_real_one(monkeypatch):
    import deepq.run.envs

    monkeypatch.delenv("SDL_VIDEODRIVER")
    monkeypatch.setattr(deepq.run.envs, "_DUMMY_SDL_SET_HERE", False)
    make_env("CartPole-v1").close()
    assert os.environ["SDL_VIDEODRIVER"] == "dummy"
    make_env("CartPole-v1", render_mode="human").close()  # the window opens at reset, not here
    assert "SDL_VIDEODRIVER" not in os.environ
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")  # the user's choice is left alone either way
    make_env("CartPole-v1").close()
    make_env("CartPole-v1", render_mode="human").close()
    assert os.environ["SDL_VIDEODRIVER"] == "x11"


def test_an_allow_listed_namespace_imports_only_the_module_deepq_names(tmp_path, monkeypatch):
    """ALE/ and MinAtar/ ids import ale_py / minatar, names fixed in deepq's code; the id itself
    never chooses a module."""
    import deepq.run.envs as envs

    (tmp_path / "deepq_fake_envs.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('Fake/Pole-v0', entry_point='gymnasium.envs.classic_control:CartPoleEnv',"
        " max_episode_steps=20)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(
        envs, "NAMESPACE_PACKAGES", {"Fake": ("deepq_fake_envs", "fake-envs"),
                                     "Missing": ("deepq_no_such_module", "no-such")}
    )  # fmt: skip
    envs.make_env("Fake/Pole-v0").close()
    with pytest.raises(UsageError, match="Missing/Env-v0 needs the no-such package: pip install"):
        envs.make_env("Missing/Env-v0")
