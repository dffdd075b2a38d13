"""Loss choices: MSE, Huber, the L2 penalty."""

import jax.numpy as jnp
import numpy as np

from deepq.dqn.losses import dqn_loss, l2_penalty, q_learning_target_fn
from deepq.dqn.replay import Batch

DQN_TARGET = q_learning_target_fn(double=False)


def identity_q(params, obs):
    return obs * params["scale"]


def batch_with_td_errors(q_taken, rewards):
    """Terminal transitions with Q(s, 0) = q_taken, so td_error = q_taken - rewards."""
    n = len(q_taken)
    return Batch(
        obs=jnp.array([[q, 0.0] for q in q_taken]),
        actions=jnp.zeros(n, jnp.int32),
        rewards=jnp.array(rewards),
        next_obs=jnp.zeros((n, 2)),
        terminated=jnp.ones(n, bool),
        truncated=jnp.zeros(n, bool),
        discounts=jnp.full(n, 0.99),
    )


PARAMS = {"scale": jnp.ones(())}
BATCH = batch_with_td_errors([0.5, 4.0], [1.0, 1.0])  # td errors -0.5 and 3.0


def test_mse_is_the_mean_squared_td_error():
    loss, _ = dqn_loss(PARAMS, PARAMS, BATCH, identity_q, DQN_TARGET, "mse", 1.0, 0.0)
    np.testing.assert_allclose(loss, (0.25 + 9.0) / 2)


def test_huber_is_quadratic_inside_delta_and_linear_outside():
    # |-0.5| <= 1: 0.5 * 0.25 = 0.125; |3| > 1: 1 * (3 - 0.5) = 2.5
    loss, _ = dqn_loss(PARAMS, PARAMS, BATCH, identity_q, DQN_TARGET, "huber", 1.0, 0.0)
    np.testing.assert_allclose(loss, (0.125 + 2.5) / 2)
    # delta 2: 0.5 * 0.25 = 0.125 and 2 * (3 - 1) = 4
    loss, _ = dqn_loss(PARAMS, PARAMS, BATCH, identity_q, DQN_TARGET, "huber", 2.0, 0.0)
    np.testing.assert_allclose(loss, (0.125 + 4.0) / 2)


def test_l2_penalty_sums_squared_kernels_and_skips_biases():
    params = {
        "params": {
            "hidden_0": {"kernel": jnp.array([[1.0, 2.0], [3.0, 4.0]]), "bias": jnp.array([10.0])}
        }
    }
    np.testing.assert_allclose(l2_penalty(params), 1 + 4 + 9 + 16)


def test_l2_coefficient_adds_to_the_td_loss():
    params = {"params": {"q": {"kernel": jnp.array([[2.0]]), "bias": jnp.array([0.0])}}}

    def apply(p, obs):
        return jnp.concatenate(
            [obs[:, :1] * p["params"]["q"]["kernel"][0, 0] / 2.0, obs[:, 1:]], axis=1
        )

    plain, _ = dqn_loss(params, params, BATCH, apply, DQN_TARGET, "mse", 1.0, 0.0)
    penalised, metrics = dqn_loss(params, params, BATCH, apply, DQN_TARGET, "mse", 1.0, 0.01)
    np.testing.assert_allclose(penalised - plain, 0.01 * 4.0, rtol=1e-6)
    np.testing.assert_allclose(metrics["td_loss"], plain)


def test_importance_weights_scale_each_samples_loss_and_td_abs_is_its_new_priority():
    # td errors -0.5 and 3.0; weights 1 and 0.5: (1 * 0.25 + 0.5 * 9) / 2
    weighted = BATCH._replace(weights=jnp.array([1.0, 0.5]))
    loss, metrics = dqn_loss(PARAMS, PARAMS, weighted, identity_q, DQN_TARGET, "mse", 1.0, 0.0)
    np.testing.assert_allclose(loss, (0.25 + 4.5) / 2)
    np.testing.assert_allclose(metrics["td_abs"], [0.5, 3.0])
