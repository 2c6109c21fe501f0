"""The evaluation report's pictures: spectrogram comparisons and control-response curves."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from neurorack.evaluation.rendering import _fmt
from neurorack.evaluation.results import EvalReport, Example


def plot_example(example: Example, path: str | os.PathLike[str]) -> Path:
    """One figure: the real sound's spectrogram above each generator's reconstruction. Returns the PNG path."""
    import matplotlib.pyplot as plt

    from neurorack.plots import save_figure, spectrogram_axes

    panels = [("real", example.reference), *example.generated.items()]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 1.6 * len(panels) + 0.6), sharex=True, squeeze=False)
    for ax, (name, audio) in zip(axes[:, 0], panels, strict=True):
        spectrogram_axes(ax, audio, example.sample_rate, name)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(f"{example.label} ({example.hash[:12]})", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_control(report: EvalReport, descriptor: str, path: str | os.PathLike[str]) -> Path:
    """Measured vs requested scale of one descriptor, log-log, one line per generator (ideal: the diagonal).

    Each line is :attr:`ControlEntry.response` (median over valid sounds of measured / measured at scale 1).
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    from neurorack.plots import save_figure

    scales = np.asarray(report.settings.scales)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(scales, scales, color="0.6", linestyle="--", linewidth=1, label="ideal (slope 1)")
    for r in report.results:
        e = r.control.get(descriptor)
        if e is None or e.n_valid == 0:
            continue
        ax.plot(scales, e.response, marker="o", linewidth=1.3, label=f"{r.name} (slope {_fmt(e.slope)})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [0.125, 0.25, 0.5, 0.71, 1.0, 1.41, 2.0, 4.0, 8.0]
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(FixedLocator(ticks))
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        axis.set_minor_locator(NullLocator())
    ax.set_xlabel("requested scale s")
    ax.set_ylabel("measured / measured at s = 1")
    n = len(report.f0_sounds) if descriptor == "f0" else len(report.control_sounds)
    ax.set_title(f"control response: {descriptor} ({n} {'tonal ' if descriptor == 'f0' else ''}sounds)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
