"""Causal convolutions with explicit state (neurorack.models.streaming): streamed == whole-signal, causality."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from neurorack.models.streaming import (
    CausalConv1d,
    Residual,
    Streaming,
    StreamingSequential,
    Upsample,
    causal_conv1d,
    stream,
)


def _randomise(module: nn.Module, seed: int = 0) -> None:
    """Deterministic, non-trivial weights (biases included) for every parameter of ``module``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)


def _network() -> StreamingSequential:
    """Strides 2 * 2 down, 2 up: total stride 2 but blocks must be multiples of 4 (the stride before the
    upsampling); activations, residual dilated convs, grouped convs."""
    net = StreamingSequential(
        CausalConv1d(2, 8, 5, stride=2),
        nn.LeakyReLU(0.2),
        Residual(StreamingSequential(CausalConv1d(8, 8, 3, dilation=3), nn.Tanh(), CausalConv1d(8, 8, 1))),
        CausalConv1d(8, 8, 4, stride=2, groups=4),
        nn.Identity(),
        Residual(CausalConv1d(8, 8, 3, dilation=9, groups=2)),
        Upsample(2),
        CausalConv1d(8, 3, 7, bias=False),
    )
    _randomise(net, seed=1)
    return net


@pytest.mark.parametrize(
    ("kernel_size", "stride", "dilation", "expected"),
    [(3, 1, 1, 2), (1, 1, 1, 0), (4, 4, 1, 0), (5, 2, 1, 3), (3, 1, 4, 8), (7, 3, 2, 10), (8, 4, 1, 4)],
)
def test_context_formula(kernel_size: int, stride: int, dilation: int, expected: int) -> None:
    conv = CausalConv1d(2, 3, kernel_size, stride=stride, dilation=dilation)
    assert conv.context == expected == (kernel_size - 1) * dilation + 1 - stride
    state = conv.initial_state(4)
    assert state.shape == (4, 2, expected)
    assert not state.any()
    _, new_state = conv(torch.randn(4, 2, 6 * stride))
    assert new_state.shape == (4, 2, expected)


def test_negative_context_rejected() -> None:
    with pytest.raises(ValueError, match="stride"):
        CausalConv1d(1, 1, 2, stride=3)
    with pytest.raises(ValueError, match="stride"):
        CausalConv1d(1, 1, 1, stride=2)
    with pytest.raises(ValueError, match=">= 1"):
        CausalConv1d(1, 1, 0)


def test_length_not_multiple_of_stride_rejected() -> None:
    conv = CausalConv1d(1, 2, 4, stride=4)
    with pytest.raises(ValueError, match="multiple of the stride"):
        conv(torch.randn(1, 1, 10))
    with pytest.raises(ValueError, match="state has shape"):
        conv(torch.randn(1, 1, 8), torch.zeros(1, 1, 5))
    with pytest.raises(ValueError, match="multiple of the block"):
        stream(conv, torch.randn(1, 1, 24), block=16)


def test_weights_live_in_conv() -> None:
    conv = CausalConv1d(4, 6, 3, groups=2, bias=True)
    assert isinstance(conv.conv, nn.Conv1d)
    assert conv.conv.padding == (0,)
    assert set(dict(conv.named_parameters())) == {"conv.weight", "conv.bias"}
    assert conv.conv.weight.shape == (6, 2, 3)


def test_causal_conv_matches_left_padded_conv() -> None:
    """Whole-signal output == nn.Conv1d on the input left-padded with ``context`` zeros."""
    torch.manual_seed(0)
    conv = CausalConv1d(4, 6, 5, stride=2, dilation=2, groups=2)
    x = torch.randn(3, 4, 40)
    y, _ = conv(x)
    assert y.shape == (3, 6, 20)
    expected = conv.conv(nn.functional.pad(x, (conv.context, 0)))
    torch.testing.assert_close(y, expected)


@pytest.mark.parametrize(
    ("kernel_size", "stride", "dilation", "groups"),
    [(3, 1, 1, 1), (5, 2, 1, 1), (3, 1, 4, 2), (8, 4, 1, 1), (4, 4, 1, 2), (1, 1, 1, 1), (6, 3, 2, 4)],
)
@pytest.mark.parametrize("block_frames", [1, 3, 8])
def test_conv_streaming_equals_whole(
    kernel_size: int, stride: int, dilation: int, groups: int, block_frames: int
) -> None:
    torch.manual_seed(0)
    conv = CausalConv1d(4, 8, kernel_size, stride=stride, dilation=dilation, groups=groups)
    x = torch.randn(2, 4, 24 * stride)
    whole, whole_state = conv(x)
    streamed, streamed_state = stream(conv, x, block=block_frames * stride)
    assert streamed.shape == whole.shape == (2, 8, 24)
    torch.testing.assert_close(streamed, whole, atol=1e-5, rtol=0)
    torch.testing.assert_close(streamed_state, whole_state)
    # The final state is the last `context` input samples.
    if conv.context:
        torch.testing.assert_close(whole_state, x[..., -conv.context :])


