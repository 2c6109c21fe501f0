"""The ``neurorack`` command line (typer + rich).

Each sub-command lives in its own module and registers itself on :data:`app`.
:func:`main` turns every :class:`~neurorack.errors.NeurorackError` (and any
other failure) into a one-line message and a non-zero exit status.
"""

from __future__ import annotations

import os
import sys

import typer

from neurorack.cli import (
    bench_cmd,
    corpus_cmd,
    demo_cmd,
    describe_cmd,
    eval_cmd,
    export_cmd,
    notes_cmd,
    play_cmd,
    train_cmd,
    transfer_cmd,
)
from neurorack.cli.console import err_console
from neurorack.errors import NeurorackError

app = typer.Typer(
    name="neurorack",
    help="A playable deep-learning synthesizer: impact sounds from seven audio descriptors, notes from SING.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)

describe_cmd.register(app)
corpus_cmd.register(app)
notes_cmd.register(app)
bench_cmd.register(app)
demo_cmd.register(app)
export_cmd.register(app)
train_cmd.register(app)
eval_cmd.register(app)
play_cmd.register(app)
transfer_cmd.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``neurorack`` console script; returns the exit status.

    Usage errors are reported by typer (status 2); a :class:`NeurorackError`
    becomes ``error: <message>`` (status 2); anything else one line (status 1),
    with the traceback only when ``NEURORACK_DEBUG`` is set.
    """
    try:
        app(args=argv, prog_name="neurorack", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        return 130
    except NeurorackError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except Exception as exc:  # last resort: one line, no traceback
        if os.environ.get("NEURORACK_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        err_console.print(
            f"[bold red]error:[/] {type(exc).__name__}: {first} (set NEURORACK_DEBUG=1 for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        return 1
    return 0


def run() -> None:  # pragma: no cover - console script shim
    sys.exit(main())
