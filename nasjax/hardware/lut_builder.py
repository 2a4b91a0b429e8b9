"""Latency tables measured on this machine, for any registered space with a supernet, in any runtime.

Every table cell ``(position, choice)`` is timed as the real subnet-shaped program of that block -- a
static network holding only the block's own (sliced) weights at its real input shape, never the masked
supernet -- together with the fixed parts every subnet shares (stem, head). Timing is interleaved
(:func:`nasjax.hardware.runtimes.time_interleaved`) within each *chunk* (the choices of one position,
or the fixed parts, or the reference subnets), together with one *anchor* subnet (the middle choice
everywhere) timed in every chunk: chunks timed minutes apart are brought to one machine speed,
``t' = t * median_k anchor_k / anchor_chunk`` (:func:`drift_factors`). Every finished chunk is written
to a partial file next to
the output, so an interrupted build continues where it stopped and gives the same table as one run.

The table is additive over the parts a subnet runs::

    lat(a) = base + sum_{p active in a} T[p, a_p]
    T[p, c] = t(p, c) - o            base = t(stem) + t(head) - o

A network run as one program pays the fixed cost ``o`` of launching a program once; its ``n(a)``
separately timed parts pay it ``n(a)`` times. ``o`` is estimated on reference subnets ``r`` (smallest,
largest, and a few random ones, never the validation subnets) timed end to end:
``o = mean_r (sum_parts t(r) - t(r)) / (n(r) - 1)``.

**In-network fit.** A part timed alone differs from the same part inside a network in three ways the
plain sum misses: it reads its input from and writes its output to memory, where inside a network the
activation passes between layers in cache; it finds its weights in cache (its chunk's few programs take
turns), where inside a network the weights of all parts stream from memory; and ``o`` is one mean over
programs of very different sizes. The builder therefore also times ``context_subnets`` random subnets end to
end and fits, over them and the references (least squares)::

    m(r) = beta + alpha * lat0(r) + sum_f gamma_f * F_f(r),    F_f(r) = sum_{p active} f(p, a_p)

with the cell features ``f`` the space knows (:meth:`LutSpace.cell_features`): ``programs`` (1 per
separately timed part: a per-part share of ``o`` that differs from the mean), ``io_melements`` (millions of
activation elements a part's program reads and writes at its boundary, at the table's batch size and
resolution) and ``params_m`` (millions of parameters of the part). Which features enter is chosen by
leave-one-out error over the fitted subnets: of every subset of the features, the smallest whose
leave-one-out MAPE is within 2 % of the lowest. The builder ships ``T'[p, c] = alpha * T[p, c] + sum_f
gamma_f * f(p, c)``, ``base' = alpha * base + beta``: again an additive (depth-gated) table, so exact solvers
keep working. On the Intel Xeon build machines ``gamma_io`` comes out near -1 ms per million elements (a
part timed alone pays its boundary traffic, a part in a network does not) and ``gamma_programs`` near +0.1
ms. The raw medians, ``o``, the fit's coefficients, every candidate's leave-one-out error and the fitted
subnets are kept in the provenance, so :func:`refit_table` re-derives a table from its stored measurements
when the model changes (``python -m experiments.latency_table --refit=FILE``).

Spaces (registry :data:`LUT_SPACES`):

* ``mobilenetv3`` (MathNAS's stage-block view): ``p`` = stage (5 positions x the block set's choices);
  every stage is active; ``n(a) = 7`` (stem, 5 stages, head).
* ``mobilenetv3_layers`` (OFA's layer view): ``p`` = layer (20 positions x 9 (kernel, expand) choices)
  plus 5 stage-depth positions whose cells are 0; layer ``i`` of stage ``s`` counts only if
  ``i < d_s`` (a *depth-gated* sum, :func:`predict_latency`); ``n(a) = 2 + sum_s d_s``. Layers 2..4 of a
  stage have the same input shape, so their (kernel, expand) programs are identical and are timed once.
* ``binas`` (HardCoRe-NAS / BINAS, :mod:`nasjax.hardware.lut_binas`): 5 x (depth + 4 layers x 12
  (expansion, kernel, SE) configurations), the same depth-gated sum; its supernet is
  :mod:`nasjax.models.binas`'s.

Output: ``luts/<space>/<device>-<runtime>-<resolution>px-b<batch>[-t<threads>].json`` (a nasjax
:class:`~nasjax.tables.Table` in ms, provenance with the machine, runtime, libraries, protocol, raw
medians and spreads; see :func:`table_path`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.hardware.runtimes import Piece, Runtime, device_name, resolve_statistic, time_interleaved
from nasjax.io import read_json, write_json
from nasjax.registry import Registry
from nasjax.tables import Table

PARTIAL_FORMAT = "nasjax.lut_partial/1"
MIN_RESOLUTION, MAX_RESOLUTION = 8, 1024
NUM_RANDOM_REFS = 4
WARM_CALLS = 1  # untimed runs of a program right before each timed run (warm caches, as deployed)
CONTEXT_SUBNETS = 24  # random subnets timed end to end for the in-network fit (with the references)
MIN_FIT_SUBNETS = 8  # fewer subnets (references + context): no in-network fit
CONTEXT_SEED = 54321


# --------------------------------------------------------------------------------------------
# MobileNetV3 pieces (XLA: jitted static programs with the weights baked in; ONNX: nasjax.export)
# --------------------------------------------------------------------------------------------
def _onnx_builders():
    try:
        from nasjax.export import onnx_graph
    except ImportError as e:  # the ONNX exporter (or the onnx package) is missing
        raise NasjaxInputError(f"runtime: onnxruntime needs nasjax.export.onnx_graph and the onnx package ({e}); "
                               "expected them installed (pip install nasjax[onnx])") from None
    return onnx_graph


class MobileNetV3Pieces:
    """The programs of OFA MobileNetV3 subnets: stem, head, one stage block, one layer, a whole subnet.

    Args:
        state: the supernet (``nasjax.models.mobilenetv3.ModelState``); only shapes matter for latency.
        config: its ``SupernetConfig``.
    """

    def __init__(self, state, config):
        self.state, self.config = state, config

    def shapes(self, batch_size: int, resolution: int) -> list[tuple[int, int, int, int]]:
        """NHWC input shape of each of the 5 stages and, last, of the head."""
        from nasjax.hardware.flops import stage_inputs

        w = self.config.widths()
        chans = [w["first_block"]] + list(w["stages"])
        return [(batch_size, h, h, c) for h, c in zip(stage_inputs(self.config, resolution), chans)]

    def layer_io(self, stage: int, layer: int, batch_size: int, resolution: int) -> float:
        """Millions of elements of layer ``layer`` of stage ``stage``'s input plus output tensors."""
        sh = self.shapes(batch_size, resolution)
        spec = self.config.layer_specs()[stage * self.config.max_depth + layer]
        h_in = sh[stage][1] if layer == 0 else sh[stage + 1][1]
        h_out = sh[stage + 1][1]
        return batch_size * (h_in * h_in * spec.cin + h_out * h_out * spec.cout) / 1e6

    def stage_io(self, stage: int, batch_size: int, resolution: int) -> float:
        """Millions of elements of stage ``stage``'s input plus output tensors."""
        sh = self.shapes(batch_size, resolution)
        return (int(np.prod(sh[stage])) + int(np.prod(sh[stage + 1]))) / 1e6

    def _jit(self, build: Callable[[], Callable]) -> Callable[[], Callable]:
        """``() -> jax.jit(x -> module(x))`` for a static module from :mod:`nasjax.export.static` (its weights
        are baked into the program as constants, like a deployed network)."""

        def make():
            import jax

            module = build()
            return jax.jit(lambda x: module(x))

        return make

    def stem(self) -> Piece:
        """Stem conv -> first block."""
        from nasjax.export import static

        cin = self.config.in_channels
        return Piece("stem", lambda b, r: (b, r, r, cin), self._jit(lambda: static.stem(self.state)),
                     lambda b, r: _onnx_builders().stem_onnx(self.state, batch_size=b, resolution=r))

    def head(self) -> Piece:
        """Final expand -> global pool -> feature mix -> classifier."""
        from nasjax.export import static

        return Piece("head", lambda b, r: self.shapes(b, r)[5], self._jit(lambda: static.head(self.state)),
                     lambda b, r: _onnx_builders().head_onnx(self.state, batch_size=b, resolution=r))

    def stage(self, stage: int, depth: int, ks, es) -> Piece:
        """Stage ``stage`` alone with its first ``depth`` layers at kernels ``ks`` and expand ratios ``es``."""
        from nasjax.export import static

        ks, es = [int(k) for k in ks], [int(e) for e in es]
        return Piece(f"stage {stage + 1} d{depth} ks{ks[:depth]} e{es[:depth]}",
                     lambda b, r: self.shapes(b, r)[stage],
                     self._jit(lambda: static.stage_block(self.state, stage, depth, ks, es)),
                     lambda b, r: _onnx_builders().stage_onnx(self.state, stage, depth, ks, es, batch_size=b,
                                                              resolution=r))

    def layer(self, stage: int, layer: int, k: int, e: int, se: int | None = None) -> Piece:
        """Layer ``layer`` (0-based, within the stage) of stage ``stage`` with kernel ``k``, expand ``e`` (and,
        for a supernet with an elective squeeze-excite, ``se`` 0/1)."""
        from nasjax.export import static

        D = self.config.max_depth
        spec = self.config.layer_specs()[stage * D + layer]

        def shape(b, r):
            n, h, w, c = self.shapes(b, r)[stage]
            if layer > 0:  # after the stage's first (strided) layer
                h = self.shapes(b, r)[stage + 1][1]
            return (n, h, h, spec.cin)

        se = None if se is None else int(se)
        return Piece(f"stage {stage + 1} layer {layer + 1} k{k} e{e}" + ("" if se is None else f" se{se}"), shape,
                     self._jit(lambda: static.layer_block(self.state, stage, layer, int(k), int(e), se)),
                     lambda b, r: _onnx_builders().layer_onnx(self.state, stage, layer, int(k), int(e), se,
                                                              batch_size=b, resolution=r))

    def subnet(self, subnet: dict) -> Piece:
        """A whole subnet (OFA dict ``ks[20], e[20], d[5]``, plus ``se[20]`` with an elective squeeze-excite) as
        one static program."""
        sub = {k: [int(x) for x in np.asarray(subnet[k]).reshape(-1)] for k in ("ks", "e", "d", "se") if k in subnet}
        cin = self.config.in_channels
        from nasjax.export import static

        return Piece(f"subnet d{sub['d']}", lambda b, r: (b, r, r, cin),
                     self._jit(lambda: static.static_subnet(self.state, sub)),
                     lambda b, r: _onnx_builders().subnet_onnx(self.state, sub, batch_size=b, resolution=r))


