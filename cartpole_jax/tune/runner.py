"""Running a study's batches: ask a batch of trials, train batch x seeds runs per static combination in
one call of the driver, report each chunk's intermediate values, prune, and tell the results.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import Config, apply
from ..errors import NonFiniteError
from .space import Dist, trial_values
from .study import best_trial, counts, import_optuna, requeue, running, scores


@dataclass
class TuneProgress:
    """What the tuner knows after each chunk; handed to the progress callback."""

    finished: int  # complete + pruned trials in the study, this batch's pruned included
    pruned: int
    target: int
    batch: int  # 1-based, in this invocation
    group: int  # 1-based static group within the batch
    num_groups: int
    chunk: int
    num_chunks: int
    best_value: float | None
    best_number: int | None


def group_trials(space: dict[str, Dist], values: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], list[int]]]:
    """(static values, trial indices) per static combination, in first-seen order: one program each."""
    groups: dict[str, tuple[dict, list[int]]] = {}
    for i, v in enumerate(values):
        static = {k: v[k] for k in v if space[k].static}
        groups.setdefault(json.dumps(static, sort_keys=True), (static, []))[1].append(i)
    return list(groups.values())


def lane_trials(members: int, batch: int, num_groups: int) -> int:
    """Trials' worth of lanes a group trains: its own count alone, or with several static groups the next
    power of two (at most the batch), so their varying sizes compile a few programs, not one per size."""
    if num_groups == 1:
        return members
    return min(batch, 1 << (members - 1).bit_length())


def lanes(vmap_values: Sequence[dict[str, Any]], seeds: Sequence[int], padded: int) -> tuple[list[int], list[dict]]:
    """(seed, overrides) of each run: trial-major, seed fastest; padding repeats the first trial (ignored)."""
    fill = list(vmap_values) + [vmap_values[0]] * (padded - len(vmap_values))
    return [int(s) for _ in fill for s in seeds], [dict(v) for v in fill for _ in seeds]


def heal(state, bad: Sequence[int], good: int, num_runs: int):
    """The runs' state with each bad lane replaced by a copy of a healthy one, so a diverged run stops no other."""
    import jax

    index = np.arange(num_runs)
    index[list(bad)] = good
    return jax.tree.map(lambda x: x[index], state)


