"""Search spaces as positions x choices.

An architecture of a space with ``P`` positions is an ``int`` vector ``a`` of length ``P`` with
``0 <= a[i] < num_choices[i]``. Positions may have different choice counts; array views pad to
``K = max(num_choices)`` columns with ``mask[i, c] = c < num_choices[i]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.registry import Registry


@dataclass(frozen=True)
class SearchSpace:
    """A finite product space.

    Attributes:
      name: registry name (``"mobilenetv3"``, ``"nasbench201"``, ...).
      positions: a label per position (``"edge 1<-0"``, ``"stage 3"``...).
      choices: per position, a label per choice.
    """

    name: str
    positions: tuple[str, ...]
    choices: tuple[tuple[str, ...], ...]
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if len(self.positions) != len(self.choices):
            raise ValueError("positions and choices must have the same length")

    # --- shape -----------------------------------------------------------------------------
    @property
    def num_positions(self) -> int:
        """``P``, the number of positions."""
        return len(self.positions)

    @property
    def num_choices(self) -> np.ndarray:
        """``[P]`` int64 choice count of every position."""
        return np.array([len(c) for c in self.choices], dtype=np.int64)

    @property
    def max_choices(self) -> int:
        """``K``, the largest choice count (the padded width of array views)."""
        return int(self.num_choices.max())

    @property
    def mask(self) -> np.ndarray:
        """``[P, K]`` bool: which (position, choice) cells exist."""
        return np.arange(self.max_choices)[None, :] < self.num_choices[:, None]

    @property
    def size(self) -> int:
        """Number of architectures (exact Python int)."""
        n = 1
        for k in self.num_choices:
            n *= int(k)
        return n

    # --- architectures -----------------------------------------------------------------------
    def validate(self, arch: Any, field_name: str = "arch") -> np.ndarray:
        """Return ``arch`` (or a batch ``[N, P]``) as an int64 array, or raise naming the bad entry.

        Args:
          arch: one architecture ``[P]`` or a batch ``[N, P]`` of choice indices (integral floats are accepted).
          field_name: the name of the checked input, first in error messages.

        Returns:
          The architecture(s) as int64, shape ``[P]`` or ``[N, P]``.

        Raises:
          NasjaxInputError: on non-integer entries, a shape other than ``[P]`` / ``[N, P]`` or an index outside
            ``0..num_choices[i] - 1`` (naming the position).
        """
        try:
            a = np.asarray(arch)
        except Exception as e:  # pragma: no cover - ragged input
            raise NasjaxInputError(f"{field_name}: got {arch!r}, expected {self.num_positions} integers") from e
        if a.dtype.kind not in "iu":
            if a.dtype.kind == "f" and a.size and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
                a = a.astype(np.int64)
            else:
                raise NasjaxInputError(
                    f"{field_name}: got {arch!r}, expected integer choice indices for space {self.name!r}"
                )
        if a.shape[-1:] != (self.num_positions,) or a.ndim not in (1, 2):
            raise NasjaxInputError(
                f"{field_name}: shape {a.shape}, expected ({self.num_positions},) or (N, {self.num_positions})"
                f" for space {self.name!r}"
            )
        a = a.astype(np.int64)
        bad = (a < 0) | (a >= self.num_choices)
        if bad.any():
            idx = np.argwhere(bad)[0]
            pos = int(idx[-1])
            raise NasjaxInputError(
                f"{field_name}[{pos}] ({self.positions[pos]}): got {int(a[tuple(idx)])}, expected 0.."
                f"{int(self.num_choices[pos]) - 1}"
            )
        return a

    def onehot(self, archs: np.ndarray) -> np.ndarray:
        """``[N, P, K]`` float32 one-hot of a batch of architectures (padded columns are 0).

        Args:
          archs: choice indices ``[P]`` or ``[N, P]`` (not validated).

        Returns:
          The one-hot ``[N, P, K]``, ``K = max_choices``.
        """
        archs = np.atleast_2d(archs)
        return (archs[..., None] == np.arange(self.max_choices)).astype(np.float32)

    def random(self, rng: np.random.Generator | int, n: int) -> np.ndarray:
        """``n`` architectures drawn uniformly (with replacement) from the space.

        Args:
          rng: a numpy Generator or an integer seed.
          n: how many architectures to draw.

        Returns:
          int64 choice indices ``[n, P]``.
        """
        rng = np.random.default_rng(rng)
        return (rng.random((n, self.num_positions)) * self.num_choices).astype(np.int64)

    def index_of(self, archs: np.ndarray) -> np.ndarray:
        """Mixed-radix index (position 0 most significant) of each architecture.

        index(a) = sum_i a_i * prod_{j > i} num_choices[j]

        Args:
          archs: choice indices ``[P]`` or ``[N, P]`` (not validated).

        Returns:
          int64 indices ``[N]`` in ``0..size - 1``.
        """
        archs = np.atleast_2d(archs).astype(np.int64)
        idx = np.zeros(archs.shape[0], dtype=np.int64)
        for i, k in enumerate(self.num_choices):
            idx = idx * int(k) + archs[:, i]
        return idx

    def from_index(self, idx: np.ndarray) -> np.ndarray:
        """The architectures of mixed-radix indices: the inverse of :meth:`index_of`.

        Args:
          idx: an index or an array of indices in ``0..size - 1``.

        Returns:
          int64 choice indices ``[N, P]`` (``N`` = number of indices).
        """
        idx = np.asarray(idx, dtype=np.int64).copy()
        out = np.zeros((idx.size, self.num_positions), dtype=np.int64)
        for i in range(self.num_positions - 1, -1, -1):
            k = int(self.num_choices[i])
            out[:, i] = idx % k
            idx //= k
        return out

    def all_archs(self, limit: int = 5_000_000) -> np.ndarray:
        """Every architecture, ``[size, P]`` in mixed-radix order; refuses spaces above ``limit``.

        Args:
          limit: the largest space size to enumerate.

        Returns:
          int64 choice indices ``[size, P]``, row ``j`` the architecture of index ``j``.

        Raises:
          NasjaxInputError: when the space has more than ``limit`` architectures.
        """
        if self.size > limit:
            raise NasjaxInputError(
                f"space {self.name!r}: {self.size} architectures, expected at most {limit} for enumeration"
            )
        grids = np.meshgrid(*[np.arange(k) for k in self.num_choices], indexing="ij")
        return np.stack([g.reshape(-1) for g in grids], axis=1).astype(np.int64)

    def describe(self, arch: Sequence[int]) -> list[str]:
        """The labels of one architecture's choices, one ``"position: choice"`` string per position.

        Args:
          arch: one architecture ``[P]``.

        Returns:
          ``P`` strings such as ``"stage 1: k3e4"``.

        Raises:
          NasjaxInputError: when ``arch`` is not a valid architecture of the space.
        """
        a = self.validate(arch)
        return [f"{p}: {self.choices[i][c]}" for i, (p, c) in enumerate(zip(self.positions, a))]


def product_space(name: str, positions: Sequence[str], choice_labels: Sequence[Sequence[str]], **meta) -> SearchSpace:
    """A :class:`SearchSpace` from position labels and per-position choice labels.

    Args:
      name: the space's registry name.
      positions: a label per position.
      choice_labels: per position, a label per choice (as many lists as positions).
      **meta: extra information kept in ``SearchSpace.meta`` (not compared).

    Returns:
      The space.

    Raises:
      ValueError: when ``positions`` and ``choice_labels`` differ in length.
    """
    return SearchSpace(name, tuple(positions), tuple(tuple(c) for c in choice_labels), dict(meta))


SPACES: Registry = Registry("search space")

# keys nasjax adds to a native architecture file it writes (predicted values, the solver...): a codec reading
# a file back ignores them
RESULT_KEYS = frozenset({"predicted", "solve_time_ms", "solver", "space", "device", "constraints", "measured"})


def get_space(name: str, **kwargs) -> SearchSpace:
    """Build a registered search space by name (``SPACES.names()`` lists them).

    Args:
      name: the registry name (``"nasbench201"``, ``"mobilenetv3"``, ``"binas"``, ...).
      **kwargs: the space builder's options (e.g. a block set or a structure).

    Returns:
      The :class:`SearchSpace`.

    Raises:
      NasjaxInputError: on an unknown name (listing the known ones).
    """
    return SPACES.get(name)(**kwargs)
