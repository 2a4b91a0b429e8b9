"""The BINAS / HardCoRe-NAS space (:mod:`nasjax.spaces.binas`) as a latency-table space of
:mod:`nasjax.hardware.lut_builder` (registered as ``binas``).

Positions are the space's 25: per stage ``s`` a depth position and 4 layer positions, each layer one of the
12 configurations ``c = (expansion, kernel, SE)``. The table's cell ``T[(s, j), c]`` is the time of layer
``j`` of stage ``s`` at configuration ``c`` as its own static program (the subnet's sliced weights, SE only
where ``c`` has it, the stage's activation) at its real input shape, minus the per-program overhead ``o``;
the depth positions' cells are 0; ``base`` is stem (stem conv, first block) + head (conv head, pool,
feature mix, classifier) - ``o``. A subnet's latency is the depth-gated sum::

    T(a) = base + sum_s sum_{j < d_s} T[(s, j), a_(s, j)]

which is BINAS's ``T(alpha, beta) = T_fixed + alpha^T p + alpha^T Q_T beta``
(:func:`nasjax.hardware.binas_latency.latency_from_table`; :meth:`BinasLut.predict` is that form's
prediction). Layers 2..4 of a stage share their input shape (stride 1, the stage's width), so their 12
programs are timed once: 5 stages x 2 x 12 = 120 timed layer programs.

The supernet is :func:`nasjax.models.binas.binas_supernet_config` of the default structure (the
resolution must be a multiple of the network's total stride, 32, so that every stage's feature map is an
exact halving as the structure's per-layer resolutions state).

:func:`measure_found` times architectures (e.g. those a search found) end to end as static programs in a
table's runtime, batch size, resolution and threads, next to the table's prediction.

    python -m experiments.latency_table --space=binas --runtime=onnxruntime --threads=1 --width=0.25 \\
        --num_classes=10 --in_channels=1 --resolution=32 --batch_size=256
"""

from __future__ import annotations

import os

import numpy as np

from nasjax.errors import require
from nasjax.hardware.lut_builder import LUT_SPACES, Chunk, LutSpace
from nasjax.spaces.binas import DEFAULT, binas_space
from nasjax.tables import Table


@LUT_SPACES.register("binas")
class BinasLut(LutSpace):
    """BINAS's space: 5 stages x (depth 2-4, 4 layers x 12 configurations), depth-gated sum."""

    name = "binas"
    model = "depth_gated"
    structure = DEFAULT

    def __init__(self, state, config, block_set=None):
        st = self.structure
        want = {"ks_list": tuple(sorted({c.kernel for c in st.configs})),
                "expand_list": tuple(sorted({c.expansion for c in st.configs})), "depth_list": tuple(st.depths),
                "se_choice": True}
        got = {k: getattr(config, k, None) for k in want}
        require(got == want, "supernet config", got, f"a BINAS supernet ({want}, nasjax.models.binas)")
        super().__init__(state, config, None)

    @classmethod
    def supernet_config(cls, width_mult: float = 1.0, num_classes: int = 1000, in_channels: int = 3):
        from nasjax.models.binas import binas_supernet_config

        return binas_supernet_config(cls.structure.to_dict(), num_classes=int(num_classes),
                                     in_channels=int(in_channels), width_mult=float(width_mult))

    def total_stride(self) -> int:
        """The stem's stride times every stage's: the input side a network output pixel spans (32)."""
        return 2 * int(np.prod(self.config.stage_strides))

    def check_resolution(self, resolution) -> int:
        r = super().check_resolution(resolution)
        s = self.total_stride()
        require(r % s == 0, "resolution", r, f"a multiple of {s} (the BINAS network's total stride) for space "
                f"{self.name!r}, e.g. 32 or 224")
        return r

    def space(self):
        return binas_space(self.structure)

    def _timed_position(self, position: int) -> int | None:
        """The layer position whose program times ``position`` (layers 2.. share layer 2's); None for a depth."""
        st = self.structure
        s, j = divmod(int(position), 1 + st.max_depth)
        return None if j == 0 else st.layer_position(s, min(j - 1, 1))

    def cell_key(self, position: int, choice: int) -> str:
        p = self._timed_position(position)
        return f"{position if p is None else p}:{choice}"

    def cell_chunks(self) -> list[Chunk]:
        st = self.structure
        out = []
        for s in range(st.num_stages):
            for j in (0, 1):
                p = st.layer_position(s, j)
                keys = tuple(self.cell_key(p, c) for c in range(st.num_configs))
                pieces = tuple(self.pieces.layer(s, j, cfg.kernel, cfg.expansion, int(cfg.se > 0))
                               for cfg in st.configs)
                out.append(Chunk(f"stage {s + 1} layer {'1' if j == 0 else '2-4'}", keys, pieces))
        return out

    def cell_io(self, batch_size: int, resolution: int) -> np.ndarray:
        st = self.structure
        out = np.zeros((self.space().num_positions, st.num_configs))
        for s in range(st.num_stages):
            for j in range(st.max_depth):
                out[st.layer_position(s, j)] = self.pieces.layer_io(s, j, batch_size, resolution)
        return out

    def to_subnet(self, arch) -> dict:
        from nasjax.models.binas import binas_subnets
        from nasjax.models.mobilenetv3 import subnet_to_ofa

        return subnet_to_ofa(binas_subnets(np.asarray(arch, np.int64), self.structure.to_dict()))

    def parts(self, arch) -> list[str]:
        from nasjax.spaces.binas import active

        st = self.structure
        a = np.asarray(arch, np.int64)
        act = active(a, st)[0]
        return ["stem", "head"] + [self.cell_key(p, int(a[p])) for p, on in zip(st.layer_positions, act) if on]

    def active(self, archs) -> np.ndarray:
        """``[N, P]`` mask: a layer position counts when its stage is deep enough; depth positions never."""
        from nasjax.spaces.binas import active

        a = np.atleast_2d(np.asarray(archs, np.int64))
        out = np.zeros(a.shape, bool)
        out[:, list(self.structure.layer_positions)] = active(a, self.structure)
        return out

    def predict(self, table: Table, archs) -> np.ndarray:
        """``T(a)`` of ``archs [N, 25]`` in the table's unit: BINAS's bilinear latency model of the table."""
        from nasjax.hardware.binas_latency import latency_from_table

        a = np.atleast_2d(np.asarray(archs, np.int64))
        table.predict(a)  # validates the shape and the choice indices
        return np.atleast_1d(latency_from_table(table, self.structure).predict(a))


