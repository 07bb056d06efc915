"""Imports every table module so `metadata` describes the whole schema (migration checks)."""

from . import common  # noqa: F401
