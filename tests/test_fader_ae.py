"""fader-ae (SPEC §5): streaming equals offline, alignment, latency, the latent adversary's losses."""

from __future__ import annotations

import math

import pytest
import torch

from neurorack.models import TINY_CONFIGS, build_model
from neurorack.models.autoencoder.fader_ae import ConditionalVAE, FaderAE, default_ratios
from neurorack.models.registry import rebuild_model
from neurorack.training.fader_module import kl_divergence, ramp
from neurorack.training.latent_adversary import (
    N_BINS,
    LatentDiscriminator,
    descriptor_bins,
    discriminator_terms,
    encoder_terms,
)
from test_models import random_descriptors


def tiny_ae(name: str = "fader-ae") -> FaderAE:
    torch.manual_seed(0)
    model = build_model(name, **TINY_CONFIGS[name])
    assert isinstance(model, FaderAE)
    return model.eval()


def test_default_ratios_and_bad_configs() -> None:
    assert default_ratios(32) == (4, 4, 2) and default_ratios(64) == (4, 4, 4) and default_ratios(2) == (2,)
    with pytest.raises(ValueError, match="power of two"):
        default_ratios(24)
    with pytest.raises(ValueError, match="must equal hop_length"):
        FaderAE(n_bands=16, ratios=(4, 4), capacity=4, latent_dim=4)
    with pytest.raises(ValueError, match="controls"):
        FaderAE(controls=("loudness",), n_bands=8, capacity=4, latent_dim=4)


def test_cvae_is_the_same_network_without_the_adversary() -> None:
    fader, cvae = tiny_ae(), tiny_ae("fader-ae-cvae")
    assert isinstance(cvae, ConditionalVAE) and fader.latent_adversary and not cvae.latent_adversary
    assert fader.state_dict().keys() == cvae.state_dict().keys()
    rebuilt = build_model("fader-ae-cvae", **cvae.config)
    assert not rebuilt.latent_adversary  # type: ignore[attr-defined]


def test_autoencode_shapes_and_alignment() -> None:
    model = tiny_ae()
    frames = 6
    audio = 0.1 * torch.randn(2, frames * model.hop_length)
    curves = random_descriptors(2, frames, model.sample_rate)
    out = model.autoencode(audio, curves)
    assert out["audio"].shape == audio.shape
    assert out["mean"].shape == out["logvar"].shape == out["latent"].shape == (2, model.latent_dim, frames)
    assert torch.equal(out["latent"], out["mean"])  # eval mode: no sampling
    with pytest.raises(ValueError, match="samples"):
        model.autoencode(audio[:, :-1], curves)
    assert model.latency == model.hop_length + model.pqmf.delay


@pytest.mark.parametrize("block_frames", [1, 2, 5])
def test_streaming_equals_offline(block_frames: int) -> None:
    """Live transfer block by block gives what one pass over the whole signal gives."""
    model = tiny_ae()
    hop = model.hop_length
    frames = 10
    audio = 0.2 * torch.randn(1, 1, frames * hop)
    curves = random_descriptors(1, frames, model.sample_rate, seed=5)
    with torch.no_grad():
        mean, _, _ = model.encode(audio)
        whole, _ = model.decode(mean, model.control_features(curves))
        state = None
        pieces = []
        for start in range(0, frames, block_frames):
            stop = min(frames, start + block_frames)
            y, state = model.stream(audio[..., start * hop : stop * hop], curves[:, start:stop], state)
            pieces.append(y)
        streamed = torch.cat(pieces, dim=-1)
    assert streamed.shape == whole.shape == (1, 1, frames * hop)
    torch.testing.assert_close(streamed, whole, rtol=1e-4, atol=1e-5)


def test_stream_is_causal() -> None:
    """Changing the input after a block does not change the output of that block."""
    model = tiny_ae()
    hop = model.hop_length
    audio = 0.2 * torch.randn(1, 1, 6 * hop)
    curves = random_descriptors(1, 6, model.sample_rate, seed=6)
    changed = audio.clone()
    changed[..., 3 * hop :] = 0.0
    with torch.no_grad():
        a, _ = model.stream(audio, curves)
        b, _ = model.stream(changed, curves)
    torch.testing.assert_close(a[..., : 3 * hop], b[..., : 3 * hop], rtol=0, atol=0)
    assert not torch.equal(a[..., 3 * hop :], b[..., 3 * hop :])


def test_controls_reach_the_output() -> None:
    """The decoder is conditioned on the descriptors: changing one control changes the transfer."""
    model = tiny_ae()
    audio = 0.2 * torch.randn(1, 4 * model.hop_length)
    curves = random_descriptors(1, 4, model.sample_rate, seed=7)
    brighter = curves.clone()
    brighter[..., 5] *= 2.0
    with torch.no_grad():
        assert not torch.allclose(model.transfer(audio, curves), model.transfer(audio, brighter))


