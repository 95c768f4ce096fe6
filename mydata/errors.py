"""The two kinds of failure the command line tells apart; ``cli.main`` maps them to exit codes in
one place, and anything else is a bug that keeps its traceback."""
from __future__ import annotations


class StageFailed(RuntimeError):
    """A stage refused its input or could not finish (its manifest says why): exit 1."""


class UsageError(ValueError):
    """What was asked cannot be done as asked: a setting, a flag, or an input, version or file that
    is not there yet: exit 2."""


class MissingInput(UsageError, FileNotFoundError):
    """A stage's input is not there: the stage before it has to run first."""
