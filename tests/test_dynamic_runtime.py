"""The dynamic runtime: switches compile nothing, light search and exact fallback land inside the window
under the re-estimated table, the trace is published as one set, bad windows exit 2."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nasjax.constraints import Constraint
from nasjax.errors import NasjaxInputError
from nasjax.runtime import adapter, demo
from nasjax.runtime.candidates import chain, choice_order, compile_candidates, select_candidates
from nasjax.runtime.controller import (
    AheadPolicy,
    CompileCounter,
    CpuBurner,
    DynamicConfig,
    JitOnSwitchPolicy,
    RunResult,
    parse_windows,
    serve,
)
from nasjax.runtime.estimate import ScaleEstimator
from nasjax.runtime.search import WindowSearch, light_moves
from nasjax.search import SEARCHERS, SearchProblem, TabularObjective, run_search
from nasjax.spaces.base import product_space
from nasjax.tables import Table

ROOT = Path(__file__).resolve().parent.parent
TINY = (0.0, 1e-6)  # a window no subnet meets from below: the fastest candidate is the nearest
HUGE = (1e4, 1e5)  # a window no subnet reaches: the slowest candidate is the nearest


@pytest.fixture(scope="module")
def source():
    return adapter.load_embedded(calib_size=0)


@pytest.fixture(scope="module")
def compiled(source):
    archs = np.array([[0, 0, 1, 0, 0], [1, 1, 3, 1, 0], [3, 4, 3, 1, 0]])
    return compile_candidates(source, archs, 2, progress=False)


def _search_for(source, compiled, margin=0.0):
    space = source.block_set.space()
    est = ScaleEstimator(source.latency)
    obj = TabularObjective(space, compiled.archs, compiled.accuracy, compiled.accuracy, name="candidates")
    return WindowSearch(space, obj, est, choice_order(source.latency), margin=margin), est


def test_the_counter_counts_a_fresh_jit():
    with CompileCounter() as cc:
        jax.block_until_ready(jax.jit(lambda x: x * 3.0 + 1.25)(jnp.arange(7.0)))
    assert cc.traces >= 1 and cc.total >= 1
    with CompileCounter() as idle:
        pass
    assert idle.total == 0


def test_switches_compile_nothing(source, compiled):
    search, est = _search_for(source, compiled)
    images = [jax.device_put(source.images[:2]), jax.device_put(source.images[2:4])]
    windows = [(0, *HUGE), (4, *TINY), (8, *HUGE), (12, *TINY), (16, *HUGE)]
    res = serve(AheadPolicy(compiled), search, est, images, windows, [], batches=20, check_every=4,
                start_arch=compiled.archs[0], progress=False)
    s = res.summary
    assert s["switches"] >= 4
    assert s["traces_while_serving"] == 0 and s["compiles_while_serving"] == 0
    assert s["switch_ms_max"] < 5.0
    assert {r["active"] for r in res.rows} == {"0-0-1-0-0", "3-4-3-1-0"}
    with CompileCounter() as cc:  # direct selection of every executable, many times
        for _ in range(5):
            for a in compiled.archs:
                jax.block_until_ready(AheadPolicy(compiled).program(a)(images[0]))
    assert cc.total == 0


def test_the_counter_sees_mathnas_compiling_on_switch(source, compiled):
    search = WindowSearch(source.block_set.space(), source.accuracy, ScaleEstimator(source.latency),
                          choice_order(source.latency), margin=0.0, exact="mckp")
    images = [jax.device_put(source.images[:2])]
    res = serve(JitOnSwitchPolicy(source, compiled.input_shape), search, search.estimator, images,
                [(0, *HUGE), (3, *TINY)], [], batches=5, check_every=3, start_arch=compiled.archs[0],
                progress=False)
    assert res.summary["switches"] >= 1
    assert res.summary["traces_while_serving"] >= 1  # the switch inside the loop jitted a new program


def _window_around(p, margin=0.05):
    return p * (1 - margin), p * (1 + margin)


def test_light_search_and_exact_fallback_land_inside_the_window_under_the_reestimated_table(source):
    acc, lat = source.accuracy, source.latency
    cands = select_candidates(acc, lat, max_front=6, with_chain=True)
    order = choice_order(lat)
    space = source.block_set.space()
    obj = TabularObjective(space, cands, acc.predict(cands), acc.predict(cands), name="candidates")
    est = ScaleEstimator(lat)
    current = cands[-1]
    est.update(current, 1.7 * float(lat.predict(current)))  # a slowdown: measured 1.7x the table
    assert est.scale == pytest.approx(1.7)
    ws = WindowSearch(space, obj, est, order, margin=0.0)
    pred = est.predict(cands)
    rows = {tuple(a): i for i, a in enumerate(cands)}
    # a window around a light move of the current subnet -> the light search finds it
    moves = [m for m in light_moves(current, order)[1:] if tuple(m) in rows]
    assert moves, "the chain gives the slowest candidate a light move"
    target = rows[tuple(moves[0])]
    lo, hi = _window_around(pred[target], 0.001)
    d = ws.decide(current, lo, hi)
    assert d.how == "light" and lo <= est.predict(d.arch)[0] <= hi
    assert lo <= d.predicted_ms <= hi
    # the registered light searcher directly, with the same problem
    r = run_search("dynamic-light", ws._problem(lo, hi), current=current, order=order)
    assert lo <= est.predict(r.arch)[0] <= hi
    # a window only a far candidate meets -> light finds nothing, the exact fallback does
    far = int(np.argmin(pred))
    assert tuple(cands[far]) not in {tuple(m) for m in light_moves(current, order)}
    lo, hi = _window_around(pred[far], 0.001)
    d = ws.decide(current, lo, hi)
    assert d.how == "exact" and lo <= est.predict(d.arch)[0] <= hi
    r = run_search("enumerate", ws._problem(lo, hi))
    assert r.certified and lo <= est.predict(r.arch)[0] <= hi
    # nothing inside: the nearest candidate, never an error
    d = ws.decide(current, 1e-9, 2e-9)
    assert d.how == "nearest" and d.arch.tolist() == cands[int(np.argmin(pred))].tolist()


def test_mathnas_exact_fallback_over_the_whole_space_meets_the_rescaled_bound(source):
    lat = source.latency
    est = ScaleEstimator(lat, 2.0)
    ws = WindowSearch(source.block_set.space(), source.accuracy, est, choice_order(lat), margin=0.0, exact="mckp",
                      light=False)
    lo_all, hi_all = lat.bounds()
    hi = 2.0 * (lo_all + 0.4 * (hi_all - lo_all))
    d = ws.decide(np.full(5, 4), 0.0, hi)
    assert d.how == "exact" and est.predict(d.arch)[0] <= hi + 1e-9


def test_chain_steps_are_light_moves(source):
    c = chain(source.accuracy, source.latency)
    order = choice_order(source.latency)
    assert len(c) == 1 + sum(k - 1 for k in source.block_set.num_choices)
    for a, b in zip(c, c[1:]):
        assert any(np.array_equal(b, m) for m in light_moves(a, order))


def test_light_searcher_is_registered_and_runs_without_a_current_subnet():
    assert "dynamic-light" in SEARCHERS
    space = product_space("toy", ["p0", "p1", "p2"], [["a", "b", "c"]] * 3)
    rng = np.random.default_rng(0)
    acc = Table(rng.uniform(0, 1, (3, 3)), None, "accuracy", "%", base=50)
    lat = Table(rng.uniform(1, 2, (3, 3)), None, "latency", "ms")
    prob = SearchProblem(space, acc, (Constraint(lat, float(np.median(lat.predict(space.all_archs()))), "ms"),))
    r = run_search("dynamic-light", prob, 3)
    assert prob.constraints[0].satisfied(r.arch)[0] and r.history is not None


def test_the_trace_is_published_as_one_set(tmp_path, monkeypatch):
    rows = [{"policy": "ahead", "batch": i, "time_s": 0.01 * i, "window_min_ms": 1.0, "window_max_ms": 2.0,
             "latency_ms": 1.5, "served_ms": 1.5, "inside": 1, "active": "0-0-0-0-0", "predicted_accuracy": 90.0,
             "predicted_ms": 1.5, "scale": 1.0, "slowdown": int(i > 2), "event": "switch(light)" if i == 2 else "",
             "decision_ms": 0.1, "switch_ms": 0.0} for i in range(6)]
    res = [RunResult("ahead", rows, {"fraction_inside": 1.0})]
    files = demo.publish(tmp_path / "ok", res, {"x": 1}, "t")
    names = sorted(p.name for p in files)
    assert names == ["summary.json", "trace.csv", "trace.png"]
    assert (tmp_path / "ok" / "trace.csv").read_text().count("\n") == 7
    import nasjax.runtime.trace as tr

    def broken(*a, **k):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(tr, "plot_trace", broken)
    with pytest.raises(RuntimeError):
        demo.publish(tmp_path / "bad", res, {}, "t")
    assert [p.name for p in (tmp_path / "bad").iterdir()] == []


@pytest.mark.parametrize("entries", [["0:2:1"], ["0:nan:1"], ["0:1:inf"], ["5:1:2"], ["0:1"], ["0:-1:2"]])
def test_bad_windows_are_refused(entries):
    with pytest.raises(NasjaxInputError, match="windows"):
        parse_windows(entries)
    with pytest.raises(NasjaxInputError, match="windows"):
        DynamicConfig(windows=tuple(entries))


@pytest.mark.parametrize("window", ["0:2:1", "0:nan:1"])
def test_a_bad_window_exits_2_without_output(tmp_path, window):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-m", "experiments.dynamic_run", f"--windows={window}", f"--save_dir={out}"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "windows" in lines[0]
    assert not out.exists()


def test_the_burner_is_started_and_killed_by_its_pid():
    with CpuBurner(1, max_seconds=30) as b:
        b.start()
        pid = b.pids_started[0]
        assert b.running and os.path.exists(f"/proc/{pid}")
    assert not b.running
    assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()


def test_the_controller_keeps_a_simulated_device_inside_the_window(source):
    """Against a latency model (no machine noise), slowdowns and a tightening window are followed."""
    from nasjax.runtime.candidates import CompiledCandidates
    from nasjax.runtime.controller import SimulatedDevice

    lat = source.latency
    archs = select_candidates(source.accuracy, lat, max_front=8, with_chain=True)
    comp = CompiledCandidates(archs, [], [None] * len(archs), source.accuracy.predict(archs), lat.predict(archs), (1,))
    search, est = _search_for(source, comp, margin=0.15)
    start = archs[int(np.argmax(comp.accuracy))]
    ref = 10.0 * float(lat.predict(start))
    windows = [(0, 0.6 * ref, 1.6 * ref), (200, 0.3 * ref, 0.75 * ref), (400, 0.6 * ref, 1.6 * ref)]
    slow = [(100, 180), (450, 530)]
    dev = SimulatedDevice(lat, 10.0, slow, factor=2.0, sigma=0.05, seed=0)
    res = serve(AheadPolicy(comp), search, est, [None], windows, slow, batches=600, check_every=10, start_arch=start,
                statistic="median", timer=dev, coverage=0.95, progress=False)
    s = res.summary
    assert s["fraction_inside"] >= 0.95, s
    assert s["switches"] >= 3 and s["traces_while_serving"] == 0


def test_each_candidate_gets_its_own_recalibrated_bn(source):
    subs = [source.block_set.to_ofa(a) for a in ([0, 0, 0, 0, 0], [4, 4, 4, 4, 4])]
    calib = [source.images[:16]]
    a, b = adapter.recalibrated_states(source.state, subs, calib, chunk_size=2)
    leaves = lambda st: np.concatenate([np.ravel(x) for x in jax.tree.leaves(st.batch_stats)])  # noqa: E731
    base, la, lb = leaves(source.state), leaves(a), leaves(b)
    assert la.shape == base.shape and not np.allclose(la, base) and not np.allclose(la, lb)
    assert adapter.recalibrated_states(source.state, subs, []) == [source.state, source.state]
