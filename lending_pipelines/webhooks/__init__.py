"""The callback receiver: partner callbacks stored durably in `inbound_events`."""
