"""Compiled programs kept on disk as executables, so a config compiled once skips tracing and lowering too.

jax's persistent compile cache is keyed by the lowered program, so even a hit pays for tracing and
lowering it (~2.5 s for the default preset on 2 CPU cores). This cache is keyed by what determines
the program: the static config, the runs and devices, the compiler options, the jax and jaxlib
versions, this package's source and the versions of the libraries it traces, the CPU and jax's
settings (all but those of caches and logs). So it is read before any of that work (~0.5 s). An
entry that can't be read or loaded means compiling as before. The CLI keeps it in a `programs`
folder of its compile cache (`host.use_compilation_cache`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from .atomic import replacing

_folder: Path | None = None
SUFFIXES = ("init", "chunk")
# Libraries whose Python code is traced into the programs (the network, the optimiser, the env):
# an upgrade of one can change a program as much as an edit here.
TRACED_LIBRARIES = ("flax", "optax", "gymnax", "chex", "numpy", "ml_dtypes")


def use(folder: str | Path | None) -> None:
    """Keep executables in `folder` from now on (None: not at all)."""
    global _folder
    _folder = Path(folder) if folder is not None else None


def key(identity: dict[str, Any]) -> str | None:
    """The entry name of a program whose own parts are `identity`, or None when nothing is kept."""
    import jax

    if _folder is None or jax.process_count() > 1:  # a job's processes compile together; not kept
        return None
    text = json.dumps({**identity, **_fingerprint(), "settings": _settings()}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@functools.cache
def _fingerprint() -> dict[str, Any]:
    """What every program here depends on besides its own config and jax's settings: versions, source, CPU."""
    import jax
    import jaxlib

    package = Path(__file__).parent
    source = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        source.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "libraries": {name: _version(name) for name in TRACED_LIBRARIES},
        "source": source.hexdigest(),
        "cpu": _cpu(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def _settings() -> dict[str, str]:
    """jax's settings now (x64, PRNG, matmul precision, partitioner...): any may change what is traced or
    compiled, and a process may change them between programs. Those of caches and logs are left out."""
    import jax

    return {name: str(value) for name, value in sorted(jax.config.values.items()) if "cache" not in name and "log" not in name}


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _cpu() -> str:
    """The processor and its instruction-set flags: XLA compiles for the CPU it runs on."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return f"{platform.machine()} {platform.processor()} {hashlib.sha256(flags.encode()).hexdigest()[:16]}"


def load(name: str | None, trees: dict[str, tuple], devices: list) -> dict[str, Any] | None:
    """The executables saved under `name` (by SUFFIXES), loaded onto `devices`; None if any is missing or bad.

    trees[suffix] = (in_tree, out_tree) of that function, which the caller can compute cheaply.
    """
    if name is None:
        return None
    from jax.experimental import serialize_executable

    loaded = {}
    for suffix in SUFFIXES:
        path = _folder / f"{name}.{suffix}"
        try:
            payload = zlib.decompress(path.read_bytes())
            loaded[suffix] = serialize_executable.deserialize_and_load(payload, *trees[suffix], execution_devices=devices)
        except FileNotFoundError:
            return None
        except Exception:  # damaged, or from a jaxlib that can't load it: compile instead, and replace it then
            path.unlink(missing_ok=True)
            return None
    return loaded


@contextmanager
def jax_cache_hits() -> Iterator[list[str]]:
    """The hits of jax's own persistent cache meanwhile. An executable jax loaded from there can't be
    serialised again whole (jaxlib 0.10.2: it then runs into "Function ... not found"), so it is not kept."""
    import jax

    hits: list[str] = []

    def listener(event: str, **_) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            hits.append(event)

    jax.monitoring.register_event_listener(listener)
    try:
        yield hits
    finally:
        jax.monitoring.unregister_event_listener(listener)


def save(name: str | None, compiled: dict[str, Any]) -> None:
    """Write each compiled function of `compiled` (by SUFFIXES) under `name`; failures only cost speed."""
    if name is None:
        return
    from jax.experimental import serialize_executable

    try:
        _folder.mkdir(parents=True, exist_ok=True)
        for suffix in SUFFIXES:
            payload, _, _ = serialize_executable.serialize(compiled[suffix])
            with replacing(_folder / f"{name}.{suffix}") as tmp:
                Path(tmp).write_bytes(zlib.compress(payload, 1))  # about a fifth of the size, in milliseconds
    except Exception:  # a full or read-only disk, or a backend that can't serialise: compile next time
        return
