"""Runtimes that time a program on this machine: XLA (``jax.jit`` on the host CPU) and ONNX Runtime.

One interface for every latency measurement of the project::

    rt = get_runtime("onnxruntime", threads=1)
    call = rt.prepare(piece, batch_size=1, resolution=224)   # build, compile, run once
    res = time_interleaved([call_a, call_b], warmup=5, repeats=50)
    res.medians_ms, res.spread_ms, res.raw_ms

A *piece* (:class:`Piece`) is one program to time -- a whole subnet, one stage block, one layer, the
stem or the head -- described by how to build it in each runtime: ``jax_fn`` returns a jitted
``x -> y`` on NHWC inputs, ``onnx`` returns an ``onnx.ModelProto`` whose single input is NCHW. The input
shape at a batch size and resolution comes from ``input_shape``.

Timing is interleaved: every repeat runs each call once in turn (A B C A B C ...), so a slow phase of a
shared machine slows every program alike instead of biasing the ones timed during it. The median over
repeats is the latency; the spread is the interquartile range.

Threads: ONNX Runtime takes ``SessionOptions.intra_op_num_threads = threads`` (0 = all cores, inter-op
1). XLA's CPU thread pool is process-wide and sized, when the backend starts, by the cores the process may
run on. The ``XLA_FLAGS`` ``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` alone do
not make jax 0.10 single threaded: on a 2-core machine its two ``tf_XLAEigen`` threads still shared every
program (8.8 ms of CPU each per 10.5 ms call), so the process's CPU time was 1.7-1.8x the wall time. One
thread for XLA is therefore the process pinned to one core (``os.sched_setaffinity``) before JAX starts,
with those flags (:func:`pin_one_core`, :func:`xla_child_options`): its programs then run on a single thread
and CPU time equals wall time. :class:`XlaRuntime` checks that the running process has the thread setting
asked for (setting it itself if JAX has not started yet) and refuses otherwise;
:func:`relaunch_with_threads` re-runs a command in a subprocess started that way.

Compilation: an XLA program is timed as XLA compiles it, never as loaded from JAX's persistent compilation
cache. On the CPU backend a loaded executable runs slower than the compiled one, by a different amount per
program and per load (``scripts/bench_xla_cache.py`` measures it), so :meth:`XlaRuntime.prepare` and
:func:`time_calls` compile inside :func:`nasjax.io.fresh_compilation`.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.io import fresh_compilation, utc_stamp

XLA_SINGLE_THREAD_FLAGS = ("--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1")
XLA_THREADS_MEANING = ("0 = all cores; 1 = the process pinned to one core with the single-thread XLA_FLAGS "
                       "(cpu_affinity: the cores it ran on)")


# --------------------------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_cache_kb() -> int | None:
    """The CPU's cache size (KB) as /proc/cpuinfo's ``cache size`` reports it (the last-level cache on x86),
    or ``None`` where it is not reported."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("cache size"):
                    m = re.search(r"(\d+)\s*([KMG]?)B", line.split(":", 1)[1], re.I)
                    if m:
                        return int(m.group(1)) * {"": 1, "K": 1, "M": 1024, "G": 1024 ** 2}[m.group(2).upper()]
    except OSError:
        pass
    return None


