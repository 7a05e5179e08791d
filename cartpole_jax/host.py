"""How jax is set up in this process before it starts: CPU devices per core, the on-disk compile cache.

Both must run before jax computes anything; the CLI calls them once the command's config is known
to be good, so that bad input is reported before jax is imported (it takes seconds).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable

from .errors import UsageError


def use_cpu_cores() -> int | None:
    """Give jax one CPU device per usable core, unless the user chose a count or jax has started.

    Returns the count set, or None where it left jax alone. Call before any jax computation.
    """
    import jax

    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "") or "JAX_NUM_CPU_DEVICES" in os.environ:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if jax.config.jax_num_cpu_devices == cores:
        return None
    try:
        jax.config.update("jax_num_cpu_devices", cores)
    except RuntimeError:  # a backend already exists in this process: its device count stands
        return None
    return cores


CACHE_ENV = "CARTPOLE_JAX_CACHE"


def use_compilation_cache(environ=os.environ, warn: Callable[[str], None] | None = None) -> str | None:
    """Keep compiled programs on disk, so a config compiled once starts in about a second next time.

    The folder is $CARTPOLE_JAX_CACHE, else $XDG_CACHE_HOME/cartpole-jax/xla (~/.cache/...);
    CARTPOLE_JAX_CACHE=off turns it off, and a JAX_COMPILATION_CACHE_DIR of the user's own wins.
    A folder that cannot be created or written is skipped, with one line to `warn`. Returns the folder used, or None.
    """
    import jax

    # jax warns in four lines for every cache entry it fails to write or read; a cache is only a speed-up
    warnings.filterwarnings("ignore", message="Error (writing|reading) persistent compilation cache entry")
    if environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
        return None
    folder = environ.get(CACHE_ENV, "")
    if folder.lower() in ("off", "0", "no", "false"):
        return None
    if not folder:
        base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "cartpole-jax", "xla")
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()  # by trying: os.access says yes to root on a read-only mount
    except OSError as err:  # a read-only home, or a file in the way: compile every time rather than fail
        if warn is not None:
            warn(f"compile cache {folder} is not usable ({err.strerror}); compiling without it (set {CACHE_ENV}=off to silence)")
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    return folder


def devices(backend: str | None = None) -> list:
    """jax.devices(backend), with a backend that cannot start reported as one UsageError line."""
    import jax

    try:
        return jax.devices(backend)
    except RuntimeError as err:
        asked = os.environ.get("JAX_PLATFORMS") or backend or "the default"
        first = (str(err).strip().splitlines() or [""])[0]
        raise UsageError(f"jax backend {asked!r} is not available here ({first[:200]}); this machine can run on cpu "
                         "(JAX_PLATFORMS=cpu)") from None
