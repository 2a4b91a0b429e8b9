"""The serving loop that keeps measured latency inside a window (MathNAS's dynamic part).

Each batch runs the active subnet's executable and is timed (``block_until_ready``). Every
``check_every`` batches of one subnet the mean (MathNAS) or median measured latency ``m`` is compared
with the window (with a ``coverage``, more than ``1 - coverage`` of the check's batches outside is a
violation too)
``[lo, hi]``; on a violation the estimator is updated with ``(active, m)`` (MathNAS: scale = measured /
predicted), the :class:`~nasjax.runtime.search.WindowSearch` decides, and the runtime switches. A new
window (the schedule) triggers a decision at once, with the current estimate. MathNAS's own start is
kept: the start subnet (the most accurate candidate) is timed on ``check_every`` batches, the table
rescaled, and the first decision taken before serving.

Two policies share the loop:

* ``ahead`` (nasjax): candidates compiled ahead; a switch selects an executable;
* ``mathnas``: nothing compiled ahead; light search and exact ``mckp`` over the whole space on the
  rescaled table; each switch jits and compiles the new subnet's static program (with the supernet's own
  BN statistics, as MathNAS's runtime does), and the batch after it waits for the compilation.

The *served* latency of a batch is its wait for a switch plus its own run time; a batch counts as inside
the window when its served latency is. Slowdowns are injected by CPU-burning processes the runtime
starts and kills by their own PID (each also stops by itself after ``max_burn_s``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field

import jax
import numpy as np

from nasjax.cli import option
from nasjax.errors import NasjaxInputError, require
from nasjax.runtime.search import WindowSearch

# --------------------------------------------------------------------------------------------------
# compile counting

TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class CompileCounter:
    """Counts JAX tracings and backend compilations while active (``jax.monitoring`` listeners).

    ``with CompileCounter() as cc: ...`` then ``cc.traces``, ``cc.compiles`` (a program served from the
    persistent compilation cache is traced but not compiled; ``cc.total`` counts both).
    """

    def __init__(self):
        self.traces = 0
        self.compiles = 0
        self._active = False

    def _listener(self, event: str, duration: float, **kwargs) -> None:
        if not self._active:
            return
        if event == TRACE_EVENT:
            self.traces += 1
        elif event == COMPILE_EVENT:
            self.compiles += 1

    @property
    def total(self) -> int:
        return self.traces + self.compiles

    def __enter__(self) -> CompileCounter:
        self._active = True
        jax.monitoring.register_event_duration_secs_listener(self._listener)
        return self

    def __exit__(self, *exc) -> None:
        self._active = False
        try:
            jax.monitoring.unregister_event_duration_listener(self._listener)
        except (AssertionError, ValueError):
            pass


# --------------------------------------------------------------------------------------------------
# schedules


def parse_windows(entries, field_name: str = "windows") -> list[tuple[int, float, float]]:
    """``["batch:min:max", ...]`` -> sorted ``[(batch, min, max)]``; the first entry must start at batch 0.

    Args:
      entries: strings ``"<first batch>:<min>:<max>"`` (ms, or multiples of a reference latency).
      field_name: the flag's name, for errors.

    Returns:
      The schedule; bad entries (min > max, NaN, negative, a missing batch 0) raise NasjaxInputError.
    """
    require(entries is not None and len(entries) > 0, field_name, entries, "at least one 'batch:min:max' entry")
    out = []
    for e in entries:
        parts = str(e).split(":")
        try:
            b, lo, hi = int(parts[0]), float(parts[1]), float(parts[2])
            if len(parts) != 3:
                raise ValueError
        except (ValueError, IndexError):
            raise NasjaxInputError(f"{field_name}: got {e!r}, expected 'batch:min:max' (an integer batch and two "
                                   "numbers)") from None
        require(np.isfinite(lo) and np.isfinite(hi), field_name, e, "finite window bounds")
        require(0 <= lo <= hi and hi > 0, field_name, e, "0 <= min <= max and max > 0")
        require(b >= 0, field_name, e, "a batch index >= 0")
        out.append((b, lo, hi))
    out.sort(key=lambda t: t[0])
    require(out[0][0] == 0, field_name, entries, "an entry starting at batch 0")
    require(len({t[0] for t in out}) == len(out), field_name, entries, "distinct start batches")
    return out


def parse_slowdowns(entries, field_name: str = "slowdowns") -> list[tuple[int, int]]:
    """``["start:stop", ...]`` batch ranges (stop exclusive) -> sorted, non-overlapping ``[(start, stop)]``."""
    out = []
    for e in entries or ():
        try:
            a, b = (int(x) for x in str(e).split(":"))
        except ValueError:
            raise NasjaxInputError(f"{field_name}: got {e!r}, expected 'start:stop' batch indices") from None
        require(0 <= a < b, field_name, e, "0 <= start < stop")
        out.append((a, b))
    out.sort()
    for (_, b0), (a1, _) in zip(out, out[1:]):
        require(a1 >= b0, field_name, entries, "non-overlapping ranges")
    return out


def window_at(windows, i: int) -> tuple[float, float]:
    """The window ``(min, max)`` in force at batch ``i``."""
    lo = hi = None
    for b, a, c in windows:
        if b <= i:
            lo, hi = a, c
    return lo, hi


# --------------------------------------------------------------------------------------------------
# the injected slowdown

_BURN = "import time,sys\nend=time.monotonic()+float(sys.argv[1])\nx=0\nwhile time.monotonic()<end:\n    x+=1\n"


class CpuBurner:
    """CPU-burning child processes, started and killed by their own PIDs.

    Each child spins for at most ``max_seconds`` and then exits by itself; :meth:`stop` (and leaving the
    ``with`` block) kills every child still alive by its PID and reaps it.
    """

    def __init__(self, procs: int = 1, max_seconds: float = 120.0):
        require(isinstance(procs, int) and procs >= 0, "slowdown_procs", procs, "an integer >= 0")
        require(max_seconds > 0, "max_burn_s", max_seconds, "a positive number of seconds")
        self.procs, self.max_seconds = procs, float(max_seconds)
        self.children: list[subprocess.Popen] = []
        self.pids_started: list[int] = []

    @property
    def running(self) -> bool:
        return bool(self.children)

    def start(self) -> None:
        if self.children:
            return
        for _ in range(self.procs):
            p = subprocess.Popen([sys.executable, "-c", _BURN, str(self.max_seconds)], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.children.append(p)
            self.pids_started.append(p.pid)

    def stop(self) -> None:
        for p in self.children:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            p.wait()
        self.children = []

    def __enter__(self) -> CpuBurner:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------------
# policies


class AheadPolicy:
    """Candidates compiled ahead: a switch is a look-up of the executable."""

    name = "ahead"

    def __init__(self, compiled):
        self.compiled = compiled

    def program(self, arch):
        return self.compiled.executable(arch)


class JitOnSwitchPolicy:
    """MathNAS's runtime: nothing compiled ahead; every switch jits and compiles the new subnet."""

    name = "mathnas"

    def __init__(self, source, input_shape):
        self.source, self.input_shape = source, tuple(input_shape)

    def program(self, arch):
        from nasjax.runtime import adapter

        x = jax.ShapeDtypeStruct(self.input_shape, np.float32)
        return adapter.static_program(self.source.state, self.source.block_set.to_ofa(arch)).lower(x).compile()


