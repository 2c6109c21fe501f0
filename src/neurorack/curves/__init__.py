"""Descriptor curves as every descriptor-controlled model takes them (SPEC §2–§4).

:mod:`.anchors`: reference curves, their interpolation (CV 1), a player's edits
(``--set brightness=+30%``) and the choice of diverse anchors from a corpus;
:mod:`.descriptor_prior`: a Gaussian mixture over a model's training descriptors that reads from bare
curves which knob was moved; :mod:`.drawings`: seeded random plausible drawings (what a player might
draw, for tests and evaluation). Pure NumPy; shared by the engine, ``generate``, ``transfer`` and export,
whatever the model family.
"""
