"""Tabular Q-learning on environments with Discrete states (FrozenLake, Taxi, CliffWalking).

``deepq train --algo q-learning --env FrozenLake-v1``. The loop reads top to bottom: ε-greedy
action → env step → the TD update of one table cell → episode bookkeeping → evaluation → stop.
Run directory, progress log, evaluation, checkpoints, plot, video and report are the DQN's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepq.classic.configs import QLearningConfig
from deepq.dqn.exploration import linear_epsilon
from deepq.errors import CheckpointError
from deepq.run.checkpoint import checkpoint_config, load_checkpoint, save_checkpoint
from deepq.run.envs import episode_seed, make_env
from deepq.run.evaluation import SELECTION_EVAL_SEED, Evaluator
from deepq.run.harness import (
    RunProgress,
    RunRecorder,
    StopRules,
    TrainingClock,
    finish_run,
    solved_threshold,
)
from deepq.run.logs import RunLogger
from deepq.run.signals import StopSignal
from deepq.version import __version__


def q_learning_target(
    reward: float, terminated: bool, next_q_values: np.ndarray, gamma: float
) -> float:
    """The tabular TD target r + γ max_a' Q(s', a'); only termination stops the bootstrap (a
    time-limit truncation still has a future)."""
    return float(reward) + (0.0 if terminated else gamma * float(np.max(next_q_values)))


def q_learning_update(
    q_table: np.ndarray,
    state: int,
    action: int,
    reward: float,
    terminated: bool,
    next_state: int,
    gamma: float,
    alpha: float,
) -> None:
    """Q(s, a) ← Q(s, a) + α (r + γ max_a' Q(s', a') − Q(s, a)), in place: the one Q-learning
    step of deepq's tabular learners (on a Gymnasium env here, on a known MDP in ``mdp.py``)."""
    target = q_learning_target(reward, terminated, q_table[next_state], gamma)
    q_table[state, action] += alpha * (target - q_table[state, action])


def greedy_with_random_ties(q_row: np.ndarray, rng: np.random.Generator) -> int:
    """argmax, but ties broken at random: with an all-zero table, plain argmax would always pick
    action 0 and never find a first reward by exploiting."""
    best = np.flatnonzero(q_row == q_row.max())
    return int(best[0] if len(best) == 1 else rng.choice(best))


@dataclass
class QTableAgent:
    """A learnt Q table [states, actions] with what is needed to run it."""

    config: QLearningConfig
    q_table: np.ndarray
    info: dict[str, Any]

    def act(self, obs: int) -> int:
        return int(np.argmax(self.q_table[int(obs)]))

    def policy(self):
        """obs [N] -> greedy actions [N]."""
        return lambda obs: np.argmax(self.q_table[np.asarray(obs, dtype=np.int64)], axis=1)

    def make_env(self, render_mode: str | None = None):
        """The agent's env; one whose state and action counts differ from the table's is refused."""
        env = make_env(
            self.config.env_id,
            self.config.max_episode_steps,
            render_mode=render_mode,
            spaces="tabular",
        )
        have = (int(env.observation_space.n), int(env.action_space.n))
        if have != self.q_table.shape:
            env.close()
            raise CheckpointError(
                f"the checkpoint's Q-table is {self.q_table.shape[0]} states x "
                f"{self.q_table.shape[1]} actions, but {self.config.env_id} has {have[0]} x {have[1]}"
            )
        return env


def save_q_table_agent(directory: Path, agent: QTableAgent) -> None:
    meta = {
        "kind": "q-table-agent",
        "deepq_version": __version__,
        "config": agent.config.to_dict(),
        "info": agent.info,
    }
    save_checkpoint(directory, {"q_table": agent.q_table}, meta)


def q_table_agent_from(
    arrays: dict[str, np.ndarray], meta: dict[str, Any], source: str
) -> QTableAgent:
    """The agent in a verified checkpoint (``meta`` already matches its schema)."""
    config = checkpoint_config(QLearningConfig.from_dict, meta, source)
    q_table = arrays.get("q_table")
    if q_table is None or set(arrays) != {"q_table"}:
        raise CheckpointError(f"{source}: a Q-table checkpoint holds exactly one array, q_table")
    if q_table.ndim != 2 or q_table.dtype != np.float64 or not np.isfinite(q_table).all():
        raise CheckpointError(f"{source}: q_table must be a finite float64 [states, actions] table")
    return QTableAgent(config, q_table, dict(meta["info"]))


# A Q-table's file: 1 GB is 100,000 states of 1,000 actions, far above a table a tabular env
# such as FrozenLake (16 x 4) or Taxi (500 x 6) needs.
MAX_Q_TABLE_BYTES = 1 << 30


def load_q_table_agent(directory: Path) -> QTableAgent:
    arrays, meta = load_checkpoint(directory, lambda meta: MAX_Q_TABLE_BYTES)
    return q_table_agent_from(arrays, meta, str(directory))


def train_q_learning(
    config: QLearningConfig,
    run_dir: Path,
    show_progress: bool | None = None,
    tensorboard: bool = True,
) -> tuple[dict[str, Any], QTableAgent]:
    """Run tabular Q-learning into ``run_dir`` (created, with config.json, by the caller)."""
    c = config
    env = make_env(c.env_id, c.max_episode_steps, spaces="tabular")
    n_states, n_actions = int(env.observation_space.n), int(env.action_space.n)
    q_table = np.full((n_states, n_actions), c.initial_q, dtype=np.float64)
    rng = np.random.default_rng(c.seed)
    updates = 0
    checkpoints = run_dir / "checkpoints"
    p = RunProgress()
    logger = RunLogger(run_dir, c.total_steps, show_progress, tensorboard=tensorboard)
    record = RunRecorder(p, logger, solved_threshold(c.solved_threshold, env.spec), c.solved_window)
    evaluator = Evaluator(lambda: make_env(c.env_id, c.max_episode_steps, spaces="tabular"))

    def agent_now() -> QTableAgent:
        return QTableAgent(c, q_table.copy(), {"env_steps": p.env_steps, "episodes": p.episodes})

    def evaluate_now() -> None:
        result = evaluator.run(agent_now().policy(), c.eval_episodes, SELECTION_EVAL_SEED)
        if record.add_evaluation(result):
            save_q_table_agent(checkpoints / "best", agent_now())

    rules = StopRules(c.stop_when_solved, c.total_steps, c.max_episodes)
    stop_reason = None
    try:
        with StopSignal() as stop_signal:
            clock = TrainingClock(p)
            while stop_reason is None:
                epsilon = linear_epsilon(
                    p.episodes, c.epsilon_start, c.epsilon_end, c.epsilon_decay_episodes
                )
                state, _ = env.reset(seed=episode_seed(c.seed, p.episodes))
                episode_return, episode_length, done = 0.0, 0, False
                while not done:
                    # 1. act ε-greedily
                    if rng.random() < epsilon:
                        action = int(rng.integers(n_actions))
                    else:
                        action = greedy_with_random_ties(q_table[state], rng)
                    # 2. step
                    next_state, reward, terminated, truncated, _ = env.step(action)
                    # 3. learn: move Q(s, a) toward the TD target
                    alpha = c.alpha0 / (1.0 + updates * c.alpha_decay)
                    q_learning_update(q_table, state, action, reward, terminated, next_state,
                                      c.gamma, alpha)  # fmt: skip
                    updates += 1
                    p.env_steps += 1
                    episode_return += float(reward)
                    episode_length += 1
                    done = terminated or truncated
                    state = next_state
                # 4. bookkeeping, evaluation (the clock stops), stop
                record.end_episode(episode_return, episode_length, epsilon, clock.elapsed())
                if c.eval_every_episodes and p.episodes % c.eval_every_episodes == 0:
                    with clock.paused():
                        evaluate_now()
                stop_reason = rules.reason(p, clock.elapsed(), stop_signal.requested)
        summary, best = finish_run(
            record,
            clock,
            run_dir,
            c.env_id,
            stop_reason,
            evaluate_now=evaluate_now,
            save_final=lambda: save_q_table_agent(checkpoints / "final", agent_now()),
            load_best=lambda: load_q_table_agent(checkpoints / "best"),
            evaluator=evaluator,
            final_eval_episodes=c.final_eval_episodes,
            updates=updates,
        )
    finally:
        env.close()
        evaluator.close()
        logger.close()
    return summary, best
