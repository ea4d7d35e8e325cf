"""Errors that the CLI reports as one clear line (exit code 2), never as a traceback."""


class CharlmError(Exception):
    """A user-facing error: bad input file, bad flag combination, unreadable checkpoint."""
