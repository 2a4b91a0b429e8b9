"""nasjax: hardware-aware neural architecture search in JAX.

One representation holds the library together: a search space is a list of positions, each with a
finite list of choices; an architecture is an integer vector of choice indices. Tables, predictors,
constraints and searchers are all functions of that vector (see DESIGN.md of the project).
"""

__version__ = "0.1.0"
