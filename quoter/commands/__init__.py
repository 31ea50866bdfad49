"""Subcommands of the ``quoter`` CLI, one module each."""
