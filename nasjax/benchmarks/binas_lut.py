"""Readers of BINAS / HardCoRe-NAS's published pickles (Nayman et al., arXiv 2110.12399; ICML 2021).

* Latency LUTs (``LUT_ONNX.pkl``, ``LUT_CPU.pkl``, ``LUT_GPU.pkl``): a plain ``dict`` of ``str -> float``,
  **seconds per image**. One key per elastic layer configuration,
  ``in_channels_{Cin}_out_channels_{Cout}_stride_{s}_resolution_{H}_er_{e}_k_{k}_se_{se}_act_{1 if ReLU else 0}``
  (``H`` the layer's input resolution at a 224-px input, ``se`` formatted ``0`` or ``0.25``), plus
  ``general``: the fixed modules (stem, first block, head, pooling, classifier).
* Accuracy LUTs (``fit_accuracy_lut.pkl``, ``test_accuracy_lut.pkl``): ``dict`` of ``str(arch_def) ->
  {"accuracy": top-1 %, "expected_latency": s, "logits": 25 choice indices}``.

Pickles are read with an unpickler that refuses every global (no class, function or module can be
loaded): only plain dicts, lists, strings and numbers get through, so a file cannot run code.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.io import atomic_write_bytes
from nasjax.spaces.binas import DEFAULT, BinasStructure, LayerConfig, binas_space, canonical

LUT_UNIT = "s"  # BINAS's LUTs hold seconds per image
GENERAL = "general"


class _PlainUnpickler(pickle.Unpickler):
    def __init__(self, f, source: str):
        super().__init__(f)
        self._source = source

    def find_class(self, module, name):
        raise NasjaxInputError(f"{self._source}: refuses to unpickle {module}.{name}; expected a pickle of plain "
                               "dicts, lists, strings and numbers")


def _load(path, field: str):
    p = Path(path)
    if not p.is_file():
        raise NasjaxInputError(f"{field}: no file {str(p)!r}; expected a BINAS pickle")
    try:
        return _PlainUnpickler(io.BytesIO(p.read_bytes()), str(p)).load()
    except NasjaxInputError:
        raise
    except Exception as e:  # truncated or not a pickle at all
        raise NasjaxInputError(f"{field}: {str(p)!r} is not a readable pickle ({type(e).__name__}: {e})") from None


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)


def lut_key(layer: dict, config: LayerConfig) -> str:
    """BINAS's LUT key of one elastic layer (an entry of :meth:`BinasStructure.layers`) in ``config``.

    Args:
      layer: the layer's dict (``in_channels``, ``out_channels``, ``stride``, ``resolution``, ``act``).
      config: the layer configuration (expansion, kernel, SE ratio).

    Returns:
      ``"in_channels_{Cin}_out_channels_{Cout}_stride_{s}_resolution_{H}_er_{e}_k_{k}_se_{se}_act_{0|1}"``
      (act 1 for ReLU).
    """
    return (f"in_channels_{layer['in_channels']}_out_channels_{layer['out_channels']}_stride_{layer['stride']}_"
            f"resolution_{layer['resolution']}_er_{config.expansion}_k_{config.kernel}_se_{config.se:g}_"
            f"act_{1 if layer['act'] == 'relu' else 0}")


def read_latency_lut(path) -> dict[str, float]:
    """A BINAS latency LUT as ``{key: seconds}``, checked: string keys, finite non-negative numbers, ``general``.

    Args:
      path: the ``.pkl`` file.

    Returns:
      The dictionary (values as Python floats, in seconds per image).
    """
    d = _load(path, "lut_filename")
    src = f"lut_filename {str(path)!r}"
    if not isinstance(d, dict):
        raise NasjaxInputError(f"{src}: holds a {type(d).__name__}, expected a dict of str -> seconds")
    out = {}
    for k, v in d.items():
        if not isinstance(k, str):
            raise NasjaxInputError(f"{src}: key {k!r} is a {type(k).__name__}, expected str")
        if not _number(v) or v < 0:
            raise NasjaxInputError(f"{src}[{k!r}]: got {v!r}, expected a finite number of seconds >= 0")
        out[k] = float(v)
    if GENERAL not in out:
        raise NasjaxInputError(f"{src}: no {GENERAL!r} entry, expected the fixed modules' latency under 'general'")
    return out


def lut_arrays(lut: dict[str, float], st: BinasStructure = DEFAULT, source: str = "lut") -> tuple[float, np.ndarray]:
    """The fixed latency and the ``[L, K]`` per-layer latency of every layer configuration, in seconds.

    Args:
      lut: a LUT from :func:`read_latency_lut`.
      st: the space's structure (which layers exist and their shapes).
      source: named in errors.

    Returns:
      ``(general, layers)``; a missing key raises naming it.
    """
    layers = np.zeros((st.num_layers, st.num_configs))
    for i, layer in enumerate(st.layers()):
        for c, cfg in enumerate(st.configs):
            key = lut_key(layer, cfg)
            if key not in lut:
                raise NasjaxInputError(f"{source}: no entry {key!r} (stage {layer['stage'] + 1} layer "
                                       f"{layer['layer'] + 1}, {cfg.label}); expected a LUT of this space")
            layers[i, c] = lut[key]
    return float(lut[GENERAL]), layers


def write_latency_lut(path, general: float, layers: np.ndarray, st: BinasStructure = DEFAULT) -> None:
    """Write a LUT in BINAS's format (seconds per image): ``general`` and ``layers [L, K]``, as a pickle.

    Args:
      path: the ``.pkl`` file to write (atomically, pickle protocol 4).
      general: the latency of the fixed modules, seconds per image.
      layers: per-layer latency ``[L, K]`` of every layer configuration, seconds per image.
      st: the space's structure (layer shapes, hence the keys).

    Raises:
      NasjaxInputError: when ``layers`` has another shape or a non-finite value, ``general`` is not finite, or
        two layers of the same shape (one LUT key) are given different latencies.
    """
    lay = np.asarray(layers, np.float64)
    if lay.shape != (st.num_layers, st.num_configs) or not np.isfinite(lay).all() or not np.isfinite(general):
        raise NasjaxInputError(f"layers: shape {lay.shape}, expected ({st.num_layers}, {st.num_configs}) finite "
                               "seconds")
    d = {GENERAL: float(general)}
    for i, layer in enumerate(st.layers()):
        for c, cfg in enumerate(st.configs):
            key = lut_key(layer, cfg)
            if key in d and d[key] != float(lay[i, c]):
                raise NasjaxInputError(f"layers[{i}, {c}]: {lay[i, c]!r} s, but {key!r} (a layer of the same shape) "
                                       f"has {d[key]!r} s; expected one latency per LUT key")
            d[key] = float(lay[i, c])
    atomic_write_bytes(path, pickle.dumps(d, protocol=4))


def read_accuracy_lut(path, st: BinasStructure = DEFAULT) -> dict[str, np.ndarray]:
    """A BINAS accuracy LUT as arrays.

    Args:
      path: the ``.pkl`` file (read with an unpickler that refuses every global).
      st: the space's structure.

    Returns:
      ``{"archs": [N, P] canonical choice vectors (from ``logits``), "accuracy": [N] %,
      "expected_latency": [N] s (NaN where absent), "keys": [N] the architecture strings}``.

    Raises:
      NasjaxInputError: when the file is missing or not a plain pickle, is not a non-empty dict, or a record
        lacks ``logits`` / ``accuracy``, has a non-numeric accuracy or invalid logits.
    """
    d = _load(path, "accuracy_lut_filename")
    src = f"accuracy_lut_filename {str(path)!r}"
    if not isinstance(d, dict) or not d:
        raise NasjaxInputError(f"{src}: expected a non-empty dict of architecture -> record")
    space = binas_space(st)
    archs, acc, lat, keys = [], [], [], []
    for k, rec in d.items():
        if not isinstance(rec, dict) or "logits" not in rec or "accuracy" not in rec:
            raise NasjaxInputError(f"{src}[{str(k)[:40]!r}]: expected a dict with 'logits' and 'accuracy'")
        if not _number(rec["accuracy"]):
            raise NasjaxInputError(f"{src}[{str(k)[:40]!r}].accuracy: got {rec['accuracy']!r}, expected a number")
        archs.append(space.validate(rec["logits"], f"{src}[{str(k)[:40]!r}].logits"))
        acc.append(float(rec["accuracy"]))
        el = rec.get("expected_latency")
        lat.append(float(el) if _number(el) else float("nan"))
        keys.append(str(k))
    return {"archs": canonical(np.stack(archs), st), "accuracy": np.array(acc), "expected_latency": np.array(lat),
            "keys": np.array(keys)}
