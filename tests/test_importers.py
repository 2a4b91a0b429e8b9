"""Importers of published latency LUTs: OFA-style YAML, TF-NAS pickles, BINAS pickles (units explicit)."""

import pickle
from collections import OrderedDict

import numpy as np
import pytest
import yaml
from conftest import require_shared

from nasjax.benchmarks.published_luts import (
    OFA_YAML_RESOLUTIONS,
    ofa_yaml_path,
    ofa_yaml_table,
    read_ofa_yaml_lut,
    read_tfnas_lut,
    tfnas_table,
)
from nasjax.constraints import Constraint
from nasjax.errors import NasjaxInputError
from nasjax.hardware.calibration import calibrate


def _ofa_dir():
    return require_shared("sxtyzhangzk-once-for-all", "vai_deploy", "lut-examples")


@pytest.mark.parametrize("res", OFA_YAML_RESOLUTIONS)
def test_ofa_yaml_on_the_shared_files(res):
    _ofa_dir()
    path = ofa_yaml_path(res)
    imp = ofa_yaml_table(path)
    t, space = imp.table, imp.space
    assert t.unit == "ms" and t.metric == "latency" and t.provenance["resolution"] == res
    assert t.shape == (21, 10) and space.num_positions == 21
    t.check_space(space)
    raw = {e.key: e.mean_ms for e in read_ofa_yaml_lut(path)}
    assert len(raw) == 103
    parts = t.provenance["base_parts_ms"]
    assert t.base == pytest.approx(sum(parts.values()))
    # one architecture by hand: every layer k5 e6 (choice 5), last two layers of stage 1 skipped
    a = np.full(21, 5)
    a[2] = a[3] = 9
    assert space.choices[2][9] == "skip" and space.choices[0][5] == "k5e6"
    h = res // 2
    first = f"expanded_conv-input:{h}x{h}x20-output:{-(-h // 2)}x{-(-h // 2)}x30-expand:6-kernel:5-stride:2-idskip:0"
    rep = f"expanded_conv-input:{-(-h // 2)}x{-(-h // 2)}x30-output:{-(-h // 2)}x{-(-h // 2)}x30-expand:6-kernel:5-" \
          "stride:1-idskip:1"
    lat = t.predict(a)
    assert t.values[0, 5] == pytest.approx(raw[first]) and t.values[1, 5] == pytest.approx(raw[rep])
    assert lat == pytest.approx(t.base + raw[first] + raw[rep] + t.values[4:, 5].sum())
    with pytest.raises(NasjaxInputError, match="bound in 's' but the latency table is in 'ms'"):
        Constraint(t, 0.05, "s")


def _write_yaml(tmp_path, d):
    p = tmp_path / "224_lookup_table.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def test_ofa_yaml_bad_files(tmp_path):
    d = yaml.safe_load(ofa_yaml_path(224).read_text()) if _ofa_dir() else None
    key = "expanded_conv-input:28x28x40-output:14x14x80-expand:5-kernel:7-stride:2-idskip:0"
    for change, message in (
        (lambda x: x.pop(key), "no entry for kernel 7, expand 5"),
        (lambda x: x[key].update(mean=float("nan")), "mean: got nan"),
        (lambda x: x[key].update(count=0), "count: got 0"),
        (lambda x: x.update({"Pool-input:7x7x1-output:1x1x1": {"count": 1, "mean": 1.0, "std": 0.0}}), "key 'Pool"),
        (lambda x: x.pop("Conv_1-input:7x7x320-output:7x7x1280"), "0 'Conv_1' entries"),
        (lambda x: x.update({key.replace("14x14x80", "13x13x80"): x[key]}), "output 13x13"),
    ):
        bad = {k: dict(v) for k, v in d.items()}
        change(bad)
        with pytest.raises(NasjaxInputError, match=message) as e:
            ofa_yaml_table(_write_yaml(tmp_path, bad))
        assert "224_lookup_table.yaml" in str(e.value)
    with pytest.raises(NasjaxInputError, match="resolution"):
        ofa_yaml_path(100)


def _tfnas(name):
    return require_shared("TF-NAS", "latency_pkl", name)


@pytest.mark.parametrize("name, base", [("latency_gpu.pkl", 1.9858), ("latency_cpu.pkl", 9.3565)])
def test_tfnas_on_the_shared_files(name, base):
    path = _tfnas(name)
    b, blocks = read_tfnas_lut(path)
    assert b == pytest.approx(base, abs=1e-4) and len(blocks) == 66
    imp = tfnas_table(path)
    t = imp.table
    assert t.unit == "ms" and t.base == b and t.shape[0] == 11
    assert t.device.startswith("titan_rtx_b32" if "gpu" in name else "xeon_gold_6130_b1")
    # one cell by hand
    j = imp.space.choices[0].index("k3_se0_mid10")
    assert t.values[0, j] == pytest.approx(blocks[(112, 16, 0, 24, 3, 2, "relu")][10])
    t.check_space(imp.space)


