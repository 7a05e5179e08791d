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


def test_scaling_sizes_follow_the_planner():
    from benchmarks.throughput import SCALING_PLANS, planned_sizes, scaling_sizes
    from cartpole_jax.planner import max_runs_per_device

    base = (1, 1024, 4096, 16384)
    assert scaling_sizes(43_000, base) == ([1, 1024, 4096, 16384, 43_000], [])
    assert scaling_sizes(3_000, base) == ([1, 1024, 3_000], [])  # sizes that would not fit are never tried
    assert scaling_sizes(43_000, base, largest=1024) == ([1, 1024], [4096, 16384, 43_000])
    assert scaling_sizes(0, base) == ([], [])
    cfg = training.timing_config("default", 2_000)
    capacity = 105 * 2**30  # about what jax leaves itself on an H200 (75% of 141 GB)
    sizes = planned_sizes(cfg, capacity, SCALING_PLANS["gpu", False])
    most = max_runs_per_device(cfg, capacity, "vmap")
    assert sizes["sizes"] == [1, 1024, 4096, 16384, most] and most > 16384
    assert sizes["peak_bytes_at_max"] <= 0.9 * capacity


def test_control_flow_counts_one_preset_quickly(tmp_path):
    out = tmp_path / "cf.json"
    script = ROOT / "benchmarks" / "control_flow.py"
    subprocess.run([sys.executable, str(script), "--quick", "--presets", "default", "--runs", "1", "--out", str(out)],
                   check=True, capture_output=True, timeout=120)
    data = json.loads(out.read_text())
    part = data["presets"]["default"]
    assert part["config"]["branch_free"] and part["config"]["steps_per_eval"] == 500  # the preset's shape, shrunk
    assert part["config"]["gradient_steps_per_step"] == 2 and part["config"]["periods_per_chunk"] == 2
    assert part["after"]["counts"]["per_step"] == 0 and part["before"]["counts"]["per_step"] == 4
    assert [r["loop"] for r in data["table"]] == ["general", "branch-free"] and data["meta"]["quick"]


def _canned_steps() -> dict:
    """What --scaling's steps return, made up: two sizes, one variant, a cold and a warm CLI run."""
    rec = lambda kind, n, sps: {"kind": kind, "num_seeds": n, "steps_per_second": sps, "compile_seconds": 5.0}
    records = [rec("train", 1, 70_000.0), rec("update_bound", 1, 100_000.0), rec("env_bound", 1, 1e6),
               rec("train", 4096, 40e6), rec("update_bound", 4096, 45e6), rec("env_bound", 4096, 1e9)]
    sizes = {"meta": {"device_kind": "fake"}, "planner": {"max_runs_per_device": 4096, "left_out": []}, "records": records, "skipped": []}
    outcome = {"returncode": 0, "seconds": 1.0, "killed_at_limit": False, "tail": []}
    cli = lambda cache, wall: {**outcome, "command": "cartpole-jax train", "seeds": 1024, "compile_cache": cache, "wall_seconds": wall}
    variant = {**outcome, "xla_flags": "--xla_gpu_enable_command_buffer=", "result": {"records": [rec("train", 1, 35_000.0)]}}
    return {"sizes": {**outcome, "result": sizes}, "cmdbuf_off": variant, "cli_cold": cli("cold", 9.5), "cli_warm": cli("warm", 4.0)}


def test_scaling_report_checks_the_targets(tmp_path):
    from benchmarks.throughput import SCALING_PLANS, assemble, write_scaling

    result = assemble(SCALING_PLANS["gpu", False], _canned_steps(), [], "gpu", False, 12.0)
    met = {(t["name"], t.get("num_seeds")): t["met"] for t in result["targets"]}
    assert met[("default_1_seed_steps_per_second", None)] is True
    assert met[("train_vs_update_bound", 1)] is False and met[("train_vs_update_bound", 4096)] is True  # 0.7 and 0.89
    assert met[("largest_count_steps_per_second", 4096)] is False  # 40M < 50M
    assert met[("cli_1024_seeds_wall_seconds", 1024)] is False  # the cold run, 9.5 s
    write_scaling(result, tmp_path)
    md = (tmp_path / "scaling.md").read_text()
    assert "| off |" in md and "0.50 |" in md  # the variant against XLA's default at 1 seed
    assert (tmp_path / "scaling.png").stat().st_size > 0 and json.loads((tmp_path / "scaling.json").read_text())["targets"]


def test_scaling_child_is_killed_at_its_limit():
    from benchmarks.throughput import child_env, run_child

    sleeper = [sys.executable, "-c", "print('started', flush=True); import time; time.sleep(30)"]
    res = run_child(sleeper, 1.0, child_env(), log=lambda s: None)
    assert res["killed_at_limit"] and res["returncode"] != 0 and res["tail"] == ["started"] and res["seconds"] < 10


def test_startup_pairs_report_medians_of_differences_by_hand():
    from benchmarks.startup import paired

    pairs = [{"ours": {"c": 4.0}, "against": {"c": 4.5}}, {"ours": {"c": 6.0}, "against": {"c": 5.0}},
             {"ours": {"c": 3.0}, "against": {"c": 3.2}}, {"ours": {}, "against": {"c": 9.9}}]  # a failed run counts in no pair
    assert paired(pairs, "c") == {"median_difference": -0.2, "ours_lower": 2, "pairs": 3, "ours_median": 4.0, "against_median": 4.5}
    assert paired(pairs, "missing")["pairs"] == 0


def test_startup_report_checks_the_cold_compile_at_any_seed_count_and_the_walls_at_8():
    from types import SimpleNamespace

    from benchmarks.startup import report

    row = lambda wall, compile_: {"wall_seconds": wall, "exit_code": 0, "compile_seconds": compile_, "train_seconds": 3.0}
    rows = {"help": [{"wall_seconds": w, "exit_code": 0} for w in (0.2, 0.1, 0.3)],
            "train_cold": [row(9.0, 3.9), row(11.0, 4.5), row(10.0, 4.2)], "train_cached": [row(6.0, 0.4)] * 3}
    at = lambda seeds: report(rows, SimpleNamespace(repeats=3, seeds=seeds, quick=False))
    eight, many = at(8), at(64)
    assert eight["median_seconds"] == {"help": 0.2, "train_cold": 10.0, "train_cached": 6.0, "compile_cold": 4.2}
    assert eight["median_summary_seconds"]["train_cold"] == {"compile_seconds": 4.2, "train_seconds": 3.0}
    assert eight["meets_targets"] == {"help": True, "train_cold": True, "train_cached": True, "compile_cold": False}
    assert many["meets_targets"] == {"help": True, "compile_cold": False}  # 64 seeds train longer: no wall target


def test_startup_against_a_checkout_runs_cold_pairs(tmp_path):
    out = tmp_path / "pairs.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "startup.py"), "--quick", "--repeats", "1", "--seeds", "1",
                           "--against", str(ROOT), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    (pair,) = data["pairs"]
    assert pair["ours"]["exit_code"] == pair["against"]["exit_code"] == 0
    assert pair["ours"]["compile_seconds"] > 0 and data["paired"]["compile_seconds"]["pairs"] == 1
    assert data["against"]["path"] == str(ROOT)
