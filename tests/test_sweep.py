"""Sweeps: grid parsing and expansion, one-line errors, a sweep run == the same run trained alone."""

import csv
import json
import subprocess
import sys

import pytest

from cartpole_jax.cli import main
from cartpole_jax.config import Config, ConfigError
from cartpole_jax.policy import load_policy
from cartpole_jax.sweep import parse_grid, plan_runs, split_values

TINY = ["total_env_steps=1200", "num_envs=2", "buffer_size=500", "batch_size=32", "learning_starts=200",
        "hidden_sizes=[16,16]", "eval_every=400", "eval_episodes=4", "num_chunks=3"]
SETS = [a for s in TINY for a in ("--set", s)]


def test_split_values_respects_brackets_and_quotes():
    assert split_values("[32,32],[64,64]") == ["[32,32]", "[64,64]"]
    assert split_values('"a,b",c') == ['"a,b"', "c"]
    assert split_values("{decay = 0.9, eps = 0.1},{}") == ["{decay = 0.9, eps = 0.1}", "{}"]
    with pytest.raises(ValueError):
        split_values("[1,2")


def test_parse_grid_types_and_order():
    grid = parse_grid(["gamma=0.9,0.99", "hidden_sizes=[32,32],[64]", "activation=relu,tanh", "dueling=true,false"])
    assert list(grid) == ["gamma", "hidden_sizes", "activation", "dueling"]
    assert grid == {"gamma": [0.9, 0.99], "hidden_sizes": [[32, 32], [64]], "activation": ["relu", "tanh"], "dueling": [True, False]}


def test_expansion_product_seeds_and_programs():
    grid = parse_grid(["learning_rate=1e-3,3e-3", "hidden_sizes=[16,16],[8]", "gamma=0.9,0.99"])
    run_grid, run_seeds, groups = plan_runs(Config(), grid, [5, 6])
    assert len(run_grid) == len(run_seeds) == 2 * 2 * 2 * 2
    assert run_seeds[:4] == [5, 6, 5, 6]  # seeds vary fastest, first grid key slowest
    assert run_grid[0] == {"learning_rate": 1e-3, "hidden_sizes": [16, 16], "gamma": 0.9}
    assert run_grid[-1] == {"learning_rate": 3e-3, "hidden_sizes": [8], "gamma": 0.99}
    assert len(groups) == 2  # one program per hidden_sizes; learning_rate and gamma are batched
    assert [g.config.hidden_sizes for g in groups] == [(16, 16), (8,)]
    assert sorted(i for g in groups for i in g.runs) == list(range(16))
    assert all(run_grid[i]["hidden_sizes"] == list(g.config.hidden_sizes) for g in groups for i in g.runs)
    _, _, vmap_only = plan_runs(Config(), parse_grid(["learning_rate=1e-3,3e-3", "tau=0.1,1"]), [0])
    assert len(vmap_only) == 1 and len(vmap_only[0].runs) == 4


def test_int_values_are_coerced_like_set():
    run_grid, _, _ = plan_runs(Config(), parse_grid(["learning_rate=1,2"]), [0])
    assert run_grid == [{"learning_rate": 1.0}, {"learning_rate": 2.0}]
    assert isinstance(run_grid[0]["learning_rate"], float)


GRID_ERRORS = {
    "unknown key": (["lerning_rate=1e-3"], "did you mean 'learning_rate'"),
    "wrong type": (["learning_rate=fast,1e-3"], "learning_rate must be"),
    "out of range": (["gamma=0.9,1.5"], "gamma must be"),
    "bad layer": (["hidden_sizes=[16,0]"], "hidden_sizes must be"),
    "bad combination": (["batch_size=32,1000"], "batch_size must be in [1, buffer_size=500]"),
    "empty list": (["gamma="], "empty value list"),
    "empty value": (["gamma=0.9,,0.99"], "empty value"),
    "duplicate key": (["gamma=0.9", "gamma=0.99"], "given twice"),
    "no equals": (["gamma"], "--grid expects KEY=V1,V2"),
    "unclosed bracket": (["hidden_sizes=[16,16"], "malformed"),
    "duplicate value": (["gamma=0.9,0.90"], "appears twice"),
}


