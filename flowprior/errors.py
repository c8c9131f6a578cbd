"""Errors that the CLI reports as one line and exit code 2 (the user's input is at fault, not the program)."""


class UsageError(ValueError):
    """Bad input from the user: a missing file, an unknown name, a bad value. The message names the problem."""
