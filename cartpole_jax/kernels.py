"""How the Q-network's thin layers are computed on CPU, and the XLA option that makes it pay.

XLA's CPU compiler hands dots, elementwise ops and reductions to the YNNPACK library. For the
small thin layers of a CartPole network (4 inputs or 2 outputs, few weights: network.THIN) a
library call costs more than its arithmetic. Written as broadcast sums (`network.sum_dot`) they
fuse into XLA's own loops, but only if library fusion is kept to dots; otherwise YNNPACK takes the
sums too and they get slower. Together, the default preset's gradient steps run ~1.3x faster on
CPU; the purejaxrl and seed-tutorial presets, whose cost is in their wide layers, run as before
(benchmarks/kernels.py). Other platforms, and jaxlibs whose compiler lacks the (experimental)
option, keep plain matmuls.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np

ONLY_DOTS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


@functools.cache
def _cpu_accepts_only_dots() -> bool:
    """Whether this jaxlib's CPU compiler takes ONLY_DOTS (one tiny compile, once per process)."""
    try:
        x = jax.device_put(np.float32(0), jax.devices("cpu")[0])
        jax.jit(lambda v: v + 1, compiler_options=ONLY_DOTS).lower(x).compile()
    except Exception:  # an unknown option or enum value, or a jax without compiler_options: keep the defaults
        return False
    return True


def thin_as_sums(platform: str) -> bool:
    """Whether programs for this platform compute thin layers as sums (and compile with ONLY_DOTS)."""
    return platform == "cpu" and _cpu_accepts_only_dots()


def jit_options(platform: str) -> dict[str, Any]:
    """Keyword arguments for `jax.jit` of a program whose network was built with `thin_as_sums(platform)`."""
    return {"compiler_options": dict(ONLY_DOTS)} if thin_as_sums(platform) else {}
