"""Trials as Ray tasks (``pip install 'deepq[ray]'``): one task per trial, ``num_cpus`` = the
trial's CPUs, so Ray's scheduler places them on the cluster's nodes; no scheduler of deepq's own.

Each task runs the trial exactly as the local executor does (:func:`run_trial_here`) in its
node's temp space, then returns the run directory as a tar archive, which the driver unpacks
under the sweep directory: the cluster needs no shared file system, and the driver's disk
holds every run at the end. Run directories are small with the default checkpoint policy (a
LunarLander trial ~0.4 MB: progress, TensorBoard, the best agent); ``--checkpoints all`` adds
the training states with their replay buffers (tens of MB for LunarLander, GBs for Atari),
which then travel through Ray's object store, one trial's at a time per node.

A task whose worker process or node is lost is retried once by Ray (``max_retries=1``); a
trial that fails on its own (bad config, divergence) returns its error, and is not retried.
Why plain tasks rather than Ray Tune: a sweep here is a fixed list of independent trials
whose results are files; Tune's trial runner, checkpoint syncing and search algorithms would
add a dependency (``ray[tune]``) and a second result format without doing anything tasks do
not. Its schedulers (ASHA) are discussed in docs/scaling.md.
"""

from __future__ import annotations

import io
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deepq.errors import DeepQError, UsageError
from deepq.run.files import describe_os_error
from deepq.sweeps.executors import TrialOutcome, TrialTask, run_trial_here

SCRATCH_PREFIX = "deepq-trial-"


class ClusterUnreachable(DeepQError):
    """No Ray cluster answered at the address given (exit 1: nothing was started)."""


# HOST:PORT of the head node (a name or IPv4 address, or an IPv6 address in brackets).
RAY_ADDRESS = re.compile(r"^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9][A-Za-z0-9.-]{0,252})):(\d{1,5})$")
CONNECT_TIMEOUT_S = 30.0  # Ray itself waits ~2 minutes on an address where no cluster answers


def check_address(address: str) -> tuple[str, int] | None:
    """The (host, port) of a Ray head's ``--address``, or None for ``auto`` (a cluster started on
    this machine with ``ray start``). Anything else is one UsageError."""
    if address == "auto":
        return None
    if address.startswith("ray://"):
        raise UsageError(
            f"--address {address}: Ray Client addresses (ray://) are not supported; give the "
            "head node's HOST:PORT (its GCS port, 6379 by default) from a machine of the cluster"
        )
    match = RAY_ADDRESS.match(address)
    if match is None or not 1 <= int(match[3]) <= 65535:
        raise UsageError(
            f"--address {address[:80]!r} must be HOST:PORT of a Ray cluster's head (e.g. "
            "10.0.0.5:6379, port in [1, 65535]) or auto"
        )
    return match[1] or match[2], int(match[3])


# Run in a child process, so that a connection that never completes can be abandoned: Ray's
# own connect waits ~2 minutes, then exits the process that called it.
_PROBE = """
import sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False, configure_logging=False)
print(ray.cluster_resources().get("CPU", 0))
"""