def device_name() -> str:
    """A stable name for this machine's CPU: ``cpu-<model slug>-<n>c[-<cache>mib]``.

    Virtual machines of one cloud often report the same model string for different host CPUs (an Intel Xeon
    host with 480 MiB and one with 260 MiB of last-level cache both say "Intel(R) Xeon(R) Processor"; one BINAS
    subnet took 13.1-13.7 ms of CPU time on the first and 16-26 ms on the second), so the cache size, where
    /proc/cpuinfo reports it, is part of the name:
    a table is this machine's only if it was measured on a CPU of the same model, cores and cache.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", cpu_model().lower().replace("(r)", "").replace("(tm)", "")).strip("-")
    slug = re.sub(r"-?cpu-?", "-", slug).strip("-")
    kb = cpu_cache_kb()
    return f"cpu-{slug}-{os.cpu_count()}c" + ("" if kb is None else f"-{round(kb / 1024)}mib")


def machine_provenance() -> dict:
    """CPU model, core count, load average, Python and platform, UTC date and the running command."""
    return {
        "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "cpu_cache_kb": cpu_cache_kb(), "device": device_name(),
        "load_average": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version(),
        "platform": platform.platform(),
        "date": utc_stamp(),
        "command": running_command(),
    }


def running_command() -> str:
    """This process's command as a user would type it: ``python -m <module> ...`` or ``python <script> ...``
    (a script path relative to the working directory when it lies below it)."""
    mod = _module_of_main()
    if mod:
        head = ["python", "-m", mod]
    else:
        script = sys.argv[0] if sys.argv else ""
        try:
            script = os.path.relpath(script) if not os.path.relpath(script).startswith("..") else script
        except ValueError:
            pass
        head = ["python", script]
    return " ".join(head + sys.argv[1:])


# --------------------------------------------------------------------------------------------
# Pieces and timing
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Piece:
    """One program to time.

    Attributes:
        name: a label (for progress bars and errors).
        input_shape: ``(batch_size, resolution) -> NHWC shape`` of the piece's input.
        jax_fn: ``() -> jitted x -> y`` (NHWC), or None if the piece has no XLA form.
        onnx: ``(batch_size, resolution) -> onnx.ModelProto`` (NCHW input), or None.
    """

    name: str
    input_shape: Callable[[int, int], tuple[int, ...]]
    jax_fn: Callable[[], Callable] | None = None
    onnx: Callable[[int, int], Any] | None = None


@dataclass(frozen=True)
class Timing:
    """Result of :func:`time_interleaved`: per call, median, interquartile range, the estimate of the chosen
    statistic (ms) and the raw times."""

    medians_ms: np.ndarray  # [n]
    spread_ms: np.ndarray  # [n], 75th - 25th percentile
    raw_ms: np.ndarray  # [repeats, n]
    warmup: int
    repeats: int
    estimates_ms: np.ndarray | None = None  # [n], the ``statistic`` of raw_ms (None: the medians)
    statistic: str = "median"

    @property
    def times_ms(self) -> np.ndarray:
        """Per call, the estimate of :attr:`statistic` (the medians unless another statistic was asked for)."""
        return self.medians_ms if self.estimates_ms is None else self.estimates_ms


STATISTICS = {"median": 50.0, "q25": 25.0, "q10": 10.0, "min": 0.0}  # percentile of the timed rounds
# What tables and their validation use when no statistic is asked for, per runtime. A low quantile repeats
# better on a host whose speed wanders (10th percentile: 3-4 % between repeated measurements against 7-11 %
# for the median on such a host), and ONNX Runtime's programs time unimodally (the 10th percentile 0.85-0.97x
# the median for every cell). XLA's one-thread programs time bimodally: for some cells the 10th percentile
# was 0.34x their median, a fast mode the same cell does not keep inside a network, and a table built from
# it ranked subnets at Kendall tau 0.55 where the median's reached 0.91 (docs/latency_tables.md).
DEFAULT_STATISTIC = {"onnxruntime": "q10", "xla": "median"}


def default_statistic(runtime: str) -> str:
    """The timing statistic :data:`DEFAULT_STATISTIC` gives ``runtime`` (a runtime's name; median otherwise)."""
    return DEFAULT_STATISTIC.get(runtime, "median")


def resolve_statistic(statistic: str | None, runtime: str) -> str:
    """``statistic`` checked against :data:`STATISTICS`; ``None`` -> :func:`default_statistic` of ``runtime``."""
    statistic = default_statistic(runtime) if statistic is None else statistic
    require(statistic in STATISTICS, "statistic", statistic, f"one of {sorted(STATISTICS)}")
    return statistic


def timing_estimate(raw_ms, statistic: str) -> np.ndarray:
    """Per column of ``raw_ms [repeats, n]``, the percentile :data:`STATISTICS` names."""
    require(statistic in STATISTICS, "statistic", statistic, f"one of {sorted(STATISTICS)}")
    return np.percentile(np.asarray(raw_ms, float), STATISTICS[statistic], axis=0)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time, "thread": time.thread_time}


