"""How cli modules declare their commands: ``register(commands)`` adds each command, or a group of
subcommands, with its handler and whether it reads or writes an existing lake."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Literal

#: what a command does to an existing lake: checked (and for "write", writable) before it runs
LakeUse = Literal["write", "read", None]


class Parser(argparse.ArgumentParser):
    """Usage mistakes in one line, like every other setup error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


class Commands:
    """A level of subcommands: ``add`` one, or a ``group`` of them (``mydata consent verify``)."""

    def __init__(self, subparsers: argparse._SubParsersAction) -> None:
        self._subparsers = subparsers

    def add(self, name: str, handler: Callable[[argparse.Namespace], int], help_text: str, *,
            lake: LakeUse = "write") -> argparse.ArgumentParser:
        parser = self._subparsers.add_parser(name, help=help_text, description=help_text)
        parser.set_defaults(handler=handler, lake=lake)
        return parser

    def group(self, name: str, help_text: str, *, default: Callable[[argparse.Namespace], int] | None = None,
              lake: LakeUse = "write") -> Commands:
        """Subcommands under ``name``; ``default`` runs when none is given (``mydata holders``)."""
        parser = self._subparsers.add_parser(name, help=help_text, description=help_text)
        parser.set_defaults(handler=default, lake=lake)
        return Commands(parser.add_subparsers(dest="action", metavar="ACTION", required=default is None))
