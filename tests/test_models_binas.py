"""The BINAS supernet: the elastic MobileNetV3 configured from the BINAS structure (tiny widths)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from nasjax.models.binas import binas_subnets, binas_supernet_config, multipath_subnets
from nasjax.models.mobilenetv3 import (
    OFAMobileNetV3,
    apply,
    apply_subnets,
    merge_model,
    split_model,
    subnet_to_ofa,
)
from nasjax.spaces.binas import DEFAULT, binas_space, canonical


@pytest.fixture(scope="module")
def setup():
    st = DEFAULT.to_dict()
    cfg = binas_supernet_config(st, num_classes=5, in_channels=1, width_mult=0.25, dropout_rate=0.0)
    model = OFAMobileNetV3(cfg, rngs=nnx.Rngs(0))
    # non-trivial BN statistics and SE biases so that every option changes the output
    state = split_model(model)
    rng = np.random.default_rng(1)
    stats = jax.tree.map(lambda a: jnp.asarray(np.abs(rng.normal(1.0, 0.3, a.shape)), jnp.float32),
                         state.batch_stats)
    x = jnp.asarray(rng.normal(size=(3, 32, 32, 1)), jnp.float32)
    space = binas_space()
    archs = canonical(np.stack([rng.integers(0, len(c), 3) for c in space.choices], axis=1))
    return st, cfg, state._replace(batch_stats=stats), x, archs


def test_structure_becomes_the_elastic_config(setup):
    st, cfg, *_ = setup
    full = binas_supernet_config(st)
    assert full.widths()["stages"] == (24, 40, 80, 112, 192)
    assert full.widths()["stem"] == 32 and full.widths()["final_expand"] == 960
    assert full.ks_list == (3, 5) and full.expand_list == (3, 4, 6) and full.se_choice
    assert full.stage_acts == ("relu", "relu", "relu", "h_swish", "h_swish", "h_swish")
    assert cfg.subnet_keys == ("ks", "e", "d", "se")


def test_masked_equals_subnet_shaped_and_vmap(setup):
    st, cfg, state, x, archs = setup
    subs = binas_subnets(archs, st)
    model = merge_model(state)
    batched = apply_subnets(state.graphdef, state.params, state.batch_stats, subs, x)
    for i in range(len(archs)):
        one = {k: v[i] for k, v in subs.items()}
        masked = apply(state.graphdef, state.params, state.batch_stats, one, x)
        shaped = jax.jit(lambda xx, d=subnet_to_ofa(subs, i): model(xx, d))(x)
        np.testing.assert_allclose(masked, shaped, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(batched[i], masked, atol=1e-5, rtol=1e-5)
    se_off = {k: (v.at[:].set(0) if k == "se" else v) for k, v in subs.items()}
    a = apply(state.graphdef, state.params, state.batch_stats, {k: v[0] for k, v in se_off.items()}, x)
    b = apply(state.graphdef, state.params, state.batch_stats, {k: v[0] for k, v in subs.items()}, x)
    assert float(jnp.max(jnp.abs(a - b))) > 1e-6  # the elective SE changes the output


def test_one_path_per_example_equals_each_path_alone(setup):
    st, cfg, state, x, _ = setup
    paths = multipath_subnets(st, jax.random.key(3), x.shape[0])
    multi = apply(state.graphdef, state.params, state.batch_stats, paths, x)
    for n in range(x.shape[0]):
        one = {k: v[n] for k, v in paths.items()}
        alone = apply(state.graphdef, state.params, state.batch_stats, one, x[n:n + 1])
        np.testing.assert_allclose(multi[n], alone[0], atol=1e-4, rtol=1e-4)
    forced = multipath_subnets(st, jax.random.key(3), 64, force_layer=7, force_config=5)
    # configuration 5 = 4 * 1 + 2 * 0 + 1: expansion 4, kernel 3, SE on; layer 7 is stage 2's 4th layer
    assert np.all(np.asarray(forced["d"])[:, 1] == 4)
    assert np.all(np.asarray(forced["e"])[:, 7] == 4) and np.all(np.asarray(forced["ks"])[:, 7] == 3)
    assert np.all(np.asarray(forced["se"])[:, 7] == 1)

