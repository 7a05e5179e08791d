"""Which platforms compute thin layers as sums, the compile option that goes with them, and each platform's loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartpole_jax.config import Config
from cartpole_jax.core import kernels
from cartpole_jax.core.network import make_network


@pytest.mark.parametrize("platform", ["gpu", "cuda", "rocm", "tpu"])
def test_accelerators_keep_plain_matmuls_and_default_options(platform):
    assert kernels.for_platform(platform) == kernels.PLAIN
    assert kernels.for_platform(platform).jit_options() == {}


def test_cpu_takes_the_general_loop_and_accelerators_the_branch_free_one():
    """On CPU a branch is a host branch, and the general loop is the faster; elsewhere each costs a round trip."""
    assert kernels.for_platform("cpu").loop == "general"
    assert kernels.for_platform("gpu").loop == kernels.PLAIN.loop == "auto"


def test_cpu_options_compile_and_give_the_network_s_values():
    cpu = kernels.for_platform("cpu")
    if not cpu.thin_as_sums:
        pytest.skip("this jaxlib's CPU compiler does not take the option")
    assert cpu.jit_options() == {"compiler_options": kernels.ONLY_DOTS}
    cfg = Config()
    sums = make_network(cfg, thin_as_sums=True)
    params = sums.init(jax.random.key(0), jnp.zeros(4))
    obs = jax.random.normal(jax.random.key(1), (64, 4))
    fast = jax.jit(sums.apply, **cpu.jit_options())(params, obs)
    np.testing.assert_allclose(fast, make_network(cfg).apply(params, obs), rtol=1e-5, atol=1e-5)


def test_a_compiler_that_rejects_the_option_falls_back_to_matmuls(monkeypatch):
    monkeypatch.setattr(kernels, "ONLY_DOTS", {"xla_cpu_experimental_ynn_fusion_type": "NOT_A_FUSION_TYPE"})
    kernels._cpu_accepts_only_dots.cache_clear()
    try:
        assert kernels.for_platform("cpu") == kernels.Kernels(thin_as_sums=False, loop="general")
    finally:
        kernels._cpu_accepts_only_dots.cache_clear()
