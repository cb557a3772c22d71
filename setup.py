"""Only what pyproject.toml cannot say: the packages found under clusterkit/ plus the data package
clusterkit.recipes, which pyproject.toml maps to the top-level images/ folder (package-dir)."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["clusterkit", "clusterkit.*"]), "clusterkit.recipes"])
