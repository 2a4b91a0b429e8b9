"""Sequence latency predictor (Mills et al., CIKM 2021): a bidirectional GRU over a network's block sequence.

Each block ``t`` of a network (:mod:`nasjax.predictors.sequence_data`) is the concatenation of an operation
embedding and a projection of its normalised input / output shapes::

    x_t = [ E[op_t] ; W_s s_t + b_s ]

A forward and a backward GRU run over the valid blocks (padding is masked: the state stays unchanged
there). With ``r = sigma(W_r x + U_r h)``, ``z = sigma(W_z x + U_z h)``,
``n = tanh(W_n x + r * (U_n h + b_n))`` the update is ``h' = (1 - z) n + z h``. The read-out ``g``:

* ``"last"`` -- the original's: both directions' outputs at the last valid step ``L``,
  ``g = [h^f_L ; h^b_L]``; the backward half has then seen only block ``L``;
* ``"ends"`` -- each direction's final state, ``g = [h^f_L ; h^b_1]`` (both have seen every block);
* ``"mean"`` -- the mean over valid steps of ``[h^f_t ; h^b_t]``;
* ``"sum"`` -- latency as a sum of per-block costs that depend on the block's context: each step's
  ``[h^f_t ; h^b_t]`` goes through the ReLU layer and head to ``O`` costs ``c_t = softplus(.)``, and
  ``S = (softplus(b_0) + sum_t c_t) / T`` with a learnt fixed cost ``b_0`` per output; the output is
  ``log S / sd_o``, so ``exp(mu_o) S`` is the latency in ms.

For the first three a ReLU layer and a linear head map ``g`` to ``O`` outputs (one per device setting, trained
jointly): the standardised log latency ``(log y_o - mu_o) / sd_o``. The loss is the mean squared error over the finite
targets; training is minibatch AdamW, keeping the parameters of the epoch with the lowest loss on a
held-out dev split (the untrained network, epoch 0, is a candidate). Predictions are ``exp(mu_o + sd_o f_o)`` in ms.

With a base (``SequenceConfig.base``) the network learns the residual over an additive block table instead.
Inside the fit, one depth-gated least-squares table per output (:func:`fit_layer_table`, the table of
:mod:`nasjax.predictors.additive_fit` with the resolution as a categorical term) is fitted to the training
split (not the dev split), and ``log y_o`` above is replaced by the residual ``log y_o - log B_o(a)``. The
training rows' residuals are out of fold (``base_folds`` tables, each fitted without the fold it gives
residuals for): in-sample residuals of a table with ~240 terms are shrunk towards zero where the rows are
few (on 430 rows the dev residuals were 1.7x the in-sample ones in sd), so the network would learn
a residual smaller than the one it meets on new subnets. The dev rows (epoch selection, ``dev_score``) use
the table fitted on the whole training split; once the epoch is chosen, the stored tables are refitted on
all rows, dev split included (the table, not the network, is what more rows improve most: 10 % fewer rows
cost the 480-subnet table of this machine 0.4 points of MAPE).

* ``"additive_log"`` -- the table fitted to log ms, ``log B_o(a) = T_o(a)`` (block costs and the resolution
  multiply);
* ``"additive_ms"`` -- the table fitted to ms, ``log B_o(a) = log max(T_o(a), 1e-3 ms)`` (block costs add up).

A base takes the read-outs ``last``, ``ends`` and ``mean`` (``sum`` is the table's own form).

Predictions are then ``B_o(a) exp(mu_o + sd_o f_o)``: the table times a learnt, context-dependent factor. The
output layer starts at zero, so the untrained network (epoch 0) predicts ``B_o(a) exp(mu_o)``, the table
itself up to the training residual's mean, and the dev split falls back to it when the GRU does not help.
The tables are part of the predictor (saved and loaded with it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from nasjax.errors import require
from nasjax.hardware.model_io import load_nnx, save_nnx
from nasjax.predictors.additive_fit import FittedAdditive, fit_additive
from nasjax.predictors.sequence_data import NUM_OPS, NUM_SHAPE, OFASequenceEncoder

READOUTS = ("last", "ends", "mean", "sum")
BASES = ("none", "additive_log", "additive_ms")
KIND = "nasjax.sequence_latency"
MS_FLOOR = 1e-3  # ms: the lowest latency an ms table's prediction is taken as (a table can extrapolate below 0)


@dataclass(frozen=True)
class SequenceConfig:
    """Model and training settings of the sequence predictor."""

    embed: int = 32
    shape_embed: int = 16
    hidden: int = 64
    readout: str = "mean"
    base: str = "none"
    base_folds: int = 5
    epochs: int = 40
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    dev_fraction: float = 0.1
    eval_every: int = 5
    seed: int = 0

    def __post_init__(self):
        require(self.readout in READOUTS, "readout", self.readout, f"one of {', '.join(READOUTS)}")
        require(self.base in BASES, "base", self.base, f"one of {', '.join(BASES)}")
        require(self.base == "none" or self.readout != "sum", "readout", self.readout,
                "not 'sum' with a base table (the table already is the sum of block costs)")
        for k in ("embed", "shape_embed", "hidden", "epochs", "batch_size", "eval_every", "base_folds"):
            v = getattr(self, k)
            require(isinstance(v, int) and v >= 1, k, v, "a positive integer")
        require(self.base_folds >= 2, "base_folds", self.base_folds, "an integer >= 2")
        require(0.0 < self.dev_fraction < 0.5, "dev_fraction", self.dev_fraction, "a fraction in (0, 0.5)")


class _GRU(nnx.Module):
    def __init__(self, d_in: int, hidden: int, *, rngs: nnx.Rngs):
        self.wx = nnx.Linear(d_in, 3 * hidden, rngs=rngs)
        self.wh = nnx.Linear(hidden, 3 * hidden, rngs=rngs)
        self.hidden = hidden

    def run(self, x: jax.Array, mask: jax.Array, reverse: bool) -> jax.Array:
        """Outputs ``[N, T, H]`` over ``x [N, T, D]``; masked steps keep the state (and output it)."""
        H = self.hidden
        gx = self.wx(x)  # [N, T, 3H]
        kh, bh = self.wh.kernel[...], self.wh.bias[...]

        def step(h, inp):
            g, m = inp
            gh = h @ kh + bh
            r = jax.nn.sigmoid(g[:, :H] + gh[:, :H])
            z = jax.nn.sigmoid(g[:, H:2 * H] + gh[:, H:2 * H])
            n = jnp.tanh(g[:, 2 * H:] + r * gh[:, 2 * H:])
            h2 = (1 - z) * n + z * h
            h2 = jnp.where(m[:, None], h2, h)
            return h2, h2

        h0 = jnp.zeros((x.shape[0], H), x.dtype)
        _, out = jax.lax.scan(step, h0, (jnp.swapaxes(gx, 0, 1), jnp.swapaxes(mask, 0, 1)), reverse=reverse)
        return jnp.swapaxes(out, 0, 1)


class BiGRURegressor(nnx.Module):
    """Operation embedding + shape projection, bidirectional GRU, read-out, ReLU layer, ``O`` outputs.

    Args:
      num_outputs: ``O``, the number of outputs (devices).
      config: the :class:`SequenceConfig` (embedding, shape embedding and hidden widths, read-out).
      num_ops: the operation vocabulary (0 = padding).
      num_shape: the width of a block's shape vector.
      rngs: the NNX random streams of the initialisation.
    """

    def __init__(self, num_outputs: int, config: SequenceConfig, num_ops: int = NUM_OPS,
                 num_shape: int = NUM_SHAPE, *, rngs: nnx.Rngs):
        c = config
        self.readout = c.readout
        self.embed = nnx.Embed(num_ops, c.embed, rngs=rngs)
        self.shape = nnx.Linear(num_shape, c.shape_embed, rngs=rngs)
        d = c.embed + c.shape_embed
        self.fwd = _GRU(d, c.hidden, rngs=rngs)
        self.bwd = _GRU(d, c.hidden, rngs=rngs)
        self.mid = nnx.Linear(2 * c.hidden, c.hidden, rngs=rngs)
        self.out = nnx.Linear(c.hidden, num_outputs, rngs=rngs)
        if c.base != "none":  # a residual model starts as its table (module docstring)
            self.out.kernel[...] = jnp.zeros_like(self.out.kernel[...])
        if c.readout == "sum":
            self.base = nnx.Param(jnp.zeros((num_outputs,), jnp.float32))

    def __call__(self, ops: jax.Array, shapes: jax.Array, mask: jax.Array) -> jax.Array:
        """``[N, O]``: standardised log latency, or for ``"sum"`` ``log S`` (module docstring)."""
        x = jnp.concatenate([self.embed(ops), self.shape(shapes)], -1)
        hf = self.fwd.run(x, mask, reverse=False)
        hb = self.bwd.run(x, mask, reverse=True)
        if self.readout == "sum":
            m = mask[..., None].astype(x.dtype)
            c = jax.nn.softplus(self.out(nnx.relu(self.mid(jnp.concatenate([hf, hb], -1)))))  # [N, T, O]
            total = jax.nn.softplus(self.base[...])[None, :] + jnp.sum(c * m, 1)
            return jnp.log(total / ops.shape[1])
        last = jnp.maximum(jnp.sum(mask, 1) - 1, 0)
        rows = jnp.arange(ops.shape[0])
        if self.readout == "last":
            g = jnp.concatenate([hf[rows, last], hb[rows, last]], -1)
        elif self.readout == "ends":
            g = jnp.concatenate([hf[rows, last], hb[:, 0]], -1)
        else:
            m = mask[..., None].astype(x.dtype)
            g = jnp.sum(jnp.concatenate([hf, hb], -1) * m, 1) / jnp.maximum(jnp.sum(m, 1), 1.0)
        return self.out(nnx.relu(self.mid(g)))


@dataclass
class SequenceLatencyPredictor:
    """A trained :class:`BiGRURegressor` with its encoder, output names, target scaling and base tables.

    ``predict_all(archs [N, 26]) -> [N, O]`` ms; :meth:`model_for` gives one output as a metric source
    (``metric``, ``unit``, ``device``, ``predict``) over ``mobilenetv3_layers`` archs at a fixed resolution.
    ``tables`` holds one fitted additive table per output when ``config.base`` is not ``"none"``.
    """

    model: BiGRURegressor
    config: SequenceConfig
    outputs: tuple[str, ...]
    mu: np.ndarray
    sd: np.ndarray
    encoder: OFASequenceEncoder
    info: dict
    tables: tuple[FittedAdditive, ...] = ()

    unit = "ms"
    metric = "latency"

    def predict_all(self, archs, batch: int = 1024) -> np.ndarray:
        """``[N, O]`` latency (ms) of ``[N, 26]`` architectures.

        L_o(a) = B_o(a) exp(mu_o + sd_o * f_o(a)), f the standardised output, B_o the base table (1 without
        one, module docstring); batches are padded to powers of two from 64 up to ``batch`` rows, so a few
        compiled shapes serve any ``N``.

        Args:
          archs: ``[N, 26]``: 25 ``mobilenetv3_layers`` choice indices and the resolution (pixels).
          batch: the largest batch of one call.

        Returns:
          float64 ``[N, O]`` latencies in ms, one column per output (device).

        Raises:
          NasjaxInputError: on another shape, invalid choice indices or a resolution outside 32..1024.
        """
        return np.exp(self.log_predict_all(archs, batch))

    def log_predict_all(self, archs, batch: int = 1024) -> np.ndarray:
        """``[N, O]`` log latency (log ms) of ``[N, 26]`` architectures: ``log`` of :meth:`predict_all`."""
        ops, shapes, mask = self.encoder.encode(archs)
        graphdef, params = nnx.split(self.model, nnx.Param)
        outs = []
        for s in range(0, len(ops), batch):
            n = min(batch, len(ops) - s)
            size = max(64, 1 << (n - 1).bit_length())
            part = [_pad_rows(x[s:s + n], size) for x in (ops, shapes, mask)]
            outs.append(np.asarray(_apply(graphdef, params, *part))[:n])
        f = np.concatenate(outs, 0).astype(np.float64) * _output_scale(self.config.readout, self.sd)[None, :]
        return _base_log(self.config.base, self.tables, archs) + self.mu[None, :] + self.sd[None, :] * f

    def model_for(self, output: str, resolution: int = 224) -> OutputModel:
        """One output as a metric source over ``mobilenetv3_layers`` architectures at a fixed resolution.

        Args:
          output: an output (device) name of the predictor.
          resolution: the input resolution (pixels) appended to every architecture.

        Returns:
          The :class:`OutputModel` (``metric``, ``unit``, ``device``, ``predict``).

        Raises:
          NasjaxInputError: when ``output`` is not an output of the predictor.
        """
        require(output in self.outputs, "output", output, f"one of {', '.join(self.outputs)}")
        return OutputModel(self, self.outputs.index(output), int(resolution))

    def save(self, path) -> None:
        """Write the predictor (npz of the weights, ``mu`` / ``sd``, the base tables, and a JSON header: config,
        outputs, encoder).

        Args:
          path: the model file to write.
        """
        header = {"config": asdict(self.config), "outputs": list(self.outputs), "unit": self.unit,
                  "encoder": {"supernet_config": self.encoder.config.to_dict()}, "info": self.info,
                  "target": "standardised log latency per output"}
        arrays = {"mu": self.mu, "sd": self.sd}
        for o, t in enumerate(self.tables):
            arrays.update(t.to_arrays(f"base{o}_"))
        save_nnx(path, self.model, kind=KIND, version=2, header=header, extra_arrays=arrays)

    @classmethod
    def load(cls, path) -> SequenceLatencyPredictor:
        """Read a predictor written by :meth:`save`.

        Args:
          path: the model file.

        Returns:
          The :class:`SequenceLatencyPredictor`.

        Raises:
          NasjaxInputError: when the file is missing, not of this kind and version, or its weights do not match the
            network its header describes.
          KeyError: when its header lacks ``outputs``, ``config``, ``encoder`` or ``info``.
        """
        from nasjax.models.mobilenetv3 import SupernetConfig

        def build(h):
            return BiGRURegressor(len(h["outputs"]), SequenceConfig(**h["config"]), rngs=nnx.Rngs(0))

        model, h, extra = load_nnx(path, build, kind=KIND, versions=(1, 2))
        sc = dict(h["encoder"]["supernet_config"])
        for k in ("ks_list", "expand_list", "depth_list"):
            sc[k] = tuple(sc[k])
        config = SequenceConfig(**h["config"])
        tables = () if config.base == "none" else tuple(
            FittedAdditive.from_arrays(extra, f"base{o}_") for o in range(len(h["outputs"])))
        return cls(model, config, tuple(h["outputs"]), np.asarray(extra["mu"], np.float64),
                   np.asarray(extra["sd"], np.float64), OFASequenceEncoder(SupernetConfig(**sc)), dict(h["info"]),
                   tables)


@dataclass(frozen=True)
class OutputModel:
    """One output of a :class:`SequenceLatencyPredictor` over ``[N, 25]`` layer-view archs at ``resolution``."""

    predictor: SequenceLatencyPredictor
    index: int
    resolution: int
    metric: str = "latency"
    unit: str = "ms"

    @property
    def device(self) -> str:
        """The output's name (the device or setting it predicts)."""
        return self.predictor.outputs[self.index]

    def predict(self, archs) -> np.ndarray:
        """Latency (ms) of ``[N, 25]`` layer-view architectures at the model's resolution on its output.

        Args:
          archs: ``mobilenetv3_layers`` choice indices ``[25]`` or ``[N, 25]``.

        Returns:
          float64 ``[N]`` latencies in ms.

        Raises:
          NasjaxInputError: on invalid choice indices.
        """
        a = np.atleast_2d(np.asarray(archs, np.int64))
        full = np.concatenate([a, np.full((len(a), 1), self.resolution)], 1)
        return self.predictor.predict_all(full)[:, self.index]


