"""A DQN training run: the parts the loop works on (collector, learner, replay, RNG), built fresh or
restored from a training checkpoint, its records, and what happens around the loop: greedy
evaluations that pick ``best``, checkpoints, and the end of the run (:mod:`deepq.dqn.loop` is
the loop itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from deepq.dqn.agent import (
    Agent,
    build_network,
    init_params,
    load_agent_checkpoint,
    make_greedy_actions,
    params_shape,
    save_agent,
)
from deepq.dqn.collector import Collector
from deepq.dqn.config import DQNConfig, samples_per_learning_call
from deepq.dqn.frame_replay import FrameReplay, frame_stack, planned_nbytes
from deepq.dqn.learner import Learner
from deepq.dqn.losses import leaves_named
from deepq.dqn.networks import encoder_for
from deepq.dqn.replay import ReplayBuffer
from deepq.dqn.training_state import restore_training_state, save_training_state
from deepq.errors import DeepQError, TrainingDiverged, UsageError
from deepq.run.checkpoint import (
    CheckpointWriteError,
    checkpoint_exists,
    keep_copy,
    saved_checkpoints_note,
)
from deepq.run.envs import make_env
from deepq.run.evaluation import SELECTION_EVAL_SEED, EvalResult, Evaluator
from deepq.run.files import RunWriteError, format_bytes, memory_bytes, write_json
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
        if restored is not None:  # train() checked a fresh config; a resumed one comes from a file
            check_memory(c, space, n_actions)
        self.network = build_network(c, n_actions, *encoder_for(space))
        params = init_params(c, space.shape, n_actions, space.dtype)
        self.learner = Learner(c, self.network, params)
        self.replay = make_replay(c, space)
        if isinstance(self.replay, FrameReplay):
            self.collector.store_frames_in(self.replay)
        self.rng = np.random.default_rng(c.seed)  # replay sampling and exploration
        self.collector.reset(c.seed)
        self.progress = RunProgress()
        if restored is not None:
            self.progress = restore_training_state(*restored, str(self.checkpoints / "latest"),
                self.learner, self.replay, self.collector, self.rng)  # fmt: skip
        self.logger = RunLogger(run_dir, c.total_steps, show_progress, tensorboard=tensorboard,
            resume_at=None if restored is None else (self.progress.episodes,
                                                     self.progress.env_steps))  # fmt: skip
        if isinstance(self.replay, FrameReplay) and restored is None:
            self.logger.message(replay_size_note(c, self.replay))
        if restored is not None and not c.save_replay:
            self.logger.message(
                "resumed without a saved replay (save_replay=false): the buffer refills from "
                "empty, so this is not an exact resume"
            )
        threshold = solved_threshold(c.solved_threshold, self.collector.spec)
        self.record = RunRecorder(self.progress, self.logger, threshold, c.solved_window)
        self.last_learning: dict[str, float] = {}  # the latest learning scalars, for the summary
        self.evaluator = Evaluator(lambda: make_config_env(c))
        self._greedy_actions = make_greedy_actions(self.network.apply)

    def agent(self, params: Any, **info: Any) -> Agent:
        """``params`` (the online network's, read from the learner) as an agent of this run."""
        p, space = self.progress, self.collector.observation_space
        info = {"env_steps": p.env_steps, "episodes": p.episodes, **info}
        return Agent(self.config, params, int(np.prod(space.shape)), self.collector.n_actions,
                     info, tuple(space.shape), str(space.dtype))  # fmt: skip

    def evaluate_and_keep_best(self) -> None:
        """A greedy evaluation on the selection seeds (never the reported ones); the best so far
        becomes ``checkpoints/best``. One that would become the best is first extended to
        ``best_eval_episodes``, and with ``stop_eval_mean`` one that would stop the run, or
        become the best at or above the solved threshold, to ``stop_eval_episodes``: 20
        episodes reach a bar by luck too often, and a lucky one kept as best shuts out the
        better-measured agents after it (docs/benchmarks.md, "The agent make train keeps")."""
        c, params = self.config, self.learner.params()

        def greedy(obs: np.ndarray) -> np.ndarray:
            return np.asarray(self._greedy_actions(params, obs))

        result = self.evaluator.run(greedy, c.eval_episodes, SELECTION_EVAL_SEED, c.eval_epsilon)
        episodes = self._episodes_to_count(result.mean)
        if episodes > c.eval_episodes:
            # episode k is reset with seed + k: these are episodes eval_episodes... of one run
            extra = self.evaluator.run(greedy, episodes - c.eval_episodes,
                                       SELECTION_EVAL_SEED + c.eval_episodes, c.eval_epsilon)  # fmt: skip
            result = EvalResult.from_episodes(result.returns + extra.returns,
                                              result.lengths + extra.lengths,
                                              c.eval_epsilon)  # fmt: skip
        if self.record.add_evaluation(result):
            save_agent(self.checkpoints / "best", self.agent(params, eval_mean=result.mean))

    def _episodes_to_count(self, mean: float) -> int:
        """How many episodes an evaluation whose first eval_episodes have this mean is measured
        on before it counts: the most that any extension rule asks for, else eval_episodes."""
        c, best, threshold = self.config, self.progress.best_eval_mean, self.record.threshold
        new_best = best is None or mean > best
        wanted = [c.eval_episodes]
        if new_best and c.best_eval_episodes is not None:
            wanted.append(c.best_eval_episodes)
        if c.stop_eval_mean is not None and (
            mean >= c.stop_eval_mean or (new_best and threshold is not None and mean >= threshold)
        ):
            wanted.append(c.stop_eval_episodes)
        return max(wanted)

    def save_latest(self) -> None:
        save_training_state(self.checkpoints / "latest", self.config, self.learner, self.replay,
                            self.collector, self.rng, self.record)  # fmt: skip

    def continue_to_new_total(self) -> None:
        """The start of a run continued to a new ``total_steps``: a finished run's ``final``
        checkpoint is kept as ``end-<env steps>`` (a name no pruning of ``step-*`` copies or of
        ``final`` matches), and ``latest`` and config.json take the new total now, before the
        first step."""
        final, steps = self.checkpoints / "final", self.progress.env_steps
        if final.exists():
            kept = self.checkpoints / f"end-{steps:012d}"
            try:
                final.rename(kept)
            except OSError as exc:
                raise CheckpointWriteError(
                    f"could not keep {final} as {kept} ({exc.strerror or exc})"
                ) from None
            self.logger.message(f"the run's end at env step {steps} is kept in {kept}")
        self.save_latest()
        write_json(self.run_dir / "config.json", self.config.to_dict())
        self.logger.message(f"continuing to total_steps={self.config.total_steps}")

    def save_periodic_checkpoint(self) -> None:
        """``latest``, and a ``step-<env steps>`` copy of it (hard links) when some are kept."""
        self.save_latest()
        if self.config.keep_checkpoints is not None:
            copy = self.checkpoints / f"step-{self.progress.env_steps:012d}"
            keep_copy(self.checkpoints / "latest", copy, self.config.keep_checkpoints)

    def log_learning(self) -> None:
        """Log the latest update's loss and mean Q (and, with prioritized replay, the priorities
        and β; with noisy nets, the noise's mean σ) to TensorBoard; the last values logged go
        into the summary and the report. A non-finite loss ends the run."""
        metrics = self.learner.metrics
        if metrics is None:
            return
        loss, env_steps = float(metrics["loss"]), self.progress.env_steps
        if not np.isfinite(loss):
            raise TrainingDiverged(
                f"the loss became non-finite by env step {env_steps} "
                f"(try a lower learning_rate); {saved_checkpoints_note(self.checkpoints)}"
            )
        scalars = {"train/loss": loss, "train/q_mean": float(metrics["q_mean"])}
        priorities = self.replay.priorities
        if priorities is not None and self.replay.size:
            scalars.update({
                "replay/priority_mean": priorities.total() / self.replay.size,
                "replay/priority_max": priorities.max_priority,
                "replay/beta": priorities.beta,
            })  # fmt: skip
        if self.config.noisy:  # how much noise the noisy layers have learned to keep
            scalars["train/noise_sigma"] = noise_scale(self.learner.params())
        self.logger.scalars(env_steps, scalars)
        self.last_learning = {"env_steps": env_steps, **scalars}

    def stopped_by_write_error(self, error: RunWriteError) -> RunWriteError:
        """A run file or checkpoint could not be written (a full disk, say): save ``latest``
        where space allows (a failed save leaves the previous one intact), and say where the
        run can resume from."""
        resume = f"deepq train --resume {self.run_dir}"
        saved = False
        if not isinstance(error, CheckpointWriteError):  # a checkpoint just failed: no retry
            try:
                self.save_latest()
                saved = True
            except DeepQError:
                pass
        if saved:
            where = f"stopped at env step {self.progress.env_steps}, saved; resume with: {resume}"
        elif checkpoint_exists(self.checkpoints / "latest"):
            where = f"stopped; resume from its last checkpoint with: {resume}"
        else:
            where = "stopped before any checkpoint was saved"
        return RunWriteError(f"{error}; the run {where}")

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
            eval_epsilon=self.config.eval_epsilon,
            grad_steps=int(self.learner.state.grad_steps),
            **({"learning": self.last_learning} if self.last_learning else {}),
        )
        return TrainResult(self.run_dir, summary, best)


