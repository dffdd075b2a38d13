"""``python -m deepq`` and the ``deepq`` command: signals are honoured from the first instruction,
before the command line module (and what it imports) has loaded."""

import sys

from deepq.run.signals import ProgramInterrupted, exit_code, install_program_handlers


def main() -> int:
    install_program_handlers()
    try:
        from deepq.cli import main as cli_main
    except ProgramInterrupted as exc:
        print(f"deepq: {'terminated' if exc.signum != 2 else 'interrupted'}", file=sys.stderr)
        return exit_code(exc.signum)
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
