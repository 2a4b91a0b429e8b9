"""Reading a BINAS accuracy model (Nayman et al., arXiv 2110.12399, Sec. 5: interpretability).

A bilinear model's coefficients say what each design choice buys. With ``c_l(k) = p_a[l, k] + mean_d
Q[l, k, stage(l), d]`` (the layer's contribution, averaged over the depths that contain it):

* width gain of layer ``l``: ``mean over kernel, SE of c_l(e_max, .) - c_l(e_min, .)``;
* kernel gain: ``mean c_l(., k_max, .) - c_l(., k_min, .)``; SE gain: ``mean c_l(., ., se) - c_l(., ., 0)``;
* depth gain of stage ``s``: ``E[stage value | depth d_max] - E[stage value | depth d_min]`` with the
  layers' configurations uniform, ``E[. | d] = p_b[s, d] + sum_{j < depth_d} mean_k (p_a + Q[., ., s, d])``.

:func:`insight_figures` returns these and the figures that test BINAS's stated insight ("adding depth and
width is more effective at deeper stages and at the beginning of each resolution stage"): Spearman's
correlation of the depth and width gains with the stage index, and the width gain of the first layer of
each stage that starts a new resolution (a stride-2 stage) against every other layer. It reports figures,
not a verdict. :func:`plot_coefficients` draws the coefficients per stage, layer and choice.
"""

from __future__ import annotations

import numpy as np

from nasjax.hardware.binas_latency import BilinearForm
from nasjax.io import atomic_path
from nasjax.metrics import spearman


def _layer_coefficients(model: BilinearForm) -> np.ndarray:
    st = model.structure
    needs = st.layer_needs.astype(float)  # [L, D]
    q = (model.within_stage() * needs[:, None, :]).sum(2) / np.maximum(needs.sum(1), 1.0)[:, None]
    return model.p_a + q  # [L, K]


def _gain(coef: np.ndarray, configs, attr: str) -> np.ndarray:
    """``[L]`` mean difference between the largest and the smallest value of ``attr``, the rest matched."""
    vals = sorted({getattr(c, attr) for c in configs})
    lo, hi = vals[0], vals[-1]
    diffs = []
    for i, c in enumerate(configs):
        if getattr(c, attr) != lo:
            continue
        j = [k for k, d in enumerate(configs) if getattr(d, attr) == hi and
             all(getattr(d, a) == getattr(c, a) for a in ("expansion", "kernel", "se") if a != attr)]
        if j:
            diffs.append(coef[:, j[0]] - coef[:, i])
    return np.mean(diffs, axis=0) if diffs else np.zeros(coef.shape[0])


def insight_figures(model: BilinearForm) -> dict:
    """The effects of depth, width, kernel and SE per stage and layer, and the figures of BINAS's insight.

    Args:
      model: a bilinear accuracy model (the contribution estimator or a fitted one).

    Returns:
      A dict of plain numbers: ``depth_gain [S]``, ``width_gain``/``kernel_gain``/``se_gain`` ``[S][max_depth]``,
      ``depth_gain_vs_stage_spearman``, ``width_gain_vs_stage_spearman`` (stage means), ``width_gain_first_of_
      resolution`` (mean over the first layers of stride-2 stages), ``width_gain_other_layers``, and
      ``resolution_start_stages``.
    """
    st = model.structure
    S, M = st.num_stages, st.max_depth
    coef = _layer_coefficients(model)
    width, kernel, se = (_gain(coef, st.configs, a).reshape(S, M) for a in ("expansion", "kernel", "se"))
    qw = model.within_stage()
    depth = np.zeros(S)
    for s in range(S):
        rows = np.flatnonzero(st.layer_stage == s)
        exp = [model.p_b[s, d] + sum((model.p_a[r] + qw[r, :, d]).mean() for r in rows[:st.depths[d]])
               for d in range(len(st.depths))]
        depth[s] = exp[-1] - exp[0]
    starts = [s for s, x in enumerate(st.stages) if x.stride == 2]
    first = np.zeros((S, M), bool)
    first[starts, 0] = True
    idx = np.arange(S, dtype=float)
    return {
        "depth_gain": depth.tolist(), "width_gain": width.tolist(), "kernel_gain": kernel.tolist(),
        "se_gain": se.tolist(),
        "depth_gain_vs_stage_spearman": spearman(idx, depth) if S > 1 and np.ptp(depth) > 0 else float("nan"),
        "width_gain_vs_stage_spearman": (spearman(idx, width.mean(1)) if S > 1 and np.ptp(width.mean(1)) > 0
                                         else float("nan")),
        "width_gain_first_of_resolution": float(width[first].mean()) if first.any() else float("nan"),
        "width_gain_other_layers": float(width[~first].mean()),
        "resolution_start_stages": [s + 1 for s in starts],
        "unit": model.unit,
    }


