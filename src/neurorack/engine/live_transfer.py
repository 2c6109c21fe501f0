"""Live timbre and attribute transfer: audio input → descriptors → ``fader-ae`` → output (SPEC §5, issue 6).

The engine's transfer path (``Engine(..., transfer=True)``, ``neurorack play --transfer``). The input
(JACK port ``in``) is encoded by a descriptor-controlled autoencoder while its descriptors are measured
live, edited by the CVs and descriptor offsets exactly as the impact instrument edits its curves
(:func:`neurorack.engine.calibration.descriptor_edits`; ``position`` and ``inharmonicity`` mean nothing
here and are ignored), and decoded with the edited curves.

Threads (the engine's rules, see :mod:`neurorack.engine.instrument`):

* **audio thread** — :meth:`LiveTransfer.process`: copies the period's input into a preallocated
  single-producer / single-consumer ring and adds the period's output from a second ring into the mix.
  It never touches the model, never waits, never allocates an audio buffer (slices are views). When
  the worker is late the missing samples stay silent and :attr:`LiveTransfer.underruns` counts the period.
* **worker thread** — :meth:`LiveTransfer.step` in a loop, one torch thread, denormals flushed: takes
  ``block`` samples (a multiple of the model's hop), measures their descriptor frames with
  :class:`neurorack.descriptors.Descriptors` on a sliding window of the input, applies the edits, runs
  :meth:`TransferModel.stream <neurorack.models.base.TransferModel.stream>` (traced once for the block length:
  :class:`~neurorack.models.compiled_stream.CompiledStream`) with the carried state and writes the
  output ring. Tracing takes ~0.15 s of Python when a processor is built (start, model change): on a
  model change the old processor keeps playing meanwhile but can be starved of the GIL for a few
  blocks (silence, counted as its underruns), before the new one starts with its latency of silence.

Timing, in samples of the processor's clock (``t`` = samples the audio thread has passed since its first
call; the input sample ``x[t]`` and the output sample ``out[t]`` are in the same period)::

    out[t] = y[t - latency] for t >= latency, 0 before   (y: the offline transfer of x, aligned with x)
    latency = block + lookahead + stream_delay + safety

* ``block`` (default 1024): the model takes whole blocks;
* ``lookahead = frame_length // 2 - hop`` (512 for 2048 / 512): descriptor frame ``f`` is centred on
  sample ``f · hop`` (librosa's centred frames, as in training) and the model's frame ``f`` covers samples
  ``[f · hop, (f + 1) · hop)``, so a block's last frame needs that many samples past the block's end;
* ``stream_delay``: the model's own synthesis delay (the first ``stream_delay`` output samples of the stream,
  its response to the silence before the start, are dropped);
* ``safety = block + period``: a block is due one block after its input is complete, plus one period
  because the input arrives a period at a time — the worker always has one block of time per block.

So ``y`` is the result of :func:`neurorack.models.transfer.transfer_curves` on the same input with the curves of
:func:`neurorack.descriptors.describe_with` (edited): the live descriptors equal the offline ones frame
for frame (the same code on the same samples; before the start the input is silence, as the offline zero
padding), and the streamed model equals the offline pass.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from neurorack.descriptors import N_DESCRIPTORS, DescriptorConfig, extractor

if TYPE_CHECKING:
    from neurorack.models.base import TransferModel

log = logging.getLogger("neurorack.engine.transfer")

#: Default samples per model call (two 512-sample frames: 23 ms at 44.1 kHz).
DEFAULT_BLOCK = 1024
#: Input samples are clipped to ±CLIP before the model (a broken source must not poison the model state).
CLIP = 4.0
#: Longest sleep of the worker while it waits for input, s.
MAX_POLL = 0.002
#: Shortest sleep, s.
MIN_POLL = 0.0002

#: ``edits() -> (scale, offset)``: descriptor factors and offsets (:func:`neurorack.curves.anchors.edit_curves`).
EditsFn = Callable[[], tuple[Mapping[str, float], Mapping[str, float]]]


def _no_edits() -> tuple[Mapping[str, float], Mapping[str, float]]:
    return {}, {}


class LiveTransfer:
    """The live-transfer processor of one model (rebuilt when the model changes).

    Args:
        ae: the autoencoder (:func:`neurorack.models.transfer.transfer_model_of`), in eval mode.
        config: the model's descriptor analysis settings (rate, frame, hop, YIN range).
        period: audio frames per call now (sets the safety margin, see the module docstring).
        max_period: the longest audio call the backend may make, frames.
        block: samples per model call, a positive multiple of ``config.hop_length``.
        edits: called once per block on the worker thread: ``(scale, offset)`` descriptor edits
            (names as :data:`neurorack.descriptors.DESCRIPTOR_NAMES`); None: no edits.

    Raises:
        ValueError: a block that is not a positive multiple of the hop, a bad period, or a model whose
            rate or hop differs from ``config``.

    Attributes:
        latency: samples from an input sample to its output (see the module docstring).
        lookahead: descriptor lookahead past a block, samples.
        underruns: audio calls that found output samples missing (worker late); they played silence.
        missing_samples: output samples played as silence because the worker was late.
        skipped_blocks: blocks the worker dropped to catch up after being late.
        blocks_done: blocks computed.
        last_block_ms: wall time of the last block (descriptors, edits, model), ms.
        last_measured, last_requested: ``float32[block / hop, 7]`` curves of the last block, measured
            and after the edits (what the model was given), or None before the first block.
        start_frame: the backend's frame time of the processor's first sample (set by the caller), -1 before.
        stalled: test hook: while True the worker computes nothing (a stalled or overloaded worker).
    """

    def __init__(
        self,
        ae: TransferModel,
        config: DescriptorConfig,
        *,
        period: int,
        max_period: int,
        block: int = DEFAULT_BLOCK,
        edits: EditsFn | None = None,
    ) -> None:
        hop = config.hop_length
        if ae.hop_length != hop or ae.sample_rate != config.sample_rate:
            raise ValueError(
                f"the model runs at {ae.sample_rate} Hz / hop {ae.hop_length}, its descriptors at "
                f"{config.sample_rate} Hz / hop {hop}"
            )
        check_block(block, hop)
        if not 1 <= period <= max_period:
            raise ValueError(f"need 1 <= period <= max_period, got {period} and {max_period}")
        from neurorack.models.compiled_stream import CompiledStream

        self.ae = ae
        self._step = CompiledStream(ae, block)  # TransferModel.stream traced for this block length
        self.config = config
        self.sample_rate = int(config.sample_rate)
        self.hop = hop
        self.block = int(block)
        self.frames = self.block // hop  # descriptor / latent frames per block
        half = config.frame_length // 2
        self.pre = -(-half // hop)  # frames of history before a block's first frame centre
        self.lookahead = max(0, half - hop)
        self.delay = ae.stream_delay
        self.safety = self.block + int(period)
        self.latency = self.block + self.lookahead + self.delay + self.safety
        self._shift = self.latency - self.delay  # out[t] = stream output [t - shift]
        self._edits: EditsFn = edits or _no_edits
        self._need_f0 = "f0" in ae.controls
        self._extractor = extractor(config)
        # rings: absolute sample indices, slot = index % capacity
        self._in_cap = max(self.sample_rate, 8 * self.block) + self.pre * hop + self.lookahead + 2 * max_period
        self._out_cap = 8 * self.block + 2 * max_period
        self._in_ring = np.zeros(self._in_cap, dtype=np.float32)
        self._out_ring = np.zeros(self._out_cap, dtype=np.float32)
        self._in_written = 0  # audio thread: input samples pushed (= the processor's clock)
        self._out_written = 0  # worker: stream samples [0, _out_written) are in the output ring
        self._next_block = 0  # worker: the block to compute next
        self._segment = np.zeros(self.pre * hop + self.block + self.lookahead, dtype=np.float32)
        self._state: Any = None
        self.underruns = 0
        self.missing_samples = 0
        self.skipped_blocks = 0
        self.blocks_done = 0
        self.last_block_ms = 0.0
        self.last_measured: np.ndarray | None = None
        self.last_requested: np.ndarray | None = None
        self.start_frame = -1
        self.stalled = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------
    # life cycle
    # ------------------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Run the descriptors and the model once on silence (with a throwaway state), so the first live
        block does not pay torch's lazy initialisation."""
        import torch

        with torch.inference_mode():
            curves = self._describe(np.zeros_like(self._segment))
            state = None
            for _ in range(2):
                _, state = self._step(torch.zeros(1, 1, self.block), torch.from_numpy(curves).unsqueeze(0), state)

    def start(self) -> LiveTransfer:
        """Warm up, then start the worker thread."""
        if self._thread is None:
            self.warm_up()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="neurorack-transfer", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the worker thread (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    @property
    def running(self) -> bool:
        """The worker thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def samples_done(self) -> int:
        """Samples the audio thread has passed (the processor's clock)."""
        return self._in_written

    # ------------------------------------------------------------------------------------------
    # the audio thread
    # ------------------------------------------------------------------------------------------
    def process(self, inp: np.ndarray | None, out: np.ndarray, frame: int = -1) -> None:
        """Push ``inp: float32[n]`` (None: silence) and add the next ``n`` output samples into ``out``.

        Audio thread only. ``frame``: the backend's frame time of this call's first sample (recorded
        as :attr:`start_frame` on the first call).
        """
        n = out.shape[0]
        t = self._in_written
        if t == 0:
            self.start_frame = int(frame)
        # 1. input ring (single producer: this thread)
        self._ring_write(self._in_ring, t, inp, n)
        self._in_written = t + n  # published after the copy
        # 2. output ring: stream samples [j, j + n); those before the PQMF delay are the pre-roll (silence)
        j = t - self._shift
        lo = max(j, self.delay)
        end = j + n
        if lo >= end:
            return
        written = self._out_written
        avail = min(end, written)
        if avail > lo:
            ocap = self._out_cap
            src = self._out_ring
            b = lo % ocap
            count = avail - lo
            k = min(count, ocap - b)
            dst = out[lo - j : lo - j + k]
            np.add(dst, src[b : b + k], out=dst)
            if k < count:
                dst = out[lo - j + k : avail - j]
                np.add(dst, src[: count - k], out=dst)
        missing = end - max(lo, avail)
        if missing > 0:
            self.underruns += 1
            self.missing_samples += missing

    @staticmethod
    def _ring_write(ring: np.ndarray, index: int, data: np.ndarray | None, n: int) -> None:
        """Write ``data[:n]`` (None: zeros) at absolute sample ``index`` of ``ring`` (wrapping; no allocation)."""
        cap = ring.shape[0]
        a = index % cap
        first = min(n, cap - a)
        if data is None:
            ring[a : a + first].fill(0.0)
            if first < n:
                ring[: n - first].fill(0.0)
        else:
            np.copyto(ring[a : a + first], data[:first])
            if first < n:
                np.copyto(ring[: n - first], data[first:n])

    # ------------------------------------------------------------------------------------------
    # the worker
    # ------------------------------------------------------------------------------------------
    def _run(self) -> None:
        import torch

        torch.set_num_threads(1)
        torch.set_flush_denormal(True)  # per thread: decaying tails end in denormals, ~100x slower on x86
        while not self._stop.is_set():
            if self.stalled:
                time.sleep(MAX_POLL)
                continue
            try:
                if self.step():
                    continue
            except Exception as exc:  # a block must never kill the thread
                log.warning("live transfer block failed: %s: %s", type(exc).__name__, exc)
                self._state = None
                self._skip_to(self._next_block + 1)
                continue
            wait = (self._need() - self._in_written) / self.sample_rate
            time.sleep(min(MAX_POLL, max(MIN_POLL, wait)))

    def _need(self) -> int:
        """Input samples the next block needs."""
        return (self._next_block + 1) * self.block + self.lookahead

    def _skip_to(self, k: int) -> None:
        """Give up the blocks before ``k``: their samples the audio thread has not read yet become silence."""
        if k <= self._next_block:
            return
        reading = self._in_written - self._shift
        lo = max(self._out_written, reading)
        hi = k * self.block
        lo = max(lo, hi - self._out_cap)  # (hi - lo is at most a block: the rest is behind the reader)
        if hi > lo:
            self._ring_write(self._out_ring, lo, None, hi - lo)
        self.skipped_blocks += k - self._next_block
        self._next_block = k
        self._out_written = max(self._out_written, hi)

    def step(self) -> bool:
        """Compute the next block if its input is complete; False when there is nothing to do yet.

        Worker thread (or a test driving the processor by hand, alternating :meth:`process` and
        :meth:`step`). A block the audio thread has already passed is skipped (its samples were played
        as silence), so a worker that was stalled resumes in time instead of trailing behind.
        """
        import torch

        size = self.block
        written_in = self._in_written
        reading = written_in - self._shift  # stream index the audio thread reads next
        if (self._next_block + 1) * size <= reading:
            self._skip_to(-(-reading // size))
        k = self._next_block
        if written_in < self._need():
            return False
        if (k + 1) * size - reading > self._out_cap:
            return False  # the audio thread is not reading (never the case while it runs)
        t0 = time.perf_counter()
        # the input window: descriptor history before the block, the block, the lookahead after it
        seg = self._segment
        start = k * size - self.pre * self.hop
        if start < 0:
            seg[:-start].fill(0.0)  # before the stream: silence (the offline analysis pads with zeros)
        lo = max(start, 0)
        cap = self._in_cap
        a, count = lo % cap, seg.shape[0] - (lo - start)
        first = min(count, cap - a)
        np.copyto(seg[lo - start : lo - start + first], self._in_ring[a : a + first])
        if first < count:
            np.copyto(seg[lo - start + first :], self._in_ring[: count - first])
        if self._in_written - lo > cap:  # the audio thread overwrote the window while it was copied
            self._skip_to(k + 1)
            return True
        np.nan_to_num(seg, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        np.clip(seg, -CLIP, CLIP, out=seg)
        with torch.inference_mode():
            measured = self._describe(seg)
            scale, offset = self._edits()
            requested = measured
            if scale or offset:
                from neurorack.curves.anchors import edit_curves

                requested = edit_curves(measured, scale=scale, offset=offset)
            x = torch.from_numpy(seg[self.pre * self.hop : self.pre * self.hop + size].copy()).view(1, 1, size)
            y, state_ = self._step(x, torch.from_numpy(requested).unsqueeze(0), self._state)
            state: Any = state_
            audio = y[0, 0].numpy()
        if not np.isfinite(audio).all():
            audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
            state = None  # a poisoned state would stay poisoned
        self._state = state
        # the output ring (single producer: this thread); the reader only reads below _out_written
        self._ring_write(self._out_ring, k * size, audio, size)
        self._out_written = (k + 1) * size
        self._next_block = k + 1
        self.last_measured = measured
        self.last_requested = requested
        self.blocks_done += 1
        self.last_block_ms = (time.perf_counter() - t0) * 1000.0
        return True

    def _describe(self, seg: np.ndarray) -> np.ndarray:
        """The block's descriptor frames ``float32[frames, 7]`` from the window ``seg``.

        :class:`~neurorack.descriptors.Descriptors` (the offline code) on the window; its frames
        ``pre … pre + frames - 1`` are centred on the block's frame starts and lie wholly inside the
        window, so they equal the offline analysis of the whole signal. f0 (the costly YIN) is left at
        0 when the model does not take it.
        """
        import torch

        curves = self._extractor(torch.from_numpy(seg), with_f0=self._need_f0)
        out = curves[self.pre : self.pre + self.frames].numpy().astype(np.float32, copy=True)
        assert out.shape == (self.frames, N_DESCRIPTORS)
        return out

    # ------------------------------------------------------------------------------------------
    def figures(self) -> dict[str, float]:
        """Status figures (``transfer_*`` in :class:`~neurorack.engine.protocol.EngineStatus` ``extra``)."""
        return {
            "transfer_latency": float(self.latency),
            "transfer_latency_ms": 1000.0 * self.latency / self.sample_rate,
            "transfer_underruns": float(self.underruns),
            "transfer_missing_samples": float(self.missing_samples),
            "transfer_skipped_blocks": float(self.skipped_blocks),
            "transfer_blocks": float(self.blocks_done),
            "transfer_block_ms": float(self.last_block_ms),
            "transfer_start_frame": float(self.start_frame),
        }


def check_block(block: int, hop: int) -> int:
    """``block`` if it is a positive multiple of ``hop`` (samples).

    Raises:
        ValueError: otherwise (one line naming both).
    """
    if isinstance(block, bool) or not isinstance(block, int) or block < hop or block % hop:
        raise ValueError(f"the transfer block must be a positive multiple of the model's hop {hop}, got {block!r}")
    return block
