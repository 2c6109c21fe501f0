"""Training data: aligned (descriptor curves, audio) crops of corpus sounds, and normalisation statistics.

Alignment follows :func:`neurorack.describe`: descriptor frame ``f`` of a sound is centred on
sample ``f * hop``. A crop of ``F`` frames starting at frame ``s`` is the audio
``[s * hop, (s + F) * hop)`` (zero-padded past the end of the sound) with the descriptor rows
``[s, s + F)``. The stored curves stop at the frame centred on the last sample, but the next
``frame_length / 2 / hop`` frames still see the end of the sound: those are computed once per sound
(:func:`extend_curves`) from the zero-padded audio; every later row is the descriptors of silence.
So row ``i`` of a crop is exactly the descriptors of the zero-padded sound at sample ``(s + i) * hop``,
centred on sample ``i * hop`` of the crop audio, the convention of
:class:`~neurorack.models.base.ImpactModel` outputs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from neurorack.corpus import Corpus, Sound
from neurorack.descriptors import DescriptorConfig, extractor
from neurorack.errors import CorpusError
from neurorack.models.base import to_feature_scale

#: Frames whose rms is this far (dB) below the sound's loudest frame are left out of the statistics.
ACTIVE_DB = -60.0
#: Absolute rms floor of an active frame (linear amplitude).
ACTIVE_FLOOR = 1e-4


def silence_descriptors(config: DescriptorConfig) -> np.ndarray:
    """Descriptors of digital silence under ``config``: float32 ``[7]`` (rms 0, flatness 1, YIN's f0 of silence)."""
    with torch.inference_mode():
        rows = extractor(config)(torch.zeros(config.frame_length * 2))
    return rows[rows.shape[0] // 2].numpy().astype(np.float32)


def extend_curves(audio: np.ndarray, curves: np.ndarray, config: DescriptorConfig) -> np.ndarray:
    """Stored curves ``[n, 7]`` of ``audio [T]`` plus the frames past its end whose window still overlaps it.

    Returns float32 ``[n + ceil(frame_length / 2 / hop), 7]``; frames after these see only zeros.
    """
    hop = config.hop_length
    n = curves.shape[0]
    extra = -(-(config.frame_length // 2) // hop)
    lead = -(-config.frame_length // hop)  # frames of context so the segment's own left edge does not matter
    first = max(0, n - lead)
    segment = np.zeros((n + extra - first) * hop + config.frame_length, dtype=np.float32)
    piece = audio[first * hop :]
    segment[: piece.size] = piece
    with torch.inference_mode():
        rows = extractor(config)(torch.from_numpy(segment)).numpy()
    return np.concatenate([curves, rows[n - first : n - first + extra].astype(np.float32)])


def active_mask(rms: np.ndarray, threshold_db: float = ACTIVE_DB, floor: float = ACTIVE_FLOOR) -> np.ndarray:
    """Boolean mask of frames with ``rms`` (linear) within ``threshold_db`` of the loudest and above ``floor``."""
    peak = float(rms.max()) if rms.size else 0.0
    return (rms >= peak * 10 ** (threshold_db / 20)) & (rms > floor)


class SegmentDataset(Dataset[dict[str, Tensor]]):
    """Crops of ``frames`` descriptor frames of every sound of a corpus split, held in memory.

    Each item is a dict:

    * ``"descriptors"``: float32 ``[F, 7]`` physical units (:data:`~neurorack.descriptors.DESCRIPTOR_NAMES`);
    * ``"audio"``: float32 ``[F * hop]`` at the corpus rate, row ``i`` centred on sample ``i * hop``;
    * ``"mask"``: bool ``[F]``, frames whose analysis window the crop audio fully determines (the crop
      cut the sound neither on the left nor on the right of it), where descriptors of generated crop audio
      can be compared with the curves;
    * ``"index"``: int64 scalar, the sound's position in :attr:`sounds`.

    Args:
        corpus: an opened corpus.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        frames: crop length ``F`` in descriptor frames.
        random_crops: draw crop starts at random (training); otherwise every crop starts at the
            sound's beginning (deterministic validation). Default: ``split == "train"``.
        start_prob: with random crops, probability of starting at the beginning (the attack matters
            for impacts); otherwise the start is uniform over positions that keep the crop within the sound.
        seed: seed of the crop-start generator.
        max_sounds: use only the first ``max_sounds`` sounds (by hash order), for quick runs.

    Raises:
        CorpusError: the split holds no sound.
    """

    def __init__(
        self,
        corpus: Corpus,
        split: str,
        frames: int = 64,
        *,
        random_crops: bool | None = None,
        start_prob: float = 0.75,
        seed: int = 0,
        max_sounds: int | None = None,
    ) -> None:
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        self.config = corpus.config
        self.hop = corpus.config.hop_length
        self.frames = frames
        self.split = split
        self.random_crops = split == "train" if random_crops is None else random_crops
        self.start_prob = start_prob
        self.rng = np.random.default_rng(seed)
        sounds = corpus.sounds(split)
        if max_sounds is not None:
            sounds = sounds[:max_sounds]
        if not sounds:
            raise CorpusError(f"{corpus.path}: the {split} split holds no sound; add more sounds to the corpus")
        self.sounds: list[Sound] = sounds
        self.audio: list[np.ndarray] = [s.audio() for s in sounds]
        self.curves: list[np.ndarray] = [
            extend_curves(a, s.descriptors(), self.config) for a, s in zip(self.audio, sounds, strict=True)
        ]
        self.silence = silence_descriptors(self.config)
        self.half_frames = -(-(self.config.frame_length // 2) // self.hop)  # frames a half-window spans

    def __len__(self) -> int:
        return len(self.sounds)

    def crop_start(self, index: int) -> int:
        """Start frame of the next crop of sound ``index``."""
        n = self.curves[index].shape[0]
        if not self.random_crops or n <= self.frames or self.rng.random() < self.start_prob:
            return 0
        return int(self.rng.integers(0, n - self.frames + 1))

    def crop(self, index: int, start: int) -> dict[str, Tensor]:
        """The crop of sound ``index`` starting at descriptor frame ``start`` (see the class docstring)."""
        audio, curves = self.audio[index], self.curves[index]
        f, hop = self.frames, self.hop
        a0, a1 = start * hop, (start + f) * hop
        seg = np.zeros(f * hop, dtype=np.float32)
        piece = audio[a0:a1]
        seg[: piece.size] = piece
        rows = np.repeat(self.silence[None], f, axis=0)
        got = curves[start : start + f]
        rows[: got.shape[0]] = got
        mask = np.ones(f, dtype=bool)
        if start > 0:  # the crop cut the sound on the left: the first half-windows see audio we dropped
            mask[: self.half_frames] = False
        if a1 < audio.size:  # ... and on the right
            mask[max(0, f - self.half_frames) :] = False
        return {
            "descriptors": torch.from_numpy(rows),
            "audio": torch.from_numpy(seg),
            "mask": torch.from_numpy(mask),
            "index": torch.tensor(index, dtype=torch.int64),
        }

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self.crop(index, self.crop_start(index))


def active_frames(corpus: Corpus, split: str = "train", max_sounds: int | None = None) -> Tensor:
    """Descriptor frames ``float64[N, 7]`` (physical units) of a split, active frames only.

    Active: rms within 60 dB of each sound's loudest frame and above 1e-4 (a sound without any keeps
    all its frames).

    Raises:
        CorpusError: the split holds no sound.
    """
    sounds = corpus.sounds(split)[:max_sounds]
    if not sounds:
        raise CorpusError(f"{corpus.path}: the {split} split holds no sound")
    rows = []
    for sound in sounds:
        curves = sound.descriptors()
        mask = active_mask(curves[:, 0])
        rows.append(curves[mask] if mask.any() else curves)
    return torch.from_numpy(np.concatenate(rows)).double()


def descriptor_statistics(corpus: Corpus, split: str = "train", max_sounds: int | None = None) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of :func:`~neurorack.models.base.to_feature_scale` descriptors.

    Over the :func:`active_frames` of a split. Returns two float32 tensors ``[7]``, for
    :meth:`~neurorack.models.base.ImpactModel.set_statistics`.

    Raises:
        CorpusError: the split holds no sound.
    """
    feats = to_feature_scale(active_frames(corpus, split, max_sounds))
    std = feats.std(dim=0) if feats.shape[0] > 1 else torch.ones(feats.shape[1], dtype=feats.dtype)
    return feats.mean(dim=0).float(), std.float()
