"""``dna-depth``: one command-line entry point with a subcommand per task.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``handler=run``; a handler
returns the process exit code. Errors meant for the user are raised as
:class:`dna_depth_core.errors.UserError` and printed as one line without a traceback
(exit code 2), as are filesystem errors (``OSError``) that happen during the work. Output
piped into a reader that stops early (``dna-depth info CKPT | head -1``) ends the command
quietly, as a pipe's writer does (exit code 141, 128 + SIGPIPE).
"""

from __future__ import annotations

import argparse
import importlib
import os
import select
import sys

from dna_depth_core.allocator import keep_freed_memory_mapped
from dna_depth_core.errors import UserError
from dna_depth_core.paths import describe_os_error

SUBCOMMAND_MODULES = [
    "info",
    "import_weights",
    "train",
    "evaluate",
    "export_gt",
    "export",
    "calibrate_precision",
    "finetune_bag",
    "make_sample_bag",
]
"""Modules of ``dna_depth_core.cli`` that define subcommands, in ``--help`` order."""

BROKEN_PIPE_EXIT_CODE = 141
"""Exit code when the reader of the output closed the pipe: 128 + SIGPIPE, as a shell reports
a writer killed by the signal."""


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``dna-depth`` parser and each subcommand's own parser, by name."""
    parser = argparse.ArgumentParser(
        prog="dna-depth",
        description="DNA-Depth lightweight self-supervised monocular depth: train, evaluate, export, inspect.",
        epilog="Run 'dna-depth SUBCOMMAND --help' for the options of one subcommand.",
    )
    subparsers = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser, dict(subparsers.choices)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a command line; exits with the usage of the subcommand at fault (code 2).

    The subcommand's parser reads its arguments itself, intermixed: ``KEY=VALUE``
    overrides and bags may come before, between or after the options, and an unknown
    option is reported with that subcommand's usage rather than the top-level one.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, subcommands = build_parser()
    if argv and argv[0] in subcommands:
        args = subcommands[argv[0]].parse_intermixed_args(argv[1:])
        args.subcommand = argv[0]
        return args
    return parser.parse_args(argv)


def _stdout_reader_gone() -> bool:
    """Whether standard output is a pipe whose reader has closed it (poll reports an error on it)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no file descriptor (captured output) or no poll
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    # Training re-allocates gigabytes of activations every step; keep them in the heap
    # instead of mapping them afresh (see dna_depth_core.allocator).
    keep_freed_memory_mapped()
    try:
        return int(args.handler(args) or 0)
    except UserError as error:
        print(f"dna-depth {args.subcommand}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError as error:
        if not _stdout_reader_gone():  # another pipe broke (a worker's, a child process's): say so
            print(f"dna-depth {args.subcommand}: error: {describe_os_error(error)}", file=sys.stderr)
            return 2
        # Nothing more can be said, not even at the exit's flush of stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_EXIT_CODE
    except OSError as error:  # a disk that filled up, a folder removed under a running command
        print(f"dna-depth {args.subcommand}: error: {describe_os_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dna-depth {args.subcommand}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
