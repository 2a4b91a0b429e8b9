"""Orbax checkpoints of a training state, with an integrity digest and clear errors.

A checkpoint holds the leaves of one pytree (parameters, BatchNorm statistics, optimizer state, step),
saved in flattening order with ``orbax.checkpoint`` (``StandardSave``) and restored into the structure
of a freshly built state and a JSON item ``meta`` (step, data position, the
run's config, and a SHA-256 digest of every array leaf). Saving is synchronous and orbax finalises a
step directory atomically, so a kill during a save leaves the previous checkpoint intact. On restore the
digest is recomputed: a truncated or altered checkpoint raises :class:`NasjaxInputError` naming the
directory instead of silently training on damaged weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from nasjax.errors import NasjaxInputError


def tree_digest(tree: Any) -> str:
    """SHA-256 over the paths, dtypes, shapes and bytes of every leaf of ``tree``."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        a = np.asarray(leaf)
        h.update(jax.tree_util.keystr(path).encode())
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _ocp():
    import orbax.checkpoint as ocp

    return ocp


class CheckpointStore:
    """Directory of orbax checkpoints ``<dir>/<step>/{state,meta}`` (keeps the last ``max_to_keep``)."""

    def __init__(self, directory: str | Path, max_to_keep: int | None = 2):
        ocp = _ocp()
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        opts = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=False,
                                            create=True)
        self._mngr = ocp.CheckpointManager(self.directory, options=opts, item_names=("state", "meta"))

    def steps(self) -> list[int]:
        return sorted(int(s) for s in self._mngr.all_steps())

    def latest_step(self) -> int | None:
        s = self.steps()
        return s[-1] if s else None

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Save ``state`` (any pytree: its leaves, in flattening order) and the JSON ``meta``."""
        ocp = _ocp()
        leaves = jax.tree_util.tree_leaves(jax.device_get(state))
        state = {f"leaf_{i:05d}": np.asarray(x) for i, x in enumerate(leaves)}
        meta = dict(meta, step=int(step), digest=tree_digest(state), num_leaves=len(leaves))
        self._mngr.save(int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                            meta=ocp.args.JsonSave(meta)), force=True)
        self._mngr.wait_until_finished()

    def restore(self, like: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restore into the structure (and dtypes/shapes) of ``like``; verifies the digest."""
        ocp = _ocp()
        step = self.latest_step() if step is None else int(step)
        where = f"checkpoint {str(self.directory)!r}"
        if step is None:
            raise NasjaxInputError(f"{where}: no finished checkpoint step; expected a directory written by "
                                   "CheckpointStore.save")
        like_leaves, treedef = jax.tree_util.tree_flatten(like)
        abstract = {f"leaf_{i:05d}": jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype)
                    for i, x in enumerate(like_leaves)}
        meta0 = self.read_meta(step)
        if meta0.get("num_leaves") != len(like_leaves):
            raise NasjaxInputError(f"{where} step {step}: {meta0.get('num_leaves')} arrays, expected "
                                   f"{len(like_leaves)} for this model/optimizer configuration")
        try:
            out = self._mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                                     meta=ocp.args.JsonRestore()))
            state, meta = out["state"], out["meta"]
        except NasjaxInputError:
            raise
        except Exception as e:  # orbax/tensorstore/json raise many types on damaged files
            raise NasjaxInputError(f"{where} step {step}: unreadable or corrupted ({type(e).__name__}: "
                                   f"{str(e)[:300]}); expected an intact orbax checkpoint") from e
        if not isinstance(meta, dict) or "digest" not in meta:
            raise NasjaxInputError(f"{where} step {step}: meta item missing its digest; expected a checkpoint "
                                   "written by nasjax")
        state = {k: np.asarray(v) for k, v in state.items()}
        got = tree_digest(state)
        if got != meta["digest"]:
            raise NasjaxInputError(f"{where} step {step}: corrupted (array digest {got[:12]}... != saved "
                                   f"{meta['digest'][:12]}...); expected the arrays that were saved")
        return jax.tree_util.tree_unflatten(treedef, [state[f"leaf_{i:05d}"] for i in range(len(like_leaves))]), meta

    def read_meta(self, step: int | None = None) -> dict:
        """The JSON ``meta`` item of a step without restoring arrays."""
        step = self.latest_step() if step is None else int(step)
        if step is None:
            raise NasjaxInputError(f"checkpoint {str(self.directory)!r}: no finished checkpoint step")
        p = self.directory / str(step) / "meta" / "metadata"
        try:
            return json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise NasjaxInputError(f"checkpoint {str(self.directory)!r} step {step}: meta unreadable ({e})") from e

    def close(self) -> None:
        self._mngr.close()
