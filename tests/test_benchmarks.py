"""The throughput benchmarks run end to end at trivial sizes and write well-formed results."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `benchmarks` is a folder of the repo, not part of the installed package

from benchmarks import envs, training  # noqa: E402
from benchmarks.throughput import Plan, benchmark  # noqa: E402

# Every preset shrunk so each compiled program builds in seconds; the structure stays the preset's.
TINY = dict(total_env_steps=2_000, buffer_size=256, batch_size=16, learning_starts=100, hidden_sizes=(8,),
            eval_every=1_000, eval_episodes=2)
TINY_PLAN = Plan(env_sizes=(4,), seeds=(1,), train_presets=("purejaxrl",), loop_presets=("purejaxrl",),
                 chunk_env_steps=(("purejaxrl", 100),), repeats=3, env_target_seconds=0.01, budget_seconds=600.0,
                 overrides=TINY)
RECORD_KEYS = {"kind", "impl", "preset", "num_envs", "num_seeds", "steps_per_second", "compile_seconds", "min", "max", "repeats"}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    benchmark(TINY_PLAN, out, log=lambda s: None)
    return out, json.loads((out / "throughput.json").read_text())


def test_writes_json_markdown_and_plots(result):
    out, _ = result
    assert {"throughput.json", "throughput.md", "env_throughput.png", "train_throughput.png"} <= {p.name for p in out.iterdir()}
    assert "## Targets" in (out / "throughput.md").read_text()


def test_every_record_has_the_schema_and_positive_numbers(result):
    _, data = result
    kinds = {r["kind"] for r in data["records"]}
    assert kinds == {"env", "train", "update_bound", "python_loop"}
    for r in data["records"]:
        assert set(r) >= RECORD_KEYS, r
        assert 0 < r["min"] <= r["steps_per_second"] <= r["max"], r
        assert r["repeats"] >= 3 and len(r["repeat_seconds"]) == r["repeats"]
        assert r["compile_seconds"] is None or r["compile_seconds"] > 0
        assert r["warmup_seconds"] >= 0


def test_records_cover_the_plan(result):
    _, data = result
    env_impls = {r["impl"] for r in data["records"] if r["kind"] == "env"}
    assert env_impls == set(envs.IMPLS)
    train = [r for r in data["records"] if r["kind"] == "train"]
    assert [(r["preset"], r["num_seeds"]) for r in train] == [("purejaxrl", 1)]
    assert train[0]["compile_seconds"] > 0 and train[0]["gradient_steps_per_seed"] > 0


def test_meta_and_ratios(result):
    _, data = result
    meta = data["meta"]
    assert meta["device_count"] >= 1 and meta["cpu_cores"] >= 1 and meta["cpu_model"]
    assert {"jax", "jaxlib", "gymnax", "gymnasium"} <= set(meta["versions"])
    names = {r["name"] for r in data["ratios"]}
    assert {"train_vs_update_bound", "compiled_vs_python_loop"} <= names
    assert all(r["value"] > 0 for r in data["ratios"])


def test_sync_vector_env_skips_large_sizes():
    assert envs.skip_reason("gymnasium_sync", 4096) and not envs.skip_reason("gymnasium_sync", 1024)
    assert not envs.skip_reason("gymnasium_vector", 1 << 20)


def test_warmup_ends_after_learning_starts():
    cfg = training.timing_config("purejaxrl", 5_000)
    assert cfg.num_chunks == 100 and cfg.chunk_len * cfg.num_envs == 5_000
    # chunks 0-1 hold the 10k env steps before learning (its first update ends chunk 1): chunk 2 is the first timed
    assert training.warmup_chunks(cfg) == 2
    assert training._chunk_updates(cfg, 2) == 500


def test_gpu_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu.sh")], check=True)


@pytest.mark.parametrize("n_step", [1, 3])
def test_update_bound_feeds_the_learner_what_replay_would(n_step):
    from cartpole_jax.config import Config

    cfg = Config(**TINY, n_step=n_step)
    compiled, args, _ = training.update_only(cfg, 2, 4)
    _, loss_sum = compiled(*args)
    assert args[2].reward.shape == ((4, 16) if n_step == 1 else (4, 16, n_step))
    assert loss_sum.shape == (2,) and all(float(x) > 0 for x in loss_sum)


def test_loop_overhead_times_a_loop_that_never_learns(capsys):
    from benchmarks import loop_overhead

    seconds = loop_overhead.loop_without_updates("purejaxrl")
    assert 0 < seconds < 0.01  # per vector step of 10 envs: microseconds, not a whole learning run


def test_kernels_benchmark_times_all_four_variants(tmp_path, capsys):
    from benchmarks import kernels as kernels_bench
    from cartpole_jax.core import kernels

    if not kernels.for_platform("cpu").thin_as_sums:
        pytest.skip("this jaxlib's CPU compiler does not take the option")
    out = tmp_path / "kernels.json"
    assert kernels_bench.main(["--updates", "20", "--repeats", "2", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows] == list(kernels_bench.VARIANTS)
    assert all(0 < r["min_us"] <= r["median_us"] for r in rows) and rows[0]["speedup_vs_matmuls"] == 1.0


def test_reliability_record_counts_by_hand():
    import numpy as np

    from benchmarks.reliability_sweep import point_record

    runs = [{"solved": True, "first_solved_env_step": 4000}, {"solved": False, "first_solved_env_step": 2000},
            {"solved": False, "first_solved_env_step": None}]
    evals = np.array([[100.0, 500.0], [480.0, 300.0], [50.0, 460.0]])
    rec = point_record("g", ["x=1"], {"gamma": 0.9}, [7, 8, 9], runs, evals, np.array([2000.0, 4000.0]))
    assert (rec["end"], rec["ever"], rec["seed_start"], rec["seeds"]) == (1, 2, 7, 3)
    assert rec["median_first"] == 4000.0  # of 2000, 4000 and never
    assert rec["frac_by_eval"] == [round(1 / 3, 3), round(1 / 3, 3)]
    assert rec["final_hist"] == [0, 1, 0, 1, 0, 1]  # 300 in [300, 400), 460 in [450, 475), 500 in [490, 501)
    two_never = point_record("g", [], {}, [0, 1], runs[1:], evals[1:], np.array([2000.0, 4000.0]))
    assert two_never["median_first"] is None  # the median is "never"
