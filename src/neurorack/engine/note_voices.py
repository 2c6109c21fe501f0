"""Polyphonic note voices: notes of a note model (SING) streamed into preallocated buffers as they play.

A note-on (audio thread) takes a free voice and posts a request; the note thread (:class:`NoteVoices` runs
one) streams the note with :meth:`~neurorack.note_model_file.LoadedNoteModel.stream` at the engine's rate
(soxr ``LQ``, which releases samples at once; ``HQ`` holds back ~250 ms) into that voice's buffer, the first
samples as soon as the model's look-back allows (``latency_frames``), then keeps every sounding voice
``ahead_ms`` ahead of its play position, the voice closest to running dry first.

While idle, the note thread renders the first :data:`HEAD` samples of every key of the current instrument at
the five trained velocities (the head cache, ~6 MB): a note-on whose key is cached sounds in the same period,
from the cache, and the streamed note takes over after it (crossfaded when the velocity is not one of the
five). Morphs are not cached.

The audio thread only copies what is there (:meth:`NoteVoices.mix`): no lock, no allocation, no model. A
note-off fades the voice out over ``release_ms``; a note sounds at most the model's note length (SING: 4 s,
its own release from 3 s). When every voice sounds, the oldest is stolen (it fades out on a spare buffer
while the new note starts).

Ownership: lists indexed by voice. The audio thread owns ``key``, ``pos``, ``delay``, ``gain``, ``fading``,
``generation``, ``head_len``; the note thread owns ``written`` and ``written_generation`` (samples of the note
of that generation ready in the buffer). A voice plays only its cached head and the samples its own
generation published, so a reused buffer never plays the previous note.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Mapping

import numpy as np

from neurorack.errors import NeurorackError
from neurorack.note_model_file import LoadedNoteModel, NoteStream

#: Frames streamed per step once a note has started (each is ``stride`` model samples).
STEP_FRAMES = 4
#: Idle wait of the note thread between looks at the voices, s.
POLL_SECONDS = 0.0005
#: Samples of each key's start kept ready (the head cache), and the crossfade into the streamed note after them.
HEAD = 2048
HEAD_FADE = 256
#: Velocities the head cache holds per key (SING's five trained rows); a note-on takes the nearest.
HEAD_VELOCITIES = (25, 50, 75, 100, 127)


class NoteVoices:
    """Up to ``voices`` notes at once of one note model, at ``sample_rate``.

    Args:
        model: the note model.
        sample_rate: the engine's rate, Hz (notes are resampled to it as they stream).
        max_block: the largest block :meth:`mix` will see, samples.
        voices: notes sounding at once (a further note-on steals the oldest), 1–32.
        release_ms: fade-out after a note-off, ms.
        ahead_ms: how far ahead of its play position each voice is kept rendered, ms.
    """

    def __init__(
        self,
        model: LoadedNoteModel,
        sample_rate: int,
        max_block: int,
        *,
        voices: int = 8,
        release_ms: float = 60.0,
        ahead_ms: float = 150.0,
    ) -> None:
        if not 1 <= voices <= 32:
            raise NeurorackError(f"note voices must lie in 1..32, got {voices}")
        self.model = model
        self.sample_rate = int(sample_rate)
        self.limit = voices
        self.capacity = 2 * voices  # stolen voices fade out on the spare half
        self.fade = max(1, round(release_ms * 1e-3 * sample_rate))
        self.ahead = max(max_block, round(ahead_ms * 1e-3 * sample_rate))
        self.max_samples = math.ceil(model.note_seconds * sample_rate) + 1024  # + the resampler's rounding
        self.buffers = [np.zeros(self.max_samples, dtype=np.float32) for _ in range(self.capacity)]
        self._ramp = np.linspace(1.0, 0.0, self.fade, dtype=np.float32)
        self._tmp = np.zeros(max_block, dtype=np.float32)
        cap = self.capacity
        # audio thread
        self.key = [-1] * cap  # MIDI pitch held, -1 = free or fading
        self.active = [False] * cap
        self.pos = [0] * cap
        self.delay = [0] * cap
        self.gain = [1.0] * cap
        self.fading = [-1] * cap  # samples of fade left, -1 = not fading
        self.serial = [0] * cap
        self.generation = [0] * cap
        self._next_serial = 1
        # note thread
        self.written = [0] * cap
        self.written_generation = [0] * cap
        self.finished = [False] * cap  # the note's last sample is written
        # the head cache: audio thread reads, note thread fills; an entry counts when its epoch is the current one
        self.head_len = [0] * cap  # samples of the cached head copied into the voice's buffer (audio thread)
        self._heads = np.zeros((128, len(HEAD_VELOCITIES), HEAD + HEAD_FADE), dtype=np.float32)
        self._head_epoch = [[-1] * len(HEAD_VELOCITIES) for _ in range(128)]
        self._epoch = 0  # bumped whenever the instrument changes
        self._head_skip = [0] * cap  # note thread: stream samples still to drop (the head plays them)
        self._head_blend = [False] * cap  # note thread: crossfade the stream into the cached head
        self._streamed = [0] * cap  # note thread: samples the voice's stream produced
        self._fade_in = np.linspace(0.0, 1.0, HEAD_FADE, dtype=np.float32)
        self._requests: deque[tuple[int, int, int, float, np.ndarray, tuple[int, int] | None, int]] = deque()
        # every instrument's weights and range, so a program change on the audio thread only stores references
        self._presets = [(model.weights(i), model.pitch_range(i)) for i in range(len(model.instruments))]
        self._weights, self._range = self._presets[0]
        #: The instrument last chosen by index (a program change), which plays again when a morph ends.
        self.selected = 0
        self._instrument: str | int | Mapping[str | int, float] = 0
        #: The two instruments CV 1 morphs between (:meth:`set_morph`), or None; and where it is, 0..1.
        self.morph: tuple[int, int] | None = None
        self.morph_amount = 0.0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        #: Notes started, stolen, refused (outside the instrument's range), and periods a voice waited for audio.
        self.started = 0
        self.stolen = 0
        self.refused = 0
        self.waits = 0

    # -- control thread ---------------------------------------------------------------------------------------
    def set_instrument(self, instrument: str | int | Mapping[str | int, float]) -> None:
        """The instrument (name, index, or ``{name: weight}`` morph) of the next notes.

        Raises:
            NeurorackError: unknown instruments or bad weights.
        """
        weights = self.model.weights(instrument)
        self._range = self.model.pitch_range(instrument)
        self._weights = weights  # one reference store: the audio thread snapshots it at note-on
        self._instrument = instrument
        self._epoch += 1

    def select(self, program: int) -> None:
        """Instrument ``program`` modulo the number of instruments (a MIDI program change; audio thread).
        Ends a morph."""
        index = program % len(self._presets)
        if index == self._instrument and self.morph is None:
            return
        self.morph = None
        self._weights, self._range = self._presets[index]
        self._instrument = index
        self.selected = index
        self._epoch += 1

    def set_morph(self, a: str | int, b: str | int) -> None:
        """Morph between instruments ``a`` and ``b``: :attr:`morph_amount` (0 = a, 1 = b; CV 1 in the engine)
        mixes their embeddings, in new notes and live in the notes that sound. Pitches: those both play.

        Raises:
            NeurorackError: an unknown instrument.
        """
        ia, ib = self.model.index(a), self.model.index(b)
        self._range = self.model.pitch_range({ia: 1.0, ib: 1.0})
        self._instrument = {self.model.instruments[ia]: 0.5, self.model.instruments[ib]: 0.5}
        self.morph = (ia, ib)
        self._epoch += 1

    def end_morph(self) -> None:
        """End a morph: the instrument last chosen by index plays again."""
        if self.morph is not None:
            self.morph = None
            self._instrument = -1  # so select() does not take it for the current one
            self.select(self.selected)

    def _morph_weights(self, amount: float) -> np.ndarray:
        assert self.morph is not None
        a, b = self.morph
        return (1.0 - amount) * self._presets[a][0] + amount * self._presets[b][0]

    @property
    def instrument(self) -> str | int | Mapping[str | int, float]:
        return self._instrument

    @property
    def pitch_range(self) -> tuple[int, int]:
        """MIDI pitches the current instrument plays."""
        return self._range

    def start(self) -> NoteVoices:
        """Start the note thread (after one silent note through the model, so the first played note does not
        pay for the model's first call)."""
        warm = self.model.stream(0, self._range[0], 100, sample_rate=self.sample_rate, low_latency=True)
        warm.read(warm.latency_frames + STEP_FRAMES)
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="neurorack-notes", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the note thread (voices go silent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    # -- audio thread ---------------------------------------------------------------------------------------------
    def note_on(self, pitch: int, velocity: int, offset: int = 0) -> int:
        """Start a note ``offset`` samples into the next block; the voice index, or -1 when refused (a pitch
        outside the instrument's range, counted in :attr:`refused`)."""
        low, high = self._range
        if not low <= pitch <= high or not 1 <= velocity <= 127:
            self.refused += 1
            return -1
        sounding = 0
        oldest = -1
        for i in range(self.capacity):
            if self.active[i] and self.fading[i] < 0:
                sounding += 1
                if oldest < 0 or self.serial[i] < self.serial[oldest]:
                    oldest = i
        if sounding >= self.limit and oldest >= 0:
            self._release(oldest)
            self.stolen += 1
        free = -1
        for i in range(self.capacity):
            if not self.active[i]:
                free = i
                break
        if free < 0:  # every buffer busy fading: take the one closest to silence
            free = min(range(self.capacity), key=lambda i: self.fading[i] if self.fading[i] >= 0 else 1 << 30)
        self.generation[free] += 1
        self.key[free] = pitch
        self.active[free] = True
        self.pos[free] = 0
        self.delay[free] = offset
        self.gain[free] = 1.0
        self.fading[free] = -1
        self.serial[free] = self._next_serial
        self._next_serial += 1
        self.started += 1
        row = 0
        for r in range(1, len(HEAD_VELOCITIES)):
            if abs(HEAD_VELOCITIES[r] - velocity) < abs(HEAD_VELOCITIES[row] - velocity):
                row = r
        head = self.morph is None and self._head_epoch[pitch][row] == self._epoch
        if head:
            self.buffers[free][: HEAD + HEAD_FADE] = self._heads[pitch, row]
            self.head_len[free] = HEAD + HEAD_FADE
        else:
            self.head_len[free] = 0
        self._requests.append(
            (free, self.generation[free], pitch, float(velocity), self._weights, self.morph, row if head else -1)
        )
        return free

    def note_off(self, pitch: int) -> None:
        """Release every voice holding ``pitch``."""
        for i in range(self.capacity):
            if self.key[i] == pitch:
                self._release(i)

    def _release(self, i: int) -> None:
        self.key[i] = -1
        if self.fading[i] < 0:
            self.fading[i] = self.fade

    def clear(self) -> None:
        """Silence every voice at once."""
        for i in range(self.capacity):
            self.key[i] = -1
            self.active[i] = False

    def heads_ready(self) -> int:
        """Entries of the head cache ready for the current instrument (keys × velocities)."""
        low, high = self._range
        epoch = self._epoch
        return sum(e == epoch for p in range(low, high + 1) for e in self._head_epoch[p])

    def sounding(self) -> int:
        return sum(self.active)

    def mix(self, out: np.ndarray) -> int:
        """Add every voice's next ``len(out)`` samples into ``out`` (in place); returns the voices sounding."""
        n = out.shape[0]
        sounding = 0
        for i in range(self.capacity):
            if not self.active[i]:
                continue
            sounding += 1
            d = self.delay[i]
            if d >= n:
                self.delay[i] = d - n
                continue
            pos = self.pos[i]
            own = self.written_generation[i] == self.generation[i]
            ready = max(self.head_len[i], self.written[i] if own else 0)
            m = min(n - d, ready - pos)
            fl = self.fading[i]
            if fl >= 0:
                m = min(m, fl)
            if m <= 0:
                if fl == 0 or (self.finished[i] and self.written_generation[i] == self.generation[i]):
                    self.active[i] = False
                elif fl < 0:
                    self.waits += 1  # the note thread is late: the voice holds its place
                continue
            t = self._tmp[:m]
            np.multiply(self.buffers[i][pos : pos + m], self.gain[i], out=t)
            if fl >= 0:
                start = self.fade - fl
                t *= self._ramp[start : start + m]
                self.fading[i] = fl - m
            seg = out[d : d + m]
            seg += t
            self.pos[i] = pos + m
            self.delay[i] = 0
        return sounding

    # -- note thread -------------------------------------------------------------------------------------------
    def _run(self) -> None:
        import torch

        torch.set_num_threads(1)
        streams: dict[int, tuple[int, NoteStream]] = {}
        morphed: dict[int, float] = {}  # voice -> the morph amount its note plays now
        while not self._stop.is_set():
            while self._requests:
                voice, generation, pitch, velocity, weights, morph, head_row = self._requests.popleft()
                live = morph is not None and morph == self.morph
                if live:
                    morphed[voice] = self.morph_amount
                    weights = self._morph_weights(morphed[voice])
                else:
                    morphed.pop(voice, None)
                mapping: dict[str | int, float] = {k: float(w) for k, w in enumerate(weights) if w > 0}
                try:
                    stream = self.model.stream(mapping, pitch, velocity, sample_rate=self.sample_rate, low_latency=True)
                except NeurorackError:  # checked on note-on already; a morph that moved past its range since
                    self.refused += 1
                    self.written[voice] = 0
                    self.finished[voice] = True
                    self.written_generation[voice] = generation
                    continue
                self.written[voice] = 0
                self.finished[voice] = False
                self._streamed[voice] = 0
                self._head_skip[voice] = HEAD if head_row >= 0 else 0
                self._head_blend[voice] = head_row >= 0 and HEAD_VELOCITIES[head_row] != velocity
                self.written_generation[voice] = generation
                streams[voice] = (generation, stream)
                self._write(voice, stream.read(stream.latency_frames))
            for voice in [v for v, (g, _) in streams.items() if g != self.generation[v] or not self.active[v]]:
                del streams[voice]  # stolen and reused, or gone silent
            hungry = [
                (self.written[v] - self.pos[v], v)
                for v in streams
                if self.written[v] - self.pos[v] < self.ahead and self.fading[v] != 0
            ]
            if not hungry:
                if not self._fill_one_head():
                    time.sleep(POLL_SECONDS)
                continue
            _, voice = min(hungry)
            generation, stream = streams[voice]
            amount = self.morph_amount
            if voice in morphed and self.morph is not None and abs(amount - morphed[voice]) > 1e-3:
                morphed[voice] = amount  # the held note follows the morph from its next frames on
                stream.set_weights(self._morph_weights(amount))
            self._write(voice, stream.read(STEP_FRAMES))
            if stream.done:
                self.finished[voice] = True
                del streams[voice]

    def _fill_one_head(self) -> bool:
        """Render one missing entry of the head cache for the current instrument; False when none is missing."""
        if self.morph is not None:
            return False
        epoch, weights, (low, high) = self._epoch, self._weights, self._range
        for pitch in range(low, high + 1):
            for row, velocity in enumerate(HEAD_VELOCITIES):
                if self._head_epoch[pitch][row] == epoch:
                    continue
                mapping: dict[str | int, float] = {k: float(w) for k, w in enumerate(weights) if w > 0}
                stream = self.model.stream(mapping, pitch, velocity, sample_rate=self.sample_rate, low_latency=True)
                parts = [stream.read(stream.latency_frames)]
                total = parts[0].shape[0]
                while total < HEAD + HEAD_FADE and not stream.done:
                    parts.append(stream.read(STEP_FRAMES))
                    total += parts[-1].shape[0]
                head = np.concatenate(parts)[: HEAD + HEAD_FADE]
                self._heads[pitch, row, : head.shape[0]] = head
                if epoch == self._epoch:  # the instrument did not change meanwhile
                    self._head_epoch[pitch][row] = epoch
                return True
        return False

    def _write(self, voice: int, audio: np.ndarray) -> None:
        """Append the stream's next samples to the voice's buffer, then publish them (the audio thread reads up
        to ``written``). Behind a cached head: the head's samples are dropped and the crossfade region mixed."""
        first = self._streamed[voice]
        self._streamed[voice] = first + audio.shape[0]
        skip = self._head_skip[voice]
        if skip:
            if first + audio.shape[0] <= skip:
                return
            audio = audio[max(0, skip - first) :]
            first = max(first, skip)
            if self._head_blend[voice] and first < skip + HEAD_FADE:
                m = min(audio.shape[0], skip + HEAD_FADE - first)
                ramp = self._fade_in[first - skip : first - skip + m]
                cached = self.buffers[voice][first : first + m]
                audio = audio.copy()
                audio[:m] = cached * (1.0 - ramp) + audio[:m] * ramp
        start = first
        n = min(audio.shape[0], self.max_samples - start)
        if n > 0:
            self.buffers[voice][start : start + n] = audio[:n]
            self.written[voice] = start + n
