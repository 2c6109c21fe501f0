"""Showing a note evaluation: a rich table, a Markdown summary and spectrogram pictures (real vs generated)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from rich.table import Table

from neurorack.errors import NeurorackError
from neurorack.evaluation.note_protocol import IN_TUNE_CENTS, REAL, NoteEvalReport

_COLUMNS = (
    ("candidate", "name"),
    ("notes", "notes"),
    ("spectral (mean)", "spectral_mean"),
    ("MR-STFT (median)", "mrstft_median"),
    ("|cents| (median)", "pitch_abs_cents_median"),
    (f"in tune (±{IN_TUNE_CENTS:.0f} c)", "pitch_in_tune"),
    ("f0 found", "pitch_found"),
)


def _cell(key: str, value: object) -> str:
    if value is None:
        return "-"
    if key in ("pitch_in_tune", "pitch_found"):
        return f"{100 * float(value):.0f}%"  # type: ignore[arg-type]
    if key == "spectral_mean":
        return f"{float(value):.4f}"  # type: ignore[arg-type]
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def rows(report: NoteEvalReport) -> list[list[str]]:
    """The table's cells, one row per candidate (``real``: the real notes, the floor of each metric)."""
    return [[_cell(key, s.summary()[key]) for _, key in _COLUMNS] for s in report.scores]


def render_note_table(report: NoteEvalReport) -> Table:
    table = Table(
        title=f"notes: {len(report.notes)} {report.split} notes of {report.corpus} (lower is better; "
        f"{report.skipped} not playable by every candidate)",
        title_justify="left",
    )
    for i, (title, _) in enumerate(_COLUMNS):
        table.add_column(title, justify="left" if i == 0 else "right")
    for cells in rows(report):
        table.add_row(*cells)
    return table


def render_note_markdown(report: NoteEvalReport, command: str) -> str:
    lines = [
        f"# Note evaluation: {report.split} split of `{report.corpus}`",
        "",
        f"Reproduce: `{command}`" if command else "",
        "",
        f"{len(report.notes)} notes; {report.skipped} left out (outside a candidate's trained range). "
        "`real` scores the real notes against themselves (0 for the distances; its pitch columns show how well the "
        "pitch tracker follows the instruments).",
        "",
        "| " + " | ".join(t for t, _ in _COLUMNS) + " |",
        "|" + "---|" * len(_COLUMNS),
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows(report)]
    return "\n".join(lines) + "\n"


def plot_note_example(example: dict[str, np.ndarray | str], sample_rate: int, path: str | os.PathLike[str]) -> Path:
    """Spectrograms of the real note (top) and each candidate's, one row each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neurorack.plots import save_figure, spectrogram_axes

    names = [REAL] + [k for k in example if k not in (REAL, "note_str")]
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 1.9 * len(names)), sharex=True)
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        audio = example[name]
        assert isinstance(audio, np.ndarray)
        spectrogram_axes(ax, audio, sample_rate, title=f"{name}: {example['note_str']}")
    np.atleast_1d(axes)[-1].set_xlabel("s")
    return save_figure(fig, path)


def write_note_report(report: NoteEvalReport, folder: str | os.PathLike[str], *, command: str = "") -> list[Path]:
    """``eval.json``, ``summary.md`` and ``spectrogram-<note_str>.png`` per example into ``folder`` (created).

    Raises:
        NeurorackError: the folder cannot be created or written.
    """
    from neurorack.atomic import write_json, write_text

    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = [
            write_json(out / "eval.json", report.to_dict()),
            write_text(out / "summary.md", render_note_markdown(report, command)),
        ]
        for example in report.examples:
            written.append(
                plot_note_example(example, report.sample_rate, out / f"spectrogram-{example['note_str']}.png")
            )
    except OSError as exc:
        raise NeurorackError(f"cannot write the report into {out}: {exc.strerror or exc}") from None
    return written
