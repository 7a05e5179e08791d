"""The Optuna side of `cartpole-jax tune`: objectives and their scores, the sampler and pruner, opening
(or continuing) a study in its storage, and trial bookkeeping. Optuna is imported inside the functions.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import SOLVED_RETURN, Config, ConfigError
from ..errors import UsageError
from .space import Dist

OBJECTIVES = {
    "final_return": "mean over seeds of the final greedy eval return",
    "solved_fraction": f"fraction of seeds whose final greedy eval return is >= {SOLVED_RETURN:g}",
    "auc": "mean greedy eval return over all evaluations, averaged over seeds (rewards fast learning)",
}
SECONDARY = {"final_return": "auc", "solved_fraction": "auc", "auc": "final_return"}  # breaks ties between equal values
PRUNERS = ("median", "halving", "none")


def scores(metrics: np.ndarray) -> dict[str, float] | None:
    """All three objectives of one trial from its seeds' metrics (seeds, evals, columns) so far; None before any eval.

    With a partial table, "final" is each seed's latest evaluation: the intermediate values pruners compare.
    """
    from ..core.types import METRIC  # here, not at the top: parsing a space loads no jax

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
        study = optuna.create_study(
            storage=storage, study_name=name, direction="maximize", load_if_exists=True, sampler=make_sampler(seed), pruner=pruner
        )
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
            raise ConfigError(
                f": study {name!r} in {storage} was tuned with another {key} ({_difference(old.get(key), setup[key])}); "
                "continue it with the same flags, or pass another --out/--study-name, or --force to start over",
                param,
            )
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


def running(study) -> set[int]:
    """The numbers of the study's trials asked and not yet told."""
    from optuna.trial import TrialState

    return {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
