"""Elastic MobileNetV3 supernet and batched evaluation: one compilation for many subnets, vmap == loop,
sharded == unsharded, masks match the subnet-shaped program, BN recalibration follows OFA's definition,
layers (depthwise formulations, make_divisible) and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from nasjax.errors import NasjaxInputError
from nasjax.models import (
    OFAMobileNetV3,
    SupernetConfig,
    apply,
    apply_subnets,
    max_subnet,
    min_subnet,
    random_subnets,
    split_model,
    stack_subnets,
    subnet_arrays,
    subnet_to_ofa,
)
from nasjax.models.layers import conv2d, depthwise_conv, make_divisible
from nasjax.models.mobilenetv3 import index_subnets
from nasjax.train.evaluate import (
    device_mesh,
    evaluate_subnets,
    evaluate_subnets_loop,
    recalibrate_bn,
    recalibrate_one,
)

CFG = SupernetConfig(width_mult=0.25, num_classes=10, in_channels=1)
B, RES = 4, 32


@pytest.fixture(scope="module")
def state():
    model = OFAMobileNetV3(CFG, rngs=nnx.Rngs(0))
    st = split_model(model)
    # random BN statistics and affine terms so that masks and statistics matter
    rng = np.random.default_rng(1)

    def rnd(path, v):
        if "['var']" in jax.tree_util.keystr(path):
            return jnp.asarray(rng.uniform(0.5, 1.5, v.shape), jnp.float32)
        return jnp.asarray(rng.normal(0, 0.2, v.shape), jnp.float32)

    stats = jax.tree_util.tree_map_with_path(rnd, st.batch_stats)
    return st._replace(batch_stats=stats)


@pytest.fixture(scope="module")
def subnets():
    return stack_subnets([max_subnet(CFG), min_subnet(CFG)] + [index_subnets(random_subnets(CFG, 3, 7), i)
                                                              for i in range(3)])


def _images(seed, n=B):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(n, RES, RES, 1)), jnp.float32)


def test_widths_follow_ofa():
    cfg = SupernetConfig()
    assert cfg.widths() == {"stem": 16, "first_block": 16, "stages": (24, 40, 80, 112, 160),
                            "final_expand": 960, "feature_mix": 1280}
    specs = cfg.layer_specs()
    assert len(specs) == 20
    first = specs[0]  # stage 1 layer 1: 16 -> 24, stride 2, ReLU, no SE
    got = (first.cin, first.cout, first.stride, first.act, first.use_se, first.residual)
    assert got == (16, 24, 2, "relu", False, False)
    assert first.mid == (48, 64, 96)
    s2 = specs[4]  # stage 2 layer 1: SE, mid 24*e, SE hidden make_divisible(mid // 4, 8)
    assert s2.use_se and s2.mid == (72, 96, 144) and s2.se_hidden == (24, 24, 40)
    assert [s.act for s in specs[8::4]] == ["h_swish"] * 3 and [s.use_se for s in specs[8::4]] == [False, True, True]
    assert [s.stride for s in specs[::4]] == [2, 2, 2, 1, 2]
    assert all(s.residual for s in specs if s.index > 0)
    assert make_divisible(10, 8) == 16 and make_divisible(19.2, 8) == 24 and make_divisible(4, 8) == 8


def test_depthwise_formulations_agree():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 9, 10, 5)), jnp.float32)
    for k, s in ((3, 1), (7, 2), (5, 2)):
        w = jnp.asarray(rng.normal(size=(k, k, 5)), jnp.float32)
        a = depthwise_conv(x, w, s, "shift")
        b = depthwise_conv(x, w, s, "xla")
        # reference: a dense conv with a block-diagonal kernel
        dense = jnp.einsum("hwc,cd->hwcd", w, jnp.eye(5))
        c = conv2d(x, dense, s)
        assert a.shape == ((2, 8 // s + 1, 9 // s + 1, 5) if s > 1 else (2, 9, 10, 5))
        np.testing.assert_allclose(a, b, atol=1e-5)
        np.testing.assert_allclose(a, c, atol=1e-5)


def test_one_compilation_serves_many_subnets_and_vmap_equals_loop(state, subnets):
    x = _images(0)
    loop = [np.asarray(apply(state.graphdef, state.params, state.batch_stats, index_subnets(subnets, 0), x))]
    compiled = apply._cache_size()
    loop += [np.asarray(apply(state.graphdef, state.params, state.batch_stats, index_subnets(subnets, i), x))
             for i in range(1, 5)]
    assert apply._cache_size() == compiled  # four more subnets, no new compilation
    loop = np.stack(loop)
    batched = np.asarray(apply_subnets(state.graphdef, state.params, state.batch_stats, subnets, x))
    np.testing.assert_allclose(batched, loop, rtol=1e-5, atol=1e-5)
    # the subnets really differ
    assert np.abs(loop[0] - loop[1]).max() > 1e-2


def test_masked_program_equals_subnet_shaped_program(state, subnets):
    from nasjax.export.static import compiled, static_subnet

    x = _images(1)
    for i in (3,):
        masked = apply(state.graphdef, state.params, state.batch_stats, index_subnets(subnets, i), x)
        shaped = compiled(static_subnet(state, subnet_to_ofa(subnets, i)))(x)
        np.testing.assert_allclose(masked, shaped, rtol=1e-5, atol=1e-5)


def test_train_mode_updates_only_active_statistics(state):
    x = _images(2)
    sn = min_subnet(CFG)  # depth 2: layers 3, 4 of every stage inactive; expand 3: channels beyond mid(3) inactive
    logits, new = apply(state.graphdef, state.params, state.batch_stats, sn, x, train=True)
    assert logits.shape == (B, 10)
    old_b, new_b = state.batch_stats["blocks"], new["blocks"]
    specs = CFG.layer_specs()
    for layer, spec in enumerate(specs):
        o, n = old_b[layer]["bn_expand"]["mean"][...], new_b[layer]["bn_expand"]["mean"][...]
        if spec.index >= 2:
            np.testing.assert_array_equal(o, n)
        else:
            mid = spec.mid[0]
            assert np.abs(np.asarray(o[:mid]) - np.asarray(n[:mid])).max() > 0
            np.testing.assert_array_equal(o[mid:], n[mid:])
    # the stem always updates, with PyTorch's momentum 0.1
    assert not np.allclose(state.batch_stats["first_conv"]["bn"]["mean"][...], new["first_conv"]["bn"]["mean"][...])


def test_recalibration_follows_ofa_definition(state, subnets):
    calib = [_images(10), _images(11)]
    stats = recalibrate_bn(state, index_subnets(subnets, np.array([0, 1])), calib, chunk_size=4)
    # stem BN: mean over all images of the stem conv output, biased variance averaged per batch
    w = state.params["first_conv"]["w"][...]
    outs = [conv2d(x, w, 2) for x in calib]
    n = np.array([x.shape[0] for x in calib], np.float64)
    mean = sum(ni * np.asarray(o.mean((0, 1, 2))) for ni, o in zip(n, outs)) / n.sum()
    var = sum(ni * np.asarray(o.var((0, 1, 2))) for ni, o in zip(n, outs)) / n.sum()
    for s in range(2):
        np.testing.assert_allclose(stats["first_conv"]["bn"]["mean"][...][s], mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(stats["first_conv"]["bn"]["var"][...][s], var, rtol=1e-4, atol=1e-5)
    one = recalibrate_one(state, index_subnets(subnets, 1), calib)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[1], b, rtol=1e-4, atol=1e-5), stats, one)
    # a skipped layer keeps the supernet's statistics
    np.testing.assert_allclose(stats["blocks"][3]["bn_dw"]["var"][...][1],
                               state.batch_stats["blocks"][3]["bn_dw"]["var"][...], rtol=1e-6)
    # sharding the image batch over 4 devices gives the same statistics up to float32 reduction order
    # (amplified through 20 random layers: observed 2e-4 relative on a deep layer's variance)
    by_data = recalibrate_bn(state, index_subnets(subnets, np.array([0, 1])), calib, chunk_size=4,
                             mesh=device_mesh(jax.devices()[:4]), shard="data")
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4), by_data, stats)


def test_evaluate_batched_loop_and_sharded_agree(state, subnets):
    rng = np.random.default_rng(3)
    data = [(_images(20 + i), rng.integers(0, 10, B)) for i in range(2)]
    calib = [_images(30), _images(31)]
    batched = evaluate_subnets(state, subnets, data, calib, chunk_size=4)  # 5 subnets: one padded chunk
    loop = evaluate_subnets_loop(state, subnets, data, calib)
    np.testing.assert_allclose(batched, loop)
    assert batched.shape == (5,) and np.all((batched >= 0) & (batched <= 100))
    mesh = device_mesh(jax.devices()[:4])
    assert mesh.devices.size == 4
    sharded = evaluate_subnets(state, subnets, data, calib, chunk_size=4, mesh=mesh, shard="subnets")
    np.testing.assert_allclose(sharded, batched)
    # without recalibration the supernet's statistics are used: a different (valid) result
    plain = evaluate_subnets(state, subnets, data, None, chunk_size=4)
    assert plain.shape == (5,)


def test_subnet_codecs_and_errors():
    sn = random_subnets(CFG, 4, seed=5)
    again = random_subnets(CFG, 4, seed=5)
    jax.tree.map(np.testing.assert_array_equal, sn, again)
    d = subnet_to_ofa(sn, 2)
    np.testing.assert_array_equal(subnet_arrays(d, CFG)["ks"], sn["ks"][2])
    from nasjax.spaces.mobilenetv3 import layers_to_ofa, ofa_to_layers

    back = stack_subnets([layers_to_ofa(ofa_to_layers(subnet_to_ofa(sn, i))) for i in range(4)])
    jax.tree.map(np.testing.assert_array_equal, back, sn)
    with pytest.raises(NasjaxInputError, match=r"subnet.ks\[0\]"):
        subnet_arrays({"ks": [4] * 20, "e": [3] * 20, "d": [2] * 5}, CFG)
    with pytest.raises(NasjaxInputError, match="subnet.d"):
        subnet_arrays({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 4}, CFG)
    with pytest.raises(NasjaxInputError, match="config.width_mult"):
        SupernetConfig(width_mult=0)
    with pytest.raises(NasjaxInputError, match="depthwise_impl"):
        SupernetConfig(depthwise_impl="fast")
    with pytest.raises(NasjaxInputError, match="config.ks_list"):
        SupernetConfig(ks_list=(7, 3))
    model = OFAMobileNetV3(CFG, rngs=nnx.Rngs(0))
    with pytest.raises(NasjaxInputError, match="x.shape"):
        model(jnp.zeros((1, 32, 32, 3)), max_subnet(CFG))
    st = split_model(model)
    with pytest.raises(NasjaxInputError, match="shard"):
        evaluate_subnets(st, sn, [(_images(0), np.zeros(B, int))], None, shard="layers")
    with pytest.raises(NasjaxInputError, match="data labels"):
        evaluate_subnets(st, sn, [(_images(0), np.zeros(B + 1, int))], None)
    with pytest.raises(NasjaxInputError, match="subnets.d"):
        evaluate_subnets(st, max_subnet(CFG), [(_images(0), np.zeros(B, int))], None)
