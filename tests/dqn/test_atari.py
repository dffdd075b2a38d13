"""Atari as the Hands-On ML chapter sets it up: the preprocessing on a scripted fake ALE game
(skip, max-pool, no-op and FIRE resets, life loss against game over, the agent-step cut), what
the collector learns from (clipped rewards, lost lives as terminal) against what it reports (raw
scores, whole games), the frame replay that stores each frame once, and a real-ALE Breakout run
that checkpoints, resumes bit for bit and evaluates."""

import gymnasium as gym
import numpy as np
import pytest
from helpers import rewound_copy
from test_resume import assert_same_run

from deepq.api import load
from deepq.dqn.collector import Collector
from deepq.dqn.config import DQNConfig, resolve_config
from deepq.dqn.frame_replay import FrameReplay
from deepq.dqn.loop import resume, train
from deepq.dqn.replay import ReplayBuffer
from deepq.outputs.video import rollout_frames
from deepq.run.checkpoint import load_checkpoint
from deepq.run.envs import ensure_registered, make_env

FAKE = "ALE/FakeGame-v5"
LIFE_LOST_AT, GAME_OVER_AT = (40, 80), 120  # emulator frames since reset


def brightness(frame_number):
    """The fake screen flickers: odd frames are black, so only max-pooling sees every object."""
    return 0 if frame_number % 2 else 50 + (frame_number * 3) % 200


