"""Note voices: a played note is the model's note (at the engine's rate, where the note-on falls in the block),
a note-off fades it, polyphony steals the oldest, pitches outside the range are refused, morphs mix embeddings.
The note thread is real; the tests wait for it instead of timing it (its latency is measured by the bench)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soxr
import torch

from neurorack.engine.note_voices import NoteVoices
from neurorack.errors import NeurorackError
from neurorack.models.registry import build_note_model, note_config
from neurorack.note_model_file import InstrumentInfo, LoadedNoteModel, export_note_model, load_note_model

BLOCK = 128


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> LoadedNoteModel:
    torch.manual_seed(0)
    model = build_note_model("sing", n_instruments=2, **note_config("sing", "tiny")).eval()
    infos = [InstrumentInfo("a", "keyboard", "acoustic", 40, 80), InstrumentInfo("b", "bass", "synthetic", 30, 60)]
    return load_note_model(export_note_model(model, tmp_path_factory.mktemp("nv") / "n.safetensors", infos))


def _play(voices: NoteVoices, blocks: int) -> np.ndarray:
    """``blocks`` audio periods, each mixed once the note thread has rendered what it needs (no timing)."""

    def ready(i: int) -> bool:
        if not voices.active[i]:
            return True
        own = voices.written_generation[i] == voices.generation[i]
        have = max(voices.head_len[i], voices.written[i] if own else 0)
        return (own and voices.finished[i]) or have - voices.pos[i] >= BLOCK

    out = np.zeros(blocks * BLOCK, dtype=np.float32)
    for b in range(blocks):
        deadline = time.monotonic() + 10.0
        while not all(ready(i) for i in range(voices.capacity)) and time.monotonic() < deadline:
            time.sleep(0.001)
        voices.mix(out[b * BLOCK : (b + 1) * BLOCK])
    return out


def test_a_played_note_is_the_models_note(notes: LoadedNoteModel) -> None:
    voices = NoteVoices(notes, 16_000, BLOCK, voices=4).start()
    try:
        assert voices.note_on(60, 100, offset=5) >= 0
        out = _play(voices, 510)  # 4 s and a bit
    finally:
        voices.stop()
    note = notes.note(0, 60, 100)
    np.testing.assert_allclose(out[5 : 5 + len(note)], note, rtol=0, atol=1e-6)
    assert not out[:5].any() and not out[5 + len(note) :].any()
    assert voices.sounding() == 0 and voices.waits == 0


def test_cached_heads_sound_in_the_same_period(notes: LoadedNoteModel) -> None:
    from neurorack.engine.note_voices import HEAD, HEAD_FADE

    voices = NoteVoices(notes, 16_000, BLOCK, voices=4).start()
    try:
        deadline = time.monotonic() + 60
        while voices.heads_ready() < 41 * 5 and time.monotonic() < deadline:  # instrument a: keys 40-80
            time.sleep(0.05)
        assert voices.heads_ready() == 41 * 5
        out = np.zeros(BLOCK, dtype=np.float32)
        voices.note_on(60, 100, offset=3)
        voices.mix(out)  # no waiting for the note thread: the head is already there
        assert not out[:3].any() and np.abs(out[3:]).max() > 0
        rest = _play(voices, 505)
        played = np.concatenate([out, rest])
        note = notes.note(0, 60, 100)
        np.testing.assert_allclose(played[3 : 3 + len(note)], note, rtol=0, atol=1e-6)  # a cached velocity: exact
        voices.note_on(62, 90)  # between the cached 75 and 100: 100's head, then the 90 note crossfaded in
        first = np.zeros(BLOCK, dtype=np.float32)
        voices.mix(first)
        assert np.abs(first).max() > 0
        later = np.concatenate([first, _play(voices, 60)])
        exact = notes.note(0, 62, 90)
        np.testing.assert_allclose(
            later[HEAD + HEAD_FADE : 60 * BLOCK], exact[HEAD + HEAD_FADE : 60 * BLOCK], atol=1e-6
        )
        voices.select(1)  # another instrument: its heads are not cached yet
        assert voices.heads_ready() < 33 * 5
    finally:
        voices.stop()


def test_notes_at_the_engine_rate_and_morphs(notes: LoadedNoteModel) -> None:
    voices = NoteVoices(notes, 44_100, BLOCK, voices=4)
    morph = {"a": 0.5, "b": 0.5}
    voices.set_instrument(morph)
    assert voices.pitch_range == (40, 60)  # the pitches both instruments play
    voices.start()
    try:
        voices.note_on(50, 80)
        out = _play(voices, 1400)
    finally:
        voices.stop()
    whole = soxr.resample(notes.note(morph, 50, 80), 16_000, 44_100, quality="LQ")  # the live, low-latency path
    np.testing.assert_allclose(out[: len(whole)], whole, rtol=0, atol=1e-5 * float(np.abs(whole).max()) + 1e-7)


def test_note_off_fades_and_polyphony_steals_the_oldest(notes: LoadedNoteModel) -> None:
    voices = NoteVoices(notes, 16_000, BLOCK, voices=2, release_ms=20.0).start()
    try:
        voices.note_on(60, 100)
        voices.note_on(62, 100)
        _play(voices, 10)
        assert voices.sounding() == 2
        voices.note_on(64, 100)  # a third note: the first (oldest) fades out on a spare buffer
        assert voices.stolen == 1 and voices.key.count(60) == 0
        _play(voices, 10)
        assert voices.sounding() == 2 and sorted(k for k in voices.key if k >= 0) == [62, 64]
        voices.note_off(62)
        voices.note_off(64)
        tail = _play(voices, 8)  # 20 ms of release at 16 kHz = 320 samples
        assert voices.sounding() == 0
        assert np.abs(tail[: BLOCK // 2]).max() > 0 and not tail[3 * BLOCK :].any()
        assert voices.note_on(100, 100) == -1 and voices.refused == 1  # outside instrument a's 40-80
        assert voices.note_on(60, 0) == -1 and voices.refused == 2
    finally:
        voices.stop()
    with pytest.raises(NeurorackError):
        voices.set_instrument("no-such-instrument")
    with pytest.raises(NeurorackError):
        NoteVoices(notes, 16_000, BLOCK, voices=0)


def test_the_voices_stay_within_their_buffers(notes: LoadedNoteModel, tmp_path: Path) -> None:
    voices = NoteVoices(notes, 48_000, BLOCK, voices=8).start()
    try:
        for k in range(8):
            voices.note_on(44 + k, 25 + 12 * k, offset=k)
        out = _play(voices, 1600)  # every note to its end at 48 kHz
    finally:
        voices.stop()
    assert voices.sounding() == 0 and voices.started == 8 and voices.stolen == 0
    assert np.isfinite(out).all() and np.abs(out).max() > 0
    assert max(voices.written) <= voices.max_samples


def test_midi_map_routes_notes_to_the_note_voices(tmp_path: Path) -> None:
    from neurorack.engine.midi import GATE_ON, NOTE_OFF, NOTE_ON, PROGRAM, MidiMap, load_midi_map

    assert MidiMap().decode(bytes([0x90, 60, 100]))[0] == GATE_ON  # without notes, keys fire gates as before
    notes = MidiMap(notes=True)
    assert notes.decode(bytes([0x90, 60, 100])) == (NOTE_ON, 60, 100.0)
    assert notes.decode(bytes([0x90, 60, 0])) == (NOTE_OFF, 60, 0.0)
    assert notes.decode(bytes([0x80, 61, 40])) == (NOTE_OFF, 61, 0.0)
    assert notes.decode(bytes([0xC0, 5])) == (PROGRAM, 5, 0.0)
    assert load_midi_map(None, notes_default=True).notes
    toml = tmp_path / "map.toml"
    toml.write_text("notes = false\n")
    assert not load_midi_map(toml, notes_default=True).notes  # the file has the last word
    toml.write_text("notes = 3\n")
    with pytest.raises(NeurorackError, match="notes must be true or false"):
        load_midi_map(toml)


def test_the_engine_plays_notes_from_midi_beside_the_impacts(notes: LoadedNoteModel) -> None:
    from neurorack.engine import Engine

    engine = Engine(audio="null", period=BLOCK, sample_rate=16_000, notes=notes, note_voices=4)
    voices = engine.notes
    assert voices is not None and len(engine.voice_groups) == 2
    voices.start()
    try:
        out = np.zeros(BLOCK, dtype=np.float32)
        engine.process(out, midi=[(7, bytes([0xC0, 1])), (9, bytes([0x90, 50, 90]))])  # program 1: instrument b
        assert voices.instrument == 1 and voices.active.count(True) == 1
        played = [out.copy()]
        for _ in range(40):
            while any(  # wait for the note thread (its latency is the bench's business)
                voices.active[i] and voices.written[i] - voices.pos[i] < BLOCK and not voices.finished[i]
                for i in range(voices.capacity)
            ):
                time.sleep(0.001)
            engine.process(out)
            played.append(out.copy())
        audio = np.concatenate(played)
        onset = int(np.flatnonzero(audio)[0])
        assert onset % BLOCK == 9  # a late note keeps its place in the block, a period (or more) later
        note = notes.note(1, 50, 90)
        np.testing.assert_allclose(audio[onset:], note[: len(audio) - onset], rtol=0, atol=1e-6)
        engine.process(out, midi=[(0, bytes([0x90, 20, 90]))])  # below b's 30-60: refused, not a crash
        assert voices.refused == 1
        assert engine._notes[-1].startswith("note 20 is outside")  # the renderer logs the audio thread's notes
        engine.release_note(50)
        engine.play_note(55, 60)
        engine.process(out)
        assert sorted(k for k in voices.key if k >= 0) == [55] and voices.started == 2
        with pytest.raises(NeurorackError):
            engine.play_note(200)
    finally:
        voices.stop()
        engine.stop()


def test_morph_mixes_embeddings_in_new_and_held_notes(notes: LoadedNoteModel) -> None:
    voices = NoteVoices(notes, 16_000, BLOCK, voices=2)
    voices.set_morph("a", "b")
    assert voices.morph == (0, 1) and voices.pitch_range == (40, 60)
    voices.morph_amount = 0.25
    voices.start()
    try:
        voices.note_on(50, 100)
        half = _play(voices, 250)  # 2 s at one morph position
        np.testing.assert_allclose(half, notes.note({"a": 0.75, "b": 0.25}, 50, 100)[: len(half)], rtol=0, atol=1e-6)
        voices.morph_amount = 1.0  # the held note follows from its next frames on
        rest = _play(voices, 260)
    finally:
        voices.stop()
    still = notes.note({"a": 0.75, "b": 0.25}, 50, 100)[len(half) :]
    assert np.abs(rest[: len(still)] - still).max() > 1e-5  # rounding differs by ~1e-8
    voices.select(1)  # a program change ends the morph
    assert voices.morph is None and voices.pitch_range == (30, 60)


def test_osc_plays_and_morphs_notes(notes: LoadedNoteModel) -> None:
    from engine_support import OscClient, free_udp_port
    from neurorack.engine import Engine
    from neurorack.engine.osc import OscServer

    engine = Engine(audio="null", period=BLOCK, notes=notes, note_voices=4).start()
    server = OscServer(engine, port=free_udp_port()).start()
    client = OscClient(server.port)
    voices = engine.notes
    assert voices is not None

    def until(condition: object, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():  # type: ignore[operator]
                return True
            time.sleep(0.01)
        return False

    try:
        client.send("/neurorack/note", 60, 100)
        assert until(lambda: voices.started == 1 and voices.key.count(60) == 1)
        client.send("/neurorack/note", 60, 0)
        assert until(lambda: voices.key.count(60) == 0)
        client.send("/neurorack/notes/program", 1)
        assert until(lambda: voices.instrument == 1)
        client.send("/neurorack/notes/morph", "a", "b")
        assert until(lambda: voices.morph == (0, 1))
        engine.set_cv(1, 5.0)  # CV 1 at the top: all the way to b
        assert until(lambda: voices.morph_amount == 1.0)
        client.send("/neurorack/note", 60.5, 100)  # malformed: ignored, the server goes on
        client.send("/neurorack/notes/morph", "a", "nope")
        client.send("/neurorack/note", 50, 90)
        assert until(lambda: voices.started == 2)
        extra = engine.status().extra
        assert extra["notes"] == 2 and extra["notes_morph"] == 1.0 and extra["notes_instrument"] == -1.0
        st = client.status()
        assert st is not None and st["notes"] == 2  # also in the OSC status reply
    finally:
        client.sock.close()
        server.stop()
        engine.stop()


def test_the_device_menu_chooses_the_instrument(notes: LoadedNoteModel) -> None:
    from neurorack.device.actions import SelectInstrument, execute
    from neurorack.device.menu import Snapshot, build_tree
    from neurorack.engine import Engine

    with Engine(audio="null", period=BLOCK, notes=notes) as engine:
        snap = Snapshot.of(engine)
        assert snap.instruments == ("a", "b") and snap.instrument == 0
        models = next(n for n in build_tree(snap).children if n.label == "Models")
        assert [n.label for n in models.children] == ["Play", "Select", "Instrument", "Reload", "Benchmark"]
        menu = models.children[2]
        assert menu.value == "a" and [c.label for c in menu.children] == ["a", "b"]
        assert menu.children[1].actions == (SelectInstrument(1),)
        assert execute(engine, SelectInstrument(1)) == ""
        deadline = time.monotonic() + 5
        while engine.notes is not None and engine.notes.instrument != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert Snapshot.of(engine).instrument == 1
    with Engine(audio="null", period=BLOCK) as plain:  # without notes: no Instrument entry
        models = next(n for n in build_tree(Snapshot.of(plain)).children if n.label == "Models")
        assert "Instrument" not in [n.label for n in models.children]
        assert execute(plain, SelectInstrument(0)) == "no note model is playing"
