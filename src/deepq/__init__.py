"""deepq: deep Q-learning on Gymnasium environments, in JAX.

Python API (mirrors the CLI)::

    import deepq
    result = deepq.train(deepq.resolve_config(preset="lunarlander"))
    agent = deepq.load(result.run_dir)          # the run's best checkpoint
    print(deepq.evaluate(agent, episodes=100).mean)
    table = deepq.sweep([config_a, config_b], seeds=range(10))  # configs x seeds, in processes

Heavy modules (JAX, Gymnasium) load on first use, so ``import deepq`` and ``deepq --help`` are quick.
"""

from __future__ import annotations

from typing import Any

from deepq.errors import CheckpointError, ConfigError, DeepQError, UsageError
from deepq.version import __version__

# Everything else loads on first use: ``python -m deepq`` must reach its signal handlers
# (deepq.__main__) before anything slow is imported.
_LAZY = {
    "QLearningConfig": "deepq.classic.configs",
    "ReinforceConfig": "deepq.classic.configs",
    "DQNConfig": "deepq.dqn.config",
    "config_from_dict": "deepq.dqn.config",
    "resolve_config": "deepq.dqn.config",
    "train": "deepq.api",
    "resume": "deepq.api",
    "load": "deepq.api",
    "evaluate": "deepq.api",
    "Agent": "deepq.dqn.agent",
    "configure_process": "deepq.run.process",
    "sweep": "deepq.sweeps.sweep",
}

__all__ = [
    "__version__",
    "Agent",
    "CheckpointError",
    "ConfigError",
    "DQNConfig",
    "DeepQError",
    "QLearningConfig",
    "ReinforceConfig",
    "UsageError",
    "config_from_dict",
    "configure_process",
    "evaluate",
    "load",
    "resolve_config",
    "resume",
    "sweep",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deepq' has no attribute {name!r}")