def check_cluster(address: str, cpus_per_trial: int, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Before anything is created for a sweep: the address is well formed, something listens
    there, a Ray cluster connects within ``timeout_s``, and it has ``cpus_per_trial`` CPUs."""
    endpoint = check_address(address)
    if endpoint is not None:
        try:
            socket.create_connection(endpoint, timeout=min(timeout_s, 10.0)).close()
        except OSError as exc:
            raise ClusterUnreachable(
                f"no Ray cluster at {address}: {describe_os_error(exc)}"
            ) from None
    probe = subprocess.Popen([sys.executable, "-c", _PROBE, address], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # fmt: skip
    try:
        out, err = probe.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ClusterUnreachable(
            f"{address} answers, but no Ray cluster connected there within {timeout_s:g} s"
        ) from None
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()
    if probe.returncode != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        why = lines[-1].strip() if lines else f"exit status {probe.returncode}"
        raise ClusterUnreachable(f"cannot connect to the Ray cluster at {address}: {why[:300]}")
    try:
        cpus = float(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise ClusterUnreachable(f"the Ray cluster at {address} did not say its CPUs") from None
    if cpus < cpus_per_trial:
        raise UsageError(f"--cpus-per-trial {cpus_per_trial}: the Ray cluster has {cpus:g} CPUs")


def _trial_on_a_node(task: TrialTask) -> tuple[int, str | None, str, float, bytes]:
    """The Ray task: run the trial here, return (exit code, error, node, seconds, run dir as tar)."""
    remove_stale_scratch()
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
    try:
        run_dir = scratch / task.name
        code, error, wall = run_trial_here(task, run_dir)
        archive = io.BytesIO()
        if run_dir.is_dir():
            with tarfile.open(fileobj=archive, mode="w") as tar:
                tar.add(run_dir, arcname=task.name)
        import ray  # in the task: Ray is there

        node = f"{platform.node()} ({ray.get_runtime_context().get_node_id()[:8]})"
        return code, error, node, wall, archive.getvalue()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def remove_stale_scratch(root: Path | None = None) -> None:
    """Remove the scratch folders of trial tasks whose Ray worker is gone. A worker killed (or
    cancelled at a sweep's Ctrl-C) never reaches its ``finally``; the next task on the node
    cleans up after it. A folder's name carries its worker's pid."""
    root = Path(root or tempfile.gettempdir())
    for folder in root.glob(f"{SCRATCH_PREFIX}*-*"):
        pid = folder.name.removeprefix(SCRATCH_PREFIX).split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def unpack_run_dir(archive: bytes, name: str, staging: Path) -> Path | None:
    """Unpack a trial's archive under ``staging``; only regular files and directories under
    ``name`` are accepted (tarfile's "data" filter: no links, devices or paths leaving it)."""
    if not archive:
        return None
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        members = tar.getmembers()
        if any(m.name != name and not m.name.startswith(f"{name}/") for m in members):
            raise UsageError(f"trial {name}'s archive holds files outside its run directory")
        tar.extractall(staging, members=members, filter="data")
    return staging / name


class RayExecutor:
    """Trials as tasks on the Ray cluster at ``address`` (None: a new Ray instance on this
    machine), each asking for ``cpus_per_trial`` CPUs."""

    def __init__(self, address: str | None, cpus_per_trial: int):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UsageError(
                "running on Ray needs the ray extra: pip install 'deepq[ray]'"
            ) from None
        if address is not None:
            check_address(address)
        self.address, self.cpus = address, cpus_per_trial
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        self.description = f"{where}, {cpus_per_trial} CPUs per trial"

    def check(self) -> None:
        """The cluster at the address answers and is large enough (:func:`check_cluster`); a new
        local instance (no address) is started by :meth:`run`."""
        if self.address is not None:
            check_cluster(self.address, self.cpus)

    def run(self, tasks: list[TrialTask], staging: Path) -> Iterator[TrialOutcome]:
        import ray

        if not tasks:
            return
        ray.init(address=self.address, logging_level="ERROR", log_to_driver=False,
                 configure_logging=False)  # fmt: skip
        try:
            total = ray.cluster_resources().get("CPU", 0)
            if total < self.cpus:
                raise UsageError(
                    f"--cpus-per-trial {self.cpus}: the Ray cluster has {total:g} CPUs"
                )
            remote = ray.remote(num_cpus=self.cpus, max_retries=1)(_trial_on_a_node)
            running: dict[Any, TrialTask] = {remote.remote(task): task for task in tasks}
            try:
                while running:
                    done, _ = ray.wait(list(running), num_returns=1)
                    for ref in done:
                        yield self._outcome(running.pop(ref), ref, staging)
            finally:
                for ref in running:  # Ctrl-C: each running trial saves what it has and stops
                    ray.cancel(ref, force=False)
        finally:
            ray.shutdown()

    @staticmethod
    def _outcome(task: TrialTask, ref: Any, staging: Path) -> TrialOutcome:
        import ray

        try:
            code, error, node, wall, archive = ray.get(ref)
        except ray.exceptions.RayError as exc:  # lost twice, or cancelled
            line = next((s for s in str(exc).splitlines() if s.strip()), type(exc).__name__)
            return TrialOutcome(task.name, 1, f"lost on the Ray cluster: {line}", "?", 0.0, None)
        run_dir = staging / task.name
        if run_dir.exists():
            shutil.rmtree(run_dir)
        return TrialOutcome(task.name, code, error, node, wall,
                            unpack_run_dir(archive, task.name, staging))  # fmt: skip
