"""What an environment is, before anything trains on it: ``deepq env`` and ``deepq envs``.

Any Gymnasium env can be described, whatever its spaces (discrete observations, Box actions,
images): only training refuses what its algorithm cannot handle. ``deepq envs`` is the Hands-On ML
chapter's ``gym.envs.registry.all()`` with each env's spaces and the deepq algorithms that train
on them; ``deepq env ID --frame out.png`` saves the ``env.render()`` image the documents show.
"""

from __future__ import annotations

import fnmatch
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from deepq.errors import UsageError
from deepq.run.atari import stacked_frames
from deepq.run.envs import (
    NAMESPACE_PACKAGES,
    displayable_frame,
    ensure_registered,
    first_line,
    is_frame,
    make_env,
    register_deepq_envs,
    space_names,
)
from deepq.run.files import replacing, require_suffix

# Spaces of at most this many values are listed one value per line.
MAX_LISTED = 32


def space_summary(space: gym.Space) -> str:
    """One line: ``Discrete(4)``, ``Box(8,) float32``, ``Box(1,) float32 in [-2, 2]``, ..."""
    if isinstance(space, gym.spaces.Discrete):
        return (
            f"Discrete({space.n})"
            if space.start == 0
            else f"Discrete({space.n}, start={space.start})"
        )
    if isinstance(space, gym.spaces.Box):
        text = f"Box{space.shape} {space.dtype}"
        low, high = np.min(space.low), np.max(space.high)
        if np.isfinite(low) and np.isfinite(high):
            text += f" in [{low:.4g}, {high:.4g}]"
        return text
    return str(space)


def trainable_by(observation_space: gym.Space, action_space: gym.Space) -> list[str]:
    """The deepq algorithms that train on these spaces (what ``deepq train --algo`` accepts)."""
    if not isinstance(action_space, gym.spaces.Discrete):
        return []
    if isinstance(observation_space, gym.spaces.Discrete):
        return ["q-learning"]
    if isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 1:
        return ["dqn", "reinforce"]
    if isinstance(observation_space, gym.spaces.Box) and is_frame(observation_space):
        return ["dqn"]
    return []


def describe_space(space: gym.Space, names: list[str] | None = None) -> list[str]:
    """The lines that describe ``space``: its summary, then each value when there are few
    (a Discrete space's values only when they have names: unnamed, they say nothing more)."""
    lines = [space_summary(space)]
    if isinstance(space, gym.spaces.Discrete) and names:
        lines += [f"  {space.start + k} = {name}" for k, name in enumerate(names)]
    elif _is_vector(space) and space.shape[0] <= MAX_LISTED:
        for i in range(space.shape[0]):
            name = f"{names[i]:<24} " if names else ""
            lines.append(f"  [{i}] {name}in [{space.low[i]:.3g}, {space.high[i]:.3g}]")
    elif isinstance(space, gym.spaces.Box) and len(space.shape) >= 2:
        lines.append(f"  an image: {' x '.join(map(str, space.shape))} values")
    return lines


def describe_env(env_id: str, action: int | None = None, seed: int = 0) -> str:
    """The env's limits and spaces (named where deepq knows the names), the algorithms that train
    on it, and one step from ``reset(seed=seed)``: with ``action`` (Discrete action spaces,
    default the first), or else with an action sampled from the action space, seeded too."""
    env = make_env(env_id, spaces="any")
    try:
        obs_space, action_space = env.observation_space, env.action_space
        discrete = isinstance(action_space, gym.spaces.Discrete)
        if action is not None and not discrete:
            raise UsageError(f"--action is for Discrete action spaces; {env_id} has {action_space}")
        if (
            discrete
            and action is not None
            and not 0 <= action - action_space.start < action_space.n
        ):
            last = action_space.start + action_space.n - 1
            raise UsageError(
                f"--action {action} must be in [{action_space.start}, {last}] for {env_id}"
            )
        state_names, action_names = _known_names(env_id, obs_space, action_space)
        if action is None:
            action_space.seed(seed)
            action = int(action_space.start) if discrete else action_space.sample()
        spec = env.spec
        algos = trainable_by(obs_space, action_space)
        lines = [
            env_id,
            f"  max episode steps: {spec.max_episode_steps if spec else None}",
            f"  reward threshold:  {spec.reward_threshold if spec else None}",
            f"  deepq trains it with: {', '.join(algos) if algos else 'none of its algorithms'}",
            "observation space: " + "\n".join(describe_space(obs_space, state_names)),
            "action space: " + "\n".join(describe_space(action_space, action_names)),
        ]
        state, _ = env.reset(seed=seed)
        next_state, reward, terminated, truncated, _ = env.step(action)
    finally:
        env.close()
    shown_action = f"{action}"
    if discrete and action_names:
        shown_action += f" ({action_names[int(action) - int(action_space.start)]})"
    rows = [
        ("Initial state", _short(state)),
        ("Action", shown_action),
        ("Next state", _short(next_state)),
        ("Reward", f"{float(reward):.3f}"),
        ("Terminated", f"{bool(terminated)}"),
        ("Truncated", f"{bool(truncated)}"),
    ]
    width = max(len(label) for label, _ in rows)
    lines.append(f"one step (reset seed {seed}):")
    lines += [f"  {label:<{width}}  {value}" for label, value in rows]
    return "\n".join(lines)


