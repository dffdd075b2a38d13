"""``python -m deepq.bench_atari``: a pixel game's training loop, deepq against Stable-Baselines3.

What it measures: agent steps per second of the whole training loop (acting, stepping the
env, storing, sampling, learning) and each process's peak RSS, for a deepq preset and SB3's DQN
given the same network, the same env (deepq's) and the same hyperparameters (``--game``):

- ``breakout``: the ``breakout`` preset and SB3's ``CnnPolicy`` (the Nature CNN): RMSprop at
  the preset's step size (2.5e-4, decay 0.95, eps 1e-5, centered), Huber, batch 64, a gradient
  step every 4 agent steps, target copied every 8,000 agent steps. Both replays hold
  ``--buffer`` transitions (SB3's buffer of the preset's 1M would need 56 GB; its allocation is
  reported beside deepq's).
- ``minatar-breakout``: the ``minatar-breakout`` preset (the MinAtar paper's DQN) and SB3 with a
  features extractor of the paper's shape (one 3×3 convolution of 16 filters, then 128 units):
  centered RMSprop at the preset's step size (ρ 0.95, eps 0.01 as PyTorch adds it), Huber,
  batch 32, a gradient step every env step, target copied every 1,000 steps.

Each system runs in a fresh subprocess, one after the other; time is the training loop's only
(no evaluation). Steps/s are split into the random collection before learning and the learning
phase, where the Nature CNN's update bounds the loop on a CPU. From the two rates each row
projects the hours of a full run (1M and 10M frames with the preset's random steps first), so
one short run on a GPU (with the ``cuda`` extra) answers "how long would 10M frames take here";
the JAX device deepq ran on is recorded beside it, and the cost of deepq's update alone
(:func:`measure_update`: ms and FLOPs per gradient step, against a large matmul's rate on the
same device). ``--update-only`` measures just that, for any preset, in seconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from deepq.bench import peak_rss_mib
from deepq.run.files import write_text_file

GAMES = {"breakout": "ALE/Breakout-v5", "minatar-breakout": "MinAtar/Breakout-v0"}  # preset: env
FRAMES_PER_STEP = {"breakout": 4, "minatar-breakout": 1}  # Atari skips 4 frames; MinAtar none
PROJECTED_FRAMES = (1_000_000, 10_000_000)


def jax_device() -> str:
    """The JAX backend and device kind this process computes on, e.g. ``gpu: NVIDIA H100``."""
    import jax

    return f"{jax.default_backend()}: {jax.devices()[0].device_kind}"


def settings(game: str, steps: int, learning_starts: int, buffer: int) -> dict[str, Any]:
    return {"game": game, "env_id": GAMES[game], "steps": steps,
            "learning_starts": learning_starts, "buffer": buffer}  # fmt: skip


def run_deepq(
    game: str, seed: int, steps: int, learning_starts: int, buffer: int
) -> dict[str, Any]:
    from deepq.dqn.config import resolve_config
    from deepq.dqn.loop import train

    overrides = {"total_steps": steps, "learning_starts": learning_starts,
                 "random_steps": learning_starts, "buffer_size": buffer, "eval_every": None,
                 "final_eval_episodes": 0, "checkpoint_every_episodes": None}  # fmt: skip
    config = resolve_config(game, seed=seed, overrides=overrides)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        summary = train(config, run, show_progress=False, tensorboard=False).summary
        rows = (run / "progress.csv").read_text().splitlines()
    header = rows[0].split(",")
    at = {name: header.index(name) for name in ("env_steps", "wall_s")}
    marks = [(int(r.split(",")[at["env_steps"]]), float(r.split(",")[at["wall_s"]]))
             for r in rows[1:]]  # fmt: skip
    return {"train_wall_s": summary["train_wall_s"], "episode_marks": marks}


def measure_update(game: str, seed: int, seconds_per_round: float = 0.5) -> dict[str, Any]:
    """The preset's update alone, as the loop calls it: a gradient step on a batch shaped as the
    replay samples it (random pixels; the arithmetic does not depend on them). Median ms of 5
    rounds, XLA's FLOP count of the step, and the rate they make; beside it the rate of a
    1024³ float32 matmul on the same device, about the most that device reaches.

    Why: this is what bounds the learning phase on a CPU. The update's rate against the matmul's
    says whether it is the arithmetic (and a faster loop would need less of it) or overheads."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from deepq.dqn.agent import build_network, init_params
    from deepq.dqn.config import resolve_config
    from deepq.dqn.learner import Learner
    from deepq.dqn.networks import encoder_for
    from deepq.dqn.replay import Batch, pack_batch
    from deepq.dqn.training_run import make_config_env

    config = resolve_config(game, seed=seed)
    env = make_config_env(config)
    space, n_actions = env.observation_space, int(env.action_space.n)
    env.close()
    network = build_network(config, n_actions, *encoder_for(space))
    learner = Learner(config, network, init_params(config, space.shape, n_actions, space.dtype))
    rng = np.random.default_rng(seed)
    shape = (config.gradient_steps, config.batch_size)
    high = 256 if space.dtype == np.uint8 else 2
    obs, next_obs = (rng.integers(0, high, (*shape, *space.shape)).astype(space.dtype)
                     for _ in range(2))  # fmt: skip
    no = np.zeros(shape, bool)
    batch = pack_batch(Batch(obs, rng.integers(0, n_actions, shape), np.zeros(shape), next_obs,
                             no, no, np.full(shape, config.gamma)))  # fmt: skip
    flops = learner.gradient_step_flops(batch)

    def median_seconds(call: Any) -> float:
        """Median seconds per call over 5 rounds of about ``seconds_per_round`` each (calls are
        asynchronous: a round waits for its last result)."""
        jax.block_until_ready(call())  # compiled and warm
        started, calls = time.perf_counter(), 0
        while time.perf_counter() - started < seconds_per_round / 5:
            jax.block_until_ready(call())
            calls += 1
        per_round, times = max(1, calls * 5), []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(per_round):
                out = call()
            jax.block_until_ready(out)
            times.append((time.perf_counter() - started) / per_round)
        return statistics.median(times)

    def one_update() -> Any:
        learner.update(batch)
        return learner.metrics

    step_s = median_seconds(one_update) / config.gradient_steps
    square = jnp.asarray(rng.random((1024, 1024), np.float32))
    matmul = jax.jit(lambda x: x @ x)
    matmul_s = median_seconds(lambda: matmul(square))
    return {
        "batch_size": config.batch_size,
        "ms_per_gradient_step": round(step_s * 1e3, 3),
        "mflop_per_gradient_step": None if flops is None else round(flops / 1e6, 2),
        "gflop_per_s": None if flops is None else round(flops / step_s / 1e9, 1),
        "matmul_1024_gflop_per_s": round(2 * 1024**3 / matmul_s / 1e9, 1),
    }


