"""``neurorack eval``: MR-STFT, control response and speed of models and baselines (SPEC §6).

The logic and the JSON format live in :mod:`neurorack.evaluation`; this module parses the
options and prints (table on stdout, progress bars on stderr; with ``--json`` only the JSON on
stdout).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from neurorack.cli.console import console, err_console
from neurorack.errors import NeurorackError

if TYPE_CHECKING:
    from neurorack.evaluation import ProgressCallback

#: Default of --control-limit (:data:`neurorack.evaluation.DEFAULT_CONTROL_LIMIT`; not imported, to keep
#: ``neurorack --help`` from loading the metrics).
DEFAULT_CONTROL_LIMIT = 20


@contextmanager
def _progress_bars() -> Iterator[ProgressCallback]:
    """Rich progress bars with ETA on stderr (also with --json: stdout stays pure JSON), one per generator."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    tasks: dict[str, TaskID] = {}
    with Progress(*columns, console=err_console, transient=False) as bar:

        def update(task: str, done: int, total: int) -> None:
            name = task.split(":", 1)[0]
            if name not in tasks:
                tasks[name] = bar.add_task(task, total=total)
            bar.update(tasks[name], description=task, completed=done, total=total)

        yield update


def _command(
    models: list[str],
    corpus: Path,
    *,
    json_out: bool,
    report: Path | None,
    limit: int | None,
    control_limit: int,
    seed: int,
    no_baselines: bool,
    no_speed: bool,
    split: str = "test",
) -> str:
    """The canonical command line for these settings (written into ``summary.md``)."""
    args = ["neurorack", "eval", *models, "--corpus", str(corpus)]
    if split != "test":
        args += ["--split", split]
    if json_out:
        args.append("--json")
    if report is not None:
        args += ["--report", str(report)]
    if limit is not None:
        args += ["--limit", str(limit)]
    args += ["--control-limit", str(control_limit), "--seed", str(seed)]
    if no_baselines:
        args.append("--no-baselines")
    if no_speed:
        args.append("--no-speed")
    return shlex.join(args)


def eval_command(
    models: Annotated[
        list[str] | None,
        typer.Argument(
            help="Model files (or bundled model names) to evaluate; none: baselines only.",
            show_default=False,
            metavar="MODEL...",
        ),
    ] = None,
    corpus: Annotated[
        Path | None,
        typer.Option(
            "--corpus", help="Corpus folder: its test split is evaluated (--split all: every sound). \\[required]"
        ),
    ] = None,
    json_out: Annotated[
        bool,
        typer.Option("--json", help="Print the results as JSON on stdout (nothing else; schema neurorack-eval/1)."),
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report", help="Folder for eval.json, summary.md, spectrogram and control-response PNGs (created)."
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Use only the first N test sounds (by hash). \\[default: all]")
    ] = None,
    control_limit: Annotated[
        int, typer.Option("--control-limit", help="Test sounds for the control response (0: skip it).")
    ] = DEFAULT_CONTROL_LIMIT,
    seed: Annotated[int, typer.Option("--seed", help="Generation seed (sound i uses seed + i).")] = 0,
    no_baselines: Annotated[
        bool, typer.Option("--no-baselines", help="Leave out the silence, dsp and nearest baselines.")
    ] = False,
    no_speed: Annotated[bool, typer.Option("--no-speed", help="Skip the speed measurement.")] = False,
    split: Annotated[
        str,
        typer.Option(
            "--split",
            help="test: the corpus's test split; all: every sound, for a library no model trained on "
            "(the nearest baseline, which plays back the corpus's own sounds, is left out). Either way, sounds a "
            "model file lists as trained on are left out.",
        ),
    ] = "test",
) -> None:
    """Evaluate models and baselines on a corpus's held-out (test) sounds.

    For each generator: MR-STFT distance of reconstructions (median, lower is better), control
    response per descriptor (slope and Spearman ρ of the measured vs the requested scale, ideal 1;
    f0 on tonal sounds only), absolute accuracy per descriptor (octaves off the request, on the test
    sounds' curves and on the drawn presets) and speed (× real time, one CPU thread). Baselines:
    silence, dsp and nearest (playing back the corpus's train split).

    On a note corpus (neurorack notes render, or an NSynth download) MODEL... are note models: each
    plays the test split's notes (unseen pitches of known instruments) beside the sampler baseline
    (the nearest trained pitch, resampled), scored by SING's spectral loss, MR-STFT and pitch (cents).
    """
    from neurorack.corpus import Corpus
    from neurorack.evaluation import (
        EXAMPLE_SOUNDS,
        accuracy_rows,
        evaluate,
        leakage_rows,
        load_candidates,
        render_table,
        write_report,
    )
    from neurorack.evaluation.protocol import SPLITS
    from neurorack.evaluation.rendering import ACCURACY_TITLE

    if corpus is None:
        raise NeurorackError("--corpus DIR is required (the corpus whose test split is evaluated)")
    if limit is not None and limit < 1:
        raise NeurorackError(f"--limit must be at least 1, got {limit}")
    if control_limit < 0:
        raise NeurorackError(f"--control-limit must be 0 or more, got {control_limit}")
    if report is not None and report.exists() and not report.is_dir():
        raise NeurorackError(f"--report {report}: exists and is not a folder")
    if split not in SPLITS:
        raise NeurorackError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    model_list = list(models or [])
    from neurorack.notes.nsynth import is_note_corpus

    if is_note_corpus(corpus):
        _note_eval(model_list, corpus, json_out=json_out, report=report, limit=limit, seed=seed,
                   no_baselines=no_baselines, split=split)  # fmt: skip
        return
    opened = Corpus.open(corpus)
    candidates = load_candidates(model_list, opened, baselines=not no_baselines, nearest=split == "test")
    with _progress_bars() as progress:
        result = evaluate(
            candidates,
            opened,
            limit=limit,
            control_limit=control_limit,
            seed=seed,
            speed=not no_speed,
            examples=EXAMPLE_SOUNDS if report is not None else 0,
            progress=progress,
            split=split,
        )
    if report is not None:
        command = _command(
            model_list,
            corpus,
            json_out=json_out,
            report=report,
            limit=limit,
            control_limit=control_limit,
            seed=seed,
            no_baselines=no_baselines,
            no_speed=no_speed,
            split=split,
        )
        _wrote(write_report(result, report, command=command), report, json_out)
    if _printed_json(result.to_dict(), json_out):
        return
    console.print(render_table(result))
    _print_rows(*accuracy_rows(result), ACCURACY_TITLE)
    _print_rows(*leakage_rows(result), "latent leakage: R² of a fresh regressor from the latent (lower is better)")


