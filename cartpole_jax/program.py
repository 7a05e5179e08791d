"""Compiled programs on devices: the compile cache, device choice, placement and sharding of runs,
multi-host gathering, and the compiled chunk's own memory analysis.

A program is the pair (init, chunk) for R runs of one static config, compiled once; runs that
differ only in vmappable values or seeds reuse it.
"""

from __future__ import annotations

import gc
import platform
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import executables
from .config import Config, ConfigError, HyperParams, apply
from .core import kernels
from .core.train import make_trainer


def device_description() -> str:
    d = jax.devices()[0]
    kind = getattr(d, "device_kind", d.platform)
    cpu = platform.processor() or platform.machine()
    return f"{d.platform}:{kind}" + (f" ({cpu})" if d.platform == "cpu" else "")


def pick_devices(num_devices: int | str | None, num_runs: int | None = None) -> list:
    """The devices to shard runs over: a count, "all", or None for the platform's choice.

    None means one accelerator, or on CPU one device per run up to all CPU devices: runs on CPU are
    single-threaded, so only separate devices put more than one core to work (see `host.use_cpu_cores`).
    """
    from .host import devices

    available = devices()  # a backend that cannot start is one line, not jax's traceback
    if num_devices is None and available[0].platform == "cpu":
        return available[: max(1, min(len(available), num_runs or len(available)))]
    if num_devices in (None, 1):
        return available[:1]
    if num_devices == "all":
        return available
    if not isinstance(num_devices, int) or num_devices < 1 or num_devices > len(available):
        n = len(available)
        raise ConfigError(f"must be 'all' or an integer in [1, {n}] ({n} device(s) visible); got {num_devices}", "devices")
    return available[:num_devices]


def to_host(tree):
    """numpy copies of (possibly sharded) arrays; in a multi-process job every process gathers all shards."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    leaves, treedef = jax.tree.flatten(tree)
    mesh = getattr(leaves[0].sharding, "mesh", None) if leaves else None
    if mesh is None or not all(getattr(x.sharding, "mesh", None) == mesh for x in leaves):
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    # One program replicates every leaf: process_allgather compiles one per leaf shape, seconds per checkpoint.
    full = jax.jit(_identity, out_shardings=NamedSharding(mesh, PartitionSpec()))(leaves)
    return treedef.unflatten([np.asarray(x.addressable_data(0)) for x in full])


def _identity(tree):
    return tree


def place(tree, sharding):
    """Put identical host values on every process's devices as one global array per leaf."""
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda x: jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx]), tree)


def batch_hyperparams(cfg: Config, grid: Sequence[dict[str, Any]]) -> HyperParams:
    """One HyperParams with a leading run axis: cfg's values with each run's overrides applied."""
    hps = [apply(cfg, point).hyperparams() for point in grid]
    return jax.tree.map(lambda *xs: np.stack(xs), *hps)


def over_runs(fn, mode: str, in_place: bool = False):
    """fn(state, hp, *shared) for one run, lifted to a leading run axis of state and hp.

    "map" loops over runs with the single-run program; "vmap" batches them, which is what
    accelerators want. The two round differently (XLA fuses, and so contracts into FMAs, batched
    code otherwise), but within each a run's bits never depend on which runs share the call: see
    `runs_per_device`.

    in_place (for fn that returns a new `state`, which the caller donates): "map" writes each run's
    result back into `state` instead of into fresh stacked arrays, the same bits with no zero-filled
    second state and no copy of it into the outputs: ~100 fewer kernels for XLA to compile.
    """
    if mode == "vmap":
        return lambda state, hp, *shared: jax.vmap(lambda s, h: fn(s, h, *shared))(state, hp)
    if not in_place:
        return lambda state, hp, *shared: jax.lax.map(lambda sh: fn(sh[0], sh[1], *shared), (state, hp))

    def in_place_map(state, hp, *shared):
        def one(i, states):
            run = lambda tree: jax.tree.map(lambda x: x[i], tree)
            return jax.tree.map(lambda all_runs, x: all_runs.at[i].set(x), states, fn(run(states), run(hp), *shared))

        return jax.lax.fori_loop(0, jax.tree.leaves(state)[0].shape[0], one, state)

    return in_place_map


