"""cartpole-jax: DQN on CartPole-v1, whole training runs compiled end to end with JAX.

Importing the package does not import jax, so `cartpole_jax.policy` works where jax is missing.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Config": "config",
    "ConfigError": "config",
    "HyperParams": "config",
    "PRESETS": "config",
    "resolve": "config",
    "make_train": "core.train",
    "make_trainer": "core.train",
    "train_runs": "driver",
    "train_seeds": "driver",
    "load_policy": "policy",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
