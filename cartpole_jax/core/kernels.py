"""How a platform runs the program: the Q-network's thin layers on CPU (and the XLA option that makes
them pay), and the shape of the training loop.

XLA's CPU compiler hands dots, elementwise ops and reductions to the YNNPACK library. For the
small thin layers of a CartPole network (4 inputs or 2 outputs, few weights: network.THIN) a
library call costs more than its arithmetic. Written as broadcast sums (`network.sum_dot`) they
fuse into XLA's own loops, but only if library fusion is kept to dots; otherwise YNNPACK takes the
sums too and they get slower. Together, the default preset's gradient steps run ~1.3x faster on
CPU; the purejaxrl and seed-tutorial presets, whose cost is in their wide layers, run as before
(benchmarks/kernels.py). Other platforms, and jaxlibs whose compiler lacks the (experimental)
option, keep plain matmuls.

The loop: accelerators take the branch-free loop wherever the schedule allows (`make_trainer`'s
"auto"), since there a branch per vector step costs a round trip to the host. On CPU a conditional is
a branch in host code, and the general loop, which skips the work a branch-free step computes and
drops, trains 3-8% faster and compiles faster, with the same bits (docs/performance.md).

On CPU, networks no wider than LLVM_O1_MAX_WIDTH are compiled at LLVM -O1 (LLVM_O1) rather than
XLA's -O3: for them the extra passes unroll and vectorise loops of a few dozen elements, ~1.2 of the
default chunk's ~5.5 compile CPU-seconds, and train no faster; the 512-wide seed-tutorial network
trains 2-3% faster at -O3, which pays (docs/performance.md). Code generation decides where products
and sums contract into FMAs, so -O1 rounds differently from -O3: results on CPU changed with it.

The init program runs once per run, so on CPU it is compiled for compile time rather than speed
(QUICK_COMPILE: also XLA's elemental emitters). That takes about half its compile CPU, which on 2
cores is CPU the chunk's compile would have had; its outputs keep their bits (tests/test_kernels.py).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

ONLY_DOTS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
LLVM_O1 = {"xla_backend_optimization_level": 1}
LLVM_O1_MAX_WIDTH = 128  # training no slower at -O1 up to 120 wide (purejaxrl), 2-3% slower at 512 (seed-tutorial)
QUICK_COMPILE = {**LLVM_O1, "xla_cpu_use_fusion_emitters": False}


def _cpu_accepts(*option_sets: dict[str, Any]) -> bool:
    """Whether this jaxlib's CPU compiler takes all these options together."""
    return _cpu_accepts_items(frozenset(item for options in option_sets for item in options.items()))


@functools.cache
def _cpu_accepts_items(items: frozenset) -> bool:
    """_cpu_accepts for hashable options: one tiny compile per set of options, once per process."""
    try:
        x = jax.device_put(np.float32(0), jax.devices("cpu")[0])
        jax.jit(lambda v: v + 1, compiler_options=dict(items)).lower(x).compile()
    except Exception:  # an unknown option or enum value, or a jax without compiler_options: keep the defaults
        return False
    return True


class Kernels(NamedTuple):
    """How a program computes its network and which loop it runs (`make_trainer`'s `loop`), and the
    `jax.jit` keywords that must go with them."""

    thin_as_sums: bool = False
    loop: str = "auto"
    quick_init: bool = False  # compile the init program with QUICK_COMPILE
    llvm_o1: bool = False  # compile both programs with LLVM_O1

    def jit_options(self) -> dict[str, Any]:
        options = {**(ONLY_DOTS if self.thin_as_sums else {}), **(LLVM_O1 if self.llvm_o1 else {})}
        return {"compiler_options": options} if options else {}

    def init_jit_options(self) -> dict[str, Any]:
        """jit_options for the init program."""
        options = {**self.jit_options().get("compiler_options", {}), **(QUICK_COMPILE if self.quick_init else {})}
        return {"compiler_options": options} if options else {}


PLAIN = Kernels()  # matmuls everywhere, XLA's default options, the branch-free loop: right for any platform, fastest off CPU


def for_platform(platform: str, hidden_sizes: Sequence[int] | None = None) -> Kernels:
    """The one place a platform's kernels are chosen: on CPU thin layers as sums where the compiler
    takes ONLY_DOTS, the general loop, and a quick-compiled init where it takes QUICK_COMPILE; LLVM
    -O1 where it takes LLVM_O1 and no layer of `hidden_sizes` (the network's; None: unknown) is wider
    than LLVM_O1_MAX_WIDTH."""
    if platform != "cpu":
        return PLAIN
    narrow = hidden_sizes is not None and max(hidden_sizes, default=0) <= LLVM_O1_MAX_WIDTH
    if _cpu_accepts(ONLY_DOTS, QUICK_COMPILE):  # the usual case: one probe (QUICK_COMPILE holds LLVM_O1)
        return Kernels(thin_as_sums=True, loop="general", quick_init=True, llvm_o1=narrow)
    return Kernels(thin_as_sums=_cpu_accepts(ONLY_DOTS), loop="general", quick_init=_cpu_accepts(QUICK_COMPILE),
                   llvm_o1=narrow and _cpu_accepts(LLVM_O1))
