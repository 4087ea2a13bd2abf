"""The argument parser of the `corpus` and `train` commands: -q/--quiet and --debug are accepted
before the command and after any subcommand, nested ones included (`corpus tokenizer train ... -q`);
and the argument types both commands share."""

from __future__ import annotations

import argparse


def _after_the_command() -> argparse.ArgumentParser:
    # SUPPRESS: a flag not given after the subcommand keeps what was given before it
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress output")
    flags.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="tracebacks of internal errors")
    return flags


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose subcommands (and theirs: argparse makes them of the same class) also
    take -q/--quiet and --debug."""

    def __init__(self, *args, global_flags: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if global_flags:  # the top-level parser: the flags and their defaults
            self.add_argument("-q", "--quiet", action="store_true", help="no progress output")
            self.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")

    def add_subparsers(self, **kwargs):
        action = super().add_subparsers(**kwargs)
        add_parser = action.add_parser

        def add_with_flags(*args, **kw):
            return add_parser(*args, parents=[_after_the_command(), *kw.pop("parents", [])], **kw)

        action.add_parser = add_with_flags  # type: ignore[method-assign]
        return action


def parse_count(text: str) -> int:
    """`2000000`, `2M`, `500k`, `1.5B` or `1e6` as a whole number."""
    scale = {"k": 1_000, "m": 1_000_000, "b": 1_000_000_000}.get(text[-1:].lower(), 1)
    try:
        value = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (e.g. 2000000, 2M, 500k)") from None
    if value != int(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole count")
    return int(value)
