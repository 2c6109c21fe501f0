"""One self-describing safetensors file per note model (SING): what ``nr.load_model("notes")`` returns.

Layout: tensors ``model.<name>`` (the weights used to generate: the encoder, which only pre-trains the decoder,
is left out), and under the ``neurorack`` metadata key a JSON object::

    format: "neurorack-note-model", version, class, kwargs (the model's keyword arguments),
    sample_rate, note_seconds, instruments: [{name, family, source, pitches: [low, high], velocities}],
    training: {corpus, stages, split, trained_on (note_str of train + validation), ...},
    neurorack_version, created, sha256 (over the tensors)

Loading never runs code from the file (safetensors + JSON) and checks the checksum.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from neurorack.atomic import atomic_path
from neurorack.errors import ModelFileError, NeurorackError
from neurorack.model_file import (
    METADATA_KEY,
    MODEL_PREFIX,
    check_version_and_digest,
    model_file_path,
    read_safetensors_metadata,
    resolve_model_path,
    tensor_digest,
)
from neurorack.models.base import NoteModel
from neurorack.models.registry import build_note_model, note_model_names

NOTE_FORMAT = "neurorack-note-model"
NOTE_FORMAT_VERSION = 1
#: Parameters left out of a note model file (used only in training).
TRAINING_ONLY_PREFIXES: tuple[str, ...] = ("encoder.",)
#: Fade applied where a note is cut short, seconds.
CUT_FADE_SECONDS = 0.01


@dataclass(frozen=True)
class InstrumentInfo:
    """An instrument a note model knows: its name, NSynth family and source, and the pitches it trained on."""

    name: str
    family: str
    source: str
    low: int
    high: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "source": self.source, "pitches": [self.low, self.high]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstrumentInfo:
        low, high = data["pitches"]
        return cls(str(data["name"]), str(data.get("family", "")), str(data.get("source", "")), int(low), int(high))


def export_note_model(
    model: NoteModel,
    path: str | os.PathLike[str],
    instruments: list[InstrumentInfo],
    training: Mapping[str, Any] | None = None,
    *,
    half: bool = False,
) -> Path:
    """Write ``model`` (weights used for generation) and its instruments to one file, atomically.

    ``half`` stores the floating-point weights as float16 (half the file; loading computes in float32 again).

    Raises:
        NeurorackError: an unregistered class, instruments that do not match the model, an unwritable path.
    """
    if model.name not in note_model_names():
        raise NeurorackError(f"note model class {model.name!r} is not registered")
    if len(instruments) != model.n_instruments:
        raise NeurorackError(f"{len(instruments)} instruments for a model of {model.n_instruments}")
    tensors = {
        MODEL_PREFIX + key: value.detach().cpu().contiguous().clone()
        for key, value in model.state_dict().items()
        if not key.startswith(TRAINING_ONLY_PREFIXES)
    }
    if half:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    from neurorack import __version__

    meta = {
        "format": NOTE_FORMAT,
        "version": NOTE_FORMAT_VERSION,
        "class": model.name,
        "kwargs": dict(model.config),
        "sample_rate": model.sample_rate,
        "note_seconds": model.note_seconds,
        "instruments": [i.to_dict() for i in instruments],
        "training": dict(training or {}),
        "storage": "float16" if half else "float32",
        "neurorack_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "sha256": tensor_digest(tensors),
    }
    p = model_file_path(path)
    try:
        text = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise NeurorackError(f"note model metadata is not plain JSON: {exc}") from None
    try:
        with atomic_path(p) as tmp:
            save_file(tensors, str(tmp), metadata={METADATA_KEY: text})
    except OSError as exc:
        raise NeurorackError(f"cannot write {p}: {exc.strerror or exc}") from None
    return p


def is_note_model_file(path: Path) -> bool:
    """True when ``path`` is a readable neurorack file of the note-model format."""
    try:
        meta, _ = read_safetensors_metadata(path)
    except ModelFileError:
        return False
    return meta.get("format") == NOTE_FORMAT


class LoadedNoteModel:
    """A note model read from a file: ``note(instrument, pitch, velocity, seconds) -> float32[T]``.

    Attributes:
        model: the rebuilt :class:`~neurorack.models.base.NoteModel` (eval mode, CPU).
        metadata: the file's JSON metadata.
        path: the file it came from.
    """

    def __init__(self, model: NoteModel, metadata: dict[str, Any], path: Path | None = None) -> None:
        self.model = model
        self.metadata = metadata
        self.path = path
        self.instrument_info = [InstrumentInfo.from_dict(d) for d in metadata["instruments"]]
        self._index = {info.name: i for i, info in enumerate(self.instrument_info)}

    @property
    def instruments(self) -> list[str]:
        """Instrument names, in the model's order (the index :meth:`note` also takes)."""
        return [i.name for i in self.instrument_info]

    @property
    def sample_rate(self) -> int:
        return int(self.model.sample_rate)

    @property
    def note_seconds(self) -> float:
        return float(self.model.note_seconds)

    def index(self, instrument: str | int) -> int:
        """An instrument's index from its name or index.

        Raises:
            NeurorackError: unknown name or index out of range.
        """
        if isinstance(instrument, bool) or not isinstance(instrument, (int, str, np.integer)):
            raise NeurorackError(f"an instrument is a name or an index, got {instrument!r}")
        if isinstance(instrument, str):
            if instrument not in self._index:
                known = ", ".join(self.instruments[:6]) + (" ..." if len(self.instruments) > 6 else "")
                raise NeurorackError(f"unknown instrument {instrument!r}; this model has {known}")
            return self._index[instrument]
        i = int(instrument)
        if not 0 <= i < len(self.instrument_info):
            raise NeurorackError(f"instrument index {i} out of range 0..{len(self.instrument_info) - 1}")
        return i

    def weights(self, instrument: str | int | Mapping[str | int, float]) -> np.ndarray:
        """Mixing weights ``float32[n_instruments]`` (summing to 1) of an instrument or a morph ``{name: weight}``.

        Raises:
            NeurorackError: unknown instruments, negative weights, or weights summing to 0.
        """
        w = np.zeros(len(self.instrument_info), dtype=np.float32)
        if isinstance(instrument, Mapping):
            for key, value in instrument.items():
                if not np.isfinite(value) or value < 0:
                    raise NeurorackError(f"morph weights must be finite and >= 0, got {key!r}: {value}")
                w[self.index(key)] += float(value)
        else:
            w[self.index(instrument)] = 1.0
        total = float(w.sum())
        if total <= 0:
            raise NeurorackError("morph weights sum to 0")
        return w / total

    def pitch_range(self, instrument: str | int | Mapping[str | int, float]) -> tuple[int, int]:
        """MIDI pitches the instrument (or every instrument of a morph) trained on, ``(low, high)``."""
        w = self.weights(instrument)
        chosen = [self.instrument_info[i] for i in np.flatnonzero(w > 0)]
        return max(i.low for i in chosen), min(i.high for i in chosen)

    def _checked(
        self, instrument: str | int | Mapping[str | int, float], pitch: int, velocity: float
    ) -> tuple[np.ndarray, int, float]:
        """The mixing weights, pitch and velocity of a note, checked (one-line errors)."""
        w = self.weights(instrument)
        if isinstance(pitch, bool) or not isinstance(pitch, (int, np.integer)):
            raise NeurorackError(f"pitch must be a MIDI note number (int), got {pitch!r}")
        low, high = self.pitch_range(instrument)
        if not low <= int(pitch) <= high:
            raise NeurorackError(f"pitch {pitch} is outside the range this instrument was trained on ({low}-{high})")
        if not np.isfinite(velocity) or not 1 <= velocity <= 127:
            raise NeurorackError(f"velocity must lie in 1-127, got {velocity}")
        return w, int(pitch), float(velocity)

    def note(
        self,
        instrument: str | int | Mapping[str | int, float],
        pitch: int,
        velocity: float = 100,
        seconds: float | None = None,
    ) -> np.ndarray:
        """One note, ``float32[round(seconds · sample_rate)]`` at :attr:`sample_rate`.

        Args:
            instrument: a name or index of :attr:`instruments`, or ``{name: weight}`` for a morph between
                instruments (their embeddings are mixed, not their audio).
            pitch: MIDI pitch, within the instrument's trained range (:meth:`pitch_range`).
            velocity: MIDI velocity 1–127 (between the five trained ones, embeddings are interpolated).
            seconds: length of the result (default: the model's note, 4 s); shorter is cut with a 10 ms fade,
                longer is padded with silence (the model's note is held for 3 s and released).

        Raises:
            NeurorackError: an unknown instrument, a pitch outside its range, a velocity outside 1–127, a length
                that is not positive.
        """
        w, pitch, velocity = self._checked(instrument, pitch, velocity)
        seconds = self.note_seconds if seconds is None else float(seconds)
        if not np.isfinite(seconds) or seconds <= 0:
            raise NeurorackError(f"seconds must be positive, got {seconds}")
        with torch.inference_mode():
            vector = self.model.instrument_vector(torch.from_numpy(w).unsqueeze(0))
            audio = self.model.generate(vector, torch.tensor([int(pitch)]), torch.tensor([float(velocity)]))
        out = audio[0].numpy().astype(np.float32)
        n = round(seconds * self.sample_rate)
        if n <= len(out):
            out = out[:n].copy()
            fade = min(n, round(CUT_FADE_SECONDS * self.sample_rate))
            if fade and n < len(audio[0]):
                out[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
            return out
        return np.pad(out, (0, n - len(out)))

    def stream(
        self,
        instrument: str | int | Mapping[str | int, float],
        pitch: int,
        velocity: float = 100,
        sample_rate: int | None = None,
        low_latency: bool = False,
    ) -> NoteStream:
        """A note generated piece by piece (:class:`NoteStream`), at ``sample_rate`` (default the model's);
        ``low_latency`` resamples with soxr's ``LQ`` (sound from the first frames on, the top of the band
        dulled: see :class:`~neurorack.audio_io.StreamResampler`) instead of ``HQ``.

        Raises:
            NeurorackError: as :meth:`note`, or a rate that is not positive.
        """
        w, pitch, velocity = self._checked(instrument, pitch, velocity)
        rate = self.sample_rate if sample_rate is None else int(sample_rate)
        if rate <= 0:
            raise NeurorackError(f"sample_rate must be positive, got {sample_rate}")
        return NoteStream(self.model, w, pitch, velocity, rate, quality="LQ" if low_latency else "HQ")

    def __repr__(self) -> str:
        return f"LoadedNoteModel({self.model.name}, {len(self.instruments)} instruments, {self.sample_rate} Hz)"


class NoteStream:
    """One note generated a few frames at a time (what a played note-on starts from).

    ``read(frames)`` returns the next samples (``float32``, at :attr:`sample_rate`) that ``frames`` more model
    frames finish; nothing comes out until :attr:`latency_frames` frames have been generated. The pieces
    concatenate to :meth:`LoadedNoteModel.note` (resampled when the rate differs).
    """

    def __init__(
        self,
        model: NoteModel,
        weights: np.ndarray,
        pitch: int,
        velocity: float,
        sample_rate: int,
        quality: str = "HQ",
    ) -> None:
        from neurorack.audio_io import StreamResampler

        self.model = model
        self.sample_rate = sample_rate
        with torch.inference_mode():
            vector = model.instrument_vector(torch.from_numpy(weights).unsqueeze(0))
            self._state = model.stream_state(vector, torch.tensor([pitch]), torch.tensor([velocity]))
        same_rate = sample_rate == model.sample_rate
        self._resampler = None if same_rate else StreamResampler(model.sample_rate, sample_rate, quality)

    @property
    def latency_frames(self) -> int:
        return int(self.model.latency_frames)

    def set_weights(self, weights: np.ndarray) -> None:
        """Mixing weights ``float32[n_instruments]`` (summing to 1) for the rest of the note: a live morph."""
        with torch.inference_mode():
            vector = self.model.instrument_vector(torch.from_numpy(np.asarray(weights, np.float32)).unsqueeze(0))
            self._state = self.model.restream(self._state, vector)

    @property
    def done(self) -> bool:
        """True once the whole note has been read."""
        return bool(self._state.done)

    def read(self, frames: int = 1) -> np.ndarray:
        """The samples ``frames`` more frames finish, ``float32[n]`` (empty once :attr:`done`)."""
        if self.done:
            return np.zeros(0, dtype=np.float32)
        with torch.inference_mode():
            audio, self._state = self.model.stream(self._state, frames)
        out = audio[0].numpy().astype(np.float32)
        if self._resampler is not None:
            out = self._resampler.process(out, last=self.done)
        return out


def load_note_model(name_or_path: str | os.PathLike[str]) -> LoadedNoteModel:
    """Read a note model file (a path, or a bundled name such as ``notes``).

    Raises:
        ModelFileError: missing, foreign, corrupt or too new a file, or one this version cannot rebuild.
    """
    path = resolve_model_path(name_or_path)
    meta, tensors = read_safetensors_metadata(path)
    if meta.get("format") != NOTE_FORMAT:
        raise ModelFileError(f"{path}: not a note model file (format is not {NOTE_FORMAT!r})")
    check_version_and_digest(path, meta, tensors, NOTE_FORMAT_VERSION)
    for field in ("class", "kwargs", "instruments"):
        if field not in meta:
            raise ModelFileError(f"{path}: corrupt note model file (metadata lacks {field!r})")
    cls_name, kwargs = meta["class"], meta["kwargs"]
    if cls_name not in note_model_names():
        raise ModelFileError(f"{path}: note model class {cls_name!r} is unknown to this neurorack")
    try:
        model = build_note_model(cls_name, **kwargs)
        infos = [InstrumentInfo.from_dict(d) for d in meta["instruments"]]
    except (TypeError, ValueError, KeyError, NeurorackError) as exc:
        raise ModelFileError(f"{path}: cannot rebuild {cls_name!r} from its stored settings ({exc})") from None
    if len(infos) != model.n_instruments:
        raise ModelFileError(f"{path}: corrupt note model file ({len(infos)} instruments for {model.n_instruments})")
    state = {
        k[len(MODEL_PREFIX) :]: v.float() if v.is_floating_point() else v
        for k, v in tensors.items()
        if k.startswith(MODEL_PREFIX)
    }
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(TRAINING_ONLY_PREFIXES)]
    if missing or unexpected:
        raise ModelFileError(f"{path}: weights do not fit {cls_name!r} ({(missing or unexpected)[0]})")
    model.eval()
    return LoadedNoteModel(model, meta, path)


