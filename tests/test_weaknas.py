"""WeakNAS, its MLP ensemble, the query harness and the experiment's flags (fast: tiny MLPs, few seeds)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require_shared

from nasjax.errors import InfeasibleError, NasjaxInputError
from nasjax.predictors.mlp import MLPConfig, get_ensemble
from nasjax.search import SEARCHERS, get_searcher
from nasjax.search.harness import Oracle, Task, certify
from nasjax.search.repeats import run_resumable, summarize
from nasjax.search.synthetic import synthetic_problem, synthetic_tabular
from nasjax.search.weak import LANES, WeakNASConfig, expected_improvement

# one MLP config and few shapes for every test: each distinct (config, seeds, padded size) compiles once
TINY = MLPConfig(hidden=(8,), iters=10, lr=2e-2, members=2)
REPO = Path(__file__).resolve().parent.parent


def tiny_weak(**kw) -> WeakNASConfig:
    base = dict(init_sample=6, sample_each_iter=4, top_start=20, top_end=8, max_sample=30, mlp=TINY)
    base.update(kw)
    return WeakNASConfig(**base)


def weaknas(problem, seeds, config: WeakNASConfig, **options):
    """The query logs of ``config``'s WeakNAS searcher, one per seed (all seeds in one call)."""
    searcher = get_searcher(f"weaknas-{config.sampling_method}")
    return [r.history for r in searcher.search_many(problem, list(seeds), config=config, **options)]


def test_vmapped_ensemble_equals_members_trained_one_by_one():
    ens = get_ensemble(14, TINY)  # the synthetic task's width: shares its compiled programs
    rng = np.random.default_rng(0)
    S, N = 2, 16
    x = (rng.random((S, N, 14)) < 0.3).astype(np.float32)
    y = rng.normal(size=(S, N)).astype(np.float32)
    w = np.ones((S, N), np.float32)
    w[1, 10:] = 0.0  # the second problem has only 10 samples
    keys = ens.member_keys(jax.random.split(jax.random.PRNGKey(3), S))
    grid = ens.fit(keys, x, y, w)
    one = jax.jit(ens.fit_one)
    x_all = jnp.asarray(Task.of(synthetic_problem()).onehot())
    mu, sigma = ens.predict(grid, x_all)
    for s in range(S):
        preds = []
        for e in range(TINY.members):
            p = one(keys[s, e], x[s], y[s], w[s])
            leaves_grid = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a, s=s, e=e: a[s, e], grid))
            for a, b in zip(leaves_grid, jax.tree_util.tree_leaves(p)):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
            preds.append(np.asarray(ens.apply_one(p, x_all)))
        np.testing.assert_allclose(np.asarray(mu[s]), np.mean(preds, 0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(sigma[s]), np.std(preds, 0), rtol=1e-4, atol=1e-5)
    # members differ (different init keys) and the fit reduced the loss
    assert float(sigma.mean()) > 0


def test_padding_rows_with_zero_weight_do_not_change_the_fit():
    ens = get_ensemble(14, TINY)
    rng = np.random.default_rng(1)
    x = rng.random((2, 16, 14)).astype(np.float32)
    y = rng.normal(size=(2, 16)).astype(np.float32)
    keys = ens.member_keys(jax.random.split(jax.random.PRNGKey(0), 2))
    a = ens.fit(keys, x, y, np.ones((2, 16), np.float32))
    xp = np.concatenate([x, rng.random((2, 16, 14)).astype(np.float32)], 1)
    yp = np.concatenate([y, rng.normal(size=(2, 16)).astype(np.float32) * 100], 1)
    wp = np.concatenate([np.ones((2, 16)), np.zeros((2, 16))], 1).astype(np.float32)
    b = ens.fit(keys, xp, yp, wp)
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-4, atol=1e-5)


