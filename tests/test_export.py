"""Subnet export: the static Flax module and the ONNX model (run by onnxruntime) give the supernet's logits,
hold only the subnet's weights, have no batch-norm node, compose from their pieces, refuse malformed input
and never leave a partial file."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from flax import nnx

from nasjax.errors import NasjaxInputError
from nasjax.export import (
    compiled,
    feature_shape,
    head,
    head_onnx,
    layer_block,
    layer_onnx,
    save_onnx,
    stage_block,
    stage_onnx,
    static_subnet,
    stem,
    stem_onnx,
    subnet_onnx,
)
from nasjax.models import (
    OFAMobileNetV3,
    SupernetConfig,
    apply,
    calib_stats,
    max_subnet,
    min_subnet,
    random_subnets,
    split_model,
    subnet_arrays,
    subnet_to_ofa,
)
from nasjax.models.mobilenetv3 import ModelState

CFG = SupernetConfig(width_mult=0.25, num_classes=10, in_channels=3)
RES = 32
D = CFG.max_depth


def _rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.fixture(scope="module")
def supernet():
    """A supernet whose exported numbers are not trivially small: non-identity kernel transforms and random
    BN scales and shifts (so that folding matters); BN statistics are recalibrated per subnet."""
    m = OFAMobileNetV3(CFG, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(1)
    for b in m.blocks:
        for t in b.transforms:
            t.set_value(t[...] + 0.1 * jnp.asarray(rng.standard_normal(t[...].shape), jnp.float32))
    for path, v in nnx.iter_graph(m):
        if path and path[-1] in ("scale", "bias") and isinstance(v, nnx.Param):
            n = v[...].shape[0]
            v.set_value(v[...] * jnp.asarray(rng.uniform(0.8, 1.2, n), jnp.float32)
                        + 0.1 * jnp.asarray(rng.standard_normal(n), jnp.float32))
    m.w_cls.set_value(m.w_cls[...] * 3.0)
    return split_model(m)


SUBNETS = [subnet_to_ofa(max_subnet(CFG)), subnet_to_ofa(min_subnet(CFG)), subnet_to_ofa(random_subnets(CFG, 1, 3), 0)]


@pytest.fixture(scope="module")
def states(supernet):
    """Per test subnet, the supernet with BN statistics recalibrated for that subnet (as OFA deploys one)."""
    x = jnp.asarray(_rand((16, RES, RES, 3), 5))
    st = supernet
    return [ModelState(st.graphdef, st.params, calib_stats(st.graphdef, st.params, st.batch_stats,
                                                            subnet_arrays(sub, CFG), x)) for sub in SUBNETS]


def _supernet(state, sub, x):
    return np.asarray(apply(state.graphdef, state.params, state.batch_stats, subnet_arrays(sub, CFG), jnp.asarray(x)))


def _ort(model, x_nhwc):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))})[0]


def _run(module, x):
    return np.asarray(compiled(module)(jnp.asarray(x)))


def _close(a, b):
    """Equal to 1e-4 of the output's scale: ``max |a - b| <= 1e-4 * max(1, max |b|)`` (float32 rounding
    through 20 layers differs between the masked and the static program)."""
    assert a.shape == b.shape
    err, scale = float(np.abs(a - b).max()), max(1.0, float(np.abs(b).max()))
    assert err <= 1e-4 * scale, f"max abs difference {err:.3g} > 1e-4 * {scale:.3g}"


def _nparams(module):
    return sum(int(np.size(a)) for a in jax.tree_util.tree_leaves(nnx.state(module, nnx.Param)))


@pytest.mark.parametrize("i", range(len(SUBNETS)), ids=["max", "min", "random"])
def test_static_flax_and_onnx_equal_the_supernet(states, i):
    from nasjax.hardware.flops import subnet_cost

    sub, state = SUBNETS[i], states[i]
    x = _rand((3, RES, RES, 3), 10 + i)
    ref = _supernet(state, sub, x)
    assert 1.0 < np.abs(ref).max() < 1000.0  # numbers that a wrong slice would visibly change
    # static Flax: the same logits at any batch size, exactly the parameters the subnet uses
    net = static_subnet(state, sub)
    _close(_run(net, x), ref)
    _close(_run(net, x[:1]), ref[:1])
    assert _nparams(net) == round(subnet_cost(CFG, RES, sub)[1] * 1e6)
    assert sum(len(s.layers) for s in net.stages) == sum(sub["d"])
    # ONNX through onnxruntime, symbolic and fixed batch
    model = subnet_onnx(state, sub, batch_size=None, resolution=RES)
    ops = [n.op_type for n in model.graph.node]
    assert "BatchNormalization" not in ops
    assert {"Conv", "HardSwish", "HardSigmoid", "Relu", "GlobalAveragePool", "Add", "Mul", "Gemm"} <= set(ops)
    assert ops.count("HardSigmoid") == sum(sub["d"][s] for s in (1, 3, 4))  # one SE per layer of stages 1, 3, 4
    inits = {t.name: t for t in model.graph.initializer}
    dw = [n for n in model.graph.node if n.op_type == "Conv" and ".dw" in n.name]
    assert len(dw) == sum(sub["d"]) + 1  # every layer and the first block
    for n in dw:  # depthwise: group = channels, weights [C, 1, k, k]
        w = inits[n.input[1]]
        assert w.dims[1] == 1 and next(a.i for a in n.attribute if a.name == "group") == w.dims[0] > 1
    _close(_ort(model, x), ref)
    fixed = subnet_onnx(state, sub, batch_size=3, resolution=RES)
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    _close(_ort(fixed, x), ref)


def test_pieces_compose_to_the_whole(states):
    sub, state = SUBNETS[2], states[2]
    x = _rand((2, RES, RES, 3), 30)
    ref = _supernet(state, sub, x)
    h = _run(stem(state), x)
    ho = _ort(stem_onnx(state, batch_size=2, resolution=RES), x)
    for s in range(5):
        side, c = feature_shape(CFG, RES, s)
        assert h.shape == (2, side, side, c) and ho.shape == (2, c, side, side)
        d, ks, es = sub["d"][s], sub["ks"][s * D:(s + 1) * D], sub["e"][s * D:(s + 1) * D]
        if s in (1, 4):  # one layer at a time equals the whole stage (two stages: compiling is slow)
            hl = h
            for i in range(d):
                side_i, c_i = feature_shape(CFG, RES, s, i)
                assert hl.shape == (2, side_i, side_i, c_i)
                hl = _run(layer_block(state, s, i, ks[i], es[i]), hl)
        h_next = _run(stage_block(state, s, d, ks, es), h)
        if s in (1, 4):
            _close(hl, h_next)
        h = h_next
        ho = _ort(stage_onnx(state, s, d, ks, es, batch_size=2, resolution=RES), ho.transpose(0, 2, 3, 1))
        _close(ho.transpose(0, 2, 3, 1), h)
        last = layer_onnx(state, s, d - 1, ks[d - 1], es[d - 1], batch_size=2, resolution=RES)
        side_o, c_o = feature_shape(CFG, RES, s + 1)
        assert [v.dim_value for v in last.graph.output[0].type.tensor_type.shape.dim] == [2, c_o, side_o, side_o]
    side, c = feature_shape(CFG, RES, 5)
    assert h.shape == (2, side, side, c)
    _close(_run(head(state), h), ref)
    _close(_ort(head_onnx(state, batch_size=2, resolution=RES), ho.transpose(0, 2, 3, 1)), ref)


def test_malformed_input_names_the_field(supernet):
    state, good = supernet, SUBNETS[0]
    for bad, field in [({**good, "ks": good["ks"][:-1]}, "subnet.ks"),
                       ({**good, "e": [5] + good["e"][1:]}, r"subnet.e\[0\]"),
                       ({"ks": good["ks"], "e": good["e"]}, "subnet: missing key 'd'"), ([1, 2, 3], "subnet"),
                       ({**good, "d": [2, 3, 4, 5, 2]}, r"subnet.d\[3\]")]:
        with pytest.raises(NasjaxInputError, match=field):
            static_subnet(state, bad)
        with pytest.raises(NasjaxInputError, match=field):
            subnet_onnx(state, bad, batch_size=1, resolution=RES)
    with pytest.raises(NasjaxInputError, match="stage"):
        stage_onnx(state, 5, 2, [3] * 4, [3] * 4, batch_size=1, resolution=RES)
    with pytest.raises(NasjaxInputError, match="depth"):
        stage_block(state, 0, 1, [3] * 4, [3] * 4)
    with pytest.raises(NasjaxInputError, match=r"es\[1\]"):
        stage_onnx(state, 0, 2, [3] * 4, [3, 5, 3, 3], batch_size=1, resolution=RES)
    with pytest.raises(NasjaxInputError, match="k: got 4"):
        layer_onnx(state, 0, 0, 4, 3, batch_size=1, resolution=RES)
    with pytest.raises(NasjaxInputError, match="layer"):
        layer_block(state, 0, 4, 3, 3)
    with pytest.raises(NasjaxInputError, match="batch_size"):
        head_onnx(state, batch_size=0, resolution=RES)
    with pytest.raises(NasjaxInputError, match="resolution"):
        stem_onnx(state, batch_size=1, resolution=4)
    with pytest.raises(NasjaxInputError, match="model_state"):
        static_subnet({"params": 1}, good)


def test_save_onnx_is_atomic(supernet, tmp_path, monkeypatch):
    model = head_onnx(supernet, batch_size=1, resolution=RES)
    out = save_onnx(model, tmp_path / "m" / "head.onnx")
    assert onnx.load(str(out)).SerializeToString() == model.SerializeToString()
    assert sorted(os.listdir(tmp_path / "m")) == ["head.onnx"]
    with pytest.raises(NasjaxInputError, match="model"):
        save_onnx("not a model", tmp_path / "x.onnx")
    # a directory that cannot be written (root ignores permission bits, so a file stands in for a directory)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NasjaxInputError, match="path"):
        save_onnx(model, tmp_path / "file" / "m.onnx")
    assert sorted(os.listdir(tmp_path)) == ["file", "m"]
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            with pytest.raises(NasjaxInputError, match="path"):
                save_onnx(model, ro / "m.onnx")
            assert os.listdir(ro) == []
        finally:
            ro.chmod(0o755)
    # a failure in the middle of writing leaves neither the file nor the temporary
    d = tmp_path / "fail"
    d.mkdir()

    def broken(self, data):
        with open(self, "wb") as f:
            f.write(data[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pathlib.Path.write_bytes", broken)
    with pytest.raises(NasjaxInputError, match="No space left"):
        save_onnx(model, d / "m.onnx")
    assert os.listdir(d) == []


def test_state_and_module_inputs_agree(supernet):
    sub = SUBNETS[1]
    module = nnx.merge(supernet.graphdef, supernet.params, supernet.batch_stats)
    a, b = static_subnet(module, sub), static_subnet(supernet, sub)
    jax.tree.map(np.testing.assert_array_equal, nnx.state(a), nnx.state(b))


def _export_cmd(tmp_path, *args):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-m", "experiments.export_subnet", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)


def test_export_command_checks_writes_and_reloads(tmp_path):
    import json

    from nasjax.export.static import static_subnet_like
    from nasjax.hardware.model_io import load_nnx

    out = tmp_path / "flax"
    r = _export_cmd(tmp_path, "--arch=min", "--format=flax", f"--out={out}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "export check (flax)" in r.stdout and ": equal" in r.stdout
    man = json.loads((out / "export.json").read_text())
    assert sorted(man["files"]) == ["subnet.npz"] and man["layout"] == "NHWC"
    assert man["check"]["max_abs_diff"] <= man["check"]["tolerance"]
    module, header, _ = load_nnx(out / "subnet.npz", build=lambda h: static_subnet_like(h["supernet_config"],
                                                                                        h["subnet"]),
                                 kind="nasjax.static_subnet")
    assert header["subnet"] == man["subnet"]
    side = man["input"][1]
    y = np.asarray(compiled(module)(jnp.asarray(_rand((2, side, side, man["input"][3]), 0))))
    assert y.shape[0] == 2 and np.isfinite(y).all()
    # bad input: one line, exit 2, nothing written
    bad = tmp_path / "bad"
    r = _export_cmd(tmp_path, "--arch=1,2,3", f"--out={bad}")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: arch:")
    assert not bad.exists()


def test_onnx_of_a_converted_ofa_checkpoint_equals_ofa_own_subnet():
    """OFA's way to a standalone subnet is ``get_active_subnet(preserve_weight=True)`` (a static PyTorch
    MobileNetV3); the ONNX export of the converted checkpoint gives its logits."""
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'nasjax[torch]')")
    pytest.importorskip("ofa", reason="the ofa package is not installed (pip install ofa==0.1.0.post202307202001)")
    from test_convert_ofa import _randomise

    from nasjax.convert.ofa import convert_state_dict, import_ofa_reference

    TorchOFA, _ = import_ofa_reference()
    torch.manual_seed(0)
    net = _randomise(TorchOFA(n_classes=10, width_mult=1.0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                              depth_list=[2, 3, 4]), torch)
    cfg = SupernetConfig(width_mult=1.0, num_classes=10)
    state = convert_state_dict(net.state_dict(), cfg)
    x = _rand((2, 3, 64, 64), 50)
    for sub in (subnet_to_ofa(random_subnets(cfg, 1, seed=12), 0), subnet_to_ofa(min_subnet(cfg))):
        net.set_active_subnet(ks=sub["ks"], e=sub["e"], d=sub["d"])
        standalone = net.get_active_subnet(preserve_weight=True).eval()
        with torch.no_grad():
            ref = standalone(torch.from_numpy(x)).numpy()
        assert np.abs(ref).max() > 1.0
        _close(_ort(subnet_onnx(state, sub, batch_size=2, resolution=64), x.transpose(0, 2, 3, 1)), ref)