def export_note_run(run: Path, out: Path | None = None, checkpoint: Path | None = None, *, half: bool = False) -> Path:
    """Export a note run's final state (the best checkpoint of its last trained stage) to ``out``.

    Raises:
        NeurorackError: not a note run, or no checkpoint.
    """
    from neurorack.notes.nsynth import NoteCorpus
    from neurorack.training.checkpoints import check_checkpoint
    from neurorack.training.note_run import _best_or_last, _read_run
    from neurorack.training.sing_module import STAGES

    data = _read_run(run)
    if checkpoint is None:
        for stage in reversed(STAGES):
            checkpoint = _best_or_last(run / stage)
            if checkpoint is not None:
                break
    if checkpoint is None:
        raise NeurorackError(f"{run}: no checkpoint to export (train first)")
    model = build_note_model(str(data["model"]), **data["model_config"])
    state = check_checkpoint(checkpoint)["state_dict"]
    model.load_state_dict({k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")})
    corpus = NoteCorpus.open(data["corpus"])
    infos = []
    seen = corpus.split("train") + corpus.split("validation")
    for name in data["instruments"]:
        notes = [n for n in seen if n.instrument_str == name] or [n for n in corpus.notes if n.instrument_str == name]
        pitches = [n.pitch for n in notes] or [0, 127]
        first = notes[0] if notes else None
        infos.append(
            InstrumentInfo(
                name, first.family if first else "", first.source if first else "", min(pitches), max(pitches)
            )
        )
    training = {
        "corpus": data["corpus"],
        "stages": data.get("stages", {}),
        "settings": data.get("settings", {}),
        "checkpoint": str(checkpoint),
        "split": "pitch completion: (instrument, pitch) pairs, 80/10/10",
        "trained_on": sorted(n.note_str for n in seen),
    }
    return export_note_model(model, out or run / "model.safetensors", infos, training, half=half)
