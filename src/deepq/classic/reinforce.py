"""REINFORCE (Williams 1992), after the Hands-On ML RL chapter: a softmax policy network trained on whole episodes.

``deepq train --algo reinforce --env CartPole-v1``. Each iteration plays ``episodes_per_update``
episodes side by side, discounts each episode's rewards, normalises them across the batch (the
advantage of every action), and takes one optimiser step (Adam by default) on
−mean(advantage · log π(a|s)). An optional warm-up first teaches the network a hand-written
policy by imitation across many parallel envs (the chapter's first neural-network policy), and
with ``iterations=0`` it is the whole run. Run directory, progress, evaluation, checkpoints,
plot, video and report are the DQN's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepq.classic.configs import ReinforceConfig
from deepq.dqn.networks import hidden_layers
from deepq.errors import TrainingDiverged, UsageError
from deepq.run.checkpoint import (
    arrays_to_pytree,
    checkpoint_config,
    load_checkpoint,
    pytree_to_arrays,
    require_finite,
    save_network_agent,
)
from deepq.run.envs import episode_seed, make_agent_env, make_env, make_vector_env
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

# ----------------------------------------------------------------------------------------------
# Pure pieces: returns, advantages, sampling, the loss.
# ----------------------------------------------------------------------------------------------


class PolicyNetwork(nn.Module):
    """obs [..., obs_dim] -> action logits [..., n_actions] (a softmax policy, for REINFORCE).

    No hidden sizes: a linear policy. ``head="sigmoid"`` (two actions): one output z with
    p(action 0) = σ(z), the chapter's ``Dense(1, activation="sigmoid")``. Its logits are [z, 0],
    whose softmax is exactly [σ(z), 1 − σ(z)], so the softmax cross-entropy of those logits is
    the chapter's binary cross-entropy and every other piece works unchanged.
    """

    n_actions: int
    hidden_sizes: Sequence[int] = (32,)
    activation: str = "elu"
    head: str = "softmax"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = hidden_layers(obs, self.hidden_sizes, self.activation)
        if self.head == "sigmoid":
            z = nn.Dense(1, name="logits")(x)
            return jnp.concatenate([z, jnp.zeros_like(z)], axis=-1)
        return nn.Dense(self.n_actions, name="logits")(x)


def make_optimizer(name: str, learning_rate: float) -> optax.GradientTransformation:
    """adam, rmsprop or sgd. RMSprop as Keras defines it (the chapter's optimiser): ρ = 0.9 and
    ε = 1e-7 added outside the square root (optax's default puts it inside)."""
    if name == "rmsprop":
        return optax.rmsprop(learning_rate, decay=0.9, eps=1e-7, eps_in_sqrt=False)
    if name == "sgd":
        return optax.sgd(learning_rate)
    return optax.adam(learning_rate)


def discount_rewards(rewards: list[float] | np.ndarray, gamma: float) -> np.ndarray:
    """G_t = r_t + γ G_{t+1}: each action is credited with the discounted rewards after it."""
    discounted = np.array(rewards, dtype=np.float64)
    for t in range(len(discounted) - 2, -1, -1):
        discounted[t] += gamma * discounted[t + 1]
    return discounted


def discount_and_normalize_rewards(
    all_rewards: list[list[float]], gamma: float
) -> list[np.ndarray]:
    """Discount each episode, then standardise with the mean and std of all episodes' values
    together: above-average actions get positive advantages."""
    discounted = [discount_rewards(rewards, gamma) for rewards in all_rewards]
    flat = np.concatenate(discounted)
    std = flat.std()
    scale = std if std > 0 else 1.0  # all returns equal: no action was better than another
    return [(d - flat.mean()) / scale for d in discounted]


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """p^(1/T), renormalised over the last axis: T < 1 sharpens, T > 1 flattens."""
    scaled = np.power(np.asarray(probabilities, dtype=np.float64), 1.0 / temperature)
    return scaled / scaled.sum(axis=-1, keepdims=True)


def reinforce_loss(
    params: Any,
    apply_fn: Callable[..., jax.Array],
    obs: jax.Array,  # [T, obs_dim]
    actions: jax.Array,  # [T]
    advantages: jax.Array,  # [T]
    mask: jax.Array,  # [T] 1 for real steps, 0 for padding
) -> jax.Array:
    """−mean over real steps of advantage · log π(a|s): its gradient is the policy gradient."""
    log_probs = jax.nn.log_softmax(apply_fn(params, obs))  # [T, n_actions]
    taken = jnp.take_along_axis(log_probs, actions[:, None], axis=1)[:, 0]
    return -jnp.sum(mask * advantages * taken) / jnp.maximum(jnp.sum(mask), 1.0)


def imitation_loss(
    params: Any, apply_fn: Callable[..., jax.Array], obs: jax.Array, teacher_actions: jax.Array
) -> jax.Array:
    """Cross-entropy between the policy and a teacher's actions."""
    logits = apply_fn(params, obs)
    return optax.softmax_cross_entropy_with_integer_labels(logits, teacher_actions).mean()


def _make_step(
    loss_fn: Callable[..., jax.Array], apply_fn: Callable, optimizer: optax.GradientTransformation
):
    """One jitted optimiser step on ``loss_fn(params, apply_fn, *batch)``."""

    @jax.jit
    def step(params: Any, opt_state: Any, *batch: jax.Array):
        loss, grads = jax.value_and_grad(loss_fn)(params, apply_fn, *batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def _padded_length(steps: int) -> int:
    """Batches are padded to a power of two (at least 256), so the update compiles a few times
    per run rather than once per distinct batch length."""
    return max(256, 1 << (steps - 1).bit_length())


# ----------------------------------------------------------------------------------------------
# The agent and its checkpoint.
# ----------------------------------------------------------------------------------------------


@dataclass
class ReinforceAgent:
    config: ReinforceConfig
    params: Any
    obs_dim: int
    n_actions: int
    info: dict[str, Any]

    @property
    def network(self) -> PolicyNetwork:
        return policy_network(self.config, self.n_actions)

    def action_probabilities(self, obs: np.ndarray) -> np.ndarray:
        logits = self.network.apply(self.params, np.asarray(obs, dtype=np.float32))
        return np.asarray(jax.nn.softmax(logits))

    def act(self, obs: np.ndarray) -> int:
        """Greedy: the most probable action."""
        return int(np.argmax(self.action_probabilities(obs)))

    def policy(self) -> Callable[[np.ndarray], np.ndarray]:
        apply = jax.jit(self.network.apply)
        return lambda obs: np.asarray(jnp.argmax(apply(self.params, obs), axis=-1))

    def make_env(self, render_mode: str | None = None):
        """The agent's env; one whose spaces differ from the checkpoint's is refused."""
        return make_agent_env(self.obs_dim, self.n_actions, self.config.env_id,
                              self.config.max_episode_steps, render_mode=render_mode)  # fmt: skip


def policy_network(config: ReinforceConfig, n_actions: int) -> PolicyNetwork:
    if config.policy_head == "sigmoid" and n_actions != 2:
        raise UsageError(f"policy_head=sigmoid needs 2 actions, not {n_actions}: use softmax")
    return PolicyNetwork(n_actions, tuple(config.hidden_sizes), config.activation,
                         config.policy_head)  # fmt: skip


def _init_params(config: ReinforceConfig, obs_dim: int, n_actions: int) -> Any:
    network = policy_network(config, n_actions)
    return network.init(jax.random.key(config.seed), jnp.zeros((1, obs_dim), jnp.float32))


def save_reinforce_agent(directory: Path, agent: ReinforceAgent) -> None:
    save_network_agent(directory, "reinforce-agent", agent)


def reinforce_agent_from(
    arrays: dict[str, np.ndarray], meta: dict[str, Any], source: str
) -> ReinforceAgent:
    """The agent in a verified checkpoint (``meta`` already matches its schema)."""
    config = checkpoint_config(ReinforceConfig.from_dict, meta, source)
    obs_dim, n_actions = meta["obs_dim"], meta["n_actions"]
    template = jax.eval_shape(lambda: _init_params(config, obs_dim, n_actions))
    params = arrays_to_pytree("params", template, arrays, source)
    require_finite(pytree_to_arrays("params", params), source)
    return ReinforceAgent(config, params, obs_dim, n_actions, dict(meta["info"]))


def checkpoint_arrays_bound(meta: dict[str, Any], source: str) -> int:
    """The parameters the config and env facts of a REINFORCE checkpoint imply, and room for
    the arrays file's header: a larger file is refused before it is read."""
    config = checkpoint_config(ReinforceConfig.from_dict, meta, source)
    template = jax.eval_shape(lambda: _init_params(config, meta["obs_dim"], meta["n_actions"]))
    leaves = jax.tree_util.tree_leaves(template)
    return sum(leaf.size * leaf.dtype.itemsize for leaf in leaves) + (1 << 20)


def load_reinforce_agent(directory: Path) -> ReinforceAgent:
    source = str(directory / "meta.json")
    arrays, meta = load_checkpoint(directory, lambda m: checkpoint_arrays_bound(m, source))
    return reinforce_agent_from(arrays, meta, str(directory))


# ----------------------------------------------------------------------------------------------
# Training.
# ----------------------------------------------------------------------------------------------


def imitate(c: ReinforceConfig, params: Any, apply_fn: Callable, logger: RunLogger) -> Any:
    """The chapter's warm-up: across ``imitation_envs`` envs at once, step the policy toward the
    hand-written teacher's action in every observed state, while acting with the policy."""
    from deepq.classic.policies import HAND_WRITTEN

    if c.env_id != "CartPole-v1":
        raise UsageError(
            f"imitation_policy={c.imitation_policy!r} is a CartPole-v1 policy, not for {c.env_id}"
        )
    teacher = HAND_WRITTEN[c.imitation_policy][0]
    optimizer = make_optimizer(c.imitation_optimizer, c.imitation_learning_rate)
    opt_state = optimizer.init(params)
    step = _make_step(imitation_loss, apply_fn, optimizer)
    sample_logits = jax.jit(apply_fn)
    rng = np.random.default_rng([c.seed, 1])
    envs = make_vector_env(c.env_id, c.imitation_envs, c.max_episode_steps)
    try:
        obs, _ = envs.reset(seed=c.seed + 1_000_000)
        loss = jnp.zeros(())
        for _ in range(c.imitation_iterations):
            # as the chapter: act with the probabilities the step was computed from
            probabilities = np.asarray(jax.nn.softmax(sample_logits(params, obs)))
            params, opt_state, loss = step(params, opt_state, obs, teacher(obs))
            obs, *_ = envs.step(_sample(probabilities, rng))
    finally:
        envs.close()
    logger.message(
        f"imitation of the {c.imitation_policy!r} policy: {c.imitation_iterations} steps on "
        f"{c.imitation_envs} envs, final cross-entropy {float(loss):.3f}"
    )
    return params


def _sample(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action per row of [N, n_actions] probabilities (inverse CDF; numpy, no per-row loop)."""
    cumulative = np.cumsum(probabilities, axis=1)
    coins = rng.random((len(probabilities), 1)) * cumulative[:, -1:]
    return np.minimum((coins > cumulative).sum(axis=1), probabilities.shape[1] - 1)


def train_reinforce(
    config: ReinforceConfig,
    run_dir: Path,
    show_progress: bool | None = None,
    tensorboard: bool = True,
) -> tuple[dict[str, Any], ReinforceAgent]:
    """Run REINFORCE into ``run_dir`` (created, with config.json, by the caller)."""
    c = config
    # --- environments: one per episode of an update, each episode seeded ---
    envs = [make_env(c.env_id, c.max_episode_steps) for _ in range(c.episodes_per_update)]
    obs_dim, n_actions = int(envs[0].observation_space.shape[0]), int(envs[0].action_space.n)
    # --- policy, optimiser ---
    network = policy_network(c, n_actions)
    params = _init_params(c, obs_dim, n_actions)
    optimizer = make_optimizer(c.optimizer, c.learning_rate)
    policy_logits = jax.jit(network.apply)
    update = _make_step(reinforce_loss, network.apply, optimizer)
    rng = np.random.default_rng(c.seed)
    # --- records, evaluation, checkpoints ---
    p = RunProgress()
    logger = RunLogger(
        run_dir, None, show_progress, log_every_episodes=100, tensorboard=tensorboard
    )
    record = RunRecorder(
        p, logger, solved_threshold(c.solved_threshold, envs[0].spec), c.solved_window
    )
    evaluator = Evaluator(lambda: make_env(c.env_id, c.max_episode_steps))
    checkpoints = run_dir / "checkpoints"

    def agent_now() -> ReinforceAgent:
        return ReinforceAgent(
            c, params, obs_dim, n_actions, {"env_steps": p.env_steps, "episodes": p.episodes}
        )

    def evaluate_now() -> None:
        # greedy with the loop's jitted forward pass (agent.policy() would compile it again)
        greedy = lambda obs: np.argmax(np.asarray(policy_logits(params, obs)), axis=-1)  # noqa: E731
        result = evaluator.run(greedy, c.eval_episodes, SELECTION_EVAL_SEED)
        if record.add_evaluation(result):
            save_reinforce_agent(checkpoints / "best", agent_now())

    rules = StopRules(c.stop_when_solved)  # and the iterations, below
    stop_reason = None
    try:
        with StopSignal() as stop_signal:
            clock = TrainingClock(p)
            if c.imitation_policy != "none" and c.imitation_iterations > 0:
                params = imitate(c, params, network.apply, logger)
            opt_state = optimizer.init(params)
            iteration = 0  # iterations=0: the imitated policy is the result
            for iteration in range(1, c.iterations + 1):
                # 1. play episodes_per_update episodes side by side, sampling from the policy
                obs = np.stack([env.reset(seed=episode_seed(c.seed, p.episodes + k))[0]
                                for k, env in enumerate(envs)])  # fmt: skip
                alive = np.ones(len(envs), dtype=bool)
                trajectories = [
                    ([], [], []) for _ in envs
                ]  # per env: observations, actions, rewards
                while alive.any():
                    probabilities = np.asarray(jax.nn.softmax(policy_logits(params, obs)))
                    actions = _sample(apply_temperature(probabilities, c.temperature), rng)
                    for k in np.flatnonzero(alive):
                        next_obs, reward, terminated, truncated, _ = envs[k].step(int(actions[k]))
                        trajectories[k][0].append(obs[k].copy())
                        trajectories[k][1].append(int(actions[k]))
                        trajectories[k][2].append(float(reward))
                        obs[k] = next_obs
                        alive[k] = not (terminated or truncated)
                # 2. advantages: discounted, normalised across the batch
                all_rewards = [rewards for _, _, rewards in trajectories]
                advantages = (discount_and_normalize_rewards(all_rewards, c.gamma)
                              if c.normalize_advantages
                              else [discount_rewards(r, c.gamma) for r in all_rewards])  # fmt: skip
                # 3. one policy-gradient step on every step of every episode (padded batch)
                steps = sum(len(rewards) for rewards in all_rewards)
                size = _padded_length(steps)
                batch_obs = np.zeros((size, obs_dim), np.float32)
                batch_obs[:steps] = np.concatenate([np.stack(o) for o, _, _ in trajectories])
                batch_actions = np.zeros(size, np.int32)
                batch_actions[:steps] = np.concatenate([a for _, a, _ in trajectories])
                batch_advantages = np.zeros(size, np.float32)
                batch_advantages[:steps] = np.concatenate(advantages)
                mask = (np.arange(size) < steps).astype(np.float32)
                params, opt_state, loss = update(params, opt_state, batch_obs, batch_actions,
                                                 batch_advantages, mask)  # fmt: skip
                if not np.isfinite(float(loss)):
                    raise TrainingDiverged(f"the loss became non-finite at iteration {iteration}")
                # 4. bookkeeping
                wall = clock.elapsed()
                for _, _, rewards in trajectories:
                    p.env_steps += len(rewards)
                    record.end_episode(sum(rewards), len(rewards), 0.0, wall)
                logger.scalars(p.env_steps, {"train/loss": float(loss)})
                # 5. evaluate (the clock stops), stop?
                if c.eval_every_iterations and iteration % c.eval_every_iterations == 0:
                    with clock.paused():
                        evaluate_now()
                stop_reason = rules.reason(p, clock.elapsed(), stop_signal.requested)
                if stop_reason is not None:
                    break
            stop_reason = stop_reason or "iterations"
        summary, best = finish_run(
            record,
            clock,
            run_dir,
            c.env_id,
            stop_reason,
            evaluate_now=evaluate_now,
            save_final=lambda: save_reinforce_agent(checkpoints / "final", agent_now()),
            load_best=lambda: load_reinforce_agent(checkpoints / "best"),
            evaluator=evaluator,
            final_eval_episodes=c.final_eval_episodes,
            updates=iteration,
        )
    finally:
        for env in envs:
            env.close()
        evaluator.close()
        logger.close()
    return summary, best
