"""`cartpole-jax tune`: space parsing, objectives, ask/tell batches (with a stand-in trainer where the
result is known), resume after a kill, pruning in the database, and one real tiny study."""

import csv
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from cartpole_jax import driver  # noqa: E402
from cartpole_jax import tune as tn  # noqa: E402
from cartpole_jax.cli import main  # noqa: E402
from cartpole_jax.config import Config, ConfigError, resolve  # noqa: E402
from cartpole_jax.core.types import METRIC, METRIC_COLUMNS  # noqa: E402
from cartpole_jax.results import Progress  # noqa: E402

TINY = {"total_env_steps": 1200, "num_envs": 2, "buffer_size": 500, "batch_size": 32, "learning_starts": 200,
        "hidden_sizes": (16, 16), "eval_every": 400, "eval_episodes": 4, "num_chunks": 3}
SETS = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(list(v)) if isinstance(v, tuple) else v}")]


# --- space --------------------------------------------------------------------------------------


def test_space_forms_and_file(tmp_path):
    space = tn.parse_space(["learning_rate=log:1e-4:1e-1", "gamma=0.95:0.999", "eps_decay_steps=int:1000:20000",
                            "hidden_sizes=choice:[32,32],[64]", "tau=choice:0.01,1"])
    assert [(d.kind, d.static) for d in space.values()] == [("log", False), ("float", False), ("int", False), ("choice", True),
                                                            ("choice", False)]
    assert space["hidden_sizes"].choices == ([32, 32], [64]) and space["hidden_sizes"].labels() == ["[32, 32]", "[64]"]
    assert space["hidden_sizes"].value("[64]") == [64] and space["eps_decay_steps"].lo == 1000
    assert {k: tn.parse_spec(k, d.spec()) for k, d in space.items()} == space  # spec() round-trips
    f = tmp_path / "space.toml"
    f.write_text('[space]\nlearning_rate = "log:1e-4:1e-1"\nactivation = ["relu", "tanh"]\n')
    from_file = tn.parse_space(["gamma=0.9:0.99"], f)
    assert list(from_file) == ["gamma", "learning_rate", "activation"] and from_file["activation"].choices == ("relu", "tanh")
    tn.check_space(Config(), {**space, **from_file})
    assert len(tn.static_configs(Config(), {**space, **from_file})) == 4  # 2 hidden_sizes × 2 activations


BAD = [
    ("learning_rate=log:0:1e-1", "lo > 0"),
    ("learning_rate=log:-1:1", "lo > 0"),
    ("gamma=0.99:0.9", "empty range"),
    ("gamma=0.9:0.9", "empty range"),
    ("gama=0.9:0.99", "did you mean 'gamma'"),
    ("hidden_sizes=16:64", "static"),
    ("batch_size=int:16:64", "static"),
    ("learning_rate=1e-3", "malformed"),
    ("learning_rate=log:1e-4:1e-1:2", "malformed"),
    ("learning_rate=abc:1", "not a number"),
    ("gamma=0.9:1.5", "outside the field's range"),
    ("eps_decay_steps=int:1.5:10", "whole numbers"),
    ("learning_rate=nan:1", "finite"),
    ("hidden_sizes=choice:", "empty choice"),
    ("hidden_sizes=choice:[8],[8]", "twice"),
    ("hidden_sizes=choice:[0]", "hidden_sizes"),
    ("activation=choice:relu,sigmoid", "activation"),
    ("eps_end=0.5:1", "eps_end"),  # above eps_start=1 nowhere, but with --set eps_start=0.8 below it is
    ("learning_rate", "KEY=SPEC"),
]


