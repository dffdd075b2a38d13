"""The agent actually learns: CartPole (DQN and Munchausen DQN) and LunarLander with their presets
and fixed seeds."""

import pytest

from deepq.dqn.config import resolve_config
from deepq.dqn.loop import train

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("munchausen", [False, True], ids=["dqn", "munchausen"])
def test_cartpole_preset_balances(tmp_path, munchausen):
    config = resolve_config(preset="cartpole", seed=0, overrides={"munchausen": munchausen})
    result = train(config, tmp_path / "run", show_progress=False)
    assert result.summary["final_eval"]["mean"] >= 195.0, result.summary


def test_lunarlander_default_preset_lands(tmp_path):
    # A regression test of the whole learning path, not a reliability claim (the benchmark in
    # docs/benchmarks.md is that): `deepq train --seed 18` (what `make train ARGS="--seed 18"`
    # runs) stops at its 75k evaluation, confirmed at 254.2 over 100 selection episodes, and the
    # agent it keeps scored 253.1 over these 100 held-out episodes (the 20 seeds measured scored
    # 236.4 or more). Seed 18 is the quickest of them to stop; the step may move between CPUs.
    result = train(resolve_config(seed=18), tmp_path / "run", show_progress=False)
    final = result.summary["final_eval"]
    assert final["episodes"] == 100
    assert final["mean"] >= 230.0, result.summary
