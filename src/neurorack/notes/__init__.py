"""Note corpora in the NSynth layout (``examples.json`` + ``audio/<note_str>.wav``): what the note models train on.

:mod:`.nsynth` reads one (ours or a real NSynth download) and makes SING's pitch-completion split.
"""

from neurorack.notes.nsynth import Note, NoteCorpus, is_note_corpus

__all__ = ["Note", "NoteCorpus", "is_note_corpus"]
