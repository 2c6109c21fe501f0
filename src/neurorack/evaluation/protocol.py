"""The evaluation protocol: which test sounds, and the MR-STFT, control, speed and leakage measurements."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from neurorack.bench import BenchRow, machine_info
from neurorack.corpus.manifest import sound_id
from neurorack.descriptors import DESCRIPTOR_NAMES
from neurorack.errors import NeurorackError
from neurorack.evaluation.candidates import Candidate, check_compatible
from neurorack.evaluation.results import (
    FOCUS_DESCRIPTORS,
    TABLE_DESCRIPTORS,
    ControlEntry,
    EvalReport,
    EvalSettings,
    Example,
    GeneratorResult,
    MrstftSummary,
)
from neurorack.evaluation.tonal import is_tonal
from neurorack.generators.base import Generator
from neurorack.metrics.control import DEFAULT_SCALES, control_response_many
from neurorack.metrics.following import FollowReport
from neurorack.metrics.leakage import latent_leakage
from neurorack.metrics.mrstft import mrstft_distance
from neurorack.metrics.speed import STREAM_BLOCK, limit_threads, realtime_factor, streaming_factor
from neurorack.models.generator import ModelGenerator
from neurorack.models.impact.presets import PRESETS, impact_curves
from neurorack.models.transfer import SourceTransfer

if TYPE_CHECKING:
    from neurorack.corpus import Corpus, Sound

#: Default number of test sounds for the control response.
DEFAULT_CONTROL_LIMIT = 20
#: Train sounds the fresh regressor of the latent-leakage measurement learns from (autoencoders).
LEAKAGE_TRAIN_SOUNDS = 200
#: Test sounds drawn as spectrogram comparisons in a report.
EXAMPLE_SOUNDS = 3

#: ``progress(task, done, total)``: ``task`` names the generator and stage; units are generate calls.
ProgressCallback = Callable[[str, int, int], None]


#: What ``evaluate`` measures on: the corpus's test split, or every sound (a library held out entirely).
SPLITS = ("test", "all")


def select_test_sounds(
    corpus: Corpus, limit: int | None = None, split: str = "test", exclude: Collection[str] = ()
) -> list[Sound]:
    """The corpus's test sounds (``split="all"``: all its sounds) sorted by hash, the first ``limit`` (all when None).

    ``exclude``: short sound ids (:func:`~neurorack.corpus.manifest.sound_id`) of sounds a generator trained on;
    they are left out before ``limit`` is applied (a library may ship the same sample as a training kit).

    Raises:
        NeurorackError: the test split is empty, an unknown split, ``limit < 1``, or every sound is excluded.
    """
    if limit is not None and limit < 1:
        raise NeurorackError(f"--limit must be at least 1, got {limit}")
    if split not in SPLITS:
        raise NeurorackError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "all":
        sounds = sorted(corpus.sounds(), key=lambda sound: sound.hash)
        if not sounds:
            raise NeurorackError(f"{corpus.path}: the corpus has no sounds")
    else:
        sounds = corpus.sounds("test")
        if not sounds:
            raise NeurorackError(
                f"{corpus.path}: the corpus has no sound in its test split (about 10 % of the sounds, chosen by "
                "hash); add more sounds"
            )
    unseen = [s for s in sounds if sound_id(s.hash) not in exclude]
    if not unseen:
        raise NeurorackError(
            f"{corpus.path}: all {len(sounds)} sounds to evaluate are ones a model here trained on; "
            "evaluate it on sounds it never saw"
        )
    return unseen[:limit] if limit is not None else unseen


def mrstft_scores(
    generator: Generator | Sequence[Generator],
    data: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    seed: int = 0,
    keep: int = 0,
    on_sound: Callable[[], None] | None = None,
    follow: list[FollowReport] | None = None,
) -> tuple[MrstftSummary, list[np.ndarray]]:
    """Reconstruct each sound from its curves and score it with the MR-STFT distance.

    Args:
        generator: the generator under test, or one per sound (e.g. :class:`~neurorack.models.transfer.SourceTransfer`).
        data: ``(audio float[T], curves float[frames, 7])`` per sound, at the generator's rate.
        seed: sound ``i`` is generated with ``seed + i``.
        keep: return the reconstructions of the first ``keep`` sounds.
        on_sound: called after each sound (progress).
        follow: when given, each reconstruction's :class:`~neurorack.metrics.following.FollowReport`
            against its curves is appended to it.

    Returns:
        ``(summary, reconstructions)``.
    """
    values: list[float] = []
    kept: list[np.ndarray] = []
    for i, (audio, curves) in enumerate(data):
        gen = generator if isinstance(generator, Generator) else generator[i]
        generated = gen.generate(curves, seed=seed + i)
        values.append(mrstft_distance(generated, audio))
        if follow is not None:
            follow.append(gen.follow(curves, generated))
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


def median_accuracy(reports: Sequence[FollowReport]) -> dict[str, float]:
    """Per descriptor, the median over ``reports`` of ``|octaves|`` (NaN where none measured it)."""
    out: dict[str, float] = {}
    for name in DESCRIPTOR_NAMES:
        # pitch is judged on tonal requests only
        values = [abs(r.octaves[name]) for r in reports if math.isfinite(r.octaves[name]) and (r.tonal or name != "f0")]
        out[name] = float(np.median(values)) if values else math.nan
    return out


def preset_reports(generator: Generator, *, seed: int = 0) -> list[FollowReport]:
    """Render every drawn preset (:data:`~neurorack.models.impact.presets.PRESETS`) and report how it followed."""
    reports = []
    for i, shape in enumerate(PRESETS.values()):
        curves = impact_curves(shape, generator.descriptor_config)
        reports.append(generator.follow(curves, generator.generate(curves, seed=seed + i)))
    return reports


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
    split: str = "test",
) -> EvalReport:
    """Measure every candidate on the corpus's test split (see the module docstring).

    Args:
        candidates: from :func:`load_candidates` (names must be unique).
        corpus: the corpus (its test split is evaluated, or all of it: ``split``; its analysis must match every
            generator's).
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
        split: ``"test"``, or ``"all"`` for a corpus none of the generators trained on (every sound is measured).

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
    trained_on = frozenset().union(*(c.trained_on for c in candidates))
    sounds = select_test_sounds(corpus, limit, split, exclude=trained_on)
    pool = corpus.sounds("test") if split == "test" else corpus.sounds()
    left_out = sum(sound_id(s.hash) in trained_on for s in pool)
    available = len(pool) - left_out
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
    total = len(data) + control_units + speed_units + len(PRESETS)

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
            followed: list[FollowReport] = []
            mr, kept[cand.name] = mrstft_scores(
                per_sound or gen, data, seed=seed, keep=n_examples, on_sound=lambda: tick(1, "MR-STFT"), follow=followed
            )
            tick(0, "presets")
            presets = preset_reports(gen, seed=seed)
            tick(len(PRESETS), "presets")
            accuracy = {"reconstruction": median_accuracy(followed), "presets": median_accuracy(presets)}
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
                    accuracy=accuracy,
                    presets_followed=(sum(r.followed for r in presets), len(presets)),
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
        split=split,
        left_out_trained=left_out,
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
