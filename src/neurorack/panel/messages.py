"""What a browser may send to the panel, validated before anything reaches the instrument.

Every client message is one JSON object (a WebSocket text frame of at most :data:`MAX_MESSAGE_BYTES`)
with a ``type`` field naming one of the models below; numbers are bounded and finite (``NaN`` and
``Infinity`` are refused), strings are short, unknown fields are refused. :func:`parse_message`
returns the model or raises :class:`MessageError` with a one-line reason that the server sends back
as ``{"type": "error", ...}``; it never raises anything else.

=========== ======================================================== =========================================
type        fields                                                   effect
=========== ======================================================== =========================================
``gate``    ``index`` 1|2, ``high`` bool, ``velocity`` 0..1 (opt.)   gate edge (1 plays, 2 re-renders)
``cv``      ``index`` 1..4, ``volts`` −12..12                         the surface value of a CV, volts
``encoder`` ``action`` rotate|press|long_press, ``steps`` −16..16    the OLED's encoder (device menu)
``model``   ``name`` (one of the instrument's ``models()``)          switch model
``reload``  —                                                        reload the current model
``assign``  ``cv`` 1..4, ``target`` (position, a descriptor …)        re-assign a CV
``param``   ``name``, ``value`` (finite, ±1e6)                        set an engine parameter (range-checked)
``record``  ``on`` bool                                              start / stop recording (server-chosen file)
``panic``   —                                                        silence every voice (if offered)
``note``    ``pitch`` 0..127, ``velocity`` 0..127 (0 = off)           a note of the note voices (``play --notes``)
``program`` ``index`` 0..127                                         the note voices' instrument
``morph``   ``a``, ``b`` instrument indices, or null to end            CV 1 morphs the notes between a and b
``ping``    ``id`` 0..2^31                                           answered by ``{"type": "pong", "id": …}``
=========== ======================================================== =========================================
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

#: Largest client text frame accepted, bytes (a real message is < 200 bytes).
MAX_MESSAGE_BYTES = 4096
#: Largest WebSocket frame the server reads at all (bigger ones close the connection with 1009).
MAX_FRAME_BYTES = 65536


class MessageError(ValueError):
    """A client message was refused; ``str(exc)`` is a one-line reason safe to send back."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, str_max_length=512)


class GateMsg(_Message):
    """Gate ``index`` high or low; ``velocity`` 0..1 sets a gate-1 hit's level (1 = full)."""

    type: Literal["gate"]
    index: Annotated[int, Field(ge=1, le=2, strict=True)]
    high: Annotated[bool, Field(strict=True)]
    velocity: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0


class CvMsg(_Message):
    """The panel's value of CV ``index``, volts (Eurorack rails: at most ±12 V)."""

    type: Literal["cv"]
    index: Annotated[int, Field(ge=1, le=4, strict=True)]
    volts: Annotated[float, Field(ge=-12.0, le=12.0)]


class EncoderMsg(_Message):
    """The OLED's encoder: ``rotate`` by ``steps`` detents (clockwise > 0), ``press``, ``long_press``."""

    type: Literal["encoder"]
    action: Literal["rotate", "press", "long_press"]
    steps: Annotated[int, Field(ge=-16, le=16, strict=True)] = 0


class ModelMsg(_Message):
    """Switch to model ``name`` (must be one of the instrument's ``models()``)."""

    type: Literal["model"]
    name: Annotated[str, Field(min_length=1, max_length=512)]


class ReloadMsg(_Message):
    """Reload the current model from its file."""

    type: Literal["reload"]


class AssignMsg(_Message):
    """Re-assign CV ``cv`` to ``target`` (``position``, a descriptor name or alias, ``inharmonicity``)."""

    type: Literal["assign"]
    cv: Annotated[int, Field(ge=1, le=4, strict=True)]
    target: Annotated[str, Field(min_length=1, max_length=32)]


class ParamMsg(_Message):
    """Set engine parameter ``name`` to ``value`` (the engine checks the parameter's own range)."""

    type: Literal["param"]
    name: Annotated[str, Field(min_length=1, max_length=64)]
    value: Annotated[float, Field(ge=-1e6, le=1e6)]


class RecordMsg(_Message):
    """Start (``on``) or stop recording the output; the server chooses the file."""

    type: Literal["record"]
    on: Annotated[bool, Field(strict=True)]


class PanicMsg(_Message):
    """Silence every voice."""

    type: Literal["panic"]


class NoteMsg(_Message):
    """A note-on (``velocity`` 1..127) or note-off (0) of ``pitch`` for the note voices."""

    type: Literal["note"]
    pitch: Annotated[int, Field(ge=0, le=127, strict=True)]
    velocity: Annotated[int, Field(ge=0, le=127, strict=True)] = 100


class ProgramMsg(_Message):
    """The note voices' instrument ``index`` (modulo the note model's instruments)."""

    type: Literal["program"]
    index: Annotated[int, Field(ge=0, le=127, strict=True)]


class MorphMsg(_Message):
    """CV 1 morphs the note voices between instruments ``a`` and ``b``; ``a = null`` ends the morph."""

    type: Literal["morph"]
    a: Annotated[int, Field(ge=0, le=4095, strict=True)] | None = None
    b: Annotated[int, Field(ge=0, le=4095, strict=True)] | None = None


class PingMsg(_Message):
    """Round-trip check; answered with a ``pong`` carrying the same ``id``."""

    type: Literal["ping"]
    id: Annotated[int, Field(ge=0, le=2**31, strict=True)] = 0


ClientMessage = Annotated[
    GateMsg
    | CvMsg
    | EncoderMsg
    | ModelMsg
    | ReloadMsg
    | AssignMsg
    | ParamMsg
    | RecordMsg
    | PanicMsg
    | NoteMsg
    | ProgramMsg
    | MorphMsg
    | PingMsg,
    Field(discriminator="type"),
]

_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)

#: Message types a client may send.
MESSAGE_TYPES = (
    "gate", "cv", "encoder", "model", "reload", "assign", "param", "record", "panic", "note", "program", "morph",
    "ping",
)  # fmt: skip


def _no_constant(name: str) -> float:
    raise MessageError(f"{name} is not allowed (numbers must be finite)")


def parse_message(text: str | bytes) -> ClientMessage:
    """Validate one client frame.

    Args:
        text: the frame's text (bytes are refused: clients send JSON text only).

    Returns:
        one of the message models.

    Raises:
        MessageError: binary, too large, not JSON, not an object, unknown ``type``, a missing, extra,
            non-finite or out-of-range field (the message says which).
    """
    if isinstance(text, bytes | bytearray):
        raise MessageError("binary frames are not accepted; send JSON text")
    if len(text) > MAX_MESSAGE_BYTES:
        raise MessageError(f"message too large ({len(text)} characters; at most {MAX_MESSAGE_BYTES})")
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except MessageError:
        raise
    except (ValueError, RecursionError) as exc:
        raise MessageError(f"not JSON: {str(exc).splitlines()[0][:120]}") from None
    if not isinstance(data, dict):
        raise MessageError("a message must be a JSON object with a 'type'")
    kind = data.get("type")
    if kind not in MESSAGE_TYPES:
        shown = kind if isinstance(kind, str) and len(kind) <= 32 else type(kind).__name__
        raise MessageError(f"unknown message type {shown!r}; types: {', '.join(MESSAGE_TYPES)}")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != kind) or "message"
        raise MessageError(f"bad {kind} message: {where}: {first.get('msg', 'invalid')}") from None
