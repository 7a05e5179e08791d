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
OBS_SIZE, NUM_ACTIONS = 4, 2  # CartPole's observation and action counts
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
    meta, data = _read(path)
    n = len(meta["seeds"])
    if not -n <= seed_index < n:
        raise PolicyError(f"seed_index must be in [0, {n - 1}]; got {seed_index}")
    meta["seed"] = meta["seeds"][seed_index]
    return Policy({k: v[seed_index] for k, v in data.items()}, meta)


def num_policies(path: str | Path) -> int:
    return len(_read(path)[0]["seeds"])


def _read(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays by flax name) of a policy file, checked whole; any flaw is one PolicyError line."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
        meta = json.loads(str(data.pop("meta")))
    except FileNotFoundError:
        raise PolicyError(f"{path}: no such file") from None
    except Exception as err:  # a truncated or foreign file: zipfile, zlib, numpy and json each raise their own
        raise PolicyError(f"{path}: not a cartpole-jax policy file ({err.__class__.__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise PolicyError(f"{path}: unsupported policy format {found!r} (expected {FORMAT})")
    problem = _check_meta(meta) or _check_arrays(meta, data)
    if problem:
        raise PolicyError(f"{path}: damaged policy file ({problem})")
    return meta, {k: v for k, v in data.items() if "/" in k}


def _check_meta(meta: dict) -> str | None:
    seeds, layers = meta.get("seeds"), meta.get("hidden_layers")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        return "meta.seeds is not a non-empty list of integers"
    if not isinstance(layers, int) or isinstance(layers, bool) or not 0 <= layers <= MAX_LAYERS:
        return f"meta.hidden_layers is not an integer in [0, {MAX_LAYERS}]"
    if meta.get("activation") not in _ACTIVATIONS:
        return f"meta.activation is not one of {', '.join(_ACTIVATIONS)}"
    if not isinstance(meta.get("dueling"), bool):
        return "meta.dueling is not true or false"
    return None


MAX_LAYERS = 1_000  # far above any config; bounds the work of checking a damaged file


def _check_arrays(meta: dict, data: dict[str, np.ndarray]) -> str | None:
    """Every layer the meta implies is present, floating point, and shaped (runs, inputs, outputs)."""
    runs, width = len(meta["seeds"]), OBS_SIZE
    for i in range(meta["hidden_layers"]):
        problem = _check_layer(data, f"hidden_{i}", runs, width, None)
        if problem:
            return problem
        width = data[f"hidden_{i}/kernel"].shape[-1]
    heads = {"value": 1, "advantage": NUM_ACTIONS} if meta["dueling"] else {"q": NUM_ACTIONS}
    return next((p for p in (_check_layer(data, name, runs, width, out) for name, out in heads.items()) if p), None)


def _check_layer(data: dict[str, np.ndarray], layer: str, runs: int, inputs: int, outputs: int | None) -> str | None:
    kernel, bias = data.get(f"{layer}/kernel"), data.get(f"{layer}/bias")
    if kernel is None or bias is None:
        return f"no {layer} weights"
    if not (np.issubdtype(kernel.dtype, np.floating) and np.issubdtype(bias.dtype, np.floating)):
        return f"{layer} weights are not floating point"
    out = kernel.shape[-1] if kernel.ndim == 3 else -1
    if kernel.shape != (runs, inputs, out) or (outputs is not None and out != outputs) or bias.shape != (runs, out) or out < 1:
        return f"{layer} weights have shapes {list(kernel.shape)} and {list(bias.shape)}, not [{runs}, {inputs}, n] and [{runs}, n]"
    return None
