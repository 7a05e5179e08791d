"""The compiled algorithm: DQN on batched CartPole, as pure functions jax can jit, vmap and scan.

Start at `train.py`: `make_trainer(cfg)` gives `init` and `run_chunk`, and `step` inside it is one
vector step (act, store, learn, evaluate). Below it: env, network, buffer, learner, actor,
schedule, evaluate, with the data they pass in types. Nothing here imports the host side (driver,
checkpoints, CLI); only `cartpole_jax.config`.
"""
