"""Random-mutation Pareto search (Mills et al., CIKM 2021, ``rm_pareto_search``), the front's hypervolume.

The search keeps every evaluated architecture and its objective vector ``y(a) = (-acc(a), r_1(a), ...)``
(all minimised: the problem's objective is maximised, each constraint's model minimised; a candidate over a
constraint's bound is refused before evaluation). It starts from ``init_size`` distinct
random architectures; each of ``iterations`` rounds mutates the current front, round robin over its
members, into ``per_iteration`` architectures never evaluated before, evaluates them in one batch and
updates the front. The original's defaults are 100 random starts and 10 iterations x 200 evaluations.

A mutation (the original's stage-level mutator) picks every *unit* with probability ``unit_prob`` (at
least one) and applies one of its valid moves, drawn uniformly:

* a unit of layers gated by a depth position (a stage): **add** a random allowed block at a random index
  (depth up to the next allowed depth), **remove** the block at a random index (depth down), or **swap**
  one active layer's block for another allowed one;
* an ungated position (a NAS-Bench-201 edge) is a unit of its own: **swap** only.

The space can be restricted by ``allowed [P, K]`` (a reduced space: same indexing, fewer choices).

Architectures are kept canonical: a layer its depth switches off holds its lowest allowed choice, so two
vectors of one network are one architecture. Gates come in as data (``gate_position``,
``gate_min_choice``: see :mod:`nasjax.spaces.structure`).

**Common random numbers.** Searches of one seed in different subspaces (full, reduced, random subsets) use
coupled draws so that their differences come from the spaces, not from unrelated random streams. The random
starts and the mutations have separate streams (``SeedSequence(seed).spawn(2)``), so how many start draws a
space needs does not shift its mutations. Every draw "uniform from the allowed choices ``S`` of a position"
(``S`` a subset of the full space's choices ``F``, both without the current choice for a swap) takes exactly
two uniforms ``u_1, u_2`` and is the maximal coupling of the two uniform distributions::

    c = F[floor(u_1 |F|)];  if c not in S:  c = S[floor(u_2 |S|)]

``P(c) = 1/|F| + (1 - |S|/|F|) / |S| = 1/|S|`` for every ``c`` in ``S``: uniform on ``S``, as a direct draw,
and equal to the full space's draw whenever that one is allowed (a reduced space's random starts are the
full space's wherever they lie in it). The stream position of a draw does not depend on ``|S|``.

Hypervolume of a front ``Y`` (minimised) against a reference point ``r``: the measure of
``{z : exists y in Y, y <= z <= r}``; in 2-D, with the non-dominated points sorted by ``y_0`` ascending,
``HV = sum_i (x_{i+1} - y_{i,0}) (r_1 - y_{i,1})`` with ``x_{i+1}`` the next point's ``y_0`` (``r_0``
after the last); more objectives by slicing along the last one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.search.base import Searcher, SearchProblem, SearchResult, TabularObjective, register
from nasjax.search.harness import History


def nondominated(costs) -> np.ndarray:
    """``[N]`` bool: the rows of ``costs [N, M]`` (minimised) that no other row dominates (duplicates all kept).

    Args:
      costs: ``[N, M]`` objective vectors, every objective minimised.

    Returns:
      bool ``[N]``.

    Raises:
      NasjaxInputError: when ``costs`` is not 2-D.
    """
    c = np.asarray(costs, np.float64)
    require(c.ndim == 2, "costs", c.shape, "(N, M)")
    n = c.shape[0]
    if n == 0:
        return np.zeros(0, bool)
    if c.shape[1] == 2:  # sort-based: dominated by a point of smaller x and y <=, or of equal x and smaller y
        o = np.lexsort((c[:, 1], c[:, 0]))
        x, y = c[o, 0], c[o, 1]
        first = np.r_[True, x[1:] != x[:-1]]
        gid = np.cumsum(first) - 1
        gmin = y[first]
        prev = np.r_[np.inf, np.minimum.accumulate(gmin)[:-1]]
        keep = np.empty(n, bool)
        keep[o] = ~((prev[gid] <= y) | (y > gmin[gid]))
        return keep
    keep = np.ones(n, bool)
    for i in np.lexsort(c.T[::-1]):
        if keep[i]:
            keep &= ~(np.all(c[i] <= c, 1) & np.any(c[i] < c, 1))
    return keep


def hypervolume(costs, ref) -> float:
    """Hypervolume of ``costs [N, M]`` (minimised) dominated up to the reference point ``ref [M]``.

    Args:
      costs: objective vectors, every objective minimised (negate an accuracy).
      ref: the reference point; points not strictly better than it in every objective add nothing.

    Returns:
      The hypervolume (module docstring), 0 for an empty front.
    """
    c = np.atleast_2d(np.asarray(costs, np.float64))
    r = np.asarray(ref, np.float64).reshape(-1)
    require(c.shape[1] == r.size if c.size else True, "ref", r.shape, f"({c.shape[1]},)")
    require(bool(np.all(np.isfinite(r))), "ref", r.tolist(), "a finite reference point")
    c = c[np.all(c < r, 1)] if c.size else c.reshape(0, r.size)
    if c.shape[0] == 0:
        return 0.0
    c = np.unique(c[nondominated(c)], axis=0)
    return _hv(c, r)


def _hv(c: np.ndarray, r: np.ndarray) -> float:
    if c.shape[1] == 1:
        return float(r[0] - c[:, 0].min())
    if c.shape[1] == 2:
        c = c[np.argsort(c[:, 0], kind="stable")]
        x_next = np.append(c[1:, 0], r[0])
        best_y = np.minimum.accumulate(c[:, 1])
        return float(np.sum((x_next - c[:, 0]) * (r[1] - best_y)))
    last = np.unique(c[:, -1])
    bounds = np.append(last[1:], r[-1])
    total = 0.0
    for z, z_next in zip(last, bounds):
        sl = c[c[:, -1] <= z][:, :-1]
        sl = sl[nondominated(sl)]
        total += _hv(sl, r[:-1]) * (z_next - z)
    return float(total)


# --------------------------------------------------------------------------------------------------
# the mutator


@dataclass(frozen=True)
class Units:
    """The mutation units of a space: gated stages ``(gate, layers in order)`` and free positions."""

    stages: tuple[tuple[int, tuple[int, ...]], ...]
    free: tuple[int, ...]

    @classmethod
    def build(cls, num_positions: int, gate_position, gate_min_choice) -> Units:
        """The mutation units of a space from its gates.

        Args:
          num_positions: ``P``.
          gate_position: ``[P]`` the depth position gating each position (``-1``: ungated), or ``None`` (all ungated).
          gate_min_choice: ``[P]`` smallest gate choice at which each position runs, or ``None`` (all 0).

        Returns:
          :class:`Units`: per gate, ``(gate, its layers ordered by threshold)``; the ungated non-gate positions free.

        Raises:
          NasjaxInputError: when a gate array does not have ``P`` entries.
        """
        gp = np.full(num_positions, -1, np.int64) if gate_position is None else np.asarray(gate_position, np.int64)
        gm = np.zeros(num_positions, np.int64) if gate_min_choice is None else np.asarray(gate_min_choice, np.int64)
        require(gp.shape == (num_positions,) and gm.shape == (num_positions,), "gate_position/gate_min_choice",
                (gp.shape, gm.shape), f"({num_positions},) each")
        gates = sorted({int(g) for g in gp if g >= 0})
        stages = []
        for g in gates:
            lay = np.flatnonzero(gp == g)
            lay = lay[np.lexsort((lay, gm[lay]))]
            stages.append((g, tuple(int(x) for x in lay)))
        free = tuple(p for p in range(num_positions) if gp[p] < 0 and p not in gates)
        return cls(tuple(stages), free)


class Mutator:
    """Stage-level random mutation over an allowed mask (module docstring).

    Args:
      allowed: bool ``[P, K]``: the choices each position may take (at least one per position).
      gate_position: ``[P]`` the depth position gating each position (``-1``: ungated), or ``None``.
      gate_min_choice: ``[P]`` smallest gate choice at which each position runs, or ``None``.
      unit_prob: the probability of picking each unit, in (0, 1].
      full: bool ``[P, K]``: the full space's mask the draws are coupled to (module docstring), a superset
        of ``allowed``; default ``allowed``.

    Raises:
      NasjaxInputError: on a position without an allowed choice, gates of another length, a bad
        ``unit_prob``, a ``full`` mask not containing ``allowed``, or no mutable position.
    """

    def __init__(self, allowed: np.ndarray, gate_position=None, gate_min_choice=None, unit_prob: float = 0.5,
                 full: np.ndarray | None = None):
        self.allowed = np.asarray(allowed, bool)
        P = self.allowed.shape[0]
        full = self.allowed if full is None else np.asarray(full, bool)
        require(full.shape == self.allowed.shape and not np.any(self.allowed & ~full), "full", full.shape,
                f"a mask {self.allowed.shape} containing allowed")
        self.units = Units.build(P, gate_position, gate_min_choice)
        self.gmin = np.zeros(P, np.int64) if gate_min_choice is None else np.asarray(gate_min_choice, np.int64)
        self.choices = [np.flatnonzero(self.allowed[p]) for p in range(P)]
        self.full_choices = [np.flatnonzero(full[p]) for p in range(P)]
        for p, ch in enumerate(self.choices):
            require(ch.size >= 1, f"allowed[{p}]", "no choice", "at least one allowed choice per position")
        require(0.0 < unit_prob <= 1.0, "unit_prob", unit_prob, "a probability in (0, 1]")
        self.unit_prob = float(unit_prob)
        self.num_units = len(self.units.stages) + len(self.units.free)
        require(self.num_units >= 1, "space", "no position", "at least one mutable position")

    def n_active(self, a: np.ndarray, g: int, layers) -> int:
        """The number of active layers of a stage in ``a``.

        Args:
          a: one choice vector ``[P]``.
          g: the stage's depth position.
          layers: the stage's layer positions.

        Returns:
          How many of ``layers`` run at depth choice ``a[g]``.
        """
        return int(sum(1 for p in layers if a[g] >= self.gmin[p]))

    def canonical(self, a: np.ndarray) -> np.ndarray:
        """Inactive layers set to their lowest allowed choice (rows of a batch, or one vector).

        Args:
          a: choice vectors ``[P]`` or ``[N, P]`` (not modified).

        Returns:
          A canonical int64 copy of the same shape.
        """
        a = np.array(a, np.int64, copy=True)
        for g, layers in self.units.stages:
            for p in layers:
                off = a[..., g] < self.gmin[p]
                a[..., p] = np.where(off, self.choices[p][0], a[..., p])
        return a

    def random(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` random architectures: every position drawn uniformly from its allowed choices, then made canonical.

        Args:
          rng: the generator.
          n: how many.

        Returns:
          int64 ``[n, P]``.
        """
        u = rng.random((n, len(self.choices), 2))
        cols = []
        for p, (ch, fu) in enumerate(zip(self.choices, self.full_choices)):
            c = fu[(u[:, p, 0] * fu.size).astype(np.int64)]
            cols.append(np.where(self.allowed[p, c], c, ch[(u[:, p, 1] * ch.size).astype(np.int64)]))
        return self.canonical(np.stack(cols, 1))

    def draw(self, rng: np.random.Generator, p: int, exclude: int | None = None) -> int | None:
        """One allowed choice of position ``p`` (not ``exclude``), coupled to the full space's (module docstring).

        Args:
          rng: the generator (exactly two uniforms are taken, whatever the sets).
          p: the position.
          exclude: a choice not to return (the current one of a swap), or ``None``.

        Returns:
          The choice, uniform over the allowed ones other than ``exclude``; ``None`` when there is none.
        """
        u1, u2 = rng.random(2)
        fu, ch = self.full_choices[p], self.choices[p]
        if exclude is not None:
            fu, ch = fu[fu != exclude], ch[ch != exclude]
        if ch.size == 0:
            return None
        c = int(fu[int(u1 * fu.size)])
        return c if self.allowed[p, c] else int(ch[int(u2 * ch.size)])

    def _stage(self, rng, a: np.ndarray, g: int, layers) -> None:
        depths = self.choices[g]
        n = self.n_active(a, g, layers)
        blocks = [int(a[p]) for p in layers[:n]]
        up = depths[depths > a[g]]
        down = depths[depths < a[g]]
        moves = []
        if up.size:
            moves.append("add")
        if down.size:
            moves.append("remove")
        if any(self.choices[p].size > 1 for p in layers[:n]):
            moves.append("swap")
        if not moves:
            return
        move = moves[rng.integers(len(moves))]
        if move == "swap":
            idx = [i for i in range(n) if self.choices[layers[i]].size > 1]
            i = idx[rng.integers(len(idx))]
            blocks[i] = self.draw(rng, layers[i], exclude=blocks[i])
        else:
            a[g] = int(up[0]) if move == "add" else int(down[-1])
            n_new = self.n_active(a, g, layers)
            while len(blocks) < n_new:
                slot = int(rng.integers(len(blocks) + 1))
                blocks.insert(slot, self.draw(rng, layers[min(slot, len(layers) - 1)]))
            while len(blocks) > n_new:
                blocks.pop(int(rng.integers(len(blocks))))
        for i, p in enumerate(layers[:len(blocks)]):
            b = blocks[i]
            a[p] = b if self.allowed[p, b] else self.draw(rng, p)

    def mutate(self, rng: np.random.Generator, arch: np.ndarray) -> np.ndarray:
        """One stage-level mutation of ``arch`` (module docstring): every unit picked with probability ``unit_prob``
        (at least one), each picked unit changed by one of its valid moves.

        Args:
          rng: the generator.
          arch: one choice vector ``[P]`` (not modified).

        Returns:
          The canonical child, int64 ``[P]``.
        """
        a = np.array(arch, np.int64, copy=True)
        picked = np.zeros(0, np.int64)
        while picked.size == 0:
            picked = np.flatnonzero(rng.random(self.num_units) < self.unit_prob)
        ns = len(self.units.stages)
        for u in picked:
            if u < ns:
                g, layers = self.units.stages[u]
                self._stage(rng, a, g, layers)
            else:
                p = self.units.free[u - ns]
                c = self.draw(rng, p, exclude=int(a[p]))
                if c is not None:
                    a[p] = c
        return self.canonical(a)


