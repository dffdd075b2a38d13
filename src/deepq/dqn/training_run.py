"""A DQN training run: the parts the loop works on (collector, learner, replay, RNG), built fresh or
restored from a training checkpoint, its records, and what happens around the loop: greedy
evaluations that pick ``best``, checkpoints, and the end of the run (:mod:`deepq.dqn.loop` is
the loop itself).
"""

from __future__ import annotations

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
from deepq.dqn.config import DQNConfig
from deepq.dqn.learner import Learner
from deepq.dqn.networks import encoder_for
from deepq.dqn.replay import ReplayBuffer
from deepq.dqn.training_state import restore_training_state, save_training_state
from deepq.errors import CheckpointError, TrainingDiverged
from deepq.run.checkpoint import keep_copy
from deepq.run.envs import make_env
from deepq.run.evaluation import SELECTION_EVAL_SEED, Evaluator
from deepq.run.harness import (
    RunProgress,
    RunRecorder,
    TrainingClock,
    TrainResult,
    finish_run,
    solved_threshold,
)
from deepq.run.logs import RunLogger

Restored = tuple[dict[str, np.ndarray], dict[str, Any]]  # a training checkpoint's arrays, meta


class DQNRun:
    """One run's parts (collector, learner, replay, RNG), its records, and what happens around the
    loop: greedy evaluations that pick ``best``, checkpoints, the end of the run."""

    def __init__(
        self,
        config: DQNConfig,
        run_dir: Path,
        restored: Restored | None,
        show_progress: bool | None,
        tensorboard: bool,
    ):
        c = self.config = config
        self.run_dir, self.checkpoints = run_dir, run_dir / "checkpoints"
        self.collector = Collector(c)
        space, n_actions = self.collector.observation_space, self.collector.n_actions
        self.network = build_network(c, n_actions, encoder_for(space))
        self.learner = Learner(c, self.network, init_params(c, int(space.shape[0]), n_actions))
        self.replay = ReplayBuffer(c.buffer_size, space.shape, space.dtype)
        self.rng = np.random.default_rng(c.seed)  # replay sampling and exploration
        self.collector.reset(c.seed)
        self.progress = RunProgress()
        if restored is not None:
            self.progress = restore_training_state(*restored, str(self.checkpoints / "latest"),
                self.learner, self.replay, self.collector, self.rng)  # fmt: skip
        try:
            self.logger = RunLogger(run_dir, c.total_steps, show_progress, tensorboard=tensorboard,
                resume_at=None if restored is None else (self.progress.episodes,
                                                         self.progress.env_steps))  # fmt: skip
        except ValueError as exc:  # progress.csv holds fewer rows than the checkpoint says
            raise CheckpointError(str(exc)) from None
        threshold = solved_threshold(c.solved_threshold, self.collector.spec)
        self.record = RunRecorder(self.progress, self.logger, threshold, c.solved_window)
        self.evaluator = Evaluator(lambda: make_env(c.env_id, c.max_episode_steps, c.time_feature))
        self._greedy_actions = make_greedy_actions(self.network.apply)

    def agent(self, params: Any, **info: Any) -> Agent:
        """``params`` (the online network's, read from the learner) as an agent of this run."""
        p, space = self.progress, self.collector.observation_space
        info = {"env_steps": p.env_steps, "episodes": p.episodes, **info}
        return Agent(self.config, params, int(space.shape[0]), self.collector.n_actions, info)

    def evaluate_and_keep_best(self) -> None:
        """A greedy evaluation on the selection seeds (never the reported ones); the best so far
        becomes ``checkpoints/best``."""
        params = self.learner.params()
        result = self.evaluator.run(lambda obs: np.asarray(self._greedy_actions(params, obs)),
                                    self.config.eval_episodes, SELECTION_EVAL_SEED)  # fmt: skip
        if self.record.add_evaluation(result):
            save_agent(self.checkpoints / "best", self.agent(params, eval_mean=result.mean))

    def save_latest(self) -> None:
        save_training_state(self.checkpoints / "latest", self.config, self.learner, self.replay,
                            self.collector, self.rng, self.record)  # fmt: skip

    def save_periodic_checkpoint(self) -> None:
        """``latest``, and a ``step-<env steps>`` copy of it (hard links) when some are kept."""
        self.save_latest()
        if self.config.keep_checkpoints:
            copy = self.checkpoints / f"step-{self.progress.env_steps:012d}"
            keep_copy(self.checkpoints / "latest", copy, self.config.keep_checkpoints)

    def log_learning(self) -> None:
        """Log the latest update's loss and mean Q; a non-finite loss ends the run."""
        metrics = self.learner.metrics
        if metrics is None:
            return
        loss, env_steps = float(metrics["loss"]), self.progress.env_steps
        if not np.isfinite(loss):
            raise TrainingDiverged(
                f"the loss became non-finite by env step {env_steps} "
                f"(try a lower learning_rate); the last finite checkpoint is in {self.checkpoints}"
            )
        self.logger.scalars(
            env_steps, {"train/loss": loss, "train/q_mean": float(metrics["q_mean"])}
        )

    def finish(self, stop_reason: str, clock: TrainingClock) -> TrainResult:
        """Save, let the end compete for ``best``, evaluate it on held-out seeds, summarise."""

        def save_final() -> None:  # `final` is the same state as `latest`: hard links
            self.save_latest()
            keep_copy(self.checkpoints / "latest", self.checkpoints / "final", keep=1)

        def keep_the_end() -> None:  # no periodic evaluations: nothing to compare the end with
            save_agent(self.checkpoints / "best", self.agent(self.learner.params()))

        summary, best = finish_run(
            self.record,
            clock,
            self.run_dir,
            self.config.env_id,
            stop_reason,
            evaluate_now=self.evaluate_and_keep_best if self.config.eval_every else keep_the_end,
            save_final=save_final,
            save_interrupted=self.save_latest,
            resume_hint=f"resume with: deepq train --resume {self.run_dir}",
            load_best=lambda: load_agent_checkpoint(self.checkpoints / "best"),
            evaluator=self.evaluator,
            final_eval_episodes=self.config.final_eval_episodes,
            grad_steps=int(self.learner.state.grad_steps),
        )
        return TrainResult(self.run_dir, summary, best)
