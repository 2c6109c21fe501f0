"""``neurorack transfer``: timbre and attribute transfer of an audio file through a fader-ae model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from neurorack.cli.console import console, err_console
from neurorack.curves.anchors import EDIT_SYNTAX, parse_edits
from neurorack.errors import NeurorackError

#: Longest input accepted, seconds.
MAX_SECONDS = 600.0


def transfer_command(
    source: Annotated[Path, typer.Argument(help="Input audio file (never modified).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output audio file (.wav, .flac, .aiff, .ogg).")],
    model_name: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="A fader-ae model file (neurorack train ... --model fader-ae) or bundled name (default: the "
            "bundled autoencoder, trained on drums).",
        ),
    ] = "transfer",
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help=f"Edit a descriptor of the input (repeatable): {EDIT_SYNTAX}."),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="PNG: the input's and the output's descriptors with a spectrogram.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Progress bar.")] = True,
) -> None:
    """Re-synthesise SOURCE through an autoencoder and write it to OUT.

    Without --set this is timbre transfer (the input's descriptors played with the model's timbre,
    e.g. a voice through a model trained on drums) or, through a model of the same kind of sounds,
    reconstruction; --set changes descriptors on the way (attribute transfer), e.g.
    --set brightness=+30% --set rms=-6dB. The output is as long as the input, at the model's rate.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from neurorack.audio_io import read_audio, write_audio
    from neurorack.cli.export_cmd import AUDIO_SUFFIXES
    from neurorack.model_file import load_model
    from neurorack.models.transfer import transfer, transfer_model_of

    if out.suffix.lower() not in AUDIO_SUFFIXES:
        raise NeurorackError(f"{out}: cannot write {out.suffix or '(no extension)'!r}; use .wav, .flac, .aiff or .ogg")
    if plot is not None and plot.suffix.lower() != ".png":
        raise NeurorackError(f"--plot {plot}: use a .png file")
    if not source.is_file():
        raise NeurorackError(f"{source}: no such audio file")
    if out.exists() and out.resolve() == source.resolve():
        raise NeurorackError(f"{out} is the input file; choose another --out (inputs are never overwritten)")
    scale, offset, absolute = parse_edits(settings or [])
    model = load_model(model_name)
    transfer_model_of(model)  # fail before reading a long file
    audio, sr = read_audio(source, model.sample_rate, max_seconds=MAX_SECONDS + 1)
    if audio.size > MAX_SECONDS * sr:
        raise NeurorackError(f"{source}: longer than {MAX_SECONDS:.0f} s; cut it first")
    columns = (TextColumn("transfer"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True, disable=not progress) as bar:
        task = bar.add_task("transfer", total=None)
        result = transfer(
            model,
            audio,
            scale=scale,
            offset=offset,
            absolute=absolute,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    try:
        written = write_audio(out, result.audio, model.sample_rate)
    except OSError as exc:
        raise NeurorackError(f"cannot write {out}: {exc.strerror or exc}") from None
    peak = float(np.abs(result.audio).max()) if result.audio.size else 0.0
    peak_db = f"{20 * math.log10(peak):.1f} dBFS" if peak > 0 else "silent"
    edits = len(scale) + len(offset) + len(absolute)
    what = f"{edits} edit{'s' if edits != 1 else ''}" if edits else "no edit"
    console.print(
        f"wrote {written}: {result.audio.size / model.sample_rate:.2f} s at {model.sample_rate} Hz through "
        f"{model.name} ({what}), peak {peak_db}",
        highlight=False,
        soft_wrap=True,
    )
    if plot is not None:
        from neurorack.descriptors import describe_with
        from neurorack.plots import plot_descriptors

        measured = describe_with(result.audio, model.descriptor_config)[: len(result.requested)]
        try:
            png = plot_descriptors(
                [result.measured, result.requested, measured],
                ["input", "requested", "output"],
                model.sample_rate,
                model.hop_length,
                plot,
                audio=result.audio,
                input_audio=audio,
                title=f"{written.name} ({model.name}, from {source.name})",
            )
        except OSError as exc:
            raise NeurorackError(f"cannot write {plot}: {exc.strerror or exc}") from None
        err_console.print(f"wrote {png}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("transfer")(transfer_command)
