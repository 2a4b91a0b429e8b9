"""Error types of nasjax: every bad input names the field, the value and what was expected."""


class NasjaxInputError(ValueError):
    """Bad user input (architecture, table, yml, flag, checkpoint).

    The message names the offending field, the value seen and what was expected. Entry points turn it
    into a non-zero exit without writing partial output.
    """


class InfeasibleError(NasjaxInputError):
    """A budget no architecture of the space can meet; ``smallest`` is the smallest achievable value.

    Args:
      message: the error message (names the constraint, the bound and the smallest achievable value).
      smallest: ``{constraint name: smallest achievable value}`` (empty when unknown).
    """

    def __init__(self, message: str, smallest: dict | None = None):
        super().__init__(message)
        self.smallest = smallest or {}


def require(cond: bool, field: str, value, expected: str) -> None:
    """Raise :class:`NasjaxInputError` naming ``field`` unless ``cond`` holds.

    Args:
      cond: the condition that good input satisfies.
      field: the name of the checked input (flag, key, argument), first in the message.
      value: the value seen, shown with :func:`shown`.
      expected: what was expected, in words (e.g. ``"a positive integer"``).

    Raises:
      NasjaxInputError: ``"<field>: got <value>, expected <expected>"`` when ``cond`` is false.
    """
    if not cond:
        raise NasjaxInputError(f"{field}: got {shown(value)}, expected {expected}")


def shown(value, limit: int = 120) -> str:
    """``repr(value)`` for an error message: numpy scalars as plain numbers, cut to ``limit`` characters.

    Args:
      value: any value; a 0-d array or numpy scalar is shown as its Python number.
      limit: the longest text kept, in characters.

    Returns:
      The repr, or its first ``limit`` characters followed by ``"... (<length> characters)"``.
    """
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    r = repr(value)
    return r if len(r) <= limit else r[:limit] + f"... ({len(r)} characters)"