def fit_layer_table(archs, y) -> FittedAdditive:
    """The depth-gated least-squares additive table (:func:`nasjax.predictors.additive_fit.fit_additive`) of
    ``[N, 26]`` architectures: the 25 ``mobilenetv3_layers`` choices gated by their stage depths
    (:func:`nasjax.spaces.structure.structure_of`), the resolution a categorical term.

    Args:
      archs: ``[N, 26]`` layer-view choice indices and resolution.
      y: ``[N]`` finite values to fit (ms, or log ms).

    Returns:
      The :class:`~nasjax.predictors.additive_fit.FittedAdditive`; :func:`layer_table_predict` applies it.
    """
    from nasjax.spaces.mobilenetv3 import mobilenetv3_layers_space
    from nasjax.spaces.structure import structure_of

    a = np.atleast_2d(np.asarray(archs, np.int64))
    space = mobilenetv3_layers_space()
    st = structure_of(space)
    return fit_additive(a[:, :25], y, space.num_choices, gate_position=st.gate_position,
                        gate_min_choice=st.gate_min_choice, extra=a[:, 25:])


def layer_table_predict(table: FittedAdditive, archs) -> np.ndarray:
    """``[N]`` predictions of a :func:`fit_layer_table` table for ``[N, 26]`` architectures."""
    a = np.atleast_2d(np.asarray(archs, np.int64))
    return table.predict(a[:, :25], a[:, 25:])


