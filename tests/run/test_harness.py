"""The run harness's stop rules and training clock, which every loop shares."""

import pytest

from deepq.run import harness
from deepq.run.harness import RunProgress, StopRules, TrainingClock


def progress(env_steps=0, episodes=0, solved=False):
    p = RunProgress(env_steps=env_steps, episodes=episodes)
    p.solved_at = {"episode": episodes, "env_steps": env_steps, "wall_s": 1.0} if solved else None
    return p


RULES = StopRules(stop_when_solved=True, total_steps=100, max_episodes=10, time_budget_s=5.0)


@pytest.mark.parametrize(
    ("p", "elapsed", "interrupted", "reason"),
    [
        (progress(50, 5), 1.0, False, None),
        (progress(50, 5), 1.0, True, "interrupted"),
        (progress(100, 10, solved=True), 9.0, True, "interrupted"),  # first rule wins
        (progress(100, 10, solved=True), 9.0, False, "solved"),
        (progress(100, 10), 9.0, False, "total_steps"),
        (progress(99, 10), 9.0, False, "max_episodes"),
        (progress(99, 9), 5.0, False, "time_budget"),
        (progress(99, 9), 4.99, False, None),
    ],
)
def test_stop_rules_in_order(p, elapsed, interrupted, reason):
    assert RULES.reason(p, elapsed, interrupted) == reason


def test_unset_budgets_never_stop_and_solving_stops_only_when_asked():
    assert StopRules(False).reason(progress(10**9, 10**9, solved=True), 1e9, False) is None


def test_a_greedy_evaluation_reaching_eval_mean_stops_the_run():
    rules = StopRules(stop_when_solved=False, total_steps=100, eval_mean=250.0)
    p = progress(50, 5)
    assert rules.reason(p, 1.0, False) is None  # no evaluation yet
    p.best_eval_mean = 249.99
    assert rules.reason(p, 1.0, False) is None
    p.best_eval_mean = 250.0
    assert rules.reason(p, 1.0, False) == "eval_mean"
    assert rules.reason(p, 1.0, True) == "interrupted"
    assert StopRules(False).reason(p, 1.0, False) is None  # only when asked


def test_clock_excludes_paused_time_and_carries_earlier_sessions(monkeypatch):
    now = [100.0]  # a fake perf_counter, moved by hand
    monkeypatch.setattr(harness.time, "perf_counter", lambda: now[0])
    p = RunProgress(train_seconds=10.0)  # a resumed run's earlier training time
    clock = TrainingClock(p)
    now[0] += 2.0  # 2 s of training
    assert clock.elapsed() == 12.0
    with clock.paused():
        now[0] += 30.0  # an evaluation: not training time
        assert p.train_seconds == 12.0
    now[0] += 1.0
    clock.stop()
    assert p.train_seconds == 13.0 == clock.elapsed()
