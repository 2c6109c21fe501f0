"""``neurorack describe``: the seven descriptors of audio files, as a table, JSON or a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from neurorack.audio_io import read_audio
from neurorack.cli.console import console, err_console
from neurorack.descriptors import DESCRIPTOR_NAMES, describe
from neurorack.errors import NeurorackError


def active_frames(curves: np.ndarray, threshold_db: float = -40.0) -> np.ndarray:
    """Boolean mask of frames whose rms is within ``threshold_db`` of the loudest frame."""
    rms = curves[:, 0]
    peak = float(rms.max())
    if peak <= 0:
        return np.zeros(rms.shape, dtype=bool)
    return rms >= peak * 10 ** (threshold_db / 20)


def summarize(curves: np.ndarray) -> dict[str, float]:
    """Mean of each descriptor over active frames (all frames when none is active)."""
    mask = active_frames(curves)
    rows = curves[mask] if mask.any() else curves
    return {name: float(rows[:, i].mean()) for i, name in enumerate(DESCRIPTOR_NAMES)}


def describe_command(
    files: Annotated[list[Path], typer.Argument(help="Audio files (wav, flac, aiff, ogg, mp3).", show_default=False)],
    json_out: Annotated[
        bool, typer.Option("--json", help="Print every frame of every file as JSON on stdout.")
    ] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG of the descriptor curves (and spectrogram).")
    ] = None,
    sample_rate: Annotated[
        int, typer.Option("--sample-rate", "-r", help="Analysis rate in Hz (0 keeps each file's own rate).")
    ] = 44_100,
    frame_length: Annotated[int, typer.Option(help="Analysis frame in samples.")] = 2048,
    hop_length: Annotated[int, typer.Option(help="Hop between frames in samples.")] = 512,
) -> None:
    """Compute the seven descriptors (SPEC §2) of each FILE.

    Prints the mean of each descriptor over the active frames (within 40 dB of the
    loudest); --json prints every frame. Files that cannot be read are listed and
    skipped; the exit status is 2 when any file failed.
    """
    if sample_rate < 0:
        raise NeurorackError("--sample-rate must be 0 (keep) or a positive rate in Hz")
    results: list[dict[str, Any]] = []
    failures: list[tuple[Path, str]] = []
    audios: list[tuple[np.ndarray, int]] = []
    for path in files:
        try:
            audio, sr = read_audio(path, sample_rate or None)
            curves = describe(audio, sr, frame_length=frame_length, hop_length=hop_length)
        except NeurorackError as exc:
            failures.append((path, str(exc)))
            continue
        audios.append((audio, sr))
        results.append(
            {
                "file": str(path),
                "sample_rate": sr,
                "frame_length": frame_length,
                "hop_length": hop_length,
                "duration": audio.size / sr,
                "columns": list(DESCRIPTOR_NAMES),
                "summary": summarize(curves),
                "frames": curves,
            }
        )
    if json_out:
        payload = [{**r, "frames": np.round(r["frames"], 6).tolist()} for r in results]
        typer.echo(json.dumps(payload if len(files) > 1 else (payload[0] if payload else []), indent=1))
    elif results:
        table = Table(title="descriptors (mean over active frames)", title_justify="left")
        table.add_column("file", overflow="ellipsis", no_wrap=True, max_width=24)
        table.add_column("s", justify="right")
        for name in DESCRIPTOR_NAMES:
            table.add_column(name, justify="right", no_wrap=True)
        for r in results:
            s = r["summary"]
            table.add_row(
                Path(r["file"]).name,
                f"{r['duration']:.2f}",
                *(f"{s[n]:.4f}" if n in ("rms", "zcr", "flatness") else f"{s[n]:.0f}" for n in DESCRIPTOR_NAMES),
            )
        console.print(table)
    if plot is not None and results:
        from neurorack.plots import plot_descriptors

        if plot.suffix.lower() != ".png":
            raise NeurorackError(f"--plot writes PNG; got {plot.name!r}")
        single = len(results) == 1
        plot_descriptors(
            [r["frames"] for r in results],
            [Path(r["file"]).name for r in results],
            results[0]["sample_rate"],
            hop_length,
            plot,
            audio=audios[0][0] if single else None,
            title=Path(results[0]["file"]).name if single else "",
        )
        err_console.print(f"wrote {plot}")
    for _path, reason in failures:
        err_console.print(f"[bold red]skipped:[/] {reason}", highlight=False, soft_wrap=True)
    if failures:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.command("describe", no_args_is_help=True)(describe_command)
