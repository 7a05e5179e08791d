"""Which platforms compute thin layers as sums, the compile option that goes with them, and each platform's loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartpole_jax import checkpoint
from cartpole_jax.config import Config
from cartpole_jax.core import kernels
from cartpole_jax.core.network import make_network
from cartpole_jax.core.train import make_trainer
from cartpole_jax.program import batch_hyperparams, over_runs


@pytest.mark.parametrize("platform", ["gpu", "cuda", "rocm", "tpu"])
def test_accelerators_keep_plain_matmuls_and_default_options(platform):
    assert kernels.for_platform(platform) == kernels.PLAIN
    assert kernels.for_platform(platform).jit_options() == {}


def test_cpu_takes_the_general_loop_and_accelerators_the_branch_free_one():
    """On CPU a branch is a host branch, and the general loop is the faster; elsewhere each costs a round trip."""
    assert kernels.for_platform("cpu").loop == "general"
    assert kernels.for_platform("gpu").loop == kernels.PLAIN.loop == "auto"


def test_cpu_options_compile_and_give_the_network_s_values():
    cfg = Config()
    cpu = kernels.for_platform("cpu", cfg.hidden_sizes)
    if not cpu.thin_as_sums:
        pytest.skip("this jaxlib's CPU compiler does not take the option")
    assert cpu.jit_options() == {"compiler_options": {**kernels.ONLY_DOTS, **kernels.LLVM_O1}}
    sums = make_network(cfg, thin_as_sums=True)
    params = sums.init(jax.random.key(0), jnp.zeros(4))
    obs = jax.random.normal(jax.random.key(1), (64, 4))
    fast = jax.jit(sums.apply, **cpu.jit_options())(params, obs)
    np.testing.assert_allclose(fast, make_network(cfg).apply(params, obs), rtol=1e-5, atol=1e-5)


@pytest.fixture
def fresh_probes():
    kernels._cpu_accepts_items.cache_clear()
    yield
    kernels._cpu_accepts_items.cache_clear()


def test_a_compiler_that_rejects_the_option_falls_back_to_matmuls(monkeypatch, fresh_probes):
    monkeypatch.setattr(kernels, "ONLY_DOTS", {"xla_cpu_experimental_ynn_fusion_type": "NOT_A_FUSION_TYPE"})
    chosen = kernels.for_platform("cpu", (32, 32))
    assert chosen == kernels.Kernels(thin_as_sums=False, loop="general", quick_init=kernels._cpu_accepts(kernels.QUICK_COMPILE),
                                     llvm_o1=kernels._cpu_accepts(kernels.LLVM_O1))
    assert "xla_cpu_experimental_ynn_fusion_type" not in chosen.init_jit_options().get("compiler_options", {})


def test_a_compiler_that_rejects_quick_compile_compiles_init_like_the_chunk(monkeypatch, fresh_probes):
    monkeypatch.setattr(kernels, "QUICK_COMPILE", {"xla_not_an_option": True})
    chosen = kernels.for_platform("cpu")
    assert not chosen.quick_init and chosen.init_jit_options() == chosen.jit_options()


def test_llvm_o1_only_for_networks_known_to_be_narrow():
    """-O1 costs wide layers their vectorised loops (seed-tutorial's 512-wide trains 2-3% slower); an unknown network keeps -O3."""
    edge = kernels.LLVM_O1_MAX_WIDTH
    assert kernels.for_platform("cpu", (edge, 8)).llvm_o1 == kernels._cpu_accepts(kernels.LLVM_O1)
    assert not kernels.for_platform("cpu", (512, 256, 64)).llvm_o1 and not kernels.for_platform("cpu", (8, edge + 1)).llvm_o1
    assert not kernels.for_platform("cpu").llvm_o1
    assert "xla_backend_optimization_level" not in kernels.for_platform("cpu", (512,)).jit_options().get("compiler_options", {})


def test_a_compiler_that_rejects_llvm_o1_keeps_xla_s_optimisation_level(monkeypatch, fresh_probes):
    monkeypatch.setattr(kernels, "LLVM_O1", {"xla_not_an_option": 1})
    monkeypatch.setattr(kernels, "QUICK_COMPILE", {**kernels.LLVM_O1, "xla_cpu_use_fusion_emitters": False})
    chosen = kernels.for_platform("cpu", (32, 32))
    assert not chosen.llvm_o1 and not chosen.quick_init
    assert "xla_not_an_option" not in chosen.jit_options().get("compiler_options", {})


def test_cpu_compiles_init_quickly_and_accelerators_take_xla_s_defaults():
    cpu = kernels.for_platform("cpu")
    if not cpu.quick_init:
        pytest.skip("this jaxlib's CPU compiler does not take QUICK_COMPILE")
    assert cpu.init_jit_options()["compiler_options"] == {**cpu.jit_options().get("compiler_options", {}), **kernels.QUICK_COMPILE}
    assert kernels.for_platform("gpu").init_jit_options() == {}


@pytest.mark.parametrize("kernel_init,dueling,batching", [("lecun_normal", False, "map"), ("he_uniform", True, "vmap"),
                                                          ("he_normal", False, "vmap"), ("glorot_uniform", False, "map"),
                                                          ("orthogonal", True, "map")])
def test_quick_compiled_init_gives_the_same_bits(tiny, kernel_init, dueling, batching):
    """The init program is compiled for compile time, not speed: its every output keeps its bits."""
    cpu = kernels.for_platform("cpu")
    if not cpu.quick_init:
        pytest.skip("this jaxlib's CPU compiler does not take QUICK_COMPILE")
    cfg = tiny.replace(kernel_init=kernel_init, dueling=dueling, hidden_sizes=(16, 8))
    init = over_runs(make_trainer(cfg, cpu).init, batching)
    keys, hps = jax.vmap(jax.random.key)(jnp.arange(3)), batch_hyperparams(cfg, [{}] * 3)
    _, quick = checkpoint.to_host(jax.jit(init, **cpu.init_jit_options())(keys, hps), 3)  # keys as their data
    _, usual = checkpoint.to_host(jax.jit(init, **cpu.jit_options())(keys, hps), 3)
    for a, b in zip(quick, usual, strict=True):
        np.testing.assert_array_equal(a, b)
