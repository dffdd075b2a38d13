"""Helpers shared by the tests that drive deepq in a subprocess."""

import signal
import subprocess
import time
from pathlib import Path


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
