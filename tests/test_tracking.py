"""--log tensorboard / wandb: what the loggers hold equals metrics.csv, step for step, across an interrupted and resumed run."""

import csv
import glob
import json
import shutil
import signal
import struct
import sys
from pathlib import Path

import pytest

from cartpole_jax import tracking
from cartpole_jax.cli import main
from cartpole_jax.errors import UsageError

# 3 chunks of 400 env steps, an evaluation at the end of each; a checkpoint after every chunk.
TINY = ["total_env_steps=1200", "num_envs=2", "buffer_size=500", "batch_size=32", "learning_starts=200",
        "hidden_sizes=[16,16]", "eval_every=400", "eval_episodes=4", "num_chunks=3", "checkpoint_every=1"]
SETS = [a for s in TINY for a in ("--set", s)]
CHUNK_ENDS = [400, 800, 1200]


def csv_points(run_dir: Path) -> dict[int, dict[str, list[tuple[int, float]]]]:
    """metrics.csv as {run: {logged name: [(env step, value)]}}, empty cells left out as the loggers leave out NaNs."""
    out: dict[int, dict[str, list]] = {}
    with open(run_dir / "metrics.csv") as f:
        for row in csv.DictReader(f):
            tags = out.setdefault(int(row["run"]), {})
            for col, tag in tracking.TAGS.items():
                if row[col]:
                    tags.setdefault(tag, []).append((int(row["env_step"]), float(row[col])))
    return out


def assert_same(logged: list[tuple[int, float]], expected: list[tuple[int, float]]) -> None:
    assert [s for s, _ in logged] == [s for s, _ in expected]  # every step once, in order: none repeated, none missing
    assert [v for _, v in logged] == pytest.approx([v for _, v in expected], rel=1e-5)  # the CSV keeps 6 digits


def test_parse_loggers(monkeypatch):
    assert tracking.parse(["tensorboard,wandb", "tensorboard"]) == ("tensorboard", "wandb")
    assert tracking.parse(["none"]) == () == tracking.parse([])
    with pytest.raises(UsageError, match="'mlflow' is not a logger") as err:
        tracking.parse(["tensorboard,mlflow"])
    assert err.value.param == "log"
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # as if not installed
    with pytest.raises(UsageError, match=r"pip install 'cartpole-jax\[tensorboard\]'"):
        tracking.parse(["tensorboard"])


def test_missing_extra_exits_2_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)
    run = str(tmp_path / "run")
    for argv in (["train", "--out", run, *SETS], ["sweep", "--grid", "gamma=0.9,0.99", "--out", run, *SETS], ["resume", run]):
        assert main([*argv, "--log", "wandb"]) == 2
        err = capsys.readouterr().err
        assert "--log wandb needs the wandb package" in err and "pip install 'cartpole-jax[wandb]'" in err
        assert not (tmp_path / "run").exists()


@pytest.fixture
def stop_after_chunk(monkeypatch):
    """Send this process SIGINT right after the tracker has logged chunk `at[0]` (train then saves and exits 130)."""
    at = [None]
    feed = tracking.Tracker.feed

    def stopping_feed(self, runs, start_env_steps=0):
        update = feed(self, runs, start_env_steps)

        def then_stop(p):
            update(p)
            if p.chunk == at[0]:
                signal.raise_signal(signal.SIGINT)

        return then_stop

    monkeypatch.setattr(tracking.Tracker, "feed", stopping_feed)
    return at


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """W&B offline, its settings and caches under tmp_path: nothing leaves the machine or touches ~."""
    pytest.importorskip("wandb")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_loggers_hold_metrics_csv_across_an_interrupted_and_resumed_run(tmp_path, stop_after_chunk, offline_wandb):
    out = tmp_path / "run"
    stop_after_chunk[0] = 2
    assert main(["train", "--out", str(out), "--seeds", "2", "--quiet", "--log", "tensorboard,wandb", *SETS]) == 130
    # As if killed after chunk 2 was logged but before its checkpoint: resume repeats chunk 2, which must not be logged twice.
    shutil.rmtree(out / "checkpoints" / "2")
    stop_after_chunk[0] = None
    assert main(["resume", str(out), "--quiet"]) == 0  # no --log: it continues the loggers the run used
    expected = csv_points(out)
    check_tensorboard(out, expected)
    check_wandb(out, expected)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["statistics"]["final_eval_return"]["n"] == 2


def check_tensorboard(out: Path, expected: dict) -> None:
    """Parsed back with TensorBoard's own reader: each run's scalars are metrics.csv's, and its hparams the config."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    dirs = sorted((out / "tensorboard").iterdir())
    assert [d.name for d in dirs] == ["run000-seed0", "run001-seed1"]
    for i, d in enumerate(dirs):
        acc = EventAccumulator(str(d), size_guidance={"scalars": 0}, purge_orphaned_data=False)  # keep repeats visible
        acc.Reload()
        assert set(acc.Tags()["scalars"]) == {*expected[i], tracking.RATE}
        for tag, points in expected[i].items():
            assert_same([(e.step, e.value) for e in acc.Scalars(tag)], points)
        assert [e.step for e in acc.Scalars(tracking.RATE)] == CHUNK_ENDS
        assert all(e.value > 0 for e in acc.Scalars(tracking.RATE))
        start = plugin_data_pb2.HParamsPluginData.FromString(acc.PluginTagToContent("hparams")["_hparams_/session_start_info"])
        hparams = start.session_start_info.hparams
        assert hparams["seed"].number_value == i and hparams["hidden_sizes"].string_value == "[16, 16]"


def check_wandb(out: Path, expected: dict) -> None:
    """One offline W&B run per seed (resumed under the same id), grouped by the run directory, its history metrics.csv's."""
    ids = json.loads((out / tracking.RECORD).read_text())["wandb"]["ids"]
    for i, run_id in enumerate(ids):
        # W&B names a run's directory by its start second, adding "-1" when a resume starts within the same second.
        paths = sorted(glob.glob(str(out / "wandb" / f"offline-run-*-{run_id}*" / f"run-{run_id}.wandb")),
                       key=lambda p: (Path(p).parent.name.split("-")[2], len(Path(p).parent.name), Path(p).parent.name))
        assert len(paths) == 2  # started, then resumed
        records = [r for path in paths for r in wandb_records(path)]
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        assert run.run_group == str(out.resolve()) and run.display_name == f"run/run00{i}-seed{i}"
        history = [r.history for r in records if r.WhichOneof("record_type") == "history"]
        rows = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in h.item} for h in history]
        for tag, points in expected[i].items():
            assert_same([(row["env_step"], row[tag]) for row in rows if tag in row], points)
        assert [row["env_step"] for row in rows if tracking.RATE in row] == CHUNK_ENDS


def wandb_records(path: str) -> list:
    """The records of an offline run's .wandb file: a LevelDB log (32 KiB blocks of crc, length, type, data) after a 7-byte header."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B"
    pos, pieces, records = 7, [], []
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        length, kind = struct.unpack("<HB", data[pos + 4: pos + 7])
        pieces.append(data[pos + 7: pos + 7 + length])
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            records.append(wandb_internal_pb2.Record.FromString(b"".join(pieces)))
            pieces = []
    return records
