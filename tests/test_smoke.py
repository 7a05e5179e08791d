"""End to end: the CLI trains and writes a complete run directory."""

import json

from cartpole_jax.cli import main


def test_train_writes_run_dir(tmp_path, capsys):
    out = tmp_path / "run"
    sets = ["total_env_steps=1200", "num_envs=2", "buffer_size=500", "batch_size=32", "learning_starts=200",
            "hidden_sizes=[16,16]", "eval_every=400", "eval_episodes=4", "num_chunks=3"]
    argv = ["train", "--seeds", "2", "--out", str(out), "--quiet"]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "metrics.csv", "summary.json", "policy.npz", "learning_curve.png"} <= names
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_seeds"] == 2 and [r["seed"] for r in summary["runs"]] == [0, 1]
    # the whole wall time is accounted for: startup (imports, checks, planning), compile, train, outputs
    parts = [summary[k] for k in ("startup_seconds", "compile_seconds", "train_seconds", "outputs_seconds")]
    assert all(p >= 0 for p in parts) and summary["outputs_seconds"] > 0
