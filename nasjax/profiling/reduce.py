"""Insight-reduced design spaces (Mills et al., CIKM 2021): drop the blocks whose latency is not repaid in accuracy.

From a profile, each block ``b`` of a group ``G`` (the choices of one position, or of one unit pooled over
its layers) has a mean accuracy ``acc(b)`` and a mean latency ``lat(b)`` over the networks containing it.
``b`` is **dominated** when another block of its group is at least as accurate and at least as fast, one of
the two strictly (with a relative tolerance ``tol`` on latency)::

    exists b' in G:  acc(b') >= acc(b)  and  lat(b') <= lat(b) (1 + tol),  one strict

Several statistics can be compared at once (``acc [B, k]``, ``lat [B, k]``: every column must be no worse),
e.g. the mean and the 95 % quantile of accuracy with the mean and the 5 % quantile of latency: a block
whose cheapest networks are cheaper than any other block's is then kept, because the low-latency end of
the front needs it even when its average is dominated.

The reduced space keeps every non-dominated block (so each group keeps at least one). Its control is a
random subset of the same size: per position, as many choices as the reduced space keeps there, drawn
uniformly (the original's random-subspace comparison). A reduced space is an ``allowed [P, K]`` mask over
the full space's indices, which :func:`nasjax.search.pareto_mutation.mutation_search` takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nasjax.errors import require
from nasjax.profiling.sampling import Block
from nasjax.spaces.base import SearchSpace


@dataclass
class ReducedSpace:
    """``allowed [P, K]`` and, per removed block key, the key of a block that dominates it."""

    name: str
    allowed: np.ndarray
    removed: dict = field(default_factory=dict)

    @property
    def size_log10(self) -> float:
        """``log10`` of the number of architectures the allowed mask admits (the product of per-position counts)."""
        return float(np.log10(self.allowed.sum(1)).sum())

    @property
    def num_removed(self) -> int:
        """How many (position, choice) cells the reduction removed."""
        return len(self.removed)


def _groups(blocks: Sequence[Block], level: str) -> dict[tuple, list[int]]:
    require(level in ("position", "unit"), "level", level, "'position' or 'unit'")
    out: dict[tuple, list[int]] = {}
    for i, b in enumerate(blocks):
        key = (b.position,) if level == "position" else (b.unit, b.layer == "depth")
        out.setdefault(key, []).append(i)
    return out


def reduce_space(space: SearchSpace, blocks: Sequence[Block], acc, lat, *, level: str = "position",
                 tol: float = 0.0, name: str = "reduced") -> ReducedSpace:
    """The reduced space of a profile (module docstring).

    Args:
      space: the full space.
      blocks: the profiled blocks; ``acc [B]`` / ``[B, k]`` and ``lat [B]`` / ``[B, k]`` their accuracy and
        latency statistics (any scale, e.g. the relative latency ``rel_mean``; higher accuracy and lower
        latency are better in every column).
      level: ``"position"`` (compare the choices of each position) or ``"unit"`` (pool each block label over
        the layers of a unit, as the original's stage-level candidate sets; depths apart).
      tol: relative latency tolerance of the dominance test.
      name: the reduced space's name.

    Returns:
      The :class:`ReducedSpace`; positions without profiled blocks keep every choice.
    """
    acc = np.asarray(acc, np.float64).reshape(len(blocks), -1)
    lat = np.asarray(lat, np.float64).reshape(len(blocks), -1)
    require(acc.shape[0] == lat.shape[0] == len(blocks), "acc/lat", (acc.shape, lat.shape), f"{len(blocks)} rows")
    require(tol >= 0, "tol", tol, "a relative tolerance >= 0")
    allowed = space.mask.copy()
    removed = {}
    for idx in _groups(blocks, level).values():
        labels = list(dict.fromkeys(blocks[i].label for i in idx))
        members = {lab: [i for i in idx if blocks[i].label == lab] for lab in labels}
        a = {lab: acc[m].mean(0) for lab, m in members.items()}  # pooled over a unit's layers ("unit")
        t = {lab: lat[m].mean(0) for lab, m in members.items()}
        for lab in labels:
            for other in labels:
                if other == lab:
                    continue
                no_worse = np.all(a[other] >= a[lab]) and np.all(t[other] <= t[lab] * (1 + tol))
                strict = np.any(a[other] > a[lab]) or np.any(t[other] < t[lab])
                if no_worse and strict:
                    for i in members[lab]:
                        allowed[blocks[i].position, blocks[i].choice] = False
                        removed[blocks[i].key] = blocks[members[other][0]].key
                    break
    return ReducedSpace(name, allowed, removed)


def random_subset(space: SearchSpace, like: np.ndarray, rng: np.random.Generator | int, name: str = "random") \
        -> ReducedSpace:
    """A random space with as many choices per position as ``like [P, K]`` (module docstring).

    Args:
      space: the full space.
      like: bool ``[P, K]`` allowed-choice mask whose per-position counts are copied (e.g. a reduced space's).
      rng: a numpy Generator or a seed (e.g. ``[seed, 1000 + k]``).
      name: the name of the subset.

    Returns:
      The :class:`ReducedSpace`: per position, that many choices drawn uniformly without replacement.

    Raises:
      NasjaxInputError: when ``like`` does not have the space's mask shape.
    """
    rng = np.random.default_rng(rng)
    like = np.asarray(like, bool)
    require(like.shape == space.mask.shape, "like", like.shape, f"{space.mask.shape}")
    allowed = np.zeros_like(like)
    for p in range(space.num_positions):
        k = int(like[p].sum())
        allowed[p, rng.choice(int(space.num_choices[p]), size=k, replace=False)] = True
    return ReducedSpace(name, allowed)
