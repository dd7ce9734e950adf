"""Command-line entry point: argument parsing and dispatch only.

Each sub-command lives in ``fcnlab.cli.<name>`` and exposes ``register(subparsers)``, which
adds its parser and sets ``func`` to a ``run(args) -> int`` function. Errors derived from
:class:`~fcnlab.errors.FcnlabError` are printed as one line (``fcnlab: error: ...``) with exit
code 2; ``--debug`` shows the full traceback instead. Under torchrun only rank 0 prints these lines
(and argparse's usage errors); the other ranks exit with the same code silently.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import io
import os
import re
import sys
from typing import Any, NoReturn

from fcnlab import __version__
from fcnlab.errors import FcnlabError
from fcnlab.runtime.launch import RANK_ERRORS, launched_rank

COMMANDS = ("classify", "segment", "miou", "compare", "demo", "reproduce", "recipes", "bench", "report", "export")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser (and, through ``add_subparsers``, every sub-parser) that refuses abbreviations of long
    options (``--epoch`` is not ``--epochs``) and adds "did you mean" to unknown options and choices."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def _all_options(self) -> list[str]:
        """The long options of this parser and of its sub-parsers."""
        found = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    found += sub._all_options() if isinstance(sub, Parser) else []
        return found

    def error(self, message: str) -> NoReturn:
        """argparse's usage error, with the closest valid option or choice named."""
        hints = []
        if message.startswith("unrecognized arguments:"):
            options = sorted(set(self._all_options()))
            for word in message.split(":", 1)[1].split():
                close = difflib.get_close_matches(word.split("=", 1)[0], options, n=1) if word.startswith("--") else []
                if close:
                    hints.append(f"{word}: did you mean {close[0]}?")
        elif "invalid choice:" in message:
            match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
            if match:
                choices = [c.strip().strip("'") for c in match.group(2).split(",")]
                close = difflib.get_close_matches(match.group(1), choices, n=1)
                hints += [f"did you mean {close[0]}?"] if close else []
        super().error(message + ("; " + "; ".join(hints) if hints else ""))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Return the top-level parser with every sub-command registered (or just ``only``).

    Registering only the command being run keeps start-up light: ``fcnlab miou`` never imports torch.
    """
    parser = Parser(
        prog="fcnlab",
        description="Train, evaluate and explain CNN classifiers and FCN segmentation models.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"fcnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS if only not in COMMANDS else (only,):
        importlib.import_module(f"fcnlab.cli.{name}").register(sub)
    return parser


def _report(line: str) -> None:
    """Print a one-line error to stderr on rank 0 only, so N torchrun processes show it once (``train --procs``
    lets the other ranks print theirs into a file: :mod:`fcnlab.runtime.launch`)."""
    if launched_rank() == 0 or os.environ.get(RANK_ERRORS):
        print(line, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from fcnlab.runtime.provenance import set_command

    set_command(["fcnlab", *argv])  # env.json records the command, also when main() is called in-process
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(first)
    # argparse prints its usage errors itself (then exits 2): on ranks other than 0, into a discarded buffer
    with contextlib.redirect_stderr(io.StringIO()) if launched_rank() != 0 else contextlib.nullcontext():
        args = parser.parse_args(argv)
    debug = args.debug or "--debug" in argv
    try:
        return int(args.func(args) or 0)
    except FcnlabError as e:
        if debug:
            raise
        _report(f"fcnlab: error: {e}")
        return e.exit_code
    except KeyboardInterrupt as e:  # training's StoppedAtOnce carries its line and exit code
        code = getattr(e, "exit_code", None)
        _report(f"fcnlab: error: {e}" if code else "fcnlab: interrupted")
        return code or 130
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0
    except OSError as e:  # a file the commands did not check themselves (a full disk, a folder under a file)
        if debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        _report(f"fcnlab: error: {where}{e.strerror or e}")
        return FcnlabError.exit_code


def entry() -> int:
    """The ``fcnlab`` program (console script, ``python -m fcnlab``): process set-up, then :func:`main`.

    Process-wide settings live here, not in :func:`main`, which tests and scripts call in their own process.
    """
    from fcnlab.runtime.host_memory import keep_freed_memory

    keep_freed_memory()
    return main()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(entry())
