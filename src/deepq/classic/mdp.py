"""Markov chains and finite MDPs: sampling, Q-value iteration and tabular Q-learning (the Hands-On ML RL chapter).

A :class:`FiniteMDP` is a model: transition probabilities ``[S, A, S']``, rewards ``[S, A, S']``,
which actions each state allows, a start state and the terminal states (episodes end on entering
one; their value is 0). It comes from a small JSON or TOML spec, from the Hands-On ML chapter's built-in examples,
or from a Gymnasium toy-text env that exposes its model as ``env.unwrapped.P`` (FrozenLake, Taxi,
CliffWalking). :class:`FiniteMDPEnv` turns a model into a Gymnasium environment.

Written with numpy: the tables are tiny and the algorithms are a few array operations each.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from deepq.classic.tabular import q_learning_update
from deepq.errors import UsageError
from deepq.run.files import (
    IMAGE_SUFFIXES,
    UnreadableFile,
    parse_json,
    read_text_file,
    replacing,
    require_suffix,
)

# The Hands-On ML chapter's 3-state MDP: in s0, a0 mostly stays with +10; s1's a2 goes "through the fire" (-50)
# to s2, whose only action a1 returns to s0 with +40 most of the time.
CHAPTER_MDP_SPEC: dict[str, Any] = {
    "name": "chapter-mdp",
    "transition_probabilities": [
        [[0.7, 0.3, 0.0], [1.0, 0.0, 0.0], [0.8, 0.2, 0.0]],
        [[0.0, 1.0, 0.0], None, [0.0, 0.0, 1.0]],
        [None, [0.8, 0.1, 0.1], None],
    ],
    "rewards": [
        [[10, 0, 0], [0, 0, 0], [0, 0, 0]],
        [[0, 0, 0], [0, 0, 0], [0, 0, -50]],
        [[0, 0, 0], [40, 0, 0], [0, 0, 0]],
    ],
    "possible_actions": [[0, 1, 2], [0, 2], [1]],
    "start_state": 0,
}

# The Hands-On ML chapter's 4-state Markov chain; s3 is absorbing.
CHAPTER_CHAIN_SPEC: dict[str, Any] = {
    "name": "chapter-chain",
    "transition_probabilities": [
        [0.7, 0.2, 0.0, 0.1],
        [0.0, 0.0, 0.9, 0.1],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ],
    "start_state": 0,
    "terminal_states": [3],
}

BUILTIN_MDPS = {"chapter-mdp": CHAPTER_MDP_SPEC}
BUILTIN_CHAINS = {"chapter-chain": CHAPTER_CHAIN_SPEC}


@dataclass(frozen=True)
class FiniteMDP:
    name: str
    transitions: np.ndarray  # [S, A, S'] probabilities; all zero where the action is not allowed
    rewards: np.ndarray  # [S, A, S'] reward of each transition
    allowed: np.ndarray  # [S, A] bool
    start_state: int = 0
    terminal: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # [S] bool

    @property
    def n_states(self) -> int:
        return self.transitions.shape[0]

    @property
    def n_actions(self) -> int:
        return self.transitions.shape[1]


@dataclass(frozen=True)
class MarkovChain:
    name: str
    transitions: np.ndarray  # [S, S']
    start_state: int = 0
    terminal: tuple[int, ...] = ()


# ----------------------------------------------------------------------------------------------
# Building models: specs, built-ins, Gymnasium toy-text envs.
# ----------------------------------------------------------------------------------------------


# A spec's model is dense, [S, A, S'] floats: these bounds keep it within about 80 MB.
MAX_STATES, MAX_ACTIONS, MAX_MODEL_ENTRIES = 10_000, 1_000, 10_000_000
MAX_SPEC_BYTES = 16 << 20


def read_spec(path: str | Path) -> dict[str, Any]:
    """A spec (a JSON object) from a .json or .toml file, read with a size bound."""
    path = Path(path)
    try:
        text = read_text_file(path, MAX_SPEC_BYTES)
        spec = tomllib.loads(text) if path.suffix.lower() == ".toml" else parse_json(text, path)
    except UnreadableFile as exc:
        raise UsageError(str(exc)) from None
    except (RecursionError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path} is not valid TOML ({exc or 'nested too deeply'})") from None
    if not isinstance(spec, dict):
        raise UsageError(f"{path} must hold an object (a table) with transition_probabilities")
    return spec


def _check_model_size(name: str, n_states: int, n_actions: int) -> None:
    """Refuse a model too large to build before it is allocated."""
    if not (1 <= n_states <= MAX_STATES and 1 <= n_actions <= MAX_ACTIONS) or (
        n_states * n_actions * n_states > MAX_MODEL_ENTRIES
    ):
        raise UsageError(
            f"spec {name!r} has {n_states} states and {n_actions} actions; deepq builds models of "
            f"1 to {MAX_STATES} states, 1 to {MAX_ACTIONS} actions and at most "
            f"{MAX_MODEL_ENTRIES:,} transition entries"
        )


def mdp_from_spec(spec: dict[str, Any]) -> FiniteMDP:
    """Validate a spec (``transition_probabilities`` [S][A] -> [S'] or null for a forbidden action,
    ``rewards`` [S][A][S'], optional ``possible_actions``, ``start_state``, ``terminal_states``)."""
    name = str(spec.get("name", "mdp"))[:100]
    try:
        rows = spec["transition_probabilities"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise TypeError("transition_probabilities must be a [S][A] list of lists")
        n_states, n_actions = len(rows), max((len(row) for row in rows), default=0)
        _check_model_size(name, n_states, n_actions)
        transitions = np.zeros((n_states, n_actions, n_states))
        allowed = np.zeros((n_states, n_actions), bool)
        for s, row in enumerate(rows):
            for a, probabilities in enumerate(row):
                if probabilities is not None:
                    transitions[s, a] = np.asarray(probabilities, dtype=np.float64)
                    allowed[s, a] = True
        rewards = np.zeros_like(transitions)
        if "rewards" in spec:
            for s, row in enumerate(spec["rewards"]):
                for a, values in enumerate(row):
                    if values is not None:
                        rewards[s, a] = np.asarray(values, dtype=np.float64)
        if "possible_actions" in spec:
            allowed_given = np.zeros_like(allowed)
            for s, actions in enumerate(spec["possible_actions"]):
                allowed_given[s, list(actions)] = True
            if not np.array_equal(allowed_given, allowed):
                raise ValueError(
                    "possible_actions disagrees with where transition_probabilities are given"
                )
        terminal = np.zeros(n_states, bool)
        terminal[list(spec.get("terminal_states", []))] = True
        start = int(spec.get("start_state", 0))
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
        raise UsageError(f"MDP spec {name!r} is malformed: {exc}") from None
    _check_probabilities(name, transitions[allowed])
    if not allowed.any(axis=1).all():
        raise UsageError(f"MDP spec {name!r}: every state needs at least one allowed action")
    if not 0 <= start < n_states:
        raise UsageError(f"MDP spec {name!r}: start_state {start} is not a state")
    return FiniteMDP(name, transitions, rewards, allowed, start, terminal)


def chain_from_spec(spec: dict[str, Any]) -> MarkovChain:
    name = str(spec.get("name", "chain"))[:100]
    try:
        rows = spec["transition_probabilities"]
        if not isinstance(rows, list):
            raise TypeError("transition_probabilities must be a [S][S'] list of lists")
        _check_model_size(name, len(rows), 1)
        transitions = np.asarray(rows, dtype=np.float64)
        if transitions.ndim != 2 or transitions.shape[0] != transitions.shape[1]:
            raise ValueError("transition_probabilities must be a square [S][S'] table")
        start = int(spec.get("start_state", 0))
        terminal = tuple(int(s) for s in spec.get("terminal_states", []))
        if not 0 <= start < len(transitions) or any(
            not 0 <= s < len(transitions) for s in terminal
        ):
            raise ValueError("start_state and terminal_states must be states")
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
        raise UsageError(f"Markov chain spec {name!r} is malformed: {exc}") from None
    _check_probabilities(name, transitions)
    return MarkovChain(name, transitions, start, terminal)


def _check_probabilities(name: str, rows: np.ndarray) -> None:
    if not np.isfinite(rows).all() or (rows < 0).any() or not np.allclose(rows.sum(axis=-1), 1.0):
        raise UsageError(f"spec {name!r}: each row of transition probabilities must sum to 1")


def mdp_from_gymnasium(env_id: str) -> FiniteMDP:
    """The model of a toy-text env that exposes ``unwrapped.P[s][a] = [(p, s', r, done), ...]``.

    Entering a state with ``done`` ends the episode, so those states are terminal. Where several
    outcomes lead to the same s', the reward stored is their probability-weighted mean.
    """
    from deepq.run.envs import make_env

    env = make_env(env_id, spaces="tabular")
    model = getattr(env.unwrapped, "P", None)
    n_states = int(env.observation_space.n)
    start = int(env.reset(seed=0)[0])  # Taxi's start is random; this is one of its starts
    env.close()
    if model is None:
        raise UsageError(
            f"{env_id} exposes no model (env.unwrapped.P); use a toy-text env or a spec"
        )
    n_actions = max(len(actions) for actions in model.values())
    transitions = np.zeros((n_states, n_actions, n_states))
    reward_mass = np.zeros_like(transitions)
    terminal = np.zeros(n_states, bool)
    for s, actions in model.items():
        for a, outcomes in actions.items():
            for probability, next_state, reward, done in outcomes:
                transitions[s, a, next_state] += probability
                reward_mass[s, a, next_state] += probability * reward
                terminal[next_state] |= bool(done)
    rewards = np.divide(
        reward_mass, transitions, out=np.zeros_like(reward_mass), where=transitions > 0
    )
    allowed = np.ones((n_states, n_actions), bool)
    return FiniteMDP(env_id, transitions, rewards, allowed, start, terminal)


def resolve_mdp(source: str | None) -> FiniteMDP:
    """A built-in name (default ``chapter-mdp``), a .json/.toml spec file, or a toy-text env id."""
    source = source or "chapter-mdp"
    if source in BUILTIN_MDPS:
        return mdp_from_spec(BUILTIN_MDPS[source])
    if source.lower().endswith((".json", ".toml")):
        return mdp_from_spec(read_spec(source))
    return mdp_from_gymnasium(source)


def resolve_chain(source: str | None) -> MarkovChain:
    """A built-in name (default ``chapter-chain``) or a .json/.toml spec file."""
    source = source or "chapter-chain"
    if source in BUILTIN_CHAINS:
        return chain_from_spec(BUILTIN_CHAINS[source])
    if source.lower().endswith((".json", ".toml")):
        return chain_from_spec(read_spec(source))
    raise UsageError(
        f"unknown Markov chain {source!r}: give {', '.join(BUILTIN_CHAINS)} or a .json/.toml spec"
    )


# ----------------------------------------------------------------------------------------------
# The algorithms.
# ----------------------------------------------------------------------------------------------


def sample_chain(
    chain: MarkovChain, rng: np.random.Generator, max_steps: int = 50
) -> tuple[list[int], bool]:
    """One state sequence from the start state until a terminal state or ``max_steps`` states;
    and whether it was cut off (the chapter prints '...')."""
    state, states = chain.start_state, []
    for _ in range(max_steps):
        states.append(state)
        if state in chain.terminal:
            return states, False
        state = int(rng.choice(len(chain.transitions), p=chain.transitions[state]))
    return states, True


def initial_q_values(mdp: FiniteMDP) -> np.ndarray:
    """0 for allowed actions, -inf for impossible ones."""
    return np.where(mdp.allowed, 0.0, -np.inf)


def state_values(q_values: np.ndarray, terminal: np.ndarray) -> np.ndarray:
    """V(s) = max_a Q(s, a), and 0 for terminal states (nothing follows them)."""
    values = q_values.max(axis=1)
    return np.where(terminal, 0.0, values) if terminal.size else values


def value_iteration(
    mdp: FiniteMDP,
    gamma: float,
    iterations: int | None = None,
    tolerance: float = 1e-12,
    max_iterations: int = 100_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Q-value iteration: Q(s,a) <- sum_s' T(s,a,s') [R(s,a,s') + gamma max_a' Q(s',a')].

    Runs ``iterations`` sweeps (the chapter runs 50), or with None until no Q-value moves by more
    than ``tolerance``. Returns the final Q [S, A] (-inf for impossible actions) and the history
    [sweeps, S, A] of the Q-values at the start of each sweep (the chapter's ``history1``).
    """
    q_values = initial_q_values(mdp)
    history = []
    for _ in range(iterations if iterations is not None else max_iterations):
        history.append(q_values)
        next_values = state_values(q_values, mdp.terminal)  # [S']
        expected = (mdp.transitions * (mdp.rewards + gamma * next_values)).sum(axis=2)
        q_values, previous = np.where(mdp.allowed, expected, -np.inf), q_values
        change = np.abs(q_values[mdp.allowed] - previous[mdp.allowed]).max()
        if iterations is None and change <= tolerance:
            break
    return q_values, np.stack(history)


def q_learning(
    mdp: FiniteMDP,
    gamma: float,
    iterations: int = 10_000,
    alpha0: float = 0.05,
    decay: float = 0.005,
    seed: int = 42,
) -> tuple[np.ndarray, np.ndarray]:
    """Tabular Q-learning from a random exploration policy over the allowed actions, with
    learning rate alpha0 / (1 + t * decay). Entering a terminal state restarts at the start state.

    Returns the final Q and the history [iterations, S, A] of Q before each update.
    """
    rng = np.random.default_rng(seed)
    q_values = initial_q_values(mdp)
    history = np.empty((iterations, *q_values.shape))
    allowed_actions = [np.flatnonzero(row) for row in mdp.allowed]
    state = mdp.start_state
    for iteration in range(iterations):
        history[iteration] = q_values
        action = int(rng.choice(allowed_actions[state]))
        next_state = int(rng.choice(mdp.n_states, p=mdp.transitions[state, action]))
        reward = mdp.rewards[state, action, next_state]
        ends = bool(mdp.terminal.size and mdp.terminal[next_state])
        alpha = alpha0 / (1 + iteration * decay)
        q_learning_update(q_values, state, action, reward, ends, next_state, gamma, alpha)
        state = mdp.start_state if ends else next_state
    return q_values, history


def greedy_policy(q_values: np.ndarray) -> list[int]:
    return [int(a) for a in np.argmax(q_values, axis=1)]


def q_table_json(q_values: np.ndarray) -> dict[str, Any]:
    """``{"q_values": [[...]], "policy": [...]}`` with null for impossible actions."""
    table = [[None if np.isneginf(v) else float(v) for v in row] for row in q_values]
    return {"q_values": table, "policy": greedy_policy(q_values)}


def format_q_table(q_values: np.ndarray) -> str:
    """Rows 's0: 18.91891892  17.02702703  13.62162162', -inf for impossible actions."""
    width = (
        max(len(f"{v:.8f}") for v in q_values[np.isfinite(q_values)])
        if np.isfinite(q_values).any()
        else 4
    )
    lines = []
    for s, row in enumerate(q_values):
        cells = ["-inf".rjust(width) if np.isneginf(v) else f"{v:.8f}".rjust(width) for v in row]
        lines.append(f"  s{s}: " + "  ".join(cells))
    return "\n".join(lines)


def plot_convergence(
    vi_history: np.ndarray, ql_history: np.ndarray, true_value: float, out: str | Path
) -> Path:
    """The chapter's figure: Q(s0, a0) against iterations for value iteration and Q-learning, with
    the true value dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), dpi=100, facecolor="white")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2, sharey=True)
    axes[0].set_ylabel("Q-Value$(s_0, a_0)$")
    for ax, title, history in zip(
        axes, ("Q-Value Iteration", "Q-Learning"), (vi_history, ql_history), strict=True
    ):
        width = len(history)
        ax.plot([0, width], [true_value, true_value], "k--", label="true value")
        ax.plot(np.arange(width), history[:, 0, 0], "b-", linewidth=2, label="estimate")
        ax.set_title(title)
        ax.set_xlabel("Iterations")
        ax.set_xlim(0, width)
        ax.grid(alpha=0.3)
    axes[1].legend(loc="lower right")
    out = Path(out)
    require_suffix(out, IMAGE_SUFFIXES)
    with replacing(out) as temporary:
        figure.savefig(temporary, format=out.suffix.lstrip(".").lower())
    return out


class FiniteMDPEnv(gym.Env):
    """A finite MDP as a Gymnasium env: Discrete states and actions, sampled transitions.

    An action the state does not allow raises ValueError. Entering a terminal state terminates
    the episode.
    """

    metadata = {"render_modes": []}

    def __init__(self, mdp: FiniteMDP | None = None):
        self.mdp = mdp if mdp is not None else mdp_from_spec(CHAPTER_MDP_SPEC)
        self.observation_space = gym.spaces.Discrete(self.mdp.n_states)
        self.action_space = gym.spaces.Discrete(self.mdp.n_actions)
        self._state = self.mdp.start_state

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state = self.mdp.start_state
        return self._state, {}

    def step(self, action: int):
        action = int(action)
        if not self.mdp.allowed[self._state, action]:
            raise ValueError(f"action {action} is not allowed in state {self._state}")
        probabilities = self.mdp.transitions[self._state, action]
        next_state = int(self.np_random.choice(self.mdp.n_states, p=probabilities))
        reward = float(self.mdp.rewards[self._state, action, next_state])
        self._state = next_state
        terminated = bool(self.mdp.terminal.size and self.mdp.terminal[next_state])
        return next_state, reward, terminated, False, {}
