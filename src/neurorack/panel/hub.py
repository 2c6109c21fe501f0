"""From the instrument to every browser without ever waiting for one.

* :class:`Publisher` — a thread that looks at the instrument ``status_hz`` times a second (status,
  OLED screen, current impact; every call non-blocking by the protocol), analyses a new impact
  (waveform, spectrogram, descriptors; at most once per ``analysis_interval``) and hands finished
  messages to the event loop with ``call_soon_threadsafe``. It never touches a socket.
* :class:`Hub` — on the event loop: keeps the latest message of each kind (so a new page gets the
  whole state at once) and offers every message to each client's :class:`Outbox`.
* :class:`Outbox` — one per client, bounded: one slot per state kind (a newer status, screen or
  impact replaces an unsent older one: stale frames are dropped, never queued) plus a short queue
  of replies (errors, pongs; the oldest is dropped beyond :data:`MAX_REPLIES`). A slow client
  therefore only ever falls behind on its own connection, by at most one message of each kind.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from neurorack.device.led import led_colour
from neurorack.device.screen import render_png
from neurorack.engine.protocol import InstrumentControl
from neurorack.panel.views import anchors_message, impact_message, pcm_frame, screen_frame

log = logging.getLogger("neurorack.panel")

Payload = str | bytes
#: Replies (errors, pongs) kept per client at most; older ones are dropped.
MAX_REPLIES = 32
#: Kinds a client keeps only the newest of.
STATE_KINDS = ("hello", "anchors", "impact", "pcm", "screen", "status")


class Outbox:
    """One client's outgoing messages (event-loop thread only): latest-only state slots and a bounded reply queue.

    Attributes:
        dropped: messages replaced or discarded before they were sent.
    """

    def __init__(self) -> None:
        self._state: dict[str, Payload] = {}
        self._replies: deque[Payload] = deque(maxlen=MAX_REPLIES)
        self._ready = asyncio.Event()
        self.dropped = 0
        self.closed = False

    def offer(self, kind: str, data: Payload) -> None:
        """Queue ``data``; for a state ``kind`` an unsent older message of that kind is replaced."""
        if self.closed:
            return
        if kind in STATE_KINDS:
            if kind in self._state:
                self.dropped += 1
            self._state[kind] = data
        else:
            if len(self._replies) == self._replies.maxlen:
                self.dropped += 1
            self._replies.append(data)
        self._ready.set()

    async def take(self) -> list[Payload]:
        """Wait until something is queued; return everything queued (state in kind order, then replies)."""
        await self._ready.wait()
        self._ready.clear()
        out = [self._state.pop(k) for k in STATE_KINDS if k in self._state]
        out.extend(self._replies)
        self._replies.clear()
        return out

    def close(self) -> None:
        """Stop accepting messages and wake :meth:`take`."""
        self.closed = True
        self._ready.set()


class Hub:
    """The latest message of each kind and the connected clients (event-loop thread only)."""

    def __init__(self) -> None:
        self.latest: dict[str, Payload] = {}
        self.clients: set[Outbox] = set()

    def attach(self, outbox: Outbox) -> None:
        """Add a client and give it the current state."""
        self.clients.add(outbox)
        for kind in STATE_KINDS:
            if kind in self.latest:
                outbox.offer(kind, self.latest[kind])

    def detach(self, outbox: Outbox) -> None:
        """Remove a client."""
        self.clients.discard(outbox)
        outbox.close()

    def publish(self, kind: str, data: Payload) -> None:
        """Remember ``data`` as the latest ``kind`` and offer it to every client."""
        self.latest[kind] = data
        for outbox in list(self.clients):
            outbox.offer(kind, data)


def status_message(instrument: InstrumentControl) -> dict[str, Any]:
    """The ``status`` message: the engine status plus models, assignments and parameters (all non-blocking)."""
    s = instrument.status()
    params = instrument.parameters()
    return {
        "type": "status",
        "running": s.running,
        "backend": s.backend,
        "sample_rate": s.sample_rate,
        "period": s.period,
        "model": instrument.current_model(),
        "models": instrument.models(),
        "voices": s.voices,
        "max_voices": s.max_voices,
        "xruns": s.xruns,
        "callback_load": round(float(s.callback_load), 4),
        "render_ms": round(float(s.render_ms), 2),
        "pending": s.pending,
        "gates": list(s.gates),
        "cvs": [round(float(v), 3) for v in s.cvs],
        "led": list(led_colour(s)),
        "recording": s.recording.replace("\\", "/").rsplit("/", 1)[-1] if s.recording else "",
        "message": s.message,
        "assignments": {str(k): v for k, v in sorted(instrument.assignments().items())},
        "cv_range": float(params.get("cv_range", 5.0)),
        "parameters": {k: float(v) for k, v in params.items()},
        "hits": int(s.extra.get("hits", 0)),
        "notes": notes_status(instrument),
    }


def notes_status(instrument: InstrumentControl) -> dict[str, Any] | None:
    """The note voices for the page's keyboard (None without a note model): instruments, the one playing or
    the morph, its pitch range, and counts."""
    voices = getattr(instrument, "notes", None)
    if voices is None:
        return None
    current = voices.instrument
    return {
        "instruments": list(voices.model.instruments),
        "instrument": current if isinstance(current, int) else -1,
        "morph": list(voices.morph) if voices.morph is not None else None,
        "morph_amount": round(float(voices.morph_amount), 3),
        "range": list(voices.pitch_range),
        "sounding": voices.sounding(),
        "played": voices.started,
        "refused": voices.refused,
    }


class Publisher:
    """The thread that watches the instrument and feeds the :class:`Hub` (see the module docstring).

    Args:
        instrument: the engine.
        screen: returns the device screen now (``DeviceApp.screen``).
        post: called with ``(kind, payload)`` from this thread; must hand over to the event loop
            without blocking (``loop.call_soon_threadsafe``).
        status_hz: looks per second.
        analysis_interval: seconds between two impact analyses at least (changes in between coalesce).
    """

    def __init__(
        self,
        instrument: InstrumentControl,
        screen: Callable[[], Any],
        post: Callable[[str, Payload], None],
        *,
        status_hz: float = 20.0,
        analysis_interval: float = 0.15,
    ) -> None:
        self.instrument = instrument
        self.screen = screen
        self.post = post
        self.period = 1.0 / status_hz
        self.analysis_interval = analysis_interval
        self.impacts = 0
        self.last_error = ""
        self._impact_key: tuple[Any, ...] | None = None
        self._last_analysis = 0.0
        self._screen: Any = None
        self._anchors_model: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (daemon)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="neurorack-panel-publisher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self.step()
            except Exception as exc:  # the panel must keep running whatever the instrument says
                text = f"{type(exc).__name__}: {exc}"
                if text != self.last_error:
                    log.error("panel publisher: %s", text, exc_info=exc)
                self.last_error = text
            self._stop.wait(max(0.0, self.period - (time.monotonic() - t0)))

    def step(self) -> None:
        """One look at the instrument: status, screen (when it changed), impact and anchors (when new)."""
        inst = self.instrument
        status = status_message(inst)
        self.post("status", json.dumps(status, separators=(",", ":")))
        screen = self.screen()
        if screen != self._screen:
            self._screen = screen
            self.post("screen", screen_frame(render_png(screen)))
        model = status["model"]
        if model != self._anchors_model:
            self._anchors_model = model
            self.post("anchors", json.dumps(self._anchors(model), separators=(",", ":")))
        now = time.monotonic()
        if now - self._last_analysis < self.analysis_interval:
            return
        audio = inst.current_impact()
        if audio is None:
            return
        curves = inst.current_curves()
        key = (
            model,
            audio.size,
            zlib.crc32(np.ascontiguousarray(audio).tobytes()),
            None if curves is None else zlib.crc32(np.ascontiguousarray(curves).tobytes()),
        )
        if key == self._impact_key:
            return
        self._impact_key = key
        self._last_analysis = now
        self.impacts += 1
        sr = int(status["sample_rate"])
        message = impact_message(audio, sr, self.impacts, curves, self._hop_s())
        self.post("pcm", pcm_frame(audio, sr, self.impacts))
        self.post("impact", json.dumps(message, separators=(",", ":")))

    def _model(self) -> Any:
        return getattr(self.instrument, "model", None)

    def _hop_s(self) -> float:
        m = self._model()
        try:
            return float(m.hop_length) / float(m.sample_rate)
        except (AttributeError, TypeError, ValueError, ZeroDivisionError):
            return 512.0 / 44100.0

    def _anchors(self, label: str) -> dict[str, Any]:
        anchors = getattr(self._model(), "anchors", None)
        return anchors_message(label, anchors if isinstance(anchors, dict) else None, self._hop_s())
