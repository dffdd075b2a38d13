"""The TD targets and the loss: small pure functions, the Bellman equation of each in its docstring.

Where do ``terminated`` and ``truncated`` go? Only ``terminated`` enters a target: a time-limit
cut (``truncated``) is not a terminal state, so it bootstraps like any other step. The replay
stores both; the env collector recovers a truncated episode's real final observation.

A *target function* (:data:`TargetFn`) is how the loss gets its target from the networks: the
one for (Double) DQN and the one for Munchausen DQN. :func:`target_fn_for` picks it from the
config; :func:`dqn_loss` does not know which it has. C51's distributional target is
:func:`categorical_projection`, and its loss :func:`categorical_loss`. :func:`loss_fn_for` gives
the learner the config's loss, with each network call's noise when the layers are noisy.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from deepq.dqn.config import DQNConfig
from deepq.dqn.replay import Batch

ApplyFn = Callable[[Any, jax.Array], jax.Array]  # (params, obs [B, ...]) -> Q-values [B, A]
# (online params, target params, batch, apply_fn) -> the target y [B] (gradients stopped later)
TargetFn = Callable[[Any, Any, Batch, ApplyFn], jax.Array]


def td_target(
    rewards: jax.Array,  # [B]
    terminated: jax.Array,  # [B] bool
    next_q_target: jax.Array,  # [B, A] target network at s'
    next_q_online: jax.Array,  # [B, A] online network at s' (used by Double DQN only)
    discounts: jax.Array | float,  # [B] or scalar: γ, or γ^m for an m-step return
    double: bool,
) -> jax.Array:
    """y = r + γ · (1 − terminated) · Q_target(s', a*)

    a* = argmax_a Q_online(s', a) with Double DQN (van Hasselt et al. 2016), otherwise
    argmax_a Q_target(s', a), i.e. y = r + γ max_a Q_target(s', a). For an m-step transition r is
    the discounted sum of m rewards and γ becomes γ^m. Truncation is not an input: a time-limit
    cut is not a terminal state, so it bootstraps like any other step.
    """
    best_next_action = jnp.argmax(next_q_online if double else next_q_target, axis=-1)
    next_value = jnp.take_along_axis(next_q_target, best_next_action[..., None], axis=-1)[..., 0]
    return rewards + discounts * (1.0 - terminated.astype(jnp.float32)) * next_value


class MunchausenTerm(NamedTuple):
    """Munchausen DQN's three constants (see :func:`munchausen_target`)."""

    temperature: float  # τ
    alpha: float  # α
    log_policy_floor: float  # l0


def munchausen_target(
    rewards: jax.Array,  # [B]
    terminated: jax.Array,  # [B] bool
    actions: jax.Array,  # [B] int: the action taken in s
    q_target: jax.Array,  # [B, A] target network at s
    next_q_target: jax.Array,  # [B, A] target network at s'
    discounts: jax.Array | float,  # [B] or scalar γ
    term: MunchausenTerm,
) -> jax.Array:
    """Munchausen DQN (Vieillard et al. 2020), with π = softmax(Q_target / τ):

    y = r + α · clip(τ · ln π(a|s), l0, 0)
          + γ · (1 − terminated) · Σ_a' π(a'|s') · (Q_target(s', a') − τ · ln π(a'|s'))

    The bonus rewards the action taken by how likely the current policy is to take it, which
    widens the gap between the best action and the rest; the sum over a' is the soft (entropy-
    regularised) value of s', which equals τ · logsumexp(Q_target(s') / τ), computed here in that
    stable form. As τ → 0 with α = 0 this is DQN's r + γ · max_a' Q_target(s', a').

    Written here rather than taken from rlax (``rlax.munchausen_q_learning``): rlax requires
    distrax, which requires ``tfp-nightly`` (TensorFlow Probability's nightly build), for these
    few lines.
    """
    temperature, alpha, log_policy_floor = term
    log_policy = jax.nn.log_softmax(q_target / temperature, axis=-1)
    log_policy_taken = jnp.take_along_axis(log_policy, actions[:, None], axis=-1)[:, 0]
    bonus = alpha * jnp.clip(temperature * log_policy_taken, log_policy_floor, 0.0)
    next_value = temperature * jax.nn.logsumexp(next_q_target / temperature, axis=-1)
    return rewards + bonus + discounts * (1.0 - terminated.astype(jnp.float32)) * next_value


def q_learning_target_fn(double: bool) -> TargetFn:
    """DQN's target through the networks: :func:`td_target` with Q_target(s') and, for Double
    DQN, Q_online(s') choosing the action."""

    def target(params: Any, target_params: Any, batch: Batch, apply_fn: ApplyFn) -> jax.Array:
        next_q_target = apply_fn(target_params, batch.next_obs)
        next_q_online = apply_fn(params, batch.next_obs) if double else next_q_target
        return td_target(
            batch.rewards, batch.terminated, next_q_target, next_q_online, batch.discounts, double
        )

    return target


def munchausen_target_fn(term: MunchausenTerm) -> TargetFn:
    """Munchausen DQN's target through the networks: :func:`munchausen_target`, with the target
    network run once over s and s' together (one matmul per layer instead of two)."""

    def target(params: Any, target_params: Any, batch: Batch, apply_fn: ApplyFn) -> jax.Array:
        both = apply_fn(target_params, jnp.concatenate([batch.obs, batch.next_obs]))
        q_target, next_q_target = jnp.split(both, 2)
        return munchausen_target(
            batch.rewards,
            batch.terminated,
            batch.actions,
            q_target,
            next_q_target,
            batch.discounts,
            term,
        )

    return target


def target_fn_for(config: DQNConfig) -> TargetFn:
    """The config's target: Munchausen when ``munchausen``, else DQN (Double when ``double``)."""
    if config.munchausen:
        return munchausen_target_fn(
            MunchausenTerm(
                config.munchausen_temperature,
                config.munchausen_alpha,
                config.munchausen_log_policy_floor,
            )
        )
    return q_learning_target_fn(config.double)


def categorical_projection(
    rewards: jax.Array,  # [B]
    terminated: jax.Array,  # [B] bool
    discounts: jax.Array | float,  # [B] or scalar: γ, or γ^m for an m-step return
    next_probabilities: jax.Array,  # [B, N]: the target network's distribution at (s', a*)
    support: jax.Array,  # [N]: the atoms z_1 < ... < z_N, evenly spaced
) -> jax.Array:
    """C51's target (Bellemare et al. 2017): the distribution of r + γ · (1 − terminated) · Z(s', a*)
    put back on the fixed support.

    Atom z_j moves to Tz_j = clip(r + γ · (1 − terminated) · z_j, z_1, z_N), and its probability
    p_j is shared between the two atoms on either side of Tz_j, each in proportion to its
    nearness:

        m_i = Σ_j clip(1 − |Tz_j − z_i| / Δz, 0, 1) · p_j

    (all of p_j goes to z_i when Tz_j falls on it; a terminal transition puts everything at r).
    """
    spacing = (support[-1] - support[0]) / (support.shape[-1] - 1)
    gamma = jnp.broadcast_to(discounts, rewards.shape) * (1.0 - terminated.astype(jnp.float32))
    moved = jnp.clip(rewards[:, None] + gamma[:, None] * support, support[0], support[-1])
    share = jnp.clip(1.0 - jnp.abs(moved[:, None, :] - support[None, :, None]) / spacing, 0.0, 1.0)
    return jnp.einsum("bij,bj->bi", share, next_probabilities)  # [B, N]


def categorical_loss(
    params: Any,
    target_params: Any,
    batch: Batch,
    logits_fn: ApplyFn,  # (params, obs [B, ...]) -> logits [B, A, N]
    support: jax.Array,
    double: bool,
    l2_coef: float,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """C51's loss: the cross-entropy of Z(s, a)'s distribution against the projected target
    (stop-gradient), each sample's term scaled by its importance weight under prioritized
    replay. a* is the greedy action of the target network's mean, or with Double DQN the online
    network's. ``td_abs`` is each sample's cross-entropy, its priority under prioritized replay
    (as Dopamine's Rainbow; the paper's KL divergence is this less the target's entropy)."""
    logits = logits_fn(params, batch.obs)  # [B, A, N]
    taken = jnp.take_along_axis(logits, batch.actions[:, None, None], axis=1)[:, 0]  # [B, N]
    next_target = jax.nn.softmax(logits_fn(target_params, batch.next_obs), axis=-1)
    next_q = next_target @ support  # [B, A]
    if double:
        next_q = jax.nn.softmax(logits_fn(params, batch.next_obs), axis=-1) @ support
    best = jnp.argmax(next_q, axis=-1)
    next_probabilities = jnp.take_along_axis(next_target, best[:, None, None], axis=1)[:, 0]
    target = jax.lax.stop_gradient(
        categorical_projection(
            batch.rewards, batch.terminated, batch.discounts, next_probabilities, support
        )
    )
    cross_entropy = -jnp.sum(target * jax.nn.log_softmax(taken, axis=-1), axis=-1)  # [B]
    td_loss = jnp.mean(cross_entropy if batch.weights is None else batch.weights * cross_entropy)
    total = td_loss + l2_coef * l2_penalty(params) if l2_coef > 0 else td_loss
    q_taken = jax.nn.softmax(taken, axis=-1) @ support
    metrics = {"loss": total, "td_loss": td_loss, "q_mean": jnp.mean(q_taken)}
    return total, {**metrics, "td_abs": cross_entropy}


# (params, target params, batch, noise key or None) -> (loss, metrics)
LossFn = Callable[[Any, Any, Batch, Any], tuple[jax.Array, dict[str, jax.Array]]]


def loss_fn_for(config: DQNConfig, network: Any) -> LossFn:
    """The config's loss through ``network`` (a QNetwork): C51's when ``num_atoms`` > 1, else
    :func:`dqn_loss` with :func:`target_fn_for`'s target.

    With noisy layers the loss takes a key, and every network call in it draws its own noise
    from that key (online at s, target at s', online at s' for Double DQN: independent, as
    Rainbow's): the calls are numbered in the order the loss makes them, which is fixed, so
    the same key gives the same noise."""

    def network_calls(noise_key: Any) -> Callable[..., jax.Array]:
        if noise_key is None:
            return network.apply
        numbers = itertools.count()

        def apply(params: Any, obs: jax.Array, logits: bool = False) -> jax.Array:
            key = jax.random.fold_in(noise_key, next(numbers))
            return network.apply(params, obs, logits, rngs={"noise": key})

        return apply

    if config.num_atoms > 1:
        support = jnp.asarray(network.support)

        def c51_loss(params: Any, target_params: Any, batch: Batch, noise_key: Any = None):
            apply = network_calls(noise_key)
            logits_fn = lambda p, obs: apply(p, obs, True)  # noqa: E731
            return categorical_loss(
                params, target_params, batch, logits_fn, support, config.double, config.l2_coef
            )

        return c51_loss
    target_fn = target_fn_for(config)

    def q_loss(params: Any, target_params: Any, batch: Batch, noise_key: Any = None):
        return dqn_loss(params, target_params, batch, network_calls(noise_key), target_fn,
                        config.loss, config.huber_delta, config.l2_coef)  # fmt: skip

    return q_loss


def leaves_named(params: Any, name: str) -> list[Any]:
    """Every parameter array called ``name`` (``kernel``, ``sigma_kernel``, ...), in tree order."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    return [leaf for path, leaf in leaves if getattr(path[-1], "key", None) == name]


def l2_penalty(params: Any) -> jax.Array:
    """Sum of squared weight matrices (biases excluded), as Keras' ``l2`` regulariser."""
    return sum((jnp.sum(k**2) for k in leaves_named(params, "kernel")), start=jnp.zeros(()))


def dqn_loss(
    params: Any,
    target_params: Any,
    batch: Batch,
    apply_fn: ApplyFn,
    target_fn: TargetFn,
    loss: str,
    huber_delta: float,
    l2_coef: float,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean TD loss of Q(s, a) against the fixed (stop-gradient) target ``target_fn`` gives, plus
    the L2 penalty: mean over the batch of (Q(s, a) - y)², or its Huber form, each sample's
    term scaled by its importance weight when the batch comes from prioritized replay. The
    metrics carry each sample's |TD error| (``td_abs``), its new priority."""
    q_values = apply_fn(params, batch.obs)  # [B, A]
    q_taken = jnp.take_along_axis(q_values, batch.actions[:, None], axis=-1)[:, 0]
    target = jax.lax.stop_gradient(target_fn(params, target_params, batch, apply_fn))
    td_error = q_taken - target
    if loss == "huber":
        per_sample = optax.huber_loss(td_error, delta=huber_delta)
    else:
        per_sample = td_error**2
    td_loss = jnp.mean(per_sample if batch.weights is None else batch.weights * per_sample)
    total = td_loss + l2_coef * l2_penalty(params) if l2_coef > 0 else td_loss
    metrics = {"loss": total, "td_loss": td_loss, "q_mean": jnp.mean(q_taken)}
    return total, {**metrics, "td_abs": jnp.abs(td_error)}
