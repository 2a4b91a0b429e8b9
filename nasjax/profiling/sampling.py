"""Samplers of block profiling (Mills et al., CIKM 2021): architectures with one block fixed, and a baseline.

A *block* is one (position, choice) of a space. For block ``(p, c)`` the sampler draws ``N`` architectures
uniformly from the space **conditioned on** ``a_p = c`` **and on position p being active**: every other
position is drawn uniformly, and when ``p`` is a layer gated by a depth position ``g`` (see
:mod:`nasjax.spaces.structure`) the depth is drawn uniformly among the choices under which ``p`` runs,
``a_g ~ U{gate_min_choice[p], ..., K_g - 1}``. (The original forced ``d = layer`` when ``d < layer``;
with 0-based layers that leaves the last layer of a stage inactive in about two thirds of its samples.)

Over a finite set of measured cells (a benchmark that covers only part of a space) the sampler draws
from the cells with ``a_p = c`` and ``p`` active instead, or takes all of them (``n=None``).

Every block has its own random stream, ``default_rng([seed, 1 + p, c])``, and the unconstrained baseline
``default_rng([seed, 0])``: a block's samples do not depend on which other blocks are profiled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.spaces.base import SearchSpace
from nasjax.spaces.structure import SpaceStructure


@dataclass(frozen=True)
class Block:
    """One (position, choice) of a space with its labels: ``key`` = ``"<unit>/<layer>/<choice>"``."""

    position: int
    choice: int
    unit: str
    layer: str
    label: str

    @property
    def key(self) -> str:
        """``"<unit>/<layer>/<choice>"``, the block's name in CSVs and ``parse_blocks``."""
        return f"{self.unit}/{self.layer}/{self.label}"


def block_of(space: SearchSpace, structure: SpaceStructure, p: int, c: int) -> Block:
    """The :class:`Block` of position ``p``, choice ``c`` with its unit, layer and choice labels.

    Args:
      space: the search space.
      structure: its :class:`~nasjax.spaces.structure.SpaceStructure`.
      p: the position index.
      c: the choice index.

    Returns:
      The block.
    """
    return Block(int(p), int(c), structure.unit_names[int(structure.unit[p])], structure.layer_label(p),
                 str(space.choices[p][c]))


def all_blocks(space: SearchSpace, structure: SpaceStructure) -> list[Block]:
    """Every (position, choice) of ``space`` in position-major order.

    Args:
      space: the search space.
      structure: its :class:`~nasjax.spaces.structure.SpaceStructure`.

    Returns:
      ``sum_p K_p`` blocks.
    """
    return [block_of(space, structure, p, c) for p in range(space.num_positions) for c in range(space.num_choices[p])]


def parse_blocks(space: SearchSpace, structure: SpaceStructure, specs: Sequence[str]) -> list[Block]:
    """Blocks named by ``"<position>:<choice>"`` (indices) or by their key ``"<unit>/<layer>/<choice>"``.

    Args:
      space, structure: the space and its structure.
      specs: e.g. ``["3:4", "stage 2/layer 4/k7e6"]``.

    Returns:
      The blocks, in the order given; an unknown name raises naming it and the expected forms.
    """
    by_key = {b.key: b for b in all_blocks(space, structure)}
    out = []
    for s in specs:
        s = str(s).strip()
        if s in by_key:
            out.append(by_key[s])
            continue
        p, sep, c = s.partition(":")
        if sep and p.strip().isdigit() and c.strip().isdigit():
            p, c = int(p), int(c)
            if p < space.num_positions and c < space.num_choices[p]:
                out.append(block_of(space, structure, p, c))
                continue
        raise NasjaxInputError(f"blocks: got {s!r}, expected '<position>:<choice>' (positions 0.."
                               f"{space.num_positions - 1}) or a key like {next(iter(by_key))!r} of space "
                               f"{space.name!r}")
    return out


