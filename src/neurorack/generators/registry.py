"""Baselines by name (SPEC §6: silence, a classical DSP synth, nearest-sample playback).

``eval`` and ``bench`` build them here and then treat them exactly like trained models
(every one is a :class:`~neurorack.generators.base.Generator`). The faithful ``sinc-nsf``
is a model, loaded with the models, not a baseline built here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neurorack.descriptors import DescriptorConfig
from neurorack.errors import NeurorackError
from neurorack.generators.base import Generator
from neurorack.generators.dsp_synth import DSPSynth
from neurorack.generators.nearest import NearestSample
from neurorack.generators.silence import Silence

if TYPE_CHECKING:
    from neurorack.corpus import Corpus

#: Baseline names, in the order tables list them.
BASELINES: tuple[str, ...] = ("silence", "dsp", "nearest")

#: One-line description of each baseline (for tables and ``--help``).
BASELINE_DESCRIPTIONS: dict[str, str] = {
    "silence": "zeros (the floor every model must beat)",
    "dsp": "harmonic-plus-noise spectral-modelling synth driven by the descriptors",
    "nearest": "plays the training sound with the closest descriptor curves",
}


def build_baseline(
    name: str,
    config: DescriptorConfig,
    corpus: Corpus | None = None,
    *,
    split: str | None = "train",
) -> Generator:
    """Build the baseline called ``name`` for curves analysed with ``config``.

    Args:
        name: one of :data:`BASELINES` (case-insensitive).
        config: descriptor analysis (sample rate, frame, hop) of the curves it will receive.
        corpus: the training corpus; required by ``nearest``, ignored by the others.
        split: corpus split ``nearest`` may play back (``"train"``; never the evaluation split).

    Raises:
        NeurorackError: unknown name, ``nearest`` without a corpus, or a corpus whose
            analysis differs from ``config``.
    """
    key = name.strip().lower()
    if key == "silence":
        return Silence(config)
    if key == "dsp":
        return DSPSynth(config)
    if key == "nearest":
        if corpus is None:
            raise NeurorackError("the 'nearest' baseline needs a corpus to play back from (give --corpus DIR)")
        if corpus.config != config:
            raise NeurorackError(
                f"the corpus was analysed with {corpus.config.to_dict()}, the curves with {config.to_dict()}"
            )
        return NearestSample.from_corpus(corpus, split=split)
    raise NeurorackError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
