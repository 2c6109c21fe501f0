"""Generators: everything that turns descriptor curves into audio (models and baselines)."""

from neurorack.generators.base import Generator, check_descriptors

__all__ = ["Generator", "check_descriptors"]
