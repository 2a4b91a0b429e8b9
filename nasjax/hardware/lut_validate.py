"""A latency table against reality: random subnets timed end to end as static programs in the table's runtime.

For ``n`` random architectures ``a_j`` (seeded, disjoint from the builder's reference subnets in
practice: other seed), each subnet is built as one static program (:meth:`MobileNetV3Pieces.subnet`) and
timed interleaved with the others of its chunk; the table predicts ``p_j`` (:meth:`LutSpace.predict`).
Reported with :func:`nasjax.metrics.latency_metrics` (``y_true`` = measured ``m_j``, ``y_pred`` = ``p_j``):
MAPE, Kendall tau, share within +-10 %, worst error.

Where the plain sum is off by a systematic factor (the parts of a network run faster or slower together
than alone), :func:`linear_correction` fits ``m ~ alpha * p + beta`` on a *fit* half of the subnets and
reports the metrics on the *held-out* half only. :func:`calibrate_scale` is the one-number version used
at start-up: ``scale = median_r (m_r / p_r)`` over ``k`` reference subnets, ``p' = scale * p``.
"""

from __future__ import annotations

import numpy as np

from nasjax.errors import require
from nasjax.hardware.lut_builder import LutSpace, drift_factors, time_with_anchor
from nasjax.hardware.runtimes import Runtime, resolve_statistic
from nasjax.metrics import latency_metrics
from nasjax.tables import Table

GOALS = {"mape_percent": 5.0, "kendall_tau": 0.9, "within_10_percent": 0.95}
CALIBRATION_K = 5  # subnets of the fit half whose measured/predicted ratio rescales the table


def measure_archs(lspace: LutSpace, runtime: Runtime, archs, *, batch_size: int, resolution: int, warmup: int = 5,
                  repeats: int = 20, chunk_size: int = 25, progress: bool = True,
                  statistic: str | None = None, with_anchor: bool = False):
    """End-to-end latency (ms per call) of each architecture as its own static program in ``runtime``.

    Args:
        lspace: the space on its supernet.
        runtime: the runtime (the table's).
        archs: ``[N, P]`` choice vectors.
        batch_size, resolution: the input.
        warmup, repeats: per chunk, as in :func:`time_interleaved`.
        chunk_size: subnets compiled and timed together (bounds memory).
        progress: a tqdm bar over the subnets.
        statistic: the estimate over the timed rounds (:data:`nasjax.hardware.runtimes.STATISTICS`); a
            table's validation uses the table's own; ``None``: the runtime's default
            (:func:`nasjax.hardware.runtimes.default_statistic`).
        with_anchor: also return the anchor subnet's time at the speed the chunks were brought to.

    Returns:
        ``[N]`` estimates in ms; with more than one chunk, each chunk is brought to the median machine speed
        with the anchor subnet timed in every chunk (:func:`nasjax.hardware.lut_builder.drift_factors`). With
        ``with_anchor``: ``(estimates, anchor ms)``, the anchor's ms the median over the chunks.
    """
    archs = np.atleast_2d(np.asarray(archs, np.int64))
    require(isinstance(chunk_size, int) and chunk_size >= 1, "chunk_size", chunk_size, "a positive integer")
    statistic = resolve_statistic(statistic, runtime.name)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(archs), desc=f"end-to-end {lspace.name} ({runtime.label})", unit="subnet",
                   dynamic_ncols=True)
    out = np.empty(len(archs))
    anchor = runtime.prepare(lspace.pieces.subnet(lspace.to_subnet(lspace.anchor_arch())), batch_size, resolution)
    anchors = []
    for lo in range(0, len(archs), chunk_size):
        chunk = archs[lo:lo + chunk_size]
        t, a_ms = measure_chunk(lspace, runtime, anchor, chunk, batch_size=batch_size, resolution=resolution,
                                warmup=warmup, repeats=repeats, statistic=statistic, bar=bar)
        out[lo:lo + len(chunk)] = t.times_ms
        anchors.append((lo, lo + len(chunk), a_ms))
    for (lo, hi, _), f in zip(anchors, drift_factors([a for _, _, a in anchors])):
        out[lo:hi] *= f
    if bar is not None:
        bar.close()
    if with_anchor:
        return out, float(np.median([a for _, _, a in anchors]))
    return out


