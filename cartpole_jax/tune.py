"""Hyperparameter search with Optuna: each batch of asked trials × seeds trains in one compiled call.

    >>> from cartpole_jax.tune import parse_space
    >>> space = parse_space(["learning_rate=log:1e-4:1e-1", "hidden_sizes=choice:[32,32],[64,64]"])
    >>> space["learning_rate"].kind, space["hidden_sizes"].choices
    ('log', ([32, 32], [64, 64]))

Optuna is imported only by the functions that talk to a study, so a bad space fails before it loads.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import replacing
from .config import (
    FIELDS,
    PRESETS,
    SOLVED_RETURN,
    VMAP_FIELDS,
    Config,
    ConfigError,
    apply,
    check_hyperparams,
    check_value,
    load_toml,
    parse_value,
    validate,
)
from .errors import NonFiniteError, UsageError
from .sweep import split_values

OBJECTIVES = {
    "final_return": "mean over seeds of the final greedy eval return",
    "solved_fraction": f"fraction of seeds whose final greedy eval return is >= {SOLVED_RETURN:g}",
    "auc": "mean greedy eval return over all evaluations, averaged over seeds (rewards fast learning)",
}
SECONDARY = {"final_return": "auc", "solved_fraction": "auc", "auc": "final_return"}  # breaks ties between equal values
PRUNERS = ("median", "halving", "none")
FORMS = "lo:hi, log:lo:hi, int:lo:hi or choice:a,b,..."
MAX_STATIC = 256  # static combinations in one space: each is a compiled program


# --- the search space ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Dist:
    """One searched config field: a float range (uniform or log), an int range, or a list of choices."""

    name: str
    kind: str  # "float", "log", "int" or "choice"
    lo: float = 0.0
    hi: float = 0.0
    choices: tuple = ()  # stored values (lists for hidden_sizes), in the order given

    @property
    def static(self) -> bool:
        return not FIELDS[self.name].metadata["vmap"]

    def spec(self) -> str:
        """The text form, as --space takes it."""
        if self.kind == "choice":
            return "choice:" + ",".join(_show(v) for v in self.choices)
        return ("" if self.kind == "float" else f"{self.kind}:") + f"{_show(self.lo)}:{_show(self.hi)}"

    def labels(self) -> list:
        """Optuna's categorical choices: scalars as they are, lists and tables as JSON text."""
        return [json.dumps(v) if isinstance(v, (list, dict)) else v for v in self.choices]

    def value(self, param: Any) -> Any:
        """The config value of an Optuna parameter."""
        return self.choices[self.labels().index(param)] if self.kind == "choice" else param

    def extremes(self) -> list:
        """The values at the corners of the space (a relation between fields is checked there)."""
        return [min(self.choices), max(self.choices)] if self.kind == "choice" else [self.lo, self.hi]

    def distribution(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "choice":
            return CategoricalDistribution(self.labels())
        if self.kind == "int":
            return IntDistribution(int(self.lo), int(self.hi))
        return FloatDistribution(self.lo, self.hi, log=self.kind == "log")


def _show(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _bad(where: str, why: str) -> ConfigError:
    return ConfigError(f": {where}: {why}", "space")


def parse_spec(name: str, text: str) -> Dist:
    """One KEY=SPEC of --space as a Dist; raises ConfigError (param "space")."""
    where = f"{name}={text}"
    if name not in FIELDS:
        try:
            apply(Config(), {name: None})  # the shared "unknown config key ... (did you mean ...)"
        except ConfigError as err:
            raise _bad(where, str(err)) from None
    head, _, rest = text.partition(":")
    if head.strip() == "choice":
        return Dist(name, "choice", choices=_choices(name, rest, where))
    if not FIELDS[name].metadata["vmap"]:
        raise _bad(where, f"{name} is static (a new value compiles a new program): search it with choice:a,b,...")
    parts = [p.strip() for p in text.split(":")]
    kind, bounds = (parts[0], parts[1:]) if parts[0] in ("log", "int") else ("float", parts)
    if len(bounds) != 2:
        raise _bad(where, f"malformed; expected {FORMS}")
    lo, hi = (_bound(b, kind, where) for b in bounds)
    if kind == "log" and lo <= 0:
        raise _bad(where, f"a log range needs lo > 0; got lo={_show(lo)}")
    if lo >= hi:
        raise _bad(where, f"empty range: lo must be < hi; got {_show(lo)} >= {_show(hi)}")
    for bound in (lo, hi):
        try:
            check_value(name, bound)
        except ConfigError as err:
            raise _bad(where, f"bound {_show(bound)} is outside the field's range ({err})") from None
    return Dist(name, kind, lo, hi)


def _bound(text: str, kind: str, where: str) -> float:
    """A range bound: a finite number (a whole one for int:)."""
    try:
        value = float(text)
    except ValueError:
        raise _bad(where, f"bound {text!r} is not a number; expected {FORMS}") from None
    if not math.isfinite(value):
        raise _bad(where, f"bound {text!r} must be finite")
    if kind == "int":
        if not value.is_integer():
            raise _bad(where, f"int: bounds must be whole numbers; got {text!r}")
        return int(value)
    return value


def _choices(name: str, text: str, where: str) -> tuple:
    """The stored values of choice:a,b,...; each checked like --set, none twice."""
    try:
        items = [v.strip() for v in split_values(text)]
    except ValueError as err:
        raise _bad(where, f"malformed choice list ({err})") from None
    if not text.strip() or any(not v for v in items):
        raise _bad(where, "an empty choice; expected choice:a,b,...")
    out = []
    for item in items:
        try:
            value = apply(Config(), {name: check_value(name, parse_value(item))}).to_dict()[name]
        except ConfigError as err:
            raise _bad(where, str(err)) from None
        if value in out:
            raise _bad(where, f"choice {item} is listed twice")
        out.append(value)
    return tuple(out)


def parse_space(texts: Sequence[str], space_file: str | Path | None = None) -> dict[str, Dist]:
    """--space KEY=SPEC texts, then a --space-file's [space] table, as {field: Dist}; raises ConfigError."""
    entries = [_entry(t) for t in texts] + (load_space_file(space_file) if space_file else [])
    space: dict[str, Dist] = {}
    for name, spec in entries:
        if name in space:
            raise _bad(f"{name}={spec}", f"{name} is searched twice")
        space[name] = parse_spec(name, spec)
    if not space:
        raise ConfigError(": nothing to search; give KEY=SPEC with --space or a --space-file", "space")
    return space


def _entry(text: str) -> tuple[str, str]:
    name, sep, spec = text.partition("=")
    if not sep or not name.strip() or not spec.strip():
        raise ConfigError(f": expects KEY=SPEC with SPEC {FORMS}; got {text!r}", "space")
    return name.strip(), spec.strip()


def load_space_file(path: str | Path) -> list[tuple[str, str]]:
    """(field, spec) pairs from a TOML file's [space] table; an array value is a list of choices."""
    try:
        data = load_toml(path)
    except ConfigError as err:
        raise ConfigError(err.message, "space-file") from None
    table = data.get("space")
    if not isinstance(table, dict) or set(data) != {"space"}:
        raise ConfigError(f"{path}: expected one [space] table of KEY = \"SPEC\" (e.g. learning_rate = \"log:1e-4:1e-1\")", "space-file")
    out = []
    for name, spec in table.items():
        if isinstance(spec, list):
            spec = "choice:" + ",".join(_show(v) for v in spec)
        elif not isinstance(spec, str):
            raise _bad(f"{name} = {spec!r}", f"in {path}: a spec is a string such as \"{FORMS.split(',')[0]}\" or an array of choices")
        out.append((name, spec))
    return out


def check_space(cfg: Config, space: dict[str, Dist]) -> None:
    """Every static combination validates with the fixed config, and every corner of the ranges passes the
    checks between vmappable fields (eps_end <= eps_start); raises ConfigError (param "space")."""
    static = [d for d in space.values() if d.static]
    if math.prod(len(d.choices) for d in static) > MAX_STATIC:
        raise ConfigError(f": the static choices make more than {MAX_STATIC} combinations (one compiled program each)", "space")
    for combo in itertools.product(*(d.choices for d in static)):
        values = dict(zip((d.name for d in static), combo, strict=True))
        try:
            validate(apply(cfg, values))
        except ConfigError as err:
            raise _bad(_label(values), str(err)) from None
    ranges = [d for d in space.values() if not d.static]
    base = {n: getattr(cfg, n) for n in VMAP_FIELDS}
    for combo in itertools.product(*(d.extremes() for d in ranges)):
        values = dict(zip((d.name for d in ranges), combo, strict=True))
        try:
            check_hyperparams({**base, **values})
        except ConfigError as err:
            raise _bad(_label(values), f"{err} (every point of the space must be a valid config)") from None


def _label(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_show(v)}" for k, v in values.items())


def static_configs(cfg: Config, space: dict[str, Dist]) -> list[Config]:
    """The fixed config with each static combination of the space: one compiled program each."""
    static = [d for d in space.values() if d.static]
    names = [d.name for d in static]
    return [apply(cfg, dict(zip(names, combo, strict=True))) for combo in itertools.product(*(d.choices for d in static))]


# --- objectives ---------------------------------------------------------------------------------


def scores(metrics: np.ndarray) -> dict[str, float] | None:
    """All three objectives of one trial from its seeds' metrics (seeds, evals, columns) so far; None before any eval.

    With a partial table, "final" is each seed's latest evaluation: the intermediate values pruners compare.
    """
    from .core.types import METRIC  # here, not at the top: parsing a space loads no jax

    evals = metrics[:, :, METRIC["eval_return_mean"]]
    written = ~np.isnan(evals)
    if not written.any(axis=1).all():
        return None
    latest = evals.shape[1] - 1 - np.argmax(written[:, ::-1], axis=1)
    final = evals[np.arange(len(evals)), latest]
    return {
        "final_return": float(final.mean()),
        "solved_fraction": float((final >= SOLVED_RETURN).mean()),
        "auc": float(np.nanmean(evals, axis=1).mean()),
    }


def trial_scores(trial) -> dict[str, float]:
    """The objectives a finished trial reached ({} for a pruned or failed one)."""
    return trial.user_attrs.get("scores", {})


def best_trial(study, objective: str):
    """The best complete trial: highest value, ties broken by the secondary objective, then the earlier trial."""
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    key = lambda t: (t.value, trial_scores(t).get(SECONDARY[objective], -math.inf), -t.number)
    return max(done, key=key, default=None)


# --- the study ----------------------------------------------------------------------------------


def import_optuna():
    """optuna, or a UsageError saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise UsageError("cartpole-jax tune needs optuna: pip install 'cartpole-jax[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our progress bar says what its per-trial log lines would
    return optuna


def make_sampler(seed: int):
    """TPE over all parameters jointly; constant liar keeps one batch's trials apart while they run."""
    optuna = import_optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


def make_pruner(name: str, cfg: Config):
    """median: below the median of completed trials at the same env step, after a quarter of the run;
    halving: asynchronous successive halving with rungs at 1/9 and 1/3 of the run; none."""
    optuna = import_optuna()
    total = cfg.num_vector_steps * cfg.num_envs
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=total // 4)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, total // 9), reduction_factor=3)
    return optuna.pruners.NopPruner()


def setup_attrs(preset: str, cfg: Config, space: dict[str, Dist], seeds: Sequence[int], objective: str) -> dict[str, Any]:
    """What a study is tuned on; a second `tune` on the same study must match it."""
    return {
        "objective": objective,
        "objective_meaning": OBJECTIVES[objective],
        "tie_break": SECONDARY[objective],
        "space": {name: d.spec() for name, d in space.items()},
        "preset": preset,
        "config": cfg.to_dict(),
        "seeds": [int(seeds[0]), len(seeds)],
    }


def open_study(storage: str, name: str, setup: dict[str, Any], *, seed: int, pruner, fresh: bool = False):
    """Create or load the study (load_if_exists), check it was tuned on `setup`, and record `setup` in a new one."""
    optuna = import_optuna()
    try:
        if fresh and name in optuna.get_all_study_names(storage):
            optuna.delete_study(study_name=name, storage=storage)
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True,
                                    sampler=make_sampler(seed), pruner=pruner)
    except Exception as err:  # SQLAlchemy and Optuna raise many kinds for a bad URL or a foreign database
        first = (str(err).strip().splitlines() or [""])[0][:160]
        raise ConfigError(f"{storage}: cannot open the study ({type(err).__name__}: {first})", "storage") from None
    study.sampler = make_sampler(seed + len(study.get_trials(deepcopy=False)))  # a continued study draws new points
    old = study.user_attrs
    if not old:
        for key, value in setup.items():
            study.set_user_attr(key, value)
        return study
    for key, param in (("objective", "objective"), ("space", "space"), ("preset", "preset"), ("config", "set"), ("seeds", "seeds")):
        if old.get(key) != setup[key]:
            raise ConfigError(f": study {name!r} in {storage} was tuned with another {key} ({_difference(old.get(key), setup[key])}); "
                              "continue it with the same flags, or pass another --out/--study-name, or --force to start over", param)
    return study


def _difference(old: Any, new: Any) -> str:
    """'KEY: OLD -> NEW' for the first differing key of two dicts, else 'OLD -> NEW'."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return f"{key}: {json.dumps(old.get(key))} -> {json.dumps(new.get(key))}"
    return f"{json.dumps(old)} -> {json.dumps(new)}"


def counts(study) -> dict[str, int]:
    """Trials by state: finished (complete + pruned) counts towards --trials; failed ones do not."""
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    out = {s.name.lower(): states.count(s) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)}
    out["finished"] = out["complete"] + out["pruned"]
    return out


def requeue(study, trials: Sequence) -> int:
    """Mark trials failed and enqueue their parameters, so the next asks re-run them; the number requeued."""
    from optuna.trial import TrialState

    for t in trials:
        study.tell(t.number, state=TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
    return len(trials)


def requeue_stale(study) -> int:
    """Trials left RUNNING by a killed `tune` (its batch unfinished) are failed and asked again."""
    from optuna.trial import TrialState

    return requeue(study, study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


# --- running batches ----------------------------------------------------------------------------


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
                requeue(self.study, [t for t in trials if t.number in _running(self.study)])
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
        self.progress(TuneProgress(
            finished=c["finished"] + pending_pruned, pruned=c["pruned"] + pending_pruned, target=self.target,
            batch=self.batches, group=group[0], num_groups=group[1], chunk=chunk, num_chunks=self.cfg.num_chunks,
            best_value=None if best is None else best.value, best_number=None if best is None else best.number,
        ))


def _running(study) -> set[int]:
    """The numbers of the study's trials asked and not yet told."""
    from optuna.trial import TrialState

    return {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}


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
        self.tuner.programs.append({"static": self.static, "runs": len(seeds), "compile_seconds": round(result.compile_seconds, 3),
                                    "compiled": result.compile_seconds > 0, "train_seconds": round(seconds, 3)})
        if result.interrupted and len(self.pruned) < len(self.trials):
            return False
        self._tell(result.metrics)
        return True

    def _train(self, seeds: list[int], grid: list[dict]):
        """driver.train_runs, resumed past diverged lanes: their trials are pruned, the others go on."""
        from . import driver
        from .program import to_host

        t = self.tuner
        resume, seconds, compile_seconds = None, 0.0, None
        while True:
            try:
                result = driver.train_runs(self.cfg, seeds, grid, preset=t.preset, devices=t.devices, batching=t.batching,
                                           progress=self._progress, after_chunk=self._keep_going, resume=resume)
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


# --- outputs ------------------------------------------------------------------------------------


def toml_value(v: Any) -> str:
    """A config value in TOML syntax (the types Config.to_dict holds)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"no TOML form for {v!r}")


def trial_values(space: dict[str, Dist], params: dict[str, Any]) -> dict[str, Any]:
    """A trial's Optuna parameters as config values."""
    return {k: space[k].value(p) for k, p in params.items()}


def best_config(cfg: Config, space: dict[str, Dist], params: dict[str, Any]) -> Config:
    """The fixed config with a trial's searched values."""
    return validate(apply(cfg, trial_values(space, params)))


def config_toml(preset: str, cfg: Config, comments: Sequence[str]) -> str:
    """A config file `train --config` runs as is: the preset and every value that differs from it."""
    base = apply(Config(), PRESETS[preset]).to_dict()
    lines = [f"# {c}" for c in comments] + [f"preset = {json.dumps(preset)}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in cfg.to_dict().items() if v != base[k]]
    return "\n".join(lines) + "\n"


def trials_csv(study, space: dict[str, Dist]) -> str:
    """One row per trial: number, state, value, the three objectives, its parameters, why it was pruned."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["number", "state", "value", *OBJECTIVES, *space, "pruned", "retry_of", "seconds"])
    for t in study.get_trials(deepcopy=False):
        seconds = t.duration.total_seconds() if t.duration else ""
        params = [_show(space[k].value(t.params[k])) if k in t.params else "" for k in space]
        w.writerow([t.number, t.state.name, "" if t.value is None else t.value, *(trial_scores(t).get(k, "") for k in OBJECTIVES),
                    *params, t.user_attrs.get("pruned", ""), t.user_attrs.get("retry_of", ""),
                    seconds if seconds == "" else round(seconds, 3)])
    return buf.getvalue()


def write_plots(out: Path, study) -> dict[str, str]:
    """Optuna's optimization history and parameter importances as PNGs; {file: "written" or why not}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    optuna = import_optuna()
    from optuna.visualization import matplotlib as vis

    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    notes = {}
    plots = {
        "optimization_history.png": (1, lambda: vis.plot_optimization_history(study)),
        "param_importances.png": (2, lambda: vis.plot_param_importances(study, evaluator=_evaluator(optuna))),
    }
    for name, (least, draw) in plots.items():
        if complete < least:
            notes[name] = f"skipped: needs {least} complete trial(s), the study has {complete}"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                ax = draw()
                figure = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
                figure.tight_layout()
                with replacing(out / name) as tmp:
                    figure.savefig(tmp, format="png", dpi=100)
                plt.close(figure)
            notes[name] = "written"
        except Exception as err:  # a plot is never worth losing the study's results over; say why it is missing
            notes[name] = f"skipped: {type(err).__name__}: {(str(err).splitlines() or [''])[0][:160]}"
    return notes


def _evaluator(optuna):
    """PED-ANOVA (numpy only; Optuna's fANOVA would need scikit-learn), where this Optuna has it."""
    return optuna.importance.PedAnovaImportanceEvaluator() if hasattr(optuna.importance, "PedAnovaImportanceEvaluator") else None
