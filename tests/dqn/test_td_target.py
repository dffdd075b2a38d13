"""The TD target: vanilla, Double and Munchausen DQN, terminal and truncated transitions, fixed
target."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepq.dqn.losses import (
    MunchausenTerm,
    dqn_loss,
    munchausen_target,
    munchausen_target_fn,
    q_learning_target_fn,
    td_target,
)
from deepq.dqn.replay import Batch

REWARDS = jnp.array([1.0, 2.0, 3.0, 4.0])
TERMINATED = jnp.array([False, True, False, False])
NEXT_Q_TARGET = jnp.array([[1.0, 5.0], [2.0, 8.0], [4.0, 3.0], [0.0, -1.0]])
NEXT_Q_ONLINE = jnp.array([[6.0, 2.0], [1.0, 0.0], [3.0, 9.0], [7.0, 1.0]])


def test_vanilla_target_takes_the_target_networks_max():
    y = td_target(REWARDS, TERMINATED, NEXT_Q_TARGET, NEXT_Q_ONLINE, 0.9, double=False)
    # max_a Q_target(s', a) = [5, 8, 4, 0]; the second transition is terminal: y = r.
    np.testing.assert_allclose(y, [1 + 0.9 * 5, 2.0, 3 + 0.9 * 4, 4 + 0.9 * 0], rtol=1e-6)


def test_double_target_lets_the_online_net_choose_and_the_target_net_value():
    y = td_target(REWARDS, TERMINATED, NEXT_Q_TARGET, NEXT_Q_ONLINE, 0.9, double=True)
    # argmax_a Q_online(s', a) = [0, 0, 1, 0] -> Q_target values [1, 2, 3, 0]
    np.testing.assert_allclose(y, [1 + 0.9 * 1, 2.0, 3 + 0.9 * 3, 4 + 0.9 * 0], rtol=1e-6)


def test_gamma_zero_and_one():
    np.testing.assert_allclose(
        td_target(REWARDS, TERMINATED, NEXT_Q_TARGET, NEXT_Q_ONLINE, 0.0, False), REWARDS
    )
    np.testing.assert_allclose(
        td_target(REWARDS, TERMINATED, NEXT_Q_TARGET, NEXT_Q_ONLINE, 1.0, False),
        [6.0, 2.0, 7.0, 4.0],
    )


def linear_q(params, obs):
    """Q(s) = s @ W: a network whose gradients can be written down by hand."""
    return obs @ params["w"]


def one_transition(terminated: bool, truncated: bool) -> Batch:
    return Batch(
        obs=jnp.array([[1.0, 0.0]]),
        actions=jnp.array([0]),
        rewards=jnp.array([1.0]),
        next_obs=jnp.array([[0.0, 1.0]]),
        terminated=jnp.array([terminated]),
        truncated=jnp.array([truncated]),
        discounts=jnp.array([0.5]),
    )


W = {"w": jnp.array([[2.0, 0.0], [1.0, 3.0]])}  # Q(s)=[2, 0], Q(s')=[1, 3]


def loss_of(batch, double=False, loss="mse"):
    return dqn_loss(W, W, batch, linear_q, q_learning_target_fn(double), loss, 1.0, 0.0)


def test_double_dqn_loss_lets_the_online_network_choose_and_the_target_network_value():
    # Online Q(s') = [1, 3] (W) picks action 1; the target network values s' as [5, 0]. Double
    # DQN: y = 1 + 0.5 * Q_T(s', 1) = 1; plain DQN: y = 1 + 0.5 * max(5, 0) = 3.5. Q(s, 0) = 2.
    # With the online and target networks this different, choosing a' with the target network
    # inside the loss would give Double DQN plain DQN's 3.5.
    target_params = {"w": jnp.array([[0.0, 0.0], [5.0, 0.0]])}
    batch = one_transition(terminated=False, truncated=False)
    _, double = dqn_loss(
        W, target_params, batch, linear_q, q_learning_target_fn(True), "mse", 1.0, 0.0
    )
    _, plain = dqn_loss(
        W, target_params, batch, linear_q, q_learning_target_fn(False), "mse", 1.0, 0.0
    )
    np.testing.assert_allclose(double["td_loss"], (2.0 - 1.0) ** 2)
    np.testing.assert_allclose(plain["td_loss"], (2.0 - 3.5) ** 2)


@pytest.mark.parametrize("double", [False, True])
def test_truncated_transition_bootstraps_and_terminated_does_not(double):
    # y = 1 + 0.5 * max(1, 3) = 2.5 unless terminated (y = 1); Q(s, 0) = 2.
    _, truncated_metrics = loss_of(one_transition(terminated=False, truncated=True), double)
    _, terminal_metrics = loss_of(one_transition(terminated=True, truncated=False), double)
    np.testing.assert_allclose(truncated_metrics["td_loss"], (2.0 - 2.5) ** 2)
    np.testing.assert_allclose(terminal_metrics["td_loss"], (2.0 - 1.0) ** 2)


def test_no_gradient_flows_through_the_target():
    # Same parameters for online and target. loss = (w00 - (1 + 0.5 * max(w10, w11)))^2, td = -0.5.
    # Only Q(s, a) is differentiated: d/dw00 = 2 * td = -1. Were the target differentiated too,
    # d/dw11 would be 2 * td * -0.5 = 0.5.
    grads = jax.grad(
        lambda p: dqn_loss(
            p,
            p,
            one_transition(False, False),
            linear_q,
            q_learning_target_fn(False),
            "mse",
            1.0,
            0.0,
        )[0]
    )(W)
    np.testing.assert_allclose(grads["w"], [[-1.0, 0.0], [0.0, 0.0]])


def test_per_transition_discounts_for_n_step_returns():
    # Same transitions, each bootstrapped with its own γ^m: [0.5, 0.25, 0.125, 1.0]
    discounts = jnp.array([0.5, 0.25, 0.125, 1.0])
    y = td_target(REWARDS, TERMINATED, NEXT_Q_TARGET, NEXT_Q_ONLINE, discounts, double=False)
    np.testing.assert_allclose(y, [1 + 0.5 * 5, 2.0, 3 + 0.125 * 4, 4 + 1.0 * 0], rtol=1e-6)


# Munchausen DQN. With τ = 1 the numbers can be done by hand: Q_target(s) = [0, 0] gives
# π(·|s) = [1/2, 1/2], so τ · ln π(a|s) = −ln 2; Q_target(s') = [0, ln 3] gives π(·|s') =
# [1/4, 3/4] and the soft value Σ π (Q − ln π) = 1/4 · ln 4 + 3/4 · (ln 3 − ln 3/4) = ln 4.
M_TERM = MunchausenTerm(temperature=1.0, alpha=0.9, log_policy_floor=-1.0)
M_Q_TARGET = jnp.array([[0.0, 0.0], [0.0, 10.0], [0.0, 0.0]])
M_NEXT_Q_TARGET = jnp.array([[0.0, np.log(3.0)], [0.0, np.log(3.0)], [0.0, np.log(3.0)]])


def test_munchausen_target_adds_the_scaled_log_policy_and_bootstraps_the_soft_value():
    y = munchausen_target(
        rewards=jnp.array([1.0, 1.0, 1.0]),
        terminated=jnp.array([False, False, True]),
        actions=jnp.array([0, 0, 1]),
        q_target=M_Q_TARGET,
        next_q_target=M_NEXT_Q_TARGET,
        discounts=0.5,
        term=M_TERM,
    )
    # 1: 1 + 0.9 · (−ln 2) + 0.5 · ln 4 = 1 + 0.1 · ln 2.
    # 2: a = 0 when Q_target(s) = [0, 10]: τ ln π = −ln(1 + e^10) ≈ −10, floored at −1.
    # 3: terminal, so only the reward and the bonus: 1 − 0.9 · ln 2.
    np.testing.assert_allclose(
        y,
        [1 + 0.1 * np.log(2.0), 1 - 0.9 + 0.5 * np.log(4.0), 1 - 0.9 * np.log(2.0)],
        rtol=1e-6,
    )


def test_munchausen_target_tends_to_the_dqn_target_as_the_temperature_vanishes():
    no_bonus = MunchausenTerm(temperature=1e-4, alpha=0.0, log_policy_floor=-1.0)
    y = munchausen_target(
        REWARDS, TERMINATED, jnp.array([0, 1, 0, 1]), NEXT_Q_ONLINE, NEXT_Q_TARGET, 0.9, no_bonus
    )
    dqn = td_target(REWARDS, TERMINATED, NEXT_Q_TARGET, NEXT_Q_ONLINE, 0.9, double=False)
    np.testing.assert_allclose(y, dqn, atol=1e-3)


def test_munchausen_loss_uses_the_target_network_at_s_and_s_prime():
    # Online Q(s) = [2, 0] (W); target network T: Q_T(s) = [0, 0], Q_T(s') = [0, ln 3]. With
    # τ = 1 the target is 1 + 0.9 · (−ln 2) + 0.5 · ln 4 = 1 + 0.1 ln 2, so td = 1 − 0.1 ln 2.
    target_params = {"w": jnp.array([[0.0, 0.0], [0.0, np.log(3.0)]])}
    batch = one_transition(terminated=False, truncated=False)
    _, metrics = dqn_loss(
        W, target_params, batch, linear_q, munchausen_target_fn(M_TERM), "mse", 1.0, 0.0
    )
    np.testing.assert_allclose(metrics["td_loss"], (1 - 0.1 * np.log(2.0)) ** 2, rtol=1e-6)
