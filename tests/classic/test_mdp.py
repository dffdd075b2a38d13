"""Markov chains and MDPs: the Hands-On ML chapter's numbers, hand-solvable models, specs and the CLI."""

import json

import numpy as np
import pytest
from helpers import run_deepq

from deepq.classic.mdp import (
    FiniteMDPEnv,
    greedy_policy,
    mdp_from_spec,
    q_learning,
    q_table_json,
    resolve_chain,
    resolve_mdp,
    sample_chain,
    value_iteration,
)
from deepq.errors import UsageError

CHAPTER_Q_AT_090 = [
    [18.91891892, 17.02702703, 13.62162162],
    [0.0, -np.inf, -4.87971488],
    [-np.inf, 50.13365013, -np.inf],
]


def test_value_iteration_reproduces_the_chapters_table():
    q_values, _ = value_iteration(resolve_mdp("chapter-mdp"), gamma=0.90)
    np.testing.assert_allclose(q_values, CHAPTER_Q_AT_090, atol=5e-9)
    assert greedy_policy(q_values) == [0, 0, 1]


def test_a_larger_discount_goes_through_the_fire():
    q_values, _ = value_iteration(resolve_mdp("chapter-mdp"), gamma=0.95)
    assert greedy_policy(q_values) == [0, 2, 1]  # state 1 now pays -50 for the +40 beyond


def test_fifty_sweeps_as_in_the_seed_keep_their_history():
    q_values, history = value_iteration(resolve_mdp("chapter-mdp"), gamma=0.90, iterations=50)
    assert history.shape == (50, 3, 3)
    np.testing.assert_array_equal(history[0], np.where(np.isinf(q_values), -np.inf, 0.0))
    assert abs(history[-1][0, 0] - 18.91891892) < 1e-6


def test_value_iteration_on_hand_solvable_models():
    # s0 -(r=1)-> s1 -(r=2)-> s2 (terminal): Q(s1) = 2, Q(s0) = 1 + 0.5 * 2 = 2
    chain = mdp_from_spec({
        "transition_probabilities": [[[0, 1, 0]], [[0, 0, 1]], [[0, 0, 1]]],
        "rewards": [[[0, 1, 0]], [[0, 0, 2]], [[0, 0, 0]]],
        "terminal_states": [2],
    })  # fmt: skip
    q_values, _ = value_iteration(chain, gamma=0.5)
    np.testing.assert_allclose(q_values[:2, 0], [2.0, 2.0])
    # one state: a0 ends the episode with +1, a1 loops with +0.5. At gamma 0.9 looping is worth
    # 0.5 / (1 - 0.9) = 5 > 1.
    loop = mdp_from_spec({
        "transition_probabilities": [[[0, 1], [1, 0]], [[0, 1], [0, 1]]],
        "rewards": [[[0, 1], [0.5, 0]], [[0, 0], [0, 0]]],
        "terminal_states": [1],
    })  # fmt: skip
    q_values, _ = value_iteration(loop, gamma=0.9)
    np.testing.assert_allclose(q_values[0], [1.0, 5.0])
    assert greedy_policy(q_values)[0] == 1


def test_q_learning_converges_on_the_seed_mdp():
    q_values, history = q_learning(resolve_mdp("chapter-mdp"), gamma=0.90, iterations=10_000)
    assert abs(q_values[0, 0] - 18.92) < 0.5
    assert greedy_policy(q_values) == [0, 0, 1]
    assert history.shape == (10_000, 3, 3) and history[0, 0, 0] == 0.0
    assert np.isneginf(q_values[1, 1]) and np.isneginf(q_values[2, 0])  # never tried


def test_value_iteration_reads_a_toy_text_model():
    frozen = resolve_mdp("FrozenLake-v1")  # slippery: 1/3 each to the intended side and both others
    assert frozen.n_states == 16 and frozen.terminal.sum() == 5  # 4 holes + the goal
    np.testing.assert_allclose(frozen.transitions.sum(axis=2), 1.0)
    # Not slippery, the goal is 6 steps from the start; reward 1 on the 6th: V(start) = gamma^5.
    q_values, _ = value_iteration(resolve_mdp("deepq/FrozenLake-NotSlippery-v1"), gamma=0.9)
    np.testing.assert_allclose(q_values[0].max(), 0.9**5)
    cliff = resolve_mdp("CliffWalking-v1")
    assert cliff.start_state == 36


