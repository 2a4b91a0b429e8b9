"""Insight-reduced spaces: front and swap dominance remove only blocks without a front network."""

import itertools

import numpy as np
import pytest

from nasjax.errors import NasjaxInputError
from nasjax.profiling.profiles import profile_blocks, profile_cells
from nasjax.profiling.reduce import front_dominated, reduce_profile, reduce_space_by_fronts, reduce_space_by_swaps
from nasjax.search.base import FunctionModel
from nasjax.search.pareto_mutation import nondominated
from nasjax.spaces import get_space, product_space
from nasjax.spaces.structure import structure_of


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


def _interacting(seed):
    rng = np.random.default_rng(seed)
    wa, wl = rng.random((3, 4)), rng.random((3, 4)) + 0.2
    pair = rng.random((4, 4))
    acc = FunctionModel(lambda a: wa[np.arange(3), a].sum(1) + pair[a[:, 0], a[:, 1]], "accuracy", "%")
    lat = FunctionModel(lambda a: wl[np.arange(3), a].sum(1) * (1 + 0.5 * pair[a[:, 1], a[:, 0]]), "latency", "ms")
    return acc, lat


def test_swap_rule_never_drops_a_true_front_cell_and_removes_no_more_than_fronts():
    sp, cells = _space(), _cells()
    total = 0
    for seed in range(8):
        acc, lat = _interacting(seed)
        prof = profile_cells(sp, cells, [acc, lat])
        red = reduce_space_by_swaps(sp, prof, [acc, lat])
        front = nondominated(np.stack([-acc.predict(cells), lat.predict(cells)], 1))
        kept = np.all(red.allowed[np.arange(3)[None, :], cells], 1)
        assert np.all(kept[front])
        fronts = reduce_space_by_fronts(sp, prof.blocks, [s[:, 0] for s in prof.samples],
                                        [s[:, 1] for s in prof.samples], z=0.0)
        assert set(red.removed) <= set(fronts.removed)  # exhaustive: swap dominance implies front dominance
        for key, by in red.removed.items():  # brute force: every cell with the block loses to its swapped twin
            b = next(x for x in prof.blocks if x.key == key)
            o = next(x for x in prof.blocks if x.key == by)
            mine = cells[cells[:, b.position] == b.choice]
            twin = mine.copy()
            twin[:, b.position] = o.choice
            assert np.all(acc.predict(twin) >= acc.predict(mine)) and np.all(lat.predict(twin) <= lat.predict(mine))
        total += red.num_removed
    assert total > 0


def test_swap_rule_on_a_sampled_profile_keeps_both_ends_of_every_stage():
    """OFA layer view, 5 samples per block (the other 19 layers spread the networks far more than one block
    moves them): choice 8 (least accurate, slowest) goes at every layer; every trade-off choice and depth stays."""
    sp = get_space("mobilenetv3_layers")
    st = structure_of(sp)
    wa = np.arange(9, dtype=float) * 0.1
    wl = 1.0 + np.arange(9, dtype=float) * 0.1
    wa[8], wl[8] = -0.5, 3.0

    def active(a):
        on = np.ones(a[:, :20].shape, bool)
        for p in range(20):
            if st.gate_position[p] >= 0:
                on[:, p] = a[:, st.gate_position[p]] >= st.gate_min_choice[p]
        return on

    def acc_f(a):
        return (active(a) * wa[a[:, :20]]).sum(1)

    def lat_f(a):
        return (active(a) * wl[a[:, :20]]).sum(1)

    acc = FunctionModel(acc_f, "accuracy", "%")
    lat = FunctionModel(lat_f, "latency", "ms")
    prof = profile_blocks(sp, [acc, lat], 5, seed=0, structure=st)
    red = reduce_space_by_swaps(sp, prof, [acc, lat], level="unit")
    removed = {(b.position, b.choice) for b in prof.blocks if b.key in red.removed}
    assert removed == {(p, 8) for p in range(20)}
    assert (red.allowed[20:] == sp.mask[20:]).all()  # depths: deeper is more accurate in most contexts, never removed
    # a share below one removes a block that wins most (not all) of its swaps
    assert set(reduce_space_by_swaps(sp, prof, [acc, lat], level="unit", share=0.5).removed) >= set(red.removed)


def test_depths_false_prunes_only_the_layers_blocks():
    """Extra layers that cost latency and add no accuracy: with ``depths=True`` the deeper depths go (a shallower
    twin dominates them in every context), with ``depths=False`` every depth stays and the layers' blocks removed
    are the same."""
    sp = get_space("mobilenetv3_layers")
    st = structure_of(sp)
    wa = np.r_[np.arange(8, dtype=float) * 0.1, -0.5]

    def acc_f(a):  # only the first layer of each stage counts for accuracy
        return wa[a[:, [0, 4, 8, 12, 16]]].sum(1)

    def lat_f(a):
        on = np.ones(a[:, :20].shape, bool)
        for p in range(20):
            on[:, p] = a[:, st.gate_position[p]] >= st.gate_min_choice[p] if st.gate_position[p] >= 0 else True
        return (on * (1.0 + 0.1 * a[:, :20])).sum(1)

    acc, lat = FunctionModel(acc_f, "accuracy", "%"), FunctionModel(lat_f, "latency", "ms")
    prof = profile_blocks(sp, [acc, lat], 5, seed=1, structure=st)
    for rule in ("swaps", "fronts"):
        both = reduce_profile(sp, prof, [acc, lat], rule=rule, level="unit")
        layers_only = reduce_profile(sp, prof, [acc, lat], rule=rule, level="unit", depths=False)
        depth_keys = {b.key for b in prof.blocks if b.layer == "depth"}
        assert (layers_only.allowed[20:] == sp.mask[20:]).all() and not set(layers_only.removed) & depth_keys
        assert set(layers_only.removed) == set(both.removed) - depth_keys
        np.testing.assert_array_equal(layers_only.allowed[:20], both.allowed[:20])
        if rule == "swaps":
            assert set(both.removed) & depth_keys  # the deeper depths do go when allowed to


def test_reduce_profile_takes_fronts_when_exhaustive_and_swaps_when_sampled():
    sp, cells = _space(), _cells()
    acc, lat = _interacting(3)
    exhaustive = profile_cells(sp, cells, [acc, lat])
    fronts = reduce_space_by_fronts(sp, exhaustive.blocks, [s[:, 0] for s in exhaustive.samples],
                                    [s[:, 1] for s in exhaustive.samples], population=exhaustive.population)
    np.testing.assert_array_equal(reduce_profile(sp, exhaustive, [acc, lat]).allowed, fronts.allowed)
    sampled = profile_blocks(sp, [acc, lat], 6, seed=0)
    np.testing.assert_array_equal(reduce_profile(sp, sampled, [acc, lat]).allowed,
                                  reduce_space_by_swaps(sp, sampled, [acc, lat]).allowed)


def test_swap_rule_bad_inputs_name_the_field():
    sp, cells = _space(), _cells()
    acc, lat = _interacting(0)
    prof = profile_cells(sp, cells, [acc, lat])
    with pytest.raises(NasjaxInputError, match="sources"):
        reduce_space_by_swaps(sp, prof, [acc])
    with pytest.raises(NasjaxInputError, match="share"):
        reduce_space_by_swaps(sp, prof, [acc, lat], share=0.0)
    prof.archs = []
    with pytest.raises(NasjaxInputError, match="profile.archs"):
        reduce_space_by_swaps(sp, prof, [acc, lat])
