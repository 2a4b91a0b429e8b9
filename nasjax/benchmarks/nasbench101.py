"""NAS-Bench-101 (Ying et al., ICML 2019): cell encoding, the official spec hash, and a record reader.

A NAS-Bench-101 cell is a DAG of at most 7 vertices given by an upper-triangular 0/1 adjacency matrix
(``matrix[i, j] = 1``: edge i -> j, only ``i < j``) and one op per vertex: ``input`` first, ``output``
last, and ``conv3x3-bn-relu`` / ``conv1x1-bn-relu`` / ``maxpool3x3`` in between; at most 9 edges.

:class:`Cell` follows the official ``ModelSpec`` semantics:

* pruning: vertices that are not on some input -> output path are removed (with their rows, columns and
  ops); a cell whose output is unreachable from its input is invalid;
* hash: the official isomorphism-invariant graph hash (``graph_util.hash_module``), computed on the pruned
  cell with labels ``input = -1``, ``output = -2`` and interior ops by their index in
  ``(conv3x3-bn-relu, conv1x1-bn-relu, maxpool3x3)``: every vertex starts from
  ``md5(str((out_degree, in_degree, label)))``; for ``V`` rounds, a vertex's new hash is
  ``md5(''.join(sorted(in-neighbour hashes)) + '|' + ''.join(sorted(out-neighbour hashes)) + '|' + own)``;
  the cell's hash is ``md5(str(sorted(vertex hashes)))``. Two isomorphic cells (same graph up to a
  relabelling of the interior vertices) get the same hash, which is the key of the benchmark's records.

nasjax choice vector (``to_vector`` / ``from_vector``): 26 positions = the 21 upper-triangle entries of the
7x7 matrix in row-major order (choices 0/1), then the ops of vertices 1..5 (choices 0..2 in the order
above). Cells with fewer than 7 vertices are padded (extra vertices are disconnected and so pruned away).

Records (:func:`read_records`): the official API's two dictionaries in one mapping ``hash ->
(fixed_metrics, computed_metrics)``: ``fixed_metrics = {module_adjacency, module_operations,
trainable_parameters}``, ``computed_metrics = {epochs: [run dicts with final_/halfway_ train/validation/
test accuracy (fractions) and training_time (s)]}`` -- the format NASLib's test asset (30 real cells) and
the NAS-Bench-101 API use. :class:`NB101Records` is the columnar view (accuracies in %, mean over runs).
Pickles are read with a restricted unpickler that only admits numpy arrays: a record file cannot run code.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasjax.errors import NasjaxInputError, shown
from nasjax.io import restricted_unpickle

INPUT, OUTPUT = "input", "output"
OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
MAX_VERTICES = 7
MAX_EDGES = 9
_TRIU = np.triu_indices(MAX_VERTICES, k=1)
NUM_POSITIONS = len(_TRIU[0]) + MAX_VERTICES - 2  # 21 edges + 5 ops


def _md5(s: str) -> str:
    return hashlib.md5(s.encode("utf-8")).hexdigest()


def graph_hash(matrix: np.ndarray, labels: list[int]) -> str:
    """The official NAS-Bench-101 isomorphism-invariant hash (see the module docstring for the rounds).

    Args:
      matrix: the (pruned) adjacency matrix ``[V, V]``, 0/1, upper-triangular.
      labels: an integer label per vertex (``input = -1``, ``output = -2``, interior ops by their index in
        :data:`OPS`).

    Returns:
      The 32-character hex md5 hash.
    """
    m = np.asarray(matrix)
    n = m.shape[0]
    out_deg = m.sum(1).tolist()
    in_deg = m.sum(0).tolist()
    h = [_md5(str((int(o), int(i), int(lab)))) for o, i, lab in zip(out_deg, in_deg, labels)]
    preds = [np.flatnonzero(m[:, v]).tolist() for v in range(n)]
    succs = [np.flatnonzero(m[v, :]).tolist() for v in range(n)]
    for _ in range(n):
        h = [
            _md5("".join(sorted(h[w] for w in preds[v])) + "|" + "".join(sorted(h[w] for w in succs[v])) + "|" + h[v])
            for v in range(n)
        ]
    return _md5(str(sorted(h)))


@dataclass(frozen=True)
class Cell:
    """A NAS-Bench-101 cell; ``matrix``/``ops`` are the pruned ones (``original_*`` as given)."""

    original_matrix: np.ndarray
    original_ops: tuple
    matrix: np.ndarray | None
    ops: tuple | None

    @classmethod
    def from_spec(cls, matrix, ops) -> Cell:
        """Validate and prune a spec; raises naming the problem.

        A cell whose output is unreachable is kept but invalid (``valid`` is False, ``matrix`` is None), as in the
        official API.

        Args:
          matrix: the adjacency matrix ``[V, V]``, 0/1, upper-triangular, ``2 <= V <= 7``.
          ops: one op per vertex: ``input``, interior ops from :data:`OPS`, ``output``.

        Returns:
          The :class:`Cell` (original and pruned spec).

        Raises:
          NasjaxInputError: on a non-square or non-0/1 matrix, too few or many vertices, an edge below the
            diagonal, an op count other than ``V``, or an unknown op.
        """
        try:
            m = np.asarray(matrix)
        except Exception:  # ragged nested lists
            raise NasjaxInputError(f"matrix: got {shown(matrix, 120)}, expected a square 0/1 array") from None
        if isinstance(ops, (str, bytes)) or not isinstance(ops, (list, tuple, np.ndarray)):
            raise NasjaxInputError(f"ops: got {shown(ops, 120)}, expected a list of op names")
        ops = tuple(ops)
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise NasjaxInputError(f"matrix: shape {m.shape}, expected square [V, V]")
        n = m.shape[0]
        if not 2 <= n <= MAX_VERTICES:
            raise NasjaxInputError(f"matrix: {n} vertices, expected 2..{MAX_VERTICES}")
        if m.dtype.kind not in "biuf" or not np.all((m == 0) | (m == 1)):
            raise NasjaxInputError(f"matrix: entries must be 0 or 1, got {str(m.tolist())[:120]}")
        m = m.astype(np.int64)
        if np.any(np.tril(m) != 0):
            i, j = np.argwhere(np.tril(m) != 0)[0]
            raise NasjaxInputError(f"matrix[{i}, {j}]: got 1, expected an upper-triangular matrix (edges i -> j, "
                                   "i < j)")
        if len(ops) != n:
            raise NasjaxInputError(f"ops: {len(ops)} ops, expected {n} (one per vertex)")
        for k, op in enumerate(ops):
            if not isinstance(op, str):
                raise NasjaxInputError(f"ops[{k}]: got {shown(op, 80)} ({type(op).__name__}), expected an op name")
        if ops[0] != INPUT or ops[-1] != OUTPUT:
            raise NasjaxInputError(f"ops: got {list(ops)}, expected 'input' first and 'output' last")
        for k, op in enumerate(ops[1:-1], start=1):
            if op not in OPS:
                raise NasjaxInputError(f"ops[{k}]: got {op!r}, expected one of {', '.join(OPS)}")
        pm, pops = _prune(m, ops)
        return cls(m, ops, pm, pops)

    @property
    def valid(self) -> bool:
        """Whether the cell is in the benchmark's space: its output is reachable and it has at most 9 edges."""
        return self.matrix is not None and int(self.matrix.sum()) <= MAX_EDGES

    def labels(self) -> list[int]:
        """The vertex labels of the hash: ``input = -1``, interior ops by :data:`OPS` index, ``output = -2``."""
        return [-1] + [OPS.index(op) for op in self.ops[1:-1]] + [-2]

    def hash(self) -> str:
        """Official spec hash of the pruned cell (the benchmark's record key)."""
        if not self.valid:
            raise NasjaxInputError(
                "cell: invalid (output unreachable from input, or more than 9 edges after pruning); it has no hash"
            )
        return graph_hash(self.matrix, self.labels())

    def to_vector(self) -> np.ndarray:
        """nasjax choice vector ``int64[26]`` of the ORIGINAL spec padded to 7 vertices."""
        n = self.original_matrix.shape[0]
        m = np.zeros((MAX_VERTICES, MAX_VERTICES), np.int64)
        # vertices 0..n-2 keep their place; the output moves to vertex 6
        keep = list(range(n - 1)) + [MAX_VERTICES - 1]
        m[np.ix_(keep, keep)] = self.original_matrix
        ops = list(self.original_ops[1:-1]) + [OPS[0]] * (MAX_VERTICES - n)
        return np.concatenate([m[_TRIU], [OPS.index(o) for o in ops]]).astype(np.int64)

    @classmethod
    def from_vector(cls, vec) -> Cell:
        """The cell of a nasjax choice vector (21 upper-triangle edges, then the ops of vertices 1..5), validated and
        pruned as by :meth:`from_spec`.

        Args:
          vec: int ``[26]``: edge entries 0/1, op entries 0..2 (indices into :data:`OPS`).

        Returns:
          The :class:`Cell` (not ``valid`` when the output is unreachable or it has more than
          :data:`MAX_EDGES` edges).

        Raises:
          NasjaxInputError: on another shape or a non-integer dtype, or an entry out of range.
        """
        v = np.asarray(vec)
        if v.shape != (NUM_POSITIONS,) or v.dtype.kind not in "iu":
            raise NasjaxInputError(f"vector: shape {v.shape} dtype {v.dtype}, expected int[{NUM_POSITIONS}]")
        if np.any((v[:21] < 0) | (v[:21] > 1)) or np.any((v[21:] < 0) | (v[21:] > 2)):
            raise NasjaxInputError("vector: edge entries must be 0/1 and op entries 0..2")
        m = np.zeros((MAX_VERTICES, MAX_VERTICES), np.int64)
        m[_TRIU] = v[:21]
        return cls.from_spec(m, (INPUT, *[OPS[k] for k in v[21:]], OUTPUT))


