"""C51's projection and loss, and noisy layers, by hand where possible."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepq.dqn.agent import build_network, init_params
from deepq.dqn.config import DQNConfig
from deepq.dqn.learner import Learner
from deepq.dqn.losses import categorical_loss, categorical_projection
from deepq.dqn.networks import NoisyDense, host_dense
from deepq.dqn.replay import Batch, pack_batch
from deepq.errors import ConfigError

SUPPORT = jnp.array([-1.0, 0.0, 1.0])  # 3 atoms, Δz = 1
NEXT = jnp.array([0.2, 0.3, 0.5])


def project(reward, terminated, discount=0.5):
    return categorical_projection(
        jnp.array([reward]), jnp.array([terminated]), jnp.array([discount]), NEXT[None], SUPPORT
    )[0]


def test_the_projection_by_hand():
    # r 0.5, γ 0.5: atoms -1, 0, 1 move to 0, 0.5, 1. 0.2 lands on 0; 0.3 splits 0.15/0.15
    # between 0 and 1; 0.5 lands on 1
    np.testing.assert_allclose(project(0.5, False), [0.0, 0.35, 0.65], atol=1e-6)


def test_a_terminal_transition_puts_everything_at_the_reward():
    np.testing.assert_allclose(project(0.5, True), [0.0, 0.5, 0.5], atol=1e-6)  # r = 0.5
    np.testing.assert_allclose(project(-0.25, True), [0.25, 0.75, 0.0], atol=1e-6)


def test_returns_outside_the_support_are_clipped_to_its_ends():
    np.testing.assert_allclose(project(3.0, False), [0.0, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(project(-3.0, True), [1.0, 0.0, 0.0], atol=1e-6)
    # γ 1, r 0: the atoms stay where they are
    np.testing.assert_allclose(project(0.0, False, discount=1.0), NEXT, atol=1e-6)


def batch(actions, rewards, terminated):
    n = len(actions)
    return Batch(
        obs=jnp.zeros((n, 1)), actions=jnp.array(actions), rewards=jnp.array(rewards),
        next_obs=jnp.ones((n, 1)), terminated=jnp.array(terminated),
        truncated=jnp.zeros(n, bool), discounts=jnp.full(n, 0.5),
    )  # fmt: skip


def test_the_c51_loss_is_the_cross_entropy_against_the_projection():
    # logits that depend only on whether obs is 0 (s) or 1 (s'): 2 actions, 3 atoms
    s_logits = jnp.log(jnp.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    next_logits = jnp.log(jnp.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]))

    def logits_fn(params, obs):
        return jnp.where(obs[:, :, None] > 0, next_logits, s_logits)

    b = batch([0, 1], [0.5, 0.5], [False, True])
    loss, metrics = categorical_loss({}, {}, b, logits_fn, SUPPORT, False, 0.0)
    # a* at s': means 0.3 and -0.5, so action 0, whose distribution is NEXT: target [0, .35, .65]
    # sample 0 took action 0 at s: -(0.35 ln 0.25 + 0.65 ln 0.25) = ln 4
    # sample 1 is terminal, target [0, .5, .5]; it took action 1: -(0.5 ln 0.1 + 0.5 ln 0.8)
    expected = np.array([np.log(4.0), -(0.5 * np.log(0.1) + 0.5 * np.log(0.8))])
    np.testing.assert_allclose(metrics["td_abs"], expected, rtol=1e-5)
    np.testing.assert_allclose(loss, expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["q_mean"], np.mean([0.5 * -1 + 0.25, 0.8 - 0.1]), rtol=1e-5)
    weighted, _ = categorical_loss(
        {}, {}, b._replace(weights=jnp.array([1.0, 0.0])), logits_fn, SUPPORT, False, 0.0
    )
    np.testing.assert_allclose(weighted, expected[0] / 2, rtol=1e-5)


# Two networks that disagree at s', 2 actions x 3 atoms: the online one prefers action 1 (means
# -0.5 and 0.6), the target one action 0 (means 0.3 and -0.3).
ONLINE_NEXT = jnp.array([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
TARGET_NEXT = jnp.array([[0.2, 0.3, 0.5], [0.5, 0.3, 0.2]])
ONLINE_AT_S = jnp.array([[0.2, 0.3, 0.5], [0.4, 0.4, 0.2]])
TARGET_AT_S = jnp.full((2, 3), 1 / 3)  # never read: the loss is of the online network at s


def two_networks(params, obs):
    """Logits of the online network (params "online") or the target one, at s (obs 0) or s'."""
    at_s, at_next = {"online": (ONLINE_AT_S, ONLINE_NEXT), "target": (TARGET_AT_S, TARGET_NEXT)}[
        params["net"]
    ]
    return jnp.log(jnp.where(obs[:, :, None] > 0, at_next, at_s))


