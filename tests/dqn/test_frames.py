"""DQN from frames: the CNN encoder picked from the observation space, uint8 pixels kept as bytes
in replay, checkpoints that say the frames' shape, and a resume that is still bit for bit."""

import numpy as np
import pytest
from helpers import rewound_copy
from test_resume import assert_same_run

from deepq.api import evaluate, load
from deepq.dqn.loop import resume, train
from deepq.run.checkpoint import load_checkpoint

FRAMES = {
    "env_id": "deepq-test/BrightSide-v0",  # 8×8 uint8 frames, 10-step episodes (conftest)
    "total_steps": 4000,
    "hidden_sizes": [32],
    "learning_starts": 200,
    "batch_size": 32,
    "train_every": 1,
    "target_update": "hard",
    "target_update_every": 100,
    "epsilon_schedule": "linear",
    "epsilon_decay_steps": 1500,
    "eval_every": 2000,
    "eval_episodes": 5,
    "final_eval_episodes": 20,
    "checkpoint_every_episodes": 100,
    "keep_checkpoints": 0,
}


@pytest.fixture(scope="module")
def frames_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("frames") / "run"
    return train(FRAMES, run_dir, show_progress=False, tensorboard=False)


def test_dqn_learns_to_read_the_frame(frames_run):
    # A blind agent scores 5 of 10 on average; reading the white pixel's half scores 10.
    assert frames_run.summary["final_eval"]["mean"] >= 8.5


def test_replay_keeps_bytes_and_checkpoints_say_the_frames_shape(frames_run):
    arrays, meta = load_checkpoint(frames_run.run_dir / "checkpoints" / "final")
    assert arrays["replay/obs"].dtype == np.uint8 and arrays["replay/obs"].shape[1:] == (8, 8, 1)
    assert (meta["obs_dim"], meta["obs_shape"], meta["obs_dtype"]) == (64, [8, 8, 1], "uint8")
    assert "params['params']['conv_0']['kernel']" in arrays  # the small CNN: 16 filters 3×3
    assert arrays["params['params']['conv_0']['kernel']"].shape == (3, 3, 1, 16)


def test_a_loaded_frames_agent_acts_and_evaluates(frames_run):
    agent = load(frames_run.run_dir)
    assert agent.obs_shape == (8, 8, 1) and agent.obs_dtype == "uint8"
    frame = np.zeros((8, 8, 1), np.uint8)
    frame[3, 6] = 255  # right half
    assert agent.act(frame) == 1
    assert evaluate(agent, episodes=5).mean >= 8


def test_a_resumed_frames_run_equals_the_uninterrupted_one(frames_run, tmp_path):
    """The run as it was at its first periodic checkpoint (episode 100 of 400), resumed."""
    copy = rewound_copy(frames_run.run_dir, tmp_path / "resumed")
    assert load_checkpoint(copy / "checkpoints" / "latest")[1]["progress"]["episodes"] == 100
    resume(copy, show_progress=False, tensorboard=False)
    assert_same_run(frames_run.run_dir, copy)
