"""The generators an evaluation compares: model files and baselines, checked against the corpus."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from neurorack.descriptors import DescriptorConfig
from neurorack.errors import NeurorackError
from neurorack.generators.base import Generator
from neurorack.generators.nearest import NearestSample
from neurorack.generators.registry import BASELINES, build_baseline
from neurorack.models.base import TransferModel

if TYPE_CHECKING:
    from neurorack.corpus import Corpus


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
    #: short ids of the sounds it trained on (:func:`neurorack.corpus.manifest.sound_id`), left out of evaluation
    trained_on: frozenset[str] = frozenset()

    @property
    def autoencoder(self) -> TransferModel | None:
        """The model of a transfer-kind generator (an autoencoder, measured by transfer), None otherwise."""
        model = getattr(self.generator, "model", None)
        return model if isinstance(model, TransferModel) else None


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
    nearest: bool = True,
) -> list[Candidate]:
    """Load the model files (each with :func:`neurorack.model_file.load_model`) and build the baselines.

    Order: the models as given, then ``silence``, ``dsp``, ``nearest`` (train split; left out with
    ``nearest=False``, for a corpus evaluated whole). Model labels
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
                trained_on=loaded.trained_on,
            )
        )
    if baselines:
        for name in BASELINES:
            if name == "nearest" and not nearest:
                continue
            gen = build_baseline(name, corpus.config, corpus, split="train")
            note = f"{len(gen)} train sounds" if isinstance(gen, NearestSample) else ""
            out.append(Candidate(name=name, kind="baseline", cls=name, generator=gen, note=note))
    if not out:
        raise NeurorackError("nothing to evaluate: give model files, or drop --no-baselines")
    return out