def noise_scale(params: Any) -> float:
    """The mean |σ| of the noisy layers' weight noise (``sigma_kernel``)."""
    sigmas = leaves_named(params, "sigma_kernel")
    return float(np.mean(np.concatenate([np.abs(np.ravel(s)) for s in sigmas])))


def make_replay(config: DQNConfig, space: Any) -> ReplayBuffer | FrameReplay:
    """Stacked frames (Atari) go to the replay that stores each frame once; anything else to the
    plain one, which stores observations as they are. Either samples by priority when
    ``prioritized``."""
    c, stack = config, frame_stack(config.env_id, space.shape)
    if stack > 1:
        replay: ReplayBuffer | FrameReplay = FrameReplay(
            c.buffer_size, space.shape[:2], stack, c.num_envs, c.n_step, space.dtype
        )
    else:
        replay = ReplayBuffer(c.buffer_size, space.shape, space.dtype)
    if c.prioritized:
        replay.prioritize(c.priority_alpha, c.priority_eps)
    return replay


def replay_size_note(config: DQNConfig, replay: FrameReplay) -> str:
    """What the frame replay takes in memory, and in each training checkpoint once full."""
    size = format_bytes(replay.nbytes)
    saved = (
        f"each training checkpoint saves it (up to {size}; --set save_replay=false to not, "
        "at the cost of an exact resume)"
        if config.save_replay
        else "checkpoints leave it out (save_replay=false): a resume refills it from empty"
    )
    return (
        f"replay: {config.buffer_size:,} transitions of stacked frames, {size} in memory; {saved}"
    )


