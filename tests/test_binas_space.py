"""The BINAS space, its timm block-string codec (BINAS A-F round-trip exactly) and the BINAS LUT reader."""

import pickle

import numpy as np
import pytest

from nasjax.benchmarks.binas_lut import lut_key, read_accuracy_lut, read_latency_lut, write_latency_lut
from nasjax.constraints import Constraint
from nasjax.errors import NasjaxInputError
from nasjax.hardware.binas_latency import latency_from_lut, latency_from_table, latency_model, synthetic_latency
from nasjax.spaces import binas as bs
from nasjax.spaces import get_space
from nasjax.tables import Table

# BINAS A-F as printed in BINAS's README (str of each arch_def)
BINAS_NETS = {
    "A": [
        ['ds_r1_k3_s1_e1_c16_nre'],
        ['ir_r1_k5_s2_e3_c24_nre', 'ir_r1_k3_s1_e3_c24_nre_se0.25'],
        ['ir_r1_k5_s2_e3_c40_nre_se0.25', 'ir_r1_k5_s1_e4_c40_nre_se0.25'],
        ['ir_r1_k5_s2_e3_c80', 'ir_r1_k5_s1_e3_c80_se0.25', 'ir_r1_k5_s1_e4_c80_se0.25'],
        ['ir_r1_k5_s1_e4_c112_se0.25', 'ir_r1_k5_s1_e4_c112_se0.25'],
        [
            'ir_r1_k5_s2_e4_c192_se0.25',
            'ir_r1_k5_s1_e4_c192_se0.25',
            'ir_r1_k3_s1_e4_c192_se0.25',
            'ir_r1_k5_s1_e3_c192_se0.25',
        ],
        ['cn_r1_k1_s1_c960'],
    ],
    "B": [
        ['ds_r1_k3_s1_e1_c16_nre'],
        ['ir_r1_k5_s2_e3_c24_nre', 'ir_r1_k5_s1_e3_c24_nre_se0.25'],
        ['ir_r1_k5_s2_e3_c40_nre_se0.25', 'ir_r1_k5_s1_e4_c40_nre_se0.25'],
        ['ir_r1_k5_s2_e4_c80_se0.25', 'ir_r1_k5_s1_e4_c80_se0.25', 'ir_r1_k5_s1_e4_c80_se0.25'],
        ['ir_r1_k3_s1_e4_c112_se0.25', 'ir_r1_k5_s1_e4_c112_se0.25', 'ir_r1_k5_s1_e4_c112_se0.25'],
        [
            'ir_r1_k3_s2_e4_c192_se0.25',
            'ir_r1_k5_s1_e4_c192_se0.25',
            'ir_r1_k3_s1_e4_c192_se0.25',
            'ir_r1_k5_s1_e4_c192_se0.25',
        ],
        ['cn_r1_k1_s1_c960'],
    ],
    "C": [
        ['ds_r1_k3_s1_e1_c16_nre'],
        ['ir_r1_k5_s2_e3_c24_nre', 'ir_r1_k5_s1_e3_c24_nre_se0.25'],
        ['ir_r1_k5_s2_e3_c40_nre_se0.25', 'ir_r1_k5_s1_e4_c40_nre_se0.25'],
        ['ir_r1_k5_s2_e4_c80_se0.25', 'ir_r1_k5_s1_e4_c80_se0.25', 'ir_r1_k5_s1_e4_c80_se0.25'],
        ['ir_r1_k3_s1_e4_c112_se0.25', 'ir_r1_k5_s1_e6_c112_se0.25', 'ir_r1_k5_s1_e4_c112_se0.25'],
        [
            'ir_r1_k3_s2_e6_c192_se0.25',
            'ir_r1_k5_s1_e6_c192_se0.25',
            'ir_r1_k3_s1_e6_c192_se0.25',
            'ir_r1_k5_s1_e4_c192_se0.25',
        ],
        ['cn_r1_k1_s1_c960'],
    ],
    "D": [
        ['ds_r1_k3_s1_e1_c16_nre'],
        ['ir_r1_k5_s2_e3_c24_nre', 'ir_r1_k5_s1_e3_c24_nre_se0.25'],
        ['ir_r1_k5_s2_e3_c40_nre_se0.25', 'ir_r1_k5_s1_e4_c40_nre_se0.25'],
        ['ir_r1_k5_s2_e3_c80', 'ir_r1_k5_s1_e6_c80_se0.25', 'ir_r1_k3_s1_e4_c80_se0.25', 'ir_r1_k5_s1_e3_c80_se0.25'],
        [
            'ir_r1_k3_s1_e6_c112_se0.25',
            'ir_r1_k5_s1_e6_c112_se0.25',
            'ir_r1_k5_s1_e4_c112_se0.25',
            'ir_r1_k3_s1_e4_c112_se0.25',
        ],
        [
            'ir_r1_k3_s2_e6_c192_se0.25',
            'ir_r1_k5_s1_e4_c192_se0.25',
            'ir_r1_k5_s1_e6_c192_se0.25',
            'ir_r1_k5_s1_e4_c192_se0.25',
        ],
        ['cn_r1_k1_s1_c960'],
    ],
    "E": [
        ['ds_r1_k3_s1_e1_c16_nre'],
        ['ir_r1_k5_s2_e3_c24_nre', 'ir_r1_k3_s1_e3_c24_nre', 'ir_r1_k3_s1_e3_c24_nre_se0.25'],
        [
            'ir_r1_k5_s2_e3_c40_nre',
            'ir_r1_k3_s1_e4_c40_nre_se0.25',
            'ir_r1_k3_s1_e4_c40_nre_se0.25',
            'ir_r1_k5_s1_e6_c40_nre_se0.25',
        ],
        ['ir_r1_k5_s2_e3_c80', 'ir_r1_k5_s1_e3_c80_se0.25', 'ir_r1_k3_s1_e4_c80_se0.25', 'ir_r1_k5_s1_e6_c80_se0.25'],
        [
            'ir_r1_k3_s1_e4_c112_se0.25',
            'ir_r1_k5_s1_e6_c112_se0.25',
            'ir_r1_k3_s1_e6_c112_se0.25',
            'ir_r1_k5_s1_e4_c112_se0.25',
        ],
        [
            'ir_r1_k3_s2_e6_c192_se0.25',
            'ir_r1_k3_s1_e4_c192_se0.25',
            'ir_r1_k5_s1_e6_c192_se0.25',
            'ir_r1_k5_s1_e6_c192_se0.25',
        ],
        ['cn_r1_k1_s1_c960'],
    ],
    "F": [
        ['ds_r1_k3_s1_e1_c16_nre'],
        ['ir_r1_k5_s2_e3_c24_nre', 'ir_r1_k3_s1_e3_c24_nre', 'ir_r1_k3_s1_e3_c24_nre_se0.25'],
        [
            'ir_r1_k5_s2_e3_c40_nre',
            'ir_r1_k5_s1_e4_c40_nre',
            'ir_r1_k3_s1_e4_c40_nre_se0.25',
            'ir_r1_k5_s1_e6_c40_nre_se0.25',
        ],
        ['ir_r1_k5_s2_e3_c80', 'ir_r1_k3_s1_e6_c80_se0.25', 'ir_r1_k5_s1_e6_c80_se0.25', 'ir_r1_k5_s1_e6_c80_se0.25'],
        [
            'ir_r1_k5_s1_e6_c112_se0.25',
            'ir_r1_k5_s1_e6_c112_se0.25',
            'ir_r1_k3_s1_e6_c112_se0.25',
            'ir_r1_k3_s1_e6_c112_se0.25',
        ],
        [
            'ir_r1_k3_s2_e6_c192_se0.25',
            'ir_r1_k3_s1_e4_c192_se0.25',
            'ir_r1_k5_s1_e6_c192_se0.25',
            'ir_r1_k5_s1_e6_c192_se0.25',
        ],
        ['cn_r1_k1_s1_c960'],
    ],
}
ST = bs.DEFAULT


