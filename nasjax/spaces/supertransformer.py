"""HAT's SuperTransformer space (Wang et al., ACL 2020; WMT'14 En-De) in MathNAS's block view (NeurIPS 2023).

Native format: a HAT SubTransformer config (yaml), embedding dims fixed at 512 and 6 encoder layers::

    encoder-ffn-embed-dim-all-subtransformer: [6]        1024 | 2048 | 3072
    encoder-self-attention-heads-all-subtransformer: [6] 4 | 8
    decoder-layer-num-subtransformer: L                  1..6
    decoder-ffn-embed-dim-all-subtransformer: [L]        1024 | 2048 | 3072
    decoder-self-attention-heads-all-subtransformer: [L] 4 | 8
    decoder-ende-attention-heads-all-subtransformer: [L] 4 | 8
    decoder-arbitrary-ende-attn-all-subtransformer: [L]  -1 | 1 | 2  (last 1 / 2 / 3 encoder layers)

MathNAS's indices: encoder layer ``c = 2m + n`` (ffn (m+1)*1024, heads (n+1)*4; 6 choices, 5 = largest),
decoder layer ``c = 12w + 6p + 3n + m`` (ende-attn w: 0 -> -1, 1, 2; ende heads (p+1)*4; self heads
(n+1)*4; ffn (m+1)*1024; 36 choices, 35 = largest). The nasjax space ``supertransformer`` has 13
positions: 6 encoder layers, 6 decoder layers, then the decoder depth (choice L-1 for L layers).
Decoder layers at or beyond L are inactive: they are ignored and set to 0 in canonical vectors.

Predictor (MathNAS's tables: whole-network BLEU / latency with one block varied; deltas against the
largest choice), conditional on the decoder depth L -- additive within each depth::

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

:func:`predict_py_latency` reproduces predict.py's (third, different) latency formula, which gives
about 250 ms for every published titanxp result (68/107/189 ms files): the published result files do
not reproduce under the published tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.registry import Registry
from nasjax.search import SearchResult
from nasjax.search.branched import Branch, branch_pareto, branched_problem, solve_branches
from nasjax.spaces.base import SPACES, SearchSpace, product_space
from nasjax.spaces.supervit import check_keys, int_list, read_array
from nasjax.tables import Table

NUM_ENC = 6
NUM_DEC = 6
ENC_CHOICES = 6
DEC_CHOICES = 36
ENC_LARGEST = ENC_CHOICES - 1
DEC_LARGEST = DEC_CHOICES - 1
FFN = (1024, 2048, 3072)
HEADS = (4, 8)
ENDE_ATTN = (-1, 1, 2)
EMBED_DIM = 512
BASE_BLEU = 26.61
DECODER_DEPTH_BLEU = (23.46, 25.31, 25.35, 25.92, 26.14)  # decoders of 1..5 layers
DEC_LATENCY_WEIGHT = 1.2  # search.py's factor on decoder latency deltas ("mathnas_ilp" model)
BLOCK_ACC = "data/supertransformer/blockacc.pt"

DEVICES: Registry = Registry("supertransformer device")
for _dev, _base in (("raspberrypi", 9200.0), ("xeon", 407.2), ("titanxp", 274.4)):
    DEVICES.add(_dev, _base)
LATENCY_MODELS = ("additive", "mathnas_ilp")

K_ENC = "encoder-ffn-embed-dim-all-subtransformer"
K_ENC_HEADS = "encoder-self-attention-heads-all-subtransformer"
K_DEC_FFN = "decoder-ffn-embed-dim-all-subtransformer"
K_DEC_HEADS = "decoder-self-attention-heads-all-subtransformer"
K_DEC_ENDE = "decoder-ende-attention-heads-all-subtransformer"
K_DEC_ARB = "decoder-arbitrary-ende-attn-all-subtransformer"
K_ENC_DIM = "encoder-embed-dim-subtransformer"
K_DEC_DIM = "decoder-embed-dim-subtransformer"
K_ENC_NUM = "encoder-layer-num-subtransformer"
K_DEC_NUM = "decoder-layer-num-subtransformer"
YML_KEYS = (K_ENC_DIM, K_DEC_DIM, K_ENC, K_DEC_FFN, K_ENC_NUM, K_DEC_NUM, K_ENC_HEADS, K_DEC_HEADS, K_DEC_ENDE,
            K_DEC_ARB)
DEPTH_POS = NUM_ENC + NUM_DEC


def enc_choice(ffn: int, heads: int) -> int:
    return 2 * FFN.index(ffn) + HEADS.index(heads)


def enc_decode(c: int) -> tuple[int, int]:
    """-> (ffn dim, self-attention heads)."""
    return FFN[c // 2], HEADS[c % 2]


def dec_choice(arb: int, ende_heads: int, self_heads: int, ffn: int) -> int:
    return 12 * ENDE_ATTN.index(arb) + 6 * HEADS.index(ende_heads) + 3 * HEADS.index(self_heads) + FFN.index(ffn)


def dec_decode(c: int) -> tuple[int, int, int, int]:
    """-> (arbitrary ende-attn, ende heads, self heads, ffn dim)."""
    return ENDE_ATTN[c // 12], HEADS[(c % 12) // 6], HEADS[(c % 6) // 3], FFN[c % 3]


@SPACES.register("supertransformer")
def supertransformer_space() -> SearchSpace:
    enc = [f"ffn{f},h{h}" for f, h in (enc_decode(c) for c in range(ENC_CHOICES))]
    dec = [f"arb{a},ende{p},self{n},ffn{m}" for a, p, n, m in (dec_decode(c) for c in range(DEC_CHOICES))]
    positions = [f"encoder layer {i + 1}" for i in range(NUM_ENC)] + [f"decoder layer {j + 1}" for j in range(NUM_DEC)]
    positions.append("decoder layers")
    choices = [enc] * NUM_ENC + [dec] * NUM_DEC + [[f"L{d}" for d in range(1, NUM_DEC + 1)]]
    return product_space("supertransformer", positions, choices, branch_position=DEPTH_POS)


def depth_of(arch) -> int:
    return int(np.asarray(arch)[DEPTH_POS]) + 1


def canonical(arch) -> np.ndarray:
    """Validated copy with inactive decoder layers (index >= L) set to 0."""
    a = supertransformer_space().validate(arch).copy()
    if a.ndim != 1:
        raise NasjaxInputError(f"arch: shape {a.shape}, expected one architecture of {DEPTH_POS + 1} positions")
    a[NUM_ENC + depth_of(a) : DEPTH_POS] = 0
    return a


# --- codec ------------------------------------------------------------------------------------
def _int_field(d: Mapping, key: str, allowed) -> int:
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) not in allowed:
        raise NasjaxInputError(f"arch.{key}: got {v!r}, expected one of {list(allowed)}")
    return int(v)


def config_to_arch(d: Any) -> np.ndarray:
    """HAT SubTransformer config -> ``supertransformer`` choice vector ``[13]`` (canonical)."""
    check_keys(d, YML_KEYS, f"the HAT SubTransformer keys {list(YML_KEYS)}")
    _int_field(d, K_ENC_DIM, (EMBED_DIM,))
    _int_field(d, K_DEC_DIM, (EMBED_DIM,))
    _int_field(d, K_ENC_NUM, (NUM_ENC,))
    L = _int_field(d, K_DEC_NUM, range(1, NUM_DEC + 1))
    ffn = int_list(d, K_ENC, NUM_ENC, FFN)
    heads = int_list(d, K_ENC_HEADS, NUM_ENC, HEADS)
    dffn = int_list(d, K_DEC_FFN, L, FFN)
    dheads = int_list(d, K_DEC_HEADS, L, HEADS)
    ende = int_list(d, K_DEC_ENDE, L, HEADS)
    arb = int_list(d, K_DEC_ARB, L, ENDE_ATTN)
    a = np.zeros(DEPTH_POS + 1, np.int64)
    a[:NUM_ENC] = [enc_choice(f, h) for f, h in zip(ffn, heads)]
    a[NUM_ENC : NUM_ENC + L] = [dec_choice(w, p, n, m) for w, p, n, m in zip(arb, ende, dheads, dffn)]
    a[DEPTH_POS] = L - 1
    return a


def arch_to_config(arch) -> dict:
    """``supertransformer`` choice vector ``[13]`` -> HAT SubTransformer config (MathNAS's yml keys)."""
    a = canonical(arch)
    L = depth_of(a)
    enc = [enc_decode(int(c)) for c in a[:NUM_ENC]]
    dec = [dec_decode(int(c)) for c in a[NUM_ENC : NUM_ENC + L]]
    return {
        K_ENC_DIM: EMBED_DIM,
        K_DEC_DIM: EMBED_DIM,
        K_ENC: [f for f, _ in enc],
        K_DEC_FFN: [x[3] for x in dec],
        K_ENC_NUM: NUM_ENC,
        K_DEC_NUM: L,
        K_ENC_HEADS: [h for _, h in enc],
        K_DEC_HEADS: [x[2] for x in dec],
        K_DEC_ENDE: [x[1] for x in dec],
        K_DEC_ARB: [x[0] for x in dec],
    }


# --- tables -----------------------------------------------------------------------------------
def _raw(tables, device: str | None):
    """``(EA [6,6], DA [6,36], BLEU_dec [5], EL [6,6] | None, DL [6,36] | None)``."""
    acc = read_array(tables, BLOCK_ACC).reshape(-1)
    n_acc = NUM_ENC * ENC_CHOICES + NUM_DEC * DEC_CHOICES + len(DECODER_DEPTH_BLEU)
    if acc.size != n_acc:
        raise NasjaxInputError(f"tables[{BLOCK_ACC!r}]: {acc.size} values, expected {n_acc} = 36 + 216 + 5")
    ne = NUM_ENC * ENC_CHOICES
    EA = acc[:ne].reshape(NUM_ENC, ENC_CHOICES)
    DA = acc[ne : ne + NUM_DEC * DEC_CHOICES].reshape(NUM_DEC, DEC_CHOICES)
    depth_bleu = acc[ne + NUM_DEC * DEC_CHOICES :]
    if device is None:
        return EA, DA, depth_bleu, None, None
    DEVICES.get(device)
    rel = f"data/supertransformer/blocklat_{device}.pt"
    lat = read_array(tables, rel).reshape(-1)
    if lat.size != ne + NUM_DEC * DEC_CHOICES:
        raise NasjaxInputError(f"tables[{rel!r}]: {lat.size} values, expected {ne + NUM_DEC * DEC_CHOICES} = 36 + 216")
    return EA, DA, depth_bleu, lat[:ne].reshape(NUM_ENC, ENC_CHOICES), lat[ne:].reshape(NUM_DEC, DEC_CHOICES)


def _branch_table(E, D, L, base, metric, unit, dec_weight=1.0, **kw) -> Table:
    """Table over encoder layers + the first L decoder layers: deltas against the largest choice."""
    v = np.zeros((NUM_ENC + L, DEC_CHOICES))
    m = np.zeros_like(v, dtype=bool)
    v[:NUM_ENC, :ENC_CHOICES] = E - E[:, ENC_LARGEST : ENC_LARGEST + 1]
    m[:NUM_ENC, :ENC_CHOICES] = True
    v[NUM_ENC:] = dec_weight * (D[:L] - D[:L, DEC_LARGEST : DEC_LARGEST + 1])
    m[NUM_ENC:] = True
    return Table(v, m, metric, unit, base=base, sign=1, space=f"supertransformer_L{L}", **kw)


def supertransformer_tables(tables, device: str, latency_model: str = "additive") -> dict[int, tuple[Table, Table]]:
    """Per decoder depth L (1..6): ``(BLEU table, latency table in ms)`` over the 6 + L active layers."""
    if latency_model not in LATENCY_MODELS:
        raise NasjaxInputError(f"latency_model: got {latency_model!r}, expected one of {list(LATENCY_MODELS)}")
    EA, DA, depth_bleu, EL, DL = _raw(tables, device)
    L0 = DEVICES.get(device)
    prov = {"paper": "MathNAS (NeurIPS 2023)", "device": device, "latency_model": latency_model}
    out = {}
    for L in range(1, NUM_DEC + 1):
        drop = DA[L, DEC_LARGEST] - depth_bleu[L - 1] if L < NUM_DEC else 0.0
        bleu = _branch_table(EA, DA, L, BASE_BLEU - drop, "bleu", "BLEU", provenance={**prov, "file": BLOCK_ACC})
        if latency_model == "additive":
            g, s = 1.0, 0.0
        else:
            g = DEC_LATENCY_WEIGHT
            s = g * (DL[L, DEC_LARGEST] - depth_bleu[L - 1]) if L < NUM_DEC else 0.0
        lat = _branch_table(EL, DL, L, L0 - s, "latency", "ms", dec_weight=g, device=device,
                            provenance={**prov, "file": f"data/supertransformer/blocklat_{device}.pt"})
        out[L] = (bleu, lat)
    return out


def predict_py_latency(tables, device: str, arch) -> float:
    """Latency (ms) by MathNAS's predict.py formula, for documentation: its base is the last
    "latency" table cell of the row after the decoder (which dataprocess.py filled with a BLEU value),
    and it omits the last decoder row when L = 6."""
    a = canonical(arch)
    L = depth_of(a)
    _, _, depth_bleu, EL, DL = _raw(tables, device)
    stop_col = np.zeros(NUM_DEC)
    stop_col[1:] = depth_bleu  # dataprocess.py: row j, column 36 = BLEU of a j-layer decoder (row 0: 0)
    if L < NUM_DEC:
        base, rows = DL[L, DEC_LARGEST] - stop_col[L], L
    else:
        base, rows = DL[NUM_DEC - 1, DEC_LARGEST] - stop_col[NUM_DEC - 1], NUM_DEC - 1
    enc = sum(EL[i, ENC_LARGEST] - EL[i, a[i]] for i in range(NUM_ENC))
    dec = sum(DL[j, DEC_LARGEST] - DL[j, a[NUM_ENC + j]] for j in range(rows))
    return float(base - enc - dec)


# --- the SuperTransformer model ---------------------------------------------------------------
class SuperTransformerModel:
    """MathNAS's SuperTransformer predictor and exact search (one exact solve per decoder depth)."""

    space_name = "supertransformer"

    def __init__(self, tables, device: str, latency_model: str = "additive"):
        self.device = device
        self.latency_model = latency_model
        self.tables = supertransformer_tables(tables, device, latency_model)
        self.space = supertransformer_space()
        self._ilp_cache: dict = {}

    def branches(self) -> list[Branch]:
        def embed(sub, L):
            a = np.zeros(DEPTH_POS + 1, np.int64)
            a[: NUM_ENC + L] = sub
            a[DEPTH_POS] = L - 1
            return a

        return [Branch(L, b, {"latency": t}, lambda s, L=L: embed(s, L)) for L, (b, t) in self.tables.items()]

    def predict(self, arch) -> dict[str, float]:
        """``{"bleu": BLEU, "latency": ms}`` of one ``[13]`` choice vector."""
        a = canonical(arch)
        L = depth_of(a)
        bleu, lat = self.tables[L]
        sub = a[: NUM_ENC + L]
        return {"bleu": float(bleu.predict(sub)), "latency": float(lat.predict(sub))}

    def search(self, latency: float, solver: str = "mckp") -> SearchResult:
        """Exact argmax of predicted BLEU subject to latency <= ``latency`` ms."""
        return solve_branches(self.branches(), {"latency": (latency, "ms")}, solver, self._ilp_cache)

    def pareto(self):
        return branch_pareto(self.branches(), "latency")

    def problem(self):
        return branched_problem(self, arch_to_config, config_to_arch, device=self.device)
