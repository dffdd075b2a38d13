"""Making and describing environments: one place for every algorithm and command.

DQN trains on a Gymnasium sync vector env in ``SAME_STEP`` autoreset mode: when a sub-env's
episode ends, ``step`` returns the *reset* observation and puts the true final observation in
``info["final_obs"]``; :func:`final_observations` swaps it back so the replay buffer stores
(s, a, r, s_final) and never (s, a, r, s_reset).
"""

from __future__ import annotations

import importlib
import os
import re
import warnings
from collections.abc import Callable
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from deepq.errors import CheckpointError, DeepQError, UsageError
from deepq.run.atari import is_atari, preprocess_atari, sticky_make_kwargs
from deepq.run.config import require_env_id

# Names for the environments the source documents explain. LunarLander's actions as the
# LunarLander lab names them, with Gymnasium's names (its docs) beside: the two name the side
# engines from opposite points of view.
LUNAR_LANDER_ACTIONS = (
    "do nothing",
    "fire right engine (Gymnasium: fire left orientation engine)",
    "fire main engine",
    "fire left engine (Gymnasium: fire right orientation engine)",
)
LUNAR_LANDER_STATE = (
    "x position",
    "y position",
    "x velocity",
    "y velocity",
    "angle",
    "angular velocity",
    "left leg contact",
    "right leg contact",
)
CARTPOLE_ACTIONS = ("push cart left", "push cart right")
CARTPOLE_STATE = ("cart position", "cart velocity", "pole angle", "pole angular velocity")
FROZEN_LAKE_ACTIONS = ("move left", "move down", "move right", "move up")
PENDULUM_STATE = ("cos(angle)", "sin(angle)", "angular velocity")
PENDULUM_ACTIONS = ("torque",)


def register_deepq_envs() -> None:
    """Register deepq's own environments (idempotent): the deterministic FrozenLake (each move
    goes where it is told), the classic first tabular task."""
    if "deepq/FrozenLake-NotSlippery-v1" not in gym.registry:
        gym.register(
            "deepq/FrozenLake-NotSlippery-v1",
            entry_point="gymnasium.envs.toy_text.frozen_lake:FrozenLakeEnv",
            kwargs={"map_name": "4x4", "is_slippery": False},
            max_episode_steps=100,
            reward_threshold=1.0,
        )


# Namespaces whose environments a package registers. Their module names are written here, in
# code: an env id read from a file only ever picks one of these, never a module of its own.
# (namespace: (module to import, distribution to pip install[, its function that registers the
# envs, for a package that does not register them on import]))
NAMESPACE_PACKAGES: dict[str, tuple[str, ...]] = {
    "ALE": ("ale_py", "ale-py"),
    "MinAtar": ("minatar.gym", "MinAtar", "register_envs"),
}


def ensure_registered(env_id: str) -> None:
    """Register what ``env_id`` needs from deepq itself: its own envs, and the package of an
    allow-listed namespace (ALE, MinAtar) when it is installed. An id that names a module to import
    (``module:Env``) is refused by the same rule as a config's env_id, wherever the id came from."""
    require_env_id(env_id)
    register_deepq_envs()
    namespace = env_id.partition("/")[0] if "/" in env_id else None
    package = NAMESPACE_PACKAGES.get(namespace or "")
    if package is not None and not any(key.startswith(f"{namespace}/") for key in gym.registry):
        module, distribution, *registers = package
        try:
            imported = importlib.import_module(module)
            if registers:
                getattr(imported, registers[0])()
            else:
                gym.register_envs(imported)
        except ImportError:
            raise UsageError(
                f"{env_id} needs the {distribution} package: pip install {distribution}"
            ) from None


MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def import_env_modules(modules: list[str]) -> None:
    """Import the modules the user named with ``--env-module`` (each registers its envs): module
    names, never paths; whatever a module raises while it is imported is one UsageError line."""
    for module in modules:
        if not MODULE_NAME.match(module):
            raise UsageError(
                f"--env-module {module[:80]!r} must name a module to import, such as my_envs or "
                "my_package.envs (not a file path)"
            )
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UsageError(f"--env-module {module}: {first_line(exc)}") from None
        except Exception as exc:  # a plugin's own failure, whatever it is
            raise UsageError(
                f"--env-module {module}: importing it raised {type(exc).__name__}: "
                f"{first_line(exc, 200)}"
            ) from None