# --------------------------------------------------------------------------------------------------
# the search


@dataclass
class MutationRun:
    """Everything a run evaluated: ``archs [E, P]``, ``costs [E, M]`` (minimised), the iteration of each
    evaluation (0 = random starts), the final front's row indices and the candidates refused unevaluated."""

    archs: np.ndarray
    costs: np.ndarray
    iteration: np.ndarray
    front: np.ndarray
    refused: int = 0


def _admissible(problem: SearchProblem, archs: np.ndarray) -> np.ndarray:
    """Candidates worth evaluating: a cell of a tabular objective and within every constraint's bound."""
    ok = np.ones(len(archs), bool)
    rows_of = getattr(problem.objective, "rows_of", None)
    if callable(rows_of):
        ok &= np.asarray(rows_of(archs)) >= 0
    for c in problem.constraints:
        idx = np.flatnonzero(ok)
        if idx.size:
            ok[idx] &= c.satisfied(archs[idx])
    return ok


def _costs(problem: SearchProblem, archs: np.ndarray) -> np.ndarray:
    obj = np.asarray(problem.objective.predict(archs), np.float64).reshape(-1)
    return np.stack([-obj] + [c.values(archs) for c in problem.constraints], 1)


class _Pool:
    """The evaluated set: unique architectures, their costs and iterations; refuses unseen candidates once."""

    def __init__(self, problem: SearchProblem):
        self.problem = problem
        self.seen: set[bytes] = set()
        self.archs: list[np.ndarray] = []
        self.costs: list[np.ndarray] = []
        self.iters: list[np.ndarray] = []
        self.refused = 0

    def fresh(self, a: np.ndarray) -> bool:
        return a.tobytes() not in self.seen

    def add(self, cands: list[np.ndarray], iteration: int) -> int:
        """Evaluate the admissible ones among new candidates (all marked seen); returns how many were evaluated."""
        if not cands:
            return 0
        C = np.stack(cands)
        self.seen.update(a.tobytes() for a in cands)
        ok = _admissible(self.problem, C)
        self.refused += int((~ok).sum())
        if ok.any():
            self.archs.append(C[ok])
            self.costs.append(_costs(self.problem, C[ok]))
            self.iters.append(np.full(int(ok.sum()), iteration))
        return int(ok.sum())

    @property
    def size(self) -> int:
        return int(sum(len(a) for a in self.archs))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        P = self.problem.space.num_positions
        if not self.archs:
            return np.zeros((0, P), np.int64), np.zeros((0, 1 + len(self.problem.constraints))), np.zeros(0, np.int64)
        return np.concatenate(self.archs), np.concatenate(self.costs), np.concatenate(self.iters)


