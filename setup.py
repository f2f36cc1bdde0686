"""Packaging for hk_effects."""

import setuptools

setuptools.setup(
    name="hk_effects",
    version="0.1.0",
    description="Scoped side effects and state for Haiku models, in the style "
                "of Penzai's data effects.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["hk_effects", "hk_effects.*"]),
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.6",
        "jaxlib>=0.6",
        "dm-haiku>=0.0.17,<0.0.18",  # haiku_internals.SUPPORTED_HAIKU
        "chex>=0.1.89",
        "absl-py>=2.0",
    ],
    extras_require={
        # tensorboardX: tests/train_lm_test.py reads back the events that
        # examples/train_lm.py --tensorboard writes.
        "test": ["pytest>=8", "hypothesis>=6.100", "treescope>=0.1.5",
                 "mypy>=1.10", "tensorboardX>=2.6"],
        "examples": ["optax>=0.2", "matplotlib>=3.8", "safetensors>=0.4"],
        "bench": ["penzai>=0.2", "flax>=0.10"],
        "render": ["treescope>=0.1.5"],
    },
)