@pytest.mark.parametrize("name", sorted(BINAS_NETS))
def test_binas_a_to_f_round_trip_exactly(name):
    text = str(BINAS_NETS[name])
    arch = bs.from_string(text)
    assert bs.to_string(arch) == text
    assert np.array_equal(bs.from_string(bs.to_string(arch)), arch)
    assert np.array_equal(arch, bs.canonical(arch))
    assert [len(s) for s in BINAS_NETS[name][1:-1]] == [ST.depths[d] for d in bs.depth_choices(arch)[0]]


def test_space_positions_in_binas_logits_order_and_registered():
    sp = get_space("binas")
    assert sp.num_positions == 25 and sp.positions[:3] == ("stage 1 depth", "stage 1 layer 1", "stage 1 layer 2")
    assert list(sp.num_choices[:6]) == [3, 12, 12, 12, 12, 3]
    # BINAS's index: c = 4 * e_index + 2 * k_index + se_index
    assert [c.label for c in ST.configs[:4]] == ["e3_k3", "e3_k3_se0.25", "e3_k5", "e3_k5_se0.25"]
    assert ST.config_index(6, 5, 0.25) == 11


def test_canonical_and_encoding_zero_inactive_layers():
    a = np.zeros(25, np.int64)
    a[bs.DEFAULT.layer_positions] = 7  # depth 2 everywhere: layers 3 and 4 of each stage are inactive
    c = bs.canonical(a)
    assert (bs.layer_choices(c)[0].reshape(5, 4)[:, 2:] == 0).all()
    alpha, beta = bs.encode(a)
    assert alpha.shape == (1, 20, 12) and beta.shape == (1, 5, 3)
    assert alpha[0].sum(1).tolist() == [1, 1, 0, 0] * 5 and (beta[0, :, 0] == 1).all()
    assert np.array_equal(bs.encode(a)[0], bs.encode(c)[0])


