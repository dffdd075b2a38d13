"""The learner: the optimiser it builds, and the parameters acting reads while an update runs."""

import jax
import jax.numpy as jnp
import numpy as np

from deepq.dqn.agent import build_network, init_params
from deepq.dqn.config import DQNConfig
from deepq.dqn.learner import Learner, acts_on_host, make_optimizer
from deepq.dqn.networks import QNetwork
from deepq.dqn.replay import Batch, pack_batch


def first_adam_update(max_grad_norm):
    # With an optimiser epsilon this large, Adam's first step is -lr * g / (|g| + eps) per
    # coordinate, proportional to the gradient, so clipping shows in the update.
    config = DQNConfig(learning_rate=1.0, optimizer_eps=1e6, max_grad_norm=max_grad_norm)
    optimizer = make_optimizer(config)
    params = {"w": jnp.zeros(2)}
    updates, _ = optimizer.update({"w": jnp.array([3.0, 4.0])}, optimizer.init(params), params)
    return np.asarray(updates["w"])


def test_max_grad_norm_clips_the_gradient_before_the_optimiser():
    # |g| = 5 clipped to norm 1: g = [0.6, 0.8]
    np.testing.assert_allclose(
        first_adam_update(1.0), [-0.6 / (0.6 + 1e6), -0.8 / (0.8 + 1e6)], rtol=1e-5
    )
    np.testing.assert_allclose(
        first_adam_update(None), [-3.0 / (3.0 + 1e6), -4.0 / (4.0 + 1e6)], rtol=1e-5
    )
    np.testing.assert_allclose(first_adam_update(10.0), first_adam_update(None))  # norm 5 < 10


def make_learner(config):
    network = build_network(config, n_actions=2)
    return Learner(config, network, init_params(config, 3, n_actions=2)), network


def batches(k=2, batch=8):
    rng = np.random.default_rng(0)
    return pack_batch(
        Batch(
            obs=rng.standard_normal((k, batch, 3)).astype(np.float32),
            actions=rng.integers(0, 2, (k, batch)).astype(np.int32),
            rewards=rng.standard_normal((k, batch)).astype(np.float32),
            next_obs=rng.standard_normal((k, batch, 3)).astype(np.float32),
            terminated=np.zeros((k, batch), bool),
            truncated=np.zeros((k, batch), bool),
            discounts=np.full((k, batch), 0.99, np.float32),
        )
    )


CONFIG = DQNConfig(hidden_sizes=(8,), batch_size=8, learning_starts=8, learning_rate=0.05)


def test_acting_reads_the_parameters_from_before_the_update_dispatched_after_it():
    learner, network = make_learner(CONFIG)
    obs = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    before = np.asarray(network.apply(learner.params(), obs))
    acting_q_values = learner.acting_q_values()
    learner.update(batches())
    after = np.asarray(network.apply(learner.params(), obs))
    assert not np.allclose(before, after)  # the update changed the network
    np.testing.assert_allclose(acting_q_values(obs), before, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(learner.acting_q_values()(obs), after, rtol=1e-5, atol=1e-6)


def test_acting_on_the_device_and_on_the_host_agree_for_a_cnn():
    """The two acting paths (picked by backend and size) read the same parameters."""
    config = DQNConfig(hidden_sizes=(16,), batch_size=4, learning_starts=4)
    network = QNetwork(3, (16,), encoder="nature_cnn", input_scale=1 / 255)
    frames = np.random.default_rng(2).integers(0, 256, (2, 36, 36, 4), dtype=np.uint8)
    params = network.init(jax.random.key(0), frames)
    host = Learner(config, network, params, acting="host")
    device = Learner(config, network, params, acting="device")
    assert host.acts_on_host and not device.acts_on_host
    np.testing.assert_allclose(host.acting_q_values()(frames), device.acting_q_values()(frames),
                               rtol=1e-4, atol=1e-5)  # fmt: skip


def test_the_acting_path_follows_the_backend_and_the_network_size():
    assert acts_on_host("cpu", 2_000_000) and acts_on_host("gpu", 20_000)
    assert not acts_on_host("gpu", 1_700_000) and not acts_on_host("tpu", 200_000)


def test_update_counts_gradient_steps_and_sync_copies_the_online_network():
    learner, _ = make_learner(CONFIG.replace(target_update="hard"))
    learner.update(batches(k=3))
    state = learner.state
    assert int(state.grad_steps) == 3
    differs = jax.tree_util.tree_map(
        lambda a, b: not np.array_equal(a, b), state.params, state.target_params
    )
    assert any(jax.tree_util.tree_leaves(differs))
    learner.sync_target()
    for online, target in zip(
        jax.tree_util.tree_leaves(learner.state.params),
        jax.tree_util.tree_leaves(learner.state.target_params),
        strict=True,
    ):
        np.testing.assert_array_equal(online, target)


def test_state_arrays_round_trip_into_a_fresh_learner():
    learner, _ = make_learner(CONFIG)
    learner.update(batches())
    fresh, _ = make_learner(CONFIG)
    fresh.load_state_arrays(learner.state_arrays(), "test")
    for a, b in zip(
        jax.tree_util.tree_leaves(learner.state),
        jax.tree_util.tree_leaves(fresh.state),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    assert learner.is_finite()


def test_gradient_step_flops_match_a_hand_count_of_the_matmuls():
    # 3 -> 64 -> 64 -> 2 actions. Per sample, a forward's matmuls are F = 2(3*64 + 64*64 + 64*2)
    # = 8,832 FLOPs. A DQN step makes the online forward at s, the target's at s' (no Double),
    # and the backward: weight gradients of every layer (F) and input gradients of all but the
    # first (F - 2*3*64), so 4F - 384 = 34,944 a sample. Bias adds, ReLUs, the loss and the
    # optimiser add a few per cent; the batch-32 difference cancels the optimiser's part.
    config = DQNConfig(hidden_sizes=(64, 64), double=False, batch_size=32, learning_starts=32)
    learner, _ = make_learner(config)
    per_sample = 4 * 2 * (3 * 64 + 64 * 64 + 64 * 2) - 2 * 3 * 64
    at_32 = learner.gradient_step_flops(batches(k=1, batch=32))
    at_64 = learner.gradient_step_flops(batches(k=3, batch=64))  # counts one of the 3 steps
    assert 32 * per_sample <= at_64 - at_32 <= 1.1 * 32 * per_sample
    assert learner.state.grad_steps == 0  # counting ran nothing