def mutation_search(problem: SearchProblem, seed: int, *, allowed=None, gate_position=None, gate_min_choice=None,
                    init_size: int = 100, iterations: int = 10, per_iteration: int = 200, unit_prob: float = 0.5,
                    max_attempts: int = 100) -> MutationRun:
    """Run the random-mutation Pareto search (module docstring) and return every evaluation.

    A candidate outside a constraint's bound (or not a cell of a tabular objective) is refused before it is
    evaluated and does not count (the original's constrained search checks its cheap constraint first).

    Args:
      problem: the space, the objective (maximised) and the constraints (their models minimised).
      seed: seed of every random choice.
      allowed: ``[P, K]`` bool mask of the allowed choices (default: the whole space).
      gate_position, gate_min_choice: ``[P]`` depth gates (default: none).
      init_size, iterations, per_iteration: random starts, rounds, new evaluations per round.
      unit_prob: probability that a unit is mutated.
      max_attempts: tries per front member to find a mutant never seen, and rounds of refilling a batch.

    Returns:
      The :class:`MutationRun`. ``problem.query_budget`` caps the total evaluations.
    """
    space = problem.space
    mask = space.mask if allowed is None else np.asarray(allowed, bool)
    require(mask.shape == space.mask.shape, "allowed", mask.shape, f"{space.mask.shape} like space.mask")
    require(not np.any(mask & ~space.mask), "allowed", "choices outside the space", "a subset of space.mask")
    sizes = (("init_size", init_size, 1), ("iterations", iterations, 0), ("per_iteration", per_iteration, 1))
    for name, v, lo in sizes:
        require(isinstance(v, (int, np.integer)) and v >= lo, name, v, f"an integer >= {lo}")
    mut = Mutator(mask, gate_position, gate_min_choice, unit_prob, full=space.mask)
    rng_start, rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    budget = problem.query_budget if problem.query_budget is not None else init_size + iterations * per_iteration
    pool = _Pool(problem)
    for _ in range(max_attempts):
        need = min(init_size, budget) - pool.size
        if need <= 0:
            break
        cands = {a.tobytes(): a for a in mut.random(rng_start, 2 * need) if pool.fresh(a)}
        pool.add(list(cands.values())[:need], 0)
    for i in range(1, iterations + 1):
        A, C, _ = pool.arrays()
        goal = min(per_iteration, budget - len(A))
        front = _front_rows(C)
        got = 0
        for _ in range(max_attempts):
            if got >= goal or front.size == 0:
                break
            new: dict[bytes, np.ndarray] = {}
            for r in front:
                for _ in range(max_attempts):
                    m = mut.mutate(rng, A[r])
                    if pool.fresh(m) and m.tobytes() not in new:
                        new[m.tobytes()] = m
                        break
                if len(new) >= goal - got:
                    break
            if not new:
                break
            got += pool.add(list(new.values()), i)
    A, C, it = pool.arrays()
    return MutationRun(A, C, it, _front_rows(C), pool.refused)


