"""Meta-validation of the few-shot latency model on its training devices (never the target).

One episode per held-out training device ``t`` (``meta_devices`` at most, seeded choice): in table mode the
model is rebuilt without ``t`` (basis, priors, experts: exactly the test-time procedure); in net mode the
basis net is shared and ``t`` is only excluded from the device experts and members. The episode adapts
with the references of the reference design (``meta_refs`` for :class:`FixedRefs` when given, else
``meta_k`` random rows; ``meta_k`` rows the episode's model designs for :class:`DOptimalRefs`) and is scored
by Spearman on ``t``'s other rows.

Stage 1 scores every candidate (expert set x tau in ``tau_grid`` + ``"auto"`` x blend rule) on the episodes
of the first reference design and ranks them by ``meta_objective``; stage 2 scores the best candidate on
every other design. The model keeps the ``meta_top`` best candidates (their log predictions are averaged)
and the design of highest objective; every score and its per-episode values go into ``model.meta``.
"""

from __future__ import annotations

import numpy as np

from nasjax import metrics
from nasjax.hardware.fewshot.config import Candidate, DOptimalRefs
from nasjax.hardware.fewshot.members import blend_logs, take


def _episodes(model, subs, design, x, lat, rng, table: bool, feats) -> list:
    cfg = model.config
    fixed = np.asarray(cfg.meta_refs, dtype=np.int64)
    designed = isinstance(design, DOptimalRefs)
    out = []
    for sub, excl, t, ok in subs:
        if designed:
            refs = ok[sub.select_refs(ok if table else x[ok], min(cfg.meta_k, len(ok) - 1), design)]
        else:
            refs = fixed if fixed.size else rng.choice(ok, size=min(cfg.meta_k, len(ok) - 1), replace=False)
        rest = np.setdiff1d(ok, refs)
        ff = ((sub.features_cache(refs), sub.features_cache(rest)) if table else (take(feats, refs), take(feats, rest)))
        out.append((sub, excl, t, refs, rest, ff))
    return out


def _run(episodes, lat, experts, tau, rules) -> dict:
    """Each rule's Spearman per episode, the candidate ``(experts, tau)`` adapted once per episode."""
    s = {r: [] for r in rules}
    for sub, excl, t, refs, rest, (f_ref, f_rest) in episodes:
        ad = sub.adapt(refs, lat[refs, t], exclude=excl, feats=f_ref, candidates=[Candidate(experts, tau)])
        logs = sub.member_logs(ad, f_rest)
        for r in rules:
            pred = blend_logs(logs, r.weights(ad.loo) if ad.loo else None)
            s[r].append(metrics.spearman(lat[rest, t], pred))
    return s


def meta_calibrate(model, x, lat) -> None:
    """Choose ``model.candidates`` and ``model.ref_design`` by meta-validation (see the module docstring).

    Args:
      model: a :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel` just built.
      x: its training features (table mode: the row ids ``[N, 1]``).
      lat: its training latencies ``[N, D]`` (ms).
    """
    cfg = model.config
    rng = np.random.default_rng(cfg.seed + 1)
    rules = cfg.candidate_rules()
    sets = cfg.candidate_expert_sets()
    designs = cfg.candidate_designs()
    table = model.meta.get("mode") == "table"
    feats = None if table else model.features_cache(x)
    held = np.arange(len(model.devices))
    if len(held) > cfg.meta_devices:
        held = np.sort(rng.choice(held, size=cfg.meta_devices, replace=False))
    subs = []
    for t in held:
        ok = np.flatnonzero(np.isfinite(lat[:, t]))
        if table:
            keep = [j for j in range(len(model.devices)) if j != t]
            sub = type(model).train_table(lat[:, keep], [model.devices[j] for j in keep], cfg,
                                                  row_name=model.meta["feature_spec"]["name"], calibrate=False,
                                                  arch_features=model.arrays.get("table_x"),
                                                  additive_features=model.arrays.get("table_xadd"))
            subs.append((sub, [], t, ok))
        else:
            subs.append((model, [model.devices[t]], t, ok))

    episodes = _episodes(model, subs, designs[0], x, lat, rng, table, feats)
    scores, per_episode = {}, {}
    for ex, tau in [(ex, tau) for ex in sets for tau in (*cfg.tau_grid, "auto")]:
        for r, v in _run(episodes, lat, ex, tau, rules).items():
            scores[Candidate(ex, tau, r)] = cfg.meta_objective(v)
            per_episode[Candidate(ex, tau, r)] = v
    best = max(scores, key=lambda c: scores[c])
    d_scores = {designs[0]: scores[best]}
    for d in designs[1:]:
        v = _run(_episodes(model, subs, d, x, lat, rng, table, feats), lat, best.experts, best.tau, (best.rule,))
        d_scores[d] = cfg.meta_objective(v[best.rule])
    model.candidates = sorted(scores, key=lambda c: -scores[c])[:cfg.meta_top]
    model.ref_design = max(designs, key=lambda d: d_scores[d])
    model.meta["meta_scores"] = {c.label(): v for c, v in scores.items()}
    model.meta["meta_episode_devices"] = [model.devices[t] for _, _, t, *_ in episodes]
    model.meta["meta_episode_scores"] = {c.label(): [round(float(s), 5) for s in v] for c, v in per_episode.items()}
    model.meta["design_scores"] = {str(d): v for d, v in d_scores.items()}
