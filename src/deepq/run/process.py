"""Process-wide settings for a program that trains: JAX's CPU thread pools and its compilation
cache. They change the whole process, so a library call never makes them: the ``deepq`` command
(and the benchmark's worker) call :func:`configure_process` once at start, and a notebook or
script that wants the same speed calls it on purpose, first thing.

The thread pools: JAX starts with its CPU pools one core smaller than the process's, leaving that
core to the training loop's own thread (acting, stepping the envs, sampling replay).

Why: DQN's loop dispatches a jitted update and, while XLA computes it, acts and steps the envs in
Python. XLA sizes its CPU thread pools to every core the process may run on, so on a 2-core
machine the update's matrix products are split over both cores and contend with the loop's
thread. Sized one core smaller, XLA keeps to one core and the loop has the other: the default
LunarLander preset trains at ~1.3x the env steps/s on a 2-core CPU (7.5k -> 10.0k in alternating
40k-step runs), with every benchmark run's evaluations identical to the last digit.
Nothing is pinned: every thread may still run on every core.

How: JAX has no setting for its CPU pool sizes; it sizes them from the process's CPU affinity
when its backends start (the route JAX's maintainers give, jax-ml/jax#1539). So this narrows the
calling thread's affinity, starts the backends, and widens the calling thread and every thread
the start created back to the original set. It can only act before JAX's backends have started.
"""

from __future__ import annotations

import os
from pathlib import Path

from deepq.run.signals import signals_held


def configure_process(spare_core: bool = True, cores: int | None = None) -> None:
    """Make this process train as fast as ``deepq train`` does: JAX's persistent compilation
    cache (:func:`enable_compilation_cache`) and its CPU pools a core smaller
    (:func:`start_jax_with_a_core_to_spare`). Call it before any JAX computation; later calls,
    or calls after JAX has started, change nothing that is already set.

    ``spare_core=False`` leaves XLA every core: right for a convolutional network learning from
    pixels, whose update (the Nature CNN's: 100 ms on one core of two, 73 ms on both, batch 64)
    bounds the loop while stepping the game takes well under a millisecond.

    ``cores`` trains as ``deepq train`` would on a machine of that many cores (a sweep's trial
    given ``--cpus-per-trial``): the pools are sized from it instead of from every core this
    process may run on."""
    enable_compilation_cache()
    if spare_core or cores is not None:
        start_jax_with_a_core_to_spare(cores, spare_core)


def enable_compilation_cache() -> None:
    """Keep compiled XLA programs on disk (JAX's persistent cache) so a second run starts at once.

    ``DEEPQ_COMPILATION_CACHE`` names the directory (default ``~/.cache/deepq/xla``); ``off``
    disables it. Compiling the update, the action selection and the initialisers costs about a
    second on a 2-core CPU, a large share of a LunarLander run that trains in ~10 s.
    """
    with signals_held():  # a signal inside jaxlib's C++ start-up would abort the process
        import jax

    location = os.environ.get(
        "DEEPQ_COMPILATION_CACHE", str(Path.home() / ".cache" / "deepq" / "xla")
    )
    if location.lower() in ("off", "0", "false", "") or jax.config.jax_compilation_cache_dir:
        return
    try:
        Path(location).mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # an unwritable home is no reason to fail: compile every time instead
    jax.config.update("jax_compilation_cache_dir", location)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.05)


def start_jax_with_a_core_to_spare(cores: int | None = None, spare_core: bool = True) -> int | None:
    """Start JAX's backends with CPU thread pools sized to the process's cores minus one
    (``cores`` instead of the process's count when given; without ``spare_core``, not minus one).

    Returns the number of cores the pools were sized to, or None when it left JAX alone: the
    backends had already started (their pools are fixed by then), the pools would be no smaller
    than JAX's own choice, or the platform cannot set thread affinity (not Linux).
    """
    if not (hasattr(os, "sched_setaffinity") and os.path.isdir("/proc/self/task")):
        return None
    try:  # JAX has no public "have the backends started?"; if this private one goes, do nothing
        from jax._src.xla_bridge import backends_are_initialized
    except ImportError:
        return None

    allowed = os.sched_getaffinity(0)
    pool = min(len(allowed), cores or len(allowed)) - (1 if spare_core else 0)
    if cores is not None:  # one core for a trial: the loop and XLA share it
        pool = max(pool, 1)
    if pool < 1 or pool >= len(allowed) or backends_are_initialized():
        return None
    import jax

    threads_before = _thread_ids()
    os.sched_setaffinity(0, set(sorted(allowed)[:pool]))
    try:
        jax.devices()  # starts every backend; their pools are sized now
    finally:
        os.sched_setaffinity(0, allowed)
        for thread_id in _thread_ids() - threads_before:
            try:
                os.sched_setaffinity(thread_id, allowed)
            except OSError:  # the thread has already exited
                pass
    return pool


def _thread_ids() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/task")}
