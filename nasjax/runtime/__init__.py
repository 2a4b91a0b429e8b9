"""Dynamic subnet switching under a latency window (MathNAS, NeurIPS 2023, its fifth part).

A set of candidate subnets of a MobileNetV3 supernet is compiled ahead of time as static programs
(weights sliced from the supernet, BN recalibrated once each); a controller serves batches, compares the
mean measured latency of every ``check_every`` batches with the window ``[min, max]``, re-estimates the
latency table from what it measured, searches (a light search, one stage moved by one choice, then the
exact fallback, both registered searchers) and switches by selecting another compiled executable.

* :mod:`~nasjax.runtime.adapter`: the one place that knows where supernets, tables and static programs
  come from (the embedded default, a random full-size supernet);
* :mod:`~nasjax.runtime.estimate`: latency re-estimation (MathNAS's measured / predicted scale);
* :mod:`~nasjax.runtime.search`: the ``dynamic-light`` searcher and the window decision;
* :mod:`~nasjax.runtime.candidates`: choosing and compiling the candidates;
* :mod:`~nasjax.runtime.controller`: the serving loop, schedules, the injected slowdown, compile counting;
* :mod:`~nasjax.runtime.trace`: the trace CSV and plot.
"""
