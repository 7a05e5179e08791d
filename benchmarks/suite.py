"""The benchmark sections, run smallest size first under a time budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from . import envs, python_loop, training
from .timing import Budget


class Guard:
    """Skips an item whose predicted cost (last cost of its group times its growth) exceeds the budget."""

    def __init__(self, budget: Budget, skipped: list[dict], exponent: float = 1.0):
        self.budget, self.skipped, self.exponent = budget, skipped, exponent
        self.last: dict[str, tuple[float, float]] = {}  # group -> (size, seconds)

    def predict(self, group: str, size: float) -> float:
        if group not in self.last:
            return 0.0
        last_size, cost = self.last[group]
        return cost * max(1.0, size / last_size) ** self.exponent

    def run(self, group: str, size: float, what: dict, fn: Callable[[], dict], log) -> dict | None:
        predicted = self.predict(group, size)
        if not self.budget.allows(predicted):
            reason = f"time budget: predicted {predicted:.0f} s, {max(self.budget.left(), 0):.0f} s left"
            self.skipped.append({**what, "reason": reason})
            log(f"skip {what}: {reason}")
            return None
        t0 = time.perf_counter()
        rec = fn()
        self.last[group] = (size, time.perf_counter() - t0)
        log(f"{rec['kind']:12s} {rec['impl']:20s} {rec.get('preset') or '':14s} envs={rec['num_envs']} "
            f"seeds={rec['num_seeds']} {rec['steps_per_second']:,.0f} steps/s ({time.perf_counter() - t0:.1f} s)")
        return rec


def env_section(plan, budget: Budget, records: list, skipped: list, log) -> None:
    guard = Guard(budget, skipped)
    for n in plan.env_sizes:
        for impl in envs.IMPLS:
            what = {"kind": "env", "impl": impl, "num_envs": n}
            reason = envs.skip_reason(impl, n)
            if reason:
                skipped.append({**what, "reason": reason})
                continue
            # gymnasium's cost grows with n only through a repeat's fixed length, so growth is ~1 for all
            rec = guard.run(impl, 1.0, what, partial(envs.bench, impl, n, plan.repeats, plan.env_target_seconds), log)
            if rec:
                records.append(rec)


def train_section(plan, budget: Budget, records: list, skipped: list, log) -> None:
    guard = Guard(budget, skipped, plan.seed_cost_exponent)
    for seeds in plan.seeds:
        for preset in plan.train_presets:
            chunk = plan.chunk(preset)
            for kind, bench in (("train", training.bench_train), ("update_bound", training.bench_update_bound)):
                what = {"kind": kind, "preset": preset, "num_seeds": seeds}
                fn = partial(bench, preset, seeds, chunk, plan.repeats, overrides=plan.overrides)
                rec = guard.run(f"{kind}/{preset}", seeds, what, fn, log)
                if rec:
                    records.append(rec)
            training.clear_compiled()  # frees the compiled programs of this size before the next


def loop_section(plan, budget: Budget, records: list, skipped: list, log) -> None:
    guard = Guard(budget, skipped)
    have = {(r["kind"], r["preset"], r["num_seeds"]) for r in records}
    for preset in plan.loop_presets:
        chunk = plan.chunk(preset)
        # a preset timed only here still gets its loop and its update-only bound side by side
        for kind, bench in (("train", training.bench_train), ("update_bound", training.bench_update_bound)):
            if (kind, preset, 1) not in have:
                what = {"kind": kind, "preset": preset, "num_seeds": 1}
                fn = partial(bench, preset, 1, chunk, plan.repeats, overrides=plan.overrides)
                rec = guard.run(f"{kind}/{preset}", 1, what, fn, log)
                records.extend([rec] if rec else [])
        what = {"kind": "python_loop", "preset": preset, "num_seeds": 1}
        fn = partial(python_loop.bench_python_loop, preset, chunk, plan.repeats, plan.overrides)
        rec = guard.run(f"loop/{preset}", 1, what, fn, log)
        records.extend([rec] if rec else [])


def run_all(plan, budget: Budget, log=print, save=None) -> tuple[list[dict], list[dict]]:
    """All sections; each gets a share of the time left so a slow one cannot starve the rest.

    `save(records, skipped)` runs after each section, so a run killed from outside keeps what it measured.
    """
    records: list[dict] = []
    skipped: list[dict] = []
    for section, share in ((env_section, 0.3), (train_section, 0.7), (loop_section, 1.0)):
        section(plan, budget.share(share), records, skipped, log)
        if save is not None:
            save(records, skipped)
    return records, skipped
