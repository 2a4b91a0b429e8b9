"""Analytic FLOPs/params tables equal a direct count on the built model (its jaxpr and its parameters)."""

import numpy as np
import pytest
from flax import nnx

from nasjax.hardware import flops as fl
from nasjax.models import OFAMobileNetV3, SupernetConfig, split_model
from nasjax.profiling.contributions import nasjax_block_set
from nasjax.spaces.mobilenetv3 import layers_to_ofa, mobilenetv3_layers_space

CFG = SupernetConfig(width_mult=0.25, num_classes=10, in_channels=1)


@pytest.fixture(scope="module")
def state():
    return split_model(OFAMobileNetV3(CFG, rngs=nnx.Rngs(0)))


@pytest.mark.parametrize("res", [16, 23])
def test_stage_block_tables_equal_direct_count(state, res):
    bs = nasjax_block_set()
    tf, tp = fl.stage_block_tables(CFG, res, bs)
    assert tf.unit == "MFLOPs" and tp.unit == "M" and tf.space == "mobilenetv3"
    archs = np.vstack([[0] * 5, [4] * 5, bs.space().random(7, 1)]) if res == 16 else bs.space().random(8, 1)
    for a in archs:
        sub = bs.to_ofa(a)
        direct = fl.direct_macs(state, CFG, sub, res)
        assert round(tf.predict(a) * 1e6) == direct
        assert fl.subnet_cost(CFG, res, sub)[1] == pytest.approx(tp.predict(a))


def test_layer_tables_exact_at_full_depth_and_single_changes(state):
    res = 16
    tf, _ = fl.layer_tables(CFG, res)
    space = mobilenetv3_layers_space()
    rng = np.random.default_rng(0)
    full = space.random(rng, 2)
    full[:, 20:] = 2  # depth 4 everywhere: the table is exact there
    base = space.num_choices - 1
    single = []
    for i, c in [(7, 4), (22, 0)]:  # a layer and a depth position
        a = base.copy()
        a[i] = c
        single.append(a)
    for a in np.vstack([full, single]):
        assert round(tf.predict(a) * 1e6) == fl.direct_macs(state, CFG, layers_to_ofa(a), res)


def test_subnet_cost_any_depth_and_params_direct(state):
    res = 16
    rng = np.random.default_rng(1)
    for a in mobilenetv3_layers_space().random(rng, 1):  # random depths too
        sub = layers_to_ofa(a)
        assert round(fl.subnet_cost(CFG, res, sub)[0] * 1e6) == fl.direct_macs(state, CFG, sub, res)
    # parameters: a supernet built with one kernel/expand/depth has exactly one (static) subnet
    for k, e, d in [(3, 3, 2), (7, 6, 4)]:
        direct = fl.direct_params({"ks_list": [k], "expand_list": [e], "depth_list": [d]}, CFG)
        sub = {"ks": [k] * 20, "e": [e] * 20, "d": [d] * 5}
        assert round(fl.subnet_cost(CFG, res, sub)[1] * 1e6) == direct