class FakeALE(gym.Env):
    """A scripted game with ALE's interface as AtariPreprocessing reads it: each emulator frame
    fills the screen with ``brightness(frame)``; it scores 1 every 10th frame and 4 every 25th;
    it has 3 lives, loses them at frames 40 and 80 and is over at frame 120."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, frameskip=4, repeat_action_probability=0.25,
                 max_num_frames_per_episode=None, render_mode=None):  # fmt: skip
        self._frameskip = frameskip
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0, 255, (210, 160, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(4)
        self.ale = self
        self.frame, self.actions = 0, []

    def get_action_meanings(self):
        return ["NOOP", "FIRE", "RIGHT", "LEFT"]

    def lives(self):
        return 3 - sum(self.frame >= f for f in LIFE_LOST_AT)

    def getScreenGrayscale(self, out):
        out[...] = brightness(self.frame)

    def getScreenRGB(self, out):
        out[...] = brightness(self.frame)

    def render(self):
        return np.full((210, 160, 3), brightness(self.frame), np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.frame, self.actions = 0, []
        return self.render(), {"lives": self.lives()}

    def step(self, action):
        self.frame += 1
        self.actions.append(int(action))
        reward = 4.0 if self.frame % 25 == 0 else 1.0 if self.frame % 10 == 0 else 0.0
        return self.render(), reward, self.frame >= GAME_OVER_AT, False, {"lives": self.lives()}


@pytest.fixture(scope="module", autouse=True)
def fake_game():
    ensure_registered("ALE/Pong-v5")  # the real ones first: the namespace then counts as loaded
    if FAKE not in gym.registry:
        gym.register(FAKE, entry_point=FakeALE)


def test_a_step_is_four_frames_max_pooled_and_scores_their_sum():
    env = make_env(FAKE, spaces="frames")
    obs, info = env.reset(seed=0)
    assert obs.shape == (84, 84, 4) and obs.dtype == np.uint8 and info["lives"] == 3
    fake = env.unwrapped
    for _ in range(5):
        before = fake.frame
        obs, reward, terminated, truncated, _ = env.step(2)
        f = fake.frame
        assert f == before + 4
        expected = sum(
            4.0 if g % 25 == 0 else 1.0 if g % 10 == 0 else 0.0 for g in range(before + 1, f + 1)
        )
        assert reward == expected
        # the newest frame is the max of the last two emulator frames: never the black one
        assert (obs[..., -1] == max(brightness(f - 1), brightness(f))).all()


def test_a_reset_takes_1_to_30_noops_then_fire_and_stacks_its_first_frame():
    env = make_env(FAKE, spaces="frames")
    noops = set()
    for seed in range(12):
        obs, _ = env.reset(seed=seed)
        actions = env.unwrapped.actions
        n = actions.index(1)
        assert 1 <= n <= 30 and actions[:n] == [0] * n and actions[n:] == [1] * 4  # FIRE, skipped
        assert all((obs[..., k] == obs[..., 0]).all() for k in range(4))
        noops.add(n)
    assert len(noops) > 3  # drawn from the reset's seed, not fixed


def test_a_lost_life_goes_on_and_only_game_over_terminates():
    env = make_env(FAKE, spaces="frames")
    env.reset(seed=1)
    lives, terminated, steps = [], False, 0
    while not terminated:
        _, _, terminated, truncated, info = env.step(0)
        lives.append(info["lives"])
        steps += 1
    assert lives[0] == 3 and 1 in lives and env.unwrapped.frame >= GAME_OVER_AT
    assert not truncated


def test_episodes_are_cut_in_agent_steps():
    env = make_env(FAKE, max_episode_steps=7, spaces="frames")
    env.reset(seed=0)
    for step in range(1, 8):
        _, _, terminated, truncated, _ = env.step(0)
        assert (terminated, truncated) == (False, step == 7)


def test_sticky_actions_switch_the_ale_probability():
    for sticky, probability in ((None, 0.0), (False, 0.0), (True, 0.25)):
        env = make_env("ALE/Pong-v5", spaces="frames", sticky_actions=sticky)
        assert env.unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(probability)
        env.close()


def collector(**overrides):
    config = DQNConfig(env_id=FAKE, num_envs=2, life_loss_terminal=True, clip_rewards=True,
                       **overrides)  # fmt: skip
    made = Collector(config)
    return made, config


def test_learning_sees_clipped_rewards_and_lost_lives_while_returns_count_whole_games():
    plain, _ = collector(n_step=1)
    plain.reset(seed=0)
    rewards, terminated, finished = [], [], []
    for t in range(40):
        step = plain.step(np.array([0, 2]), t)
        rewards.append(step.transitions[2])
        terminated.append(step.transitions[4])
        finished += [(t, episode) for episode in step.finished]
    rewards, terminated = np.stack(rewards)[:, 0], np.stack(terminated)[:, 0]  # env 0
    end_step, (raw_return, length) = finished[0]  # env 0 and env 1 act alike: env 0's game
    game = slice(0, length)
    assert end_step == length - 1 and 20 < length < 30  # (120 - noops - FIRE's 4) / 4 steps
    # two lives lost and the game over: three terminal transitions in one episode
    assert terminated[game].sum() == 3 and terminated[length - 1]
    # stored: the sign of each step's score (frames 50, 75 and 100 score 4); returned: raw
    assert set(rewards[game].tolist()) == {0.0, 1.0}
    assert raw_return == rewards[game].sum() + 3 * 3


def pending(c):
    """Each env's pending n-step entries: (obs, action, reward) in order."""
    return [[(obs.tobytes(), a, r) for obs, a, r in queue] for queue in c.n_step.pending]


def test_a_resume_right_after_a_lost_life_rebuilds_the_pending_n_step_entries():
    """Two envs, 3-step returns, lost lives terminal for learning: checkpointed mid-episode one
    step after env 0 lost a life, the restored collector holds no n-step entry from before the
    loss (their returns ended there) and goes on emitting what the uninterrupted one emits."""
    running, _ = collector(n_step=3)
    running.reset(seed=3)
    actions = np.random.default_rng(0).integers(0, 4, (60, 2))
    lives_before, t, since_loss = running.lives.copy(), 0, None
    while since_loss != 1:  # step until env 0 lost a life one step ago
        running.step(actions[t], t)
        t += 1
        if since_loss is not None:
            since_loss += 1
        elif running.lives[0] < lives_before[0]:
            since_loss = 0
    assert running.episode_length[0] > 3 and running.episode_length[1] > 0  # both mid-episode
    assert len(running.n_step.pending[0]) == 1  # only the step after the loss is pending
    restored, _ = collector(n_step=3)
    restored.reset(seed=3)
    restored.restore(running.state_meta(), running.state_arrays())
    assert pending(restored) == pending(running)
    np.testing.assert_array_equal(restored.lives, running.lives)
    for step in range(t, t + 12):  # and the transitions that follow are the same
        a, b = running.step(actions[step], step), restored.step(actions[step], step)
        assert (a.transitions is None) == (b.transitions is None)
        for x, y in zip(a.transitions or (), b.transitions or (), strict=True):
            np.testing.assert_array_equal(x, y)


