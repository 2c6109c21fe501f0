"""The ``null`` audio backend: a thread that calls the engine once per period, in real time, with no device."""

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
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, process: ProcessFn) -> None:
        """Start the period thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(process,), name="neurorack-null-audio", daemon=True)
        self._thread.start()

    def _run(self, process: ProcessFn) -> None:
        dt = self.period / self.sample_rate
        out = self._out
        next_t = time.perf_counter()
        while not self._stop.is_set():
            process(out, None, None, None)
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
