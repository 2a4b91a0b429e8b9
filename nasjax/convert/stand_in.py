"""A minimal stand-in for torchvision, for importing PyTorch model zoos whose model code never uses it.

``ofa`` (its ``utils`` data loader) and ``timm`` (its data transforms, ``FrozenBatchNorm2d``, dataset
factory) import torchvision at package import. PyPI's torchvision wheels are CUDA builds that do not
load beside the CPU build ``torch==2.13.0+cpu``, and torchvision may simply be missing. While
:func:`torchvision_stand_in` is active, ``sys.modules`` holds placeholder modules ``torchvision`` and
the given submodules; any attribute of them is a placeholder class (it can be subclassed, compared and
have attributes read, but constructing one raises). Afterwards the placeholders are removed again.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


class _PlaceholderMeta(type):
    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{cls.__name__}.{name}")


def _placeholder(name: str) -> type:
    def init(self, *a, **k):
        raise RuntimeError(f"torchvision is not installed: {name} is nasjax's import-time stand-in")

    return _PlaceholderMeta(name.rsplit(".", 1)[-1], (), {"__init__": init, "__qualname__": name})


def _module(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__nasjax_stand_in__ = True
    mod.__path__ = []  # a package: submodules can be imported from it

    def getattr_(attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        value = _placeholder(f"{name}.{attr}")
        setattr(mod, attr, value)
        return value

    mod.__getattr__ = getattr_
    return mod


@contextmanager
def torchvision_stand_in(submodules: Sequence[str]) -> Iterator[bool]:
    """Import-time stand-in for ``torchvision`` and ``submodules`` (e.g. ``"transforms.functional"``).

    Yields ``True`` when the stand-in is in place, ``False`` when a working torchvision is importable
    (then nothing is replaced).
    """
    try:
        import torchvision  # noqa: F401
        import torchvision.transforms  # noqa: F401

        yield False
        return
    except Exception:  # missing, or a CUDA wheel that cannot load beside the CPU torch build
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    mods = {"torchvision": _module("torchvision")}
    for sub in submodules:
        parts = sub.split(".")
        for i in range(1, len(parts) + 1):
            full = "torchvision." + ".".join(parts[:i])
            if full not in mods:
                mods[full] = _module(full)
                parent = mods[full.rsplit(".", 1)[0]]
                setattr(parent, parts[i - 1], mods[full])
    sys.modules.update(mods)
    try:
        yield True
    finally:
        for name in mods:
            sys.modules.pop(name, None)


__all__ = ["torchvision_stand_in"]
