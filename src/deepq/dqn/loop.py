"""The DQN training loop (Mnih et al. 2015, with Double, Munchausen, dueling, n-step variants).

:func:`_run` reads top to bottom: build the parts (collector, learner, replay, RNG), restore them
on resume, then loop act → learn → sync target → step envs → store → episode bookkeeping →
evaluate → stop, and end the run. Each part is one file of this package:

- the TD target and loss: ``losses.py`` (small pure functions);
- the learner (its state, jitted update and target sync, and the parameters acting reads):
  ``learner.py``;
- the Q-network and its encoder: ``networks.py``; replay: ``replay.py``; the envs, n-step
  returns and episodes: ``collector.py``; ε: ``exploration.py``;
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

from deepq.dqn.agent import (
    Agent,
    build_network,
    init_params,
    load_agent_checkpoint,
    make_greedy_actions,
    save_agent,
)
from deepq.dqn.collector import Collector
from deepq.dqn.config import DQNConfig, config_from_dict, resolve_config
from deepq.dqn.exploration import epsilon_at, select_actions
from deepq.dqn.learner import Learner
from deepq.dqn.networks import encoder_for
from deepq.dqn.replay import ReplayBuffer
from deepq.dqn.training_state import KIND, restore_training_state, save_training_state
from deepq.errors import CheckpointError, DeepQError, TrainingDiverged, UsageError
from deepq.run.checkpoint import keep_copy, load_checkpoint
from deepq.run.envs import make_env
from deepq.run.evaluation import SELECTION_EVAL_SEED, Evaluator
from deepq.run.harness import (
    RunProgress,
    RunRecorder,
    StopRules,
    StopSignal,
    TrainingClock,
    TrainResult,
    finish_run,
    new_run_dir,
    solved_threshold,
)
from deepq.run.logs import RunLogger, write_json

__all__ = ["Agent", "resume", "train"]


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
    make_env(
        config.env_id, config.max_episode_steps, config.time_feature
    ).close()  # fail before writing
    run_dir = new_run_dir(run_dir)
    write_json(run_dir / "config.json", config.to_dict())
    return _run(config, run_dir, None, show_progress, tensorboard)


def resume(
    run_dir: str | Path,
    *,
    show_progress: bool | None = None,
    tensorboard: bool = True,
) -> TrainResult:
    """Continue an interrupted run from its latest checkpoint, exactly as if it had never stopped.

    Exact means bit for bit on the same machine and software: the parameters, optimiser state,
    replay buffer, RNG and counters are restored, and each env's unfinished episode is rebuilt by
    resetting it with the episode's seed and replaying its actions (environments must be
    deterministic given seed and actions, as Gymnasium's are). Wall-clock columns differ.
    """
    run_dir = Path(run_dir)
    checkpoints = run_dir / "checkpoints"
    if not run_dir.is_dir():
        raise UsageError(f"no such run directory: {run_dir}")
    if (checkpoints / "final").exists():
        raise UsageError(f"{run_dir} already finished; start a new run instead")
    arrays, meta = load_checkpoint(checkpoints / "latest")
    if meta.get("kind") != KIND:
        raise CheckpointError(f"{checkpoints / 'latest'} is not a training-state checkpoint")
    try:
        config = config_from_dict(meta["config"])
    except (KeyError, TypeError, DeepQError) as exc:
        raise CheckpointError(
            f"{checkpoints / 'latest'}: meta.json holds no valid config ({exc})"
        ) from None
    return _run(config, run_dir, (arrays, meta), show_progress, tensorboard)


def _run(
    c: DQNConfig,
    run_dir: Path,
    restore_from: tuple[dict[str, np.ndarray], dict[str, Any]] | None,
    show_progress: bool | None,
    tensorboard: bool,
) -> TrainResult:
    # --- the parts: envs, learner, replay, randomness, counters ---
    collector = Collector(c)
    n_actions, obs_dim = collector.n_actions, int(collector.observation_space.shape[0])
    network = build_network(c, n_actions, encoder_for(collector.observation_space))
    learner = Learner(c, network, init_params(c, obs_dim, n_actions))
    replay = ReplayBuffer(c.buffer_size, collector.observation_space.shape,
                          collector.observation_space.dtype)  # fmt: skip
    rng = np.random.default_rng(c.seed)  # replay sampling and exploration
    collector.reset(c.seed)
    p = RunProgress()
    checkpoints = run_dir / "checkpoints"
    if restore_from is not None:
        arrays, meta = restore_from
        p = restore_training_state(arrays, meta, str(checkpoints / "latest"), learner, replay,
                                   collector, rng)  # fmt: skip

    # --- records, evaluation, stop rules ---
    logger = _open_logger(run_dir, c, p, restore_from is not None, show_progress, tensorboard)
    record = RunRecorder(p, logger, solved_threshold(c.solved_threshold, collector.spec),
                         c.solved_window)  # fmt: skip
    evaluator = Evaluator(lambda: make_env(c.env_id, c.max_episode_steps, c.time_feature))
    greedy_actions = make_greedy_actions(network.apply)
    rules = StopRules(c.stop_when_solved, c.total_steps, c.max_episodes, c.time_budget_s)

    def agent_now(**info: Any) -> Agent:
        info = {"env_steps": p.env_steps, "episodes": p.episodes, **info}
        return Agent(c, learner.params(), obs_dim, n_actions, info)

    def evaluate_and_keep_best() -> None:  # the selection seeds: never the reported ones
        params = learner.params()
        result = evaluator.run(lambda obs: np.asarray(greedy_actions(params, obs)),
                               c.eval_episodes, SELECTION_EVAL_SEED)  # fmt: skip
        if record.add_evaluation(result):
            save_agent(checkpoints / "best", agent_now(eval_mean=result.mean))

    def save_latest() -> None:
        save_training_state(checkpoints / "latest", c, learner, replay, collector, rng, record)

    # --- the loop: act → learn → sync target → step → store → bookkeeping → evaluate → stop ---
    epsilon = epsilon_at(c, p.episodes, p.env_steps)
    stop_reason = None
    with ExitStack() as resources, StopSignal() as stop_signal:
        for resource in (collector, evaluator, logger):  # closed on every way out, errors included
            resources.callback(resource.close)
        clock = TrainingClock(p)
        while stop_reason is None:
            # 1. act ε-greedily in every env with the parameters from before this step's learning
            #    (the random draws now; the Q-values once 2. has been dispatched)
            coins, random_actions = rng.random(c.num_envs), rng.integers(0, n_actions, c.num_envs)
            acting_q_values = learner.acting_q_values()
            previous_steps, p.env_steps = p.env_steps, p.env_steps + c.num_envs
            # 2. learn: one learning step per multiple of train_every crossed by this step, from
            #    learning_starts on, on the transitions stored before it. JAX dispatches it
            #    asynchronously, so it computes on XLA's cores while this thread acts and steps.
            learning_steps = _crossed(previous_steps, p.env_steps, c.train_every)
            if learning_steps and p.env_steps >= c.learning_starts and len(replay) >= c.batch_size:
                learner.update(replay.sample(rng, c.batch_size, learning_steps * c.gradient_steps))
            actions = select_actions(acting_q_values(collector.obs), epsilon, coins, random_actions)
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
            # 6. episode bookkeeping: records, per-episode target copies, ε, learning metrics
            episodes_before, wall = p.episodes, clock.elapsed()
            for episode_return, episode_length in step.finished:
                record.end_episode(episode_return, episode_length, epsilon, wall)
            if c.target_update_every_episodes is not None and _crossed(
                episodes_before, p.episodes, c.target_update_every_episodes
            ):
                learner.sync_target()  # the Hands-On ML chapter's CartPole DQNs: every N episodes
            if step.finished or c.epsilon_schedule == "linear":
                epsilon = epsilon_at(c, p.episodes, p.env_steps)
            if _crossed(previous_steps, p.env_steps, 1000):
                _log_learning(learner, logger, p.env_steps, checkpoints)
            # 7. evaluate (the clock stops: evaluation is not training time)
            if c.eval_every and _crossed(previous_steps, p.env_steps, c.eval_every):
                with clock.paused():
                    evaluate_and_keep_best()
            # 8. stop? (at the end of a step, where the whole state is consistent) or checkpoint
            stop_reason = rules.reason(p, clock.elapsed(), stop_signal.requested)
            every = c.checkpoint_every_episodes
            if stop_reason is None and every and _crossed(episodes_before, p.episodes, every):
                with clock.paused():
                    save_latest()
                    if c.keep_checkpoints:
                        step_copy = checkpoints / f"step-{p.env_steps:012d}"
                        keep_copy(checkpoints / "latest", step_copy, c.keep_checkpoints)
        clock.stop()
        logger.end_progress(p.env_steps)

        def save_final() -> None:  # `final` is the same state as `latest`: hard links
            save_latest()
            keep_copy(checkpoints / "latest", checkpoints / "final", keep=1)

        summary, best = finish_run(
            record,
            run_dir,
            c.env_id,
            stop_reason,
            # with no periodic evaluations there is nothing to compare: the end is the best
            evaluate_now=evaluate_and_keep_best
            if c.eval_every
            else lambda: save_agent(checkpoints / "best", agent_now()),
            save_final=save_final,
            save_interrupted=save_latest,
            resume_hint=f"resume with: deepq train --resume {run_dir}",
            load_best=lambda: load_agent_checkpoint(checkpoints / "best"),
            evaluator=evaluator,
            final_eval_episodes=c.final_eval_episodes,
            grad_steps=int(learner.state.grad_steps),
        )
    return TrainResult(run_dir, summary, best)


def _crossed(before: int, after: int, every: int) -> int:
    """How many multiples of ``every`` a counter passed going from ``before`` to ``after``."""
    return after // every - before // every


def _log_learning(learner: Learner, logger: RunLogger, env_steps: int, checkpoints: Path) -> None:
    """Log the latest update's loss and mean Q; a non-finite loss ends the run."""
    if learner.metrics is None:
        return
    loss = float(learner.metrics["loss"])
    if not np.isfinite(loss):
        raise TrainingDiverged(
            f"the loss became non-finite by env step {env_steps} "
            f"(try a lower learning_rate); the last finite checkpoint is in {checkpoints}"
        )
    logger.scalars(
        env_steps, {"train/loss": loss, "train/q_mean": float(learner.metrics["q_mean"])}
    )


def _open_logger(
    run_dir: Path,
    c: DQNConfig,
    p: RunProgress,
    resuming: bool,
    show_progress: bool | None,
    tensorboard: bool,
) -> RunLogger:
    try:
        return RunLogger(run_dir, c.total_steps, show_progress, tensorboard=tensorboard,
                         resume_at=(p.episodes, p.env_steps) if resuming else None)  # fmt: skip
    except ValueError as exc:  # progress.csv shorter than the checkpoint says
        raise CheckpointError(str(exc)) from None
