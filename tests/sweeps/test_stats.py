"""A sweep's figures, against values computed by hand."""

import pytest

from deepq.sweeps.stats import config_figures, mean_ci95, quartiles, trial_scores


def evals(*points):
    return [{"env_steps": s, "train_wall_s": w, "mean": m} for s, w, m in points]


def test_quartiles_interpolate_between_order_statistics():
    # positions (n-1)·q = 0.75, 1.5, 2.25 in [10, 20, 30, 40]
    assert quartiles([40, 10, 30, 20]) == (17.5, 25.0, 32.5)
    assert quartiles([7]) == (7.0, 7.0, 7.0)


def test_the_confidence_interval_is_students_t():
    # mean 2.5; s = sqrt((2.25 + 0.25 + 0.25 + 2.25) / 3) = 1.2909944; t(0.975, 3) = 3.1824463
    mean, half = mean_ci95([1, 2, 3, 4])
    assert mean == 2.5
    assert half == pytest.approx(3.1824463 * 1.2909944 / 2, rel=1e-6)  # 2.0542623
    assert mean_ci95([5.0]) == (5.0, None)


def test_a_trial_solves_at_its_first_evaluation_at_the_threshold():
    summary = {"solved_threshold": 200, "env_steps": 30000, "train_wall_s": 30.0,
               "eval_history": evals((10000, 9.0, 150), (20000, 19.0, 200), (30000, 29.0, 180))}  # fmt: skip
    scores = trial_scores(summary)
    assert (
        scores["solved"] and scores["steps_to_solve"] == 20000 and scores["time_to_solve_s"] == 19.0
    )
    assert scores["best_mean"] == 200 and scores["final_mean"] == 180
    assert scores["curve"] == [[10000, 150], [20000, 200], [30000, 180]]


def test_without_a_threshold_nothing_is_solved_and_without_evaluations_training_decides():
    no_threshold = {"solved_threshold": None, "eval_history": evals((1000, 1.0, 5.0))}
    assert not trial_scores(no_threshold)["solved"]
    by_training = {"solved_threshold": 195, "solved": True, "solved_at_step": 4321,
                   "solved_at_wall_s": 3.5, "eval_history": []}  # fmt: skip
    scores = trial_scores(by_training)
    assert scores["solved"] and scores["steps_to_solve"] == 4321 and scores["best_mean"] is None


def test_a_config_counts_an_unsolved_seed_as_its_whole_run():
    solved = {"solved": True, "steps_to_solve": 10, "time_to_solve_s": 1.0, "env_steps": 50,
              "train_wall_s": 5.0, "best_mean": 3.0, "final_mean": 1.0}  # fmt: skip
    unsolved = {**solved, "solved": False, "steps_to_solve": None, "time_to_solve_s": None,
                "best_mean": 1.0, "final_mean": 1.0}  # fmt: skip
    figures = config_figures([solved, unsolved])
    assert figures["seeds"] == 2 and figures["solved"] == 1
    assert figures["steps_to_solve"] == {"q1": 20.0, "median": 30.0, "q3": 40.0}  # of [10, 50]
    assert figures["time_to_solve_s"]["median"] == 3.0  # of [1, 5]
    assert figures["best_mean"]["mean"] == 2.0
    # s = sqrt(2), t(0.975, 1) = 12.7062047: half-width 12.7062047 · sqrt(2) / sqrt(2)
    assert figures["best_mean"]["ci95"] == pytest.approx(12.7062047, rel=1e-6)
    assert figures["final_mean"] == {"mean": 1.0, "ci95": 0.0}
    assert config_figures([]) == {"seeds": 0, "solved": 0}
