"""The pixel loop benchmark's arithmetic: phase rates from episode ends, and projected hours."""

import pytest

from deepq.bench_atari import projected_hours, rates


def test_rates_split_the_run_at_the_episode_ends_around_learning_starts():
    # episodes end at steps 300 (1.0 s), 600 (2.0 s) and 900 (12.0 s); learning starts at 500
    raw = {"episode_marks": [(300, 1.0), (600, 2.0), (900, 12.0)], "train_wall_s": 22.0}
    got = rates(raw, steps=1200, learning_starts=500)
    assert got["collect_steps_per_s"] == 300.0  # 300 steps in 1.0 s, the last end before 500
    assert got["learning_steps_per_s"] == 30.0  # (1200 - 600) steps in (22 - 2) s
    assert got["overall_steps_per_s"] == pytest.approx(1200 / 22, abs=0.01)


def test_projected_hours_count_the_random_steps_at_the_collection_rate():
    # Atari: 1M frames = 250,000 agent steps: 20,000 at 500/s (40 s), 230,000 at 50/s (4,600 s)
    hours = projected_hours(500.0, 50.0, random_steps=20_000, frames_per_step=4)
    assert hours["1M_frames"] == round(4_640 / 3600, 2)
    # 10M frames = 2.5M agent steps: 40 s + 2,480,000 / 50 s
    assert hours["10M_frames"] == round((40 + 49_600) / 3600, 2)
    # MinAtar: a frame per step; no collection rate measured: the learning rate throughout
    assert projected_hours(None, 100.0, 5_000, 1)["1M_frames"] == round(10_000 / 3600, 2)
