"""``deepq export``: the robust-DQN post's ``episode;steps;reward;average`` log of a run."""

import csv
import subprocess
import sys

import pytest

from deepq.errors import UsageError
from deepq.outputs.export import episode_log, export_episode_log

PROGRESS = """episode,env_steps,return,length,mean_100,epsilon,wall_s
1,65,-65.5,65,-65.5,1,0.019
2,149,-134.5,84,-100.0,0.995,1.041
3,1149,200.25,1000,0.08333333333333333,0.990025,2.5
"""


@pytest.fixture
def run_dir(tmp_path):
    (tmp_path / "progress.csv").write_text(PROGRESS)
    return tmp_path


def test_the_posts_columns_episodes_from_zero(run_dir):
    assert episode_log(run_dir) == (
        "episode;steps;reward;average\n"
        "0;65;-65.5;-65.5\n"
        "1;84;-134.5;-100.0\n"
        "2;1000;200.25;0.08333333333333333\n"
    )


def test_the_posts_plot_reads_it(run_dir, tmp_path):
    # The post plots data['average'] and data['reward'] of pd.read_csv(file, sep=';').
    out = export_episode_log(run_dir, tmp_path / "progress.log", "semicolon")
    rows = list(csv.DictReader(out.read_text().splitlines(), delimiter=";"))
    assert [float(r["average"]) for r in rows] == [-65.5, -100.0, (-65.5 - 134.5 + 200.25) / 3]
    assert [float(r["reward"]) for r in rows] == [-65.5, -134.5, 200.25]


def test_csv_format_uses_commas(run_dir):
    assert episode_log(run_dir, "csv").splitlines()[1] == "0,65,-65.5,-65.5"


@pytest.mark.parametrize(
    ("progress", "message"),
    [
        (None, "has no progress.csv"),
        ("a,b\n1,2\n", "is not a deepq progress log"),
        ("episode,env_steps,return,length,mean_100\n1,2,3\n", "line 2 does not have one value"),
        (PROGRESS.replace("-134.5,84", "nan,84"), "line 3 has return 'nan'"),
        (PROGRESS.replace("200.25", "inf"), "line 4 has return 'inf'"),
        (PROGRESS.replace("-65.5,65,", "-65.5,abc,"), "line 2 has length 'abc'"),
        (PROGRESS + "4,5,6,7,8,9,10,11\n", "line 5 does not have one value per column"),
        (PROGRESS + "4," * 40_000 + "\n", "line 5 is longer than 65,536 bytes"),  # never held
    ],
)
def test_what_is_not_a_progress_log_is_one_error(tmp_path, progress, message):
    if progress is not None:
        (tmp_path / "progress.csv").write_text(progress)
    with pytest.raises(UsageError, match=message):
        episode_log(tmp_path)


def test_a_failed_export_writes_no_file_and_prints_no_line(tmp_path, capsys):
    (tmp_path / "progress.csv").write_text(PROGRESS + "4,5,6,x,8,9,10\n")
    with pytest.raises(UsageError, match="line 5 has length 'x'"):
        export_episode_log(tmp_path, tmp_path / "out.log", "semicolon")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress.csv"]
    (tmp_path / "progress.csv").write_text("episode,env_steps,return,length,mean_100\n1,2,x,4,5\n")
    with pytest.raises(UsageError, match="line 2 has return 'x'"):
        export_episode_log(tmp_path, None, "semicolon")
    assert capsys.readouterr().out == ""


def test_cli_prints_the_log_and_fails_in_one_line(run_dir, tmp_path):
    deepq = [sys.executable, "-m", "deepq", "export", str(run_dir)]
    shown = subprocess.run(deepq, capture_output=True, text=True, check=True)
    assert shown.stdout.splitlines()[0] == "episode;steps;reward;average"
    missing = subprocess.run([*deepq[:-1], str(tmp_path / "nope")], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