def _known_names(
    env_id: str, obs_space: gym.Space, action_space: gym.Space
) -> tuple[list[str] | None, list[str] | None]:
    """The names deepq knows for the env's state variables and actions (None where it has none:
    the generic ``obs[i]`` and ``action k`` would only repeat the index)."""
    obs_dim = obs_space.shape[0] if _is_vector(obs_space) else 0
    if isinstance(action_space, gym.spaces.Discrete):
        action_values = int(action_space.n)
    else:
        action_values = action_space.shape[0] if _is_vector(action_space) else 0
    states, actions = space_names(env_id, obs_dim, action_values)
    known_states = [name for name in states if not name.startswith("obs[")]
    known_actions = [name for name in actions if not name.startswith("action ")]
    return (states if known_states else None), (known_actions or None)


def _is_vector(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 1


def _short(value: Any) -> str:
    """An observation as one line: values for a vector, shape and range for an image."""
    array = np.asarray(value)
    if array.ndim >= 2:
        return f"array{array.shape} {array.dtype} in [{array.min():.4g}, {array.max():.4g}]"
    with np.printoptions(formatter={"float": "{:.3f}".format}, linewidth=200):
        return f"{array}"


def save_frame(env_id: str, out: str | Path, seed: int = 0) -> tuple[Path, tuple[int, ...]]:
    """Save the env's first rendered frame after ``reset(seed=seed)`` (its ``env.render()``
    image) as a PNG; return the path and the image's shape. For Atari the image is the game's
    screen and, beside it, the newest preprocessed 84×84 frame the agent sees."""
    from PIL import Image

    require_suffix(out, (".png",), "--frame")
    env = make_env(env_id, spaces="any", render_mode="rgb_array")
    modes = env.metadata.get("render_modes", [])
    try:
        with warnings.catch_warnings():  # Gymnasium's checker on renders that are not uint8
            warnings.simplefilter("ignore")
            obs, _ = env.reset(seed=seed)
            frame = env.render()
    finally:
        env.close()
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise UsageError(f"{env_id} renders no RGB image (its render modes: {modes or 'none'})")
    image = displayable_frame(frame)
    if stacked_frames(env_id) > 1:
        image = side_by_side(image, np.asarray(obs)[..., -1])
    out = Path(out)
    with replacing(out) as temporary:
        Image.fromarray(np.ascontiguousarray(image)).save(temporary, format="PNG")
    return out, image.shape


def side_by_side(screen: np.ndarray, seen: np.ndarray, gap: int = 8) -> np.ndarray:
    """The RGB ``screen`` and the gray frame the agent sees, enlarged by a whole factor to about
    the screen's height, on one black canvas."""
    factor = max(1, screen.shape[0] // seen.shape[0])
    seen = np.repeat(seen.repeat(factor, axis=0).repeat(factor, axis=1)[..., None], 3, axis=-1)
    height = max(screen.shape[0], seen.shape[0])
    canvas = np.zeros((height, screen.shape[1] + gap + seen.shape[1], 3), np.uint8)
    canvas[: screen.shape[0], : screen.shape[1]] = screen
    canvas[: seen.shape[0], screen.shape[1] + gap :] = seen
    return canvas


@dataclass(frozen=True)
class EnvEntry:
    """One registered env: its spaces and who trains on it, or why it cannot be made here."""

    env_id: str
    observation: str = ""
    action: str = ""
    trains_with: tuple[str, ...] = ()
    unavailable: str = ""


def registered_envs(pattern: str | None = None) -> list[EnvEntry]:
    """Every registered env whose id matches ``pattern`` (a glob such as ``*Lander*``, or a
    case-insensitive substring), each made once to read its spaces. Envs registered by an
    installed allow-listed package (ALE, MinAtar) are included."""
    register_deepq_envs()
    for namespace in NAMESPACE_PACKAGES:
        try:
            ensure_registered(f"{namespace}/probe")
        except UsageError:
            pass  # the package is not installed: its envs are not registered
    entries = []
    for env_id in sorted(gym.registry):
        if pattern and not _matches(env_id, pattern):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                env = gym.make(env_id)
        except Exception as exc:  # noqa: BLE001 - any env's failure is listed, never raised
            entries.append(EnvEntry(env_id, unavailable=first_line(exc, limit=100)))
            continue
        try:
            obs_space, action_space = env.observation_space, env.action_space
            entries.append(EnvEntry(env_id, space_summary(obs_space), space_summary(action_space),
                                    tuple(trainable_by(obs_space, action_space))))  # fmt: skip
        finally:
            env.close()
    return entries


def _matches(env_id: str, pattern: str) -> bool:
    if any(char in pattern for char in "*?["):
        return fnmatch.fnmatch(env_id.lower(), pattern.lower())
    return pattern.lower() in env_id.lower()
