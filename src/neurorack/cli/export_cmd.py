"""``neurorack generate``: render one impact from a model file (anchors, interpolation, edits).

The ``export`` command (training side) writes model files with
:func:`neurorack.model_file.export_model`; this module holds the commands that
read them.
"""

from __future__ import annotations

import math
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

from neurorack.cli.console import console, err_console
from neurorack.curves.anchors import EDIT_SYNTAX, edit_curves, edit_ratios, parse_edits, resample_curves
from neurorack.errors import NeurorackError
from neurorack.models.impact.presets import PRESETS, impact_curves

if TYPE_CHECKING:
    from neurorack.model_file import LoadedModel

AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".ogg")


def choose_curves(
    model: LoadedModel,
    *,
    anchors: list[str],
    preset: str | None,
    position: float | None,
) -> tuple[np.ndarray, str]:
    """Starting curves ``float32[frames, 7]`` and a short description of where they came from.

    * ``preset``: a drawn preset (no anchors or position allowed with it);
    * no anchor: ``position`` across all the model's anchors, else its first anchor,
      else the ``kick`` preset;
    * one anchor: that anchor (``position`` not allowed);
    * several anchors: ``position`` (required) across them, in the given order.
    """
    if position is not None and not (math.isfinite(position) and 0.0 <= position <= 1.0):
        raise NeurorackError(f"--position must lie in 0..1, got {position}")
    if preset is not None:
        if anchors or position is not None:
            raise NeurorackError("--preset cannot be combined with --anchor or --position")
        if preset not in PRESETS:
            raise NeurorackError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        return impact_curves(PRESETS[preset], model.descriptor_config), f"preset {preset}"
    for name in anchors:
        model.anchor(name)  # validates the name
    if not anchors:
        if not model.anchors:
            if position is not None:
                raise NeurorackError("this model has no anchors; --position needs anchors (use --preset instead)")
            return impact_curves(PRESETS["kick"], model.descriptor_config), "preset kick (model has no anchors)"
        if position is None:
            first = model.anchor_names[0]
            return model.anchor(first), f"anchor {first!r}"
        return model.position_curves(position), f"position {position:g} across {len(model.anchors)} anchors"
    if len(anchors) == 1:
        if position is not None:
            raise NeurorackError("--position needs two or more --anchor (or none: all the model's anchors)")
        return model.anchor(anchors[0]), f"anchor {anchors[0]!r}"
    if position is None:
        raise NeurorackError("several --anchor given: add --position 0..1 to place the sound between them")
    return model.position_curves(position, anchors), f"position {position:g} across {', '.join(anchors)}"


def generate_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output audio file (.wav, .flac, .aiff, .ogg).")],
    model_name: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Model file or bundled model name (default: the bundled model)."),
    ] = None,
    anchor: Annotated[
        list[str] | None,
        typer.Option("--anchor", "-a", help="Anchor to play; repeat with --position to interpolate between them."),
    ] = None,
    preset: Annotated[
        str | None, typer.Option("--preset", "-p", help=f"Start from a drawn impact: {', '.join(PRESETS)}.")
    ] = None,
    position: Annotated[
        float | None,
        typer.Option("--position", help="0..1 across the anchors (all the model's, or the --anchor list)."),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help=f"Edit a descriptor (name or alias, repeatable): {EDIT_SYNTAX}."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Noise seed (default: random, printed).")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="PNG: requested vs measured descriptors with a spectrogram.")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Seconds; stretches the curves in time (default: their own length).")
    ] = None,
) -> None:
    """Generate one impact with a trained model and write it to OUT.

    The descriptor curves come from an anchor of the model (default: its first),
    from a position between anchors, or from a drawn preset; --set edits them,
    e.g. --set brightness=+30% --set rms=x0.5 --set f0=80 --set centroid=3kHz.
    """
    from neurorack.audio_io import write_audio
    from neurorack.descriptors import describe_with
    from neurorack.model_file import load_model

    if out.suffix.lower() not in AUDIO_SUFFIXES:
        raise NeurorackError(f"{out}: cannot write {out.suffix or '(no extension)'!r}; use .wav, .flac, .aiff or .ogg")
    if plot is not None and plot.suffix.lower() != ".png":
        raise NeurorackError(f"--plot {plot}: use a .png file")
    if duration is not None and not (math.isfinite(duration) and 0 < duration <= 60):
        raise NeurorackError(f"--duration must lie in (0, 60] seconds, got {duration}")
    scale, offset, absolute = parse_edits(settings or [])
    model = load_model(model_name)
    curves, source = choose_curves(model, anchors=list(anchor or []), preset=preset, position=position)
    if duration is not None:
        curves = resample_curves(curves, model.frames_for(duration))
    edited = edit_curves(curves, scale=scale, offset=offset, absolute=absolute)
    moved, curves = edit_ratios(curves, edited), edited
    if seed is None:
        seed = secrets.randbelow(2**31)
    with model.focus(moved):  # the edited descriptors win where the requests conflict
        audio = model.generate(curves, seed=seed)
    try:
        written = write_audio(out, audio, model.sample_rate)
    except OSError as exc:
        raise NeurorackError(f"cannot write {out}: {exc.strerror or exc}") from None
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    peak_db = f"{20 * math.log10(peak):.1f} dBFS" if peak > 0 else "silent"
    edits = len(scale) + len(offset) + len(absolute)
    console.print(
        f"wrote {written}: {audio.size / model.sample_rate:.2f} s at {model.sample_rate} Hz, "
        f"{model.name} from {source}{_edits_text(edits)}, seed {seed}, peak {peak_db}",
        highlight=False,
        soft_wrap=True,
    )
    measured = describe_with(audio, model.descriptor_config)[: len(curves)]
    report = model.follow(curves, audio, measured=measured)
    for line in report.warnings():
        err_console.print(f"warning: {line}", highlight=False, soft_wrap=True)
    if plot is not None:
        from neurorack.plots import plot_descriptors

        try:
            png = plot_descriptors(
                [curves, measured],
                ["requested", "measured"],
                model.sample_rate,
                model.hop_length,
                plot,
                audio=audio,
                title=f"{written.name} ({model.name}, {source})",
            )
        except OSError as exc:
            raise NeurorackError(f"cannot write {plot}: {exc.strerror or exc}") from None
        err_console.print(f"wrote {png}", highlight=False)


def _edits_text(count: int) -> str:
    return "" if count == 0 else f", {count} edit{'s' if count > 1 else ''}"


def register(app: typer.Typer) -> None:
    app.command("generate")(generate_command)
