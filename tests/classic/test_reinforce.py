"""REINFORCE: the Hands-On ML chapter's worked examples, the loss by hand, imitation, and learning CartPole."""

import jax.numpy as jnp
import numpy as np
import pytest

from deepq.api import evaluate, load, train
from deepq.classic.configs import ReinforceConfig
from deepq.classic.policies import lean_policy
from deepq.classic.reinforce import (
    _sample,
    apply_temperature,
    discount_and_normalize_rewards,
    discount_rewards,
    reinforce_loss,
)


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


def test_imitation_copies_the_hand_written_policy(tmp_path):
    config = ReinforceConfig(
        iterations=1, imitation_policy="lean", imitation_iterations=300, eval_every_iterations=None,
        final_eval_episodes=0,
    )  # fmt: skip
    result = train(config, tmp_path / "run", show_progress=False, tensorboard=False, report=False)
    agent = load(tmp_path / "run" / "checkpoints" / "final")
    rng = np.random.default_rng(1)
    obs = rng.uniform(-0.2, 0.2, size=(500, 4)).astype(np.float32)
    agreement = (agent.policy()(obs) == lean_policy(obs)).mean()
    assert agreement > 0.9
    assert result.summary["episodes"] == 10


@pytest.mark.slow
def test_reinforce_balances_cartpole(tmp_path):
    config = ReinforceConfig(iterations=80, eval_every_iterations=10, final_eval_episodes=20)
    result = train(config, tmp_path / "run", show_progress=False, tensorboard=False, report=False)
    assert result.summary["best_eval_mean"] >= 195
    assert evaluate(load(tmp_path / "run"), episodes=20).mean >= 195
