"""One-shot supernet training: the sandwich rule with in-place distillation (OFA / BigNAS / BINAS).

Each step draws one batch ``(x, y)`` and four subnets: the largest ``a_max``, the smallest ``a_min``
and ``num_random`` uniformly random ones ``a_1..a_R`` (drawn from a key derived from ``(seed, step)``).
The loss whose gradient updates the shared weights ``W`` is the sum over the four::

    L(W) = CE_s(f(x; W, a_max), y)
         + sum_{a in {a_min, a_1..a_R}} [ CE_s(f(x; W, a), y) + kd * CE(f(x; W, a), softmax(sg(f(x; W, a_max)))) ]

with ``CE_s`` the label-smoothed cross entropy (smoothing ``label_smoothing``), ``sg`` stop-gradient
(the largest subnet is the in-place teacher) and ``kd`` the distillation weight. BatchNorm runs in
training mode: each subnet's forward updates the running statistics in turn (largest first), as OFA's
sequential sandwich does; evaluation recalibrates them per subnet anyway.

Optimisation: optax SGD with Nesterov momentum or AdamW, learning rate ``warmup -> cosine`` to 0,
weight decay on weights of rank >= 2 only (not BN scales or biases), gradient-norm clipping.

Data parallelism: with a ``jax.sharding.Mesh`` (:func:`nasjax.train.mesh.device_mesh`) the global batch
is split along the mesh's axis and parameters, batch statistics and optimizer state are replicated; every
jitted program of the step has those input and output shardings, and XLA inserts the all-reduces (the
loss mean, the BatchNorm batch moments and the gradients are over the global batch, so BatchNorm is
synchronised). A mesh of one device, or none, runs the same code; on many devices the result equals the
single-device one to float32 reduction order (tested on 8 host devices). On several processes
(:func:`nasjax.train.mesh.initialize_distributed`) every process computes the same global batch and feeds
the shards of its own devices.

Reproducibility and resumption: everything random is a pure function of ``(seed, step)`` -- the
batch (``nasjax.data.batch_indices``), the subnets and dropout keys -- and the train state (params,
batch stats, optimizer state, step) is saved with orbax every ``checkpoint_every`` steps. A resumed
run therefore continues bit-for-bit as the uninterrupted one (tested). A checkpoint written with a
different model/optimizer/data configuration is refused with a clear error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from nasjax.data.datasets import ImageDataset, batch_indices
from nasjax.errors import NasjaxInputError, require
from nasjax.models.mobilenetv3 import (
    NUM_STAGES,
    ModelState,
    OFAMobileNetV3,
    SupernetConfig,
    apply,
    max_subnet,
    min_subnet,
    split_model,
)
from nasjax.train.checkpoint import CheckpointStore
from nasjax.train.mesh import barrier, mesh_size, replicate, replicated, shard_batch, split_leading


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`train_supernet` (all part of the checkpoint's identity)."""

    steps: int = 600
    batch_size: int = 64
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum) | "adamw"
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 3e-5
    warmup_steps: int = 20
    label_smoothing: float = 0.1
    kd_ratio: float = 1.0
    num_random: int = 2
    grad_clip: float = 5.0
    checkpoint_every: int = 100
    seed: int = 0
    sampling: str = "sandwich"  # "sandwich" | "multipath" (BINAS: one independent path per example)
    heaviest_steps: int = 0  # first steps train the largest subnet alone (BINAS trains it first)

    def __post_init__(self):
        require(isinstance(self.steps, int) and self.steps >= 1, "train.steps", self.steps, "a positive integer")
        require(isinstance(self.batch_size, int) and self.batch_size >= 1, "train.batch_size", self.batch_size,
                "a positive integer")
        require(self.optimizer in ("sgd", "adamw"), "train.optimizer", self.optimizer, "'sgd' or 'adamw'")
        require(np.isfinite(self.learning_rate) and self.learning_rate > 0, "train.learning_rate",
                self.learning_rate, "a positive number")
        require(isinstance(self.checkpoint_every, int) and self.checkpoint_every >= 1, "train.checkpoint_every",
                self.checkpoint_every, "a positive integer")
        require(isinstance(self.num_random, int) and self.num_random >= 0, "train.num_random", self.num_random,
                "an integer >= 0")
        require(self.sampling in ("sandwich", "multipath"), "train.sampling", self.sampling,
                "'sandwich' or 'multipath'")
        require(self.sampling == "sandwich" or self.num_random >= 1, "train.num_random", self.num_random,
                "at least 1 multipath student with sampling='multipath'")
        require(isinstance(self.heaviest_steps, int) and 0 <= self.heaviest_steps <= self.steps,
                "train.heaviest_steps", self.heaviest_steps, f"an integer in [0, steps={self.steps}]")
        require(0 <= self.warmup_steps < self.steps, "train.warmup_steps", self.warmup_steps,
                f"an integer in [0, steps={self.steps})")

    def to_dict(self) -> dict:
        return asdict(self)