def _prune(m: np.ndarray, ops: tuple):
    n = m.shape[0]
    fwd = {0}
    for v in range(n):  # topological order: i < j for every edge
        if v in fwd:
            fwd.update(np.flatnonzero(m[v]).tolist())
    bwd = {n - 1}
    for v in range(n - 1, -1, -1):
        if v in bwd:
            bwd.update(np.flatnonzero(m[:, v]).tolist())
    keep = sorted(fwd & bwd)
    if n - 1 not in fwd:
        return None, None
    return m[np.ix_(keep, keep)].copy(), tuple(ops[k] for k in keep)


# --- records ----------------------------------------------------------------------------------------------


def _numpy_globals() -> dict:
    """What a pickle of numpy arrays and scalars needs, under both numpy 1 and numpy 2 module names."""
    try:
        mod = importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy < 2
        mod = importlib.import_module("numpy.core.multiarray")
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for name in ("_reconstruct", "scalar"):
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            allowed[(module, name)] = getattr(mod, name)
    return allowed


def read_records(path) -> dict:
    """``hash -> (fixed_metrics, computed_metrics)`` from a pickle (restricted: numpy arrays only).

    Args:
      path: the records pickle.

    Returns:
      The records dict (see the module docstring; :func:`records_table` checks it).

    Raises:
      NasjaxInputError: when the file is missing, the pickle needs a global other than numpy's array
        reconstruction, is corrupted, or does not hold a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise NasjaxInputError(f"NAS-Bench-101 records: no file {str(path)!r}")
    where = f"NAS-Bench-101 records {str(path)!r}"
    d = restricted_unpickle(path.read_bytes(), where, _numpy_globals())
    if not isinstance(d, dict):
        raise NasjaxInputError(f"{where}: got {type(d).__name__}, expected a dict")
    return d


def _number(x, field: str, lo: float, hi: float, expected: str) -> float:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise NasjaxInputError(f"{field}: got {shown(x, 60)}, expected {expected}")
    v = float(x)
    if not (np.isfinite(v) and lo <= v <= hi):
        raise NasjaxInputError(f"{field}: got {v!r}, expected {expected}")
    return v


def _record_runs(key, computed, epochs: int) -> tuple[list[float], list[float], list[float]]:
    """(validation %, test %, training time s) per run of one record, every field checked."""
    where = f"record {key!r} computed_metrics"
    if not isinstance(computed, dict):
        raise NasjaxInputError(f"{where}: got {type(computed).__name__}, expected a mapping epochs -> runs")
    if epochs not in computed:
        raise NasjaxInputError(f"record {key!r}: no {epochs}-epoch results (has "
                               f"{sorted(str(k) for k in computed)})")
    rs = computed[epochs]
    if not isinstance(rs, (list, tuple)) or not rs:
        raise NasjaxInputError(f"{where}[{epochs}]: got {shown(rs, 80)}, expected a non-empty list of run dicts")
    val, test, tt = [], [], []
    for r, run in enumerate(rs):
        f = f"{where}[{epochs}][{r}]"
        if not isinstance(run, dict):
            raise NasjaxInputError(f"{f}: got {type(run).__name__}, expected a run dict")
        for k in ("final_validation_accuracy", "final_test_accuracy", "final_training_time"):
            if k not in run:
                raise NasjaxInputError(f"{f}: missing {k!r}")
        val.append(100.0 * _number(run["final_validation_accuracy"], f"{f}.final_validation_accuracy", 0, 1,
                                   "a fraction in [0, 1]"))
        test.append(100.0 * _number(run["final_test_accuracy"], f"{f}.final_test_accuracy", 0, 1,
                                    "a fraction in [0, 1]"))
        tt.append(_number(run["final_training_time"], f"{f}.final_training_time", 0, 1e9, "seconds >= 0"))
    return val, test, tt


@dataclass(frozen=True)
class NB101Records:
    """Columnar records of one epoch budget: row ``r`` is cell ``hashes[r]`` (accuracies in %)."""

    hashes: np.ndarray  # [N] str
    cells: tuple  # [N] Cell
    params: np.ndarray  # [N] trainable parameters
    num_runs: np.ndarray  # [N]
    val_acc: np.ndarray  # [N] final validation accuracy, mean over runs (%)
    test_acc: np.ndarray  # [N] final test accuracy, mean over runs (%)
    train_time: np.ndarray  # [N] final training time, mean over runs (s)
    val_acc_runs: np.ndarray  # [N, R] per run, NaN padded
    epochs: int

    def __len__(self) -> int:
        return len(self.hashes)

    def row_of(self, matrix, ops) -> int:
        """Row of a spec (any isomorphic form); raises when the cell is not in the records.

        Args:
          matrix: the adjacency matrix ``[V, V]`` of the cell (unpruned allowed).
          ops: the op of each vertex (``input``, :data:`OPS` entries, ``output``).

        Returns:
          The first row whose hash equals the cell's.

        Raises:
          NasjaxInputError: when the spec is invalid or its hash is not among the records.
        """
        h = Cell.from_spec(matrix, ops).hash()
        rows = np.flatnonzero(self.hashes == h)
        if not rows.size:
            raise NasjaxInputError(f"cell: hash {h} is not among the {len(self)} records")
        return int(rows[0])


def records_table(records: dict, epochs: int = 108, check_hash: bool = True) -> NB101Records:
    """Columnar view of :func:`read_records` output (one epoch budget), every field checked.

    With ``check_hash`` every key must equal the hash nasjax computes from the stored spec.

    Args:
      records: ``hash -> (fixed_metrics, computed_metrics)`` as read by :func:`read_records`.
      epochs: the epoch budget whose runs are read (108 = the full budget); every record must have it.
      check_hash: whether to recompute and compare each record's hash.

    Returns:
      :class:`NB101Records`: accuracies in % (mean over runs, and per run NaN-padded), training time in s,
      trainable parameters (NaN when absent).

    Raises:
      NasjaxInputError: when ``records`` is not a mapping, or a record is malformed (non-string key, wrong
        tuple, missing spec or run field, accuracy outside [0, 1], negative time, missing epoch budget) or its
        hash differs from its key (naming the record).
    """
    if not isinstance(records, dict):
        raise NasjaxInputError(f"records: got {type(records).__name__}, expected a mapping hash -> record")
    hashes, cells, params, nruns, val, test, tt, runs = [], [], [], [], [], [], [], []
    for key, rec in records.items():
        if not isinstance(key, str):
            raise NasjaxInputError(f"record key {shown(key, 60)}: expected a spec hash string")
        if not (isinstance(rec, (tuple, list)) and len(rec) == 2):
            raise NasjaxInputError(f"record {key!r}: expected (fixed_metrics, computed_metrics)")
        fixed, computed = rec
        if not isinstance(fixed, dict):
            raise NasjaxInputError(f"record {key!r} fixed_metrics: got {type(fixed).__name__}, expected a mapping")
        for f in ("module_adjacency", "module_operations"):
            if f not in fixed:
                raise NasjaxInputError(f"record {key!r}: fixed_metrics lacks {f!r}")
        try:
            cell = Cell.from_spec(fixed["module_adjacency"], fixed["module_operations"])
            h = cell.hash() if check_hash else None
        except NasjaxInputError as e:
            raise NasjaxInputError(f"record {key!r} fixed_metrics: {e}") from None
        if check_hash and h != key:
            raise NasjaxInputError(f"record {key!r}: spec hashes to {h}, expected the record key")
        p = fixed.get("trainable_parameters", np.nan)
        if not (isinstance(p, float) and np.isnan(p)):
            p = _number(p, f"record {key!r} fixed_metrics.trainable_parameters", 0, 1e12, "a count >= 0")
        va, te, ti = _record_runs(key, computed, epochs)
        hashes.append(key)
        cells.append(cell)
        params.append(p)
        nruns.append(len(va))
        val.append(np.mean(va))
        test.append(np.mean(te))
        tt.append(np.mean(ti))
        runs.append(va)
    R = max(nruns) if nruns else 0
    run_arr = np.full((len(runs), R), np.nan)
    for i, va in enumerate(runs):
        run_arr[i, : len(va)] = va
    return NB101Records(
        np.array(hashes), tuple(cells), np.array(params, np.float64), np.array(nruns), np.array(val),
        np.array(test), np.array(tt), run_arr, epochs,
    )