def _fit_tables(base: str, archs, y, rows) -> tuple[FittedAdditive, ...]:
    """One :func:`fit_layer_table` per output of ``y [N, O]`` ms on ``rows`` (its finite entries), fitted to
    log ms or ms as ``base`` says; ``()`` for ``"none"``."""
    if base == "none":
        return ()
    out = []
    for o in range(y.shape[1]):
        r = rows[np.isfinite(y[rows, o])]
        require(len(r) >= 10, f"latency_ms[:, {o}]", len(r), ">= 10 finite training rows for a base table")
        out.append(fit_layer_table(archs[r], np.log(y[r, o]) if base == "additive_log" else y[r, o]))
    return tuple(out)


def _base_log(base: str, tables, archs) -> np.ndarray:
    """``[N, O]`` ``log B_o(a)`` of the base tables (module docstring); ``[N, 1]`` zeros without a base."""
    if base == "none":
        return np.zeros((len(np.atleast_2d(archs)), 1))
    t = np.stack([layer_table_predict(tab, archs) for tab in tables], 1)
    return t if base == "additive_log" else np.log(np.maximum(t, MS_FLOOR))


def _output_scale(readout: str, sd: np.ndarray) -> np.ndarray:
    """``[O]`` factor taking the network's output to the standardised log latency (``1 / sd`` for ``"sum"``)."""
    return (1.0 / sd if readout == "sum" else np.ones_like(sd)).astype(np.float32)


