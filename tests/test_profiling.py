"""Block profiling: structure from labels, the fixed block is active in every sample, summaries, determinism."""

import csv

import numpy as np
import pytest

from nasjax.errors import NasjaxInputError
from nasjax.profiling.profiles import STATS, profile_blocks, profile_cells, summarize
from nasjax.profiling.sampling import all_blocks, parse_blocks, sample_with_block
from nasjax.search.base import FunctionModel
from nasjax.spaces import get_space, product_space
from nasjax.spaces.structure import structure_of


def _binas_like():
    """A space in BINAS's order (depth first, then the stage's layers), as the BINAS space labels it."""
    pos, ch = [], []
    for s in range(3):
        pos.append(f"stage {s + 1} depth")
        ch.append(["d2", "d3", "d4"])
        for j in range(4):
            pos.append(f"stage {s + 1} layer {j + 1}")
            ch.append([f"e{e}_k{k}" for e in (3, 6) for k in (3, 5)])
    return product_space("binas_like", pos, ch)


def _weighted_sum(space, seed=0):
    w = np.random.default_rng(seed).random((space.num_positions, space.max_choices))
    return FunctionModel(lambda a: w[np.arange(a.shape[1]), a].sum(1), "latency", "ms")


@pytest.mark.parametrize("space", [get_space("mobilenetv3_layers"), get_space("supertransformer"), _binas_like()],
                         ids=lambda s: s.name)
def test_fixed_block_active_in_every_sample(space):
    st = structure_of(space)
    assert st.gated
    blocks = all_blocks(space, st)
    assert len(blocks) == int(space.num_choices.sum())
    for b in blocks:
        a = sample_with_block(space, st, b, 64, seed=3)
        assert np.all(a[:, b.position] == b.choice)
        assert st.active(a)[:, b.position].all(), b.key
        space.validate(a)


def test_structure_of_ofa_layers():
    space = get_space("mobilenetv3_layers")
    st = structure_of(space)
    assert st.unit_names == tuple(f"stage {s}" for s in range(1, 6))
    assert st.depth_positions == (20, 21, 22, 23, 24)
    # layers 1-2 always run (depth >= 2), layer 3 needs d3 (choice 1), layer 4 needs d4 (choice 2)
    assert st.gate_min_choice[:4].tolist() == [0, 0, 1, 2]
    assert st.gate_position[:4].tolist() == [20] * 4 and st.gate_position[20] == -1
    a = np.zeros((1, 25), np.int64)  # every depth d2
    assert st.active(a)[0, :4].tolist() == [True, True, False, False]
    assert st.unit_layers(1).tolist() == [4, 5, 6, 7]


def test_depth_is_uniform_over_activating_choices():
    space = get_space("mobilenetv3_layers")
    st = structure_of(space)
    b = parse_blocks(space, st, ["stage 2/layer 3/k5e4"])[0]
    a = sample_with_block(space, st, b, 3000, seed=0)
    d = a[:, 21]
    assert set(np.unique(d).tolist()) == {1, 2}  # d3 or d4, both possible, never d2
    assert abs(np.mean(d == 1) - 0.5) < 0.05


def test_ungated_space_is_one_cell():
    space = get_space("nasbench201")
    st = structure_of(space)
    assert not st.gated and st.unit_names == ("cell",)
    assert [b.key for b in all_blocks(space, st)][:2] == ["cell/layer 1/none", "cell/layer 1/skip_connect"]


def test_parse_blocks_errors_name_the_entry():
    space = get_space("nasbench201")
    st = structure_of(space)
    assert parse_blocks(space, st, ["2:3"])[0].key == "cell/layer 3/nor_conv_3x3"
    with pytest.raises(NasjaxInputError, match="blocks: got '9:0'"):
        parse_blocks(space, st, ["9:0"])


def test_summary_equals_numpy():
    space = get_space("mobilenetv3_layers")
    src = _weighted_sum(space)
    st = structure_of(space)
    blocks = parse_blocks(space, st, ["0:0", "3:8", "stage 5/depth/d3"])
    prof = profile_blocks(space, [src], 40, blocks=blocks, seed=7)
    for b, arch, s in zip(prof.blocks, prof.archs, prof.samples):
        x = src.predict(arch)
        np.testing.assert_allclose(s[:, 0], x)
        want = {"mean": x.mean(), "std": x.std(), "q01": np.quantile(x, 0.01), "q05": np.quantile(x, 0.05),
                "q95": np.quantile(x, 0.95), "q99": np.quantile(x, 0.99), "min": x.min(), "max": x.max()}
        got = summarize(s[:, 0])
        for k in STATS:
            assert got[k] == pytest.approx(want[k], rel=1e-12), (b.key, k)
    med = np.median(src.predict(prof.baseline_archs))
    np.testing.assert_allclose(prof.stat("rel_mean", "latency"), [src.predict(a).mean() / med for a in prof.archs])


def test_profile_is_deterministic_and_per_block(tmp_path):
    space = get_space("mobilenetv3_layers")
    src = _weighted_sum(space)
    st = structure_of(space)
    bl = parse_blocks(space, st, ["1:2", "7:5"])
    p1 = profile_blocks(space, [src], 16, blocks=bl, seed=5)
    p2 = profile_blocks(space, [src], 16, blocks=bl, seed=5)
    p3 = profile_blocks(space, [src], 16, blocks=bl[1:], seed=5)
    p4 = profile_blocks(space, [src], 16, blocks=bl, seed=6)
    for a, b in zip(p1.archs, p2.archs):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1.archs[1], p3.archs[0])  # a block's samples do not depend on the others
    assert not np.array_equal(p1.archs[0], p4.archs[0])
    f1, f2 = tmp_path / "a.csv", tmp_path / "b.csv"
    p1.write_csv(f1)
    p2.write_csv(f2)
    assert f1.read_text() == f2.read_text()
    rows = list(csv.DictReader(f1.open()))
    assert len(rows) == 3 and rows[0]["unit"] == "baseline" and rows[1]["block"] == "k3e6"
    assert float(rows[1]["mean"]) == pytest.approx(p1.samples[0][:, 0].mean(), rel=1e-5)


def test_profile_cells_exhaustive():
    space = get_space("nasbench201")
    cells = space.all_archs()[::7]
    src = _weighted_sum(space, 1)
    prof = profile_cells(space, cells, [src])
    for b, a, s in zip(prof.blocks, prof.archs, prof.samples):
        sel = cells[cells[:, b.position] == b.choice]
        np.testing.assert_array_equal(a, sel)
        np.testing.assert_allclose(s[:, 0], src.predict(sel))
    assert prof.baseline.shape[0] == len(cells)


def test_bad_source_is_refused():
    space = get_space("nasbench201")
    with pytest.raises(NasjaxInputError, match="metric source"):
        profile_blocks(space, [object()], 4)