@pytest.mark.parametrize("bad, part", [
    ("not a list", "arch string"),
    ("[['ds_r1_k3_s1_e1_c16_nre'], ['cn_r1_k1_s1_c960']]", "2 stages, expected 7"),
    (str(BINAS_NETS["A"]).replace("e3_c24_nre'", "e5_c24_nre'", 1), "stage 1 block 1 .*expansion e5"),
    (str(BINAS_NETS["A"]).replace("k5_s2_e3_c40", "k7_s2_e3_c40", 1), "stage 2 block 1 .*kernel k7"),
    (str(BINAS_NETS["A"]).replace("k5_s2_e3_c40", "k5_s1_e3_c40", 1), "stage 2 block 1 .*stride s 1, expected 2"),
    (str(BINAS_NETS["A"]).replace("e3_c80',", "e3_c80_nre',", 1), "stage 3 block 1 .*activation 'relu'"),
    (str(BINAS_NETS["A"]).replace("c112_se0.25'", "c112_se0.5'", 1), "stage 4 block 1 .*se0.5"),
    (str(BINAS_NETS["A"]).replace("c112_se0.25'", "c96_se0.25'", 1), "stage 4 block 1 .*channels c 96"),
    (str(BINAS_NETS["A"]).replace("ir_r1_k5_s1_e4_c112", "xx_r1_k5_s1_e4_c112", 1), "block type 'xx'"),
    (str(BINAS_NETS["A"]).replace("ir_r1_k5_s1_e4_c112_se0.25'", "ir_r1_k5_s1_e4_c112_q1'", 1), "unknown option 'q1'"),
    (str(BINAS_NETS["A"]).replace("['ir_r1_k5_s1_e4_c112_se0.25', 'ir_r1_k5_s1_e4_c112_se0.25']",
                                  "['ir_r1_k5_s1_e4_c112_se0.25']"), "stage 4: 1 blocks"),
    (str(BINAS_NETS["A"]).replace("c960", "c1280"), "head"),
    (str(BINAS_NETS["A"]).replace("ds_r1_k3_s1_e1_c16_nre", "ds_r1_k3_s1_e1_c32_nre"), "first block"),
    (str(BINAS_NETS["A"]).replace("ir_r1_k5_s2_e3_c24_nre'", "ir_r2_k5_s2_e3_c24_nre'", 1), "repeat r 2"),
])
def test_malformed_strings_name_the_part(bad, part):
    with pytest.raises(NasjaxInputError, match=part):
        bs.from_string(bad)


def test_structure_as_data_and_reduced_spaces():
    d = ST.to_dict()
    assert [s["channels"] for s in d["stages"]] == [24, 40, 80, 112, 192]
    assert [s["act"] for s in d["stages"]] == ["relu", "relu", "hswish", "hswish", "hswish"]
    assert d["head"]["channels"] == 960 and d["stem"]["channels"] == 32 and d["first_block"]["channels"] == 16
    res = [(x["stage"], x["layer"], x["in_channels"], x["stride"], x["resolution"])
           for x in d["layers"] if x["layer"] < 2]
    assert res[:4] == [(0, 0, 16, 2, 112), (0, 1, 24, 1, 56), (1, 0, 24, 2, 56), (1, 1, 40, 1, 28)]
    assert bs.BinasStructure.from_dict(d) == ST
    small = bs.BinasStructure(stages=bs.STAGES[:2], configs=bs.CONFIGS[:3])
    sp = bs.binas_space(small)
    assert sp.num_positions == 10 and bs.structure_of(sp) is small
    a = bs.canonical(sp.random(0, 5), small)
    for row in a:
        assert np.array_equal(bs.from_string(bs.to_string(row, small), small), row)
    with pytest.raises(NasjaxInputError, match="expected a BINAS space"):
        bs.structure_of(get_space("nasbench201"))