def plot_coefficients(model: BilinearForm, path, title: str = "") -> None:
    """PNG of a bilinear model's structure: layer coefficients, depth terms and per-layer gains.

    The layer coefficients ``c_l(k)`` (rows: stage/layer; columns: configurations), the depth terms ``p_b``
    per stage, and the width / kernel / SE / depth gains per stage and layer (:func:`insight_figures`).

    Args:
      model: the :class:`~nasjax.hardware.binas_latency.BilinearForm` (e.g. an accuracy model).
      path: the ``.png`` file to write.
      title: the figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    st = model.structure
    coef = _layer_coefficients(model)
    fig = insight_figures(model)
    f, axes = plt.subplots(1, 3, figsize=(15, 5.5), gridspec_kw={"width_ratios": [2.2, 0.7, 2.0]})
    ax = axes[0]
    im = ax.imshow(coef, aspect="auto", cmap="RdBu_r", vmin=-np.abs(coef).max(), vmax=np.abs(coef).max())
    ax.set_yticks(range(st.num_layers), [f"s{s + 1} l{j + 1}" for s, j in zip(st.layer_stage, st.layer_index)],
                  fontsize=7)
    ax.set_xticks(range(st.num_configs), [c.label for c in st.configs], rotation=70, fontsize=7)
    ax.set_title(f"layer contributions ({model.unit})")
    plt.colorbar(im, ax=ax, fraction=0.04)
    ax = axes[1]
    im = ax.imshow(model.p_b, aspect="auto", cmap="RdBu_r", vmin=-np.abs(model.p_b).max(), vmax=np.abs(model.p_b).max())
    ax.set_yticks(range(st.num_stages), [f"stage {s + 1}" for s in range(st.num_stages)], fontsize=8)
    ax.set_xticks(range(len(st.depths)), [f"d{d}" for d in st.depths])
    ax.set_title("depth terms p_b")
    plt.colorbar(im, ax=ax, fraction=0.08)
    ax = axes[2]
    x = np.arange(st.num_layers)
    for k, (name, off) in enumerate((("width", -0.3), ("kernel", -0.1), ("se", 0.1))):
        ax.bar(x + off, np.ravel(fig[f"{name}_gain"]), width=0.2, label=f"{name} gain", color=f"C{k}")
    ax.bar(np.arange(st.num_stages) * st.max_depth + (st.max_depth - 1) / 2 + 0.3, fig["depth_gain"], width=0.2,
           color="C3", label="depth gain (per stage)")
    ax.set_xticks(x, [f"s{s + 1}l{j + 1}" for s, j in zip(st.layer_stage, st.layer_index)], rotation=70, fontsize=7)
    ax.axhline(0, c="k", lw=0.5)
    ax.set_ylabel(model.unit)
    ax.legend(fontsize=8)
    ax.set_title("what each choice buys")
    if title:
        f.suptitle(title)
    f.tight_layout()
    with atomic_path(path) as tmp:
        f.savefig(tmp, format="png", dpi=110)
    plt.close(f)