@pytest.mark.parametrize(("spec", "says"), BAD, ids=[s for s, _ in BAD])
def test_bad_space_is_one_line_exit_2(spec, says, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["tune", *SETS, "--set", "eps_start=0.8", "--space", spec, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cartpole-jax: error: --space") and says in err[0], err
    assert not out.exists()


def test_space_errors_carry_the_param(tmp_path):
    with pytest.raises(ConfigError) as exc:
        tn.parse_space(["gamma=0.9:0.99", "gamma=0.9:0.95"])
    assert exc.value.param == "space" and "twice" in exc.value.message
    with pytest.raises(ConfigError, match="nothing to search"):
        tn.parse_space([])
    (tmp_path / "s.toml").write_text("learning_rate = 'log:1e-4:1'\n")
    with pytest.raises(ConfigError) as exc:
        tn.parse_space([], tmp_path / "s.toml")
    assert exc.value.param == "space-file"


# --- objectives ---------------------------------------------------------------------------------


def test_scores_aggregate_over_seeds():
    m = np.full((2, 4, len(METRIC_COLUMNS)), np.nan, np.float32)
    m[:, :3, METRIC["eval_return_mean"]] = [[100, 300, 500], [50, 450, 400]]
    s = tn.scores(m)  # 3 of 4 evaluations written: "final" is the latest
    assert s == {"final_return": 450.0, "solved_fraction": 0.5, "auc": pytest.approx((300 + 300) / 2)}
    assert tn.scores(np.full((2, 4, len(METRIC_COLUMNS)), np.nan)) is None


# --- ask/tell with a stand-in trainer -------------------------------------------------------------


def fake_train(final, calls: list):
    """driver.train_runs' stand-in: run i's eval return climbs linearly to final(cfg, grid[i]) over the chunks;
    compile_seconds > 0 only the first time a (static config, run count) is seen, as Program's cache does."""
    seen = set()

    def train_runs(cfg, seeds, grid, *, progress=None, after_chunk=None, resume=None, **kwargs):
        key = (cfg.static_key(), len(seeds))
        calls.append({"hidden_sizes": list(cfg.hidden_sizes), "runs": len(seeds), "grid": grid})
        compiled, _ = key not in seen, seen.add(key)
        target = np.array([final(cfg, g) for g in grid], np.float32)[:, None]
        m = np.full((len(seeds), cfg.num_evals, len(METRIC_COLUMNS)), np.nan, np.float32)
        done = cfg.num_chunks
        for c in range(1, cfg.num_chunks + 1):
            rows = -(-c * cfg.num_evals // cfg.num_chunks)
            m[:, :rows, METRIC["env_step"]] = (np.arange(rows) + 1) * cfg.eval_every
            m[:, :rows, METRIC["eval_return_mean"]] = target * (np.arange(rows) + 1) / cfg.num_evals
            if progress:
                progress(Progress.of(cfg, m.copy(), c, 0.1))
            if after_chunk and after_chunk(c, None, None) is False and c < cfg.num_chunks:
                done = c
                break
        return SimpleNamespace(metrics=m, compile_seconds=1.0 if compiled else 0.0, train_seconds=0.1,
                               interrupted=done < cfg.num_chunks)

    return train_runs


def peak_at_1e2(cfg, g):
    """A return of 500 at learning_rate 1e-2, falling off in log-space: the known optimum."""
    return 500.0 * math.exp(-((math.log10(g["learning_rate"]) + 2) ** 2))


def study(tmp_path=None, pruner="none"):
    """A study in memory, or in SQLite under tmp_path (each write a commit: slower)."""
    storage = tmp_path and f"sqlite:///{tmp_path / 'study.db'}"
    return optuna.create_study(storage=storage, study_name="t", direction="maximize", sampler=tn.make_sampler(0),
                               pruner=tn.make_pruner(pruner, Config(**TINY)))


def test_study_finds_a_known_optimum_in_one_call_per_batch(monkeypatch):
    calls = []
    monkeypatch.setattr(driver, "train_runs", fake_train(peak_at_1e2, calls))
    space = tn.parse_space(["learning_rate=log:1e-5:1", "gamma=0.9:0.999"])
    s = study()
    tuner = tn.Tuner(s, Config(**TINY), space, [0, 1, 2], "final_return")
    assert tuner.run(trials=32, batch=8)
    assert tn.counts(s)["complete"] == 32 and len(calls) == 4 and {c["runs"] for c in calls} == {24}  # 8 trials × 3 seeds
    assert calls[0]["grid"][:4] == [calls[0]["grid"][0]] * 3 + [calls[0]["grid"][3]]  # seeds vary fastest
    best = tn.best_trial(s, "final_return")
    assert abs(math.log10(best.params["learning_rate"]) + 2) < 0.5 and best.value > 390
    assert sum(p["compiled"] for p in tuner.programs) == 1


def test_static_choices_group_into_few_programs(monkeypatch):
    calls = []
    monkeypatch.setattr(driver, "train_runs", fake_train(lambda cfg, g: 100.0 * len(cfg.hidden_sizes), calls))
    space = tn.parse_space(["learning_rate=log:1e-4:1e-1", "hidden_sizes=choice:[8],[16],[8,8]"])
    tuner = tn.Tuner(study(), Config(**TINY), space, [0, 1], "auc")
    assert tuner.run(trials=24, batch=8)
    for c in calls:  # each call is one static combination, its trials padded to a power of two <= the batch
        assert c["runs"] in (2, 4, 8, 16) and len({json.dumps(g) for g in c["grid"]}) <= c["runs"] // 2
    keys = {(json.dumps(p["static"]), p["runs"]) for p in tuner.programs}
    assert sum(p["compiled"] for p in tuner.programs) == len(keys) <= 3 * 4
    assert tn.best_trial(tuner.study, "auc").params["hidden_sizes"] == "[8, 8]"


def test_ties_are_broken_by_the_secondary_objective(monkeypatch):
    # Both choices end solved on every seed (solved_fraction 1), but 1e-2 gets there faster (higher AUC).
    monkeypatch.setattr(driver, "train_runs", fake_train(lambda cfg, g: 480.0 + 1e3 * g["learning_rate"], []))
    space = tn.parse_space(["learning_rate=choice:1e-3,1e-2"])
    s = study()
    tn.Tuner(s, Config(**TINY), space, [0, 1], "solved_fraction").run(trials=6, batch=6)
    values = {t.value for t in s.trials}
    assert values == {1.0} and tn.best_trial(s, "solved_fraction").params["learning_rate"] == 1e-2


def test_pruned_trials_are_recorded_as_pruned(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(driver, "train_runs", fake_train(peak_at_1e2, calls))
    space = tn.parse_space(["learning_rate=log:1e-5:1"])
    tuner = tn.Tuner(study(tmp_path, "halving"), Config(**TINY), space, [0, 1], "final_return")
    assert tuner.run(trials=8, batch=8)
    reloaded = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 'study.db'}")
    pruned = [t for t in reloaded.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and tn.counts(reloaded)["finished"] == 8
    assert all(t.user_attrs["pruned"].startswith("pruned at env step") and t.intermediate_values for t in pruned)
    complete = [t.value for t in reloaded.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert max(complete) >= max(t.value for t in pruned) and not any("scores" in t.user_attrs for t in pruned)


def test_resume_after_a_kill_keeps_finished_trials(tmp_path, monkeypatch, capsys):
    """A first tune finishes one batch; a killed second one leaves trials RUNNING; the third fails and re-asks them."""
    calls = []
    monkeypatch.setattr(driver, "train_runs", fake_train(peak_at_1e2, calls))
    out = tmp_path / "tune"
    argv = ["tune", *SETS, "--space", "learning_rate=log:1e-4:1", "--space", "hidden_sizes=choice:[8],[16]",
            "--seeds", "2", "--batch", "4", "--out", str(out), "--quiet", "--objective", "auc", "--pruner", "none"]
    assert main([*argv, "--trials", "4"]) == 0
    db = f"sqlite:///{out / 'study.db'}"
    first = {t.number: (t.value, t.params) for t in optuna.load_study(study_name="cartpole-jax-tune", storage=db).trials}
    killed = optuna.load_study(study_name="cartpole-jax-tune", storage=db)
    dists = {k: d.distribution() for k, d in tn.parse_space(["learning_rate=log:1e-4:1", "hidden_sizes=choice:[8],[16]"]).items()}
    stale = [killed.ask(dists) for _ in range(2)]  # what a SIGKILL mid-batch leaves behind

    assert main([*argv, "--trials", "8"]) == 0
    assert "2 trial(s) of an unfinished batch were left running" in capsys.readouterr().err
    s = optuna.load_study(study_name="cartpole-jax-tune", storage=db)
    assert {t.number: (t.value, t.params) for t in s.trials if t.number in first} == first
    assert tn.counts(s) == {"complete": 8, "pruned": 0, "fail": 2, "running": 0, "finished": 8}
    retried = {t.user_attrs["retry_of"]: t.params for t in s.trials if "retry_of" in t.user_attrs}
    assert retried == {t.number: t.params for t in stale}

    summary = json.loads((out / "tune_summary.json").read_text())
    assert summary["trials"]["finished"] == 8 and summary["objective"] == "auc"
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 10 and rows[0].keys() >= {"number", "state", "value", "learning_rate", "hidden_sizes", "auc"}
    text = (out / "best.toml").read_text()
    assert "objective auc" in text.splitlines()[1]
    preset, cfg = resolve(None, out / "best.toml")
    assert preset == "default"
    best = summary["best"]["params"]
    assert cfg == Config(**{**TINY, "learning_rate": best["learning_rate"], "hidden_sizes": tuple(best["hidden_sizes"])})
    assert (out / "optimization_history.png").stat().st_size > 0

    assert main([*argv, "--trials", "8", "--objective", "final_return"]) == 2  # another objective: refused
    assert "--objective" in capsys.readouterr().err


# --- the real trainer -----------------------------------------------------------------------------


def test_real_study_one_program_and_a_diverging_trial():
    """Real training, one compiled program: a trial whose loss goes non-finite is pruned and the others finish."""
    from cartpole_jax.program import Program

    Program.clear_cache()  # another test in this worker may have compiled the same program: this one must compile it
    s = study()
    space = tn.parse_space(["learning_rate=choice:1e-2,1e30,3e-3"])
    for lr in (1e-2, 1e30, 3e-3, 1e30):
        s.enqueue_trial({"learning_rate": lr})
    tuner = tn.Tuner(s, Config(**TINY), space, [0, 1], "final_return")
    assert tuner.run(trials=4, batch=4)
    states = {t.params["learning_rate"]: t.state.name for t in s.trials}
    assert states == {1e-2: "COMPLETE", 1e30: "PRUNED", 3e-3: "COMPLETE"}
    assert all("non-finite" in t.user_attrs["pruned"] for t in s.trials if t.state.name == "PRUNED")
    assert all(0 < t.user_attrs["scores"]["auc"] <= 500 for t in s.trials if t.state.name == "COMPLETE")
    assert [p["runs"] for p in tuner.programs] == [8] and tuner.programs[0]["compiled"]  # one call, resumed past the NaN
