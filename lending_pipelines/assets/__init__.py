"""One module per workflow: its assets and their checks."""