@pytest.mark.parametrize(
    ("double", "bootstrapped"),
    # Double C51: a* = 1, the online network's choice, valued by the target network:
    # [0.5, 0.3, 0.2]. Plain C51: a* = 0, the target network's choice: [0.2, 0.3, 0.5].
    [(True, [0.5, 0.3, 0.2]), (False, [0.2, 0.3, 0.5])],
)
def test_c51_bootstraps_from_the_target_network_and_double_c51_picks_with_the_online_one(
    double, bootstrapped
):
    online, target = {"net": "online"}, {"net": "target"}
    b = batch([0], [0.5], [False])
    _, metrics = categorical_loss(online, target, b, two_networks, SUPPORT, double, 0.0)
    # r 0.5, γ 0.5: atoms -1, 0, 1 move to 0, 0.5, 1, so p = [p0, p1, p2] projects to
    # [0, p0 + p1/2, p1/2 + p2]; the loss is its cross-entropy with Z(s, 0) = [0.2, 0.3, 0.5]
    p0, p1, p2 = bootstrapped
    projected = np.array([0.0, p0 + p1 / 2, p1 / 2 + p2])
    expected = -(projected * np.log([0.2, 0.3, 0.5])).sum()
    np.testing.assert_allclose(metrics["td_abs"], [expected], rtol=1e-5)


@pytest.mark.parametrize("dueling", [False, True])
def test_a_c51_network_gives_the_mean_of_its_distribution_and_its_numpy_twin_agrees(dueling):
    config = DQNConfig(hidden_sizes=(8,), num_atoms=5, v_min=-2.0, v_max=2.0, dueling=dueling,
                       munchausen=False)  # fmt: skip
    network = build_network(config, n_actions=3)
    params = init_params(config, 4, n_actions=3)
    obs = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    logits = network.apply(params, obs, True)
    assert logits.shape == (6, 3, 5)
    means = (jax.nn.softmax(logits, axis=-1) * jnp.linspace(-2, 2, 5)).sum(-1)
    np.testing.assert_allclose(network.apply(params, obs), means, rtol=1e-5, atol=1e-6)
    host = network.host_q_values(jax.device_get(params), obs)
    np.testing.assert_allclose(host, means, rtol=1e-5, atol=1e-5)


def test_noisy_layers_have_factorised_noise_and_sigma_learns():
    layer = NoisyDense(3, sigma0=0.5)
    x = jnp.ones((2, 4))
    params = layer.init(jax.random.key(0), x)
    p = params["params"]
    assert p["kernel"].shape == p["sigma_kernel"].shape == (4, 3)
    assert p["bias"].shape == p["sigma_bias"].shape == (3,)
    np.testing.assert_allclose(p["sigma_kernel"], 0.5 / 2)  # σ0 / sqrt(4 inputs)
    assert np.abs(p["kernel"]).max() <= 0.5  # μ uniform in ±1/sqrt(4)
    np.testing.assert_allclose(layer.apply(params, x), x @ p["kernel"] + p["bias"])  # no noise
    noisy_a = layer.apply(params, x, rngs={"noise": jax.random.key(1)})
    noisy_b = layer.apply(params, x, rngs={"noise": jax.random.key(1)})
    np.testing.assert_array_equal(noisy_a, noisy_b)  # the same key, the same noise
    assert not np.allclose(noisy_a, layer.apply(params, x, rngs={"noise": jax.random.key(2)}))
    # factorised: the weight noise σ ⊙ f(ε_in) f(ε_out)ᵀ has rank 1
    zero_mean = jax.tree_util.tree_map(jnp.zeros_like, params)
    zero_mean["params"]["sigma_kernel"] = jnp.ones((4, 3))
    noise = layer.apply(zero_mean, jnp.eye(4), rngs={"noise": jax.random.key(3)})  # rows: W
    assert np.linalg.matrix_rank(np.asarray(noise)) == 1

    def loss(params):
        return jnp.sum(layer.apply(params, x, rngs={"noise": jax.random.key(1)}) ** 2)

    grads = jax.grad(loss)(params)["params"]
    assert np.abs(grads["sigma_kernel"]).sum() > 0 and np.abs(grads["sigma_bias"]).sum() > 0


class QueuedNormals:
    """Stands in for a numpy Generator: standard_normal returns the arrays it was given."""

    def __init__(self, *draws):
        self.draws = [np.asarray(d, np.float32) for d in draws]

    def standard_normal(self, n):
        draw = self.draws.pop(0)
        assert draw.shape == (n,)
        return draw


