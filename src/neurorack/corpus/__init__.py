"""Training corpora: building them from folders of one-shots, reading them back, fetching open drums.

Read API::

    from neurorack.corpus import Corpus
    corpus = Corpus.open("data/drums")
    for sound in corpus.sounds("train"):
        audio = sound.audio()              # float32 [T] at corpus.config.sample_rate
        curves = sound.descriptors()       # float32 [frames, 7]

Building is :func:`build_corpus` (``neurorack corpus build``), fetching the Debian drum
samples :func:`fetch_drums` (``neurorack corpus fetch drums``).
"""

from neurorack.corpus.build import build_corpus
from neurorack.corpus.fetch import FetchReport, fetch_drums
from neurorack.corpus.manifest import SPLITS, Corpus, Sound, split_for
from neurorack.corpus.report import BuildReport

__all__ = [
    "SPLITS",
    "BuildReport",
    "Corpus",
    "FetchReport",
    "Sound",
    "build_corpus",
    "fetch_drums",
    "split_for",
]
