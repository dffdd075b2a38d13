"""``deepq video`` and ``deepq play``: rollouts of an agent rendered to MP4 or GIF with no
display needed, or shown in a window where there is one. Greedy, or ε-greedy with the agent's
``eval_epsilon`` (the Atari presets': a greedy Breakout agent may never serve the ball again)
or an explicit ``epsilon``; episode k's random actions are those its evaluation would draw.

Frames come from the env's ``rgb_array`` renderer; the episode number and its running return are
drawn onto each frame with Pillow. MP4 is encoded by the ffmpeg binary that the imageio-ffmpeg
wheel ships, GIF by Pillow; both write a temporary file that replaces the output only when
complete (:func:`~deepq.run.files.replacing`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepq.errors import UsageError
from deepq.run.envs import displayable_frame
from deepq.run.evaluation import agent_eval_epsilon, epsilon_greedy, exploration
from deepq.run.files import replacing, require_suffix

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
    with replacing(out) as temporary:
        _encode(frames, temporary, fps)
    return out


def _encode(frames: list[np.ndarray], out: Path, fps: int) -> None:
    if out.suffix.lower() == ".gif":
        _encode_gif(frames, out, fps)
    else:
        _encode_mp4(frames, out, fps)


def _encode_gif(frames: list[np.ndarray], out: Path, fps: int) -> None:
    """A looping GIF by Pillow (its adaptive palette per frame). Pillow directly, not through
    imageio: imageio's writer saves when it is garbage-collected, so a failed write (a full disk)
    surfaced again there as an "Exception ignored" traceback after deepq's one-line error."""
    from PIL import Image

    images = [Image.fromarray(np.asarray(frame, dtype=np.uint8)) for frame in frames]
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:],
                   duration=1000 / fps, loop=0)  # fmt: skip


# H.264 at constant quality 15 (imageio's quality 7 of 10, what deepq wrote before), in the
# yuv420p pixels every player decodes.
FFMPEG_OUTPUT = ("-an", "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", "15")


def _encode_mp4(frames: list[np.ndarray], out: Path, fps: int) -> None:
    """H.264 by the ffmpeg binary that the imageio-ffmpeg wheel ships, fed raw RGB frames at
    the env's own size (x264 needs even sides, which Gymnasium's renderers give).

    Called here rather than through imageio's writer, which lets ffmpeg print to the terminal
    and never reads its exit status: a full disk gave a truncated video and "wrote clip.mp4".
    Here ffmpeg's messages are kept, and a failure is one OSError with its last line."""
    import imageio_ffmpeg

    height, width = frames[0].shape[:2]
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo",
               "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
               *FFMPEG_OUTPUT, str(out)]  # fmt: skip
    with tempfile.TemporaryFile() as messages, warnings.catch_warnings():
        # JAX warns on any fork; starting ffmpeg forks and at once execs, which is safe
        warnings.filterwarnings(
            "ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning
        )
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=messages)  # fmt: skip
        try:
            for frame in frames:
                process.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
            process.stdin.close()
        except BrokenPipeError:  # ffmpeg stopped early: its exit status and message say why
            pass
        finally:
            returncode = process.wait()
        if returncode != 0:
            messages.seek(0)
            lines = messages.read().decode(errors="replace").strip().splitlines()
            why = lines[-1] if lines else f"exit status {returncode}"
            if returncode < 0:  # killed: e.g. SIGXFSZ, "File size limit exceeded"
                why = signal.strsignal(-returncode) or f"signal {-returncode}"
            raise OSError(f"ffmpeg failed ({why})")


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