def measure_chunk(lspace: LutSpace, runtime: Runtime, anchor, archs, *, batch_size: int, resolution: int,
                  warmup: int, repeats: int, statistic: str, bar=None):
    """One chunk of subnets, each compiled as its own static program, timed interleaved with ``anchor`` (a
    prepared program timed in every chunk); returns ``(Timing of the subnets, the anchor's ms)``
    (:func:`nasjax.hardware.lut_builder.time_with_anchor`). ``bar``: a tqdm bar advanced per compiled subnet."""
    calls = []
    for a in np.atleast_2d(np.asarray(archs, np.int64)):
        calls.append(runtime.prepare(lspace.pieces.subnet(lspace.to_subnet(a)), batch_size, resolution))
        if bar is not None:
            bar.update(1)
    return time_with_anchor(runtime, anchor, calls, warmup=warmup, repeats=repeats, statistic=statistic)


def measure_until_stable(measure, *, tolerance: float = 0.05, max_rounds: int = 4) -> tuple[np.ndarray, int]:
    """Repeat a timing until two consecutive rounds agree, for short timings on a machine shared with others.

    Interference (another job, a neighbour on the same host) only ever slows a program down, and on this
    kind of machine it can last seconds, longer than one round of a few subnets. Rounds are repeated until
    ``median_i |m_i^(t) / m_i^(t-1) - 1| <= tolerance`` or ``max_rounds`` is reached; the result is the
    elementwise minimum over the rounds.

    Args:
      measure: a zero-argument callable returning ``[N]`` latencies (ms), e.g. a :func:`measure_archs` call.
      tolerance: relative agreement of two consecutive rounds that ends the repetition.
      max_rounds: at most this many rounds (>= 1).

    Returns:
      ``(latencies [N], rounds)``.
    """
    require(isinstance(max_rounds, int) and max_rounds >= 1, "max_rounds", max_rounds, "a positive integer")
    rounds = [np.asarray(measure(), np.float64)]
    while len(rounds) < max_rounds and (len(rounds) < 2 or
                                        np.median(np.abs(rounds[-1] / rounds[-2] - 1.0)) > tolerance):
        rounds.append(np.asarray(measure(), np.float64))
    return np.min(rounds, axis=0), len(rounds)


def calibrate_scale(predicted, measured) -> float:
    """``median_r (measured_r / predicted_r)``: the factor that moves a table to this machine's speed."""
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    require(p.shape == m.shape and p.size >= 1 and np.all(p > 0) and np.all(m > 0), "predicted/measured",
            (p.shape, m.shape), "equal-length positive latencies")
    return float(np.median(m / p))


def scaled_table(table: Table, scale: float) -> Table:
    """``table`` moved to this machine's speed: every cell and the base times ``scale``, recorded in the
    provenance as ``calibration_scale``."""
    from dataclasses import replace

    require(np.isfinite(scale) and scale > 0, "calibration scale", scale, "a positive finite factor")
    return replace(table, values=table.values * scale, base=table.base * scale,
                   provenance=dict(table.provenance, calibration_scale=float(scale)))


def calibrate_table(lspace: LutSpace, runtime: Runtime, table: Table, refs, *, batch_size: int, resolution: int,
                    warmup: int = 5, repeats: int = 20, progress: bool = False, statistic: str | None = None) -> dict:
    """Time the reference subnets ``refs`` end to end and scale ``table`` to this machine (the start-up
    calibration: ``scale = median_r (m_r / p_r)``, :func:`calibrate_scale`).

    The references are timed in rounds until two agree (:func:`measure_until_stable`), so that a few seconds
    of interference at start do not set the scale. ``statistic`` is :func:`measure_archs`' (``None``: the
    runtime's default); use the one the subnets checked against the calibrated table will be timed with.

    Returns:
      ``{"scale", "table" (:func:`scaled_table`), "reference_archs", "reference_measured_ms",
      "reference_predicted_ms", "timing_rounds"}``.
    """
    refs = np.atleast_2d(np.asarray(refs, np.int64))
    require(len(refs) >= 1, "reference subnets", len(refs), "at least one architecture")
    pred = lspace.predict(table, refs)
    meas, rounds = measure_until_stable(lambda: measure_archs(
        lspace, runtime, refs, batch_size=batch_size, resolution=resolution, warmup=warmup, repeats=repeats,
        progress=progress, statistic=statistic))
    scale = calibrate_scale(pred, meas)
    return {"scale": scale, "table": scaled_table(table, scale), "reference_archs": refs,
            "reference_measured_ms": meas, "reference_predicted_ms": pred, "timing_rounds": rounds}


