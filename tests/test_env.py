"""Our batched CartPole is CartPole-v1: parity with gymnasium and with gymnax, reset and auto-reset rules."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments.classic_control.cartpole import CartPole, EnvState

from cartpole_jax.core import env

NUM_ENVS = 4
VECTOR_STEPS = 1_500  # 6,000 env steps: dozens of episodes, several of them cut at 500
MODE_P = [0.3, 0.5, 0.2]  # balancing, random, always-right episodes
THRESHOLDS = np.array([env.PARAMS.x_threshold, env.PARAMS.theta_threshold_radians])


def _policy(mode: int, obs: np.ndarray, rng: np.random.Generator) -> int:
    """0: a balancing controller that survives to the time limit; 1: uniform random; 2: always push right."""
    x, x_dot, theta, theta_dot = obs
    if mode == 0:
        action = int(theta + 0.5 * theta_dot + 0.05 * x + 0.1 * x_dot > 0)
        return int(rng.integers(2)) if rng.random() < 0.05 else action
    return int(rng.integers(2)) if mode == 1 else 1


def _near_threshold(obs: np.ndarray) -> bool:
    """Whether float32 vs float64 rounding could flip the termination test (|x| or |theta| at a limit)."""
    return bool(np.any(np.abs(np.abs(obs[[0, 2]]) - THRESHOLDS) < 1e-6))


def test_parity_with_gymnasium_cartpole_v1():
    """Same state, same action: gymnasium (float64, re-synchronised to our state every step) agrees on everything."""
    gyms = [gym.make("CartPole-v1") for _ in range(NUM_ENVS)]
    for i, g in enumerate(gyms):
        g.reset(seed=i)
    step = jax.jit(env.step)
    rng = np.random.default_rng(0)
    key = jax.random.key(0)
    key, k0 = jax.random.split(key)
    _, state = env.reset(k0, NUM_ENVS)
    host_state = jax.device_get(state)
    modes = rng.choice(3, size=NUM_ENVS, p=MODE_P)
    counts = {"terminated": 0, "truncated": 0}
    for _ in range(VECTOR_STEPS):
        before = np.stack([host_state.x, host_state.x_dot, host_state.theta, host_state.theta_dot], axis=-1).astype(np.float64)
        times = host_state.time
        actions = np.array([_policy(modes[i], before[i], rng) for i in range(NUM_ENVS)], dtype=np.int32)
        key, k = jax.random.split(key)
        state, res = step(k, state, jnp.asarray(actions))
        host_state, r = jax.device_get((state, res))
        for i, g in enumerate(gyms):
            assert g._elapsed_steps == times[i]  # our step counter is gymnasium's TimeLimit counter
            g.unwrapped.state = before[i].copy()  # re-synchronise: gymnasium continues from our exact state
            g_obs, g_rew, g_term, g_trunc, _ = g.step(int(actions[i]))
            np.testing.assert_allclose(r.final_obs[i], g_obs, rtol=0, atol=1e-6)
            assert float(r.reward[i]) == g_rew
            if not _near_threshold(g_obs):
                assert bool(r.terminated[i]) == g_term
            # gymnasium reports truncated=True at step 500 even when the pole also fell then; we call that a termination
            assert bool(r.truncated[i]) == (g_trunc and not g_term)
            assert not (r.terminated[i] and r.truncated[i])
            counts["terminated"] += int(r.terminated[i])
            counts["truncated"] += int(r.truncated[i])
            if r.terminated[i] or r.truncated[i]:
                assert r.truncated[i] == (times[i] + 1 == 500)
                assert host_state.time[i] == 0 and np.all(np.abs(r.obs[i]) <= 0.05)  # a fresh episode
                g.reset()
                modes[i] = rng.choice(3, p=MODE_P)
            else:
                assert host_state.time[i] == times[i] + 1
                np.testing.assert_array_equal(r.obs[i], r.final_obs[i])
    # the run really exercised both ways an episode ends
    assert counts["truncated"] >= 3 and counts["terminated"] >= 10, counts


def _random_states(key, n: int, max_time: int = 500) -> EnvState:
    """Non-terminal states spread over the whole track, near the angle limit and near the time limit."""
    k1, k2, k3 = jax.random.split(key, 3)
    lim = jnp.array([2.39, 2.0, 0.209, 2.5])  # up to the track and angle limits
    s = jax.random.uniform(k1, (n, 4), minval=-lim, maxval=lim)
    near_end = jax.random.bernoulli(k3, 0.3, (n,))
    time = jnp.where(near_end, max_time - 1, jax.random.randint(k2, (n,), 0, max_time))
    return EnvState(x=s[:, 0], x_dot=s[:, 1], theta=s[:, 2], theta_dot=s[:, 3], time=time.astype(jnp.int32))


def test_batched_step_equals_gymnax_step_env_per_env():
    n = 160
    state = _random_states(jax.random.key(1), n)
    actions = jax.random.randint(jax.random.key(2), (n,), 0, 2)
    stepped, terminated, truncated = jax.jit(env.advance)(state, actions)
    _, res = jax.jit(env.step)(jax.random.key(3), state, actions)
    cartpole = CartPole()
    gymnax_step = jax.jit(cartpole.step_env)
    saw = {"terminated": 0, "truncated": 0}
    host = jax.device_get((state, actions, stepped, terminated, truncated, res))
    state_np, actions_np, stepped_np, terminated, truncated, res = host
    for i in range(n):
        single = jax.tree.map(lambda a, i=i: a[i], state_np)
        g_obs, g_state, g_reward, g_terminated, _ = jax.device_get(gymnax_step(jax.random.key(0), single, actions_np[i], env.PARAMS))
        g_truncated = bool(cartpole.is_truncated(g_state, env.PARAMS))
        np.testing.assert_allclose(env.observe(jax.tree.map(lambda a, i=i: a[i], stepped_np)), g_obs, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(res.final_obs[i], g_obs, rtol=1e-6, atol=1e-7)
        assert stepped_np.time[i] == g_state.time
        assert res.reward[i] == g_reward == 1.0  # from a non-terminal state gymnax pays 1 too
        assert terminated[i] == res.terminated[i] == g_terminated
        # gymnax flags the time limit even when the pole fell on the 500th step; we call that a termination only
        assert truncated[i] == res.truncated[i] == (g_truncated and not g_terminated)
        saw["terminated"] += int(g_terminated)
        saw["truncated"] += int(truncated[i])
    assert saw["terminated"] > 10 and saw["truncated"] > 10, saw


def test_reset_draws_lie_in_range():
    obs, state = jax.jit(env.reset, static_argnums=1)(jax.random.key(0), 20_000)
    obs = np.asarray(obs)
    assert obs.shape == (20_000, 4) and obs.dtype == np.float32
    assert np.all(obs >= -0.05) and np.all(obs <= 0.05)
    assert np.all(obs.min(axis=0) < -0.049) and np.all(obs.max(axis=0) > 0.049)  # the whole interval, every coordinate
    assert np.all(np.asarray(state.time) == 0)
    np.testing.assert_array_equal(obs, env.observe(state))
    other, _ = env.reset(jax.random.key(1), 20_000)
    assert not np.array_equal(obs, np.asarray(other))


@pytest.mark.parametrize("seed", range(3))
def test_done_envs_restart_while_final_obs_keeps_the_true_end(seed):
    n = 64
    state = _random_states(jax.random.key(seed), n)
    actions = jax.random.randint(jax.random.key(seed + 10), (n,), 0, 2)
    k = jax.random.key(seed + 20)
    next_state, res = jax.jit(env.step)(k, state, actions)
    stepped, terminated, truncated = jax.jit(env.advance)(state, actions)
    fresh_obs, _ = env.reset(k, n)  # the step's reset draw is reset(key, n)
    done = np.asarray(res.terminated | res.truncated)
    assert done.any() and (~done).any()
    assert not np.any(np.asarray(res.terminated & res.truncated))
    np.testing.assert_array_equal(res.terminated, terminated)
    np.testing.assert_array_equal(res.truncated, truncated)
    np.testing.assert_allclose(res.final_obs, env.observe(stepped), rtol=1e-6, atol=1e-7)  # jit may fuse differently
    np.testing.assert_array_equal(np.asarray(res.obs)[done], np.asarray(fresh_obs)[done])
    np.testing.assert_array_equal(np.asarray(res.obs)[~done], np.asarray(res.final_obs)[~done])
    np.testing.assert_array_equal(np.asarray(next_state.time), np.where(done, 0, np.asarray(state.time) + 1))
    np.testing.assert_array_equal(res.obs, env.observe(next_state))
    # a truncated env was cut at exactly 500 steps and did not fail
    assert np.all(np.asarray(stepped.time)[np.asarray(res.truncated)] == 500)


def test_importing_the_env_leaves_gymnax_whole():
    """cartpole_jax.env loads gymnax's CartPole alone; `import gymnax` afterwards still gives the full package."""
    import subprocess
    import sys

    code = (
        "import sys; import cartpole_jax.core.env as e\n"
        "assert not [m for m in sys.modules if m.startswith('gymnax')]\n"
        "import gymnax; env, params = gymnax.make('CartPole-v1')\n"
        "import dataclasses; assert 'Pong-misc' in gymnax.registered_envs\n"
        "assert dataclasses.asdict(params) == dataclasses.asdict(e.PARAMS)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
