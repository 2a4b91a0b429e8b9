"""The HardCoRe-NAS / BINAS space (Nayman et al., ICML 2021; arXiv 2110.12399) and its timm block-string codec.

A MobileNetV3-like network: a stem (3x3 conv, stride 2, 32 channels, h-swish), a fixed first block
(``ds_r1_k3_s1_e1_c16_nre``), five elastic stages and a head (``cn_r1_k1_s1_c960``, then a 1280-wide
conv head and the classifier). Stage ``s`` has an output width, a first-layer stride and an activation
(24 s2 ReLU, 40 s2 ReLU, 80 s2 h-swish, 112 s1 h-swish, 192 s2 h-swish), a depth ``d_s in {2, 3, 4}`` and
up to four inverted-residual layers, each one of 12 configurations (expansion 3/4/6 x kernel 3/5 x SE
off/0.25), indexed as BINAS indexes them: ``c = 4 * e_index + 2 * k_index + se_index``.

An architecture is 25 choice indices in BINAS's ``logits`` order: ``[stage 1 depth, stage 1 layer 1..4,
stage 2 depth, ...]`` (a depth index ``0..2`` stands for depth 2..4). Layers beyond their stage's depth
are inactive; :func:`canonical` sets them to configuration 0, and :func:`from_string` always returns
canonical vectors. :func:`encode` gives BINAS's one-hot encoding (alpha per layer, beta per stage) with
the alpha of inactive layers zeroed, so that a model of it only counts a layer when its stage is deep
enough to contain it. :class:`BinasStructure` describes the network as data (widths, strides,
activations, resolutions, SE options) for whoever builds a supernet or a latency table of it; a smaller
structure (fewer stages or configurations) gives a reduced space of the same kind.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.spaces.base import SPACES, SearchSpace, product_space

EXPANSIONS = (3, 4, 6)
KERNELS = (3, 5)
SE_RATIOS = (0.0, 0.25)
DEPTHS = (2, 3, 4)


@dataclass(frozen=True)
class StageSpec:
    """One elastic stage: output ``channels``, the ``stride`` of its first layer, ``act`` ("relu"/"hswish")."""

    channels: int
    stride: int
    act: str


@dataclass(frozen=True)
class LayerConfig:
    """One layer configuration: expansion ratio, depthwise kernel, squeeze-excite ratio (0 = off)."""

    expansion: int
    kernel: int
    se: float

    @property
    def label(self) -> str:
        """``"e<expansion>_k<kernel>"`` plus ``"_se<ratio>"`` with squeeze-excite."""
        return f"e{self.expansion}_k{self.kernel}" + (f"_se{self.se:g}" if self.se else "")


STAGES = (StageSpec(24, 2, "relu"), StageSpec(40, 2, "relu"), StageSpec(80, 2, "hswish"),
          StageSpec(112, 1, "hswish"), StageSpec(192, 2, "hswish"))
CONFIGS = tuple(LayerConfig(e, k, se) for e in EXPANSIONS for k in KERNELS for se in SE_RATIOS)


@dataclass(frozen=True)
class BinasStructure:
    """The network of a BINAS space as data.

    Attributes:
      stages: the elastic stages.
      configs: the layer configurations, in choice-index order.
      depths: the depth choices of every stage (ascending).
      stem_channels, first_channels, head_channels, num_features: widths of the fixed parts (stem conv,
        the ``ds`` block, the ``cn`` head block, the conv head).
      resolution: the input resolution the per-layer resolutions refer to.
    """

    stages: tuple[StageSpec, ...] = STAGES
    configs: tuple[LayerConfig, ...] = CONFIGS
    depths: tuple[int, ...] = DEPTHS
    stem_channels: int = 32
    first_channels: int = 16
    head_channels: int = 960
    num_features: int = 1280
    resolution: int = 224
    _index: dict = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if not self.stages or any(s.act not in ("relu", "hswish") or s.stride not in (1, 2) for s in self.stages):
            raise NasjaxInputError(f"binas structure: stages {self.stages!r}, expected stages with act relu/hswish "
                                   "and stride 1 or 2")
        if list(self.depths) != sorted(set(self.depths)) or self.depths[0] < 1:
            raise NasjaxInputError(f"binas structure: depths {self.depths!r}, expected distinct ascending depths >= 1")
        if len(set(self.configs)) != len(self.configs) or not self.configs:
            raise NasjaxInputError("binas structure: configs must be distinct and non-empty")
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(self.configs)})

    # --- shape -------------------------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        """``S``, the number of elastic stages."""
        return len(self.stages)

    @property
    def max_depth(self) -> int:
        """The largest depth choice (layers per stage)."""
        return self.depths[-1]

    @property
    def num_layers(self) -> int:
        """``L = S * max_depth``, the number of elastic layers."""
        return self.num_stages * self.max_depth

    @property
    def num_configs(self) -> int:
        """``K``, the number of layer configurations."""
        return len(self.configs)

    def depth_position(self, s: int) -> int:
        """Position of stage ``s``'s depth in the choice vector.

        position = s * (1 + max_depth)

        Args:
          s: the stage index (0-based).

        Returns:
          The position index in the choice vector.
        """
        return s * (1 + self.max_depth)

    def layer_position(self, s: int, j: int) -> int:
        """Position of layer ``j`` (0-based) of stage ``s``.

        position = s * (1 + max_depth) + 1 + j

        Args:
          s: the stage index (0-based).
          j: the layer index within the stage (0-based, ``< max_depth``).

        Returns:
          The position index in the choice vector.
        """
        return s * (1 + self.max_depth) + 1 + j

    @property
    def depth_positions(self) -> np.ndarray:
        """``[S]`` positions of the stages' depths in the choice vector."""
        return np.array([self.depth_position(s) for s in range(self.num_stages)], np.int64)

    @property
    def layer_positions(self) -> np.ndarray:
        """``[L]`` positions of the layers, stage-major (BINAS's alpha order)."""
        return np.array([self.layer_position(s, j) for s in range(self.num_stages) for j in range(self.max_depth)],
                        np.int64)

    @property
    def layer_stage(self) -> np.ndarray:
        """``[L]`` stage of each layer."""
        return np.repeat(np.arange(self.num_stages), self.max_depth)

    @property
    def layer_index(self) -> np.ndarray:
        """``[L]`` index of each layer within its stage (0-based)."""
        return np.tile(np.arange(self.max_depth), self.num_stages)

    @property
    def layer_needs(self) -> np.ndarray:
        """``[L, D]`` bool: layer ``l`` is active when its stage has depth choice ``d`` (``l < depths[d]``)."""
        return self.layer_index[:, None] < np.asarray(self.depths)[None, :]

    def config_index(self, expansion, kernel, se) -> int | None:
        """The choice index of a layer configuration, or ``None`` when the structure has no such configuration.

        Args:
          expansion: the expansion ratio (e.g. 3, 4, 6).
          kernel: the depthwise kernel size (e.g. 3, 5).
          se: the squeeze-excite ratio (0 = off).

        Returns:
          The index into ``configs``, or ``None``.
        """
        return self._index.get(LayerConfig(int(expansion), int(kernel), float(se)))

    def config_factors(self) -> tuple[np.ndarray, list[str]]:
        """The layer configurations as their attributes: one-hot expansion, kernel and squeeze-excite values.

        Row ``c`` of ``M`` marks configuration ``c``'s expansion, kernel and SE ratio, so ``alpha @ M`` turns
        one-hot configurations into per-layer attribute indicators (a model on them has one term per
        attribute value rather than one per configuration: 3 + 2 + 2 instead of 3 x 2 x 2 here).

        Returns:
          ``(M [K, F] float64, labels [F])``, labels like ``"e3"``, ``"k5"``, ``"se0.25"`` (``"se0"``: SE off).
        """
        cols = ([("e", c.expansion) for c in self.configs] + [("k", c.kernel) for c in self.configs]
                + [("se", c.se) for c in self.configs])
        values = sorted(set(cols), key=lambda t: (("e", "k", "se").index(t[0]), t[1]))
        attr = {"e": lambda c: c.expansion, "k": lambda c: c.kernel, "se": lambda c: c.se}
        M = np.array([[attr[a](c) == v for a, v in values] for c in self.configs], np.float64)
        return M, [f"{a}{v:g}" for a, v in values]

    # --- description as data ------------------------------------------------------------------
    def layers(self) -> list[dict]:
        """Every elastic layer: stage, index, input/output channels, stride, input resolution, activation."""
        out, cin, res = [], self.first_channels, self.resolution // 2
        for s, st in enumerate(self.stages):
            for j in range(self.max_depth):
                stride = st.stride if j == 0 else 1
                out.append({"stage": s, "layer": j, "in_channels": cin, "out_channels": st.channels,
                            "stride": stride, "resolution": res, "act": st.act})
                res //= stride
                cin = st.channels
        return out

    @classmethod
    def from_dict(cls, d: dict) -> BinasStructure:
        """The inverse of :meth:`to_dict` (reads its stages, configs, depths and fixed widths).

        Args:
          d: a dict as written by :meth:`to_dict` (the depths are read from the first stage).

        Returns:
          The structure.

        Raises:
          NasjaxInputError: when a key is missing or a value is of the wrong type, or the structure is invalid.
        """
        try:
            stages = tuple(StageSpec(int(s["channels"]), int(s["stride"]), str(s["act"])) for s in d["stages"])
            return cls(stages=stages,
                       configs=tuple(LayerConfig(int(c["expansion"]), int(c["kernel"]), float(c["se"]))
                                     for c in d["configs"]),
                       depths=tuple(int(x) for x in d["stages"][0]["depths"]),
                       stem_channels=int(d["stem"]["channels"]), first_channels=int(d["first_block"]["channels"]),
                       head_channels=int(d["head"]["channels"]), num_features=int(d["head"]["num_features"]),
                       resolution=int(d["resolution"]))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise NasjaxInputError(f"binas structure: {e!r}; expected the dict written by BinasStructure.to_dict"
                                   ) from None

    def to_dict(self) -> dict:
        """The structure as plain data (what a supernet builder needs)."""
        return {
            "stem": {"kernel": 3, "stride": 2, "channels": self.stem_channels, "act": "hswish"},
            "first_block": {"type": "ds", "kernel": 3, "stride": 1, "channels": self.first_channels, "act": "relu"},
            "stages": [{"channels": s.channels, "stride": s.stride, "act": s.act, "depths": list(self.depths)}
                       for s in self.stages],
            "configs": [{"expansion": c.expansion, "kernel": c.kernel, "se": c.se} for c in self.configs],
            "se_layer": {"gate": "hard_sigmoid", "act": "relu", "round_to": 8},
            "head": {"type": "cn", "channels": self.head_channels, "act": "hswish", "num_features": self.num_features},
            "resolution": self.resolution,
            "layers": self.layers(),
        }