def test_timbre_and_seeded_generation() -> None:
    model = tiny_ae()
    curves = random_descriptors(1, 5, model.sample_rate, seed=8)
    gen = torch.Generator().manual_seed(1)
    noise = model.make_noise(1, 5, gen)
    with torch.no_grad():
        before = model(curves, noise)
        model.set_timbre(torch.ones(model.latent_dim))
        after = model(curves, noise)
    assert before.shape == (1, 5 * model.hop_length) and not torch.equal(before, after)
    assert "timbre" in model.state_dict()  # saved with the weights
    with pytest.raises(ValueError, match="make_noise"):
        model(curves, noise[..., :-1])


def test_discriminator_terms_and_bins() -> None:
    controls = torch.tensor([[[-9.0, -2.5, 0.0, 2.49, 9.0]]])
    assert descriptor_bins(controls).tolist() == [[[0, 0, N_BINS // 2, N_BINS - 1, N_BINS - 1]]]
    bins = torch.randint(0, N_BINS, (2, 3, 7))
    mask = torch.ones(2, 7, dtype=torch.bool)
    perfect = torch.nn.functional.one_hot(bins, N_BINS).permute(0, 1, 3, 2).float() * 50.0
    terms = discriminator_terms(perfect, bins, mask)
    assert float(terms["accuracy"]) == 1.0 and float(terms["disc"]) < 1e-6
    # the encoder's term is 0 exactly when the prediction is the batch marginal, positive otherwise
    counts = torch.nn.functional.one_hot(bins, N_BINS).float().sum(dim=(0, 2))
    marginal = counts / counts.sum(-1, keepdim=True)
    at_marginal = torch.log(marginal.clamp_min(1e-30)).view(1, 3, N_BINS, 1).expand(2, 3, N_BINS, 7)
    assert abs(float(encoder_terms(at_marginal, bins, mask)["adversarial"])) < 1e-5
    assert float(encoder_terms(perfect, bins, mask)["adversarial"]) > 1.0
    # frames outside the mask do not count
    none = torch.zeros(2, 7, dtype=torch.bool)
    assert float(discriminator_terms(perfect, bins, none)["disc"]) == 0.0


def test_discriminator_shapes_and_kl() -> None:
    disc = LatentDiscriminator(latent_dim=4, n_controls=3, hidden=8)
    assert disc(torch.randn(2, 4, 9)).shape == (2, 3, N_BINS, 9)
    zero = torch.zeros(1, 4, 5)
    assert float(kl_divergence(zero, zero)) == 0.0
    # KL(N(1, 1) || N(0, 1)) = 1/2 per channel
    assert float(kl_divergence(torch.ones(1, 4, 5), zero)) == pytest.approx(2.0)
    # free bits: channels under the allowance count as the allowance, and give no gradient
    mean = torch.zeros(1, 4, 5)
    mean[:, 0] = 2.0  # channel 0: KL 2 nats per frame; the others 0
    mean.requires_grad_(True)
    free = kl_divergence(mean, zero, free_bits=1.0)
    assert float(free.detach()) == pytest.approx(2.0 + 3 * 1.0)
    free.backward()
    assert mean.grad is not None and mean.grad[:, 1:].abs().sum() == 0 and mean.grad[:, 0].abs().sum() > 0
    assert ramp(5, 10, 100) == 0.0 and ramp(60, 10, 100) == 0.5 and ramp(500, 10, 100) == 1.0
    assert math.isclose(ramp(3, 0, 0), 1.0)


def test_controls_at_the_decoder_input_only() -> None:
    """``control_stages=False`` (the default): no per-stage projection (no parameters for it), still streamable
    and rebuildable; files written before the option existed are rebuilt with the projection."""
    torch.manual_seed(0)
    model = FaderAE(**{**TINY_CONFIGS["fader-ae"], "control_stages": False}).eval()
    assert not any(name.startswith("decoder.cond") for name, _ in model.named_parameters())
    assert not any(name.startswith("decoder.cond") for name, _ in tiny_ae().named_parameters())
    staged = FaderAE(**{**TINY_CONFIGS["fader-ae"], "control_stages": True})
    assert any(name.startswith("decoder.cond") for name, _ in staged.named_parameters())
    old_file_config = {k: v for k, v in staged.config.items() if k != "control_stages"}
    legacy = rebuild_model("fader-ae", old_file_config)
    legacy.load_state_dict(staged.state_dict())  # strict: the projection's weights have a home
    rebuilt = build_model("fader-ae", **model.config)
    rebuilt.load_state_dict(model.state_dict())
    hop = model.hop_length
    audio = 0.2 * torch.randn(1, 1, 4 * hop)
    curves = random_descriptors(1, 4, model.sample_rate, seed=9)
    with torch.no_grad():
        mean, _, _ = model.encode(audio)
        whole, _ = model.decode(mean, model.control_features(curves))
        first, state = model.stream(audio[..., : 2 * hop], curves[:, :2])
        second, _ = model.stream(audio[..., 2 * hop :], curves[:, 2:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=-1), whole, rtol=1e-4, atol=1e-5)
