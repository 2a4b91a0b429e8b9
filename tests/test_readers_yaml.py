"""Architecture ymls and their codecs: strict text, duplicate keys, and every malformed field named."""

from __future__ import annotations

import numpy as np
import pytest

from nasjax.errors import NasjaxInputError
from nasjax.io import read_json, read_yaml, write_yaml


def test_binary_bytes_in_a_yml_are_refused_naming_the_file(tmp_path):
    """Binary bytes are a clear error, not a UnicodeDecodeError traceback."""
    p = tmp_path / "arch.yml"
    p.write_bytes(b"arch: |none~0|\n\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(NasjaxInputError, match=r"load_path: .*arch.yml' is not UTF-8 text \(bad byte at offset"):
        read_yaml(p)
    p.write_bytes(b"ks: [3, 5]\x00\n")
    with pytest.raises(NasjaxInputError, match="arch.yml.*malformed YAML"):
        read_yaml(p)


@pytest.mark.parametrize(
    "text, key, line, first",
    [
        ("ks: [3]\ne: [4]\nks: [5]\n", "ks", 3, 1),
        ("{d: 1, d: 2}\n", "d", 1, 1),
        ("predicted:\n  accuracy: 1\n  latency: 2\n  accuracy: 3\n", "accuracy", 4, 2),
        ("- a: 1\n- b: 2\n  b: 3\n", "b", 3, 2),
        ("1: x\n1: y\n", 1, 2, 1),
    ],
)
def test_duplicate_keys_are_refused_naming_key_and_line(tmp_path, text, key, line, first):
    """PyYAML alone resolves a duplicate key silently to its last value."""
    p = tmp_path / "arch.yml"
    p.write_text(text)
    with pytest.raises(NasjaxInputError, match=rf"duplicate key {key!r} at line {line} \(first at line {first}\)"):
        read_yaml(p, "load_path")


def test_yaml_other_failures(tmp_path):
    p = tmp_path / "a.yml"
    for text, msg in [
        ("when: 2001-13-45\n", "invalid YAML value"),
        ("[" * 5000, "nested too deeply"),
        ("&a [*a]\n", "contain itself"),
        ("x: !!python/object/apply:os.system [ls]\n", "malformed YAML"),
        ("? [1, 2]\n: 3\n", "malformed YAML"),
    ]:
        p.write_text(text)
        with pytest.raises(NasjaxInputError, match=msg):
            read_yaml(p)
    with pytest.raises(NasjaxInputError, match="no file"):
        read_yaml(tmp_path / "absent.yml")
    # what the project writes reads back; merge keys may override, as YAML specifies
    doc = {"ks": [3, 5], "e": [4, 6], "predicted": {"accuracy": {"value": 1.5, "unit": "%"}}}
    write_yaml(p, doc)
    assert read_yaml(p) == doc
    p.write_text("base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  a: 3\n")
    assert read_yaml(p)["x"] == {"a": 3, "b": 2}


def test_read_json_strictness(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"a": NaN}')
    with pytest.raises(NasjaxInputError, match="NaN"):
        read_json(p, "x")
    p.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(NasjaxInputError, match="not UTF-8"):
        read_json(p, "x")


# --- codecs --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "s, msg",
    [
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+", "4 nodes"),
        ("|none~0||+|none~0|none~1|+|none~0|none~1|none~2|", r"node 1 is '\|none~0\|\|'"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2", "node 3"),
        ("|none~0|+|none~0|none~2|+|none~0|none~1|none~2|", "expected input ~1"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "op 'conv' on edge 1<-0"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2~|", "expected input ~2"),
        (3, r"got 3 \(int\)"),
        (None, r"got None \(NoneType\)"),
        ("x" * 10_000, r"\(10002 characters\)"),
    ],
)
def test_nb201_strings(s, msg):
    from nasjax.spaces.nasbench201 import str_to_arch

    with pytest.raises(NasjaxInputError, match=msg):
        str_to_arch(s)


def test_nb201_string_lists():
    from nasjax.spaces.nasbench201 import arch_to_str, strs_to_archs

    ok = arch_to_str([1, 2, 3, 4, 0, 1])
    assert strs_to_archs(iter([ok, ok])).tolist() == [[1, 2, 3, 4, 0, 1]] * 2
    with pytest.raises(NasjaxInputError, match=r"arch strings\[1\]: got \['x'\] \(list\)"):
        strs_to_archs([ok, ["x"]])
    with pytest.raises(NasjaxInputError, match="expected a list of arch strings"):
        strs_to_archs(ok)


def test_ofa_dicts_and_block_sets():
    from nasjax.spaces.mobilenetv3 import BlockSet, ofa_to_layers

    d = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5}
    for bad, msg in [
        ({**d, "ks": np.array(3)}, "arch.ks: got 3"),
        ({**d, "ks": [3.0] * 20}, r"arch.ks\[0\]: got 3.0"),
        ({**d, "d": [True] * 5}, r"arch.d\[0\]: got True"),
        ({**d, 1: 2, "zz": 3}, "unknown key"),
        ({**d, "e": "333"}, "arch.e: got '333'"),
    ]:
        with pytest.raises(NasjaxInputError, match=msg):
            ofa_to_layers(bad)
    np.testing.assert_array_equal(ofa_to_layers({**d, "ks": np.full(20, 3)}), ofa_to_layers(d))
    cfg = {"d": 2, "e": [3, 3, 3, 3], "ks": [3, 3, 3, 3]}
    bs = BlockSet("t", tuple((dict(cfg),) for _ in range(5)))
    with pytest.raises(NasjaxInputError, match=r"arch.encodearch\[0\]"):
        bs.from_ofa({**d, "encodearch": [7, 0, 0, 0, 0]})
    with pytest.raises(NasjaxInputError, match="arch.encodearch: shape"):
        bs.from_ofa({**d, "encodearch": 0})
    for bad, msg in [
        ({"name": "t"}, "expected a mapping with keys name, configs"),
        ({"name": "t", "configs": 3}, "configs: got 3"),
        ({"name": "t", "configs": [[cfg]] * 4}, "4 stages"),
        ({"name": "t", "configs": [[cfg]] * 4 + [[]]}, "stage 4: got"),
        ({"name": "t", "configs": [[cfg]] * 4 + [[{**cfg, "d": 5}]]}, r"stage 4 choice 0.d\[0\]: got 5"),
        ({"name": "t", "configs": [[cfg]] * 4 + [[{**cfg, "ks": [3]}]]}, r"stage 4 choice 0.ks: got \[3\]"),
        ({"name": 5, "configs": [[cfg]] * 5}, "block set name: got 5"),
    ]:
        with pytest.raises(NasjaxInputError, match=msg):
            BlockSet.from_dict(bad)


def test_fbnet_genes():
    from nasjax.spaces.fbnetv3 import arch_to_genes, fbnetv3_space, genes_to_arch

    a = fbnetv3_space().random(0, 3)
    g = arch_to_genes(a)
    np.testing.assert_array_equal(genes_to_arch(g.astype(np.float64)), a)
    np.testing.assert_array_equal(genes_to_arch(g.tolist()), a)
    for bad, msg in [
        (np.where(np.arange(28) == 3, 3.5, g[0]), r"genes\[0\]\[3\] \(kernel s4\): got 3.5"),
        (np.where(np.arange(28) == 0, np.nan, g[0]), r"genes\[0\]\[0\].*got nan"),
        (g.astype(str), r"genes\[0\]\[0\].*\(str\)"),
        (g.astype(bool), r"\(bool\)"),
        ([list(g[0]), list(g[1][:5])], "not a rectangular array"),
        (g[:, :27], r"genes: got \(3, 27\)"),
    ]:
        with pytest.raises(NasjaxInputError, match=msg):
            genes_to_arch(bad)
