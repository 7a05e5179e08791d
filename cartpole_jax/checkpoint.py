"""Checkpoints of a whole batched RunState under RUN_DIR/checkpoints/, with orbax.

Each checkpoint is a directory `checkpoints/<chunks_done>/` holding two orbax items: `state` (every
leaf of the RunState as a plain array; PRNG keys as their raw key data) and `meta` (JSON: format,
package version, config, preset, seeds, grid and a SHA-256 of the state's bytes). orbax writes into
`<step>.orbax-checkpoint-tmp` and renames it when complete, so a crash mid-save never leaves a
directory that looks like a checkpoint. Restoring never unpickles: the target structure comes from
`jax.eval_shape` of the config's init, and every leaf's shape, dtype and bytes are checked.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .config import Config
from .core.train import state_shapes
from .errors import CheckpointError
from .program import to_host as gather

FORMAT = "cartpole-jax-checkpoint"
FORMAT_VERSION = 2  # 2: transitions carry `ended` (n-step returns), configs `n_step`
DIRNAME = "checkpoints"
COMMIT_FILE = "commit_success.txt"

# orbax logs every save and restore through absl, and ERRORs for damage it then works around (a bad
# _CHECKPOINT_METADATA); every failure that matters reaches us as an exception, reported in one line.
logging.getLogger("absl").setLevel(logging.CRITICAL)


def _quiet_closed_loop(hook):
    """sys.unraisablehook minus tensorstore's callbacks into the event loop of a read orbax abandoned on an error.

    After a damaged checkpoint fails to restore, each still-pending read calls back into a closed asyncio
    loop, and Python prints every such RuntimeError as a traceback; nothing is lost by dropping them.
    """

    def unraisable(info):
        if not (isinstance(info.exc_value, RuntimeError) and str(info.exc_value) == "Event loop is closed"):
            hook(info)

    return unraisable


sys.unraisablehook = _quiet_closed_loop(sys.unraisablehook)


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _name(entry) -> str:
    for attr in ("name", "key", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def _flatten(tree) -> tuple[list[tuple[str, ...]], list[Any], Any]:
    """(leaf paths as name tuples, leaves, treedef)."""
    pairs, treedef = jax.tree_util.tree_flatten_with_path(tree)
    return [tuple(_name(e) for e in path) for path, _ in pairs], [leaf for _, leaf in pairs], treedef


def _nest(paths, leaves) -> dict:
    """A nested dict orbax can save, one level per path entry."""
    out: dict = {}
    for path, leaf in zip(paths, leaves, strict=True):
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = leaf
    return out


def _get(nested: dict, path: tuple[str, ...]):
    for part in path:
        nested = nested[part]
    return nested


def to_host(state, num_runs: int) -> tuple[list[tuple[str, ...]], list[np.ndarray]]:
    """(leaf paths, leaves of the first num_runs runs as fresh numpy copies): the next chunk donates `state`."""
    paths, leaves, _ = _flatten(state)
    leaves = gather([jax.random.key_data(x) if _is_key(x) else x for x in leaves])
    return paths, [np.array(x[:num_runs]) for x in leaves]


def digest(leaves: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for leaf in leaves:
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()


def directory(run_dir: str | Path) -> Path:
    return Path(run_dir) / DIRNAME


def _manager(run_dir: str | Path, keep: int | None = None, read_only: bool = False):
    import orbax.checkpoint as ocp

    alone = {}
    if jax.process_count() > 1:
        # Only process 0 saves (host copies every process holds), and each process restores for itself: a
        # manager of this process alone, so orbax neither waits for the others nor lets them create files.
        me = jax.process_index()
        alone = {"multiprocessing_options": ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})}
        if not read_only:
            directory(run_dir).mkdir(exist_ok=True)  # orbax creates no root directory for a subset of processes
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, enable_async_checkpointing=False, create=not read_only and not alone, read_only=read_only, **alone,
    )
    handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(directory(run_dir).absolute(), options=options, item_handlers=handlers)


def make_meta(cfg: Config, preset: str, seeds, grid, devices=None, batching: str = "auto") -> dict:
    """What a checkpoint records besides the state: enough to rebuild the run."""
    from . import __version__

    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "version": __version__, "preset": preset,
        "config": cfg.to_dict(), "seeds": [int(s) for s in seeds], "grid": [dict(g) for g in grid], "devices": devices,
        "batching": batching,
    }


def save(run_dir: str | Path, host: tuple, chunks_done: int, meta: dict, keep: int) -> Path:
    """Write checkpoint `chunks_done` of `to_host`'s output, keeping the `keep` most recent."""
    import orbax.checkpoint as ocp

    paths, leaves = host
    meta = {**meta, "chunks_done": int(chunks_done), "sha256": digest(leaves)}
    items = ocp.args.Composite(state=ocp.args.StandardSave(_nest(paths, leaves)), meta=ocp.args.JsonSave(meta))
    try:
        with _manager(run_dir, keep) as manager:
            manager.save(int(chunks_done), args=items, force=True)
    except BaseException:
        _remove_unfinished(run_dir, int(chunks_done))  # e.g. a full disk: no half-written temp directory stays
        raise
    return directory(run_dir) / str(int(chunks_done))


