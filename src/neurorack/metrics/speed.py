"""Generation speed: seconds of audio per second of compute on one CPU thread (SPEC §6).

Protocol (:func:`time_audio`): inside :func:`limit_threads` (``torch.set_num_threads(1)``
and, through threadpoolctl, one BLAS/OpenMP thread; the previous values are restored on
exit), run the job ``warmup`` times untimed, then ``repeats`` times timed with
:func:`time.perf_counter`, batch 1. The **real-time factor** is
``audio seconds / median compute seconds`` (> 1 means faster than real time).

Memory, measured in one extra, untimed run (tracing slows the code down):

* ``peak_traced_bytes`` — peak of :mod:`tracemalloc` above the level at the start of the
  run: Python objects and NumPy buffers (NumPy reports its allocations to tracemalloc);
  **not** torch's CPU allocator, so it under-counts torch models.
* ``maxrss_growth_bytes`` — growth of the process' peak resident set size
  (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, KiB on Linux) across all runs; it covers
  every allocator but only shows a job that pushes the process above its earlier peak,
  so it is a lower bound (0 is common). ``None`` where :mod:`resource` does not exist.
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from neurorack.descriptors import DescriptorConfig, describe, describe_with
from neurorack.errors import NeurorackError
from neurorack.generators.base import Generator
from neurorack.models.base import TransferModel
from neurorack.models.compiled_stream import CompiledStream

#: Sample rate at which the descriptors are benchmarked (the corpus default).
DESCRIBE_SAMPLE_RATE = 44_100


@dataclass(frozen=True)
class SpeedResult:
    """Timing of one job.

    Attributes:
        name: what was timed (generator name, ``"describe"`` ...).
        audio_seconds: seconds of audio produced (or analysed) per run.
        times: compute seconds of each timed run.
        median_seconds: median of ``times``.
        realtime_factor: ``audio_seconds / median_seconds`` (× real time).
        threads: torch intra-op threads during the runs.
        peak_traced_bytes: tracemalloc peak above the starting level (see module docstring).
        maxrss_growth_bytes: growth of the process' peak RSS, or None when unavailable.
    """

    name: str
    audio_seconds: float
    times: tuple[float, ...]
    median_seconds: float
    realtime_factor: float
    threads: int
    peak_traced_bytes: int
    maxrss_growth_bytes: int | None


@contextlib.contextmanager
def limit_threads(threads: int = 1) -> Iterator[None]:
    """Run the body with ``threads`` torch intra-op threads and BLAS/OpenMP threads; restore after."""
    if threads < 1:
        raise NeurorackError(f"threads must be >= 1, got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
            yield
        else:
            with threadpool_limits(limits=threads):
                yield
    finally:
        torch.set_num_threads(previous)


def _maxrss_bytes() -> int | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return None
    rss = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return rss if sys.platform == "darwin" else rss * 1024


def _traced_peak(job: Callable[[], object]) -> int:
    """Peak tracemalloc bytes above the starting level during one call of ``job``."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        job()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return max(0, peak - start)


#: Minimum time spent on untimed warm-up runs before timing (when ``warmup`` > 0).
WARM_SECONDS = 0.25


def time_audio(
    name: str,
    job: Callable[[], object],
    audio_seconds: float,
    *,
    repeats: int = 5,
    warmup: int = 1,
    threads: int = 1,
    trace_memory: bool = True,
) -> SpeedResult:
    """Time ``job`` (which produces or analyses ``audio_seconds`` of audio) with the SPEC §6 protocol.

    Raises:
        NeurorackError: ``repeats < 1``, ``warmup < 0`` or ``audio_seconds <= 0``.
    """
    if repeats < 1 or warmup < 0:
        raise NeurorackError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    if not audio_seconds > 0:
        raise NeurorackError(f"audio_seconds must be positive, got {audio_seconds}")
    rss_before = _maxrss_bytes()
    with limit_threads(threads):
        warm_start = time.perf_counter()
        for i in itertools.count():
            # at least ``warmup`` runs, more while under WARM_SECONDS: caches, allocator and JIT dispatch
            # settle over the first few runs of a fast job
            if i >= warmup and (warmup == 0 or time.perf_counter() - warm_start >= WARM_SECONDS):
                break
            job()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            job()
            times.append(time.perf_counter() - t0)
        peak = _traced_peak(job) if trace_memory else 0
    rss_after = _maxrss_bytes()
    median = statistics.median(times)
    return SpeedResult(
        name=name,
        audio_seconds=float(audio_seconds),
        times=tuple(times),
        median_seconds=median,
        realtime_factor=audio_seconds / median if median > 0 else float("inf"),
        threads=threads,
        peak_traced_bytes=peak,
        maxrss_growth_bytes=None if rss_before is None or rss_after is None else max(0, rss_after - rss_before),
    )