def _note_eval(
    models: list[str],
    corpus: Path,
    *,
    json_out: bool,
    report: Path | None,
    limit: int | None,
    seed: int,
    no_baselines: bool,
    split: str,
) -> None:
    """``eval`` on a note corpus: note models and the sampler baseline on the pitch-completion split."""
    from neurorack.evaluation.note_protocol import evaluate_notes
    from neurorack.evaluation.note_report import render_note_table, write_note_report
    from neurorack.note_model_file import load_note_model
    from neurorack.notes.nsynth import NoteCorpus

    opened = NoteCorpus.open(corpus)
    loaded = [(Path(m).stem if Path(m).suffix else m, load_note_model(m)) for m in models]
    with _progress_bars() as progress:
        result = evaluate_notes(
            loaded,
            opened,
            split=split,
            seed=seed,
            limit=limit,
            sampler=not no_baselines,
            examples=4 if report is not None else 0,
            progress=progress,
        )
    if report is not None:
        args = ["neurorack", "eval", *models, "--corpus", str(corpus), "--split", split, "--seed", str(seed)]
        args += ["--limit", str(limit)] if limit is not None else []
        args += [*(["--no-baselines"] if no_baselines else []), "--report", str(report)]
        _wrote(write_note_report(result, report, command=shlex.join(args)), report, json_out)
    if not _printed_json(result.to_dict(), json_out):
        console.print(render_note_table(result))


def _wrote(written: list[Path], report: Path, json_out: bool) -> None:
    """Say on stderr how many report files were written (not with --json)."""
    if not json_out:
        err_console.print(f"[dim]wrote {len(written)} files to {report}[/]", highlight=False, soft_wrap=True)


def _printed_json(document: dict[str, object], json_out: bool) -> bool:
    """With --json, print ``document`` (strict JSON) on stdout and return True."""
    if json_out:
        typer.echo(json.dumps(document, indent=2, allow_nan=False))
    return json_out


def _print_rows(header: list[str], rows: list[list[str]], title: str) -> None:
    """A rich table of ``rows`` under ``header`` (nothing when there are no rows)."""
    if not rows:
        return
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 or h == "curves" else "right")
    for cells in rows:
        table.add_row(*cells)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
