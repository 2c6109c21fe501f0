"""The adversarial waveform stage of fader-ae: the MS-STFT discriminator, its losses, training, resume, export."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from neurorack.cli import main
from neurorack.errors import NeurorackError
from neurorack.model_file import read_model_file
from neurorack.models.registry import TINY_CONFIGS
from neurorack.training import fader_module, train
from neurorack.training.fader_module import FaderTrainingModule
from neurorack.training.run_folder import LAST_CHECKPOINT
from neurorack.training.waveform_discriminator import (
    MultiScaleSTFTDiscriminator,
    STFTDiscriminator,
    discriminator_hinge,
    feature_matching,
    generator_hinge,
)
from test_training import QUICK

TERMS = ("adversarial_wave", "feature_matching", "disc_real", "disc_fake")
PREFIX = "waveform_discriminator."


def scale(logits: list[float], maps: list[list[float]] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A hand-made scale output: logits ``[1, 1, 1, N]`` and feature maps ``[1, 1, 1, M]``."""
    return torch.tensor(logits).view(1, 1, 1, -1), [torch.tensor(m).view(1, 1, 1, -1) for m in maps or []]


# -- the discriminator -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 4096), (3, 1, 4096)])
def test_output_shapes_per_scale(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    disc = MultiScaleSTFTDiscriminator((2048, 1024, 512), filters=8)
    outputs = disc(torch.randn(*shape))
    assert len(outputs) == 3
    for n_fft, (logits, maps) in zip((2048, 1024, 512), outputs, strict=True):
        frames, bins = 1 + 4096 // (n_fft // 4), n_fft // 2 + 1
        assert logits.shape == (3, 1, frames, math.ceil(bins / 8))
        widths = [bins, math.ceil(bins / 2), math.ceil(bins / 4), math.ceil(bins / 8), math.ceil(bins / 8)]
        assert [tuple(m.shape) for m in maps] == [(3, 8, frames, w) for w in widths]
    # shorter than the largest window: centred, zero-padded frames still work
    logits, _ = STFTDiscriminator(2048, filters=4)(torch.randn(2, 300))
    assert logits.shape == (2, 1, 1 + 300 // 512, math.ceil(1025 / 8))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        disc(torch.randn(2, 2, 100))


def test_hinge_losses_exact() -> None:
    real = [scale([0.5, 2.0, -1.0]), scale([1.0, 0.0])]
    fake = [scale([-2.0, 0.0, 3.0]), scale([-1.0, -0.5])]
    terms = discriminator_hinge(real, fake)
    assert set(terms) == {"disc_real", "disc_fake"}
    # scale 1: relu(1 - r) = 0.5, 0, 2 -> 5/6; relu(1 + f) = 0, 1, 4 -> 5/3
    # scale 2: relu(1 - r) = 0, 1 -> 1/2;     relu(1 + f) = 0, 0.5 -> 1/4
    assert float(terms["disc_real"]) == pytest.approx((5 / 6 + 1 / 2) / 2, abs=1e-7)
    assert float(terms["disc_fake"]) == pytest.approx((5 / 3 + 1 / 4) / 2, abs=1e-7)
    gen = generator_hinge(fake)
    assert set(gen) == {"adversarial_wave"}
    assert float(gen["adversarial_wave"]) == pytest.approx((-1 / 3 + 0.75) / 2, abs=1e-7)  # -mean per scale
    with pytest.raises(ValueError, match="scales"):
        discriminator_hinge(real, fake[:1])


def test_feature_matching() -> None:
    real = [scale([0.0], [[2.0, -2.0], [1.0, 1.0]])]
    fake = [scale([0.0], [[3.0, -1.0], [1.0, 1.0]])]
    # map 1: mean |f - r| = 1 over mean |r| = 2 -> 0.5; map 2: 0; mean 0.25
    assert float(feature_matching(real, fake)["feature_matching"]) == pytest.approx(0.25, abs=1e-7)
    torch.manual_seed(0)
    disc = MultiScaleSTFTDiscriminator(filters=4)
    x = 0.1 * torch.randn(2, 4096)
    with torch.no_grad():
        same = feature_matching(disc(x), disc(x.clone()))
    assert set(same) == {"feature_matching"} and float(same["feature_matching"]) == 0.0
    fake = x + 0.05 * torch.randn(2, 4096, requires_grad=True)
    other = feature_matching(disc(x), disc(fake))["feature_matching"]
    assert float(other.detach()) > 0.0
    other.backward()  # differentiable in the fake audio


# -- the training module ---------------------------------------------------------------------------------------
def test_off_by_default_and_nothing_added() -> None:
    config = dict(TINY_CONFIGS["fader-ae"])
    off = FaderTrainingModule("fader-ae", config)
    assert off.waveform_discriminator is None
    assert not any(k.startswith(PREFIX) for k in off.state_dict())
    assert not any(k.startswith("waveform") or k == "feature_matching_weight" for k in off.hparams)
    on = FaderTrainingModule("fader-ae", config, waveform_adversary=True, waveform_start=5)
    assert on.waveform_discriminator is not None and on.hparams["waveform_adversary"]
    assert on.hparams["waveform_start"] == 5
    own = [k for k in on.state_dict() if k.startswith(PREFIX)]
    assert own and not any(k.startswith("model.") and "waveform" in k for k in on.state_dict())
    # before waveform_start the discriminator is not trained (and the optimiser not needed)
    audio = torch.zeros(2, 1024)
    assert on._waveform_discriminator_step(None, audio, audio, step=4) == {}


def test_train_resume_export(corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    initial: list[dict[str, torch.Tensor]] = []
    original = fader_module.MultiScaleSTFTDiscriminator

    def recording(*args: Any, **kwargs: Any) -> MultiScaleSTFTDiscriminator:
        disc = original(*args, **kwargs)
        initial.append({k: v.detach().clone() for k, v in disc.state_dict().items()})
        return disc

    monkeypatch.setattr(fader_module, "MultiScaleSTFTDiscriminator", recording)
    run = tmp_path / "run"
    first = train(
        corpus_dir, out=run, model="fader-ae", model_config="tiny", max_steps=2, waveform_adversary=True, **QUICK
    )
    assert first.global_step == 2 and len(initial) == 1  # discriminator steps are not counted
    for name in TERMS:
        assert np.isfinite(first.metrics[f"train/{name}"]), name
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "logs"))
    events.Reload()
    assert {f"train/{name}_step" for name in TERMS} <= set(events.Tags()["scalars"])
    assert json.loads((run / "run.json").read_text())["waveform_adversary"] is True

    last = run / "checkpoints" / LAST_CHECKPOINT
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert len(ckpt["optimizer_states"]) == 3 and len(ckpt["lr_schedulers"]) == 3
    trained = {k[len(PREFIX) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(PREFIX)}
    assert trained.keys() == initial[0].keys()
    assert any(not torch.equal(trained[k], initial[0][k]) for k in trained)  # the discriminator learned

    # the exported model holds the autoencoder only
    assert first.model_file is not None
    _, tensors = read_model_file(first.model_file)
    assert tensors and not any("discriminator" in k for k in tensors)

    # the setting cannot change on resume; left out, it is restored from the run
    with pytest.raises(NeurorackError, match="cannot change on resume"):
        train(corpus_dir, out=run, resume=True, max_steps=4, waveform_adversary=False, export=False, **QUICK)
    second = train(corpus_dir, out=run, resume=True, max_steps=4, export=False, **QUICK)
    assert second.global_step == 4 and second.resumed and len(initial) == 2
    assert np.isfinite(second.metrics["train/adversarial_wave"])
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    resumed = {k[len(PREFIX) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(PREFIX)}
    assert any(not torch.equal(resumed[k], trained[k]) for k in trained)
    assert len(ckpt["optimizer_states"]) == 3
    meta = json.loads((run / "run.json").read_text())
    assert meta["waveform_adversary"] is True and len(meta["sessions"]) == 2


@pytest.mark.parametrize(
    ("flag", "kwargs"),
    [("--waveform-adversary", {"waveform_adversary": True}), ("--adversary-weight", {"adversary_weight": 0.0})],
)
def test_only_for_autoencoders(
    corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(NeurorackError, match=r"autoencoders \(.*fader-ae.*\), not 'ddsp-impact'"):
        train(corpus_dir, out=tmp_path / "run", model="ddsp-impact", max_steps=1, **kwargs, **QUICK)
    assert not (tmp_path / "run").exists()
    argv = ["train", str(corpus_dir), "--out", str(tmp_path / "cli"), flag, *(["2"] if "weight" in flag else [])]
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{flag} is for autoencoders" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1


def test_adversary_weight_reaches_the_module_and_survives_resume(corpus_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(corpus_dir, out=run, model="fader-ae", model_config="tiny", max_steps=1, adversary_weight=3.0, **QUICK)
    last = run / "checkpoints" / LAST_CHECKPOINT

    def weight_in_checkpoint() -> float:
        return float(torch.load(last, map_location="cpu", weights_only=True)["hyper_parameters"]["adversary_weight"])

    assert json.loads((run / "run.json").read_text())["adversary_weight"] == 3.0 and weight_in_checkpoint() == 3.0
    train(corpus_dir, out=run, resume=True, max_steps=2, export=False, **QUICK)  # left out: the run's own value
    assert weight_in_checkpoint() == 3.0
    with pytest.raises(NeurorackError, match="--adversary-weight must be >= 0"):
        train(corpus_dir, out=run, resume=True, max_steps=3, adversary_weight=-1.0, export=False, **QUICK)
