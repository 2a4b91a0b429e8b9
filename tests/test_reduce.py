"""Insight-reduced spaces: front dominance removes only blocks without a front network, with a margin."""

import itertools

import numpy as np
import pytest

from nasjax.errors import NasjaxInputError
from nasjax.profiling.profiles import profile_cells
from nasjax.profiling.reduce import front_dominated, reduce_space_by_fronts
from nasjax.search.base import FunctionModel
from nasjax.search.pareto_mutation import nondominated
from nasjax.spaces import product_space


def _space():
    return product_space("tiny", [f"e{i}" for i in range(3)], [["a", "b", "c", "d"]] * 3)


def _cells():
    return np.array(list(itertools.product(range(4), repeat=3)), np.int64)


def _removed_without_front_loss(seed) -> int:
    """Exhaustive profile, random interacting objectives: assert no removed block has a true-front cell."""
    rng = np.random.default_rng(seed)
    wa, wl = rng.random((3, 4)), rng.random((3, 4)) + 0.2
    pair = rng.random((4, 4))  # an interaction of positions 0 and 1
    sp, cells = _space(), _cells()
    acc = FunctionModel(lambda a: wa[np.arange(3), a].sum(1) + pair[a[:, 0], a[:, 1]], "accuracy", "%")
    lat = FunctionModel(lambda a: wl[np.arange(3), a].sum(1) * (1 + 0.5 * pair[a[:, 1], a[:, 0]]), "latency", "ms")
    prof = profile_cells(sp, cells, [acc, lat])
    red = reduce_space_by_fronts(sp, prof.blocks, [s[:, 0] for s in prof.samples], [s[:, 1] for s in prof.samples],
                                 z=0.0)
    front = nondominated(np.stack([-acc.predict(cells), lat.predict(cells)], 1))
    kept = np.all(red.allowed[np.arange(3)[None, :], cells], 1)
    assert np.all(kept[front])
    by_key = {b.key: b for b in prof.blocks}
    for key in red.removed:  # brute force: the removed block is in no front cell
        b = by_key[key]
        assert not np.any(front & (cells[:, b.position] == b.choice))
    return len(red.removed)


def test_front_rule_never_drops_a_true_front_cell():
    assert sum(_removed_without_front_loss(s) for s in range(6)) > 0  # and it does remove blocks


def test_dominated_block_is_removed_and_margin_keeps_close_ones():
    sp, cells = _space(), _cells()
    # choice d at position 0: 1 point less accurate and 20 % slower than choice a in every network
    acc = FunctionModel(lambda a: a.sum(1) * 0.1 - (a[:, 0] == 3) * 1.0, "accuracy", "%")
    lat = FunctionModel(lambda a: (1.0 + a.sum(1) * 0.1) * np.where(a[:, 0] == 3, 1.2, 1.0)
                        * np.where(a[:, 0] == 0, 1.0, 1.05), "latency", "ms")
    prof = profile_cells(sp, cells, [acc, lat])
    args = (sp, prof.blocks, [s[:, 0] for s in prof.samples], [s[:, 1] for s in prof.samples])
    red = reduce_space_by_fronts(*args, z=1.0)
    assert "cell/layer 1/d" in red.removed and not red.allowed[0, 3]
    assert red.allowed[1:].all()  # nothing else is dominated
    assert not reduce_space_by_fronts(*args, z=1e4).removed  # a huge margin keeps everything: the full space
    # every cell containing a block profiled: no sampling error, so no margin whatever z
    exhaustive = reduce_space_by_fronts(*args, z=1e4, population=prof.population)
    np.testing.assert_array_equal(exhaustive.allowed, reduce_space_by_fronts(*args, z=0.0).allowed)
    assert prof.population == [float(s.shape[0]) for s in prof.samples] == [16.0] * 12
    with pytest.raises(NasjaxInputError, match="population"):
        reduce_space_by_fronts(*args, population=[1.0] * 12)


def test_finite_population_correction_of_the_margin():
    rng = np.random.default_rng(0)
    a, lat = rng.random(50), 1 + rng.random(50)
    o_a, o_l = a + 0.05, lat * 0.97  # better by less than one standard error of the means
    assert not front_dominated(a, lat, o_a, o_l, z=1.0)
    assert front_dominated(a, lat, o_a, o_l, z=1.0, population=(50, 50))  # the whole population: exact
    assert not front_dominated(a, lat, o_a, o_l, z=1.0, population=(1e6, 1e6))  # a tiny sample of it


def test_identical_blocks_do_not_remove_each_other():
    a, lat = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0])
    assert not front_dominated(a, lat, a, lat, z=0.0)
    assert front_dominated(a, lat, a + 1, lat * 0.5, z=0.0)
    assert not front_dominated(a, lat, a + 1, lat * 1.01, z=0.0)  # more accurate but slower: not dominated


def test_bad_inputs_name_the_field():
    sp, cells = _space(), _cells()
    acc = FunctionModel(lambda a: a.sum(1) * 1.0, "accuracy", "%")
    prof = profile_cells(sp, cells, [acc, FunctionModel(lambda a: 1.0 + a.sum(1), "latency", "ms")])
    a = [s[:, 0] for s in prof.samples]
    with pytest.raises(NasjaxInputError, match="lat"):
        reduce_space_by_fronts(sp, prof.blocks, a, [-s[:, 1] for s in prof.samples])
    with pytest.raises(NasjaxInputError, match="z"):
        reduce_space_by_fronts(sp, prof.blocks, a, [s[:, 1] for s in prof.samples], z=-1)
