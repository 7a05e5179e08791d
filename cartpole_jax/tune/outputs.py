"""What `cartpole-jax tune` writes: best.toml (a config `train --config` runs as is), trials.csv, and
Optuna's plots as PNG.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..atomic import replacing
from ..config import PRESETS, Config, apply
from .space import Dist, show_value
from .study import OBJECTIVES, import_optuna, trial_scores


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
        params = [show_value(space[k].value(t.params[k])) if k in t.params else "" for k in space]
        w.writerow(
            [
                t.number,
                t.state.name,
                "" if t.value is None else t.value,
                *(trial_scores(t).get(k, "") for k in OBJECTIVES),
                *params,
                t.user_attrs.get("pruned", ""),
                t.user_attrs.get("retry_of", ""),
                seconds if seconds == "" else round(seconds, 3),
            ]
        )
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
