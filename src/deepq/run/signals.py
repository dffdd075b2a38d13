"""Ctrl-C and SIGTERM: honoured from a program's first instruction to its last.

Two regimes. Before and after a training loop, the ``deepq`` program's handlers
(:func:`install_program_handlers`) raise :class:`ProgramInterrupted` at once, so the program
ends with one line and exit 130 (143 for SIGTERM). Python ignores an exception raised while it
runs a garbage-collection callback (JAX registers one: "Exception ignored in _xla_gc_callback"),
so each such signal is also remembered. Inside a loop, :class:`StopSignal` turns the first signal
into a request to stop after the current step (where everything can be saved), and takes over a
remembered one: a signal swallowed during start-up stops the loop at its first step.

Only standard-library imports here: the program installs this before anything heavy loads.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_missed: list[int] = []  # signals raised as ProgramInterrupted that no one has acted on yet


class ProgramInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the program outside a training loop."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signum


def _raise_at_once(signum: int, frame: Any) -> None:
    _missed.append(signum)
    raise ProgramInterrupted(signum)


def install_program_handlers() -> dict[Any, Any]:
    """For a program's entry point only (a library never calls this): SIGINT and SIGTERM raise
    ProgramInterrupted; one that Python swallows is remembered without printing "Exception
    ignored in ..." and its traceback. Returns what it replaced, for :func:`restore_handlers`."""
    try:
        previous: dict[Any, Any] = {sig: signal.signal(sig, _raise_at_once) for sig in SIGNALS}
    except ValueError:  # not the main thread: signals stay with whoever owns them
        return {}
    previous["unraisablehook"] = sys.unraisablehook
    sys.unraisablehook = _quiet_about_signals(sys.unraisablehook)
    return previous


def _quiet_about_signals(hook: Any) -> Any:
    def unraisable(info: Any) -> None:
        if not isinstance(info.exc_value, ProgramInterrupted):  # remembered in _missed already
            hook(info)

    return unraisable


def restore_handlers(previous: dict[Any, Any]) -> None:
    for key, handler in previous.items():
        if key == "unraisablehook":
            sys.unraisablehook = handler
        else:
            signal.signal(key, handler)


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then raise :class:`ProgramInterrupted` for the
    first that came. For the first ``import jax``: an exception raised
    inside jaxlib's C++ module initialisation is not an exception to Python but a call to C++'s
    ``std::terminate``, so a Ctrl-C there aborted the process (SIGABRT or SIGSEGV, no message)
    where the program promises one line and exit 130."""
    arrived: list[int] = []
    try:
        previous = {sig: signal.signal(sig, lambda signum, frame: arrived.append(signum))
                    for sig in SIGNALS}  # fmt: skip
    except ValueError:  # not the main thread: signals stay with whoever owns them
        yield
        return
    try:
        yield
    finally:
        restore_handlers(previous)
    if arrived:
        raise ProgramInterrupted(arrived[0])


def take_missed_signal() -> int | None:
    """The first remembered signal no one acted on (Python swallowed its exception), and forget
    them all; None if there is none."""
    first = _missed[0] if _missed else None
    _missed.clear()
    return first


class StopSignal:
    """Inside a loop: the first SIGINT/SIGTERM asks it to stop after the current step; a second
    SIGINT aborts at once. A signal the program caught but Python swallowed counts as the first."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[Any, Any] = {}

    def __enter__(self) -> StopSignal:
        try:
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: signals stay with the caller
            self._previous.clear()
        self.requested = take_missed_signal() is not None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        restore_handlers(self._previous)
