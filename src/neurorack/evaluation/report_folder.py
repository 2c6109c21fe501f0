"""Writing an evaluation report folder: JSON, Markdown summary and pictures."""

from __future__ import annotations

import os
from pathlib import Path

from neurorack.errors import NeurorackError
from neurorack.evaluation.plots import plot_control, plot_example
from neurorack.evaluation.rendering import render_markdown
from neurorack.evaluation.results import EvalReport


def write_report(report: EvalReport, folder: str | os.PathLike[str], *, command: str = "") -> list[Path]:
    """Write ``eval.json``, ``summary.md``, one spectrogram comparison per kept example
    (``spectrogram-<hash[:12]>.png``) and one control-response plot per descriptor
    (``control-<descriptor>.png``) into ``folder`` (created).

    Returns:
        the files written.

    Raises:
        NeurorackError: the folder cannot be created or written.
    """
    from neurorack.atomic import write_json, write_text

    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NeurorackError(f"cannot create report folder {out}: {exc.strerror or exc}") from None
    written: list[Path] = []
    try:
        written.append(write_json(out / "eval.json", report.to_dict()))
        written.append(write_text(out / "summary.md", render_markdown(report, command)))
        for ex in report.examples:
            written.append(plot_example(ex, out / f"spectrogram-{ex.hash[:12]}.png"))
        for d in report.settings.descriptors:
            if any(r.control.get(d) is not None and r.control[d].n_sounds > 0 for r in report.results):
                written.append(plot_control(report, d, out / f"control-{d}.png"))
    except OSError as exc:
        raise NeurorackError(f"cannot write the report in {out}: {exc.strerror or exc}") from None
    return written
