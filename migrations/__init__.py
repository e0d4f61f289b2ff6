"""Alembic's script directory, installed as the package service.db.migration_scripts.

pyproject.toml maps that package here, so the wheel ships these files while they stay at the
repository root. This file makes it a regular package: an editable install cannot import a
mapped namespace package (setuptools' editable finder only maps folders with __init__.py).
"""
