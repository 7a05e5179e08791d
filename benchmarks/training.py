"""Training throughput of the compiled trainer, and the update-only bound it is compared with.

Timing a whole 500k-step run per size would take too long, so each preset keeps every field except
`num_chunks`, which is set so one compiled chunk holds `chunk_env_steps` env steps per seed. The run
goes through `driver.train_runs` as a user's would: the chunks up to the end of `learning_starts` (plus one)
are warm-up, then each of the next `repeats` chunks is one timed repeat, and the run stops there.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from cartpole_jax.config import PRESETS, Config, apply, validate
from cartpole_jax.core import env as cp_env
from cartpole_jax.core import kernels, learner, schedule
from cartpole_jax.core.network import make_network
from cartpole_jax.core.types import Transition
from cartpole_jax.driver import train_runs
from cartpole_jax.program import Program, batch_hyperparams, batching_mode, over_runs, pick_devices

from .timing import record, seconds


def timing_config(preset: str, chunk_env_steps: int, overrides: dict | None = None) -> Config:
    """The preset (plus overrides, for tests) with num_chunks set so a chunk is chunk_env_steps env steps per seed."""
    cfg = apply(Config(), {**PRESETS[preset], **(overrides or {})})
    return validate(cfg.replace(num_chunks=max(1, cfg.total_env_steps // chunk_env_steps)))


def warmup_chunks(cfg: Config) -> int:
    """Chunks before the first timed one: all that end before learning starts, then one more."""
    return next(c for c in range(cfg.num_chunks) if _chunk_updates(cfg, c) > 0) + 1


def _chunk_steps(cfg: Config, chunk: int) -> np.ndarray:
    ts = chunk * cfg.chunk_len + np.arange(cfg.chunk_len)
    return ts[ts < cfg.num_vector_steps]


def _chunk_updates(cfg: Config, chunk: int) -> int:
    return int(np.sum(schedule.updates_at(cfg, _chunk_steps(cfg, chunk))))


def bench_train(preset: str, num_seeds: int, chunk_env_steps: int, repeats: int = 3, batching: str = "auto",
                overrides: dict | None = None) -> dict:
    """Env steps/s (all seeds together) of the compiled trainer over `repeats` post-warm-up chunks."""
    cfg = timing_config(preset, chunk_env_steps, overrides)
    warm = warmup_chunks(cfg)
    if warm + repeats > cfg.num_chunks:
        raise ValueError(f"{preset}: {warm} warm-up + {repeats} timed chunks exceed the run's {cfg.num_chunks} chunks")
    ends: list[float] = []
    result = train_runs(cfg, list(range(num_seeds)), preset=preset, batching=batching,
                 progress=lambda p: ends.append(p.elapsed), after_chunk=lambda done, _s, _p: done < warm + repeats)
    chunk_seconds = np.diff([0.0, *ends])
    steps = len(_chunk_steps(cfg, warm)) * cfg.num_envs * num_seeds
    updates = _chunk_updates(cfg, warm)
    mode = batching_mode(batching, pick_devices(None))
    return record("train", "cartpole_jax", steps, list(chunk_seconds[warm:]), preset=preset, num_envs=cfg.num_envs,
                  num_seeds=num_seeds, compile_seconds=result.compile_seconds, warmup_seconds=float(np.sum(chunk_seconds[:warm])),
                  warmup_chunks=warm, chunk_env_steps_per_seed=steps // num_seeds, gradient_steps_per_seed=updates,
                  num_chunks=cfg.num_chunks, batching=mode, loop="branch_free" if schedule.branch_free(cfg) else "general")


def synthetic_batches(num: int, batch_size: int, n_step: int = 1, seed: int = 0) -> Transition:
    """`num` random batches shaped like replay samples (CartPole-scale observations); with n_step > 1,
    (batch_size, n_step) sequences, as the learner gets them then."""
    rng = np.random.default_rng(seed)
    rows = (num, batch_size) if n_step == 1 else (num, batch_size, n_step)
    obs = rng.uniform(-0.2, 0.2, (2, *rows, cp_env.OBS_SIZE)).astype(np.float32)
    done = rng.random(rows) < 0.02
    return Transition(
        obs=jnp.asarray(obs[0]), action=jnp.asarray(rng.integers(0, 2, rows), jnp.int32),
        reward=jnp.ones(rows, jnp.float32), next_obs=jnp.asarray(obs[1]), done=jnp.asarray(done), ended=jnp.asarray(done),
    )


def update_only(cfg: Config, num_seeds: int, num_updates: int, batching: str = "auto", chosen: kernels.Kernels | None = None,
                jit_options: dict | None = None):
    """(compiled fn, args, compile seconds): `num_updates` learner updates per seed in a scan, nothing else.

    Kernels as the trainer picks them for the platform (cartpole_jax/core/kernels.py) unless given;
    `jit_options` overrides the compile options that go with them.
    """
    devices = pick_devices(None)
    chosen = kernels.for_platform(devices[0].platform, cfg.hidden_sizes) if chosen is None else chosen
    jit_options = chosen.jit_options() if jit_options is None else jit_options
    network = make_network(cfg, chosen.thin_as_sums)
    obs_example = jnp.zeros((cp_env.OBS_SIZE,), jnp.float32)

    def one_seed(key, hp, batches):
        tx = learner.make_optimizer(cfg, hp)
        update = learner.make_update(network, tx, cfg)
        state = learner.init(key, network, tx, obs_example)

        def body(s, b):
            batch, gamma = learner.n_step_view(b, hp.gamma) if cfg.n_step > 1 else (b, hp.gamma)
            return update(s, batch, hp, gamma)

        state, losses = jax.lax.scan(body, state, batches)
        return state.params, jnp.sum(losses)

    mode = batching_mode(batching, devices)
    fn = jax.jit(over_runs(one_seed, mode), **(jit_options or {}))
    keys = jax.vmap(jax.random.key)(jnp.arange(num_seeds, dtype=jnp.uint32))
    hps = jax.tree.map(jnp.asarray, batch_hyperparams(cfg, [{}] * num_seeds))
    args = (keys, hps, synthetic_batches(num_updates, cfg.batch_size, cfg.n_step))
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, args, time.perf_counter() - t0


def bench_update_bound(preset: str, num_seeds: int, chunk_env_steps: int, repeats: int = 3, batching: str = "auto",
                       overrides: dict | None = None) -> dict:
    """The same gradient steps as one timed training chunk, alone; reported as env steps/s equivalent."""
    cfg = timing_config(preset, chunk_env_steps, overrides)
    warm = warmup_chunks(cfg)
    updates = _chunk_updates(cfg, warm)
    compiled, args, compile_s = update_only(cfg, num_seeds, updates, batching)
    call = lambda: jax.block_until_ready(compiled(*args))
    warm_s = seconds(call)
    times = [seconds(call) for _ in range(repeats)]
    steps = len(_chunk_steps(cfg, warm)) * cfg.num_envs * num_seeds
    return record("update_bound", "learner.make_update", steps, times, preset=preset, num_envs=cfg.num_envs,
                  num_seeds=num_seeds, compile_seconds=compile_s, warmup_seconds=warm_s, gradient_steps_per_seed=updates,
                  gradient_steps_per_second=updates * num_seeds / float(np.median(times)),
                  batching=batching_mode(batching, pick_devices(None)))


def clear_compiled() -> None:
    """Forget cached trainer programs so each size's compile time is measured afresh."""
    Program.clear_cache()