DEFAULT = BinasStructure()


@SPACES.register("binas")
def binas_space(structure: BinasStructure | None = None) -> SearchSpace:
    """The BINAS space of ``structure`` (default: HardCoRe-NAS's 5 stages x depth 2-4 x 12 configurations).

    Args:
      structure: the :class:`BinasStructure`, or ``None`` for :data:`DEFAULT`.

    Returns:
      The ``"binas"`` space: per stage a depth position (``d2``...) then ``max_depth`` layer positions (the
      configurations' labels); the structure is kept in ``meta["structure"]``.
    """
    st = structure or DEFAULT
    positions, choices = [], []
    for s in range(st.num_stages):
        positions.append(f"stage {s + 1} depth")
        choices.append([f"d{d}" for d in st.depths])
        for j in range(st.max_depth):
            positions.append(f"stage {s + 1} layer {j + 1}")
            choices.append([c.label for c in st.configs])
    return product_space("binas", positions, choices, structure=st)


def structure_of(space: SearchSpace) -> BinasStructure:
    """The :class:`BinasStructure` of a BINAS space (an error for any other space).

    Args:
      space: a space built by :func:`binas_space`.

    Returns:
      Its structure.

    Raises:
      NasjaxInputError: when ``space`` is not a BINAS space.
    """
    st = space.meta.get("structure") if isinstance(space, SearchSpace) else None
    if not isinstance(st, BinasStructure) or space.name != "binas":
        raise NasjaxInputError(f"space: got {getattr(space, 'name', space)!r}, expected a BINAS space "
                               "(nasjax.spaces.binas.binas_space)")
    return st


