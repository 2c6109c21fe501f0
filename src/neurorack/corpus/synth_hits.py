"""Electronic drum-machine hits synthesised by the project: a sample library nobody else made.

Analogue drum machines build their voices from a handful of circuits (Roland TR-808 / TR-909 service
notes; Gordon Reid, "Synth Secrets", Sound On Sound 2001-2002, parts 35-45): a bridged-T resonator
swept down in pitch for kicks and toms, a tone plus filtered noise for snares, six square-wave
oscillators at inharmonic ratios through band-pass filters for hi-hats and cymbals, filtered noise
bursts for claps, two detuned squares for a cowbell, and fast sine sweeps for zaps. Each voice here
is such a recipe with its parameters drawn at random (seeded), so a folder of them is an
electronic library unlike the sampled acoustic kits the bundled model learned from: the held-out
``synth`` library of ``neurorack eval`` (``neurorack corpus synth``).

Pure NumPy + SciPy filters; every hit is ``float32[T]`` mono at ``sample_rate`` Hz, peaking at
``peak`` (linear, at most 1), with a short fade-out.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal

from neurorack.atomic import write_text
from neurorack.audio_io import write_audio
from neurorack.corpus.manifest import write_json_atomic
from neurorack.errors import CorpusError

#: The six square-wave frequencies of the TR-808 metal voices (hi-hats, cymbals), Hz.
METAL_FREQS = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)
SYNTH_FORMAT = "neurorack-synth-hits"
SYNTH_VERSION = 1
LICENCE_TEXT = (
    "License: CC0-1.0\n\nElectronic drum hits synthesised by neurorack (neurorack corpus synth); "
    "no samples of anyone else are in them.\n"
)
FADE_SECONDS = 0.005


def _exp_env(n: int, sr: int, decay: float) -> np.ndarray:
    """Exponential decay reaching -60 dB after ``decay`` seconds, ``[n]``."""
    t = np.arange(n) / sr
    return np.exp(-t * math.log(1000.0) / max(decay, 1e-3))


def _sweep(n: int, sr: int, start: float, end: float, time: float) -> np.ndarray:
    """Phase (radians) of a sine gliding exponentially from ``start`` to ``end`` Hz with time constant ``time`` s."""
    t = np.arange(n) / sr
    freq = end + (start - end) * np.exp(-t / max(time, 1e-4))
    return 2 * math.pi * np.cumsum(freq) / sr


def _band(x: np.ndarray, sr: int, low: float | None, high: float | None, order: int = 2) -> np.ndarray:
    """Butterworth high-, low- or band-pass (cut-offs in Hz, ``None`` for an open side)."""
    nyq = sr / 2
    if low is not None and high is not None:
        sos = signal.butter(order, [low / nyq, min(high / nyq, 0.99)], btype="bandpass", output="sos")
    elif low is not None:
        sos = signal.butter(order, low / nyq, btype="highpass", output="sos")
    elif high is not None:
        sos = signal.butter(order, min(high / nyq, 0.99), btype="lowpass", output="sos")
    else:
        return x
    return signal.sosfilt(sos, x)


def _square(phase: np.ndarray) -> np.ndarray:
    return np.sign(np.sin(phase))


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _log_u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def kick(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A swept sine (50 Hz-ish body from a few hundred Hz) with a click, optionally driven."""
    decay = _u(rng, 0.25, 1.2)
    n = int(sr * min(decay * 1.1, 1.5))
    body = np.sin(_sweep(n, sr, _log_u(rng, 120, 400), _log_u(rng, 38, 70), _u(rng, 0.01, 0.06)))
    body *= _exp_env(n, sr, decay)
    click = _band(rng.standard_normal(n), sr, 1500, 8000) * _exp_env(n, sr, 0.008) * _u(rng, 0.0, 0.6)
    x = body + click
    drive = _u(rng, 1.0, 4.0)
    return np.tanh(drive * x) / math.tanh(drive)