KNOWN_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "LunarLander": (LUNAR_LANDER_STATE, LUNAR_LANDER_ACTIONS),
    "CartPole": (CARTPOLE_STATE, CARTPOLE_ACTIONS),
    "FrozenLake": ((), FROZEN_LAKE_ACTIONS),
    "Pendulum": (PENDULUM_STATE, PENDULUM_ACTIONS),
}


_DUMMY_SDL_SET_HERE = False


def _choose_sdl_driver(render_mode: str | None) -> None:
    """Off-screen rendering must never need a display, so pygame gets SDL's dummy video driver
    unless the user chose one; a window ("human") needs the real one back."""
    global _DUMMY_SDL_SET_HERE
    if render_mode == "human":
        if _DUMMY_SDL_SET_HERE and os.environ.get("SDL_VIDEODRIVER") == "dummy":
            del os.environ["SDL_VIDEODRIVER"]
            _DUMMY_SDL_SET_HERE = False
    elif "SDL_VIDEODRIVER" not in os.environ:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
        _DUMMY_SDL_SET_HERE = True


def make_env(
    env_id: str,
    max_episode_steps: int | None = None,
    time_feature: bool = False,
    render_mode: str | None = None,
    spaces: Literal["vector", "frames", "tabular", "any"] = "vector",
    sticky_actions: bool | None = None,
) -> gym.Env:
    """``gym.make`` with deepq's wrappers; unknown envs, and spaces other than ``spaces`` asks
    for, raise UsageError. ``vector``: a 1-D Box observation and Discrete actions (REINFORCE);
    ``frames``: the same, or frames [height, width, channels] (DQN); ``tabular``: Discrete
    observations and actions (tabular Q-learning); ``any``: no check (describing an env).
    An ``ALE/`` id comes preprocessed as the Hands-On ML chapter does it (:mod:`deepq.run.atari`;
    ``max_episode_steps`` counts agent steps there). ``sticky_actions``: see DQN's config key."""
    ensure_registered(env_id)
    _choose_sdl_driver(render_mode)
    kwargs: dict[str, Any] = sticky_make_kwargs(env_id, sticky_actions)
    if max_episode_steps is not None and not is_atari(env_id):
        kwargs["max_episode_steps"] = max_episode_steps
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env = EnvErrors(gym.make(env_id, **kwargs), env_id)
            if is_atari(env_id):
                env = preprocess_atari(env, max_episode_steps)
    except gym.error.Error as exc:  # NameNotFound, VersionNotFound, DependencyNotInstalled, ...
        raise UsageError(f"cannot make environment {env_id!r}: {first_line(exc)}") from None
    except DeepQError:
        raise
    except Exception as exc:  # a broken plugin env, whatever it raises
        raise UsageError(f"cannot make environment {env_id!r}: {first_line(exc)}") from None
    if spaces == "tabular":
        if not isinstance(env.observation_space, gym.spaces.Discrete) or not isinstance(
            env.action_space, gym.spaces.Discrete
        ):
            env.close()
            raise UsageError(
                f"{env_id} has {env.observation_space} observations and {env.action_space} "
                "actions; tabular Q-learning needs Discrete states and actions"
            )
    elif spaces in ("vector", "frames"):
        try:
            check_spaces(env_id, env.observation_space, env.action_space, spaces == "frames")
        except UsageError:
            env.close()
            raise
    if env_id.partition("/")[0] in SEEDS_BELOW_2_TO_32:
        env = Uint32Seeds(env)
    if time_feature:
        if len(env.observation_space.shape) != 1:
            env.close()
            raise UsageError(f"time_feature appends to vector observations, not {env_id}'s frames")
        if env.spec is None or env.spec.max_episode_steps is None:
            env.close()
            raise UsageError(
                f"time_feature needs a step limit, and {env_id} has none: set max_episode_steps"
            )
        env = gym.wrappers.TimeAwareObservation(env, flatten=True, normalize_time=True)
    return env