def linear_correction(predicted, measured, fit_idx, test_idx) -> dict:
    """Fit ``measured ~ alpha * predicted + beta`` (least squares) on ``fit_idx``; metrics on ``test_idx``.

    Returns:
        ``{"alpha", "beta", "n_fit", "held_out": latency_metrics(measured[test], corrected[test])}``.
    """
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    fit_idx, test_idx = np.asarray(fit_idx), np.asarray(test_idx)
    require(len(np.intersect1d(fit_idx, test_idx)) == 0, "fit_idx/test_idx", "overlap", "disjoint index sets")
    require(len(fit_idx) >= 2 and len(test_idx) >= 2, "fit_idx/test_idx", (len(fit_idx), len(test_idx)),
            "at least 2 subnets each")
    alpha, beta = np.polyfit(p[fit_idx], m[fit_idx], 1)
    corrected = alpha * p + beta
    return {"alpha": float(alpha), "beta": float(beta), "n_fit": int(len(fit_idx)),
            "held_out": latency_metrics(m[test_idx], corrected[test_idx])}


def meets_goals(metrics: dict) -> bool:
    """MAPE <= 5 %, Kendall tau >= 0.9 and >= 95 % within +-10 % (:data:`GOALS`)."""
    return (metrics["mape_percent"] <= GOALS["mape_percent"] and metrics["kendall_tau"] >= GOALS["kendall_tau"]
            and metrics["within_10_percent"] >= GOALS["within_10_percent"])


def check_one_thread_xla(table: Table, runtime: Runtime) -> None:
    """A one-thread XLA table must have been timed pinned to one core (its provenance's ``cpu_affinity``):
    one timed with the single-thread ``XLA_FLAGS`` alone ran one XLA thread per core
    (:mod:`nasjax.hardware.runtimes`), and its times do not compare with one-thread timing."""
    if runtime.name == "xla" and runtime.threads == 1:
        aff = table.provenance.get("cpu_affinity")
        require(isinstance(aff, list) and len(aff) == 1, "table.provenance.cpu_affinity", aff,
                "one core (a one-thread XLA table is timed pinned to one core; one timed with the XLA_FLAGS "
                "alone ran one thread per core: rebuild it)")


def table_statistic(table: Table) -> str:
    """The timing statistic a builder table was measured with (tables built before it was a setting: the
    median)."""
    return table.provenance.get("statistic", "median")


def fitted_subnets(table: Table) -> np.ndarray:
    """``[n, P]`` the subnets a builder table was fitted on, timed end to end: its reference and context subnets
    and the subnets of its refinement (:mod:`nasjax.hardware.lut_refine`); a validation must not reuse them."""
    prov = table.provenance
    P = table.shape[0]
    rows = [np.asarray(prov.get(k) or [], np.int64).reshape(-1, P) for k in ("reference_archs", "context_archs")]
    rows.append(np.asarray((prov.get("refinement") or {}).get("archs") or [], np.int64).reshape(-1, P))
    return np.concatenate(rows)


def table_anchor_ms(table: Table, anchor_arch) -> float | None:
    """The anchor subnet's time at the machine speed a builder table's cells stand for: the median over the
    chunks of its refinement (:mod:`nasjax.hardware.lut_refine`; its level was fitted on those subnets), else of
    its build. ``None`` when the table keeps no anchor times or its anchor is not ``anchor_arch``."""
    prov = table.provenance
    if prov.get("anchor_arch") is not None and list(map(int, prov["anchor_arch"])) != [int(x) for x in anchor_arch]:
        return None
    per_chunk = (prov.get("refinement") or {}).get("anchor_ms_per_chunk") or prov.get("anchor_ms_per_chunk")
    if not isinstance(per_chunk, dict) or not per_chunk:
        return None
    return float(np.median([float(v) for v in per_chunk.values()]))


