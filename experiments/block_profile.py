"""Block profiling (Mills et al., CIKM 2021): ``python -m experiments.block_profile --flagfile=...``.

The original's flags: ``--space`` (a registered space with metric sources: ``nasbench201``,
``mobilenetv3_layers``), ``--num_archs`` (architectures per block), ``--blocks`` (``<position>:<choice>`` or
``<unit>/<layer>/<choice>`` keys) or ``--all`` (every block), ``--metrics`` (names of
:mod:`nasjax.profiling.sources`), ``--save`` (experiment name; results in ``<save_root>/<space>/<save>/``).
For every block, ``--num_archs`` random architectures with the block fixed AND its layer active (its
stage's depth drawn among the depths that run it), plus an unconstrained baseline, are evaluated on every
metric (each source once, all architectures stacked: a supernet evaluates them in batched passes).

Writes, as one set: ``profile.csv`` (per block and metric: n, mean, std, 1/5/95/99 % quantiles, min, max,
``rel_mean`` = mean / baseline median), ``profile_<metric>.png`` (unit x layer x block heat maps) and
``summary.json`` (last). ``--predictor`` is a sequence latency predictor file
(``scripts/bench_profiling.py --save_predictor``) for ``latency/<setting>`` metrics; the default supernet
(``accuracy_table``, ``supernet_accuracy``) is loaded by :func:`load_default_supernet`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from absl import flags

from nasjax import cli
from nasjax.errors import require


@dataclass(frozen=True)
class BlockProfileConfig:
    space: str = cli.option("nasbench201", help="Search space (nasbench201 | mobilenetv3_layers).")
    num_archs: int = cli.option(10, help="Architectures per block (and for the baseline).")
    blocks: tuple[str, ...] = cli.option((), help="Blocks to profile: '<position>:<choice>' or "
                                         "'<unit>/<layer>/<choice>'.")
    all: bool = cli.option(False, help="Profile every block of the space.")
    metrics: tuple[str, ...] = cli.option(("accuracy", "latency/pixel3"), help="Metric names (see "
                                          "nasjax.profiling.sources).")
    save: str = cli.option("profile", help="Experiment name: results in <save_root>/<space>/<save>/.")
    save_root: str = cli.option("logs", help="Root of the results (the original: logs).")
    seed: int = cli.option(0, help="Seed of the samples (per-block streams).")
    resolution: int = cli.option(224, help="Input resolution of the MobileNetV3 cost models and predictor.")
    predictor: str = cli.option("", help="Sequence latency predictor file (.npz) for latency/<setting> metrics.")
    plots: bool = cli.option(True, help="Write a heat map per metric.")


CONFIG_FLAGS = cli.define_config_flags(BlockProfileConfig)


def load_default_supernet() -> dict:
    """The embedded default supernet (tables, weights, manifest) with its dataset: the one place to repoint."""
    from nasjax.default import load_default, load_recipe_dataset

    d = dict(load_default())
    d["dataset"] = load_recipe_dataset(d["manifest"]["recipe"])
    return d


def _file_name(metric: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", metric)


def main() -> None:
    from pathlib import Path

    from nasjax.profiling.plots import plot_block_profile
    from nasjax.profiling.profiles import profile_blocks
    from nasjax.profiling.sampling import all_blocks, parse_blocks
    from nasjax.profiling.sources import build_sources
    from nasjax.spaces import get_space
    from nasjax.spaces.structure import structure_of

    cfg = cli.config_from_flags(BlockProfileConfig)
    require(cfg.all != bool(cfg.blocks), "blocks/all", (list(cfg.blocks), cfg.all), "--all or --blocks, one of them")
    require(cfg.num_archs >= 1, "num_archs", cfg.num_archs, "a positive number of architectures per block")
    require(bool(re.fullmatch(r"[A-Za-z0-9_.-]+", cfg.save)), "save", cfg.save, "a name (letters, digits, _.-)")
    space = get_space(cfg.space)
    cli.check_output_dir(cfg.save_root, "save_root")
    out = cli.check_output_dir(Path(cfg.save_root) / cfg.space / cfg.save, "save_root")
    st = structure_of(space)
    blocks = all_blocks(space, st) if cfg.all else parse_blocks(space, st, cfg.blocks)
    kw = {}
    if cfg.space == "nasbench201":
        from nasjax.benchmarks import nasbench201 as nb

        kw["table"] = nb.load()
    names = list(cfg.metrics)
    if any(m in ("accuracy_table", "supernet_accuracy") for m in names):
        kw["default"] = load_default_supernet()
    if cfg.predictor:
        from nasjax.predictors.sequence import SequenceLatencyPredictor

        kw["predictor"] = SequenceLatencyPredictor.load(cfg.predictor)
    sources = build_sources(space, names, resolution=cfg.resolution, **kw)
    prof = profile_blocks(space, sources, cfg.num_archs, blocks=blocks, seed=cfg.seed, structure=st)
    with cli.ResultSet(out, manifest="summary.json") as rs:
        prof.write_csv(rs.path("profile.csv"))
        if cfg.plots:
            for m in prof.metrics:
                plot_block_profile(prof, m, rs.path(f"profile_{_file_name(m)}.png"))
        rs.summary = {"config": asdict(cfg), "space": space.name, "blocks": len(blocks),
                      "architectures": len(blocks) * cfg.num_archs + cfg.num_archs, "metrics": list(prof.metrics),
                      "units": list(prof.units)}
    print(json.dumps({k: v for k, v in rs.summary.items() if k != "config"}))


FLAGS = flags.FLAGS

if __name__ == "__main__":
    cli.run(main)
