"""Insight-reduced design spaces (Mills et al., CIKM 2021): drop the blocks whose latency is not repaid in accuracy.

Three rules decide which blocks of a group ``G`` (the choices of one position, or of one unit pooled over its
layers) are removed.

**Front dominance** (:func:`reduce_space_by_fronts`). Each block ``b`` has
samples ``S_b`` -- the (accuracy, latency) of the profiled networks containing it -- and its own front
``F_b``, the samples no other sample of ``S_b`` dominates. ``b`` is **dominated** by ``b'`` of its group when
every point of ``b``'s front has a point of ``b'`` that is better by a margin in both objectives::

    for all (a, l) in F_b  exists (a', l') in S_b':  a' >= a + m_a  and  log l' <= log l - m_l
    m_a = z sqrt(sd_a(b)^2 / n_b + sd_a(b')^2 / n_b'),  m_l the same of log latency

``m`` is ``z`` standard errors of the difference between the two blocks' profile means. A block's ``n_b``
networks are drawn from the ``N_b`` networks of the space containing it, so its standard error carries the
finite-population correction of sampling without replacement::

    se_a(b)^2 = sd_a(b)^2 / n_b * (N_b - n_b) / (N_b - 1)        (N_b = inf: sampling with replacement)

A small sampled profile (wide spread, few networks) needs a clear difference before a block goes; an
exhaustive one (every cell of a tabular benchmark containing the block, ``n_b = N_b``) has no sampling error,
its margin is 0 whatever ``z``, and the rule is plain dominance of the blocks' exact fronts. That is sound for
a search of that table: each cell containing a removed ``b`` is weakly dominated by a point of ``F_b``, which a
cell containing ``b'`` strictly dominates; following such a chain through the removed blocks (finite, strict)
ends at a kept cell that dominates it, so no cell of the true front is removed and the reduced space's front is
the full space's.
Comparing fronts, not means, is what makes the rule sound for a search: the networks a block is needed for
are the accurate-for-their-latency ones, not the average one. A block that is cheap *on average* may still
be the only way to the low-latency end, and one with a poor mean may hold a few front networks; neither is
removed. A group keeps every block no other block dominates (so at least one), and a profile with nothing
dominated leaves the full space.

**Swap dominance** (:func:`reduce_space_by_swaps`). The profiled networks containing ``b`` are its
contexts; in each, ``b`` is swapped for another block ``b'`` of its group (the same network, only that
position changed) and both are evaluated. ``b`` is dominated by ``b'`` when the swap is no worse in accuracy
and latency and better in one in (at least a share ``s`` of, default all) ``b``'s contexts::

    for all x in X_b:  acc(x[p := b']) >= acc(x)  and  lat(x[p := b']) <= lat(x),  one strict

This is the comparison a sampled profile can make soundly: the two networks share everything but the block,
so the background networks, whose spread dwarfs one block's effect in a large space, cancel. Comparing the
fronts of independent samples (the rule above) on a sampled profile compares whose sample drew the better
backgrounds: on OFA MobileNetV3 with 20 networks per block it removed the smallest and the largest block of a
stage, which the front's two ends need. On an exhaustive profile the contexts are every cell containing
``b``, each such cell is strictly dominated by its swapped twin, and following the chain through removed
blocks ends at a kept cell, so no true-front cell is removed; the front rule, exact there, removes at least as
much (on NAS-Bench-201 the swap rule removes nothing: no operation loses to another on an edge in every
cell). :func:`reduce_profile` therefore takes the front rule for an exhaustive profile and the swap rule for a
sampled one.

**Statistic dominance** (:func:`reduce_space`). Each block has summary statistics ``acc(b)`` and
``lat(b)`` (e.g. the mean and 95 % quantile of accuracy, the mean and 5 % quantile of latency); ``b`` is
dominated when another block of its group is no worse in every column and better in one (a relative
tolerance ``tol`` on latency)::

    exists b' in G:  acc(b') >= acc(b)  and  lat(b') <= lat(b) (1 + tol),  one strict

This compares marginal summaries and so does not see interactions: on NAS-Bench-201 it removes ``none``
(a cut edge, on average no cheaper than ``skip_connect`` on GPUs) although cells with ``none`` sit on the
true front.

The control is a random subset of the same size: per position, as many choices as the reduced space keeps
there, drawn uniformly (the original's random-subspace comparison). A reduced space is an
``allowed [P, K]`` mask over the full space's indices, which
:func:`nasjax.search.pareto_mutation.mutation_search` takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nasjax.errors import require
from nasjax.profiling.profiles import evaluate_sources
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


def _groups(blocks: Sequence[Block], level: str, depths: bool = True) -> dict[tuple, list[int]]:
    """The groups of blocks compared with each other; ``depths=False`` leaves the depth positions out (kept whole)."""
    require(level in ("position", "unit"), "level", level, "'position' or 'unit'")
    out: dict[tuple, list[int]] = {}
    for i, b in enumerate(blocks):
        if not depths and b.layer == "depth":
            continue
        key = (b.position,) if level == "position" else (b.unit, b.layer == "depth")
        out.setdefault(key, []).append(i)
    return out


def reduce_space(space: SearchSpace, blocks: Sequence[Block], acc, lat, *, level: str = "position",
                 tol: float = 0.0, depths: bool = True, name: str = "reduced") -> ReducedSpace:
    """The reduced space of a profile by statistic dominance (module docstring).

    Args:
      space: the full space.
      blocks: the profiled blocks; ``acc [B]`` / ``[B, k]`` and ``lat [B]`` / ``[B, k]`` their accuracy and
        latency statistics (any scale, e.g. the relative latency ``rel_mean``; higher accuracy and lower
        latency are better in every column).
      level: ``"position"`` (compare the choices of each position) or ``"unit"`` (pool each block label over
        the layers of a unit, as the original's stage-level candidate sets; depths apart).
      tol: relative latency tolerance of the dominance test.
      depths: whether a depth choice may be removed too (``False``: the rule prunes only the blocks of the
        layers, the operations the original profiles; every depth is kept).
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
    for idx in _groups(blocks, level, depths).values():
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


def _front(a: np.ndarray, ll: np.ndarray) -> np.ndarray:
    """The rows ``[F, 2]`` (accuracy, log latency) of the samples no other sample dominates."""
    from nasjax.search.pareto_mutation import nondominated

    keep = nondominated(np.stack([-a, ll], 1))
    return np.unique(np.stack([a[keep], ll[keep]], 1), axis=0)


def _var_of_mean(x: np.ndarray, population: float) -> float:
    """``sd(x)^2 / n * (N - n) / (N - 1)``: the squared standard error of a sample mean (module docstring)."""
    n = x.size
    fpc = 1.0 if not np.isfinite(population) else max(0.0, (population - n) / max(population - 1.0, 1.0))
    return float(x.var() / n * fpc)


def front_dominated(acc_b, lat_b, acc_o, lat_o, z: float = 1.0, population=(np.inf, np.inf)) -> bool:
    """Whether block ``b``'s samples are front-dominated by block ``o``'s (module docstring).

    for all (a, l) in F_b  exists (a', l') in S_o:  a' >= a + m_a  and  log l' <= log l - m_l

    Args:
      acc_b, lat_b: ``[n_b]`` accuracy and latency (> 0) of the networks containing ``b``.
      acc_o, lat_o: ``[n_o]`` the same for the other block.
      z: the margin in standard errors of the difference of the two blocks' means.
      population: ``(N_b, N_o)``, how many networks of the space contain each block (the samples' finite
        population; ``inf``: drawn with replacement, no correction).

    Returns:
      True when every point of ``b``'s front has a point of ``o``'s samples better by the margins in both.
    """
    ab, lb = np.asarray(acc_b, np.float64), np.log(np.asarray(lat_b, np.float64))
    ao, lo = np.asarray(acc_o, np.float64), np.log(np.asarray(lat_o, np.float64))
    nb, no = (float(x) for x in population)
    m_a = z * np.sqrt(_var_of_mean(ab, nb) + _var_of_mean(ao, no))
    m_l = z * np.sqrt(_var_of_mean(lb, nb) + _var_of_mean(lo, no))
    fb, fo = _front(ab, lb), _front(ao, lo)  # a point dominating with margins implies one on o's front does
    ok = (fo[None, :, 0] >= fb[:, None, 0] + m_a) & (fo[None, :, 1] <= fb[:, None, 1] - m_l)
    ok &= (fo[None, :, 0] > fb[:, None, 0]) | (fo[None, :, 1] < fb[:, None, 1])  # strict (matters at z = 0)
    return bool(np.all(ok.any(1)))


def reduce_space_by_fronts(space: SearchSpace, blocks: Sequence[Block], acc, lat, *, level: str = "position",
                           z: float = 1.0, population=None, depths: bool = True,
                           name: str = "reduced") -> ReducedSpace:
    """The reduced space of a profile by front dominance (module docstring).

    Args:
      space: the full space.
      blocks: the profiled blocks.
      acc: per block, the ``[n_b]`` accuracy of its sampled networks (higher is better).
      lat: per block, the ``[n_b]`` latency (> 0) of the same networks.
      level: ``"position"`` (compare the choices of each position) or ``"unit"`` (pool each block label's
        samples over the layers of a unit, as the original's stage-level candidate sets; depths apart).
      z: the margin in standard errors (0: plain dominance of the sampled fronts).
      population: per block, how many networks of the space contain it (``N_b``, e.g. the profile's
        ``population``; ``inf`` or ``None``: sampled with replacement, no finite-population correction).
      depths: whether a depth choice may be removed too (as :func:`reduce_space`).
      name: the reduced space's name.

    Returns:
      The :class:`ReducedSpace` (``removed`` maps each removed block to one that dominates it); positions
      without profiled blocks keep every choice.

    Raises:
      NasjaxInputError: on a length mismatch, an empty or non-finite sample, a latency <= 0, ``z < 0``, or a
        population smaller than its sample.
    """
    require(len(acc) == len(lat) == len(blocks), "acc/lat", (len(acc), len(lat)), f"{len(blocks)} samples each")
    require(z >= 0, "z", z, "a margin >= 0 (standard errors)")
    pop = np.full(len(blocks), np.inf) if population is None else np.asarray(population, np.float64).reshape(-1)
    require(pop.shape == (len(blocks),), "population", pop.shape, f"({len(blocks)},), one per block")
    acc = [np.asarray(x, np.float64).reshape(-1) for x in acc]
    lat = [np.asarray(x, np.float64).reshape(-1) for x in lat]
    for i, (x, y) in enumerate(zip(acc, lat)):
        require(x.size >= 1 and x.size == y.size and bool(np.all(np.isfinite(x))), f"acc[{i}]", x.size,
                f"finite values, one per latency ({y.size})")
        require(bool(np.all(np.isfinite(y) & (y > 0))), f"lat[{i}]", float(y.min()) if y.size else None,
                "finite latencies > 0")
        require(bool(pop[i] >= x.size), f"population[{i}]", float(pop[i]), f">= its sample size {x.size}")
    allowed = space.mask.copy()
    removed = {}
    for idx in _groups(blocks, level, depths).values():
        labels = list(dict.fromkeys(blocks[i].label for i in idx))
        members = {lab: [i for i in idx if blocks[i].label == lab] for lab in labels}
        a = {lab: np.concatenate([acc[i] for i in m]) for lab, m in members.items()}
        t = {lab: np.concatenate([lat[i] for i in m]) for lab, m in members.items()}
        n = {lab: float(pop[m].sum()) for lab, m in members.items()}  # a pooled sample's population: the sum
        for lab in labels:
            for other in labels:
                if other != lab and front_dominated(a[lab], t[lab], a[other], t[other], z, (n[lab], n[other])):
                    for i in members[lab]:
                        allowed[blocks[i].position, blocks[i].choice] = False
                        removed[blocks[i].key] = blocks[members[other][0]].key
                    break
    return ReducedSpace(name, allowed, removed)


def _label_choices(blocks: Sequence[Block], idx: Sequence[int]) -> dict:
    """``{label: {position: choice}}`` of the blocks ``idx`` of one group."""
    out: dict = {}
    for i in idx:
        out.setdefault(blocks[i].label, {})[blocks[i].position] = blocks[i].choice
    return out


def reduce_space_by_swaps(space: SearchSpace, profile, sources: Sequence, *, level: str = "position",
                          share: float = 1.0, depths: bool = True, name: str = "reduced") -> ReducedSpace:
    """The reduced space of a profile by swap dominance (module docstring).

    Every network a block ``b`` was profiled in is a context: the same network with ``b``'s position set to the
    choice of another block ``b'`` of the group is evaluated by ``sources``, and ``b`` is removed when the swap
    is no worse in accuracy and latency, and better in one, in at least ``share`` of ``b``'s contexts (pooled
    over the layers of a unit at ``level="unit"``).

    Args:
      space: the full space.
      profile: the :class:`~nasjax.profiling.profiles.BlockProfile` (its ``blocks`` and sampled ``archs``).
      sources: ``(accuracy, latency)`` metric sources (``predict(archs)``; accuracy higher is better, latency
        lower); called once on every swapped network stacked.
      level: ``"position"`` or ``"unit"`` (as :func:`reduce_space_by_fronts`).
      share: the fraction of contexts in which the swap must dominate (1: all of them).
      depths: whether a depth choice may be removed too (as :func:`reduce_space`).
      name: the reduced space's name.

    Returns:
      The :class:`ReducedSpace` (``removed`` maps each removed block to the block whose swap dominates it).

    Raises:
      NasjaxInputError: without sampled architectures for every block, with other than two sources, or with
        ``share`` outside ``(0, 1]``.
    """
    blocks = list(profile.blocks)
    archs = list(profile.archs)
    require(len(archs) == len(blocks) and all(len(a) for a in archs), "profile.archs", len(archs),
            f"the sampled architectures of each of the {len(blocks)} blocks")
    require(len(sources) == 2, "sources", len(sources), "(accuracy, latency): two metric sources")
    require(0.0 < share <= 1.0, "share", share, "a fraction in (0, 1]")
    groups = [(idx, _label_choices(blocks, idx)) for idx in _groups(blocks, level, depths).values()]
    # every (block, other label) swap of every context, evaluated in one stacked call
    plan, parts, n = [], [], 0
    for idx, choices in groups:
        for i in idx:
            x = np.asarray(archs[i], np.int64)
            for other, at in choices.items():
                if other == blocks[i].label or blocks[i].position not in at:
                    continue
                y = x.copy()
                y[:, blocks[i].position] = at[blocks[i].position]
                parts.append(y)
                plan.append((i, other, n, n + len(y)))
                n += len(y)
    base_rows = np.cumsum([0] + [len(a) for a in archs])
    vals = evaluate_sources(sources, np.concatenate([np.asarray(a, np.int64) for a in archs] + parts, 0))
    base, swapped = vals[:base_rows[-1]], vals[base_rows[-1]:]
    wins: dict = {}  # (block index, other label) -> [wins, contexts]
    for i, other, lo, hi in plan:
        b, s_ = base[base_rows[i]:base_rows[i + 1]], swapped[lo:hi]
        ok = (s_[:, 0] >= b[:, 0]) & (s_[:, 1] <= b[:, 1]) & ((s_[:, 0] > b[:, 0]) | (s_[:, 1] < b[:, 1]))
        wins[(i, other)] = (int(ok.sum()), int(ok.size))
    allowed = space.mask.copy()
    removed = {}
    for idx, choices in groups:
        members = {lab: [i for i in idx if blocks[i].label == lab] for lab in choices}
        for lab, mem in members.items():
            for other in choices:
                if other == lab or any((i, other) not in wins for i in mem):
                    continue
                w, c = np.sum([wins[(i, other)] for i in mem], 0)
                if w >= share * c:
                    for i in mem:
                        allowed[blocks[i].position, blocks[i].choice] = False
                        removed[blocks[i].key] = blocks[members[other][0]].key
                    break
    return ReducedSpace(name, allowed, removed)


def reduce_profile(space: SearchSpace, profile, sources: Sequence, *, rule: str = "auto", level: str = "position",
                   z: float = 1.0, depths: bool = True, name: str = "reduced") -> ReducedSpace:
    """The reduced space of a two-metric profile by the rule that is sound for it (module docstring): front
    dominance when the profile is exhaustive (every block's samples are all the networks containing it, as
    :func:`~nasjax.profiling.profiles.profile_cells` over a whole tabular benchmark), swap dominance when it is
    sampled.

    Args:
      space: the full space.
      profile: the :class:`~nasjax.profiling.profiles.BlockProfile`, metrics (accuracy, latency).
      sources: its ``(accuracy, latency)`` sources (the swap rule evaluates swapped networks with them).
      rule: ``"auto"`` (as above), ``"fronts"`` or ``"swaps"`` (that rule whatever the profile).
      level: ``"position"`` or ``"unit"``.
      z: the front rule's margin (no effect on an exhaustive profile).
      depths: whether a depth choice may be removed too (as :func:`reduce_space`).
      name: the reduced space's name.

    Returns:
      The :class:`ReducedSpace`.
    """
    require(rule in ("auto", "fronts", "swaps"), "rule", rule, "'auto', 'fronts' or 'swaps'")
    if rule == "auto":
        pop = np.asarray(profile.population, np.float64)
        sizes = np.array([len(x) for x in profile.samples], np.float64)
        rule = "fronts" if pop.size and np.all(np.isfinite(pop)) and np.all(pop == sizes) else "swaps"
    if rule == "fronts":
        return reduce_space_by_fronts(space, profile.blocks, [x[:, 0] for x in profile.samples],
                                      [x[:, 1] for x in profile.samples], level=level, z=z,
                                      population=profile.population, depths=depths, name=name)
    return reduce_space_by_swaps(space, profile, sources, level=level, depths=depths, name=name)


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
