"""Tiny deterministic environments for behaviour tests, registered with Gymnasium."""

from __future__ import annotations

import os
import tempfile

import gymnasium as gym
import numpy as np
import pytest

# Tests (and the deepq subprocesses they start) share one compilation cache of their own,
# never the user's ~/.cache/deepq.
os.environ["DEEPQ_COMPILATION_CACHE"] = tempfile.mkdtemp(prefix="deepq-test-xla-")


class ConstantRewardEnv(gym.Env):
    """Infinite horizon: one observation, reward 1 every step, never terminates.

    Under a TimeLimit the only way an episode ends is truncation, so a learner that bootstraps
    through truncation converges to Q = 1 / (1 - γ); one that treats it as terminal does not.
    """

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(1, np.float32), {}

    def step(self, action):
        return np.ones(1, np.float32), 1.0, False, False, {}


class CountingEnv(gym.Env):
    """Observation = steps taken so far; terminates after 3 steps; reward = the new count."""

    observation_space = gym.spaces.Box(0.0, 10.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.full(1, self.t, np.float32), float(self.t), self.t >= 3, False, {}


class NaNRewardEnv(CountingEnv):
    """Returns a NaN reward on its second step."""

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, float("nan") if self.t == 2 else reward, terminated, truncated, info


class BrightSideEnv(gym.Env):
    """Frames: an 8×8 uint8 image, black but for one white pixel in its left or right half.
    Action 0 (left) or 1 (right) earns 1 when it names the pixel's half, else 0; 10 steps an
    episode, so a greedy agent that reads the frame scores 10 and a blind one 5 on average."""

    observation_space = gym.spaces.Box(0, 255, (8, 8, 1), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._draw(), {}

    def _draw(self):
        self.row, self.col = self.np_random.integers(0, 8, size=2)
        frame = np.zeros((8, 8, 1), np.uint8)
        frame[self.row, self.col] = 255
        return frame

    def step(self, action):
        reward = float(int(action) == int(self.col >= 4))
        self.t += 1
        return self._draw(), reward, self.t >= 10, False, {}


for env_id, entry_point, limit in (
    ("deepq-test/BrightSide-v0", BrightSideEnv, 100),
    ("deepq-test/ConstantReward-v0", ConstantRewardEnv, 10),
    ("deepq-test/Counting-v0", CountingEnv, 100),
    ("deepq-test/NaNReward-v0", NaNRewardEnv, 100),
):
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=entry_point, max_episode_steps=limit)


@pytest.fixture(autouse=True)
def _quiet_sdl(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