@dataclass
class Tuner:
    """Ask a batch of trials, train batch × seeds runs per static combination in one call, tell the results."""

    study: Any
    cfg: Config
    space: dict[str, Dist]
    seeds: list[int]
    objective: str = "final_return"
    preset: str = "custom"
    devices: int | str | None = None
    batching: str = "auto"
    progress: Callable[[TuneProgress], None] | None = None
    stop: Callable[[], bool] = lambda: False  # checked between chunks: stop, requeueing the unfinished trials
    target: int = 0
    batches: int = 0
    programs: list[dict[str, Any]] = field(default_factory=list)  # one entry per train call of this invocation
    shadow: Any = None  # the in-memory copy of the study the pruner reads (see pruning_study)

    def run(self, trials: int, batch: int) -> bool:
        """Batches until the study holds `trials` finished trials; False if stopped first."""
        self.target = trials
        while (left := trials - counts(self.study)["finished"]) > 0:
            if self.stop() or not self.run_batch(min(batch, left), batch):
                return False
        return True

    def run_batch(self, size: int, batch: int) -> bool:
        """Ask `size` trials, train and tell them, one train call per static combination; False if stopped."""
        dists = {name: d.distribution() for name, d in self.space.items()}
        trials = [self.study.ask(dists) for _ in range(size)]
        values = [trial_values(self.space, t.params) for t in trials]
        groups = group_trials(self.space, values)
        self.batches += 1
        for g, (static, members) in enumerate(groups):
            run = _GroupRun(self, [trials[i] for i in members], [values[i] for i in members], static, (g + 1, len(groups)))
            if self.stop() or not run.train(lane_trials(len(members), batch, len(groups))):
                requeue(self.study, [t for t in trials if t.number in running(self.study)])
                return False
        return True

    def pruning_study(self):
        """An in-memory copy of the study for pruning decisions, made once per invocation from its finished
        trials: a pruner reads every trial at each decision, which from SQLite costs ~0.1 s a call while a batch
        of trials is running. The real study still gets every report and tell."""
        if self.shadow is None:
            from optuna.trial import TrialState

            self.shadow = import_optuna().create_study(direction="maximize", pruner=self.study.pruner)
            self.shadow.add_trials(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
        return self.shadow

    def show(self, pending_pruned: int, group: tuple[int, int], chunk: int) -> None:
        if self.progress is None:
            return
        c, best = counts(self.study), best_trial(self.study, self.objective)
        self.progress(
            TuneProgress(
                finished=c["finished"] + pending_pruned,
                pruned=c["pruned"] + pending_pruned,
                target=self.target,
                batch=self.batches,
                group=group[0],
                num_groups=group[1],
                chunk=chunk,
                num_chunks=self.cfg.num_chunks,
                best_value=None if best is None else best.value,
                best_number=None if best is None else best.number,
            )
        )


class _GroupRun:
    """One static group of a batch: its runs in one train call, intermediate reports, pruning, and the tell."""

    def __init__(self, tuner: Tuner, trials: list, values: list[dict], static: dict, group: tuple[int, int]):
        self.tuner, self.trials, self.static, self.group = tuner, trials, static, group
        self.shadows = [tuner.pruning_study().ask() for _ in trials]  # each trial's twin in the pruning study
        self.vmap_values = [{k: v for k, v in val.items() if k not in static} for val in values]
        self.cfg = apply(tuner.cfg, static)
        self.pruned: dict[int, str] = {}  # trial index in the group -> why

    @property
    def num_seeds(self) -> int:
        return len(self.tuner.seeds)

    def train(self, padded: int) -> bool:
        """Train, report and tell every trial of the group; False if stopped by the tuner's `stop`."""
        seeds, grid = lanes(self.vmap_values, self.tuner.seeds, padded)
        result, seconds = self._train(seeds, grid)
        self.tuner.programs.append(
            {
                "static": self.static,
                "runs": len(seeds),
                "compile_seconds": round(result.compile_seconds, 3),
                "compiled": result.compile_seconds > 0,
                "train_seconds": round(seconds, 3),
            }
        )
        if result.interrupted and len(self.pruned) < len(self.trials):
            return False
        self._tell(result.metrics)
        return True

    def _train(self, seeds: list[int], grid: list[dict]):
        """driver.train_runs, resumed past diverged lanes: their trials are pruned, the others go on."""
        from .. import driver
        from ..program import to_host

        t = self.tuner
        resume, seconds, compile_seconds = None, 0.0, None
        while True:
            try:
                result = driver.train_runs(
                    self.cfg,
                    seeds,
                    grid,
                    preset=t.preset,
                    devices=t.devices,
                    batching=t.batching,
                    progress=self._progress,
                    after_chunk=self._keep_going,
                    resume=resume,
                )
            except NonFiniteError as err:
                result = err.result
                steps = to_host(result.state.nonfinite_step)[: len(seeds)]
                bad = [int(i) for i in np.nonzero(steps >= 0)[0]]
                for lane in bad:
                    if lane < len(self.trials) * self.num_seeds:
                        self.pruned.setdefault(lane // self.num_seeds, f"non-finite loss at env step {int(steps[lane])}")
                compile_seconds = result.compile_seconds if compile_seconds is None else compile_seconds
                seconds += result.train_seconds
                good = self._healthy_lane(bad)
                if good is None:
                    result.interrupted = True
                    break
                resume = (heal(result.state, bad, good, len(seeds)), result.chunks_done)
                continue
            seconds += result.train_seconds
            break
        if compile_seconds is not None:
            result.compile_seconds = compile_seconds  # the first call's: a resumed call reuses the program
        return result, seconds

    def _healthy_lane(self, bad: list[int]) -> int | None:
        """A lane of a trial still running, to copy over diverged ones; None when no trial is left."""
        for i in range(len(self.trials)):
            if i not in self.pruned:
                return next((lane for lane in range(i * self.num_seeds, (i + 1) * self.num_seeds) if lane not in bad), None)
        return None

    def _trial_metrics(self, metrics: np.ndarray) -> np.ndarray:
        """(trials, seeds, evals, columns) of the real lanes (padding dropped)."""
        n = len(self.trials) * self.num_seeds
        return metrics[:n].reshape(len(self.trials), self.num_seeds, *metrics.shape[1:])

    def _progress(self, p) -> None:
        """After each chunk: report every open trial's intermediate value, then ask the pruner about each."""
        objective = self.tuner.objective
        open_trials = [i for i in range(len(self.trials)) if i not in self.pruned]
        for i, m in zip(open_trials, self._trial_metrics(p.metrics)[open_trials], strict=True):
            s = scores(m)
            if s is not None and math.isfinite(s[objective]):
                self.trials[i].report(s[objective], step=p.env_steps)
                self.shadows[i].report(s[objective], step=p.env_steps)
        for i in open_trials:  # after all reports, so successive halving sees the whole batch at a rung
            if p.chunk < p.num_chunks and self.shadows[i].should_prune():
                self.pruned[i] = f"pruned at env step {p.env_steps}"
        self.tuner.show(len(self.pruned), self.group, p.chunk)

    def _keep_going(self, done: int, state, program) -> bool:
        """Stop on a signal, or when every trial of the group is pruned (nothing left worth training)."""
        return not self.tuner.stop() and len(self.pruned) < len(self.trials)

    def _tell(self, metrics: np.ndarray) -> None:
        from optuna.trial import TrialState

        objective = self.tuner.objective
        for i, (trial, m) in enumerate(zip(self.trials, self._trial_metrics(metrics), strict=True)):
            if i in self.pruned:  # its lanes ran on, masked: what they reached after the pruning is ignored
                trial.set_user_attr("pruned", self.pruned[i])
                self._tell_both(i, state=TrialState.PRUNED)  # Optuna keeps its last reported value
                continue
            s = scores(m)
            if s is not None:  # all three in one attribute: one database write, not three
                trial.set_user_attr("scores", {k: v for k, v in s.items() if math.isfinite(v)})
            if s is None or not math.isfinite(s[objective]):
                self._tell_both(i, state=TrialState.FAIL)
            else:
                self._tell_both(i, s[objective])

    def _tell_both(self, i: int, *args, **kwargs) -> None:
        """Tell trial i's result to the study and to its twin in the pruning study."""
        self.tuner.study.tell(self.trials[i], *args, **kwargs)
        self.tuner.pruning_study().tell(self.shadows[i], *args, **kwargs)
