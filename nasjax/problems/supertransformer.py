"""MathNAS's SuperTransformer problem (HAT, ACL 2020; MathNAS, NeurIPS 2023): BLEU and latency models, exact search.

Predictor (MathNAS's tables, :func:`nasjax.benchmarks.mathnas.supertransformer_arrays`: whole-network BLEU
/ latency with one block varied; deltas against the largest choice), conditional on the decoder depth L --
additive within each depth::

    BLEU(a)    = 26.61 - sum_{i<6} (EA[i,5] - EA[i,e_i]) - sum_{j<L} (DA[j,35] - DA[j,d_j]) - drop(L)
    drop(L)    = DA[L,35] - BLEU_dec(L)  for L < 6 (BLEU_dec = 23.46, 25.31, 25.35, 25.92, 26.14), 0 for L = 6
    lat(a)     = L0(dev) - sum_{i<6} (EL[i,5] - EL[i,e_i]) - g * sum_{j<L} (DL[j,35] - DL[j,d_j]) - s(L)

with L0 = 9200 (raspberrypi), 407.2 (xeon), 274.4 (titanxp) ms (MathNAS's ILP bases). Two latency models:

* ``"additive"`` (default): g = 1, s(L) = 0. The published tables hold no latency measurement for a
  shallower decoder, so a shorter decoder earns no latency credit (the estimate is the latency of
  the same layers inside a 6-layer decoder).
* ``"mathnas_ilp"``: search.py's constraint, verbatim: g = 1.2 and s(L) = 1.2 * (DL[L,35] - BLEU_dec(L))
  -- dataprocess.py writes the decoder-depth *BLEU* values into the *latency* table, so removing
  decoder layers "saves" about one whole network latency (titanxp: L < 6 predicts about -25 ms).

:class:`SuperTransformerModel` holds one branch per decoder depth; ``max BLEU s.t. latency <= T`` is solved
exactly by the ``branched`` searcher. :func:`predict_py_latency` reproduces predict.py's (third, different)
latency formula, which gives about 250 ms for every published titanxp result (68/107/189 ms files): the
published result files do not reproduce under the published tables.
"""

from __future__ import annotations

import numpy as np

from nasjax.benchmarks.mathnas import SUPERTRANSFORMER_ACC, SUPERTRANSFORMER_DEVICES, supertransformer_arrays
from nasjax.constraints import Constraint
from nasjax.errors import NasjaxInputError
from nasjax.problems.mathnas import Problem
from nasjax.search.base import SearchProblem, SearchResult, run_search
from nasjax.search.branched import Branch, BranchedObjective, branch_pareto
from nasjax.spaces import supertransformer as st
from nasjax.tables import Table

BASE_BLEU = 26.61  # BLEU of the all-largest network with 6 decoder layers
DEC_LATENCY_WEIGHT = 1.2  # search.py's factor on decoder latency deltas ("mathnas_ilp" model)
LATENCY_MODELS = ("additive", "mathnas_ilp")


def _branch_table(E, D, L, base, metric, unit, dec_weight=1.0, **kw) -> Table:
    """Table over encoder layers + the first L decoder layers: deltas against the largest choice."""
    v = np.zeros((st.NUM_ENC + L, st.DEC_CHOICES))
    m = np.zeros_like(v, dtype=bool)
    v[: st.NUM_ENC, : st.ENC_CHOICES] = E - E[:, st.ENC_LARGEST : st.ENC_LARGEST + 1]
    m[: st.NUM_ENC, : st.ENC_CHOICES] = True
    v[st.NUM_ENC :] = dec_weight * (D[:L] - D[:L, st.DEC_LARGEST : st.DEC_LARGEST + 1])
    m[st.NUM_ENC :] = True
    return Table(v, m, metric, unit, base=base, sign=1, space=f"supertransformer_L{L}", **kw)


def supertransformer_tables(tables, device: str, latency_model: str = "additive") -> dict[int, tuple[Table, Table]]:
    """The per-depth tables of the module docstring.

    Args:
      tables: a MathNAS-layout directory, reader or mapping (:func:`nasjax.benchmarks.mathnas.read_array`).
      device: ``raspberrypi``, ``xeon`` or ``titanxp``.
      latency_model: ``"additive"`` or ``"mathnas_ilp"``.

    Returns:
      ``{L: (BLEU table, latency table in ms)}`` for ``L = 1..6``, over the 6 + L active layers.
    """
    if latency_model not in LATENCY_MODELS:
        raise NasjaxInputError(f"latency_model: got {latency_model!r}, expected one of {list(LATENCY_MODELS)}")
    EA, DA, depth_bleu, EL, DL = supertransformer_arrays(tables, device)
    L0 = SUPERTRANSFORMER_DEVICES.get(device)
    prov = {"paper": "MathNAS (NeurIPS 2023)", "device": device, "latency_model": latency_model}
    out = {}
    for L in range(1, st.NUM_DEC + 1):
        drop = DA[L, st.DEC_LARGEST] - depth_bleu[L - 1] if L < st.NUM_DEC else 0.0
        bleu = _branch_table(EA, DA, L, BASE_BLEU - drop, "bleu", "BLEU",
                             provenance={**prov, "file": SUPERTRANSFORMER_ACC})
        if latency_model == "additive":
            g, s = 1.0, 0.0
        else:
            g = DEC_LATENCY_WEIGHT
            s = g * (DL[L, st.DEC_LARGEST] - depth_bleu[L - 1]) if L < st.NUM_DEC else 0.0
        lat = _branch_table(EL, DL, L, L0 - s, "latency", "ms", dec_weight=g, device=device,
                            provenance={**prov, "file": f"data/supertransformer/blocklat_{device}.pt"})
        out[L] = (bleu, lat)
    return out


