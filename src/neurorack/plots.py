"""Pictures people would rather see than read: spectrograms and descriptor curves.

Matplotlib with the non-interactive Agg backend; files are written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from neurorack.atomic import atomic_path
from neurorack.descriptors import DESCRIPTOR_NAMES, PERCEPTUAL_NAMES

_UNITS = {"rms": "", "zcr": "", "rolloff": "Hz", "flatness": "", "bandwidth": "Hz", "centroid": "Hz", "f0": "Hz"}


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Save ``fig`` as PNG atomically and close it."""
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def spectrogram_axes(ax: Axes, audio: np.ndarray, sr: int, title: str = "") -> None:
    """Draw a log-magnitude spectrogram (dB, 2048/512 Hann) of ``audio: float[T]`` on ``ax``."""
    n_fft, hop = 2048, 512
    x = np.asarray(audio, dtype=np.float64)
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, n_fft // 2), n_fft)[::hop]
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1))
    db = 20 * np.log10(np.maximum(mag, 1e-6))
    db = np.maximum(db, db.max() - 90)
    extent = (0.0, x.size / sr, 0.0, sr / 2 / 1000)
    ax.imshow(db.T, origin="lower", aspect="auto", extent=extent, cmap="magma")
    ax.set_ylabel("kHz")
    if title:
        ax.set_title(title, fontsize=9)


def plot_descriptors(
    curves: Sequence[np.ndarray],
    labels: Sequence[str],
    sr: int,
    hop_length: int,
    path: str | os.PathLike[str],
    *,
    audio: np.ndarray | None = None,
    input_audio: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """Plot one or more ``float[frames, 7]`` descriptor curves (one panel per descriptor).

    With ``audio``, a spectrogram panel comes first; with ``input_audio`` too (a transfer's input, same
    rate), the input's spectrogram comes before it. Returns the PNG path.
    """
    panels = ((input_audio, "input spectrogram"), (audio, "output spectrogram"))
    spectrograms = [(a, t) for a, t in panels if a is not None]
    if len(spectrograms) == 1:
        spectrograms = [(spectrograms[0][0], "spectrogram")]
    n_rows = len(DESCRIPTOR_NAMES) + len(spectrograms)
    fig, axes = plt.subplots(n_rows, 1, figsize=(8, 1.35 * n_rows + 0.6), sharex=True)
    axes_list = list(np.atleast_1d(axes))
    for samples, label in spectrograms:
        spectrogram_axes(axes_list.pop(0), samples, sr, label)
    for col, (ax, name) in enumerate(zip(axes_list, DESCRIPTOR_NAMES, strict=True)):
        for curve, label in zip(curves, labels, strict=True):
            t = np.arange(curve.shape[0]) * hop_length / sr
            ax.plot(t, curve[:, col], label=label, linewidth=1.1)
        unit = f" ({_UNITS[name]})" if _UNITS[name] else ""
        ax.set_ylabel(f"{name}{unit}\n{PERCEPTUAL_NAMES[name]}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes_list[-1].set_xlabel("time (s)")
    if len(labels) > 1:
        axes_list[0].legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