def tom(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A higher, slower swept sine with a little noise."""
    decay = _u(rng, 0.2, 0.9)
    n = int(sr * min(decay * 1.1, 1.2))
    base = _log_u(rng, 80, 350)
    body = np.sin(_sweep(n, sr, base * _u(rng, 1.3, 2.0), base, _u(rng, 0.02, 0.1))) * _exp_env(n, sr, decay)
    noise = _band(rng.standard_normal(n), sr, base * 2, base * 12) * _exp_env(n, sr, 0.04) * 0.2
    return body + noise


def snare(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Two tones (180-330 Hz) plus high-passed noise with its own decay (the snappy)."""
    decay = _u(rng, 0.12, 0.45)
    n = int(sr * min(decay * 1.3, 0.8))
    f = _log_u(rng, 160, 330)
    tone = (np.sin(_sweep(n, sr, f * 1.3, f, 0.01)) + 0.5 * np.sin(_sweep(n, sr, f * 2.4, f * 1.8, 0.01))) / 1.5
    tone *= _exp_env(n, sr, decay * _u(rng, 0.3, 0.8))
    snappy = _band(rng.standard_normal(n), sr, _log_u(rng, 1000, 4000), _log_u(rng, 8000, 16000))
    snappy *= _exp_env(n, sr, decay)
    mix = _u(rng, 0.3, 0.85)
    return (1 - mix) * tone + mix * snappy / max(float(np.abs(snappy).max()), 1e-9)


def hat(rng: np.random.Generator, sr: int) -> np.ndarray:
    """The six metal squares through a band-pass and a high-pass; closed (short) or open (long)."""
    decay = _log_u(rng, 0.08, 0.6)  # shorter ones trim below a corpus's 50 ms minimum
    n = int(sr * min(decay * 1.2 + 0.05, 1.0))
    tune = _u(rng, 0.8, 1.25)
    t = np.arange(n) / sr
    metal = np.sum([_square(2 * math.pi * f * tune * t) for f in METAL_FREQS], axis=0)
    x = _band(metal, sr, _log_u(rng, 5000, 9000), None, order=4) + 0.1 * rng.standard_normal(n)
    return _band(x, sr, 3000, 16000) * _exp_env(n, sr, decay)


def clap(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Three or four noise bursts ~10 ms apart, then a longer band-passed tail."""
    decay = _u(rng, 0.15, 0.5)
    n = int(sr * min(decay * 1.2 + 0.04, 0.8))
    centre = _log_u(rng, 800, 2500)
    noise = _band(rng.standard_normal(n), sr, centre / 1.6, centre * 1.6)
    env = np.zeros(n)
    gap = int(sr * _u(rng, 0.007, 0.013))
    bursts = int(rng.integers(3, 5))
    short = _exp_env(gap, sr, 0.02)
    for k in range(bursts):
        env[k * gap : (k + 1) * gap] += short[: max(0, min(gap, n - k * gap))]
    tail_start = bursts * gap
    env[tail_start:] += _exp_env(n - tail_start, sr, decay)
    return noise * env


def cowbell(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Two squares (about 540 and 800 Hz) through a band-pass, a fast then slow decay."""
    decay = _u(rng, 0.15, 0.6)
    n = int(sr * min(decay * 1.2, 0.8))
    tune = _u(rng, 0.8, 1.25)
    t = np.arange(n) / sr
    x = _square(2 * math.pi * 540 * tune * t) + _square(2 * math.pi * 800 * tune * t)
    x = _band(x, sr, 500 * tune, 2500 * tune)
    env = 0.6 * _exp_env(n, sr, 0.03) + 0.4 * _exp_env(n, sr, decay)
    return x * env


def zap(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A fast downward sine sweep (laser, 'pew')."""
    decay = _u(rng, 0.1, 0.5)
    n = int(sr * min(decay * 1.1, 0.7))
    x = np.sin(_sweep(n, sr, _log_u(rng, 1500, 6000), _log_u(rng, 60, 300), _u(rng, 0.01, 0.08)))
    return x * _exp_env(n, sr, decay)


#: The voices, by folder name (the label a corpus built from the folder gives each hit).
VOICES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "kick": kick,
    "tom": tom,
    "snare": snare,
    "hat": hat,
    "clap": clap,
    "cowbell": cowbell,
    "zap": zap,
}


def synth_hit(voice: str, rng: np.random.Generator, sample_rate: int = 44_100, peak: float = 0.9) -> np.ndarray:
    """One hit of ``voice`` (:data:`VOICES`): ``float32[T]`` peaking at ``peak``, faded out at the end."""
    if voice not in VOICES:
        raise CorpusError(f"unknown voice {voice!r}; known: {', '.join(VOICES)}")
    x = np.asarray(VOICES[voice](rng, sample_rate), dtype=np.float64)
    fade = min(len(x), int(FADE_SECONDS * sample_rate))
    x[len(x) - fade :] *= np.linspace(1.0, 0.0, fade)
    top = float(np.abs(x).max())
    return (x * (peak / top if top > 0 else 0.0)).astype(np.float32)


@dataclass
class SynthReport:
    """What :func:`synth_hits` wrote: ``out``, ``files`` (hits in it), ``per_voice`` counts, ``seed``."""

    out: Path
    files: int = 0
    per_voice: dict[str, int] = field(default_factory=dict)
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        return data


def synth_hits(out: str | os.PathLike[str], count: int = 140, seed: int = 0, sample_rate: int = 44_100) -> SynthReport:
    """Write ``count`` hits, spread evenly over :data:`VOICES`, as ``out/<voice>/<voice>_<i>.wav``.

    Deterministic for a ``seed`` (each hit draws from its own generator), written atomically, with a
    ``LICENSE.txt`` (CC0) and ``SOURCES.json`` (settings, files) beside them. Files already there with
    the same settings are rewritten identically.

    Raises:
        CorpusError: ``count`` < 1, or ``out`` exists and is not a folder.
    """
    if count < 1:
        raise CorpusError(f"--count must be >= 1, got {count}")
    out_dir = Path(os.path.abspath(out))
    if out_dir.exists() and not out_dir.is_dir():
        raise CorpusError(f"--out {out_dir}: exists and is not a folder")
    report = SynthReport(out=out_dir, seed=seed)
    names = list(VOICES)
    files: list[str] = []
    for i in range(count):
        voice = names[i % len(names)]
        rng = np.random.default_rng([seed, i])
        rel = f"{voice}/{voice}_{i // len(names):03d}.wav"
        write_audio(out_dir / rel, synth_hit(voice, rng, sample_rate), sample_rate)
        files.append(rel)
        report.per_voice[voice] = report.per_voice.get(voice, 0) + 1
    for voice in report.per_voice:
        write_text(out_dir / voice / "LICENSE.txt", LICENCE_TEXT)
    report.files = len(files)
    write_json_atomic(
        out_dir / "SOURCES.json",
        {"format": SYNTH_FORMAT, "version": SYNTH_VERSION, "seed": seed, "sample_rate": sample_rate, "files": files},
    )
    return report