def predict_py_latency(tables, device: str, arch) -> float:
    """Latency (ms) by MathNAS's predict.py formula, for documentation.

    Its base is the last "latency" table cell of the row after the decoder (which dataprocess.py filled
    with a BLEU value), and it omits the last decoder row when L = 6::

        lat = (DL[L', 35] - BLEU_dec'(L')) - sum_{i<6} (EL[i,5] - EL[i,e_i]) - sum_{j<L'} (DL[j,35] - DL[j,d_j])

    with ``L' = L`` for L < 6 and ``L' = 5`` for L = 6 (``BLEU_dec'(0) = 0``).

    Args:
      tables: see :func:`supertransformer_tables`.
      device: the device.
      arch: one ``[13]`` choice vector.

    Returns:
      predict.py's latency in ms.
    """
    a = st.canonical(arch)
    L = st.depth_of(a)
    _, _, depth_bleu, EL, DL = supertransformer_arrays(tables, device)
    stop_col = np.zeros(st.NUM_DEC)
    stop_col[1:] = depth_bleu  # dataprocess.py: row j, column 36 = BLEU of a j-layer decoder (row 0: 0)
    rows = L if L < st.NUM_DEC else st.NUM_DEC - 1
    base = DL[rows, st.DEC_LARGEST] - stop_col[rows]
    enc = sum(EL[i, st.ENC_LARGEST] - EL[i, a[i]] for i in range(st.NUM_ENC))
    dec = sum(DL[j, st.DEC_LARGEST] - DL[j, a[st.NUM_ENC + j]] for j in range(rows))
    return float(base - enc - dec)


def _embed(sub: np.ndarray, L: int) -> np.ndarray:
    a = np.zeros(st.DEPTH_POS + 1, np.int64)
    a[: st.NUM_ENC + L] = sub
    a[st.DEPTH_POS] = L - 1
    return a


def _locate(arch) -> tuple[int, np.ndarray]:
    a = st.canonical(arch)
    L = st.depth_of(a)
    return L - 1, a[: st.NUM_ENC + L]


class SuperTransformerModel:
    """MathNAS's SuperTransformer predictor and exact search (one exact solve per decoder depth).

    Args:
      tables: see :func:`supertransformer_tables`.
      device: ``raspberrypi``, ``xeon`` or ``titanxp``.
      latency_model: ``"additive"`` or ``"mathnas_ilp"`` (module docstring).
    """

    space_name = "supertransformer"

    def __init__(self, tables, device: str, latency_model: str = "additive"):
        self.device = device
        self.latency_model = latency_model
        self.tables = supertransformer_tables(tables, device, latency_model)
        self.space = st.supertransformer_space()
        branches = tuple(Branch(L, st.depth_space(L), b, {"latency": t}, lambda s, L=L: _embed(s, L))
                         for L, (b, t) in self.tables.items())
        self.objective = BranchedObjective(branches, _locate)

    def predict(self, arch) -> dict[str, float]:
        """``{"bleu": BLEU, "latency": ms}`` of one ``[13]`` choice vector.

        Args:
          arch: one SuperTransformer choice vector ``[13]`` (layers beyond the decoder depth are ignored).

        Returns:
          The predicted BLEU and latency (ms) on the model's device.

        Raises:
          NasjaxInputError: when ``arch`` is not a valid choice vector of the space.
        """
        return {"bleu": float(self.objective.predict(arch)),
                "latency": float(self.objective.resource("latency").predict(arch))}

    def search_problem(self, latency: float) -> SearchProblem:
        """``max BLEU s.t. latency <= latency`` (ms) over the whole space.

        Args:
          latency: the latency budget, ms.

        Returns:
          The :class:`~nasjax.search.base.SearchProblem` (branched objective, one latency constraint).
        """
        return SearchProblem(self.space, self.objective,
                             (Constraint(self.objective.resource("latency"), latency, "ms"),),
                             name=f"supertransformer/{self.device}")

    def search(self, latency: float, solver: str = "mckp") -> SearchResult:
        """Exact argmax of predicted BLEU subject to latency <= ``latency`` ms.

        Args:
          latency: the latency budget, ms.
          solver: the exact searcher of each decoder depth (the inner searcher of ``branched``).

        Returns:
          The :class:`~nasjax.search.base.SearchResult`.

        Raises:
          NasjaxInputError: on an unknown solver, or a budget no architecture meets
            (:class:`~nasjax.errors.InfeasibleError`).
        """
        return run_search("branched", self.search_problem(latency), inner=solver)

    def pareto(self) -> list[tuple[np.ndarray, float, float]]:
        """The exact (BLEU, latency) front: ``[(arch, BLEU, latency)]`` sorted by latency."""
        return branch_pareto(self.objective, "latency")

    def problem(self) -> Problem:
        """The nas / predict / pareto problem (HAT SubTransformer configs as the native format)."""
        return Problem(self.space, self.device, self.objective, self.objective.resources, st.arch_to_config,
                       st.config_to_arch, {"branches": list(self.tables)})
