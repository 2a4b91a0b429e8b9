"""OFA PyTorch -> Flax converter: logits equal the real ``ofa`` package's for the largest, the smallest and 10
random subnets at two resolutions (max abs diff <= 1e-4, float32), BN recalibration equals ofa's
``set_running_statistics``; round trip and bad checkpoints without torch.

The equivalence tests need ``torch`` and ``ofa`` (``pip install 'torch==2.13.0' 'ofa==0.1.0.post202307202001'``);
they skip when either is missing. ``ofa`` imports torchvision only for its data loader; see
``nasjax.convert.ofa.import_ofa_reference`` for the stand-in used when torchvision cannot load.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from nasjax.convert.ofa import (
    canonical_key,
    convert_state_dict,
    import_ofa_reference,
    load_torch_checkpoint,
    to_ofa_state_dict,
)
from nasjax.errors import NasjaxInputError
from nasjax.models import (
    OFAMobileNetV3,
    SupernetConfig,
    apply_subnets,
    max_subnet,
    min_subnet,
    random_subnets,
    split_model,
    stack_subnets,
    subnet_to_ofa,
)
from nasjax.models.mobilenetv3 import index_subnets
from nasjax.train.evaluate import recalibrate_bn

NUM_CLASSES = 10


def _randomise(net, torch, seed=1):
    """Random weights, BN affine terms and running statistics, perturbed kernel transformation matrices."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("_matrix"):
                p.add_(0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1:  # BN weight ~ 1 + noise, BN/SE/classifier biases ~ noise
                base = 1.0 if (".bn." in name or name.startswith("first_conv.bn")) and name.endswith("weight") else 0.0
                p.copy_(base + 0.2 * torch.randn(p.shape, generator=g))
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.2 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
        net.classifier.linear.weight.normal_(0.0, 1.0, generator=g)  # logits O(1): differences are visible
    return net.eval()


@pytest.fixture(scope="module")
def ofa_pair():
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'nasjax[torch]')")
    pytest.importorskip("ofa", reason="the ofa package is not installed (pip install ofa==0.1.0.post202307202001)")
    TorchOFA, set_running_statistics = import_ofa_reference()
    torch.manual_seed(0)
    net = TorchOFA(n_classes=NUM_CLASSES, width_mult=1.0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                   depth_list=[2, 3, 4])
    _randomise(net, torch)
    cfg = SupernetConfig(width_mult=1.0, num_classes=NUM_CLASSES)
    state = convert_state_dict(net.state_dict(), cfg)
    subnets = stack_subnets([max_subnet(cfg), min_subnet(cfg)]
                            + [index_subnets(random_subnets(cfg, 10, seed=11), i) for i in range(10)])
    return torch, net, set_running_statistics, cfg, state, subnets


def _torch_logits(torch, net, subnet: dict, x_nchw: np.ndarray) -> np.ndarray:
    net.set_active_subnet(ks=subnet["ks"], e=subnet["e"], d=subnet["d"])
    with torch.no_grad():
        return net(torch.from_numpy(x_nchw)).numpy()


@pytest.mark.parametrize("res", [64, 96])
def test_logits_match_ofa(ofa_pair, res):
    torch, net, _, cfg, state, subnets = ofa_pair
    x = np.random.default_rng(res).normal(size=(2, 3, res, res)).astype(np.float32)
    ours = np.asarray(apply_subnets(state.graphdef, state.params, state.batch_stats, subnets,
                                    jnp.asarray(x.transpose(0, 2, 3, 1))))
    ref = np.stack([_torch_logits(torch, net, subnet_to_ofa(subnets, i), x) for i in range(12)])
    assert np.abs(ours - ref).max() <= 1e-4
    assert np.abs(ref[0] - ref[1]).max() > 0.1  # largest and smallest subnets really differ


