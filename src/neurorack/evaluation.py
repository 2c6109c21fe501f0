"""Evaluation of generators on a corpus's held-out sounds (SPEC §6; ``neurorack eval``).

Every generator — the model files given, plus the baselines ``silence``, ``dsp`` and ``nearest``
(built from the corpus's **train** split) — is measured on the corpus's **test** split:

* **MR-STFT** (:func:`~neurorack.metrics.mrstft.mrstft_distance`): each test sound is
  reconstructed from its own descriptor curves (``generate(curves, seed=seed + i)``) and
  compared with the real sound; median, mean and count over the sounds (lower is better;
  real one-shots: silence ≈ 3.7, another real sound ≈ 4.5).
* **Control response** per descriptor (:func:`~neurorack.metrics.control.control_response_many`,
  scales :data:`~neurorack.metrics.control.DEFAULT_SCALES`): median slope of log(measured) vs
  log(scale) and median Spearman ρ (both ideally 1) over the first ``control_limit`` test sounds.
  For ``f0`` only **tonal** sounds count (:func:`is_tonal`): pitch means nothing on a noise burst.
  Generators that take the moved-knob hint (``Generator.takes_focus``, e.g. ``ddsp-impact``) are
  measured a second time on :data:`FOCUS_DESCRIPTORS` with the scaled descriptor named
  (``control_focused``; the table's "…, knob named" row), as when a player turns that knob. Models
  whose file carries a descriptor prior read the moved knob from the bare curves in the plain
  measurement; they are measured once more with that guess off (``control_bare``; "…, prior off").
* **Speed** (:func:`~neurorack.metrics.speed.realtime_factor`): × real time for a 1 s synthetic
  impact on one CPU thread, batch 1, median of runs, as a :class:`~neurorack.bench.BenchRow`;
  plus parameter count and file size of model files.
* **Autoencoders** (``fader-ae``, SPEC §5) are measured by **transfer**: each test sound is encoded
  and decoded with its own curves (MR-STFT: reconstruction) or with one curve scaled (control
  response: attribute transfer), through :class:`~neurorack.models.transfer.SourceTransfer`; their speed is
  live streaming in blocks (:func:`~neurorack.metrics.speed.streaming_factor`), and their **latent
  leakage** is measured (:func:`~neurorack.metrics.leakage.latent_leakage`: R² of a fresh regressor
  from the latent to each controlled descriptor, fitted on :data:`LEAKAGE_TRAIN_SOUNDS` train sounds,
  scored on the MR-STFT sounds; lower is better). Compare ``fader-ae`` with its ablation
  ``fader-ae-cvae`` (no latent adversary) in one run.

**Sound choice** (deterministic): the test split sorted by hash; ``limit`` keeps its first N
(MR-STFT); the control sounds are the first ``control_limit`` of those, the f0 sounds the first
``control_limit`` tonal ones among them.

**Tonal** (:func:`is_tonal`), on the stored curves, over the frames whose rms lies within
:data:`TONAL_ACTIVE_DB` (30 dB) of the sound's peak (at least 3 frames): median flatness below
:data:`TONAL_MAX_FLATNESS` (0.05), a stable f0 — interquartile range of ``log2(f0)`` below
:data:`TONAL_MAX_F0_SPREAD` (0.25 octave, 3 semitones) — and a median f0 away from the edges of
the YIN range at every control scale (median f0 × 0.5 above 1.1 × fmin and median f0 × 2 below
0.9 × fmax: 110 Hz … 2.25 kHz with YIN's 50 Hz … 5 kHz): a pitch YIN cannot report cannot show
whether the generator followed it (a 60 Hz kick asked for 30 Hz measures 50 Hz, the floor, whatever
it plays). When the audio is at hand (``eval`` has it), the sound must also be periodic at its f0
(:func:`periodicity` ≥ :data:`TONAL_MIN_PERIODICITY`, 0.8): YIN always reports some f0, and a
hi-hat's can be steady. On the open drum corpus (44.1 kHz) flatness is below 0.01 for almost every
hit, so stability, range and periodicity decide: they keep toms, cowbells, bells, agogos, clicks
and tuned snares, and drop hats, cymbals, shakers, kicks and pitch-gliding hits.

JSON (``neurorack eval --json``, ``DIR/eval.json``; :meth:`EvalReport.to_dict`), stable, version
``schema``; NaN (no valid measurement, e.g. control of ``silence``) is written as ``null``::

    {
      "schema": "neurorack-eval/1",
      "settings": {
        "corpus": "/abs/path/to/corpus", "split": "test",
        "test_sounds_available": 96,          # sounds in the test split
        "limit": 20,                          # --limit (null: all)
        "control_limit": 8,                   # --control-limit
        "seed": 0,
        "scales": [0.5, 0.71, 1.0, 1.41, 2.0],
        "descriptors": ["rms", "centroid", "bandwidth", "rolloff", "flatness", "zcr", "f0"],
        "tonal": {"active_db": 30.0, "max_flatness": 0.05, "max_f0_spread_octaves": 0.25, "min_periodicity": 0.8},
        "speed": {"seconds": 1.0, "repeats": 5, "threads": 1},   # null with --no-speed
        "baselines": true
      },
      "machine": {...},                       # neurorack.bench.machine_info()
      "sounds": {"mrstft": [hash, ...], "control": [hash, ...], "f0": [hash, ...]},
      "generators": [
        {
          "name": "dsp",                      # table label (model files: the file's stem)
          "kind": "baseline",                 # "baseline" | "model"
          "class": "dsp",                     # baseline name or model class (e.g. "ddsp-impact")
          "source": "",                       # model file path ("" for baselines)
          "sample_rate": 44100, "hop_length": 512,
          "parameters": null,                 # trainable + fixed parameters (models), else null
          "file_bytes": null,                 # model file size, bytes (models), else null
          "note": "",
          "mrstft": {"median": 1.9, "mean": 2.0, "n": 20, "values": [...]},  # values: per sounds.mrstft
          "control": {
            "rms": {"slope": 0.98, "rho": 1.0, "n_sounds": 8, "n_valid": 8,
                    "response": [0.5, ...]},  # median over valid sounds of measured / measured at scale 1
            ...                               # all seven; f0 over sounds.f0
          },
          "speed": {...} | null,              # a neurorack-bench/1 row (ratio null)
          "control_focused": {"centroid": {...}, "bandwidth": {...}, "rolloff": {...}},
                                              # scaled descriptor named (Generator.focus), else {}
          "control_bare": {...},              # the same with the descriptor prior's guess off, else {}
          "transfer": false,                  # true: an autoencoder measured by transfer (fader-ae)
          "leakage": {"rms": 0.12, ...}       # autoencoders: latent leakage R² per control, else {}
        }, ...
      ]
    }
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neurorack.bench import BenchRow, machine_info
from neurorack.bench import _fmt_factor as _bench_factor
from neurorack.descriptors import DescriptorConfig, loud_frames
from neurorack.errors import NeurorackError
from neurorack.generators.base import Generator
from neurorack.generators.nearest import NearestSample
from neurorack.generators.registry import BASELINES, build_baseline
from neurorack.metrics.control import DEFAULT_SCALES, ControlSummary, control_response_many
from neurorack.metrics.leakage import latent_leakage
from neurorack.metrics.mrstft import mrstft_distance
from neurorack.metrics.speed import STREAM_BLOCK, limit_threads, realtime_factor, streaming_factor
from neurorack.models.base import TransferModel
from neurorack.models.generator import ModelGenerator
from neurorack.models.transfer import SourceTransfer

if TYPE_CHECKING:
    from neurorack.corpus import Corpus, Sound

SCHEMA = "neurorack-eval/1"

#: Descriptors in table order (loudness and brightness first, pitch last).
TABLE_DESCRIPTORS: tuple[str, ...] = ("rms", "centroid", "bandwidth", "rolloff", "flatness", "zcr", "f0")
#: Descriptors measured a second time with the scaled one named (``GeneratorResult.control_focused``).
FOCUS_DESCRIPTORS: tuple[str, ...] = ("centroid", "bandwidth", "rolloff")

#: Tonal sounds: frames within this many dB of the peak rms are examined.
TONAL_ACTIVE_DB = 30.0
#: Tonal sounds: largest median spectral flatness over those frames.
TONAL_MAX_FLATNESS = 0.05
#: Tonal sounds: largest interquartile range of ``log2(f0)`` over those frames, octaves.
TONAL_MAX_F0_SPREAD = 0.25
#: Tonal sounds: fewest frames examined.
TONAL_MIN_FRAMES = 3
#: Smallest median normalised autocorrelation at the f0 period (:func:`periodicity`) of a tonal sound.
TONAL_MIN_PERIODICITY = 0.8

#: Default number of test sounds for the control response.
DEFAULT_CONTROL_LIMIT = 20
#: Train sounds the fresh regressor of the latent-leakage measurement learns from (autoencoders).
LEAKAGE_TRAIN_SOUNDS = 200
#: Test sounds drawn as spectrogram comparisons in a report.
EXAMPLE_SOUNDS = 3

#: ``progress(task, done, total)``: ``task`` names the generator and stage; units are generate calls.
ProgressCallback = Callable[[str, int, int], None]


# ------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MrstftSummary:
    """MR-STFT distance of one generator over the test sounds (dimensionless, lower is better).

    Attributes:
        median: median over the sounds (NaN when ``n == 0``).
        mean: mean over the sounds (NaN when ``n == 0``).
        n: sounds measured.
        values: per-sound distances, in the order of :attr:`EvalReport.mrstft_sounds`.
    """

    median: float
    mean: float
    n: int
    values: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, "mean": self.mean, "n": self.n, "values": list(self.values)}


@dataclass(frozen=True)
class ControlEntry:
    """Control response of one generator for one descriptor (SPEC §6).

    Attributes:
        descriptor: descriptor name.
        slope: median slope of log(measured) vs log(scale) over valid sounds (ideal 1; NaN: none valid).
        rho: median Spearman ρ over valid sounds (ideal 1; NaN: none valid).
        n_sounds: sounds measured.
        n_valid: sounds whose output was measurable (not silent) at every scale.
        response: per scale, median over valid sounds of measured / measured at the scale
            closest to 1 (ideal: the scale itself; NaN when none is valid).
        summary: the full :class:`ControlSummary` (per-sound results), or None when no sound was measured.
    """

    descriptor: str
    slope: float
    rho: float
    n_sounds: int
    n_valid: int
    response: tuple[float, ...]
    summary: ControlSummary | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_summary(cls, summary: ControlSummary, scales: Sequence[float]) -> ControlEntry:
        """Condense a :class:`ControlSummary` measured at ``scales``."""
        ref = int(np.argmin(np.abs(np.log(np.asarray(scales, dtype=np.float64)))))
        valid = [r for r in summary.results if r.valid]
        if valid:
            rel = np.asarray([np.asarray(r.measured) / r.measured[ref] for r in valid])
            response = tuple(float(v) for v in np.median(rel, axis=0))
        else:
            response = tuple(math.nan for _ in scales)
        return cls(summary.descriptor, summary.slope, summary.rho, summary.n_sounds, summary.n_valid, response, summary)

    @classmethod
    def empty(cls, descriptor: str, scales: Sequence[float]) -> ControlEntry:
        """No sound to measure (e.g. no tonal sound for f0)."""
        return cls(descriptor, math.nan, math.nan, 0, 0, tuple(math.nan for _ in scales))

    def to_dict(self) -> dict[str, Any]:
        return {
            "slope": self.slope,
            "rho": self.rho,
            "n_sounds": self.n_sounds,
            "n_valid": self.n_valid,
            "response": list(self.response),
        }


@dataclass(frozen=True)
class GeneratorResult:
    """Everything measured for one generator (one table row).

    Attributes:
        name: table label (baseline name, or the model file's stem, made unique).
        kind: ``"baseline"`` or ``"model"``.
        cls: baseline name or model class name.
        source: model file path, ``""`` for baselines.
        sample_rate: output rate, Hz.
        hop_length: samples per descriptor frame.
        parameters: number of model parameters, None for baselines.
        file_bytes: model file size in bytes, None for baselines.
        note: free text (e.g. the number of sounds ``nearest`` plays back from).
        mrstft: reconstruction distance on the test sounds.
        control: per descriptor (in :data:`TABLE_DESCRIPTORS` order), the control response.
        speed: × real time on one thread, or None when speed was not measured.
        control_focused: for generators that take a hint of the moved descriptor
            (:meth:`~neurorack.generators.base.Generator.focus`), the control response of the locked
            brightness descriptors with the scaled one named, as when a player turns a knob
            (:data:`FOCUS_DESCRIPTORS`); empty for the others.
        control_bare: for models that read the moved knob from the curves (a descriptor prior:
            :class:`~neurorack.models.generator.ModelGenerator`), the same descriptors with that guess
            off, to show what it adds; empty for the others.
        transfer: an autoencoder measured by transfer (each test sound encoded, decoded with its own or
            scaled curves; speed: streaming in blocks), not by generation from the curves alone.
        leakage: for autoencoders, R² of a fresh regressor from latent frames to each controlled
            descriptor (:mod:`neurorack.metrics.leakage`; lower is better); empty for the others.
    """

    name: str
    kind: str
    cls: str
    source: str
    sample_rate: int
    hop_length: int
    parameters: int | None
    file_bytes: int | None
    note: str
    mrstft: MrstftSummary
    control: dict[str, ControlEntry]
    speed: BenchRow | None
    control_focused: dict[str, ControlEntry] = field(default_factory=dict)
    control_bare: dict[str, ControlEntry] = field(default_factory=dict)
    transfer: bool = False
    leakage: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "class": self.cls,
            "source": self.source,
            "sample_rate": self.sample_rate,
            "hop_length": self.hop_length,
            "parameters": self.parameters,
            "file_bytes": self.file_bytes,
            "note": self.note,
            "mrstft": self.mrstft.to_dict(),
            "control": {name: entry.to_dict() for name, entry in self.control.items()},
            "speed": self.speed.to_dict() if self.speed is not None else None,
            "control_focused": {name: entry.to_dict() for name, entry in self.control_focused.items()},
            "control_bare": {name: entry.to_dict() for name, entry in self.control_bare.items()},
            "transfer": self.transfer,
            "leakage": dict(self.leakage),
        }


@dataclass(frozen=True)
class Example:
    """A test sound and what every generator made of it (for spectrogram comparisons).

    Attributes:
        hash: the sound's corpus hash.
        label: the sound's label (source folder) and file name.
        reference: the real audio, ``float32[T]`` at ``sample_rate``.
        generated: generator name -> ``float32[T']`` reconstruction.
        sample_rate: Hz.
    """

    hash: str
    label: str
    reference: np.ndarray
    generated: dict[str, np.ndarray]
    sample_rate: int


@dataclass(frozen=True)
class EvalSettings:
    """What was evaluated and how (the ``settings`` of the JSON document)."""

    corpus: str
    test_sounds_available: int
    limit: int | None
    control_limit: int
    seed: int
    scales: tuple[float, ...]
    descriptors: tuple[str, ...]
    speed: bool
    speed_seconds: float
    speed_repeats: int
    baselines: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "corpus": self.corpus,
            "split": "test",
            "test_sounds_available": self.test_sounds_available,
            "limit": self.limit,
            "control_limit": self.control_limit,
            "seed": self.seed,
            "scales": list(self.scales),
            "descriptors": list(self.descriptors),
            "tonal": {
                "active_db": TONAL_ACTIVE_DB,
                "max_flatness": TONAL_MAX_FLATNESS,
                "max_f0_spread_octaves": TONAL_MAX_F0_SPREAD,
                "min_periodicity": TONAL_MIN_PERIODICITY,
            },
            "speed": (
                {"seconds": self.speed_seconds, "repeats": self.speed_repeats, "threads": 1} if self.speed else None
            ),
            "baselines": self.baselines,
        }


@dataclass(frozen=True)
class EvalReport:
    """A whole evaluation: settings, machine, the sounds used and one result per generator."""

    settings: EvalSettings
    machine: dict[str, Any]
    mrstft_sounds: tuple[str, ...]
    control_sounds: tuple[str, ...]
    f0_sounds: tuple[str, ...]
    results: tuple[GeneratorResult, ...]
    examples: tuple[Example, ...] = field(default=(), repr=False, compare=False)

    def result(self, name: str) -> GeneratorResult:
        """The result of the generator called ``name``.

        Raises:
            KeyError: no such generator.
        """
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document described in the module docstring (NaN becomes None)."""
        doc = {
            "schema": SCHEMA,
            "settings": self.settings.to_dict(),
            "machine": dict(self.machine),
            "sounds": {
                "mrstft": list(self.mrstft_sounds),
                "control": list(self.control_sounds),
                "f0": list(self.f0_sounds),
            },
            "generators": [r.to_dict() for r in self.results],
        }
        return _json_safe(doc)


def _json_safe(value: Any) -> Any:
    """Replace non-finite floats by None, recursively (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """A generator to evaluate with its table label and provenance."""

    name: str
    kind: str
    cls: str
    generator: Generator
    source: str = ""
    parameters: int | None = None
    file_bytes: int | None = None
    note: str = ""

    @property
    def autoencoder(self) -> TransferModel | None:
        """The model of a transfer-kind generator (an autoencoder, measured by transfer), None otherwise."""
        model = getattr(self.generator, "model", None)
        return model if isinstance(model, TransferModel) else None


def is_tonal(
    curves: np.ndarray,
    config: DescriptorConfig,
    scales: Sequence[float] = DEFAULT_SCALES,
    audio: np.ndarray | None = None,
) -> bool:
    """Whether a sound is pitched enough to measure the f0 control on (definition in the module docstring).

    Args:
        curves: the sound's ``float[frames, 7]`` descriptors.
        config: the analysis they were computed with (its YIN range ``fmin``/``fmax``, Hz).
        scales: the control scales: the scaled median f0 must stay inside the YIN range.
        audio: the sound itself (mono, at ``config.sample_rate``); when given, it must also be
            periodic at its f0 (:func:`periodicity` at least :data:`TONAL_MIN_PERIODICITY`).
    """
    d = np.asarray(curves, dtype=np.float64)
    mask = loud_frames(d, TONAL_ACTIVE_DB)  # none when silent
    if int(mask.sum()) < TONAL_MIN_FRAMES:
        return False
    if float(np.median(d[mask, 3])) >= TONAL_MAX_FLATNESS:
        return False
    f0 = np.maximum(d[mask, 6], 1e-3)
    median_f0 = float(np.median(f0))
    if not (1.1 * config.fmin < median_f0 * min(scales) and median_f0 * max(scales) < 0.9 * config.fmax):
        return False
    q75, q25 = np.percentile(np.log2(f0), [75, 25])
    if q75 - q25 >= TONAL_MAX_F0_SPREAD:
        return False
    return audio is None or periodicity(audio, d, config) >= TONAL_MIN_PERIODICITY


def periodicity(audio: np.ndarray, curves: np.ndarray, config: DescriptorConfig) -> float:
    """How periodic a sound is at its own f0: 1 for a steady tone, near 0 for noise.

    For every frame within :data:`TONAL_ACTIVE_DB` of the peak rms, the normalised
    autocorrelation ``Σ x[n] x[n+T] / sqrt(Σ x[n]² Σ x[n+T]²)`` of the frame (``frame_length``
    samples centred as in :mod:`neurorack.descriptors`, zero padded) at the lag ``T = sr / f0`` of
    its f0 curve; the median over those frames. On the drum test split, toms, cowbells, bells,
    agogos and tuned snares measure 0.84–1.00, hi-hats 0.54–0.72.

    Args:
        audio: ``float[samples]`` mono at ``config.sample_rate``.
        curves: its ``float[frames, 7]`` descriptors (rms column 0, f0 column 6 in Hz).
        config: the analysis settings.
    """
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    d = np.asarray(curves, dtype=np.float64)
    frame, hop = config.frame_length, config.hop_length
    padded = np.concatenate([np.zeros(frame // 2), x, np.zeros(frame + int(config.sample_rate / config.fmin))])
    values = []
    for i in np.flatnonzero(loud_frames(d, TONAL_ACTIVE_DB)):
        lag = round(config.sample_rate / max(float(d[i, 6]), config.fmin))
        a = padded[i * hop : i * hop + frame]
        b = padded[i * hop + lag : i * hop + lag + frame]
        norm = math.sqrt(float(a @ a) * float(b @ b))
        if norm > 0.0:
            values.append(float(a @ b) / norm)
    return float(np.median(values)) if values else 0.0


def select_test_sounds(corpus: Corpus, limit: int | None = None) -> list[Sound]:
    """The corpus's test sounds sorted by hash, the first ``limit`` (all when None).

    Raises:
        NeurorackError: the test split is empty, or ``limit < 1``.
    """
    if limit is not None and limit < 1:
        raise NeurorackError(f"--limit must be at least 1, got {limit}")
    sounds = corpus.sounds("test")
    if not sounds:
        raise NeurorackError(
            f"{corpus.path}: the corpus has no sound in its test split (about 10 % of the sounds, chosen by hash); "
            "add more sounds"
        )
    return sounds[:limit] if limit is not None else sounds


def check_compatible(generator: Generator, config: DescriptorConfig, what: str) -> None:
    """Raise unless ``generator`` renders curves analysed with ``config`` (sample rate, frame, hop).

    Raises:
        NeurorackError: one line naming ``what`` and both settings.
    """
    g = generator.descriptor_config
    if (g.sample_rate, g.hop_length, g.frame_length) != (config.sample_rate, config.hop_length, config.frame_length):
        raise NeurorackError(
            f"{what}: model works at {g.sample_rate} Hz, hop {g.hop_length}, frame {g.frame_length}, but the corpus "
            f"was analysed at {config.sample_rate} Hz, hop {config.hop_length}, frame {config.frame_length}; "
            "evaluate it on a corpus built with its settings"
        )


def _unique(name: str, taken: set[str]) -> str:
    label, i = name, 2
    while label in taken:
        label = f"{name}#{i}"
        i += 1
    taken.add(label)
    return label


def load_candidates(
    models: Sequence[str | os.PathLike[str]],
    corpus: Corpus,
    *,
    baselines: bool = True,
) -> list[Candidate]:
    """Load the model files (each with :func:`neurorack.model_file.load_model`) and build the baselines.

    Order: the models as given, then ``silence``, ``dsp``, ``nearest`` (train split). Model labels
    are the files' stems (bundled names as given; the run folder's name for a training run's
    ``<run>/model.safetensors``), suffixed ``#2``, ``#3`` … when repeated.

    Raises:
        NeurorackError: unreadable model file, a model whose sample rate / hop / frame differ from
            the corpus's analysis, no train sound for ``nearest``, or nothing to evaluate.
    """
    from neurorack.model_file import load_model, model_label

    taken: set[str] = set(BASELINES) if baselines else set()
    out: list[Candidate] = []
    for spec in models:
        loaded = load_model(spec)
        source = str(loaded.path) if loaded.path is not None else os.fspath(spec)
        check_compatible(loaded, corpus.config, source)
        path = loaded.path
        out.append(
            Candidate(
                name=_unique(model_label(loaded, spec), taken),
                kind="model",
                cls=loaded.model.name,
                generator=loaded,
                source=source,
                parameters=int(sum(p.numel() for p in loaded.model.parameters())),
                file_bytes=path.stat().st_size if path is not None else None,
            )
        )
    if baselines:
        for name in BASELINES:
            gen = build_baseline(name, corpus.config, corpus, split="train")
            note = f"{len(gen)} train sounds" if isinstance(gen, NearestSample) else ""
            out.append(Candidate(name=name, kind="baseline", cls=name, generator=gen, note=note))
    if not out:
        raise NeurorackError("nothing to evaluate: give model files, or drop --no-baselines")
    return out


# ------------------------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------------------------
def mrstft_scores(
    generator: Generator | Sequence[Generator],
    data: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    seed: int = 0,
    keep: int = 0,
    on_sound: Callable[[], None] | None = None,
) -> tuple[MrstftSummary, list[np.ndarray]]:
    """Reconstruct each sound from its curves and score it with the MR-STFT distance.

    Args:
        generator: the generator under test, or one per sound (e.g. :class:`~neurorack.models.transfer.SourceTransfer`).
        data: ``(audio float[T], curves float[frames, 7])`` per sound, at the generator's rate.
        seed: sound ``i`` is generated with ``seed + i``.
        keep: return the reconstructions of the first ``keep`` sounds.
        on_sound: called after each sound (progress).

    Returns:
        ``(summary, reconstructions)``.
    """
    values: list[float] = []
    kept: list[np.ndarray] = []
    for i, (audio, curves) in enumerate(data):
        gen = generator if isinstance(generator, Generator) else generator[i]
        generated = gen.generate(curves, seed=seed + i)
        values.append(mrstft_distance(generated, audio))
        if i < keep:
            kept.append(generated[: audio.shape[0]])
        if on_sound is not None:
            on_sound()
    arr = np.asarray(values, dtype=np.float64)
    summary = MrstftSummary(
        median=float(np.median(arr)) if arr.size else math.nan,
        mean=float(arr.mean()) if arr.size else math.nan,
        n=int(arr.size),
        values=tuple(float(v) for v in arr),
    )
    return summary, kept


def evaluate(
    candidates: Sequence[Candidate],
    corpus: Corpus,
    *,
    limit: int | None = None,
    control_limit: int = DEFAULT_CONTROL_LIMIT,
    seed: int = 0,
    scales: Sequence[float] = DEFAULT_SCALES,
    descriptors: Sequence[str] = TABLE_DESCRIPTORS,
    speed: bool = True,
    speed_seconds: float = 1.0,
    speed_repeats: int = 5,
    examples: int = 0,
    threads: int = 1,
    progress: ProgressCallback | None = None,
) -> EvalReport:
    """Measure every candidate on the corpus's test split (see the module docstring).

    Args:
        candidates: from :func:`load_candidates` (names must be unique).
        corpus: the corpus (its test split is evaluated; its analysis must match every generator's).
        limit: test sounds for MR-STFT (first by hash; None: all).
        control_limit: test sounds for the control response (0: skip it).
        seed: generation seed (sound ``i`` uses ``seed + i``).
        scales: control-response scale factors.
        descriptors: descriptors whose control is measured, table order.
        speed: measure × real time (1 thread, ``speed_seconds`` s of audio, median of ``speed_repeats``).
        examples: keep the audio of the first N sounds for spectrogram comparisons.
        threads: torch / BLAS threads for the quality measurements (1 by default: the many small
            analyses of the control response run up to 15× faster on one thread than on two
            contended ones; speed is always measured on one thread).
        progress: ``progress(task, done, total)``, units of generate calls.

    Raises:
        NeurorackError: bad settings, an empty test split, incompatible generators.
    """
    if control_limit < 0:
        raise NeurorackError(f"--control-limit must be 0 or more, got {control_limit}")
    if speed and (not speed_seconds > 0 or speed_repeats < 1):
        raise NeurorackError(f"need speed seconds > 0 and repeats >= 1, got {speed_seconds} and {speed_repeats}")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise NeurorackError(f"generator names must be unique, got {names}")
    if not candidates:
        raise NeurorackError("nothing to evaluate")
    for c in candidates:
        check_compatible(c.generator, corpus.config, c.source or c.name)
    scales = tuple(float(s) for s in scales)
    available = len(corpus.sounds("test"))
    sounds = select_test_sounds(corpus, limit)
    data = [(s.audio(), s.descriptors()) for s in sounds]
    control_idx = list(range(min(control_limit, len(sounds))))
    f0_idx = [i for i, (a, c) in enumerate(data) if is_tonal(c, corpus.config, scales, audio=a)][:control_limit]
    n_examples = min(max(0, examples), len(sounds))

    autoencoders = [c for c in candidates if c.autoencoder is not None]
    leakage_train: list[tuple[np.ndarray, np.ndarray]] = []
    if autoencoders:  # the fresh regressor of the leakage measurement learns on train sounds
        leakage_train = [(s.audio(), s.descriptors()) for s in corpus.sounds("train")[:LEAKAGE_TRAIN_SOUNDS]]

    n_scales = len(scales)
    control_units = sum(n_scales * (len(f0_idx) if d == "f0" else len(control_idx)) for d in descriptors)
    focus_descriptors = [d for d in FOCUS_DESCRIPTORS if d in descriptors] if control_idx else []
    focus_units = n_scales * len(control_idx) * len(focus_descriptors)  # generators that take the hint
    speed_units = speed_repeats + 2 if speed else 0
    total = len(data) + control_units + speed_units

    results: list[GeneratorResult] = []
    kept: dict[str, list[np.ndarray]] = {}
    with limit_threads(threads):
        for cand in candidates:
            gen = cand.generator
            done = 0
            # with a descriptor prior, the plain rows are the prior's guess: measure the bare curves too
            guesses = isinstance(gen, ModelGenerator) and gen.takes_focus and gen.prior is not None and gen.guess_focus
            gen_total = total + (focus_units if gen.takes_focus else 0) + (focus_units if guesses else 0)

            def tick(amount: int, stage: str, _name: str = cand.name, _total: int = gen_total) -> None:
                nonlocal done
                done += amount
                if progress is not None:
                    progress(f"{_name}: {stage}", done, _total)

            ae = cand.autoencoder
            # an autoencoder is measured by transfer: each test sound through it, with its own or scaled curves
            per_sound: list[Generator] | None = None
            if ae is not None:
                assert isinstance(gen, ModelGenerator)
                per_sound = [SourceTransfer(gen, audio) for audio, _ in data]
            tick(0, "MR-STFT")
            mr, kept[cand.name] = mrstft_scores(
                per_sound or gen, data, seed=seed, keep=n_examples, on_sound=lambda: tick(1, "MR-STFT")
            )
            control: dict[str, ControlEntry] = {}
            for d in descriptors:
                idx = f0_idx if d == "f0" else control_idx
                if not idx:
                    control[d] = ControlEntry.empty(d, scales)
                    continue
                tick(0, f"control {d}")
                which: Generator | list[Generator] = gen if per_sound is None else [per_sound[i] for i in idx]
                summary = control_response_many(which, [data[i][1] for i in idx], d, scales, seed=seed)
                control[d] = ControlEntry.from_summary(summary, scales)
                tick(n_scales * len(idx), f"control {d}")
            hint_curves = [data[i][1] for i in control_idx]
            hint_args = (gen, hint_curves, focus_descriptors, scales, seed, tick)
            focused = _hint_control(*hint_args, focused=True, stage="knob named") if gen.takes_focus else {}
            bare: dict[str, ControlEntry] = {}
            if guesses:
                assert isinstance(gen, ModelGenerator)
                gen.guess_focus = False
                try:
                    bare = _hint_control(*hint_args, focused=False, stage="bare curves")
                finally:
                    gen.guess_focus = True
            leakage: dict[str, float] = {}
            if ae is not None:
                tick(0, "latent leakage")
                leakage = latent_leakage(ae, leakage_train, data, seed=seed).r2
            row: BenchRow | None = None
            if speed:
                tick(0, "speed")
                if ae is not None:  # live transfer: the streaming path, block by block
                    result = streaming_factor(ae, speed_seconds, speed_repeats, threads=1)
                    note = f"streaming, {STREAM_BLOCK}-sample blocks"
                else:
                    result = realtime_factor(gen, speed_seconds, speed_repeats, threads=1, seed=seed)
                    note = cand.note
                row = dataclasses.replace(BenchRow.from_speed(result, cand.kind, gen.sample_rate, note), name=cand.name)
                tick(speed_units, "speed")
            tick(0, "done")
            results.append(
                GeneratorResult(
                    name=cand.name,
                    kind=cand.kind,
                    cls=cand.cls,
                    source=cand.source,
                    sample_rate=gen.sample_rate,
                    hop_length=gen.hop_length,
                    parameters=cand.parameters,
                    file_bytes=cand.file_bytes,
                    note=cand.note,
                    mrstft=mr,
                    control=control,
                    speed=row,
                    control_focused=focused,
                    control_bare=bare,
                    transfer=ae is not None,
                    leakage=leakage,
                )
            )

    example_list = tuple(
        Example(
            hash=sounds[i].hash,
            label=f"{sounds[i].label}/{Path(sounds[i].source).name}",
            reference=data[i][0],
            generated={name: audio[i] for name, audio in kept.items()},
            sample_rate=corpus.config.sample_rate,
        )
        for i in range(n_examples)
    )
    settings = EvalSettings(
        corpus=str(Path(corpus.path).resolve()),
        test_sounds_available=available,
        limit=limit,
        control_limit=control_limit,
        seed=seed,
        scales=scales,
        descriptors=tuple(descriptors),
        speed=speed,
        speed_seconds=speed_seconds,
        speed_repeats=speed_repeats,
        baselines=any(c.kind == "baseline" for c in candidates),
    )
    return EvalReport(
        settings=settings,
        machine=machine_info(),
        mrstft_sounds=tuple(s.hash for s in sounds),
        control_sounds=tuple(sounds[i].hash for i in control_idx),
        f0_sounds=tuple(sounds[i].hash for i in f0_idx),
        results=tuple(results),
        examples=example_list,
    )


# ------------------------------------------------------------------------------------------------
# Tables and reports
# ------------------------------------------------------------------------------------------------
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


def _hint_control(
    gen: Generator,
    curves: list[np.ndarray],
    descriptors: Sequence[str],
    scales: Sequence[float],
    seed: int,
    tick: Callable[[int, str], None],
    *,
    focused: bool,
    stage: str,
) -> dict[str, ControlEntry]:
    """Control response of ``descriptors`` on ``curves`` with the moved knob named (``focused``) or not, for
    the extra "…, knob named" / "…, prior off" rows; progress as ``control D, STAGE``."""
    out: dict[str, ControlEntry] = {}
    for d in descriptors:
        tick(0, f"control {d}, {stage}")
        summary = control_response_many(gen, curves, d, scales, seed=seed, focused=focused)
        out[d] = ControlEntry.from_summary(summary, scales)
        tick(len(scales) * len(curves), f"control {d}, {stage}")
    return out


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


def _control_cell(e: ControlEntry | None) -> str:
    if e is None or e.n_sounds == 0:
        return "—"
    cell = f"{_fmt(e.slope)} / {_fmt(e.rho)}"
    if 0 < e.n_valid < e.n_sounds:
        cell += f" [{e.n_valid}/{e.n_sounds}]"
    return cell


def _title(report: EvalReport) -> str:
    s = report.settings
    return (
        f"eval — {Path(s.corpus).name}: MR-STFT on {len(report.mrstft_sounds)} of {s.test_sounds_available} test "
        f"sounds, control on {len(report.control_sounds)} (f0: {len(report.f0_sounds)} tonal), seed {s.seed}"
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
    leak_header, leak_rows = leakage_rows(report)
    if leak_rows:
        out += ["## Latent leakage (R² of a fresh regressor, held-out sounds; lower is better)", ""]
        out += [line(leak_header), "|---|" + "---:|" * (len(leak_header) - 1)]
        out += [line(cells) for cells in leak_rows] + [""]
    if command:
        out += ["Produced by:", "", "```sh", command, "```", ""]
    return "\n".join(out)


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