# --------------------------------------------------------------------------------------------------
# choice vectors: depths, activity, canonical form, BINAS's one-hot encoding


def depth_choices(archs, st: BinasStructure = DEFAULT) -> np.ndarray:
    """``[N, S]`` depth choice index of every stage.

    Args:
      archs: choice vectors ``[P]`` or ``[N, P]`` of the space of ``st`` (not validated).
      st: the structure of the space.

    Returns:
      int64 depth choice indices ``[N, S]`` (index ``d`` stands for depth ``st.depths[d]``).
    """
    return np.atleast_2d(np.asarray(archs, np.int64))[:, st.depth_positions]


def layer_choices(archs, st: BinasStructure = DEFAULT) -> np.ndarray:
    """``[N, L]`` configuration index of every layer (active or not).

    Args:
      archs: choice vectors ``[P]`` or ``[N, P]`` of the space of ``st`` (not validated).
      st: the structure of the space.

    Returns:
      int64 configuration indices ``[N, L]``, stage-major.
    """
    return np.atleast_2d(np.asarray(archs, np.int64))[:, st.layer_positions]


def active(archs, st: BinasStructure = DEFAULT) -> np.ndarray:
    """``[N, L]`` bool: layer ``l`` is active (``l < depth`` of its stage).

    Args:
      archs: choice vectors ``[P]`` or ``[N, P]`` of the space of ``st`` (not validated).
      st: the structure of the space.

    Returns:
      bool ``[N, L]``, stage-major.
    """
    d = depth_choices(archs, st)[:, st.layer_stage]  # [N, L]
    return st.layer_needs[np.arange(st.num_layers)[None, :], d]


