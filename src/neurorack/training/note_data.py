"""Datasets of notes for the note models: a :class:`~neurorack.notes.nsynth.NoteCorpus` split as tensors.

Items: ``{"audio" float32[N], "instrument" int64, "pitch" int64, "velocity" float32}`` (N = the model's note
length; shorter files are zero-padded, longer ones cut), plus ``"embeddings" float32[D, frames]`` when a table
of precomputed embeddings is attached (SING's ``sequence`` stage).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from neurorack.notes.nsynth import Note, NoteCorpus


class NoteDataset(Dataset[dict[str, Tensor]]):
    """``notes`` of ``corpus``, instruments numbered by their position in ``instruments``.

    Args:
        corpus: the note corpus the notes are read from.
        notes: which notes (e.g. ``corpus.split("train")``).
        instruments: the model's instrument list (``instrument_str`` names); each note's must be in it.
        samples: note length N in samples.
        embeddings: optional ``Tensor[len(notes), D, frames]`` aligned with ``notes``.

    Raises:
        ValueError: a note of an instrument not in ``instruments``, or embeddings of another length.
    """

    def __init__(
        self,
        corpus: NoteCorpus,
        notes: Sequence[Note],
        instruments: Sequence[str],
        samples: int,
        embeddings: Tensor | None = None,
    ) -> None:
        index = {name: i for i, name in enumerate(instruments)}
        missing = sorted({n.instrument_str for n in notes} - set(index))
        if missing:
            raise ValueError(f"notes of instruments the model does not know: {', '.join(missing[:5])}")
        if embeddings is not None and embeddings.shape[0] != len(notes):
            raise ValueError(f"{embeddings.shape[0]} embeddings for {len(notes)} notes")
        self.corpus = corpus
        self.notes = list(notes)
        self.instrument_ids = [index[n.instrument_str] for n in self.notes]
        self.samples = samples
        self.embeddings = embeddings

    def __len__(self) -> int:
        return len(self.notes)

    def audio(self, i: int) -> np.ndarray:
        """The note ``i`` as float32 ``[samples]``."""
        audio = self.corpus.read(self.notes[i])
        if len(audio) >= self.samples:
            return np.ascontiguousarray(audio[: self.samples], dtype=np.float32)
        return np.pad(audio, (0, self.samples - len(audio))).astype(np.float32)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        note = self.notes[i]
        item = {
            "audio": torch.from_numpy(self.audio(i)),
            "instrument": torch.tensor(self.instrument_ids[i], dtype=torch.long),
            "pitch": torch.tensor(note.pitch, dtype=torch.long),
            "velocity": torch.tensor(float(note.velocity), dtype=torch.float32),
        }
        if self.embeddings is not None:
            item["embeddings"] = self.embeddings[i].float()
        return item
