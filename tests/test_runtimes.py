"""Runtimes: interleaved timing order, names, provenance, both runtimes on a tiny piece."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nasjax.errors import NasjaxInputError
from nasjax.hardware import runtimes as rt


def test_interleaved_order_and_shapes():
    log = []
    calls = [lambda n=n: log.append(n) for n in "ABC"]
    t = rt.time_interleaved(calls, warmup=2, repeats=3)
    assert "".join(log) == "ABC" * 5  # warm-up rounds, then timed rounds, each A B C in turn
    assert t.raw_ms.shape == (3, 3) and t.medians_ms.shape == (3,) and t.spread_ms.shape == (3,)
    assert np.all(t.raw_ms >= 0) and np.all(t.spread_ms >= 0)
    np.testing.assert_allclose(t.medians_ms, np.median(t.raw_ms, axis=0))


def test_interleaved_warm_calls_run_each_program_right_before_its_timing():
    log = []
    calls = [lambda n=n: log.append(n) for n in "AB"]
    t = rt.time_interleaved(calls, warmup=1, repeats=2, warm_calls=2)
    assert "".join(log) == "AB" + "AAABBB" * 2  # still interleaved A..B..; each timed run after 2 untimed ones
    assert t.raw_ms.shape == (2, 2)


@pytest.mark.parametrize("statistic,q", [("median", 50), ("q10", 10), ("min", 0)])
def test_interleaved_statistic(statistic, q):
    t = rt.time_interleaved([lambda: None, lambda: sum(range(2000))], warmup=0, repeats=15, statistic=statistic)
    assert t.statistic == statistic
    np.testing.assert_allclose(t.times_ms, np.percentile(t.raw_ms, q, axis=0))
    np.testing.assert_allclose(t.medians_ms, np.median(t.raw_ms, axis=0))


def test_default_statistic_per_runtime():
    """A low quantile for ONNX Runtime's unimodal timings, the median for XLA's bimodal one-thread programs."""
    assert rt.default_statistic("onnxruntime") == "q10" and rt.default_statistic("xla") == "median"
    assert rt.default_statistic("other") == "median"
    assert set(rt.DEFAULT_STATISTIC.values()) <= set(rt.STATISTICS)


def test_interleaved_bad_input():
    with pytest.raises(NasjaxInputError, match="statistic"):
        rt.time_interleaved([lambda: None], statistic="mean")
    with pytest.raises(NasjaxInputError, match="warm_calls"):
        rt.time_interleaved([lambda: None], warm_calls=-1)
    with pytest.raises(NasjaxInputError, match="repeats"):
        rt.time_interleaved([lambda: None], repeats=0)
    with pytest.raises(NasjaxInputError, match="warmup"):
        rt.time_interleaved([lambda: None], warmup=-1)
    with pytest.raises(NasjaxInputError, match="calls"):
        rt.time_interleaved([], repeats=1)


def test_unknown_runtime_lists_known():
    with pytest.raises(NasjaxInputError, match="xla, onnxruntime"):
        rt.get_runtime("tensorrt")
    with pytest.raises(NasjaxInputError, match="threads"):
        rt.get_runtime("onnxruntime", threads=-1)
    with pytest.raises(NasjaxInputError, match="threads"):
        rt.XlaRuntime.normal_threads(3 if rt.os.cpu_count() != 3 else 5)


def test_xla_thread_env():
    env = rt.xla_thread_env(1, {"XLA_FLAGS": "--xla_foo=1"})
    assert env["XLA_FLAGS"].split()[0] == "--xla_foo=1" and rt.xla_threads_of_env(env) == 1
    assert rt.xla_threads_of_env(rt.xla_thread_env(0, env)) == 0


_CHILD = """
import json, os, sys
from nasjax.hardware.runtimes import get_runtime
import jax.numpy as jnp
r = get_runtime("xla", int(sys.argv[1]))
import time
x = jnp.ones((384, 384))  # the backend starts after the runtime set the process up
(x @ x).block_until_ready()
c, w = time.process_time(), time.perf_counter()
for _ in range(20):
    (x @ x).block_until_ready()
out = sys.argv[-1].split("=", 1)[1]
json.dump({"cores": sorted(os.sched_getaffinity(0)), "recorded": r.provenance()["cpu_affinity"],
           "flags": os.environ.get("XLA_FLAGS", ""),
           "cpu_per_wall": (time.process_time() - c) / (time.perf_counter() - w)}, open(out, "w"))
