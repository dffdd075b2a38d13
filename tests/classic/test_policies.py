"""Hand-written CartPole policies, their evaluation, and the linear-policy searches."""

import json

import numpy as np
import pytest
from helpers import run_deepq

from deepq.classic.policies import (
    EpisodeStats,
    angle_and_velocity_policy,
    episode_returns,
    lean_policy,
    linear_policy,
    load_policy,
)
from deepq.classic.search import (
    SearchSettings,
    cem_update,
    next_generation,
    population_fitness,
    run_search,
)
from deepq.errors import UsageError


def test_lean_policy_matches_the_seed():
    """The Hands-On ML chapter: mean 41.7, std 8.9, min 24, max 68 over 500 episodes (other RNG
    seeds, old gym)."""
    stats = EpisodeStats.of(episode_returns(lean_policy, 500, seed=0))
    assert 38 <= stats.mean <= 46 and 6 <= stats.std <= 12
    assert stats.max < 100 and stats.episodes == 500


def test_angle_and_velocity_policy_matches_the_chapter():
    """The chapter's `angle + ang_vel > 0` policy over 1,000 episodes of at most 2,000 steps:
    mean 1565.7, min 243, max 2001 (it counts one step too many; old gym, other seeds). Its
    returns spread widely (std ~650), so 300 episodes put the mean within ~±120 of it."""
    stats = EpisodeStats.of(episode_returns(angle_and_velocity_policy, 300, 0, max_steps=2000))
    assert 1400 <= stats.mean <= 1700 and stats.max == 2000 and stats.min >= 150


def test_policies_by_name_weights_or_search_result(tmp_path):
    obs = np.array([[0.0, 0.0, 0.1, -0.2], [0.0, 0.0, -0.1, 0.3]])
    np.testing.assert_array_equal(load_policy("angle+velocity").policy(obs), [0, 1])
    np.testing.assert_array_equal(load_policy("lean").policy(obs), [1, 0])
    # 0.1 + 2 * -0.2 + 0.25 = -0.05 -> left; -0.1 + 0.6 + 0.25 > 0 -> right
    assert [load_policy("0,0,1,2,0.25").act(row) for row in obs] == [0, 1]
    (tmp_path / "result.json").write_text('{"weights": [0, 0, 1, 2], "bias": 0.25}')
    assert [load_policy(str(tmp_path / "result.json")).act(row) for row in obs] == [0, 1]
    (tmp_path / "bad.json").write_text('{"weights": [0, 0, 1], "bias": "x"}')
    for bad in (str(tmp_path / "bad.json"), "sideways", "1,2,nan,4"):
        with pytest.raises(UsageError):
            load_policy(bad)


def test_cem_refits_the_gaussian_to_the_elite():
    # The top half of 4 candidates by fitness are [3] and [2]: mean 2.5, std 0.5, + noise 0.1.
    candidates = np.array([[0.0], [1.0], [2.0], [3.0]])
    mean, std = cem_update(candidates, np.array([0.0, 1.0, 2.0, 3.0]), 0.5, 0.1)
    np.testing.assert_allclose(mean, [2.5])
    np.testing.assert_allclose(std, [0.6])


def test_linear_policy_by_hand():
    policy = linear_policy(np.array([1.0, 0.0, -2.0, 0.5]), bias=0.1)
    obs = np.array([[0.2, 9.0, 0.1, 0.0], [0.0, 0.0, 0.1, 0.0], [0.0, 0.0, 0.0, -0.1]])
    # 0.2 - 0.2 + 0.1 = 0.1 > 0 -> 1;  -0.2 + 0.1 < 0 -> 0;  -0.05 + 0.1 > 0 -> 1
    np.testing.assert_array_equal(policy(obs), [1, 0, 1])


def test_episodes_are_reproducible_and_seeded():
    first = episode_returns(lean_policy, 50, seed=3)
    np.testing.assert_array_equal(first, episode_returns(lean_policy, 50, seed=3))
    assert not np.array_equal(first, episode_returns(lean_policy, 50, seed=4))


def test_other_envs_are_stepped_one_by_one():
    """Counting-v0 ends after 3 steps with rewards 1, 2, 3."""
    returns = episode_returns(
        lambda obs: np.zeros(len(obs), np.int64), 4, 0, "deepq-test/Counting-v0"
    )
    np.testing.assert_array_equal(returns, [6.0] * 4)


