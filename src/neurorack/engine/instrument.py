"""The real-time engine: the instrument behind every control surface (SPEC §4, §7).

Threads and who owns what:

* **audio thread** (the backend's): :meth:`Engine.process` — drains the event queue, decodes
  JACK MIDI, scans the audio-rate gate and CV inputs, starts voices on the published impact,
  mixes, applies the volume and the limiter, feeds the recorder. It never waits on a lock,
  never allocates an audio buffer (everything is preallocated; only small Python scalars and
  views are created) and never touches the model.
* **renderer thread** (:class:`~neurorack.engine.renderer.Renderer`): turns the current controls
  into descriptor curves, runs the model (one torch thread) and publishes the impact by an atomic
  reference swap (:class:`~neurorack.engine.impacts.ImpactPool`), ahead of any trigger.
* **surfaces** (OSC, MIDI, the device, Python): call the :class:`InstrumentControl` methods, which
  only store a value or post an event (:class:`~neurorack.engine.events.EventQueue`).

With ``transfer=True`` a fourth thread, the live-transfer worker
(:class:`~neurorack.engine.live_transfer.LiveTransfer`), turns the audio input (JACK port ``in``) into
output through a ``fader-ae`` model, its measured descriptors edited by the CVs and offsets; the audio
thread only moves samples through two rings and mixes the result with any impact voices.

Gate 1's rising edge plays the current impact at once (sample-accurate for audio-rate gates
and JACK MIDI, at the next period for OSC and Python); gate 2's re-renders it with a fresh noise
seed. CV changes re-render ahead (parameter ``follow_cvs``), coalesced to at most one render per
``render_interval_ms``.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from neurorack.engine import calibration as cal
from neurorack.engine.backends import AudioBackend, open_backend
from neurorack.engine.events import GATE, NOTE, PANIC, EventQueue
from neurorack.engine.events import PROGRAM as PROGRAM_EVENT
from neurorack.engine.gates import GateDetector
from neurorack.engine.impacts import ImpactPool
from neurorack.engine.limiter import SoftLimiter
from neurorack.engine.live_transfer import check_block
from neurorack.engine.midi import CV, GATE_OFF, GATE_ON, MALFORMED, NOTE_OFF, NOTE_ON, PROGRAM, MidiMap
from neurorack.engine.parameters import Parameter, parameter_table
from neurorack.engine.protocol import DEFAULT_ASSIGNMENTS, N_CVS, N_GATES, EngineStatus
from neurorack.engine.recorder import Recorder
from neurorack.engine.voices import PoolVoices, VoicePool
from neurorack.errors import NeurorackError

if TYPE_CHECKING:
    from neurorack.engine.live_transfer import LiveTransfer
    from neurorack.engine.note_voices import NoteVoices
    from neurorack.model_file import LoadedModel
    from neurorack.note_model_file import LoadedNoteModel

log = logging.getLogger("neurorack.engine")

#: Physical voices (stolen voices fade out on the spare half): at most ``VOICE_CAPACITY // 2`` at once.
VOICE_CAPACITY = 64
#: GIL switch interval while the engine runs, s (Python's default 5 ms is longer than a period).
SWITCH_INTERVAL = 0.0005


class Engine:
    """The playable instrument. Implements :class:`~neurorack.engine.protocol.InstrumentControl`.

    Args:
        model: a bundled model name, a model file, an already loaded model, or None for the
            bundled default.
        audio: backend, ``"jack"``, ``"null"`` (``"portaudio"`` is not in this build).
        period: frames per audio call for the null backend (JACK uses its server's period).
        sample_rate: Hz for the null backend (default: the model's).
        voices: voices at once (a new hit beyond it steals the oldest with a short fade).
        max_seconds: longest impact kept, s (longer ones are cut with a fade).
        midi_map: mapping of JACK MIDI (and RtMidi) input; default :class:`MidiMap`.
        client_name: JACK client name.
        server: JACK server name (default ``$JACK_DEFAULT_SERVER`` / ``default``).
        autoconnect: connect the JACK output to the physical playback ports.
        transfer: live transfer of the audio input (JACK port ``in``; the null backend's input is
            silence unless fed with :meth:`NullBackend.feed <neurorack.engine.null_backend.NullBackend.feed>`)
            through the model, which must be a ``fader-ae`` autoencoder at the backend's sample rate;
            the CVs and descriptor offsets edit the measured descriptors
            (:mod:`neurorack.engine.live_transfer`). Gates still play impacts, mixed in.
        transfer_block: samples per model call in transfer mode (a multiple of the model's hop);
            the latency grows by twice this.
        connect_input: with JACK, connect this output port (e.g. ``system:capture_1``) to ``in``.

    Raises:
        NeurorackError: the model cannot be loaded (or cannot transfer audio, in transfer mode), the
            backend cannot be opened, bad settings.

    Example::

        with Engine(audio="null") as engine:
            engine.set_cv(3, 2.5)        # brighter (CV 3 = centroid, +2.5 V = +half an octave)
            engine.gate(1, True)         # play
            engine.gate(1, False)
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | LoadedModel | None = None,
        *,
        audio: str = "null",
        period: int = 128,
        sample_rate: int | None = None,
        voices: int = 8,
        max_seconds: float = 4.0,
        midi_map: MidiMap | None = None,
        client_name: str = "neurorack",
        server: str | None = None,
        autoconnect: bool = True,
        transfer: bool = False,
        transfer_block: int = 1024,
        connect_input: str | None = None,
        notes: str | os.PathLike[str] | LoadedNoteModel | None = None,
        note_voices: int = 8,
    ) -> None:
        from neurorack.model_file import LoadedModel
        from neurorack.note_model_file import LoadedNoteModel, load_note_model

        if not 1 <= voices <= VOICE_CAPACITY // 2:
            raise NeurorackError(f"--voices must lie in 1..{VOICE_CAPACITY // 2}, got {voices}")
        if not 0.1 <= max_seconds <= 30.0:
            raise NeurorackError(f"max_seconds must lie in 0.1..30, got {max_seconds}")
        self._model_specs: list[str] = []
        if isinstance(model, LoadedModel):
            loaded = model
            label = model.name
        else:
            loaded, label = self._load(model)
            if model is not None:
                self._model_specs.append(os.fspath(model))
        self.model: LoadedModel = loaded
        self._model_label = label
        self._model_spec: str | None = None if model is None or isinstance(model, LoadedModel) else os.fspath(model)
        #: Live transfer of the audio input is on (``transfer=True``).
        self.transfer_enabled = bool(transfer)
        self._transfer_block = transfer_block
        if transfer:
            from neurorack.models.transfer import transfer_model_of

            ae = transfer_model_of(loaded)
            try:
                check_block(transfer_block, ae.hop_length)
            except ValueError as exc:
                raise NeurorackError(str(exc)) from None
        self.backend: AudioBackend = open_backend(
            audio,
            sample_rate=sample_rate or loaded.sample_rate,
            period=period,
            client_name=client_name,
            server=server,
            autoconnect=autoconnect,
            connect_input=connect_input,
        )
        self.sample_rate = self.backend.sample_rate
        self._transfer: LiveTransfer | None = None
        if transfer:
            try:
                self.check_transfer_model(loaded)
                self._transfer = self._build_transfer(loaded)
            except BaseException:
                self.backend.stop()
                raise
        self.max_seconds = float(max_seconds)
        max_block = self.backend.max_period
        self.midi_map = midi_map or MidiMap(notes=notes is not None)
        #: The note voices of ``notes`` (a note model: MIDI notes and program changes play it), or None.
        self.notes: NoteVoices | None = None
        if notes is not None:
            from neurorack.engine.note_voices import NoteVoices

            try:
                note_model = notes if isinstance(notes, LoadedNoteModel) else load_note_model(notes)
                self.notes = NoteVoices(note_model, self.sample_rate, max_block, voices=note_voices)
            except BaseException:
                self.backend.stop()
                raise

        # --- preallocated audio-thread state -----------------------------------------------------
        self.pool = ImpactPool(VOICE_CAPACITY + 4, math.ceil(max_seconds * self.sample_rate))
        self.voices = VoicePool(VOICE_CAPACITY, max_block, limit=voices)
        #: What the audio callback mixes, one group after another: the impact voices, then any note voices.
        self.voice_groups: list[PoolVoices | NoteVoices] = [PoolVoices(self.voices, self.pool.buffers)]
        if self.notes is not None:
            self.voice_groups.append(self.notes)
        self.limiter = SoftLimiter(self.sample_rate, max_block)
        self._mix = np.zeros(max_block, dtype=np.float32)
        self._detectors = [GateDetector(max_block) for _ in range(N_GATES)]
        self.events = EventQueue()
        self._surface_gates = [False] * N_GATES
        self._midi_gates = [0] * N_GATES  # notes held per gate
        self._cv_surface = [0.0] * N_CVS  # volts set by surfaces (OSC, MIDI CCs, device, Python)
        self._cv_input = [0.0] * N_CVS  # volts from the audio-rate inputs
        self._volume = 1.0
        self._input_volts = 10.0
        self._gate_threshold = 1.0
        self._velocity_db = 24.0
        self._notes: deque[str] = deque(maxlen=64)  # messages from the audio thread, logged by the renderer
        self.periods_done = 0
        self.rerender_requests = 0
        self.late_callbacks = 0
        self.malformed_midi = 0
        #: Backend frame time (JACK's clock with JACK) of the last hit's first sample on the output, -1 before.
        self.last_onset_frame = -1
        self._load_ema = 0.0
        self._busy_total = 0.0
        self._wall_start = 0.0
        self._voices_now = 0

        # --- controls read by the renderer ------------------------------------------------------
        self._param_table: dict[str, Parameter] = parameter_table(self.voices.max_limit, self.max_seconds)
        self._params: dict[str, float] = {n: p.default for n, p in self._param_table.items()}
        self._params["max_voices"] = float(voices)
        self._assignments: dict[int, str] = dict(DEFAULT_ASSIGNMENTS)
        self._offsets: dict[str, float] = {}
        self.changed_at = time.perf_counter()
        self.message = ""
        self._message_at = 0.0
        self._recorder: Recorder | None = None
        self._running = False
        self._old_switch: float | None = None

        from neurorack.engine.renderer import Renderer

        self.renderer = Renderer(self)

    # ------------------------------------------------------------------------------------------
    # life cycle
    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _load(spec: str | os.PathLike[str] | None) -> tuple[LoadedModel, str]:
        from neurorack.model_file import load_model, model_label

        loaded = load_model(spec)
        return loaded, model_label(loaded, spec if spec is not None else "default")

    def start(self, record: str | os.PathLike[str] | None = None) -> Engine:
        """Render the first impact, then start the renderer and the audio backend.

        Args:
            record: also record the output mix to this file (see :meth:`start_recording`).
        """
        if self._running:
            return self
        import torch

        torch.set_num_threads(1)
        if record is not None:
            self.start_recording(record)
        self.renderer.render_now()  # the first trigger must not wait
        self.renderer.start()
        if self.notes is not None:
            self.notes.start()
        if self._transfer is not None:
            self._transfer.start()
        self._old_switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        self._wall_start = time.perf_counter()
        self.backend.start(self.process)
        self._running = True
        return self

    def stop(self) -> Path | None:
        """Stop audio and rendering; finish the recording. Returns the recording's path, if any."""
        was_running = self._running
        self._running = False
        self.backend.stop()
        self.renderer.stop()
        if self.notes is not None:
            self.notes.stop()
        if self._transfer is not None:
            self._transfer.stop()
        if self._old_switch is not None:
            sys.setswitchinterval(self._old_switch)
            self._old_switch = None
        path = self.stop_recording()
        if was_running:
            log.info("engine stopped")
        return path

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """The backend is calling the engine."""
        return self._running

    def start_recording(self, path: str | os.PathLike[str]) -> None:
        """Record the output mix to ``path`` (``.wav``, ``.flac``, ``.aiff``) until :meth:`stop_recording`.

        Raises:
            NeurorackError: already recording, or a bad destination.
        """
        if self._recorder is not None:
            raise NeurorackError(f"already recording to {self._recorder.path}")
        self._recorder = Recorder(path, self.sample_rate)

    def stop_recording(self) -> Path | None:
        """Finish the recording (atomic rename); returns its path, or None when not recording."""
        rec = self._recorder
        if rec is None:
            return None
        self._recorder = None
        time.sleep(2 * self.backend.period / self.sample_rate)  # let a running callback finish its push
        return rec.close()

    # ------------------------------------------------------------------------------------------
    # live transfer
    # ------------------------------------------------------------------------------------------
    @property
    def live_transfer(self) -> LiveTransfer | None:
        """The live-transfer processor (transfer mode), or None."""
        return self._transfer

    def check_transfer_model(self, loaded: LoadedModel) -> None:
        """In transfer mode, refuse a model that cannot transfer live audio (no-op otherwise).

        Raises:
            NeurorackError: not a ``fader-ae`` autoencoder, another sample rate than the backend's, or
                a hop that does not divide the transfer block (one line each).
        """
        if not self.transfer_enabled:
            return
        from neurorack.models.transfer import transfer_model_of

        ae = transfer_model_of(loaded)
        if ae.sample_rate != self.sample_rate:
            raise NeurorackError(
                f"model {loaded.name!r} runs at {ae.sample_rate} Hz and the audio at {self.sample_rate} Hz: "
                "live transfer needs both at the same rate (run the JACK server at the model's rate)"
            )
        try:
            check_block(self._transfer_block, ae.hop_length)
        except ValueError as exc:
            raise NeurorackError(str(exc)) from None

    def _build_transfer(self, loaded: LoadedModel) -> LiveTransfer:
        from neurorack.engine.live_transfer import LiveTransfer
        from neurorack.models.transfer import transfer_model_of

        return LiveTransfer(
            transfer_model_of(loaded),
            loaded.descriptor_config,
            period=self.backend.period,
            max_period=self.backend.max_period,
            block=self._transfer_block,
            edits=self.transfer_edits,
        )

    def rebuild_transfer(self) -> None:
        """After a model change (renderer thread): a fresh processor for the current model, swapped in
        atomically; the output is silent for one latency while it fills. No-op outside transfer mode."""
        if not self.transfer_enabled:
            return
        try:
            new = self._build_transfer(self.model)
            if self._running:
                new.start()
        except Exception as exc:
            self.note(f"live transfer kept the previous model: {type(exc).__name__}: {exc}")
            return
        old, self._transfer = self._transfer, new
        if old is not None:
            old.stop()

    def transfer_edits(self) -> tuple[dict[str, float], dict[str, float]]:
        """``(scale, offset)`` the CVs and descriptor offsets ask of the measured descriptors (live transfer).

        The impact instrument's calibration (:func:`~neurorack.engine.calibration.descriptor_edits`);
        ``position`` and ``inharmonicity`` CVs and offsets have no meaning for an input sound and are ignored.
        """
        scale, offset, _ = cal.descriptor_edits(self.cvs(), self._assignments, self._offsets, self._params["cv_range"])
        return scale, offset

    def note(self, message: str, *, level: int = logging.WARNING) -> None:
        """Log ``message`` and show it in the status (any thread but the audio thread)."""
        log.log(level, "%s", message)
        if level >= logging.WARNING:
            self.message = message
            self._message_at = time.monotonic()

    # ------------------------------------------------------------------------------------------
    # the audio callback
    # ------------------------------------------------------------------------------------------
    def _trigger(self, offset: int, velocity: float) -> None:
        cur = self.pool.current
        if cur < 0:
            return
        gain = cal.velocity_gain(velocity, self._velocity_db) if velocity < 1.0 else 1.0
        self.voices.start(cur, self.pool.lengths[cur], offset, gain)
        self.last_onset_frame = self.backend.cycle_frame + offset

    def _note_on(self, pitch: int, velocity: int, offset: int) -> None:
        notes = self.notes
        if notes is None:
            return
        if notes.note_on(pitch, velocity, offset) >= 0:
            self.last_onset_frame = self.backend.cycle_frame + offset
        else:
            self._notes.append(f"note {pitch} is outside the instrument's range {notes.pitch_range}; not played")

    def _edge(self, gate: int, offset: int, velocity: float) -> None:
        if gate == 1:
            self._trigger(offset, velocity)
        else:
            self.rerender_requests += 1

    def process(
        self,
        out: np.ndarray,
        gates: Sequence[np.ndarray] | None = None,
        cvs: Sequence[np.ndarray] | None = None,
        midi: Iterable[tuple[int, bytes]] | None = None,
        audio_in: np.ndarray | None = None,
    ) -> None:
        """Fill ``out: float32[n]`` with the next ``n`` samples (audio thread; see the module docstring).

        Args:
            out: the output block, written in place.
            gates: audio-rate gate inputs (2 blocks of ``n`` samples, digital units) or None.
            cvs: audio-rate CV inputs (4 blocks) or None.
            midi: ``(frame offset, raw bytes)`` MIDI events of this period, or None.
            audio_in: the audio input block (``float32[n]``, digital full scale = 1) the live transfer
                takes, or None (silence). Ignored outside transfer mode.
        """
        t0 = time.perf_counter()
        n = out.shape[0]
        mix = self._mix[:n]  # the port buffer only ever receives finished (limited) samples
        mix.fill(0.0)
        # 1. events posted by the control surfaces
        events = self.events
        ev = events.pop()
        while ev is not None:
            kind, index, value, velocity = ev
            if kind == GATE:
                g = index - 1
                if value and not self._surface_gates[g]:
                    self._edge(index, 0, velocity)
                self._surface_gates[g] = bool(value)
            elif kind == PANIC:
                for group in self.voice_groups:
                    group.clear()
            elif kind == NOTE:
                if value:
                    self._note_on(index, int(velocity), 0)
                elif self.notes is not None:
                    self.notes.note_off(index)
            elif kind == PROGRAM_EVENT and self.notes is not None:
                self.notes.select(index)
            ev = events.pop()
        # 2. MIDI, at its frame
        if midi is not None:
            decode = self.midi_map.decode
            for offset, data in midi:
                kind, index, fvalue = decode(bytes(data))
                if kind == GATE_ON:
                    self._midi_gates[index - 1] += 1
                    self._edge(index, min(max(int(offset), 0), n - 1), fvalue)
                elif kind == GATE_OFF:
                    self._midi_gates[index - 1] = max(0, self._midi_gates[index - 1] - 1)
                elif kind == CV:
                    self._cv_surface[index - 1] = cal.volts_for(2.0 * fvalue - 1.0, self._params["cv_range"])
                elif kind == NOTE_ON:
                    self._note_on(index, int(fvalue), min(max(int(offset), 0), n - 1))
                elif kind == NOTE_OFF and self.notes is not None:
                    self.notes.note_off(index)
                elif kind == PROGRAM and self.notes is not None:
                    self.notes.select(index)
                elif kind == MALFORMED:
                    self.malformed_midi += 1
                    self._notes.append("ignored a malformed MIDI message")
        # 3. audio-rate gates (sample-accurate) and CVs
        if gates is not None:
            high = self._gate_threshold / self._input_volts
            for g in range(N_GATES):
                det = self._detectors[g]
                count = det.process(gates[g][:n], high, 0.5 * high)
                for k in range(count):
                    self._edge(g + 1, int(det.offsets[k]), 1.0)
        if cvs is not None:
            scale = self._input_volts
            for c in range(N_CVS):
                v = float(cvs[c][:n].mean()) * scale
                self._cv_input[c] = v if math.isfinite(v) else 0.0
        notes = self.notes
        if notes is not None and notes.morph is not None:  # CV 1 morphs the note voices' instrument
            u = cal.normalise(self._cv_surface[0] + self._cv_input[0], self._params["cv_range"])
            notes.morph_amount = cal.position(u)
        # 4. voices, live transfer, volume, limiter
        sounding = 0
        for group in self.voice_groups:
            sounding += group.mix(mix)
        self._voices_now = sounding
        transfer = self._transfer
        if transfer is not None:
            transfer.process(audio_in, mix, self.backend.cycle_frame)
        if self._volume != 1.0:
            mix *= self._volume
        self.limiter.process(mix)
        np.copyto(out, mix)
        rec = self._recorder
        if rec is not None:
            rec.push(mix)
        self.periods_done += 1
        dt = time.perf_counter() - t0
        budget = n / self.sample_rate
        self._busy_total += dt
        self._load_ema += 0.01 * (dt / budget - self._load_ema)
        if dt > budget:
            self.late_callbacks += 1

    # ------------------------------------------------------------------------------------------
    # InstrumentControl
    # ------------------------------------------------------------------------------------------
    def gate(self, index: int, high: bool, velocity: float = 1.0) -> None:
        """Set gate ``index`` (1 or 2); ``velocity`` 0…1 sets the level of a gate-1 hit (1 = full).

        Raises:
            ValueError: bad index or velocity.
        """
        if index not in (1, 2):
            raise ValueError(f"gate must be 1 or 2, got {index!r}")
        if not (isinstance(velocity, int | float) and math.isfinite(velocity) and 0.0 <= velocity <= 1.0):
            raise ValueError(f"velocity must lie in 0..1, got {velocity!r}")
        self.events.post(GATE, index, 1 if high else 0, float(velocity))
        if index == 2 and high:
            self.renderer.wake()

    def play_note(self, pitch: int, velocity: int = 100) -> None:
        """Start a note of the note voices at the next period (any thread; ignored without ``notes``).

        Raises:
            NeurorackError: a pitch outside 0–127 or a velocity outside 1–127.
        """
        if not 0 <= int(pitch) <= 127 or not 1 <= int(velocity) <= 127:
            raise NeurorackError(f"a note needs a MIDI pitch 0..127 and velocity 1..127, got {pitch}, {velocity}")
        self.events.post(NOTE, int(pitch), 1, float(int(velocity)))

    def release_note(self, pitch: int) -> None:
        """Release ``pitch`` (any thread)."""
        self.events.post(NOTE, int(pitch), 0, 0.0)

    def select_instrument(self, program: int) -> None:
        """The note voices' instrument: ``program`` modulo the note model's instruments (any thread)."""
        self.events.post(PROGRAM_EVENT, int(program), 0, 0.0)

    def set_note_morph(self, a: str | int | None, b: str | int | None = None) -> None:
        """CV 1 morphs the note voices between instruments ``a`` (CV 1 low) and ``b`` (high), live in held notes
        too; ``a = None`` ends the morph (the last selected instrument plays again). Any thread.

        Raises:
            NeurorackError: no note model, or an unknown instrument.
        """
        if self.notes is None:
            raise NeurorackError("no note model is playing (neurorack play --notes MODEL)")
        if a is None:
            self.notes.end_morph()
            return
        self.notes.set_morph(a, a if b is None else b)

    def panic(self) -> None:
        """Silence every voice at the next period."""
        self.events.post(PANIC)

    def set_cv(self, index: int, volts: float) -> None:
        """Set the surface value of CV ``index`` (1–4), volts (±12 V at most).

        Raises:
            ValueError: bad index, non-finite or out-of-range volts.
        """
        if index not in range(1, N_CVS + 1):
            raise ValueError(f"CV must be 1..{N_CVS}, got {index!r}")
        v = float(volts)
        if not (math.isfinite(v) and abs(v) <= cal.MAX_VOLTS):
            raise ValueError(f"CV volts must be finite and within ±{cal.MAX_VOLTS:g} V, got {volts!r}")
        if self._cv_surface[index - 1] != v:
            self._cv_surface[index - 1] = v
            self._changed()

    def cvs(self) -> tuple[float, ...]:
        """Volts of each CV: surface value plus audio-rate input."""
        return tuple(s + i for s, i in zip(self._cv_surface, self._cv_input, strict=True))

    def assignments(self) -> dict[int, str]:
        """CV index → target (see :data:`~neurorack.engine.calibration.TARGETS`)."""
        return dict(self._assignments)

    def assign(self, cv: int, target: str) -> None:
        """Re-assign CV ``cv`` to ``target`` (``position``, a descriptor or alias, ``inharmonicity``).

        Raises:
            ValueError: bad CV index or unknown target.
        """
        if cv not in range(1, N_CVS + 1):
            raise ValueError(f"CV must be 1..{N_CVS}, got {cv!r}")
        name = cal.target_name(str(target))
        new = dict(self._assignments)
        new[cv] = name
        self._assignments = new
        self._changed()

    def set_offset(self, descriptor: str, value: float) -> None:
        """Offset added to one descriptor curve, in its unit (``inharmonicity`` sets the β offset).

        Raises:
            ValueError: unknown descriptor, non-finite or absurd value (beyond ±100 000).
        """
        name = cal.target_name(str(descriptor))
        if name == "position":
            raise ValueError("position has no offset; use CV 1")
        v = float(value)
        if not (math.isfinite(v) and abs(v) <= 1e5):
            raise ValueError(f"offset of {name} must be finite and within ±100000, got {value!r}")
        new = dict(self._offsets)
        new[name] = v
        self._offsets = new
        self._changed()

    def offsets(self) -> dict[str, float]:
        """Descriptor offsets set by :meth:`set_offset`."""
        return dict(self._offsets)

    def parameters(self) -> dict[str, float]:
        """Every parameter and its value (see :mod:`neurorack.engine.parameters` for ranges and units)."""
        return dict(self._params)

    def parameter_info(self) -> dict[str, Parameter]:
        """Range, default, unit and help of every parameter."""
        return dict(self._param_table)

    def set_parameter(self, name: str, value: float) -> None:
        """Set one parameter.

        Raises:
            ValueError: unknown name or a value out of range.
        """
        spec = self._param_table.get(name)
        if spec is None:
            raise ValueError(f"unknown parameter {name!r}; parameters: {', '.join(self._param_table)}")
        v = spec.check(value)
        if name == "max_voices":
            self.voices.limit = int(v)
        elif name == "volume_db":
            self._volume = float(10.0 ** (v / 20.0))
        elif name == "input_volts":
            self._input_volts = v
        elif name == "gate_threshold":
            self._gate_threshold = v
        elif name == "velocity_db":
            self._velocity_db = v
        new = dict(self._params)
        new[name] = v
        self._params = new
        self._changed()

    def models(self) -> list[str]:
        """Bundled model names and the model files given so far."""
        from neurorack.model_file import bundled_models

        out = bundled_models()
        for spec in self._model_specs:
            if spec not in out:
                out.append(spec)
        return out

    def current_model(self) -> str:
        """Label of the model playing now."""
        return self._model_label

    def select_model(self, name: str) -> None:
        """Switch model: loaded on the renderer thread; the old impact plays until the new one is ready.

        Raises:
            ValueError: an empty name.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError("model name must be a non-empty string")
        self.renderer.request_model(name.strip())

    def reload_model(self) -> None:
        """Reload the current model from its file (on the renderer thread)."""
        self.renderer.request_model(self._model_spec)

    def current_impact(self) -> np.ndarray | None:
        """A copy of the impact gate 1 plays now (``float32[samples]`` at :attr:`sample_rate`), or None."""
        return self.pool.impact()

    def current_curves(self) -> np.ndarray | None:
        """The descriptor curves of the current impact (``float32[frames, 7]``), or None."""
        cur = self.pool.current
        curves = self.pool.curves[cur] if cur >= 0 else None
        return None if curves is None else curves.copy()

    def status(self) -> EngineStatus:
        """A snapshot for displays and ``/neurorack/status``."""
        now = time.monotonic()
        message = self.message if now - self._message_at < 10.0 else ""
        pending = self.renderer.pending
        if not self._running:
            led = (0, 0, 0)
        elif message:
            led = (255, 0, 0)
        elif pending:
            led = (0, 0, 255)
        elif self._voices_now:
            led = (0, 255, 0)
        else:
            led = (0, 48, 0)
        wall = time.perf_counter() - self._wall_start if self._running else 0.0
        gates = tuple(
            self._surface_gates[g] or self._midi_gates[g] > 0 or self._detectors[g].state for g in range(N_GATES)
        )
        rec = self._recorder
        extra = {
            "late_callbacks": float(self.late_callbacks),
            "callback_share": self._busy_total / wall if wall > 0 else 0.0,
            "render_ahead_ms": self.renderer.last_ahead_ms,
            "renders": float(self.renderer.renders),
            "hits": float(self.voices.started),
            "stolen_voices": float(self.voices.stolen),
            "limiter_blocks": float(self.limiter.active_blocks),
            "sanitized_blocks": float(self.limiter.sanitized_blocks),
            "malformed_midi": float(self.malformed_midi),
            "periods": float(self.periods_done),
            "last_onset_frame": float(self.last_onset_frame),
        }
        transfer = self._transfer
        if transfer is not None:
            extra.update(transfer.figures())
        notes = self.notes
        if notes is not None:
            instrument = notes.instrument
            extra.update(
                notes=float(notes.started),
                notes_sounding=float(notes.sounding()),
                notes_refused=float(notes.refused),
                notes_waits=float(notes.waits),
                notes_heads=float(notes.heads_ready()),
                notes_instrument=float(instrument) if isinstance(instrument, int) else -1.0,
                notes_morph=float(notes.morph_amount) if notes.morph is not None else -1.0,
            )
        return EngineStatus(
            running=self._running,
            backend=self.backend.name,
            sample_rate=self.sample_rate,
            period=self.backend.period,
            model=self._model_label,
            voices=self._voices_now,
            max_voices=self.voices.limit,
            xruns=self.backend.xruns,
            callback_load=float(self._load_ema),
            render_ms=self.renderer.last_render_ms,
            pending=pending,
            gates=gates,
            cvs=self.cvs(),
            led=led,
            recording=str(rec.path) if rec is not None else "",
            message=message,
            extra=extra,
        )

    # ------------------------------------------------------------------------------------------
    def _changed(self) -> None:
        self.changed_at = time.perf_counter()
        self.renderer.wake(pending=True)

    def control_snapshot(self) -> tuple[Any, ...]:
        """Everything an impact depends on, quantised (the renderer re-renders when it changes)."""
        res = self._params["cv_resolution"]
        cvs = tuple(round((s + i) / res) for s, i in zip(self._cv_surface, self._cv_input, strict=True))
        p = self._params
        return (
            cvs,
            tuple(sorted(self._assignments.items())),
            tuple(sorted(self._offsets.items())),
            p["cv_range"],
            p["duration"],
            p["inharmonicity"],
        )