def anchor_scaled(table: Table, anchor_arch, anchor_now_ms: float, predicted, measured) -> dict | None:
    """The table at the machine's speed of the moment: every prediction times ``anchor_now_ms /`` the anchor's
    time at the table's own speed (:func:`table_anchor_ms`), from the anchor subnet timed with the subnets; no
    validation subnet is fitted on, so the metrics are over all of them. ``None`` without anchor times."""
    ref = table_anchor_ms(table, anchor_arch)
    if ref is None or not (np.isfinite(anchor_now_ms) and anchor_now_ms > 0):
        return None
    ratio = float(anchor_now_ms) / ref
    return {"table_anchor_ms": ref, "anchor_ms": float(anchor_now_ms), "speed_ratio": ratio,
            "metrics": latency_metrics(np.asarray(measured, float), ratio * np.asarray(predicted, float))}


def overlap_count(archs, fitted) -> int:
    """How many rows of ``archs`` appear among the rows of ``fitted``."""
    seen = {tuple(int(x) for x in r) for r in np.atleast_2d(fitted)}
    return int(sum(tuple(int(x) for x in r) in seen for r in np.atleast_2d(archs)))


REPEAT_SUBNETS = 25  # validation subnets timed a second time: the measurement's own repeatability


def repeatability(first, second) -> dict:
    """How well two measurements of the same subnets agree (the ceiling any latency model can reach on this
    machine): Kendall tau and MAPE between them, and the median ratio second / first (a change of the
    machine's speed between the two)."""
    a, b = np.asarray(first, float), np.asarray(second, float)
    m = latency_metrics(a, b)
    return {"n": int(len(a)), "kendall_tau": float(m["kendall_tau"]), "mape_percent": float(m["mape_percent"]),
            "speed_ratio": float(np.median(b / a)),
            "mape_after_speed_percent": float(latency_metrics(a, b / np.median(b / a))["mape_percent"])}


def between_runs(previous: dict, archs, predicted, measured) -> dict:
    """This validation against an earlier one of the same table and subnets (another session, another day).

    A table is built once and used later, so the ceiling that matters is how well the machine agrees with
    itself from one run to the next, not within a run. ``previous`` is an earlier run's validation record
    (``archs``, ``measured_ms``; ``date`` when it has one); ``archs`` must be the same subnets in the same
    order. Returns :func:`repeatability` of the earlier measurement against this one (``speed_ratio`` = this
    run's speed change), and ``table_tau_vs_both``: the table's Kendall tau against the geometric mean of the
    two measurements (a truth with less of either run's noise).

    Raises:
      NasjaxInputError: when ``previous`` lacks the fields, or its subnets are not these.
    """
    require(isinstance(previous, dict) and "archs" in previous and "measured_ms" in previous,
            "previous validation", sorted(previous) if isinstance(previous, dict) else type(previous).__name__,
            "a validation record with 'archs' and 'measured_ms'")
    a_prev = np.asarray(previous["archs"], np.int64)
    a_now = np.asarray(archs, np.int64)
    require(a_prev.shape == a_now.shape and bool(np.all(a_prev == a_now)), "previous validation archs",
            f"{len(a_prev)} subnets (first {a_prev[:1].tolist()})",
            f"the same {len(a_now)} subnets in the same order (same --seed and --num_subnets)")
    prev = np.asarray(previous["measured_ms"], np.float64)
    now = np.asarray(measured, np.float64)
    require(prev.shape == now.shape and bool(np.all(np.isfinite(prev)) and np.all(prev > 0)),
            "previous validation measured_ms", prev.shape, f"{len(now)} finite latencies > 0")
    out = repeatability(prev, now)
    out["table_tau_vs_both"] = float(latency_metrics(np.sqrt(prev * now), np.asarray(predicted, float))["kendall_tau"])
    out["previous_date"] = previous.get("date")
    return out


