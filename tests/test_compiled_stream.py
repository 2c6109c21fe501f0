"""CompiledStream: the traced live-transfer step gives exactly what FaderAE.stream gives, and checks its inputs."""

from __future__ import annotations

import pytest
import torch

from neurorack.models.compiled_stream import CompiledStream
from test_fader_ae import tiny_ae
from test_models import random_descriptors


@pytest.mark.parametrize(("name", "config"), [("fader-ae", {}), ("fader-ae-cvae", {"control_stages": True})])
def test_compiled_stream_equals_eager_stream(name: str, config: dict[str, bool]) -> None:
    model = tiny_ae(name)
    if config:
        torch.manual_seed(1)
        model = type(model)(**{**model.config, **config}).eval()
    hop, frames_per_block, blocks = model.hop_length, 2, 5
    block = frames_per_block * hop
    step = CompiledStream(model, block)
    assert step.latency == model.latency
    audio = 0.2 * torch.randn(1, 1, blocks * block)
    curves = random_descriptors(1, blocks * frames_per_block, model.sample_rate, seed=3)
    eager_state, state = None, step.initial_state()
    with torch.inference_mode():
        for i in range(blocks):
            x = audio[..., i * block : (i + 1) * block]
            c = curves[:, i * frames_per_block : (i + 1) * frames_per_block]
            want, eager_state = model.stream(x, c, eager_state)
            got, state = step(x, c, state)
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    # the noise position and every convolution's memory travel in the state: a fresh state restarts
    with torch.inference_mode():
        first, _ = step(audio[..., :block], curves[:, :frames_per_block])
        again, _ = step(audio[..., :block], curves[:, :frames_per_block], step.initial_state())
        later, _ = step(audio[..., :block], curves[:, :frames_per_block], state)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first, later)


def test_compiled_stream_rejects_bad_input() -> None:
    model = tiny_ae()
    hop = model.hop_length
    with pytest.raises(ValueError, match="multiple of the hop"):
        CompiledStream(model, hop + 1)
    with pytest.raises(ValueError, match="eval mode"):
        CompiledStream(model.train(), hop)
    model.eval()
    step = CompiledStream(model, 2 * hop)
    curves = random_descriptors(1, 2, model.sample_rate)
    with pytest.raises(ValueError, match=r"audio must be \[1, 1, 1024\]"):
        step(torch.zeros(1, 1, hop), curves)
    with pytest.raises(ValueError, match="descriptors must be"):
        step(torch.zeros(1, 1, 2 * hop), curves[:, :1])
    with pytest.raises(ValueError, match="state has 1 tensors"):
        step(torch.zeros(1, 1, 2 * hop), curves, [torch.zeros(1)])
