"""The Hands-On ML chapter's CartPole DQN presets and the per-episode target sync they need."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from deepq.dqn.config import DQNConfig, preset_choice, resolve_config
from deepq.dqn.loop import train
from deepq.run.checkpoint import load_checkpoint


def test_presets_and_docs_name_the_source_documents_by_what_they_are():
    """The LunarLander lab, the robust-DQN post, the Hands-On ML chapter: never a file number
    ("seeds 000/003") or the folder they are kept in."""
    root = Path(__file__).resolve().parents[2]
    texts = {path: path.read_text() for path in [*root.glob("src/deepq/**/*.py"),
             *root.glob("docs/*.md"), root / "README.md"]}  # fmt: skip
    for path in root.glob("src/deepq/presets/*.json"):
        texts[path] = json.loads(path.read_text())["description"]
    numbered = re.compile(r"\bseeds? \d{3}\b|shared/seeds")
    assert [str(path) for path, text in texts.items() if numbered.search(text)] == []


def test_the_basic_dqn_is_the_chapters():
    c = resolve_config("cartpole-dqn")
    assert (c.env_id, c.hidden_sizes, c.activation) == ("CartPole-v1", (32, 32), "elu")
    assert (c.buffer_size, c.batch_size, c.gamma, c.loss) == (2000, 32, 0.95, "mse")
    assert (c.learning_rate, c.double, c.dueling) == (1e-3, False, False)
    assert (c.epsilon_schedule, c.epsilon_decay_episodes, c.epsilon_end) == (
        "linear_episodes",
        500,
        0.01,
    )
    # one gradient step per finished episode, from the chapter's `if episode > 50` on
    assert (c.train_every_episodes, c.learning_starts_episodes, c.gradient_steps) == (1, 52, 1)
    # no target network: the target is copied from the online net after every step
    assert (c.target_update, c.target_update_every, c.target_update_every_episodes) == (
        "hard",
        1,
        None,
    )


@pytest.mark.parametrize(
    ("preset", "every", "double", "dueling", "loss", "learning_rate"),
    [
        ("cartpole-fixed-target", 50, False, False, "mse", 1e-3),
        ("cartpole-double", 50, True, False, "huber", 1e-3),
        ("cartpole-dueling", 200, True, True, "huber", 1e-2),
    ],
)
def test_the_target_network_variants(preset, every, double, dueling, loss, learning_rate):
    c = resolve_config(preset)
    assert c.target_update == "hard" and c.target_update_every_episodes == every
    assert (c.double, c.dueling, c.loss, c.learning_rate) == (double, dueling, loss, learning_rate)
    assert (c.hidden_sizes, c.buffer_size, c.batch_size, c.gamma) == ((32, 32), 2000, 32, 0.95)
    # learning every env step: once per episode, as the chapter does, they stay near random
    assert (c.train_every, c.train_every_episodes, c.learning_starts) == (1, None, 1000)
    # the chapter's dueling head subtracts max A
    assert c.dueling_aggregation == ("max" if dueling else "mean")


def final_params(run_dir):
    arrays, _ = load_checkpoint(run_dir / "checkpoints" / "final")
    online = {k.removeprefix("params"): v for k, v in arrays.items() if k.startswith("params[")}
    target = {k.removeprefix("target_params"): v for k, v in arrays.items()
              if k.startswith("target_params[")}  # fmt: skip
    assert online and online.keys() == target.keys()
    return online, target


@pytest.mark.parametrize(("every", "synced_at_the_end"), [(2, True), (3, False)])
def test_target_syncs_every_n_episodes(tmp_path, every, synced_at_the_end):
    """Counting-v0 episodes last 3 steps; learning runs every step. After 4 episodes, a sync
    every 2 episodes has just copied the online net (the last copy follows the last update);
    a sync every 3 copied it one episode, three updates, earlier."""
    config = DQNConfig(
        env_id="deepq-test/Counting-v0", hidden_sizes=(4,), total_steps=None, max_episodes=4,
        learning_starts=2, batch_size=2, train_every=1, target_update="hard",
        target_update_every_episodes=every, eval_every=None, final_eval_episodes=0,
        epsilon_schedule="constant", epsilon_start=0.5,
    )  # fmt: skip
    train(config, tmp_path / "run", show_progress=False, tensorboard=False)
    online, target = final_params(tmp_path / "run")
    same = all(np.array_equal(online[k], target[k]) for k in online)
    assert same == synced_at_the_end


def test_episode_syncs_need_hard_updates():
    with pytest.raises(Exception, match="target_update_every_episodes needs target_update='hard'"):
        DQNConfig(target_update_every_episodes=10)


def test_the_pytorch_exercise_is_its_notebooks_settings():
    c = resolve_config("lunarlander-exercise")
    assert (c.env_id, c.max_episode_steps, c.time_budget_s) == ("LunarLander-v3", 500, 300)
    assert (c.epsilon_schedule, c.epsilon_start, c.gamma) == ("constant", 0.3, 0.99)
    assert (c.batch_size, c.buffer_size, c.learning_starts, c.train_every) == (256, 10_000, 256, 1)
    assert (c.target_update, c.target_update_every, c.loss) == ("hard", 1, "mse")
    assert not (c.munchausen or c.double or c.dueling or c.layer_norm) and c.num_envs == 1


@pytest.mark.parametrize(
    ("preset", "env_id", "line"),
    [
        (None, None, "preset lunarlander (the default)"),
        (None, "CartPole-v1", "preset cartpole (CartPole-v1's preset, picked by --env)"),
        (None, "Acrobot-v1", "no preset: Acrobot-v1 trains from deepq's generic defaults"),
        ("lunarlander-exercise", None, "preset lunarlander-exercise (--preset)"),
    ],
)
def test_a_run_says_which_preset_it_starts_from(preset, env_id, line):
    assert preset_choice(preset, env_id).startswith(line)
