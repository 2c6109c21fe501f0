"""Model files: one self-describing, versioned ``.safetensors`` file per trained generator (SPEC §7).

Layout (never pickle: safetensors holds raw tensors and a string metadata map):

* tensors ``model.<name>``: the model's ``state_dict`` (weights and the descriptor
  statistics buffers ``desc_mean``/``desc_std``);
* tensors ``anchor.<name>``: float32 ``[frames, 7]`` descriptor curves of reference
  sounds (:mod:`neurorack.curves.anchors`);
* optional tensors ``prior.weights|means|covariances``: the descriptor prior of the training sounds
  (:mod:`neurorack.curves.descriptor_prior`), with its settings in the metadata's ``descriptor_prior``;
* metadata key ``"neurorack"``: JSON with ``format`` (``"neurorack-model"``),
  ``version`` (:data:`FORMAT_VERSION`), ``class`` (registry name), ``kwargs``
  (``model.config``), ``descriptor_config``, ``sample_rate``, ``hop_length``,
  ``statistics`` (``mean``/``std``, 7 each, network scale), ``anchors`` (list of
  ``{"name", ...}`` in playing order, optional ``label``/``source``), ``training``
  (free JSON; its ``trained_on`` lists the short ids of the sounds the model learned from,
  :func:`neurorack.corpus.manifest.sound_id`), ``neurorack_version``, ``created`` (UTC ISO 8601) and ``sha256``
  (:func:`tensor_digest`).

:func:`export_model` writes one atomically; :func:`load_model` reads it back
with nothing but the model registry (no training code, no corpus) and returns a
:class:`LoadedModel`, a :class:`~neurorack.models.generator.ModelGenerator`
with the anchors attached. Every problem with a file is a
:class:`~neurorack.errors.ModelFileError` with a one-line message.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from neurorack.atomic import atomic_path
from neurorack.curves.anchors import edit_curves, interpolate_curves, position_curves, resample_curves
from neurorack.curves.descriptor_prior import DescriptorPrior
from neurorack.descriptors import N_DESCRIPTORS, DescriptorConfig
from neurorack.errors import ModelFileError, NeurorackError
from neurorack.models.base import ImpactModel
from neurorack.models.generator import ModelGenerator
from neurorack.models.registry import model_names, rebuild_model

FORMAT = "neurorack-model"
FORMAT_VERSION = 1
METADATA_KEY = "neurorack"
MODEL_PREFIX = "model."
ANCHOR_PREFIX = "anchor."
PRIOR_PREFIX = "prior."
SUFFIX = ".safetensors"
#: Name of the bundled default model in ``neurorack/assets``.
DEFAULT_MODEL = "default"
#: Name of the bundled ``fader-ae`` autoencoder (drums, 16 bands): ``neurorack transfer`` and
#: ``play --transfer`` use it when no model is given.
TRANSFER_MODEL = "transfer"


# ------------------------------------------------------------------------------------------------
# Checksum
# ------------------------------------------------------------------------------------------------
def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 hex digest over all tensors of a file.

    For each tensor in sorted name order the hash is fed: the UTF-8 name, ``\\0``,
    the dtype (``str(dtype)`` without ``torch.``, e.g. ``float32``), ``\\0``, the
    shape as comma-separated integers, ``\\0``, the byte count as 8-byte little-endian,
    then the raw C-order bytes (little-endian, as safetensors stores them).
    """
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        h.update(name.encode("utf-8") + b"\0")
        h.update(str(t.dtype).removeprefix("torch.").encode() + b"\0")
        h.update(",".join(str(s) for s in t.shape).encode() + b"\0")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# Export
# ------------------------------------------------------------------------------------------------
def _check_anchor_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise NeurorackError(f"anchor name {name!r} must be a non-empty string without surrounding spaces")
    if any(ord(ch) < 32 for ch in name):
        raise NeurorackError(f"anchor name {name!r} contains control characters")
    return name