def canonical(archs, st: BinasStructure = DEFAULT) -> np.ndarray:
    """The architectures with every inactive layer set to configuration 0 (same shape as given).

    Args:
      archs: choice vectors ``[P]`` or ``[N, P]`` of the space of ``st`` (not validated); not modified.
      st: the structure of the space.

    Returns:
      A new int64 array of the shape of ``archs``.
    """
    a = np.array(archs, np.int64, copy=True)
    a2 = np.atleast_2d(a)
    lay = a2[:, st.layer_positions]
    a2[:, st.layer_positions] = np.where(active(a2, st), lay, 0)
    return a2.reshape(a.shape)


def encode(archs, st: BinasStructure = DEFAULT) -> tuple[np.ndarray, np.ndarray]:
    """BINAS's one-hot encoding of a batch of architectures.

    Args:
      archs: choice vectors ``[P]`` or ``[N, P]`` of the space of ``st`` (not validated).
      st: the structure of the space.

    Returns:
      ``(alpha [N, L, K], beta [N, S, D])`` float64: ``alpha[n, l, c] = 1`` iff layer ``l`` is active and
      has configuration ``c`` (an inactive layer's row is zero); ``beta[n, s, d] = 1`` iff stage ``s`` has
      depth choice ``d``.
    """
    a = np.atleast_2d(np.asarray(archs, np.int64))
    lay, dep = layer_choices(a, st), depth_choices(a, st)
    alpha = (lay[..., None] == np.arange(st.num_configs)) & active(a, st)[..., None]
    beta = dep[..., None] == np.arange(len(st.depths))
    return alpha.astype(np.float64), beta.astype(np.float64)


def features(archs, st: BinasStructure = DEFAULT) -> np.ndarray:
    """``[N, L*K + S*D]`` flat ``[alpha, beta]`` of :func:`encode` (BINAS's predictor input order).

    Args:
      archs: choice vectors ``[P]`` or ``[N, P]`` of the space of ``st`` (not validated).
      st: the structure of the space.

    Returns:
      float64 ``[N, L*K + S*D]``: the one-hot ``alpha`` (inactive layers zero) flattened, then ``beta``.
    """
    alpha, beta = encode(archs, st)
    return np.concatenate([alpha.reshape(len(alpha), -1), beta.reshape(len(beta), -1)], axis=1)


# --------------------------------------------------------------------------------------------------
# timm block strings


def block_string(st: BinasStructure, s: int, j: int, c: int) -> str:
    """Layer ``j`` of stage ``s`` with configuration ``c`` as a timm block string.

    Args:
      st: the structure.
      s: the stage index (0-based).
      j: the layer index within the stage (0-based); only layer 0 has the stage's stride.
      c: the configuration index.

    Returns:
      E.g. ``"ir_r1_k5_s2_e3_c24_nre"`` (``_nre`` for ReLU stages, ``_se0.25`` with squeeze-excite).
    """
    stage, cfg = st.stages[s], st.configs[c]
    stride = stage.stride if j == 0 else 1
    text = f"ir_r1_k{cfg.kernel}_s{stride}_e{cfg.expansion}_c{stage.channels}"
    if stage.act == "relu":
        text += "_nre"
    if cfg.se:
        text += f"_se{cfg.se:g}"
    return text


