"""``neurorack corpus``: build a training corpus from folders of one-shots, fetch open drum samples."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from neurorack.cli.console import console, err_console
from neurorack.corpus.build import build_corpus
from neurorack.corpus.fetch import FetchReport, default_cache, fetch_collection
from neurorack.corpus.report import BuildReport

corpus_app = typer.Typer(
    name="corpus",
    help="Build training corpora from folders of one-shots; fetch open one-shot libraries.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


class Collection(StrEnum):
    """Sample collections ``corpus fetch`` knows."""

    drums = "drums"
    sonic_pi = "sonic-pi"
    hydrogen_data = "hydrogen-data"


@corpus_app.command("build")
def build_command(
    sources: Annotated[
        list[Path],
        typer.Argument(
            help="Folders (searched recursively) or files of audio: wav, flac, aiff, ogg, mp3.", show_default=False
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Corpus folder (new, or a corpus to update).", show_default=False)
    ],
    sample_rate: Annotated[int, typer.Option("--sample-rate", "-r", help="Corpus sample rate in Hz.")] = 44_100,
    max_seconds: Annotated[float, typer.Option(help="Length cap per sound in seconds (faded out at the cap).")] = 2.0,
    min_seconds: Annotated[float, typer.Option(help="Skip sounds shorter than this after trimming (seconds).")] = 0.05,
    frame_length: Annotated[int, typer.Option(help="Descriptor analysis frame in samples.")] = 2048,
    hop_length: Annotated[int, typer.Option(help="Descriptor hop in samples.")] = 512,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", help="Worker processes (default: the number of CPUs).", show_default=False),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")] = True,
) -> None:
    """Build (or update) a corpus in OUT from SOURCES.

    Each sound is made mono, resampled, onset- and tail-trimmed, capped to
    --max-seconds (levels kept), deduplicated by content, split by hash into
    train/validation/test, and described (the seven descriptors). Unreadable,
    empty, silent, too short and NaN files are listed and skipped. Re-running only
    processes new or changed files; source files are never modified.
    """
    report = build_corpus(
        sources,
        out,
        sample_rate=sample_rate,
        max_seconds=max_seconds,
        min_seconds=min_seconds,
        frame_length=frame_length,
        hop_length=hop_length,
        jobs=jobs,
        progress=progress,
    )
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        print_build_report(report)


def print_build_report(report: BuildReport) -> None:
    """Summary table of a build on stdout, skipped files (with reasons) after it."""
    table = Table(title=f"corpus {report.out}", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("source files", str(report.sources))
    table.add_row("added", str(report.added))
    table.add_row("unchanged", str(report.unchanged))
    table.add_row("duplicates", str(report.duplicates))
    if report.refreshed:
        table.add_row("reprocessed, same sound", str(report.refreshed))
    table.add_row("skipped", f"{len(report.skipped)} ({report.newly_skipped} in this run)")
    for kind, count in report.reasons.items():
        table.add_row(f"  {kind}", str(count))
    if report.removed:
        table.add_row("removed (source gone)", str(report.removed))
    table.add_row("sounds in corpus", str(report.sounds))
    for split, count in report.splits.items():
        table.add_row(f"  {split}", str(count))
    table.add_row("time", f"{report.seconds:.1f} s ({report.jobs} job{'s' if report.jobs != 1 else ''})")
    console.print(table)
    if report.skipped:
        shown = report.skipped[:50]
        console.print(f"[bold]skipped files[/] ({len(report.skipped)}):", highlight=False)
        for path, reason in shown:
            console.print(f"  {path}: {reason}", highlight=False, markup=False, soft_wrap=True)
        if len(report.skipped) > len(shown):
            console.print(f"  ... and {len(report.skipped) - len(shown)} more (see --json)", highlight=False)


@corpus_app.command("fetch")
def fetch_command(
    collection: Annotated[Collection, typer.Argument(help="What to fetch.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to assemble the one-shots in.", show_default=False)],
    cache: Annotated[
        Path | None,
        typer.Option(help=f"Folder for downloaded .deb packages (default: {default_cache()}).", show_default=False),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")] = False,
) -> None:
    """Assemble open one-shots from Debian packages.

    drums (for training): hydrogen-drumkits and lmms-common. Held out from the
    bundled default's training, to evaluate on libraries it never saw: sonic-pi
    (the drum, electronic, percussion and tabla one-shots of sonic-pi-samples) and
    hydrogen-data (Hydrogen's own GMRockKit and TR808EmulationKit). Uses apt-get
    download and dpkg-deb (no root needed), caches the packages, and writes each
    kit's licence next to it; build a corpus from OUT afterwards.
    """
    report = fetch_collection(
        collection.value, out, cache, log=lambda msg: err_console.print(msg, highlight=False, markup=False)
    )
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        print_fetch_report(report)


@corpus_app.command("synth")
def synth_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the hits in.", show_default=False)],
    count: Annotated[int, typer.Option(help="Hits to synthesise, spread over the seven voices.")] = 140,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed writes the same hits.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")] = False,
) -> None:
    """Synthesise electronic drum-machine hits (kick, tom, snare, hat, clap, cowbell, zap).

    Analogue drum-machine recipes with random settings: a library unlike the
    sampled kits, to evaluate on (the bundled default never trained on it) or to
    train with. Build a corpus from OUT afterwards.
    """
    from neurorack.corpus.synth_hits import synth_hits

    report = synth_hits(out, count=count, seed=seed)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    voices = ", ".join(f"{k}: {v}" for k, v in report.per_voice.items())
    console.print(f"synthesised {report.files} hits in {report.out} ({voices}; seed {report.seed})", highlight=False)


def print_fetch_report(report: FetchReport) -> None:
    """One line per source and the total on stdout."""
    state = "assembled" if report.fetched else "already complete:"
    console.print(
        f"{state} {report.files} one-shots in {report.out} "
        f"({', '.join(f'{k}: {v}' for k, v in report.per_source.items())}; "
        f"{', '.join(f'{k} {v}' for k, v in report.packages.items())}) in {report.seconds:.1f} s",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add the ``corpus`` sub-command group to ``app``."""
    app.add_typer(corpus_app, name="corpus")
