"""Signals from the first instruction: raised at once outside a loop, remembered when Python
swallows them (as it does inside JAX's garbage-collection callback), taken over by a loop."""

import gc
import os
import signal
import sys

import pytest

from deepq.run.signals import (
    ProgramInterrupted,
    StopSignal,
    install_program_handlers,
    restore_handlers,
    signals_held,
    take_missed_signal,
)


@pytest.fixture
def program_handlers():
    previous = install_program_handlers()
    yield
    restore_handlers(previous)
    take_missed_signal()


def test_outside_a_loop_a_signal_interrupts_at_once(program_handlers):
    with pytest.raises(ProgramInterrupted) as raised:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs between bytecodes of this thread
            pass
    assert raised.value.signum == signal.SIGTERM


def test_a_signal_swallowed_in_a_gc_callback_stops_the_next_loop_at_once(program_handlers):
    def interrupted_while_collecting(phase, info):
        if phase == "start":
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass

    gc.callbacks.append(interrupted_while_collecting)
    try:
        gc.collect()  # Python prints nothing and goes on: the exception was "ignored"
    finally:
        gc.callbacks.remove(interrupted_while_collecting)
    with StopSignal() as stop_signal:
        assert stop_signal.requested
    with StopSignal() as stop_signal:  # taken over once, not forever
        assert not stop_signal.requested


def test_in_a_loop_the_first_signal_is_a_request_and_the_second_sigint_aborts():
    with StopSignal() as stop_signal:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass
        assert stop_signal.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass


def test_handlers_and_the_unraisable_hook_are_restored():
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), sys.unraisablehook)
    restore_handlers(install_program_handlers())
    after = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), sys.unraisablehook)
    assert after == before


def test_a_signal_inside_signals_held_waits_for_the_block_to_end():
    """What the first `import jax` runs under: a Ctrl-C inside jaxlib's C++ start-up aborted."""
    before = signal.getsignal(signal.SIGINT)
    finished = False
    with pytest.raises(ProgramInterrupted) as raised:
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            finished = True  # not interrupted here
    assert finished and raised.value.signum == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is before
