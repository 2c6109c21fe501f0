"""``neurorack play``: the instrument, live (SPEC §4, §7).

Opens the audio backend, renders the first impact, then listens to OSC, MIDI and the audio-rate
gate/CV inputs until Ctrl-C or SIGTERM; ``--record`` keeps what was played (written atomically,
also when interrupted). Status goes to stderr as one short line.

``--transfer`` (a ``fader-ae`` model, JACK only) also runs the JACK input ``in`` through the model
live, its descriptors edited by the CVs and offsets (:mod:`neurorack.engine.live_transfer`). The null
backend has no input, so ``--transfer --audio null`` is refused (files: ``neurorack transfer``).
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from neurorack.cli.console import err_console
from neurorack.errors import NeurorackError


class _StopError(Exception):
    """SIGTERM or SIGINT arrived."""


def _status_line(status: Any, osc: str) -> str:
    load = status.callback_load * 100.0
    rec = f" · rec {status.recording}" if status.recording else ""
    msg = f" · [yellow]{status.message}[/]" if status.message else ""
    extra = status.extra
    transfer = (
        f" · transfer {extra['transfer_latency_ms']:.0f} ms, {extra['transfer_block_ms']:.1f} ms/block, "
        f"underruns {extra['transfer_underruns']:.0f}"
        if "transfer_latency" in extra
        else ""
    )
    notes = (
        f" · notes {extra['notes_sounding']:.0f} sounding, {extra['notes']:.0f} played, "
        f"{extra['notes_waits']:.0f} periods waited"
        if "notes" in extra
        else ""
    )
    return (
        f"[bold]{status.model}[/] · {status.backend} {status.sample_rate / 1000:g} kHz/{status.period} · "
        f"voices {status.voices}/{status.max_voices} · callback {load:.1f} % · render {status.render_ms:.1f} ms · "
        f"xruns {status.xruns}{transfer}{notes}{osc}{rec}{msg}"
    )


def play_command(
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model file or bundled name (default: the bundled model).")
    ] = None,
    audio: Annotated[
        str,
        typer.Option(
            "--audio",
            help="Audio backend: jack, portaudio, null (no sound card: runs the clock), auto (jack if a server runs).",
        ),
    ] = "auto",
    osc: Annotated[int, typer.Option("--osc", help="OSC UDP port (0: no OSC).")] = 9000,
    osc_host: Annotated[
        str, typer.Option("--osc-host", help="Address OSC listens on (default loopback; 0.0.0.0 for the network).")
    ] = "127.0.0.1",
    midi: Annotated[
        bool, typer.Option("--midi", help="Also read ALSA/RtMidi inputs (JACK MIDI is always on with --audio jack).")
    ] = False,
    midi_map: Annotated[
        Path | None, typer.Option("--midi-map", help="TOML MIDI mapping (see README, 'Playing live').")
    ] = None,
    record: Annotated[
        Path | None, typer.Option("--record", help="Record the output to this .wav/.flac/.aiff (atomic).")
    ] = None,
    period: Annotated[int, typer.Option("--period", help="Frames per period (null backend; JACK uses its own).")] = 128,
    voices: Annotated[int, typer.Option("--voices", help="Voices at once (the oldest is stolen beyond).")] = 8,
    device: Annotated[
        str | None,
        typer.Option("--device", help="Also run the headless device mode (screen, encoder, LED): dummy, ssd1306, ..."),
    ] = None,
    jack_name: Annotated[str, typer.Option("--jack-name", help="JACK client name.")] = "neurorack",
    connect: Annotated[
        bool, typer.Option("--connect/--no-connect", help="Connect the JACK output to the playback ports.")
    ] = True,
    panel: Annotated[
        bool, typer.Option("--panel", help="Serve the web faceplate (open the printed address in a browser).")
    ] = False,
    host: Annotated[
        str, typer.Option("--host", help="Address the panel listens on (default loopback; 0.0.0.0 needs a token).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Panel TCP port.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option("--token", help="Panel access token (generated and printed when --host is not loopback)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No status line.")] = False,
    transfer: Annotated[
        bool,
        typer.Option(
            "--transfer",
            help="Live timbre transfer: the JACK input port neurorack:in through a fader-ae model (--model; default "
            "the bundled autoencoder, trained on drums), its descriptors edited by the CVs and offsets (JACK only).",
        ),
    ] = False,
    connect_input: Annotated[
        str | None,
        typer.Option(
            "--connect-input", help="With --transfer: connect this JACK port (e.g. system:capture_1) to neurorack:in."
        ),
    ] = None,
    transfer_block: Annotated[
        int,
        typer.Option(
            "--transfer-block", help="With --transfer: samples per model call (a multiple of the model's hop)."
        ),
    ] = 1024,
    notes: Annotated[
        str | None,
        typer.Option(
            "--notes",
            help="A note model (SING, from neurorack train on a note corpus) whose notes MIDI keys play beside the "
            "impacts; program change picks the instrument (MIDI map key notes = false keeps notes on the gates).",
        ),
    ] = None,
    note_voices: Annotated[int, typer.Option("--note-voices", help="With --notes: notes sounding at once.")] = 8,
) -> None:
    """Play the instrument: gate 1 plays the current impact, gate 2 re-renders it from the CVs;
    CV 1 moves between anchors, CV 2–4 drive loudness, brightness and inharmonicity. Controls come
    from OSC, MIDI (JACK MIDI port `midi_in`; `--midi` for ALSA) and the JACK input ports
    `gate_1/2`, `cv_1..4`. `--panel` serves the faceplate in a browser (with its own sound when
    the engine has no audio device). Runs until Ctrl-C.

    `--transfer [--model FADER.safetensors]` (a fader-ae model, the bundled one by default; JACK only)
    also plays the JACK input port `neurorack:in` through the model live: its descriptors are measured
    as it comes, edited by the CVs assigned to descriptors and the descriptor offsets (position and
    inharmonicity do nothing here), and decoded, mixed with any hits. Latency: 2 blocks + 1 period + ~16
    ms (65 ms with the defaults at 44.1 kHz; in the status line). Connect a source with `--connect-input
    PORT` or any JACK patchbay; files go through `neurorack transfer` instead.
    """
    from neurorack.engine.midi import RtMidiInput, load_midi_map
    from neurorack.engine.osc import OscServer
    from neurorack.engine.recorder import check_record_path

    if not 0 <= osc <= 65535:
        raise NeurorackError(f"--osc must be a UDP port 0..65535 (0 = off), got {osc}")
    if not 0 <= port <= 65535:
        raise NeurorackError(f"--port must be a TCP port 0..65535, got {port}")
    if panel:
        from neurorack.panel.security import resolve_token

        token = resolve_token(host, token)  # a bad token fails before the audio opens
    if audio not in ("auto", "jack", "portaudio", "null"):
        raise NeurorackError(f"--audio must be auto, jack, portaudio or null, got {audio!r}")
    if transfer and audio == "null":
        raise NeurorackError(
            "--transfer needs an audio input and the null backend has none: use --audio jack "
            "(to transfer a file, use `neurorack transfer`)"
        )
    if connect_input is not None and not transfer:
        raise NeurorackError("--connect-input only makes sense with --transfer")
    mapping = load_midi_map(midi_map, notes_default=notes is not None)
    if record is not None:
        check_record_path(record)
    if device is not None:
        try:
            from neurorack.device.app import DeviceApp
        except ImportError as exc:
            raise NeurorackError(f"--device is not available in this build ({exc})") from None
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise _StopError()

    old_term = signal.signal(signal.SIGTERM, on_signal)
    engine = _open_engine(
        model, audio, period, voices, mapping, jack_name, connect, transfer, transfer_block, connect_input,
        notes=notes, note_voices=note_voices,
    )  # fmt: skip
    surfaces: list[Any] = []
    saved: Path | None = None
    try:
        if osc:
            surfaces.append(OscServer(engine, port=osc, host=osc_host))
        if midi:
            surfaces.append(RtMidiInput(lambda data: _midi_to_engine(engine, data)))
        engine.start(record=record)
        for s in surfaces:
            if isinstance(s, OscServer):
                s.start()
        app: Any = None
        if device is not None:
            app = DeviceApp(engine, device)
            app.start()
            surfaces.append(app)
        if panel:
            from neurorack.panel import serve_panel

            server = serve_panel(engine, host=host, port=port, token=token, device=app)
            surfaces.append(server)
            err_console.print(f"panel: [bold]{server.url}[/]", highlight=False, soft_wrap=True)
        osc_text = f" · OSC {osc_host}:{surfaces[0].port}" if osc else ""
        err_console.print(f"[green]playing[/] — Ctrl-C to stop{osc_text}", highlight=False)
        if quiet or not err_console.is_terminal:
            while True:
                time.sleep(0.2)
        from rich.live import Live

        with Live(
            _status_line(engine.status(), osc_text), console=err_console, refresh_per_second=4, transient=False
        ) as live:
            while True:
                time.sleep(0.25)
                live.update(_status_line(engine.status(), osc_text))
    except (KeyboardInterrupt, _StopError):
        pass
    finally:
        # a second TERM or Ctrl-C during shutdown must not cut the recording's save
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for s in reversed(surfaces):
            try:
                s.stop() if hasattr(s, "stop") else s.close()
            except Exception as exc:  # keep stopping the rest
                logging.getLogger("neurorack.play").warning("stopping %s: %s", type(s).__name__, exc)
        try:
            saved = engine.stop()
        finally:
            signal.signal(signal.SIGTERM, old_term)
            signal.signal(signal.SIGINT, old_int)
    if saved is not None:
        err_console.print(f"recorded {saved}", highlight=False)


def model_to_play(model: str | None, transfer: bool) -> str | None:
    """The model ``play`` loads: the one given, else the bundled autoencoder for ``--transfer`` or the
    bundled default (``None``)."""
    if model is None and transfer:
        from neurorack.model_file import TRANSFER_MODEL

        return TRANSFER_MODEL
    return model


def _open_engine(
    model: str | None,
    audio: str,
    period: int,
    voices: int,
    mapping: Any,
    jack_name: str,
    connect: bool,
    transfer: bool = False,
    transfer_block: int = 1024,
    connect_input: str | None = None,
    *,
    notes: str | None = None,
    note_voices: int = 8,
) -> Any:
    """The engine on ``audio``; ``auto`` is JACK when a server answers, else the null backend (said on
    stderr) — except with ``transfer``, which needs JACK's input."""
    from neurorack.engine import Engine

    model = model_to_play(model, transfer)
    kinds = ["jack", "null"] if audio == "auto" and not transfer else ["jack"] if audio == "auto" else [audio]
    for kind in kinds:
        try:
            return Engine(
                model,
                audio=kind,
                period=period,
                voices=voices,
                midi_map=mapping,
                client_name=jack_name,
                autoconnect=connect,
                transfer=transfer,
                transfer_block=transfer_block,
                connect_input=connect_input,
                notes=notes,
                note_voices=note_voices,
            )
        except NeurorackError as exc:
            if transfer and "--audio null" in str(exc):  # no fallback without an input
                raise NeurorackError(str(exc).replace(", or use --audio null", "")) from None
            if kind == kinds[-1] or "JACK" not in str(exc):
                raise
            err_console.print(f"[yellow]{exc}[/]; playing on the null backend (no sound)", highlight=False)
    raise NeurorackError("no audio backend could be opened")  # pragma: no cover - loop always returns or raises


def _midi_to_engine(engine: Any, data: bytes) -> None:
    """ALSA/RtMidi message → the engine (on RtMidi's thread: post, never block)."""
    from neurorack.engine.calibration import volts_for
    from neurorack.engine.midi import CV, GATE_OFF, GATE_ON, MALFORMED, NOTE_OFF, NOTE_ON, PROGRAM

    kind, index, value = engine.midi_map.decode(data)
    if kind == NOTE_ON:
        engine.play_note(index, int(value))
    elif kind == NOTE_OFF:
        engine.release_note(index)
    elif kind == PROGRAM:
        engine.select_instrument(index)
    elif kind == GATE_ON:
        engine.gate(index, True, value)
    elif kind == GATE_OFF:
        engine.gate(index, False)
    elif kind == CV:
        engine.set_cv(index, volts_for(2.0 * value - 1.0, engine.parameters()["cv_range"]))
    elif kind == MALFORMED:
        engine.note("ignored a malformed MIDI message")


def register(app: typer.Typer) -> None:
    app.command("play")(play_command)