_NOT_GEOMETRY = ("dropout_rate", "bn_momentum", "bn_eps")  # do not change a program's shape or its work


def _geometry(config) -> dict:
    return {k: v for k, v in config.to_dict().items() if k not in _NOT_GEOMETRY}


def _timing_setup(table: Table, state=None):
    """``(BinasLut, runtime, batch size, resolution, statistic)`` of a builder-made ``binas`` table: the
    programs timed as the table was (its runtime, threads, clock, batch, resolution and statistic), on
    ``state`` (checked against the table's supernet) or on random weights of the table's supernet."""
    from nasjax.hardware.lut_validate import table_statistic
    from nasjax.hardware.runtimes import get_runtime, xla_threads_ready
    from nasjax.models.mobilenetv3 import OFAMobileNetV3, SupernetConfig, split_model

    prov = table.provenance
    require(table.space == BinasLut.name and prov.get("method") == "nasjax.hardware.lut_builder.build_table",
            "latency_table", f"space {table.space!r}, method {prov.get('method')!r}",
            "a binas table made by nasjax.hardware.lut_builder.build_table (python -m experiments.latency_table "
            "--space=binas)")
    require(table.unit == "ms", "latency_table unit", table.unit, "ms")
    config = SupernetConfig.from_dict(prov["supernet_config"])
    if state is None:
        from flax import nnx

        state = split_model(OFAMobileNetV3(config, rngs=nnx.Rngs(0)))
    else:
        from nasjax.export.static import supernet_of

        got = supernet_of(state).config
        require(_geometry(got) == _geometry(config), "supernet config", _geometry(got),
                f"the latency table's supernet {_geometry(config)}")
    if prov["runtime"] == "xla":
        require(xla_threads_ready(1 if int(prov["threads"]) == 1 else 0), "XLA_FLAGS", prov["threads"],
                "this process started with the table's XLA thread count (nasjax.hardware.runtimes.xla_thread_env)")
    runtime = get_runtime(prov["runtime"], int(prov["threads"]), prov.get("clock", "auto"))
    return (BinasLut(state, config), runtime, int(prov["batch_size"]), int(prov["resolution"]),
            table_statistic(table))