def _rng(seed: int, *stream: int) -> np.random.Generator:
    require(isinstance(seed, (int, np.integer)) and seed >= 0, "seed", seed, "an integer >= 0")
    return np.random.default_rng([int(seed), *[int(x) for x in stream]])


def sample_with_block(space: SearchSpace, structure: SpaceStructure, block: Block, n: int, seed: int) -> np.ndarray:
    """``[n, P]`` architectures with ``a_p = c`` and position ``p`` active (module docstring).

    Args:
      space: the search space.
      structure: its structure (the depth gate of ``p``).
      block: the block ``(p, c)`` to fix.
      n: the number of architectures, >= 1.
      seed: the profile's seed (the block's stream is ``[seed, 1 + p, c]``).

    Returns:
      int64 ``[n, P]`` choice vectors.

    Raises:
      NasjaxInputError: on a bad ``n`` or ``seed``, or a block no depth choice activates.
    """
    require(isinstance(n, (int, np.integer)) and n >= 1, "num_archs", n, "a positive integer")
    rng = _rng(seed, 1 + block.position, block.choice)
    a = space.random(rng, int(n))
    a[:, block.position] = block.choice
    g = int(structure.gate_position[block.position])
    if g >= 0:
        ok = structure.activating_choices(space, block.position)
        require(ok.size > 0, f"block {block.key}", "never active", "a layer some depth choice activates")
        a[:, g] = rng.choice(ok, size=int(n))
    return a


def sample_baseline(space: SearchSpace, n: int, seed: int) -> np.ndarray:
    """``[n, P]`` unconstrained uniform architectures (the profile's reference distribution).

    Args:
      space: the search space.
      n: the number of architectures, >= 1.
      seed: the profile's seed (the baseline's stream is ``[seed, 0]``).

    Returns:
      int64 ``[n, P]`` choice vectors.

    Raises:
      NasjaxInputError: on a bad ``n`` or ``seed``.
    """
    require(isinstance(n, (int, np.integer)) and n >= 1, "num_archs", n, "a positive integer")
    return space.random(_rng(seed, 0), int(n))


def cells_with_block(cells: np.ndarray, structure: SpaceStructure, block: Block, n: int | None,
                     seed: int) -> np.ndarray:
    """Rows of ``cells`` (``[M, P]``) with ``a_p = c`` and ``p`` active.

    All of them (``n=None``) or ``n`` drawn without replacement (all when fewer exist).

    Args:
      cells: ``[M, P]`` measured choice vectors.
      structure: the space's structure (which positions are active).
      block: the block ``(p, c)``.
      n: the number of rows to draw, or ``None`` for all.
      seed: the profile's seed (the block's stream is ``[seed, 1 + p, c]``).

    Returns:
      Sorted int64 row indices into ``cells``.

    Raises:
      NasjaxInputError: when no cell contains the block (naming it), or on a bad ``seed``.
    """
    hit = (cells[:, block.position] == block.choice) & structure.active(cells)[:, block.position]
    rows = np.flatnonzero(hit)
    require(rows.size > 0, f"block {block.key}", "no measured cell", "at least one cell containing the block")
    if n is None or n >= rows.size:
        return rows
    return np.sort(_rng(seed, 1 + block.position, block.choice).choice(rows, size=int(n), replace=False))


def cells_baseline(num_cells: int, n: int | None, seed: int) -> np.ndarray:
    """Baseline rows of a cell set: all (``n=None``) or ``n`` drawn without replacement.

    Args:
      num_cells: the number of measured cells ``M``.
      n: the number of rows to draw, or ``None`` for all.
      seed: the profile's seed (the baseline's stream is ``[seed, 0]``).

    Returns:
      Sorted int64 row indices in ``0..M - 1``.

    Raises:
      NasjaxInputError: on a bad ``seed`` (when rows are drawn).
    """
    if n is None or n >= num_cells:
        return np.arange(num_cells)
    return np.sort(_rng(seed, 0).choice(num_cells, size=int(n), replace=False))
