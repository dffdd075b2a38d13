"""Seeds × configs: ``deepq sweep`` and :func:`deepq.sweep`.

- ``grid.py``: the configs, from ``--grid`` and ``--random`` axes;
- ``sweep.py``: the plan (trials and their names), running it, resuming it, the results;
- ``executors.py``: where trials run (local processes, or a Ray cluster in ``ray_executor.py``);
- ``worker.py``: one trial, a ``deepq train`` run in a process of its own;
- ``stats.py``: each trial's figures and each config's over its seeds.
"""
