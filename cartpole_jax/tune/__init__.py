"""Hyperparameter search with Optuna: each batch of asked trials × seeds trains in one compiled call.

`space` parses and checks what is searched, `study` holds the Optuna side (objectives, sampler, pruner,
storage), `runner` trains the batches and `outputs` writes best.toml, trials.csv and the plots.

    >>> from cartpole_jax.tune import parse_space
    >>> parse_space(["gamma=0.95:0.999"])["gamma"].kind
    'float'
"""

from .outputs import config_toml, toml_value, trials_csv, write_plots
from .runner import TuneProgress, Tuner, group_trials, heal, lane_trials, lanes
from .space import FORMS, MAX_STATIC, Dist, best_config, check_space, load_space_file, parse_space, parse_spec, static_configs, trial_values
from .study import (
    OBJECTIVES,
    PRUNERS,
    SECONDARY,
    best_trial,
    counts,
    import_optuna,
    make_pruner,
    make_sampler,
    open_study,
    requeue,
    requeue_stale,
    scores,
    setup_attrs,
    trial_scores,
)

__all__ = [
    "FORMS",
    "MAX_STATIC",
    "OBJECTIVES",
    "PRUNERS",
    "SECONDARY",
    "Dist",
    "TuneProgress",
    "Tuner",
    "best_config",
    "best_trial",
    "check_space",
    "config_toml",
    "counts",
    "group_trials",
    "heal",
    "import_optuna",
    "lane_trials",
    "lanes",
    "load_space_file",
    "make_pruner",
    "make_sampler",
    "open_study",
    "parse_space",
    "parse_spec",
    "requeue",
    "requeue_stale",
    "scores",
    "setup_attrs",
    "static_configs",
    "toml_value",
    "trial_scores",
    "trial_values",
    "trials_csv",
    "write_plots",
]
