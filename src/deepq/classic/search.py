"""Searching the weights of a linear CartPole policy (push right when w·obs + b > 0), after
the Hands-On ML RL chapter: brute-force grid, random search, genetic algorithms with asexual
(mutation only) and sexual (crossover + mutation) reproduction, and the cross-entropy method, a
gradient-free "variant of gradient descent" (the chapter's fourth assignment).

Every candidate's fitness is its mean return over ``episodes`` episodes, and a whole generation is
scored at once: population × episodes CartPoles in one Gymnasium vector env (numpy across envs),
each env acting with its own candidate's weights.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from deepq.classic.policies import EpisodeStats, episode_returns, linear_policy
from deepq.errors import UsageError
from deepq.run.files import replacing, write_text_file, writing

Method = Literal["grid", "random", "ga-asexual", "ga-sexual", "cem"]
METHODS = ("grid", "random", "ga-asexual", "ga-sexual", "cem")
OBS_DIM = 4  # CartPole
HELD_OUT_SEED = 2**31  # the final evaluation's episodes; searches use seeds below it


@dataclass(frozen=True)
class SearchSettings:
    method: Method = "ga-sexual"
    population: int = 50
    generations: int = 20
    episodes: int = 10  # per candidate per generation
    mutation_scale: float = 0.1
    elite_fraction: float = 0.2
    grid_points: int = 5  # values per weight in [-1, 1]: grid_points ** 5 candidates with the bias
    max_steps: int | None = None  # per episode (the env's own 500 by default)
    seed: int = 0

    def validate(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"--method {self.method!r} must be one of {', '.join(METHODS)}")
        for name in ("population", "generations", "episodes", "grid_points"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} {getattr(self, name)} must be >= 1")
        if self.mutation_scale <= 0:
            raise UsageError(f"--mutation-scale {self.mutation_scale} must be > 0")
        if not 0 < self.elite_fraction <= 1:
            raise UsageError(f"--elite-fraction {self.elite_fraction} must be in (0, 1]")
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError(f"--max-steps {self.max_steps} must be >= 1")
        if self.seed < 0:
            raise UsageError(f"--seed {self.seed} must be >= 0")


def population_fitness(
    candidates: np.ndarray, episodes: int, seed: int, max_steps: int | None = None
) -> np.ndarray:
    """Mean return [P] of each candidate [P, 5] (4 weights, then the bias) over ``episodes``
    CartPole episodes, all P × episodes played at once."""
    weights = np.repeat(candidates[:, :OBS_DIM], episodes, axis=0)  # [P * E, 4]
    bias = np.repeat(candidates[:, OBS_DIM], episodes)  # [P * E]
    policy = lambda obs: ((obs * weights).sum(axis=1) + bias > 0).astype(np.int64)  # noqa: E731
    returns = episode_returns(policy, len(weights), seed, "CartPole-v1", max_steps)
    return returns.reshape(len(candidates), episodes).mean(axis=1)


def next_generation(
    population: np.ndarray,
    fitness: np.ndarray,
    settings: SearchSettings,
    rng: np.random.Generator,
) -> np.ndarray:
    """Keep the elite unchanged; fill the rest with children of elite parents: a mutated copy of
    one parent (asexual), or a uniform crossover of two parents, then mutated (sexual)."""
    n_elite = max(1, int(round(settings.elite_fraction * len(population))))
    elite = population[np.argsort(fitness)[::-1][:n_elite]]
    n_children = len(population) - n_elite
    parents = elite[rng.integers(n_elite, size=n_children)]
    if settings.method == "ga-sexual":
        others = elite[rng.integers(n_elite, size=n_children)]
        from_other = rng.random(parents.shape) < 0.5
        parents = np.where(from_other, others, parents)
    children = parents + rng.normal(0.0, settings.mutation_scale, parents.shape)
    return np.concatenate([elite, children])


def cem_update(
    candidates: np.ndarray, fitness: np.ndarray, elite_fraction: float, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """The cross-entropy method's step (Rubinstein 1999; for policies, Szita & Lőrincz 2006):
    refit the sampling Gaussian to the elite, the fittest ``elite_fraction`` of the candidates.
    Returns its new mean and std, the std widened by ``noise`` so it never collapses early."""
    n_elite = max(1, int(round(elite_fraction * len(candidates))))
    elite = candidates[np.argsort(fitness)[::-1][:n_elite]]
    return elite.mean(axis=0), elite.std(axis=0) + noise


@dataclass
class SearchResult:
    method: str
    weights: list[float]  # the 4 observation weights
    bias: float
    evaluation: dict[str, float]  # held-out episodes
    candidates_scored: int
    history: list[dict[str, float]]  # per generation: best, mean, best_so_far


def run_search(settings: SearchSettings) -> SearchResult:
    settings.validate()
    rng = np.random.default_rng(settings.seed)
    history: list[dict[str, float]] = []
    best_candidate, best_fitness, scored = None, -np.inf, 0

    def score(candidates: np.ndarray, generation: int) -> np.ndarray:
        nonlocal best_candidate, best_fitness, scored
        # fresh episodes each generation: a candidate is not tuned to a few lucky starts
        fitness = population_fitness(candidates, settings.episodes,
                                     settings.seed * 10_000 + generation, settings.max_steps)  # fmt: skip
        scored += len(candidates)
        top = int(np.argmax(fitness))
        if fitness[top] > best_fitness:
            best_candidate, best_fitness = candidates[top].copy(), float(fitness[top])
        history.append({"generation": generation, "best": float(fitness[top]),
                        "mean": float(fitness.mean()), "best_so_far": best_fitness})  # fmt: skip
        return fitness

    if settings.method == "grid":
        axis = np.linspace(-1.0, 1.0, settings.grid_points)
        grid = np.stack(np.meshgrid(*[axis] * (OBS_DIM + 1), indexing="ij"), axis=-1)
        candidates = grid.reshape(-1, OBS_DIM + 1)
        for start in range(0, len(candidates), 1024):  # bounded memory: 1024 × episodes envs
            score(candidates[start : start + 1024], generation=start // 1024)
    elif settings.method == "random":
        for generation in range(settings.generations):
            score(rng.uniform(-1.0, 1.0, (settings.population, OBS_DIM + 1)), generation)
    elif settings.method == "cem":  # sample from a Gaussian, refit it to the elite, repeat
        mean, std = np.zeros(OBS_DIM + 1), np.ones(OBS_DIM + 1)
        for generation in range(settings.generations):
            candidates = mean + std * rng.standard_normal((settings.population, OBS_DIM + 1))
            fitness = score(candidates, generation)
            mean, std = cem_update(candidates, fitness, settings.elite_fraction,
                                   settings.mutation_scale)  # fmt: skip
    else:
        population = rng.uniform(-1.0, 1.0, (settings.population, OBS_DIM + 1))
        for generation in range(settings.generations):
            fitness = score(population, generation)
            if generation + 1 < settings.generations:
                population = next_generation(population, fitness, settings, rng)

    assert best_candidate is not None
    weights, bias = best_candidate[:OBS_DIM], float(best_candidate[OBS_DIM])
    returns = episode_returns(linear_policy(weights, bias), 100, HELD_OUT_SEED,
                              max_steps=settings.max_steps)  # fmt: skip
    return SearchResult(settings.method, [float(w) for w in weights], bias,
                        asdict(EpisodeStats.of(returns)), scored, history)  # fmt: skip


def write_search_outputs(result: SearchResult, out_dir: str | Path) -> dict[str, Path]:
    """history.csv (one row per generation), history.png and result.json in ``out_dir``."""
    out_dir = Path(out_dir)
    with writing(out_dir):
        if out_dir.exists() and not out_dir.is_dir():
            raise UsageError(f"--out {out_dir} is a file; the search writes a directory there")
        out_dir.mkdir(parents=True, exist_ok=True)
        return _write_search_outputs(result, out_dir)


def _write_search_outputs(result: SearchResult, out_dir: Path) -> dict[str, Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    paths = {"csv": out_dir / "history.csv", "png": out_dir / "history.png",
             "json": out_dir / "result.json"}  # fmt: skip
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=["generation", "best", "mean", "best_so_far"])
    writer.writeheader()
    writer.writerows(result.history)
    write_text_file(paths["csv"], table.getvalue())
    figure = Figure(figsize=(8, 5), dpi=100, facecolor="white")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    generations = [row["generation"] for row in result.history]
    axes.plot(
        generations, [row["best"] for row in result.history], "o-", label="best of generation"
    )
    axes.plot(
        generations, [row["mean"] for row in result.history], "s-", label="mean of generation"
    )
    axes.plot(
        generations, [row["best_so_far"] for row in result.history], "k--", label="best so far"
    )
    axes.set_xlabel("batch of candidates" if result.method == "grid" else "generation")
    axes.set_ylabel("mean return")
    axes.set_title(f"linear CartPole policy search: {result.method}")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    with replacing(paths["png"]) as temporary:
        figure.savefig(temporary, format="png")
    write_text_file(paths["json"], json.dumps(asdict(result), indent=2) + "\n")
    return paths
