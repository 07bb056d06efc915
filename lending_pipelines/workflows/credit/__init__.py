"""Retailer credit operations (workflow 2) as plain functions: guardrails and auto-pause,
payment reminders, order expiry / follow-up / failed-order reversal, insights, Launchpad
operations, and delivering their WhatsApp intents from the outbox. No Dagster here."""
