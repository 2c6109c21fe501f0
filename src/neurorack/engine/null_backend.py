"""The ``null`` audio backend: a thread that calls the engine once per period, in real time, with no device.

Its audio input is silence, unless :meth:`NullBackend.feed` gives it a signal to play once.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from neurorack.engine.backends import ProcessFn
from neurorack.errors import NeurorackError


class NullBackend:
    """Calls ``process`` every ``period / sample_rate`` seconds on its own thread; the output goes nowhere
    (record it with ``--record``).

    A call that starts more than one period late counts as an xrun and the clock restarts from now.

    Args:
        sample_rate: Hz.
        period: frames per call.
    """

    name = "null"

    def __init__(self, sample_rate: int = 44100, period: int = 128) -> None:
        if not 8 <= period <= 8192:
            raise NeurorackError(f"--period must lie in 8..8192 frames, got {period}")
        if not 8000 <= sample_rate <= 384000:
            raise NeurorackError(f"sample rate must lie in 8000..384000 Hz, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.period = int(period)
        self.max_period = int(period)
        self.xruns = 0
        #: Frames played before the current period (the null backend's frame clock).
        self.cycle_frame = 0
        self._out = np.zeros(period, dtype=np.float32)
        self._in = np.zeros(period, dtype=np.float32)
        self._feed: np.ndarray | None = None
        self._playing: np.ndarray | None = None
        self._feed_pos = 0
        #: Backend frame time at which the last fed signal's first sample entered, -1 before.
        self.feed_frame = -1
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, process: ProcessFn) -> None:
        """Start the period thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(process,), name="neurorack-null-audio", daemon=True)
        self._thread.start()

    def feed(self, signal: np.ndarray) -> None:
        """Play ``signal: float32[T]`` (digital full scale = 1) into the audio input from the next
        period on, once; silence after it (any thread; a new signal replaces one still playing).
        :attr:`feed_frame` becomes the frame time of its first sample."""
        self.feed_frame = -1
        self._feed = np.ascontiguousarray(signal, dtype=np.float32).reshape(-1).copy()

    def _next_input(self) -> np.ndarray | None:
        new = self._feed
        if new is not None:  # hand-off from feed(): this thread owns what it plays
            self._feed = None
            self._playing = new
            self._feed_pos = 0
            self.feed_frame = self.cycle_frame
        x = self._playing
        if x is None:
            return None
        pos = self._feed_pos
        n = self.period
        piece = x[pos : pos + n]
        self._in[: piece.size] = piece
        self._in[piece.size :] = 0.0
        self._feed_pos = pos + n
        if pos + n >= x.size:
            self._playing = None
        return self._in

    def _run(self, process: ProcessFn) -> None:
        dt = self.period / self.sample_rate
        out = self._out
        next_t = time.perf_counter()
        while not self._stop.is_set():
            inp = self._next_input()
            if inp is None:
                process(out, None, None, None)
            else:
                process(out, None, None, None, audio_in=inp)
            self.cycle_frame += self.period
            next_t += dt
            now = time.perf_counter()
            if now - next_t > dt:
                self.xruns += 1
                next_t = now
            elif next_t > now:
                time.sleep(next_t - now)

    def stop(self) -> None:
        """Stop the thread (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
