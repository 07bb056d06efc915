"""Plain HTTP clients of the partners (no Dagster): client.py, models.py, errors.py each."""
