"""REINFORCE: the Hands-On ML chapter's worked examples, the loss by hand, imitation, and learning CartPole."""

import jax.numpy as jnp
import numpy as np
import pytest

from deepq.api import evaluate, load, train
from deepq.classic.configs import ReinforceConfig
from deepq.classic.policies import lean_policy
from deepq.classic.reinforce import (
    PolicyNetwork,
    _sample,
    apply_temperature,
    discount_and_normalize_rewards,
    discount_rewards,
    imitation_loss,
    make_optimizer,
    reinforce_loss,
)
from deepq.errors import ConfigError


def test_discounting_the_chapters_example():
    np.testing.assert_allclose(discount_rewards([10, 0, -50], 0.8), [-22, -40, -50])


def test_discount_and_normalize_the_chapters_example():
    normalized = discount_and_normalize_rewards([[10, 0, -50], [10, 20]], 0.8)
    np.testing.assert_allclose(normalized[0], [-0.28435071, -0.86597718, -1.18910299], atol=1e-8)
    np.testing.assert_allclose(normalized[1], [1.26665318, 1.0727777], atol=1e-8)


def test_equal_returns_give_zero_advantages_not_nan():
    normalized = discount_and_normalize_rewards([[1.0], [1.0]], 0.9)
    np.testing.assert_array_equal(np.concatenate(normalized), [0.0, 0.0])


def test_temperature_sampling_the_chapters_examples():
    np.testing.assert_allclose(
        apply_temperature([0.9, 0.1], 0.5), [0.98780488, 0.01219512], atol=5e-9
    )
    np.testing.assert_allclose(apply_temperature([0.9, 0.1], 2.0), [0.75, 0.25])
    np.testing.assert_allclose(apply_temperature([0.9, 0.1], 1.0), [0.9, 0.1])


def test_sampling_follows_the_probabilities():
    rng = np.random.default_rng(0)
    probabilities = np.tile([0.2, 0.5, 0.3], (20_000, 1))
    counts = np.bincount(_sample(probabilities, rng), minlength=3) / 20_000
    np.testing.assert_allclose(counts, [0.2, 0.5, 0.3], atol=0.015)


def test_loss_by_hand():
    """Logits [0, ln 3] give π = [1/4, 3/4]. Steps: (a=1, A=2), (a=0, A=-1), padding (a=0,
    A=5, mask 0). Loss = -(2 ln 3/4 + (-1) ln 1/4) / 2."""
    logits = jnp.array([0.0, jnp.log(3.0)])
    apply_fn = lambda params, obs: jnp.broadcast_to(params, (obs.shape[0], 2))  # noqa: E731
    loss = reinforce_loss(
        logits,
        apply_fn,
        jnp.zeros((3, 1)),
        jnp.array([1, 0, 0]),
        jnp.array([2.0, -1.0, 5.0]),
        jnp.array([1.0, 1.0, 0.0]),
    )
    expected = -(2 * np.log(0.75) + (-1) * np.log(0.25)) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_the_sigmoid_head_is_the_chapters_binary_cross_entropy():
    # A linear sigmoid policy (the chapter's Dense(1, activation="sigmoid")), all weights 0 but
    # the bias 0.5: p(left) = σ(0.5) = 0.6225. Binary cross-entropy of target "left" (action 0)
    # is −ln 0.6225 = 0.4741; of "right", −ln 0.3775 = 0.9741.
    net = PolicyNetwork(n_actions=2, hidden_sizes=(), head="sigmoid")
    params = {"params": {"logits": {"kernel": jnp.zeros((4, 1)), "bias": jnp.array([0.5])}}}
    obs = jnp.ones((2, 4))
    np.testing.assert_allclose(
        np.asarray(jnp.exp(net.apply(params, obs)[0]) / jnp.exp(net.apply(params, obs)[0]).sum()),
        [0.622459, 0.377541], rtol=1e-5,
    )  # fmt: skip
    loss = imitation_loss(params, net.apply, obs, jnp.array([0, 1]))
    assert float(loss) == pytest.approx((0.474077 + 0.974077) / 2, rel=1e-5)


def test_rmsprop_is_keras_rmsprop():
    # Keras: ms = 0.9·0 + 0.1·g² = 0.4 for g = 2; w −= 0.001 · g / (√ms + 1e-7) = 0.0031623.
    optimizer = make_optimizer("rmsprop", 0.001)
    grads = {"w": jnp.array([2.0])}
    updates, _ = optimizer.update(grads, optimizer.init(grads))
    np.testing.assert_allclose(updates["w"], [-0.001 * 2 / (0.4**0.5 + 1e-7)], rtol=1e-6)
    sgd = make_optimizer("sgd", 0.1)
    sgd_updates, _ = sgd.update(grads, sgd.init(grads))
    np.testing.assert_allclose(sgd_updates["w"], [-0.2])


def test_imitation_alone_copies_the_hand_written_policy(tmp_path):
    # The chapter's first neural-network policy: 5 ELU units, a sigmoid output, RMSprop and
    # binary cross-entropy on 50 envs, and no REINFORCE update afterwards (iterations=0); at
    # 10x the chapter's learning rate, to agree in 1,000 steps rather than its 5,000.
    config = ReinforceConfig(
        iterations=0, hidden_sizes=(5,), policy_head="sigmoid", imitation_policy="lean",
        imitation_iterations=1000, imitation_learning_rate=0.01, eval_every_iterations=None,
        final_eval_episodes=0,
    )  # fmt: skip
    result = train(config, tmp_path / "run", show_progress=False, tensorboard=False, report=False)
    agent = load(tmp_path / "run" / "checkpoints" / "final")
    rng = np.random.default_rng(1)
    obs = rng.uniform(-0.2, 0.2, size=(500, 4)).astype(np.float32)
    agreement = (agent.policy()(obs) == lean_policy(obs)).mean()
    assert agreement > 0.9
    assert result.summary["episodes"] == 0


def test_a_linear_policy_has_one_layer(tmp_path):
    config = ReinforceConfig(
        iterations=1, hidden_sizes=(), optimizer="sgd", eval_every_iterations=None,
        final_eval_episodes=0,
    )  # fmt: skip
    train(config, tmp_path / "run", show_progress=False, tensorboard=False, report=False)
    agent = load(tmp_path / "run" / "checkpoints" / "final")
    assert {k: v["kernel"].shape for k, v in agent.params["params"].items()} == {"logits": (4, 2)}


def test_nothing_to_train_is_refused():
    with pytest.raises(ConfigError, match="iterations=0 trains nothing"):
        ReinforceConfig(iterations=0)


@pytest.mark.slow
def test_reinforce_balances_cartpole(tmp_path):
    config = ReinforceConfig(iterations=80, eval_every_iterations=10, final_eval_episodes=20)
    result = train(config, tmp_path / "run", show_progress=False, tensorboard=False, report=False)
    assert result.summary["best_eval_mean"] >= 195
    assert evaluate(load(tmp_path / "run"), episodes=20).mean >= 195
