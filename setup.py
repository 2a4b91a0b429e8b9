"""Package layout that pyproject.toml cannot express: the top-level ``luts/`` ships as ``nasjax/luts``."""

from setuptools import find_namespace_packages, setup

setup(
    packages=find_namespace_packages(include=["nasjax", "nasjax.*", "experiments", "experiments.*"]) + ["nasjax.luts"],
    package_dir={"nasjax.luts": "luts"},
)
