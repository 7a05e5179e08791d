"""Statistics over seeds on hand-computable inputs; sweep_points.csv and `compare` on real and hand-made run directories."""

import csv
import json
import math

import numpy as np
import pytest

from cartpole_jax import stats
from cartpole_jax.cli import main

# test_tracking.py's config; with 2 runs here as there, a worker that ran it reuses its compiled program
TINY = ["total_env_steps=1200", "num_envs=2", "buffer_size=500", "batch_size=32", "learning_starts=200",
        "hidden_sizes=[16,16]", "eval_every=400", "eval_episodes=4", "num_chunks=3", "checkpoint_every=1"]
SETS = [a for s in TINY for a in ("--set", s)]


def test_iqm_median_mean_of_one_to_eight():
    est = stats.estimate(range(1, 9))
    assert est["n"] == 8
    assert est["iqm"]["value"] == 4.5  # the mean of 3, 4, 5, 6
    assert est["median"]["value"] == 4.5 and est["mean"]["value"] == 4.5
    for name in ("iqm", "median", "mean"):
        low, high = est[name]["ci"]
        assert 1 <= low < 4.5 < high <= 8


def test_constant_or_single_sample_ci_is_a_point_and_no_sample_has_no_value():
    for sample in ([500.0] * 5, [42.0]):
        est = stats.estimate(sample)
        assert all(est[k] == {"value": sample[0], "ci": [sample[0], sample[0]]} for k in ("iqm", "median", "mean"))
    assert stats.estimate([None, None]) == {"n": 0, **{k: {"value": None, "ci": [None, None]} for k in ("iqm", "median", "mean")}}


def test_bootstrap_is_reproducible():
    x = np.random.default_rng(3).uniform(0, 500, 16)
    assert stats.estimate(x) == stats.estimate(list(x))


def test_solved_fraction_is_wilsons_interval():
    n, k, z = 8, 5, 1.959963984540054
    p = k / n
    center, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    got = stats.solved_fraction(k, n)
    assert got["value"] == 0.625 and got["ci"] == pytest.approx([center - half, center + half], abs=1e-4)
    assert stats.solved_fraction(8, 8)["ci"][1] == 1.0 and stats.solved_fraction(0, 8)["ci"][0] == 0.0


def test_probability_of_improvement():
    x = np.random.default_rng(0).uniform(0, 500, 16)
    assert stats.probability_of_improvement(x, x)["value"] == 0.5
    assert stats.probability_of_improvement([2, 3], [0, 1]) == {"value": 1.0, "ci": [1.0, 1.0]}  # every resample: X wins
    assert stats.probability_of_improvement([1, 1], [1, 1]) == {"value": 0.5, "ci": [0.5, 0.5]}  # ties count half
    assert stats.probability_of_improvement([0, 1], [1, 2])["value"] == 0.125  # one tie among four pairs


def test_steps_to_solve_are_over_the_runs_that_solved():
    runs = [{"final_eval_return_mean": v, "first_solved_env_step": s, "solved": v >= 475}
            for v, s in ((500.0, 1000), (480.0, 3000), (100.0, None), (490.0, 2000))]
    st = stats.run_statistics(runs)
    assert st["first_solved_env_step"]["n"] == 3 and st["first_solved_env_step"]["median"]["value"] == 2000
    assert st["final_eval_return"]["n"] == 4 and st["solved_at_end"]["solved"] == 3
    assert len(stats.flat_row(st)) == len(stats.flat_columns())


def fake_run(path, finals):
    """A hand-made run directory: summary.json with these final returns."""
    path.mkdir()
    runs = [{"seed": i, "final_eval_return_mean": f, "first_solved_env_step": 1000 if f >= 475 else None, "solved": f >= 475}
            for i, f in enumerate(finals)]
    (path / "summary.json").write_text(json.dumps({"runs": runs, "env_steps_done": 10, "total_env_steps": 10}))
    return str(path)


def test_compare_a_run_with_itself(tmp_path, capsys):
    run = fake_run(tmp_path / "a", [100.0, 300.0, 500.0, 500.0])
    better = fake_run(tmp_path / "b", [500.0] * 4)
    assert main(["compare", run, run, better, "--out", str(tmp_path / "cmp")]) == 0
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    pairs = result["probability_of_improvement"]
    assert [(p["x"], p["y"]) for p in pairs] == [(run, f"{run} (2)"), (run, better), (f"{run} (2)", better)]
    assert pairs[0]["value"] == 0.5 and pairs[1]["value"] == 0.25  # vs all-500: only the two 500s tie
    assert result["profile"]["fraction_above"][better][-1] == 0.0 and result["profile"]["fraction_above"][better][0] == 1.0
    assert (tmp_path / "cmp" / "aggregates.png").stat().st_size > 0 and (tmp_path / "cmp" / "profiles.png").stat().st_size > 0
    assert "P(" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "missing"), "--out", str(tmp_path / "cmp")]) == 2


def test_sweep_points_csv_statistics_and_compare_by_point(tmp_path):
    out = tmp_path / "sweep"
    assert main(["sweep", "--grid", "learning_rate=0.01,0.02", "--seeds", "1", "--out", str(out), "--quiet",
                 "--log", "tensorboard", *SETS]) == 0
    summary = json.loads((out / "summary.json").read_text())
    points = summary["statistics"]["points"]
    assert [p["grid"] for p in points] == [{"learning_rate": 0.01}, {"learning_rate": 0.02}]
    with open(out / "sweep_points.csv") as f:
        rows = list(csv.DictReader(f))
    for row, point, run in zip(rows, points, summary["runs"], strict=True):
        assert point == {"grid": run["grid"], **stats.run_statistics([run])}
        assert float(row["learning_rate"]) == point["grid"]["learning_rate"]
        assert float(row["final_eval_return_iqm"]) == point["final_eval_return"]["iqm"]["value"]
    assert (out / "sweep.png").stat().st_size > 0
    assert sorted(d.name for d in (out / "tensorboard").iterdir()) == ["run000-seed0-learning_rate=0.01", "run001-seed0-learning_rate=0.02"]
    assert main(["compare", str(out), "--out", str(tmp_path / "cmp"), "--quiet"]) == 0
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [e["grid"] for e in result["entries"]] == [p["grid"] for p in points]
    assert len(result["probability_of_improvement"]) == 1
