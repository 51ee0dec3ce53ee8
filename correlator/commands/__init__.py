"""Sub-commands of the `correlator` CLI, one module each (see correlator/cli.py)."""
