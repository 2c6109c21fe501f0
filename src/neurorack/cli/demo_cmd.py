"""``neurorack demo``: render a few drawn impacts, describe them, and show the curves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from neurorack.audio_io import write_audio
from neurorack.cli.console import console, err_console
from neurorack.descriptors import DESCRIPTOR_NAMES, DescriptorConfig, describe_with
from neurorack.errors import NeurorackError
from neurorack.generators.base import Generator
from neurorack.models.impact.presets import PRESETS, impact_curves


def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the WAV files and plots.")] = Path("demo"),
    presets: Annotated[
        list[str] | None, typer.Option("--preset", "-p", help=f"Impacts to render: {', '.join(PRESETS)}.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model file or bundled name [default: the bundled model].")
    ] = None,
    baseline: Annotated[
        str | None, typer.Option(help="Render with a baseline instead of a model: silence or dsp.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Noise seed.")] = 0,
) -> None:
    """Render drawn impacts with the bundled model (or --model / --baseline), then measure them back.

    Writes OUT/PRESET.wav and OUT/PRESET.png (spectrogram, requested vs
    measured descriptor curves) and prints how closely each descriptor followed
    (median measured / requested over active frames; "followed": rms, centroid,
    bandwidth and roll-off within 0.2 octave, f0 within a semitone on tonal
    presets), the peak level, and a warning for each miss and each peak above 0 dBFS.
    """
    names = presets or list(PRESETS)
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise NeurorackError(f"unknown preset {unknown[0]!r}; choose from {', '.join(PRESETS)}")
    gen: Generator
    if baseline is not None:
        if model is not None:
            raise NeurorackError("choose --model or --baseline, not both")
        from neurorack.generators.registry import build_baseline

        gen = build_baseline(baseline, DescriptorConfig())
    else:
        from neurorack.model_file import load_model

        gen = load_model(model)
    config = gen.descriptor_config
    table = Table(title=f"{gen.name}: measured / requested (median over active frames)", title_justify="left")
    table.add_column("impact")
    for name in DESCRIPTOR_NAMES:
        table.add_column(name, justify="right")
    table.add_column("followed")
    table.add_column("peak dBFS", justify="right")
    warnings: list[str] = []
    from neurorack.plots import plot_descriptors

    for name in names:
        curves = impact_curves(PRESETS[name], config)
        audio = gen.generate(curves, seed=seed)
        wav = write_audio(out / f"{name}.wav", audio, gen.sample_rate)
        # a render of F frames is F * hop samples; its analysis has one more (centred) frame
        measured = describe_with(audio, config)[: len(curves)]
        report = gen.follow(curves, audio, measured=measured)
        ratios = [2.0 ** report.octaves[d] for d in DESCRIPTOR_NAMES]
        table.add_row(
            name, *(f"{r:.2f}" for r in ratios), "yes" if report.followed else "no", f"{report.peak_dbfs:+.1f}"
        )
        warnings.extend(f"{name}: {line}" for line in report.warnings())
        plot_descriptors(
            [curves, measured],
            ["requested", "measured"],
            gen.sample_rate,
            gen.hop_length,
            out / f"{name}.png",
            audio=audio,
            title=f"{name} ({gen.name})",
        )
        err_console.print(f"wrote {wav} and {out / (name + '.png')}")
    console.print(table)
    for line in warnings:
        err_console.print(f"warning: {line}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
