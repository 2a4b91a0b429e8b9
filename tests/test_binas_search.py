"""BINAS search: the exact searcher equals brute force on reduced instances (two stages), the MILP agrees with it
on every budget, it is never worse than BCFW or evolution on the full space, every answer meets its budget
under the latency model, and ``python -m experiments.binas_search`` runs end to end with its error contract."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nasjax.constraints import Constraint
from nasjax.errors import InfeasibleError, NasjaxInputError
from nasjax.hardware.binas_latency import BilinearForm, latency_model, synthetic_latency
from nasjax.predictors.bilinear import QuadraticPredictor, contribution_estimator
from nasjax.search import SearchProblem, get_searcher, run_search
from nasjax.search.bcfw import BCFWConfig
from nasjax.search.genetic import binas_evolution
from nasjax.spaces import binas as bs

ROOT = Path(__file__).resolve().parent.parent
ST = bs.DEFAULT
TWO = bs.BinasStructure(stages=bs.STAGES[:2], configs=bs.CONFIGS[:3])


def form(st, seed, metric="accuracy", unit="%", cross=False, scale=1.0, base=70.0):
    rng = np.random.default_rng(seed)
    L, K, S, D = st.num_layers, st.num_configs, st.num_stages, len(st.depths)
    Q = rng.normal(scale=0.3 * scale, size=(L, K, S, D))
    if not cross:
        Q *= (st.layer_stage[:, None] == np.arange(S)[None, :])[:, None, :, None]
    pa = rng.uniform(0, scale, (L, K)) if metric == "latency" else rng.normal(scale=scale, size=(L, K))
    if metric == "latency":
        Q = np.abs(Q) * 0.2
    return BilinearForm(base, pa, rng.normal(scale=scale, size=(S, D)) ** 2 * (metric == "latency"), Q, metric, unit,
                        structure=st)


def brute_force(space, objective, constraints):
    st = bs.structure_of(space)
    a = np.unique(bs.canonical(space.all_archs(), st), axis=0)
    ok = np.all([c.satisfied(a) for c in constraints], axis=0) if constraints else np.ones(len(a), bool)
    if not ok.any():
        return None
    v = objective.predict(a)
    return float(v[ok].max())


@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_exact_equals_brute_force_and_milp_on_two_stages(seed, cross):
    space = bs.binas_space(TWO)
    acc = form(TWO, seed, cross=cross)
    lat = form(TWO, seed + 10, "latency", "ms", base=5.0)
    mem = form(TWO, seed + 20, "latency", "ms", base=0.0)  # a second resource (a stand-in with the same form)
    lo, hi = lat.bounds()
    n = 0
    for f in np.linspace(-0.05, 1.0, 12):
        cons = (Constraint(lat, lo + f * (hi - lo), "ms"),)
        want = brute_force(space, acc, cons)
        problem = SearchProblem(space, acc, cons)
        if want is None:
            for name in ("binas-exact", "binas-milp"):
                with pytest.raises(InfeasibleError):
                    run_search(name, problem)
            continue
        ex, mi = run_search("binas-exact", problem), run_search("binas-milp", problem)
        assert ex.certified and mi.certified
        assert ex.objective == pytest.approx(want, abs=1e-9) and mi.objective == pytest.approx(want, abs=1e-7)
        assert ex.info["method"] == ("depth enumeration" if cross else "stage-wise")
        for r in (ex, mi):
            assert cons[0].satisfied(r.arch[None])[0] and np.array_equal(r.arch, bs.canonical(r.arch, TWO))
        n += 1
    assert n >= 9
    # two constraints
    mlo, mhi = mem.bounds()
    cons = (Constraint(lat, lo + 0.5 * (hi - lo), "ms"), Constraint(mem, mlo + 0.4 * (mhi - mlo), "ms"))
    want = brute_force(space, acc, cons)
    if want is not None:
        assert run_search("binas-exact", SearchProblem(space, acc, cons)).objective == pytest.approx(want, abs=1e-9)


@pytest.fixture(scope="module")
def full_problem_parts():
    general, layers = synthetic_latency(ST, 0)
    lat = latency_model(general, layers, "s").to_unit("ms")
    rng = np.random.default_rng(5)
    exp = np.log([c.expansion for c in ST.configs])
    la = 70 + 0.4 * exp[None, :] * (1 + 0.2 * ST.layer_stage[:, None]) + rng.normal(scale=0.05, size=(20, 12))
    est = contribution_estimator(70.0, la, 70 + np.array([[0.0, 0.3, 0.5]] * 5))
    return est, lat


@pytest.mark.parametrize("frac", [0.15, 0.4, 0.7])
def test_exact_never_worse_than_bcfw_or_evolution_and_budgets_hold(full_problem_parts, frac):
    est, lat = full_problem_parts
    lo, hi = lat.bounds()
    problem = SearchProblem(bs.binas_space(), est, (Constraint(lat, lo + frac * (hi - lo), "ms"),))
    ex = run_search("binas-exact", problem)
    mi = run_search("binas-milp", problem)
    bc = run_search("bcfw", problem, 0, config=BCFWConfig(steps=200))
    ev = run_search("genetic", problem, 0, config=binas_evolution(epochs=40))
    assert mi.objective == pytest.approx(ex.objective, abs=1e-7)
    for r in (ex, mi, bc, ev):
        assert r.objective <= ex.objective + 1e-9
        assert problem.constraints[0].satisfied(r.arch[None])[0], r.solver
        assert r.resources["latency"] <= problem.constraints[0].bound + 1e-9
    assert ex.info["stage_options"] == [144 + 1728 + 20736] * 5


def test_searchers_say_what_they_need(full_problem_parts):
    est, lat = full_problem_parts
    space = bs.binas_space()
    quad = QuadraticPredictor(0.0, np.zeros(255), np.zeros((255, 255)))
    p = SearchProblem(space, quad, (Constraint(lat, 50.0, "ms"),))
    assert "expected a bilinear model" in get_searcher("binas-exact").supports(p)
    assert get_searcher("bcfw").supports(p) is None  # BCFW needs a relaxation only
    assert "one latency constraint" in get_searcher("bcfw").supports(SearchProblem(space, est))
    with pytest.raises(NasjaxInputError, match="searcher 'binas-milp' with solver 'gurobi'|gurobi"):
        import importlib.util

        if importlib.util.find_spec("gurobipy") is not None:
            pytest.skip("gurobipy installed")
        run_search("binas-milp", SearchProblem(space, est, (Constraint(lat, 50.0, "ms"),)), solver="gurobi")
    with pytest.raises(InfeasibleError, match="smallest achievable latency"):
        run_search("binas-exact", SearchProblem(space, est, (Constraint(lat, 1.0, "ms"),)))


def test_bcfw_and_evolution_are_deterministic(full_problem_parts):
    est, lat = full_problem_parts
    p = SearchProblem(bs.binas_space(), est, (Constraint(lat, 45.0, "ms"),))
    a = run_search("bcfw", p, 3, config=BCFWConfig(steps=50))
    b = run_search("bcfw", p, 3, config=BCFWConfig(steps=50))
    assert np.array_equal(a.arch, b.arch)
    c = run_search("genetic", p, 1, config=binas_evolution(epochs=5))
    d = run_search("genetic", p, 1, config=binas_evolution(epochs=5))
    assert np.array_equal(c.arch, d.arch) and c.info["evaluations"] == d.info["evaluations"] == 600


# --- the experiment ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from nasjax.benchmarks.binas_lut import write_latency_lut

    d = tmp_path_factory.mktemp("binas_inputs")
    general, layers = synthetic_latency(ST, 0)
    write_latency_lut(d / "LUT.pkl", general, layers)
    rng = np.random.default_rng(0)
    contribution_estimator(70.0, 70 + rng.uniform(0, 1, (20, 12)), 70 + rng.uniform(0, 1, (5, 3))).save(d / "est.npz")
    QuadraticPredictor(70.0, np.zeros(255), np.zeros((255, 255))).save(d / "quad.npz")
    return d


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "experiments.binas_search", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("opt", ["exact", "iqcp", "bcfw"])
def test_experiment_end_to_end(inputs, tmp_path, opt):
    extra = ["--bcfw_steps=30"] if opt == "bcfw" else []
    r = run(f"--nas_optimizer={opt}", f"--predictor_ckpt_filename={inputs / 'est.npz'}",
            f"--lut_filename={inputs / 'LUT.pkl'}", "--latency_unit=ms", "--inference_time_limit=45ms",
            f"--save_path={tmp_path}", *extra)
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "arch.json").read_text())
    assert (tmp_path / "summary.json").exists()
    assert np.array_equal(bs.from_string(doc["binas"]), doc["arch"])
    assert doc["predicted"]["latency"]["unit"] == "ms" and doc["predicted"]["latency"]["value"] <= 45.0 + 1e-9
    assert doc["certified"] == (opt != "bcfw")
    assert "predicted accuracy" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--inference_time_limit=0.00125"], "inference_time_limit: got '0.00125', expected a number with its unit"),
    (["--inference_time_limit=45ms", "--latency_unit="], "45 ms but the latency model is in 's'"),
    (["--inference_time_limit=45ms", "--bcfw_steps=5"], "bcfw_steps: given with --nas_optimizer=exact"),
    (["--inference_time_limit=45ms", "--predictor_type=quadratic"], "holds a 'nasjax.binas.bilinear' model"),
    (["--inference_time_limit=45parsecs"], "inference_time_limit unit"),
    (["--inference_time_limit=1ms"], "infeasible"),
    (["--inference_time_limit=45ms", "--calibrate_latency"], "calibrate_latency: set without --latency_table"),
])
def test_experiment_error_contract(inputs, tmp_path, args, message):
    base = [f"--predictor_ckpt_filename={inputs / 'est.npz'}", f"--lut_filename={inputs / 'LUT.pkl'}",
            f"--save_path={tmp_path / 'out'}", "--latency_unit=ms"]
    r = run(*base, *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_experiment_refuses_a_quadratic_model_for_exact_search(inputs, tmp_path):
    r = run("--predictor_type=quadratic", f"--predictor_ckpt_filename={inputs / 'quad.npz'}",
            f"--lut_filename={inputs / 'LUT.pkl'}", "--latency_unit=ms", "--inference_time_limit=45ms",
            f"--save_path={tmp_path}")
    assert r.returncode == 2 and "searcher 'binas-exact': objective: got QuadraticPredictor" in r.stderr
