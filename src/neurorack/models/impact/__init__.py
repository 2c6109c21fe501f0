"""The impact family: seven descriptor curves -> a percussive hit (SPEC §3).

Neurorack (Devis & Esling, "Neurorack: deep audio learning in hardware synthesizers") generates
impacts from the descriptor curves with hn-sinc-NSF (Wang & Yamagishi 2019): :mod:`.sinc_nsf` is that
faithful reference. :mod:`.ddsp_impact` is the fast default, a DDSP model (Engel et al. 2020) whose partials and
noise are written into short-time spectra (:mod:`.spectral_synth`, numba kernels in
:mod:`.spectral_kernels`), with loudness, brightness, richness, roll-off (:mod:`.spectral_lock`) and
pitch made structural; :mod:`.ddsp_fused` renders it at inference in a few compiled passes.
:mod:`.presets` draws archetypal impact curves.
"""

from neurorack.models.impact.ddsp_impact import DDSPImpact
from neurorack.models.impact.sinc_nsf import SincNSF

__all__ = ["DDSPImpact", "SincNSF"]