def test_recalibration_matches_set_running_statistics(ofa_pair):
    """Every BN buffer after ofa's set_running_statistics equals nasjax's recalibrated statistics (active
    channels re-estimated, inactive layers/channels keeping the supernet's values in both)."""
    torch, net, set_running_statistics, cfg, state, subnets = ofa_pair
    rng = np.random.default_rng(5)
    calib = [rng.normal(size=(4, 3, 64, 64)).astype(np.float32) for _ in range(2)]
    pick = np.array([1, 2, 3])  # smallest + two random subnets
    stats = recalibrate_bn(state, index_subnets(subnets, pick), [c.transpose(0, 2, 3, 1) for c in calib],
                           chunk_size=3)
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    before = {canonical_key(k): v.numpy() for k, v in sd.items() if "running_" in k}
    try:
        for j, i in enumerate(pick):
            d = subnet_to_ofa(subnets, int(i))
            net.set_active_subnet(ks=d["ks"], e=d["e"], d=d["d"])
            set_running_statistics(net, [(torch.from_numpy(c), None) for c in calib])
            ours = to_ofa_state_dict(state._replace(batch_stats=jax.tree.map(lambda a, j=j: a[j], stats)))
            ref = {canonical_key(k): v.numpy() for k, v in net.state_dict().items() if "running_" in k}
            assert len(ref) == 2 * (1 + 2 + 20 * 3 + 1)  # stem, first block, 20 layers x 3 BNs, final expand
            changed = 0
            for k, r in ref.items():
                np.testing.assert_allclose(ours[k], r, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(r).max())),
                                           err_msg=k)
                changed += int(not np.allclose(r, before[k]))
            assert changed >= 2 * (1 + 2 + 10 * 3 + 1)  # at least the BNs of the active layers moved
            net.load_state_dict(sd)
    finally:
        net.load_state_dict(sd)


def test_round_trip_and_bad_checkpoints(tmp_path):
    cfg = SupernetConfig(width_mult=0.25, num_classes=5, in_channels=3)
    model = OFAMobileNetV3(cfg, rngs=nnx.Rngs(3))
    sd = to_ofa_state_dict(model)
    assert "blocks.1.conv.depth_conv.conv.7to5_matrix" in sd and sd["first_conv.conv.weight"].shape == (8, 3, 3, 3)
    back = convert_state_dict(sd, cfg)
    orig = split_model(model)
    jax.tree.map(np.testing.assert_array_equal, back.params, orig.params)
    jax.tree.map(np.testing.assert_array_equal, back.batch_stats, orig.batch_stats)
    # the published key spelling (.mobile_inverted_conv., nested bn) is accepted too
    old = {k.replace("blocks.3.conv.", "blocks.3.mobile_inverted_conv."): v for k, v in sd.items()}
    pl = "blocks.3.mobile_inverted_conv.point_linear.bn"
    old[f"{pl}.bn.weight"] = old.pop(f"{pl}.weight")
    old["blocks.3.mobile_inverted_conv.point_linear.bn.num_batches_tracked"] = np.array(3)
    jax.tree.map(np.testing.assert_array_equal, convert_state_dict(old, cfg).params, orig.params)
    missing = dict(sd)
    del missing["blocks.2.conv.point_linear.conv.weight"]
    with pytest.raises(NasjaxInputError, match="missing 'blocks.2.conv.point_linear.conv.weight'"):
        convert_state_dict(missing, cfg)
    with pytest.raises(NasjaxInputError, match="shape"):
        convert_state_dict(sd, SupernetConfig(width_mult=1.0, num_classes=5))
    with pytest.raises(NasjaxInputError, match="unexpected key"):
        convert_state_dict({**sd, "extra.weight": np.zeros(3)}, cfg)
    bad = dict(sd)
    bad["classifier.linear.bias"] = np.full(5, np.nan, np.float32)
    with pytest.raises(NasjaxInputError, match="non-finite"):
        convert_state_dict(bad, cfg)
    with pytest.raises(NasjaxInputError, match="mapping"):
        convert_state_dict([1, 2], cfg)
    with pytest.raises(NasjaxInputError, match="does not exist"):
        load_torch_checkpoint(tmp_path / "none.pth")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    pytest.importorskip("torch")
    with pytest.raises(NasjaxInputError, match="not a readable torch checkpoint"):
        load_torch_checkpoint(corrupt)
