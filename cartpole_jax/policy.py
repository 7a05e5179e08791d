"""Trained greedy policies as plain numpy: export to `policy.npz`, load without jax.

    >>> from cartpole_jax.policy import load_policy
    >>> act = load_policy("runs/demo/policy.npz", seed_index=0)  # doctest: +SKIP
    >>> act([0.01, 0.0, -0.02, 0.0])  # doctest: +SKIP
    1
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .atomic import replacing
from .errors import PolicyError

FORMAT = "cartpole-jax-policy/1"
_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "gelu": lambda x: 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3))),
    "silu": lambda x: x / (1.0 + np.exp(-x)),
}


def save_policy(path: str | Path, params: Sequence, seeds: Sequence[int], config: dict) -> None:
    """Write the online parameters of each run (flax param dicts) to one npz, atomically."""
    layers = params[0]["params"]
    arrays = {
        f"{layer}/{name}": np.stack([np.asarray(p["params"][layer][name]) for p in params])
        for layer in layers
        for name in layers[layer]
    }
    meta = {
        "format": FORMAT,
        "seeds": [int(s) for s in seeds],
        "hidden_layers": sum(1 for layer in layers if layer.startswith("hidden_")),
        "activation": config["activation"],
        "dueling": bool(config["dueling"]),
    }
    with replacing(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)


class Policy:
    """Greedy CartPole policy: call it on an observation (4,) or a batch (B, 4) to get actions."""

    def __init__(self, weights: dict[str, np.ndarray], meta: dict):
        self.meta = meta
        self.seed = meta["seed"]
        self._hidden = [(weights[f"hidden_{i}/kernel"], weights[f"hidden_{i}/bias"]) for i in range(meta["hidden_layers"])]
        self._act = _ACTIVATIONS[meta["activation"]]
        self.weights = weights  # the validated arrays by flax name, e.g. hidden_0/kernel

    def q_values(self, obs) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32)
        for kernel, bias in self._hidden:
            x = self._act(x @ kernel + bias)
        w = self.weights
        if not self.meta["dueling"]:
            return x @ w["q/kernel"] + w["q/bias"]
        adv = x @ w["advantage/kernel"] + w["advantage/bias"]
        return x @ w["value/kernel"] + w["value/bias"] + adv - adv.mean(axis=-1, keepdims=True)

    def __call__(self, obs):
        actions = np.argmax(self.q_values(obs), axis=-1)
        return int(actions) if actions.ndim == 0 else actions


def load_policy(path: str | Path, seed_index: int = 0) -> Policy:
    """Load one seed's greedy policy from policy.npz (numpy only; nothing is unpickled)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
        meta = json.loads(str(data.pop("meta")))
    except FileNotFoundError:
        raise PolicyError(f"{path}: no such file") from None
    except (OSError, ValueError, KeyError) as err:
        raise PolicyError(f"{path}: not a cartpole-jax policy file ({err.__class__.__name__})") from None
    if meta.get("format") != FORMAT:
        raise PolicyError(f"{path}: unsupported policy format {meta.get('format')!r} (expected {FORMAT})")
    n = len(meta["seeds"])
    if not -n <= seed_index < n:
        raise PolicyError(f"seed_index must be in [0, {n - 1}]; got {seed_index}")
    meta["seed"] = meta["seeds"][seed_index]
    return Policy({k: v[seed_index] for k, v in data.items()}, meta)


def num_policies(path: str | Path) -> int:
    with np.load(path, allow_pickle=False) as npz:
        return len(json.loads(str(npz["meta"]))["seeds"])
