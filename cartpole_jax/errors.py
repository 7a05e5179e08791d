"""Errors the commands turn into exit codes; kept free of jax so the CLI can import it cheaply."""

from __future__ import annotations


class NonFiniteError(RuntimeError):
    """A run's loss became NaN or infinite; `result` holds what all runs reached (the failing chunk included)."""

    def __init__(self, run_index: int, seed: int, env_step: int, result=None):
        self.run_index, self.seed, self.env_step, self.result = run_index, seed, env_step, result
        super().__init__(f"seed {seed}: loss became non-finite at env step {env_step}")
