"""The first steps of SING's autoencoder stage on a note corpus: does it leave silence? (docs/sing.md)

Usage: python docs/experiments/sing_autoencoder_start.py CORPUS LR VARIANT STEPS [LEVEL]

Trains the ``cpu`` configuration's autoencoder on 1,200 random training notes (batch 16, 64-frame crops, Adam)
and prints, every 150 steps, on 32 validation notes: SING's spectral loss of the whole-note reconstruction
divided by silence's (1.0 = no better than silence) and the MR-STFT distance. VARIANT: ``paper`` (the paper's
loss), ``mag`` / ``mag1`` (+ 0.1 / 1.0 × linear magnitude), ``eps`` (ε = 0.1, + 0.1 magnitude), ``wave``
(+ 0.1 magnitude + 10 × waveform L1), ``mse`` (+ 0.1 magnitude + 100 × waveform MSE), ``leaky`` (LeakyReLU
0.2), ``small`` (output kernel initialised 20× smaller), ``kaiming`` (He initialisation, + 0.1 magnitude),
``linear`` (no nonlinearity, waveform MSE only).
LEVEL scales every note (default 1).
"""

from __future__ import annotations

import sys
import time

import auraloss
import numpy as np
import torch
from torch import nn

from neurorack.models.registry import note_config
from neurorack.notes.nsynth import NoteCorpus
from neurorack.training.losses import LogPowerSpectralLoss
from neurorack.training.sing_module import SingTrainingModule


def main(corpus_path: str, lr: float, variant: str, steps: int, level: float = 1.0) -> None:
    torch.manual_seed(0)
    corpus = NoteCorpus.open(corpus_path)
    train, valid = corpus.split("train"), corpus.split("validation")
    rng = np.random.default_rng(0)
    vx = level * torch.tensor(np.stack([corpus.read(valid[i]) for i in rng.choice(len(valid), 32, replace=False)]))
    x_all = level * torch.tensor(np.stack([corpus.read(train[i]) for i in rng.choice(len(train), 1200, replace=False)]))
    config = note_config("sing", "cpu") | {"n_instruments": len(corpus.instruments)}
    module = SingTrainingModule("sing", config, "autoencoder", crop_frames=64, lr=lr)
    model = module.model
    if variant.startswith("kaiming"):  # He initialisation: every layer keeps its input's scale
        for layer in model.modules():
            if isinstance(layer, (nn.Conv1d, nn.ConvTranspose1d)):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)
    if variant == "small":
        model.decoder.grains.weight.data *= 0.05
    if variant in ("leaky", "linear"):
        for seq in (model.decoder.body, model.encoder.layers):
            for i, layer in enumerate(seq):
                if isinstance(layer, nn.ReLU):
                    seq[i] = nn.LeakyReLU(0.2) if variant == "leaky" else nn.Identity()
    paper, mrstft = LogPowerSpectralLoss(), auraloss.freq.MultiResolutionSTFTLoss()
    losses = {
        "mag": LogPowerSpectralLoss(magnitude_weight=0.1),
        "kaiming": LogPowerSpectralLoss(magnitude_weight=0.1),
        "kaiming-paper": LogPowerSpectralLoss(),
        "mag1": LogPowerSpectralLoss(magnitude_weight=1.0),
        "eps": LogPowerSpectralLoss(epsilon=0.1, magnitude_weight=0.1),
        "wave": LogPowerSpectralLoss(magnitude_weight=0.1),
        "mse": LogPowerSpectralLoss(magnitude_weight=0.1),
    }
    optimizer = torch.optim.Adam(module.trained_parameters(), lr=lr)
    start_time = time.time()
    for step in range(steps + 1):
        x = x_all[torch.randint(0, len(x_all), (16,))]
        start = module._window(model.frames)
        decoded = model.decode(module._encode_window(x, start))
        target = model.target(x)[..., start * model.stride : start * model.stride + decoded.shape[-1]]
        if variant == "linear":
            loss = 100 * (decoded - target).pow(2).mean()
        else:
            loss = losses.get(variant, paper)(decoded, target)["total"]
            if variant == "wave":
                loss = loss + 10 * (decoded - target).abs().mean()
            if variant == "mse":
                loss = loss + 100 * (decoded - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 150 == 0:
            with torch.no_grad():
                full = model.crop(model.decode(model.encode(vx)))
                ratio = paper(full, vx)["total"] / paper(torch.zeros_like(vx), vx)["total"]
                mr = mrstft(full[:, None], vx[:, None])
            print(f"{step} vs-silence {float(ratio):.3f} mrstft {float(mr):.3f} {time.time() - start_time:.0f} s")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], float(a[1]), a[2], int(a[3]), float(a[4]) if len(a) > 4 else 1.0)