def _json_clean(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise NeurorackError(f"{what} must be plain JSON (str, numbers, lists, dicts): {exc}") from None


def model_file_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with ``.safetensors`` appended when it has another suffix (where :func:`export_model` writes)."""
    p = Path(path)
    return p if p.suffix == SUFFIX else p.with_name(p.name + SUFFIX)


def export_model(
    model: ImpactModel,
    path: str | os.PathLike[str],
    *,
    anchors: Mapping[str, np.ndarray] | None = None,
    anchor_info: Mapping[str, Mapping[str, Any]] | None = None,
    training: Mapping[str, Any] | None = None,
    descriptor_config: DescriptorConfig | None = None,
    prior: DescriptorPrior | None = None,
) -> Path:
    """Write ``model`` and its anchors to one ``.safetensors`` model file, atomically.

    Args:
        model: a registered :class:`ImpactModel` (its class must be in the registry and
            ``model.config`` must rebuild it), statistics already set.
        path: destination; ``.safetensors`` is appended when it has another suffix.
        anchors: ``name -> float[frames, 7]`` descriptor curves of reference sounds, in
            playing order (the order of the position control).
        anchor_info: optional ``name -> {"label": ..., "source": ..., ...}`` (plain JSON) per anchor.
        training: free JSON about training (corpus, steps, losses, metrics, ...).
        descriptor_config: the analysis settings of the training descriptors when they
            differ from ``model.descriptor_config`` in fmin/fmax/roll-off (sample rate,
            frame and hop must match the model's).
        prior: the descriptor prior of the training sounds (:mod:`neurorack.curves.descriptor_prior`), if any.

    Returns:
        the path written.

    Raises:
        NeurorackError: unregistered model class, bad anchors, non-JSON metadata,
            unwritable destination.
    """
    names = model_names()
    if model.name not in names:
        raise NeurorackError(f"model class {model.name!r} is not registered; known: {', '.join(names)}")
    config = descriptor_config or model.descriptor_config
    if (config.sample_rate, config.frame_length, config.hop_length) != (
        model.sample_rate,
        model.frame_length,
        model.hop_length,
    ):
        raise NeurorackError("descriptor_config must have the model's sample rate, frame and hop length")
    tensors: dict[str, torch.Tensor] = {
        MODEL_PREFIX + key: value.detach().cpu().contiguous().clone() for key, value in model.state_dict().items()
    }
    anchor_list: list[dict[str, Any]] = []
    info = dict(anchor_info or {})
    for name, curves in (anchors or {}).items():
        _check_anchor_name(name)
        arr = np.asarray(curves, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != N_DESCRIPTORS or arr.shape[0] == 0 or not np.isfinite(arr).all():
            raise NeurorackError(f"anchor {name!r} must be finite float[frames >= 1, 7], got {list(arr.shape)}")
        tensors[ANCHOR_PREFIX + name] = torch.from_numpy(np.ascontiguousarray(arr).copy())
        entry: dict[str, Any] = _json_clean(dict(info.pop(name, {})), f"anchor_info[{name!r}]")
        entry.update(name=name, frames=int(arr.shape[0]))
        anchor_list.append(entry)
    if info:
        raise NeurorackError(f"anchor_info for unknown anchors: {', '.join(sorted(info))}")
    if prior is not None:
        tensors.update({PRIOR_PREFIX + k: v for k, v in prior.to_tensors().items()})
    from neurorack import __version__

    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "class": model.name,
        "kwargs": _json_clean(model.config, "model.config"),
        "descriptor_config": config.to_dict(),
        "sample_rate": model.sample_rate,
        "hop_length": model.hop_length,
        "statistics": {
            "mean": [float(v) for v in model.desc_mean.detach().cpu()],
            "std": [float(v) for v in model.desc_std.detach().cpu()],
        },
        "anchors": anchor_list,
        **({"descriptor_prior": prior.metadata()} if prior is not None else {}),
        "training": _json_clean(dict(training or {}), "training"),
        "neurorack_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "sha256": tensor_digest(tensors),
    }
    p = model_file_path(path)
    try:
        with atomic_path(p) as tmp:
            save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(meta, allow_nan=False)})
    except OSError as exc:
        raise NeurorackError(f"cannot write {p}: {exc.strerror or exc}") from None
    return p


# ------------------------------------------------------------------------------------------------
# Load
# ------------------------------------------------------------------------------------------------
class LoadedModel(ModelGenerator):
    """A model read from a model file: ``generate(descriptors float[frames, 7], seed=None) -> float32[frames*hop]``.

    Attributes:
        model: the rebuilt :class:`ImpactModel`, in eval mode.
        metadata: the file's ``neurorack`` JSON metadata (see the module docstring).
        anchors: ``name -> float32[frames, 7]`` curves, in playing order.
        path: the file it came from.
        prior: the descriptor prior of the training sounds, None when the file has none.
    """

    def __init__(
        self,
        model: ImpactModel,
        metadata: dict[str, Any],
        anchors: dict[str, np.ndarray],
        path: Path | None = None,
        prior: DescriptorPrior | None = None,
    ) -> None:
        super().__init__(model, prior)
        self.metadata = metadata
        self.anchors = anchors
        self.path = path
        if "descriptor_config" in metadata:
            self.descriptor_config = DescriptorConfig.from_dict(metadata["descriptor_config"])

    @property
    def trained_on(self) -> frozenset[str]:
        """Short ids (:func:`neurorack.corpus.manifest.sound_id`) of the sounds the model trained on; empty when
        the file does not record them (exported before they were recorded). Ids that are not strings are ignored."""
        training = self.metadata.get("training")
        ids = training.get("trained_on") if isinstance(training, dict) else None
        if not isinstance(ids, list):
            return frozenset()
        return frozenset(i.lower() for i in ids if isinstance(i, str))

    @property
    def anchor_names(self) -> list[str]:
        """Anchor names in playing order."""
        return list(self.anchors)

    def anchor(self, name: str) -> np.ndarray:
        """A copy of one anchor's curves, ``float32[frames, 7]``.

        Raises:
            NeurorackError: unknown anchor (the message lists the model's anchors).
        """
        if name not in self.anchors:
            known = ", ".join(self.anchors) if self.anchors else "(this model has none)"
            raise NeurorackError(f"unknown anchor {name!r}; anchors: {known}")
        return self.anchors[name].copy()

    def position_curves(self, position: float, names: Sequence[str] | None = None) -> np.ndarray:
        """Curves at ``position`` 0..1 across the anchors ``names`` (default: all, in order).

        See :func:`neurorack.curves.anchors.position_curves`. Returns ``float32[frames, 7]``.
        """
        chosen = list(names) if names is not None else self.anchor_names
        if not chosen:
            raise NeurorackError("this model has no anchors to interpolate between")
        return position_curves([self.anchor(n) for n in chosen], position)

    def interpolate(self, a: str, b: str, t: float) -> np.ndarray:
        """Curves ``t`` (0..1) of the way from anchor ``a`` to anchor ``b``: ``float32[frames, 7]``."""
        return interpolate_curves(self.anchor(a), self.anchor(b), t)

    @staticmethod
    def edit(
        curves: np.ndarray,
        *,
        scale: Mapping[str, float] | None = None,
        offset: Mapping[str, float] | None = None,
        absolute: Mapping[str, float] | None = None,
    ) -> np.ndarray:
        """:func:`neurorack.curves.anchors.edit_curves`."""
        return edit_curves(curves, scale=scale, offset=offset, absolute=absolute)

    def frames_for(self, seconds: float) -> int:
        """Descriptor frames for ``seconds`` of output (``>= 1``)."""
        return max(1, round(seconds * self.sample_rate / self.hop_length))

    def stretch(self, curves: np.ndarray, seconds: float) -> np.ndarray:
        """Resample ``curves`` in time so the output lasts ``seconds``: ``float32[frames, 7]``."""
        return resample_curves(curves, self.frames_for(seconds))

    def __repr__(self) -> str:
        src = f" from {self.path}" if self.path else ""
        return (
            f"LoadedModel({self.name!r}{src}, {self.sample_rate} Hz, hop {self.hop_length}, "
            f"{len(self.anchors)} anchors)"
        )


def bundled_model_path(name: str = DEFAULT_MODEL) -> Path:
    """Path of ``neurorack/assets/<name>.safetensors`` (which may not exist)."""
    ref = resources.files("neurorack").joinpath("assets").joinpath(f"{name}{SUFFIX}")
    return Path(str(ref))


def bundled_models() -> list[str]:
    """Names of the model files installed in ``neurorack/assets``."""
    folder = resources.files("neurorack").joinpath("assets")
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(SUFFIX)] for p in folder.iterdir() if p.name.endswith(SUFFIX) and p.is_file())


def resolve_model_path(name_or_path: str | os.PathLike[str] | None) -> Path:
    """Where :func:`load_model` looks: ``None`` -> the bundled default, a bare name -> a bundled
    model, anything with a path separator or the ``.safetensors`` suffix (or an existing file) -> that file.

    Raises:
        ModelFileError: nothing there.
    """
    if name_or_path is None:
        path = bundled_model_path(DEFAULT_MODEL)
        if not path.is_file():
            raise ModelFileError(
                f"no bundled model is installed (expected {path}); train one with `neurorack train` and "
                "export it with `neurorack export`, then pass the file (--model FILE / nr.load_model(FILE))"
            )
        return path
    text = os.fspath(name_or_path)
    p = Path(text).expanduser()
    if isinstance(name_or_path, os.PathLike) or p.exists() or os.sep in text or "/" in text or text.endswith(SUFFIX):
        if not p.exists():
            raise ModelFileError(f"{p}: no such model file")
        if not p.is_file():
            raise ModelFileError(f"{p}: not a file")
        return p
    path = bundled_model_path(text)
    if not path.is_file():
        known = ", ".join(bundled_models()) or "none installed"
        raise ModelFileError(f"no model file {text!r} (not a path, and not a bundled model: {known})")
    return path


def _fail(path: Path, message: str) -> ModelFileError:
    return ModelFileError(f"{path}: {message}")


def read_safetensors_metadata(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A safetensors file's ``neurorack`` metadata (any format) and its tensors, nothing checked beyond that.

    Raises:
        ModelFileError: missing, unreadable, not safetensors, no or invalid ``neurorack`` metadata (one line each).
    """
    p = Path(path)
    try:
        with safe_open(str(p), framework="pt") as f:
            raw_meta = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except FileNotFoundError:
        raise _fail(p, "no such model file") from None
    except IsADirectoryError:
        raise _fail(p, "is a folder, not a model file") from None
    except PermissionError:
        raise _fail(p, "permission denied") from None
    except (SafetensorError, OSError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail(p, f"not a neurorack model file (not a readable safetensors file: {detail})") from None
    if METADATA_KEY not in raw_meta:
        raise _fail(p, "not a neurorack model file (a safetensors file without neurorack metadata)")
    try:
        meta = json.loads(raw_meta[METADATA_KEY])
    except json.JSONDecodeError:
        raise _fail(p, "corrupt model file (metadata is not valid JSON)") from None
    if not isinstance(meta, dict):
        raise _fail(p, "corrupt model file (metadata is not an object)")
    return meta, tensors


def check_version_and_digest(
    path: Path, meta: dict[str, Any], tensors: Mapping[str, torch.Tensor], newest: int
) -> None:
    """Refuse a file of a format version this code does not read (``> newest``) or whose tensors fail the checksum.

    Raises:
        ModelFileError: a bad or too new version, a checksum mismatch.
    """
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(path, f"corrupt model file (bad format version {version!r})")
    if version > newest:
        from neurorack import __version__

        raise _fail(
            path,
            f"written by a newer neurorack (model format version {version}; neurorack {__version__} reads up to "
            f"{newest}); upgrade neurorack to load it",
        )
    if meta.get("sha256") != tensor_digest(tensors):
        raise _fail(path, "corrupt model file (checksum mismatch: the tensor data was modified or damaged)")


def read_model_file(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and verify a model file: ``(metadata, tensors)``.

    Checks, in order: readable safetensors file; ``neurorack`` metadata of our
    format; a version this code reads; the SHA-256 over the tensors.

    Raises:
        ModelFileError: missing, unreadable, not a neurorack model file, from a newer
            neurorack, or corrupt (one line each).
    """
    p = Path(path)
    meta, tensors = read_safetensors_metadata(p)
    if meta.get("format") != FORMAT:
        raise _fail(p, f"not a neurorack model file (format is not {FORMAT!r})")
    check_version_and_digest(p, meta, tensors, FORMAT_VERSION)
    for field in ("class", "kwargs", "sample_rate", "hop_length", "anchors"):
        if field not in meta:
            raise _fail(p, f"corrupt model file (metadata lacks {field!r})")
    return meta, tensors


def load_model(name_or_path: str | os.PathLike[str] | None = None) -> LoadedModel:
    """Load a model file (SPEC §7): ``m = nr.load_model()``; ``m.generate(curves [frames, 7])``.

    Args:
        name_or_path: ``None`` for the bundled default (``neurorack/assets/default.safetensors``),
            a file path, or the bare name of a bundled model (``neurorack/assets/<name>.safetensors``).

    Returns:
        a :class:`LoadedModel` (eval mode, CPU) with its metadata and anchors.

    Raises:
        ModelFileError: missing, foreign, corrupt or too-new file, or one this version cannot rebuild.
    """
    path = resolve_model_path(name_or_path)
    meta, tensors = read_model_file(path)
    cls_name, kwargs = meta["class"], meta["kwargs"]
    known = model_names()
    if cls_name not in known:
        raise _fail(path, f"model class {cls_name!r} is unknown to this neurorack (known: {', '.join(known)})")
    if not isinstance(kwargs, dict):
        raise _fail(path, "corrupt model file (kwargs is not an object)")
    try:
        model = rebuild_model(cls_name, kwargs)
    except (TypeError, ValueError, NeurorackError) as exc:
        raise _fail(path, f"cannot rebuild {cls_name!r} from its stored settings ({exc})") from None
    state = {k[len(MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise _fail(path, f"weights do not fit {cls_name!r} ({first})") from None
    model.eval()
    if (model.sample_rate, model.hop_length) != (meta["sample_rate"], meta["hop_length"]):
        raise _fail(path, "corrupt model file (sample rate or hop differ from the model settings)")
    stats = meta.get("statistics")
    if isinstance(stats, dict):
        for key, buf in (("mean", model.desc_mean), ("std", model.desc_std)):
            stored = stats.get(key)
            if (
                not isinstance(stored, list)
                or len(stored) != N_DESCRIPTORS
                or not all(
                    math.isclose(float(a), float(b), rel_tol=1e-5, abs_tol=1e-6)
                    for a, b in zip(stored, buf.tolist(), strict=True)
                )
            ):
                raise _fail(path, f"corrupt model file (statistics {key} disagree with the weights)")
    anchors: dict[str, np.ndarray] = {}
    entries = meta["anchors"]
    if not isinstance(entries, list):
        raise _fail(path, "corrupt model file (anchors is not a list)")
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        tensor = tensors.get(ANCHOR_PREFIX + str(name))
        if not isinstance(name, str) or tensor is None:
            raise _fail(path, f"corrupt model file (anchor {name!r} listed but missing)")
        arr = tensor.to(torch.float32).numpy()
        if arr.ndim != 2 or arr.shape[1] != N_DESCRIPTORS:
            raise _fail(path, f"corrupt model file (anchor {name!r} has shape {list(arr.shape)})")
        anchors[name] = arr
    extra = {k for k in tensors if k.startswith(ANCHOR_PREFIX)} - {ANCHOR_PREFIX + n for n in anchors}
    if extra:
        raise _fail(path, f"corrupt model file (unlisted anchor tensors: {', '.join(sorted(extra))})")
    prior = None
    prior_tensors = {k[len(PRIOR_PREFIX) :]: v for k, v in tensors.items() if k.startswith(PRIOR_PREFIX)}
    prior_meta = meta.get("descriptor_prior")
    if prior_tensors or prior_meta is not None:
        if not isinstance(prior_meta, dict):
            raise _fail(path, "corrupt model file (descriptor prior tensors without their settings)")
        try:
            prior = DescriptorPrior.from_tensors(prior_tensors, prior_meta)
        except NeurorackError as exc:
            raise _fail(path, f"corrupt model file ({exc})") from None
    return LoadedModel(model, meta, anchors, path, prior)


def copy_target(source: str | os.PathLike[str], out: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The resolved model file ``source`` and the file a copy to ``out`` is written to.

    Raises:
        ModelFileError: ``source`` does not exist.
        NeurorackError: the copy would overwrite ``source`` (a user's file is never rewritten in place).
    """
    src = resolve_model_path(source)
    target = model_file_path(out)
    if target.resolve() == src.resolve():
        raise NeurorackError(f"{target}: choose another --out; the source model file is never rewritten")
    return src, target


def export_with_prior(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    prior: DescriptorPrior | None,
    *,
    loaded: LoadedModel | None = None,
) -> Path:
    """Write a copy of the model file ``source`` to ``out`` with ``prior`` as its descriptor prior (None: without one).

    Weights, statistics, anchors (with their labels) and the training record are copied unchanged; the
    file gets a new checksum and creation time. For files exported before the prior existed.
    ``loaded``: ``source`` already loaded by the caller (it is then not read again).

    Raises:
        ModelFileError: ``source`` is not a loadable model file.
        NeurorackError: ``out`` is ``source`` (a user's file is never rewritten in place), or unwritable.
    """
    src, target = copy_target(source, out)
    if loaded is None:
        loaded = load_model(src)
    meta = loaded.metadata
    info = {
        e["name"]: {k: v for k, v in e.items() if k not in ("name", "frames")}
        for e in meta["anchors"]
        if isinstance(e, dict)
    }
    config = DescriptorConfig.from_dict(meta["descriptor_config"]) if "descriptor_config" in meta else None
    return export_model(
        loaded.model,
        target,
        anchors=loaded.anchors,
        anchor_info=info,
        training=meta.get("training") if isinstance(meta.get("training"), dict) else None,
        descriptor_config=config,
        prior=prior,
    )


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The verified ``neurorack`` metadata of a model file, without building the model."""
    meta, _ = read_model_file(resolve_model_path(path))
    return meta


def model_label(model: LoadedModel, spec: str | os.PathLike[str]) -> str:
    """Table label of a loaded model: its file's stem (the bundled name as given), or the run folder's
    name for a training run's ``<run>/model.safetensors``."""
    path = model.path
    if path is None:
        return os.fspath(spec)
    stem = path.name.removesuffix(SUFFIX)
    if stem == "model" and path.parent.name:
        return path.parent.name  # training runs write <run>/model.safetensors
    return stem
