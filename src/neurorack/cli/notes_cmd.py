"""``neurorack notes``: render an NSynth-layout note corpus from a SoundFont, list presets, describe a corpus."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from neurorack.cli.console import console, err_console

notes_app = typer.Typer(
    name="notes",
    help="Note corpora for the note models: render one from a SoundFont, list a SoundFont's presets, describe one.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@notes_app.command("render")
def render_command(
    soundfont: Annotated[Path, typer.Argument(help="A SoundFont (.sf2), e.g. /usr/share/sounds/sf2/FluidR3_GM.sf2.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Corpus folder (new, or a render to finish).")],
    instruments: Annotated[
        str,
        typer.Option(
            help="Presets: melodic (all but drum kits and sound effects), all, or a comma list of programs "
            "(24), ranges (0-7), bank:program (8:4), families (string) or preset names."
        ),
    ] = "melodic",
    pitches: Annotated[str, typer.Option(help="MIDI pitches; each preset keeps those where it sounds.")] = "21-108",
    velocities: Annotated[str, typer.Option(help="MIDI velocities.")] = "25,50,75,100,127",
    gain: Annotated[float, typer.Option(help="FluidSynth master gain (notes above full scale are counted).")] = 0.8,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", help="Worker processes (default: the number of CPUs).", show_default=False),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars on stderr.")] = True,
) -> None:
    """Render a note corpus in NSynth's layout (examples.json + audio/NOTE.wav) from SOUNDFONT with FluidSynth.

    Each preset plays every pitch where it sounds, at each velocity: the key held 3 s of a 4 s note,
    reverb and chorus off, rendered at 48 kHz and resampled to 16 kHz mono 16-bit; family and source come
    from the GM program. Everything is checked before anything is written; examples.json appears only when
    the render is complete, and a killed render finishes when run again with the same settings.
    """
    from neurorack.notes.render import render_corpus

    report = render_corpus(
        soundfont,
        out,
        instruments=instruments,
        pitches=pitches,
        velocities=velocities,
        gain=gain,
        jobs=jobs,
        progress=progress,
        log=lambda msg: err_console.print(msg, highlight=False, markup=False),
    )
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    resumed = f", {report.resumed_instruments} already done" if report.resumed_instruments else ""
    console.print(
        f"{report.notes} notes of {report.instruments} instruments in {report.out} "
        f"({report.rendered_instruments} rendered{resumed}; {report.silent_notes} silent notes left out; "
        f"{report.clipped_notes} clipped) in {report.seconds:.1f} s",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    if report.clipped_notes:
        err_console.print("some notes clipped: render again into a new folder with a lower --gain", highlight=False)


@notes_app.command("list")
def list_command(
    soundfont: Annotated[Path, typer.Argument(help="A SoundFont (.sf2).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the presets as JSON on stdout.")] = False,
) -> None:
    """List the presets of SOUNDFONT: bank, program, name, and the NSynth family and source given to it."""
    from neurorack.notes.soundfont import FluidRenderer

    with FluidRenderer(soundfont) as renderer:
        presets = renderer.presets
    if json_out:
        rows = [
            {"bank": p.bank, "program": p.program, "name": p.name, "family": p.family, "source": p.source,
             "melodic": p.melodic}
            for p in presets
        ]  # fmt: skip
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{soundfont.name}: {len(presets)} presets", title_justify="left")
    for column in ("bank", "program", "name", "family", "source", "melodic"):
        table.add_column(column, justify="right" if column in ("bank", "program") else "left")
    for p in presets:
        table.add_row(str(p.bank), str(p.program), p.name, p.family, p.source, "yes" if p.melodic else "no")
    console.print(table)


@notes_app.command("info")
def info_command(
    corpus: Annotated[Path, typer.Argument(help="A note corpus (ours, or an NSynth download's folder).")],
    seed: Annotated[int, typer.Option(help="Seed of the pitch-completion split.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")] = False,
) -> None:
    """Describe a note corpus: instruments, families, pitch ranges, and its pitch-completion split."""
    from neurorack.notes.nsynth import NoteCorpus

    c = NoteCorpus.open(corpus)
    splits = {name: len(c.split(name, seed)) for name in ("train", "validation", "test")}
    families = Counter(n.family for n in c.notes)
    counts = Counter(n.instrument_str for n in c.notes)
    ranges = {name: c.pitch_range(name) for name in c.instruments}
    per_instrument = {name: {"notes": counts[name], "pitches": list(ranges[name])} for name in c.instruments}
    if json_out:
        summary = {
            "path": str(c.path), "sample_rate": c.sample_rate, "notes": len(c.notes),
            "instruments": per_instrument, "families": dict(families), "splits": splits, "seed": seed,
        }  # fmt: skip
        typer.echo(json.dumps(summary, indent=2))
        return
    console.print(
        f"{c.path}: {len(c.notes)} notes of {len(c.instruments)} instruments at {c.sample_rate} Hz; "
        f"split (seed {seed}): " + ", ".join(f"{k} {v}" for k, v in splits.items()),
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    table = Table(show_header=True, title_justify="left")
    table.add_column("instrument")
    table.add_column("family")
    table.add_column("notes", justify="right")
    table.add_column("pitches", justify="right")
    family_of = {n.instrument_str: n.family for n in c.notes}
    for name in c.instruments:
        lo, hi = ranges[name]
        table.add_row(name, family_of[name], str(counts[name]), f"{lo}-{hi}")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``notes`` sub-command group to ``app``."""
    app.add_typer(notes_app, name="notes")
