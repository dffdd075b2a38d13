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


def test_measure_update_counts_the_minatar_networks_flops_by_hand():
    pytest.importorskip("minatar")
    from deepq.bench_atari import measure_update

    got = measure_update("minatar-breakout", seed=0, seconds_per_round=0.05)
    # Per sample: conv 3x3x4 -> 16 at 8x8 positions, 2*64*16*36 = 73,728; fc 1024 -> 128,
    # 262,144; head 128 -> 6, 1,536; a forward F = 337,408. A step: online and target forwards
    # (2F), weight gradients (F), input gradients of fc and head (the conv's input is data):
    # 3F + 263,680 = 1,275,904 a sample, x 32. Elementwise ops and RMSprop add a few per cent.
    by_hand = 32 * 1_275_904 / 1e6
    assert got["batch_size"] == 32
    assert by_hand <= got["mflop_per_gradient_step"] <= 1.1 * by_hand
    rate = got["mflop_per_gradient_step"] / got["ms_per_gradient_step"]  # MFLOP/ms = GFLOP/s
    assert got["gflop_per_s"] == pytest.approx(rate, rel=0.01)
    assert got["matmul_1024_gflop_per_s"] > 0
