"""The DQN training loop (Mnih et al. 2015, with Double, Munchausen, dueling, n-step variants).

:func:`_train` is the loop, top to bottom: act → learn → sync target → step envs → store →
episode bookkeeping → evaluate → stop. What it works on (built, or restored on resume) and what
happens around it (evaluations, checkpoints, the end of the run) is a
:class:`~deepq.dqn.training_run.DQNRun`. Each part is one file of this package:

- the TD targets and the loss: ``losses.py`` (small pure functions);
- the learner (its state, jitted update and target sync, and the parameters acting reads):
  ``learner.py``;
- the Q-network and its encoder: ``networks.py``; replay: ``replay.py`` (by priority:
  ``prioritized.py``); the envs, n-step
  returns and episodes: ``collector.py``; ε: ``exploration.py``; the run around the loop:
  ``training_run.py``; checkpoints: ``training_state.py``;
- what every loop shares (clock, stop rules, records, end of run): :mod:`deepq.run.harness`.

Where do ``terminated`` and ``truncated`` go? Both are stored in the replay buffer; only
``terminated`` enters the target. A truncated transition (time limit) bootstraps from its real
final observation, which the collector recovers.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from deepq.dqn.config import (
    DQNConfig,
    config_from_dict,
    resolve_config,
    schedules_over_total_steps,
)
from deepq.dqn.exploration import epsilon_at, select_actions
from deepq.dqn.prioritized import priority_beta
from deepq.dqn.training_run import DQNRun, check_memory
from deepq.dqn.training_state import read_training_state
from deepq.errors import UsageError
from deepq.run.files import RunWriteError, write_json
from deepq.run.harness import (
    RunProgress,
    StopRules,
    TrainingClock,
    TrainResult,
    new_run_dir,
    removed_if_unstarted,
)
from deepq.run.signals import StopSignal

__all__ = ["resume", "train"]


def train(
    config: DQNConfig | dict[str, Any] | None = None,
    run_dir: str | Path | None = None,
    *,
    show_progress: bool | None = None,
    tensorboard: bool = True,
) -> TrainResult:
    """Train DQN as ``config`` says, writing everything into ``run_dir`` (default runs/<time>)."""
    if config is None:
        config = resolve_config()
    elif isinstance(config, dict):
        config = config_from_dict(config)
    check_memory(config)  # fail early: the env, and a run too large for this machine
    run_dir = new_run_dir(run_dir)
    with removed_if_unstarted(run_dir):
        write_json(run_dir / "config.json", config.to_dict())
        run = DQNRun(config, run_dir, None, show_progress, tensorboard)
    return _run(run)


def resume(
    run_dir: str | Path,
    *,
    total_steps: int | None = None,
    show_progress: bool | None = None,
    tensorboard: bool = True,
) -> TrainResult:
    """Continue an interrupted run from its latest checkpoint, exactly as if it had never stopped.

    Exact means bit for bit on the same machine and software: the parameters, optimiser state,
    replay buffer, RNG and counters are restored, and each env's unfinished episode is rebuilt by
    resetting it with the episode's seed and replaying its actions (environments must be
    deterministic given seed and actions, as Gymnasium's are). Wall-clock columns differ.

    ``total_steps`` continues the run, interrupted or finished, to that many env steps instead:
    the same run as one started with that total, where no schedule stretches over the total
    (:func:`~deepq.dqn.config.schedules_over_total_steps`; such a run is refused). A finished
    run's ``final`` checkpoint is kept as ``end-<env steps>``; ``latest`` and config.json take
    the new total at once, so a continuation interrupted early resumes with it.
    """
    run_dir = Path(run_dir)
    config, restored = read_training_state(run_dir, finished_ok=total_steps is not None)
    if total_steps is not None:
        config = _continued_config(config, total_steps, RunProgress(**restored[1]["progress"]))
    run = DQNRun(config, run_dir, restored, show_progress, tensorboard)
    if total_steps is not None:
        run.continue_to_new_total()
    return _run(run)


def _continued_config(config: DQNConfig, total_steps: int, progress: RunProgress) -> DQNConfig:
    """``config`` with a new ``total_steps``, refused where the run could not go on exactly as
    one started with that total."""
    if total_steps <= progress.env_steps:
        raise UsageError(
            f"--total-steps {total_steps} must exceed the {progress.env_steps} env steps the run "
            "has already taken"
        )
    stretched = schedules_over_total_steps(config)
    if stretched and total_steps != config.total_steps:
        raise UsageError(
            f"this run stretches {' and '.join(stretched)} over its total_steps "
            f"({config.total_steps}); a new total would change that midway: start a new run"
        )
    c = config
    rules = StopRules(c.stop_when_solved, None, c.max_episodes, c.time_budget_s, c.stop_eval_mean)
    reason = rules.reason(progress, progress.train_seconds, interrupted=False)
    if reason is not None:
        raise UsageError(
            f"this run stopped by its {reason} rule, which a larger total_steps does not lift"
        )
    return config_from_dict({**config.to_dict(), "total_steps": total_steps})


def _run(run: DQNRun) -> TrainResult:
    with ExitStack() as resources:
        for resource in (run.collector, run.evaluator, run.logger):  # closed on every way out
            resources.callback(resource.close)
        clock = TrainingClock(run.progress)
        # errstate: acting in numpy on parameters that are diverging would print overflow
        # warnings every step; the divergence itself is caught and reported (log_learning).
        with StopSignal() as stop_signal, np.errstate(over="ignore", invalid="ignore"):
            try:
                stop_reason = _train(run, clock, stop_signal)
            except RunWriteError as exc:  # a full disk, say: keep what can be kept, then stop
                raise run.stopped_by_write_error(exc) from None
        return run.finish(stop_reason, clock)  # a signal now ends the program at once


def _train(run: DQNRun, clock: TrainingClock, stop_signal: StopSignal) -> str:
    """The loop, until a stop rule holds; returns why it stopped."""
    c, p, record = run.config, run.progress, run.record
    collector, learner, replay, rng = run.collector, run.learner, run.replay, run.rng
    rules = StopRules(
        c.stop_when_solved, c.total_steps, c.max_episodes, c.time_budget_s, c.stop_eval_mean
    )
    epsilon = epsilon_at(c, p.episodes, p.env_steps)
    stop_reason = None
    while stop_reason is None:
        # 1. act ε-greedily in every env with the parameters from before this step's learning
        #    (the random draws now; the Q-values once 2. has been dispatched)
        coins = rng.random(c.num_envs)
        random_actions = rng.integers(0, collector.n_actions, c.num_envs)
        acting_q_values = learner.acting_q_values(noise_rng=rng)  # noisy nets: one draw per step
        previous_steps, p.env_steps = p.env_steps, p.env_steps + c.num_envs
        # 2. learn: one learning step per multiple of train_every crossed by this step (or, at
        #    6., of train_every_episodes), from learning_starts on, on the transitions stored
        #    before it. JAX dispatches it asynchronously: it computes on XLA's cores while this
        #    thread acts and steps.
        learning_steps = (
            0 if c.train_every_episodes else _crossed(previous_steps, p.env_steps, c.train_every)
        )
        if learning_steps and _may_learn(c, p, replay):
            _learn(run, learning_steps * c.gradient_steps)
        actions = (  # at ε = 1 every coin (< 1) picks the random action: no Q-values needed
            random_actions
            if epsilon >= 1.0
            else select_actions(acting_q_values(collector.obs), epsilon, coins, random_actions)
        )
        # 3. hard target copy every target_update_every env steps (or, at 6., episodes)
        if (
            c.target_update == "hard"
            and c.target_update_every_episodes is None
            and _crossed(previous_steps, p.env_steps, c.target_update_every)
        ):
            learner.sync_target()
        # 4. step every env; 5. store the transitions now complete (n-step ones when n_step > 1)
        step = collector.step(actions, p.env_steps)
        if step.transitions is not None:
            replay.add(*step.transitions)
        # 6. episode bookkeeping: records, per-episode learning and target copies, ε, metrics
        episodes_before, wall = p.episodes, clock.elapsed()
        for episode_return, episode_length in step.finished:
            record.end_episode(episode_return, episode_length, epsilon, wall)
        learning_steps = c.train_every_episodes and _crossed(
            episodes_before, p.episodes, c.train_every_episodes
        )  # the Hands-On ML chapter's CartPole DQNs: once per episode
        if learning_steps and _may_learn(c, p, replay):
            _learn(run, learning_steps * c.gradient_steps)
        if c.target_update_every_episodes is not None and _crossed(
            episodes_before, p.episodes, c.target_update_every_episodes
        ):
            learner.sync_target()  # the Hands-On ML chapter's CartPole DQNs: every N episodes
        if step.finished or c.epsilon_schedule == "linear" or previous_steps < c.random_steps:
            epsilon = epsilon_at(c, p.episodes, p.env_steps)
        if _crossed(previous_steps, p.env_steps, 1000):
            run.log_learning()
        # 7. evaluate (the clock stops: evaluation is not training time)
        if c.eval_every and _crossed(previous_steps, p.env_steps, c.eval_every):
            with clock.paused():
                run.evaluate_and_keep_best()
        # 8. stop? (at the end of a step, where the whole state is consistent) or checkpoint
        stop_reason = rules.reason(p, clock.elapsed(), stop_signal.requested)
        every = c.checkpoint_every_episodes
        if stop_reason is None and every and _crossed(episodes_before, p.episodes, every):
            with clock.paused():
                run.save_periodic_checkpoint()
    return stop_reason


def _learn(run: DQNRun, num_batches: int) -> None:
    """One learning call: ``num_batches`` gradient steps on batches sampled now. With
    prioritized replay, sampling follows β's schedule and the update's TD errors go back to the
    replay as the sampled transitions' new priorities."""
    c, replay = run.config, run.replay
    if replay.priorities is not None:
        replay.priorities.beta = priority_beta(c, run.progress.env_steps)
    run.learner.update(replay.sample(run.rng, c.batch_size, num_batches))
    if replay.priorities is not None:
        replay.priorities.update_later(run.learner.metrics["td_abs"])


def _may_learn(c: DQNConfig, p: Any, replay: Any) -> bool:
    """Learning has started: enough env steps, finished episodes and stored transitions."""
    return (
        p.env_steps >= c.learning_starts
        and p.episodes >= c.learning_starts_episodes
        and len(replay) >= c.batch_size
    )


def _crossed(before: int, after: int, every: int) -> int:
    """How many multiples of ``every`` a counter passed going from ``before`` to ``after``."""
    return after // every - before // every
