"""Process-wide settings: JAX with a core to spare (smaller CPU pools, no thread left pinned, once
only), made by the program's entry point and never by a library call."""

import json
import os
import subprocess
import sys

import jax
import pytest

from deepq.run.process import start_jax_with_a_core_to_spare

linux_with_two_cores = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux thread affinity and at least 2 cores",
)

REPORT = """
import json, os
start = {start!r}
cores = sorted(os.sched_getaffinity(0))
if start:
    from deepq.run.process import start_jax_with_a_core_to_spare
    first = start_jax_with_a_core_to_spare(*{arguments!r})
    second = start_jax_with_a_core_to_spare()
else:
    import jax
    jax.devices()
    first = second = None
threads = os.listdir("/proc/self/task")
print(json.dumps({{
    "cores": cores, "first": first, "second": second, "threads": len(threads),
    "affinities": sorted({{tuple(sorted(os.sched_getaffinity(int(t)))) for t in threads}}),
}}))
"""


def fresh_interpreter(start: bool, arguments: tuple = ()) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", REPORT.format(start=start, arguments=arguments)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


@linux_with_two_cores
def test_pools_are_one_core_smaller_and_no_thread_stays_pinned():
    plain, spared = fresh_interpreter(start=False), fresh_interpreter(start=True)
    assert spared["first"] == len(spared["cores"]) - 1
    assert spared["second"] is None  # the backends have started: their pools are fixed
    assert spared["threads"] < plain["threads"]  # XLA started fewer pool threads
    assert spared["affinities"] == [spared["cores"]]  # every thread may use every core


@linux_with_two_cores
def test_a_trial_of_one_core_gets_pools_of_one_and_no_pinned_thread():
    """A sweep's trial given --cpus-per-trial 1 trains as deepq train on a 1-core machine."""
    plain = fresh_interpreter(start=False)
    for arguments in ((1,), (1, False)):  # with and without the spare core: never below one
        trial = fresh_interpreter(start=True, arguments=arguments)
        assert trial["first"] == 1
        assert trial["threads"] < plain["threads"]  # XLA started fewer pool threads
        assert trial["affinities"] == [trial["cores"]]
    whole = fresh_interpreter(start=True, arguments=(len(plain["cores"]), False))
    assert whole["first"] is None  # every core, no spare: JAX's own pools


def test_leaves_jax_alone_once_its_backends_have_started():
    jax.devices()
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    assert start_jax_with_a_core_to_spare() is None
    if before is not None:
        assert os.sched_getaffinity(0) == before


def test_does_nothing_where_thread_affinity_cannot_be_set(monkeypatch):
    # as if JAX had not started here, so that only the missing affinity call can stop it
    monkeypatch.setattr("jax._src.xla_bridge.backends_are_initialized", lambda: False)
    monkeypatch.delattr(os, "sched_setaffinity", raising=False)
    assert start_jax_with_a_core_to_spare() is None


LIBRARY_TRAIN = """
import json, os, sys
sys.path.insert(0, {tests!r})
import conftest  # registers the tiny test envs
import jax
import deepq.run.process as process
calls = []
process.start_jax_with_a_core_to_spare = lambda: calls.append("pools")
process.enable_compilation_cache = lambda: calls.append("cache")
process.configure_process = lambda: calls.append("configure")
cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
import deepq
deepq.train({{"env_id": "deepq-test/Counting-v0", "hidden_sizes": [4], "batch_size": 4,
             "learning_starts": 4, "total_steps": 30, "eval_every": None,
             "final_eval_episodes": 0, "checkpoint_every_episodes": None}},
            {run_dir!r}, show_progress=False, tensorboard=False, report=False)
print(json.dumps({{
    "calls": calls, "cache_dir": jax.config.jax_compilation_cache_dir,
    "same_affinity": cores is None or sorted(os.sched_getaffinity(0)) == cores,
}}))
"""


def test_a_library_train_leaves_the_process_as_it_found_it(tmp_path):
    """deepq.train() from a notebook or script: no thread-pool or affinity change, no compilation
    cache switched on. Only the CLI (and the bench worker) call configure_process."""
    tests = os.path.dirname(os.path.dirname(__file__))  # where conftest.py is
    code = LIBRARY_TRAIN.format(tests=tests, run_dir=str(tmp_path / "run"))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True,
        env={k: v for k, v in os.environ.items() if k != "DEEPQ_COMPILATION_CACHE"},
    )  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"calls": [], "cache_dir": None, "same_affinity": True}