def make_agent_env(
    obs_shape: int | tuple[int, ...],
    n_actions: int,
    env_id: str,
    max_episode_steps: int | None = None,
    time_feature: bool = False,
    render_mode: str | None = None,
    sticky_actions: bool | None = None,
    obs_dtype: str = "float32",
) -> gym.Env:
    """The env of a loaded agent, refused when its spaces are not the ones the checkpoint says
    the agent was trained on (a tampered or mismatched shape, ``n_actions``, env id, or pixels
    against numbers: a network scales uint8 observations by 1/255, so a CartPole agent marked
    uint8, or an Atari agent that is not, would act on observations it never learned from)."""
    shape = (obs_shape,) if isinstance(obs_shape, int) else tuple(obs_shape)
    spaces = "vector" if len(shape) == 1 else "frames"
    env = make_env(env_id, max_episode_steps, time_feature, render_mode, spaces, sticky_actions)
    have = (tuple(env.observation_space.shape), int(env.action_space.n))
    pixels = np.dtype(env.observation_space.dtype) == np.uint8
    if have != (shape, n_actions) or pixels != (np.dtype(obs_dtype) == np.uint8):
        env.close()
        raise CheckpointError(
            f"the checkpoint's agent takes {_kind(obs_dtype)} observations of shape {shape} "
            f"and {n_actions} actions, but {env_id} has {_kind(env.observation_space.dtype)} "
            f"ones of shape {have[0]} and {have[1]}"
        )
    return env


def _kind(dtype: Any) -> str:
    return "uint8 pixel" if np.dtype(dtype) == np.uint8 else "numeric"


class EnvError(DeepQError):
    """An environment's own code raised an exception in reset, step or render."""


class EnvErrors(gym.Wrapper):
    """Whatever the env's own code (Gymnasium's, a game's, a plugin's) raises in ``reset``,
    ``step`` or ``render`` becomes one :class:`EnvError` line naming the env and the call, as
    an env that cannot be made already is; deepq's own errors and Ctrl-C pass through. Right
    around ``gym.make``'s env, so that deepq's wrappers above it keep their tracebacks."""

    def __init__(self, env: gym.Env, env_id: str):
        super().__init__(env)
        self._env_id = env_id

    def reset(self, **kwargs: Any) -> Any:
        return self._guarded("reset", self.env.reset, **kwargs)

    def step(self, action: Any) -> Any:
        return self._guarded("step", self.env.step, action)

    def render(self) -> Any:
        return self._guarded("render", self.env.render)

    def _guarded(self, call: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except DeepQError:
            raise
        except Exception as exc:
            raise EnvError(
                f"{self._env_id} raised {type(exc).__name__} in {call}(): {first_line(exc, 200)}"
            ) from None


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception's first line (its type's name if it has none), cut at ``limit`` characters:
    what a one-line error says of a failure inside an env or a plugin."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


def check_spaces(
    env_id: str, observation_space: gym.Space, action_space: gym.Space, frames: bool = False
) -> None:
    """DQN and REINFORCE need a flat Box observation and a Discrete action space; DQN (``frames``)
    also takes frames [height, width, channels]."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise UsageError(
            f"{env_id} has a {type(action_space).__name__} action space; "
            "deepq's DQN and REINFORCE need Discrete actions"
        )
    if isinstance(observation_space, gym.spaces.Discrete):
        raise UsageError(
            f"{env_id} has {observation_space} observations (a table of states): train it with "
            "--algo q-learning; DQN and REINFORCE need a 1-D Box observation"
        )
    if frames and isinstance(observation_space, gym.spaces.Box) and is_frame(observation_space):
        return
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        needs = (
            "a 1-D Box observation or frames [height, width, channels]"
            if frames
            else ("a 1-D Box observation (DQN also takes frames)")
        )
        raise UsageError(
            f"{env_id} has a {observation_space} observation space; this needs {needs}"
        )


def is_frame(space: gym.spaces.Box) -> bool:
    """Frames DQN's convolutions take: [height, width, channels], at least 3×3."""
    return is_frame_shape(tuple(space.shape))