def _first(st: BinasStructure) -> str:
    return f"ds_r1_k3_s1_e1_c{st.first_channels}_nre"


def _head(st: BinasStructure) -> str:
    return f"cn_r1_k1_s1_c{st.head_channels}"


def to_blocks(arch, st: BinasStructure = DEFAULT) -> list[list[str]]:
    """The architecture as BINAS's ``arch_def``: a list of stages, each a list of block strings.

    Args:
      arch: one choice vector ``[P]``.
      st: the structure of the space.

    Returns:
      ``[[first block], stage 1 blocks, ..., stage S blocks, [head block]]``; each stage lists only its active
      layers.

    Raises:
      NasjaxInputError: when ``arch`` is not one valid architecture of the space.
    """
    a = binas_space(st).validate(arch)
    if a.ndim != 1:
        raise NasjaxInputError(f"arch: shape {a.shape}, expected one architecture ({st.num_stages * 5} choices)")
    out = [[_first(st)]]
    for s in range(st.num_stages):
        d = st.depths[int(a[st.depth_position(s)])]
        out.append([block_string(st, s, j, int(a[st.layer_position(s, j)])) for j in range(d)])
    return out + [[_head(st)]]


def to_string(arch, st: BinasStructure = DEFAULT) -> str:
    """The architecture string of the BINAS README (``str`` of :func:`to_blocks`).

    Args:
      arch: one choice vector ``[P]``.
      st: the structure of the space.

    Returns:
      The Python-literal string of the nested block lists.

    Raises:
      NasjaxInputError: when ``arch`` is not one valid architecture of the space.
    """
    return str(to_blocks(arch, st))


_ACTS = {"re": "relu", "hs": "hswish"}


def parse_block(text: str, where: str = "block") -> dict:
    """A timm block string's fields: ``type`` and the integer/float options (``r k s e c se``, ``act``).

    Args:
      text: the block string, e.g. ``"ir_r1_k5_s2_e3_c24_nre"``.
      where: what the string is (stage and block), first in error messages.

    Returns:
      ``{"type": "ir" | "ds" | "cn", "r", "k", "s", "e", "c": int, "se": float, "act": "relu" | "hswish"}``
      (only the options present).

    Raises:
      NasjaxInputError: naming ``where`` and the offending part when the string is not a block string (empty,
        unknown type or option, an option given twice, a missing number).
    """
    if not isinstance(text, str) or not text:
        raise NasjaxInputError(f"{where}: got {text!r}, expected a block string such as 'ir_r1_k5_s2_e3_c24_nre'")
    parts = text.split("_")
    out: dict = {"type": parts[0]}
    if parts[0] not in ("ir", "ds", "cn"):
        raise NasjaxInputError(f"{where} {text!r}: block type {parts[0]!r}, expected ir, ds or cn")
    for p in parts[1:]:
        if p.startswith("se"):
            key, num = "se", p[2:]
        elif p.startswith("n"):
            if p[1:] not in _ACTS:
                raise NasjaxInputError(f"{where} {text!r}: activation {p!r}, expected nre (ReLU) or nhs (h-swish)")
            if "act" in out:
                raise NasjaxInputError(f"{where} {text!r}: activation given twice")
            out["act"] = _ACTS[p[1:]]
            continue
        elif p[:1] in ("r", "k", "s", "e", "c"):
            key, num = p[0], p[1:]
        else:
            raise NasjaxInputError(f"{where} {text!r}: unknown option {p!r}, expected r, k, s, e, c, n or se")
        if key in out:
            raise NasjaxInputError(f"{where} {text!r}: option {key!r} given twice")
        try:
            value = float(num) if key == "se" else int(num)
        except ValueError:
            raise NasjaxInputError(f"{where} {text!r}: option {p!r} has no valid number") from None
        out[key] = value
    return out


def _expect(where: str, text: str, got, want, name: str) -> None:
    if got != want:
        shown = ", ".join(map(str, want)) if isinstance(want, tuple) else want
        raise NasjaxInputError(f"{where} {text!r}: {name} {got!r}, expected {shown}")