def make_config_env(config: DQNConfig) -> Any:
    """One env as ``config`` trains on it (the collector steps ``num_envs`` of these)."""
    c = config
    return make_env(c.env_id, c.max_episode_steps, c.time_feature, None, "frames", c.sticky_actions)


def run_memory_bytes(config: DQNConfig, observation_space: Any, n_actions: int) -> int:
    """What a run allocates, about: the replay (observations twice, five scalar columns), the
    parameters four times (online, target, Adam's two moments) plus a gradient's worth, the
    batches of one learning call (sampled on the host, copied to the device) and the n-step
    steps each env holds back."""
    c = config
    obs_bytes = int(np.prod(observation_space.shape)) * np.dtype(observation_space.dtype).itemsize
    replay = config.buffer_size * (2 * obs_bytes + 5 * 4)
    batches = samples_per_learning_call(c)
    pending = c.num_envs * c.n_step * obs_bytes
    stack = frame_stack(config.env_id, observation_space.shape)
    if stack > 1:  # each frame once, ids instead of pixels (make_replay's FrameReplay)
        c, space = config, observation_space
        replay = planned_nbytes(c.buffer_size, space.shape[:-1], stack, c.num_envs, c.n_step,
                                space.dtype)  # fmt: skip
    shapes = params_shape(
        config, tuple(observation_space.shape), n_actions, observation_space.dtype
    )
    n_params = sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(shapes))
    return replay + 5 * 4 * n_params + 2 * batches * (2 * obs_bytes + 5 * 4) + pending


def check_memory(
    config: DQNConfig, observation_space: Any = None, n_actions: int | None = None
) -> None:
    """Refuse a config that would not fit this machine's memory, naming the size, before a run
    directory or a buffer exists. Without spaces, the config's env is made to read them (which
    also fails early on an unknown env)."""
    if observation_space is None or n_actions is None:
        env = make_config_env(config)
        observation_space, n_actions = env.observation_space, int(env.action_space.n)
        env.close()
    needed, available = run_memory_bytes(config, observation_space, n_actions), memory_bytes()
    if needed > available // 2:
        raise UsageError(
            f"this config needs about {format_bytes(needed)} of memory (buffer_size "
            f"{config.buffer_size}, hidden_sizes {list(config.hidden_sizes)}), more than half of "
            f"this machine's {format_bytes(available)}"
        )
