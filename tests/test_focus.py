"""The moved-knob hint (Generator.focus): edit ratios, lock weights, and who takes the hint."""

from __future__ import annotations

import math

import numpy as np
import pytest

import neurorack as nr
from neurorack.curves.anchors import edit_curves, edit_ratios
from neurorack.descriptors import DescriptorConfig
from neurorack.errors import NeurorackError
from neurorack.generators.registry import build_baseline
from neurorack.metrics import control_response
from neurorack.models.generator import ModelGenerator
from neurorack.models.impact.presets import PRESETS, impact_curves
from neurorack.models.impact.spectral_lock import EMPHASIS, FOCUS_GAIN, focus_emphasis
from neurorack.models.registry import TINY_CONFIGS, build_model, model_names


def _curves() -> np.ndarray:
    return impact_curves(PRESETS["snare"], DescriptorConfig(44_100, 2048, 512))


def test_edit_ratios_are_ratios_of_medians() -> None:
    before = _curves()
    after = edit_curves(before, scale={"brightness": 2.0}, offset={"rolloff": -1500.0})
    ratios = edit_ratios(before, after)
    assert set(ratios) == {"centroid", "rolloff"}  # untouched descriptors are left out
    assert ratios["centroid"] == pytest.approx(2.0)
    rolloff = float(np.median(before[:, 2]))
    assert ratios["rolloff"] == pytest.approx((rolloff - 1500.0) / rolloff)
    assert edit_ratios(before, before) == {}
    with pytest.raises(NeurorackError, match="one shape"):
        edit_ratios(before, before[:5])


def test_focus_emphasis_exact_values() -> None:
    assert focus_emphasis(None) is None
    assert focus_emphasis({}) is None
    assert focus_emphasis({"rms": 2.0, "f0": 0.5}) is None  # no locked descriptor moved
    weights = focus_emphasis({"centroid": 2.0, "rolloff": 0.5, "rms": 3.0})
    assert weights is not None
    np.testing.assert_allclose(
        weights[:3], EMPHASIS * np.array([1 + FOCUS_GAIN * math.log(2), 1.0, 1 + FOCUS_GAIN * math.log(2)])
    )
    assert weights[3] == -1.0  # the roll-off was lowered
    raised = focus_emphasis({"rolloff": 1.5})
    assert raised is not None and raised[3] == 1.0
    bad = focus_emphasis({"bandwidth": float("nan"), "centroid": 1.5})
    assert bad is not None and bad[1] == EMPHASIS[1] and bad[3] == 0.0  # a non-finite ratio adds no weight


def test_turning_the_rolloff_down_on_a_low_tone_adds_no_hiss() -> None:
    """The bundled model's low tom is nearly a pure 80 Hz tone, darker than even a halved roll-off: the lock
    leaves it dark instead of lifting 15 % of the mass above the request (it measured a 2.3 kHz centroid)."""
    from neurorack.descriptors import describe_with

    m = nr.load_model()
    curves = m.anchor("VariBreaks/VP Tom Mid")
    edited = curves.copy()
    edited[:, 2] *= 0.5
    with m.focus({"rolloff": 0.5}):
        audio = m.generate(edited, seed=1)
    got = describe_with(audio, m.descriptor_config)[: len(curves)]
    active = curves[:, 0] > 0.01 * curves[:, 0].max()
    assert np.median(got[active, 5]) < 1.5 * np.median(curves[active, 5])  # centroid stays near the tom's
    assert np.median(got[active, 2]) <= np.median(curves[active, 2])  # and the roll-off did not rise


@pytest.mark.parametrize("name", model_names())
def test_focus_is_set_inside_the_block_and_cleared_after(name: str) -> None:
    model = build_model(name, **TINY_CONFIGS[name])
    gen = ModelGenerator(model)
    assert gen.takes_focus == (name == "ddsp-impact")
    curves = _curves()
    with gen.focus({"brightness": 2.0}):
        audio = gen.generate(curves, seed=0)
        if name == "ddsp-impact":
            assert model.lock_emphasis is not None and model.lock_emphasis[0] > EMPHASIS[0]
    assert np.isfinite(audio).all()
    assert getattr(model, "lock_emphasis", None) is None
    with pytest.raises(RuntimeError), gen.focus({"centroid": 2.0}):
        raise RuntimeError("render failed")
    assert getattr(model, "lock_emphasis", None) is None  # cleared on error too
    with pytest.raises(NeurorackError):
        model.set_focus({"sparkle": 2.0})  # unknown names are refused, as everywhere


def test_baselines_ignore_the_hint() -> None:
    config = DescriptorConfig(44_100, 2048, 512)
    for name in ("silence", "dsp"):
        gen = build_baseline(name, config)
        assert not gen.takes_focus
        with gen.focus({"centroid": 2.0}):
            a = gen.generate(_curves(), seed=3)
        np.testing.assert_array_equal(a, gen.generate(_curves(), seed=3))


@pytest.mark.parametrize("descriptor", ["centroid", "rolloff"])
def test_bundled_model_follows_a_named_or_guessed_knob_further(descriptor: str) -> None:
    """The bundled model on its own anchors: told which knob moved, or reading it from the curves with its
    descriptor prior, brightness and roll-off follow further than from the bare curves."""
    m = nr.load_model()
    assert m.prior is not None
    bare, guessed, named = [], [], []
    for anchor in m.anchor_names:
        curves = m.anchors[anchor]
        guessed.append(control_response(m, curves, descriptor).slope)
        named.append(control_response(m, curves, descriptor, focused=True).slope)
        m.guess_focus = False
        try:
            bare.append(control_response(m, curves, descriptor).slope)
        finally:
            m.guess_focus = True
    assert np.median(named) > np.median(bare) + 0.05, (bare, named)
    assert np.median(guessed) > np.median(bare) + 0.05, (bare, guessed)
