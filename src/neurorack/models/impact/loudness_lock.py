"""The loudness lock: exact frame rms after synthesis, at any level (SPEC §3: loudness is a control).

After the network has shaped the sound, each descriptor frame's gain is corrected so that the rms
measured as :func:`neurorack.descriptors.frame_rms` measures it (centred, zero-padded frames of
``frame_length``) equals the requested rms; the gains are smoothly interpolated between frame centres. The gain may
reach :data:`LOUDNESS_RANGE` either way, so a frame the network answered far too quietly still gets its
loudness. Neighbouring frames' gains still leak into each other's windows, so a short hit keeps a few per
cent of bias; a last scalar gain makes the median measured / requested rms over the frames within
-40 dB of the loudest request (:data:`JUDGED_SHARE`) exactly 1 (one frame pass and one scalar: the
measurements are in ``docs/design-notes.md``).

The compiled inference path (:mod:`neurorack.models.impact.ddsp_fused`) does the same in one loop.
"""

from __future__ import annotations

import torch
from torch import Tensor

from neurorack.descriptors import frame_rms

#: Largest correction either way (±80 dB).
LOUDNESS_RANGE = 1e4
#: A measured frame rms below this counts as this (keeps the ratio finite on digital silence).
LOUDNESS_FLOOR = 1e-9
#: Frames that set the final scalar gain: requested rms at least this share of the loudest request (-40 dB).
JUDGED_SHARE = 1e-2
#: The final scalar gain stays within this factor either way (it corrects a bias, not a level).
LEVEL_RANGE = 2.0


def smooth_ramp(step: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """``[step]`` weights of the next point across a segment: the smoothstep ``3t² - 2t³`` of ``t = i / step``.

    A gain interpolated with it has a continuous slope (zero at each point). A linear ramp's slope jumps at
    every point, and a network's fine envelope jumps a lot (every 64 samples): the kinks spread each partial
    and band into a broadband floor about 60 dB down, which outweighs a dark hit's few low bins in its
    magnitude-weighted bandwidth (``docs/design-notes.md``, "Smooth gains").
    """
    t = torch.arange(step, device=device, dtype=torch.float64) / step
    return (t * t * (3.0 - 2.0 * t)).to(dtype)


def upsample_gains(points: Tensor, n_out: int) -> Tensor:
    """Smooth interpolation (:func:`smooth_ramp`) of ``points: [B, P]`` (placed at the starts of ``P`` equal
    segments, the last one held) to ``[B, n_out]`` samples."""
    step = n_out // points.shape[1]
    nxt = torch.cat([points[:, 1:], points[:, -1:]], dim=1)
    ramp = smooth_ramp(step, points.device, points.dtype)
    return (points.unsqueeze(-1) + (nxt - points).unsqueeze(-1) * ramp).reshape(points.shape[0], n_out)


def lock_loudness(audio: Tensor, rms: Tensor, frame_length: int, hop_length: int) -> Tensor:
    """``audio: [B, F * hop]`` with each centred frame's rms made ``rms: [B, F]`` (linear amplitude).

    The gain carries no gradient: the network learns the shape of the sound, not its level.
    """
    target = rms.detach().clamp_min(0)
    with torch.no_grad():
        measured = frame_rms(audio.detach(), frame_length, hop_length)[:, : rms.shape[1]]
        gain = (target / measured.clamp_min(LOUDNESS_FLOOR)).clamp(1.0 / LOUDNESS_RANGE, LOUDNESS_RANGE)
    audio = audio * upsample_gains(gain, audio.shape[-1])
    with torch.no_grad():
        measured = frame_rms(audio.detach(), frame_length, hop_length)[:, : rms.shape[1]]
        judged = (target >= JUDGED_SHARE * target.amax(-1, keepdim=True)) & (target > 0)
        ratio = torch.where(judged, measured / target.clamp_min(LOUDNESS_FLOOR), torch.nan)
        # torch.nanmedian takes the lower of two middle values, as _finish's sort does
        bias = torch.nanmedian(ratio, dim=-1).values.nan_to_num(1.0).clamp(1.0 / LEVEL_RANGE, LEVEL_RANGE)
    return audio / bias.unsqueeze(-1)