"""


NO_AFFINITY = not hasattr(rt.os, "sched_setaffinity")


@pytest.mark.skipif(NO_AFFINITY, reason="no CPU affinity on this platform")
def test_one_thread_xla_process_runs_on_one_core():
    # The single-thread XLA_FLAGS alone leave XLA one Eigen thread per core; one thread is one core.
    cores = sorted(rt.os.sched_getaffinity(0))
    rc, d = rt.run_json_with_threads("xla", 1, ["-c", _CHILD, "1"], "out")
    assert rc == 0 and len(d["cores"]) == 1 and d["cores"][0] in cores and d["recorded"] == d["cores"]
    assert all(f in d["flags"].split() for f in rt.XLA_SINGLE_THREAD_FLAGS)
    assert d["cpu_per_wall"] < 1.1  # never more than the one core's time
    rc, d = rt.run_json_with_threads("xla", 0, ["-c", _CHILD, "0"], "out")
    assert rc == 0 and d["cores"] == cores and d["recorded"] == cores
    assert not any(f in d["flags"].split() for f in rt.XLA_SINGLE_THREAD_FLAGS)


@pytest.mark.skipif(NO_AFFINITY, reason="no CPU affinity on this platform")
def test_one_thread_xla_refused_once_jax_runs_on_several_cores(monkeypatch):
    import jax.numpy as jnp

    if len(rt.os.sched_getaffinity(0)) == 1:
        pytest.skip("this test process runs on one core")
    float(jnp.ones(2).sum())  # the backend is up in this process, on several cores
    monkeypatch.setenv("XLA_FLAGS", rt.xla_thread_env(1)["XLA_FLAGS"])  # the right flags are not enough
    with pytest.raises(NasjaxInputError, match="threads.*cores"):
        rt.XlaRuntime(threads=1)


_CACHE_CHILD = """
import json, sys
import jax, jax.numpy as jnp
from jax import monitoring
from nasjax.hardware import runtimes as rt
from nasjax.io import enable_jax_cache, fresh_compilation
enable_jax_cache(min_compile_secs=0.0)
events = []
monitoring.register_event_listener(lambda e, **kw: events.append(e))
x = jnp.arange(64.0).reshape(8, 8)
def hits(make):
    events.clear()
    make()
    return {"hits": events.count("/jax/compilation_cache/cache_hits"),
            "requests": events.count("/jax/compilation_cache/compile_requests_use_cache")}
out = {}
out["first"] = hits(lambda: jax.jit(lambda v: jnp.tanh(v @ v)).lower(x).compile())
out["again"] = hits(lambda: jax.jit(lambda v: jnp.tanh(v @ v)).lower(x).compile())
def fresh():
    with fresh_compilation():
        jax.jit(lambda v: jnp.tanh(v @ v)).lower(x).compile()
out["fresh"] = hits(fresh)
out["after"] = hits(lambda: jax.jit(lambda v: jnp.tanh(v @ v)).lower(x).compile())
piece = rt.Piece("tanh", lambda b, r: (8, 8), lambda: jax.jit(lambda v: jnp.tanh(v @ v)))
out["prepare"] = hits(lambda: rt.get_runtime("xla", 0).prepare(piece, 1, 1))
out["prepare_cached"] = hits(lambda: rt.XlaRuntime(0, persistent_cache=True).prepare(piece, 1, 1))
out["time_calls"] = hits(lambda: rt.time_calls([(jax.jit(lambda v: jnp.tanh(v @ v)), (x,))], warmup=1, repeats=1))
json.dump(out, open(sys.argv[-1].split("=", 1)[1], "w"))
"""


def test_timed_xla_programs_are_compiled_not_loaded_from_the_persistent_cache(tmp_path):
    # A cached CPU executable times differently from the compiled program (nasjax.io.fresh_compilation).
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "out.json"
    r = subprocess.run([sys.executable, "-c", _CACHE_CHILD, f"--out={out}"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(out.read_text())
    assert d["first"] == {"hits": 0, "requests": 1} and d["again"] == {"hits": 1, "requests": 1}  # the cache works
    assert d["fresh"] == {"hits": 0, "requests": 0}  # inside the block it is neither read nor written
    assert d["after"] == {"hits": 1, "requests": 1}  # and afterwards it is back
    assert d["prepare"]["requests"] == 0 and d["time_calls"]["requests"] == 0
    assert d["prepare_cached"] == {"hits": 1, "requests": 1}  # unless the runtime is asked to use the cache


def _tiny_piece():
    import jax
    import onnx
    from onnx import TensorProto, helper

    def model(b, r):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [b, 2, r, r])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [b, 2, r, r])
        g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny", [x], [y])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        onnx.checker.check_model(m)
        return m

    return rt.Piece("tiny relu", lambda b, r: (b, r, r, 2), lambda: jax.jit(jax.nn.relu), model)


@pytest.mark.parametrize("name", ["xla", "onnxruntime"])
def test_runtime_times_a_tiny_piece(name):
    r = rt.get_runtime(name, threads=0)
    call = r.prepare(_tiny_piece(), batch_size=2, resolution=4)
    t = rt.time_interleaved([call, call], warmup=1, repeats=3)
    assert np.all(np.isfinite(t.medians_ms)) and np.all(t.medians_ms > 0)
    p = r.provenance()
    for k in ("runtime", "threads", "cpu_model", "cpu_count", "date", "command", "numpy", "load_average"):
        assert k in p, k
    assert p["runtime"] == name
    assert (name in ("onnxruntime",) and "onnxruntime" in p) or (name == "xla" and "jax" in p)


def test_legacy_time_call():
    import jax.numpy as jnp

    from nasjax.hardware import latency as lat

    assert lat.time_call is rt.time_call and lat.time_calls is rt.time_calls
    assert rt.time_call(lambda x: x + 1, jnp.ones(3), warmup=1, repeats=2) > 0


def test_clocks():
    assert rt.resolve_clock("auto", 1) == "cpu" and rt.resolve_clock("auto", 0) == "wall"
    assert rt.resolve_clock("wall", 1) == "wall"
    with pytest.raises(NasjaxInputError, match="clock"):
        rt.resolve_clock("tsc", 1)
    import time

    t = rt.time_interleaved([lambda: time.sleep(0.01)], warmup=0, repeats=2, clock="cpu")
    assert t.medians_ms[0] < 5  # sleeping costs no CPU time
    assert rt.get_runtime("onnxruntime", threads=1).clock == "cpu"
