"""Render-ahead: the thread that turns the current controls into the next impact, off the audio thread.

It wakes when a control changes (or every ``POLL`` seconds, to see audio-rate CVs, gate 2 and
MIDI CCs set on the audio thread), takes the latest controls (intermediate ones are skipped:
changes coalesce), and renders at most once per ``render_interval_ms`` and never more than a third
of the time (renders are spaced by three times the last render's duration). The model runs with one
torch thread at a lower OS priority (nice +5 on Linux) so it never starves the audio thread; a
1 s impact of the bundled model renders in about 5 ms on one core.

Controls → curves (see :mod:`neurorack.engine.calibration` for the volts):

1. the CV assigned to ``position`` picks the curves between the anchors (0 V bipolar = halfway);
2. ``duration`` (parameter, s) stretches them in time when set;
3. each CV assigned to a descriptor scales (or, for flatness, offsets) its curve;
4. descriptor offsets (``/neurorack/descriptor/<name>``) are added, in the descriptor's unit;
5. ``inharmonicity`` (parameter plus CVs) goes to the model's β knob when it has one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from neurorack.curves.anchors import edit_ratios
from neurorack.engine import calibration as cal
from neurorack.errors import NeurorackError

if TYPE_CHECKING:
    from neurorack.engine.instrument import Engine

log = logging.getLogger("neurorack.engine.renderer")

#: Seconds between looks at the controls when nothing wakes the renderer.
POLL = 0.004
#: Renders are spaced by at least DUTY × the last render's time, so rendering takes at most 1/DUTY of a core.
DUTY = 3.0
#: OS niceness added to the renderer thread (Linux), so the audio thread wins the CPU.
NICE = 5


class Renderer:
    """The render-ahead thread of one :class:`~neurorack.engine.instrument.Engine`.

    Attributes:
        renders: impacts rendered so far.
        last_render_ms: wall time of the last render (model and curves), ms.
        last_ahead_ms: time from the last control change to its impact being published, ms.
        seed: noise seed of the current impact (gate 2 advances it).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.renders = 0
        self.last_render_ms = 0.0
        self.last_ahead_ms = 0.0
        self.seed = 0
        self._model_id = 0
        self._rendered: tuple[Any, ...] | None = None
        self._seen_requests = 0
        self._last_render_t = 0.0
        self._pending_since: float | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._models: deque[str | None] = deque()
        self._thread: threading.Thread | None = None
        self._pending = False

    # -- control from other threads --------------------------------------------------------------
    def wake(self, pending: bool = False) -> None:
        """Look at the controls now; ``pending``: they changed (status shows a render pending until
        the renderer has looked)."""
        if pending:
            self._pending = True
        self._wake.set()

    def request_model(self, spec: str | None) -> None:
        """Load ``spec`` (None: the bundled default) on the renderer thread, then re-render."""
        self._models.append(spec)
        self._wake.set()

    @property
    def pending(self) -> bool:
        """Controls changed and their impact is not published yet."""
        return self._pending or bool(self._models)

    def start(self) -> None:
        """Start the thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="neurorack-renderer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (idempotent)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    # -- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        import torch

        torch.set_num_threads(1)
        if hasattr(os, "setpriority"):
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        while not self._stop.is_set():
            self._wake.wait(POLL)
            self._wake.clear()
            if self._stop.is_set():
                break
            self._drain_notes()
            try:
                self._step()
            except Exception as exc:  # a render must never kill the thread
                self.engine.note(f"render failed: {type(exc).__name__}: {exc}")
                self._rendered = (*self.engine.control_snapshot(), self._model_id, self.seed)
                self._pending = False

    def _drain_notes(self) -> None:
        notes = self.engine._notes
        while notes:
            try:
                self.engine.note(notes.popleft())
            except IndexError:
                break

    def _step(self) -> None:
        eng = self.engine
        while self._models:
            spec = self._models.popleft()
            self._load(spec)
        requests = eng.rerender_requests
        forced = requests != self._seen_requests
        if forced:
            self._seen_requests = requests
            self.seed += 1
        key = (*eng.control_snapshot(), self._model_id, self.seed)
        if key == self._rendered:
            self._pending = False
            self._pending_since = None
            return
        if (
            not forced
            and eng.parameters()["follow_cvs"] < 0.5
            and self._rendered is not None
            and self._rendered[-2] == self._model_id
        ):
            self._pending = False  # nothing renders until gate 2
            return  # CVs wait for gate 2 (only a new model renders by itself)
        if self._pending_since is None:
            now = time.perf_counter()
            self._pending_since = eng.changed_at if self._last_render_t < eng.changed_at <= now else now
        self._pending = True
        # coalesce: at most one render per render_interval_ms, and the renderer busy at most 1/DUTY of the time
        interval = max(eng.parameters()["render_interval_ms"] / 1000.0, DUTY * self.last_render_ms / 1000.0)
        wait = self._last_render_t + interval - time.perf_counter()
        if wait > 0 and not forced:
            self._stop.wait(wait)  # coalesce: the loop takes the newest controls after the pause
            self._wake.set()
            return
        self.render(key)

    def _load(self, spec: str | None) -> None:
        eng = self.engine
        try:
            loaded, label = eng._load(spec)
            eng.check_transfer_model(loaded)  # live transfer keeps the old model rather than a non-autoencoder
        except NeurorackError as exc:
            eng.note(f"cannot switch model: {exc}")
            return
        eng.model = loaded
        eng._model_label = label
        eng._model_spec = spec
        if spec is not None and spec not in eng._model_specs:
            eng._model_specs.append(spec)
        self._model_id += 1
        eng.rebuild_transfer()
        eng.note(f"model {label} loaded", level=logging.INFO)

    # -- rendering -------------------------------------------------------------------------------
    def curves(self) -> tuple[np.ndarray, float, dict[str, float]]:
        """Descriptor curves ``float32[frames, 7]``, the inharmonicity and the descriptors the CVs and
        offsets moved (name -> ratio to the anchor curves: :meth:`Generator.focus`)."""
        eng = self.engine
        model = eng.model
        params = eng.parameters()
        cv_range = params["cv_range"]
        volts = eng.cvs()
        assignments = eng.assignments()
        position = 0.5
        for cv, target in assignments.items():
            if target == "position":
                position = cal.position(cal.normalise(volts[cv - 1], cv_range))
                break
        curves = model.position_curves(position) if model.anchors else _flat_curves(model)
        if params["duration"] > 0:
            curves = model.stretch(curves, params["duration"])
        scale, offset, beta = cal.descriptor_edits(volts, assignments, eng.offsets(), cv_range)
        inharmonicity = params["inharmonicity"] + beta
        edited = model.edit(curves, scale=scale, offset=offset)
        return edited, inharmonicity, edit_ratios(curves, edited)

    def render_now(self) -> None:
        """Render and publish the impact for the current controls on the calling thread."""
        self.render((*self.engine.control_snapshot(), self._model_id, self.seed))

    def render(self, key: tuple[Any, ...]) -> None:
        """Render the impact for the controls in ``key`` and publish it."""
        eng = self.engine
        t0 = time.perf_counter()
        curves, inharmonicity, moved = self.curves()
        net = getattr(eng.model, "model", None)
        if net is not None and hasattr(net, "inharmonicity"):
            net.inharmonicity = float(inharmonicity)
        with eng.model.focus(moved):  # the knobs the player turned win where requests conflict
            audio = eng.model.generate(curves, seed=self.seed)
        if eng.model.sample_rate != eng.sample_rate:
            from neurorack.audio_io import resample

            audio = resample(audio, eng.model.sample_rate, eng.sample_rate)
        self.last_render_ms = (time.perf_counter() - t0) * 1000.0
        slot = eng.pool.acquire(eng.voices.in_use(), eng.periods_done)
        while slot < 0:  # every slot is playing: wait for a voice to end
            if self._stop.wait(0.002):
                return
            slot = eng.pool.acquire(eng.voices.in_use(), eng.periods_done)
        eng.pool.write(slot, audio, curves)
        eng.pool.publish(slot, eng.periods_done)
        now = time.perf_counter()
        if self._pending_since is not None:
            self.last_ahead_ms = (now - self._pending_since) * 1000.0
        self._pending_since = None
        self._last_render_t = now
        self._rendered = key
        self._pending = False
        self.renders += 1


def _flat_curves(model: Any) -> np.ndarray:
    """A plain 0.5 s decaying impact for a model without anchors."""
    frames = max(1, round(0.5 * model.sample_rate / model.hop_length))
    t = np.linspace(0.0, 1.0, frames, dtype=np.float32)
    curves = np.zeros((frames, 7), dtype=np.float32)
    curves[:, 0] = 0.2 * np.exp(-5.0 * t)
    curves[:, 1] = 0.05
    curves[:, 2] = 6000.0
    curves[:, 3] = 0.3
    curves[:, 4] = 2000.0
    curves[:, 5] = 2500.0
    curves[:, 6] = 120.0
    return curves
