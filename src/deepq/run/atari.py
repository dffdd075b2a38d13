"""Atari as the Hands-On ML RL chapter sets it up (after Mnih et al. 2015 / Machado et al. 2018).

An ``ALE/...`` id always comes preprocessed, for training, evaluation, video and play alike:
no-op starts (up to 30), 4 frames per agent step with the last two max-pooled, 84×84 grayscale
(Gymnasium's ``AtariPreprocessing``), FIRE after each reset where the game has it, episodes cut
at 27,000 agent steps (108k frames) and 4 frames stacked, channels last ([84, 84, 4], as
DQN's convolutions read them). Sticky actions are off by default (``NoFrameskip-v4``
semantics, the chapter's); ``sticky_actions`` turns on Machado et al.'s 0.25.

End of life as terminal and reward clipping are *learning* choices, not the env's: the env
reports whole games and raw scores (so returns, evaluations and videos do too), and the DQN
collector applies ``life_loss_terminal`` and ``clip_rewards`` to what it stores.

Gymnasium's wrappers rather than envpool: envpool steps Breakout 2x faster, but that is ~4% of
the CPU training loop, and its seeds are fixed when the pool is made, where deepq seeds every
episode (exact resume, the same held-out evaluation episodes); measured in docs/pixels.md.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

NOOP_MAX = 30
FRAME_SKIP = 4
SCREEN_SIZE = 84
FRAME_STACK = 4
MAX_AGENT_STEPS = 27_000  # 108k frames: the cut of Machado et al. and the chapter's
STICKY_ACTION_PROBABILITY = 0.25  # Machado et al. 2018
MINATAR_STICKY_PROBABILITY = 0.1  # MinAtar's own default (Young & Tian 2019)


def is_atari(env_id: str) -> bool:
    return env_id.startswith("ALE/")


def is_minatar(env_id: str) -> bool:
    return env_id.startswith("MinAtar/")


def is_pixel_game(env_id: str) -> bool:
    """Atari and MinAtar: the games learned from frames through a CNN, and the games with a
    sticky-action protocol."""
    return is_atari(env_id) or is_minatar(env_id)


def sticky_make_kwargs(env_id: str, sticky_actions: bool | None) -> dict[str, Any]:
    """``gym.make`` arguments for ``sticky_actions`` (null: the game's usual setting)."""
    if is_atari(env_id):
        return ale_make_kwargs(bool(sticky_actions))
    if is_minatar(env_id) and sticky_actions is not None:
        return {"sticky_action_prob": MINATAR_STICKY_PROBABILITY if sticky_actions else 0.0}
    return {}


def stacked_frames(env_id: str) -> int:
    """How many frames an observation of ``env_id`` stacks (1: none); the DQN replay stores a
    stacked observation's frames once each (:class:`~deepq.dqn.frame_replay.FrameReplay`)."""
    return FRAME_STACK if is_atari(env_id) else 1


def ale_make_kwargs(sticky_actions: bool) -> dict[str, Any]:
    """``gym.make`` arguments for the raw ALE env under the preprocessing: one emulator frame per
    step (the preprocessing skips), sticky actions on or off, and no frame cap of ALE's own
    (the 27,000-agent-step cut is a TimeLimit on top, so ``max_episode_steps`` can move it)."""
    return {
        "frameskip": 1,
        "repeat_action_probability": STICKY_ACTION_PROBABILITY if sticky_actions else 0.0,
        "max_num_frames_per_episode": 0,
    }


def preprocess_atari(env: gym.Env, max_episode_steps: int | None = None) -> gym.Env:
    """The chapter's preprocessing around a raw ALE env (one frame per step)."""
    env = gym.wrappers.AtariPreprocessing(
        env,
        noop_max=NOOP_MAX,
        frame_skip=FRAME_SKIP,
        screen_size=SCREEN_SIZE,
        terminal_on_life_loss=False,  # a learning choice: see life_loss_terminal
        grayscale_obs=True,
        scale_obs=False,  # uint8 frames; the network scales by 1/255
    )
    env = FireOnReset(env)
    env = gym.wrappers.TimeLimit(env, max_episode_steps or MAX_AGENT_STEPS)
    env = gym.wrappers.FrameStackObservation(env, FRAME_STACK)  # pads a new episode with its first
    stacked = env.observation_space
    channels_last = gym.spaces.Box(
        low=np.moveaxis(stacked.low, 0, -1), high=np.moveaxis(stacked.high, 0, -1), dtype=np.uint8
    )
    return gym.wrappers.TransformObservation(
        env, lambda obs: np.moveaxis(np.asarray(obs), 0, -1), channels_last
    )


class FireOnReset(gym.Wrapper):
    """Press FIRE once after every reset in games that wait for it (Breakout serves no ball until
    then), so an episode does not begin with the agent idling; a game that ends on that press
    is reset again. Games without a FIRE action are left alone."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        self.fire = meanings.index("FIRE") if "FIRE" in meanings else None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        if self.fire is None:
            return obs, info
        obs, _, terminated, truncated, info = self.env.step(self.fire)
        if terminated or truncated:
            obs, info = self.env.reset(options=options)
        return obs, info


def life_lost(lives_before: np.ndarray, infos: dict[str, Any], done: np.ndarray) -> np.ndarray:
    """Which sub-envs of a vector env lost a life in this step: fewer ``lives`` than before, read
    from the final step's info where an episode ended (the reset's info is there otherwise)."""
    lives_now = np.asarray(infos["lives"]).copy()
    final = infos.get("final_info", {})
    for i in np.flatnonzero(done):
        if "lives" in final:
            lives_now[i] = final["lives"][i]
    return lives_now < lives_before
