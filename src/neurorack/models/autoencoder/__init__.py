"""The descriptor-controlled autoencoder family: audio + edited descriptor curves -> audio (SPEC §5).

:mod:`.fader_ae` follows Devis et al., "Continuous descriptor-based control for deep audio synthesis"
(ICASSP 2023): a RAVE-like multiband VAE (Caillon & Esling 2021) whose latent a Fader-Networks
adversary (Lample et al. 2017) strips of the descriptors the decoder takes back as controls.
``fader-ae-cvae`` is its ablation without the adversary. Both are
:class:`~neurorack.models.base.TransferModel`\\ s: timbre and attribute transfer, offline and live.
"""

from neurorack.models.autoencoder.fader_ae import ConditionalVAE, FaderAE

__all__ = ["ConditionalVAE", "FaderAE"]