# --------------------------------------------------------------------------------------------
# Spaces a latency table can be built for
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chunk:
    """Pieces timed together (interleaved): ``keys[j]`` names ``pieces[j]``."""

    name: str
    keys: tuple[str, ...]
    pieces: tuple[Piece, ...]


class LutSpace:
    """How to make the block programs of one space (subclasses are registered in :data:`LUT_SPACES`)."""

    name = ""
    model = ""

    def __init__(self, state, config, block_set=None):
        self.state, self.config, self.block_set = state, config, block_set
        self.pieces = MobileNetV3Pieces(state, config)

    @classmethod
    def supernet_config(cls, width_mult: float = 1.0, num_classes: int = 1000, in_channels: int = 3):
        """The ``SupernetConfig`` of this space's supernet (OFA MobileNetV3 unless a subclass says otherwise)."""
        from nasjax.models.mobilenetv3 import SupernetConfig

        return SupernetConfig(width_mult=float(width_mult), num_classes=int(num_classes),
                              in_channels=int(in_channels))

    def check_resolution(self, resolution) -> int:
        ok = isinstance(resolution, (int, np.integer)) and not isinstance(resolution, bool)
        require(ok and MIN_RESOLUTION <= resolution <= MAX_RESOLUTION, "resolution", resolution,
                f"an integer number of pixels in [{MIN_RESOLUTION}, {MAX_RESOLUTION}] for space {self.name!r}")
        return int(resolution)

    def space(self):
        raise NotImplementedError

    def cell_chunks(self) -> list[Chunk]:
        """One chunk per group of table cells; keys are ``"<position>:<choice>"`` (or a shared key)."""
        raise NotImplementedError

    def cell_key(self, position: int, choice: int) -> str:
        return f"{position}:{choice}"

    def to_subnet(self, arch) -> dict:
        raise NotImplementedError

    def parts(self, arch) -> list[str]:
        """Keys of the separately timed parts whose sum predicts ``arch`` (stem and head included)."""
        raise NotImplementedError

    def reference_archs(self, seed: int = 12345) -> np.ndarray:
        """Smallest, largest and :data:`NUM_RANDOM_REFS` random architectures (the ``o`` estimate)."""
        sp = self.space()
        small = [0] * sp.num_positions
        large = [k - 1 for k in sp.num_choices]
        return np.concatenate([np.array([small, large]), sp.random(seed, NUM_RANDOM_REFS)])

    def context_archs(self, n: int, seed: int = CONTEXT_SEED) -> np.ndarray:
        """``n`` random architectures for the in-network fit (another seed than the references')."""
        return self.space().random(seed, n) if n > 0 else np.zeros((0, self.space().num_positions), np.int64)

    def cell_params(self) -> np.ndarray | None:
        """``[P, K]`` parameters (millions) of the program behind each cell (0 where none), or ``None`` when the
        space does not know them (then the in-network fit has no weight term)."""
        return None

    def cell_io(self, batch_size: int, resolution: int) -> np.ndarray:
        """``[P, K]`` millions of activation elements the program behind each cell reads (its input) and
        writes (its output) at ``batch_size`` and ``resolution``; 0 where no program stands behind a cell."""
        raise NotImplementedError

    def cell_features(self, batch_size: int, resolution: int) -> dict[str, np.ndarray]:
        """The in-network fit's candidate cell features (module docstring), each ``[P, K]``, 0 where no
        program stands behind a cell: ``programs``, ``io_melements`` and, where known, ``params_m``."""
        io = np.asarray(self.cell_io(batch_size, resolution), float)
        out = {"programs": (io > 0).astype(float), "io_melements": io}
        w = self.cell_params()
        if w is not None:
            out["params_m"] = np.asarray(w, float)
        return out

    def active(self, archs) -> np.ndarray:
        """``[N, P]`` mask of the positions that count (every position, for an additive table)."""
        a = np.atleast_2d(np.asarray(archs, np.int64))
        return np.ones(a.shape, bool)

    def anchor_arch(self) -> np.ndarray:
        """The middle choice of every position: the subnet timed in every chunk (drift correction)."""
        return np.array([(k - 1) // 2 for k in self.space().num_choices], np.int64)

    def predict(self, table: Table, archs) -> np.ndarray:
        """Latency (table's unit) of ``archs [N, P]`` (the additive sum over active parts)."""
        return np.atleast_1d(table.predict(archs))


LUT_SPACES: Registry[type[LutSpace]] = Registry("latency-table space")


@LUT_SPACES.register("mobilenetv3")
class StageLut(LutSpace):
    """MathNAS's stage-block view (needs a block set)."""

    name = "mobilenetv3"
    model = "additive"

    def __init__(self, state, config, block_set=None):
        require(block_set is not None, "block_set", block_set, "a BlockSet for the stage-block view")
        super().__init__(state, config, block_set)

    def space(self):
        return self.block_set.space()

    def cell_chunks(self) -> list[Chunk]:
        out = []
        for s, stage in enumerate(self.block_set.configs):
            keys = tuple(self.cell_key(s, c) for c in range(len(stage)))
            pieces = tuple(self.pieces.stage(s, int(b["d"]), b["ks"], b["e"]) for b in stage)
            out.append(Chunk(f"stage {s + 1}", keys, pieces))
        return out

    def to_subnet(self, arch) -> dict:
        d = self.block_set.to_ofa(arch)
        return {k: d[k] for k in ("ks", "e", "d")}

    def parts(self, arch) -> list[str]:
        return ["stem", "head"] + [self.cell_key(s, int(c)) for s, c in enumerate(arch)]

    def cell_params(self) -> np.ndarray:
        from nasjax.hardware.flops import stage_cost

        sp = self.space()
        out = np.zeros((sp.num_positions, max(sp.num_choices)))
        for s, stage in enumerate(self.block_set.configs):
            for c, b in enumerate(stage):
                out[s, c] = stage_cost(self.config, 224, s, int(b["d"]), b["ks"], b["e"])[1] / 1e6
        return out

    def cell_io(self, batch_size: int, resolution: int) -> np.ndarray:
        sp = self.space()
        out = np.zeros((sp.num_positions, max(sp.num_choices)))
        for s in range(sp.num_positions):
            out[s, : sp.num_choices[s]] = self.pieces.stage_io(s, batch_size, resolution)
        return out


@LUT_SPACES.register("mobilenetv3_layers")
class LayerLut(LutSpace):
    """OFA's layer view: 20 layers x 9 (kernel, expand) choices + 5 stage depths (depth-gated sum)."""

    name = "mobilenetv3_layers"
    model = "depth_gated"

    def space(self):
        from nasjax.spaces.mobilenetv3 import mobilenetv3_layers_space

        return mobilenetv3_layers_space()

    def _choices(self):
        from nasjax.spaces.mobilenetv3 import EXPAND, KS

        return [(k, e) for k in KS for e in EXPAND]

    def cell_key(self, position: int, choice: int) -> str:
        D = self.config.max_depth
        s, i = divmod(position, D)
        return f"{s * D + min(i, 1)}:{choice}"  # layers 2..4 of a stage share one program shape

    def cell_chunks(self) -> list[Chunk]:
        D = self.config.max_depth
        out = []
        for s in range(5):
            for i in (0, 1):
                keys = tuple(self.cell_key(s * D + i, c) for c in range(9))
                pieces = tuple(self.pieces.layer(s, i, k, e) for k, e in self._choices())
                out.append(Chunk(f"stage {s + 1} layer {'1' if i == 0 else '2-4'}", keys, pieces))
        return out

    def to_subnet(self, arch) -> dict:
        from nasjax.spaces.mobilenetv3 import layers_to_ofa

        return layers_to_ofa(arch)

    def active(self, archs) -> np.ndarray:
        """``[N, 25]`` mask: layer ``i`` of stage ``s`` active iff ``i < d_s``; depth positions False."""
        from nasjax.spaces.mobilenetv3 import DEPTHS

        a = np.atleast_2d(np.asarray(archs, np.int64))
        D = self.config.max_depth
        depth = np.asarray(DEPTHS)[a[:, 20:25]]  # [N, 5]
        layer_idx = np.tile(np.arange(D), 5)[None, :]
        act = layer_idx < np.repeat(depth, D, axis=1)
        return np.concatenate([act, np.zeros((a.shape[0], 5), bool)], axis=1)

    def cell_params(self) -> np.ndarray:
        from nasjax.hardware.flops import _specs, layer_cost

        specs, D = _specs(self.config), self.config.max_depth
        out = np.zeros((25, 9))
        for layer in range(5 * D):
            for c, (k, e) in enumerate(self._choices()):
                out[layer, c] = layer_cost(specs[layer], k, e, 224, self.config.expand_list)[1] / 1e6
        return out

    def cell_io(self, batch_size: int, resolution: int) -> np.ndarray:
        D = self.config.max_depth
        out = np.zeros((25, 9))
        for layer in range(5 * D):
            out[layer] = self.pieces.layer_io(layer // D, layer % D, batch_size, resolution)
        return out

    def parts(self, arch) -> list[str]:
        act = self.active(arch)[0]
        return ["stem", "head"] + [self.cell_key(p, int(arch[p])) for p in range(20) if act[p]]

    def predict(self, table: Table, archs) -> np.ndarray:
        a = np.atleast_2d(np.asarray(archs, np.int64))
        table.predict(a)  # validates the shape and the choice indices
        cells = table.coef[np.arange(a.shape[1])[None, :], a]
        return table.base + (cells * self.active(a)).sum(1)


def lut_space(name: str, state, config, block_set=None) -> LutSpace:
    """The registered space ``name`` (unknown -> error listing the known ones) on a supernet."""
    return LUT_SPACES.get(name)(state, config, block_set)


def _gated_space(table: Table, config=None) -> LutSpace | None:
    """The space (without weights) whose depth gating a ``depth_gated`` table follows, by the space it names;
    ``None`` for an additive table."""
    model = table.provenance.get("model", "additive")
    require(model in ("additive", "depth_gated"), "table.provenance.model", model, "'additive' or 'depth_gated'")
    if model == "additive":
        return None
    cls = LUT_SPACES.get(table.space) if table.space in LUT_SPACES else LayerLut
    return cls(None, config or cls.supernet_config())


def active_layers(table: Table, config=None) -> Callable[[np.ndarray], np.ndarray] | None:
    """For a depth-gated table, the function ``archs [N, P] -> [N, P] bool`` of the positions that count
    (:meth:`LayerLut.active`); ``None`` for an additive table (every position counts)."""
    space = _gated_space(table, config)
    return None if space is None else space.active


def predict_latency(table: Table, archs, config=None) -> np.ndarray:
    """Latency of ``archs`` with a table made by :func:`build_table` (its provenance names the model:
    ``additive`` = :meth:`Table.predict`, ``depth_gated`` = only active layers count, by the space the table
    names)."""
    space = _gated_space(table, config)
    return np.atleast_1d(table.predict(archs)) if space is None else space.predict(table, archs)


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------
def table_path(root, space: str, runtime: str, threads: int, resolution: int, batch_size: int,
               device: str | None = None, width: float | None = None) -> Path:
    """``<root>/<space>[_w<width>]/<device>-<runtime>-<resolution>px-b<batch>[-t<threads>].json``
    (the width suffix only when ``width`` is given and not 1.0)."""
    sp = space + (f"_w{width:g}" if width is not None and float(width) != 1.0 else "")
    name = f"{device or device_name()}-{runtime}-{resolution}px-b{batch_size}"
    return Path(root) / sp / (name + (f"-t{threads}" if threads else "") + ".json")


def partial_path(out) -> Path:
    """The partial file kept next to ``out`` while a build runs: ``.<name>.partial.json``."""
    out = Path(out)
    return out.parent / f".{out.stem}.partial.json"


def _load_partial(path: Path, settings: dict, fmt: str = PARTIAL_FORMAT) -> dict:
    """The finished chunks of a partial file of format ``fmt`` made with ``settings`` (``{}`` when there is
    none); a damaged file or one made with other settings is an input error naming the file."""
    if not path.exists():
        return {}
    try:
        d = read_json(path, "partial table file")
    except NasjaxInputError as e:
        raise NasjaxInputError(f"{e}; delete {str(path)!r} to start the build afresh") from None
    if not isinstance(d, dict) or d.get("format") != fmt or not isinstance(d.get("chunks"), dict):
        raise NasjaxInputError(f"partial table file {str(path)!r}: not a {fmt} file; expected one "
                               "written by this builder (delete it to start afresh)")
    if d.get("settings") != settings:
        raise NasjaxInputError(f"partial table file {str(path)!r}: made with settings {json.dumps(d.get('settings'))}, "
                               f"expected {json.dumps(settings)} (delete it, or rerun with those settings)")
    for name, c in d["chunks"].items():
        ok = (isinstance(c, dict) and isinstance(c.get("keys"), list)
              and all(isinstance(c.get(f), list) and len(c[f]) == len(c["keys"])
                      and all(isinstance(v, (int, float)) and np.isfinite(v) for v in c[f])
                      for f in ("time_ms", "median_ms", "spread_ms"))
              and isinstance(c.get("anchor_ms"), (int, float)) and np.isfinite(c["anchor_ms"]) and c["anchor_ms"] > 0)
        if not ok:
            raise NasjaxInputError(f"partial table file {str(path)!r}: chunk {name!r} is damaged; expected keys, "
                                   "time_ms, median_ms and spread_ms lists of equal length and a positive anchor_ms "
                                   "(delete the file to start afresh)")
    return d["chunks"]


def time_with_anchor(runtime: Runtime, anchor: Callable[[], None], calls: list, *, warmup: int, repeats: int,
                     statistic: str = "median"):
    """Time ``[anchor] + calls`` interleaved; returns ``(Timing of calls, anchor's ms)`` (``statistic`` of the
    rounds, :data:`nasjax.hardware.runtimes.STATISTICS`).

    The anchor (one fixed program, prepared once) is timed in every chunk, so chunks timed minutes apart
    can be brought to one machine speed: ``t' = t * anchor_ref / anchor_chunk`` (:func:`drift_factors`).
    """
    t = time_interleaved([anchor] + list(calls), warmup=warmup, repeats=repeats, clock=runtime.timer_clock,
                         warm_calls=WARM_CALLS, statistic=statistic)
    from nasjax.hardware.runtimes import Timing

    return (Timing(t.medians_ms[1:], t.spread_ms[1:], t.raw_ms[:, 1:], t.warmup, t.repeats, t.times_ms[1:],
                   t.statistic), float(t.times_ms[0]))


def drift_factors(anchor_ms) -> np.ndarray:
    """Per chunk, ``median_k anchor_k / anchor_j``: the factor that brings chunk ``j`` to the median speed."""
    a = np.asarray(anchor_ms, float)
    return np.median(a) / a


def _time_chunk(runtime: Runtime, chunk: Chunk, batch_size: int, resolution: int, warmup: int, repeats: int,
                progress: bool, anchor: Callable[[], None], statistic: str) -> dict:
    it = chunk.pieces
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"{chunk.name}: compiling", unit="program", dynamic_ncols=True, leave=False)
    calls = [runtime.prepare(p, batch_size, resolution) for p in it]
    t, a = time_with_anchor(runtime, anchor, calls, warmup=warmup, repeats=repeats, statistic=statistic)
    return {"keys": list(chunk.keys), "time_ms": [float(v) for v in t.times_ms],
            "median_ms": [float(v) for v in t.medians_ms], "spread_ms": [float(v) for v in t.spread_ms],
            "anchor_ms": a}


FIT_TERM_UNITS = {"programs": "ms per separately timed part", "io_melements": "ms per million activation elements "
                  "at a part's boundary", "params_m": "ms per million parameters"}
LOO_TOLERANCE = 0.02  # a larger term set must lower the leave-one-out MAPE by more than this share


def _cell_features(lspace: LutSpace, mask, batch_size: int, resolution: int) -> dict[str, np.ndarray]:
    """The space's cell features (:meth:`LutSpace.cell_features`), 0 outside ``mask``."""
    return {k: np.where(mask, v, 0.0) for k, v in lspace.cell_features(batch_size, resolution).items()}


def _loo_mape(X: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-out MAPE (%) of the least-squares fit ``y ~ X`` (residual / (1 - leverage), no refits)."""
    hat = X @ np.linalg.pinv(X)
    r = y - hat @ y
    lev = np.clip(np.diag(hat), None, 1.0 - 1e-9)
    return float(100.0 * np.mean(np.abs(r / (1.0 - lev)) / np.abs(y)))


def _in_network_fit(lspace: LutSpace, vals, base: float, feats: dict[str, np.ndarray], archs, measured) -> dict | None:
    """Least-squares ``m = beta + alpha * lat0 + sum_f gamma_f F_f`` over ``archs`` (module docstring), the
    features ``f`` (:func:`_cell_features`) a subset of ``feats`` chosen by leave-one-out MAPE; ``None`` with
    fewer than :data:`MIN_FIT_SUBNETS` subnets or when no candidate is meaningful (``alpha <= 0``)."""
    if len(archs) < MIN_FIT_SUBNETS:
        return None
    from itertools import combinations

    from nasjax.metrics import latency_metrics

    a = np.asarray(archs, np.int64)
    y = np.asarray(measured, float)
    rows = np.arange(a.shape[1])[None, :]
    act = lspace.active(a)
    lat0 = base + (vals[rows, a] * act).sum(1)
    F = {k: (v[rows, a] * act).sum(1) for k, v in sorted(feats.items())}
    names = [k for k in F if np.ptp(F[k]) > 0]  # a feature constant over the subnets is the intercept's
    cands = []
    for r in range(len(names) + 1):
        for terms in combinations(names, r):
            if len(a) <= len(terms) + 3:  # at least two residual degrees of freedom
                continue
            X = np.column_stack([np.ones(len(a)), lat0] + [F[k] for k in terms])
            coef, *_ = np.linalg.lstsq(X, y, rcond=None)
            if not np.all(np.isfinite(coef)) or coef[1] <= 0:  # a network is never faster for slower parts
                continue
            cands.append((terms, coef, X, _loo_mape(X, y)))
    if not cands:
        return None
    best = min(c[3] for c in cands)
    terms, coef, X, loo = next(c for c in cands if c[3] <= best * (1.0 + LOO_TOLERANCE))
    plain, fitted = latency_metrics(y, lat0), latency_metrics(y, X @ coef)
    keep = ("mape_percent", "kendall_tau", "within_10_percent", "worst_error_percent")

    def finite(m):  # a rank correlation of tied values is undefined: recorded as null
        return {k: float(m[k]) if np.isfinite(m[k]) else None for k in keep}

    return {"beta_ms": float(coef[0]), "alpha": float(coef[1]),
            "terms": {k: float(g) for k, g in zip(terms, coef[2:])},
            "term_units": {k: FIT_TERM_UNITS[k] for k in terms}, "n_subnets": int(len(a)),
            "selection": {"rule": f"smallest term set within {100 * LOO_TOLERANCE:g} % of the lowest "
                          "leave-one-out MAPE", "loo_mape_percent": {"+".join(c[0]) or "affine": round(c[3], 4)
                                                                      for c in cands}},
            "loo_mape_percent": float(loo), "in_sample_plain": finite(plain), "in_sample_fitted": finite(fitted)}


def _apply_in_network_fit(vals, base: float, mask, feats: dict[str, np.ndarray], fit: dict) -> tuple[np.ndarray, float]:
    """The shipped cells and base of a fit: ``T' = alpha T + sum_f gamma_f f``, ``base' = alpha base + beta``."""
    cells = fit["alpha"] * vals
    for k, g in fit["terms"].items():
        cells = cells + g * feats[k]
    return np.where(mask, cells, 0.0), fit["alpha"] * base + fit["beta_ms"]


def _assemble(lspace: LutSpace, med: dict[str, float], refs, ctx, batch_size: int,
              resolution: int) -> tuple[np.ndarray, np.ndarray, float, dict]:
    """Cells, mask and base of a table from the parts' and subnets' median times ``med`` (keys as the chunks'),
    and the model's provenance (``o``, raw cells, in-network fit; module docstring)."""
    o_each = []
    for j, a in enumerate(refs):
        parts = lspace.parts(a)
        o_each.append((sum(med[k] for k in parts) - med[f"ref{j}"]) / (len(parts) - 1))
    o = float(np.mean(o_each))
    sp = lspace.space()
    K = max(sp.num_choices)
    vals = np.zeros((sp.num_positions, K))
    mask = np.zeros((sp.num_positions, K), bool)
    for p in range(sp.num_positions):
        for c in range(sp.num_choices[p]):
            mask[p, c] = True
            key = lspace.cell_key(p, c)
            if key in med:
                vals[p, c] = med[key] - o
    base = med["stem"] + med["head"] - o
    raw_vals, raw_base = vals.copy(), float(base)
    e2e = [med[f"ref{j}"] for j in range(len(refs))] + [med[f"ctx{j}"] for j in range(len(ctx))]
    feats = _cell_features(lspace, mask, batch_size, resolution)
    fit = _in_network_fit(lspace, vals, base, feats, np.concatenate([refs, ctx]), np.array(e2e))
    if fit is not None:
        vals, base = _apply_in_network_fit(vals, base, mask, feats, fit)
    formula = ("lat(a) = base + sum_{p active in a} T[p, a_p]; T[p, c] = t(p, c) - o; base = t(stem) + t(head) - o; "
               "o = mean_ref (sum_parts t(ref) - t(ref)) / (n_parts(ref) - 1)")
    if fit is not None:
        formula += ("; in-network fit: T' = alpha T + sum_f gamma_f f(p, c), base' = alpha base + beta (alpha, "
                    "beta, gamma least squares on the references and context subnets timed end to end; the "
                    "features f chosen by leave-one-out error)")
    model = {"formula": formula, "in_network_fit": fit, "raw_values": raw_vals.tolist(), "raw_base_ms": raw_base,
             "per_program_overhead_ms_o": o, "overhead_per_reference_ms": [float(v) for v in o_each]}
    return vals, mask, float(base), model


def _protocol(warmup: int, repeats: int, statistic: str) -> str:
    """The provenance's description of the builder's timing protocol."""
    return (f"static subnet-shaped programs, {warmup} warm-up rounds then the {statistic} of {repeats} "
            "interleaved rounds (A B A B ...) per chunk, every timed run right after "
            f"{WARM_CALLS} untimed run(s) of the same program (warm caches); spread = interquartile range; "
            "an anchor subnet timed in every chunk brings all chunks to one machine speed "
            "(t * median anchor / chunk anchor)")


def refit_table(table: Table, lspace: LutSpace, out=None, statistic: str | None = None) -> Table:
    """``table`` re-derived from the times its provenance keeps (no timing): the current model of
    :func:`build_table` (``o``, the in-network fit) applied to the same measurements.

    Args:
      table: a table made by :func:`build_table` (its provenance has ``median_ms``, the reference and context
        architectures).
      lspace: its space on the table's supernet (shapes only).
      out: if given, the refitted table is written there (atomically).
      statistic: ``None`` keeps the table's statistic; ``"median"`` re-derives it from the medians every table
        stores (no other statistic can be recovered without timing again).

    Returns:
      The table; its provenance is the original's with the model's fields replaced and ``refit`` (date,
      command) added.
    """
    prov = dict(table.provenance)
    require(prov.get("method") == "nasjax.hardware.lut_builder.build_table" and "median_ms" in prov,
            "table provenance", sorted(prov)[:8], "a table written by nasjax.hardware.lut_builder.build_table "
            "(method and median_ms in its provenance)")
    own = prov.get("statistic", "median")  # tables built before the statistic was a setting hold medians only
    require(statistic in (None, own, "median"), "statistic", statistic,
            f"None, the table's own ({own!r}) or 'median' (the other rounds are not stored)")
    stat = statistic or own
    if stat != own:
        prov.update(time_ms=dict(prov["median_ms"]), statistic=stat,
                    protocol=_protocol(prov["warmup"], prov["repeats"], stat))
    times = prov.get("time_ms", prov["median_ms"])
    refs = np.asarray(prov["reference_archs"], np.int64)
    ctx = np.asarray(prov.get("context_archs", []), np.int64).reshape(-1, refs.shape[1])
    med = {k: float(v) for k, v in times.items()}
    prov["reference_end_to_end_ms"] = [med[f"ref{j}"] for j in range(len(refs))]
    prov["context_end_to_end_ms"] = [med[f"ctx{j}"] for j in range(len(ctx))]
    vals, mask, base, model = _assemble(lspace, med, refs, ctx, int(prov["batch_size"]), int(prov["resolution"]))
    from nasjax.hardware.runtimes import machine_provenance

    mp = machine_provenance()
    prov.update(model)
    prov["refit"] = {"date": mp["date"], "command": mp["command"],
                     "what": f"the model (o, in-network fit) re-derived from the stored {stat} times; no new timing"}
    t = Table(vals, mask, "latency", "ms", base, 1, table.device, table.space, prov)
    if "refinement" in prov:  # re-applied on top of the re-derived cells, on the subnets it stores
        from nasjax.hardware.lut_refine import apply_refinement

        r = prov.pop("refinement")
        keep = {k: r[k] for k in ("protocol", "anchor_ms_per_chunk") if k in r}
        t = apply_refinement(replace(t, provenance=prov), r["archs"], r["end_to_end_ms"], seed=int(r["seed"]),
                             extra=keep)
    if out is not None:
        t.save(out)
    return t


def build_table(lspace: LutSpace, runtime: Runtime, *, batch_size: int = 1, resolution: int = 224,
                warmup: int = 5, repeats: int = 30, out=None, progress: bool = True,
                extra_provenance: dict | None = None, context_subnets: int = CONTEXT_SUBNETS,
                statistic: str | None = None) -> Table:
    """Measure ``lspace``'s latency table in ``runtime`` (see the module docstring for the formula).

    Args:
        lspace: a registered space on a supernet (:func:`lut_space`).
        runtime: from :func:`nasjax.hardware.runtimes.get_runtime`.
        batch_size: images per call (the table is per call, in ms).
        resolution: input pixels (square).
        warmup: untimed rounds per chunk.
        repeats: timed interleaved rounds per chunk.
        out: the output file; if given, finished chunks are kept in :func:`partial_path` ``(out)`` (a rerun
            with the same settings continues), the table is written atomically and the partial file removed.
        progress: tqdm bars.
        extra_provenance: merged into the table's provenance (e.g. the command's settings).
        context_subnets: random subnets timed end to end for the in-network fit (module docstring); 0 with
            the references alone.
        statistic: the estimate of each program's time over the timed rounds
            (:data:`nasjax.hardware.runtimes.STATISTICS`; module docstring); ``None``: the runtime's default
            (:func:`nasjax.hardware.runtimes.default_statistic`).

    Returns:
        The table (unit ms, ``device`` = this machine, ``space`` = the space's name).
    """
    resolution = lspace.check_resolution(resolution)
    require(isinstance(batch_size, (int, np.integer)) and batch_size >= 1, "batch_size", batch_size,
            "a positive integer")
    require(isinstance(repeats, (int, np.integer)) and repeats >= 1, "repeats", repeats, "a positive integer")
    require(isinstance(warmup, (int, np.integer)) and warmup >= 0, "warmup", warmup, "a non-negative integer")
    require(isinstance(context_subnets, (int, np.integer)) and context_subnets >= 0, "context_subnets",
            context_subnets, "a non-negative integer")
    statistic = resolve_statistic(statistic, runtime.name)
    settings = {"space": lspace.name, "runtime": runtime.name, "threads": runtime.threads, "clock": runtime.clock,
                "batch_size": int(batch_size), "resolution": resolution, "warmup": int(warmup),
                "repeats": int(repeats), "supernet_config": lspace.config.to_dict(),
                "block_set": lspace.block_set.to_dict() if lspace.block_set is not None else None,
                "context_subnets": int(context_subnets), "statistic": statistic}
    ppath = partial_path(out) if out is not None else None
    done = _load_partial(ppath, settings) if ppath is not None else {}
    refs = lspace.reference_archs()
    chunks = [Chunk("fixed", ("stem", "head"), (lspace.pieces.stem(), lspace.pieces.head()))]
    chunks += lspace.cell_chunks()
    chunks.append(Chunk("references", tuple(f"ref{j}" for j in range(len(refs))),
                        tuple(lspace.pieces.subnet(lspace.to_subnet(a)) for a in refs)))
    ctx = lspace.context_archs(int(context_subnets))
    for lo in range(0, len(ctx), 12):  # chunks of 12 subnets bound the memory of compiled programs
        chunks.append(Chunk(f"context {lo // 12 + 1}", tuple(f"ctx{j}" for j in range(lo, min(lo + 12, len(ctx)))),
                            tuple(lspace.pieces.subnet(lspace.to_subnet(a)) for a in ctx[lo:lo + 12])))
    todo = [c for c in chunks if c.name not in done]
    it = todo
    if progress and todo:
        from tqdm.auto import tqdm

        it = tqdm(todo, desc=f"latency table {lspace.name} ({runtime.label})", unit="chunk", dynamic_ncols=True,
                  initial=len(chunks) - len(todo), total=len(chunks))
    anchor_arch = lspace.anchor_arch()
    anchor = None
    for c in it:
        if anchor is None:
            anchor = runtime.prepare(lspace.pieces.subnet(lspace.to_subnet(anchor_arch)), batch_size, resolution)
        done[c.name] = _time_chunk(runtime, c, batch_size, resolution, warmup, repeats, progress, anchor, statistic)
        if ppath is not None:
            write_json(ppath, {"format": PARTIAL_FORMAT, "settings": settings, "chunks": done})
    names = [c.name for c in chunks]
    drift = dict(zip(names, drift_factors([done[n]["anchor_ms"] for n in names])))
    times = {k: (t * drift[n], m * drift[n], s * drift[n]) for n in names
             for k, t, m, s in zip(done[n]["keys"], done[n]["time_ms"], done[n]["median_ms"], done[n]["spread_ms"])}
    med = {k: v[0] for k, v in times.items()}
    vals, mask, base, model = _assemble(lspace, med, refs, ctx, int(batch_size), resolution)
    prov = {
        "method": "nasjax.hardware.lut_builder.build_table",
        "model": lspace.model,
        **model,
        "context_archs": ctx.tolist(),
        "context_end_to_end_ms": [med[f"ctx{j}"] for j in range(len(ctx))],
        "unit": "ms per call of batch_size images",
        **settings,
        "protocol": _protocol(warmup, repeats, statistic),
        "warm_calls": WARM_CALLS,
        "anchor_arch": [int(x) for x in anchor_arch],
        "anchor_ms_per_chunk": {n: done[n]["anchor_ms"] for n in names},
        "reference_archs": refs.tolist(),
        "reference_end_to_end_ms": [med[f"ref{j}"] for j in range(len(refs))],
        "time_ms": {k: v[0] for k, v in sorted(times.items())},
        "median_ms": {k: v[1] for k, v in sorted(times.items())},
        "spread_ms": {k: v[2] for k, v in sorted(times.items())},
        **runtime.provenance(),
        **(extra_provenance or {}),
    }
    table = Table(vals, mask, "latency", "ms", float(base), 1, device_name(), lspace.name, prov)
    if out is not None:
        table.save(out)
        if ppath.exists():
            os.unlink(ppath)
    return table


from nasjax.hardware import lut_binas  # noqa: E402, F401  (registers the "binas" space)