def test_the_host_noisy_layer_equals_its_noisy_weights_without_forming_them():
    p = {"kernel": np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), "bias": np.zeros(2, np.float32),
         "sigma_kernel": np.full((2, 2), 0.5, np.float32), "sigma_bias": np.ones(2, np.float32)}  # fmt: skip
    # ε_in = [1, 4], ε_out = [9, -1] -> f(ε) = sign·sqrt: [1, 2] and [3, -1]
    # W = μ + σ ⊙ [1, 2]ᵀ[3, -1] = [[2.5, 1.5], [6, 3]]; b = 0 + 1 ⊙ [3, -1]
    # x = [1, 1]: x·W + b = [8.5, 4.5] + [3, -1]
    y = host_dense(p, np.ones(2, np.float32), QueuedNormals([1.0, 4.0], [9.0, -1.0]))
    np.testing.assert_allclose(y, [11.5, 3.5])
    # and on the MinAtar Rainbow layer's size, against the formed weights
    rng = np.random.default_rng(0)
    p = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in
         (("kernel", (1024, 128)), ("bias", (128,)), ("sigma_kernel", (1024, 128)),
          ("sigma_bias", (128,)))}  # fmt: skip
    x = rng.standard_normal((3, 1024)).astype(np.float32)
    eps_in, eps_out = rng.standard_normal(1024), rng.standard_normal(128)
    f_in, f_out = (np.sign(e) * np.sqrt(np.abs(e)) for e in (eps_in, eps_out))
    weights = p["kernel"] + p["sigma_kernel"] * np.outer(f_in, f_out)
    expected = x @ weights + p["bias"] + p["sigma_bias"] * f_out
    y = host_dense(p, x, QueuedNormals(eps_in, eps_out))
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-3)


def test_a_noisy_network_acts_with_noise_on_the_host_and_evaluates_with_its_mean():
    config = DQNConfig(hidden_sizes=(8,), noisy=True)
    network = build_network(config, n_actions=2)
    params = init_params(config, 3, n_actions=2)
    host = jax.device_get(params)
    obs = np.ones((4, 3), np.float32)
    mean = network.host_q_values(host, obs)
    np.testing.assert_allclose(mean, network.apply(params, obs), rtol=1e-5, atol=1e-6)
    a = network.host_q_values(host, obs, np.random.default_rng(5))
    b = network.host_q_values(host, obs, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, mean)


def noisy_learner(acting="auto"):
    config = DQNConfig(hidden_sizes=(8,), noisy=True, batch_size=4, learning_starts=4,
                       munchausen=False)  # fmt: skip
    network = build_network(config, n_actions=2)
    return Learner(config, network, init_params(config, 3, n_actions=2), acting=acting), network


@pytest.mark.parametrize("acting", ["host", "device"])
def test_the_learner_acts_with_new_noise_at_every_step(acting):
    """With ε = 0, noise is all of a Rainbow agent's exploration: each acting step draws its
    own, on either acting path, and neither is the layers' mean."""
    learner, network = noisy_learner(acting)
    obs = np.ones((2, 3), np.float32)
    rng = np.random.default_rng(0)
    first = learner.acting_q_values(noise_rng=rng)(obs)
    second = learner.acting_q_values(noise_rng=rng)(obs)
    mean = np.asarray(network.apply(learner.params(), obs))
    assert not np.allclose(first, second)
    assert not np.allclose(first, mean) and not np.allclose(second, mean)


def test_each_gradient_step_draws_its_own_noise():
    """The same state and batch at gradient step 0 and at step 1 (only the step count differs)
    learn different parameters: the update's noise is folded with the step number."""
    learner, _ = noisy_learner()
    start = learner.state
    rng = np.random.default_rng(0)
    batch = pack_batch(Batch(
        obs=rng.standard_normal((1, 4, 3)).astype(np.float32),
        actions=np.array([[0, 1, 0, 1]], np.int32), rewards=np.ones((1, 4), np.float32),
        next_obs=rng.standard_normal((1, 4, 3)).astype(np.float32),
        terminated=np.zeros((1, 4), bool), truncated=np.zeros((1, 4), bool),
        discounts=np.full((1, 4), 0.99, np.float32),
    ))  # fmt: skip
    after = []
    for grad_steps in (0, 1, 0):
        learner.state = start.replace(grad_steps=jnp.asarray(grad_steps, jnp.int32))
        learner.update(batch)
        after.append(jax.device_get(learner.params()))
    kernels = [a["params"]["q_head"]["kernel"] for a in after]
    np.testing.assert_array_equal(kernels[0], kernels[2])  # the same step: the same noise
    assert not np.allclose(kernels[0], kernels[1])


def test_c51_with_munchausen_or_an_empty_support_is_refused():
    with pytest.raises(ConfigError, match="munchausen"):
        DQNConfig(num_atoms=51, munchausen=True)
    with pytest.raises(ConfigError, match="v_min"):
        DQNConfig(num_atoms=51, v_min=1.0, v_max=1.0)


@pytest.mark.parametrize(
    ("preset", "support", "learning_rate"),
    [("lunarlander-rainbow", 200.0, 1e-3), ("minatar-breakout-rainbow", 100.0, 1e-4),
     ("breakout-rainbow", 10.0, 6.25e-5)],
)  # fmt: skip
def test_the_rainbow_presets_have_all_six_parts(preset, support, learning_rate):
    from deepq.dqn.config import resolve_config

    c = resolve_config(preset)
    assert (c.double, c.dueling, c.n_step, c.munchausen) == (True, True, 3, False)
    assert (c.prioritized, c.priority_alpha, c.priority_beta0) == (True, 0.5, 0.4)
    assert (c.num_atoms, c.v_min, c.v_max) == (51, -support, support)
    assert (c.noisy, c.noisy_sigma0, c.learning_rate) == (True, 0.5, learning_rate)