def make_optimizer(tc: TrainConfig) -> optax.GradientTransformation:
    """Warmup + cosine learning rate; SGD-Nesterov or AdamW; decay on rank >= 2 weights only."""
    sched = optax.warmup_cosine_decay_schedule(0.0, tc.learning_rate, max(tc.warmup_steps, 1), tc.steps, 0.0) \
        if tc.warmup_steps > 0 else optax.cosine_decay_schedule(tc.learning_rate, tc.steps)
    decay_mask = lambda p: jax.tree_util.tree_map(lambda x: x.ndim >= 2, p)
    if tc.optimizer == "sgd":
        core = [optax.add_decayed_weights(tc.weight_decay, decay_mask),
                optax.sgd(sched, momentum=tc.momentum, nesterov=True)]
    else:
        core = [optax.adamw(sched, weight_decay=tc.weight_decay, mask=decay_mask)]
    return optax.chain(optax.clip_by_global_norm(tc.grad_clip), *core)


def _smoothed_ce(logits, labels, smoothing: float):
    n = logits.shape[-1]
    target = jax.nn.one_hot(labels, n) * (1.0 - smoothing) + smoothing / n
    return -jnp.mean(jnp.sum(target * jax.nn.log_softmax(logits), axis=-1))


def _soft_ce(logits, probs):
    return -jnp.mean(jnp.sum(probs * jax.nn.log_softmax(logits), axis=-1))


def sample_subnets(config: SupernetConfig, key: jax.Array, n: int) -> dict[str, jax.Array]:
    """``n`` uniformly random subnets (per-layer kernel/expand, per-stage depth) from a JAX key."""
    kk, ke, kd = jax.random.split(key, 3)
    L, S = config.num_layers, NUM_STAGES
    pick = lambda k, opts, shape: jnp.asarray(opts, jnp.int32)[jax.random.randint(k, shape, 0, len(opts))]
    out = {"ks": pick(kk, config.ks_list, (n, L)), "e": pick(ke, config.expand_list, (n, L)),
           "d": pick(kd, config.depth_list, (n, S))}
    if config.se_choice:  # a key of its own: the draws above are those of a supernet without elective SE
        out["se"] = pick(jax.random.fold_in(key, 3), (0, 1), (n, L))
    return out


def step_key(seed: int, step) -> jax.Array:
    return jax.random.fold_in(jax.random.key(seed), step)


