"""Export of BINAS subnets: the static Flax module and the ONNX model (onnxruntime) give the BINAS supernet's
logits to 1e-4, hold the squeeze-excite only where the subnet chose it and the stage's activation, and the
pieces (stem, layers, head) compose to the whole."""

import jax.numpy as jnp
import numpy as np
import onnxruntime as ort
import pytest
from flax import nnx

from nasjax.errors import NasjaxInputError
from nasjax.export import compiled, head, layer_block, static_subnet, stem, subnet_onnx
from nasjax.export.onnx_graph import layer_onnx
from nasjax.models.binas import binas_subnets, binas_supernet_config
from nasjax.models.mobilenetv3 import OFAMobileNetV3, apply, split_model, subnet_to_ofa
from nasjax.spaces.binas import DEFAULT, active, binas_space, canonical

ST = DEFAULT.to_dict()
CFG = binas_supernet_config(ST, num_classes=10, in_channels=1, width_mult=0.25)
RES = 32


@pytest.fixture(scope="module")
def supernet():
    """Random BN statistics, SE and feature-mix biases: every option visibly changes the logits."""
    m = OFAMobileNetV3(CFG, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(1)
    for path, v in nnx.iter_graph(m):
        if not path or not isinstance(v, nnx.Variable):
            continue
        a = v[...]
        if path[-1] in ("mean", "bias", "b_reduce", "b_expand", "b_mix"):
            v.set_value(a + 0.2 * jnp.asarray(rng.standard_normal(a.shape), jnp.float32))
        elif path[-1] in ("var", "scale"):
            v.set_value(a * jnp.asarray(rng.uniform(0.6, 1.4, a.shape), jnp.float32))
    m.w_cls.set_value(m.w_cls[...] * 30.0)
    return split_model(m)


def _archs():
    sp = binas_space()
    rng = np.random.default_rng(4)
    rand = canonical(np.stack([rng.integers(0, len(c), 2) for c in sp.choices], axis=1))
    big = np.array([2 if c == 3 else 11 for c in sp.num_choices])
    return np.concatenate([rand, big[None]])


ARCHS = _archs()


def _close(a, b):
    assert a.shape == b.shape
    err, scale = float(np.abs(a - b).max()), max(1.0, float(np.abs(b).max()))
    assert err <= 1e-4 * scale, f"max abs difference {err:.3g} > 1e-4 * {scale:.3g}"


def _ort(model, x_nhwc):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))})[0]


@pytest.mark.parametrize("i", range(len(ARCHS)), ids=["random0", "random1", "largest"])
def test_static_and_onnx_equal_the_binas_supernet(supernet, i):
    arch = ARCHS[i]
    sub = subnet_to_ofa(binas_subnets(arch, ST))
    x = np.random.default_rng(10 + i).standard_normal((2, RES, RES, 1)).astype(np.float32)
    ref = np.asarray(apply(supernet.graphdef, supernet.params, supernet.batch_stats, binas_subnets(arch, ST),
                           jnp.asarray(x)))
    assert 1.0 < np.abs(ref).max() < 1e4
    net = static_subnet(supernet, sub)
    _close(np.asarray(compiled(net)(jnp.asarray(x))), ref)
    act = active(arch)[0]
    se_on = [bool(sub["se"][lay]) for lay in range(CFG.num_layers) if act[lay]]
    layers = [lay for s in net.stages for lay in s.layers]
    assert len(layers) == int(act.sum()) and [lay.se is not None for lay in layers] == se_on
    assert [lay.act for lay in layers] == [CFG.stage_acts[1 + lay // CFG.max_depth]
                                           for lay in range(CFG.num_layers) if act[lay]]
    assert net.head.b_mix is not None
    model = subnet_onnx(supernet, sub, batch_size=None, resolution=RES)
    ops = [n.op_type for n in model.graph.node]
    assert "BatchNormalization" not in ops and ops.count("HardSigmoid") == sum(se_on)
    relu_layers = sum(1 for lay in layers if lay.act == "relu")
    # ReLU: 2 per ReLU layer, 1 in the first block, 1 per SE
    assert ops.count("Relu") == 2 * relu_layers + 1 + sum(se_on)
    assert len(model.graph.node[[n.op_type for n in model.graph.node].index("Gemm")].input) == 3  # mix bias
    _close(_ort(model, x), ref)


def test_pieces_compose_and_se_is_checked(supernet):
    arch = ARCHS[0]
    sub = subnet_to_ofa(binas_subnets(arch, ST))
    x = np.random.default_rng(3).standard_normal((2, RES, RES, 1)).astype(np.float32)
    ref = np.asarray(compiled(static_subnet(supernet, sub))(jnp.asarray(x)))
    h = np.asarray(compiled(stem(supernet))(jnp.asarray(x)))
    D = CFG.max_depth
    for s in range(5):
        for j in range(sub["d"][s]):
            lay = s * D + j
            k, e, se = sub["ks"][lay], sub["e"][lay], sub["se"][lay]
            if s == 1 and j == 1:  # one layer through ONNX too
                _close(_ort(layer_onnx(supernet, s, j, k, e, se, batch_size=2, resolution=RES), h)
                       .transpose(0, 2, 3, 1), np.asarray(compiled(layer_block(supernet, s, j, k, e, se))(h)))
            h = np.asarray(compiled(layer_block(supernet, s, j, k, e, se))(h))
    _close(np.asarray(compiled(head(supernet))(jnp.asarray(h))), ref)
    with pytest.raises(NasjaxInputError, match="se"):
        layer_block(supernet, 0, 0, 3, 3)  # the elective SE must be chosen
    with pytest.raises(NasjaxInputError, match="se"):
        static_subnet(supernet, {k: v for k, v in sub.items() if k != "se"})