def test_max_steps_cuts_episodes():
    returns = episode_returns(linear_policy(np.array([0.0, 0.0, 1.0, 1.0])), 5, 0, max_steps=20)
    np.testing.assert_array_equal(returns, [20.0] * 5)


def test_population_fitness_scores_each_candidate_on_its_own():
    never_right = [0, 0, 0, 0, -1.0]  # always pushes left: falls within ~10 steps
    balancer = [0, 0.25, 1.0, 1.0, 0.0]
    fitness = population_fitness(np.array([never_right, balancer]), episodes=5, seed=0)
    assert fitness[0] < 15 and fitness[1] > 400


def test_next_generation_keeps_the_elite_and_breeds_from_it():
    population = np.arange(10 * 5, dtype=np.float64).reshape(10, 5)
    fitness = np.arange(10.0)  # the last rows are the fittest
    rng = np.random.default_rng(0)
    settings = SearchSettings(method="ga-sexual", elite_fraction=0.2, mutation_scale=1e-9)
    children = next_generation(population, fitness, settings, rng)
    assert children.shape == (10, 5)
    np.testing.assert_array_equal(children[:2], population[[9, 8]])  # elite first, unchanged
    # each gene of a child comes from one of the two elite parents (mutation is ~0 here)
    for child in children[2:]:
        for gene, value in enumerate(child):
            assert min(abs(value - population[[8, 9], gene])) < 1e-6
    asexual = next_generation(population, fitness, SearchSettings(method="ga-asexual",
                              elite_fraction=0.2, mutation_scale=1e-9), rng)  # fmt: skip
    for child in asexual[2:]:  # a copy of one parent
        assert min(np.abs(child - population[8]).max(), np.abs(child - population[9]).max()) < 1e-6


@pytest.mark.parametrize("method", ["ga-asexual", "ga-sexual", "cem"])
def test_genetic_search_finds_a_balancing_linear_policy(method):
    result = run_search(SearchSettings(method=method, seed=0))
    assert result.evaluation["episodes"] == 100
    assert result.evaluation["mean"] >= 475
    assert result.candidates_scored == 50 * 20 and len(result.history) == 20
    best_so_far = [row["best_so_far"] for row in result.history]
    assert best_so_far == sorted(best_so_far)


def test_grid_search_scores_every_grid_point():
    result = run_search(SearchSettings(method="grid", grid_points=3, episodes=2))
    assert result.candidates_scored == 3**5
    assert all(w in (-1.0, 0.0, 1.0) for w in result.weights)


def test_cli_json_and_files(tmp_path):
    done = run_deepq("policies", "--episodes", "20", "--json")
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == {"lean", "angle+velocity", "lean+spin", "linear"}
    done = run_deepq("policies", "--episodes", "5", "--weights", "0,0,1,1", "--json")
    assert done.returncode == 0 and set(json.loads(done.stdout)) == {"weights"}, done.stderr
    out = tmp_path / "search"
    done = run_deepq("search", "--method", "random", "--generations", "3", "--population", "10",
                     "--out", str(out), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert len(result["weights"]) == 4 and len(result["history"]) == 3
    assert (out / "history.csv").read_text().splitlines()[0] == "generation,best,mean,best_so_far"
    assert len((out / "history.csv").read_text().splitlines()) == 4
    assert json.loads((out / "result.json").read_text())["weights"] == result["weights"]
    from PIL import Image

    assert Image.open(out / "history.png").size == (800, 500)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["policies", "--episodes", "0"], "--episodes 0 must be in [1, 10000000]"),
        (["policies", "--env", "Acrobot-v1"], "CartPole-v1 policies"),
        (["search", "--population", "0"], "--population 0 must be in [1, 100000]"),
        (["search", "--elite-fraction", "1.5"], "--elite-fraction 1.5 must be in (0, 1]"),
        (["search", "--method", "annealing"], "invalid choice"),
        (["policies", "--weights", "1,2"], "must be 4 or 5 finite numbers"),
        (["video"], "name a run or checkpoint directory, a --policy or a --pretrained agent"),
        (["play", "runs/x", "--policy", "lean"], "only one of them"),
    ],
)
def test_cli_bad_calls_exit_2(args, message):
    done = run_deepq(*args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
