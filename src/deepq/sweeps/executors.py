"""Where a sweep's trials run: :class:`LocalExecutor` (processes on this machine, the default;
no Ray needed) or :class:`RayExecutor` (tasks on a Ray cluster). Both run each trial the same
way, :func:`run_trial_here`: the trial program (:mod:`deepq.sweeps.worker`) in a fresh process
with its thread pools capped to the trial's CPUs, writing a run directory. An executor yields
each trial's :class:`TrialOutcome` as it finishes, with the run directory on the driver's disk.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepq.errors import UsageError

# Numpy's BLAS (the acting path's matrix products) and OpenMP pools read these at start-up.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class TrialTask:
    """One trial as a program: ``python -m MODULE ARGS --cpus N --parent PID --out DIR`` with
    ``stdin`` on its standard input, writing its files into DIR (which it creates). A sweep's
    trial is :mod:`deepq.sweeps.worker` (:func:`train_task`); a benchmark's, ``deepq.bench``'s
    worker."""

    name: str
    program: tuple[str, ...]  # the module, then its arguments
    cpus: int | None  # None: the whole machine, as deepq train (a benchmark one at a time)
    stdin: str = ""


def train_task(
    name: str,
    algo: str,
    config: dict[str, Any],
    cpus: int,
    checkpoints: str = "best",
    report: bool = False,
    env_modules: tuple[str, ...] = (),
) -> TrialTask:
    """A ``deepq train`` run of ``config`` (seed included) as a trial. ``env_modules``
    (``--env-module``) come from the command line, never from a file."""
    program = ["deepq.sweeps.worker", "--checkpoints", checkpoints]
    program += ["--report"] * report
    for module in env_modules:
        program += ["--env-module", module]
    return TrialTask(name, tuple(program), cpus, json.dumps({"algo": algo, "config": config}))


@dataclass
class TrialOutcome:
    name: str
    returncode: int
    error: str | None  # the trial program's last line on stderr, when it failed
    node: str  # the host that ran it
    wall_s: float
    run_dir: Path | None  # its output on the driver's disk (None: the trial left nothing)


def run_trial_here(task: TrialTask, out: Path) -> tuple[int, str | None, float]:
    """Run the trial's program into ``out`` (which must not exist yet) on this machine, and
    wait: (exit code, its error line or None, seconds). A signal to this process's group does
    not reach the trial (its own session): the executor decides when trials stop."""
    module, *arguments = task.program
    command = [sys.executable, "-m", module, *arguments, "--parent", str(os.getpid()),
               "--out", str(out)]  # fmt: skip
    env = dict(os.environ)
    if task.cpus is not None:
        command += ["--cpus", str(task.cpus)]
        env.update(dict.fromkeys(THREAD_VARIABLES, str(task.cpus)))
    env.setdefault("SDL_VIDEODRIVER", "dummy")
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    _LIVE.add(process)
    try:
        _, stderr = process.communicate(task.stdin)
    except BaseException:  # this thread was interrupted (a Ray task cancelled): stop the trial
        _LIVE.interrupt([process])
        raise
    finally:
        _LIVE.discard(process)
    lines = [line for line in stderr.splitlines() if line.strip()]
    error = lines[-1] if process.returncode != 0 and lines else None
    return process.returncode, error, time.perf_counter() - started


def available_cores() -> int:
    """The cores this process may run on (its affinity where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def add_trial_arguments(parser: Any) -> None:
    """The options every trial program takes from :func:`run_trial_here`."""
    parser.add_argument("--out", required=True, help="the directory to write (created)")
    parser.add_argument("--cpus", type=int, help="size the thread pools to this many cores")
    parser.add_argument("--parent", type=int, help="the pid of the process that started this one")


def end_with_parent(parent: int | None) -> bool:
    """For a trial program, first thing: die (SIGTERM) with the process that started it, on
    Linux; False if that one has already gone. A Ray worker killed mid-trial must not leave its
    trial training on, unseen, beside the retry; the trial's own session shields it from the
    driver's Ctrl-C, not from this."""
    if parent is None:
        return True
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    return os.getppid() == parent


class _LiveProcesses:
    """The trial processes this process has running, so that a stopped sweep can stop them."""

    def __init__(self) -> None:
        self._lock, self._processes = threading.Lock(), set()

    def add(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._processes.add(process)

    def discard(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._processes.discard(process)

    def interrupt_all(self, grace_s: float = 60.0) -> None:
        """SIGINT to every running trial (each saves what it has and exits), then wait."""
        with self._lock:
            processes = list(self._processes)
        self.interrupt(processes, grace_s)

    @staticmethod
    def interrupt(processes: list[subprocess.Popen], grace_s: float = 60.0) -> None:
        for process in processes:
            try:
                process.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        for process in processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()


_LIVE = _LiveProcesses()


class LocalExecutor:
    """Trials as processes on this machine, ``parallel`` at a time."""

    def __init__(self, parallel: int = 1):
        if parallel < 1:
            raise UsageError(f"--parallel {parallel} must be >= 1")
        self.parallel = parallel
        self.description = f"local, {parallel} trial{'s' if parallel > 1 else ''} at a time"

    def run(self, tasks: list[TrialTask], staging: Path) -> Iterator[TrialOutcome]:
        """Run ``tasks``; yield each outcome as its trial ends, its run directory under
        ``staging``. Closing the iterator (a Ctrl-C in the caller) interrupts the trials still
        running and waits for them."""
        node = platform.node()

        def one(task: TrialTask) -> TrialOutcome:
            run_dir = staging / task.name
            remove_path(run_dir)
            code, error, wall = run_trial_here(task, run_dir)
            return TrialOutcome(task.name, code, error, node, wall,
                                run_dir if run_dir.is_dir() else None)  # fmt: skip

        pool = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="trial")
        pending: set[Future] = set()
        queue = list(tasks)
        try:
            while queue or pending:
                while queue and len(pending) < self.parallel:
                    pending.add(pool.submit(one, queue.pop(0)))
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()
            if pending:
                _LIVE.interrupt_all()
            pool.shutdown(wait=True, cancel_futures=True)


def remove_path(path: Path) -> None:
    """Remove whatever is at ``path``: a symlink itself (never what it points to), a file, or a
    directory tree."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
