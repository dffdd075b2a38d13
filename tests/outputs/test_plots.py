"""deepq plot: the moving average by hand, PNGs that decode, multi-run figures, usage errors."""

import json

import numpy as np
import pytest
from PIL import Image

from deepq.errors import UsageError
from deepq.outputs.plots import moving_average, plot_history, read_history

RETURNS = [10.0, 20.0, 30.0, 40.0, 50.0, -60.0]


def write_run(run_dir, returns, summary=None):
    run_dir.mkdir(parents=True)
    lines = ["episode,env_steps,return,length,mean_100,epsilon,wall_s"]
    lines += [f"{i},{10 * i},{r},10,0,1,0.1" for i, r in enumerate(returns, 1)]
    (run_dir / "progress.csv").write_text("\n".join(lines) + "\n")
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def summary_of(threshold, solved_at, evals):
    """A summary.json as deepq writes it, solved at ``solved_at`` with evaluations of (training
    episodes before it, mean, std)."""
    history = [{"env_steps": 10 * episodes, "episodes": episodes, "train_wall_s": 0.1,
                "eval_episodes": 1, "mean": mean, "std": std, "min": mean, "max": mean,
                "returns": [mean], "lengths": [10], "epsilon": 0.0}
               for episodes, mean, std in evals]  # fmt: skip
    best = max(history, key=lambda e: e["mean"])
    return {"env_id": "CartPole-v1", "stop_reason": "total_steps", "solved": True,
            "solved_threshold": threshold, "solved_at_episode": solved_at,
            "solved_at_step": 10 * solved_at, "solved_at_wall_s": 0.5, "train_wall_s": 0.6,
            "env_steps": 60, "episodes": 6, "steps_per_s": 100.0, "best_eval_mean": best["mean"],
            "best_eval_step": best["env_steps"], "eval_history": history, "final_eval": None}  # fmt: skip


def test_moving_average_by_hand():
    # window 3: NaN, NaN, (10+20+30)/3, (20+30+40)/3, (30+40+50)/3, (40+50-60)/3
    np.testing.assert_allclose(moving_average(RETURNS, 3), [np.nan, np.nan, 20.0, 30.0, 40.0, 10.0])
    np.testing.assert_allclose(moving_average(RETURNS, 1), RETURNS)
    assert np.isnan(moving_average(RETURNS, 7)).all()


def test_history_is_read_from_the_run_directory(tmp_path):
    summary = summary_of(200, 5, [(3, 1.5, 0.5)])
    history = read_history(write_run(tmp_path / "run", RETURNS, summary))
    np.testing.assert_array_equal(history.episodes, [1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(history.returns, RETURNS)
    assert (history.threshold, history.solved_at_episode, history.evals[0]["episodes"]) == (
        200,
        5,
        3,
    )


@pytest.mark.parametrize(
    "options",
    [{}, {"rolling_only": True}, {"data_only": True}, {"window": 2, "first": 2, "last": 5}],
)
def test_single_run_png_decodes_at_the_expected_size(tmp_path, options):
    summary = summary_of(35, 4, [(3, 25, 5)])
    run = write_run(tmp_path / "run", RETURNS, summary)
    out = plot_history([run], **options)
    assert out == run / "history.png"
    with Image.open(out) as image:
        image.load()
        assert image.format == "PNG" and image.size == (1000, 700)


def test_several_runs_make_one_figure(tmp_path):
    runs = [write_run(tmp_path / f"run{i}", [r + i for r in RETURNS]) for i in range(3)]
    out = plot_history(runs, tmp_path / "all.png", window=2)
    with Image.open(out) as image:
        assert image.size == (1000, 700)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 0}, "--window 0 must be >= 1"),
        ({"first": 0}, "--first 0 must be >= 1"),
        ({"first": 5, "last": 2}, "--last 2 must be >= --first 5"),
        ({"rolling_only": True, "data_only": True}, "exclude each other"),
    ],
)
def test_bad_options(tmp_path, kwargs, message):
    run = write_run(tmp_path / "run", RETURNS)
    with pytest.raises(UsageError, match=message):
        plot_history([run], **kwargs)


def test_a_directory_that_is_not_a_run(tmp_path):
    with pytest.raises(UsageError, match="has no progress.csv"):
        plot_history([tmp_path])
    write_run(tmp_path / "empty", [])
    with pytest.raises(UsageError, match="no finished episode yet"):
        plot_history([tmp_path / "empty"])
