"""Creator payouts (workflow 3), without Dagster: `processing` (account refresh, paying items,
chunk workers, retries) and `stripe_events` (reversals and account updates from Stripe)."""
