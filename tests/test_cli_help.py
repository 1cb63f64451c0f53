"""`iwbc ... --help`: every argument of every command says what it is, and every option that
takes a value says what it is when not given."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from iwbc.cli import build_parser


def _commands(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ("iwbc",)
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield " ".join(words), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from _commands(subparser, (*words, name))


COMMANDS = dict(_commands(build_parser()))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_argument_is_explained_with_its_default(command: str) -> None:
    parser = COMMANDS[command]
    text = parser.format_help()  # renders every %(default)s
    arguments = [
        action
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)
    ]
    unexplained = [action.dest for action in arguments if not action.help]
    without_default = [
        action.option_strings[0]
        for action in arguments
        if action.option_strings
        and action.nargs != 0  # a flag is off unless given
        and not action.required
        and "default" not in (action.help or "")
    ]
    assert not unexplained, f"{command}: arguments without help: {unexplained}"
    assert not without_default, f"{command}: options not stating their default: {without_default}"
    assert "``" not in text, f"{command}: reStructuredText markup in the help"
