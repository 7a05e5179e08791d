"""`cartpole-jax eval RUN_DIR`: greedy returns of a run's exported policies.

By default the episodes run in the project's jax CartPole with the Q-network rebuilt from
policy.npz; `--gymnasium` runs the numpy policy in gymnasium's CartPole-v1 instead, an
independent check of both the export and the environment.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from ..config import SOLVED_RETURN, ConfigError
from ..policy import Policy, load_policy, num_policies
from .common import positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="greedy evaluation of a run's policy.npz")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory (or a policy.npz file)")
    p.add_argument("--episodes", type=positive_int("--episodes"), default=100, help="episodes per policy (default 100)")
    p.add_argument("--seed-index", default="all", help="which run's policy: an index or all (default all)")
    p.add_argument("--seed", type=positive_int("--seed", 0), default=0, help="seed of the episodes' initial states (default 0)")
    p.add_argument("--gymnasium", action="store_true", help="run the numpy policy in gymnasium's CartPole-v1")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")


def policy_path(run_dir: str | Path) -> Path:
    path = Path(run_dir)
    if path.is_dir():
        path = path / "policy.npz"
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no policy.npz (train the run to the end first)")
    return path


def seed_indices(text: str, count: int) -> list[int]:
    if text == "all":
        return list(range(count))
    try:
        index = int(text)
    except ValueError:
        raise ConfigError(f"--seed-index must be an integer in [0, {count - 1}] or all; got {text!r}") from None
    if not 0 <= index < count:
        raise ConfigError(f"--seed-index must be an integer in [0, {count - 1}] or all; got {text!r}")
    return [index]


def jax_returns(policy: Policy, episodes: int, seed: int) -> np.ndarray:
    """Greedy returns in the jax env, with the flax network that training used."""
    import jax

    layers: dict = {}
    for key, value in policy.weights.items():  # the arrays load_policy validated, as a flax param tree
        layer, name = key.split("/")
        layers.setdefault(layer, {})[name] = value
    hidden = tuple(layers[f"hidden_{i}"]["kernel"].shape[1] for i in range(policy.meta["hidden_layers"]))
    run = _jax_eval(hidden, policy.meta["activation"], policy.meta["dueling"], episodes)
    return np.asarray(run(jax.random.key(seed), {"params": layers}))


@functools.cache
def _jax_eval(hidden: tuple, activation: str, dueling: bool, episodes: int):
    """One compiled evaluation per architecture, shared by all the runs of a policy file."""
    import jax

    from ..core.evaluate import evaluate
    from ..core.network import QNetwork

    net = QNetwork(hidden, 2, activation, "lecun_normal", dueling)
    return jax.jit(lambda key, params: evaluate(key, params, net.apply, episodes))


def gymnasium_returns(policy: Policy, episodes: int, seed: int) -> np.ndarray:
    """Greedy returns in gymnasium's CartPole-v1; episode i starts from reset(seed=seed + i)."""
    try:
        import gymnasium
    except ImportError:
        raise ConfigError("--gymnasium needs the gymnasium package (pip install gymnasium)") from None
    env = gymnasium.make("CartPole-v1")
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return np.asarray(returns, dtype=np.float32)


def evaluate_run(run_dir, episodes: int = 100, seed_index: str = "all", seed: int = 0, use_gymnasium: bool = False) -> list[dict]:
    """One row per evaluated policy: seed, episodes, mean, std, min, max, solved."""
    path = policy_path(run_dir)
    load_policy(path)  # a foreign or damaged file fails here with a PolicyError
    if not use_gymnasium:
        from ..host import devices

        devices()  # a backend that cannot start fails here in one line
    rows = []
    for i in seed_indices(seed_index, num_policies(path)):
        policy = load_policy(path, i)
        returns = (gymnasium_returns if use_gymnasium else jax_returns)(policy, episodes, seed)
        rows.append({
            "seed_index": i, "seed": policy.seed, "episodes": episodes, "env": "gymnasium" if use_gymnasium else "jax",
            "mean": round(float(returns.mean()), 4), "std": round(float(returns.std()), 4),
            "min": float(returns.min()), "max": float(returns.max()), "solved": bool(returns.mean() >= SOLVED_RETURN),
        })
    return rows


def main(args) -> int:
    rows = evaluate_run(args.run_dir, args.episodes, args.seed_index, args.seed, args.gymnasium)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"greedy eval, {args.episodes} episodes each ({rows[0]['env']} CartPole-v1)")
    for col in ("seed", "mean", "± std", "min", "max", "solved"):
        table.add_column(col, justify="right")
    for r in rows:
        cells = (f"{r['mean']:.1f}", f"{r['std']:.1f}", f"{r['min']:.0f}", f"{r['max']:.0f}", "yes" if r["solved"] else "no")
        table.add_row(str(r["seed"]), *cells)
    Console().print(table)
    return 0