class SimulatedDevice:
    """A latency model in place of the machine, to check the controller apart from the machine's noise::

        lat(a, i) = k * t(a) * (f if i is in a slowdown else 1) * exp(sigma * z),   z ~ N(0, 1)

    with ``t`` the cost table, ``k`` ms per table unit, ``f`` the slowdown factor. Nothing is run.
    """

    def __init__(self, table, ms_per_unit: float, slowdowns, *, factor: float = 2.0, sigma: float = 0.1,
                 seed: int = 0):
        self.table, self.k, self.slowdowns = table, float(ms_per_unit), list(slowdowns)
        self.factor, self.sigma = float(factor), float(sigma)
        self.rng = np.random.default_rng(seed)

    def __call__(self, exe, x, arch, i: int) -> float:
        slow = any(a <= i < b for a, b in self.slowdowns)
        f = self.factor if slow else 1.0
        return self.k * float(self.table.predict(np.asarray(arch))) * f * float(np.exp(self.sigma * self.rng.normal()))


# --------------------------------------------------------------------------------------------------
# the loop


@dataclass
class DynamicConfig:
    """Settings of a dynamic run (flags of ``experiments.dynamic_run``)."""

    batches: int = option(600, help="Batches to serve.")
    batch_size: int = option(32, help="Images per batch (the compiled executables' batch size).")
    check_every: int = option(10, help="Compare the mean latency of this many batches of one subnet with the window.")
    windows: tuple[str, ...] = option(("0:0.8:1.1",), help="Window schedule: 'first_batch:min:max' entries (ms, "
                                      "or multiples of the reference latency with --window_relative).")
    window_relative: bool = option(True, help="Window bounds are multiples of the reference latency (the most "
                                   "accurate candidate's, measured before serving).")
    slowdowns: tuple[str, ...] = option((), help="Injected slowdowns: 'start:stop' batch ranges with CPU burners.")
    slowdown_procs: int = option(1, help="CPU-burning processes during a slowdown.")
    max_burn_s: float = option(120.0, help="A burner process exits by itself after this many seconds.")
    margin: float = option(0.15, help="Fraction of the window width kept free on each side when choosing.")
    coverage: float = option(0.95, help="nasjax's policy: share of batches to keep inside the window, predicted "
                             "from the measured latency spread; 0: the margin target.")
    statistic: str = option("median", choices=("mean", "median"),
                            help="nasjax's policy: statistic of a check's batch latencies compared with the window "
                                 "and used to re-estimate (MathNAS's policy always uses the mean).")
    max_front: int = option(12, help="At most this many Pareto-front candidates.")
    chain: bool = option(True, help="Add the greedy chain of one-stage moves to the candidates.")
    policy: str = option("both", choices=("ahead", "mathnas", "both"),
                         help="ahead: nasjax (compiled ahead); mathnas: re-search and jit on every switch; both.")
    seed: int = option(0, help="Seed (serving order, calibration images).")

    def __post_init__(self):
        for n in ("batches", "batch_size", "check_every"):
            require(isinstance(getattr(self, n), int) and getattr(self, n) >= 1, n, getattr(self, n),
                    "a positive integer")
        require(isinstance(self.seed, int) and self.seed >= 0, "seed", self.seed, "an integer >= 0")
        require(0 <= self.margin < 0.5, "margin", self.margin, "a fraction in [0, 0.5)")
        require(0 <= self.coverage < 1, "coverage", self.coverage, "a fraction in [0, 1)")
        self.window_schedule = parse_windows(self.windows)
        self.slowdown_schedule = parse_slowdowns(self.slowdowns)


