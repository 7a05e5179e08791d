"""The same DQN driven from Python, one env step at a time: what compiling the whole loop buys.

This is the structure of the Keras tutorial and CleanRL's dqn_jax.py: gymnasium's vector env and a
NumPy replay buffer on the host, a jitted `act` and a jitted `update` (our learner's update rule,
network and optimizer) called once per vector step, target updates on the same schedule.
"""

from __future__ import annotations

import jax
import numpy as np

from cartpole_jax.config import Config
from cartpole_jax.core import actor, learner, schedule
from cartpole_jax.core.network import make_network
from cartpole_jax.core.types import Transition

from .envs import make_gymnasium
from .timing import record, seconds
from .training import timing_config


class NumpyReplay:
    """A host-side circular buffer, as the tutorial's deque or CleanRL's ReplayBuffer."""

    def __init__(self, capacity: int, seed: int = 0):
        self.obs = np.zeros((capacity, 4), np.float32)
        self.next_obs = np.zeros((capacity, 4), np.float32)
        self.action = np.zeros(capacity, np.int32)
        self.reward = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, bool)
        self.pos, self.size, self.capacity = 0, 0, capacity
        self.rng = np.random.default_rng(seed)

    def add(self, obs, action, reward, next_obs, done) -> None:
        idx = (self.pos + np.arange(len(action))) % self.capacity
        self.obs[idx], self.action[idx], self.reward[idx], self.next_obs[idx], self.done[idx] = obs, action, reward, next_obs, done
        self.pos = int((self.pos + len(action)) % self.capacity)
        self.size = min(self.size + len(action), self.capacity)

    def sample(self, batch_size: int) -> Transition:
        i = self.rng.integers(0, max(self.size, 1), batch_size)
        return Transition(self.obs[i], self.action[i], self.reward[i], self.next_obs[i], self.done[i], self.done[i])


class PythonLoopDQN:
    """One seed of DQN with the host in the loop; `steps(k)` runs k vector steps."""

    def __init__(self, cfg: Config, seed: int = 0):
        self.cfg, self.hp = cfg, cfg.hyperparams()
        network = make_network(cfg)
        tx = learner.make_optimizer(cfg, self.hp)
        self.learner = learner.init(jax.random.key(seed), network, tx, np.zeros(4, np.float32))
        self.update = jax.jit(learner.make_update(network, tx, cfg))
        self.update_target = jax.jit(learner.update_target)

        def act(params, obs, key, t):
            q = network.apply(params, obs)
            return actor.epsilon_greedy(jax.random.fold_in(key, t), q, actor.epsilon(cfg, self.hp, t * cfg.num_envs))

        self.act = jax.jit(act)
        self.key = jax.random.key(seed + 1)
        self.envs = make_gymnasium("gymnasium_vector", cfg.num_envs)
        self.obs, _ = self.envs.reset(seed=seed)
        self.resetting = np.zeros(cfg.num_envs, bool)  # gymnasium's next-step autoreset: that step's transition is void
        self.buffer = NumpyReplay(cfg.buffer_size, seed)
        self.t = 0

    def step(self) -> None:
        cfg, t = self.cfg, self.t
        action = np.asarray(self.act(self.learner.params, self.obs, self.key, t))
        next_obs, reward, terminated, truncated, _ = self.envs.step(action)
        no_bootstrap = terminated if cfg.bootstrap_on_truncation else terminated | truncated
        reward = np.where(terminated, cfg.failure_reward, reward).astype(np.float32)
        keep = ~self.resetting
        self.buffer.add(self.obs[keep], action[keep], reward[keep], next_obs[keep], no_bootstrap[keep])
        self.resetting, self.obs = terminated | truncated, next_obs
        for _ in range(int(schedule.updates_at(cfg, t))):
            self.learner, _loss = self.update(self.learner, self.buffer.sample(cfg.batch_size), self.hp)
        if cfg.target_update_every > 0 and schedule.target_update_due(cfg, t):
            self.learner = self.update_target(self.learner, self.hp.tau)
        self.t += 1

    def steps(self, k: int) -> None:
        for _ in range(k):
            self.step()
        jax.block_until_ready(self.learner)


def bench_python_loop(preset: str, chunk_env_steps: int, repeats: int = 3, overrides: dict | None = None) -> dict:
    """Env steps/s of the Python-driven DQN at one seed, timed over chunks of the compiled benchmark's size."""
    cfg = timing_config(preset, chunk_env_steps, overrides)
    agent = PythonLoopDQN(cfg)
    warm_steps = -(-max(cfg.learning_starts, cfg.batch_size) // cfg.num_envs) + cfg.chunk_len // 10
    warm = seconds(lambda: agent.steps(warm_steps))  # fills the buffer past learning_starts and compiles both jits
    times = [seconds(lambda: agent.steps(cfg.chunk_len)) for _ in range(repeats)]
    agent.envs.close()
    return record("python_loop", "python_loop", cfg.chunk_len * cfg.num_envs, times, preset=preset, num_envs=cfg.num_envs,
                  num_seeds=1, warmup_seconds=warm, warmup_vector_steps=warm_steps)
