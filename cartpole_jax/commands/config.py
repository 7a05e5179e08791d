"""`cartpole-jax config`: print the resolved, validated config as JSON without training."""

from __future__ import annotations

import json

from .common import add_config_flags, config_from_args

USES_JAX = False  # the CLI starts jax only for commands that need it


def add_parser(sub) -> None:
    p = sub.add_parser("config", help="print the resolved config as JSON")
    add_config_flags(p)


def main(args) -> int:
    preset, cfg = config_from_args(args)
    print(json.dumps({"preset": preset, **cfg.to_dict()}, indent=2))
    return 0
