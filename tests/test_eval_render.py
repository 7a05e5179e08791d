"""`eval` and `render` on hand-made policies whose behaviour is known without training.

A linear rule `push right iff w · obs > 0` is written as a 2-unit ReLU network:
hidden = relu([z, -z]), q = [hidden[1], hidden[0]], so argmax q is the rule's action.
"""

import json

import numpy as np
import pytest
from PIL import Image

from cartpole_jax import render
from cartpole_jax.cli import main
from cartpole_jax.policy import load_policy, save_policy

WOBBLY = [0.0, 0.0, 0.0, 1.0]  # angular velocity only: ~200 ± 40 steps in gymnasium
STEADY = [0.0, 0.0, 1.0, 0.2]  # angle + angular velocity: 500 every time
ALWAYS_LEFT = [0.0, 0.0, 0.0, 0.0]  # z = 0 ties, argmax picks action 0: falls within ~10 steps


def linear_params(w):
    w = np.asarray(w, np.float32)
    return {"params": {
        "hidden_0": {"kernel": np.stack([w, -w], axis=1), "bias": np.zeros(2, np.float32)},
        "q": {"kernel": np.array([[0, 1], [1, 0]], np.float32), "bias": np.zeros(2, np.float32)},
    }}


@pytest.fixture
def run_dir(tmp_path):
    """A run directory whose policy.npz holds three hand-made policies (seeds 10, 11, 12)."""
    params = [linear_params(w) for w in (WOBBLY, STEADY, ALWAYS_LEFT)]
    save_policy(tmp_path / "policy.npz", params, [10, 11, 12], {"activation": "relu", "dueling": False})
    return tmp_path


def eval_rows(capsys, *argv):
    assert main(["eval", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_jax_and_gymnasium_agree_within_noise(run_dir, capsys):
    n = 200
    jax_row = eval_rows(capsys, run_dir, "--episodes", n, "--seed-index", 0)[0]
    gym_row = eval_rows(capsys, run_dir, "--episodes", n, "--seed-index", 0, "--gymnasium")[0]
    assert (jax_row["env"], gym_row["env"]) == ("jax", "gymnasium")
    assert 100 < gym_row["mean"] < 350 and gym_row["std"] > 5  # a policy with real spread, not a trivial 500
    noise = np.sqrt((jax_row["std"] ** 2 + gym_row["std"] ** 2) / n)
    assert abs(jax_row["mean"] - gym_row["mean"]) < 4 * noise, (jax_row, gym_row)
    assert abs(jax_row["std"] - gym_row["std"]) < 0.5 * gym_row["std"]


def test_eval_table_solved_column(run_dir, capsys):
    rows = eval_rows(capsys, run_dir, "--episodes", 8)
    assert [r["seed"] for r in rows] == [10, 11, 12]
    assert [r["solved"] for r in rows] == [False, True, False]
    assert rows[1]["mean"] == rows[1]["min"] == 500.0
    assert rows[2]["max"] < 30
    assert main(["eval", str(run_dir), "--episodes", "8"]) == 0
    assert "seed" in capsys.readouterr().out


def test_render_frame_count_is_capped_by_max_steps(run_dir, tmp_path, capsys):
    gif = tmp_path / "pole.gif"
    assert main(["render", str(run_dir), "--seed-index", "1", "--out", str(gif), "--max-steps", "40"]) == 0
    with Image.open(gif) as img:
        assert img.n_frames == 41  # the initial frame + 40 steps of a policy that never falls
        assert img.size == (render.WIDTH, render.HEIGHT)


def test_render_frame_count_is_episode_length_plus_one(run_dir, tmp_path):
    policy = load_policy(run_dir / "policy.npz", 2)
    observations = render.episode(policy, seed=3, max_steps=500)
    steps = len(observations) - 1
    fell = (np.abs(observations[:, 0]) > 2.4) | (np.abs(observations[:, 2]) > 12 * 2 * np.pi / 360)
    assert 0 < steps < 30 and fell[-1] and not fell[:-1].any()  # the episode really ended at its last frame
    gif = tmp_path / "left.gif"
    assert render.render_gif(policy, gif, seed=3, max_steps=500) == steps + 1
    with Image.open(gif) as img:
        assert img.n_frames == steps + 1


@pytest.mark.parametrize("argv", [
    ["eval", "{d}", "--seed-index", "7"],
    ["eval", "{d}", "--seed-index", "x"],
    ["eval", "{d}/nope"],
    ["render", "{d}", "--seed-index", "3"],
    ["render", "{d}", "--out", "{d}/missing/pole.gif"],
])
def test_bad_input_is_one_line_exit_2(run_dir, capsys, argv):
    assert main([a.format(d=run_dir) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cartpole-jax: error: ") and err.count("\n") == 1, err
