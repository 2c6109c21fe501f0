"""Measuring the engine from outside, through JACK: capture its output with frame times, send MIDI.

Used by the tests and by ``neurorack bench``. Two separate clients (so the graph has no cycle):
:class:`JackCapture` records an output port block by block together with JACK's
``last_frame_time`` (the frame at which each block starts), :class:`JackMidiSender` writes MIDI
at the start of its next period and remembers that frame. Latency of a hit = frame of the first
non-silent output sample − frame at which the gate was sent.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections import deque
from typing import Any

import numpy as np

from neurorack.engine.jack_backend import raise_thread_priority


class _ProbeClient:
    """A JACK client of the probe (its ``client`` attribute), closed with :meth:`close`."""

    client: Any

    def _activate(self) -> None:
        """Install :meth:`_process` as the JACK callback (its thread made real-time on the first call) and activate."""
        self._prioritised = False
        self.client.set_process_callback(self._callback)
        self.client.activate()

    def _callback(self, frames: int) -> None:
        if not self._prioritised:
            self._prioritised = True
            raise_thread_priority()
        self._process(frames)

    def _process(self, frames: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Deactivate and close."""
        try:
            self.client.deactivate()
        finally:
            self.client.close()


class JackCapture(_ProbeClient):
    """Record ``source`` (a port name such as ``neurorack:out``) on server ``server``.

    Args:
        server: JACK server name.
        source: output port to record.
        seconds: ring capacity, s (the most recent audio is kept).

    Attributes:
        client: the JACK client (``client.frame_time`` is the current frame).
    """

    def __init__(self, server: str, source: str, seconds: float = 10.0) -> None:
        import jack

        self.client = jack.Client(f"capture-{uuid.uuid4().hex[:6]}", servername=server, no_start_server=True)
        self.period = int(self.client.blocksize)
        self.sample_rate = int(self.client.samplerate)
        self.port = self.client.inports.register("in")
        n = max(self.period * 4, int(seconds * self.sample_rate) // self.period * self.period)
        self._audio = np.zeros(n, dtype=np.float32)
        self._frames = np.zeros(n // self.period, dtype=np.int64)  # frame time of each block
        self._blocks = 0
        self._activate()
        self.client.connect(source, self.port)

    def _process(self, frames: int) -> None:
        if frames != self.period:
            return
        k = self._blocks % self._frames.shape[0]
        self._audio[k * frames : (k + 1) * frames] = self.port.get_array()
        self._frames[k] = self.client.last_frame_time
        self._blocks += 1

    @property
    def now(self) -> int:
        """JACK's current frame time."""
        return int(self.client.frame_time)

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """``(audio float32[blocks, period], frame time of each block)`` of what the ring holds, oldest first.

        Blocks are stamped one by one: a cycle this client missed leaves a gap in the stamps, never a
        shift of the later audio."""
        blocks = self._blocks
        cap = self._frames.shape[0]
        count = min(blocks, cap)
        order = np.array([(blocks - count + i) % cap for i in range(count)], dtype=np.int64)
        audio = self._audio.reshape(cap, self.period)[order].copy()
        return audio, self._frames[order].copy()

    def blocks(self) -> int:
        """Blocks captured so far."""
        return self._blocks

    def latest(self) -> int:
        """Frame time of the newest block captured: a lower bound of "now" that does not depend on JACK's
        frame-time estimate (which drifts by periods when the dummy driver runs late on a busy machine)."""
        count = min(self._blocks, self._frames.shape[0])
        return int(self._frames[:count].max()) if count else 0

    def send_frame(self) -> int:
        """The frame "now" for latency measurements: JACK's frame time, but never behind the newest block."""
        return max(self.now, self.latest())

    def onset_after(self, frame: int, threshold: float = 1e-5) -> int | None:
        """Frame time of the first sample at or after ``frame`` whose magnitude exceeds ``threshold``.

        Looks only at the blocks stamped at or after ``frame`` (cheap: callable in a polling loop
        without starving the JACK callbacks of the GIL)."""
        count = min(self._blocks, self._frames.shape[0])
        stamps = self._frames[:count]
        candidates = np.flatnonzero(stamps + self.period > frame)
        if candidates.size == 0:
            return None
        candidates = candidates[np.argsort(stamps[candidates], kind="stable")]
        p = self.period
        for b in candidates:
            stamp = int(stamps[b])
            start = max(0, frame - stamp)
            block = self._audio[b * p + start : (b + 1) * p]
            hits = np.flatnonzero(np.abs(block) > threshold)
            if hits.size:
                return stamp + start + int(hits[0])
        return None


class JackMidiSender(_ProbeClient):
    """A client with one MIDI output port connected to ``destination`` (e.g. ``neurorack:midi_in``).

    :meth:`send` queues raw bytes; the next process cycle writes them at frame offset 0 and
    records that cycle's frame time in :attr:`sent_frames`.
    """

    def __init__(self, server: str, destination: str) -> None:
        import jack

        self.client = jack.Client(f"midi-{uuid.uuid4().hex[:6]}", servername=server, no_start_server=True)
        self.port = self.client.midi_outports.register("out")
        self._queue: deque[bytes] = deque()
        self.sent_frames: deque[int] = deque(maxlen=1024)
        self._event = threading.Event()
        self._activate()
        self.client.connect(self.port, destination)

    def _process(self, frames: int) -> None:
        self.port.clear_buffer()
        if not self._queue:
            return
        frame = int(self.client.last_frame_time)
        while self._queue:
            data = self._queue.popleft()
            with contextlib.suppress(Exception):  # buffer full: drop
                self.port.write_midi_event(0, data)
            self.sent_frames.append(frame)
        self._event.set()

    def send(self, data: bytes | list[int], timeout: float = 2.0) -> int:
        """Send one raw MIDI message; returns the frame time it was written at."""
        self._event.clear()
        self._queue.append(bytes(data))
        if not self._event.wait(timeout):
            raise TimeoutError("the JACK MIDI sender did not run")
        return self.sent_frames[-1]


class JackGateSender(_ProbeClient):
    """A client with one audio output port (e.g. into ``neurorack:gate_1``) that holds a DC level,
    stepping at a chosen sample of its next period — a DC-coupled interface's gate or CV, in software.

    :meth:`step` returns the frame time of the step.
    """

    def __init__(self, server: str, destination: str) -> None:
        import jack

        self.client = jack.Client(f"gate-{uuid.uuid4().hex[:6]}", servername=server, no_start_server=True)
        self.port = self.client.outports.register("out")
        self.level = 0.0
        self._pending: deque[tuple[float, int]] = deque()
        self._stamps: deque[int] = deque(maxlen=64)
        self._event = threading.Event()
        self._activate()
        self.client.connect(self.port, destination)

    def _process(self, frames: int) -> None:
        buf = self.port.get_array()
        buf.fill(self.level)
        if self._pending:
            level, offset = self._pending.popleft()
            offset = min(max(offset, 0), frames - 1)
            buf[offset:] = level
            self.level = level
            self._stamps.append(int(self.client.last_frame_time) + offset)
            self._event.set()

    def step(self, level: float, offset: int = 0, timeout: float = 2.0) -> int:
        """Go to ``level`` (digital units) at sample ``offset`` of the next period; returns that frame time."""
        self._event.clear()
        self._pending.append((float(level), int(offset)))
        if not self._event.wait(timeout):
            raise TimeoutError("the JACK gate sender did not run")
        return self._stamps[-1]


class JackPlayer(_ProbeClient):
    """A client with one audio output port (e.g. into ``neurorack:in``) that plays a signal once, block by
    block, and stamps every block with JACK's frame time — a known source for the live transfer.

    :meth:`play` starts the signal at the next period; :meth:`timeline` gives what the port carried,
    frame by frame.
    """

    def __init__(self, server: str, destination: str, seconds: float = 30.0) -> None:
        import jack

        self.client = jack.Client(f"player-{uuid.uuid4().hex[:6]}", servername=server, no_start_server=True)
        self.period = int(self.client.blocksize)
        self.port = self.client.outports.register("out")
        self._signal: np.ndarray | None = None
        self._pos = 0
        cap = max(16, int(seconds * self.client.samplerate) // self.period)
        self._stamps = np.full(cap, -1, dtype=np.int64)  # frame time of each block written
        self._starts = np.zeros(cap, dtype=np.int64)  # signal position of its first sample
        self._blocks = 0
        self._event = threading.Event()
        self._activate()
        self.client.connect(self.port, destination)

    def _process(self, frames: int) -> None:
        buf = self.port.get_array()
        x = self._signal
        if x is None or self._pos >= x.shape[0] or self._blocks >= self._stamps.shape[0]:
            buf.fill(0.0)
            return
        pos = self._pos
        piece = x[pos : pos + frames]
        buf[: piece.shape[0]] = piece
        buf[piece.shape[0] :] = 0.0
        self._stamps[self._blocks] = self.client.last_frame_time
        self._starts[self._blocks] = pos
        self._blocks += 1
        self._pos = pos + frames
        self._event.set()

    def play(self, signal: np.ndarray, timeout: float = 2.0) -> int:
        """Play ``signal: float32[T]`` from the next period; returns the frame time of its first sample."""
        self._event.clear()
        self._blocks = 0
        self._pos = 0
        self._signal = np.ascontiguousarray(signal, dtype=np.float32)
        if not self._event.wait(timeout):
            raise TimeoutError("the JACK player did not run")
        return int(self._stamps[0])

    @property
    def done(self) -> bool:
        """The whole signal has been written."""
        return self._signal is not None and self._pos >= self._signal.shape[0]

    def timeline(self, first: int, length: int) -> np.ndarray:
        """``float32[length]``: what the port carried from frame time ``first`` on (zeros where it played
        nothing); a cycle this client missed shows as a gap in its stamps (see :meth:`gaps`)."""
        out = np.zeros(length, dtype=np.float32)
        x = self._signal
        if x is None:
            return out
        for b in range(self._blocks):
            at = int(self._stamps[b]) - first
            piece = x[int(self._starts[b]) : int(self._starts[b]) + self.period]
            lo, hi = max(at, 0), min(at + piece.shape[0], length)
            if hi > lo:
                out[lo:hi] = piece[lo - at : hi - at]
        return out

    def gaps(self) -> int:
        """Cycles skipped between consecutive blocks of the signal (0 when it went out without a break)."""
        stamps = self._stamps[: self._blocks]
        return int(((np.diff(stamps) - self.period) // self.period).clip(min=0).sum()) if stamps.size > 1 else 0