def make_train_step(graphdef, config: SupernetConfig, tc: TrainConfig, opt: optax.GradientTransformation,
                    mesh: Mesh | None = None) -> Callable:
    """The training step ``(params, batch_stats, opt_state, x, y, step) -> (params, stats, opt_state, metrics)``.

    ``tc.sampling == "sandwich"``: the students are the smallest subnet and ``num_random`` random ones.
    ``"multipath"`` (BINAS): the students are ``num_random`` multipath draws, each an independent uniform
    path per example of the batch (subnet arrays ``[batch, L]``), distilled from the largest subnet.
    Steps ``< heaviest_steps`` train the largest subnet alone.

    One jit-compiled program computes the gradient of one subnet's loss; the step calls it for the
    largest subnet (``kd = 0``, its logits become the teacher) and then for each other subnet, sums the
    gradients and applies one optimizer update. Compiling one subnet's gradient instead of the four
    unrolled keeps the XLA compile time of the masked supernet manageable on a CPU.

    Args:
      graphdef, config: the supernet (``nasjax.models.split_model``) and its configuration.
      tc: the training configuration; opt: its optimizer (:func:`make_optimizer`).
      mesh: ``None`` (default device placement) or a one-axis mesh: ``x``, ``y`` (and the teacher's
        probabilities) are split along its axis, everything else is replicated. The step then expects
        ``params``, ``batch_stats`` and ``opt_state`` replicated on the mesh (:func:`nasjax.train.mesh.replicate`)
        and places ``x``, ``y`` itself (:func:`nasjax.train.mesh.shard_batch`).

    Returns:
      ``train_step(params, batch_stats, opt_state, x, y, step)``.
    """
    big = max_subnet(config)
    small = min_subnet(config)
    n_cls = config.num_classes
    if mesh is None:
        jit = lambda f, **_: jax.jit(f)
        rep = data = None
    else:
        jit = lambda f, **kw: jax.jit(f, **kw)
        rep, data = replicated(mesh), split_leading(mesh)

    def subnet_grad_fn(params, stats, sub, x, y, teacher, kd, key):
        def loss_fn(p):
            logits, st = apply(graphdef, p, stats, sub, x, train=True, dropout_key=key)
            loss = _smoothed_ce(logits, y, tc.label_smoothing) + kd * _soft_ce(logits, teacher)
            return loss, (st, logits)

        (loss, (st, logits)), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
        return g, st, jax.nn.softmax(logits), loss, jnp.mean(jnp.argmax(logits, -1) == y)

    subnet_grad = jit(subnet_grad_fn, in_shardings=(rep, rep, rep, data, data, data, rep, rep),
                      out_shardings=(rep, rep, data, rep, rep))
    multipath = tc.sampling == "multipath"
    n_kids = tc.num_random if multipath else 1 + tc.num_random

    def kids_and_keys_fn(step):
        kt, ks, kc = jax.random.split(step_key(tc.seed, step), 3)
        if multipath:
            paths = sample_subnets(config, ks, tc.num_random * tc.batch_size)
            kids = {k: v.reshape((tc.num_random, tc.batch_size) + v.shape[1:]) for k, v in paths.items()}
        else:
            rnd = sample_subnets(config, ks, tc.num_random)
            kids = {k: jnp.concatenate([small[k][None], rnd[k]], axis=0) for k in config.subnet_keys}
        return kids, kt, jax.random.split(kc, n_kids)

    kids_and_keys = jit(kids_and_keys_fn, in_shardings=rep, out_shardings=rep)

    def update_fn(params, opt_state, grads):
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    update = jit(update_fn, in_shardings=(rep, rep, rep), out_shardings=(rep, rep))
    add = jit(lambda a, b: jax.tree_util.tree_map(jnp.add, a, b), in_shardings=(rep, rep), out_shardings=rep)
    big, zero_kd, kd = replicate((big, jnp.zeros((), jnp.float32), jnp.asarray(tc.kd_ratio, jnp.float32)), mesh)
    no_teacher = {}

    def place(x, y):
        """The batch on the mesh, and the all-zero teacher of its size (the largest subnet has kd = 0)."""
        if mesh is None:
            x, y = jnp.asarray(x), jnp.asarray(y)
        else:
            x, y = shard_batch((np.asarray(x), np.asarray(y)), mesh, "train.batch_size")
        if x.shape[0] not in no_teacher:
            no_teacher[x.shape[0]] = shard_batch(np.zeros((x.shape[0], n_cls), np.float32), mesh) \
                if mesh is not None else jnp.zeros((x.shape[0], n_cls), jnp.float32)
        return x, y, no_teacher[x.shape[0]]

    def train_step(params, batch_stats, opt_state, x, y, step):
        x, y, zeros = place(x, y)
        kids, kt, keys = kids_and_keys(replicate(np.asarray(step, np.int32), mesh))
        g, stats, teacher, loss_t, acc_t = subnet_grad(params, batch_stats, big, x, y, zeros, zero_kd, kt)
        loss_small = None
        for i in range(n_kids if int(step) >= tc.heaviest_steps else 0):
            sub = {k: v[i] for k, v in kids.items()}
            gi, stats, _, li, _ = subnet_grad(params, stats, sub, x, y, teacher, kd, keys[i])
            g = add(g, gi)
            loss_small = li if loss_small is None else loss_small
        params, opt_state = update(params, opt_state, g)
        loss_small = loss_t if loss_small is None else loss_small
        return params, stats, opt_state, {"loss_largest": loss_t, "loss_smallest": loss_small, "acc_largest": acc_t}

    def compile_ahead(params, batch_stats, opt_state, x, y) -> None:
        """Compile every program of the step for these shapes without running a collective."""
        x, y, zeros = place(x, y)
        _, kt, _ = kids_and_keys(replicate(np.asarray(0, np.int32), mesh))
        subnet_grad.lower(params, batch_stats, big, x, y, zeros, zero_kd, kt).compile()
        update.lower(params, opt_state, params).compile()
        add.lower(params, params).compile()

    train_step.compile_ahead = compile_ahead
    return train_step