@dataclass
class RunResult:
    """A run's per-batch trace rows and its summary figures."""

    policy: str
    rows: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)


STATISTICS = ("mean", "median")
SPREAD_SAMPLES = 100  # batch latencies (as ratios to their check's median) behind the jitter allowance
TRACE_COLUMNS = ("policy", "batch", "time_s", "window_min_ms", "window_max_ms", "latency_ms", "served_ms", "inside",
                 "active", "predicted_accuracy", "predicted_ms", "scale", "slowdown", "event", "decision_ms",
                 "switch_ms")


def arch_label(arch) -> str:
    return "-".join(str(int(x)) for x in arch)


def _timed(fn, x) -> float:
    t = time.perf_counter()
    jax.block_until_ready(fn(x))
    return (time.perf_counter() - t) * 1e3


def serve(policy, search: WindowSearch, estimator, images: list, windows, slowdowns, *, batches: int,
          check_every: int, start_arch, burner: CpuBurner | None = None, statistic: str = "mean",
          timer=None, coverage: float = 0.0, progress: bool = True) -> RunResult:
    """Serve ``batches`` batches under the window schedule (module docstring).

    Args:
      policy: :class:`AheadPolicy` or :class:`JitOnSwitchPolicy`.
      search: the window decision.
      estimator: the latency estimator ``search`` reads (updated here).
      images: device arrays of the serving batch shape, cycled through.
      windows: ``[(batch, lo_ms, hi_ms)]`` (absolute ms).
      slowdowns: ``[(start, stop)]`` batch ranges with the burner running.
      batches: how many batches.
      check_every: batches per window check.
      start_arch: the start subnet (timed first to scale the table).
      burner: the slowdown injector (``None``: no slowdown).
      statistic: ``"mean"`` (MathNAS) or ``"median"`` of the check's batches: the value compared with the
        window and given to the estimator.
      timer: ``timer(exe, x, arch, batch) -> ms`` measures one batch (default: run ``exe(x)`` and time it;
        :class:`SimulatedDevice` replaces the machine by a latency model).
      coverage: when > 0, decisions allow for jitter: the ratios of the last ``SPREAD_SAMPLES`` batch
        latencies to their check's median are passed to :meth:`WindowSearch.decide`, which keeps the
        predicted share of batches inside the window at least ``coverage`` (0: the margin target).
      progress: progress bar.

    Returns:
      A :class:`RunResult` with one row per batch (:data:`TRACE_COLUMNS`) and the summary.
    """
    require(statistic in STATISTICS, "statistic", statistic, f"one of {STATISTICS}")
    stat = np.mean if statistic == "mean" else np.median
    measure = timer if timer is not None else (lambda e, x, a, i: _timed(e, x))
    require(0 <= coverage < 1, "coverage", coverage, "a fraction in [0, 1)")
    ratios: deque = deque(maxlen=SPREAD_SAMPLES)

    def spread():
        if coverage <= 0 or len(ratios) < check_every:
            return {}
        return {"ratios": np.fromiter(ratios, float), "coverage": coverage}

    active = np.asarray(start_arch, np.int64)
    t_sw = time.perf_counter()
    exe = policy.program(active)
    start_compile_ms = (time.perf_counter() - t_sw) * 1e3
    measure(exe, images[0], active, -1)
    first = [measure(exe, images[i % len(images)], active, -1) for i in range(check_every)]
    start_ms = float(stat(first))
    ratios.extend(np.asarray(first) / float(np.median(first)))
    estimator.update(active, start_ms)
    lo, hi = window_at(windows, 0)
    rows, decisions, switches = [], [], []
    pending_wait, pending_event = 0.0, ["start"]
    dec = search.decide(active, lo, hi, **spread())
    decisions.append((dec.how, dec.decision_ms, "start"))
    pending_decision = dec.decision_ms

    sw_ms = 0.0

    def switch_to(arch, how) -> bool:
        nonlocal active, exe, pending_wait, sw_ms
        if np.array_equal(arch, active):
            return False
        t = time.perf_counter()
        new = policy.program(arch)
        ms = (time.perf_counter() - t) * 1e3
        exe, active = new, np.asarray(arch, np.int64)
        pending_wait += ms
        sw_ms += ms
        pending_event.append(f"switch({how})")
        switches.append(ms)
        return True

    switch_to(dec.arch, dec.how)
    recent: list[float] = []
    it = range(batches)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"serving ({policy.name})", unit="batch", dynamic_ncols=True)
    t_start = time.perf_counter()
    slow_ranges = list(slowdowns)
    with CompileCounter() as cc:
        try:
            for i in it:
                w = window_at(windows, i)
                if w != (lo, hi):
                    lo, hi = w
                    pending_event.append("window")
                    dec = search.decide(active, lo, hi, **spread())
                    decisions.append((dec.how, dec.decision_ms, "window"))
                    pending_decision += dec.decision_ms
                    if switch_to(dec.arch, dec.how):
                        recent = []
                slow = any(a <= i < b for a, b in slow_ranges)
                if burner is not None and slow != burner.running:
                    (burner.start if slow else burner.stop)()
                    pending_event.append("slowdown-on" if slow else "slowdown-off")
                ms = measure(exe, images[i % len(images)], active, i)
                served = ms + pending_wait
                row = {"policy": policy.name, "batch": i, "time_s": time.perf_counter() - t_start,
                       "window_min_ms": lo, "window_max_ms": hi, "latency_ms": ms, "served_ms": served,
                       "inside": int(lo <= served <= hi), "active": arch_label(active),
                       "predicted_accuracy": float(search.objective.predict(active)),
                       "predicted_ms": float(estimator.predict(active)[0]),
                       "scale": float(getattr(estimator, "scale", 1.0)),
                       "slowdown": int(slow), "event": "", "decision_ms": pending_decision, "switch_ms": sw_ms}
                row["event"] = "+".join(pending_event)
                pending_event = []
                pending_wait, pending_decision, sw_ms = 0.0, 0.0, 0.0
                recent.append(ms)
                if len(recent) >= check_every:
                    m = float(stat(recent))
                    block = np.asarray(recent)
                    ratios.extend(block / float(np.median(block)))
                    recent = []
                    tail = coverage > 0 and float(np.mean((block < lo) | (block > hi))) > 1 - coverage
                    if not lo <= m <= hi or tail:
                        pending_event.append("violation")
                        estimator.update(active, m)
                        dec = search.decide(active, lo, hi, **spread())
                        decisions.append((dec.how, dec.decision_ms, "violation"))
                        pending_event.append(dec.how)
                        pending_decision += dec.decision_ms
                        switch_to(dec.arch, dec.how)
                rows.append(row)
        finally:
            if burner is not None:
                burner.stop()
    served = np.array([r["served_ms"] for r in rows])
    inside = np.array([r["inside"] for r in rows], bool)
    slow = np.array([r["slowdown"] for r in rows], bool)
    by_how: dict = {}
    for how, ms, _why in decisions:
        by_how.setdefault(how, []).append(ms)
    summary = {
        "policy": policy.name, "statistic": statistic, "batches": batches, "fraction_inside": float(inside.mean()),
        "fraction_checks_inside": _checks_inside(rows, check_every, stat),
        "fraction_inside_slowdown": float(inside[slow].mean()) if slow.any() else None,
        "fraction_inside_normal": float(inside[~slow].mean()) if (~slow).any() else None,
        "served_ms_median": float(np.median(served)), "served_ms_max": float(served.max()),
        "start_subnet": arch_label(start_arch), "start_latency_ms": start_ms, "start_program_ms": start_compile_ms,
        "decisions": len(decisions), "decisions_by_kind": {k: len(v) for k, v in by_how.items()},
        "decision_ms_median_by_kind": {k: float(np.median(v)) for k, v in by_how.items()},
        "decision_ms_max": float(max(ms for _, ms, _ in decisions)),
        "switches": len(switches), "switch_ms_median": float(np.median(switches)) if switches else None,
        "switch_ms_max": float(max(switches)) if switches else None,
        "switch_ms_total": float(sum(switches)),
        "first_batch_excess_ms_median": _first_batch_excess(rows),
        "traces_while_serving": cc.traces, "compiles_while_serving": cc.compiles,
        "burner_pids": list(burner.pids_started) if burner is not None else [],
        "mean_predicted_accuracy": float(np.mean([r["predicted_accuracy"] for r in rows])),
    }
    return RunResult(policy.name, rows, summary)


def _checks_inside(rows, n: int, stat) -> float:
    """Fraction of consecutive blocks of ``n`` batches whose statistic of served latency is inside the
    window in force at the block's last batch."""
    ok = []
    for s in range(0, len(rows) - n + 1, n):
        block = rows[s:s + n]
        v = float(stat([r["served_ms"] for r in block]))
        ok.append(block[-1]["window_min_ms"] <= v <= block[-1]["window_max_ms"])
    return float(np.mean(ok)) if ok else float("nan")


def _first_batch_excess(rows) -> float | None:
    """Median over switches of (first batch's run time after a switch - median run time of the next
    batches of the same subnet): what a switch costs beyond its executable's own run time."""
    out = []
    for j, r in enumerate(rows):
        if "switch(" not in r["event"]:
            continue
        nxt = [q["latency_ms"] for q in rows[j + 1:j + 6] if q["active"] == r["active"]]
        if nxt:
            out.append(r["latency_ms"] - float(np.median(nxt)))
    return float(np.median(out)) if out else None
