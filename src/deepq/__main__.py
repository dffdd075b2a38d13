"""``python -m deepq`` and the ``deepq`` command: signals are honoured from the first instruction,
before the command line module (and what it imports) has loaded."""

import sys

from deepq.run.signals import (
    ProgramInterrupted,
    exit_code,
    install_program_handlers,
    signals_held,
)


def main() -> int:
    install_program_handlers()
    try:
        # Held while the command line module loads: a KeyboardInterrupt raised inside a C
        # extension's import (numpy's, through gymnasium) comes out as an ImportError and a
        # traceback instead of exit 130; held, the signal is acted on once the import returns.
        with signals_held():
            from deepq.cli import main as cli_main
    except ProgramInterrupted as exc:
        print(f"deepq: {'terminated' if exc.signum != 2 else 'interrupted'}", file=sys.stderr)
        return exit_code(exc.signum)
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
