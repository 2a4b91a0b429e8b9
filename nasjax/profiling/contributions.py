"""Block-contribution matrices computed by the supernet (MathNAS, NeurIPS 2023; block profiling, CIKM 2021).

For a base subnet ``B`` and every position ``i`` and choice ``c``, the contribution is the accuracy lost
when that one position changes from ``B``::

    values[i, c] = acc(B) - acc(B with a_i := c)          (values[i, B_i] = 0)

and the additive predictor is MathNAS's ``acc(a) ~= acc(B) - sum_i values[i, a_i]``, i.e. a
:class:`~nasjax.tables.Table` with ``base = acc(B)``, ``sign = -1``, unit ``%`` (MathNAS's published
MobileNetV3 tables use the largest block as ``B`` -- "drop vs block 4" -- and so does nasjax).

Two views of the same supernet:

* ``"stage"``: MathNAS's 5 stages x 5 stage blocks of a :class:`BlockSet` (``nasjax_block_set()`` by
  default: per stage, five configurations from the smallest ``d2 e3 k3`` to the largest ``d4 e6 k7``);
  ``1 + sum_s (K_s - 1)`` subnets.
* ``"layers"``: ``mobilenetv3_layers`` (kernel x expand per layer, depth per stage);
  ``1 + 20 * 8 + 5 * 2 = 171`` subnets around the largest subnet.

Every subnet of a matrix is evaluated by :func:`nasjax.train.evaluate.evaluate_subnets` -- stacked
subnets, ``vmap``-ed, jit-compiled once, with per-subnet BatchNorm recalibration on fixed training
batches -- in batched passes.
"""

from __future__ import annotations

import time

import numpy as np

from nasjax.data.datasets import ImageDataset, batch_indices
from nasjax.errors import require
from nasjax.io import utc_stamp
from nasjax.spaces.mobilenetv3 import BlockSet, layers_to_ofa, mobilenetv3_layers_space
from nasjax.tables import Table

# (d, e, ks) per block, smallest to largest; the same five shapes for each of the 5 stages.
_NASJAX_BLOCKS = (
    (2, (3, 3, 3, 3), (3, 3, 3, 3)),
    (2, (6, 4, 3, 3), (5, 5, 3, 3)),
    (3, (4, 4, 4, 3), (5, 5, 5, 3)),
    (4, (6, 4, 4, 4), (7, 5, 5, 5)),
    (4, (6, 6, 6, 6), (7, 7, 7, 7)),
)


def nasjax_block_set() -> BlockSet:
    """nasjax's own stage-block set for its supernets (5 stages x 5 blocks, block 4 = largest)."""
    stage = tuple({"d": d, "e": list(e), "ks": list(k)} for d, e, k in _NASJAX_BLOCKS)
    return BlockSet("nasjax-mbv3-5x5", tuple(tuple(dict(c, e=list(c["e"]), ks=list(c["ks"])) for c in stage)
                                            for _ in range(5)))


