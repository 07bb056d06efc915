"""A local emulation of the five partner APIs that speaks their real wire formats."""