@pytest.fixture(scope="module")
def grid_error_runs(tmp_path_factory):
    """Every error case as its own `python -m cartpole_jax sweep` process, started together to save wall time."""
    procs = {}
    for name, (grid, _) in GRID_ERRORS.items():
        out = tmp_path_factory.mktemp("err") / "out"
        argv = [sys.executable, "-m", "cartpole_jax", "sweep", *SETS, "--out", str(out), "--quiet"]
        for g in grid:
            argv += ["--grid", g]
        procs[name] = (subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), out)
    results = {}
    for name, (p, out) in procs.items():
        stderr = p.communicate(timeout=300)[1]
        results[name] = (p.returncode, stderr, out)
    return results


@pytest.mark.parametrize("case", list(GRID_ERRORS))
def test_grid_errors_exit_2_with_one_line(case, grid_error_runs):
    code, stderr, out = grid_error_runs[case]
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("cartpole-jax: error: "), stderr
    assert GRID_ERRORS[case][1] in lines[0]
    assert not out.exists()  # nothing written


def test_missing_grid_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", *SETS])
    assert exc.value.code == 2
    assert "--grid" in capsys.readouterr().err


def test_sweep_run_equals_train_alone_and_writes_outputs(tmp_path, capsys):
    """Each run's bits are independent of the runs sharing its program, across two static programs."""
    out = tmp_path / "sweep"
    grid = ["learning_rate=1e-3,3e-3", "gamma=0.9,0.99", "hidden_sizes=[16,16],[8]"]
    argv = ["sweep", *SETS, "--seeds", "2", "--out", str(out), "--quiet"]
    for g in grid:
        argv += ["--grid", g]
    assert main(argv) == 0
    assert "needs 2 compiled programs" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_runs"] == 16 and summary["num_programs"] == summary["num_programs_compiled"] == 2
    assert summary["num_devices"] == 1 and summary["grid"]["gamma"] == [0.9, 0.99]
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert len(rows) == 16 and rows[0].keys() >= {"learning_rate", "gamma", "hidden_sizes", "seed", "solved"}
    for name in ("config.json", "metrics.csv", "learning_curve.png", "sweep.png", "policy-0.npz", "policy-1.npz"):
        assert (out / name).stat().st_size > 0, name

    # run 11 = 8 (learning_rate=3e-3) + 0 (gamma=0.9) + 2 (hidden_sizes=[8]) + 1 (seed 1)
    target = summary["runs"][11]
    assert target["seed"] == 1 and target["grid"] == {"learning_rate": 3e-3, "gamma": 0.9, "hidden_sizes": [8]}
    assert target["policy"] == {"file": "policy-1.npz", "index": 5}
    assert load_policy(out / "policy-1.npz", 5).seed == 1
    alone = tmp_path / "alone"
    sets = [*SETS, "--set", "learning_rate=3e-3", "--set", "gamma=0.9", "--set", "hidden_sizes=[8]"]
    assert main(["train", *sets, "--seed", "1", "--seeds", "1", "--out", str(alone), "--quiet"]) == 0
    run = json.loads((alone / "summary.json").read_text())["runs"][0]
    assert run["params_sha256"] == target["params_sha256"]
    assert run["final_eval_return_mean"] == target["final_eval_return_mean"]


def test_existing_out_dir_is_kept(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        from cartpole_jax.commands import sweep as cmd

        args = type("A", (), {})()
        ns = dict(preset=None, config=None, sets=list(TINY), grid=["gamma=0.9,0.99"], seeds=1, seed=0, devices=None, batching="auto",
                  out=str(out), force=False, quiet=True, coordinator=None, num_processes=None, process_id=None)
        args.__dict__.update(ns)
        cmd.main(args)
    assert (out / "keep.txt").read_text() == "mine"