def _front_rows(costs: np.ndarray) -> np.ndarray:
    return np.flatnonzero(nondominated(costs)) if len(costs) else np.zeros(0, np.int64)


class ParetoMutationSearcher(Searcher):
    """``pareto-mutation``: the front of :func:`mutation_search` (options as there).

    ``SearchResult.archs`` is the front sorted by the first resource (ascending), ``arch`` its most accurate
    member; ``info`` has ``front_objective``, ``front_resources`` (per constraint), ``evaluations``.
    """

    name = "pareto-mutation"
    kind = "query"

    def supports(self, problem: SearchProblem) -> str | None:
        """``None`` for any objective with ``predict(archs)``, else why not.

        Args:
          problem: the :class:`~nasjax.search.base.SearchProblem`.

        Returns:
          ``None`` or the reason, in words.
        """
        if not hasattr(problem.objective, "predict"):
            return "the objective has no predict(archs)"
        return None

    def _search(self, problem: SearchProblem, seed: int, **options) -> SearchResult:
        run = mutation_search(problem, seed, **options)
        if run.front.size == 0:
            raise NasjaxInputError("pareto-mutation: no evaluated architecture meets the constraints; expected "
                                   "bounds some architecture of the space meets")
        cf = run.costs[run.front]
        fr = run.front[np.lexsort((cf[:, 0], cf[:, 1] if cf.shape[1] > 1 else cf[:, 0]))]
        best = fr[np.argmin(run.costs[fr, 0])]
        names = [c.name for c in problem.constraints]
        res = {n: float(run.costs[best, j + 1]) for j, n in enumerate(names)}
        info = {"front_objective": (-run.costs[fr, 0]).tolist(),
                "front_resources": {n: run.costs[fr, j + 1].tolist() for j, n in enumerate(names)},
                "evaluations": int(len(run.archs)), "front_size": int(fr.size), "refused": run.refused}
        history = None
        if isinstance(problem.objective, TabularObjective):
            history = History(self.name, seed, problem.objective.rows_of(run.archs), -run.costs[:, 0], run.iteration)
        return SearchResult(run.archs[best], float(-run.costs[best, 0]), res, archs=run.archs[fr], info=info,
                            history=history)


register(ParetoMutationSearcher())