def _parse_layer(st: BinasStructure, s: int, j: int, text: str) -> int:
    where = f"arch string stage {s + 1} block {j + 1}"
    b = parse_block(text, where)
    stage = st.stages[s]
    _expect(where, text, b["type"], "ir", "block type")
    _expect(where, text, b.get("r", 1), 1, "repeat r")
    _expect(where, text, b.get("s", 1), stage.stride if j == 0 else 1, "stride s")
    _expect(where, text, b.get("c"), stage.channels, "channels c")
    _expect(where, text, b.get("act", "hswish"), stage.act, "activation")
    ks, es = tuple(sorted({c.kernel for c in st.configs})), tuple(sorted({c.expansion for c in st.configs}))
    if b.get("k") not in ks:
        raise NasjaxInputError(f"{where} {text!r}: kernel k{b.get('k')}, expected one of "
                               + ", ".join(f"k{k}" for k in ks))
    if b.get("e") not in es:
        raise NasjaxInputError(f"{where} {text!r}: expansion e{b.get('e')}, expected one of "
                               + ", ".join(f"e{e}" for e in es))
    c = st.config_index(b["e"], b["k"], b.get("se", 0.0))
    if c is None:
        ses = sorted({x.se for x in st.configs})
        raise NasjaxInputError(f"{where} {text!r}: se{b.get('se', 0.0):g}, expected one of "
                               + ", ".join("no se" if x == 0 else f"se{x:g}" for x in ses))
    return c


def from_blocks(blocks, st: BinasStructure = DEFAULT) -> np.ndarray:
    """BINAS's ``arch_def`` (list of stages of block strings) -> canonical choice vector.

    Args:
      blocks: ``[[first block], stage 1 blocks, ..., [head block]]`` of block strings (see :func:`to_blocks`).
      st: the structure of the space.

    Returns:
      The canonical int64 choice vector ``[P]`` (inactive layers configuration 0).

    Raises:
      NasjaxInputError: on a wrong number of stages, a first block or head that differs from the structure's, a
        stage depth not in ``st.depths``, or a block whose type, repeat, stride, channels, activation, kernel,
        expansion or SE the stage does not have (naming the stage and block).
    """
    n = st.num_stages + 2
    if not isinstance(blocks, (list, tuple)) or len(blocks) != n:
        got = len(blocks) if isinstance(blocks, (list, tuple)) else type(blocks).__name__
        raise NasjaxInputError(f"arch string: {got} stages, expected {n} (first block, {st.num_stages} elastic "
                               "stages, head)")
    for i, stage in enumerate(blocks):
        if not isinstance(stage, (list, tuple)) or not all(isinstance(b, str) for b in stage):
            raise NasjaxInputError(f"arch string stage {i}: got {stage!r}, expected a list of block strings")
    if list(blocks[0]) != [_first(st)]:
        raise NasjaxInputError(f"arch string first block: got {list(blocks[0])!r}, expected [{_first(st)!r}]")
    if list(blocks[-1]) != [_head(st)]:
        raise NasjaxInputError(f"arch string head: got {list(blocks[-1])!r}, expected [{_head(st)!r}]")
    arch = np.zeros(st.num_stages * (1 + st.max_depth), np.int64)
    for s in range(st.num_stages):
        layers = blocks[s + 1]
        if len(layers) not in st.depths:
            raise NasjaxInputError(f"arch string stage {s + 1}: {len(layers)} blocks, expected a depth in "
                                   f"{list(st.depths)}")
        arch[st.depth_position(s)] = st.depths.index(len(layers))
        for j, text in enumerate(layers):
            arch[st.layer_position(s, j)] = _parse_layer(st, s, j, text)
    return arch


def from_string(text: str, st: BinasStructure = DEFAULT) -> np.ndarray:
    """A BINAS architecture string -> canonical choice vector; a malformed string raises naming the part.

    The string is a Python literal such as ``"[['ds_r1_k3_s1_e1_c16_nre'], [...], ..., ['cn_r1_k1_s1_c960']]"``.

    Args:
      text: the architecture string.
      st: the structure of the space.

    Returns:
      The canonical int64 choice vector ``[P]``.

    Raises:
      NasjaxInputError: when ``text`` is not a string, not a literal list of lists of strings, or fails
        :func:`from_blocks`.
    """
    if not isinstance(text, str):
        raise NasjaxInputError(f"arch string: got {type(text).__name__}, expected a string")
    try:
        blocks = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise NasjaxInputError(f"arch string: {text[:60]!r}... is not a list of lists of quoted block strings, "
                               "expected e.g. [['ds_r1_k3_s1_e1_c16_nre'], ['ir_r1_k5_s2_e3_c24_nre', ...], ...]"
                               ) from None
    return from_blocks(blocks, st)
