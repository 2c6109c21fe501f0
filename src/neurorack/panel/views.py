"""What the faceplate draws, computed on the server with NumPy: the impact's waveform envelope, its
spectrogram, its descriptor curves (requested and measured) and the model's anchors; and the binary
frames that carry the OLED image and the impact's samples to the browser.

Binary frame layout (WebSocket binary message, little-endian)::

    bytes 0..3   tag, ASCII: b"SCRN" (OLED PNG) or b"PCM1" (impact samples)
    bytes 4..7   uint32 n = length of the JSON header
    bytes 8..    JSON header (UTF-8), padded with spaces so the payload starts at a multiple of 4
    then         payload: the PNG file (SCRN) or float32 samples (PCM1)
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from neurorack.descriptors import DESCRIPTOR_NAMES, describe
from neurorack.errors import NeurorackError

#: Columns of the waveform envelope sent to the page.
WAVE_COLUMNS = 600
#: Spectrogram size sent to the page: log-frequency rows × time columns (uint8 each).
SPEC_ROWS = 96
SPEC_MAX_COLUMNS = 240
#: Spectrogram frequency range, Hz, and the dynamic range shown below the peak, dB.
SPEC_FMIN = 30.0
SPEC_RANGE_DB = 80.0
#: Spectrogram FFT size, samples.
SPEC_NFFT = 1024

#: Control name and unit of each descriptor column (README table), in DESCRIPTOR_NAMES order.
DESCRIPTOR_INFO: tuple[tuple[str, str, str], ...] = (
    ("rms", "loudness", ""),
    ("zcr", "percussivity", "/sample"),
    ("rolloff", "noisiness", "Hz"),
    ("flatness", "tonality", ""),
    ("bandwidth", "richness", "Hz"),
    ("centroid", "brightness", "Hz"),
    ("f0", "pitch", "Hz"),
)
assert tuple(n for n, _, _ in DESCRIPTOR_INFO) == tuple(DESCRIPTOR_NAMES)


def pack_frame(tag: bytes, header: Mapping[str, Any], payload: bytes) -> bytes:
    """One binary frame (see the module docstring): ``tag`` (4 ASCII bytes), JSON ``header``, ``payload``."""
    if len(tag) != 4:
        raise ValueError("a frame tag has 4 bytes")
    text = json.dumps(dict(header), separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 4)
    return tag + struct.pack("<I", len(text)) + text + payload


def unpack_frame(frame: bytes) -> tuple[bytes, dict[str, Any], bytes]:
    """Inverse of :func:`pack_frame`: ``(tag, header, payload)``."""
    (n,) = struct.unpack_from("<I", frame, 4)
    return frame[:4], json.loads(frame[8 : 8 + n]), frame[8 + n :]


def pcm_frame(audio: np.ndarray, sample_rate: int, impact_id: int) -> bytes:
    """The impact's samples for WebAudio: ``PCM1`` frame, header ``{id, sample_rate, samples}``, float32 payload."""
    x = np.ascontiguousarray(np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0), dtype="<f4")
    return pack_frame(b"PCM1", {"id": impact_id, "sample_rate": int(sample_rate), "samples": int(x.size)}, x.tobytes())


def screen_frame(png: bytes) -> bytes:
    """The OLED image (128×64 PNG, 1 = lit) as a ``SCRN`` frame."""
    return pack_frame(b"SCRN", {"width": 128, "height": 64}, png)


def wave_envelope(audio: np.ndarray, columns: int = WAVE_COLUMNS) -> tuple[list[float], list[float]]:
    """Minimum and maximum sample per column (``columns`` each, or fewer for a shorter impact)."""
    x = np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1))
    if x.size == 0:
        return [], []
    cols = max(1, min(columns, x.size))
    edges = np.linspace(0, x.size, cols + 1).astype(np.int64)[:-1]
    lo = np.minimum.reduceat(x, edges)
    hi = np.maximum.reduceat(x, edges)
    return np.round(lo, 4).tolist(), np.round(hi, 4).tolist()


