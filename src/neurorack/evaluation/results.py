"""The evaluation report's data types and their stable JSON form (``neurorack-eval/1``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurorack.bench import BenchRow
from neurorack.evaluation.tonal import TONAL_ACTIVE_DB, TONAL_MAX_F0_SPREAD, TONAL_MAX_FLATNESS, TONAL_MIN_PERIODICITY
from neurorack.metrics.control import ControlSummary

SCHEMA = "neurorack-eval/1"

#: Descriptors in table order (loudness and brightness first, pitch last).
TABLE_DESCRIPTORS: tuple[str, ...] = ("rms", "centroid", "bandwidth", "rolloff", "flatness", "zcr", "f0")
#: Descriptors measured a second time with the scaled one named (``GeneratorResult.control_focused``).
FOCUS_DESCRIPTORS: tuple[str, ...] = ("centroid", "bandwidth", "rolloff")


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
        accuracy: absolute accuracy, ``{"reconstruction": {...}, "presets": {...}}``: per descriptor the
            median over sounds (the test sounds' own curves; the drawn presets) of the median
            ``|log2(measured / requested)|`` over active frames, in octaves (f0 on tonal requests only).
        presets_followed: drawn presets followed within tolerance (:mod:`neurorack.metrics.following`),
            and how many were drawn.
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
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)
    presets_followed: tuple[int, int] = (0, 0)

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
            "accuracy": {source: dict(values) for source, values in self.accuracy.items()},
            "presets_followed": list(self.presets_followed),
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
    split: str = "test"
    #: sounds of the split left out because a generator trained on them (the same audio in two libraries)
    left_out_trained: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "corpus": self.corpus,
            "split": self.split,
            "test_sounds_available": self.test_sounds_available,
            "left_out_trained": self.left_out_trained,
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