def test_lut_round_trip_and_latency_model(tmp_path):
    general, layers = synthetic_latency(ST, 3)
    p = tmp_path / "LUT.pkl"
    write_latency_lut(p, general, layers)
    lut = read_latency_lut(p)
    first = ST.layers()[0]
    want = "in_channels_16_out_channels_24_stride_2_resolution_112_er_6_k_5_se_0.25_act_1"
    assert lut_key(first, ST.configs[11]) == want
    assert lut_key(ST.layers()[8], ST.configs[0]) in lut  # stage 3 (h-swish): act_0, se_0
    assert "in_channels_40_out_channels_80_stride_2_resolution_28_er_3_k_3_se_0_act_0" in lut
    m = latency_from_lut(p)
    assert m.unit == "s" and m.metric == "latency"
    a = bs.canonical(get_space("binas").random(0, 50))
    alpha, _ = bs.encode(a)
    np.testing.assert_allclose(m.predict(a), general + (alpha * layers).sum((1, 2)))
    ms = m.to_unit("ms")
    np.testing.assert_allclose(ms.predict(a), 1000 * m.predict(a))
    lo, hi = m.bounds()
    assert lo == pytest.approx(general + layers.reshape(5, 4, 12)[:, :2].min(2).sum())
    assert hi == pytest.approx(general + layers.max(1).sum())


def test_units_are_explicit():
    m = latency_model(0.01, np.full((20, 12), 0.001), "s")
    with pytest.raises(NasjaxInputError, match="bound in 'ms' but the latency model is in 's'"):
        Constraint(m, 45.0, "ms")
    Constraint(m.to_unit("ms"), 45.0, "ms")
    with pytest.raises(NasjaxInputError, match="latency_corrective_intercept: in 'ms' but .* in 's'"):
        m.calibrated(1.0, 1.0, "ms")  # HardCoReNAS issue 1: an intercept of 1.0 added to a table in seconds
    assert m.calibrated(1.0, 0.002, "s").base == pytest.approx(0.012)


def test_lut_reader_refuses_code_and_bad_content(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    cases = {"code.pkl": {"general": Evil()}, "list.pkl": [1, 2], "neg.pkl": {"general": -1.0},
             "nogeneral.pkl": {"x": 1.0}, "numpy.pkl": {"general": np.float64(0.01)}}
    msgs = {"code.pkl": "refuses to unpickle builtins.print", "list.pkl": "holds a list",
            "neg.pkl": "expected a finite number of seconds", "nogeneral.pkl": "no 'general' entry",
            "numpy.pkl": "refuses to unpickle numpy"}
    for name, obj in cases.items():
        (tmp_path / name).write_bytes(pickle.dumps(obj))
        with pytest.raises(NasjaxInputError, match=msgs[name]):
            read_latency_lut(tmp_path / name)
    (tmp_path / "short.pkl").write_bytes(pickle.dumps({"general": 0.01}))
    with pytest.raises(NasjaxInputError, match="no entry 'in_channels_16_out_channels_24"):
        latency_from_lut(tmp_path / "short.pkl")
    (tmp_path / "trunc.pkl").write_bytes(pickle.dumps({"general": 0.01})[:-3])
    with pytest.raises(NasjaxInputError, match="not a readable pickle"):
        read_latency_lut(tmp_path / "trunc.pkl")


def test_accuracy_lut_reader(tmp_path):
    archs = get_space("binas").random(1, 4)
    d = {f"net{i}": {"accuracy": 70.0 + i, "expected_latency": 0.03, "logits": [int(x) for x in a]}
         for i, a in enumerate(archs)}
    (tmp_path / "acc.pkl").write_bytes(pickle.dumps(d))
    out = read_accuracy_lut(tmp_path / "acc.pkl")
    assert np.array_equal(out["archs"], bs.canonical(archs)) and out["accuracy"].tolist() == [70, 71, 72, 73]


def test_latency_table_view():
    general, layers = synthetic_latency(ST, 0)
    vals = np.zeros((25, 12))
    mask = np.zeros((25, 12), bool)
    vals[ST.layer_positions] = layers * 1e3
    mask[ST.layer_positions] = True
    mask[ST.depth_positions, :3] = True
    t = Table(vals, mask, "latency", "ms", base=general * 1e3, device="this-cpu")
    m = latency_from_table(t)
    a = bs.canonical(get_space("binas").random(0, 20))
    ref = latency_from_lut({"general": general, **{bs_key: v for bs_key, v in _lut_items(general, layers)}})
    np.testing.assert_allclose(m.predict(a), ref.to_unit("ms").predict(a))
    assert m.device == "this-cpu"


def _lut_items(general, layers):
    for i, layer in enumerate(ST.layers()):
        for c, cfg in enumerate(ST.configs):
            yield lut_key(layer, cfg), float(layers[i, c])