def is_frame_shape(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3 and min(shape[:2]) >= 3 and not looks_channels_first(shape)


def looks_channels_first(shape: tuple[int, ...]) -> bool:
    """A few large planes, [channels, height, width], as Gymnasium's FrameStackObservation
    stacks them ([4, 84, 84]): not a 4×84 frame of 84 channels."""
    return len(shape) == 3 and shape[0] <= 16 < min(shape[1:])


def episode_seed(base_seed: int, episode: int) -> int:
    """The reset seed of an env's ``episode``-th episode (below 2**32, so never an eval seed)."""
    return int(np.random.SeedSequence([base_seed, episode]).generate_state(1, np.uint32)[0])


MIN_DISPLAY_SIDE = 160  # pixels: smaller renders (MinAtar's 10×10) are enlarged to about this


def displayable_frame(frame: np.ndarray) -> np.ndarray:
    """An env's ``rgb_array`` render as uint8 RGB large enough to see and to write on: floats in
    [0, 1] (MinAtar's) scaled to bytes, and small frames enlarged by a whole factor, each pixel
    a block (no smoothing)."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        frame = np.clip(np.rint(frame * 255.0 if frame.max(initial=0) <= 1.0 else frame), 0, 255)
        frame = frame.astype(np.uint8)
    factor = max(1, MIN_DISPLAY_SIDE // max(frame.shape[:2]))
    if factor > 1:
        frame = frame.repeat(factor, axis=0).repeat(factor, axis=1)
    return frame[..., :3]


# Namespaces whose envs seed a legacy numpy RandomState, which takes seeds below 2**32 only
# (deepq's evaluation seeds lie above, apart from every training seed).
SEEDS_BELOW_2_TO_32 = {"MinAtar"}


class Uint32Seeds(gym.Wrapper):
    """Passes ``reset(seed=s)`` on as a 32-bit seed: s itself below 2**32, else a hash of it, so
    that distinct seeds stay distinct (but for 32-bit collisions) and each one repeatable."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        if seed is not None and not 0 <= seed < 2**32:
            seed = int(np.random.SeedSequence(seed).generate_state(1, np.uint32)[0])
        return self.env.reset(seed=seed, options=options)


class SeededEpisodes(gym.Wrapper):
    """Every episode starts from ``reset(seed=episode_seed(base_seed, k))``, autoresets included.

    An episode is then a function of its number and its actions, so a checkpoint taken in the
    middle of one can rebuild the env exactly by resetting and replaying the actions: the
    environment's own state (a Box2D world, say) never has to be serialised.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.base_seed = 0
        self.episode = 0  # episodes started so far

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self.base_seed, self.episode = seed, 0
        self.episode += 1
        return self.env.reset(seed=episode_seed(self.base_seed, self.episode - 1), options=options)

    def restart_episode(self, episode: int) -> tuple[Any, dict[str, Any]]:
        """Reset into the start of episode number ``episode`` (0-based) again."""
        self.episode = episode
        return self.reset()


def make_vector_env(
    env_id: str,
    num_envs: int,
    max_episode_steps: int | None = None,
    time_feature: bool = False,
    spaces: Literal["vector", "frames"] = "vector",
    sticky_actions: bool | None = None,
) -> SyncVectorEnv:
    """``num_envs`` copies stepped in this process, autoreset in the same step, each episode seeded.

    ``reset(seed=s)`` gives sub-env i the base seed s + i.
    """

    def make_one() -> gym.Env:
        env = make_env(env_id, max_episode_steps, time_feature, None, spaces, sticky_actions)
        return SeededEpisodes(env)

    return SyncVectorEnv([make_one] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)


def final_observations(next_obs: np.ndarray, done: np.ndarray, infos: dict[str, Any]) -> np.ndarray:
    """The real s' of each sub-env: the final observation where an episode just ended."""
    if not done.any():
        return next_obs
    real_next_obs = next_obs.copy()
    for i in np.flatnonzero(done):
        real_next_obs[i] = infos["final_obs"][i]
    return real_next_obs


def space_names(env_id: str, obs_dim: int, n_actions: int) -> tuple[list[str], list[str]]:
    """Human names for state variables and actions (generic ``obs[i]`` / ``action i`` otherwise);
    ``n_actions`` counts a Box action space's dimensions."""
    family = env_id.rpartition("/")[2].split("-")[0]  # deepq/FrozenLake-NotSlippery-v1: FrozenLake
    state_names, action_names = KNOWN_NAMES.get(family, ((), ()))
    states = list(state_names[:obs_dim]) + [f"obs[{i}]" for i in range(len(state_names), obs_dim)]
    if len(action_names) != n_actions:
        action_names = tuple(f"action {a}" for a in range(n_actions))
    return states, list(action_names)
