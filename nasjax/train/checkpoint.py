"""Orbax checkpoints of a training state, with an integrity digest and clear errors.

A checkpoint holds the leaves of one pytree (parameters, BatchNorm statistics, optimizer state, step),
saved in flattening order with ``orbax.checkpoint`` (``StandardSave``) and restored into the structure
of a freshly built state and a JSON item ``meta`` (step, data position, the
run's config, and a SHA-256 digest of every array leaf). Saving is synchronous and orbax finalises a
step directory atomically, so a kill during a save leaves the previous checkpoint intact. On restore the
digest is recomputed: a truncated or altered checkpoint raises :class:`NasjaxInputError` naming the
directory instead of silently training on damaged weights.

After orbax has finalised a step, :meth:`CheckpointStore.save` writes ``<step>/nasjax_files.json``: the
SHA-256 of every file orbax wrote under ``state/`` and ``meta/``. What a restore checks, in order: the step
exists; ``meta`` is a UTF-8 JSON object with a SHA-256 ``digest``, the leaf count and each leaf's dtype and
shape, which must equal those of the state to restore into (a mismatch names the leaf's path); every file
of the manifest exists with its digest (a missing, truncated or altered file is named before orbax reads
anything); orbax reads the arrays (any failure is reported with the step); the restored arrays have the
expected dtypes and shapes; their digest equals the saved one. A step whose manifest is absent although
its meta announces one (or without meta) is incomplete, for instance interrupted between orbax's
finalisation and the manifest: the latest step is then the latest complete one (training is a function of
the step, so resuming there gives the same result).
Checkpoints written without a manifest or leaf specs skip those two checks.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np

from nasjax.errors import NasjaxInputError, shown
from nasjax.io import read_json, write_json


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


_DIGEST_CHARS = frozenset("0123456789abcdef")
FILE_MANIFEST = "nasjax_files.json"
_MANIFEST_FORMAT = "nasjax.checkpoint_files/1"


def _file_digests(step_dir: Path) -> dict[str, str]:
    """SHA-256 of every file under ``step_dir``'s ``state/`` and ``meta/`` (relative POSIX path -> hex)."""
    out = {}
    for item in ("state", "meta"):
        for p in sorted((step_dir / item).rglob("*")):
            if p.is_file():
                out[p.relative_to(step_dir).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _leaf_spec(x) -> list:
    a = np.asarray(x)
    return [str(a.dtype), [int(d) for d in a.shape]]


class CheckpointStore:
    """Directory of orbax checkpoints ``<dir>/<step>/{state,meta}`` (keeps the last ``max_to_keep``).

    ``create=False`` opens an existing directory only (a missing one is an error, nothing is created).
    """

    def __init__(self, directory: str | Path, max_to_keep: int | None = 2, create: bool = True):
        ocp = _ocp()
        self.directory = Path(directory).resolve()
        if create:
            self.directory.mkdir(parents=True, exist_ok=True)
        elif not self.directory.is_dir():
            raise NasjaxInputError(f"checkpoint {str(self.directory)!r}: no such directory; expected a directory "
                                   "written by CheckpointStore.save")
        opts = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=False,
                                            create=create)
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
        meta = dict(meta, step=int(step), digest=tree_digest(state), num_leaves=len(leaves),
                    leaves=[_leaf_spec(x) for x in state.values()], files=FILE_MANIFEST)
        self._mngr.save(int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                            meta=ocp.args.JsonSave(meta)), force=True)
        self._mngr.wait_until_finished()
        step_dir = self.directory / str(int(step))
        write_json(step_dir / FILE_MANIFEST, {"format": _MANIFEST_FORMAT, "sha256": _file_digests(step_dir)})

    def _complete(self, step: int) -> bool:
        """False for a step without meta, or whose meta announces a file manifest that is absent."""
        p = self.directory / str(step) / "meta" / "metadata"
        if not p.exists():
            return False
        try:
            meta = read_json(p, "meta")
        except NasjaxInputError:
            return True  # damaged, not interrupted: restoring it reports the damage
        return not (isinstance(meta, dict) and meta.get("files") == FILE_MANIFEST
                    and not (self.directory / str(step) / FILE_MANIFEST).exists())

    def _check_files(self, step: int, meta: dict, where: str) -> None:
        if meta.get("files") is None:
            return
        step_dir = self.directory / str(step)
        if meta["files"] != FILE_MANIFEST:
            raise NasjaxInputError(f"{where}: meta files {shown(meta['files'], 60)}, expected {FILE_MANIFEST!r}")
        man = read_json(step_dir / FILE_MANIFEST, f"{where} file manifest")
        sums = man.get("sha256") if isinstance(man, dict) and man.get("format") == _MANIFEST_FORMAT else None
        if not isinstance(sums, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in sums.items()):
            raise NasjaxInputError(f"{where}: {FILE_MANIFEST} is malformed; expected {{'format': "
                                   f"{_MANIFEST_FORMAT!r}, 'sha256': {{path: hex digest}}}}")
        for rel, digest in sums.items():
            p = step_dir / rel
            if ".." in Path(rel).parts or not p.is_file():
                raise NasjaxInputError(f"{where}: file {rel!r} is missing; expected every file the save wrote")
            if hashlib.sha256(p.read_bytes()).hexdigest() != digest:
                raise NasjaxInputError(f"{where}: file {rel!r} is corrupted (its SHA-256 differs from the saved "
                                       "one: truncated or altered)")

    def _step(self, step: int | None) -> int:
        steps = self.steps()
        where = f"checkpoint {str(self.directory)!r}"
        if step is None:
            complete = [s for s in steps if self._complete(s)]
            if not complete:
                more = (f" (steps {steps} are incomplete: no meta or no {FILE_MANIFEST}, an interrupted save or "
                        "deleted files)") if steps else ""
                raise NasjaxInputError(f"{where}: no finished checkpoint step{more}; expected a directory written "
                                       "by CheckpointStore.save")
            if complete[-1] != steps[-1]:
                logging.warning("checkpoint %s: steps %s are incomplete (no meta or no %s); using step %d",
                                self.directory, [s for s in steps if s > complete[-1]], FILE_MANIFEST, complete[-1])
            return complete[-1]
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or int(step) not in steps:
            raise NasjaxInputError(f"{where}: step {step!r}, expected one of the steps on disk {steps}")
        return int(step)

    def restore(self, like: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restore into the structure (and dtypes/shapes) of ``like``; verifies the digest.

        Args:
          like: a pytree with the structure, dtypes and shapes of the saved state (a freshly built state).
          step: the step to restore; the latest by default.

        Returns:
          ``(state, meta)``: ``like``'s structure holding the saved arrays, and the saved JSON meta.
        """
        ocp = _ocp()
        step = self._step(step)
        where = f"checkpoint {str(self.directory)!r} step {step}"
        others = [s for s in self.steps() if s != step]
        hint = f" (other steps on disk: {others})" if others else ""
        with_paths, treedef = jax.tree_util.tree_flatten_with_path(like)
        paths = [jax.tree_util.keystr(p) for p, _ in with_paths]
        like_leaves = [x for _, x in with_paths]
        expected = [_leaf_spec(x) for x in like_leaves]
        abstract = {f"leaf_{i:05d}": jax.ShapeDtypeStruct(tuple(sh), np.dtype(dt))
                    for i, (dt, sh) in enumerate(expected)}
        meta0 = self.read_meta(step)
        if meta0.get("num_leaves") != len(like_leaves):
            raise NasjaxInputError(f"{where}: {meta0.get('num_leaves')} arrays, expected "
                                   f"{len(like_leaves)} for this model/optimizer configuration")
        saved = meta0.get("leaves")
        if saved is not None:
            if not isinstance(saved, list) or len(saved) != len(expected):
                raise NasjaxInputError(f"{where}: meta 'leaves' is malformed; expected one [dtype, shape] per array")
            for i, (got, want) in enumerate(zip(saved, expected)):
                if got != want:
                    raise NasjaxInputError(f"{where}: array {i} {paths[i]} was saved as {shown(got, 60)}, expected "
                                           f"{want} [dtype, shape] for this model/optimizer configuration")
        self._check_files(step, meta0, where)
        try:
            state = self._mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))["state"]
        except NasjaxInputError:
            raise
        except Exception as e:  # orbax/tensorstore/json raise many types on damaged files
            raise NasjaxInputError(f"{where}: unreadable or corrupted ({type(e).__name__}: "
                                   f"{str(e)[:300]}); expected an intact orbax checkpoint{hint}") from e
        if not isinstance(state, dict) or sorted(state) != sorted(abstract):
            held = sorted(state) if isinstance(state, dict) else state
            raise NasjaxInputError(f"{where}: state item holds {shown(held, 80)}, expected arrays "
                                   f"leaf_00000..leaf_{len(abstract) - 1:05d}")
        state = {k: np.asarray(v) for k, v in state.items()}
        for i, want in enumerate(expected):
            got = _leaf_spec(state[f"leaf_{i:05d}"])
            if got != want:
                raise NasjaxInputError(f"{where}: array {i} {paths[i]} restored as {got}, expected {want} "
                                       "[dtype, shape] for this model/optimizer configuration")
        got = tree_digest(state)
        if got != meta0["digest"]:
            raise NasjaxInputError(f"{where}: corrupted (array digest {got[:12]}... != saved "
                                   f"{meta0['digest'][:12]}...); expected the arrays that were saved{hint}")
        return jax.tree_util.tree_unflatten(treedef, [state[f"leaf_{i:05d}"] for i in range(len(like_leaves))]), meta0

    def read_meta(self, step: int | None = None) -> dict:
        """The JSON ``meta`` item of a step without restoring arrays (checked: an object with a digest)."""
        step = self._step(step)
        where = f"checkpoint {str(self.directory)!r} step {step}"
        p = self.directory / str(step) / "meta" / "metadata"
        try:
            meta = read_json(p, f"{where} meta")
        except NasjaxInputError as e:
            raise NasjaxInputError(f"{e} (meta unreadable)") from None
        if not isinstance(meta, dict):
            raise NasjaxInputError(f"{where}: meta is a {type(meta).__name__}, expected a JSON object written by "
                                   "CheckpointStore.save")
        digest, n = meta.get("digest"), meta.get("num_leaves")
        if not (isinstance(digest, str) and len(digest) == 64 and set(digest) <= _DIGEST_CHARS):
            raise NasjaxInputError(f"{where}: meta digest {shown(digest, 80)}, expected a SHA-256 hex digest "
                                   "(a checkpoint written by nasjax)")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise NasjaxInputError(f"{where}: meta num_leaves {shown(n, 40)}, expected an integer >= 0")
        if meta.get("step", step) != step:
            raise NasjaxInputError(f"{where}: meta step {shown(meta.get('step'), 40)}, expected {step} (its directory)")
        return meta

    def close(self) -> None:
        self._mngr.close()