def _remove_unfinished(run_dir: str | Path, step: int) -> None:
    for tmp in directory(run_dir).glob(f"{step}.orbax-checkpoint-tmp*"):
        shutil.rmtree(tmp, ignore_errors=True)


class BackgroundSaver:
    """Writes checkpoints on one thread while the next chunk trains; at most one write in flight.

    `submit` takes `to_host`'s fresh copies, so the chunk that follows may reuse the device buffers.
    A write's error is raised by the next `submit`, by `wait`, or on leaving the `with` block, which
    waits for the last write. In a multi-process job only process 0 submits (see `_manager`).
    """

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(1, thread_name_prefix="checkpoint")
        self._pending = None

    def submit(self, run_dir: str | Path, host: tuple, chunks_done: int, meta: dict, keep: int) -> None:
        self.wait()
        self._pending = self._pool.submit(save, run_dir, host, chunks_done, meta, keep)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> BackgroundSaver:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown()


def steps(run_dir: str | Path) -> list[int]:
    """The complete checkpoints' chunk counts, oldest first (unfinished temp directories excluded)."""
    if not directory(run_dir).is_dir():
        return []
    return sorted(p for p in (_step(d) for d in directory(run_dir).iterdir() if d.is_dir()) if p is not None)


def _step(path: Path) -> int | None:
    return int(path.name) if path.name.isdigit() else None


def restore(run_dir: str | Path, cfg: Config, step: int | None = None) -> tuple[Any, int, dict]:
    """(batched RunState on the host, PRNG keys typed again; chunks_done; meta) of the latest (or given) checkpoint.

    Refuses with a one-line CheckpointError anything that is not a complete, intact checkpoint of a
    run with config `cfg`; reads only, so a refusal leaves the run directory as it was.
    """
    available = steps(run_dir)
    if not available:
        raise CheckpointError(f"{run_dir}: no checkpoints in {directory(run_dir)} (nothing to resume)")
    step = available[-1] if step is None else step
    where = directory(run_dir) / str(step)
    meta = _read_meta(run_dir, step, where)
    shapes = state_shapes(cfg, len(meta["seeds"]))
    paths, targets, treedef = _flatten(shapes)
    stored = _stored_shapes(run_dir, step, where)
    for path, target in zip(paths, targets, strict=True):
        _check_leaf(where, path, target, stored)
    if meta.get("config") != cfg.to_dict():
        changed = sorted(k for k, v in cfg.to_dict().items() if meta.get("config", {}).get(k) != v)
        raise CheckpointError(f"{where}: checkpoint was made with a different config ({', '.join(changed)} differ from config.json)")
    leaves = _read_state(run_dir, step, where, paths, targets)
    if digest(leaves) != meta.get("sha256"):
        raise CheckpointError(f"{where}: checkpoint is corrupt (its arrays do not match the checksum it was saved with)")
    leaves = [jax.random.wrap_key_data(x) if _is_key(t) else x for x, t in zip(leaves, targets, strict=True)]
    return jax.tree_util.tree_unflatten(treedef, leaves), int(meta["chunks_done"]), meta


