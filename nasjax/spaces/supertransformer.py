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

The tables are read by :func:`nasjax.benchmarks.mathnas.supertransformer_arrays`; the predictor (additive
once the decoder depth is fixed), its latency models and its exact search are
:class:`nasjax.problems.supertransformer.SuperTransformerModel`. This module is the codec only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.spaces.base import SPACES, SearchSpace, product_space
from nasjax.spaces.supervit import check_keys, int_list

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
    """The choice index of an encoder layer (the inverse of :func:`enc_decode`).

    c = 2 * FFN.index(ffn) + HEADS.index(heads)

    Args:
      ffn: the feed-forward dimension, one of :data:`FFN`.
      heads: the self-attention heads, one of :data:`HEADS`.

    Returns:
      The choice index in ``0..ENC_CHOICES - 1``.

    Raises:
      ValueError: when a value is not among the allowed ones.
    """
    return 2 * FFN.index(ffn) + HEADS.index(heads)


def enc_decode(c: int) -> tuple[int, int]:
    """The (ffn dim, self-attention heads) of encoder-layer choice ``c`` (the inverse of :func:`enc_choice`).

    Args:
      c: the choice index in ``0..ENC_CHOICES - 1``.

    Returns:
      ``(FFN[c // 2], HEADS[c % 2])``.
    """
    return FFN[c // 2], HEADS[c % 2]


def dec_choice(arb: int, ende_heads: int, self_heads: int, ffn: int) -> int:
    """The choice index of a decoder layer (the inverse of :func:`dec_decode`).

    c = 12 * ENDE_ATTN.index(arb) + 6 * HEADS.index(ende_heads) + 3 * HEADS.index(self_heads) + FFN.index(ffn)

    Args:
      arb: the arbitrary encoder-decoder attention setting, one of :data:`ENDE_ATTN`.
      ende_heads: the encoder-decoder attention heads, one of :data:`HEADS`.
      self_heads: the self-attention heads, one of :data:`HEADS`.
      ffn: the feed-forward dimension, one of :data:`FFN`.

    Returns:
      The choice index in ``0..DEC_CHOICES - 1``.

    Raises:
      ValueError: when a value is not among the allowed ones.
    """
    return 12 * ENDE_ATTN.index(arb) + 6 * HEADS.index(ende_heads) + 3 * HEADS.index(self_heads) + FFN.index(ffn)


def dec_decode(c: int) -> tuple[int, int, int, int]:
    """The (arbitrary ende-attn, ende heads, self heads, ffn dim) of decoder-layer choice ``c``.

    The inverse of :func:`dec_choice`.

    Args:
      c: the choice index in ``0..DEC_CHOICES - 1``.

    Returns:
      ``(ENDE_ATTN[c // 12], HEADS[(c % 12) // 6], HEADS[(c % 6) // 3], FFN[c % 3])``.
    """
    return ENDE_ATTN[c // 12], HEADS[(c % 12) // 6], HEADS[(c % 6) // 3], FFN[c % 3]


@SPACES.register("supertransformer")
def supertransformer_space() -> SearchSpace:
    """HAT's SuperTransformer space: 6 encoder layers, 6 decoder layers, then the decoder depth (13 positions)."""
    enc = [f"ffn{f},h{h}" for f, h in (enc_decode(c) for c in range(ENC_CHOICES))]
    dec = [f"arb{a},ende{p},self{n},ffn{m}" for a, p, n, m in (dec_decode(c) for c in range(DEC_CHOICES))]
    positions = [f"encoder layer {i + 1}" for i in range(NUM_ENC)] + [f"decoder layer {j + 1}" for j in range(NUM_DEC)]
    positions.append("decoder layers")
    choices = [enc] * NUM_ENC + [dec] * NUM_DEC + [[f"L{d}" for d in range(1, NUM_DEC + 1)]]
    return product_space("supertransformer", positions, choices, branch_position=DEPTH_POS)


def depth_of(arch) -> int:
    """The decoder depth ``L`` of a choice vector (its depth position's choice + 1).

    Args:
      arch: one choice vector ``[13]`` (not validated).

    Returns:
      ``L`` in ``1..NUM_DEC``.
    """
    return int(np.asarray(arch)[DEPTH_POS]) + 1


def canonical(arch) -> np.ndarray:
    """Validated copy with inactive decoder layers (index >= L) set to 0.

    Args:
      arch: one choice vector ``[13]``.

    Returns:
      The canonical int64 copy.

    Raises:
      NasjaxInputError: when ``arch`` is not one valid choice vector of the space.
    """
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
    """HAT SubTransformer config -> ``supertransformer`` choice vector ``[13]`` (canonical).

    Args:
      d: the config mapping with the HAT SubTransformer keys (:data:`YML_KEYS`; nasjax's result keys ignored).

    Returns:
      int64 ``[13]``: 6 encoder choices, 6 decoder choices (zero beyond the depth), the depth choice.

    Raises:
      NasjaxInputError: on a missing or unknown key, an embedding size or encoder count other than the space's,
        a decoder depth outside ``1..NUM_DEC``, or a list of the wrong length or with a value not allowed.
    """
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
    """``supertransformer`` choice vector ``[13]`` -> HAT SubTransformer config (MathNAS's yml keys).

    Args:
      arch: one choice vector ``[13]``.

    Returns:
      The config dict (decoder lists of the decoder's depth).

    Raises:
      NasjaxInputError: when ``arch`` is not one valid choice vector of the space.
    """
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


def depth_space(depth: int) -> SearchSpace:
    """The positions active with a ``depth``-layer decoder: the 6 encoder layers and decoder layers 1..depth.

    Args:
      depth: the decoder depth, ``1..NUM_DEC``.

    Returns:
      The :class:`~nasjax.spaces.base.SearchSpace` ``supertransformer_L<depth>``.

    Raises:
      NasjaxInputError: when ``depth`` is not an integer in ``1..NUM_DEC``.
    """
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or not 1 <= depth <= NUM_DEC:
        raise NasjaxInputError(f"depth: got {depth!r}, expected a decoder depth in 1..{NUM_DEC}")
    full = supertransformer_space()
    return product_space(f"supertransformer_L{depth}", full.positions[: NUM_ENC + depth],
                         full.choices[: NUM_ENC + depth])
