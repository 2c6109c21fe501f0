"""Model files (export / load round trip, clean failures) and anchor curve helpers."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import neurorack as nr
from neurorack import model_file
from neurorack.curves.anchors import (
    edit_curves,
    interpolate_curves,
    parse_edits,
    position_curves,
    resample_curves,
    select_anchors,
)
from neurorack.descriptors import DescriptorConfig
from neurorack.errors import ModelFileError, NeurorackError
from neurorack.model_file import FORMAT_VERSION, LoadedModel, export_model, load_model, tensor_digest
from neurorack.models import TINY_CONFIGS, ImpactModel, ModelGenerator, build_model, model_names
from neurorack.models.impact.presets import PRESETS, ImpactShape, impact_curves


def tiny_model(name: str) -> ImpactModel:
    model_names()  # fills the registry (and TINY_CONFIGS)
    model = build_model(name, **TINY_CONFIGS[name])
    model.set_statistics(torch.linspace(-2.0, 3.0, 7), torch.linspace(0.5, 2.5, 7))
    return model.eval()


def anchors_for(config: DescriptorConfig) -> dict[str, np.ndarray]:
    return {name: impact_curves(PRESETS[name], config) for name in ("kick", "snare", "hat")}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImpactModel, Path, dict[str, np.ndarray]]:
    model = tiny_model("ddsp-impact")
    anchors = anchors_for(model.descriptor_config)
    path = export_model(
        model,
        tmp_path_factory.mktemp("model") / "tiny.safetensors",
        anchors=anchors,
        anchor_info={"kick": {"label": "kick", "source": "presets.py"}},
        training={"corpus": "drums", "steps": 12, "loss": [1.5, 1.25]},
    )
    return model, path, anchors


# ------------------------------------------------------------------------------------------------
# Round trip
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", model_names())
def test_round_trip_identical_audio_for_every_model(name: str, tmp_path: Path) -> None:
    model = tiny_model(name)
    anchors = anchors_for(model.descriptor_config)
    path = export_model(model, tmp_path / "m.safetensors", anchors=anchors, training={"steps": 3})
    loaded = load_model(path)
    assert isinstance(loaded, LoadedModel) and isinstance(loaded, ModelGenerator)
    assert type(loaded.model) is type(model) and not loaded.model.training
    assert (loaded.sample_rate, loaded.hop_length) == (model.sample_rate, model.hop_length)
    assert loaded.model.config == model.config
    torch.testing.assert_close(loaded.model.desc_mean, model.desc_mean, rtol=0, atol=0)
    torch.testing.assert_close(loaded.model.desc_std, model.desc_std, rtol=0, atol=0)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    curves = anchors["snare"]
    want = ModelGenerator(model).generate(curves, seed=7)
    got = loaded.generate(curves, seed=7)
    assert got.dtype == np.float32 and got.shape == (len(curves) * model.hop_length,)
    np.testing.assert_array_equal(got, want)
    assert np.abs(got).max() > 0


def test_metadata_and_anchors_preserved(exported: tuple[ImpactModel, Path, dict[str, np.ndarray]]) -> None:
    model, path, anchors = exported
    loaded = nr.load_model(path)
    meta = loaded.metadata
    assert meta["format"] == "neurorack-model" and meta["version"] == FORMAT_VERSION
    assert meta["class"] == "ddsp-impact" and meta["kwargs"] == model.config
    assert meta["sample_rate"] == model.sample_rate and meta["hop_length"] == model.hop_length
    assert meta["descriptor_config"] == model.descriptor_config.to_dict()
    assert meta["statistics"]["mean"] == pytest.approx(model.desc_mean.tolist())
    assert meta["statistics"]["std"] == pytest.approx(model.desc_std.tolist())
    assert meta["training"] == {"corpus": "drums", "steps": 12, "loss": [1.5, 1.25]}
    assert meta["neurorack_version"] == nr.__version__ and meta["created"].endswith("+00:00")
    assert len(meta["sha256"]) == 64
    assert meta["anchors"][0] == {"name": "kick", "label": "kick", "source": "presets.py", "frames": 69}
    assert loaded.anchor_names == ["kick", "snare", "hat"]  # playing order kept
    for name, curves in anchors.items():
        np.testing.assert_array_equal(loaded.anchors[name], curves)
        assert loaded.anchors[name].dtype == np.float32
    assert loaded.descriptor_config == model.descriptor_config
    assert model_file.read_metadata(path) == meta


def test_file_layout_is_plain_safetensors(exported: tuple[ImpactModel, Path, dict[str, np.ndarray]]) -> None:
    model, path, _ = exported
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        meta = json.loads(f.metadata()["neurorack"])
        tensors = {k: f.get_tensor(k) for k in keys}
    assert {f"model.{k}" for k in model.state_dict()} | {"anchor.kick", "anchor.snare", "anchor.hat"} == keys
    assert tensors["anchor.hat"].dtype == torch.float32 and tensors["anchor.hat"].shape[1] == 7
    assert meta["sha256"] == tensor_digest(tensors)
    assert path.stat().st_mode & 0o777 == 0o644
    assert not list(path.parent.glob(".*.part"))  # atomic write left no temporary


def test_loaded_model_curve_helpers(exported: tuple[ImpactModel, Path, dict[str, np.ndarray]]) -> None:
    _, path, anchors = exported
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.position_curves(0.0), anchors["kick"])
    np.testing.assert_array_equal(loaded.position_curves(0.5), anchors["snare"])
    np.testing.assert_array_equal(loaded.position_curves(1.0, ["hat", "kick"]), anchors["kick"])
    mid = loaded.interpolate("kick", "hat", 0.5)
    np.testing.assert_array_equal(mid, interpolate_curves(anchors["kick"], anchors["hat"], 0.5))
    assert loaded.stretch(anchors["kick"], 1.0).shape == (round(44_100 / 512), 7)
    edited = loaded.edit(anchors["kick"], scale={"loudness": 0.5})
    np.testing.assert_allclose(edited[:, 0], anchors["kick"][:, 0] * 0.5, rtol=1e-6)
    with pytest.raises(NeurorackError, match="unknown anchor 'tom'; anchors: kick, snare, hat"):
        loaded.anchor("tom")


def test_export_without_anchors_and_suffix(tmp_path: Path) -> None:
    model = tiny_model("sinc-nsf")
    path = export_model(model, tmp_path / "sub" / "plain")
    assert path == tmp_path / "sub" / "plain.safetensors"
    loaded = load_model(str(path))
    assert loaded.anchors == {} and loaded.metadata["anchors"] == [] and loaded.metadata["training"] == {}


def test_export_rejects_bad_input(tmp_path: Path) -> None:
    model = tiny_model("ddsp-impact")
    with pytest.raises(NeurorackError, match="anchor 'x' must be finite"):
        export_model(model, tmp_path / "a", anchors={"x": np.zeros((10, 6))})
    with pytest.raises(NeurorackError, match="must be finite"):
        export_model(model, tmp_path / "a", anchors={"x": np.full((10, 7), np.nan)})
    with pytest.raises(NeurorackError, match="non-empty string"):
        export_model(model, tmp_path / "a", anchors={" x": np.ones((10, 7))})
    with pytest.raises(NeurorackError, match="training must be plain JSON"):
        export_model(model, tmp_path / "a", training={"obj": object()})
    with pytest.raises(NeurorackError, match="anchor_info for unknown anchors: y"):
        export_model(model, tmp_path / "a", anchors={"x": np.ones((3, 7))}, anchor_info={"y": {}})
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(NeurorackError, match="cannot write"):
        export_model(model, blocker / "m.safetensors")
    assert not list(tmp_path.rglob("*.safetensors"))


# ------------------------------------------------------------------------------------------------
# Clean failures
# ------------------------------------------------------------------------------------------------
def _one_line_error(path: Path, match: str) -> str:
    with pytest.raises(ModelFileError, match=match) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def _rewrite_metadata(src: Path, dst: Path, edit: dict[str, object]) -> None:
    with safe_open(str(src), framework="pt") as f:
        meta = json.loads(f.metadata()["neurorack"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    meta.update(edit)
    save_file(tensors, str(dst), metadata={"neurorack": json.dumps(meta)})


def test_flipped_tensor_bytes_are_a_checksum_error(
    exported: tuple[ImpactModel, Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    data = bytearray(exported[1].read_bytes())
    for offset in (len(data) - 3, len(data) // 2 + 100):
        bad = data.copy()
        bad[offset] ^= 0xFF
        path = tmp_path / f"flip{offset}.safetensors"
        path.write_bytes(bytes(bad))
        _one_line_error(path, "corrupt model file \\(checksum mismatch")


def test_truncated_random_and_foreign_files(
    exported: tuple[ImpactModel, Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    data = exported[1].read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    _one_line_error(truncated, "not a neurorack model file \\(not a readable safetensors file")
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(data[:5])
    _one_line_error(tiny, "not a neurorack model file")
    noise = tmp_path / "noise.safetensors"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    _one_line_error(noise, "not a neurorack model file")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    _one_line_error(empty, "not a neurorack model file")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.ones(3, 3)}, str(foreign))
    _one_line_error(foreign, "without neurorack metadata")
    other = tmp_path / "other.safetensors"
    save_file({"weight": torch.ones(3)}, str(other), metadata={"neurorack": json.dumps({"format": "x"})})
    _one_line_error(other, "format is not 'neurorack-model'")
    garbled = tmp_path / "garbled.safetensors"
    save_file({"weight": torch.ones(3)}, str(garbled), metadata={"neurorack": "{not json"})
    _one_line_error(garbled, "metadata is not valid JSON")


def test_future_version_and_bad_metadata(
    exported: tuple[ImpactModel, Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    src = exported[1]
    future = tmp_path / "future.safetensors"
    _rewrite_metadata(src, future, {"version": FORMAT_VERSION + 1})
    msg = _one_line_error(future, "written by a newer neurorack")
    assert f"version {FORMAT_VERSION + 1}" in msg and "upgrade neurorack" in msg
    unknown = tmp_path / "unknown.safetensors"
    _rewrite_metadata(src, unknown, {"class": "wavenet-9000"})
    _one_line_error(unknown, "model class 'wavenet-9000' is unknown to this neurorack")
    kwargs = tmp_path / "kwargs.safetensors"
    _rewrite_metadata(src, kwargs, {"kwargs": {"hidden": 16, "layers": 1, "n_partials": 5, "n_bands": 8}})
    _one_line_error(kwargs, "weights do not fit 'ddsp-impact'")
    stats = tmp_path / "stats.safetensors"
    _rewrite_metadata(src, stats, {"statistics": {"mean": [0.0] * 7, "std": [1.0] * 7}})
    _one_line_error(stats, "statistics mean disagree")


def test_missing_files_and_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(ModelFileError, match="not a file"):
        load_model(tmp_path)
    monkeypatch.setattr(model_file, "bundled_model_path", lambda name="default": tmp_path / f"{name}.safetensors")
    with pytest.raises(ModelFileError, match=r"no bundled model is installed .*neurorack train.*neurorack export"):
        load_model()
    with pytest.raises(ModelFileError, match="not a bundled model"):
        load_model("drums")
    export_model(tiny_model("ddsp-impact"), tmp_path / "drums.safetensors")
    assert load_model("drums").name == "ddsp-impact"
    export_model(tiny_model("ddsp-impact"), tmp_path / "default.safetensors")
    assert load_model().path == tmp_path / "default.safetensors"


def test_loader_never_unpickles(tmp_path: Path) -> None:
    sentinel = tmp_path / "unpickled"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[Path]]:
            return (Path.touch, (sentinel,))

    for name, payload in (("evil.safetensors", pickle.dumps(Evil())), ("evil.pt", pickle.dumps(Evil()))):
        path = tmp_path / name
        path.write_bytes(payload)
        _one_line_error(path, "not a neurorack model file")
    torch.save({"model": torch.ones(3)}, tmp_path / "ckpt.safetensors")
    _one_line_error(tmp_path / "ckpt.safetensors", "not a neurorack model file")
    assert not sentinel.exists()


# ------------------------------------------------------------------------------------------------
# Anchors
# ------------------------------------------------------------------------------------------------
def flat(values: list[float], frames: int = 5) -> np.ndarray:
    return np.tile(np.asarray(values, dtype=np.float32), (frames, 1))


def test_interpolation_end_points_and_midpoints() -> None:
    cfg = DescriptorConfig()
    a, b = impact_curves(PRESETS["kick"], cfg), impact_curves(PRESETS["hat"], cfg)
    np.testing.assert_array_equal(interpolate_curves(a, b, 0.0), a)
    np.testing.assert_array_equal(interpolate_curves(a, b, 1.0), b)
    assert interpolate_curves(a, b, 0.5).shape == (round((len(a) + len(b)) / 2), 7)
    x = flat([0.1, 0.2, 1000.0, 0.1, 100.0, 100.0, 50.0])
    y = flat([0.4, 0.6, 4000.0, 0.5, 400.0, 900.0, 200.0])
    mid = interpolate_curves(x, y, 0.5)
    np.testing.assert_allclose(mid[0], [0.2, 0.4, 2000.0, 0.3, 200.0, 300.0, 100.0], rtol=1e-6)
    quarter = interpolate_curves(x, y, 0.25)
    np.testing.assert_allclose(quarter[0, 0], 0.1 * 4**0.25, rtol=1e-6)
    np.testing.assert_allclose(quarter[0, 1], 0.3, rtol=1e-6)
    silent = flat([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 441.0])
    np.testing.assert_array_equal(interpolate_curves(silent, silent, 0.5)[:, :3], 0.0)


def test_interpolation_time_alignment_and_errors() -> None:
    short = flat([0.1, 0.1, 1000, 0.1, 500, 500, 100], frames=10)
    long = flat([0.4, 0.1, 1000, 0.1, 500, 500, 100], frames=30)
    assert interpolate_curves(short, long, 0.5).shape == (20, 7)
    assert interpolate_curves(short, long, 0.25).shape == (15, 7)
    with pytest.raises(NeurorackError, match=r"0\.\.1"):
        interpolate_curves(short, long, 1.5)
    with pytest.raises(NeurorackError, match="shape"):
        interpolate_curves(short[:, :6], long, 0.5)
    decay = np.exp(-np.arange(9) / 3.0)
    curves = flat([0.1, 0.1, 1000, 0.1, 500, 500, 100], frames=9)
    curves[:, 0] = decay
    stretched = resample_curves(curves, 17)  # in log: an exponential decay stays exponential
    np.testing.assert_allclose(stretched[:, 0], np.exp(-np.arange(17) / 6.0), rtol=1e-5)
    np.testing.assert_array_equal(resample_curves(curves, 9), curves.astype(np.float32))


def test_position_across_anchors() -> None:
    anchors = [flat([r, 0.1, 1000, 0.1, 500, 500, 100]) for r in (0.1, 0.4, 1.6)]
    np.testing.assert_array_equal(position_curves(anchors, 0.0), anchors[0])
    np.testing.assert_array_equal(position_curves(anchors, 0.5), anchors[1])
    np.testing.assert_array_equal(position_curves(anchors, 1.0), anchors[2])
    np.testing.assert_allclose(position_curves(anchors, 0.25)[0, 0], 0.2, rtol=1e-6)
    np.testing.assert_allclose(position_curves(anchors, 0.75)[0, 0], 0.8, rtol=1e-6)
    np.testing.assert_array_equal(position_curves(anchors[:1], 0.3), anchors[0])
    with pytest.raises(NeurorackError, match=r"position must lie in 0\.\.1"):
        position_curves(anchors, -0.1)
    with pytest.raises(NeurorackError, match="no anchors"):
        position_curves([], 0.5)


def test_edit_curves() -> None:
    curves = flat([0.2, 0.1, 4000, 0.2, 1500, 2000, 110])
    curves[:, 0] = [0.0, 0.4, 0.2, 0.1, 0.05]
    out = edit_curves(curves, scale={"brightness": 1.5, "rms": 0.5}, offset={"pitch": -10, "zcr": 2.0})
    np.testing.assert_allclose(out[:, 5], 3000)
    np.testing.assert_allclose(out[:, 0], [0.0, 0.2, 0.1, 0.05, 0.025], rtol=1e-6)
    np.testing.assert_allclose(out[:, 6], 100)
    np.testing.assert_allclose(out[:, 1], 1.0)  # zcr clipped to 0..1
    np.testing.assert_array_equal(out[:, [2, 3, 4]], curves[:, [2, 3, 4]])
    peak = edit_curves(curves, absolute={"loudness": 0.8, "centroid": 500})
    np.testing.assert_allclose(peak[:, 0], [0.0, 0.8, 0.4, 0.2, 0.1], rtol=1e-6)  # shape kept, peak set
    np.testing.assert_allclose(peak[:, 5], 500)
    silent = curves.copy()
    silent[:, 0] = 0
    np.testing.assert_allclose(edit_curves(silent, absolute={"rms": 0.3})[:, 0], 0.3)
    combined = edit_curves(curves, absolute={"f0": 200}, scale={"f0": 2}, offset={"f0": 5})
    np.testing.assert_allclose(combined[:, 6], 405)
    np.testing.assert_allclose(edit_curves(curves, offset={"bandwidth": -9999})[:, 4], 0)
    assert edit_curves(curves).dtype == np.float32
    with pytest.raises(NeurorackError, match="unknown descriptor 'sparkle'; valid: rms \\(loudness\\)"):
        edit_curves(curves, scale={"sparkle": 2})
    with pytest.raises(NeurorackError, match="centroid given twice"):
        edit_curves(curves, scale={"centroid": 2, "brightness": 2})
    with pytest.raises(NeurorackError, match="cannot be negative"):
        edit_curves(curves, scale={"rms": -1})


def test_parse_edits() -> None:
    scale, offset, absolute = parse_edits(
        [
            "brightness=+30%",
            "rms=x0.5",
            "f0=+100",
            "centroid=3000",
            "zcr=-20%",
            "richness=80%",
            "noisiness=2x",
            "rolloff=*1.5",
            "pitch=-20",
            "bandwidth=3kHz",
            "flatness=+6dB",
        ]
    )
    assert scale == pytest.approx(
        {"centroid": 1.3, "rms": 0.5, "zcr": 0.8, "bandwidth": 0.8, "rolloff": 3.0, "flatness": 10**0.3}
    )
    assert offset == pytest.approx({"f0": 80.0})
    assert absolute == pytest.approx({"centroid": 3000.0, "bandwidth": 3000.0})
    for bad, match in (
        ("brightness", "expected NAME=VALUE"),
        ("brightness=", "expected NAME=VALUE"),
        ("brightness=loud", "bad --set value 'loud' for centroid"),
        ("sparkle=2", "unknown descriptor 'sparkle'"),
        ("rms=-150%", "below -100%"),
    ):
        with pytest.raises(NeurorackError, match=match):
            parse_edits([bad])


def test_select_anchors_diverse_and_deterministic() -> None:
    cfg = DescriptorConfig()
    sounds: dict[str, np.ndarray] = {}
    for preset, shape in PRESETS.items():
        for k, factor in enumerate((0.9, 1.0, 1.1)):
            varied = ImpactShape(
                shape.duration,
                shape.peak_rms * factor,
                shape.decay,
                shape.centroid * factor,
                shape.bandwidth,
                shape.rolloff * factor,
                shape.flatness,
                shape.f0 * factor,
                shape.zcr,
            )
            sounds[f"{preset}-{k}"] = impact_curves(varied, cfg)
    names, curves = select_anchors(sounds, 5)
    assert len(names) == 5 == len(set(names))
    assert {n.split("-")[0] for n in names} == set(PRESETS)  # one of each kind
    brightness = [float(np.log(c[:, 5]).mean()) for c in curves]
    assert brightness == sorted(brightness)  # dark to bright
    for name, c in zip(names, curves, strict=True):
        np.testing.assert_array_equal(c, sounds[name])
    assert select_anchors(list(sounds.items()), 5)[0] == names
    assert select_anchors({"a": sounds["kick-0"]}, 3)[0] == ["a"]
    with pytest.raises(NeurorackError, match="no sounds"):
        select_anchors({}, 3)


def test_files_older_than_a_setting_rebuild_with_its_old_value(tmp_path: Path) -> None:
    """A file written before ddsp-impact had ``overlap``/``shape_lock``/``envelope_steps``/``analysis_masses``
    sounds as it did, not like today's default."""
    model_names()
    added = {"overlap": 4, "shape_lock": False, "envelope_steps": 8, "analysis_masses": False}
    legacy = build_model("ddsp-impact", **{**TINY_CONFIGS["ddsp-impact"], **added}).eval()
    legacy.set_statistics(torch.linspace(-2.0, 3.0, 7), torch.linspace(0.5, 2.5, 7))
    path = export_model(legacy, tmp_path / "new.safetensors")
    with safe_open(str(path), framework="pt") as f:
        kwargs = json.loads(f.metadata()["neurorack"])["kwargs"]
    old_kwargs = {k: v for k, v in kwargs.items() if k not in added}
    old = tmp_path / "old.safetensors"
    _rewrite_metadata(path, old, {"kwargs": old_kwargs})
    loaded = load_model(old)
    assert {k: loaded.model.config[k] for k in added} == added
    curves = impact_curves(PRESETS["snare"], legacy.descriptor_config)
    np.testing.assert_array_equal(loaded.generate(curves, seed=3), ModelGenerator(legacy).generate(curves, seed=3))