def sb3_settings(game: str) -> dict[str, Any]:
    """SB3's DQN arguments for the same network and hyperparameters as deepq's preset (the step
    size is read from the preset, so the two cannot drift apart)."""
    import torch

    from deepq.dqn.config import resolve_config

    learning_rate = resolve_config(game).learning_rate

    if game == "breakout":
        return {"policy": "CnnPolicy", "learning_rate": learning_rate, "batch_size": 64,
                "train_freq": 4, "target_update_interval": 8000, "exploration_final_eps": 0.01,
                "policy_kwargs": {"optimizer_class": torch.optim.RMSprop,
                                  "optimizer_kwargs": {"alpha": 0.95, "eps": 1e-5,
                                                       "centered": True}}}  # fmt: skip
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class MinAtarConv(BaseFeaturesExtractor):
        """The MinAtar paper's encoder: one 3×3 convolution of 16 filters, ReLU, flattened."""

        def __init__(self, space: Any):
            height, width, channels = space.shape
            super().__init__(space, features_dim=16 * (height - 2) * (width - 2))
            self.conv = torch.nn.Conv2d(channels, 16, 3)

        def forward(self, obs: Any) -> Any:  # [N, H, W, C] booleans, as deepq's env gives them
            x = torch.relu(self.conv(obs.float().permute(0, 3, 1, 2)))
            return x.flatten(1)

    return {"policy": "MlpPolicy", "learning_rate": learning_rate, "batch_size": 32,
            "train_freq": 1, "target_update_interval": 1000, "exploration_final_eps": 0.1,
            "policy_kwargs": {"features_extractor_class": MinAtarConv, "net_arch": [128],
                              "optimizer_class": torch.optim.RMSprop,
                              "optimizer_kwargs": {"alpha": 0.95, "eps": 0.01,
                                                   "centered": True}}}  # fmt: skip


def run_sb3(game: str, seed: int, steps: int, learning_starts: int, buffer: int) -> dict[str, Any]:
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    from deepq.run.envs import make_env

    env = DummyVecEnv([lambda: make_env(GAMES[game], spaces="frames")])
    model = DQN(
        env=env,
        buffer_size=buffer,
        learning_starts=learning_starts,
        gamma=0.99,
        gradient_steps=1,
        exploration_initial_eps=1.0,
        exploration_fraction=1.0,
        optimize_memory_usage=False,
        seed=seed,
        device="cpu",
        verbose=0,
        **sb3_settings(game),
    )
    marks: list[tuple[int, float]] = []

    class Marks(BaseCallback):
        def _on_training_start(self) -> None:
            self.started = time.perf_counter()

        def _on_step(self) -> bool:
            if self.locals["dones"].any():
                marks.append((self.num_timesteps, time.perf_counter() - self.started))
            return True

    started = time.perf_counter()
    model.learn(total_timesteps=steps, callback=Marks())
    return {"train_wall_s": round(time.perf_counter() - started, 3), "episode_marks": marks}


