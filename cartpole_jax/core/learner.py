"""DQN learning: TD targets, loss, one gradient step, target-network updates."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from . import schedule
from .types import LearnerState, Transition


def make_optimizer(cfg, hp) -> optax.GradientTransformation:
    """cfg.optimizer with a decaying learning rate (cfg.lr_schedule) and optional global-norm clipping."""
    steps = max(schedule.total_updates(cfg), 1)
    if cfg.lr_schedule == "cosine":
        lr = optax.cosine_decay_schedule(hp.learning_rate, steps, alpha=hp.lr_end_fraction)
    else:
        lr = optax.linear_schedule(hp.learning_rate, hp.learning_rate * hp.lr_end_fraction, steps)
    clip = jnp.where(hp.max_grad_norm > 0, hp.max_grad_norm, jnp.inf)
    return optax.chain(optax.clip_by_global_norm(clip), getattr(optax, cfg.optimizer)(lr, **dict(cfg.optimizer_kwargs)))


def td_target(q_next_online, q_next_target, reward, done, gamma, double: bool):
    """r + gamma * Q_target(s', a*) unless done; a* from the online net (double DQN) or the target net."""
    if double:
        best = jnp.argmax(q_next_online, axis=-1)
        value = jnp.take_along_axis(q_next_target, best[..., None], axis=-1)[..., 0]
    else:
        value = jnp.max(q_next_target, axis=-1)
    return reward + gamma * (1.0 - done.astype(reward.dtype)) * value


def _n_step_return(reward, ended, gamma):
    """(return, index of the step it stops at, gamma of its bootstrap) of (rows, n) rewards and episode ends."""
    n = reward.shape[1]
    ended = ended.astype(reward.dtype)
    alive = jnp.concatenate([jnp.ones_like(ended[:, :1]), jnp.cumprod(1.0 - ended, axis=1)[:, :-1]], axis=1)
    ret = jnp.sum(alive * gamma ** jnp.arange(n, dtype=reward.dtype) * reward, axis=1)
    last = jnp.sum(alive, axis=1).astype(jnp.int32) - 1  # the first step that ended, else n - 1
    return ret, last, gamma ** (last + 1).astype(reward.dtype)


def n_step_view(seq: Transition, gamma) -> tuple[Transition, jax.Array]:
    """Sequences (batch, n, ...) as one n-step transition each, and the gamma of its bootstrap.

    Rewards are summed with gamma^k up to the step where the episode ended (or the nth); the
    transition keeps that step's next_obs and `done`, so `td_target` bootstraps with gamma^(k+1)
    unless it was a failure.
    """
    ret, last, bootstrap = _n_step_return(seq.reward, seq.ended, gamma)
    at_last = lambda x: jnp.take_along_axis(x, last.reshape(-1, *([1] * (x.ndim - 1))), axis=1)[:, 0]
    first = jax.tree.map(lambda x: x[:, 0], seq)
    one = first.replace(reward=ret, next_obs=at_last(seq.next_obs), done=at_last(seq.done), ended=at_last(seq.ended))
    return one, bootstrap


def n_step_sample(data: Transition, slots, gamma) -> tuple[Transition, jax.Array]:
    """n_step_view of `data[slots]` (slots: (batch, n)), reading observations only where it uses them.

    Rewards and ends are read at every step, obs and action at the first, next_obs and done at the
    last: 2 of the 2n observation rows a full gather reads, which on CPU are cache misses.
    """
    ended = data.ended[slots]
    ret, last, bootstrap = _n_step_return(data.reward[slots], ended, gamma)
    first, at_last = slots[:, 0], jnp.take_along_axis(slots, last[:, None], axis=1)[:, 0]
    ended_there = jnp.take_along_axis(ended, last[:, None], axis=1)[:, 0]
    return Transition(data.obs[first], data.action[first], ret, data.next_obs[at_last], data.done[at_last], ended_there), bootstrap


def td_loss(q_taken, target, kind: str):
    err = q_taken - jax.lax.stop_gradient(target)
    if kind == "huber":
        return jnp.mean(optax.huber_loss(err, delta=1.0))
    return jnp.mean(jnp.square(err))


def make_loss(network, cfg):
    def loss_fn(params, target_params, batch: Transition, gamma):
        """batch: one transition per row (n-step ones from n_step_view); gamma: its bootstrap discount, scalar or per row."""
        q = network.apply(params, batch.obs)
        q_taken = jnp.take_along_axis(q, batch.action[:, None], axis=-1)[:, 0]
        q_next_target = network.apply(target_params, batch.next_obs)
        q_next_online = network.apply(params, batch.next_obs) if cfg.double_dqn else q_next_target
        target = td_target(q_next_online, q_next_target, batch.reward, batch.done, gamma, cfg.double_dqn)
        return td_loss(q_taken, target, cfg.loss)

    return loss_fn


def init(key, network, tx, example_obs) -> LearnerState:
    params = network.init(key, example_obs)
    return LearnerState(params=params, target_params=params, opt_state=tx.init(params))


def update_target(learner: LearnerState, tau) -> LearnerState:
    target = optax.incremental_update(learner.params, learner.target_params, tau)
    return learner.replace(target_params=target)


def make_update(network, tx, cfg):
    """update(learner, batch, hp, gamma=hp.gamma) -> (learner, loss): one gradient step, then the per-step target update."""
    grad_fn = jax.value_and_grad(make_loss(network, cfg))

    def update(learner: LearnerState, batch: Transition, hp, gamma=None):
        loss, grads = grad_fn(learner.params, learner.target_params, batch, hp.gamma if gamma is None else gamma)
        updates, opt_state = tx.update(grads, learner.opt_state, learner.params)
        learner = learner.replace(params=optax.apply_updates(learner.params, updates), opt_state=opt_state)
        if cfg.target_update_every == 0:
            learner = update_target(learner, hp.tau)
        return learner, loss

    return update
