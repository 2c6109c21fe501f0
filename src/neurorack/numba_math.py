"""Elementary functions for numba kernels from arithmetic alone, and the kernels' fast-math flags.

A call to libm's ``exp`` or ``cos`` inside a numba loop is a function call per element (~9 ns here)
and keeps LLVM from vectorising the loop; these polynomial versions inline and vectorise (~1 ns per
element measured). Used by the synthesis kernels (:mod:`neurorack.models.impact.spectral_kernels`), the shape
lock (:mod:`neurorack.models.impact.spectral_lock`), the fused inference path of ``ddsp-impact`` and the
descriptor prior.
"""

from __future__ import annotations

import math

import numba

#: LLVM fast-math flags for the kernels: reassociation (so sums vectorise), contraction, fast
#: reciprocals and functions, but not 'nnan'/'ninf': the kernels test for NaN and infinity.
FAST_MATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@numba.njit(cache=True, fastmath=FAST_MATH, inline="always")
def fast_exp(y: float) -> float:  # pragma: no cover - compiled
    """``exp(y)`` for ``|y| < 700`` from arithmetic alone, so loops around it vectorise (libm's ``exp``
    is a call): ``exp(y / 1024)`` by its Taylor series to degree 8, then squared ten times.
    Relative error < 1e-10 for ``|y| < 150`` (the shaping exponents stay below 150)."""
    r = y * (1.0 / 1024.0)
    p = 1.0 + r * (
        1.0
        + r
        * (
            0.5
            + r
            * (
                1.0 / 6.0
                + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0 + r * (1.0 / 40320.0)))))
            )
        )
    )
    for _ in range(10):
        p = p * p
    return p


@numba.njit(cache=True, fastmath=FAST_MATH, inline="always")
def cos_sin_turns(u: float) -> tuple[float, float]:  # pragma: no cover - compiled
    """``cos(2πu), sin(2πu)`` from arithmetic alone (no libm call, so loops around it vectorise):
    Taylor series of ``sin`` and ``cos`` at ``π v`` with ``v = u - round(u)``, then the double-angle
    formulas. Absolute error < 1e-8."""
    v = u - math.floor(u + 0.5)
    x = math.pi * v
    x2 = x * x
    s = x * (
        1.0
        + x2
        * (-1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 * (1.0 / 362880.0 + x2 * (-1.0 / 39916800.0)))))
    )
    c = 1.0 + x2 * (
        -0.5
        + x2
        * (1.0 / 24.0 + x2 * (-1.0 / 720.0 + x2 * (1.0 / 40320.0 + x2 * (-1.0 / 3628800.0 + x2 * (1.0 / 479001600.0)))))
    )
    return 1.0 - 2.0 * s * s, 2.0 * s * c