WORKERS = {"deepq": run_deepq, "sb3": run_sb3}


def rates(raw: dict[str, Any], steps: int, learning_starts: int) -> dict[str, float]:
    """Steps/s before learning and while learning, from the episode ends nearest each phase."""
    marks = [(0, 0.0), *raw["episode_marks"], (steps, raw["train_wall_s"])]
    before = [m for m in marks if m[0] <= learning_starts][-1]
    after = [m for m in marks if m[0] >= learning_starts][0]
    learning = (steps - after[0]) / (raw["train_wall_s"] - after[1])
    return {
        "collect_steps_per_s": round(before[0] / before[1], 1) if before[1] else None,
        "learning_steps_per_s": round(learning, 2),
        "overall_steps_per_s": round(steps / raw["train_wall_s"], 2),
    }


def projected_hours(
    collect_steps_per_s: float | None,
    learning_steps_per_s: float,
    random_steps: int,
    frames_per_step: int,
) -> dict[str, float]:
    """Hours of training for each of PROJECTED_FRAMES: ``random_steps`` agent steps at the
    collection rate (the learning rate where none was measured), the rest at the learning rate;
    evaluations and checkpoints not counted."""
    collect = collect_steps_per_s or learning_steps_per_s
    hours = {}
    for frames in PROJECTED_FRAMES:
        steps = frames // frames_per_step
        random = min(random_steps, steps)
        seconds = random / collect + (steps - random) / learning_steps_per_s
        hours[f"{frames // 1_000_000}M_frames"] = round(seconds / 3600, 2)
    return hours


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepq.bench_atari")
    parser.add_argument(
        "--game", default="breakout", help=f"{', '.join(GAMES)}; with --update-only, any preset"
    )
    parser.add_argument("--systems", default="deepq,sb3")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=15_000, help="agent steps per system")
    parser.add_argument("--learning-starts", type=int, default=5_000)
    parser.add_argument("--buffer", type=int, default=100_000)
    parser.add_argument("--out", default="bench-results/atari")
    parser.add_argument("--worker", choices=WORKERS)
    parser.add_argument("--raw-out")
    parser.add_argument(
        "--update-only",
        action="store_true",
        help="measure only the update of deepq's preset (seconds, no loop)",
    )
    args = parser.parse_args(argv)
    if args.update_only or args.worker == "deepq":
        from deepq.run.process import configure_process

        configure_process(spare_core=False)  # as deepq train does for pixels
    if args.update_only:
        from deepq.errors import ConfigError, UsageError

        try:
            update = measure_update(args.game, args.seed)
        except (ConfigError, UsageError) as exc:
            parser.error(str(exc))
        print(json.dumps({"game": args.game, "device": jax_device(), "update": update}))
        return 0
    if args.game not in GAMES:
        parser.error(f"--game: one of {', '.join(GAMES)} (got {args.game!r})")
    if args.worker:
        raw = WORKERS[args.worker](
            args.game, args.seed, args.steps, args.learning_starts, args.buffer
        )
        raw["peak_rss_mib"] = round(peak_rss_mib(), 1)
        if args.worker == "deepq":
            raw["device"] = jax_device()
            raw["update"] = measure_update(args.game, args.seed)
        write_text_file(args.raw_out, json.dumps(raw))
        return 0
    from deepq.dqn.config import resolve_config

    results: dict[str, Any] = {
        "settings": settings(args.game, args.steps, args.learning_starts, args.buffer),
        "machine": {"cpus": __import__("os").cpu_count(), "platform": platform.platform()},
        "systems": {},
    }
    for system in args.systems.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            raw_out = Path(tmp) / "raw.json"
            command = [sys.executable, "-m", "deepq.bench_atari", "--worker", system,
                       "--game", args.game, "--seed", str(args.seed), "--steps", str(args.steps),
                       "--learning-starts", str(args.learning_starts),
                       "--buffer", str(args.buffer), "--raw-out", str(raw_out)]  # fmt: skip
            subprocess.run(command, check=True)
            raw = json.loads(raw_out.read_text())
        row = {**rates(raw, args.steps, args.learning_starts), "peak_rss_mib": raw["peak_rss_mib"],
               "train_wall_s": raw["train_wall_s"]}  # fmt: skip
        row["projected_training_hours"] = projected_hours(
            row["collect_steps_per_s"], row["learning_steps_per_s"],
            resolve_config(args.game).random_steps, FRAMES_PER_STEP[args.game],
        )  # fmt: skip
        for key in ("device", "update"):
            if key in raw:
                row[key] = raw[key]
        results["systems"][system] = row
        print(system, row, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_file(out.with_suffix(".json"), json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