def test_chain_samples_follow_the_transitions():
    chain = resolve_chain("chapter-chain")
    rng = np.random.default_rng(0)
    for _ in range(50):
        states, cut_off = sample_chain(chain, rng, max_steps=50)
        assert states[0] == 0
        assert all(chain.transitions[a, b] > 0 for a, b in zip(states, states[1:], strict=False))
        assert cut_off == (len(states) == 50 and states[-1] != 3)
        assert cut_off or states[-1] == 3


def test_specs_from_json_and_toml_files(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({
        "name": "two", "transition_probabilities": [[[1.0, 0.0]], [[0.0, 1.0]]],
        "rewards": [[[3, 0]], [[0, 0]]],
    }))  # fmt: skip
    (tmp_path / "m.toml").write_text(
        'name = "two"\ntransition_probabilities = [[[1.0, 0.0]], [[0.0, 1.0]]]\n'
        "rewards = [[[3, 0]], [[0, 0]]]\n"
    )
    for name in ("m.json", "m.toml"):
        q_values, _ = value_iteration(resolve_mdp(str(tmp_path / name)), gamma=0.5)
        np.testing.assert_allclose(q_values[0, 0], 6.0)  # 3 / (1 - 0.5)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"transition_probabilities": [[[0.5, 0.4]], [[0, 1]]]}, "must sum to 1"),
        ({"transition_probabilities": [[None], [[0, 1]]]}, "at least one allowed action"),
        ({"rewards": []}, "malformed"),
        ({"transition_probabilities": [[[1.0]]], "possible_actions": [[0, 1]]}, "malformed"),
        ({"transition_probabilities": [[[1.0]]], "start_state": 3}, "start_state 3"),
    ],
)
def test_malformed_specs_are_refused(spec, message):
    with pytest.raises(UsageError, match=message):
        mdp_from_spec(spec)


def test_the_mdp_as_a_gymnasium_env():
    env = FiniteMDPEnv()
    state, _ = env.reset(seed=1)
    assert state == 0
    counts = np.zeros(3)
    for _ in range(2000):
        env.reset()
        next_state, reward, terminated, truncated, _ = env.step(0)
        counts[next_state] += 1
        assert reward == (10.0 if next_state == 0 else 0.0) and not terminated and not truncated
    np.testing.assert_allclose(counts / 2000, [0.7, 0.3, 0.0], atol=0.04)
    env.reset()
    env.step(2)  # s0 -a2-> s0 or s1
    with pytest.raises(ValueError, match="not allowed"):
        _step_from(env, state=1, action=1)


def _step_from(env, state, action):
    env._state = state
    return env.step(action)


def test_q_table_json_uses_null_for_impossible_actions():
    table = q_table_json(np.array([[1.5, -np.inf], [0.0, 2.0]]))
    assert table == {"q_values": [[1.5, None], [0.0, 2.0]], "policy": [0, 1]}


def deepq_mdp(*args):
    return run_deepq("mdp", *args, timeout=120)


def test_cli_json_outputs_parse(tmp_path):
    done = deepq_mdp("value-iteration", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["policy"] == [0, 0, 1] and result["q_values"][1][1] is None
    np.testing.assert_allclose(result["q_values"][2][1], 50.13365013, atol=5e-9)
    done = deepq_mdp("q-learning", "--json", "--iterations", "2000")
    assert done.returncode == 0 and len(json.loads(done.stdout)["q_values"]) == 3
    done = deepq_mdp("chain", "--json", "--sequences", "4")
    assert done.returncode == 0 and len(json.loads(done.stdout)["sequences"]) == 4
    out = tmp_path / "q.png"
    done = deepq_mdp("plot", "--iterations", "500", "--out", str(out))
    assert done.returncode == 0 and done.stdout.strip() == f"wrote {out}"
    from PIL import Image

    assert Image.open(out).size == (1000, 400)


def test_cli_prints_the_table_and_policy():
    done = deepq_mdp("value-iteration")
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        "chapter-mdp, gamma 0.9: Q-values (rows: states, columns: actions)",
        "  s0: 18.91891892  17.02702703  13.62162162",
        "  s1:  0.00000000         -inf  -4.87971488",
        "  s2:        -inf  50.13365013         -inf",
        "greedy policy: [0, 0, 1]",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["value-iteration", "--gamma", "1.5"], "--gamma 1.5 must be in [0, 1]"),
        (["chain", "--env", "nope"], "unknown Markov chain 'nope'"),
        (["value-iteration", "--env", "CartPole-v1"], "tabular Q-learning needs Discrete"),
        (["value-iteration", "--env", "missing.json"], "missing.json is missing"),
        (["q-learning", "--iterations", "0"], "--iterations 0 must be in [1, 100000000]"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_cli_bad_calls_exit_2(args, message):
    done = deepq_mdp(*args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
