"""What thin layers as sums and library fusion kept to dots each buy a gradient step on CPU.

    taskset -c 0 python benchmarks/kernels.py [--preset default] [--updates 4000] [--repeats 8] [--out FILE]

Times `--updates` gradient steps of the preset, one seed, on synthetic replay batches, for the four
combinations of network kernels (matmuls or sums, cartpole_jax/network.py) and compile options
(XLA's defaults or cartpole_jax.core.kernels.ONLY_DOTS). The variants take turns, so a machine whose speed
drifts slows them alike; the minimum over repeats is the least disturbed. Pin it to one core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VARIANTS = {  # name: (thin layers as sums, library fusion kept to dots)
    "matmuls": (False, False),
    "matmuls, only dots": (False, True),
    "sums": (True, False),
    "sums, only dots (cpu default)": (True, True),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="default")
    p.add_argument("--updates", type=int, default=4000)
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)

    import jax
    import numpy as np

    from benchmarks.timing import machine
    from benchmarks.training import update_only
    from cartpole_jax.config import resolve
    from cartpole_jax.core import kernels

    if jax.default_backend() != "cpu":  # update_only compiles for the default backend, where ONLY_DOTS means nothing
        print("kernels.py measures the CPU compiler; this machine's default backend is", jax.default_backend())
        return 1
    if not kernels.for_platform("cpu").thin_as_sums:
        print("this jaxlib's CPU compiler does not take kernels.ONLY_DOTS: nothing to compare")
        return 1
    _, cfg = resolve(args.preset, None, [])
    compiled = {}
    for name, (sums, only_dots) in VARIANTS.items():
        options = kernels.Kernels(True).jit_options() if only_dots else {}
        fn, fn_args, _ = update_only(cfg, 1, args.updates, chosen=kernels.Kernels(sums), jit_options=options)
        jax.block_until_ready(fn(*fn_args))
        compiled[name] = (fn, fn_args)
    micros: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, (fn, fn_args) in compiled.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*fn_args))
            micros[name].append((time.perf_counter() - t0) / args.updates * 1e6)
    base = min(micros["matmuls"])
    rows = [{"variant": name, "min_us": round(min(m), 1), "median_us": round(float(np.median(m)), 1),
             "speedup_vs_matmuls": round(base / min(m), 2)} for name, m in micros.items()]
    print(f"{args.preset}: microseconds per gradient step (batch {cfg.batch_size}, hidden {list(cfg.hidden_sizes)})")
    for r in rows:
        print(f"  {r['variant']:32s} min {r['min_us']:6.1f}  median {r['median_us']:6.1f}  x{r['speedup_vs_matmuls']}")
    if args.out:
        result = {"preset": args.preset, "updates": args.updates, "repeats": args.repeats, "rows": rows, "machine": machine()}
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