def calibrate_found_table(table: Table, state=None, refs=None, *, warmup: int = 5, repeats: int = 20,
                          progress: bool = False) -> dict:
    """``table`` scaled to this machine's speed now from its reference subnets timed end to end (the start-up
    calibration the quickstart makes, :func:`nasjax.hardware.lut_validate.calibrate_table`).

    A table keeps the speed of the hour it was built; a VM's host can run 10 % faster or slower an hour later,
    and every budget is then off by that much. Search with the calibrated table, then time the found
    architectures (:func:`measure_found`) against it.

    Args:
      table: a ``binas`` latency table made by :func:`nasjax.hardware.lut_builder.build_table` (unit ms).
      state: as :func:`measure_found`.
      refs: ``[K, 25]`` reference architectures; ``None``: the builder's reference subnets of the table
        (``provenance["reference_archs"]``: the smallest, the largest and subnets between).
      warmup, repeats, progress: the timing protocol.

    Returns:
      :func:`~nasjax.hardware.lut_validate.calibrate_table`'s result (``scale``, ``table``, the references'
      measured and predicted ms).
    """
    from nasjax.hardware.lut_validate import calibrate_table

    ls, runtime, bs, res, stat = _timing_setup(table, state)
    if refs is None:
        require("reference_archs" in table.provenance, "latency_table provenance", "no reference_archs",
                "the builder's reference subnets, or refs given")
        refs = table.provenance["reference_archs"]
    refs = np.atleast_2d(np.asarray(refs, np.int64))
    ls.space().validate(refs)
    return calibrate_table(ls, runtime, table, refs, batch_size=bs, resolution=res, warmup=warmup,
                           repeats=repeats, progress=progress, statistic=stat)


def report_calibration(cal: dict) -> dict:
    """Print one line for a :func:`calibrate_found_table` result and return its JSON record (the scale and
    the references' measured and predicted ms)."""
    print(f"calibrated to this machine: scale {cal['scale']:.3f} from {len(cal['reference_archs'])} reference "
          f"subnets (load average {os.getloadavg()[0]:.2f})", flush=True)
    return {"scale": float(cal["scale"]), "reference_measured_ms": np.asarray(cal["reference_measured_ms"]).tolist(),
            "reference_predicted_ms": np.asarray(cal["reference_predicted_ms"]).tolist()}


def measure_found(table: Table, archs, state=None, *, warmup: int = 5, repeats: int = 20, chunk_size: int = 25,
                  progress: bool = False) -> dict:
    """End-to-end latency of BINAS architectures next to ``table``'s prediction, in the table's runtime.

    Every architecture runs as one static program (:meth:`MobileNetV3Pieces.subnet`: only its weights, its SE
    and activations) at the table's batch size, resolution, thread count and clock, timed interleaved with
    the others (:func:`nasjax.hardware.lut_validate.measure_archs`), rounds repeated until two agree
    (:func:`~nasjax.hardware.lut_validate.measure_until_stable`).

    Args:
      table: a ``binas`` latency table made by :func:`nasjax.hardware.lut_builder.build_table` (unit ms), or
        its :func:`calibrate_found_table` version.
      archs: ``[N, 25]`` BINAS choice vectors.
      state: the supernet whose subnets are timed (``ModelState`` or module); ``None``: random weights of the
        table's supernet (latency does not depend on the weights). Its shapes must be the table's.
      warmup, repeats, chunk_size, progress: as :func:`~nasjax.hardware.lut_validate.measure_archs`.

    Returns:
      ``{"measured_ms" [N], "predicted_ms" [N], "error_percent" [N] = 100 (predicted - measured) / measured,
      "rounds", "runtime", "threads", "clock", "batch_size", "resolution", "unit": "ms per call of batch_size
      images"}``.
    """
    from nasjax.hardware.lut_validate import measure_archs, measure_until_stable

    ls, runtime, bs, res, stat = _timing_setup(table, state)
    a = np.atleast_2d(np.asarray(archs, np.int64))
    ls.space().validate(a)
    meas, rounds = measure_until_stable(lambda: measure_archs(ls, runtime, a, batch_size=bs, resolution=res,
                                                              warmup=warmup, repeats=repeats, chunk_size=chunk_size,
                                                              progress=progress, statistic=stat))
    pred = ls.predict(table, a)
    return {"measured_ms": meas, "predicted_ms": pred, "error_percent": 100.0 * (pred - meas) / meas,
            "rounds": int(rounds), "statistic": stat, "runtime": runtime.name, "threads": runtime.threads,
            "clock": runtime.clock,
            "batch_size": bs, "resolution": res, "unit": "ms per call of batch_size images"}
