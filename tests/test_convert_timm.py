"""timm -> nasjax: timm's HardCoRe-NAS networks of BINAS strings (A-F-like), randomly initialised with
random BN statistics, converted into the BINAS supernet; logits agree to 1e-4 at 32x32."""

import importlib.util

import jax
import numpy as np
import pytest

from nasjax.spaces.binas import binas_space, canonical, from_string

if importlib.util.find_spec("timm") is None or importlib.util.find_spec("torch") is None:
    pytest.skip("timm (pip install --no-deps timm) and torch are needed for the timm converter test",
                allow_module_level=True)

# strings in the form of the BINAS README's A-F: every stage depth, kernel, expansion and SE appears
STRINGS = [
    "[['ds_r1_k3_s1_e1_c16_nre'], ['ir_r1_k5_s2_e3_c24_nre', 'ir_r1_k5_s1_e3_c24_nre_se0.25'], "
    "['ir_r1_k5_s2_e3_c40_nre', 'ir_r1_k5_s1_e6_c40_nre_se0.25'], ['ir_r1_k5_s2_e6_c80_se0.25', "
    "'ir_r1_k5_s1_e6_c80_se0.25'], ['ir_r1_k5_s1_e6_c112_se0.25', 'ir_r1_k5_s1_e6_c112_se0.25'], "
    "['ir_r1_k5_s2_e6_c192_se0.25', 'ir_r1_k5_s1_e6_c192_se0.25'], ['cn_r1_k1_s1_c960']]",
    "[['ds_r1_k3_s1_e1_c16_nre'], ['ir_r1_k3_s2_e4_c24_nre', 'ir_r1_k5_s1_e3_c24_nre', "
    "'ir_r1_k3_s1_e6_c24_nre_se0.25', 'ir_r1_k5_s1_e4_c24_nre'], ['ir_r1_k5_s2_e4_c40_nre_se0.25', "
    "'ir_r1_k3_s1_e3_c40_nre', 'ir_r1_k5_s1_e6_c40_nre'], ['ir_r1_k3_s2_e3_c80', 'ir_r1_k5_s1_e4_c80_se0.25', "
    "'ir_r1_k3_s1_e6_c80', 'ir_r1_k5_s1_e3_c80_se0.25'], ['ir_r1_k5_s1_e4_c112', 'ir_r1_k3_s1_e6_c112_se0.25', "
    "'ir_r1_k3_s1_e3_c112'], ['ir_r1_k3_s2_e6_c192_se0.25', 'ir_r1_k5_s1_e3_c192', 'ir_r1_k3_s1_e4_c192', "
    "'ir_r1_k5_s1_e6_c192_se0.25'], ['cn_r1_k1_s1_c960']]",
]


def _randomise(model, rng):
    import torch

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.as_tensor(rng.uniform(0.5, 1.5, m.weight.shape), dtype=torch.float32))
                m.bias.copy_(torch.as_tensor(rng.normal(0, 0.2, m.bias.shape), dtype=torch.float32))
                m.running_mean.copy_(torch.as_tensor(rng.normal(0, 0.2, m.running_mean.shape), dtype=torch.float32))
                m.running_var.copy_(torch.as_tensor(rng.uniform(0.5, 2.0, m.running_var.shape), dtype=torch.float32))
            elif isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.copy_(torch.as_tensor(rng.normal(0, 0.1, m.bias.shape), dtype=torch.float32))
    model.eval()
    return model


def test_timm_networks_convert_to_the_supernet():
    import torch

    from nasjax.convert.timm import from_timm, timm_binas_model
    from nasjax.models.mobilenetv3 import apply

    rng = np.random.default_rng(0)
    space = binas_space()
    archs = [from_string(s) for s in STRINGS] + [canonical(np.array([rng.integers(len(c)) for c in space.choices]))]
    x = rng.normal(size=(2, 3, 32, 32)).astype(np.float32)
    for arch in archs:
        torch.manual_seed(int(rng.integers(1 << 30)))
        model = _randomise(timm_binas_model(arch, num_classes=10), rng)
        with torch.no_grad():
            want = model(torch.as_tensor(x)).numpy()
        state, cfg, subnet = from_timm(model, arch)
        got = np.asarray(apply(state.graphdef, state.params, state.batch_stats, subnet,
                               jax.numpy.asarray(x.transpose(0, 2, 3, 1))))
        assert np.abs(want).max() > 1e-2  # the logits are not trivially zero
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
