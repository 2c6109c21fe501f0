"""The evaluation report as a terminal table and as Markdown."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neurorack.bench import _fmt_factor as _bench_factor
from neurorack.evaluation.results import ControlEntry, EvalReport
from neurorack.metrics.speed import STREAM_BLOCK


def _fmt(x: float | None, digits: int = 2) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:.{digits}f}"


def _fmt_count(n: int | None) -> str:
    if n is None:
        return "—"
    if n >= 1_000_000:
        return f"{n / 1e6:.2f} M"
    if n >= 1_000:
        return f"{n / 1e3:.1f} k"
    return str(n)


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "—"
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f} MiB"
    return f"{n / 1024:.0f} KiB"


def table_rows(report: EvalReport) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the results table (shared by the rich and the Markdown renderings).

    Columns: name, kind (``baseline``, the model class, ``(transfer)`` for autoencoders), MR-STFT
    median (mean), one ``slope / ρ`` cell per descriptor (f0's header gives its number of tonal sounds),
    the mean latent leakage R² (autoencoders; lower is better), × real time, parameters, file size.
    """
    descs = report.settings.descriptors
    leaky = any(r.leakage for r in report.results)
    header = ["name", "kind", "MR-STFT med (mean)"]
    for d in descs:
        header.append(f"{d} slope / ρ" + (f" (n={len(report.f0_sounds)})" if d == "f0" else ""))
    header += ["leakage R²"] if leaky else []
    header += ["× real time", "params", "size"]
    rows: list[list[str]] = []
    for r in report.results:
        kind = (f"{r.cls} (transfer)" if r.transfer else r.cls) if r.kind == "model" else r.kind
        cells = [r.name, kind, f"{_fmt(r.mrstft.median)} ({_fmt(r.mrstft.mean)})"]
        cells += [_control_cell(r.control.get(d)) for d in descs]
        cells += [_fmt(float(np.mean(list(r.leakage.values())))) if r.leakage else "—"] if leaky else []
        cells.append(_bench_factor(r.speed.realtime_factor) if r.speed is not None else "—")
        cells.append(_fmt_count(r.parameters))
        cells.append(_fmt_bytes(r.file_bytes))
        rows.append(cells)
        for suffix, entries in (("knob named", r.control_focused), ("prior off", r.control_bare)):
            if entries:
                extra = [f"{r.name}, {suffix}", "(same model)", "—", *(_control_cell(entries.get(d)) for d in descs)]
                rows.append([*extra, *(["—"] if leaky else []), "—", "—", "—"])
    return header, rows


def leakage_rows(report: EvalReport) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the latent-leakage table: R² per controlled descriptor, one row per autoencoder."""
    names: list[str] = []
    for r in report.results:
        names += [n for n in r.leakage if n not in names]
    rows = [[r.name, *(_fmt(r.leakage.get(n)) for n in names)] for r in report.results if r.leakage]
    return ["name", *names], rows


#: Descriptors of the absolute-accuracy table, in its column order.
ACCURACY_DESCRIPTORS = ("rms", "centroid", "bandwidth", "rolloff", "f0")
#: Title of the absolute-accuracy table.
ACCURACY_TITLE = (
    "absolute accuracy: median |log2(measured / requested)| over active frames, octaves "
    "(0 is exact; 0.2 octave is the tolerance, f0: 0.083 = a semitone, tonal requests only)"
)


def accuracy_rows(report: EvalReport) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the absolute-accuracy table: per generator, its reconstructions (the test sounds'
    own curves) and the drawn presets (with how many presets were followed within tolerance)."""
    header = ["name", "curves", *ACCURACY_DESCRIPTORS, "followed"]
    rows = []
    for r in report.results:
        for source, label in (("reconstruction", "test sounds"), ("presets", "drawn presets")):
            values = r.accuracy.get(source)
            if not values:
                continue
            followed = f"{r.presets_followed[0]}/{r.presets_followed[1]}" if source == "presets" else ""
            rows.append([r.name, label, *(_fmt(values.get(d)) for d in ACCURACY_DESCRIPTORS), followed])
    return header, rows


def _control_cell(e: ControlEntry | None) -> str:
    if e is None or e.n_sounds == 0:
        return "—"
    cell = f"{_fmt(e.slope)} / {_fmt(e.rho)}"
    if 0 < e.n_valid < e.n_sounds:
        cell += f" [{e.n_valid}/{e.n_sounds}]"
    return cell


def _title(report: EvalReport) -> str:
    s = report.settings
    which = "test sounds" if s.split == "test" else "sounds (all: a corpus held out from training)"
    seen = f" ({s.left_out_trained} more left out: a model here trained on them)" if s.left_out_trained else ""
    return (
        f"eval — {Path(s.corpus).name}: MR-STFT on {len(report.mrstft_sounds)} of {s.test_sounds_available} {which}"
        f"{seen}, control on {len(report.control_sounds)} (f0: {len(report.f0_sounds)} tonal), seed {s.seed}"
    )


def _caption(report: EvalReport) -> str:
    m = report.machine
    parts = [
        "MR-STFT: lower is better (silence ≈ 3.7 on real one-shots); control slope and ρ: ideal 1, "
        "[valid/measured] when some outputs were silent; × real time: 1 thread, 1 s impact",
        *(
            [
                "(transfer): an autoencoder, measured by encoding each test sound and decoding it with its own "
                f"or scaled curves; its × real time is live streaming in {STREAM_BLOCK}-sample blocks; leakage "
                "R²: a fresh regressor from the latent to the controlled descriptors (mean; lower is better)"
            ]
            if any(r.transfer for r in report.results)
            else []
        ),
        f"{m.get('cpu', '?')} · {m.get('logical_cpus', '?')} CPUs · torch {m.get('torch', '?')} · "
        f"neurorack {m.get('neurorack', '?')}",
    ]
    return "\n".join(parts)


def render_table(report: EvalReport) -> Any:
    """A :class:`rich.table.Table` of the report (one row per generator)."""
    from rich.markup import escape
    from rich.table import Table

    header, rows = table_rows(report)
    table = Table(
        title=escape(_title(report)),
        title_justify="left",
        caption=escape(_caption(report)),
        caption_justify="left",
    )
    for i, h in enumerate(header):
        h = h.replace("MR-STFT ", "MR-STFT\n").replace(" slope / ρ", "\nslope / ρ")
        table.add_column(escape(h), justify="left" if i < 2 else "right")
    for cells in rows:
        table.add_row(*(escape(c) for c in cells))
    return table


def render_markdown(report: EvalReport, command: str = "") -> str:
    """``summary.md``: title, the table in Markdown, notes, and the command that produced it."""
    header, rows = table_rows(report)

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [f"# {_title(report)}", "", line(header), "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    out += [line(cells) for cells in rows]
    out += ["", *(f"{p}  " for p in _caption(report).splitlines()), ""]
    acc_header, acc_rows = accuracy_rows(report)
    if acc_rows:
        out += [f"## {ACCURACY_TITLE[0].upper()}{ACCURACY_TITLE[1:]}", ""]
        out += [line(acc_header), "|---|---|" + "---:|" * (len(acc_header) - 2)]
        out += [line(cells) for cells in acc_rows] + [""]
    leak_header, leak_rows = leakage_rows(report)
    if leak_rows:
        out += ["## Latent leakage (R² of a fresh regressor, held-out sounds; lower is better)", ""]
        out += [line(leak_header), "|---|" + "---:|" * (len(leak_header) - 1)]
        out += [line(cells) for cells in leak_rows] + [""]
    if command:
        out += ["Produced by:", "", "```sh", command, "```", ""]
    return "\n".join(out)
