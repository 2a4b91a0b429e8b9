"""Regularized evolution, random search and local search in the shared query harness."""

import numpy as np
import pytest
from conftest import require_shared

from nasjax.errors import NasjaxInputError
from nasjax.search import run_search
from nasjax.search.evolution import EvolutionConfig, mutate
from nasjax.search.harness import History, Task
from nasjax.search.synthetic import synthetic_problem


def test_mutation_changes_exactly_one_position_to_a_valid_other_choice():
    rng = np.random.default_rng(0)
    nc = np.array([5, 1, 3, 4])
    a = np.array([4, 0, 2, 0])
    for _ in range(200):
        c = mutate(a, nc, rng)
        diff = np.flatnonzero(c != a)
        assert diff.size == 1 and diff[0] != 1  # the single-choice position never moves
        assert 0 <= c[diff[0]] < nc[diff[0]]


@pytest.mark.parametrize("fn", ["evolution", "random", "local"])
def test_searchers_are_deterministic_under_a_seed(fn):
    problem = synthetic_problem(seed=7, query_budget=60)
    run = lambda s: run_search(fn, problem, s).history  # noqa: E731
    a, b, c = run(3), run(3), run(4)
    assert a.order.tolist() == b.order.tolist() and a.observed.tolist() == b.observed.tolist()
    assert a.order.tolist() != c.order.tolist()
    assert len(a.order) == 60 == len(set(a.order.tolist()))  # unique-query accounting


def test_evolution_finds_the_optimum_and_ages_out():
    problem = synthetic_problem(num_choices=(5, 5, 4, 4), seed=8, query_budget=400)
    task = Task.of(problem)
    opt = task.optimum
    cfg = EvolutionConfig(population=10, tournament=3)
    q = [run_search("evolution", problem, s, config=cfg, stop_at_optimum=True).history.queries_to(opt)
         for s in range(8)]
    assert all(x is not None for x in q)
    assert np.mean(q) < (task.size + 1) / 2  # better than random search's expectation
    with pytest.raises(NasjaxInputError, match="tournament"):
        EvolutionConfig(population=5, tournament=6)


def test_random_search_visits_every_feasible_cell_once():
    problem = synthetic_problem(seed=9)
    task = Task.of(problem)
    h = run_search("random", problem, 0).history
    assert sorted(h.order.tolist()) == list(range(task.size))
    val, test = h.best_so_far(task, task.size + 5)
    assert val[-1] == task.val_mean.max() and test[-1] == task.test[task.optimum]
    assert np.all(np.diff(val) >= 0)


def test_best_so_far_uses_the_values_seen_and_history_round_trips():
    problem = synthetic_problem(seed=10, query_budget=30)
    task = Task.of(problem)
    h = run_search("local", problem, 1, signal="seed").history
    val, test = h.best_so_far(task, 40)
    j = int(np.argmax(h.observed))
    assert val[29] == h.observed[j] and test[29] == task.test[h.order[j]]
    h2 = History.from_dict(h.to_dict())
    assert h2.order.tolist() == h.order.tolist() and h2.seed == h.seed
    with pytest.raises(NasjaxInputError, match="history"):
        History.from_dict({"seed": 1})


def test_nb201_problem_from_the_benchmark_layer():
    require_shared("constrained-tpe")
    from dataclasses import replace

    from nasjax.benchmarks.nasbench201 import load
    from nasjax.problems.nasbench201 import nb201_problem

    p = nb201_problem("cifar10")
    t = Task.of(p)
    assert t.size == 15625 and t.archs.shape == (15625, 6) and t.val_seeds.shape[1] == 3
    # optimum = highest seed-mean validation accuracy
    assert t.val_mean[t.optimum] == t.val_mean.max()
    h = run_search("evolution", replace(p, query_budget=50), 0).history
    assert len(h.order) == 50
    lat = load().latency("pixel3")
    ct = Task.of(nb201_problem("cifar10", device="pixel3", budget=float(np.median(lat))))
    assert ct.feasible.sum() == (lat <= np.median(lat)).sum() and not ct.feasible.all()
    assert ct.val_mean[ct.optimum] == t.val_mean[lat <= np.median(lat)].max()
    assert ct.name == f"cifar10|latency[pixel3]<={float(np.median(lat)):g}ms"