def test_ensemble_rejects_bad_shapes_and_nan():
    ens = get_ensemble(14, TINY)
    keys = ens.member_keys(jnp.stack([jax.random.PRNGKey(0)]))
    with pytest.raises(NasjaxInputError, match="shapes"):
        ens.fit(keys, np.zeros((1, 3, 5)), np.zeros((1, 3)), np.ones((1, 3)))
    with pytest.raises(NasjaxInputError, match="NaN"):
        ens.fit(keys, np.zeros((1, 3, 14)), np.array([[0.0, np.nan, 1.0]]), np.ones((1, 3)))
    with pytest.raises(NasjaxInputError, match="mlp_size"):
        MLPConfig(hidden=())


def test_weaknas_is_deterministic_under_a_seed_and_counts_unique_queries():
    task = synthetic_problem(seed=1)
    cfg = tiny_weak()
    a = weaknas(task, [0, 1], cfg)
    b = weaknas(task, [0, 1], cfg)
    for ha, hb in zip(a, b):
        assert ha.order.tolist() == hb.order.tolist()
        assert len(ha.order) == cfg.max_sample == len(set(ha.order.tolist()))
        assert ha.tags[: cfg.init_sample].tolist() == [0] * cfg.init_sample
    assert a[0].order.tolist() != a[1].order.tolist()
    # a seed's initial samples, and its whole log, do not depend on the other seeds of the batch
    c = weaknas(task, [1, 7], cfg)
    assert c[0].order[: cfg.init_sample].tolist() == a[1].order[: cfg.init_sample].tolist()
    assert c[0].order.tolist() == a[1].order.tolist() and c[0].observed.tolist() == a[1].observed.tolist()


