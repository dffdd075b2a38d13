"""``deepq video`` and ``deepq play``: rollouts of an agent rendered to MP4 or GIF with no
display needed, or shown in a window where there is one. Greedy, or ε-greedy with the agent's
``eval_epsilon`` (the Atari presets': a greedy Breakout agent may never serve the ball again)
or an explicit ``epsilon``; episode k's random actions are those its evaluation would draw.

Frames come from the env's ``rgb_array`` renderer; the episode number and its running return are
drawn onto each frame with Pillow. MP4 is encoded by the ffmpeg binary that the imageio-ffmpeg
wheel ships, GIF by Pillow.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepq.errors import UsageError
from deepq.run.envs import displayable_frame
from deepq.run.evaluation import agent_eval_epsilon, epsilon_greedy, exploration
from deepq.run.files import require_suffix, writing

VIDEO_SUFFIXES = (".mp4", ".gif")
VIDEO_FPS = 30


def rollout_frames(
    agent: Any,
    episodes: int,
    seed: int,
    max_frames: int | None = None,
    epsilon: float | None = None,
) -> tuple[list[np.ndarray], list[float]]:
    """Frames [H, W, 3] of ``episodes`` episodes (episode k reset with seed + k) acted with
    ``epsilon`` (None: the agent's own): the first frame and one after every step; and each whole
    episode's return. With ``max_frames`` the rollout stops there, mid-episode if need be (an
    episode cut short has no return listed)."""
    epsilon = agent_eval_epsilon(agent) if epsilon is None else epsilon
    frames: list[np.ndarray] = []
    returns: list[float] = []
    env = agent.make_env(render_mode="rgb_array")
    with contextlib.closing(env), warnings.catch_warnings():
        # Gymnasium's checker warns once of renders that are not uint8 (MinAtar's are floats)
        warnings.simplefilter("ignore", UserWarning)
        for k in range(episodes):
            obs, _ = env.reset(seed=seed + k)
            rng = exploration(seed + k, epsilon)
            episode_return, done = 0.0, False
            frames.append(annotate(env.render(), k + 1, episode_return))
            while not done and (max_frames is None or len(frames) < max_frames):
                action = epsilon_greedy(agent.act(obs), rng, epsilon, env)
                obs, reward, terminated, truncated, _ = env.step(action)
                episode_return += float(reward)
                done = terminated or truncated
                frames.append(annotate(env.render(), k + 1, episode_return))
            if not done:
                break
            returns.append(episode_return)
    return frames, returns


def annotate(frame: np.ndarray, episode: int, episode_return: float) -> np.ndarray:
    """The frame (made displayable: bytes, enlarged when tiny) with 'episode N  return R' written
    in its top-left corner."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(displayable_frame(frame))
    draw = ImageDraw.Draw(image)
    text = f"episode {episode}  return {episode_return:8.2f}"
    draw.rectangle((4, 4, 12 + 7 * len(text), 22), fill=(0, 0, 0))
    draw.text((8, 8), text, fill=(255, 255, 255))
    return np.asarray(image)


def write_video(frames: list[np.ndarray], out: Path, fps: int) -> Path:
    """Encode ``frames`` to ``out`` (.mp4 with H.264, or .gif)."""
    require_suffix(out, VIDEO_SUFFIXES)
    with writing(out):
        _encode(frames, out, fps)
    return out


def _encode(frames: list[np.ndarray], out: Path, fps: int) -> None:
    import imageio.v2 as imageio

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".gif":
        imageio.mimsave(out, frames, duration=1000 / fps, loop=0)
    else:
        # macro_block_size=1: keep the env's frame size (x264 needs only even sides, which
        # Gymnasium's renderers give) instead of resizing to multiples of 16. JAX warns on any
        # fork; starting ffmpeg forks and at once execs, which is safe.
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning
            )
            with imageio.get_writer(
                out, fps=fps, codec="libx264", macro_block_size=1, quality=7
            ) as writer:
                for frame in frames:
                    writer.append_data(frame)


def record_video(
    agent: Any,
    out: str | Path,
    episodes: int = 1,
    seed: int = 0,
    fps: int = VIDEO_FPS,
    max_frames: int | None = None,
    epsilon: float | None = None,
) -> tuple[Path, list[float]]:
    """Render ``episodes`` episodes of ``agent`` into ``out`` (at most ``max_frames`` frames),
    acted with ``epsilon`` (None: the agent's own); return the path and the returns."""
    if episodes < 1:
        raise UsageError(f"--episodes {episodes} must be >= 1")
    if fps < 1:
        raise UsageError(f"--fps {fps} must be >= 1")
    out = Path(out)
    require_suffix(out, VIDEO_SUFFIXES)
    frames, returns = rollout_frames(agent, episodes, seed, max_frames, epsilon)
    return write_video(frames, out, fps), returns


def has_display() -> bool:
    """Whether a window can be opened: always on macOS and Windows; on other systems only with an
    X11 or Wayland display named in the environment."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@dataclass
class PlayResult:
    returns: list[float]
    video: Path | None  # where the episodes were written when no window could be opened
    reason: str = ""  # why there was no window


def play(
    agent: Any,
    episodes: int = 3,
    seed: int = 0,
    out: str | Path = "play.mp4",
    window: bool | None = None,
    epsilon: float | None = None,
) -> PlayResult:
    """Watch ``episodes`` episodes in a window (render_mode "human") when a display exists;
    otherwise, or when the window cannot open, write them to the video ``out`` instead.
    ``window=False`` always writes the video. Acted with ``epsilon`` (None: the agent's own)."""
    epsilon = agent_eval_epsilon(agent) if epsilon is None else epsilon
    if episodes < 1:
        raise UsageError(f"--episodes {episodes} must be >= 1")
    if window is None:
        window = has_display()
    reason = "" if window else "no display found"
    if window:
        try:
            return PlayResult(_play_in_window(agent, episodes, seed, epsilon), None)
        except Exception as exc:  # pygame cannot open a window on this display
            reason = f"no window could be opened ({exc})"
    written, returns = record_video(agent, out, episodes, seed, epsilon=epsilon)
    return PlayResult(returns, written, reason)


def _play_in_window(agent: Any, episodes: int, seed: int, epsilon: float) -> list[float]:
    env = agent.make_env(render_mode="human")
    returns = []
    try:
        for k in range(episodes):
            obs, _ = env.reset(seed=seed + k)  # the first reset opens the window
            if k == 0:
                _check_window_opened()
            rng = exploration(seed + k, epsilon)
            episode_return, done = 0.0, False
            while not done:
                action = epsilon_greedy(agent.act(obs), rng, epsilon, env)
                obs, reward, terminated, truncated, _ = env.step(action)
                episode_return += float(reward)
                done = terminated or truncated
            returns.append(episode_return)
    finally:
        env.close()
    return returns


def _check_window_opened() -> None:
    """Gymnasium's classic and Box2D envs draw with pygame. Where SDL cannot reach the display
    it quietly falls back to an off-screen driver: playing on would show nothing."""
    pygame = sys.modules.get("pygame")
    if pygame is not None and pygame.display.get_init():
        driver = pygame.display.get_driver()
        if driver in ("offscreen", "dummy"):
            raise RuntimeError(f"SDL found no usable display (video driver {driver!r})")
