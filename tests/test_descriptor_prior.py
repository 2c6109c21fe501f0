"""The descriptor prior: fitting, the moved-knob guess, storage in model files, use by generators, CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from neurorack.cli import main
from neurorack.curves.descriptor_prior import (
    FRAMES_PER_COMPONENT,
    MOVABLE,
    PRIOR_COLUMNS,
    DescriptorPrior,
    prior_features,
)
from neurorack.descriptors import DESCRIPTOR_NAMES
from neurorack.errors import ModelFileError, NeurorackError
from neurorack.model_file import PRIOR_PREFIX, export_model, export_with_prior, load_model, tensor_digest
from neurorack.models import TINY_CONFIGS, build_model, model_names
from neurorack.models.generator import ModelGenerator

COL = {name: DESCRIPTOR_NAMES.index(name) for name in DESCRIPTOR_NAMES}


def natural_curves(rng: np.random.Generator, frames: int = 40) -> np.ndarray:
    """A decaying hit whose brightness descriptors move together, as in real sounds.

    One log-brightness ``b`` per sound sets the centroid; bandwidth, roll-off and zero-crossing rate
    follow it with small independent jitter (0.05 nepers), so any one of them moved alone stands out.
    """
    brightness = rng.uniform(math.log(300.0), math.log(6000.0))
    curves = np.zeros((frames, 7), dtype=np.float32)
    jitter = rng.normal(0.0, 0.05, size=(frames, 4))
    curves[:, COL["rms"]] = 0.5 * np.exp(-np.arange(frames) / 12.0)
    curves[:, COL["centroid"]] = np.exp(brightness + jitter[:, 0])
    curves[:, COL["bandwidth"]] = np.exp(brightness - 0.3 + jitter[:, 1])
    curves[:, COL["rolloff"]] = np.exp(brightness + 0.6 + jitter[:, 2])
    curves[:, COL["zcr"]] = np.exp(brightness - math.log(44_100.0) + jitter[:, 3])
    curves[:, COL["flatness"]] = np.exp(rng.uniform(-6.0, -1.0))
    curves[:, COL["f0"]] = rng.uniform(50.0, 500.0)
    return curves


@pytest.fixture(scope="module")
def prior() -> DescriptorPrior:
    rng = np.random.default_rng(0)
    return DescriptorPrior.fit([natural_curves(rng) for _ in range(60)], components=3)


def test_features_are_logs_of_the_active_frames() -> None:
    curves = np.ones((4, 7), dtype=np.float32)
    curves[:, 0] = [1.0, 0.1, 0.001, 0.0]  # 0, -20, -60 dB, silence
    curves[:, COL["centroid"]] = [100.0, 200.0, 300.0, 400.0]
    feats = prior_features(curves, active_db=40.0)
    assert feats.shape == (2, len(PRIOR_COLUMNS))
    np.testing.assert_allclose(feats[:, PRIOR_COLUMNS.index("centroid")], np.log([100.0, 200.0]))
    np.testing.assert_allclose(feats[:, PRIOR_COLUMNS.index("rms")], np.log([1.0, 0.1]))
    assert prior_features(np.zeros((3, 7))).shape == (0, len(PRIOR_COLUMNS))


def test_natural_curves_name_nothing(prior: DescriptorPrior) -> None:
    rng = np.random.default_rng(1)
    for _ in range(10):
        guess = prior.guess(natural_curves(rng))
        assert guess.descriptor is None and guess.ratio == 1.0
        assert set(guess.scores) == {"none", *MOVABLE}
    assert prior.focus(np.zeros((5, 7))) == {}  # no active frame


@pytest.mark.parametrize("name", MOVABLE)
@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_one_moved_descriptor_is_named_with_its_size(prior: DescriptorPrior, name: str, scale: float) -> None:
    rng = np.random.default_rng(2)
    for _ in range(5):
        curves = natural_curves(rng)
        curves[:, COL[name]] *= scale
        guess = prior.guess(curves)
        assert guess.descriptor == name
        assert guess.margin > prior.margin
        # the posterior mean of a N(0, 0.7²) move shrinks a little towards 0
        est, want = math.log(guess.ratio), math.log(scale)
        assert est * want > 0 and 0.7 * abs(want) < abs(est) < 1.05 * abs(want)
        assert prior.focus(curves) == {name: guess.ratio}


def test_a_global_brightness_change_is_natural(prior: DescriptorPrior) -> None:
    curves = natural_curves(np.random.default_rng(3))
    for name in ("centroid", "bandwidth", "rolloff", "zcr"):  # everything brighter together
        curves[:, COL[name]] *= 1.3
    assert prior.guess(curves).descriptor is None


def test_curves_unlike_any_sound_name_nothing(prior: DescriptorPrior) -> None:
    """A drawing whose descriptors are all out of line is left to the lock, however much likelier one
    move makes it than "nothing moved"."""
    assert prior.plausible is not None
    own = [prior.guess(natural_curves(np.random.default_rng(6 + i))).scores["none"] for i in range(20)]
    assert min(own) > prior.plausible  # the floor lies below the scores of natural sounds
    curves = natural_curves(np.random.default_rng(7))
    curves[:, COL["rolloff"]] *= 2.0
    curves[:, COL["zcr"]] *= 8.0  # and the zero-crossing rate far out of line: no hypothesis explains it
    curves[:, COL["flatness"]] = 0.9
    guess = prior.guess(curves)
    assert guess.margin > prior.margin  # a moved knob beats "nothing moved" ...
    assert max(guess.scores.values()) < prior.plausible  # ... but finds the curves implausible
    assert guess.descriptor is None and prior.focus(curves) == {}
    no_floor = DescriptorPrior(prior.weights, prior.means, prior.covariances)
    assert no_floor.plausible is None and no_floor.guess(curves).descriptor is not None  # one knob read into it


def test_fit_needs_frames_and_shrinks_the_mixture() -> None:
    rng = np.random.default_rng(4)
    with pytest.raises(NeurorackError, match=f"at least {FRAMES_PER_COMPONENT} active frames"):
        DescriptorPrior.fit([natural_curves(rng, frames=5)])
    with pytest.raises(NeurorackError, match="at least"):
        DescriptorPrior.fit([])
    few = DescriptorPrior.fit([natural_curves(rng, frames=30)], components=12)
    assert few.components == 1  # 30 frames hold one component of 20 frames


def test_bad_mixtures_are_refused(prior: DescriptorPrior) -> None:
    w, mu, cov = prior.weights, prior.means, prior.covariances
    with pytest.raises(NeurorackError, match="needs weights"):
        DescriptorPrior(w, mu[:, :3], cov)
    with pytest.raises(NeurorackError, match="sum to 1"):
        DescriptorPrior(w * 2, mu, cov)
    with pytest.raises(NeurorackError, match="non-finite"):
        DescriptorPrior(w, np.full_like(mu, np.nan), cov)
    with pytest.raises(NeurorackError, match="positive definite"):
        DescriptorPrior(w, mu, -cov)
    asym = cov.copy()
    asym[:, 0, 1] += 1.0
    with pytest.raises(NeurorackError, match="not symmetric"):
        DescriptorPrior(w, mu, asym)
    with pytest.raises(NeurorackError, match="move_std"):
        DescriptorPrior(w, mu, cov, move_std=0.0)
    with pytest.raises(NeurorackError, match="plausibility floor must be finite"):
        DescriptorPrior(w, mu, cov, plausible=math.nan)


def test_tensors_round_trip(prior: DescriptorPrior) -> None:
    again = DescriptorPrior.from_tensors(prior.to_tensors(), prior.metadata())
    curves = natural_curves(np.random.default_rng(5))
    curves[:, COL["bandwidth"]] *= 2.0
    assert again.guess(curves) == prior.guess(curves)
    meta = prior.metadata()
    with pytest.raises(NeurorackError, match="lacks covariances"):
        DescriptorPrior.from_tensors({k: v for k, v in prior.to_tensors().items() if k != "covariances"}, meta)
    with pytest.raises(NeurorackError, match="columns"):
        DescriptorPrior.from_tensors(prior.to_tensors(), {**meta, "columns": ["rms"]})
    with pytest.raises(NeurorackError, match="move_std or margin"):
        DescriptorPrior.from_tensors(prior.to_tensors(), {"columns": list(PRIOR_COLUMNS)})
    assert again.plausible == prior.plausible
    older = DescriptorPrior.from_tensors(prior.to_tensors(), {k: v for k, v in meta.items() if k != "plausible"})
    assert older.plausible is None  # files written before the floor existed guess as they did
    with pytest.raises(NeurorackError, match="plausibility floor must be a number"):
        DescriptorPrior.from_tensors(prior.to_tensors(), {**meta, "plausible": "low"})


# ------------------------------------------------------------------------------------------------
# Generators and model files
# ------------------------------------------------------------------------------------------------
def tiny_impact() -> torch.nn.Module:
    model_names()
    model = build_model("ddsp-impact", **TINY_CONFIGS["ddsp-impact"])
    return model.eval()


def test_generator_plays_the_guessed_knob(prior: DescriptorPrior) -> None:
    gen = ModelGenerator(tiny_impact(), prior)
    curves = natural_curves(np.random.default_rng(6))
    curves[:, COL["rolloff"]] *= 2.0
    hint = gen.guessed_focus(curves)
    assert list(hint) == ["rolloff"]
    guessed = gen.generate(curves, seed=3)
    with gen.focus(hint):
        assert gen.guessed_focus(curves) == {}  # a named brightness knob is not second-guessed
        named = gen.generate(curves, seed=3)
    np.testing.assert_array_equal(guessed, named)
    gen.guess_focus = False
    bare = gen.generate(curves, seed=3)
    assert not np.array_equal(bare, guessed)  # the guess changes the lock's priorities
    gen.guess_focus = True
    with gen.focus({"rms": 2.0}):  # loudness is not a lock condition: the guess still applies
        assert gen.guessed_focus(curves) == hint
        np.testing.assert_array_equal(gen.generate(curves, seed=3), guessed)
    assert gen.model.lock_emphasis is None  # nothing left behind


def test_models_without_the_hint_never_guess(prior: DescriptorPrior) -> None:
    model_names()
    nsf = build_model("sinc-nsf", **TINY_CONFIGS["sinc-nsf"]).eval()
    curves = natural_curves(np.random.default_rng(7))
    curves[:, COL["centroid"]] *= 2.0
    assert ModelGenerator(nsf, prior).guessed_focus(curves) == {}
    assert ModelGenerator(tiny_impact(), None).guessed_focus(curves) == {}


def test_model_file_keeps_the_prior(prior: DescriptorPrior, tmp_path: Path) -> None:
    model = tiny_impact()
    path = export_model(model, tmp_path / "with.safetensors", prior=prior)
    loaded = load_model(path)
    assert loaded.prior is not None
    assert loaded.metadata["descriptor_prior"]["components"] == prior.components
    np.testing.assert_array_equal(loaded.prior.covariances, prior.covariances)
    without = load_model(export_model(model, tmp_path / "without.safetensors"))
    assert without.prior is None and "descriptor_prior" not in without.metadata
    # a copy with a prior added: same weights and anchors, the source untouched
    before = (tmp_path / "without.safetensors").read_bytes()
    copy = export_with_prior(tmp_path / "without.safetensors", tmp_path / "copy", prior)
    assert copy.name == "copy.safetensors" and (tmp_path / "without.safetensors").read_bytes() == before
    again = load_model(copy)
    assert again.prior is not None
    for key, value in without.model.state_dict().items():
        torch.testing.assert_close(again.model.state_dict()[key], value, rtol=0, atol=0)
    with pytest.raises(NeurorackError, match="never rewritten"):
        export_with_prior(tmp_path / "without.safetensors", tmp_path / "without.safetensors", prior)


def test_broken_priors_in_files_are_one_line_errors(prior: DescriptorPrior, tmp_path: Path) -> None:
    path = export_model(tiny_impact(), tmp_path / "m.safetensors", prior=prior)
    with safe_open(str(path), framework="pt") as f:
        import json

        meta = json.loads(f.metadata()["neurorack"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118

    def write(name: str, tensors: dict[str, torch.Tensor], meta: dict[str, object]) -> Path:
        out = tmp_path / name
        save_file(tensors, str(out), metadata={"neurorack": json.dumps({**meta, "sha256": tensor_digest(tensors)})})
        return out

    no_settings = write("a.safetensors", tensors, {k: v for k, v in meta.items() if k != "descriptor_prior"})
    with pytest.raises(ModelFileError, match="prior tensors without their settings"):
        load_model(no_settings)
    broken = dict(tensors)
    broken[PRIOR_PREFIX + "weights"] = broken[PRIOR_PREFIX + "weights"] * 3
    with pytest.raises(ModelFileError, match="corrupt model file \\(descriptor prior weights") as info:
        load_model(write("b.safetensors", broken, meta))
    assert "\n" not in str(info.value)


def test_export_cli_adds_a_prior_to_a_model_file(
    tmp_path: Path, corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = export_model(tiny_impact(), tmp_path / "old.safetensors")
    out = tmp_path / "new.safetensors"
    assert main(["export", str(source), "--corpus", str(corpus_dir), "--out", str(out)]) == 0
    assert "DescriptorPrior(" in capsys.readouterr().out
    assert load_model(out).prior is not None and load_model(source).prior is None
    for args, match in (
        (["export", str(source), "--out", str(tmp_path / "x.safetensors")], "needs --corpus"),
        (["export", str(source), "--corpus", str(corpus_dir), "--out", str(source)], "never rewritten"),
        (["export", str(tmp_path), "--corpus", str(corpus_dir)], "--corpus is for a model file"),
    ):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert "Traceback" not in err and len(err.splitlines()) == 1 and match in err, err


def test_export_cli_refuses_to_overwrite_the_source_before_fitting(
    tmp_path: Path, corpus_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same-file refusal comes first: no seconds spent fitting a prior that cannot be written."""
    import neurorack.training.export as export_module

    def no_fit(*args: object, **kwargs: object) -> None:
        raise AssertionError("the prior was fitted before the --out check")

    monkeypatch.setattr(export_module, "fit_prior", no_fit)
    source = export_model(tiny_impact(), tmp_path / "old.safetensors")
    assert main(["export", str(source), "--corpus", str(corpus_dir), "--out", str(tmp_path / "old")]) == 2
    assert "never rewritten" in capsys.readouterr().err