@dataclass
class TrainResult:
    state: ModelState
    config: SupernetConfig
    train_config: TrainConfig
    step: int
    history: list = field(default_factory=list)
    resumed_from: int | None = None
    seconds: float = 0.0


def init_state(config: SupernetConfig, seed: int) -> ModelState:
    return split_model(OFAMobileNetV3(config, rngs=nnx.Rngs(seed)))


def _identity(config: SupernetConfig, tc: TrainConfig, ds: ImageDataset) -> dict:
    tcd = tc.to_dict()
    tcd.pop("checkpoint_every")
    for k, default in (("sampling", "sandwich"), ("heaviest_steps", 0)):  # identity of older checkpoints kept
        if tcd[k] == default:
            tcd.pop(k)
    return {"supernet_config": config.to_dict(), "train_config": tcd, "dataset": ds.name,
            "image_shape": list(ds.image_shape), "train_size": len(ds.train)}


def train_supernet(config: SupernetConfig, dataset: ImageDataset, tc: TrainConfig, ckpt_dir: str | Path, *,
                   progress: bool = True, stop_after: int | None = None, log_every: int = 20,
                   mesh: Mesh | None = None) -> TrainResult:
    """Train (or resume training of) a supernet; checkpoints in ``ckpt_dir``.

    ``mesh``: data-parallel training over its devices (module docstring); ``tc.batch_size`` must be a
    multiple of its size. The device count is not part of the checkpoint's identity: a run checkpointed
    on 8 devices resumes on 1 and continues to float tolerance.

    Resumes from the latest checkpoint of ``ckpt_dir`` when there is one (its identity -- model,
    training and data configuration -- must match, else :class:`NasjaxInputError`). ``stop_after``
    ends the run after that global step, like a kill: only the checkpoints already due (every
    ``checkpoint_every`` steps) exist, and a resumed run redoes the steps after the last one.
    """
    require(dataset.image_shape[-1] == config.in_channels, "config.in_channels", config.in_channels,
            f"the dataset's channel count {dataset.image_shape[-1]}")
    require(dataset.num_classes == config.num_classes, "config.num_classes", config.num_classes,
            f"the dataset's class count {dataset.num_classes}")
    if mesh is not None:
        require(isinstance(mesh, Mesh), "mesh", type(mesh).__name__, "a jax.sharding.Mesh")
        require(tc.batch_size % mesh_size(mesh) == 0, "train.batch_size", tc.batch_size,
                f"a multiple of the {mesh_size(mesh)} devices of the mesh")
    t0 = time.perf_counter()
    ms = init_state(config, tc.seed)
    opt = make_optimizer(tc)
    params, stats = ms.params, ms.batch_stats
    opt_state = opt.init(params)
    ident = _identity(config, tc, dataset)
    store = CheckpointStore(ckpt_dir)
    start, resumed = 0, None
    if store.latest_step() is not None:
        meta = store.read_meta()
        if meta.get("identity") != ident:
            diff = sorted(k for k in set(ident) | set(meta.get("identity") or {})
                          if (meta.get("identity") or {}).get(k) != ident.get(k))
            raise NasjaxInputError(f"checkpoint {str(store.directory)!r}: written by a different run (differs in "
                                   f"{diff}); expected the same model, training and data configuration, or an "
                                   "empty directory")
        like = {"params": params, "batch_stats": stats, "opt_state": opt_state, "step": np.int64(0)}
        restored, meta = store.restore(like)
        params, stats, opt_state = restored["params"], restored["batch_stats"], restored["opt_state"]
        start = resumed = int(restored["step"])
        require(int(meta.get("data_position", -1)) == start * tc.batch_size, "checkpoint.data_position",
                meta.get("data_position"), f"{start * tc.batch_size} (step x batch size)")
    step_fn = make_train_step(ms.graphdef, config, tc, opt, mesh)
    end = tc.steps if stop_after is None else min(tc.steps, int(stop_after))
    history = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=tc.steps, initial=start, desc="supernet training", unit="step", dynamic_ncols=True)
    n = len(dataset.train)
    if mesh is None:
        params, stats, opt_state = jax.tree_util.tree_map(jnp.asarray, (params, stats, opt_state))
    else:
        params, stats, opt_state = replicate((params, stats, opt_state), mesh)
    if jax.process_count() > 1 and start < end:
        # every process compiles first, then all start together: the first cross-process collective
        # (gloo on CPU) waits only ~30 s for a late peer, less than one compilation on a loaded machine
        x, y = dataset.train.get(batch_indices(n, tc.batch_size, tc.seed, start))
        step_fn.compile_ahead(params, stats, opt_state, x, y)
        barrier("nasjax_train_compiled")
    try:
        for step in range(start, end):
            x, y = dataset.train.get(batch_indices(n, tc.batch_size, tc.seed, step))
            params, stats, opt_state, metrics = step_fn(params, stats, opt_state, x, y, jnp.asarray(step, jnp.int32))
            done = step + 1
            if done % log_every == 0 or done == end:
                m = {k: float(v) for k, v in metrics.items()}
                history.append({"step": done, **m})
                if bar is not None:
                    bar.set_postfix(loss=f"{m['loss_largest']:.3f}", acc=f"{m['acc_largest']:.2f}")
            if done % tc.checkpoint_every == 0 or done == tc.steps:
                store.save(done, {"params": params, "batch_stats": stats, "opt_state": opt_state,
                                  "step": np.int64(done)},
                           {"identity": ident, "data_position": done * tc.batch_size})
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        store.close()
    state = ModelState(ms.graphdef, params, stats)
    return TrainResult(state, config, tc, end, history, resumed, time.perf_counter() - t0)