def test_frame_replay_stores_what_the_plain_replay_stores():
    """The same env steps through two collectors: one stores pixel stacks, the other frame ids
    in a small FrameReplay (its frame ring wraps and old transitions drop out); every live
    transition must read back as the same pixels, rewards, flags and discounts."""
    plain, config = collector(n_step=3)
    framed, _ = collector(n_step=3)
    buffer = ReplayBuffer(10_000, (84, 84, 4), np.uint8)
    frames = FrameReplay(60, (84, 84), 4, num_envs=2, n_step=3)
    framed.store_frames_in(frames)
    plain.reset(seed=5)
    framed.reset(seed=5)
    actions = np.random.default_rng(0).integers(0, 4, (150, 2))
    for t, a in enumerate(actions):
        for c, store in ((plain, buffer), (framed, frames)):
            step = c.step(a, t)
            if step.transitions is not None:
                store.add(*step.transitions)
        np.testing.assert_array_equal(framed.obs, plain.obs)
        current = frames.stacks(framed.stack_ids)
        np.testing.assert_array_equal(current, plain.obs)  # the acting stacks, from the ring
    assert frames.frames_written > frames.frame_capacity  # the ring wrapped
    n = len(frames)
    assert 0 < n <= 60
    live = frames.gather((frames._tail() + np.arange(n)) % frames.capacity)
    expected = buffer.gather(np.arange(len(buffer) - n, len(buffer)))
    for a, b in zip(live, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_frame_replay_stacks_by_hand_and_keeps_episodes_apart():
    replay = FrameReplay(4, (1, 1), 2)
    ids = replay.add_frames(np.arange(5, dtype=np.uint8).reshape(5, 1, 1) * 10)  # 0,10,..,40
    np.testing.assert_array_equal(ids, [0, 1, 2, 3, 4])
    # episode A: frames 0,1,2; episode B starts at frame 3 (its first stack repeats it)
    replay.add(np.array([[0, 0], [0, 1], [3, 3]]), np.array([1, 2, 3]), np.array([1.0, 2, 3]),
               np.array([[0, 1], [1, 2], [3, 4]]), np.array([False, True, False]),
               np.array([False, False, False]), 0.9)  # fmt: skip
    batch = replay.gather(np.array([1, 2]))
    np.testing.assert_array_equal(batch.obs[..., 0, 0, :], [[0, 10], [30, 30]])
    np.testing.assert_array_equal(batch.next_obs[..., 0, 0, :], [[10, 20], [30, 40]])
    np.testing.assert_array_equal(batch.scalars[:, :3], [[2, 2, 1], [3, 3, 0]])


def test_frame_replay_drops_transitions_whose_frames_are_overwritten():
    replay = FrameReplay(4, (1, 1), 2)  # margin 2·1·(1+2) = 6, frame ring 4 + 0 + 12 = 16
    assert (replay.margin, replay.frame_capacity) == (6, 16)
    replay.add_frames(np.zeros((2, 1, 1), np.uint8))
    replay.add(np.array([[0, 0]]), np.array([0]), np.array([0.0]), np.array([[0, 1]]),
               np.array([False]), np.array([False]), 0.9)  # fmt: skip
    replay.add_frames(np.zeros((9, 1, 1), np.uint8))  # 11 written: frame 0 < 11 - 16 + 6
    assert len(replay) == 0
    with pytest.raises(ValueError, match="no longer holds"):
        replay.add_frames(np.zeros((10, 1, 1), np.uint8))  # frame 0 is gone: 21 - 16 = 5
        replay.add(np.array([[0, 0]]), np.array([0]), np.array([0.0]), np.array([[0, 1]]),
                   np.array([False]), np.array([False]), 0.9)  # fmt: skip


def test_the_memory_check_counts_what_the_frame_replay_allocates():
    from deepq.dqn.frame_replay import planned_nbytes

    replay = FrameReplay(1000, (84, 84), 4, num_envs=2, n_step=3)
    assert replay.nbytes == planned_nbytes(1000, (84, 84), 4, 2, 3, np.uint8)
    # 1M transitions: 1M + 1/64 frames of 7,056 bytes, 84 bytes of ids and scalars each
    assert planned_nbytes(1_000_000, (84, 84), 4, 1, 1, np.uint8) == 7_250_391_120


def test_frame_replay_state_round_trips_and_refuses_ids_outside_the_ring():
    replay = FrameReplay(8, (2, 2), 2)
    ids = replay.add_frames(np.arange(24, dtype=np.uint8).reshape(6, 2, 2))
    replay.add(np.stack([ids[:2], ids[1:3]]), np.array([0, 1]), np.array([1.0, 2.0]),
               np.stack([ids[1:3], ids[2:4]]), np.array([False, True]),
               np.array([False, False]), 0.5)  # fmt: skip
    state = replay.state_arrays()
    again = FrameReplay(8, (2, 2), 2)
    again.load_state_arrays(state, n_actions=2)
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    for a, b in zip(replay.sample(rng_a, 2), again.sample(rng_b, 2), strict=True):
        np.testing.assert_array_equal(a, b)
    bad = dict(state, obs_ids=state["obs_ids"] + 100)
    with pytest.raises(ValueError, match="does not hold"):
        FrameReplay(8, (2, 2), 2).load_state_arrays(bad)
    near_overflow = dict(state, frames_written=np.array(2**63 - 1, np.int64))  # ids + 1 overflow
    with pytest.raises(ValueError, match=r"frames_written must be one int64 in \[0, "):
        FrameReplay(8, (2, 2), 2).load_state_arrays(near_overflow)
    with pytest.raises(ValueError, match="unknown array replay/extra"):
        FrameReplay(8, (2, 2), 2).load_state_arrays(dict(state, extra=np.zeros(1)))
    with pytest.raises(ValueError, match="actions"):
        FrameReplay(8, (2, 2), 2).load_state_arrays(state, n_actions=1)


def test_the_breakout_and_pong_presets_are_the_chapters_agent():
    for name, env_id in (("breakout", "ALE/Breakout-v5"), ("pong", "ALE/Pong-v5")):
        c = resolve_config(name)
        assert c.env_id == env_id
        # --env picks the Adam variant, which learns Breakout several times faster
        assert resolve_config(env_id=env_id) == resolve_config(f"{name}-adam")
        assert (c.optimizer, c.learning_rate, c.rmsprop_decay, c.rmsprop_momentum) == (
            "rmsprop", 2.5e-4, 0.95, 0.0)  # fmt: skip
        assert (c.optimizer_eps, c.rmsprop_eps_in_sqrt, c.rmsprop_centered) == (1e-5, True, True)
        assert (c.loss, c.gamma, c.batch_size, c.train_every, c.hidden_sizes) == (
            "huber", 0.99, 64, 4, (512,))  # fmt: skip
        # 2,000 training steps = 8,000 agent steps; epsilon over 1M frames = 250k agent steps
        assert (c.target_update_every, c.epsilon_end, c.epsilon_decay_steps) == (
            8000,
            0.01,
            250_000,
        )
        assert (c.random_steps, c.buffer_size, c.sticky_actions) == (20_000, 1_000_000, False)


@pytest.mark.parametrize("game", ["breakout", "pong"])
def test_the_adam_presets_are_the_chapters_agent_with_dopamines_jax_optimiser(game):
    chapter, adam = resolve_config(game), resolve_config(f"{game}-adam")
    assert (adam.optimizer, adam.learning_rate, adam.optimizer_eps) == ("adam", 6.25e-5, 1.5e-4)
    assert (adam.loss, adam.batch_size) == ("mse", 32)
    learner_keys = {"optimizer", "learning_rate", "optimizer_eps", "loss", "batch_size"}
    learner_keys |= {key for key in chapter.to_dict() if key.startswith(("rmsprop_", "huber_"))}
    differ = {k for k, v in chapter.to_dict().items() if adam.to_dict()[k] != v}
    assert differ <= learner_keys  # the env, the network, replay and schedules stay the chapter's


BREAKOUT = {"total_steps": 600, "buffer_size": 2000, "learning_starts": 200,
            "random_steps": 200, "batch_size": 8, "train_every": 8, "target_update_every": 100,
            "epsilon_decay_steps": 400, "eval_every": 300, "eval_episodes": 1,
            "final_eval_episodes": 1, "max_episode_steps": 250,
            "checkpoint_every_episodes": 1, "keep_checkpoints": 0}  # fmt: skip


@pytest.mark.slow
def test_breakout_through_the_real_ale_checkpoints_resumes_exactly_and_evaluates(tmp_path):
    config = resolve_config("breakout", overrides=BREAKOUT)
    whole = tmp_path / "whole"
    result = train(config, whole, show_progress=False, tensorboard=False)
    arrays, meta = load_checkpoint(whole / "checkpoints" / "final")
    assert arrays["replay/frames"].shape[1:] == (84, 84) and "replay/obs" not in arrays
    assert meta["obs_shape"] == [84, 84, 4] and result.summary["final_eval"]["episodes"] == 1
    steps = len(list((whole / "checkpoints").glob("step-*")))
    copy = rewound_copy(whole, tmp_path / "resumed", which=steps // 2)
    resume(copy, show_progress=False, tensorboard=False)
    assert_same_run(whole, copy)
    frames, _ = rollout_frames(load(whole), episodes=1, seed=0)  # what deepq video writes
    screen = frames[0]
    assert screen.shape == (210, 160, 3)  # the game's RGB screen, not the agent's 84x84 frames
    assert (screen[..., 0] != screen[..., 2]).any()


FAKE_RUN = {"env_id": FAKE, "total_steps": 160, "hidden_sizes": [16], "buffer_size": 400,
            "learning_starts": 48, "batch_size": 8, "train_every": 8, "target_update": "hard",
            "target_update_every": 40, "epsilon_decay_steps": 100, "eval_every": None,
            "final_eval_episodes": 0, "checkpoint_every_episodes": 1, "keep_checkpoints": 0,
            "life_loss_terminal": True, "clip_rewards": True, "n_step": 2}  # fmt: skip


def test_without_a_saved_replay_a_frames_run_resumes_from_an_empty_buffer(tmp_path):
    whole = tmp_path / "whole"
    train(dict(FAKE_RUN, save_replay=False), whole, show_progress=False, tensorboard=False)
    arrays, _ = load_checkpoint(whole / "checkpoints" / "final")
    assert (
        not any(k.startswith("replay/") for k in arrays) and "envs/episode_frame_ids" not in arrays
    )
    copy = rewound_copy(whole, tmp_path / "resumed", which=1)
    result = resume(copy, show_progress=False, tensorboard=False)
    assert result.summary["env_steps"] == 160


def test_a_resume_refuses_frame_ids_that_do_not_match_the_replayed_screens(tmp_path):
    from tampering import edit_arrays

    from deepq.errors import CheckpointError

    whole = tmp_path / "whole"
    train(FAKE_RUN, whole, show_progress=False, tensorboard=False)
    copy = rewound_copy(whole, tmp_path / "tampered", which=1)

    def shift(arrays):  # every id one frame later: frames the replayed episode never showed
        arrays["envs/episode_frame_ids"] = arrays["envs/episode_frame_ids"] - 1

    edit_arrays(copy / "checkpoints" / "latest", shift)
    with pytest.raises(CheckpointError, match="frames"):
        resume(copy, show_progress=False, tensorboard=False)


def test_a_prioritized_frames_run_resumes_exactly(tmp_path):
    """Priorities over the frame replay, with n-step returns and lost lives, through a resume."""
    whole = tmp_path / "whole"
    train(dict(FAKE_RUN, prioritized=True), whole, show_progress=False, tensorboard=False)
    assert "replay/priority/priorities" in load_checkpoint(whole / "checkpoints" / "final")[0]
    copy = rewound_copy(whole, tmp_path / "resumed", which=2)
    resume(copy, show_progress=False, tensorboard=False)
    assert_same_run(whole, copy)
