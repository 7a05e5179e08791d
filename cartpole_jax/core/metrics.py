"""Columns of RunState.metrics, one row per evaluation; jax-free, so host code reads them cheaply."""

METRIC_COLUMNS = ("env_step", "eval_return_mean", "eval_return_std", "train_return_mean", "loss", "epsilon")
METRIC = {name: i for i, name in enumerate(METRIC_COLUMNS)}  # read a column by name: rows[:, METRIC["loss"]]