def one_change_archs(num_choices, base) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``base`` followed by every single-position change of it; returns archs and their (i, c) cells.

    Args:
      num_choices: the choice count of each position.
      base: the base choice vector ``[P]``.

    Returns:
      ``(archs, cells)``: int64 ``[1 + sum_i (K_i - 1), P]`` (``base`` first, then position-major changes) and
      the ``(position, choice)`` of each change, in the same order.
    """
    base = np.asarray(base, np.int64)
    archs, cells = [base.copy()], []
    for i, k in enumerate(num_choices):
        for c in range(int(k)):
            if c != base[i]:
                a = base.copy()
                a[i] = c
                archs.append(a)
                cells.append((i, c))
    return np.stack(archs), cells


def eval_data(dataset: ImageDataset, *, eval_limit: int | None = None, eval_batch: int = 500,
              calib_size: int = 256, calib_batch: int = 128, calib_seed: int = 0):
    """Fixed evaluation batches (val split, stored order) and calibration batches (train, seeded).

    Args:
      dataset: the image dataset.
      eval_limit: the number of val images, or ``None`` for the whole split.
      eval_batch: images per evaluation batch.
      calib_size: training images used for BatchNorm recalibration (batch 0 of :func:`batch_indices`).
      calib_batch: images per calibration batch.
      calib_seed: the seed of the calibration images.

    Returns:
      ``(data, calib)``: a list of ``(images, labels)`` evaluation batches and a list of calibration image
      batches.
    """
    n = len(dataset.val) if eval_limit is None else min(int(eval_limit), len(dataset.val))
    data = [dataset.val.get(np.arange(s, min(n, s + eval_batch))) for s in range(0, n, eval_batch)]
    idx = batch_indices(len(dataset.train), calib_size, calib_seed, 0)
    calib = [dataset.train.get(idx[s:s + calib_batch])[0] for s in range(0, calib_size, calib_batch)]
    return data, calib


def evaluate_archs(state, subnets: dict, data, calib, *, chunk_size: int = 8, group: int = 32,
                   progress: bool = True, desc: str = "evaluating subnets") -> np.ndarray:
    """Accuracy (%) of stacked ``subnets`` (BN recalibrated), in groups for a progress bar.

    Args:
      state: the trained supernet's state (:mod:`nasjax.train`).
      subnets: stacked subnet arrays (``stack_subnets`` of OFA dicts), ``N`` subnets.
      data: evaluation batches ``[(images, labels)]`` (:func:`eval_data`).
      calib: calibration image batches (:func:`eval_data`).
      chunk_size: subnets evaluated together in one ``vmap``-ed program.
      group: subnets per progress-bar step (rounded to a multiple of ``chunk_size``).
      progress: show a tqdm bar.
      desc: the bar's label.

    Returns:
      float64 ``[N]`` top-1 accuracy, %.
    """
    from nasjax.models.mobilenetv3 import index_subnets, num_subnets
    from nasjax.train.evaluate import evaluate_subnets

    n = num_subnets(subnets)
    group = max(chunk_size, (group // chunk_size) * chunk_size)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=desc, unit="subnet", dynamic_ncols=True)
    out = []
    for s in range(0, n, group):
        part = index_subnets(subnets, np.arange(s, min(n, s + group)))
        out.append(evaluate_subnets(state, part, data, calib, chunk_size=chunk_size))
        if bar is not None:
            bar.update(len(out[-1]))
    if bar is not None:
        bar.close()
    return np.concatenate(out)


def stage_archs_to_subnets(block_set: BlockSet, archs: np.ndarray) -> dict:
    """Stage-block choice vectors of ``block_set`` as stacked OFA subnet arrays.

    Args:
      block_set: the stage-block set the choices index.
      archs: ``[5]`` or ``[N, 5]`` stage-block choice vectors.

    Returns:
      The stacked subnet dict (``ks``, ``e``, ``d`` arrays with a leading ``N`` axis).

    Raises:
      NasjaxInputError: when a choice vector is not valid for the block set.
    """
    from nasjax.models.mobilenetv3 import stack_subnets

    return stack_subnets([{k: np.asarray(v) for k, v in block_set.to_ofa(a).items() if k != "encodearch"}
                          for a in np.atleast_2d(archs)])


def layer_archs_to_subnets(archs: np.ndarray) -> dict:
    """``mobilenetv3_layers`` choice vectors as stacked OFA subnet arrays.

    Args:
      archs: ``[25]`` or ``[N, 25]`` layer-view choice vectors.

    Returns:
      The stacked subnet dict (``ks``, ``e``, ``d`` arrays with a leading ``N`` axis).

    Raises:
      NasjaxInputError: when a choice vector is not valid.
    """
    from nasjax.models.mobilenetv3 import stack_subnets

    return stack_subnets([{k: np.asarray(v) for k, v in layers_to_ofa(a).items()} for a in np.atleast_2d(archs)])


def one_change_table(accuracy_fn, space, base, *, space_name: str | None = None, provenance: dict | None = None):
    """Contribution table of any positions x choices space (one batched call of ``accuracy_fn``).

    values[i, c] = acc(B) - acc(B with a_i := c),  acc(a) ~= acc(B) - sum_i values[i, a_i]

    Args:
      accuracy_fn: ``archs [N, P] -> acc [N]`` (%), called once on ``base`` and all its single-position changes.
      space: the search space.
      base: the base choice vector ``B`` ``[P]``.
      space_name: the table's space name (default ``space.name``).
      provenance: further provenance entries.

    Returns:
      The accuracy :class:`~nasjax.tables.Table` (``base = acc(B)``, ``sign = -1``, unit ``%``).

    Raises:
      NasjaxInputError: on an invalid ``base``, or when ``accuracy_fn`` does not return one finite accuracy per
        architecture.
    """
    base = space.validate(base, "base")
    archs, cells = one_change_archs(space.num_choices, base)
    acc = np.asarray(accuracy_fn(archs), np.float64)
    require(acc.shape == (len(archs),) and np.all(np.isfinite(acc)), "accuracy_fn output", acc.shape,
            f"{len(archs)} finite accuracies")
    vals = np.zeros(space.mask.shape)
    for (i, c), a in zip(cells, acc[1:]):
        vals[i, c] = acc[0] - a
    prov = {"definition": "values[i,c] = acc(B) - acc(B with a_i := c); acc(a) ~= base - sum_i values[i, a_i]",
            "base_arch": [int(x) for x in base], "base_accuracy_percent": float(acc[0]),
            "subnets_evaluated": len(acc), **(provenance or {})}
    return Table(vals, space.mask, "accuracy", "%", float(acc[0]), -1, None, space_name or space.name, prov)


def contribution_table(state, config, dataset: ImageDataset, *, view: str = "stage", block_set: BlockSet | None = None,
                       base=None, eval_limit: int | None = None, calib_size: int = 256, calib_seed: int = 0,
                       chunk_size: int = 8, progress: bool = True) -> Table:
    """The accuracy-contribution table of ``view`` (``"stage"`` or ``"layers"``); see the module docstring.

    values[i, c] = acc(B) - acc(B with a_i := c); every subnet evaluated on the val split with BatchNorm
    recalibrated on ``calib_size`` training images.

    Args:
      state: the trained supernet's state.
      config: its ``SupernetConfig`` (recorded in the provenance).
      dataset: the image dataset.
      view: ``"stage"`` (MathNAS's stage blocks) or ``"layers"`` (``mobilenetv3_layers``).
      block_set: the stage-block set of the ``"stage"`` view (default :func:`nasjax_block_set`).
      base: a choice vector of the view's space (default: the largest subnet).
      eval_limit: the number of val images, or ``None`` for the whole split.
      calib_size: training images for BatchNorm recalibration.
      calib_seed: the seed of the calibration images.
      chunk_size: subnets evaluated together in one ``vmap``-ed program.
      progress: show a tqdm bar.

    Returns:
      The accuracy :class:`~nasjax.tables.Table` (``sign = -1``, unit ``%``; provenance: method, view, dataset,
      images, recalibration, supernet config, date, seconds).

    Raises:
      NasjaxInputError: on another view or an invalid ``base``.
    """
    require(view in ("stage", "layers"), "view", view, "'stage' or 'layers'")
    t0 = time.perf_counter()
    if view == "stage":
        block_set = block_set or nasjax_block_set()
        space = block_set.space()
        to_subnets = lambda archs: stage_archs_to_subnets(block_set, archs)
    else:
        space = mobilenetv3_layers_space()
        to_subnets = layer_archs_to_subnets
    base = (space.num_choices - 1) if base is None else base
    data, calib = eval_data(dataset, eval_limit=eval_limit, calib_size=calib_size, calib_seed=calib_seed)

    def accuracy_fn(archs):
        return evaluate_archs(state, to_subnets(archs), data, calib, chunk_size=chunk_size, progress=progress,
                              desc=f"contributions ({view})")

    prov = {
        "method": "nasjax.profiling.contributions.contribution_table", "view": view,
        "dataset": dataset.name, "eval_split": "val", "eval_images": int(sum(len(y) for _, y in data)),
        "bn_recalibration": f"{calib_size} train images (batch_indices seed {calib_seed}, step 0)",
        "supernet_config": config.to_dict(),
        "date": utc_stamp(),
    }
    if view == "stage":
        prov["block_set"] = block_set.to_dict()
    t = one_change_table(accuracy_fn, space, base, space_name="mobilenetv3" if view == "stage" else space.name,
                         provenance=prov)
    t.provenance["seconds"] = round(time.perf_counter() - t0, 2)
    return t
