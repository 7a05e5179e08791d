"""DQN learning against hand-computed numbers, and probe problems whose Q-values are known in closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cartpole_jax.config import Config
from cartpole_jax.core import learner, schedule
from cartpole_jax.core.network import QNetwork, make_network
from cartpole_jax.core.types import LearnerState, Transition

# --- the learning-rate schedule ---


@pytest.mark.parametrize("shape", ["linear", "cosine"])
def test_learning_rate_decays_to_its_end_fraction_over_exactly_the_run_s_updates(shape):
    cfg = Config(optimizer="sgd", lr_schedule=shape, learning_rate=0.5, lr_end_fraction=0.2, total_env_steps=40,
                 num_envs=1, train_every=1, learning_starts=0, batch_size=1)
    steps = schedule.total_updates(cfg)
    tx = learner.make_optimizer(cfg, cfg.hyperparams())
    state, sizes = tx.init(jnp.zeros(())), []
    for _ in range(steps + 2):
        step, state = tx.update(jnp.ones(()), state)  # SGD with gradient 1 moves by -lr
        sizes.append(-float(step))
    frac = np.minimum(np.arange(steps + 2) / steps, 1.0)
    shape_of = {"linear": 1 - frac, "cosine": 0.5 * (1 + np.cos(np.pi * frac))}[shape]
    np.testing.assert_allclose(sizes, 0.5 * (0.2 + 0.8 * shape_of), rtol=1e-5)
    assert sizes[-1] == pytest.approx(0.1)  # held at the end fraction after the last update


# --- td_target and td_loss on plain numbers ---

Q_NEXT_ONLINE = jnp.array([[1.0, 5.0], [3.0, 2.0]])
Q_NEXT_TARGET = jnp.array([[10.0, 20.0], [30.0, 40.0]])
REWARD = jnp.array([1.0, 2.0])


@pytest.mark.parametrize(
    ("double", "done", "expected"),
    [
        (False, [0, 0], [1 + 0.5 * 20, 2 + 0.5 * 40]),  # DQN: max over the target net
        (True, [0, 0], [1 + 0.5 * 20, 2 + 0.5 * 30]),  # double: argmax online (1, 0), valued by the target net
        (False, [1, 0], [1, 2 + 0.5 * 40]),  # done: no bootstrap
        (True, [1, 1], [1, 2]),
    ],
)
def test_td_target_by_hand(double, done, expected):
    target = learner.td_target(Q_NEXT_ONLINE, Q_NEXT_TARGET, REWARD, jnp.array(done, bool), 0.5, double)
    np.testing.assert_allclose(target, expected, rtol=1e-6)


@pytest.mark.parametrize(("kind", "expected"), [("huber", (0.5 * 0.5**2 + (3 - 0.5)) / 2), ("mse", (0.5**2 + 3**2) / 2)])
def test_td_loss_by_hand(kind, expected):
    q_taken, target = jnp.array([0.0, 3.0]), jnp.array([0.5, 0.0])  # errors -0.5 (quadratic zone) and 3 (linear zone)
    np.testing.assert_allclose(learner.td_loss(q_taken, target, kind), expected, rtol=1e-6)
    grad_q, grad_target = jax.grad(learner.td_loss, argnums=(0, 1))(q_taken, target, kind)
    np.testing.assert_allclose(grad_target, [0.0, 0.0])  # targets are constants
    np.testing.assert_allclose(grad_q, [-0.5 / 2, 1.0 / 2] if kind == "huber" else [-0.5, 3.0])


# --- the loss on a tiny linear Q-network with hand-set weights ---
# With one-hot observations e0, e1 and no hidden layer, Q(e_i) is row i of the kernel.

E0, E1 = jnp.eye(4)[0], jnp.eye(4)[1]


def linear_params(rows) -> dict:
    kernel = jnp.zeros((4, 2)).at[: len(rows)].set(jnp.array(rows, jnp.float32))
    return {"params": {"q": {"kernel": kernel, "bias": jnp.zeros(2)}}}


ONLINE = linear_params([[1.0, 2.0], [4.0, 3.0]])  # Q(e0) = [1, 2], Q(e1) = [4, 3]
TARGET = linear_params([[10.0, 0.0], [0.0, 20.0]])  # Q'(e0) = [10, 0], Q'(e1) = [0, 20]


def two_transitions(second_done: bool) -> Transition:
    # e0 --action 1, r=1--> e1 (continues); e1 --action 0, r=0.5--> e0 (terminal, or cut by the time limit)
    return Transition(
        obs=jnp.stack([E0, E1]), action=jnp.array([1, 0]), reward=jnp.array([1.0, 0.5]),
        next_obs=jnp.stack([E1, E0]), done=jnp.array([False, second_done]), ended=jnp.array([False, True]),
    )


# gamma = 0.9; q_taken = [Q(e0)[1], Q(e1)[0]] = [2, 4]
# first target: DQN 1 + 0.9 * max Q'(e1) = 19; double 1 + 0.9 * Q'(e1)[argmax Q(e1) = 0] = 1
# second target: terminal 0.5; truncated (done=0) bootstraps: DQN 0.5 + 0.9 * 10 = 9.5, double 0.5 + 0.9 * Q'(e0)[argmax Q(e0) = 1] = 0.5
@pytest.mark.parametrize(
    ("double", "second_done", "errors"),
    [
        (False, True, [2 - 19, 4 - 0.5]),
        (True, True, [2 - 1, 4 - 0.5]),
        (False, False, [2 - 19, 4 - 9.5]),
        (True, False, [2 - 1, 4 - 0.5]),
    ],
)
@pytest.mark.parametrize("loss", ["huber", "mse"])
def test_loss_on_a_linear_net_by_hand(double, second_done, errors, loss):
    cfg = Config(hidden_sizes=(), double_dqn=double, loss=loss, gamma=0.9, n_step=1)  # hidden_sizes=(): a linear net
    loss_fn, hp = learner.make_loss(QNetwork(()), cfg), cfg.hyperparams()
    err = np.abs(errors)
    expected = np.mean(np.where(err <= 1, 0.5 * err**2, err - 0.5)) if loss == "huber" else np.mean(err**2)
    np.testing.assert_allclose(loss_fn(ONLINE, TARGET, two_transitions(second_done), hp.gamma), expected, rtol=1e-6)
    # the target network gets no gradient
    grads = jax.grad(loss_fn, argnums=1)(ONLINE, TARGET, two_transitions(second_done), hp.gamma)
    assert all(not np.any(g) for g in jax.tree.leaves(grads))


# --- target updates ---


def test_update_target_tau_one_copies_and_smaller_tau_is_polyak():
    state = LearnerState(params=ONLINE, target_params=TARGET, opt_state=())
    copied = learner.update_target(state, 1.0)
    jax.tree.map(np.testing.assert_array_equal, copied.target_params, ONLINE)
    polyak = learner.update_target(state, 0.25)
    expected = jax.tree.map(lambda o, t: 0.25 * o + 0.75 * t, ONLINE, TARGET)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), polyak.target_params, expected)
    jax.tree.map(np.testing.assert_array_equal, polyak.params, ONLINE)  # the online net is untouched


@pytest.mark.parametrize(("every", "tau"), [(0, 1.0), (0, 0.5), (100, 1.0)])
def test_make_update_applies_the_per_step_target_update_only_when_every_is_zero(every, tau):
    cfg = Config(hidden_sizes=(8,), target_update_every=every, tau=tau, learning_rate=0.1, n_step=1)
    net, hp = make_network(cfg), cfg.hyperparams()
    tx = learner.make_optimizer(cfg, hp)
    state = learner.init(jax.random.key(0), net, tx, jnp.zeros(4))
    state = state.replace(target_params=jax.tree.map(jnp.zeros_like, state.params))
    new, loss = jax.jit(learner.make_update(net, tx, cfg))(state, two_transitions(True), hp)
    assert np.isfinite(loss)
    if every == 0:  # tau=1 and every=0 is "no target network": the target is the online net after every step
        expected = jax.tree.map(lambda p: tau * p, new.params)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), new.target_params, expected)
    else:  # left to the training loop's schedule
        assert all(not np.any(t) for t in jax.tree.leaves(new.target_params))


# --- probe problems: the real update, trained to the closed-form Q-values ---

S0, S1 = jnp.array([1.0, 0.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 0.0, 0.0])
GAMMA = 0.9
PROBE_BATCH = 8


def probe_batch(rows) -> Transition:
    """rows of (obs, action, reward, next_obs, done), tiled to a fixed batch so one compiled trainer serves all probes."""
    rows = [rows[i % len(rows)] for i in range(PROBE_BATCH)]
    obs, action, reward, next_obs, done = zip(*rows, strict=True)
    done = jnp.array(done)
    return Transition(jnp.stack(obs), jnp.array(action, jnp.int32), jnp.array(reward, jnp.float32), jnp.stack(next_obs), done, done)


PROBES = {
    # one step, reward 1, terminal: Q = 1 for both actions
    "one-step": ([(S0, a, 1.0, S0, True) for a in (0, 1)], {0: [1.0, 1.0]}),
    # s0 -> s1 (reward 0) -> end (reward 1): Q(s0) = gamma, Q(s1) = 1
    "two-step": ([(S0, a, 0.0, S1, False) for a in (0, 1)] + [(S1, a, 1.0, S0, True) for a in (0, 1)], {0: [GAMMA] * 2, 1: [1.0] * 2}),
    # reward +1 for action 1, -1 for action 0, terminal: Q = [-1, +1]
    "action-reward": ([(S0, 0, -1.0, S0, True), (S0, 1, 1.0, S0, True)], {0: [-1.0, 1.0]}),
    # reward 1 forever, never terminal (a time-limit cut bootstraps): Q = 1 / (1 - gamma)
    "bootstrap": ([(S0, a, 1.0, S0, False) for a in (0, 1)], {0: [1 / (1 - GAMMA)] * 2}),
}

PROBE_CFG = Config(
    n_step=1,
    hidden_sizes=(32,), learning_rate=3e-3, lr_end_fraction=0.05, gamma=GAMMA, loss="mse", double_dqn=True,
    tau=0.1, target_update_every=0, optimizer="adam", total_env_steps=2_000, num_envs=1, learning_starts=0,
    batch_size=PROBE_BATCH, buffer_size=PROBE_BATCH,
)


@pytest.fixture(scope="module")
def fit():
    cfg, hp = PROBE_CFG, PROBE_CFG.hyperparams()
    net = make_network(cfg)
    tx = learner.make_optimizer(cfg, hp)
    update = learner.make_update(net, tx, cfg)
    steps = schedule.total_updates(cfg)  # the learning-rate schedule decays over exactly these

    @jax.jit
    def train(key, batch):
        state = learner.init(key, net, tx, jnp.zeros(4))
        state, losses = jax.lax.scan(lambda s, _: update(s, batch, hp), state, None, length=steps)
        return net.apply(state.params, jnp.stack([S0, S1])), losses

    return train


@pytest.mark.parametrize("name", PROBES)
def test_probe_learns_the_closed_form_q_values(fit, name):
    rows, expected = PROBES[name]
    q, losses = fit(jax.random.key(0), probe_batch(rows))
    for state_index, values in expected.items():
        np.testing.assert_allclose(q[state_index], values, atol=1e-2, err_msg=name)
    assert losses[-1] < 1e-3 < losses[0]  # it learned; it did not start there


# --- n-step returns ---


def sequence(rewards, done, ended) -> Transition:
    """One row of len(rewards) steps; obs and next_obs of step k are k and k + 1 (in coordinate 0)."""
    k = jnp.arange(len(rewards), dtype=jnp.float32)
    obs = jnp.zeros((len(rewards), 4)).at[:, 0].set(k)
    return Transition(obs[None], jnp.arange(len(rewards))[None] % 2, jnp.array(rewards, jnp.float32)[None],
                      obs.at[:, 0].add(1.0)[None], jnp.array(done)[None], jnp.array(ended)[None])


# gamma 0.5, rewards 1, 2, 4: (return, discount of the bootstrap (0: none), bootstrap obs index)
@pytest.mark.parametrize(
    ("done", "ended", "expected"),
    [
        ([False, False, False], [False, False, False], (1 + 0.5 * 2 + 0.25 * 4, 0.125, 3)),  # no end: bootstrap after 3
        ([False, True, False], [False, True, False], (1 + 0.5 * 2, 0.0, 2)),  # failure at step 1: no bootstrap
        ([False, False, False], [True, False, False], (1, 0.5, 1)),  # cut by the time limit at step 0: bootstrap there
        ([False, False, True], [False, False, True], (1 + 0.5 * 2 + 0.25 * 4, 0.0, 3)),  # failure on the last step
        ([False, True, False], [True, True, False], (1, 0.5, 1)),  # the first end wins; later steps are another episode
    ],
)
def test_n_step_view_by_hand(done, ended, expected):
    one, gamma = learner.n_step_view(sequence([1.0, 2.0, 4.0], done, ended), jnp.float32(0.5))
    ret, disc, index = expected
    np.testing.assert_allclose(one.reward, [ret], rtol=1e-6)
    np.testing.assert_allclose(gamma * (1.0 - one.done), [disc], rtol=1e-6)  # what td_target applies
    assert float(one.next_obs[0, 0]) == index and float(one.obs[0, 0]) == 0 and int(one.action[0]) == 0


def test_n_step_one_matches_the_one_step_loss():
    cfg = Config(hidden_sizes=(), gamma=0.9, n_step=1)
    batch = two_transitions(True)
    one_step = learner.make_loss(QNetwork(()), cfg)(ONLINE, TARGET, batch, cfg.gamma)
    # the same rows as sequences of two steps whose second step adds nothing (reward 0 after an end)
    seq = jax.tree.map(lambda x: jnp.stack([x, x], axis=1), batch.replace(ended=jnp.array([True, True])))
    seq = seq.replace(reward=seq.reward.at[:, 1].set(100.0))  # after the end: must be ignored
    two = learner.make_loss(QNetwork(()), cfg.replace(n_step=2))(ONLINE, TARGET, *learner.n_step_view(seq, jnp.float32(cfg.gamma)))
    np.testing.assert_allclose(two, one_step, rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 6), end_rate=st.sampled_from([0.0, 0.2, 0.7]))
def test_n_step_sample_equals_the_view_of_a_full_gather_bitwise(seed, n, end_rate):
    """The trainer reads only the observation rows n_step_view uses; the result must not change by a bit."""
    rng = np.random.default_rng(seed)
    cap, rows = 64, 16
    data = Transition(
        jnp.asarray(rng.normal(size=(cap, 4)), jnp.float32), jnp.asarray(rng.integers(0, 2, cap), jnp.int32),
        jnp.asarray(rng.normal(size=cap), jnp.float32), jnp.asarray(rng.normal(size=(cap, 4)), jnp.float32),
        jnp.asarray(rng.random(cap) < end_rate / 2), jnp.asarray(rng.random(cap) < end_rate),
    )
    slots, gamma = jnp.asarray(rng.integers(0, cap, (rows, n)), jnp.int32), jnp.float32(rng.uniform(0.5, 1.0))
    full = jax.jit(lambda d, s, g: learner.n_step_view(jax.tree.map(lambda x: x[s], d), g))(data, slots, gamma)
    sampled = jax.jit(learner.n_step_sample)(data, slots, gamma)
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(sampled), strict=True):
        np.testing.assert_array_equal(a, b)