def test_a_lane_of_the_fit_does_not_depend_on_its_position_or_the_other_lanes():
    ens = get_ensemble(14, TINY)
    rng = np.random.default_rng(2)
    x = (rng.random((16, 14)) < 0.3).astype(np.float32)
    y = rng.normal(size=16).astype(np.float32)
    w = (np.arange(16) < 11).astype(np.float32)
    key = jax.random.PRNGKey(11)
    x_all = jnp.asarray(Task.of(synthetic_problem()).onehot())
    outs = []
    lanes = max(LANES, 4)  # the property WeakNAS's fixed lane count relies on, for any lane count
    for lane, other_seed in ((0, 1), (lanes - 1, 2), (lanes // 2, 3)):
        r = np.random.default_rng(other_seed)
        X = (r.random((lanes, 16, 14)) < 0.3).astype(np.float32)
        Y = r.normal(size=(lanes, 16)).astype(np.float32)
        W = np.ones((lanes, 16), np.float32)
        keys = [jax.random.PRNGKey(int(k)) for k in r.integers(0, 1000, lanes)]
        X[lane], Y[lane], W[lane], keys[lane] = x, y, w, key
        mu, sigma = ens.fit_predict(ens.member_keys(jnp.stack(keys)), X, Y, W, x_all)
        outs.append((np.asarray(mu)[lane], np.asarray(sigma)[lane]))
    for mu, sigma in outs[1:]:
        assert np.array_equal(mu, outs[0][0]) and np.array_equal(sigma, outs[0][1])


@pytest.mark.parametrize("method", ["uniform", "ei"])
def test_a_seed_gives_the_same_log_alone_in_a_batch_of_25_and_of_100(method):
    """Each run pads its sample set to a size of its own and is fitted in calls of a fixed lane count, so
    the batch (its size, the other seeds, the seed's position in it) never changes a seed's log."""
    problem = synthetic_problem(seed=3)
    cfg = tiny_weak(sampling_method=method, restart_stall=2)
    seed = 41
    alone = weaknas(problem, [seed], cfg)[0]
    batch25 = weaknas(problem, list(range(30, 41)) + [seed] + list(range(42, 55)), cfg)
    assert len(batch25) == 25 and batch25[11].seed == seed
    batch100 = weaknas(problem, list(range(100, 150)) + [seed] + list(range(150, 199)), cfg)
    assert len(batch100) == 100 and batch100[50].seed == seed
    for h in (batch25[11], batch100[50]):
        assert h.order.tolist() == alone.order.tolist()
        assert h.observed.tolist() == alone.observed.tolist() and h.tags.tolist() == alone.tags.tolist()
    # and every other seed of the 25 equals its own run in the 100-batch where both ran
    again = {h.seed: h for h in weaknas(problem, [54, 30, 47], cfg)}
    for h in batch25:
        if h.seed in again:
            assert h.order.tolist() == again[h.seed].order.tolist()


def test_weaknas_beats_random_on_a_toy_landscape_and_stops_at_the_optimum():
    problem = synthetic_problem(num_choices=(4, 4, 3, 3), seed=2)
    task = Task.of(problem)
    opt = task.optimum
    cfg = tiny_weak(max_sample=60)
    hs = weaknas(problem, range(2), cfg, stop_at_optimum=True)
    q = [h.queries_to(opt) or cfg.max_sample for h in hs]
    assert np.mean(q) < (task.size + 1) / 2  # random search needs (M + 1) / 2 = 72.5 on average
    for h in hs:  # a run that found the optimum stopped within the iteration that queried it
        if h.queries_to(opt) is not None:
            assert len(h.order) - h.queries_to(opt) < cfg.sample_each_iter


def test_restart_on_stagnation_begins_a_fresh_segment_and_stays_deterministic():
    task = synthetic_problem(seed=1)
    cfg = tiny_weak(top_start=8, top_end=4, restart_stall=1, max_sample=40)
    off = weaknas(task, [0], tiny_weak(top_start=8, top_end=4, restart_stall=0, max_sample=40))[0]
    on = [weaknas(task, [0], cfg)[0] for _ in range(2)]
    assert on[0].order.tolist() == on[1].order.tolist()
    assert len(set(on[0].order.tolist())) == len(on[0].order) == 40  # earlier segments are never re-queried
    assert on[0].order[:6].tolist() == off.order[:6].tolist() and on[0].order.tolist() != off.order.tolist()
    # a restart iteration queries init_sample fresh cells plus its sample_each_iter acquisitions
    per_iter = np.bincount(on[0].tags)
    assert per_iter[0] == 6 and per_iter.max() == 6 + 4
    assert np.bincount(off.tags)[1:].max() == 4
    with pytest.raises(NasjaxInputError, match="restart_stall"):
        tiny_weak(restart_stall=-1)


def test_rewidening_a_stalled_pool_changes_the_search_and_stays_deterministic():
    task = synthetic_problem(seed=1)
    off = weaknas(task, [0], tiny_weak(top_start=8, top_end=4, restart_stall=0))[0]
    on = [weaknas(task, [0], tiny_weak(top_start=8, top_end=4, stall_iters=1, widen_max=16, restart_stall=0))[0]
          for _ in range(2)]
    assert on[0].order.tolist() == on[1].order.tolist()
    assert len(set(on[0].order.tolist())) == len(on[0].order) == 30
    # same initial samples; once a run stalls the wider pool samples other cells than WeakNAS's loop
    assert on[0].order[:6].tolist() == off.order[:6].tolist() and on[0].order.tolist() != off.order.tolist()
    with pytest.raises(NasjaxInputError, match="widen_max"):
        tiny_weak(widen_max=0)
    with pytest.raises(NasjaxInputError, match="stall_iters"):
        tiny_weak(stall_iters=0)


def test_ei_acquisition_runs_and_is_deterministic():
    task = synthetic_problem(seed=3)
    cfg = tiny_weak(sampling_method="ei")
    a = weaknas(task, [5, 6], cfg)
    b = weaknas(task, [5, 6], cfg)
    assert [h.order.tolist() for h in a] == [h.order.tolist() for h in b]
    with pytest.raises(NasjaxInputError, match="ensemble"):
        tiny_weak(sampling_method="ei", mlp=MLPConfig(members=1))  # one member has no spread
    ei = expected_improvement(np.array([0.0, 1.0, 1.0]), np.array([1.0, 1.0, 0.0]), 0.5, 1.0)
    assert ei[1] > ei[0] > 0 and ei[2] == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize("method", ["weaknas-uniform", "weaknas-ei", "evolution", "random", "local"])
def test_constrained_search_never_returns_an_infeasible_architecture(method):
    objective, latency = synthetic_tabular(seed=4)
    budget = float(np.quantile(latency.values, 0.3))
    problem = synthetic_problem(seed=4, latency_budget=budget, query_budget=30)
    task = Task.of(problem)
    options = {"config": tiny_weak()} if method.startswith("weaknas") else {}
    results = get_searcher(method).search_many(problem, [0, 1], **options)
    for r in results:
        h = r.history
        assert task.feasible[h.order].all()
        pick = certify(task, h)
        assert latency.values[pick] <= budget
        assert r.resources["latency"] == latency.values[pick] <= budget and np.array_equal(r.arch, task.archs[pick])
    assert task.optimum == int(np.argmax(np.where(latency.values <= budget, objective.val_mean, -np.inf)))
    with pytest.raises(InfeasibleError, match="smallest achievable"):
        Task.of(synthetic_problem(seed=4, latency_budget=float(latency.values.min()) - 0.01))


def test_oracle_seed_signal_and_feasibility_guard():
    task = Task.of(synthetic_problem(seed=5))
    o = Oracle(task, "seed", 0)
    v = o.query(7)
    assert v in task.val_seeds[7] and o.query(7) == v and len(o) == 1
    assert Oracle(task, "mean").query(7) == task.val_mean[7]
    _, latency = synthetic_tabular(seed=5)
    ct = Task.of(synthetic_problem(seed=5, latency_budget=float(np.median(latency.values))))
    bad = int(np.flatnonzero(~ct.feasible)[0])
    with pytest.raises(NasjaxInputError, match="feasible"):
        Oracle(ct).query(bad)
    with pytest.raises(NasjaxInputError, match="signal"):
        Oracle(task, "best")


def test_summary_and_resume(tmp_path):
    problem = synthetic_problem(seed=6)
    task = Task.of(problem)
    calls = []

    def chunk(seeds):
        calls.append(list(seeds))
        return [r.history for r in get_searcher("random").search_many(problem, seeds, stop_at_optimum=True)]

    hs = run_resumable(chunk, range(5), tmp_path, chunk=2)
    assert calls == [[0, 1], [2, 3], [4]]
    again = run_resumable(chunk, range(6), tmp_path, chunk=2)
    assert calls[-1] == [5] and [h.order.tolist() for h in again[:5]] == [h.order.tolist() for h in hs]
    s = summarize(task, again)
    assert s["found_fraction"] == 1.0 and s["queries_mean"] == np.mean([h.queries_to(task.optimum) for h in again])
    (tmp_path / "seed_0.json").write_text("{broken")
    with pytest.raises(NasjaxInputError, match="seed_0.json"):
        run_resumable(chunk, range(2), tmp_path, chunk=2)
    assert set(SEARCHERS.names()) >= {"random", "local", "evolution", "weaknas-uniform", "weaknas-ei"}
    # temporaries a killed write left in the cache are removed by the next sweep
    (tmp_path / ".seed_9.json.x1y2.tmp").write_text("")
    (tmp_path / "seed_0.json").unlink()
    run_resumable(chunk, range(2), tmp_path, chunk=2)
    assert not (tmp_path / ".seed_9.json.x1y2.tmp").exists()


# ---- the experiment entry point (subprocess: absl flags are process-global) -----------------------------
def _run_exp(args, tmp_path):
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")
    return subprocess.run([sys.executable, "-m", "experiments.weaknas", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_experiment_flag_bugs_fixed_negative_seed_is_an_error(tmp_path):
    out = tmp_path / "neg"
    r = _run_exp(["--rand_seed=-1", "--repeat=2", f"--save_dir={out}"], tmp_path)
    assert r.returncode != 0
    assert "rand_seed" in r.stderr and ">= 0" in r.stderr
    assert not out.exists() or not any(out.iterdir())
    # booleans are absl booleans: a non-boolean value is rejected (WeakNAS took any string, "False" was true);
    # --nodeterministic giving the per-run signal is checked in the run below
    r = _run_exp(["--deterministic=maybe", f"--save_dir={out}"], tmp_path)
    assert r.returncode != 0 and "deterministic" in r.stderr


def test_experiment_runs_writes_outputs_and_resumes(tmp_path):
    require_shared("constrained-tpe")
    out = tmp_path / "run"
    out.mkdir()
    (out / ".runs.csv.k1ll3d.tmp").write_text("")  # what a killed run leaves behind
    (out / ".staging-999999-abc").mkdir()
    args = ["--dataset=cifar100", "--repeat=2", "--max_sample=30", "--init_sample=10", "--sample_each_iter=10",
            "--mlp_size=8", "--mlp_iter=5", "--nodeterministic", "--notsne", "--noprogress", "--batch_seeds=1",
            f"--save_dir={out}"]
    r = _run_exp(args, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["signal"] == "seed" and summary["runs"] == 2
    for f in ("runs.csv", "curve.csv", "curve.png", "summary.json"):
        assert (out / f).is_file()
    listed = json.loads((out / "summary.json").read_text())["files"]
    assert sorted(listed) == ["curve.csv", "curve.png", "runs.csv"]
    assert not (out / ".runs.csv.k1ll3d.tmp").exists() and not (out / ".staging-999999-abc").exists()
    cached = list((out / ".repeats").glob("*/seed_*.json"))
    assert len(cached) == 2
    runs = (out / "runs.csv").read_text()
    r2 = _run_exp(args[:-2] + ["--batch_seeds=2", f"--save_dir={out}"], tmp_path)  # resumes from the same cache
    assert r2.returncode == 0 and (out / "runs.csv").read_text() == runs
    assert json.loads(r2.stdout.strip().splitlines()[-1])["queries_mean"] == summary["queries_mean"]
    assert len(list((out / ".repeats").glob("*/seed_*.json"))) == 2  # --batch_seeds is not part of the key
    # a fresh sweep with another chunking gives the same repeats
    r3 = _run_exp(args[:-2] + ["--batch_seeds=2", f"--save_dir={tmp_path / 'fresh'}"], tmp_path)
    assert r3.returncode == 0 and (tmp_path / "fresh" / "runs.csv").read_text() == runs


def test_experiment_refuses_flags_of_another_method_and_bad_output(tmp_path):
    r = _run_exp(["--method=evolution", "--init_sample=5", f"--save_dir={tmp_path / 'a'}"], tmp_path)
    assert r.returncode == 2 and "init_sample" in r.stderr and "--method=weaknas" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "file").write_text("x")
    r = _run_exp(["--repeat=1", f"--save_dir={tmp_path / 'file'}"], tmp_path)
    assert r.returncode == 2 and "save_dir" in r.stderr and "is a file" in r.stderr
    r = _run_exp(["--bench=nasbench101", f"--save_dir={tmp_path / 'b'}"], tmp_path)
    assert r.returncode == 2 and "bench" in r.stderr
    r = _run_exp([f"--save_dir={tmp_path / 'c'}", "stray"], tmp_path)
    assert r.returncode == 2 and "stray" in r.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


@pytest.mark.parametrize("flagfile", sorted((REPO / "experiments" / "flags").glob("weaknas_*.flags")))
def test_every_weaknas_flagfile_parses_into_the_configs(flagfile):
    """Each recipe's flags are derived from the typed configs (flag names unchanged) and build them."""
    from absl import flags as absl_flags

    from nasjax import cli
    from nasjax.search.evolution import EvolutionConfig

    fv = absl_flags.FlagValues()
    for name in ("bench", "dataset", "method", "save_dir"):  # first: cli takes an empty FlagValues for none
        absl_flags.DEFINE_string(name, None, "", flag_values=fv)
    cli.define_config_flags(WeakNASConfig, flag_values=fv)
    cli.define_config_flags(EvolutionConfig, flag_values=fv)
    for name in ("repeat", "rand_seed", "batch_seeds"):
        absl_flags.DEFINE_integer(name, 0, "", flag_values=fv)
    for name in ("deterministic", "stop_at_optimum", "tsne"):
        absl_flags.DEFINE_boolean(name, True, "", flag_values=fv)
    fv(["prog", f"--flagfile={flagfile}"])
    weak = cli.config_from_flags(WeakNASConfig, flag_values=fv)
    assert weak == WeakNASConfig()  # every recipe runs the library's defaults
    assert fv["mlp_size"].value == ["64", "64"] and fv["num_ensemble"].value == 3
