"""Escrow release and wallet auto-deduct runs (workflow 4), without Dagster: `release`,
`auto_deduct`, and the `report` both return."""
