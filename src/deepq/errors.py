"""Errors a user can cause, each with the exit code the CLI uses for it.

The CLI prints ``deepq: <message>`` on one line and exits with ``exit_code``; no traceback.
"""


class DeepQError(Exception):
    """Base class for errors that are reported to the user as one line."""

    exit_code = 1


class ConfigError(DeepQError):
    """A config field or CLI argument is invalid (names the field and the value)."""

    exit_code = 2


class UsageError(DeepQError):
    """The command was called wrongly: a missing path, an unsupported environment, ..."""

    exit_code = 2


class CheckpointError(DeepQError):
    """A checkpoint is missing, incomplete, corrupt or does not match the config."""

    exit_code = 1


class TrainingDiverged(DeepQError):
    """A loss, parameter, observation or reward became non-finite."""

    exit_code = 1
