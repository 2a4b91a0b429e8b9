"""The structure of a search space as data: units, their layers, and which depth position gates each layer.

Block profiling (Mills et al., "Profiling Neural Blocks and Design Spaces for Mobile NAS", CIKM 2021) fixes
one block at one position and samples the rest. In a space with elastic depth a layer position only runs
when its stage is deep enough, so a profiler must know, per position:

* its **unit** (a stage, a cell) and its **layer** index inside the unit;
* its **gate**: the depth position that switches it on, and the smallest depth choice index at which it
  runs (``gate_position[p] = -1`` for a position that always runs).

A layer ``i`` (0-based) of a stage is active iff the stage's depth ``d > i``. With depth choices ``d_j`` the
gate threshold is ``gate_min_choice[p] = min{j : d_j > i}``, and::

    active(a)[p] = gate_position[p] < 0  or  a[gate_position[p]] >= gate_min_choice[p]

:func:`structure_of` derives the structure from a space's position and choice labels, so any registered
space of the stage/layer/depth kind is covered: ``stage S layer J`` positions gated by ``stage S depth``
(choices ``dN``; OFA's layer view and the BINAS space), ``decoder layer J`` gated by ``decoder layers``
(HAT's SuperTransformer, choices ``1..6``). Any other space is a single unit of ungated positions
(NAS-Bench-201: one cell, six edges).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from nasjax.errors import require
from nasjax.spaces.base import SearchSpace

_STAGE_LAYER = re.compile(r"^stage (\d+) layer (\d+)$")
_STAGE_DEPTH = re.compile(r"^stage (\d+) depth$")
_DEC_LAYER = re.compile(r"^decoder layer (\d+)$")
_NUMBER = re.compile(r"^[dL]?(\d+)$")


@dataclass(frozen=True)
class SpaceStructure:
    """Units, layers and depth gates of a space (see the module docstring).

    Attributes:
      space: the space's name.
      unit_names: one name per unit.
      unit: ``[P]`` unit index of every position.
      layer: ``[P]`` layer index inside its unit (``-1`` for a depth position).
      gate_position: ``[P]`` the depth position gating each position (``-1``: always active).
      gate_min_choice: ``[P]`` smallest choice index of the gate at which the position runs (0 if ungated).
      depth_positions: the positions that are depths.
    """

    space: str
    unit_names: tuple[str, ...]
    unit: np.ndarray
    layer: np.ndarray
    gate_position: np.ndarray
    gate_min_choice: np.ndarray
    depth_positions: tuple[int, ...]

    @property
    def num_positions(self) -> int:
        """``P``, the number of positions."""
        return int(self.unit.size)

    @property
    def gated(self) -> bool:
        """Whether any position is gated by a depth position."""
        return bool(np.any(self.gate_position >= 0))

    def layer_label(self, p: int) -> str:
        """``"depth"`` for a depth position, else ``"layer <i+1>"``.

        Args:
          p: the position index.

        Returns:
          The label.
        """
        return "depth" if int(self.layer[p]) < 0 else f"layer {int(self.layer[p]) + 1}"

    def active(self, archs) -> np.ndarray:
        """``[N, P]`` bool: which positions run in each architecture (formula in the module docstring).

        active(a)[p] = gate_position[p] < 0  or  a[gate_position[p]] >= gate_min_choice[p]

        Args:
          archs: choice vectors ``[P]`` or ``[N, P]``.

        Returns:
          bool ``[N, P]``.

        Raises:
          NasjaxInputError: when the architectures do not have ``P`` positions.
        """
        a = np.atleast_2d(np.asarray(archs, np.int64))
        require(a.shape[1] == self.num_positions, "archs", a.shape, f"(N, {self.num_positions})")
        g = self.gate_position
        gate_vals = a[:, np.where(g >= 0, g, 0)]
        return (g < 0)[None, :] | (gate_vals >= self.gate_min_choice[None, :])

    def activating_choices(self, space: SearchSpace, p: int) -> np.ndarray:
        """The choices of position ``p``'s gate under which ``p`` runs (``[]`` if ``p`` is ungated).

        Args:
          space: the search space (its gate's choice count).
          p: the position index.

        Returns:
          int64 ``gate_min_choice[p] .. K_gate - 1``.
        """
        g = int(self.gate_position[p])
        if g < 0:
            return np.zeros(0, np.int64)
        return np.arange(int(self.gate_min_choice[p]), int(space.num_choices[g]), dtype=np.int64)

    def unit_layers(self, u: int) -> np.ndarray:
        """Positions of unit ``u`` that are layers (not depths), in layer order.

        Args:
          u: the unit index.

        Returns:
          int64 position indices.
        """
        idx = np.flatnonzero((self.unit == u) & (self.layer >= 0))
        return idx[np.argsort(self.layer[idx], kind="stable")]


def _depth_values(space: SearchSpace, p: int) -> list[int]:
    vals = []
    for c in space.choices[p]:
        m = _NUMBER.match(str(c))
        require(m is not None, f"space {space.name!r} position {space.positions[p]!r} choice", c,
                "a depth label like 'd3', 'L3' or '3'")
        vals.append(int(m.group(1)))
    return vals


def _gate_threshold(depths: list[int], layer: int) -> int:
    """Smallest depth choice index with ``depth > layer`` (0-based layer); one past the last if none."""
    for j, d in enumerate(depths):
        if d > layer:
            return j
    return len(depths)


def structure_of(space: SearchSpace) -> SpaceStructure:
    """The :class:`SpaceStructure` of ``space``, from its labels (module docstring).

    Args:
      space: any registered :class:`~nasjax.spaces.SearchSpace`.

    Returns:
      Its units, layers and gates; a space without recognised stage/layer/depth labels is one unit of
      ungated positions.
    """
    P = space.num_positions
    unit = np.zeros(P, np.int64)
    layer = np.arange(P, dtype=np.int64)
    gate = np.full(P, -1, np.int64)
    gmin = np.zeros(P, np.int64)
    labels = list(space.positions)
    stage_layers = [_STAGE_LAYER.match(s) for s in labels]
    stage_depths = [_STAGE_DEPTH.match(s) for s in labels]
    if any(stage_layers):
        stages = sorted({int(m.group(1)) for m in stage_layers + stage_depths if m})
        names = tuple(f"stage {s}" for s in stages)
        depth_of = {int(m.group(1)): p for p, m in enumerate(stage_depths) if m}
        for p, m in enumerate(stage_layers):
            if m:
                s, j = int(m.group(1)), int(m.group(2)) - 1
                unit[p], layer[p] = stages.index(s), j
                if s in depth_of:
                    g = depth_of[s]
                    gate[p], gmin[p] = g, _gate_threshold(_depth_values(space, g), j)
            elif stage_depths[p]:
                unit[p], layer[p] = stages.index(int(stage_depths[p].group(1))), -1
            else:
                require(False, f"space {space.name!r} position", labels[p], "'stage S layer J' or 'stage S depth'")
        depths = tuple(sorted(depth_of.values()))
        return SpaceStructure(space.name, names, unit, layer, gate, gmin, depths)
    dec = [_DEC_LAYER.match(s) for s in labels]
    if any(dec) and "decoder layers" in labels:
        g = labels.index("decoder layers")
        dvals = _depth_values(space, g)
        for p, m in enumerate(dec):
            if m:
                unit[p], layer[p] = 1, int(m.group(1)) - 1
                gate[p], gmin[p] = g, _gate_threshold(dvals, int(m.group(1)) - 1)
            elif p == g:
                unit[p], layer[p] = 1, -1
            else:
                unit[p], layer[p] = 0, p
        return SpaceStructure(space.name, ("encoder", "decoder"), unit, layer, gate, gmin, (g,))
    return SpaceStructure(space.name, ("cell",), unit, layer, gate, gmin, ())
