"""The compiled training program: `make_train(config) -> train(key)`, built from chunked `lax.scan`s.

`make_trainer` exposes the two pure pieces the host driver uses (`init`, `run_chunk`); `make_train`
joins them into one function for researchers' own `jax.jit(jax.vmap(train))(keys)`.

    >>> import jax
    >>> from cartpole_jax import Config, make_train
    >>> cfg = Config(total_env_steps=2_000, eval_every=1_000, num_chunks=2)
    >>> train = jax.jit(jax.vmap(make_train(cfg)))
    >>> state = train(jax.vmap(jax.random.key)(jax.numpy.arange(3)))
    >>> state.metrics.shape  # 3 seeds, 2 evaluations, 6 metric columns
    (3, 2, 6)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..config import Config, HyperParams
from . import actor, buffer, env, learner, schedule
from .evaluate import evaluate
from .kernels import PLAIN, Kernels
from .network import make_network
from .types import METRIC_COLUMNS, EpisodeStats, RunState, Transition


class Trainer(NamedTuple):
    """init(key, hp) -> RunState; run_chunk(state, hp, chunk_index) -> RunState. One seed each."""

    init: Callable
    run_chunk: Callable
    config: Config


def make_trainer(cfg: Config, kernels: Kernels = PLAIN, loop: str | None = None) -> Trainer:
    """kernels: how the network computes and the loop it runs (kernels.for_platform); compile with its jit_options().

    loop (default: the kernels' choice): "branch_free" (whole evaluation periods of static length, no
    branch per step: what accelerators need), "general" (a branch per step for whether it learns,
    evaluates or exists: any config; CPU's choice), or "auto": branch-free wherever
    `schedule.branch_free(cfg)`. Both give the same bits.
    """
    loop = kernels.loop if loop is None else loop
    if loop not in ("auto", "branch_free", "general"):
        raise ValueError(f"loop must be auto, branch_free or general; got {loop!r}")
    if loop == "branch_free" and not schedule.branch_free(cfg):
        raise ValueError("this config's schedule is not periodic per chunk (see schedule.branch_free)")
    network = make_network(cfg, kernels.thin_as_sums)
    n, num_steps = cfg.num_envs, cfg.num_vector_steps
    obs_example = jnp.zeros((env.OBS_SIZE,), jnp.float32)

    def init(key, hp: HyperParams) -> RunState:
        k_net, k_env, k_run = jax.random.split(key, 3)
        tx = learner.make_optimizer(cfg, hp)
        obs, env_state = env.reset(k_env, n)
        example = Transition(obs_example, jnp.int32(0), jnp.float32(0), obs_example, jnp.bool_(False), jnp.bool_(False))
        zero = jnp.float32(0)
        return RunState(
            key=k_run,
            env_state=env_state,
            obs=obs,
            buffer=buffer.init(example, cfg.buffer_size),
            learner=learner.init(k_net, network, tx, obs_example),
            stats=EpisodeStats(jnp.zeros(n, jnp.float32), zero, zero, zero, zero),
            metrics=jnp.full((cfg.num_evals, len(METRIC_COLUMNS)), jnp.nan, jnp.float32),
            nonfinite_step=jnp.int32(-1),
        )

    def learn(state: RunState, hp, key, t) -> tuple[RunState, jax.Array]:
        """The gradient steps and target update due after vector step t; losses go to the accumulators."""
        update = learner.make_update(network, learner.make_optimizer(cfg, hp), cfg)
        most = schedule.max_updates_per_step(cfg)
        starts = buffer.sample_starts(state.buffer, key, (most, cfg.batch_size), cfg.n_step, n)  # row i: step i's batch

        def one(i, carry):
            lrn, loss_sum = carry
            if cfg.n_step > 1:
                slots = buffer.sequence_slots(state.buffer, starts[i], cfg.n_step, n)
                batch, gamma = learner.n_step_sample(state.buffer.data, slots, hp.gamma)
            else:
                batch, gamma = buffer.gather(state.buffer, starts[i]), hp.gamma
            lrn, loss = update(lrn, batch, hp, gamma)
            return lrn, loss_sum + loss

        carry = (state.learner, jnp.float32(0))
        if branch_free:
            # Every learning step takes `most` gradient steps. Before learning starts (a few percent of
            # a run) they are computed and dropped by a select: a branch would cost a host round trip
            # per step on GPU, and on CPU more than the work it skips.
            started = schedule.learning_started(cfg, t)
            lrn, loss_sum = jax.lax.fori_loop(0, most, one, carry)
            lrn = _select(started, lrn, state.learner)
            loss_sum, count = jnp.where(started, loss_sum, 0.0), jnp.where(started, most, 0)
        else:
            count = schedule.updates_at(cfg, t)
            if n % cfg.train_every == 0 or most == 1:
                # count is 0 or `most`: a fixed-length loop behind one real branch spares XLA a loop whose
                # trip count it only learns at run time. Not unrolled: as fast, and compiles ~0.8 s sooner.
                steps = lambda c: jax.lax.fori_loop(0, most, one, c)
                lrn, loss_sum = jax.lax.cond(count > 0, steps, lambda c: c, carry)
            else:
                lrn, loss_sum = jax.lax.fori_loop(0, count, one, carry)
        if cfg.target_update_every > 0:
            due = schedule.target_update_due(cfg, t)
            if branch_free:  # the target is as small as the network: selecting costs less than branching
                lrn = _select(due, learner.update_target(lrn, hp.tau), lrn)
            else:
                lrn = jax.lax.cond(due, lambda x: learner.update_target(x, hp.tau), lambda x: x, lrn)
        stats = state.stats
        stats = stats.replace(loss_sum=stats.loss_sum + loss_sum, updates=stats.updates + count)
        bad = (count > 0) & ~jnp.isfinite(loss_sum) & (state.nonfinite_step < 0)
        nonfinite = jnp.where(bad, (t + 1) * n, state.nonfinite_step)
        return state.replace(learner=lrn, stats=stats, nonfinite_step=nonfinite)

    def record(metrics, s: EpisodeStats, params, hp, key, t):
        """Greedy evaluation and the metrics row it completes; resets the accumulators.

        Takes and returns only the small metrics and stats, so the replay buffer never passes
        through this branch's outputs.
        """
        _, slot = schedule.eval_slot(cfg, t)
        returns = evaluate(key, params, network.apply, cfg.eval_episodes)
        row = jnp.stack([
            ((t + 1) * n).astype(jnp.float32),
            jnp.mean(returns),
            jnp.std(returns),
            jnp.where(s.episodes > 0, s.return_sum / jnp.maximum(s.episodes, 1), jnp.nan),
            jnp.where(s.updates > 0, s.loss_sum / jnp.maximum(s.updates, 1), jnp.nan),
            actor.epsilon(cfg, hp, (t + 1) * n),
        ])
        zero = jnp.float32(0)
        stats = s.replace(return_sum=zero, episodes=zero, loss_sum=zero, updates=zero)
        return metrics.at[slot].set(row), stats

    def advance(state: RunState, hp, t) -> tuple[RunState, jax.Array]:
        """Vector step t without its evaluation: act, store, learn. Also returns the step's eval key."""
        key, k_act, k_env, k_learn, k_eval = jax.random.split(state.key, 5)
        q = network.apply(state.learner.params, state.obs)
        action = actor.epsilon_greedy(k_act, q, actor.epsilon(cfg, hp, t * n))
        env_state, res = env.step(k_env, state.env_state, action)
        no_bootstrap = res.terminated if cfg.bootstrap_on_truncation else res.terminated | res.truncated
        reward = jnp.where(res.terminated, hp.failure_reward, res.reward)
        ended = res.terminated | res.truncated
        transition = Transition(state.obs, action, reward, res.final_obs, no_bootstrap, ended)
        ret = state.stats.running_return + res.reward
        stats = state.stats.replace(
            running_return=jnp.where(ended, 0.0, ret),
            return_sum=state.stats.return_sum + jnp.sum(jnp.where(ended, ret, 0.0)),
            episodes=state.stats.episodes + jnp.sum(ended),
        )
        state = state.replace(key=key, env_state=env_state, obs=res.obs, buffer=buffer.add(state.buffer, transition), stats=stats)
        return learn(state, hp, k_learn, t), k_eval

    def evaluated(state: RunState, hp, key, t) -> RunState:
        metrics, stats = record(state.metrics, state.stats, state.learner.params, hp, key, t)
        return state.replace(metrics=metrics, stats=stats)

    def general_chunk(state: RunState, hp, chunk_index) -> RunState:
        """Any config: each step asks, by branches, whether it exists, learns and evaluates."""
        ts = chunk_index * cfg.chunk_len + jnp.arange(cfg.chunk_len, dtype=jnp.int32)

        def step(s, t):
            s, k_eval = advance(s, hp, t)
            is_eval, _ = schedule.eval_slot(cfg, t)
            params = s.learner.params
            metrics, stats = jax.lax.cond(is_eval, lambda ms: record(*ms, params, hp, k_eval, t), lambda ms: ms, (s.metrics, s.stats))
            return s.replace(metrics=metrics, stats=stats)

        def body(s, t):
            return jax.lax.cond(t < num_steps, lambda x: step(x, t), lambda x: x, s), None

        return jax.lax.scan(body, state, ts)[0]

    def periodic_chunk(state: RunState, hp, chunk_index) -> RunState:
        """Whole evaluation periods, each a scan of static length and then an evaluation: no branches."""
        per = schedule.steps_per_eval(cfg)

        def period(s, first):
            def body(carry, t):
                return advance(carry[0], hp, t), None

            (s, k_eval), _ = jax.lax.scan(body, (s, s.key), first + jnp.arange(per, dtype=jnp.int32))
            return evaluated(s, hp, k_eval, first + per - 1), None

        firsts = chunk_index * cfg.chunk_len + per * jnp.arange(cfg.chunk_len // per, dtype=jnp.int32)
        return jax.lax.scan(period, state, firsts)[0]

    branch_free = schedule.branch_free(cfg) if loop == "auto" else loop == "branch_free"
    run_chunk = periodic_chunk if branch_free else general_chunk
    return Trainer(init, run_chunk, cfg)


def make_train(cfg: Config, hp: HyperParams | None = None, kernels: Kernels = PLAIN) -> Callable:
    """The whole run as one pure function `train(key) -> RunState` (hp defaults to cfg's values).

    With `hp` left out, `train(key, hp)` also accepts hyperparameters explicitly, so
    `jax.vmap(train)(keys, batched_hp)` sweeps vmappable fields in one program. The CLI's kernels and
    loop on CPU (gradient steps ~1.3x faster, other bits): `k = kernels.for_platform("cpu", cfg.hidden_sizes)`,
    then `jax.jit(make_train(cfg, kernels=k), **k.jit_options())`.
    """
    trainer = make_trainer(cfg, kernels)
    default_hp = cfg.hyperparams() if hp is None else hp

    def train(key, hp: HyperParams = default_hp) -> RunState:
        state = trainer.init(key, hp)
        body = lambda s, c: (trainer.run_chunk(s, hp, c), None)
        return jax.lax.scan(body, state, jnp.arange(cfg.num_chunks, dtype=jnp.int32))[0]

    return train


def _select(pred, new, old):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), new, old)


def state_shapes(cfg: Config, num_runs: int | None = None):
    """ShapeDtypeStructs of one run's RunState, or of `num_runs` runs stacked on a leading axis."""
    one = jax.eval_shape(make_trainer(cfg).init, jax.random.key(0), cfg.hyperparams())
    if num_runs is None:
        return one
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct((num_runs, *s.shape), s.dtype), one)