def latest_meta(run_dir: str | Path) -> dict | None:
    """The metadata (config, seeds, grid, batching, chunks_done) of the latest checkpoint, without its arrays;
    None if there is none. A damaged one is a one-line CheckpointError, as `restore` would give."""
    available = steps(run_dir)
    if not available:
        return None
    return _read_meta(run_dir, available[-1], directory(run_dir) / str(available[-1]))


def _read_meta(run_dir, step: int, where: Path) -> dict:
    import orbax.checkpoint as ocp

    if not (where / COMMIT_FILE).is_file():  # orbax writes it last, just before the atomic rename
        raise CheckpointError(f"{where}: not a complete cartpole-jax checkpoint (no {COMMIT_FILE})")
    try:
        with _manager(run_dir, read_only=True) as manager:
            meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    except Exception as err:  # orbax/tensorstore raise many types for a damaged directory
        raise CheckpointError(f"{where}: not a readable cartpole-jax checkpoint ({_why(err)})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{where}: not a cartpole-jax checkpoint")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{where}: checkpoint format {version!r} is newer than this cartpole-jax "
            f"({meta.get('version')} wrote it; this reads format {FORMAT_VERSION}); upgrade cartpole-jax to resume it"
        )
    if version < FORMAT_VERSION:
        raise CheckpointError(
            f"{where}: checkpoint format {version} comes from an older cartpole-jax ({meta.get('version')}; this "
            f"reads format {FORMAT_VERSION}, whose replay buffer and config hold more); resume it with the version that wrote it"
        )
    if not all(k in meta for k in ("config", "seeds", "grid", "chunks_done", "sha256")) or meta["chunks_done"] != step:
        raise CheckpointError(f"{where}: checkpoint metadata is incomplete")
    return meta


def _stored_shapes(run_dir, step: int, where: Path) -> dict:
    try:
        with _manager(run_dir, read_only=True) as manager:
            return manager.item_metadata(step)["state"].tree
    except Exception as err:
        raise CheckpointError(f"{where}: not a readable cartpole-jax checkpoint ({_why(err)})") from None


def _check_leaf(where: Path, path: tuple[str, ...], target, stored: dict) -> None:
    name = ".".join(path)
    want = jax.eval_shape(jax.random.key_data, target) if _is_key(target) else target
    try:
        have = _get(stored, path)
    except (KeyError, TypeError):
        raise CheckpointError(f"{where}: checkpoint has no {name}; it does not match the config in config.json") from None
    if tuple(have.shape) != tuple(want.shape) or np.dtype(have.dtype) != np.dtype(want.dtype):
        raise CheckpointError(
            f"{where}: {name} is {np.dtype(have.dtype).name}{list(have.shape)} in the checkpoint but the config "
            f"expects {np.dtype(want.dtype).name}{list(want.shape)}"
        )


def _read_state(run_dir, step: int, where: Path, paths, targets) -> list[np.ndarray]:
    import orbax.checkpoint as ocp

    host = [jax.eval_shape(jax.random.key_data, t) if _is_key(t) else t for t in targets]
    target = _nest(paths, [np.zeros(t.shape, t.dtype) for t in host])
    try:
        with _manager(run_dir, read_only=True) as manager:
            state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target))).state
        leaves = [np.asarray(_get(state, p)) for p in paths]
    except Exception as err:
        raise CheckpointError(f"{where}: checkpoint is corrupt or unreadable ({_why(err)})") from None
    for leaf, want in zip(leaves, host, strict=True):
        if leaf.shape != tuple(want.shape) or leaf.dtype != want.dtype:
            raise CheckpointError(f"{where}: checkpoint is corrupt (an array came back with the wrong shape or dtype)")
    return leaves


def _why(err: Exception) -> str:
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first[:120]}" if first else type(err).__name__
