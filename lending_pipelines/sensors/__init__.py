"""Sensors: inbound events, payment files, run-failure alerts."""
