"""Measure a latency table on this machine: ``python -m experiments.latency_table --space=... --runtime=...``.

Examples (full-size OFA MobileNetV3 with random weights, and the embedded default's stage-block view)::

    python -m experiments.latency_table --space=mobilenetv3_layers --runtime=onnxruntime --threads=1 \\
        --width=1.0 --resolution=224 --batch_size=1
    python -m experiments.latency_table --space=mobilenetv3 --weights=default --runtime=onnxruntime \\
        --threads=1 --resolution=16 --batch_size=256
    python -m experiments.latency_table --space=binas --runtime=onnxruntime --threads=1 --width=0.25 \\
        --num_classes=10 --in_channels=1 --resolution=32 --batch_size=256

Writes ``luts/<space>[_w<width>]/<device>-<runtime>-<resolution>px-b<batch>[-t<threads>].json`` (or
``--out``) atomically; finished chunks are kept in a partial file next to it, so a rerun continues.
``--refine=FILE`` times ``--refine_subnets`` random subnets end to end in the table's runtime and refines
its cells on them (:mod:`nasjax.hardware.lut_refine`), also resumable; ``--refit=FILE`` re-derives a table
from the times it stores (a refinement is re-applied on its stored subnets). The
XLA runtime's thread count is fixed when JAX starts: the command re-launches itself with the right
``XLA_FLAGS`` when needed. Bad input (unknown runtime or space, a resolution the space cannot take, a
damaged partial file) prints one line and exits 2 without writing anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nasjax import cli
from nasjax.errors import require


@dataclass(frozen=True)
class LatencyTableConfig:
    space: str = cli.option("mobilenetv3_layers",
                            help="Space: mobilenetv3 (stage blocks) | mobilenetv3_layers | binas (HardCoRe-NAS).")
    runtime: str = cli.option("xla", help="Runtime: xla | onnxruntime.")
    resolution: int = cli.option(224, help="Input resolution (pixels).")
    batch_size: int = cli.option(1, help="Images per call.")
    threads: int = cli.option(0, help="CPU threads (0 = all cores).")
    clock: str = cli.option("auto", help="auto (process CPU time for 1 thread, else wall time) | wall | cpu.")
    width: float = cli.option(1.0, help="Width multiplier of a randomly initialised supernet (--weights=random).")
    num_classes: int = cli.option(1000, help="Classes of a randomly initialised supernet (--weights=random).")
    in_channels: int = cli.option(3, help="Input channels of a randomly initialised supernet (--weights=random).")
    weights: str = cli.option("random", help="random | default (the embedded default) | a weights directory.")
    warmup: int = cli.option(5, help="Untimed rounds per chunk.")
    repeats: int = cli.option(30, help="Timed interleaved rounds per chunk.")
    context_subnets: int = cli.option(24, help="Random subnets timed end to end for the in-network fit (0: none).")
    statistic: str = cli.option("", help="Each program's time over the timed rounds: median | q25 | q10 (10th "
                                "percentile) | min; empty: the runtime's default for a build (q10 for onnxruntime, "
                                "median for xla), the table's own for --refit (which can also turn it into median).")
    out: str = cli.option("", help="Output file (default: luts/<space>[_w<width>]/<device>-...json).")
    refit: str = cli.option("", help="A table file made by this command: re-derive its model (o, in-network fit) "
                            "from the times it stores, no timing; written to --out or back to the file.")
    refine: str = cli.option("", help="A table file made by this command: time --refine_subnets random subnets end to "
                             "end in its runtime and refine its cells on them (nasjax.hardware.lut_refine); written "
                             "to --out or back to the file; resumable.")
    refine_subnets: int = cli.option(100, help="Subnets timed end to end for --refine.")
    refine_seed: int = cli.option(20261203, help="Seed of the --refine subnets (not the validation's seed 1).")
    progress: bool = cli.option(True, help="Progress bars.")


CONFIG_FLAGS = cli.define_config_flags(LatencyTableConfig)


def supernet(weights: str, width: float, space: str = "mobilenetv3_layers", num_classes: int = 1000,
             in_channels: int = 3, config=None):
    """``(state, config, block_set)``: random weights of ``space``'s supernet at ``width`` (ImageNet shapes by
    default; ``config``, a ``SupernetConfig``, overrides the shape), the embedded default, or a weights
    directory (``nasjax.train.trainer.save_weights``)."""
    from nasjax.profiling.contributions import nasjax_block_set

    if weights == "random":
        from nasjax.hardware.lut_builder import LUT_SPACES
        from nasjax.train.trainer import init_state

        cfg = config or LUT_SPACES.get(space).supernet_config(width, num_classes, in_channels)
        return init_state(cfg, 0), cfg, nasjax_block_set()
    if weights == "default":
        from nasjax.default import load_default

        d = load_default()
        return d["state"], d["config"], d["block_set"]
    from nasjax.train.trainer import load_weights

    state, cfg, _ = load_weights(weights)
    return state, cfg, nasjax_block_set()


def table_lut_space(table):
    """The latency-table space of a builder table, on a supernet of its shapes (weights as its provenance
    says: random weights are re-drawn, latency does not depend on them)."""
    from nasjax.hardware import lut_builder as lb
    from nasjax.models.mobilenetv3 import SupernetConfig

    prov = table.provenance
    shape = SupernetConfig.from_dict(prov["supernet_config"]) if prov.get("supernet_config") else None
    state, cfg, bs = supernet(prov.get("weights", "random"), prov.get("width", 1.0), prov["space"], config=shape)
    if prov.get("block_set"):
        from nasjax.spaces.mobilenetv3 import BlockSet

        bs = BlockSet.from_dict(prov["block_set"])
    return lb.lut_space(prov["space"], state, cfg, bs)


def refit(cfg: LatencyTableConfig):
    """Re-derive the table ``cfg.refit`` from its stored times (``cfg.statistic``: keep or median); returns
    ``(table, path)``."""
    from nasjax.hardware import lut_builder as lb
    from nasjax.tables import Table

    src = Path(cfg.refit)
    require(src.is_file(), "refit", cfg.refit, "an existing table file")
    table = Table.load(src)
    out = Path(cfg.out) if cfg.out else src
    cli.check_output_dir(out.parent, "out")
    return lb.refit_table(table, table_lut_space(table), out=out, statistic=cfg.statistic or None), out


def refine(cfg: LatencyTableConfig):
    """Refine the table ``cfg.refine`` on subnets timed end to end (its runtime, threads and protocol); returns
    ``(table, path)``."""
    from nasjax.hardware import lut_refine
    from nasjax.io import enable_jax_cache
    from nasjax.tables import Table

    src = Path(cfg.refine)
    require(src.is_file(), "refine", cfg.refine, "an existing table file")
    table = Table.load(src)
    prov = table.provenance
    require(prov.get("method") == "nasjax.hardware.lut_builder.build_table", "refine", cfg.refine,
            "a table written by this command (provenance.method = nasjax.hardware.lut_builder.build_table)")
    require(isinstance(cfg.refine_subnets, int) and cfg.refine_subnets >= 2 * lut_refine.REFINE_FOLDS,
            "refine_subnets", cfg.refine_subnets, f"an integer >= {2 * lut_refine.REFINE_FOLDS}")
    out = Path(cfg.out) if cfg.out else src
    cli.check_output_dir(out.parent, "out")
    runtime = get_runtime_or_relaunch(prov["runtime"], int(prov["threads"]), prov.get("clock", "wall"))
    enable_jax_cache()
    t = lut_refine.refine_table(table_lut_space(table), runtime, table, num_subnets=cfg.refine_subnets,
                                seed=cfg.refine_seed, out=out, progress=cfg.progress)
    return t, out


def build(cfg: LatencyTableConfig):
    """Build (or resume) the table of ``cfg``; returns ``(table, path)``."""
    from nasjax.hardware import lut_builder as lb
    from nasjax.io import enable_jax_cache, repo_root

    lb.LUT_SPACES.get(cfg.space)
    runtime = get_runtime_or_relaunch(cfg.runtime, cfg.threads, cfg.clock)
    require(cfg.weights in ("random", "default") or Path(cfg.weights).is_dir(), "weights", cfg.weights,
            "random, default or a weights directory")
    enable_jax_cache()
    state, scfg, bs = supernet(cfg.weights, cfg.width, cfg.space, cfg.num_classes, cfg.in_channels)
    lspace = lb.lut_space(cfg.space, state, scfg, bs)
    lspace.check_resolution(cfg.resolution)
    width = scfg.width_mult if cfg.weights == "random" else None
    out = Path(cfg.out) if cfg.out else lb.table_path(repo_root() / "luts", cfg.space, runtime.name, runtime.threads,
                                                     cfg.resolution, cfg.batch_size, width=width)
    cli.check_output_dir(out.parent, "out")
    table = lb.build_table(lspace, runtime, batch_size=cfg.batch_size, resolution=cfg.resolution,
                           warmup=cfg.warmup, repeats=cfg.repeats, out=out, progress=cfg.progress,
                           context_subnets=cfg.context_subnets, statistic=cfg.statistic or None,
                           extra_provenance={"weights": cfg.weights, "width": scfg.width_mult})
    return table, out


def get_runtime_or_relaunch(name: str, threads: int, clock: str = "auto"):
    """The runtime; for XLA with a thread count this process cannot have, re-run the command in a
    subprocess with the right ``XLA_FLAGS`` and exit with its code."""
    from nasjax.hardware import runtimes as rt

    rt.get_runtime_class(name)
    if name == "xla" and not rt.xla_threads_ready(rt.XlaRuntime.normal_threads(threads)):
        raise SystemExit(rt.relaunch_with_threads(rt.XlaRuntime.normal_threads(threads)))
    return rt.get_runtime(name, threads, clock)


def main() -> None:
    cfg = cli.config_from_flags(LatencyTableConfig)
    require(not (cfg.refit and cfg.refine), "refit/refine", (cfg.refit, cfg.refine), "at most one of them")
    table, out = refit(cfg) if cfg.refit else refine(cfg) if cfg.refine else build(cfg)
    print(f"wrote {out}: {table.space} {table.provenance['runtime']} threads={table.provenance['threads']} "
          f"base {table.base:.4f} ms, o {table.provenance['per_program_overhead_ms_o']:.4f} ms")
    fit = table.provenance.get("in_network_fit")
    if fit:
        def f(v, d):
            return "n/a" if v is None else f"{v:.{d}f}"

        terms = fit.get("terms", {"params_m": fit.get("gamma_ms_per_mparam", 0.0)})
        gam = ", ".join(f"gamma_{k} {v:.4f}" for k, v in terms.items()) or "no feature terms"
        print(f"in-network fit on {fit['n_subnets']} subnets: alpha {fit['alpha']:.4f}, beta {fit['beta_ms']:.4f} ms, "
              f"{gam}; in-sample MAPE "
              f"{f(fit['in_sample_plain']['mape_percent'], 2)} -> {f(fit['in_sample_fitted']['mape_percent'], 2)} %, "
              f"tau {f(fit['in_sample_plain']['kendall_tau'], 3)} -> {f(fit['in_sample_fitted']['kendall_tau'], 3)}")
    r = table.provenance.get("refinement")
    if r:
        cv = r["cross_validated"]
        u, v = cv["unrefined"], cv["refined"]
        print(f"refined on {r['n_subnets']} subnets timed end to end ({r['method']}, tau {r['tau']:g}); "
              f"{cv['folds']}-fold cross-validated MAPE {u['mape_percent']:.2f} -> {v['mape_percent']:.2f} %, "
              f"Kendall tau {u['kendall_tau']:.3f} -> {v['kendall_tau']:.3f}, within 10 % "
              f"{100 * u['within_10_percent']:.0f} -> {100 * v['within_10_percent']:.0f} %")


if __name__ == "__main__":
    cli.run(main)