def test_tfnas_written_and_bad_files(tmp_path):
    p = tmp_path / "lut.pkl"
    good = OrderedDict(base=2.0)
    good["MBInvertedResBlock_14_8_0_8_k3_s1_relu"] = OrderedDict((m, 0.1 * m) for m in range(1, 5))
    good["MBInvertedResBlock_14_8_8_8_k5_s1_relu"] = OrderedDict((m, 0.2 * m) for m in range(1, 3))
    p.write_bytes(pickle.dumps(good))
    imp = tfnas_table(p)
    assert imp.table.shape == (1, 6) and imp.space.choices[0][4] == "k5_se8_mid1"
    assert imp.table.predict([5]) == pytest.approx(2.4)  # k5_se8_mid2
    bad = OrderedDict(good)
    bad["MBInvertedResBlock_14_8_0_8_k3_s1_relu"] = OrderedDict({1: float("inf")})
    p.write_bytes(pickle.dumps(bad))
    with pytest.raises(NasjaxInputError, match=r"MBInvertedResBlock_14_8_0_8_k3_s1_relu'\]\[1\]: got inf"):
        tfnas_table(p)
    p.write_bytes(pickle.dumps({"base": 1.0, "Block_1": {1: 1.0}}))
    with pytest.raises(NasjaxInputError, match="key 'Block_1'"):
        tfnas_table(p)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    p.write_bytes(pickle.dumps({"base": Evil()}))
    with pytest.raises(NasjaxInputError, match="refuses to unpickle builtins.print"):
        tfnas_table(p)
    p.write_bytes(b"not a pickle")
    with pytest.raises(NasjaxInputError, match="lut.pkl"):
        tfnas_table(p)


def test_binas_format_file_written_by_hand(tmp_path):
    """A LUT in BINAS's format (SOURCE.md: key per layer configuration, seconds per image, 'general')."""
    from nasjax.hardware.binas_latency import latency_from_lut
    from nasjax.spaces import binas as bs

    small = bs.BinasStructure(stages=bs.STAGES[:2], configs=bs.CONFIGS[:3])
    # layers of the two stages at a 224-px input: (Cin, Cout, stride, H, act)
    shapes = [(16, 24, 2, 112, 1)] + [(24, 24, 1, 56, 1)] * 3 + [(24, 40, 2, 56, 1)] + [(40, 40, 1, 28, 1)] * 3
    lut, secs = {"general": 0.004}, np.zeros((8, 3))
    for i, (cin, cout, s, h, act) in enumerate(shapes):
        for c, cfg in enumerate(small.configs):
            se = "0.25" if cfg.se else "0"
            key = (f"in_channels_{cin}_out_channels_{cout}_stride_{s}_resolution_{h}_er_{cfg.expansion}_"
                   f"k_{cfg.kernel}_se_{se}_act_{act}")
            lut.setdefault(key, 0.0002 * (i // 4 + 1) * (c + 1))
            secs[i, c] = lut[key]
    p = tmp_path / "LUT_CPU.pkl"
    p.write_bytes(pickle.dumps(lut))
    m = latency_from_lut(p, structure=small)
    assert m.unit == "s"
    a = bs.canonical(bs.binas_space(small).random(0, 10), small)
    alpha, _ = bs.encode(a, small)
    np.testing.assert_allclose(m.predict(a), 0.004 + (alpha * secs).sum((1, 2)))
    with pytest.raises(NasjaxInputError, match="bound in 'ms' but the latency model is in 's'"):
        Constraint(m, 20.0, "ms")
    ms = m.to_unit("ms")
    np.testing.assert_allclose(ms.predict(a), 1000.0 * m.predict(a))
    assert ms.unit == "ms"
    Constraint(ms, 20.0, "ms")


def test_a_table_in_seconds_is_not_calibrated_against_ms(tmp_path):
    imp = ofa_yaml_table(ofa_yaml_path(160)) if _ofa_dir() else None
    t_s = imp.table.to_unit("s")
    refs = imp.space.random(0, 3)
    with pytest.raises(NasjaxInputError, match="table.unit: got 's', expected 'ms'"):
        calibrate(t_s, refs, [30.0, 40.0, 50.0])
    with pytest.raises(NasjaxInputError, match="bound in 'ms' but the latency table is in 's'"):
        Constraint(t_s, 40.0, "ms")