def _pad_rows(x: np.ndarray, size: int) -> np.ndarray:
    return np.concatenate([x, np.zeros((size - len(x),) + x.shape[1:], x.dtype)])


@jax.jit
def _apply_jit(graphdef, params, ops, shapes, mask):
    return nnx.merge(graphdef, params)(ops, shapes, mask)


def _apply(graphdef, params, ops, shapes, mask):
    return _apply_jit(graphdef, params, jnp.asarray(ops), jnp.asarray(shapes), jnp.asarray(mask))


def fit_sequence_predictor(archs, latency_ms, outputs, config: SequenceConfig = SequenceConfig(),
                           encoder: OFASequenceEncoder | None = None) -> SequenceLatencyPredictor:
    """Train the predictor on ``archs [N, 26]`` and ``latency_ms [N, O]`` (NaN = not measured).

    Args:
      archs: layer-view choice indices and resolution of each training subnet.
      latency_ms: measured latency of each subnet on each of the ``O`` outputs (ms, > 0 or NaN).
      outputs: the ``O`` output names (device settings).
      config: model and training settings; ``dev_fraction`` of the rows is held out to select the epoch (and
        is not used by the base tables or the target scaling).
      encoder: the block-sequence encoder (default: OFA MobileNetV3 at width 1.0).

    Returns:
      The trained :class:`SequenceLatencyPredictor`. ``info`` has the dev loss curve (in the network's
      standardised target), the chosen epoch, and ``dev_score``: the dev split's mean squared error of log
      latency with each output scaled by its training log-latency sd -- comparable across read-outs and
      bases (with no base it is the dev loss) -- and ``dev_score_per_output``, the same per output.
    """
    enc = encoder or OFASequenceEncoder()
    y = np.asarray(latency_ms, np.float64)
    y = y[:, None] if y.ndim == 1 else y
    outputs = tuple(outputs)
    require(y.shape[1] == len(outputs), "latency_ms", y.shape, f"(N, {len(outputs)}) one column per output")
    fin = np.isfinite(y)
    require(bool(np.all(y[fin] > 0)), "latency_ms", float(y[fin].min()), "positive latencies")
    ops, shapes, mask = enc.encode(archs)
    require(len(ops) == len(y) and len(y) >= 10, "archs/latency_ms", (len(ops), len(y)), "the same number >= 10")
    logy = np.where(fin, np.log(np.where(fin, y, 1.0)), np.nan)
    rng = np.random.default_rng(config.seed)
    perm = rng.permutation(len(y))
    n_dev = max(1, int(round(config.dev_fraction * len(y))))
    dev, tr = perm[:n_dev], perm[n_dev:]
    a_all = np.asarray(archs)
    tables = _fit_tables(config.base, a_all, y, tr)
    base_log = _base_log(config.base, tables, a_all)
    if tables:  # the training rows' residuals are out of fold: each row's table did not see it
        fold = np.arange(len(tr)) % config.base_folds
        for k in range(config.base_folds):
            rows = tr[fold == k]
            base_log[rows] = _base_log(config.base, _fit_tables(config.base, a_all, y, tr[fold != k]), a_all[rows])
    r = logy - base_log  # the network's target: log latency over the base
    mu = np.nanmean(r[tr], 0)
    sd = np.maximum(np.nanstd(r[tr], 0), 1e-6)
    t = np.where(fin, (r - mu) / sd, 0.0).astype(np.float32)
    w = fin.astype(np.float32)
    model = BiGRURegressor(len(outputs), config, rngs=nnx.Rngs(config.seed))
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adamw(optax.cosine_decay_schedule(config.lr, config.epochs * max(1, len(tr) // config.batch_size)),
                     weight_decay=config.weight_decay)
    opt = tx.init(params)

    scale = jnp.asarray(_output_scale(config.readout, sd))

    def loss_fn(p, o, s, m, tt, ww):
        f = nnx.merge(graphdef, p)(o, s, m) * scale
        return jnp.sum(ww * (f - tt) ** 2) / jnp.maximum(jnp.sum(ww), 1.0)

    @jax.jit
    def step(p, st, o, s, m, tt, ww):
        loss, g = jax.value_and_grad(loss_fn)(p, o, s, m, tt, ww)
        upd, st = tx.update(g, st, p)
        return optax.apply_updates(p, upd), st, loss

    dev_loss = jax.jit(loss_fn)
    arrays = [jnp.asarray(a) for a in (ops, shapes, mask, t, w)]
    dev_arrays = [a[dev] for a in arrays]
    B = config.batch_size
    best, best_params, curve = np.inf, params, []
    for epoch in range(config.epochs + 1):
        if epoch:
            order = tr[rng.permutation(len(tr))]
            for s in range(0, len(order) - B + 1, B):
                idx = order[s:s + B]
                params, opt, _ = step(params, opt, *[a[idx] for a in arrays])
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            d = float(dev_loss(params, *dev_arrays))
            curve.append([epoch, d])
            if d < best:
                best, best_params, best_epoch = d, params, epoch
    nnx.update(model, best_params)
    info = {"train_rows": int(len(tr)), "dev_rows": int(len(dev)), "best_epoch": int(best_epoch),
            "dev_loss": float(best), "dev_curve": curve}
    pred = SequenceLatencyPredictor(model, config, outputs, mu, sd, enc, info, tables)
    sd_y = np.maximum(np.nanstd(logy[tr], 0), 1e-6)
    err = np.where(fin[dev], (pred.log_predict_all(np.asarray(archs)[dev]) - logy[dev]) / sd_y, 0.0)
    info["dev_score"] = float(np.sum(err ** 2) / max(1, int(fin[dev].sum())))
    info["dev_score_per_output"] = [float(x) for x in np.sum(err ** 2, 0) / np.maximum(1, fin[dev].sum(0))]
    if tables:  # selection done: the stored tables are refitted on every row (module docstring)
        pred.tables = _fit_tables(config.base, a_all, y, perm)
    return pred