# A batch of one run is simplified by XLA into code that rounds like neither mode; from two runs on,
# batched code gives each run the same bits whatever the batch size (checked for every preset).
MIN_VMAP_RUNS = 2


def runs_per_device(num_runs: int, num_devices: int, mode: str) -> int:
    """Runs each device computes, padding included: vmapped devices get at least MIN_VMAP_RUNS."""
    per = -(-num_runs // num_devices)
    return max(per, MIN_VMAP_RUNS) if mode == "vmap" else per


def batching_mode(mode: str, devices: list) -> str:
    if mode != "auto":
        return mode
    return "map" if devices[0].platform == "cpu" else "vmap"


def loop_for(loop: str | None, devices: list) -> str:
    """make_trainer's loop for a program on `devices`: `loop`, else the platform's (kernels.for_platform)."""
    return kernels.for_platform(devices[0].platform).loop if loop is None else loop


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off meanwhile (as it was after).

    Tracing and lowering allocate hundreds of thousands of objects, and every so often the collector
    walks the whole heap (jax, flax, optax, and in the CLI matplotlib being imported alongside),
    holding the GIL: ~0.3 s of a cold compile on 2 cores. What it would have freed waits until after.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Program:
    """The compiled init and chunk functions for R runs sharded over devices; compiled once.

    Use `Program.get`: programs are cached by the config's program fields (`Config.program_key`), run
    count, devices and batching, so runs that differ only in vmappable values or host fields reuse
    the compiled code.
    """

    _cache: ClassVar[dict[tuple, Program]] = {}

    @classmethod
    def get(cls, cfg: Config, num_runs: int, devices: list, batching: str = "auto", loop: str | None = None) -> Program:
        key = (cfg.program_key(), num_runs, tuple(d.id for d in devices), batching_mode(batching, devices), loop_for(loop, devices))
        if key not in cls._cache:
            cls._cache[key] = cls(cfg, num_runs, devices, batching, loop)
        return cls._cache[key]

    @classmethod
    def clear_cache(cls) -> None:
        """Drop every cached program (benchmarks free compiled code between configs)."""
        cls._cache.clear()

    def __init__(self, cfg: Config, num_runs: int, devices: list, batching: str = "auto", loop: str | None = None):
        """loop: make_trainer's, to override the platform's choice (kernels.for_platform)."""
        self.cfg, self.num_runs = cfg, num_runs
        self.devices = devices
        self.batching = batching_mode(batching, devices)
        self.padded = runs_per_device(num_runs, len(devices), self.batching) * len(devices)
        mesh = Mesh(np.array(devices), ("runs",))
        runs, shared = PartitionSpec("runs"), PartitionSpec()
        self.runs_sharding = NamedSharding(mesh, runs)
        chosen = kernels.for_platform(devices[0].platform, cfg.hidden_sizes)
        self.loop = loop_for(loop, devices)
        trainer = make_trainer(cfg, chosen, self.loop)
        init = over_runs(lambda key, hp: trainer.init(key, hp), self.batching)
        chunk = over_runs(trainer.run_chunk, self.batching, in_place=True)
        options, init_options = chosen.jit_options(), chosen.init_jit_options()
        self.identity = {"static": cfg.program_key(), "runs": self.padded, "batching": self.batching, "loop": self.loop,
                         "options": options, "init_options": init_options,
                         "devices": [(d.platform, getattr(d, "device_kind", "")) for d in devices]}
        self._init = jax.jit(jax.shard_map(init, mesh=mesh, in_specs=(runs, runs), out_specs=runs, check_vma=False),
                             **init_options)
        self._chunk = jax.jit(
            jax.shard_map(chunk, mesh=mesh, in_specs=(runs, runs, shared), out_specs=runs, check_vma=False),
            donate_argnums=0,
            **options,
        )
        self.compile_seconds = 0.0
        self.compiled = False
        self.loaded = False  # from executables kept on disk, rather than compiled

    def pad(self, tree):
        """Repeat run 0 to fill the devices; padded runs are computed and dropped."""
        extra = self.padded - self.num_runs
        if extra == 0:
            return tree
        return jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[:1], extra, axis=0)]), tree)

    def prepare(self, cfg: Config, seeds: Sequence[int], grid: Sequence[dict[str, Any]]):
        """(keys, hyperparameters) of the runs, padded and placed on the program's devices.

        cfg gives the vmappable values (a cached program may have been built from another config
        with the same static fields); grid[i] overrides them for run i.
        """
        keys = self.pad(jax.vmap(jax.random.key)(jnp.asarray(seeds, dtype=jnp.uint32)))
        hps = self.pad(jax.tree.map(jnp.asarray, batch_hyperparams(cfg, grid)))
        return place((keys, hps), self.runs_sharding)

    def compile(self, keys, hps) -> float:
        """Compile both functions ahead of time (once), or load them (`executables`); return the seconds this call spent."""
        if self.compiled:
            return 0.0
        t0 = time.perf_counter()
        with collector_paused():
            self._compile(keys, hps)
        self.compile_seconds = time.perf_counter() - t0
        self.compiled = True
        return self.compile_seconds

    def _compile(self, keys, hps) -> None:
        state_shape = jax.eval_shape(self._init, keys, hps)
        sharded = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self.runs_sharding)
        state_shape = jax.tree.map(sharded, state_shape)
        name = executables.key(self.identity)
        trees = {"init": (jax.tree.structure(((keys, hps), {})), jax.tree.structure(state_shape)),
                 "chunk": (jax.tree.structure(((state_shape, hps, jnp.int32(0)), {})), jax.tree.structure(state_shape))}
        kept = executables.load(name, trees, self.devices)
        if kept is not None:
            self._init, self._chunk, self.loaded = kept["init"], kept["chunk"], True
        else:
            # XLA compiles without the GIL: the small init program builds on another core meanwhile
            with executables.jax_cache_hits() as hits, ThreadPoolExecutor(1) as pool:
                init = pool.submit(lambda: self._init.lower(keys, hps).compile())
                self._chunk = self._chunk.lower(state_shape, hps, jnp.int32(0)).compile()
                self._init = init.result()
            if not hits:
                executables.save(name, {"init": self._init, "chunk": self._chunk})

    def init(self, keys, hps):
        return self._init(keys, hps)

    def chunk(self, state, hps, index: int):
        return self._chunk(state, hps, jnp.int32(index))

    def chunk_text(self) -> str:
        """The compiled chunk's optimised HLO (after `compile`)."""
        return self._chunk.as_text()

    @property
    def steps_per_call(self) -> int:
        """Vector steps one chunk call runs one after another on a device: chunk_len for each run the
        device loops over ("map"); batched runs ("vmap") take their steps together."""
        return self.cfg.chunk_len * (self.padded // len(self.devices) if self.batching == "map" else 1)

    def memory_analysis(self) -> dict[str, int] | None:
        """argument/output/alias/temp bytes per device of the compiled chunk, if the backend says."""
        try:
            m = self._chunk.memory_analysis()
        except (AttributeError, NotImplementedError, RuntimeError):
            return None
        if m is None:
            return None
        out = {
            "arguments": int(m.argument_size_in_bytes),
            "outputs": int(m.output_size_in_bytes),
            "aliased": int(m.alias_size_in_bytes),
            "temp": int(m.temp_size_in_bytes),
        }
        out["peak"] = out["arguments"] + out["outputs"] - out["aliased"] + out["temp"]
        return out
