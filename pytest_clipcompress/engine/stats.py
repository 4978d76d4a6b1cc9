"""Interval estimates and tests for accuracies measured on the same images (scipy.special).

Two accuracies on the same images are paired data: each image is correct or wrong under both
conditions, and only the *discordant* images (right under one, wrong under the other) carry
information about the difference. With ``b`` images right under the first condition only and
``c`` right under the second only:

* the difference of accuracies is ``(b - c) / n``;
* the exact McNemar test of "no difference" is the two-sided binomial test of ``b`` successes in
  ``b + c`` trials with probability 1/2 (McNemar 1947, exact form);
* its interval is Newcombe's hybrid score interval for paired proportions (Newcombe 1998, method
  10; the interval Fagerland, Lydersen and Laake 2013 recommend), built from the two Wilson
  intervals and the phi correlation of the 2x2 table (see :func:`paired_difference_interval`).

Every record carries its Wilson interval and McNemar p-value, so they are computed in every session
and every xdist worker. ``scipy.stats.binomtest`` computes both, but importing ``scipy.stats`` costs
about 0.9 s per process (a tenth of a small model's whole session), so the two closed forms are
written here on ``scipy.special``'s normal quantile and binomial distribution function (0.16 s);
``tests/test_gate.py`` checks them against ``binomtest`` and against sums of binomial coefficients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import bdtr, ndtri


def wilson_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson (1927) score interval for ``correct`` successes in ``n`` trials, two-sided.

    With ``p = correct / n`` and ``z`` the normal quantile of ``(1 + confidence) / 2``: centre
    ``(p + z^2 / 2n) / (1 + z^2 / n)``, half-width ``z sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n)``
    (what ``binomtest(...).proportion_ci(method="wilson")`` returns).
    """
    if n == 0:
        return (0.0, 1.0)
    z = float(ndtri(0.5 + confidence / 2))
    p = correct / n
    scale = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / scale
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / scale
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs (1.0 when there are none).

    The binomial test of ``b`` in ``b + c`` trials at probability 1/2: the distribution is symmetric,
    so the two-sided p is twice the lower tail at ``min(b, c)``, capped at 1 (``binomtest``'s value).
    """
    if b == c:
        return 1.0
    return min(1.0, 2.0 * float(bdtr(min(b, c), b + c, 0.5)))


def paired_difference_interval(both: int, b: int, c: int, neither: int, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``p1 - p2`` on paired binary outcomes.

    The 2x2 table: ``both`` right under 1 and 2, ``b`` right under 1 only, ``c`` right under 2
    only, ``neither`` wrong under both; ``p1 = (both + b) / n``, ``p2 = (both + c) / n``. With
    Wilson intervals ``[l1, u1]`` for p1 and ``[l2, u2]`` for p2, ``A = both * neither - b * c``
    and ``M`` the product of the four margins, Newcombe's correlation estimate is
    ``phi = (A - n/2) / sqrt(M)`` when ``A > n/2``, ``0`` when ``0 <= A <= n/2``, ``A / sqrt(M)``
    when ``A < 0`` (and 0 when a margin is empty); then::

        L = (p1 - p2) - sqrt((p1 - l1)^2 - 2 phi (p1 - l1)(u2 - p2) + (u2 - p2)^2)
        U = (p1 - p2) + sqrt((p2 - l2)^2 - 2 phi (p2 - l2)(u1 - p1) + (u1 - p1)^2)

    Newcombe RG (1998), "Improved confidence intervals for the difference between binomial
    proportions based on paired data", Statistics in Medicine 17:2635-2650, method 10; as given
    in Fagerland, Lydersen and Laake (2017), Statistical Analysis of Contingency Tables, ch. 8
    ("Newcombe square-and-add").
    """
    n = both + b + c + neither
    if n == 0:
        return (-1.0, 1.0)
    p1, p2 = (both + b) / n, (both + c) / n
    l1, u1 = wilson_interval(both + b, n, confidence)
    l2, u2 = wilson_interval(both + c, n, confidence)
    margins = (both + b) * (c + neither) * (both + c) * (b + neither)
    association = both * neither - b * c
    if margins == 0 or 0 <= association <= n / 2:
        phi = 0.0
    elif association > n / 2:
        phi = (association - n / 2) / math.sqrt(margins)
    else:
        phi = association / math.sqrt(margins)
    difference = p1 - p2
    lower = difference - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    upper = difference + math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    return (max(-1.0, lower), min(1.0, upper))


@dataclass(frozen=True)
class PairedDifference:
    """First accuracy minus second on the same ``n`` images, with its interval and exact McNemar test."""

    n: int
    both: int  # right under both
    b: int  # right under the first only ("lost" going from first to second)
    c: int  # right under the second only ("gained")
    confidence: float = 0.95

    @property
    def neither(self) -> int:
        return self.n - self.both - self.b - self.c

    @property
    def difference(self) -> float:
        return (self.b - self.c) / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return paired_difference_interval(self.both, self.b, self.c, self.neither, self.confidence)

    @property
    def p_value(self) -> float:
        return mcnemar_exact(self.b, self.c)

    @classmethod
    def from_hits(cls, first: ArrayLike, second: ArrayLike, confidence: float = 0.95) -> PairedDifference:
        """From two boolean arrays of per-image correctness (same images, same order)."""
        first_hits, second_hits = np.asarray(first, dtype=bool), np.asarray(second, dtype=bool)
        return cls(
            n=int(first_hits.size),
            both=int((first_hits & second_hits).sum()),
            b=int((first_hits & ~second_hits).sum()),
            c=int((~first_hits & second_hits).sum()),
            confidence=confidence,
        )
