"""Reading a note corpus in the NSynth layout, and SING's pitch-completion split.

NSynth (Engel et al. 2017): 4 s notes at 16 kHz, the key held for 3 s, MIDI pitch 21–108, velocities
{25, 50, 75, 100, 127}. A folder holds ``examples.json`` (an object keyed by ``note_str``, each value with
``note_str``, ``instrument_str``, ``pitch``, ``velocity``, ``sample_rate``, ``instrument_family_str``,
``instrument_source_str``, ``qualities_str``, ...) and ``audio/<note_str>.wav``.

The split (Défossez et al. 2018, §4.1): every (instrument, pitch) pair, with all its velocities, goes to one
split, 80 / 10 / 10, so the test notes are pitches the model never heard of instruments it knows. Which split
is decided by a hash of (seed, instrument, pitch): adding instruments never moves existing notes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurorack.audio_io import read_audio
from neurorack.errors import CorpusError

NSYNTH_SAMPLE_RATE = 16_000
NOTE_SECONDS = 4.0
HOLD_SECONDS = 3.0
VELOCITIES: tuple[int, ...] = (25, 50, 75, 100, 127)
FAMILIES: tuple[str, ...] = (
    "bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead", "vocal",
)  # fmt: skip
SOURCES: tuple[str, ...] = ("acoustic", "electronic", "synthetic")
EXAMPLES_JSON = "examples.json"
AUDIO_DIR = "audio"
SPLITS: tuple[str, ...] = ("train", "validation", "test")


@dataclass(frozen=True)
class Note:
    """One note of a corpus: its NSynth fields and its wav file."""

    note_str: str
    instrument_str: str
    pitch: int
    velocity: int
    family: str
    source: str
    qualities: tuple[str, ...]
    path: Path


def is_note_corpus(path: str | os.PathLike[str]) -> bool:
    """True for a folder with ``examples.json`` and ``audio/``."""
    p = Path(path)
    return (p / EXAMPLES_JSON).is_file() and (p / AUDIO_DIR).is_dir()


def split_of(instrument: str, pitch: int, seed: int = 0) -> str:
    """The split of an (instrument, pitch) pair: hash modulo 100, 80 / 10 / 10."""
    digest = hashlib.sha256(f"{seed}:{instrument}:{pitch}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    return "train" if bucket < 80 else ("validation" if bucket < 90 else "test")


class NoteCorpus:
    """A note corpus folder (see the module docstring). Open with :meth:`open`.

    Attributes:
        path: the folder.
        sample_rate: the notes' rate, Hz.
        notes: every note, sorted by ``note_str``.
        instruments: the instruments' names (``instrument_str``), sorted.
    """

    def __init__(self, path: Path, notes: list[Note], sample_rate: int) -> None:
        self.path = path
        self.notes = notes
        self.sample_rate = sample_rate
        self.instruments = sorted({n.instrument_str for n in notes})
        self._index = {name: i for i, name in enumerate(self.instruments)}

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> NoteCorpus:
        """Read ``examples.json`` and check every listed wav exists.

        Raises:
            CorpusError: not a note corpus, unreadable or malformed json, a note whose wav is missing, mixed rates.
        """
        p = Path(path)
        if not is_note_corpus(p):
            raise CorpusError(f"{p}: not a note corpus (no {EXAMPLES_JSON} and {AUDIO_DIR}/)")
        try:
            data = json.loads((p / EXAMPLES_JSON).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorpusError(f"{p / EXAMPLES_JSON}: unreadable ({type(exc).__name__})") from None
        if not isinstance(data, dict) or not data:
            raise CorpusError(f"{p / EXAMPLES_JSON}: not an object of notes keyed by note_str")
        notes: list[Note] = []
        rates: set[int] = set()
        for key, entry in data.items():
            try:
                note = Note(
                    note_str=str(entry.get("note_str", key)),
                    instrument_str=str(entry["instrument_str"]),
                    pitch=int(entry["pitch"]),
                    velocity=int(entry["velocity"]),
                    family=str(entry.get("instrument_family_str", "")),
                    source=str(entry.get("instrument_source_str", "")),
                    qualities=tuple(str(q) for q in entry.get("qualities_str", [])),
                    path=p / AUDIO_DIR / f"{entry.get('note_str', key)}.wav",
                )
                rates.add(int(entry.get("sample_rate", NSYNTH_SAMPLE_RATE)))
            except (AttributeError, KeyError, TypeError, ValueError):
                raise CorpusError(
                    f"{p / EXAMPLES_JSON}: note {key!r} lacks instrument_str, pitch or velocity"
                ) from None
            if not 0 <= note.pitch <= 127 or not 1 <= note.velocity <= 127:
                raise CorpusError(f"{p / EXAMPLES_JSON}: note {key!r} has pitch or velocity outside MIDI's range")
            if not note.path.is_file():
                raise CorpusError(f"{note.path}: listed in {EXAMPLES_JSON} but missing")
            notes.append(note)
        if len(rates) != 1:
            raise CorpusError(f"{p}: notes at several sample rates ({sorted(rates)})")
        return cls(p, sorted(notes, key=lambda n: n.note_str), rates.pop())

    def instrument_index(self, name: str) -> int:
        """Position of an instrument in :attr:`instruments`.

        Raises:
            CorpusError: an unknown name.
        """
        if name not in self._index:
            raise CorpusError(f"unknown instrument {name!r}; known: {', '.join(self.instruments[:5])} ...")
        return self._index[name]

    def pitch_range(self, instrument: str) -> tuple[int, int]:
        """Lowest and highest MIDI pitch of an instrument's notes."""
        self.instrument_index(instrument)
        pitches = [n.pitch for n in self.notes if n.instrument_str == instrument]
        return min(pitches), max(pitches)

    def read(self, note: Note) -> np.ndarray:
        """The note as mono float32 ``[round(sample_rate · NOTE_SECONDS)]`` (zero-padded or cut).

        Raises:
            AudioError: an unreadable wav (one line).
        """
        audio, _ = read_audio(note.path, self.sample_rate)
        n = round(self.sample_rate * NOTE_SECONDS)
        audio = audio[:n]
        return np.pad(audio, (0, n - len(audio))).astype(np.float32) if len(audio) < n else audio.astype(np.float32)

    def split(self, name: str, seed: int = 0) -> list[Note]:
        """The notes of split ``name`` (``train``, ``validation``, ``test`` or ``all``), pitch completion.

        An instrument with at least 3 pitches, none of them hashed to training, gets its middle pitch
        there, so no instrument is unseen.

        Raises:
            CorpusError: an unknown split name.
        """
        if name == "all":
            return list(self.notes)
        if name not in SPLITS:
            raise CorpusError(f"unknown split {name!r}; known: {', '.join(SPLITS)}, all")
        assigned: dict[tuple[str, int], str] = {}
        for instrument in self.instruments:
            pitches = sorted({n.pitch for n in self.notes if n.instrument_str == instrument})
            splits = {p: split_of(instrument, p, seed) for p in pitches}
            if len(pitches) >= 3 and "train" not in splits.values():
                splits[pitches[len(pitches) // 2]] = "train"
            assigned.update({(instrument, p): s for p, s in splits.items()})
        return [n for n in self.notes if assigned[(n.instrument_str, n.pitch)] == name]
