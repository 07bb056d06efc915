"""Engines that run without Dagster: plain functions over the database, partners and rules."""