def resolve_clock(clock: str, threads: int) -> str:
    """``"auto"`` -> ``"cpu"`` for one thread, ``"wall"`` otherwise; ``"wall"``/``"cpu"`` as given."""
    require(clock in ("auto", *CLOCKS), "clock", clock, "'auto', 'wall' or 'cpu'")
    if clock == "auto":
        return "cpu" if threads == 1 else "wall"
    return clock


def time_interleaved(calls: Sequence[Callable[[], Any]], *, warmup: int = 3, repeats: int = 20,
                     progress: bool = False, desc: str = "timing", clock: str = "wall",
                     warm_calls: int = 0, statistic: str = "median") -> Timing:
    """Time every call of ``calls`` interleaved: ``warmup`` untimed rounds, then ``repeats`` timed rounds
    each running ``calls[0], calls[1], ..., calls[n-1]`` once (A B A B ...), so drift cancels.

    Each call must wait for its result (the runtimes' prepared calls do).

    Args:
        calls: zero-argument callables.
        warmup: untimed rounds (>= 0).
        repeats: timed rounds (>= 1).
        progress: show a tqdm bar over the rounds.
        desc: the bar's label.
        clock: ``"wall"`` (``time.perf_counter``), ``"cpu"`` (``time.process_time``: the CPU time of
            the whole process; for a single-threaded runtime this is the call's latency on an idle
            core, and other jobs on a shared machine do not inflate it) or ``"thread"``
            (``time.thread_time``: the calling thread's CPU time, for a runtime that computes on the
            calling thread, so that other threads of the same process do not inflate it either).
        warm_calls: untimed runs of each call right before each of its timed runs. Interleaving alone
            leaves a program's weights to be evicted by the other programs of the round, so the time then
            depends on how much the others touched (on a machine whose L3 cache holds a few networks, the
            same full-size subnet timed among 25 others ran 20-30 % slower than among 9 small layers);
            with ``warm_calls >= 1`` every timed run finds its program warm, as a deployed network running
            back to back does, while the rounds still interleave the programs so that drift cancels.
        statistic: the estimate :attr:`Timing.times_ms` holds (:data:`STATISTICS`: ``median``, ``q25``,
            ``q10``, ``min`` of the rounds).

    Returns:
        :class:`Timing` with ``medians_ms[j] = median_r raw_ms[r, j]``,
        ``spread_ms[j] = q75_r - q25_r`` of ``raw_ms[:, j]`` and ``estimates_ms`` the ``statistic``.
    """
    require(statistic in STATISTICS, "statistic", statistic, f"one of {sorted(STATISTICS)}")
    require(isinstance(repeats, (int, np.integer)) and repeats >= 1, "repeats", repeats, "a positive integer")
    require(isinstance(warmup, (int, np.integer)) and warmup >= 0, "warmup", warmup, "a non-negative integer")
    require(len(calls) >= 1, "calls", len(calls), "at least one call to time")
    require(clock in CLOCKS, "clock", clock, "'wall', 'cpu' or 'thread'")
    require(isinstance(warm_calls, (int, np.integer)) and warm_calls >= 0, "warm_calls", warm_calls,
            "a non-negative integer")
    for _ in range(warmup):
        for c in calls:
            c()
    rounds = range(repeats)
    if progress:
        from tqdm.auto import tqdm

        rounds = tqdm(rounds, desc=desc, unit="round", dynamic_ncols=True)
    raw = np.empty((repeats, len(calls)))
    now = CLOCKS[clock]
    for r in rounds:
        for j, c in enumerate(calls):
            for _ in range(warm_calls):
                c()
            t = now()
            c()
            raw[r, j] = now() - t
    raw *= 1e3
    q25, med, q75 = np.percentile(raw, [25, 50, 75], axis=0)
    return Timing(med, q75 - q25, raw, int(warmup), int(repeats), timing_estimate(raw, statistic), statistic)


def time_calls(calls: list[tuple[Callable, tuple]], *, warmup: int = 3, repeats: int = 20) -> np.ndarray:
    """Median wall time (ms) of each JAX call ``fn(*args)`` of ``calls``, interleaved (:func:`time_interleaved`).

    Args:
        calls: ``(fn, args)`` pairs; every result is waited for with ``jax.block_until_ready``.
        warmup: untimed rounds (at least one: the first call compiles).
        repeats: timed rounds.

    Returns:
        ``[len(calls)]`` medians in ms.
    """
    import jax

    wrapped = [lambda fn=fn, args=args: jax.block_until_ready(fn(*args)) for fn, args in calls]
    with fresh_compilation():  # the first round compiles; see nasjax.io.fresh_compilation
        for c in wrapped:
            c()
    return time_interleaved(wrapped, warmup=max(0, warmup - 1), repeats=repeats).medians_ms