def save_weights(state: ModelState, config: SupernetConfig, directory: str | Path, meta: dict) -> None:
    """Save only parameters and batch statistics (what evaluation needs) as one orbax checkpoint step."""
    store = CheckpointStore(directory, max_to_keep=1)
    try:
        store.save(0, {"params": state.params, "batch_stats": state.batch_stats},
                   dict(meta, supernet_config=config.to_dict(), kind="nasjax.supernet_weights/1"))
    finally:
        store.close()


def load_weights(directory: str | Path) -> tuple[ModelState, SupernetConfig, dict]:
    """Inverse of :func:`save_weights`: ``(ModelState, SupernetConfig, meta)``; damaged files -> clear error."""
    directory = Path(directory)
    require(directory.is_dir(), "supernet_dir", str(directory), "an existing directory written by save_weights")
    store = CheckpointStore(directory, max_to_keep=1, create=False)
    try:
        meta = store.read_meta()
        if meta.get("kind") != "nasjax.supernet_weights/1" or "supernet_config" not in meta:
            raise NasjaxInputError(f"supernet weights {str(directory)!r}: meta kind {meta.get('kind')!r}, "
                                   "expected 'nasjax.supernet_weights/1' (written by save_weights)")
        config = SupernetConfig.from_dict(meta["supernet_config"])
        ms = init_state(config, 0)
        like = {"params": ms.params, "batch_stats": ms.batch_stats}
        restored, meta = store.restore(like)
    finally:
        store.close()
    params = jax.tree_util.tree_map(jnp.asarray, restored["params"])
    stats = jax.tree_util.tree_map(jnp.asarray, restored["batch_stats"])
    return ModelState(ms.graphdef, params, stats), config, meta