def synthetic_impact(sample_rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """A deterministic impact-like test sound, ``float32[round(seconds * sr)]``.

    A 5 ms-attack noise burst decaying by 60 dB in 0.25 s, plus a 110 Hz tone with three
    harmonics gliding down 10 % and decaying by 60 dB in 0.8 s; peak about −6 dBFS.
    """
    n = max(1, round(seconds * sample_rate))
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sample_rate
    attack = np.minimum(1.0, t / 0.005)
    noise = rng.standard_normal(n) * np.exp(-t * np.log(1000) / 0.25) * 0.25
    f0 = 110.0 * (1.0 - 0.1 * (1.0 - np.exp(-t / 0.1)))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    tone = sum(np.sin(h * phase) / h for h in (1, 2, 3, 4)) * np.exp(-t * np.log(1000) / 0.8) * 0.3
    return np.asarray(attack * (noise + tone), dtype=np.float32)


def impact_curves(config: DescriptorConfig, seconds: float, seed: int = 0) -> np.ndarray:
    """Descriptor curves ``float32[frames, 7]`` of :func:`synthetic_impact`, ``frames = seconds * sr / hop``.

    The input used to time generators: ``generate`` then renders ``frames * hop`` samples.
    """
    frames = max(1, round(seconds * config.sample_rate / config.hop_length))
    audio = synthetic_impact(config.sample_rate, frames * config.hop_length / config.sample_rate, seed)
    curves = describe_with(audio, config)
    return curves[:frames]


def realtime_factor(
    generator: Generator,
    seconds: float = 1.0,
    repeats: int = 5,
    threads: int = 1,
    *,
    curves: np.ndarray | None = None,
    warmup: int = 1,
    seed: int = 0,
) -> SpeedResult:
    """Real-time factor of ``generator.generate`` (SPEC §6: one CPU thread, batch 1, median of runs).

    Args:
        generator: the generator to time.
        seconds: length of the generated audio when ``curves`` is None (synthetic impact curves).
        repeats: timed runs (after ``warmup`` untimed ones).
        threads: torch / BLAS threads during the runs (1 per SPEC §6).
        curves: ``float[frames, 7]`` input curves; overrides ``seconds``.
        seed: generation seed.
    """
    cfg = generator.descriptor_config
    inputs = impact_curves(cfg, seconds) if curves is None else np.asarray(curves, dtype=np.float32)
    audio_seconds = inputs.shape[0] * generator.hop_length / generator.sample_rate if inputs.ndim == 2 else 0.0
    generator.generate(inputs, seed=seed)  # validates the curves before timing anything
    return time_audio(
        generator.name,
        lambda: generator.generate(inputs, seed=seed),
        audio_seconds,
        repeats=repeats,
        warmup=warmup,
        threads=threads,
    )


#: Block of the streaming speed measurement (samples at 44.1 kHz: 46 ms, a usual live buffer).
STREAM_BLOCK = 2048


def streaming_factor(
    model: TransferModel,
    seconds: float = 1.0,
    repeats: int = 5,
    threads: int = 1,
    *,
    block: int = STREAM_BLOCK,
    warmup: int = 1,
) -> SpeedResult:
    """Real-time factor of live transfer: a transfer model's
    :meth:`~neurorack.models.base.TransferModel.stream`, compiled for ``block``-sample blocks as the
    engine runs it (:class:`~neurorack.models.compiled_stream.CompiledStream`), over ``seconds`` of a
    synthetic impact with its state carried, one CPU thread, median of runs.

    Raises:
        NeurorackError: ``block`` is not a multiple of the model's hop.
    """
    hop = model.hop_length
    if block < hop or block % hop:
        raise NeurorackError(f"the streaming block must be a multiple of the hop ({hop}), got {block}")
    cfg = DescriptorConfig(model.sample_rate, model.frame_length, hop)
    n_blocks = max(1, round(seconds * model.sample_rate / block))
    audio = synthetic_impact(model.sample_rate, n_blocks * block / model.sample_rate)
    curves = torch.from_numpy(describe_with(audio, cfg)[: n_blocks * block // hop]).unsqueeze(0)
    signal = torch.from_numpy(audio).view(1, 1, -1)
    per = block // hop

    step = CompiledStream(model, block)  # what the engine runs live

    def job() -> None:
        state = step.initial_state()
        with torch.inference_mode():
            for i in range(n_blocks):
                piece = signal[..., i * block : (i + 1) * block]
                _, state = step(piece, curves[:, i * per : (i + 1) * per], state)

    torch.set_flush_denormal(True)
    return time_audio(
        f"{getattr(model, 'name', 'model')} (stream {block})",
        job,
        n_blocks * block / model.sample_rate,
        repeats=repeats,
        warmup=warmup,
        threads=threads,
    )


def describe_realtime_factor(
    seconds: float = 1.0,
    repeats: int = 5,
    threads: int = 1,
    *,
    sample_rate: int = DESCRIBE_SAMPLE_RATE,
    warmup: int = 1,
) -> SpeedResult:
    """Real-time factor of :func:`~neurorack.descriptors.describe` on ``seconds`` of a synthetic impact.

    Defaults to 44.1 kHz, librosa framing (2048 / 512), one thread.
    """
    audio = synthetic_impact(sample_rate, seconds)
    return time_audio(
        "describe",
        lambda: describe(audio, sample_rate),
        audio.shape[0] / sample_rate,
        repeats=repeats,
        warmup=warmup,
        threads=threads,
    )
