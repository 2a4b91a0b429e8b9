"""Strict reading of the published CSV files: UTF-8 text, one header line, rectangular rows, finite numbers.

Every CSV reader of :mod:`nasjax.benchmarks` goes through :func:`read_csv` and :func:`float_column`, so a
missing file, binary bytes, a ragged row, a non-numeric or non-finite cell (``nan``/``inf`` literals
included) is a :class:`~nasjax.errors.NasjaxInputError` naming the file, the line and the column.
:func:`rows_by_arch_string` maps the lines of a partial NAS-Bench-201 source to benchmark indices.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.io import read_text


def read_csv(path, field: str = "data_path") -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of a CSV file; every row has the header's number of cells.

    Args:
      path: the CSV file.
      field: what the file is, for error messages (``data_path`` when the user gave the folder).
    Returns:
      The header cells and the data rows (strings), at least one row.
    """
    p = Path(path)
    text = read_text(p, field)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if len(rows) < 2:
        raise NasjaxInputError(f"{field}: {str(p)!r} has {len(rows)} lines, expected a header and data rows")
    header = rows[0]
    for line, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise NasjaxInputError(f"{str(p)!r} line {line}: {len(r)} cells, expected {len(header)} like the header")
    return header, rows[1:]


def require_header(path, header: Sequence[str], want: Sequence[str], exact: bool = False) -> None:
    """The header starts with (or, with ``exact``, is) ``want``; else an error naming both.

    Args:
      path: the CSV file, for the error message.
      header: the header cells read from the file.
      want: the expected leading (or, with ``exact``, all) column names.
      exact: whether the header must equal ``want`` (else further device columns may follow).

    Raises:
      NasjaxInputError: when the header does not start with (or equal) ``want``.
    """
    got = list(header) if exact else list(header[:len(want)])
    if got != list(want):
        more = "" if exact else ", then device columns"
        raise NasjaxInputError(f"{str(path)!r} header: got {got}, expected {list(want)}{more}")


def column(path, header: Sequence[str], name: str) -> int:
    """Position of column ``name``; a missing column names the file.

    Args:
      path: the CSV file, for the error message.
      header: the header cells read from the file.
      name: the column wanted.

    Returns:
      The 0-based column index.

    Raises:
      NasjaxInputError: when ``name`` is not in the header.
    """
    if name not in header:
        raise NasjaxInputError(f"{str(path)!r} header: no column {name!r}, expected it among {list(header)}")
    return list(header).index(name)


def float_column(path, rows: Sequence[Sequence[str]], j: int, name: str, missing: float | None = None) -> np.ndarray:
    """Column ``j`` as ``float64``: finite numbers with a finite sum.

    Cells equal to ``missing`` (the source's marker of an absent measurement, e.g. ``-1``) become NaN.

    Args:
      path: the CSV file, for error messages.
      rows: the data rows (strings) from :func:`read_csv`.
      j: the column index.
      name: the column name, for error messages.
      missing: the value that marks an absent measurement, or ``None``.

    Returns:
      float64 ``[len(rows)]``.

    Raises:
      NasjaxInputError: on a non-numeric or non-finite cell (naming the line and column) or values whose sum
        overflows.
    """
    out = _parse(path, rows, j, name, float, np.float64, "a number")
    marked = out == missing if missing is not None else np.zeros(len(out), bool)
    bad = ~np.isfinite(out) & ~marked
    out[marked] = np.nan
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise NasjaxInputError(f"{str(path)!r} line {i + 2} column {name!r}: got {rows[i][j]!r}, expected a finite "
                               "number")
    with np.errstate(over="ignore"):
        total = np.nansum(out)
    if not np.isfinite(total):
        raise NasjaxInputError(f"{str(path)!r} column {name!r}: values overflow when summed, expected finite sums")
    return out


def rows_by_arch_string(name: str, strings: Sequence[str], reference: Sequence[str],
                        listed: Sequence[int] | None = None) -> np.ndarray:
    """Benchmark index of each line of a partial NAS-Bench-201 source, found by its arch string.

    Args:
      name: the source, for error messages.
      strings: the arch string of each line.
      reference: the arch strings of all cells in benchmark index order.
      listed: the source's own index column, when it has one; it must agree with the strings.
    Returns:
      ``int64 [lines]`` indices, each cell at most once.
    """
    row_of = {s: i for i, s in enumerate(reference)}
    idx = np.empty(len(strings), dtype=np.int64)
    for k, s in enumerate(strings):
        if s not in row_of:
            raise NasjaxInputError(f"{name}: line {k} has arch {s!r}, which is not a NAS-Bench-201 cell")
        idx[k] = row_of[s]
    if np.unique(idx).size != idx.size:
        raise NasjaxInputError(f"{name}: an arch string appears on more than one line")
    if listed is not None:
        given = np.asarray(listed, dtype=np.int64)
        bad = np.flatnonzero(given != idx)
        if bad.size:
            raise NasjaxInputError(f"{name}: line {bad[0]} has nb201_index {given[bad[0]]} but its arch string is "
                                   f"cell {idx[bad[0]]}")
    return idx


def int_column(path, rows: Sequence[Sequence[str]], j: int, name: str) -> np.ndarray:
    """Column ``j`` as ``int64`` (an index column); a non-integer cell names the line.

    Args:
      path: the CSV file, for error messages.
      rows: the data rows (strings) from :func:`read_csv`.
      j: the column index.
      name: the column name, for error messages.

    Returns:
      int64 ``[len(rows)]``.

    Raises:
      NasjaxInputError: on a cell that is not an integer literal (naming the line and column).
    """
    return _parse(path, rows, j, name, int, np.int64, "an integer")


def _parse(path, rows, j: int, name: str, convert, dtype, what: str) -> np.ndarray:
    out = np.empty(len(rows), dtype=dtype)
    for i, r in enumerate(rows):
        try:
            out[i] = convert(r[j])
        except ValueError:
            raise NasjaxInputError(f"{str(path)!r} line {i + 2} column {name!r}: got {r[j]!r}, expected "
                                   f"{what}") from None
    return out