def time_call(fn: Callable, *args, warmup: int = 3, repeats: int = 20) -> float:
    """Median wall time (ms) of ``fn(*args)`` after ``warmup`` calls, each waited for."""
    return float(time_calls([(fn, args)], warmup=warmup, repeats=repeats)[0])


def _input(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Runtimes
# --------------------------------------------------------------------------------------------
@dataclass
class Runtime:
    """A way to run pieces on this machine with a thread count (0 = all cores) and the clock its calls are
    timed with (``"wall"`` or ``"cpu"``, see :func:`time_interleaved`)."""

    threads: int = 0
    clock: str = "auto"
    name: str = field(default="", init=False)

    def prepare(self, piece: Piece, batch_size: int, resolution: int) -> Callable[[], None]:
        """Build and compile ``piece`` for inputs ``[batch_size, resolution...]``, run it once, and return
        a zero-argument call that runs it on a fixed random input and waits for the result."""
        raise NotImplementedError

    def provenance(self) -> dict:
        """Runtime name, threads, library versions and the machine (:func:`machine_provenance`)."""
        raise NotImplementedError

    @property
    def timer_clock(self) -> str:
        """The clock :func:`time_interleaved` reads for this runtime's calls (``clock``, by default)."""
        return self.clock

    @property
    def label(self) -> str:
        """``<runtime>`` or ``<runtime>-t<threads>`` (the table-file suffix)."""
        return self.name + (f"-t{self.threads}" if self.threads else "")


def xla_thread_env(threads: int, env: dict | None = None) -> dict:
    """A copy of ``env`` (default ``os.environ``) whose ``XLA_FLAGS`` give XLA ``threads`` CPU threads.

    Args:
        threads: 1 (single threaded) or 0 (all cores, XLA's default).

    Returns:
        The environment to start a process with.
    """
    require(threads in (0, 1), "threads", threads, "0 (all cores) or 1 for the xla runtime")
    env = dict(os.environ if env is None else env)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(
        ("--xla_cpu_multi_thread_eigen", "intra_op_parallelism_threads"))]
    if threads == 1:
        flags += list(XLA_SINGLE_THREAD_FLAGS)
    env["XLA_FLAGS"] = " ".join(flags)
    return env


def xla_threads_of_env(env: dict | None = None) -> int:
    """The XLA thread setting (1 or 0 = all) that ``env``'s ``XLA_FLAGS`` give."""
    flags = (os.environ if env is None else env).get("XLA_FLAGS", "").split()
    return 1 if all(f in flags for f in XLA_SINGLE_THREAD_FLAGS) else 0


