"""Write the block-profiling pictures of the docs (``docs/img/profile_*.png``) from the project's code.

    NASJAX_SHARED_DATA=../shared/data python scripts/make_profile_figures.py [--predictor FILE.npz] [--out docs/img]

* ``profile_nb201_devices.png``: NAS-Bench-201's 30 blocks (edge x operation) on every HELP and OneProxy
  device, relative to each device's median network, with the accuracy effect of each block on top and
  the devices ordered and grouped by their profiles.
* ``profile_ofa_blocks.png``: OFA MobileNetV3's unit x layer x block profile (``rel_mean``, 40 architectures
  per block): latency on ``--device`` from a sequence predictor file (``scripts/bench_profiling.py
  --save_predictor FILE``) when given, else analytic FLOPs at 224 px.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> list[str]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--predictor", default="")
    ap.add_argument("--device", default="titan_rtx_32")
    ap.add_argument("--num_archs", type=int, default=40)
    args = ap.parse_args(argv)
    from nasjax.benchmarks import nasbench201 as nb
    from nasjax.profiling.devices import device_profiles, nb201_columns
    from nasjax.profiling.plots import plot_block_profile, plot_device_profiles
    from nasjax.profiling.profiles import profile_blocks
    from nasjax.profiling.sources import build_sources
    from nasjax.spaces import get_space

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    acc, lats, src = nb201_columns(nb.load())
    dp = device_profiles(get_space("nasbench201"), acc, lats, src)
    p1 = out / "profile_nb201_devices.png"
    plot_device_profiles(dp, p1, "NAS-Bench-201: block cost per device (CIFAR-10 accuracy effect on top)")
    space = get_space("mobilenetv3_layers")
    if args.predictor:
        from nasjax.predictors.sequence import SequenceLatencyPredictor

        pred = SequenceLatencyPredictor.load(args.predictor)
        sources = build_sources(space, [f"latency/{args.device}"], predictor=pred)
        what = f"latency on {args.device} (sequence predictor, 224 px)"
    else:
        sources = build_sources(space, ["flops"])
        what = "MFLOPs (analytic, 224 px)"
    prof = profile_blocks(space, sources, args.num_archs, seed=0)
    p2 = out / "profile_ofa_blocks.png"
    plot_block_profile(prof, prof.metrics[0], p2, title=f"OFA MobileNetV3: {what}, mean of {args.num_archs} "
                       "networks with the block / median network")
    print("\n".join(str(p) for p in (p1, p2)))
    return [str(p1), str(p2)]


if __name__ == "__main__":
    main()
