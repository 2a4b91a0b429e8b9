"""Search spaces and codecs: registry, validation, NB201 strings, OFA dicts, MathNAS block sets and ymls."""

import numpy as np
import pytest
import yaml
from conftest import require_shared

from nasjax.errors import NasjaxInputError
from nasjax.spaces import SPACES, get_space
from nasjax.spaces import mobilenetv3 as mb
from nasjax.spaces import nasbench201 as nb


@pytest.mark.parametrize("name", SPACES.names())
def test_every_registered_space_round_trips_indices(name):
    try:
        space = get_space(name)
    except TypeError:
        pytest.skip(f"space {name} needs arguments")
    archs = space.random(0, 64)
    assert space.validate(archs).shape == (64, space.num_positions)
    if space.size < 10**15:
        np.testing.assert_array_equal(space.from_index(space.index_of(archs)), archs)
    oh = space.onehot(archs)
    assert oh.shape == (64, space.num_positions, space.max_choices)
    np.testing.assert_array_equal(oh.sum(-1), 1)
    assert not (oh * ~space.mask).any()


def test_unknown_space_lists_known_names():
    with pytest.raises(NasjaxInputError, match="known search spaces: .*nasbench201"):
        get_space("nasbench301")


def test_validate_names_the_position():
    s = get_space("nasbench201")
    with pytest.raises(NasjaxInputError, match=r"arch\[2\] \(edge 2<-1\): got 7, expected 0..4"):
        s.validate([0, 0, 7, 0, 0, 0])
    with pytest.raises(NasjaxInputError, match="shape"):
        s.validate([0, 0, 0])
    with pytest.raises(NasjaxInputError, match="integer"):
        s.validate(["a"] * 6)


def test_nb201_string_round_trip_all_cells():
    s = get_space("nasbench201")
    archs = s.all_archs()
    assert archs.shape == (15625, 6)
    strings = [nb.arch_to_str(a) for a in archs[::97]]
    np.testing.assert_array_equal(nb.strs_to_archs(strings), archs[::97])
    assert nb.arch_to_str([3] * 6) == (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )


@pytest.mark.parametrize(
    "bad, msg",
    [
        ("|nor_conv_3x3~0|+|none~0|none~1|", "2 nodes"),
        ("|conv9~0|+|none~0|none~1|+|none~0|none~1|none~2|", "op 'conv9'"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "expected input ~0"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2"),
        (42, "expected a string"),
    ],
)
def test_nb201_malformed_strings(bad, msg):
    with pytest.raises(NasjaxInputError, match=msg):
        nb.str_to_arch(bad)


def test_ofa_layer_codec_round_trip():
    s = get_space("mobilenetv3_layers")
    for a in s.random(1, 50):
        d = mb.layers_to_ofa(a)
        np.testing.assert_array_equal(mb.ofa_to_layers(d), a)


def test_ofa_dict_errors_name_the_field():
    d = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5}
    with pytest.raises(NasjaxInputError, match=r"arch.ks\[3\]: got 4"):
        mb.ofa_to_layers({**d, "ks": [3, 3, 3, 4] + [3] * 16})
    with pytest.raises(NasjaxInputError, match="arch.d: .*expected a list of 5"):
        mb.ofa_to_layers({**d, "d": [2] * 4})
    with pytest.raises(NasjaxInputError, match="missing key 'e'"):
        mb.ofa_to_layers({"ks": d["ks"], "d": d["d"]})
    with pytest.raises(NasjaxInputError, match="unknown key"):
        mb.ofa_to_layers({**d, "kernel": 3})


@pytest.mark.parametrize("name", ["MathNAS-MB1", "MathNAS-MB2", "MathNAS-MB3", "MathNAS-MB4"])
def test_mathnas_mobilenetv3_ymls_round_trip(name):
    from nasjax.benchmarks.mathnas import MathNASDir

    root = require_shared("MathNAS")
    y = yaml.safe_load((root / "results" / "mobilenetv3" / f"{name}.yml").read_text())
    bs = MathNASDir(root).block_set("GPU" if name == "MathNAS-MB1" else "CPU")
    enc = bs.from_ofa(y)
    assert enc.tolist() == y["encodearch"]
    assert bs.to_ofa(enc) == {k: y[k] for k in ("d", "e", "ks", "encodearch")}
    # the layer view of the same net round-trips too
    assert mb.layers_to_ofa(mb.ofa_to_layers(y)) == {k: y[k] for k in ("ks", "e", "d")}


def test_block_set_rejects_mismatching_encodearch():
    from nasjax.benchmarks.mathnas import MathNASDir

    bs = MathNASDir(require_shared("MathNAS")).block_set("CPU")
    d = bs.to_ofa([0, 1, 2, 3, 4])
    d["encodearch"] = [4, 4, 4, 4, 4]
    with pytest.raises(NasjaxInputError, match="arch.encodearch"):
        bs.from_ofa(d)
