"""deepq video: rollouts render headless and decode to the expected number of frames."""

import imageio.v3 as iio
import numpy as np
import pytest

from deepq.dqn.agent import Agent, init_params
from deepq.dqn.config import DQNConfig
from deepq.errors import UsageError
from deepq.outputs.video import annotate, record_video


@pytest.fixture(scope="module")
def agent():
    config = DQNConfig(env_id="CartPole-v1", hidden_sizes=(8,))
    return Agent(config, init_params(config, 4, 2), 4, 2, {})


def expected_frames(agent, episodes, seed):
    """One frame after each reset and one after each step of the same greedy episodes."""
    env = agent.make_env()
    total = 0
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        total += 1
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(agent.act(obs))
            done = terminated or truncated
            total += 1
    return total


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # reading an MP4 starts ffmpeg
@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_video_decodes_to_the_expected_frame_count(tmp_path, agent, suffix):
    out, returns = record_video(agent, tmp_path / f"clip{suffix}", episodes=2, seed=5)
    frames = iio.imread(out, plugin="FFMPEG" if suffix == ".mp4" else "pillow")
    assert frames.shape[0] == expected_frames(agent, 2, 5)
    assert frames.shape[1:3] == (400, 600)  # CartPole's 600x400 render, not resized
    assert len(returns) == 2 and all(r >= 1 for r in returns)


def test_the_return_is_drawn_on_the_frame():
    frame = np.full((60, 300, 3), 128, np.uint8)
    drawn = annotate(frame, 3, 12.5)
    box = drawn[5:22, 5:100]
    assert (box == 0).any() and (box > 200).any()  # a black box with light text in it
    np.testing.assert_array_equal(drawn[30:], frame[30:])  # the rest of the frame is untouched


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"out": "clip.avi"}, "must end in .mp4 or .gif"),
        ({"episodes": 0}, "--episodes 0"),
        ({"fps": 0}, "--fps 0"),
    ],
)
def test_bad_arguments(tmp_path, agent, kwargs, message):
    options = {"out": "clip.mp4", **kwargs}
    options["out"] = tmp_path / options["out"]
    with pytest.raises(UsageError, match=message):
        record_video(agent, **options)


def test_a_hand_written_policy_films_like_an_agent(tmp_path):
    """``deepq video --policy lean``: the same episodes, seeded the same, as its evaluation."""
    from deepq.classic.policies import episode_returns, lean_policy, load_policy

    written, returns = record_video(load_policy("lean"), tmp_path / "lean.gif", 2, seed=0)
    assert returns == [episode_returns(lean_policy, 1, seed=k)[0] for k in range(2)]
    assert len(iio.imread(written)) == sum(returns) + 2  # a frame per step, and each reset's


def test_a_video_stops_at_max_frames_and_lists_only_whole_episodes(tmp_path):
    """An Atari agent that never serves would play 27,000 steps: --max-frames cuts it."""
    from deepq.classic.policies import episode_returns, lean_policy, load_policy

    first = episode_returns(lean_policy, 1, seed=0)[0]  # CartPole: a return of N is N steps
    written, returns = record_video(load_policy("lean"), tmp_path / "cut.gif", 2, seed=0,
                                    max_frames=int(first) + 10)  # fmt: skip
    assert returns == [first]  # the second episode was cut short
    assert len(iio.imread(written)) == int(first) + 10
    _, returns = record_video(load_policy("lean"), tmp_path / "short.gif", 1, max_frames=5)
    assert returns == []


def test_an_epsilon_greedy_video_plays_the_episodes_its_evaluation_plays(tmp_path, agent):
    """Episode k draws its random actions from the stream its evaluation draws from, so a video
    shows the returns `deepq eval --epsilon` reports for the same seeds."""
    from deepq.api import evaluate

    evaluated = evaluate(agent, episodes=3, seed=11, epsilon=0.5)
    _, returns = record_video(agent, tmp_path / "e.gif", episodes=3, seed=11, epsilon=0.5)
    assert returns == evaluated.returns
    _, greedy = record_video(agent, tmp_path / "g.gif", episodes=3, seed=11)
    assert greedy == evaluate(agent, episodes=3, seed=11).returns != returns


def test_the_agent_s_eval_epsilon_is_the_video_s_default(tmp_path):
    config = DQNConfig(env_id="CartPole-v1", hidden_sizes=(8,), eval_epsilon=1.0)
    uniform = Agent(config, init_params(config, 4, 2), 4, 2, {})
    _, returns = record_video(uniform, tmp_path / "u.gif", episodes=3, seed=11)
    assert returns == evaluate_at_random(uniform, episodes=3, seed=11)


def evaluate_at_random(agent, episodes, seed):
    from deepq.api import evaluate

    result = evaluate(agent, episodes=episodes, seed=seed)  # the agent's own eval_epsilon: 1
    assert result.epsilon == 1.0
    return result.returns