def validate_table(lspace: LutSpace, runtime: Runtime, table: Table, *, num_subnets: int = 100, seed: int = 1,
                   warmup: int = 5, repeats: int = 20, chunk_size: int = 25, progress: bool = True,
                   repeat_subnets: int = REPEAT_SUBNETS) -> dict:
    """Time ``num_subnets`` random subnets end to end and compare with ``table``'s predictions.

    After them, the first ``repeat_subnets`` are timed once more (one chunk) and :func:`repeatability`
    compares the two measurements: on a machine whose speed wanders, the measurement does not agree with
    itself, and no table can rank better than that.

    The batch size and resolution are the table's (its provenance). Returns ``metrics`` (plain sum, all
    subnets), ``corrected`` (:func:`linear_correction`, fit on the even-indexed subnets, metrics on the
    odd-indexed ones), ``calibrated`` (the table times :func:`calibrate_scale` of the first
    :data:`CALIBRATION_K` even-indexed subnets -- the quickstart's start-up calibration -- metrics on the
    odd-indexed ones), ``anchor_scaled`` (:func:`anchor_scaled`: the table moved to the machine's speed of the
    run by the anchor subnet alone, metrics on all subnets; ``None`` for a table without anchor times),
    ``meets_goals`` of each, the raw ``archs``, ``predicted_ms``, ``measured_ms``, and
    ``fitted_overlap``: how many of the validation subnets the table was fitted on (:func:`fitted_subnets`;
    0 with the default seeds).
    """
    require(isinstance(num_subnets, int) and num_subnets >= 4, "num_subnets", num_subnets, "an integer >= 4")
    prov = table.provenance
    require(table.unit == "ms", "table.unit", table.unit, "ms")
    require(prov.get("space") == lspace.name, "table.provenance.space", prov.get("space"), repr(lspace.name))
    bs, res = int(prov["batch_size"]), int(prov["resolution"])
    require(prov.get("clock", "wall") == runtime.clock, "runtime.clock", runtime.clock,
            f"the table's clock {prov.get('clock', 'wall')!r}")
    check_one_thread_xla(table, runtime)
    archs = lspace.space().random(seed, num_subnets)
    pred = lspace.predict(table, archs)
    meas, anchor_ms = measure_archs(lspace, runtime, archs, batch_size=bs, resolution=res, warmup=warmup,
                                    repeats=repeats, chunk_size=chunk_size, progress=progress,
                                    statistic=table_statistic(table), with_anchor=True)
    metrics = latency_metrics(meas, pred)
    scaled = anchor_scaled(table, lspace.anchor_arch(), anchor_ms, pred, meas)
    rep = None
    if repeat_subnets:
        k = min(int(repeat_subnets), num_subnets)
        again = measure_archs(lspace, runtime, archs[:k], batch_size=bs, resolution=res, warmup=warmup,
                              repeats=repeats, chunk_size=chunk_size, progress=progress,
                              statistic=table_statistic(table))
        rep = repeatability(meas[:k], again)
    idx = np.arange(num_subnets)
    corr = linear_correction(pred, meas, idx[0::2], idx[1::2])
    ref = idx[0::2][:CALIBRATION_K]
    scale = calibrate_scale(pred[ref], meas[ref])
    cal = {"k": int(len(ref)), "scale": scale, "held_out": latency_metrics(meas[idx[1::2]], scale * pred[idx[1::2]])}
    return {"space": lspace.name, "runtime": runtime.name, "threads": runtime.threads, "clock": runtime.clock,
            "batch_size": bs,
            "resolution": res, "metrics": metrics, "meets_goals": meets_goals(metrics), "corrected": corr,
            "corrected_meets_goals": meets_goals(corr["held_out"]), "calibrated": cal,
            "calibrated_meets_goals": meets_goals(cal["held_out"]), "anchor_scaled": scaled,
            "anchor_scaled_meets_goals": None if scaled is None else meets_goals(scaled["metrics"]),
            "archs": archs, "predicted_ms": pred,
            "measured_ms": meas, "seed": seed, "repeatability": rep,
            "fitted_overlap": overlap_count(archs, fitted_subnets(table))}


def measurements_csv_rows(archs, resolution: int, measured_ms) -> list[list]:
    """Rows ``arch,resolution,latency_ms`` (``arch`` = the choice indices separated by spaces)."""
    return [[" ".join(str(int(x)) for x in a), int(resolution), f"{float(m):.6f}"]
            for a, m in zip(np.atleast_2d(archs), measured_ms)]
