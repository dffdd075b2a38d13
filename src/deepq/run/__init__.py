"""What every training loop shares: environments, the run harness (clock, stop rules, end of run),
evaluation, logs, checkpoints, typed configs and the process-wide settings of an entry point."""
