"""Test-wide settings: 8 simulated CPU devices and strict JAX.

XLA_FLAGS must be set before jax is imported anywhere; pytest imports this
file first. `.ci/run` sets it too, for runs outside pytest.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

jax.config.update("jax_numpy_rank_promotion", "raise")

# Hypothesis profiles: "ci" (the default) keeps the property tests bounded;
# `pytest --hypothesis-profile=thorough` runs many more examples.
import datetime  # pylint: disable=g-import-not-at-top,wrong-import-position

import hypothesis  # pylint: disable=g-import-not-at-top,wrong-import-position

hypothesis.settings.register_profile(
    "ci", max_examples=40, deadline=datetime.timedelta(seconds=30),
    derandomize=True, database=None, print_blob=True)
hypothesis.settings.register_profile(
    "thorough", max_examples=5000, deadline=None, print_blob=True)
hypothesis.settings.load_profile("ci")