def test_state_continues_a_signal() -> None:
    """Two halves with the carried state == the whole; a fresh state on the second half differs."""
    torch.manual_seed(0)
    conv = CausalConv1d(1, 2, 9, dilation=2)
    x = torch.randn(1, 1, 64)
    whole, _ = conv(x)
    first, state = conv(x[..., :32])
    second, _ = conv(x[..., 32:], state)
    torch.testing.assert_close(torch.cat((first, second), -1), whole)
    fresh, _ = conv(x[..., 32:])
    assert not torch.allclose(fresh[..., :4], whole[..., 32:36])
    # state=None and an explicit initial state are the same thing.
    explicit, _ = conv(x, conv.initial_state(1))
    torch.testing.assert_close(explicit, whole)


def test_forward_does_not_mutate_module() -> None:
    torch.manual_seed(0)
    net = _network()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(1, 2, 32)
    y1, _ = net(x)
    stream(net, torch.randn(1, 2, 64), block=8)
    y2, _ = net(x)
    torch.testing.assert_close(y1, y2, atol=0, rtol=0)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not list(net.buffers())


@pytest.mark.parametrize("block", [4, 8, 12, 32, 96])
def test_network_streaming_equals_whole(block: int) -> None:
    torch.manual_seed(0)
    net = _network()
    x = torch.randn(2, 2, 96)
    whole, _ = net(x)
    assert whole.shape == (2, 3, 48)
    streamed, streamed_state = stream(net, x, block=block)
    torch.testing.assert_close(streamed, whole, atol=1e-5, rtol=0)
    assert isinstance(streamed_state, list) and len(streamed_state) == len(net)
    assert streamed_state[1] is None and streamed_state[4] is None and streamed_state[6] is None
    # Blocks that are not a multiple of the inner stride 4 are rejected, not silently misaligned.
    with pytest.raises(ValueError, match="multiple of the stride"):
        stream(net, x, block=6)


def test_network_initial_state_structure() -> None:
    net = _network()
    state = net.initial_state(3, dtype=torch.float64)
    assert len(state) == len(net)
    assert state[0].shape == (3, 2, 3) and state[0].dtype == torch.float64
    assert state[1] is None
    assert isinstance(state[2], list) and state[2][0].shape == (3, 8, 6) and state[2][1] is None
    assert state[3].shape == (3, 8, 2)
    x = torch.randn(3, 2, 32, dtype=torch.float64)
    y_none, _ = net.double()(x)
    y_init, _ = net(x, state)
    torch.testing.assert_close(y_init, y_none)
    with pytest.raises(ValueError, match="entries"):
        net(x, state[:-1])


@pytest.mark.parametrize("module_name", ["conv", "network"])
def test_causality(module_name: str) -> None:
    """Changing the input from sample t on changes no output sample computed from earlier input only."""
    torch.manual_seed(0)
    module: Streaming
    if module_name == "conv":
        module = CausalConv1d(2, 3, 7, stride=4, dilation=1)
        _randomise(module)
        # Output n depends on inputs <= 4n + 3.
        out_length, first_affected = 32, lambda t: t // 4
    else:
        module = _network()
        # Output n comes from inner frame n // 2 (stride 4), which depends on inputs <= 4 (n // 2) + 3.
        out_length, first_affected = 64, lambda t: 2 * (t // 4)
    x = torch.randn(1, 2, 128)
    y, _ = module(x)
    assert y.shape[-1] == out_length
    for t in (0, 37, 64, 100, 127):
        changed = x.clone()
        changed[..., t:] = torch.randn_like(changed[..., t:]) * 5
        y_changed, _ = module(changed)
        n = first_affected(t)
        assert torch.equal(y_changed[..., :n], y[..., :n])
        assert not torch.allclose(y_changed[..., n], y[..., n])


def test_residual_and_upsample() -> None:
    torch.manual_seed(0)
    body = CausalConv1d(3, 3, 3)
    _randomise(body)
    residual = Residual(body)
    x = torch.randn(2, 3, 10)
    y, state = residual(x)
    torch.testing.assert_close(y, x + body(x)[0])
    torch.testing.assert_close(state, x[..., -2:])
    assert residual.initial_state(2).shape == (2, 3, 2)
    with pytest.raises(ValueError, match="shape"):
        Residual(CausalConv1d(3, 3, 2, stride=2))(x)

    up = Upsample(3)
    z, up_state = up(torch.tensor([[[1.0, 2.0]], [[3.0, 4.0]]]))
    assert up_state is None and up.initial_state(2) is None
    assert z.tolist() == [[[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]], [[3.0, 3.0, 3.0, 4.0, 4.0, 4.0]]]
    with pytest.raises(ValueError):
        Upsample(0)


def test_functional_conv_matches_module() -> None:
    torch.manual_seed(0)
    conv = CausalConv1d(2, 4, 6, stride=2, dilation=1, groups=2)
    x = torch.randn(1, 2, 20)
    state: Tensor = torch.randn(1, 2, conv.context)
    expected = conv(x, state)
    got = causal_conv1d(x, state, conv.conv.weight, conv.conv.bias, stride=2, groups=2)
    torch.testing.assert_close(got[0], expected[0])
    torch.testing.assert_close(got[1], expected[1])


def test_gradients_flow_through_state() -> None:
    """Training with truncated streams: the carried state is an ordinary differentiable tensor."""
    torch.manual_seed(0)
    conv = CausalConv1d(1, 1, 3)
    x = torch.randn(1, 1, 8, requires_grad=True)
    _, state = conv(x[..., :4])
    y2, _ = conv(x[..., 4:], state)
    y2.sum().backward()
    assert x.grad is not None
    assert x.grad[..., 2:4].abs().sum() > 0  # reached through the state
