"""Export one subnet of an OFA MobileNetV3 supernet as a standalone ONNX model or a static Flax module.

The export is checked before anything is written: its logits on a random batch must equal the supernet's
(eval mode, the same BN statistics) to ``1e-4 * max(1, max |logit|)``; the command prints the difference.
Default weights: the embedded default (``luts/mobilenetv3_mnist``); default arch: the largest subnet::

    python -m experiments.export_subnet --arch=max --format=onnx --out=results/export
    python -m experiments.export_subnet --arch=results/mobilenetv3/quickstart/6ms.yml --format=flax --out=results/export
    python -m experiments.export_subnet --arch=0,1,2,0,4 --format=onnx --batch_size=0 --out=results/export

``--arch``: ``max`` | ``min`` | a yml/json file with OFA's ``ks``/``e``/``d`` lists (MathNAS ymls too; one
with only ``encodearch`` uses the default's block set) | 25 comma-separated ``mobilenetv3_layers`` choices |
5 comma-separated stage-block choices (``encodearch``, the default's block set). Output (one result set in
``--out``): ``subnet.onnx`` (input ``input`` NCHW float32) or ``subnet.npz`` (the static module's state,
:mod:`nasjax.hardware.model_io` format, input NHWC), and ``export.json`` (subnet, shapes, the check).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasjax import cli
from nasjax.errors import NasjaxInputError, require

FLAX_KIND = "nasjax.static_subnet"
LOAD = ("nasjax.hardware.model_io.load_nnx(path, build=lambda h: nasjax.export.static.static_subnet_like("
        f"h['supernet_config'], h['subnet']), kind='{FLAX_KIND}')")


@dataclass(frozen=True)
class ExportConfig:
    weights: str = cli.option("", help="Supernet weights: a directory written by save_weights, or a default "
                                       "directory with manifest.json (default: the embedded default).")
    arch: str = cli.option("max", help="max | min | yml/json file (ks/e/d or encodearch) | 25 layer choices | "
                                       "5 stage-block choices, comma-separated.")
    format: str = cli.option("onnx", choices=("onnx", "flax"), help="onnx (NCHW, BN folded) | flax (static NNX "
                                                                    "module state, NHWC).")
    out: str = cli.option("results/export", help="Output directory of the result set.")
    resolution: int = cli.option(0, help="Input side in pixels (0: the default's resolution, else 224).")
    batch_size: int = cli.option(1, help="ONNX batch dimension (0: symbolic 'N').")
    check_batch: int = cli.option(4, help="Images in the random batch of the equality check.")
    seed: int = cli.option(0, help="Seed of the check batch.")


cli.define_config_flags(ExportConfig)


def _default_dir() -> Path:
    from nasjax.default import DEFAULT_DIR

    return Path(DEFAULT_DIR)


def load_supernet(weights: str):
    """``(state, config, manifest | None, source)`` from ``--weights`` (default: the embedded default)."""
    from nasjax.train.trainer import load_weights

    d = Path(weights) if weights else _default_dir()
    require(d.is_dir(), "weights", str(d), "a directory (save_weights output, or a default with manifest.json)")
    manifest = None
    wdir = d
    if (d / "manifest.json").is_file():
        try:
            manifest = json.loads((d / "manifest.json").read_text())
        except json.JSONDecodeError as e:
            raise NasjaxInputError(f"weights: {str(d / 'manifest.json')!r} is not valid JSON ({e})") from None
        require(isinstance(manifest, dict) and isinstance(manifest.get("weights"), str), "weights",
                str(d / "manifest.json"), "a default manifest with a 'weights' entry")
        wdir = d / manifest["weights"]
    state, config, _ = load_weights(wdir)
    return state, config, manifest, str(wdir)


def _block_set(manifest, what: str):
    from nasjax.spaces.mobilenetv3 import BlockSet

    if manifest is None or "block_set" not in manifest:
        raise NasjaxInputError(f"arch: {what} needs a block set; expected --weights to be a default directory "
                               "whose manifest.json has one")
    return BlockSet.from_dict(manifest["block_set"])


def parse_arch(arch: str, config, manifest) -> dict:
    """``--arch`` -> OFA dict (validated against ``config`` by the exporter)."""
    from nasjax.io import read_yaml
    from nasjax.models.mobilenetv3 import max_subnet, min_subnet, subnet_to_ofa
    from nasjax.spaces.mobilenetv3 import layers_to_ofa

    a = arch.strip()
    if a in ("max", "min"):
        return subnet_to_ofa((max_subnet if a == "max" else min_subnet)(config))
    if Path(a).suffix.lower() in (".yml", ".yaml", ".json"):
        d = read_yaml(a, "arch")
        require(isinstance(d, dict), "arch", a, "a yml/json mapping with ks/e/d (or encodearch)")
        if "ks" not in d and "encodearch" in d:
            return _block_set(manifest, "an encodearch yml").to_ofa(d["encodearch"])
        return {k: d.get(k) for k in ("ks", "e", "d") if k in d}
    try:
        v = [int(x) for x in a.split(",")]
    except ValueError:
        raise NasjaxInputError(f"arch: got {a!r}, expected max, min, a .yml/.json file or comma-separated "
                               "integers (25 layer choices or 5 stage-block choices)") from None
    if len(v) == 5:
        return _block_set(manifest, "5 stage-block choices").to_ofa(v)
    if len(v) == 25:
        return layers_to_ofa(v)
    raise NasjaxInputError(f"arch: got {len(v)} integers, expected 25 (mobilenetv3_layers) or 5 (stage blocks)")


def main() -> None:
    import jax.numpy as jnp
    from absl import logging

    from nasjax.export import compiled, feature_shape, save_onnx, static_subnet, subnet_onnx
    from nasjax.models.mobilenetv3 import apply, subnet_arrays, validate_subnet

    logging.set_verbosity(logging.WARNING)  # orbax logs every restore step at INFO
    cfg = cli.config_from_flags(ExportConfig)
    out = cli.check_output_dir(cfg.out, "out")
    require(cfg.batch_size >= 0, "batch_size", cfg.batch_size, "0 (symbolic) or a positive integer")
    require(cfg.check_batch >= 1, "check_batch", cfg.check_batch, "a positive integer")
    state, config, manifest, source = load_supernet(cfg.weights)
    res = cfg.resolution or int((manifest or {}).get("resolution", 224))
    side, cin = feature_shape(config, res, -1)  # validates the resolution
    sub = validate_subnet(parse_arch(cfg.arch, config, manifest), config)

    n = cfg.batch_size if cfg.format == "onnx" and cfg.batch_size else cfg.check_batch
    x = np.random.default_rng(cfg.seed).standard_normal((n, side, side, cin)).astype(np.float32)
    ref = np.asarray(apply(state.graphdef, state.params, state.batch_stats, subnet_arrays(sub, config), jnp.asarray(x)))
    if cfg.format == "onnx":
        import onnxruntime as ort

        model = subnet_onnx(state, sub, batch_size=cfg.batch_size or None, resolution=res)
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"input": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]
        name, layout = "subnet.onnx", {"input": [cfg.batch_size or "N", cin, side, side], "layout": "NCHW"}
    else:
        from nasjax.hardware.model_io import save_nnx

        module = static_subnet(state, sub)
        got = np.asarray(compiled(module)(jnp.asarray(x)))
        name, layout = "subnet.npz", {"input": ["N", side, side, cin], "layout": "NHWC"}
    err, scale = float(np.abs(got - ref).max()), max(1.0, float(np.abs(ref).max()))
    ok = err <= 1e-4 * scale
    print(f"export check ({cfg.format}): max |export - supernet| = {err:.3g} on {n} random images, "
          f"logit scale {scale:.3g}, tolerance {1e-4 * scale:.3g}: {'equal' if ok else 'NOT EQUAL'}")
    if not ok:
        raise NasjaxInputError(f"export check: max abs difference {err:.3g}, expected <= {1e-4 * scale:.3g} "
                               "(nothing written)")
    summary = {"format": cfg.format, "subnet": sub, "resolution": res, "weights": source, **layout,
               "output": "logits [N, classes]",
               "check": {"max_abs_diff": err, "logit_scale": scale, "tolerance": 1e-4 * scale,
                         "images": n, "seed": cfg.seed}}
    with cli.ResultSet(out, manifest="export.json") as rs:
        if cfg.format == "onnx":
            save_onnx(model, rs.path(name))
        else:
            save_nnx(rs.path(name), module, kind=FLAX_KIND, version=1,
                     header={"supernet_config": config.to_dict(), "subnet": sub, "layout": "NHWC", "load": LOAD})
        rs.summary = summary
    print(f"wrote {out / name} and {out / 'export.json'}")


if __name__ == "__main__":
    cli.run(main)