def cpu_affinity() -> list[int] | None:
    """The cores this process may run on (sorted), or ``None`` where the platform cannot say."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return sorted(os.sched_getaffinity(0))


def pin_one_core() -> int | None:
    """Pin this process (and the threads it starts from now on) to one core, the last it may run on; the
    core, or ``None`` where the platform cannot pin (there XLA keeps a thread per core)."""
    cores = cpu_affinity()
    if cores is None:
        return None
    os.sched_setaffinity(0, {cores[-1]})
    return cores[-1]


def _pinned() -> bool:
    cores = cpu_affinity()
    return cores is None or len(cores) == 1


def xla_threads_ready(threads: int) -> bool:
    """Whether this process runs (or, if JAX has not started, will run) XLA with ``threads`` threads.

    One thread = the single-thread ``XLA_FLAGS`` and the process pinned to one core; all threads = XLA's
    default flags on the process's cores. If the JAX backend is not initialised yet, sets both here (for one
    thread: :func:`pin_one_core`) and returns True.
    """
    from jax._src import xla_bridge

    if xla_threads_of_env() == threads and (threads == 0 or _pinned()):
        return True
    if not xla_bridge.backends_are_initialized():
        os.environ["XLA_FLAGS"] = xla_thread_env(threads)["XLA_FLAGS"]
        if threads == 1:
            pin_one_core()
        return True
    return False


def xla_child_options(threads: int) -> dict:
    """``subprocess`` keyword arguments that start a child with XLA at ``threads`` threads: the environment
    of :func:`xla_thread_env` and, for one thread, pinned to one core (:func:`pin_one_core`)."""
    return {"env": xla_thread_env(threads), "preexec_fn": pin_one_core if threads == 1 else None}


def relaunch_with_threads(threads: int, argv: Sequence[str] | None = None) -> int:
    """Run ``python <argv>`` (default: this process's command) in a subprocess whose XLA uses ``threads``
    threads (for one thread: started pinned to one core); returns its exit code. Used by the builders when
    JAX already started with another setting."""
    import subprocess

    argv = list(sys.argv if argv is None else argv)
    cmd = [sys.executable] + (["-m", _module_of_main()] + argv[1:] if _module_of_main() else argv)
    return subprocess.call(cmd, **xla_child_options(threads))


def run_json_with_threads(runtime: str, threads: int, argv: Sequence[str], out_flag: str) -> tuple[int, Any]:
    """Run ``python <argv> --<out_flag>=FILE`` in a subprocess started with the XLA thread setting that
    ``runtime`` at ``threads`` needs (one thread, pinned to one core, for one-thread XLA; XLA's default
    otherwise), for timings of several thread settings from one command. Returns ``(exit code, the JSON the
    child wrote to FILE or None)``."""
    import json
    import subprocess
    import tempfile

    t = 1 if runtime == "xla" and int(threads) == 1 else 0
    with tempfile.TemporaryDirectory() as td:
        out = Path(td) / "out.json"
        rc = subprocess.call([sys.executable, *argv, f"--{out_flag}={out}"], **xla_child_options(t))
        return rc, (json.loads(out.read_text()) if rc == 0 and out.is_file() else None)


def _module_of_main() -> str | None:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = spec.name.removesuffix(".__main__") if spec is not None else None
    return name if name and name != "__main__" else None


class XlaRuntime(Runtime):
    """``jax.jit`` on the host CPU; each call waits with ``block_until_ready``.

    ``persistent_cache=False`` (the default, and what every table and validation times): each prepared program
    is compiled, never loaded from the persistent compilation cache (:func:`nasjax.io.fresh_compilation`: a
    loaded CPU executable times differently from the compiled one). ``True`` lets the cache serve it, as in a
    process that enabled it (``scripts/bench_xla_cache.py`` times both).
    """

    def __init__(self, threads: int = 0, clock: str = "auto", persistent_cache: bool = False):
        threads = self.normal_threads(threads)
        super().__init__(threads, resolve_clock(clock, threads))
        self.name = "xla"
        self.persistent_cache = bool(persistent_cache)
        if not xla_threads_ready(threads):
            raise NasjaxInputError(
                f"threads: got {threads} for the xla runtime, but JAX already started with XLA_FLAGS="
                f"{os.environ.get('XLA_FLAGS', '')!r} ({'1' if xla_threads_of_env() else 'all'} thread(s)) on "
                f"cores {cpu_affinity()}; expected a process started with "
                "nasjax.hardware.runtimes.xla_thread_env(threads) (and, for one thread, pinned to one core) "
                "(the builders re-launch themselves)")

    @staticmethod
    def normal_threads(threads: int) -> int:
        """``threads`` as XLA can have it: 1, or 0 for all cores (also when ``threads`` = the core count).

        Raises:
            NasjaxInputError: any other count.
        """
        require(isinstance(threads, (int, np.integer)) and not isinstance(threads, bool) and threads >= 0,
                "threads", threads, "a non-negative integer (0 = all cores)")
        threads = int(threads)
        if threads == os.cpu_count() and threads != 1:
            threads = 0
        require(threads in (0, 1), "threads", threads,
                f"0 (all {os.cpu_count()} cores) or 1 for the xla runtime (XLA sets no other count)")
        return threads

    def prepare(self, piece: Piece, batch_size: int, resolution: int) -> Callable[[], None]:
        import jax
        import jax.numpy as jnp

        require(piece.jax_fn is not None, "piece", piece.name, "a piece with an XLA form (jax_fn)")
        with contextlib.nullcontext() if self.persistent_cache else fresh_compilation():
            fn = piece.jax_fn()
            x = jnp.asarray(_input(piece.input_shape(batch_size, resolution)))
            call = lambda: jax.block_until_ready(fn(x))
            call()
        return call

    def provenance(self) -> dict:
        import flax
        import jax
        import jaxlib

        return {"runtime": "xla", "threads": self.threads, "clock": self.clock,
                "compilation": "persistent cache" if self.persistent_cache else "fresh",
                "threads_meaning": XLA_THREADS_MEANING, "cpu_affinity": cpu_affinity(),
                "xla_flags": os.environ.get("XLA_FLAGS", ""), "jax": jax.__version__, "jaxlib": jaxlib.__version__,
                "flax": flax.__version__, "numpy": np.__version__, "backend": jax.default_backend(),
                **machine_provenance()}


class OrtRuntime(Runtime):
    """ONNX Runtime's CPU execution provider, ``intra_op_num_threads = threads``, ``inter_op_num_threads = 1``,
    sequential execution, all graph optimisations."""

    def __init__(self, threads: int = 0, clock: str = "auto"):
        require(isinstance(threads, int) and not isinstance(threads, bool) and threads >= 0, "threads", threads,
                "a non-negative integer (0 = all cores)")
        super().__init__(threads, resolve_clock(clock, threads))
        self.name = "onnxruntime"

    @property
    def timer_clock(self) -> str:
        """With one intra-op thread ONNX Runtime computes on the calling thread: its CPU time is read, so that
        other threads of the process (a checkpoint reader, a compiler) do not inflate a measurement."""
        return "thread" if self.clock == "cpu" and self.threads == 1 else self.clock

    def session(self, model):
        """An ``InferenceSession`` of ``model`` (a ModelProto or serialised bytes) with this runtime's options."""
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if self.threads != 1:
            # Every session has its own intra-op thread pool, whose threads spin after each run; with the many
            # sessions of an interleaved timing, the spinning pools of the others take the cores from the one
            # being timed (a w1.2 table built that way was off by 35 %).
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        data = model if isinstance(model, bytes) else model.SerializeToString()
        return ort.InferenceSession(data, sess_options=so, providers=["CPUExecutionProvider"])

    def prepare(self, piece: Piece, batch_size: int, resolution: int) -> Callable[[], None]:
        require(piece.onnx is not None, "piece", piece.name, "a piece with an ONNX form (onnx)")
        sess = self.session(piece.onnx(batch_size, resolution))
        n, h, w, c = piece.input_shape(batch_size, resolution)
        feed = {sess.get_inputs()[0].name: _input((n, c, h, w))}
        call = lambda: sess.run(None, feed)
        call()
        return call

    def provenance(self) -> dict:
        import onnx
        import onnxruntime as ort

        return {"runtime": "onnxruntime", "threads": self.threads, "clock": self.clock,
                "threads_meaning": "0 = all cores",
                "onnxruntime": ort.__version__, "onnx": onnx.__version__, "numpy": np.__version__,
                "providers": ["CPUExecutionProvider"], "inter_op_num_threads": 1,
                "intra_op_allow_spinning": self.threads == 1, **machine_provenance()}


RUNTIMES: dict[str, type[Runtime]] = {"xla": XlaRuntime, "onnxruntime": OrtRuntime}


def get_runtime(name: str, threads: int = 0, clock: str = "auto") -> Runtime:
    """The runtime called ``name`` ("xla" or "onnxruntime") with ``threads`` threads (0 = all cores),
    timed with ``clock`` (:func:`resolve_clock`: ``auto`` = CPU time for one thread, else wall time).

    Raises:
        NasjaxInputError: unknown name (the message lists the known ones) or an impossible thread count.
    """
    return get_runtime_class(name)(threads, clock)


def get_runtime_class(name: str) -> type[Runtime]:
    """The class of runtime ``name``; unknown -> :class:`NasjaxInputError` listing the known ones."""
    if not isinstance(name, str) or name not in RUNTIMES:
        raise NasjaxInputError(f"runtime: got {name!r}, expected one of {', '.join(RUNTIMES)}")
    return RUNTIMES[name]