def spectrogram(
    audio: np.ndarray, sample_rate: int, rows: int = SPEC_ROWS, max_columns: int = SPEC_MAX_COLUMNS
) -> tuple[np.ndarray, float, float]:
    """A log-frequency magnitude spectrogram for display.

    Args:
        audio: ``float[T]`` mono samples; sample_rate: Hz.
        rows: frequency rows, log-spaced from :data:`SPEC_FMIN` to Nyquist (row 0 = lowest).
        max_columns: at most this many time columns (the hop grows with the impact's length).

    Returns:
        ``(image uint8[rows, columns], fmin Hz, fmax Hz)``: 255 = the impact's loudest bin, 0 =
        :data:`SPEC_RANGE_DB` below it or quieter.
    """
    x = np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1))
    n_fft = SPEC_NFFT
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    hop = max(n_fft // 4, int(np.ceil((x.size - n_fft) / max(1, max_columns - 1))))
    starts = np.arange(0, x.size - n_fft + 1, hop)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[starts]
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft).astype(np.float32), axis=1)).T  # [bins, columns]
    fmax = sample_rate / 2.0
    bin_hz = sample_rate / n_fft
    edges = np.geomspace(SPEC_FMIN, fmax, rows + 1)
    image = np.empty((rows, mag.shape[1]), dtype=np.float32)
    for r in range(rows):  # the loudest FFT bin in each log band (at least one bin per band)
        a = int(np.floor(edges[r] / bin_hz))
        b = max(a + 1, int(np.ceil(edges[r + 1] / bin_hz)))
        image[r] = mag[min(a, mag.shape[0] - 1) : min(b, mag.shape[0])].max(axis=0)
    db = 20.0 * np.log10(np.maximum(image, 1e-9))
    scaled = (db - (db.max() - SPEC_RANGE_DB)) / SPEC_RANGE_DB
    return np.clip(np.round(scaled * 255.0), 0, 255).astype(np.uint8), SPEC_FMIN, fmax


def _rows(curves: np.ndarray | None) -> list[list[float]] | None:
    """``float[frames, 7]`` as JSON-friendly rows, 5 significant digits (non-finite values become 0)."""
    if curves is None:
        return None
    c = np.nan_to_num(np.asarray(curves, dtype=np.float64))
    return [[float(f"{v:.5g}") for v in row] for row in c]


def impact_message(
    audio: np.ndarray,
    sample_rate: int,
    impact_id: int,
    requested: np.ndarray | None,
    requested_hop_s: float,
) -> dict[str, Any]:
    """The ``impact`` message: waveform envelope, spectrogram and descriptor curves of one impact.

    Args:
        audio: ``float32[samples]`` at ``sample_rate`` Hz (the instrument's current impact).
        impact_id: a number identifying this impact (the ``PCM1`` frame carries the same one).
        requested: ``float32[frames, 7]`` curves the impact was rendered from, or None.
        requested_hop_s: seconds between two requested frames (model hop / model rate).

    Returns:
        a JSON-ready dict: ``wave`` (``min``/``max`` lists), ``spec`` (``rows``, ``columns``, ``fmin``,
        ``fmax``, ``data`` = the uint8 image row-major, latin-1 string), ``curves`` (``names``,
        ``requested`` and ``measured`` as ``[frames][7]``, each with its hop in seconds).
    """
    import base64

    x = np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1))
    lo, hi = wave_envelope(x)
    image, fmin, fmax = spectrogram(x, sample_rate)
    measured: np.ndarray | None
    try:
        measured = describe(x, sample_rate) if x.size else None
    except (ValueError, NeurorackError):
        measured = None
    return {
        "type": "impact",
        "id": impact_id,
        "sample_rate": int(sample_rate),
        "samples": int(x.size),
        "duration": x.size / float(sample_rate),
        "peak": float(np.max(np.abs(x))) if x.size else 0.0,
        "wave": {"min": lo, "max": hi},
        "spec": {
            "rows": int(image.shape[0]),
            "columns": int(image.shape[1]),
            "fmin": fmin,
            "fmax": fmax,
            "data": base64.b64encode(image.tobytes()).decode("ascii"),
        },
        "curves": {
            "names": list(DESCRIPTOR_NAMES),
            "requested": _rows(requested),
            "requested_hop_s": requested_hop_s,
            "measured": _rows(measured),
            "measured_hop_s": 512.0 / sample_rate,
        },
    }


def anchors_message(model_label: str, anchors: Mapping[str, np.ndarray] | None, hop_s: float) -> dict[str, Any]:
    """The ``anchors`` message: the current model's anchor curves (``name -> [frames][7]``), hop in seconds."""
    return {
        "type": "anchors",
        "model": model_label,
        "hop_s": hop_s,
        "names": list(anchors or {}),
        "curves": {name: _rows(c) for name, c in (anchors or {}).items()},
    }


def descriptor_table() -> list[dict[str, str]]:
    """Descriptor names, control labels and units for the page (README's descriptor table)."""
    return [{"name": n, "label": label, "unit": unit} for n, label, unit in DESCRIPTOR_INFO]
