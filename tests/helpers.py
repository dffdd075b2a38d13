"""Helpers shared by the tests that drive deepq in a subprocess."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# In CI (CI=true, as .ci/run is run; or DEEPQ_REQUIRE_BROWSER=1) a test whose tool is missing
# fails instead of skipping, so a broken install cannot pass as a skipped test.
REQUIRED_HERE = os.environ.get("CI", "").lower() == "true" or (
    os.environ.get("DEEPQ_REQUIRE_BROWSER") == "1"
)


def skip_unless(available: bool, message: str) -> None:
    """Skip when ``available`` is false; fail instead where the test is required (CI)."""
    if available:
        return
    if REQUIRED_HERE:
        pytest.fail(f"required here (CI): {message}")
    pytest.skip(message)


def run_deepq(*args: str, env: dict | None = None, timeout: float = 300):
    """``python -m deepq ARGS`` to completion, output captured; SDL's dummy video driver unless
    ``env`` says otherwise."""
    return subprocess.run(
        [sys.executable, "-m", "deepq", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else {**os.environ, "SDL_VIDEODRIVER": "dummy"},
    )


def interrupt_after_episodes(
    process: subprocess.Popen, run_dir: Path, episodes: int, timeout: float = 120
) -> str:
    """Send SIGINT once ``run_dir``'s progress.csv has ``episodes`` rows; return stderr."""
    progress = run_dir / "progress.csv"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (
        not progress.exists() or len(progress.read_text().splitlines()) < episodes + 1
    ):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    return process.communicate(timeout=timeout)[1]


def rewound_copy(run_dir: Path, copy: Path, which: int = 0) -> Path:
    """A copy of a finished run as it was at its periodic checkpoint number ``which`` (of the
    step-* copies it kept), ready for ``deepq train --resume``."""
    import shutil

    shutil.copytree(run_dir, copy)
    for finished in ("final", "latest"):
        shutil.rmtree(copy / "checkpoints" / finished)
    (copy / "summary.json").unlink()
    steps = sorted((copy / "checkpoints").glob("step-*"))
    shutil.copytree(steps[which], copy / "checkpoints" / "latest")
    return copy
